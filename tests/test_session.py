"""The session folder format: write -> read round trip, units, axes, side tables."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import GRAVITY, MICS, SessionFactory, synth_audio, synth_imu
from hypothesis import given, settings
from hypothesis import strategies as st

from backpop_sense.errors import BadInput
from backpop_sense.session import (
    ACC_UNITS,
    DEFAULT_AXES,
    GYRO_UNITS,
    IMU_COLUMNS,
    ImuInfo,
    MicInfo,
    Session,
    SessionInfo,
    SessionWriter,
    check_finite_wav,
    parse_axes,
)
from backpop_sense.tables import numeric_chunks

PCM16_STEP = 1.0 / 32768
"""One PCM_16 quantisation step in full-scale units."""
SIX_DIGITS = 5.000001e-6
"""Relative rounding error of ``%.6g``, the writer's format for acc and gyro."""

_NAMES = {0: ("right", "left"), 1: ("forward", "backward"), 2: ("up", "down")}


def _all_axes() -> list[tuple[str, np.ndarray]]:
    """Every assignment of a signed body direction to each sensor axis, with its matrix."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            cols, words = [], []
            for key, body_axis, sign in zip("xyz", perm, signs, strict=True):
                col = np.zeros(3)
                col[body_axis] = sign
                cols.append(col)
                words.append(f"{key}={_NAMES[body_axis][0 if sign > 0 else 1]}")
            out.append((",".join(words), np.column_stack(cols)))
    return out


ALL_AXES = _all_axes()
RIGHT_HANDED = [a for a, m in ALL_AXES if round(np.linalg.det(m)) == 1]


def _write_by_hand(folder: Path, imu_doc: dict, csv_text: str) -> Path:
    """A one-IMU session whose IMU file is exactly ``csv_text``."""
    folder.mkdir()
    doc = {
        "format": "backpop-session/1", "subject": "S01", "session": "hand",
        "start": "2026-11-20T09:30:00Z", "mics": [{"name": "L1"}],
        "imus": [{"name": "imu", "level": "L2", **imu_doc}],
    }
    (folder / "session.json").write_text(json.dumps(doc), encoding="utf-8")
    sf.write(str(folder / "mic.wav"), np.zeros((8000, 1), dtype=np.float32), 8000,
             subtype="PCM_16")
    (folder / "imu_imu.csv").write_text(csv_text, encoding="utf-8")
    return folder


# --- round trip --------------------------------------------------------------------------


def test_round_trip_audio_within_pcm16_quantisation(make_session: SessionFactory) -> None:
    path = make_session()
    written = make_session.written[path]
    s = Session(path)
    assert (s.audio.sr, s.audio.frames, s.audio.channels, s.audio.subtype) == (
        8000, 24000, 3, "PCM_16")
    assert s.duration_s == pytest.approx(3.0)
    audio = s.read_audio()
    assert audio.shape == written.audio.shape
    np.testing.assert_allclose(audio, written.audio, rtol=0, atol=PCM16_STEP)
    assert np.abs(audio - written.audio).max() > 0  # really quantised, really compared


def test_round_trip_imu_within_six_digits(make_session: SessionFactory) -> None:
    path = make_session()
    written = make_session.written[path]
    s = Session(path)
    for name in ("thoracic", "sacral"):
        block = s.read_imu(name)
        want = written.imu[name]
        assert block.imu == name and block.start_index == 0 and block.mag is None
        np.testing.assert_allclose(block.t, want["t"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(block.acc, want["acc"], rtol=SIX_DIGITS, atol=0)
        np.testing.assert_allclose(block.gyro, want["gyro"], rtol=SIX_DIGITS, atol=0)
        assert s.imu_rates[name] == pytest.approx(100.0)


def test_round_trip_metadata_keeps_unknown_fields(make_session: SessionFactory) -> None:
    extra = {"device_serial": "BP-0042", "calibration": {"mic_gain_db": [0.5, -1.0, 0.0]}}
    path = make_session(extra=extra, audio_offset_s=0.125)
    info = Session(path).info
    assert info == make_session.written[path].info
    assert dict(info.extra) == extra
    assert info.mic_names == list(MICS)
    assert info.imu("sacral") == ImuInfo("sacral", "S1")
    assert info.start == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    assert info.audio_offset_s == 0.125
    on_disk = json.loads((path / "session.json").read_text(encoding="utf-8"))
    assert on_disk["device_serial"] == "BP-0042"
    assert info.to_json() == on_disk


def test_writer_refuses_to_overwrite_a_session(session_dir: Path) -> None:
    before = (session_dir / "session.json").read_bytes()
    info = Session(session_dir).info
    with pytest.raises(BadInput, match="already exists"):
        SessionWriter(session_dir, info, sr=8000)
    assert (session_dir / "session.json").read_bytes() == before


# --- units and axes ----------------------------------------------------------------------


def test_units_g_and_deg_per_s_read_back_in_si(tmp_path: Path) -> None:
    folder = _write_by_hand(
        tmp_path / "s", {"acc_unit": "g", "gyro_unit": "deg/s"},
        "t,ax,ay,az,gx,gy,gz\n"
        "0,0,0,1,90,0,-180\n"
        "0.01,0.5,-2,1,0,45,0\n"
        "0.02,0,0,0,1,0,0\n",
    )
    block = Session(folder).read_imu("imu")
    np.testing.assert_allclose(block.t, [0.0, 0.01, 0.02])
    np.testing.assert_allclose(
        block.acc, [[0, 0, 9.80665], [4.903325, -19.6133, 9.80665], [0, 0, 0]], rtol=1e-12)
    np.testing.assert_allclose(
        block.gyro, [[math.pi / 2, 0, -math.pi], [0, math.pi / 4, 0], [math.pi / 180, 0, 0]],
        rtol=1e-12)


def test_axes_remap_sensor_to_body(tmp_path: Path) -> None:
    folder = _write_by_hand(
        tmp_path / "s", {"axes": "x=forward,y=left,z=up"},
        "t,ax,ay,az,gx,gy,gz\n"
        "0,1,0,0,0,0,2\n"
        "0.01,0,1,0,3,0,0\n"
        "0.02,0,0,9.5,0,-4,0\n",
    )
    block = Session(folder).read_imu("imu")
    np.testing.assert_array_equal(block.acc, [[0, 1, 0], [-1, 0, 0], [0, 0, 9.5]])
    np.testing.assert_array_equal(block.gyro, [[0, 0, 2], [0, 3, 0], [4, 0, 0]])


def test_axes_and_units_together(tmp_path: Path) -> None:
    folder = _write_by_hand(
        tmp_path / "s", {"axes": "x=up,y=right,z=forward", "acc_unit": "g",
                         "gyro_unit": "deg/s"},
        "t,ax,ay,az,gx,gy,gz\n0,1,0,0,0,0,180\n0.01,0,0.5,0,0,90,0\n",
    )
    block = Session(folder).read_imu("imu")
    np.testing.assert_allclose(block.acc, [[0, 0, GRAVITY], [GRAVITY / 2, 0, 0]], rtol=1e-12)
    np.testing.assert_allclose(block.gyro, [[0, math.pi, 0], [math.pi / 2, 0, 0]], rtol=1e-12)


def test_mounting_is_calibrate_unless_declared_exact(tmp_path: Path) -> None:
    rows = "t,ax,ay,az,gx,gy,gz\n0,0,0,9.8,0,0,0\n0.01,0,0,9.8,0,0,0\n"
    plain = Session(_write_by_hand(tmp_path / "plain", {}, rows)).info
    exact = Session(_write_by_hand(tmp_path / "exact", {"mounting": "exact"}, rows)).info
    assert plain.imu("imu").mounting == "calibrate"
    assert exact.imu("imu").mounting == "exact"
    assert exact.to_json()["imus"][0]["mounting"] == "exact"
    assert "mounting" not in plain.to_json()["imus"][0]
    with SessionWriter(tmp_path / "copy", exact, sr=8000) as w:
        w.write_audio(np.zeros((800, 1)))
        w.write_imu("imu", np.array([0.0, 0.01]), np.zeros((2, 3)), np.zeros((2, 3)))
    assert Session(tmp_path / "copy").info.imu("imu") == exact.imu("imu")


@pytest.mark.parametrize(("value", "reason"), [
    ("declared", "unknown mounting 'declared'; use one of calibrate, exact"),
    ("Exact", "unknown mounting 'Exact'; use one of calibrate, exact"),
    (True, "must be a string, not True"),
    (None, "must be a string, not None"),
])
def test_a_bad_mounting_is_refused(tmp_path: Path, value: object, reason: str) -> None:
    folder = _write_by_hand(tmp_path / "s", {"mounting": value},
                            "t,ax,ay,az,gx,gy,gz\n0,0,0,9.8,0,0,0\n")
    with pytest.raises(BadInput) as err:
        Session(folder)
    assert str(err.value) == f"{folder / 'session.json'}: field imus[0].mounting: {reason}"


def test_writer_reader_mirror_with_other_units_and_axes(make_session: SessionFactory) -> None:
    path = make_session(acc_unit="g", gyro_unit="deg/s", axes="x=left,y=down,z=backward")
    written = make_session.written[path]
    on_disk = pd.read_csv(path / "imu_thoracic.csv")
    # Gravity is body up, i.e. sensor -y, written in g.
    assert on_disk.loc[0, "ay"] == pytest.approx(-1.0, abs=0.05)
    assert on_disk.loc[0, "az"] == pytest.approx(0.0, abs=0.05)
    s = Session(path)
    for name in ("thoracic", "sacral"):
        block = s.read_imu(name)
        np.testing.assert_allclose(block.acc, written.imu[name]["acc"], rtol=SIX_DIGITS, atol=0)
        np.testing.assert_allclose(block.gyro, written.imu[name]["gyro"], rtol=SIX_DIGITS, atol=0)


def test_parse_axes_default_is_identity() -> None:
    np.testing.assert_array_equal(parse_axes(DEFAULT_AXES), np.eye(3))
    np.testing.assert_array_equal(parse_axes(" Z=Up , x=RIGHT,y=forward "), np.eye(3))
    np.testing.assert_array_equal(parse_axes("x=right,y=back,z=down")[:, 1], [0, -1, 0])


@pytest.mark.parametrize("axes", [
    "x=right,y=forward,z=down",      # left-handed
    "x=left,y=forward,z=up",         # left-handed
    "x=right,x=forward,z=up",        # x twice
    "x=right,y=right,z=up",          # one direction twice
    "x=right,y=left,z=up",           # two axes on one line
    "x=right,y=forward",             # z missing
    "x=right,y=forward,z=up,w=down", # an axis that does not exist
    "x=sideways,y=forward,z=up",     # not a direction
    "",
])
def test_parse_axes_rejects(axes: str) -> None:
    with pytest.raises(BadInput) as err:
        parse_axes(axes, where=("s/session.json", "imus[0].axes"))
    assert str(err.value).startswith("s/session.json: field imus[0].axes: ")


@given(st.sampled_from(ALL_AXES), st.randoms(use_true_random=False))
def test_parse_axes_property(case: tuple[str, np.ndarray], rnd) -> None:
    axes, expected = case
    parts = axes.split(",")
    rnd.shuffle(parts)
    text = ",".join(parts)
    if round(np.linalg.det(expected)) == 1:
        m = parse_axes(text)
        np.testing.assert_array_equal(m, expected)
        np.testing.assert_allclose(m.T @ m, np.eye(3), atol=1e-12)
        assert np.linalg.det(m) == pytest.approx(1.0)
    else:
        with pytest.raises(BadInput, match="right-handed"):
            parse_axes(text)


def test_there_are_24_right_handed_assignments() -> None:
    assert len(ALL_AXES) == 48 and len(RIGHT_HANDED) == 24


@settings(max_examples=30, deadline=None)
@given(axes=st.sampled_from(RIGHT_HANDED), acc_unit=st.sampled_from(sorted(ACC_UNITS)),
       gyro_unit=st.sampled_from(sorted(GYRO_UNITS)))
def test_writer_reader_round_trip_is_identity(axes: str, acc_unit: str, gyro_unit: str) -> None:
    info = SessionInfo("S01", "prop", datetime(2026, 1, 1, tzinfo=UTC), (MicInfo("L1"),),
                       (ImuInfo("imu", "L2", acc_unit, gyro_unit, axes),))
    t = np.arange(40) / 50.0
    data = synth_imu(t, phase=0.3)
    with tempfile.TemporaryDirectory() as tmp:
        with SessionWriter(Path(tmp) / "s", info, sr=4000) as w:
            w.write_audio(synth_audio(4000, 0.05, 1))
            w.write_imu("imu", t, data["acc"], data["gyro"])
        block = Session(Path(tmp) / "s").read_imu("imu")
    np.testing.assert_allclose(block.t, t, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(block.acc, data["acc"], rtol=SIX_DIGITS, atol=0)
    np.testing.assert_allclose(block.gyro, data["gyro"], rtol=SIX_DIGITS, atol=0)


# --- chunked reading ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One valid session for the property tests (hypothesis runs many examples per test)."""
    return SessionFactory(tmp_path_factory.mktemp("shared"))(side_tables=False)


