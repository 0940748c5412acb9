"""Pops in their motion context, pop typing and per-session statistics.

The correlator is a pipeline stage: it takes the pops and motion frames the other stages emit
(``feed``), gives each pop the motion at its instant, and at the end of the stream
(``finish``) types every pop from its physiology (../shared/background.md):

``snap``
    A tendon or ligament slipping over bone repeats every movement cycle at about the same
    angle: at least ``snap_min_count`` pops at the same level, in separate cycles, whose three
    spine angles agree within ``snap_angle_tol_deg``.
``readjustment``
    Twisting or stretching shifts joint surfaces near the end of the range: a pop in ``twist``
    or ``stretch`` context whose angle on that axis is at least ``end_range_fraction`` of the
    furthest the same excursion went (within ``excursion_window_s`` either side), and not a
    snap.
``cavitation``
    Gas forming in a facet joint gives one pop, and the joint cannot pop again for about
    20 minutes while the gas re-dissolves: a pop that is neither of the above, with no other
    such pop at the same level within ``refractory_s`` before or after it.
``unknown``
    When the evidence does not decide (a repeat inside the refractory window, no motion data).

Before typing, a pop that recurs at the same posture (``snap_min_count`` pops, in separate
cycles, angles within ``snap_angle_tol_deg``, placed within ``pool_reach`` levels of each
other) takes the level its repeats agree on (:func:`~backpop_sense.pops.locate.pooled_level`)
if ``snap_min_count`` of the repeats are there by their own sound: one source heard several
times is placed from all its repeats, which a faint pop alone, at 0-3 dB SNR, is not
reliably; pops of different joints that merely happen at one posture are left apart.

Once the pops are typed, the onsets the gate turned away only for not standing out are
offered to :func:`~backpop_sense.pops.repeats.rescue`, which takes back those that repeat a
recurring snap; :meth:`Correlator.finish` returns the session's final pops and rejections.

Typing and pooling need the whole session (a snap is known by its repeats, a cavitation by the
20 minutes after it), so they happen at ``finish``; the live view shows pops as they come,
context first, at the level each pop's own sound gives.
Memory: the stage keeps the pops (the output) and a window of motion frames of bounded length.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import asdict, dataclass, replace
from typing import ClassVar

import numpy as np
from scipy import stats

from .levels import level_index
from .motion.tracker import MotionFrame
from .params import COUNT, FLAG, FRACTION, NON_NEGATIVE, POSITIVE, Number, Rules, check
from .pops import locate
from .pops.locate import POOL_SLACK
from .pops.repeats import Postures, rescue
from .pops.stage import Pop, Rejected
from .vocab import AXES, KINDS

ACTIVE_CONTEXTS = ("twist", "stretch")
"""Contexts compared with all other time in the rate ratio (background.md: twist/stretch)."""
AXIS_OF_CONTEXT = {"twist": "twist", "stretch": "flexion", "bend": "lateral"}


@dataclass(frozen=True)
class CorrelateConfig:
    """Parameters of pop typing (seconds, degrees).

    Attributes
    ----------
    refractory_s : float
        A facet joint cannot cavitate again for this long (background.md: about 20 minutes).
    snap_angle_tol_deg : float
        Pops within this of each other on all three spine angles are "at the same angle".
    snap_min_count : int
        Pops at one level and angle (this one included) that make a recurring snap.
    snap_min_gap_s : float
        Pops closer than this are one movement, not separate cycles.
    end_range_fraction : float
        Near the end of range: at least this fraction of the excursion's furthest angle.
    excursion_window_s : float
        The excursion's furthest angle is looked for this far either side of the pop.
    max_frame_distance_s : float
        A pop further than this from any motion frame (an IMU gap) has no motion context.
    pool_reach : int
        Repeats at the same posture are pooled for the level when each pop's own level is
        within this many levels of the pop's (0: no pooling). One: a faint pop's own fit
        errs by one level (the development sets at 0-3 dB); two gave the same levels there
        within a pop (benchmarks/detection.md).
    pool_slack : float
        A pop takes the pooled level only if its own fit there costs at most this much more
        than at its own level (:data:`~backpop_sense.pops.locate.POOL_SLACK`).
    rescue : bool
        Take back the rejected onsets that repeat a recurring snap
        (:func:`~backpop_sense.pops.repeats.rescue`).
    """

    refractory_s: float = 1200.0
    snap_angle_tol_deg: float = 6.0
    snap_min_count: int = 3
    snap_min_gap_s: float = 2.0
    end_range_fraction: float = 0.85
    excursion_window_s: float = 3.0
    max_frame_distance_s: float = 0.5
    pool_reach: int = 1
    pool_slack: float = POOL_SLACK
    rescue: bool = True

    RULES: ClassVar[Rules] = {
        "refractory_s": NON_NEGATIVE, "snap_angle_tol_deg": NON_NEGATIVE, "snap_min_count": COUNT,
        "snap_min_gap_s": NON_NEGATIVE, "end_range_fraction": FRACTION,
        "excursion_window_s": POSITIVE, "max_frame_distance_s": NON_NEGATIVE,
        "pool_reach": Number(0, whole=True), "pool_slack": NON_NEGATIVE, "rescue": FLAG,
    }

    def __post_init__(self) -> None:
        check(self)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PopInContext:
    """A pop with the motion at its instant and, once the session is over, its kind.

    Attributes
    ----------
    pop : Pop
        The detected pop.
    context : str
        Motion context at the pop (``unknown`` without motion data).
    flexion_deg, lateral_deg, twist_deg, twist_rate_dps : float or None
        Spine angles (degrees) and twist rate (deg/s) at the pop.
    end_fraction : float or None
        The pop's angle over the furthest angle of the same excursion, on the context's axis
        (twist, stretch and bend only).
    kind : str
        One of :data:`KINDS`.
    rule : str
        Which rule decided the kind, in words (and, for a pop its repeats placed, that).
    own_level : str or None
        The level the pop's own sound gave, when its repeats placed it elsewhere
        (:func:`pool_levels`); None otherwise.
    rescued : str or None
        For an onset the gate rejected and its repeats vouched for
        (:func:`~backpop_sense.pops.repeats.rescue`), the gate's reason; None otherwise.
    """

    pop: Pop
    context: str = "unknown"
    flexion_deg: float | None = None
    lateral_deg: float | None = None
    twist_deg: float | None = None
    twist_rate_dps: float | None = None
    end_fraction: float | None = None
    kind: str = "unknown"
    rule: str = "not typed yet"
    own_level: str | None = None
    rescued: str | None = None

    @property
    def t(self) -> float:
        return self.pop.t

    @property
    def level(self) -> str:
        return self.pop.level

    @property
    def angles(self) -> tuple[float, float, float] | None:
        if self.flexion_deg is None:
            return None
        return (self.flexion_deg, self.lateral_deg, self.twist_deg)  # type: ignore[return-value]


class Correlator:
    """Pipeline stage: ``feed(outputs) -> [PopInContext]`` as context is known; ``finish()``
    types every pop and returns the session's pops, final.

    Parameters
    ----------
    config : CorrelateConfig, optional
    has_motion : bool
        False when the session has no IMU: pops are placed at once with context ``unknown``.
    """

    def __init__(self, config: CorrelateConfig | None = None, *, has_motion: bool = True
                 ) -> None:
        self.config = config or CorrelateConfig()
        self.has_motion = has_motion
        self._frames: deque[MotionFrame] = deque()
        self._pending: deque[Pop | Rejected] = deque()
        self._placed: list[PopInContext] = []
        self._doubtful: list[PopInContext] = []
        self._turned_away: list[tuple[float, tuple[float, float, float] | None]] = []
        self._last_frame_t = -np.inf
        self.rejected: list[Rejected] = []
        """Every onset the gate turned away; after :meth:`finish`, but for those taken back."""

    def feed(self, outputs: list) -> list[PopInContext]:
        """Take the other stages' outputs (pops, doubtful rejections, frames; the rest is
        ignored)."""
        for o in outputs:
            if isinstance(o, Rejected):
                self.rejected.append(o)
            if isinstance(o, (Pop, Rejected)):
                self._pending.append(o)
            elif isinstance(o, MotionFrame):
                self._frames.append(o)
                self._last_frame_t = o.t
        return self._place(final=False)

    def finish(self) -> list[PopInContext]:
        """Place what is left, type every pop of the session, take back the rejected onsets
        that repeat a snap (:func:`~backpop_sense.pops.repeats.rescue`), and type again;
        returns the session's pops, in time order (:attr:`rejected` then holds the rest)."""
        self._place(final=True)
        self._placed.sort(key=lambda p: p.t)
        typed = type_pops(self._placed, self.config)
        if not self.config.rescue:
            return typed
        back = rescue(typed, self._doubtful, self.config, others=self._turned_away)
        if not back:
            return typed
        taken = {p.t for p in back}
        self.rejected = [r for r in self.rejected if r.t not in taken]
        return type_pops(sorted(self._placed + back, key=lambda p: p.t), self.config)

    def _place(self, *, final: bool) -> list[PopInContext]:
        horizon = self.config.excursion_window_s
        placed = []
        # Pops come out in time order from the pop stage, so the oldest is the first to be due.
        while self._pending and (final or not self.has_motion
                                 or self._pending[0].t + horizon < self._last_frame_t):
            o = self._pending.popleft()
            if isinstance(o, Rejected) and o.pop is not None:
                self._doubtful.append(replace(self._context(o.pop), rescued=o.reason))
            elif isinstance(o, Rejected):
                self._turned_away.append((o.t, self._context(_stand_in(o)).angles))
            else:
                placed.append(self._context(o))
        oldest = min((p.t for p in self._pending), default=self._last_frame_t)
        keep_from = min(oldest, self._last_frame_t) - horizon
        while self._frames and self._frames[0].t < keep_from - 1.0:
            self._frames.popleft()
        self._placed.extend(placed)
        return placed

    def _context(self, pop: Pop) -> PopInContext:
        if not self._frames:
            return PopInContext(pop, rule="no motion data")
        times = np.fromiter((f.t for f in self._frames), float, len(self._frames))
        k = int(np.argmin(np.abs(times - pop.t)))
        frame = self._frames[k]
        if abs(frame.t - pop.t) > self.config.max_frame_distance_s:
            return PopInContext(pop, rule="no motion data at the pop")
        axis = AXIS_OF_CONTEXT.get(frame.context)
        fraction = None
        if axis is not None:
            near = np.abs(times - pop.t) <= self.config.excursion_window_s
            values = np.array([getattr(f, f"{axis}_deg") for f, n in zip(self._frames, near,
                                                                         strict=True) if n])
            here = getattr(frame, f"{axis}_deg")
            if here != 0:
                # the pop's own frame is in the window, so the same side is never empty
                fraction = abs(here) / np.max(np.abs(values[np.sign(values) == np.sign(here)]))
        return PopInContext(pop, frame.context, frame.flexion_deg, frame.lateral_deg,
                            frame.twist_deg, frame.twist_rate_dps, fraction)


