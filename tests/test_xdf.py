"""XDF files read back: a strap's streams, as :mod:`backpop_sense.sources.lsl` describes them,
in files written by the tests' own XDF writer (``xdf_writer.py``) and read with pyxdf.

The round trip over a real LSL stack (outlets recorded by inlets) is in test_lsl.py; here
the files are written straight from a session, so that each defect is made on purpose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pylsl
import pytest
from xdf_writer import XdfStream, write_xdf

from backpop_sense.errors import BadInput
from backpop_sense.session import Session
from backpop_sense.sources.lsl import stream_infos
from backpop_sense.sources.xdf import convert, read_xdf

BACKPOP = Path(sys.executable).parent / "backpop"
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "samples" / "S02" / "2026-11-10a"
"""50 s of the post-fall scenario: two pops and a fall."""
ANCHOR = 81234.5678
"""LSL time of session time 0 in the files written here, s (any clock reading will do)."""


def strap_streams(session: Path, *, anchor: float = ANCHOR) -> dict[str, XdfStream]:
    """A session's streams as the outlets publish them: the same headers, every sample
    stamped ``anchor`` + its session time; keyed as :func:`stream_infos` keys them."""
    s = Session(session)
    infos = stream_infos(s, "backpop:test")
    audio = s.read_audio()
    out = {"audio": XdfStream(infos["audio"].as_xml(), "float32", anchor +
                              s.info.audio_offset_s + np.arange(len(audio)) / s.audio.sr,
                              audio)}
    for imu in s.info.imus:
        block = s.read_imu(imu.name)
        out[f"imu:{imu.name}"] = XdfStream(infos[f"imu:{imu.name}"].as_xml(), "double64",
                                           anchor + block.t, np.hstack([block.acc, block.gyro]))
    out["events"] = XdfStream(infos["events"].as_xml(), "string", np.array([anchor + 1.0]),
                              [json.dumps({"event": "gap", "t": 1.0})])
    return out


def other_device() -> XdfStream:
    """An EMG amplifier's stream, as another device in the lab publishes it."""
    info = pylsl.StreamInfo("EMG", "EMG", 2, 1000, "float32", "amp-1")
    t = ANCHOR - 5.0 + np.arange(60000) / 1000
    return XdfStream(info.as_xml(), "float32", t, np.zeros((len(t), 2), dtype=np.float32))


