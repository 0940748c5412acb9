"""The whole pipeline (pops, motion, context, typing) on simulated sessions with truth.

1. Kind and context accuracy of matched pops (+-50 ms) on fresh seeds of every scenario with
   pops: twist-cavitation, snapping, post-fall and healthy (3 minutes each) and long
   (30 minutes, where the 20-minute refractory window matters).
2. Throughput (times real time, one thread) and peak RSS of ``analyze`` writing its output
   folder, on a 3-mic 16 kHz + 2-IMU 200 Hz session of 10 minutes and of 1 hour, each in a
   fresh process; its startup (imports, and a 50 s sample analysed first so that lazy imports
   and compiled-code caches are loaded) is reported apart.
3. A busy 30 minutes (a held-out family member with artifacts only: walking, rub, speech,
   knocks, handling, thousands of onsets): the whole pipeline against librosa's default
   onset_detect on the mono mix, side by side, each in a fresh process on one thread, its
   file read included and its imports not; then where its time goes, under cProfile.

Simulated sessions are cached in bench-out/pipeline/ (remove it to simulate afresh). The
typing parameters (correlate.CorrelateConfig) were set from background.md and the simulator's
physics, then checked on seeds 500-505; the seeds here (from 3000) were not looked at before.

Run: ``make bench`` or ``.venv/bin/python benchmarks/pipeline.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from detection import ONE_THREAD, make
from detection import measure as measure_detector
from publish import published

from backpop_sense.evaluate import score_typing
from backpop_sense.pipeline import analyze
from backpop_sense.session import Session
from backpop_sense.simulate import SimConfig, family_member

OUT = Path(__file__).resolve().parent.parent / "bench-out" / "pipeline"
FIRST_SEED = 3000
WARM_UP = Path(__file__).resolve().parent.parent / "data" / "samples" / "S01" / "2026-11-02a"
SCENARIOS = {"twist-cavitation": 3.0, "snapping": 3.0, "post-fall": 3.0, "healthy": 3.0,
             "long": 30.0}

CHILD = """
import json, sys, tempfile, time
started = time.perf_counter()
from backpop_sense.results import analyze_to
# One-time costs (lazy imports, compiled-code caches) on a 50 s sample: startup, not throughput.
with tempfile.TemporaryDirectory() as warm:
    analyze_to(sys.argv[3], warm)
imported = time.perf_counter()
result = analyze_to(sys.argv[1], sys.argv[2])
done = time.perf_counter()
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"wall_s": done - imported, "startup_s": imported - started,
                  "peak_rss_mb": int(hwm.split()[1]) / 1024, "pops": len(result.pops)}))
"""


def measure(path: Path) -> dict:
    env = {**os.environ, **ONE_THREAD}
    with tempfile.TemporaryDirectory() as out:
        run = subprocess.run([sys.executable, "-c", CHILD, str(path), out, str(WARM_UP)],
                             check=True,
                             capture_output=True, text=True, env=env)
    return json.loads(run.stdout)


def stage_speeds(path: Path) -> None:
    """Times real time of each part of the pipeline alone, on blocks read beforehand."""
    import time

    from backpop_sense.motion.tracker import MotionTracker
    from backpop_sense.pipeline import open_replay
    from backpop_sense.pops.stage import PopStage

    analyze(WARM_UP)
    started = time.perf_counter()
    source = open_replay(path)
    blocks = list(source)
    reading = time.perf_counter() - started
    s = source.session
    pops, motion = PopStage(s.info, s.audio.sr), MotionTracker(s.info, s.imu_rates)
    spent = {"reading files": reading, "pop stage (3 mics)": 0.0, "motion (2 IMUs)": 0.0}
    for block in blocks:
        for name, stage in (("pop stage (3 mics)", pops), ("motion (2 IMUs)", motion)):
            t = time.perf_counter()
            stage.feed(block)
            spent[name] += time.perf_counter() - t
    total = sum(spent.values())
    print(f"\nwhere the time goes ({s.duration_s / 60:.0f} min session, warm, one process)")
    for name, seconds in spent.items():
        print(f"{name:<20}{s.duration_s / seconds:>8.0f}x real time{100 * seconds / total:>6.0f} %")


def busy_side_by_side() -> Path:
    """Section 3: the whole pipeline and librosa's onset_detect on the busy 30 minutes;
    returns the session."""
    path = make(OUT / "busy-30min", family_member("heldout", 900_001, scenario="artifacts-only",
                                                 minutes=30.0, snr_db=10.0))
    duration = Session(path).duration_s
    ours, theirs = measure_detector("ours", path), measure_detector("librosa", path)
    print("\nbusy 30 min (held-out family, artifacts only), one thread, fresh process, file "
          "read included")
    print(f"{'':<26}{'x real time':>12}{'peak RSS MB':>13}{'events':>8}")
    for name, r in (("whole pipeline (analyze)", ours), ("librosa onset_detect", theirs)):
        print(f"{name:<26}{duration / r['wall_s']:>12.0f}{r['peak_rss_mb']:>13.1f}"
              f"{r['events']:>8}")
    print(f"whole pipeline / librosa speed: {theirs['wall_s'] / ours['wall_s']:.2f}")
    return path


PROFILE_CHILD = """
import cProfile, pstats, sys
from backpop_sense.pipeline import analyze
analyze(sys.argv[2])  # warm: lazy imports and compiled-code caches
profiler = cProfile.Profile()
profiler.runcall(analyze, sys.argv[1])
for (file, _, name), v in pstats.Stats(profiler).stats.items():
    print(file, name, v[3], sep="\\t")
