"""Scoring against ground truth: pop detection with mir_eval, and (per session) the whole set.

Onsets are matched one to one within a tolerance window (mir_eval's bipartite matching):
+-10 ms is this project's timing precision, +-50 ms the usual onset-benchmark window. Level
accuracy is the share of pops matched within +-50 ms whose level is right, so timing errors
do not hide level errors. mir_eval refuses times beyond 30,000 s, so long sessions are scored
in windows cut where no event lies near the cut, with each window's times shifted to start at
zero, and the counts added up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mir_eval
import numpy as np
import pandas as pd

from .errors import BadInput, shown

WINDOWS_S = (0.010, 0.050)
MAX_SPAN_S = 20000.0
"""Longest stretch handed to mir_eval at once (it refuses times beyond 30,000 s)."""


@dataclass(frozen=True)
class Match:
    """Counts at one tolerance window."""

    window_s: float
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _cuts(ref: np.ndarray, est: np.ndarray, span: float, margin: float) -> list[float]:
    """Cut points at most ``span`` apart, each in a quiet stretch (no event within margin)."""
    events = np.sort(np.concatenate([ref, est]))
    if len(events) == 0 or events[-1] - events[0] <= span:
        return []
    cuts, start = [], float(events[0]) - margin
    while events[-1] - start > span:
        target = start + span
        # the widest gap between events before the target, searching back from it
        inside = events[(events > start) & (events < target)]
        gaps = np.diff(inside)
        if len(gaps) == 0:
            cut = target
        else:
            k = int(np.argmax(np.where(gaps > 2 * margin, inside[1:], -np.inf)))
            cut = float(inside[k] + inside[k + 1]) / 2 if gaps[k] > 2 * margin else target
        cuts.append(cut)
        start = cut
    return cuts


def match_pairs(ref: np.ndarray, est: np.ndarray, window: float) -> list[tuple[int, int]]:
    """One-to-one matches (index into ref, index into est) within ``window`` seconds."""
    ref, est = np.asarray(ref, dtype=float), np.asarray(est, dtype=float)
    pairs: list[tuple[int, int]] = []
    bounds = [-np.inf, *_cuts(ref, est, MAX_SPAN_S, window), np.inf]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        ri = np.flatnonzero((ref >= lo) & (ref < hi))
        ei = np.flatnonzero((est >= lo) & (est < hi))
        if len(ri) == 0 or len(ei) == 0:
            continue
        origin = min(ref[ri].min(), est[ei].min())
        for i, j in mir_eval.util.match_events(ref[ri] - origin, est[ei] - origin, window):
            pairs.append((int(ri[i]), int(ei[j])))
    return pairs


def score_onsets(ref: Sequence[float], est: Sequence[float], window: float) -> Match:
    """Counts of matched, extra and missed onsets within ``window`` seconds."""
    ref, est = np.sort(np.asarray(ref, dtype=float)), np.sort(np.asarray(est, dtype=float))
    tp = len(match_pairs(ref, est, window))
    return Match(window, tp, len(est) - tp, len(ref) - tp)


def score_pops(truth_t: Sequence[float], truth_level: Sequence[str], est_t: Sequence[float],
               est_level: Sequence[str], duration_s: float) -> dict:
    """Detection scores of one session (or a set, with times made disjoint).

    Returns
    -------
    dict
        Per window (``"10ms"``, ``"50ms"``): precision, recall, f1, tp, fp, fn; and
        ``fp_per_hour`` (at 50 ms), ``level_accuracy`` (of the 50 ms matches),
        ``truth``, ``detected``, ``hours``.
    """
    ref = np.asarray(truth_t, dtype=float)
    est = np.asarray(est_t, dtype=float)
    out: dict = {"truth": int(len(ref)), "detected": int(len(est)),
                 "hours": duration_s / 3600.0}
    for window in WINDOWS_S:
        m = score_onsets(ref, est, window)
        out[f"{window * 1000:.0f}ms"] = {"precision": m.precision, "recall": m.recall,
                                          "f1": m.f1, "tp": m.tp, "fp": m.fp, "fn": m.fn}
    fp = out["50ms"]["fp"]
    out["fp_per_hour"] = fp / out["hours"] if duration_s > 0 else 0.0
    pairs = match_pairs(ref, est, WINDOWS_S[-1])
    right = sum(str(truth_level[i]) == str(est_level[j]) for i, j in pairs)
    out["level_accuracy"] = right / len(pairs) if pairs else None
    return out


def score_typing(truth: pd.DataFrame, est_t: Sequence[float], est_kind: Sequence[str],
                 est_context: Sequence[str], motion_truth: pd.DataFrame | None = None) -> dict:
    """How well matched pops were typed and placed in context.

    Parameters
    ----------
    truth : DataFrame
        ``truth.csv`` (``t``, ``level``, ``kind``).
    est_t, est_kind, est_context : sequences
        The pops found: time (s), kind and motion context.
    motion_truth : DataFrame, optional
        ``motion_truth.csv``; the true context of a pop is that of the row nearest its time.

    Returns
    -------
    dict
        ``matched`` (pairs within +-50 ms), ``kind_accuracy`` and ``kind_confusion``
        (``{true kind: {found kind: n}}``), ``context_accuracy`` (None without motion truth)
        and ``context_confusion``.
    """
    est_t = np.asarray(est_t, dtype=float)
    pairs = match_pairs(truth["t"].to_numpy(float), est_t, WINDOWS_S[-1])
    kinds = [(str(truth["kind"].iloc[i]), str(est_kind[j])) for i, j in pairs]
    out: dict = {"matched": len(pairs),
                 "kind_accuracy": (sum(a == b for a, b in kinds) / len(kinds)) if kinds else None,
                 "kind_confusion": _confusion(kinds), "context_accuracy": None,
                 "context_confusion": {}}
    if motion_truth is not None and len(motion_truth) and pairs:
        mt = motion_truth["t"].to_numpy(float)
        at = truth["t"].to_numpy(float)[[i for i, _ in pairs]]
        k = np.clip(np.searchsorted(mt, at), 1, len(mt) - 1)
        k = np.where(np.abs(mt[k - 1] - at) <= np.abs(mt[k] - at), k - 1, k)
        contexts = [(str(motion_truth["context"].iloc[r]), str(est_context[j]))
                    for r, (_, j) in zip(k, pairs, strict=True)]
        out["context_accuracy"] = sum(a == b for a, b in contexts) / len(contexts)
        out["context_confusion"] = _confusion(contexts)
    return out


def _confusion(pairs: list[tuple[str, str]]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for true, found in pairs:
        row = table.setdefault(true, {})
        row[found] = row.get(found, 0) + 1
    return table


def simulated_events(extra: Mapping[str, Any], file: str | Path, latest_s: float
                     ) -> dict[str, list[float]] | None:
    """The simulator's true catch and fall times (``session.json`` ``simulation``), checked.

    Parameters
    ----------
    extra : mapping
        The session's extra fields (:attr:`backpop_sense.session.SessionInfo.extra`).
    file : str or Path
        The session.json, named in an error.
    latest_s : float
        The latest time a session event may have, seconds.

    Returns
    -------
    dict or None
        ``falls_s`` and ``catches_s`` (seconds since the session start), or None for a session
        that was not simulated.

    Raises
    ------
    BadInput
        For a ``simulation`` that is not an object, or times that are not a list of numbers
        within the session.
    """
    sim = extra.get("simulation")
    if sim is None:
        return None
    if not isinstance(sim, Mapping):
        raise BadInput(file, "field simulation", f"must be an object, not {shown(sim)}")
    out = {}
    for key in ("falls_s", "catches_s"):
        times = sim.get(key, [])
        if not isinstance(times, list):
            raise BadInput(file, f"field simulation.{key}", f"must be a list, not {shown(times)}")
        for i, t in enumerate(times):
            if isinstance(t, bool) or not isinstance(t, int | float) or not (
                    0 <= t <= latest_s and math.isfinite(t)):
                raise BadInput(file, f"field simulation.{key}[{i}]",
                               f"{shown(t)} is not a time within the session (0-{latest_s:g} s)")
        out[key] = [float(t) for t in times]
    return out
