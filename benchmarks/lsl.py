"""Lab Streaming Layer outlets on the emulated BLE path: marker latency and reconnections.

Everything runs on this machine: the emulated strap and the recorder over Bumble's in-process
link (benchmarks/ble.py), ``record --lsl``'s outlets, and an inlet on each outlet (liblsl over
localhost), as LabRecorder would pull them.

1. Marker latency at real-time pace (``twist-cavitation``, pops made 5 times likelier), each
   pop's sound to its ``pop`` marker, all on LSL's clock (:func:`pylsl.local_clock`): the sound
   is the emulator's send of the audio packet holding the pop's onset; the marker is pushed
   when the pipeline hears the pop (``Heard``, the gate's provisional verdict) and received
   when the inlet has it. Also the marker's stamp against the sound's send time (how far the
   stamp is off the sound, through the anchor taken at the first block).
2. 100 forced disconnects (one per second of a 100 s session played at 2x) with the outlets
   up: samples the inlets received against the recording (lost, repeated), gap markers.

Run: ``.venv/bin/python benchmarks/lsl.py [--quick]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import numpy as np
import pylsl
from ble import V1, pct, session
from publish import published
from pylsl.util import LostError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_lsl import Collector  # noqa: E402 - the tests' inlets, reused

from backpop_sense.pops.stage import Heard  # noqa: E402
from backpop_sense.session import Session  # noqa: E402
from backpop_sense.simulate import SimConfig  # noqa: E402
from backpop_sense.sources.ble import Emulation, record  # noqa: E402
from backpop_sense.sources.lsl import LslConfig  # noqa: E402


def _record_published(src: Path, out: Path, emulation: Emulation) -> tuple:
    """``record --lsl`` of an emulated strap in a thread, with inlets on every outlet;
    returns the record's result and what the inlets received."""
    source_id = f"backpop-bench:{uuid.uuid4().hex}"
    done: dict = {}

    def run() -> None:
        done["r"] = record(V1, out, subject="BENCH", emulate=emulation,
                           lsl=LslConfig(source_id=source_id, wait_s=60))

    thread = threading.Thread(target=run)
    thread.start()
    received = Collector(source_id).received(timeout_s=600)
    thread.join()
    return done["r"], received


def marker_latency(src: Path, seconds: float) -> None:
    frames, sr = V1.audio.frames, V1.audio.sr
    sent: dict[int, float] = {}
    pushed: list[tuple[float, float]] = []

    def on_send(stream: str, t0: float, n: int, at: float) -> None:
        if stream == "audio":
            sent[round(t0 * sr) // frames] = pylsl.local_clock()

    def on_output(outputs: list, at: float) -> None:
        # Called right after the outlets pushed these outputs' markers.
        now = pylsl.local_clock()
        pushed.extend((o.t, now) for o in outputs if isinstance(o, Heard))

    source_id = f"backpop-bench:{uuid.uuid4().hex}"
    received: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        def run() -> None:
            record(V1, Path(tmp) / "rec", subject="BENCH", on_output=on_output,
                   duration_s=seconds, emulate=Emulation(src, on_send=on_send),
                   lsl=LslConfig(source_id=source_id, wait_s=60))

        thread = threading.Thread(target=run)
        thread.start()
        inlet = _events_inlet(source_id)
        while thread.is_alive() or inlet.samples_available():
            try:
                sample, stamp = inlet.pull_sample(timeout=0.2)
            except LostError:
                break
            if sample is not None:
                received[sample[0]] = (stamp, pylsl.local_clock())
        thread.join()
    _print_latency(sent, pushed, received, frames, sr)


def _events_inlet(source_id: str) -> pylsl.StreamInlet:
    found = pylsl.resolve_byprop("source_id", f"{source_id}:events", timeout=60)
    inlet = pylsl.StreamInlet(found[0], recover=False)
    inlet.open_stream(timeout=60)
    return inlet


def _print_latency(sent: dict, pushed: list, received: dict, frames: int, sr: int) -> None:
    import json

    def sound(t: float) -> float | None:
        return sent.get(int(t * sr) // frames)

    push = [at - sound(t) for t, at in pushed if sound(t) is not None]
    pops = [(json.loads(text)["t"], stamp, at) for text, (stamp, at) in received.items()
            if json.loads(text)["event"] == "pop"]
    arrive = [at - sound(t) for t, _, at in pops if sound(t) is not None]
    stamp_error = [stamp - sound(t) for t, stamp, _ in pops if sound(t) is not None]
    print(f"1. marker latency, sound -> 'pop' marker pushed ({len(pushed)} pops): {pct(push)}")
    print(f"   sound -> 'pop' marker received by an inlet: {pct(arrive)}")
    print(f"   marker stamp - sound's send time: median {np.median(stamp_error) * 1e3:+.1f} ms, "
          f"spread (p99 - p1) {np.ptp(np.percentile(stamp_error, [1, 99])) * 1e3:.1f} ms")


def disconnects(src: Path) -> None:
    cuts = tuple(0.5 + 1.0 * k for k in range(100))
    with tempfile.TemporaryDirectory() as tmp:
        r, got = _record_published(src, Path(tmp) / "rec",
                                   Emulation(src, speed=2.0, disconnect_at=cuts))
        rec = Session(Path(tmp) / "rec")
        audio = rec.read_audio()
        counts = {"audio": (len(got.stamps["audio"]), len(audio))}
        for imu in rec.info.imus:
            counts[imu.name] = (len(got.stamps[f"imu-{imu.name}"]), rec.read_imu(imu.name).n)
        same = np.array_equal(got.values["audio"], audio)
        steps = np.diff(got.stamps["audio"]) * rec.audio.sr
        gaps = sum(1 for m in got.markers() if m["event"] == "gap")
    print(f"2. 100 disconnects: link losses {r.link.link_losses}; samples received / recorded "
          + ", ".join(f"{k} {a}/{b}" for k, (a, b) in counts.items())
          + f"; audio identical {same}; audio stamp steps {steps.min():.6f}..{steps.max():.6f} "
          f"periods (lost or repeated: none if both are 1); gap markers {gaps} for "
          f"{len(r.result.gaps)} gaps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args()
    logging.getLogger("bumble").setLevel(logging.ERROR)
    short = session("pops-1min", SimConfig(scenario="twist-cavitation", minutes=1.0, seed=41,
                                           pop_scale=5.0))
    hundred = session("disconnects-101s", SimConfig(scenario="healthy", minutes=101 / 60,
                                                    seed=9, artifacts=False))
    marker_latency(short, 60 * (0.3 if args.quick else 1.0))
    disconnects(hundred)


if __name__ == "__main__":
    with published("lsl.py"):
        main()
