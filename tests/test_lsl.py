"""Lab Streaming Layer outlets over the real LSL stack on this machine (liblsl from the pylsl
wheel; outlets and inlets find each other on localhost), and the XDF round trip.

``backpop replay --lsl`` runs as its own process, as a lab would run it; the tests' inlets
resolve its outlets by source id, receive everything, and record it into an XDF file with the
tests' writer (xdf_writer.py), as LabRecorder would.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pylsl
import pytest
from pylsl.util import LostError
from xdf_writer import XdfStream, write_xdf

from backpop_sense.pipeline import DEFAULT_CONFIG, analyze, open_replay
from backpop_sense.session import Session
from backpop_sense.simulate import SimConfig, simulate_session
from backpop_sense.sources.ble import Emulation, record
from backpop_sense.sources.lsl import LslConfig, marker
from backpop_sense.sources.profiles import load_profile
from backpop_sense.sources.xdf import convert

BACKPOP = Path(sys.executable).parent / "backpop"
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "samples" / "S02" / "2026-11-10a"
"""50 s of the post-fall scenario: two pops and a fall."""
STREAMS = ("audio", "imu-thoracic", "imu-sacral", "events")
"""The outlets of a strap with two IMUs, by the end of their source ids."""
TOLERANCE_S = 0.005
V1 = load_profile("backpop-strap-v1")


@dataclass
class Received:
    """What the inlets received from one source id: header XML, stamps (s, LSL clock) and
    values (an array, or the markers' JSON texts) by stream."""

    headers: dict[str, str]
    stamps: dict[str, np.ndarray]
    values: dict[str, np.ndarray | list[str]]

    def markers(self) -> list[dict]:
        return [json.loads(v) for v in self.values["events"]]


class Collector:
    """Inlets on every stream of a source id, pulled in a thread until their outlets go."""

    def __init__(self, source_id: str) -> None:
        self.inlets = {}
        for key in STREAMS:
            found = pylsl.resolve_byprop("source_id", f"{source_id}:{key}", timeout=120)
            assert found, f"no outlet {source_id}:{key} on this machine"
            self.inlets[key] = pylsl.StreamInlet(found[0], max_buflen=3600, recover=False)
            self.inlets[key].open_stream(timeout=60)
        self.headers = {k: i.info(timeout=10).as_xml() for k, i in self.inlets.items()}
        self.parts: dict[str, list] = {key: [] for key in STREAMS}
        self.thread = threading.Thread(target=self._pull, daemon=True)
        self.thread.start()

    def _pull(self) -> None:
        live = dict(self.inlets)
        while live:
            for key, inlet in list(live.items()):
                try:
                    values, stamps = inlet.pull_chunk(timeout=0.02, max_samples=1 << 16,
                                                      as_numpy=key != "events")
                except LostError:  # the outlet is gone: everything has come
                    del live[key]
                    continue
                if len(stamps):
                    self.parts[key].append((np.asarray(stamps), values))

    def received(self, timeout_s: float = 120.0) -> Received:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the outlets never went"
        stamps = {k: np.concatenate([s for s, _ in p]) for k, p in self.parts.items()}
        values = {k: [x[0] for _, v in p for x in v] if k == "events" else
                  np.concatenate([v for _, v in p]) for k, p in self.parts.items()}
        return Received(self.headers, stamps, values)


def _env() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("BACKPOP_DEBUG", None)
    return env


@pytest.fixture(scope="module")
def replayed() -> Received:
    """``backpop replay SAMPLE --speed 0 --lsl`` in its own process, received by inlets."""
    source_id = f"backpop-test:{uuid.uuid4().hex}"
    proc = subprocess.Popen([str(BACKPOP), "replay", str(SAMPLE), "--speed", "0", "--lsl",
                             "--lsl-wait", "120", "--lsl-id", source_id],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    try:
        collector = Collector(source_id)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    return collector.received()


def expected_markers() -> tuple[list[dict], list]:
    """The markers of the sample replayed as the command does (blocks of 4096 samples, the
    offline config), in order; and the session's pops."""
    markers: list[dict] = []
    heard: set[float] = set()
    result = analyze(open_replay(SAMPLE, block_size=4096), DEFAULT_CONFIG,
                     on_output=lambda outputs, _: markers.extend(
                         m for m in (marker(o, heard=heard) for o in outputs) if m is not None))
    said = {(m["event"], m["t"]) for m in markers}
    markers += [marker(e) for e in result.motion_events if (e.type, e.t) not in said]
    markers += [marker(p, final=True) for p in result.pops]
    return markers, result.pops


@pytest.mark.slow
def test_replay_lsl_delivers_every_sample_in_order_at_its_session_time(
        replayed: Received) -> None:
    s = Session(SAMPLE)
    audio = s.read_audio()
    np.testing.assert_array_equal(replayed.values["audio"], audio)
    t0 = replayed.stamps["audio"][0] - s.info.audio_offset_s  # LSL time of session time 0
    session_t = s.info.audio_offset_s + np.arange(len(audio)) / s.audio.sr
    assert np.abs(replayed.stamps["audio"] - t0 - session_t).max() < TOLERANCE_S
    for imu in s.info.imus:
        block = s.read_imu(imu.name)
        got = replayed.values[f"imu-{imu.name}"]
        np.testing.assert_array_equal(got, np.hstack([block.acc, block.gyro]))
        assert np.abs(replayed.stamps[f"imu-{imu.name}"] - t0 - block.t).max() < TOLERANCE_S


@pytest.mark.slow
def test_replay_lsl_marks_every_pop_and_event_in_order(replayed: Received) -> None:
    want, pops = expected_markers()
    got = replayed.markers()
    assert got == want
    heard = [m for m in got if m["event"] == "pop"]
    typed = [m for m in got if m["event"] == "pop_typed"]
    assert [m["t"] for m in typed] == [p.t for p in pops] and len(pops) == 2
    assert [(m["level"], m["kind"]) for m in typed] == [(p.pop.level, p.kind) for p in pops]
    assert {p.t for p in pops} <= {m["t"] for m in heard}
    # every pop announced is judged once, after it was announced
    judged = [m for m in got if m["event"] in ("pop_confirmed", "pop_overruled")]
    assert sorted(m["t"] for m in heard) == sorted(m["t"] for m in judged if m["event"] ==
                                                   "pop_overruled" or m["heard"])
    assert [m["event"] for m in got if m["event"] in ("fall", "catch")] == ["fall"]
    t0 = replayed.stamps["audio"][0]
    stamped = replayed.stamps["events"] - t0
    assert np.abs(stamped - [m["t"] for m in got]).max() < TOLERANCE_S


@pytest.mark.slow
def test_what_lsl_carried_recorded_to_xdf_analyses_to_the_same_pops(
        replayed: Received, tmp_path: Path) -> None:
    formats = {"audio": "float32", "events": "string"}
    xdf = write_xdf(tmp_path / "lab.xdf", [
        XdfStream(replayed.headers[k], formats.get(k, "double64"), replayed.stamps[k],
                  replayed.values[k]) for k in STREAMS])
    strap = convert(xdf, tmp_path / "session")
    assert strap.ignored == ["backpop-events (Markers)"]
    _, want = expected_markers()
    got = analyze(tmp_path / "session").pops
    assert [(p.t, p.pop.level, p.kind, p.context, p.flexion_deg) for p in got] == \
        [(p.t, p.pop.level, p.kind, p.context, p.flexion_deg) for p in want]


@pytest.fixture
def sim(tmp_path: Path) -> Path:
    """12 s at the reference strap's rates (16 kHz, 3 mics, 2 IMUs at 200 Hz)."""
    simulate_session(tmp_path / "sim", SimConfig(scenario="twist-cavitation", minutes=0.2,
                                                 seed=5))
    return tmp_path / "sim"


@pytest.mark.slow
def test_record_lsl_publishes_each_sample_once_across_reconnections(sim: Path,
                                                                     tmp_path: Path) -> None:
    """The emulated strap drops its link twice and loses packets: the outlets stay up, and
    they carry exactly what the recording holds, each sample once, zeros where it has
    zeros."""
    logging.getLogger("bumble").setLevel(logging.ERROR)
    source_id = f"backpop-test:{uuid.uuid4().hex}"
    done: dict = {}

    def run() -> None:
        try:
            done["r"] = record(V1, tmp_path / "rec", subject="S01", emulate=Emulation(
                sim, speed=2.0, drop=0.02, disconnect_at=(3.0, 7.5), clock_ppm=80.0),
                lsl=LslConfig(source_id=source_id, wait_s=120))
        except BaseException as exc:  # handed to the test's thread
            done["error"] = exc

    recorder = threading.Thread(target=run)
    recorder.start()
    got = Collector(source_id).received()
    recorder.join(120)
    assert "error" not in done, done.get("error")
    r, rec = done["r"], Session(tmp_path / "rec")
    # The strap samples on through a lost link, so on a loaded machine a reconnection may
    # come after the second cut is due: at least one drop and one reconnection.
    assert r.link.link_losses >= 1 and r.link.connects >= 2
    np.testing.assert_array_equal(got.values["audio"], rec.read_audio())
    assert np.abs(np.diff(got.stamps["audio"]) - 1 / rec.audio.sr).max() < 1e-6
    for imu in rec.info.imus:
        block = rec.read_imu(imu.name)
        np.testing.assert_allclose(got.values[f"imu-{imu.name}"],
                                   np.hstack([block.acc, block.gyro]), rtol=1e-9, atol=1e-9)
        t = got.stamps[f"imu-{imu.name}"] - got.stamps["audio"][0]
        assert np.abs(t - block.t).max() < TOLERANCE_S
    gaps = [m for m in got.markers() if m["event"] == "gap"]
    assert len(gaps) == len(r.result.gaps) > 0