@settings(max_examples=40, deadline=None)
@given(chunk_rows=st.integers(1, 400))
def test_numeric_chunks_any_chunk_size(shared_session: Path, chunk_rows: int) -> None:
    file = shared_session / "imu_sacral.csv"
    whole = pd.read_csv(file, dtype=float)
    chunks = list(numeric_chunks(file, IMU_COLUMNS, chunk_rows=chunk_rows))
    lines = [line for line, _ in chunks]
    sizes = [len(frame) for _, frame in chunks]
    assert all(0 < n <= chunk_rows for n in sizes) and sum(sizes) == len(whole) == 300
    assert lines == [2 + sum(sizes[:i]) for i in range(len(sizes))]
    joined = pd.concat([frame for _, frame in chunks], ignore_index=True)
    pd.testing.assert_frame_equal(joined, whole)


@settings(max_examples=40, deadline=None)
@given(chunk_rows=st.integers(1, 400))
def test_imu_chunks_any_chunk_size(shared_session: Path, chunk_rows: int) -> None:
    s = Session(shared_session)
    whole = s.read_imu("thoracic")
    chunks = list(s.imu_chunks("thoracic", chunk_rows=chunk_rows))
    assert [c.start_index for c in chunks] == list(np.cumsum([0] + [c.n for c in chunks[:-1]]))
    np.testing.assert_array_equal(np.concatenate([c.t for c in chunks]), whole.t)
    np.testing.assert_array_equal(np.concatenate([c.acc for c in chunks]), whole.acc)
    np.testing.assert_array_equal(np.concatenate([c.gyro for c in chunks]), whole.gyro)


