"""Bad input: a corpus of malformed sessions, each one mutation away from a good one.

Every case must raise :class:`BadInput` naming the file at fault and, for row-level faults,
the exact line (computed from the mutation); the CLI must turn each into exit status 2 and
one line on stderr, with no traceback, and leave the session's files as they were.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from conftest import SessionFactory

from backpop_sense.errors import BadInput
from backpop_sense.session import Session

BACKPOP = Path(sys.executable).parent / "backpop"


@dataclass(frozen=True)
class Case:
    """One mutation of the good session and the error it must cause."""

    id: str
    mutate: Callable[[Path], None]
    file: str
    """The file at fault, relative to the session folder."""
    where: str | None
    """The exact line/field the error must name, or None when the whole file is at fault."""


# --- mutations ---------------------------------------------------------------------------


def _lines(file: Path) -> list[str]:
    return file.read_text(encoding="utf-8").splitlines()


def _write_lines(file: Path, lines: list[str]) -> None:
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")


def set_cell(file: str, row: int, column: str, value: str) -> Callable[[Path], None]:
    """Set data row ``row`` (0-based; the header is line 1, so this is line row + 2)."""
    def mutate(path: Path) -> None:
        lines = _lines(path / file)
        header = lines[0].split(",")
        cells = lines[row + 1].split(",")
        cells[header.index(column)] = value
        lines[row + 1] = ",".join(cells)
        _write_lines(path / file, lines)
    return mutate


def copy_t(file: str, row: int, from_row: int) -> Callable[[Path], None]:
    """Give data row ``row`` the time of data row ``from_row``."""
    def mutate(path: Path) -> None:
        lines = _lines(path / file)
        cells = lines[row + 1].split(",")
        cells[0] = lines[from_row + 1].split(",")[0]
        lines[row + 1] = ",".join(cells)
        _write_lines(path / file, lines)
    return mutate


def edit_columns(file: str, edit: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    """Apply ``edit`` to the cells of every line, header included."""
    def mutate(path: Path) -> None:
        lines = _lines(path / file)
        _write_lines(path / file, [",".join(edit(line.split(","))) for line in lines])
    return mutate


def append_to_line(file: str, line: int, text: str) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        lines = _lines(path / file)
        lines[line - 1] += text
        _write_lines(path / file, lines)
    return mutate


def delete(file: str) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        (path / file).unlink()
    return mutate


def replace_bytes(file: str, data: bytes) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        (path / file).write_bytes(data)
    return mutate


def header_only(file: str) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        _write_lines(path / file, _lines(path / file)[:1])
    return mutate


def truncate(file: str, n_bytes: int) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        data = (path / file).read_bytes()
        (path / file).write_bytes(data[:-n_bytes])
    return mutate


def rewrite_wav(*, channels: int = 3, sr: int = 8000, subtype: str = "PCM_16",
                frames: int = 8000) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        data = np.zeros((frames, channels), dtype=np.float32)
        sf.write(str(path / "mic.wav"), data, sr, subtype=subtype)
    return mutate


def wav_header_rate(sr: int) -> Callable[[Path], None]:
    """Declare ``sr`` Hz in mic.wav's header (and the byte rate to match), samples unchanged."""
    def mutate(path: Path) -> None:
        data = bytearray((path / "mic.wav").read_bytes())
        fmt = data.index(b"fmt ") + 8
        channels, _, _, block = struct.unpack_from("<HIIH", data, fmt + 2)
        struct.pack_into("<II", data, fmt + 4, sr, (sr * block) & 0xFFFFFFFF)
        assert channels == 3
        (path / "mic.wav").write_bytes(bytes(data))
    return mutate


def float_wav_with(value: float, frames: slice) -> Callable[[Path], None]:
    """mic.wav rewritten as 32-bit float, ``value`` in mic 2 at ``frames``."""
    def mutate(path: Path) -> None:
        data, sr = sf.read(str(path / "mic.wav"), dtype="float32", always_2d=True)
        data[frames, 1] = value
        sf.write(str(path / "mic.wav"), data, sr, subtype="FLOAT")
    return mutate


