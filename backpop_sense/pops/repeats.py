"""A snap's faint repeats: the one verdict on whether an onset is a pop that needs the
whole session.

The artifact gate (``pops/artifacts.py``) judges each onset on its own sound and the sound
around it. An onset it turned away only for not standing out (:data:`~backpop_sense.pops.
artifacts.DOUBTFUL`) is taken back as a pop here, at the end of the session, when it repeats a
snap that ``snap_min_count`` pops make on their own: at its level and posture, in a cycle
where none of them was heard. A snap repeats every movement cycle at about the same angle
(background.md), and on a busy background a faint repeat may not stand out of a rub's swell;
its repeats vouch for it where its own sound cannot. Its own sound must not place it
elsewhere (:func:`~backpop_sense.pops.locate.pooled_level`).

It needs the pops placed in their motion context and typed (a snap is known by its repeats),
so the correlator asks it once the session is over (``Correlator.finish``); these two are
the only places an onset becomes a pop or stops being one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from ..levels import level_index
from .locate import pooled_level

PopInContext = Any
"""A :class:`~backpop_sense.correlate.PopInContext` (not imported: the correlator imports
this module)."""


class RepeatRules(Protocol):
    """What the search for repeats reads of the typing parameters
    (:class:`~backpop_sense.correlate.CorrelateConfig`)."""

    snap_angle_tol_deg: float
    snap_min_count: int
    snap_min_gap_s: float
    pool_reach: int
    pool_slack: float


def rescue(pops: list[PopInContext], doubtful: list[PopInContext],
           config: RepeatRules, *,
           others: Sequence[tuple[float, tuple[float, float, float] | None]] = ()
           ) -> list[PopInContext]:
    """The doubtful onsets that repeat a recurring snap (the module's docstring).

    An onset repeats a snap when at least ``snap_min_count`` of the snap's pops, in other
    cycles, are within ``snap_angle_tol_deg`` of its posture, and it is as close to their
    median posture as the farthest of them is (a source's own spread is how far its repeats
    stray; a noise onset 100 ms from the snap's posture is a few degrees off); its own sound
    must not place it elsewhere (:func:`~backpop_sense.pops.locate.pooled_level`). In each
    cycle of a snap, at most the onset closest to its posture is taken back, and none where
    a pop was heard at that posture within ``pool_reach`` levels of the snap (the snap, or
    a pop that may be it), nor where the closest was rejected for a sign of something else
    (a knock, a rub: ``others``), as the snap may have been that onset.

    Parameters
    ----------
    pops : list of PopInContext
        The session's pops, typed (:func:`~backpop_sense.correlate.type_pops`).
    doubtful : list of PopInContext
        Onsets the gate rejected for not standing out, placed in their motion context, with
        ``rescued`` set to the gate's reason.
    others : sequence of (float, angles or None)
        The time and posture of every other onset the gate rejected.

    Returns
    -------
    list of PopInContext
        Those taken back, in time order, each at the level of the snap it repeats
        (``own_level`` set when its own sound gave another); not typed yet.
    """
    snaps = [p for p in pops if p.kind == "snap" and p.pop.level_costs]
    if len(snaps) < config.snap_min_count:
        return []
    finder = SnapRepeats(snaps, pops, others, config)
    offers = [(distance, k, level) for k, d in enumerate(doubtful)
              for distance, level in finder.offers(d)]
    taken: dict[int, str] = {}
    for _, k, level in sorted(offers):  # the onset nearest a snap's posture first
        t = doubtful[k].t
        if k in taken or any(abs(doubtful[j].t - t) < config.snap_min_gap_s for j in taken):
            continue
        taken[k] = level
    return [replace(doubtful[k], pop=replace(doubtful[k].pop, level=level),
                    own_level=None if doubtful[k].level == level else doubtful[k].level)
            for k, level in sorted(taken.items(), key=lambda x: doubtful[x[0]].t)]


class SnapRepeats:
    """The session's recurring snaps as arrays, asked which a doubtful onset repeats
    (:func:`rescue`)."""

    def __init__(self, snaps: list[PopInContext], pops: list[PopInContext],
                 others: Sequence[tuple[float, tuple[float, float, float] | None]],
                 config: RepeatRules) -> None:
        self.config = config
        self.postures = Postures(snaps)
        self.levels = [lv for lv, _ in snaps[0].pop.level_costs]
        self.costs = np.array([[c for _, c in p.pop.level_costs] for p in snaps])
        self.at = np.array([p.level for p in snaps])
        placed = [(t, a) for t, a in others if a is not None]
        self.other_t = np.array([t for t, _ in placed], dtype=float)
        self.other_angles = np.array([a for _, a in placed], dtype=float).reshape(len(placed), 3)
        self.everyone = Postures(pops)
        self.pop_index = np.array([level_index(p.level) for p in pops])

    def offers(self, d: PopInContext) -> list[tuple[float, str]]:
        """Each snap level ``d`` may be taken back at, with its distance (deg) to that
        snap's median posture."""
        config, gap = self.config, self.config.snap_min_gap_s
        if d.angles is None or [lv for lv, _ in d.pop.level_costs] != self.levels:
            return []
        here = np.array(d.angles)
        tol = config.snap_angle_tol_deg
        close = np.abs(self.postures.angles - here).max(axis=1) <= tol
        apart = np.abs(self.postures.t - d.t) >= gap
        own = np.array([c for _, c in d.pop.level_costs])
        # a pop heard in its cycle at this posture, within pool_reach levels of the snap
        heard = ((np.abs(self.everyone.t - d.t) < gap)
                 & (np.abs(self.everyone.angles - here).max(axis=1) <= tol))
        out = []
        for level in dict.fromkeys(self.at[close].tolist()):
            if (heard & (np.abs(self.pop_index - level_index(level))
                         <= config.pool_reach)).any():
                continue  # its cycle already has this snap, or a pop that may be it
            repeats = np.flatnonzero(close & (self.at == level) & apart)
            if len(repeats) < config.snap_min_count:
                continue
            centre = np.median(self.postures.angles[repeats], axis=0)
            spread = np.abs(self.postures.angles[repeats] - centre).max()
            distance = float(np.abs(here - centre).max())
            nearer = ((np.abs(self.other_t - d.t) < gap)
                      & (np.abs(self.other_angles - centre).max(axis=1) < distance)).any()
            if (distance <= spread and not nearer
                    and pooled_level(self.levels, own, self.costs[repeats],
                                     slack=config.pool_slack) == level):
                out.append((distance, level))
        return out



class Postures:
    """The pops' times and angles as arrays, for the searches for repeats (a session may hold
    thousands of snaps, each compared with all the others)."""

    def __init__(self, pops: list[PopInContext]) -> None:
        self.t = np.array([p.t for p in pops], dtype=float)
        self.angles = np.array([p.angles if p.angles is not None else (np.nan,) * 3
                                for p in pops], dtype=float).reshape(len(pops), 3)

    def repeats(self, i: int, candidates: list[int], config: RepeatRules) -> np.ndarray:
        """Indices of the pops among ``candidates`` (indices, in time order) that repeat pop
        i: in other movement cycles, within the angle tolerance (no angles: none)."""
        c = np.asarray(candidates, dtype=int)
        if c.size == 0 or np.isnan(self.angles[i]).any():
            return c[:0]
        gap = config.snap_min_gap_s
        close = np.abs(self.angles[c] - self.angles[i]).max(axis=1) <= config.snap_angle_tol_deg
        hit = c[(c != i) & (np.abs(self.t[c] - self.t[i]) >= gap) & close]
        times = self.t[hit]
        if len(hit) < 2 or np.all(np.diff(times) >= gap):
            return hit
        # several within one movement: each cycle counts once, its first pop
        keep, last = [], -np.inf
        for j, tj in zip(hit, times, strict=True):
            if tj - last >= gap:
                keep.append(j)
                last = tj
        return np.array(keep, dtype=int)
