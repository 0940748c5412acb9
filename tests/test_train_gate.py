"""benchmarks/train_gate.py: comparing two judges on the same dev candidates."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from train_gate import _mean_f1, paired_difference  # noqa: E402


def _candidates() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Eight sessions of ten candidates, each session 15 minutes long: four of a set with
    pops (the first three candidates of each are pops), four of a set without."""
    group = np.repeat(np.arange(8), 10)
    sets = np.where(group < 4, "pops", "quiet")
    y = (group < 4) & (np.arange(80) % 10 < 3)
    return y, sets, group, np.full(80, 0.25)


def test_the_figure_prices_a_false_pop_per_hour_of_audio_without_pops() -> None:
    """Two false candidates in the hour of audio without pops cost 2 x FALSE_POP_WEIGHT;
    the same two in twice the audio (sessions twice as long) cost half as much, so adding
    dev sessions does not change what a false pop per hour weighs."""
    from train_gate import FALSE_POP_WEIGHT

    y, sets, group, hours = _candidates()
    kept = y.copy()
    kept[[45, 65]] = True
    assert _mean_f1(y, y, sets, group, hours) == 1.0
    assert _mean_f1(kept, y, sets, group, hours) == pytest.approx(1.0 - 2 * FALSE_POP_WEIGHT)
    assert _mean_f1(kept, y, sets, group, 2 * hours) == pytest.approx(1.0 - FALSE_POP_WEIGHT)
    lost = y.copy()
    lost[[0, 10]] = False  # 10 of 12 pops: F1 2 * 10 / (2 * 10 + 2)
    assert _mean_f1(lost, y, sets, group, hours) == pytest.approx(20 / 22)


def test_the_paired_difference_is_the_mean_f1s_and_zero_for_the_same_judge() -> None:
    """The difference printed is the two judges' mean F1 difference on all the sessions; a
    judge against itself differs by nothing on every resample."""
    y, sets, group, hours = _candidates()
    before = y.copy()
    before[[0, 10]] = False     # two pops lost
    before[[45, 65]] = True     # two false candidates in quiet sessions
    kept = y.copy()
    assert paired_difference(before, before, y, sets, group, hours) == (0.0, 0.0, 0.0)
    lo, mid, hi = paired_difference(kept, before, y, sets, group, hours)
    assert mid == pytest.approx(_mean_f1(kept, y, sets, group, hours)
                                - _mean_f1(before, y, sets, group, hours))
    assert 0.0 <= lo <= mid <= hi


def test_a_gain_from_one_session_is_within_the_draw_and_one_from_every_session_is_not() -> None:
    """A judge that does better on one session only could have drawn it: its interval
    reaches 0. One that does better on every session has an interval above 0."""
    y, sets, group, hours = _candidates()
    worse_everywhere = y & (np.arange(80) % 10 != 0)   # one pop lost per session
    worse_once = y.copy()
    worse_once[[0, 1, 2]] = False                      # every pop of one session lost
    lo_once, _, _ = paired_difference(y, worse_once, y, sets, group, hours)
    lo_all, _, _ = paired_difference(y, worse_everywhere, y, sets, group, hours)
    assert lo_once == 0.0
    assert lo_all > 0.0