def edit_json(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        doc = json.loads((path / "session.json").read_text(encoding="utf-8"))
        edit(doc)
        (path / "session.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return mutate


def insert_json_line(index: int, text: str) -> Callable[[Path], None]:
    """Insert ``text`` as line ``index + 1`` of session.json."""
    def mutate(path: Path) -> None:
        lines = _lines(path / "session.json")
        lines.insert(index, text)
        _write_lines(path / "session.json", lines)
    return mutate


def slow_imu(file: str, factor: float) -> Callable[[Path], None]:
    """Stretch every ``t`` of the IMU file by ``factor`` (100 Hz / factor)."""
    def mutate(path: Path) -> None:
        lines = _lines(path / file)
        out = lines[:1]
        for line in lines[1:]:
            cells = line.split(",")
            cells[0] = repr(float(cells[0]) * factor)
            out.append(",".join(cells))
        _write_lines(path / file, out)
    return mutate


def _set(*keys: str | int, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


def _pop(key: str) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        del doc[key]
    return edit


def _not_utf8(file: str, row: int) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        lines = (path / file).read_bytes().split(b"\n")
        lines[row + 1] = lines[row + 1].replace(b",", b",\xff", 1)
        (path / file).write_bytes(b"\n".join(lines))
    return mutate


IMU = "imu_thoracic.csv"
SACRAL = "imu_sacral.csv"
CORPUS = [
    Case("missing-session-json", delete("session.json"), "session.json", None),
    Case("session-json-not-utf8", replace_bytes("session.json", b"\xff\xfe{}"),
         "session.json", None),
    Case("missing-mic-wav", delete("mic.wav"), "mic.wav", None),
    Case("missing-imu-csv", delete(SACRAL), SACRAL, None),
    Case("truncated-wav", truncate("mic.wav", 1001), "mic.wav", "data chunk"),
    Case("wav-header-only", truncate("mic.wav", 3 * 2 * 24000 + 10), "mic.wav", "data chunk"),
    Case("wav-not-audio", replace_bytes("mic.wav", b"these are not the samples" * 20),
         "mic.wav", None),
    Case("wav-2-channels-3-mics", rewrite_wav(channels=2), "mic.wav", "channels"),
    Case("wav-rate-3000", rewrite_wav(sr=3000), "mic.wav", "sample rate"),
    Case("wav-rate-2-ghz", wav_header_rate(2_000_000_000), "mic.wav", "sample rate"),
    Case("wav-rate-384-khz", rewrite_wav(sr=384000), "mic.wav", "sample rate"),
    Case("wav-float-nan", float_wav_with(np.nan, slice(12000, 12010)), "mic.wav",
         "samples 12000-12009"),
    Case("wav-float-inf", float_wav_with(np.inf, slice(23999, 24000)), "mic.wav",
         "samples 23999-23999"),
    Case("wav-8-bit", rewrite_wav(subtype="PCM_U8"), "mic.wav", "format"),
    Case("wav-no-frames", rewrite_wav(frames=0), "mic.wav", "data chunk"),
    Case("wav-empty-file", replace_bytes("mic.wav", b""), "mic.wav", None),
    Case("t-goes-back", copy_t(IMU, 150, 140), IMU, "line 152, field t"),
    Case("t-repeated", copy_t(IMU, 61, 60), IMU, "line 63, field t"),
    Case("t-negative", set_cell(SACRAL, 0, "t", "-0.01"), SACRAL, "line 2, field t"),
    Case("missing-column", edit_columns(SACRAL, lambda c: c[:-1]), SACRAL, "line 1"),
    Case("extra-column", edit_columns(SACRAL, lambda c: [*c, "temp" if c[0] == "t" else "21"]),
         SACRAL, "line 1"),
    Case("columns-swapped", edit_columns(SACRAL, lambda c: [c[0], c[2], c[1], *c[3:]]),
         SACRAL, "line 1"),
    Case("non-numeric-cell", set_cell(IMU, 77, "ax", "abc"), IMU, "line 79, field ax"),
    Case("nan-cell", set_cell(SACRAL, 10, "gy", "NaN"), SACRAL, "line 12, field gy"),
    Case("inf-cell", set_cell(SACRAL, 250, "gz", "inf"), SACRAL, "line 252, field gz"),
    Case("empty-cell", set_cell(IMU, 200, "az", ""), IMU, "line 202, field az"),
    Case("row-with-extra-cell", append_to_line(IMU, 33, ",1.5"), IMU, "line 33"),
    Case("unclosed-quote", set_cell(IMU, 40, "ax", '"1.0'), IMU, "line 42"),
    Case("csv-not-utf8", _not_utf8(SACRAL, 280), SACRAL, "line 282"),
    Case("empty-csv", replace_bytes(SACRAL, b""), SACRAL, "line 1"),
    Case("header-only-csv", header_only(SACRAL), SACRAL, "line 2"),
    Case("imu-rate-20-hz", slow_imu(SACRAL, 5.0), SACRAL, "field t"),
    Case("imu-rate-5-khz", slow_imu(SACRAL, 0.02), SACRAL, "field t"),
    Case("imu-row-at-1e9-s", set_cell(SACRAL, 299, "t", "1e9"), SACRAL, "line 301, field t"),
    Case("imu-row-past-the-audio", set_cell(IMU, 299, "t", "63.5"), IMU, "line 301, field t"),
    Case("imu-acc-in-milli-g", set_cell(SACRAL, 20, "az", "9806.65"), SACRAL,
         "line 22, field az"),
    Case("imu-acc-minus-1e6", set_cell(IMU, 3, "ax", "-1e6"), IMU, "line 5, field ax"),
    Case("imu-gyro-100-rad-s", set_cell(SACRAL, 42, "gy", "100"), SACRAL, "line 44, field gy"),
    Case("imu-gyro-1e300", set_cell(IMU, 0, "gz", "1e300"), IMU, "line 2, field gz"),
    Case("unknown-acc-unit", edit_json(_set("imus", 0, "acc_unit", value="mg")),
         "session.json", "field imus[0].acc_unit"),
    Case("unknown-gyro-unit", edit_json(_set("imus", 1, "gyro_unit", value="rpm")),
         "session.json", "field imus[1].gyro_unit"),
    Case("subject-path", edit_json(_set("subject", value="../x")), "session.json", "field subject"),
    Case("imu-name-path", edit_json(_set("imus", 0, "name", value="../../etc")),
         "session.json", "field imus[0].name"),
    Case("invalid-json", insert_json_line(3, '  "oops" 1,'), "session.json", "line 4"),
    Case("json-not-object", replace_bytes("session.json", b"[1, 2, 3]"), "session.json", None),
    Case("unknown-format", edit_json(_set("format", value="backpop-session/2")),
         "session.json", "field format"),
    Case("missing-subject", edit_json(_pop("subject")), "session.json", "field subject"),
    Case("start-not-iso", edit_json(_set("start", value="last tuesday")),
         "session.json", "field start"),
    Case("offset-minus-1e9", edit_json(_set("audio_offset_s", value=-1e9)), "session.json",
         "field audio_offset_s"),
    Case("offset-1e300", edit_json(_set("audio_offset_s", value=1e300)), "session.json",
         "field audio_offset_s"),
    Case("offset-longer-than-the-audio", edit_json(_set("audio_offset_s", value=3.0)),
         "session.json", "field audio_offset_s"),
    Case("offset-not-number", edit_json(_set("audio_offset_s", value="0.5")),
         "session.json", "field audio_offset_s"),
    Case("mic-not-a-level", edit_json(_set("mics", 1, "name", value="L9")),
         "session.json", "field mics[1].name"),
    Case("mics-out-of-order", edit_json(_set("mics", value=[{"name": n} for n in
                                                             ("L1", "T10", "L4")])),
         "session.json", "field mics"),
    Case("imu-level-not-a-level", edit_json(_set("imus", 1, "level", value="sacrum")),
         "session.json", "field imus[1].level"),
    Case("bad-axes", edit_json(_set("imus", 1, "axes", value="x=right,y=forward,z=down")),
         "session.json", "field imus[1].axes"),
    Case("unparseable-axes", edit_json(_set("imus", 0, "axes", value="xyz")),
         "session.json", "field imus[0].axes"),
    Case("duplicate-imu-names", edit_json(_set("imus", 1, "name", value="thoracic")),
         "session.json", "field imus"),
    Case("unit-is-a-list", edit_json(_set("imus", 0, "acc_unit", value=["g"])),
         "session.json", "field imus[0].acc_unit"),
    Case("unit-is-an-object", edit_json(_set("imus", 1, "gyro_unit", value={"unit": "rad/s"})),
         "session.json", "field imus[1].gyro_unit"),
    Case("imus-is-a-number", edit_json(_set("imus", value=2)), "session.json", "field imus"),
    Case("axes-is-a-number", edit_json(_set("imus", 0, "axes", value=1)),
         "session.json", "field imus[0].axes"),
    Case("unknown-mounting", edit_json(_set("imus", 1, "mounting", value="declared")),
         "session.json", "field imus[1].mounting"),
    Case("mounting-is-a-bool", edit_json(_set("imus", 0, "mounting", value=True)),
         "session.json", "field imus[0].mounting"),
    Case("strap-is-a-list", edit_json(_set("strap", value=["v1"])), "session.json",
         "field strap"),
    Case("start-year-26", edit_json(_set("start", value="0026-11-20T09:30:00Z")),
         "session.json", "field start"),
    Case("start-year-2200", edit_json(_set("start", value="2200-01-01T00:00:00Z")),
         "session.json", "field start"),
    Case("symptoms-year-1", set_cell("symptoms.csv", 0, "time", "0001-01-01T00:00:00Z"),
         "symptoms.csv", "line 2, field time"),
    Case("truth-unknown-kind", set_cell("truth.csv", 1, "kind", "crack"),
         "truth.csv", "line 3, field kind"),
    Case("truth-level-not-a-level", set_cell("truth.csv", 2, "level", "L7"),
         "truth.csv", "line 4, field level"),
    Case("truth-t-not-number", set_cell("truth.csv", 0, "t", "soon"),
         "truth.csv", "line 2, field t"),
    Case("truth-t-1e300", set_cell("truth.csv", 1, "t", "1e300"), "truth.csv", "line 3, field t"),
    Case("truth-t-before-the-start", set_cell("truth.csv", 0, "t", "-5"), "truth.csv",
         "line 2, field t"),
    Case("motion-truth-angle-720", set_cell("motion_truth.csv", 1, "flexion_deg", "720"),
         "motion_truth.csv", "line 3, field flexion_deg"),
    Case("offset-400-digits", edit_json(_set("audio_offset_s", value=10 ** 400)),
         "session.json", "field audio_offset_s"),
    Case("motion-truth-unknown-context", set_cell("motion_truth.csv", 2, "context", "dance"),
         "motion_truth.csv", "line 4, field context"),
    Case("symptoms-pain-11", set_cell("symptoms.csv", 1, "pain", "11"),
         "symptoms.csv", "line 3, field pain"),
    Case("symptoms-flag-2", set_cell("symptoms.csv", 0, "tingling", "2"),
         "symptoms.csv", "line 2, field tingling"),
    Case("symptoms-bad-time", set_cell("symptoms.csv", 1, "time", "yesterday"),
         "symptoms.csv", "line 3, field time"),
    Case("symptoms-pain-minus-1", set_cell("symptoms.csv", 0, "pain", "-1"),
         "symptoms.csv", "line 2, field pain"),
    Case("symptoms-stiffness-nan", set_cell("symptoms.csv", 1, "stiffness", "nan"),
         "symptoms.csv", "line 3, field stiffness"),
    Case("symptoms-note-50-kb", set_cell("symptoms.csv", 1, "note", "x" * 50_000),
         "symptoms.csv", "line 3, field note"),
    Case("symptoms-missing-column", edit_columns("symptoms.csv", lambda c: c[:2] + c[3:]),
         "symptoms.csv", "line 1"),
]
CASES = [pytest.param(case, id=case.id) for case in CORPUS]


def test_corpus_is_large_and_distinct() -> None:
    assert len(CORPUS) >= 18
    assert len({c.id for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CASES)
def test_bad_session_raises_bad_input(make_session: SessionFactory, case: Case) -> None:
    path = make_session()
    case.mutate(path)
    with pytest.raises(BadInput) as err:
        Session(path).validate()
    exc = err.value
    assert exc.file == str(path / case.file)
    assert exc.where == case.where
    assert exc.reason.strip()
    message = str(exc)
    assert case.file in message and "\n" not in message
    if case.where is not None:
        assert f"{path / case.file}: {case.where}: " in message


# --- the command line --------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@dataclass
class CliRun:
    path: Path
    result: subprocess.CompletedProcess[str]
    before: dict[str, tuple[bytes, int]]
    after: dict[str, tuple[bytes, int]]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CliRun]:
    """``backpop replay`` on every corpus session, run a few at a time to keep the suite fast."""
    factory = SessionFactory(tmp_path_factory.mktemp("corpus"))
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("BACKPOP_DEBUG", None)
    prepared = {}
    for case in CORPUS:
        path = factory(case.id)
        case.mutate(path)
        prepared[case.id] = (path, _snapshot(path))

    def run(case_id: str) -> CliRun:
        path, before = prepared[case_id]
        result = subprocess.run([str(BACKPOP), "replay", str(path), "--speed", "0"],
                                capture_output=True, text=True, timeout=120, env=env)
        return CliRun(path, result, before, _snapshot(path))

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(prepared, pool.map(run, prepared), strict=True))


@pytest.mark.parametrize("case", CASES)
def test_cli_reports_bad_input_in_one_line(cli_runs: dict[str, CliRun], case: Case) -> None:
    run = cli_runs[case.id]
    result = run.result
    assert "Traceback" not in result.stderr + result.stdout
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), result.stderr
    assert lines[0].startswith("backpop: error: ")
    assert str(run.path / case.file) in lines[0]
    if case.where is not None:
        assert f": {case.where}: " in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("case", CASES)
def test_cli_changes_no_input_file(cli_runs: dict[str, CliRun], case: Case) -> None:
    run = cli_runs[case.id]
    assert run.after.keys() == run.before.keys()
    for name, (data, mtime) in run.before.items():
        assert run.after[name][0] == data, f"{name} changed"
        assert run.after[name][1] == mtime, f"{name} was rewritten"


def test_a_blank_line_inside_the_data_is_named(make_session: SessionFactory) -> None:
    path = make_session()
    file = path / IMU
    lines = _lines(file)
    lines.insert(100, "")  # the blank line is line 101
    _write_lines(file, lines)
    with pytest.raises(BadInput) as err:
        Session(path).validate()
    assert err.value.where == "line 101"
    assert "blank line" in err.value.reason


@pytest.mark.parametrize("chunk_rows", [7, 64, 16384])
def test_blank_lines_at_the_end_are_harmless(make_session: SessionFactory,
                                             chunk_rows: int) -> None:
    path = make_session()
    file = path / IMU
    rows = len(_lines(file)) - 1
    file.write_text(file.read_text() + "\n\n")
    session = Session(path)
    chunks = session.imu_chunks("thoracic", chunk_rows=chunk_rows)
    assert sum(c.n for c in chunks) == rows


# --- byte-order marks, invisible characters, long values ------------------------------------

BOM = "\ufeff"


def test_a_byte_order_mark_is_accepted(make_session: SessionFactory) -> None:
    """Spreadsheets save UTF-8 with a byte-order mark: the tables and session.json read as
    without it."""
    plain = make_session("plain")
    marked = make_session("marked")
    for name in ("session.json", SACRAL, "symptoms.csv", "truth.csv", "motion_truth.csv"):
        (marked / name).write_text(BOM + (marked / name).read_text(encoding="utf-8"),
                                   encoding="utf-8")
    a, b = Session(plain), Session(marked)
    b.validate()
    assert a.info == b.info
    np.testing.assert_array_equal(a.read_imu("sacral").acc, b.read_imu("sacral").acc)
    assert a.symptoms().equals(b.symptoms())
    assert a.truth().equals(b.truth())
    assert a.motion_truth().equals(b.motion_truth())


@pytest.mark.parametrize(("header", "named"), [
    ("t\u200b,ax,ay,az,gx,gy,gz", "column 1 is 't\\u200b', not 't'"),
    ("t,ax,ay,az,gx,gy,g z", "column 7 is 'g z', not 'gz'"),
    ("t,ax,ay,az,gx,gy", "column gz is missing after 'gy'"),
    ("t,ax,ay,az,gx,gy,gz,mx,my,mz,temp", "column 11 ('temp') is one too many"),
])
def test_a_header_names_its_first_wrong_column(make_session: SessionFactory, header: str,
                                               named: str) -> None:
    """Never 'expected t,ax,...; found t,ax,...' with two lists that look the same."""
    path = make_session()
    lines = _lines(path / SACRAL)
    _write_lines(path / SACRAL, [header] + [line + ",0,0,0,0" * header.endswith("temp")
                                            for line in lines[1:]])
    with pytest.raises(BadInput) as err:
        Session(path)
    assert err.value.where == "line 1"
    assert err.value.reason.endswith(named), err.value.reason


def test_a_utf16_table_is_named_as_such(make_session: SessionFactory) -> None:
    path = make_session()
    (path / SACRAL).write_bytes((path / SACRAL).read_text().encode("utf-16"))
    with pytest.raises(BadInput) as err:
        Session(path)
    assert err.value.where == "line 1" and "UTF-16" in err.value.reason


def test_a_50_mb_cell_is_not_echoed(make_session: SessionFactory) -> None:
    path = make_session()
    set_cell(IMU, 5, "ay", "9" * 10 + "x" * 50_000_000)(path)
    with pytest.raises(BadInput) as err:
        Session(path).validate()
    assert err.value.where == "line 7, field ay"
    assert len(str(err.value)) < 300
    assert "'9999999999xxxx" in err.value.reason


def test_times_going_back_are_plain_numbers(make_session: SessionFactory) -> None:
    path = make_session()
    set_cell(IMU, 100, "t", "0.5")(path)
    with pytest.raises(BadInput) as err:
        Session(path).validate()
    assert err.value.reason == "t must be strictly increasing; 0.5 goes back in time"


def test_imu_bounds_are_in_the_declared_unit(make_session: SessionFactory) -> None:
    """A body-worn IMU measures up to +-64 g and +-4000 deg/s: 70 g is refused in g, 2.5 g
    accepted, and the bound is said in the file's unit."""
    path = make_session(acc_unit="g", gyro_unit="deg/s")
    set_cell(SACRAL, 8, "ax", "2.5")(path)
    set_cell(SACRAL, 9, "gx", "-3999")(path)
    Session(path).validate()
    set_cell(SACRAL, 10, "ay", "70")(path)
    with pytest.raises(BadInput) as err:
        Session(path).validate()
    assert err.value.where == "line 12, field ay"
    assert err.value.reason.startswith("70 g is beyond the +-64 g a body-worn IMU measures")


def test_the_store_checks_diary_values_as_the_reader_does(tmp_path: Path) -> None:
    """A library call adding entries gets the error the diary file would: the field named."""
    import pandas as pd

    from backpop_sense.diary import DIARY_COLUMNS
    from backpop_sense.store import Store

    good = {"time": "2026-11-20T09:30:00Z", "pain": 3, "stiffness": 0, "numbness": 0,
            "tingling": 0, "weakness": 0, "swelling": 0, "bruising": 0, "trauma": 0, "note": ""}
    bad = [({"pain": 11}, "entry 2, field pain", "11 is outside the 0-10 scale"),
           ({"trauma": 0.5}, "entry 2, field trauma", "0.5 must be 0 (absent) or 1 (present)"),
           ({"note": "y" * 3000}, "entry 2, field note",
            "3000 characters long; a note holds at most 2000")]
    with Store(tmp_path / "s.db") as store:
        for change, where, reason in bad:
            entries = pd.DataFrame([good, {**good, **change}], columns=list(DIARY_COLUMNS))
            with pytest.raises(BadInput) as err:
                store.add_diary("S01", entries, "app")
            assert (err.value.file, err.value.where, err.value.reason) == ("app", where, reason)
        assert not store.has_subject("S01")


@pytest.mark.parametrize(("simulation", "where"), [
    ("fell", "field simulation"),
    ({"falls_s": 12.5}, "field simulation.falls_s"),
    ({"falls_s": [1.0], "catches_s": [0.5, "soon"]}, "field simulation.catches_s[1]"),
    ({"catches_s": [1e300]}, "field simulation.catches_s[0]"),
])
def test_evaluate_checks_the_simulated_events(make_session: SessionFactory, simulation: Any,
                                              where: str) -> None:
    """``backpop evaluate`` scores catches and falls against session.json's simulation: a
    damaged one is a line naming the field, from the library call and the command alike."""
    from backpop_sense.evaluate import simulated_events

    path = make_session(extra={"simulation": simulation})
    session = Session(path)
    with pytest.raises(BadInput) as err:
        simulated_events(session.info.extra, path / "session.json", session.duration_s)
    assert err.value.where == where
    run = subprocess.run([str(BACKPOP), "evaluate", str(path), "--json"], capture_output=True,
                         text=True)
    assert run.returncode == 2
    assert run.stderr == f"backpop: error: {err.value}\n"


@pytest.mark.parametrize(("args", "named"), [
    (("replay", "--speed", "abc", "x"), "backpop replay: Invalid value for '--speed'"),
    (("nosuch",), "No such command 'nosuch'"),
    (("replay",), "backpop replay: Missing argument 'session'"),
    (("diary", "add"), "backpop diary add: Missing argument 'subject'"),
])
def test_a_usage_error_is_one_line_naming_the_command(args: tuple[str, ...], named: str) -> None:
    result = subprocess.run([str(BACKPOP), *args], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and len(lines[0]) < 300, result.stderr