"""
PROFILED = (
    ("framing and flux (3 mics)", "pops/detector.py", "_frames", "_peaks"),
    ("first test of the peaks", "pops/detector.py", "_peaks", None),
    ("measuring the peaks", "pops/detector.py", "_measure", None),
    ("  of which the zero-phase filters", "pops/detector.py", "_filtfilt", None),
    ("gate's judgements", "pops/artifacts.py", "_verdict", None),
    ("motion (2 IMUs)", "motion/tracker.py", "feed", None),
    ("reading the files", "sources/replay.py", "__iter__", None),
)
"""The parts of :func:`busy_profile`: name, file, function, and a function whose time is
taken away from it (called within it and listed apart)."""


def busy_profile(path: Path) -> None:
    """Where the time goes on the busy 30 minutes: cumulative seconds of each part of
    ``analyze`` under cProfile, one thread, a fresh process, warm (cProfile adds its own
    cost to every Python call, so the shares, not the seconds, are what to read)."""
    run = subprocess.run([sys.executable, "-c", PROFILE_CHILD, str(path), str(WARM_UP)],
                         check=True, capture_output=True, text=True,
                         env={**os.environ, **ONE_THREAD})
    rows = [line.split("\t") for line in run.stdout.splitlines()]

    def cumulative(file: str, function: str) -> float:
        return sum(float(t) for f, name, t in rows if name == function and f.endswith(file))

    total = cumulative("backpop_sense/pipeline.py", "analyze")
    print(f"\nwhere the time goes, busy 30 min under cProfile (analyze {total:.1f} s)")
    for label, file, function, less in PROFILED:
        seconds = cumulative(file, function) - (cumulative(file, less) if less else 0.0)
        print(f"{label:<34}{seconds:>7.1f} s{100 * seconds / total:>6.0f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per scenario")
    parser.add_argument("--quick", action="store_true", help="one seed, no 1-hour session")
    args = parser.parse_args()
    seeds = 1 if args.quick else args.seeds
    print("pop kind and context of matched pops (+-50 ms), simulated, fresh seeds")
    head = f"{'scenario':<18}{'sessions':>9}{'truth':>7}{'matched':>8}{'kind':>8}{'context':>9}"
    print(head)
    print("-" * len(head))
    kinds: Counter = Counter()
    contexts: Counter = Counter()
    total = Counter()
    for scenario, minutes in SCENARIOS.items():
        row = Counter()
        for k in range(seeds):
            path = make(OUT / f"{scenario}-{FIRST_SEED + k}",
                        SimConfig(scenario, minutes=minutes, seed=FIRST_SEED + k))
            result = analyze(path)
            truth = result.session.truth()
            s = score_typing(truth, [p.t for p in result.pops], [p.kind for p in result.pops],
                             [p.context for p in result.pops], result.session.motion_truth())
            row["truth"] += len(truth)
            row["matched"] += s["matched"]
            if s["matched"]:
                row["kind"] += round(s["kind_accuracy"] * s["matched"])
                row["context"] += round(s["context_accuracy"] * s["matched"])
            for true, found in s["kind_confusion"].items():
                for name, n in found.items():
                    kinds[(true, name)] += n
            for true, found in s["context_confusion"].items():
                for name, n in found.items():
                    contexts[(true, name)] += n
        total += row
        m = row["matched"] or 1
        print(f"{scenario:<18}{seeds:>9}{row['truth']:>7}{row['matched']:>8}"
              f"{100 * row['kind'] / m:>7.1f}%{100 * row['context'] / m:>8.1f}%")
    m = total["matched"] or 1
    print(f"{'all':<18}{seeds * len(SCENARIOS):>9}{total['truth']:>7}{total['matched']:>8}"
          f"{100 * total['kind'] / m:>7.1f}%{100 * total['context'] / m:>8.1f}%")
    print("kind confusion (true -> found): " + ", ".join(
        f"{a}->{b} {n}" for (a, b), n in sorted(kinds.items())))
    print("context errors (true -> found): " + (", ".join(
        f"{a}->{b} {n}" for (a, b), n in sorted(contexts.items()) if a != b) or "none"))

    stage_speeds(make(OUT / "long-10min", SimConfig("long", minutes=10.0, seed=FIRST_SEED + 50)))
    lengths = [("10 min", 10.0)] if args.quick else [("10 min", 10.0), ("1 h", 60.0)]
    print("\nwhole pipeline (analyze -o OUT), 3 mics 16 kHz + 2 IMUs 200 Hz, one thread, "
          "fresh process")
    print(f"{'session':<10}{'x real time':>12}{'peak RSS MB':>13}{'pops':>6}{'startup s':>10}")
    for label, minutes in lengths:
        path = make(OUT / f"long-{label.replace(' ', '')}",
                    SimConfig("long", minutes=minutes, seed=FIRST_SEED + 50))
        r = measure(path)
        speed = Session(path).duration_s / r["wall_s"]
        print(f"{label:<10}{speed:>12.0f}{r['peak_rss_mb']:>13.1f}{r['pops']:>6}"
              f"{r['startup_s']:>10.1f}")
    busy_profile(busy_side_by_side())


if __name__ == "__main__":
    with published("pipeline.py"):
        main()
