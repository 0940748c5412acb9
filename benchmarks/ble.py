"""The BLE path on Bumble's software stack: throughput, latency, disconnects.

Everything runs in one process: the emulated strap (Bumble GATT server) and the recorder
(bleak's BleakClient on the Bumble backend) talk over Bumble's in-process LocalLink, which
models no radio, so these figures are what the software adds, not what a radio would.

1. Link throughput: the PCM16 profile (410 packets/s of 240 bytes) played at 5x real time:
   notifications delivered per second, in order, lost.
2. Transport latency at real-time pace: from the emulator's notify to the decoded block, for
   the ADPCM and the PCM16 reference profiles (p50, p99, max).
3. Forced disconnect: time until the client's disconnected callback runs.
4. Pop-to-event latency at real-time pace: from the send of the audio packet holding a pop
   to the live pipeline's outputs of that pop (``twist-cavitation`` scenario, 16 kHz, pops
   made 5 times likelier): heard (the gate's provisional judgement), judged (its final one,
   after its lookahead for series) and placed in its motion context.
5. 100 forced disconnects (one per second of a 100 s session played at 2x): reconnection
   time (median, p90, max), share of samples lost, and the sample-exact check.

Simulated sessions are cached in bench-out/ble/. Run: ``.venv/bin/python benchmarks/ble.py
[--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bleak import BleakClient
from publish import published

from backpop_sense.blocks import AudioBlock
from backpop_sense.correlate import PopInContext
from backpop_sense.simulate import SimConfig, simulate_session
from backpop_sense.sources.ble import Emulation, LiveSource, record
from backpop_sense.sources.bumble_backend import BumbleClient, VirtualRadio
from backpop_sense.sources.emulator import StrapEmulator
from backpop_sense.sources.profiles import load_profile

OUT = Path(__file__).resolve().parent.parent / "bench-out" / "ble"
V1, PCM = load_profile("backpop-strap-v1"), load_profile("backpop-strap-v1-pcm")


def session(name: str, cfg: SimConfig) -> Path:
    path = OUT / name
    if not (path / "session.json").exists():
        simulate_session(path, cfg)
    return path


def pct(x: list[float] | np.ndarray) -> str:
    a = np.asarray(x) * 1e3
    return (f"p50 {np.percentile(a, 50):6.1f} ms  p99 {np.percentile(a, 99):6.1f} ms  "
            f"max {a.max():6.1f} ms  (n={a.size})")


def throughput(src: Path, seconds: float) -> None:
    count = [0, 0.0, 0.0]

    def on_decoded(block, at: float) -> None:
        if isinstance(block, AudioBlock):
            count[0] += 1
            count[1] = count[1] or at
            count[2] = at

    source = LiveSource(PCM, emulate=Emulation(src, speed=5.0), on_decoded=on_decoded)
    for block in source:
        if block.t0 > seconds * 5:
            source.stop()
    rate = count[0] / (count[2] - count[1])
    print(f"1. throughput (PCM16 at 5x): {rate:,.0f} audio notifications/s of 240 B delivered "
          f"({rate * 240 / 1e3:,.0f} kB/s), lost {sum(source.stats.lost.values())}, "
          f"malformed {sum(source.stats.malformed.values())}")


def transport_latency(src: Path, profile, seconds: float) -> None:
    sent: dict[int, float] = {}
    decoded: dict[int, float] = {}

    def on_send(stream: str, t0: float, n: int, at: float) -> None:
        if stream == "audio":
            sent[round(t0 * profile.audio.sr)] = at

    def on_decoded(block, at: float) -> None:
        if isinstance(block, AudioBlock):
            decoded[block.start_index] = at

    source = LiveSource(profile, emulate=Emulation(src, on_send=on_send),
                        on_decoded=on_decoded)
    for block in source:
        if block.t0 > seconds:
            source.stop()
    lat = [decoded[k] - sent[k] for k in sent if k in decoded]
    print(f"2. transport latency, {profile.name:22s} send -> decoded block: {pct(lat)}")


def disconnect_seen(src: Path, n: int) -> None:
    async def main() -> list[float]:
        radio = VirtualRadio()
        emulator = StrapEmulator(src, V1, radio.device("strap", "C0:98:E5:49:00:01"))
        await emulator.start()
        central = radio.central("central", "C0:98:E5:49:00:99")
        out = []
        for _ in range(n):
            lost = asyncio.Event()
            client = BleakClient("C0:98:E5:49:00:01", lambda _, lost=lost: lost.set(),
                                 backend=BumbleClient, bumble=central, timeout=2.0)
            await client.connect()
            t0 = time.perf_counter()
            await emulator.drop_link()
            await lost.wait()
            out.append(time.perf_counter() - t0)
        return out

    print(f"3. forced disconnect -> client callback: {pct(asyncio.run(main()))}")


def pop_latency(src: Path, seconds: float) -> None:
    from backpop_sense.pops.stage import Heard, Pop, Rejected

    frames = V1.audio.frames
    sent: dict[int, float] = {}
    heard: list[tuple[float, float]] = []
    judged: list[tuple[float, float]] = []
    placed: list[tuple[float, float]] = []
    overruled: list[float] = []

    def on_send(stream: str, t0: float, n: int, at: float) -> None:
        if stream == "audio":
            sent[round(t0 * V1.audio.sr) // frames] = at

    def on_output(outputs: list, at: float) -> None:
        early = {t for t, _ in heard}
        heard.extend((o.t, at) for o in outputs if isinstance(o, Heard))
        judged.extend((o.t, at) for o in outputs if isinstance(o, Pop))
        overruled.extend(o.t for o in outputs if isinstance(o, Rejected) and o.t in early)
        placed.extend((o.pop.t, at) for o in outputs if isinstance(o, PopInContext))

    def latency(seen: list[tuple[float, float]]) -> list[float]:
        keys = [(int(t * V1.audio.sr) // frames, at) for t, at in seen]
        return [at - sent[k] for k, at in keys if k in sent]

    with tempfile.TemporaryDirectory() as tmp:
        record(V1, Path(tmp) / "rec", subject="BENCH", on_output=on_output,
               duration_s=seconds, emulate=Emulation(src, on_send=on_send))
    confirmed = {t for t, _ in judged}
    print(f"4. pop-to-event latency, live pipeline: pop heard, provisional ({len(heard)} pops, "
          f"{sum(t in confirmed for t, _ in heard)} confirmed, {len(overruled)} overruled) "
          f"{pct(latency(heard))}; pop judged ({len(judged)} pops) {pct(latency(judged))}; "
          f"pop placed in its motion context ({len(placed)} pops) {pct(latency(placed))}")


def disconnects(src: Path) -> None:
    cuts = tuple(0.5 + 1.0 * k for k in range(100))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        r = record(V1, Path(tmp) / "rec", subject="BENCH", analyse=False,
                   emulate=Emulation(src, speed=2.0, disconnect_at=cuts))
        wall = time.perf_counter() - t
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from test_ble import assert_recording_matches

        lost = assert_recording_matches(Path(tmp) / "rec", src, V1)
    total = r.decode.packets.get("audio", 0) + r.decode.lost.get("audio", 0)
    rc = np.asarray(r.link.reconnect_s)
    print(f"5. 100 disconnects ({wall:.0f} s wall): link losses {r.link.link_losses}, "
          f"reconnection median {np.median(rc) * 1e3:.0f} ms, p90 "
          f"{np.percentile(rc, 90) * 1e3:.0f} ms, max {rc.max() * 1e3:.0f} ms; "
          f"audio lost {lost['audio'] / (total * V1.audio.frames):.1%} in marked gaps, "
          "every other sample exact and once")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args()
    logging.getLogger("bumble").setLevel(logging.ERROR)
    k = 0.3 if args.quick else 1.0
    short = session("pops-1min", SimConfig(scenario="twist-cavitation", minutes=1.0, seed=41,
                                           pop_scale=5.0))
    hundred = session("disconnects-101s", SimConfig(scenario="healthy", minutes=101 / 60,
                                                    seed=9, artifacts=False))
    throughput(short, 10 * k)
    transport_latency(short, V1, 20 * k)
    transport_latency(short, PCM, 20 * k)
    disconnect_seen(short, int(50 * k))
    pop_latency(short, 60 * k)
    disconnects(hundred)


if __name__ == "__main__":
    with published("ble.py"):
        main()
