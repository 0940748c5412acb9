"""The crash-safe recorder: exact round trip, valid files mid-recording, and a real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backpop_sense.blocks import AudioBlock, Gap, ImuBlock
from backpop_sense.errors import BadInput
from backpop_sense.record import SessionRecorder, info_from_profile
from backpop_sense.session import Session
from backpop_sense.sources.profiles import PROFILE_DIR, load_profile, parse_profile
from backpop_sense.sources.replay import ReplaySource

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "samples" / "S01" / "2026-11-02a"


def _record(src: Session, out: Path, block_size: int = 1000) -> None:
    with SessionRecorder(out, src.info, sr=src.audio.sr) as rec:
        for block in ReplaySource(src, block_size=block_size):
            rec.feed(block)


def test_a_recorded_stream_reads_back_identical(tmp_path: Path) -> None:
    src = Session(SAMPLE)
    _record(src, tmp_path / "rec")
    got = Session(tmp_path / "rec")
    np.testing.assert_array_equal(got.read_audio(), src.read_audio())
    for imu in src.info.imus:
        a, b = got.read_imu(imu.name), src.read_imu(imu.name)
        for x, y in ((a.t, b.t), (a.acc, b.acc), (a.gyro, b.gyro)):
            np.testing.assert_array_equal(x, y)
    doc = json.loads((tmp_path / "rec" / "session.json").read_text())
    assert doc["recording"]["complete"] is True
    assert doc["recording"]["audio_frames"] == src.audio.frames
    assert got.info.mic_names == src.info.mic_names


def test_files_are_valid_while_recording_and_gaps_are_kept(tmp_path: Path) -> None:
    src = Session(SAMPLE)
    audio = src.read_audio()
    sr = src.audio.sr
    rec = SessionRecorder(tmp_path / "rec", src.info, sr=sr, flush_s=0.0)
    rec.feed(AudioBlock(0, sr, audio[:800]))
    rec.feed(Gap("audio", 799 / sr, 1600 / sr, "link lost"))
    rec.feed(AudioBlock(1600, sr, audio[1600:2400]))
    for imu in src.info.imus:
        block = src.read_imu(imu.name)
        rec.feed(ImuBlock(imu.name, 0, block.t[:30], block.acc[:30], block.gyro[:30]))
    live = Session(tmp_path / "rec")
    assert live.audio.frames == 2400
    data = live.read_audio()
    np.testing.assert_array_equal(data[:800], audio[:800])
    assert not data[800:1600].any()
    assert live.read_imu("sacral").n == 30
    assert json.loads((tmp_path / "rec" / "session.json").read_text())["recording"] == {
        "complete": False}
    rec.close()
    gaps = pd.read_csv(tmp_path / "rec" / "gaps.csv")
    assert gaps.to_dict("records") == [
        {"stream": "audio", "t_start": 799 / sr, "t_end": 1600 / sr, "reason": "link lost"}]
    with pytest.raises(BadInput, match="already exists"):
        SessionRecorder(tmp_path / "rec", src.info, sr=sr)


def test_info_from_profile_declares_the_straps_units_and_checks_ids() -> None:
    info = info_from_profile(load_profile("backpop-strap-v1"), subject="S9", session="live1")
    assert info.mic_names == ["T10", "L1", "L4"] and info.strap == "backpop-strap-v1"
    assert [(i.name, i.acc_unit, i.gyro_unit) for i in info.imus] == [
        ("thoracic", "g", "deg/s"), ("sacral", "g", "deg/s")]
    with pytest.raises(BadInput, match="^recording: field subject: must be an identifier"):
        info_from_profile(load_profile("backpop-strap-v1"), subject="Jane Doe", session="x")


def test_a_profile_declares_how_each_imu_is_mounted_and_recordings_keep_it(
        tmp_path: Path) -> None:
    """A strap whose thoracic IMU sits in a factory-aligned holder says so in its profile;
    every recording through it declares that IMU ``exact`` and the other ``calibrate``."""
    doc = tomllib.loads((PROFILE_DIR / "backpop-strap-v1.toml").read_text())
    assert all("mounting" not in imu for imu in doc["imu"])  # the shipped strap: the default
    assert [i.mounting for i in load_profile("backpop-strap-v1").imus] == ["calibrate"] * 2
    doc["imu"][0]["mounting"] = "exact"
    profile = parse_profile(doc, Path("holder.toml"))
    info = info_from_profile(profile, subject="S9", session="held1")
    assert [(i.name, i.mounting) for i in info.imus] == [("thoracic", "exact"),
                                                          ("sacral", "calibrate")]
    src = Session(SAMPLE)
    with SessionRecorder(tmp_path / "rec", info, sr=src.audio.sr) as rec:
        for block in ReplaySource(src, block_size=4000):
            rec.feed(block)
    written = json.loads((tmp_path / "rec" / "session.json").read_text())
    assert [imu.get("mounting", "calibrate") for imu in written["imus"]] == ["exact",
                                                                             "calibrate"]
    assert [i.mounting for i in Session(tmp_path / "rec").info.imus] == ["exact", "calibrate"]


CHILD = """
import sys
from backpop_sense.clock import SimulatedClock
from backpop_sense.record import SessionRecorder
from backpop_sense.session import Session
from backpop_sense.sources.replay import ReplaySource

clock = SimulatedClock()  # moves only as the paced replay waits: session seconds, no waiting
src = Session(sys.argv[1])
rec = SessionRecorder(sys.argv[2], src.info, sr=src.audio.sr, clock=clock)
for block in ReplaySource(src, block_size=400, speed=1.0, clock=clock):
    rec.feed(block)
    print(repr(clock.now), flush=True)
    sys.stdin.readline()  # the parent says go, or kills
"""
BLOCK = 400


def test_after_sigkill_the_folder_reads_back_with_at_most_a_second_lost(tmp_path: Path) -> None:
    """Killed after 3 s of session (paced as live, on a clock the test drives), the folder
    reads back the stream's first seconds exactly, with at most ``flush_s`` (1 s) lost."""
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(SAMPLE), str(out)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    for line in proc.stdout:
        elapsed = float(line)
        if elapsed >= 3.0:
            os.kill(proc.pid, signal.SIGKILL)
            break
        proc.stdin.write("go\n")
        proc.stdin.flush()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    src, got = Session(SAMPLE), Session(out)
    step = BLOCK / src.audio.sr
    frames = got.audio.frames
    assert elapsed - 1.0 - step <= frames / src.audio.sr <= elapsed
    np.testing.assert_array_equal(got.read_audio(), src.read_audio()[:frames])
    for imu in src.info.imus:
        a, b = got.read_imu(imu.name), src.read_imu(imu.name)
        assert elapsed - 1.0 - step - 1.0 / src.imu_rates[imu.name] <= a.t[-1] <= elapsed
        np.testing.assert_array_equal(a.acc, b.acc[:a.n])
        np.testing.assert_array_equal(a.t, b.t[:a.n])
