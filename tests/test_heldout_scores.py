"""benchmarks/heldout.py: the intervals printed beside a set's F1 and false pops per hour."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from heldout import Outcome, f1_interval, poisson_interval, score  # noqa: E402


def _session(name: str, truth: list[float], found: list[float]) -> Outcome:
    """A 60 s session with pops at ``truth`` (s) and ``found`` (s)."""
    n, m = len(truth), len(found)
    return Outcome(name, 60.0, truth, ["T10"] * n, ["snap"] * n, [""] * n, found,
                   ["T10"] * m, ["snap"] * m, [""] * m, [], [], 1.0)


def test_a_poisson_rate_from_a_count_has_its_exact_interval() -> None:
    """Garwood's exact 95 % interval: 0 counted leaves up to 3.69; 7 counted, 2.81-14.42
    (the published table's values)."""
    assert poisson_interval(0) == (0.0, pytest.approx(3.689, abs=1e-3))
    lo, hi = poisson_interval(7)
    assert lo == pytest.approx(2.814, abs=1e-3) and hi == pytest.approx(14.423, abs=1e-3)


def test_the_f1_interval_spans_what_other_draws_of_the_sessions_give() -> None:
    """Sessions all found alike leave no room for the F1 to move; half found and half
    missed give an interval around the pooled F1 (0.67) well inside 0-1, and wider with
    fewer sessions; a set without pops has none."""
    perfect = [_session(f"p{k}", [10.0, 20.0], [10.0, 20.0]) for k in range(6)]
    assert f1_interval(perfect) == (1.0, 1.0)
    missed = [_session(f"m{k}", [10.0, 20.0], []) for k in range(6)]
    mixed = perfect + missed
    assert score(mixed)["10ms"]["f1"] == pytest.approx(2 / 3)
    lo, hi = f1_interval(mixed)
    assert 0.0 < lo < 2 / 3 < hi < 1.0
    lo_few, hi_few = f1_interval(perfect[:2] + missed[:2])
    assert hi_few - lo_few > hi - lo
    assert f1_interval([_session("q", [], [30.0])]) is None
    assert score(mixed)["f1_interval"] == (lo, hi)
