"""Replay throughput and peak memory, 10 minutes against 2 hours.

Simulates a 3-mic 16 kHz + 2-IMU 200 Hz session of each length (cached in bench-out/), then
replays each in a fresh process as fast as the disk allows and prints the session length,
wall time, throughput (times real time) and peak RSS. Memory must not grow with length.

Run: ``make bench`` or ``.venv/bin/python benchmarks/replay.py [--block-size N]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from publish import published

from backpop_sense.simulate import SimConfig, simulate_session

OUT = Path(__file__).resolve().parent.parent / "bench-out"

CHILD = """
import json, sys, time
from backpop_sense.blocks import AudioBlock
from backpop_sense.sources.replay import ReplaySource
start = time.perf_counter()
frames = 0
for block in ReplaySource(sys.argv[1], block_size=int(sys.argv[2])):
    if isinstance(block, AudioBlock):
        frames += block.n
wall = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent that simulated.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"frames": frames, "wall_s": wall, "peak_rss_mb": int(hwm.split()[1]) / 1024}))
"""


def session(minutes: float) -> Path:
    path = OUT / f"long-{minutes:g}min"
    if not (path / "truth.csv").exists():
        if path.exists():
            raise SystemExit(f"{path} is incomplete; remove it and run again")
        t = time.perf_counter()
        simulate_session(path, SimConfig("long", minutes=minutes, seed=11, sr=16000,
                                         imu_rate=200.0))
        print(f"simulated {minutes:g} min in {time.perf_counter() - t:.0f} s", flush=True)
    return path


def replay(path: Path, block_size: int) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, str(path), str(block_size)],
                            check=True, capture_output=True, text=True)
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block-size", type=int, default=4096)
    args = parser.parse_args()
    rows = []
    for minutes in (10, 120):
        path = session(minutes)
        r = replay(path, args.block_size)
        seconds = r["frames"] / 16000
        rows.append((minutes, seconds, r["wall_s"], seconds / r["wall_s"], r["peak_rss_mb"]))
    print(f"\nreplay, block size {args.block_size} (3 mics 16 kHz PCM16 + 2 IMUs 200 Hz)")
    print(f"{'session':>10} {'audio s':>9} {'wall s':>8} {'x real time':>12} {'peak RSS MB':>12}")
    for minutes, seconds, wall, speed, rss in rows:
        print(f"{minutes:>7} min {seconds:>9.0f} {wall:>8.1f} {speed:>12.0f} {rss:>12.1f}")
    growth = 100 * (rows[1][4] / rows[0][4] - 1)
    print(f"peak RSS, 2 h against 10 min: {growth:+.1f} %")


if __name__ == "__main__":
    with published("replay.py"):
        main()