def type_pops(pops: list[PopInContext], config: CorrelateConfig | None = None
              ) -> list[PopInContext]:
    """Give each pop its kind and the rule that decided it (module docstring).

    Parameters
    ----------
    pops : list of PopInContext
        One session's pops, in time order.
    config : CorrelateConfig, optional

    Returns
    -------
    list of PopInContext
        The same pops with ``kind`` and ``rule`` set.
    """
    config = config or CorrelateConfig()
    postures = Postures(pops)  # times and angles: pooling changes levels only
    pops = _pool_levels(pops, config, postures)
    kinds: list[tuple[str, str]] = [("", "")] * len(pops)
    at_level: dict[str, list[int]] = {}  # both rules compare a pop with its own level only
    for i, p in enumerate(pops):
        at_level.setdefault(p.level, []).append(i)
    for i, p in enumerate(pops):
        repeats = len(postures.repeats(i, at_level[p.level], config))
        if repeats + 1 >= config.snap_min_count:
            kinds[i] = ("snap", f"recurs: {repeats + 1} pops at {p.level} within "
                                f"{config.snap_angle_tol_deg:g} deg of the same posture")
        elif (p.context in ACTIVE_CONTEXTS and p.end_fraction is not None
              and p.end_fraction >= config.end_range_fraction):
            kinds[i] = ("readjustment", f"{p.context} near end of range "
                                        f"({100 * p.end_fraction:.0f} % of the excursion)")
    joint = np.array([not k for k, _ in kinds], dtype=bool)  # neither a snap nor a readjustment
    t = postures.t
    for i, p in enumerate(pops):
        if not joint[i]:
            continue
        js = np.asarray(at_level[p.level])
        others = js[(js != i) & joint[js] & (np.abs(t[js] - t[i]) < config.refractory_s)]
        if others.size:
            nearest = float(t[others[np.argmin(np.abs(t[others] - t[i]))]])
            kinds[i] = ("unknown", f"{p.level} popped again {abs(nearest - p.t) / 60:.1f} min "
                                   f"{'later' if nearest > p.t else 'earlier'}, inside the "
                                   f"{config.refractory_s / 60:g} min refractory window")
        else:
            kinds[i] = ("cavitation", f"isolated: no other pop at {p.level} within "
                                      f"{config.refractory_s / 60:g} min")
    return [replace(p, kind=k, rule=_rule(p, r)) for p, (k, r) in zip(pops, kinds, strict=True)]