def run(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("BACKPOP_DEBUG", None)
    return subprocess.run([str(BACKPOP), *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


def test_convert_gives_back_every_sample_and_lists_the_other_streams(tmp_path: Path) -> None:
    streams = strap_streams(SAMPLE)
    xdf = write_xdf(tmp_path / "lab.xdf", [other_device(), *streams.values()])
    done = run("convert", xdf, "-o", tmp_path / "s")
    assert done.returncode == 0, done.stderr
    assert "EMG (EMG)" in done.stdout and "backpop-events (Markers)" in done.stdout
    got, want = Session(tmp_path / "s"), Session(SAMPLE)
    assert (got.info.subject, got.info.session, got.info.start, got.info.mic_names) == \
        (want.info.subject, want.info.session, want.info.start, want.info.mic_names)
    np.testing.assert_array_equal(got.read_audio(), want.read_audio())
    for imu in want.info.imus:
        a, b = got.read_imu(imu.name), want.read_imu(imu.name)
        np.testing.assert_array_equal(a.t, b.t)
        np.testing.assert_array_equal(a.acc, b.acc)
        np.testing.assert_array_equal(a.gyro, b.gyro)


def test_analyze_of_the_xdf_file_writes_the_sessions_pops(tmp_path: Path) -> None:
    xdf = write_xdf(tmp_path / "lab.xdf", [other_device(), *strap_streams(SAMPLE).values()])
    from_xdf = run("analyze", xdf, "-o", tmp_path / "from-xdf")
    from_folder = run("analyze", SAMPLE, "-o", tmp_path / "from-folder")
    assert from_xdf.returncode == 0, from_xdf.stderr
    pops = (tmp_path / "from-xdf" / "pops.csv").read_text()
    assert pops == (tmp_path / "from-folder" / "pops.csv").read_text()
    assert len(pops.splitlines()) == 3  # the sample's two pops
    assert (tmp_path / "from-xdf" / "events.csv").read_text() == \
        (tmp_path / "from-folder" / "events.csv").read_text()
    assert "EMG (EMG)" in from_xdf.stdout and from_folder.returncode == 0


def _cut_audio(streams: dict[str, XdfStream]) -> None:
    streams["audio"].footer_count = len(streams["audio"].stamps) + 4096


def _audio_at_half_rate(streams: dict[str, XdfStream]) -> None:
    a = streams["audio"]
    a.stamps = a.stamps[0] + 2 * (a.stamps - a.stamps[0])


def _audio_hole(streams: dict[str, XdfStream]) -> None:
    a = streams["audio"]
    keep = np.r_[0:8000, 16000:len(a.stamps)]
    a.stamps, a.values = a.stamps[keep], a.values[keep]


def _imu_ends_early(streams: dict[str, XdfStream]) -> None:
    s = streams["imu:sacral"]
    n = len(s.stamps) // 2
    s.stamps, s.values = s.stamps[:n], s.values[:n]


def _no_strap(streams: dict[str, XdfStream]) -> None:
    streams.clear()


def _unknown_mounting(streams: dict[str, XdfStream]) -> None:
    s = streams["imu:sacral"]
    assert "<mounting>calibrate</mounting>" in s.header_xml
    s.header_xml = s.header_xml.replace("<mounting>calibrate</mounting>",
                                        "<mounting>glued</mounting>")


@pytest.mark.parametrize(("defect", "stream", "said"), [
    (_cut_audio, "stream backpop-audio", "cut short: its footer counts"),
    (_audio_at_half_rate, "stream backpop-audio", "its samples come at 4000 Hz, its header "
                                                  "says 8000 Hz"),
    (_audio_hole, "stream backpop-audio", "cut short: 8000 samples missing after sample 7999"),
    (_imu_ends_early, "stream backpop-imu-sacral", "cut short: it ends 25.0 s before"),
    (_no_strap, None, "holds no strap stream"),
    (_unknown_mounting, "stream backpop-imu-sacral", "desc/backpop mounting 'glued' is not "
                                                     "one of calibrate, exact"),
])
def test_a_bad_file_is_one_line_naming_file_and_stream(session_dir: Path, tmp_path: Path,
                                                       defect, stream: str | None,
                                                       said: str) -> None:
    streams = strap_streams(SAMPLE if defect is _imu_ends_early else session_dir)
    defect(streams)
    xdf = write_xdf(tmp_path / "bad.xdf", [other_device(), *streams.values()])
    with pytest.raises(BadInput) as caught:
        read_xdf(xdf)
    assert caught.value.file == str(xdf) and caught.value.where == stream
    assert said in caught.value.reason
    done = run("analyze", xdf, "-o", tmp_path / "out")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and str(xdf) in done.stderr and said in done.stderr
    assert not (tmp_path / "out").exists()


def test_an_exact_mounting_survives_the_xdf_file(session_dir: Path, tmp_path: Path) -> None:
    doc = json.loads((session_dir / "session.json").read_text())
    doc["imus"][0]["mounting"] = "exact"
    (session_dir / "session.json").write_text(json.dumps(doc))
    streams = strap_streams(session_dir)
    xdf = write_xdf(tmp_path / "lab.xdf", list(streams.values()))
    info = read_xdf(xdf).info
    assert [(i.name, i.mounting) for i in info.imus] == [("thoracic", "exact"),
                                                         ("sacral", "calibrate")]


def test_a_file_that_is_not_xdf_is_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "notes.xdf"
    bad.write_text("not a recording\n")
    done = run("convert", bad, "-o", tmp_path / "s")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"backpop: error: {bad}: not a readable XDF file")


def test_convert_refuses_to_overwrite_a_session(tmp_path: Path) -> None:
    xdf = write_xdf(tmp_path / "lab.xdf", list(strap_streams(SAMPLE).values()))
    convert(xdf, tmp_path / "s")
    with pytest.raises(BadInput, match="already exists"):
        convert(xdf, tmp_path / "s")


def test_replay_streams_an_xdf_file(tmp_path: Path) -> None:
    xdf = write_xdf(tmp_path / "lab.xdf", [other_device(), *strap_streams(SAMPLE).values()])
    done = run("replay", xdf, "--speed", "0")
    assert done.returncode == 0, done.stderr
    assert "streams left alone: EMG (EMG), backpop-events (Markers)" in done.stdout
    assert "S02/2026-11-10a" in done.stdout and "2 pops" in done.stdout
