"""The one pipeline: pops and motion from one pass, written as docs/formats.md's output folder."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

import backpop_sense
from backpop_sense.correlate import PopInContext
from backpop_sense.motion.context import ContextConfig
from backpop_sense.pipeline import (
    DEFAULT_CONFIG,
    Pipeline,
    PipelineConfig,
    analyze,
    default_parameters,
    open_replay,
)
from backpop_sense.pops.detector import LIVE_CHUNK
from backpop_sense.pops.locate import LocatorConfig
from backpop_sense.pops.stage import Heard, Pop, Rejected
from backpop_sense.store import Store, analysis_version
from backpop_sense.vocab import CONTEXTS

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
BACKPOP = Path(sys.executable).parent / "backpop"
PACKAGE = Path(backpop_sense.__file__).parent


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


def test_every_stage_has_its_parameters_in_the_analysis_version() -> None:
    """A change to any stage's parameters, motion and locator included, is another analysis:
    the store re-analyses what it holds under the old version."""
    assert sorted(default_parameters()) == ["correlate", "detector", "gate", "locator", "motion"]
    default = analysis_version()
    changed = [
        PipelineConfig(detector=replace(DEFAULT_CONFIG.detector, threshold=7.0)),
        PipelineConfig(gate=replace(DEFAULT_CONFIG.gate, min_score=0.5)),
        PipelineConfig(locator=LocatorConfig(prior_weight=0.5)),
        PipelineConfig(correlate=replace(DEFAULT_CONFIG.correlate, pool_reach=2)),
        PipelineConfig(motion=replace(DEFAULT_CONFIG.motion, upright_deg=20.0)),
        PipelineConfig(motion=replace(DEFAULT_CONFIG.motion, context=ContextConfig(twist_deg=20))),
    ]
    versions = {analysis_version(c.to_dict()) for c in changed}
    assert len(versions) == len(changed) and default not in versions
    assert analysis_version(PipelineConfig().to_dict()) == default


def test_a_session_analysed_with_other_motion_parameters_is_analysed_again_on_ingest(
        tmp_path: Path) -> None:
    session = SAMPLES / "S02" / "2026-11-10a"
    stiffer = PipelineConfig(motion=replace(DEFAULT_CONFIG.motion, upright_deg=10.0))
    other = analyze(session, stiffer)
    assert other.parameters["motion"]["upright_deg"] == 10.0
    with Store(tmp_path / "backpop.db") as store:
        assert store.ingest(session, result=other) == "stored"
        assert store.sessions()["analysis_version"].tolist() == [
            analysis_version(stiffer.to_dict())]
        assert store.ingest(session) == "replaced"  # the defaults' version differs: re-run
        assert store.sessions()["analysis_version"].tolist() == [analysis_version()]
        assert store.ingest(session) == "unchanged"


def test_the_pipeline_is_run_only_through_analyze() -> None:
    """No module but pipeline.py builds the stage chain (each caller running it its own way
    is how the motion parameters once went missing from the analysis version)."""
    built = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "pipeline.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(
                    node.func, "attr", None)) in {"Pipeline", "Correlator", "MotionTracker"}:
                built.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert built == []


def test_a_replayed_stream_paced_live_gives_the_offline_result() -> None:
    """The live config (short chunks) and a paced source through the same entry: the same
    pops and motion as the offline analysis, each block's outputs handed to ``on_output``."""
    session = SAMPLES / "S02" / "2026-11-17a"
    offline = analyze(session)
    seen: list = []
    live = analyze(open_replay(session, block_size=1024), DEFAULT_CONFIG.live(),
                   on_output=lambda outputs, block: seen.extend(outputs))
    assert [(p.t, p.level, p.kind) for p in live.pops] == [
        (p.t, p.level, p.kind) for p in offline.pops]
    assert live.frames == offline.frames and live.motion_events == offline.motion_events
    assert {p.t for p in live.pops} <= {o.t for o in seen if isinstance(o, PopInContext)}
    assert live.parameters["detector"]["chunk"] == LIVE_CHUNK


def test_pops_heard_early_do_not_depend_on_the_blocks_and_are_all_judged_later() -> None:
    """The gate's provisional verdicts (:class:`Heard`) are the same for a file cut into big
    blocks and a paced stream in short ones; each comes before the final judgement of its
    onset, which confirms it as a pop or overrules it."""
    session = SAMPLES / "S02" / "2026-11-17a"
    runs = {}
    for name, source, config in (("offline", session, DEFAULT_CONFIG),
                                 ("live", open_replay(session, block_size=1024),
                                  DEFAULT_CONFIG.live())):
        seen: list = []
        analyze(source, config, on_output=lambda outputs, block, seen=seen: seen.extend(outputs))
        runs[name] = seen
    heard = [(o.t, o.pop.level) for o in runs["live"] if isinstance(o, Heard)]
    assert heard and heard == [(o.t, o.pop.level) for o in runs["offline"]
                               if isinstance(o, Heard)]
    order = [(type(o), o.t) for o in runs["live"] if isinstance(o, Heard | Pop | Rejected)]
    for t, _ in heard:
        first = next(k for k, (_, u) in enumerate(order) if u == t)
        assert order[first][0] is Heard
        assert [kind for kind, u in order[first + 1:] if u == t] in ([Pop], [Rejected])


def test_an_analysis_nobody_watches_skips_the_provisional_verdicts_and_loses_nothing() -> None:
    """Without ``on_output`` nobody sees the pops heard early, so the pipeline does not make
    them; the pops, their places and kinds, and every rejection are the same as when it
    does."""
    session = SAMPLES / "S02" / "2026-11-17a"
    seen: list = []
    watched = analyze(session, on_output=lambda outputs, block: seen.extend(outputs))
    unwatched = analyze(session)
    assert any(isinstance(o, Heard) for o in seen)
    assert [(p.t, p.level, p.kind, p.context) for p in unwatched.pops] == [
        (p.t, p.level, p.kind, p.context) for p in watched.pops]
    assert [(r.t, r.reason) for r in unwatched.rejected] == [
        (r.t, r.reason) for r in watched.rejected]
    source = open_replay(session)
    quiet = Pipeline(source.session, live=False)
    assert not any(isinstance(o, Heard) for block in source for o in quiet.feed(block))