def _rule(p: PopInContext, rule: str) -> str:
    if p.own_level is not None:
        rule += (f"; placed at {p.level} with its repeats at the same posture (its own sound "
                 f"alone: {p.own_level})")
    if p.rescued is not None:
        rule += (f"; the gate had rejected it ({p.rescued}), its repeats at this level and "
                 f"posture vouch for it")
    return rule


def _stand_in(r: Rejected) -> Pop:
    """A pop at a rejected onset's instant, to look up its posture."""
    return Pop(r.t, "", 0.0, 0.0, 0.0, 0.0, r.strength, r.spread_db)


def pool_levels(pops: list[PopInContext], config: CorrelateConfig | None = None
                ) -> list[PopInContext]:
    """Each pop that recurs at the same posture at the level its repeats agree on.

    Parameters
    ----------
    pops : list of PopInContext
        One session's pops, in time order, located among the same levels.
    config : CorrelateConfig, optional

    Returns
    -------
    list of PopInContext
        The same pops; those with at least ``snap_min_count - 1`` repeats (other cycles, the
        same posture, own levels within ``pool_reach``) placed by
        :func:`~backpop_sense.pops.locate.pooled_level`, if at least ``snap_min_count`` of
        the repeats are at that level by their own sound.
    """
    return _pool_levels(pops, config or CorrelateConfig(), Postures(pops))


