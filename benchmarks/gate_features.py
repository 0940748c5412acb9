"""Try candidate features the judge does not have, on the dev sessions only.

Adds to every dev candidate of ``make gate-model`` (``train_gate.py``) two groups of
features and prints, for each group, what the judge keeps out of fold (5 folds by session)
and how it carries over between the two dev sound models, as ``train_gate.py`` does for the
shipped features (band features blanked). The row ``without loc_`` blanks the shipped
features that say where along the spine the onset comes from (``artifacts.place``, shipped
since 2026-12-07), to show what they bring.

``ctx_``
    The candidate's neighbours: onsets within 0.5 s and 2 s, and how far its excess (dB)
    and log strength stand above the largest of its neighbours' within 1 s (a pop stands out
    of what is around it; syllables and rub crackle do not).
``src_``
    Whether the onset is the sound already under way or a new source: how loud the 20 ms
    before it were over the usual background (dB, largest over mics), how far each mic's
    share of its first 5 ms differs from its share of those 20 ms (dB, largest over mics),
    and how far the first 5 ms rose over those 20 ms (dB, largest over mics); NaN with one
    mic. A syllable's or a rub's new onset keeps the place of the sound it belongs to; a
    pop on top of it comes from its own level.

For the shipped features it also prints what the pops the judge misses are like against
those it keeps (excess, contrast, another onset within 0.3 s), what was sounding at each
candidate it passes on the family's artifacts-only sessions, how many heart sounds that
became candidates the rhythm test puts in their train, and how far five trainings on the
same candidates differ by chance alone (the judge's random state), the band any row must
leave to tell. With and without ``loc_`` it prints what was sounding at the family's
candidates that a judge trained on the first simulator alone passes.

The mics' powers around each onset are not in ``train_gate.py``'s cache; they are kept
beside each session in ``gate-energies-<key>.npz`` on first use (keyed as
``train_gate.py``'s cache; about 12 minutes on 2 cores).

It reads the first simulator and ``dev`` only, and compares them one way each: what a
change is chosen on since 2026-12-07 is ``train_gate.py --carry-only --against``, which
leaves one of five dev sound models out (``benchmarks/detection.md``); this script is for
looking into the candidates, not for choosing.

Run: ``.venv/bin/python benchmarks/gate_features.py`` after ``make gate-model``.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import heldout  # noqa: E402
from train_gate import (  # noqa: E402
    DEV_SEEDS,
    PARAMS,
    THRESHOLDS,
    Judges,
    _cache_key,
    _mean_f1,
    candidates,
    first_simulator,
    one_mic_rows,
    out_of_fold,
)

from backpop_sense.pipeline import open_replay  # noqa: E402
from backpop_sense.pops import detector  # noqa: E402
from backpop_sense.pops.artifacts import GateConfig  # noqa: E402
from backpop_sense.pops.model import FEATURES  # noqa: E402
from backpop_sense.pops.stage import PopStage  # noqa: E402
from backpop_sense.simulate import sounding_events  # noqa: E402

CTX = ("ctx_near_0.5s", "ctx_near_2s", "ctx_rel_excess_db", "ctx_rel_log_strength")
SRC = ("src_pre_db", "src_change_db", "src_head_pre_db")
SRC_HEAD_S = 0.005
"""The onset's head for the ``src_`` group (s): as long as the shortest pop, and the frames
its background is taken over."""
BLANKED = ("shape_", "log2_band")
"""Blanked as in ``make gate-model``."""


def energies(path: Path) -> dict[str, np.ndarray]:
    """Every candidate's time (``t``, s), the mics, and for the ``src_`` group each mic's
    power (full scale squared, above the locator's high-pass) in the onset's first
    ``SRC_HEAD_S`` (``head``), in the 20 ms before it (``pre``) and the median over the
    background's frames (``bg``)."""
    cache = path / f"gate-energies-{_cache_key()}.npz"
    if not cache.exists():
        source = open_replay(path)
        stage = PopStage(source.session.info, source.session.audio.sr,
                         gate=GateConfig(min_score=0), early=False)
        seen: dict[float, tuple[np.ndarray, ...]] = {}
        det, measure = stage.detector, stage.detector._measure

        def measured(guess, strength, profile):  # the detector's own, noting its sources
            cand = measure(guess, strength, profile)
            if cand is not None:
                seen[cand.t] = _sources(det, guess, cand)
            return cand
        det._measure = measured
        for block in source:
            stage.feed(block)
        stage.finish()
        t = np.array(sorted(seen))
        n = len(stage.mics)
        parts = {name: np.array([seen[k][j] for k in t]).reshape(-1, n)
                 for j, name in enumerate(("head", "pre", "bg"))}
        np.savez(cache, t=t, mics=np.array(stage.mics), **parts)
    with np.load(cache) as f:
        return {k: f[k] for k in f.files}


def _sources(det: detector.PopDetector, guess: int, cand: detector.Candidate
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``head``, ``pre`` and ``bg`` of :func:`energies` for a candidate just measured (the
    detector's snippet is still where its measuring read it)."""
    c, sr = det.config, det.sr
    raw, start = det._snippet(guess - int(round((c.background_s + 0.05) * sr)),
                              guess + int(round(c.snippet_after_s * sr)))
    onset = cand.index - start
    loc = det.locate_filter(raw, cand.band_hz, cand.centroid_hz)
    n = max(1, int(round(SRC_HEAD_S * sr)))
    head = np.mean(loc[onset: onset + n] ** 2, axis=0)
    pre = np.mean(loc[max(onset - int(0.022 * sr), 0): max(onset - int(0.002 * sr), 1)] ** 2,
                  axis=0)
    (bg,) = detector._frame_power(loc[: max(onset - int(0.02 * sr), n)], n)
    return head, pre, bg


def src_features(head: np.ndarray, pre: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """The ``src_`` group for each candidate (NaN with one mic)."""
    rows = np.full((len(head), len(SRC)), np.nan)
    if head.shape[1] < 2:
        return rows
    tiny = 1e-20

    def shares(e: np.ndarray) -> np.ndarray:
        e = np.maximum(e, tiny)
        return np.maximum(10 * np.log10(e / e.max(axis=1, keepdims=True)), -30.0)

    rows[:, 0] = np.clip(10 * np.log10(np.max(np.maximum(pre, tiny) / np.maximum(bg, tiny),
                                              axis=1)), -10, 40)
    rows[:, 1] = np.max(np.abs(shares(head) - shares(pre)), axis=1)
    rows[:, 2] = np.clip(10 * np.log10(np.max(np.maximum(head, tiny) / np.maximum(pre, tiny),
                                              axis=1)), -10, 50)
    return rows


def ctx_features(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The ``ctx_`` group for each candidate of one session (``x``: its shipped features)."""
    ex, ls = FEATURES.index("excess_db"), FEATURES.index("log_strength")
    rows = np.zeros((len(t), len(CTX)))
    for k in range(len(t)):
        gap = np.abs(t - t[k])
        around = (gap <= 1.0) & (gap > 0)
        rows[k] = ((gap <= 0.5).sum() - 1, (gap <= 2.0).sum() - 1,
                   x[k, ex] - x[around, ex].max() if around.any() else 30.0,
                   x[k, ls] - x[around, ls].max() if around.any() else 5.0)
    return rows


SHIPPED = GateConfig().min_score
"""The judges' threshold the figures are read at (0.90 until 2026-12-07)."""

CHANCE_STATES = 5
"""Random states of the judge the 'chance alone' line spans."""


def figures(x: np.ndarray, y: np.ndarray, group: np.ndarray, sets: np.ndarray,
            hours: np.ndarray, seed: int, one_rows: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """One training's figures at ``SHIPPED``, the judges at random state ``seed`` (the one-mic
    judge on ``one_rows``, as ``train_gate.Judges``): its out-of-fold
    scores, which family candidates the judge trained on the first simulator alone passes
    (a mask over every row), and the row :func:`judge` prints (out of fold: mean F1, family
    pops kept, other kept; family → first and first → family: mean F1, pops kept, other
    kept; then pops kept and false per family set)."""
    first = np.char.startswith(sets.astype(str), "first")
    params = {**PARAMS, "random_state": seed}
    oof = out_of_fold(x, y, group, params, one_rows)
    kept = oof >= SHIPPED
    row = [_mean_f1(kept, y, sets, group, hours), (kept & y & ~first).sum(),
           (kept & ~y & ~first).sum()]
    narrow = np.zeros(len(y), bool)
    for train, test in ((~first, first), (first, ~first)):
        over = Judges(x[train], y[train], group[train], params,
                      one_rows=one_rows[train]).score(x[test]) >= SHIPPED
        row += [_mean_f1(over, y[test], sets[test], group[test], hours[test]),
                (over & y[test]).sum(),
                (over & ~y[test]).sum()]
    narrow[~first] = over
    row += [v for n in _family_sets(sets) for v in ((kept & y & (sets == n)).sum(),
                                                     (kept & ~y & (sets == n)).sum())]
    return oof, narrow, [float(v) for v in row]


def _family_sets(sets: np.ndarray) -> list[str]:
    return [n for n in dict.fromkeys(sets.astype(str)) if not n.startswith("first")]


def judge(x: np.ndarray, y: np.ndarray, group: np.ndarray, sets: np.ndarray,
          hours: np.ndarray, label: str, one_rows: np.ndarray, seeds: int = 1, states: int = 0
          ) -> tuple[np.ndarray, np.ndarray, list[list[float]]]:
    """Print out-of-fold and carried-over figures at ``SHIPPED`` for one feature set, each
    the mean over the judge's random states 0 to ``seeds - 1``; return the out-of-fold
    scores of random state 0 and the rows of :func:`figures` of ``max(seeds, states)``
    states (the 'chance alone' line spans them)."""
    first = np.char.startswith(sets.astype(str), "first")
    runs = [figures(x, y, group, sets, hours, seed, one_rows)
            for seed in range(max(seeds, states))]
    rows = [row for _, _, row in runs]
    m = np.mean(np.array(rows[:seeds]), axis=0)
    count = "{:.0f}".format if seeds == 1 else "{:.1f}".format
    over_state = "" if seeds == 1 else f" (mean of {seeds} random states)"
    print(f"{label:<22} out of fold: mean F1 {m[0]:.3f}, family pops kept "
          f"{count(m[1])}/{int((y & ~first).sum())}, other {count(m[2])}/"
          f"{int((~y & ~first).sum())}; family → first: {m[3]:.3f}, pops {count(m[4])}/"
          f"{int((y & first).sum())}, other {count(m[5])}; first → family: {m[6]:.3f}, pops "
          f"{count(m[7])}/{int((y & ~first).sum())}, other {count(m[8])}{over_state}",
          flush=True)
    print("    out of fold, pops kept / false per set: " + ", ".join(
        f"{n} {count(m[9 + 2 * k])}/{count(m[10 + 2 * k])}"
        for k, n in enumerate(_family_sets(sets))), flush=True)
    return runs[0][0], runs[0][1], rows


def chance(rows: list[list[float]]) -> None:
    """Print how far trainings on the same candidates differ by chance alone, from the rows
    of the shipped features at each random state (which draws the validation split the
    judge's early stopping holds out): a feature set's row must differ from the shipped one
    by more than this to tell."""
    def span(k: int, digits: int) -> str:
        v = [r[k] for r in rows]
        return f"{min(v):.{digits}f}-{max(v):.{digits}f}"
    print(f"chance alone (shipped features, random state 0-{len(rows) - 1}): out of fold mean "
          f"F1 {span(0, 3)}, family pops kept {span(1, 0)}, other {span(2, 0)}; family → "
          f"first {span(3, 3)}; first → family {span(6, 3)}", flush=True)


def thresholds(oof: np.ndarray, y: np.ndarray, sets: np.ndarray, group: np.ndarray,
               hours: np.ndarray) -> None:
    """Print, out of fold (random state 0), what the judge keeps at the thresholds around the
    shipped one (``train_gate.THRESHOLDS`` from 0.85): mean F1, family pops and other
    candidates kept, and false candidates on the sets without pops."""
    first = np.char.startswith(sets.astype(str), "first")
    quiet = ~np.isin(sets, sets[y])
    parts = []
    for level in (t for t in THRESHOLDS if t >= 0.85):
        k = oof >= level
        parts.append(f"{level:.2f}: {_mean_f1(k, y, sets, group, hours):.3f}, "
                     f"{int((k & y & ~first).sum())}"
                     f"/{int((k & ~y & ~first).sum())}, {int((k & ~y & quiet).sum())}")
    print("threshold: out of fold mean F1, family pops / other kept, false without pops: "
          + "; ".join(parts))


def misses(x: np.ndarray, y: np.ndarray, oof: np.ndarray, sets: np.ndarray,
           crowded: np.ndarray) -> None:
    """Print what the family's pops the judge misses out of fold (at ``SHIPPED``) are like
    against those it keeps: excess and contrast (dB), and at 10-20 dB how many have another
    onset within 0.3 s (``crowded``)."""
    family = ~np.char.startswith(sets.astype(str), "first")
    kept, missed = y & family & (oof >= SHIPPED), y & family & (oof < SHIPPED)
    ex, co = FEATURES.index("excess_db"), FEATURES.index("contrast_db")
    print(f"family pops out of fold, kept / missed: median excess "
          f"{np.median(x[kept, ex]):.1f} / {np.median(x[missed, ex]):.1f} dB, median contrast "
          f"{np.median(x[kept, co]):.1f} / {np.median(x[missed, co]):.1f} dB")
    loud = sets == "10-20 dB"
    print(f"10-20 dB pops with another onset within 0.3 s: kept "
          f"{crowded[kept & loud].mean():.0%}, missed {crowded[missed & loud].mean():.0%}")


def first_simulator_named() -> list[tuple[Path, str, object]]:
    """``train_gate.first_simulator``'s sessions as (path, set name, config)."""
    return [(p, n, c) for p, c, n in first_simulator()]


def quiet_false(oof: np.ndarray, y: np.ndarray, group: np.ndarray, t: np.ndarray,
                names: list[str], sounding: dict[int, list]) -> None:
    """Print what was sounding (``sounding``: :func:`simulate.sounding_events` by session)
    at each candidate of the family's artifacts-only sessions that the judge passes out of
    fold (at ``SHIPPED``)."""
    during: dict[str, int] = {}
    for k, name in enumerate(names):
        passed = (group == k) & (oof >= SHIPPED) & ~y
        if "artifacts" not in name or k not in sounding or not passed.any():
            continue
        for when in t[passed]:
            what = heldout.sounding_at(sounding[k], float(when))
            during[what] = during.get(what, 0) + 1
    print("family artifacts-only false candidates out of fold, by what was sounding: "
          + ", ".join(f"{k} {v}" for k, v in sorted(during.items(), key=lambda x: -x[1])))


def heart_trains(x: np.ndarray, y: np.ndarray, group: np.ndarray, t: np.ndarray,
                 sounding: dict[int, list]) -> None:
    """Print how many of the family's candidates came with only the heart sounding, and for
    how many of them the gate's rhythm test (``periodic``) found the train it belongs to."""
    periodic, needed = FEATURES.index("periodic"), GateConfig().periodic_members
    counts = []
    for k, events in sounding.items():
        mine = np.flatnonzero((group == k) & ~y)
        counts += [x[i, periodic] for i in mine
                   if heldout.sounding_at(events, float(t[i])) == "heartbeat"]
    c = np.array(counts)
    print(f"family candidates with only the heart sounding: {len(c)}; in a train of "
          f"{needed} or more by the rhythm test: {np.mean(c >= needed):.0%} "
          f"(median count {np.median(c):.0f})")


def narrow_false(narrow: np.ndarray, y: np.ndarray, group: np.ndarray, t: np.ndarray,
                 sounding: dict[int, list], label: str) -> None:
    """Print what was sounding at each family candidate that a judge trained on the first
    simulator alone passes at ``SHIPPED`` (``narrow``, from :func:`figures`): the direction that
    warns and does not veto (``train_gate.py``), and why."""
    passed = np.flatnonzero(narrow & ~y)
    during: dict[str, int] = {}
    for i in passed:
        what = heldout.sounding_at(sounding[int(group[i])], float(t[i]))
        during[what] = during.get(what, 0) + 1
    print(f"    first → family, {label}: {len(passed)} false candidates, by what was sounding: "
          + ", ".join(f"{k} {v}" for k, v in sorted(during.items(), key=lambda x: -x[1])[:6]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1,
                        help="judge each feature set as the mean over this many random states "
                             "(see the 'chance alone' line), not at random state 0 alone")
    seeds = parser.parse_args().seeds
    configs = [(heldout.folder("dev", s, c), s.name, c) for s in heldout.SETS
               for c in heldout.configs("dev", s, DEV_SEEDS)] + first_simulator_named()
    jobs = [(p, n) for p, n, _ in configs]
    for path, _ in jobs:
        if not (path / "truth.csv").exists():
            raise SystemExit(f"{path} is missing: run `make gate-model` first")
    with ProcessPoolExecutor(2) as pool:
        found = list(pool.map(energies, [p for p, _ in jobs]))
    xs, ys, groups, sets, crowded, times = [], [], [], [], [], []
    for k, ((path, name), got) in enumerate(zip(jobs, found, strict=True)):
        x, t_cached, y = candidates(path)
        judged = np.isin(got["t"], t_cached)  # the judge never sees what an impact rejects
        t = got["t"][judged]
        if not np.array_equal(t, t_cached):
            raise SystemExit(f"{path}: candidates differ from train_gate.py's cache")
        head, pre, bg = (got[n][judged] for n in ("head", "pre", "bg"))
        xs.append(np.hstack([x, ctx_features(t, x), src_features(head, pre, bg)]))
        ys.append(y)
        groups.append(np.full(len(y), k))
        sets += [name] * len(y)
        times.append(t)
        crowded.append(np.searchsorted(t, t + 0.3, "right") - np.searchsorted(t, t - 0.3) > 1)
    x, y = np.vstack(xs), np.concatenate(ys)
    group, sets_a = np.concatenate(groups), np.array(sets)
    hours = np.array([c.minutes / 60 for _, _, c in configs])[group]
    one_rows = one_mic_rows([p for p, _ in jobs], group)
    names = (*FEATURES, *CTX, *SRC)
    every_t = np.concatenate(times)
    sounding = {k: sounding_events(c) for k, (_, n, c) in enumerate(configs)
                if not n.startswith("first")}
    for label, off in (("shipped features", ("ctx_", "src_")),
                       ("without loc_", ("loc_", "ctx_", "src_")), ("+ ctx_", ("src_",)),
                       ("+ src_", ("ctx_",)),
                       ("+ src_change_db", ("ctx_", "src_pre", "src_head")),
                       ("+ ctx_ + src_", ())):
        blank = [j for j, f in enumerate(names) if f.startswith(BLANKED + off)]
        xx = x.copy()
        xx[:, blank] = 0.0
        shipped = label == "shipped features"
        oof, narrow, rows = judge(xx, y, group, sets_a, hours, label, one_rows, seeds,
                                  CHANCE_STATES if shipped else 0)
        if label in ("shipped features", "without loc_"):
            narrow_false(narrow, y, group, every_t, sounding, label)
        if shipped:
            misses(x, y, oof, sets_a, np.concatenate(crowded))
            quiet_false(oof, y, group, every_t, [n for _, n in jobs], sounding)
            heart_trains(x, y, group, every_t, sounding)
            thresholds(oof, y, sets_a, group, hours)
            chance(rows)


if __name__ == "__main__":
    main()
