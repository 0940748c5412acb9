"""benchmarks/train_gate.py: comparing two judges on the same dev candidates."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from train_gate import _mean_f1, paired_difference  # noqa: E402


def _candidates() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eight sessions of ten candidates: four of a set with pops (the first three
    candidates of each are pops), four of a set without."""
    group = np.repeat(np.arange(8), 10)
    sets = np.where(group < 4, "pops", "quiet")
    y = (group < 4) & (np.arange(80) % 10 < 3)
    return y, sets, group


def test_the_paired_difference_is_the_mean_f1s_and_zero_for_the_same_judge() -> None:
    """The difference printed is the two judges' mean F1 difference on all the sessions; a
    judge against itself differs by nothing on every resample."""
    y, sets, group = _candidates()
    before = y.copy()
    before[[0, 10]] = False     # two pops lost
    before[[45, 65]] = True     # two false candidates in quiet sessions
    kept = y.copy()
    assert paired_difference(before, before, y, sets, group) == (0.0, 0.0, 0.0)
    lo, mid, hi = paired_difference(kept, before, y, sets, group)
    assert mid == pytest.approx(_mean_f1(kept, y, sets) - _mean_f1(before, y, sets))
    assert 0.0 <= lo <= mid <= hi


def test_a_gain_from_one_session_is_within_the_draw_and_one_from_every_session_is_not() -> None:
    """A judge that does better on one session only could have drawn it: its interval
    reaches 0. One that does better on every session has an interval above 0."""
    y, sets, group = _candidates()
    worse_everywhere = y & (np.arange(80) % 10 != 0)   # one pop lost per session
    worse_once = y.copy()
    worse_once[[0, 1, 2]] = False                      # every pop of one session lost
    lo_once, _, _ = paired_difference(y, worse_once, y, sets, group)
    lo_all, _, _ = paired_difference(y, worse_everywhere, y, sets, group)
    assert lo_once == 0.0
    assert lo_all > 0.0


def test_against_compares_each_saved_direction_and_refuses_other_candidates(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--against`` prints one line per score the earlier run saved (out of fold, each
    carry-over direction on the rows it scored), says which it lacks, and refuses a file of
    other candidates."""
    from train_gate import against

    y, sets, group = _candidates()
    oof = np.where(y, 0.95, 0.1)
    carried = np.where(group < 2, np.nan, oof)  # scored only on sessions 2-7
    path = tmp_path / "oof.npz"
    np.savez(path, oof=oof, y=y, sets=sets, group=group, to_first=carried)
    against(path, {"oof": oof, "to_first": carried, "to_family": oof}, y, sets, group, 0.9)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("mean F1 out of fold +0.000 (95 % over resamples of the "
                             "sessions: +0.000 to +0.000)")
    assert "carried over, family dev → first simulator +0.000" in lines[1]
    assert "no to_family scores there" in lines[2]
    with pytest.raises(SystemExit, match="other candidates"):
        against(path, {"oof": oof}, ~y, sets, group, 0.9)
