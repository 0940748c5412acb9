"""Pops in motion context, pop typing and the session statistics (correlate.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from scipy import stats

from backpop_sense.correlate import (
    CorrelateConfig,
    Correlator,
    PopInContext,
    pool_levels,
    rate_ratio,
    statistics,
    type_pops,
)
from backpop_sense.evaluate import score_pops, score_typing
from backpop_sense.motion.tracker import MotionFrame
from backpop_sense.pipeline import PipelineConfig, analyze
from backpop_sense.pops.repeats import rescue
from backpop_sense.pops.stage import Pop
from backpop_sense.session import Session
from backpop_sense.simulate import SimConfig, simulate_session

BACKPOP = Path(sys.executable).parent / "backpop"
CONFIG = CorrelateConfig()


def _pop(t: float, level: str = "L3") -> Pop:
    return Pop(t, level, -30.0, 15.0, 2000.0, 5.0, 10.0, 6.0)


def _at(t: float, level: str = "L3", context: str = "other", angles=(10.0, 0.0, 0.0),
        end_fraction: float | None = None) -> PopInContext:
    return PopInContext(_pop(t, level), context, *angles, 0.0, end_fraction)


def test_refractory_window_is_honoured() -> None:
    five = type_pops([_at(100.0), _at(400.0)])
    assert [p.kind for p in five] == ["unknown", "unknown"]
    assert "refractory" in five[1].rule and "5.0 min earlier" in five[1].rule
    twenty_five = type_pops([_at(100.0), _at(1600.0)])
    assert [p.kind for p in twenty_five] == ["cavitation", "cavitation"]
    other_level = type_pops([_at(100.0, "L3"), _at(400.0, "L4")])
    assert [p.kind for p in other_level] == ["cavitation", "cavitation"]
    shorter = type_pops([_at(100.0), _at(400.0)], CorrelateConfig(refractory_s=120.0))
    assert [p.kind for p in shorter] == ["cavitation", "cavitation"]


def test_snap_needs_the_same_level_and_angle_in_separate_cycles() -> None:
    cycle = [_at(10.0 + 8 * k, "L2", angles=(25.0 + k % 2, 0.5, 0.0)) for k in range(4)]
    assert [p.kind for p in type_pops(cycle)] == ["snap"] * 4
    moving_angle = [_at(10.0 + 8 * k, "L2", angles=(20.0 + 10 * k, 0.0, 0.0)) for k in range(4)]
    assert "snap" not in [p.kind for p in type_pops(moving_angle)]
    one_movement = [_at(10.0 + 0.5 * k, "L2", angles=(25.0, 0.0, 0.0)) for k in range(3)]
    assert "snap" not in [p.kind for p in type_pops(one_movement)]


LEVELS5 = ("L1", "L2", "L3", "L4", "L5")


def _placed(t: float, costs: dict[str, float], angles=(25.0, 0.0, 0.0)) -> PopInContext:
    """A pop at ``angles`` whose own fit cost ``costs`` (the rest of LEVELS5 cost 2)."""
    table = tuple((lv, costs.get(lv, 2.0)) for lv in LEVELS5)
    level = min(table, key=lambda c: c[1])[0]
    pop = Pop(t, level, -30.0, 15.0, 2000.0, 5.0, 10.0, 6.0, level_costs=table)
    return PopInContext(pop, "bend", *angles, 0.0, None)


def test_repeats_at_one_posture_are_placed_together() -> None:
    clear = [_placed(10.0 + 8 * k, {"L3": 0.1, "L2": 0.8, "L4": 0.9}) for k in range(3)]
    faint = _placed(34.0, {"L4": 0.30, "L3": 0.40})  # alone a near tie, L4 by a hair
    pooled = pool_levels([*clear, faint])
    assert [p.level for p in pooled] == ["L3"] * 4
    assert [p.own_level for p in pooled] == [None, None, None, "L4"]
    typed = type_pops([*clear, faint])
    assert [p.kind for p in typed] == ["snap"] * 4
    assert typed[-1].rule.endswith("(its own sound alone: L4)")
    assert "own sound" not in typed[0].rule
    # its own fit rules L3 out: a neighbouring source at the same posture stays where it is
    other = _placed(34.0, {"L4": 0.30, "L3": 0.80})
    assert pool_levels([*clear, other])[-1].level == "L4"
    # another posture, or too few repeats, or pooling off: each pop keeps its own level
    elsewhere = _placed(34.0, {"L4": 0.30, "L3": 0.40}, angles=(45.0, 0.0, 0.0))
    assert pool_levels([*clear, elsewhere])[-1].level == "L4"
    assert pool_levels([clear[0], faint])[-1].level == "L4"
    assert pool_levels([*clear, faint], CorrelateConfig(pool_reach=0))[-1].level == "L4"
    # two repeats at L3 are not yet a recurring source there: nobody is moved to them
    assert pool_levels([clear[0], clear[1], faint])[-1].level == "L4"
    # two levels away is another source, not a misplaced repeat
    far = _placed(34.0, {"L5": 0.30, "L3": 0.40})
    assert pool_levels([*clear, far])[-1].level == "L5"


def test_pooling_places_a_faint_snapping_tendon_better(tmp_path: Path) -> None:
    """A tendon snapping every cycle at 0 dB SNR: alone, some of its faint pops are misplaced
    (asserted: this session is a case that needs pooling); pooled, they are placed right.
    The seed is the first from 31 on which both assertions hold (a scratch scan with the
    locator of 2026-12-06: most seeds' faint snaps are placed right alone, and on none did
    pooling place fewer right)."""
    simulate_session(tmp_path, SimConfig("snapping", minutes=3.0, seed=201, snr_db=0.0))
    alone = analyze(tmp_path, PipelineConfig(correlate=CorrelateConfig(pool_reach=0))).pops
    truth = Session(tmp_path).truth()

    def accuracy(pops: list[PopInContext]) -> float:
        s = score_pops(truth["t"], truth["level"], [p.t for p in pops],
                       [p.level for p in pops], 180.0)
        return s["level_accuracy"]

    assert accuracy(alone) < 0.9
    assert accuracy(pool_levels(alone)) >= 0.95


def _doubtful(t: float, costs: dict[str, float], angles=(25.0, 0.0, 0.0),
              reason: str = "noise") -> PopInContext:
    """An onset the gate rejected as ``reason``, placed as :func:`_placed` places a pop."""
    return replace(_placed(t, costs, angles), rescued=reason)


def test_a_rejected_onset_that_repeats_a_recurring_snap_is_taken_back() -> None:
    """A tendon snapping at L3 at 24-26 deg of flexion in four cycles; onsets the gate
    rejected for not standing out are taken back where they repeat it, and only there."""
    clear = [_placed(10.0 + 8 * k, {"L3": 0.1, "L2": 0.8, "L4": 0.9},
                     angles=(24.0 + 2 * (k % 2), 0.0, 0.0)) for k in range(4)]
    typed = type_pops(clear)
    assert [p.kind for p in typed] == ["snap"] * 4
    faint = {"L4": 0.30, "L3": 0.40}  # its own sound: L4 by a hair
    repeat = _doubtful(50.0, faint, angles=(25.2, 0.0, 0.0))
    back = rescue(typed, [repeat], CONFIG)
    assert [(p.t, p.level, p.own_level) for p in back] == [(50.0, "L3", "L4")]
    # not where the posture is off, its sound places it elsewhere, its cycle was heard
    # (18.5 s: 0.5 s after the second snap), or no snap recurs
    assert rescue(typed, [_doubtful(50.0, faint, angles=(27.5, 0.0, 0.0))], CONFIG) == []
    assert rescue(typed, [_doubtful(50.0, {"L4": 0.30, "L3": 0.80})], CONFIG) == []
    assert rescue(typed, [_doubtful(18.5, faint)], CONFIG) == []
    assert rescue(type_pops(clear[:2]), [repeat], CONFIG) == []
    # two onsets in one cycle: the one nearer the snap's posture
    near, off = _doubtful(50.3, faint, (25.1, 0.0, 0.0)), _doubtful(50.0, faint, (25.8, 0, 0))
    assert [p.t for p in rescue(typed, [off, near], CONFIG)] == [50.3]
    # nor where a pop was heard in that cycle at the posture one level off (it may be the
    # snap, misplaced)
    heard = type_pops(sorted([*clear, _placed(49.9, {"L4": 0.1})], key=lambda p: p.t))
    assert heard[-1].level == "L4" and rescue(heard, [repeat], CONFIG) == []
    assert len(rescue(type_pops([*clear, _placed(49.9, {"L5": 0.1})]), [repeat], CONFIG)) == 1
    # nor where an onset turned away for a sign of something else (a knock, a rub) lies
    # nearer the snap's posture in that cycle: the snap may have been that one
    assert rescue(typed, [repeat], CONFIG, others=[(50.1, (25.0, 0.0, 0.0))]) == []
    assert len(rescue(typed, [repeat], CONFIG, others=[(50.1, (27.0, 0.0, 0.0)),
                                                       (53.0, (25.0, 0.0, 0.0))])) == 1
    # once taken back it is a snap like its repeats, and says why it was rejected
    final = type_pops(sorted([*clear, *back], key=lambda p: p.t))
    assert [p.kind for p in final] == ["snap"] * 5
    assert "gate had rejected it (noise)" in final[-1].rule


def test_rescued_onsets_are_pops_and_no_longer_rejected(tmp_path: Path) -> None:
    """On a faint snapping session with artifacts, the onsets taken back are snaps, each at
    a true pop (within 10 ms) but for at most one in four, and none is still listed as
    rejected."""
    simulate_session(tmp_path, SimConfig("snapping", minutes=3.0, seed=35, snr_db=0.0))
    result = analyze(tmp_path)
    back = [p for p in result.pops if p.rescued is not None]
    truth = Session(tmp_path).truth()
    assert back, "this session is a case with faint repeats to take back"
    assert all(p.kind == "snap" and p.rescued in ("noise", "no burst") for p in back)
    hits = sum(min(abs(truth["t"] - p.t)) <= 0.01 for p in back)
    assert hits >= 0.75 * len(back)
    assert not {p.t for p in back} & {r.t for r in result.rejected}
    off = analyze(tmp_path, PipelineConfig(correlate=CorrelateConfig(rescue=False)))
    assert [p.t for p in off.pops] == [p.t for p in result.pops if p.rescued is None]
    assert {p.t for p in back} <= {r.t for r in off.rejected}


def test_readjustment_is_twist_or_stretch_near_end_of_range() -> None:
    pops = type_pops([_at(10.0, "L1", "twist", (0, 0, 35.0), 0.97),
                      _at(20.0, "L2", "twist", (0, 0, 18.0), 0.5),
                      _at(30.0, "L3", "stretch", (45.0, 0, 0), 0.9),
                      _at(40.0, "L4", "bend", (0, 25.0, 0), 1.0)])
    assert [p.kind for p in pops] == ["readjustment", "cavitation", "readjustment", "cavitation"]


def test_correlator_places_pops_in_context_whatever_the_feeding() -> None:
    # A twist out to 40 deg and back over 4 s, at 10 Hz; pops at 0.6 s (12 deg) and 2.0 s (peak).
    frames = []
    for k in range(80):
        t = k / 10
        twist = 40.0 * max(0.0, 1 - abs(t - 2.0) / 2.0) if t <= 4.0 else 0.0
        frames.append(MotionFrame(t, 0.0, 0.0, twist, "twist" if twist > 15 else "other",
                                  0.0, 0.0, 0.0))
    pops = [_pop(0.6, "L1"), _pop(2.02, "L2")]

    def run(step: int) -> list[PopInContext]:
        c = Correlator()
        c.feed(pops)
        for i in range(0, len(frames), step):
            c.feed(frames[i:i + step])
        return c.finish()

    one, many = run(80), run(3)
    assert one == many
    assert (one[0].context, one[1].context) == ("other", "twist")
    assert one[1].twist_deg == pytest.approx(40.0) and one[1].end_fraction == pytest.approx(1.0)
    assert one[0].end_fraction is None
    assert one[1].kind == "readjustment"


def test_no_motion_leaves_context_unknown() -> None:
    c = Correlator(has_motion=False)
    placed = c.feed([_pop(5.0)])
    assert [p.context for p in placed] == ["unknown"]
    assert [p.kind for p in c.finish()] == ["cavitation"]


def test_rate_ratio_matches_scipy_exact_interval() -> None:
    # 12 pops in 10 min of twist/stretch, 6 in 20 min of other time.
    r = rate_ratio(12, 10.0, 6, 20.0)
    assert r["ratio"] == pytest.approx(4.0)
    # Clopper-Pearson from the beta distribution, mapped to the rate ratio by hand.
    lo_p = stats.beta.ppf(0.025, 12, 6 + 1)
    hi_p = stats.beta.ppf(0.975, 12 + 1, 6)
    assert r["low"] == pytest.approx(lo_p / (1 - lo_p) * 2.0, rel=1e-6)
    assert r["high"] == pytest.approx(hi_p / (1 - hi_p) * 2.0, rel=1e-6)
    assert rate_ratio(0, 10.0, 0, 20.0)["ratio"] is None
    assert rate_ratio(3, 10.0, 0, 20.0)["high"] is None  # unbounded above


def test_statistics_counts_rates_and_recurring_angles() -> None:
    pops = type_pops([_at(10.0 + 8 * k, "L2", "other", (25.0 + k, 0.0, 0.0)) for k in range(3)]
                     + [_at(100.0, "L4", "twist", (0, 0, 30.0), 1.0)])
    s = statistics(pops, {"twist": 60.0, "other": 120.0, "static": 60.0}, 240.0)
    assert s["count"] == 4 and s["per_minute"] == pytest.approx(1.0)
    assert s["by_level_kind_context"] == {"L2": {"snap": {"other": 3}},
                                          "L4": {"readjustment": {"twist": 1}}}
    assert s["rate_per_minute_by_context"] == {"other": 1.5, "static": 0.0, "twist": 1.0}
    rr = s["twist_stretch_rate_ratio"]
    assert (rr["events"], rr["other_events"]) == (1, 3)
    assert rr["ratio"] == pytest.approx((1 / 1.0) / (3 / 3.0))
    assert s["recurring"]["L2"]["flexion_deg"] == {"mean": 26.0, "sd": 1.0}


@pytest.fixture(scope="module")
def typed_sessions(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("kinds")
    paths = []
    for scenario in ("twist-cavitation", "snapping"):
        path = root / scenario
        simulate_session(path, SimConfig(scenario, minutes=3.0, seed=77))
        paths.append(path)
    return paths


def test_simulated_pops_are_typed_and_placed_right(typed_sessions: list[Path]) -> None:
    kinds, matched, right_kind, right_context = set(), 0, 0.0, 0.0
    for path in typed_sessions:
        result = analyze(path)
        truth = result.session.truth()
        kinds |= set(truth["kind"])
        s = score_typing(truth, [p.t for p in result.pops], [p.kind for p in result.pops],
                         [p.context for p in result.pops], result.session.motion_truth())
        matched += s["matched"]
        right_kind += s["kind_accuracy"] * s["matched"]
        right_context += s["context_accuracy"] * s["matched"]
    assert kinds == {"cavitation", "snap", "readjustment"}
    assert matched >= 15
    assert right_kind / matched >= 0.9
    assert right_context / matched >= 0.9


def test_analyze_writes_kinds_rules_and_statistics(typed_sessions: list[Path],
                                                   tmp_path: Path) -> None:
    run = subprocess.run([str(BACKPOP), "analyze", str(typed_sessions[1]), "-o", str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    import pandas as pd

    pops = pd.read_csv(tmp_path / "pops.csv")
    assert set(pops["kind"]) <= {"cavitation", "snap", "readjustment", "unknown"}
    assert (pops["kind"] == "snap").sum() >= 5
    assert pops["kind_rule"].str.len().gt(0).all()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["by_kind"]["snap"] == (pops["kind"] == "snap").sum()
    [(level, recurring)] = summary["recurring"].items()
    assert recurring["flexion_deg"]["mean"] == pytest.approx(25.0, abs=3.0)
    assert summary["parameters"]["correlate"]["refractory_s"] == 1200.0
    assert {"scipy", "librosa", "backpop-sense"} <= set(summary["versions"])
    assert "twist_stretch_rate_ratio" in summary