def test_against_compares_each_saved_direction_and_refuses_other_candidates(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--against`` prints one line per score the earlier run saved (out of fold, each
    carry-over direction on the rows it scored), says which it lacks, and refuses a file of
    other candidates."""
    from train_gate import against

    y, sets, group, hours = _candidates()
    oof = np.where(y, 0.95, 0.1)
    carried = np.where(group < 2, np.nan, oof)  # scored only on sessions 2-7
    path = tmp_path / "oof.npz"
    np.savez(path, oof=oof, y=y, sets=sets, group=group, from_dev_to_first=carried)
    against(path, {"oof": oof, "from_dev_to_first": carried, "lomo": oof}, y, sets, group,
            hours, 0.9)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("mean F1 out of fold +0.000 (95 % over resamples of the "
                             "sessions: +0.000 to +0.000)")
    assert lines[1].endswith("difference): pops 1.000 1.000 +0.000; "
                             "quiet 0.000/h 0.000/h +0.000/h")
    assert "carried over, dev → first +0.000" in lines[2]
    assert "no lomo scores there" in lines[3]
    with pytest.raises(SystemExit, match="other candidates"):
        against(path, {"oof": oof}, ~y, sets, group, hours, 0.9)


def test_against_compares_on_the_sets_both_runs_scored(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A set added since the earlier run (its sessions numbered among the others) is left
    out of the comparison, which is then made on the earlier run's rows."""
    from train_gate import against, paired_difference

    y, sets, group, hours = _candidates()
    before = np.where(y, 0.95, 0.1)
    path = tmp_path / "oof.npz"
    np.savez(path, oof=before, y=y, sets=sets, group=group)
    # The new run: one more session (10 candidates, all kept) numbered between the others.
    split = int(np.argmax(group == 2))
    added = np.full(10, "added set")
    y2 = np.concatenate([y[:split], np.ones(10, bool), y[split:]])
    sets2 = np.concatenate([sets[:split], added, sets[split:]])
    group2 = np.concatenate([group[:split], np.full(10, 2), group[split:] + 1])
    hours2 = np.concatenate([hours[:split], np.full(10, hours[0]), hours[split:]])
    now = np.concatenate([before[:split], np.full(10, 0.99), np.full(len(y) - split, 0.1)])
    against(path, {"oof": now}, y2, sets2, group2, hours2, 0.9)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("on the sets both runs scored (not added set)")
    mid, lo, hi = (float(v) for v in re.findall(r"[-+]\d\.\d{3}", lines[1]))
    old_rows = sets2 != "added set"
    expected = paired_difference(now[old_rows] >= 0.9, before >= 0.9, y, sets, group, hours)
    assert (lo, mid, hi) == pytest.approx(expected, abs=5e-4)
    assert mid < 0  # the pops lost after the added session count; the added set's do not
    with pytest.raises(SystemExit, match="other candidates"):
        against(path, {"oof": now}, ~y2, sets2, group2, hours2, 0.9)


def test_leaving_one_model_out_scores_each_model_only_from_the_others(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Each sound model's candidates are scored by judges trained on all the other models
    and on all of them but one; ``lomo`` gives every row its score from the judges that
    never heard its model. A feature that tells pops in every model carries over whatever
    the training."""
    from threadpoolctl import threadpool_limits
    from train_gate import MODELS, carry_key, model_of, transfer

    from backpop_sense.pops.model import FEATURES

    rng = np.random.default_rng(0)
    names = ["first snr10-art", "10-20 dB", "dev2 10-20 dB", "dev3 10-20 dB", "dev4 10-20 dB"]
    n = 120 * len(names)
    sets = np.repeat(names, 120)
    group = np.repeat(np.arange(4 * len(names)), 30)
    y = rng.random(n) < 0.3
    x = rng.normal(0, 1, (n, len(FEATURES)))
    x[:, FEATURES.index("mics")] = 3.0
    # one column tells pops apart exactly: two values, so the trees' binning (255 bins at
    # most, each possibly straddling a gap between clusters of many values) cannot blur it
    x[:, 0] = np.where(y, 3.0, -3.0)
    assert list(dict.fromkeys(model_of(sets))) == list(MODELS)
    # One OpenMP thread and 15 bins: on these few rows the trees' binning otherwise waits on
    # joblib's polling and works out 255 weighted percentiles a feature (the judges learn
    # with sample weights), which took most of the test's 45 s; the pops are told apart by
    # one column of two values whatever the bins.
    with threadpool_limits(1, "openmp"):
        out = transfer(x, y, group, sets, np.full(n, 0.05), 0.5,
                       params={"max_iter": 20, "max_bins": 15, "random_state": 0},
                       learned=("first", "dev"))
    # per model: all the others and each four of them less one; for the three models the
    # judges do not learn from, the judges' own two models too; and lomo
    assert len(out) == 5 * 5 + 3 + 1
    for test in MODELS:
        others = tuple(m for m in MODELS if m != test)
        combos = [tuple(o for o in others if o != m) for m in others] + [others]
        if test not in ("first", "dev"):
            combos.append(("first", "dev"))
        for train in combos:
            scored = ~np.isnan(out[carry_key(train, test)])
            assert np.array_equal(scored, model_of(sets) == test)
    assert not np.isnan(out["lomo"]).any()
    assert np.array_equal(out["lomo"] >= 0.5, y)
    printed = capsys.readouterr().out
    assert "carried over, dev + dev2 + dev3 + dev4 → first: mean F1 1.000" in printed
    assert "adding dev3 to dev + dev2 + dev4, carried to first: +0.000" in printed
    assert ("all the others against first + dev (what the judges learn from), carried to "
            "dev4: +0.000") in printed
    assert "against first + dev (what the judges learn from), carried to dev:" not in printed
    assert "leave one model out (each from all the others): mean F1 1.000" in printed
    assert "min_score 0.50 against 0.90: +0.000 (95 %: +0.000 to +0.000)" in printed


def test_a_feature_weighed_apart_shifts_every_candidates_odds_alike() -> None:
    """With ``bending`` weighed apart (``--apart bending``), a still spine lowers the
    log-odds of a clear burst exactly as much as those of a doubtful one; weighed with the
    sound, the trees may veto the doubtful one while the spine is still and not the clear."""
    from scipy.special import logit
    from train_gate import Judges, apart

    from backpop_sense.pops.model import FEATURES

    rng = np.random.default_rng(1)
    n = 3000
    x = rng.normal(0, 1, (n, len(FEATURES)))
    x[:, FEATURES.index("mics")] = 3.0
    bend, clear = FEATURES.index("bending"), 0
    x[:, bend] = rng.uniform(0.0, 60.0, n)
    # pops are clear bursts, more often while the spine moves, and the two interact
    odds = 2.0 * x[:, clear] + 0.05 * x[:, bend] * (x[:, clear] < 0.5) - 2.0
    y = rng.random(n) < 1 / (1 + np.exp(-odds))
    group = np.arange(n) // 30
    params = {"max_iter": 60, "learning_rate": 0.1, "random_state": 0}
    rows = np.zeros((2, len(FEATURES)))
    rows[:, FEATURES.index("mics")] = 3.0
    rows[:, clear] = [3.0, 0.0]  # a clear burst and a doubtful one

    def shift(judges: Judges) -> np.ndarray:
        """How much moving at 40 deg/s raises each row's log-odds over a still spine."""
        moving, still = rows.copy(), rows.copy()
        moving[:, bend], still[:, bend] = 40.0, 0.0
        return (logit(judges.several.predict_proba(moving)[:, 1])
                - logit(judges.several.predict_proba(still)[:, 1]))

    weighed_apart = shift(Judges(x, y, group, {**params, "interaction_cst": apart(["bending"])}))
    assert weighed_apart[0] == pytest.approx(weighed_apart[1], abs=1e-9)
    together = shift(Judges(x, y, group, params))
    assert abs(together[0] - together[1]) > 0.1


def test_against_gives_each_sets_figure_of_both_runs() -> None:
    """The by-set line: a run that loses two pops in the set with pops and keeps one false
    candidate in the quiet set (an hour of audio) is below the other in both, each by its
    own set's figure."""
    from train_gate import _by_set

    y, sets, group, hours = _candidates()
    kept = y.copy()
    kept[[0, 10]] = False
    kept[45] = True
    pops, quiet = _by_set(kept, y, y, sets, group, hours)
    assert pops == ("pops", pytest.approx(20 / 22), 1.0, "")
    assert quiet == ("quiet", 1.0, 0.0, "/h")


def test_a_pops_copy_can_have_the_bending_of_a_pop_heard_with_the_spine_still() -> None:
    """``anytime`` copies each pop with an IMU reading: by default with the bending of another
    candidate of its session; with ``still`` (``--still-from``), with the bending of one of
    the pops so marked, whatever its session, never a moving one's."""
    from train_gate import FEATURES, anytime

    bend = FEATURES.index("bending")
    rng = np.random.default_rng(0)
    group = np.repeat(np.arange(4), 50)
    y = np.arange(200) % 5 == 0
    x = rng.normal(size=(200, len(FEATURES)))
    x[:, bend] = 30.0 + group                       # every session moving, at its own rate
    held = group == 3                               # session 3: a held stretch
    x[held & y, bend] = rng.uniform(0.5, 1.0, int((held & y).sum()))
    pops = int(y.sum())
    xa, ya, wa = anytime(x, y, group, np.random.default_rng(1), 0.5)
    copies = xa[200:, bend]
    assert len(copies) == pops and ya[200:].all() and np.allclose(wa[200:], 0.5)
    assert set(copies[:10]) == {30.0}               # session 0's copies: session 0's moments
    xs, ys, ws = anytime(x, y, group, np.random.default_rng(1), 0.5, still=held & y)
    still = xs[200:, bend]
    assert len(still) == pops and (still <= 1.0).all() and (still >= 0.5).all()
    assert set(np.round(still, 9)) <= set(np.round(x[held & y, bend], 9))
    assert np.array_equal(np.delete(xs[200:], bend, axis=1), np.delete(xa[200:], bend, axis=1))


def test_a_sets_name_without_its_model() -> None:
    from train_gate import set_name

    sets = np.array(["held stretch", "dev2 held stretch", "dev4 0-6 dB", "first snr0-art",
                     "strap dev3 10-20 dB"])
    assert set_name(sets).tolist() == ["held stretch", "held stretch", "0-6 dB",
                                       "first snr0-art", "10-20 dB"]