def _pool_levels(pops: list[PopInContext], config: CorrelateConfig, postures: Postures
                 ) -> list[PopInContext]:
    located = [i for i, p in enumerate(pops) if p.pop.level_costs]
    if config.pool_reach <= 0 or not located:
        return list(pops)
    levels = [lv for lv, _ in pops[located[0]].pop.level_costs]
    costs = np.zeros((len(pops), len(levels)))
    for i in located:
        if [lv for lv, _ in pops[i].pop.level_costs] != levels:
            raise ValueError("pops located among different levels cannot be pooled")
        costs[i] = [c for _, c in pops[i].pop.level_costs]
    at_index: dict[int, list[int]] = {}
    for i in located:
        at_index.setdefault(level_index(pops[i].level), []).append(i)
    repeats: dict[int, np.ndarray] = {}
    for i in located:
        k, reach = level_index(pops[i].level), config.pool_reach
        near = sorted(j for d in range(k - reach, k + reach + 1) for j in at_index.get(d, []))
        repeats[i] = postures.repeats(i, near, config)
    pooled = locate.pool_levels(levels, costs, [p.level for p in pops], repeats,
                            min_count=config.snap_min_count, slack=config.pool_slack)
    return [replace(p, pop=replace(p.pop, level=level), own_level=p.level)
            if level != p.level else p for p, level in zip(pops, pooled, strict=True)]