@settings(max_examples=40, deadline=None)
@given(chunk_rows=st.integers(1, 400), row=st.integers(1, 299),
       column=st.sampled_from(IMU_COLUMNS), cell=st.sampled_from(["x", "nan", "inf", ""]))
def test_bad_cell_line_does_not_depend_on_chunk_size(
        shared_session: Path, chunk_rows: int, row: int, column: str, cell: str) -> None:
    lines = (shared_session / "imu_sacral.csv").read_text().splitlines()
    header = lines[0].split(",")
    values = lines[row + 1].split(",")
    values[header.index(column)] = cell
    lines[row + 1] = ",".join(values)
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "imu_sacral.csv"
        file.write_text("\n".join(lines) + "\n")
        with pytest.raises(BadInput) as err:
            for _ in numeric_chunks(file, IMU_COLUMNS, chunk_rows=chunk_rows):
                pass
    assert f": line {row + 2}, field {column}: " in str(err.value)


@settings(max_examples=40, deadline=None)
@given(chunk_rows=st.integers(1, 400), row=st.integers(1, 299), repeat=st.booleans())
def test_time_going_back_found_across_chunks(
        shared_session: Path, chunk_rows: int, row: int, repeat: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "s"
        shutil.copytree(shared_session, folder)
        s = Session(folder)
        file = s.imu_path("sacral")
        lines = file.read_text().splitlines()
        previous = lines[row].split(",")[0]
        earlier = previous if repeat else repr(float(previous) - 0.005)
        values = lines[row + 1].split(",")
        values[0] = earlier
        lines[row + 1] = ",".join(values)
        file.write_text("\n".join(lines) + "\n")
        with pytest.raises(BadInput) as err:
            for _ in s.imu_chunks("sacral", chunk_rows=chunk_rows):
                pass
    assert f": line {row + 2}, field t: " in str(err.value)
    assert ("repeats" if repeat else "goes back") in str(err.value)


# --- validate and side tables ------------------------------------------------------------


def test_validate_good_session(session_dir: Path) -> None:
    s = Session(session_dir)
    s.validate()
    assert s.info.mic_names == ["T10", "L1", "L4"]
    assert [(i.name, i.level) for i in s.info.imus] == [("thoracic", "T12"), ("sacral", "S1")]
    assert s.imu_columns == {"thoracic": list(IMU_COLUMNS), "sacral": list(IMU_COLUMNS)}


def test_truth_reader(session_dir: Path) -> None:
    truth = Session(session_dir).truth()
    assert truth is not None
    assert list(truth.columns) == ["t", "level", "kind"]
    assert truth["t"].tolist() == [0.5, 1.25, 2.75]
    assert truth["level"].tolist() == ["T10", "L1", "L4"]
    assert truth["kind"].tolist() == ["cavitation", "snap", "readjustment"]


def test_motion_truth_reader(session_dir: Path) -> None:
    motion = Session(session_dir).motion_truth()
    assert motion is not None
    assert list(motion.columns) == ["t", "flexion_deg", "lateral_deg", "twist_deg", "context"]
    assert motion["flexion_deg"].dtype == np.float64
    assert motion["twist_deg"].tolist() == [0.0, 20.0, -4.0]
    assert motion["context"].tolist() == ["static", "twist", "stretch"]


def test_symptoms_reader(session_dir: Path) -> None:
    symptoms = Session(session_dir).symptoms()
    assert symptoms is not None
    assert symptoms["time"].tolist() == [pd.Timestamp("2026-11-20T09:30:30Z"),
                                         pd.Timestamp("2026-11-20T08:31:00Z")]
    assert symptoms["pain"].tolist() == [3.0, 7.5]
    assert symptoms["stiffness"].tolist() == [0.0, 10.0]
    assert symptoms["numbness"].tolist() == [0, 1]
    assert symptoms["weakness"].dtype.kind == "i"
    assert symptoms["note"].tolist() == ["after lifting", ""]


def test_side_tables_are_optional(make_session: SessionFactory) -> None:
    s = Session(make_session(side_tables=False))
    s.validate()
    assert s.truth() is None and s.motion_truth() is None and s.symptoms() is None


def test_truth_may_carry_extra_columns(session_dir: Path) -> None:
    (session_dir / "truth.csv").write_text(
        "t,level,kind,annotator\n0.5,T10,cavitation,AB\n", encoding="utf-8")
    truth = Session(session_dir).truth()
    assert truth is not None and truth["annotator"].tolist() == ["AB"]


def test_rate_bounds_are_inclusive(make_session: SessionFactory) -> None:
    for sr, imu_rate in ((4000, 50.0), (192000, 2000.0)):
        s = Session(make_session(f"edge{sr}", sr=sr, imu_rate=imu_rate, duration_s=1.0))
        s.validate()
        assert s.audio.sr == sr
        assert s.imu_rates["sacral"] == pytest.approx(imu_rate)
    for name, imu_rate in (("slow", 49.0), ("fast", 2010.0)):
        with pytest.raises(BadInput, match="is outside the 50-2000 Hz accepted") as err:
            Session(make_session(name, imu_rate=imu_rate, duration_s=1.0))
        assert err.value.where == "field t"


def test_imu_only_sessions_list_no_mics_and_hold_no_wav(tmp_path: Path) -> None:
    import json
    import shutil

    from backpop_sense.errors import BadInput

    sample = Path(__file__).resolve().parent.parent / "data" / "samples" / "S01" / "2026-11-02a"
    folder = tmp_path / "s"
    shutil.copytree(sample, folder)
    doc = json.loads((folder / "session.json").read_text())
    doc["mics"] = []
    (folder / "session.json").write_text(json.dumps(doc))
    with pytest.raises(BadInput, match="lists no mics, but the folder holds a mic.wav"):
        Session(folder)
    (folder / "mic.wav").unlink()
    s = Session(folder)
    assert s.audio is None and s.duration_s == pytest.approx(50.0, abs=0.02)
    doc["imus"] = []
    (folder / "session.json").write_text(json.dumps(doc))
    with pytest.raises(BadInput, match="field mics: must list at least one mic"):
        Session(folder)


@settings(max_examples=60, deadline=None)
@given(frames=st.integers(1, 80), run=st.tuples(st.integers(0, 79), st.integers(1, 20)),
       value=st.sampled_from([np.nan, np.inf, -np.inf]), block=st.integers(1, 17),
       later=st.booleans())
def test_non_finite_float_samples_are_named_by_their_first_run(
        tmp_path_factory: pytest.TempPathFactory, frames: int, run: tuple[int, int],
        value: float, block: int, later: bool) -> None:
    first = min(run[0], frames - 1)
    end = min(first + run[1], frames)
    data = np.zeros((frames, 2), dtype=np.float32)
    data[first:end, 1] = value
    if later and end + 1 < frames:
        data[end + 1, 0] = np.nan  # a second run, after the first: not the one named
    path = tmp_path_factory.mktemp("float") / "mic.wav"
    sf.write(str(path), data, 8000, subtype="FLOAT")
    with pytest.raises(BadInput) as err:
        check_finite_wav(path, 8000, block_frames=block)
    assert err.value.where == f"samples {first}-{end - 1}"
    assert f"t = {first / 8000:.3f}-{end / 8000:.3f} s" in err.value.reason
