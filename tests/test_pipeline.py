"""The one pipeline: pops and motion from one pass, written as docs/formats.md's output folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from backpop_sense.motion.context import CONTEXTS

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
BACKPOP = Path(sys.executable).parent / "backpop"


def test_analyze_writes_pops_in_motion_context_motion_and_events(tmp_path: Path) -> None:
    session = SAMPLES / "S02" / "2026-11-10a"  # the session with a fall
    run = subprocess.run([str(BACKPOP), "analyze", str(session), "-o", str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    motion = pd.read_csv(tmp_path / "motion.csv")
    assert list(motion.columns) == ["t", "flexion_deg", "lateral_deg", "twist_deg", "context"]
    assert abs(len(motion) - 500) <= 20  # 50 s at 10 Hz, less the tracker's warm-up
    assert set(motion["context"]) <= set(CONTEXTS)
    events = pd.read_csv(tmp_path / "events.csv")
    fall_truth = json.loads((session / "session.json").read_text())["simulation"]["falls_s"]
    falls = events[events["type"] == "fall"]["t"].to_numpy()
    assert len(falls) == 1 and abs(falls[0] - fall_truth[0]) < 1.0
    pops = pd.read_csv(tmp_path / "pops.csv")
    assert len(pops) >= 1
    assert set(pops["context"]) <= set(CONTEXTS)
    assert pops["flexion_deg"].notna().all()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["motion"]["falls"] == 1
    assert summary["by_context"]


def test_evaluate_scores_motion_against_truth() -> None:
    session = SAMPLES / "S01" / "2026-11-02a"
    run = subprocess.run([str(BACKPOP), "evaluate", str(session), "--json"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    [row] = json.loads(run.stdout)
    motion = row["motion"]
    assert max(motion["rmse_deg"].values()) < 3.0
    assert motion["context_accuracy"] > 0.9


def test_bad_options_are_refused_with_status_2() -> None:
    session = str(SAMPLES / "S01" / "2026-11-02a")
    for args in (["evaluate", session, "--block-size", "0"],
                 ["analyze", session, "--block-size", "-5"], ["replay", session, "--speed", "-1"]):
        run = subprocess.run([str(BACKPOP), *args], capture_output=True, text=True)
        assert run.returncode == 2, args
        assert run.stderr.strip().count("\n") == 0 and "Traceback" not in run.stderr
