"""The subject report over many sessions: render time and file size against the targets
(100 sessions in under 5 s, under 5 MB).

The store gets one subject with ``--sessions`` sessions, one every other day: each is a
bundled sample session under a new id and start (its session.json rewritten, its data files
linked, not copied), stored with that sample's analysis (``Store.ingest(path, result=...)``)
so the pipeline runs six times, not a hundred. The diary has an entry a day, a note every
fifth day, and one reported fall; the rules are evaluated as ``backpop ingest`` would.

The render is timed twice: in a fresh process (``cold``: imports included, what
``backpop report`` costs) and again in this process (``warm``). The report is kept in
bench-out/report/ to look at.

Run: ``.venv/bin/python benchmarks/report.py [--sessions N]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from publish import published

from backpop_sense.diary import DIARY_COLUMNS
from backpop_sense.pipeline import analyze
from backpop_sense.report import write_subject_report
from backpop_sense.rules import refresh_flags
from backpop_sense.session import Session
from backpop_sense.store import Store

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"
OUT = ROOT / "bench-out" / "report"
SUBJECT = "B01"
FIRST_DAY = pd.Timestamp("2026-01-05T08:00:00Z")

CHILD = """
import json, sys, time
started = time.perf_counter()
from backpop_sense.report import write_subject_report
from backpop_sense.store import Store
imported = time.perf_counter()
with Store(sys.argv[1]) as store:
    write_subject_report(store, sys.argv[2], sys.argv[3])
done = time.perf_counter()
print(json.dumps({"wall_s": done - started, "import_s": imported - started}))
"""


def build(db: Path, folders: Path, n: int) -> None:
    samples = sorted(p.parent for p in SAMPLES.glob("*/*/session.json"))
    results = [analyze(s) for s in samples]
    with Store(db) as store:
        for i in range(n):
            sample, result = samples[i % len(samples)], results[i % len(samples)]
            start = FIRST_DAY + pd.Timedelta(days=2 * i, hours=i % 9)
            folder = folders / f"{start:%Y-%m-%d}a"
            folder.mkdir(parents=True)
            doc = json.loads((sample / "session.json").read_text())
            doc.update(subject=SUBJECT, session=folder.name,
                       start=start.strftime("%Y-%m-%dT%H:%M:%SZ"))
            (folder / "session.json").write_text(json.dumps(doc))
            for data in [sample / "mic.wav", *sample.glob("imu_*.csv")]:
                (folder / data.name).symlink_to(data)
            store.ingest(folder, result=dataclasses.replace(result, session=Session(folder)))
        days = pd.date_range(FIRST_DAY, periods=2 * n, freq="D")
        pain = np.clip(2 + 1.5 * np.sin(np.arange(len(days)) / 9.0), 0, 10).round(1)
        diary = pd.DataFrame({c: 0 for c in DIARY_COLUMNS}, index=range(len(days)))
        diary = diary.assign(time=days + pd.Timedelta(hours=11), pain=pain,
                             stiffness=(pain * 0.8).round(1),
                             note=["stiff after sitting" if k % 5 == 0 else ""
                                   for k in range(len(days))])
        diary.loc[len(days) // 2, ["trauma", "note"]] = [1, "slipped on ice, landed on my back"]
        store.add_diary(SUBJECT, diary[list(DIARY_COLUMNS)], "import")
        refresh_flags(store, SUBJECT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100)
    args = parser.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    db, report = OUT / "bench.db", OUT / f"{SUBJECT}.html"
    started = time.perf_counter()
    build(db, OUT / "sessions", args.sessions)
    print(f"store: {args.sessions} sessions built in {time.perf_counter() - started:.1f} s")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cold = json.loads(subprocess.run([sys.executable, "-c", CHILD, str(db), SUBJECT,
                                      str(report)], check=True, capture_output=True, text=True,
                                     env=env).stdout.splitlines()[-1])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU time as well as wall time: on a shared machine the wall time includes waiting.
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    warm = []
    with Store(db) as store:
        pops, flags = len(store.pops(SUBJECT)), len(store.flags(SUBJECT))
        for _ in range(3):
            t = time.perf_counter()
            write_subject_report(store, SUBJECT, report)
            warm.append(time.perf_counter() - t)
    size_mb = report.stat().st_size / 1e6
    print(f"report: {args.sessions} sessions, {pops} pops, {flags} flags -> {report}")
    print(f"  render cold (fresh process, imports included): {cold['wall_s']:.2f} s wall, "
          f"{cpu:.2f} s CPU, of which imports {cold['import_s']:.2f} s   (target < 5 s)")
    print(f"  render warm (best of 3): {min(warm):.2f} s")
    print(f"  size: {size_mb:.2f} MB   (target < 5 MB)")


if __name__ == "__main__":
    with published("report.py"):
        main()