def rate_ratio(a: int, exposure_a: float, b: int, exposure_b: float,
               confidence: float = 0.95) -> dict[str, float | None]:
    """Ratio of two Poisson rates with its exact (conditional binomial) confidence interval.

    Given n = a + b events, a is binomial with p = r E_a / (r E_a + E_b) where r is the rate
    ratio; the Clopper-Pearson interval for p maps to one for r.

    Parameters
    ----------
    a, b : int
        Event counts.
    exposure_a, exposure_b : float
        Time at risk of each (any unit, the same for both).
    confidence : float

    Returns
    -------
    dict
        ``ratio``, ``low``, ``high`` (None where undefined: no exposure or no events), and the
        inputs.

    Examples
    --------
    >>> from backpop_sense.correlate import rate_ratio
    >>> r = rate_ratio(12, 10.0, 6, 20.0)
    >>> round(r["ratio"], 2), round(r["low"], 2), round(r["high"], 2)
    (4.0, 1.39, 12.99)
    """
    out: dict[str, float | None] = {"events": a, "exposure": exposure_a, "other_events": b,
                                    "other_exposure": exposure_b, "ratio": None, "low": None,
                                    "high": None, "confidence": confidence}
    if exposure_a <= 0 or exposure_b <= 0 or a + b == 0:
        return out
    scale = exposure_b / exposure_a
    ci = stats.binomtest(a, a + b).proportion_ci(confidence, method="exact")

    def odds(p: float) -> float | None:
        return None if p >= 1.0 else p / (1.0 - p) * scale

    out["ratio"] = odds(a / (a + b))
    out["low"], out["high"] = odds(ci.low), odds(ci.high)
    return out


def statistics(pops: list[PopInContext], context_s: dict[str, float], duration_s: float
               ) -> dict:
    """The session's pops in numbers (JSON-ready).

    Parameters
    ----------
    pops : list of PopInContext
        Typed pops.
    context_s : dict
        Seconds spent in each motion context (the motion tracker's summary).
    duration_s : float
        Session length, seconds.

    Returns
    -------
    dict
        ``count``, ``per_minute``, ``by_level``, ``by_kind``, ``by_context``,
        ``by_level_kind_context`` (nested counts), ``rate_per_minute_by_context`` (pops per
        minute spent in each context), ``twist_stretch_rate_ratio`` (with its exact 95 %
        interval) and ``recurring`` (per level with snaps: count and the angles' mean and
        standard deviation, degrees).
    """
    nested: dict[str, dict[str, dict[str, int]]] = {}
    for p in pops:
        cell = nested.setdefault(p.level, {}).setdefault(p.kind, {})
        cell[p.context] = cell.get(p.context, 0) + 1
    by_context = Counter(p.context for p in pops)
    rates = {c: round(by_context.get(c, 0) / (s / 60.0), 4)
             for c, s in sorted(context_s.items()) if s > 0}
    active_s = sum(context_s.get(c, 0.0) for c in ACTIVE_CONTEXTS)
    other_s = sum(s for c, s in context_s.items() if c not in ACTIVE_CONTEXTS)
    active = sum(by_context.get(c, 0) for c in ACTIVE_CONTEXTS)
    other = sum(n for c, n in by_context.items() if c not in ACTIVE_CONTEXTS and c != "unknown")
    ratio = rate_ratio(active, active_s / 60.0, other, other_s / 60.0)
    recurring = {}
    for level in sorted({p.level for p in pops if p.kind == "snap"}):
        angles = np.array([p.angles for p in pops if p.kind == "snap" and p.level == level])
        recurring[level] = {
            "count": len(angles),
            **{f"{axis}_deg": {"mean": round(float(angles[:, k].mean()), 2),
                               "sd": round(float(angles[:, k].std(ddof=1)), 2)
                               if len(angles) > 1 else None}
               for k, axis in enumerate(AXES)}}
    minutes = duration_s / 60.0
    return {
        "count": len(pops),
        "per_minute": round(len(pops) / minutes, 4) if minutes > 0 else None,
        "by_level": dict(sorted(Counter(p.level for p in pops).items())),
        "by_kind": {k: n for k in KINDS if (n := sum(p.kind == k for p in pops))},
        "by_context": dict(sorted(by_context.items())),
        "by_level_kind_context": nested,
        "rate_per_minute_by_context": rates,
        "twist_stretch_rate_ratio": {**ratio, "exposure_unit": "minutes",
                                     "method": "exact conditional binomial (Clopper-Pearson)"},
        "recurring": recurring,
    }
