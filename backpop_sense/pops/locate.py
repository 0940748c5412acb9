"""Which spinal level a pop came from, from how loud it was at each mic.

Vibration loses energy as it travels along the spine, roughly exponentially with distance,
so the log energy at each mic falls on a straight line against the mic's distance from the
source: ``log E_m = a - b * d_m``. For every candidate level the fit is made with the offset
``a`` free and the attenuation ``b`` searched over a plausible range; the level whose
distances make the energies most nearly collinear wins. A prior keeps ``b`` near a typical
value, which decides between mirror-image solutions when the mics cannot and steadies the
fit when the faint mics' shares are noisy.

Arrival order carries little here: at ~2 m/ms and 3 cm per level, the delays between
neighbouring mics are below one sample at 16 kHz, so energies decide.

A source heard again and again (a tendon snapping at the same posture every cycle,
background.md) can be placed from all its repeats at once: :func:`pooled_level` adds up the
fits' costs level by level, which averages out the noise that misplaces a faint pop alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np

from ..levels import LEVELS, SEGMENT_LENGTH_M, SKIN_DEPTH_M, level_index
from ..params import COUNT, NON_NEGATIVE, POSITIVE, Numbers, Rules, check

PRIOR_PER_M = 40.0
"""Typical attenuation of a pop's power along the spine, natural-log units per metre (-5.2 dB
per level, levels ``SEGMENT_LENGTH_M`` apart), in the band the shares are measured in
(above a high-pass at 0.7 times the pop's centroid). Tissue loses high frequencies faster
than low ones, so this band fades faster than the pop's whole power does; how the value was
chosen: ``benchmarks/detection.md`` ("The attenuation prior" and "The locator's prior chosen
on the family")."""


@dataclass(frozen=True)
class LocatorConfig:
    """Parameters of :func:`locate` in the pipeline (see its docstring).

    Attributes
    ----------
    prior_per_m : float
        Typical attenuation of power, natural-log units per metre (:data:`PRIOR_PER_M`).
    prior_weight : float
        Cost of a squared log-ratio of the fitted attenuation to ``prior_per_m``, in units of
        the fit's weighted squared residual (how it was chosen: ``benchmarks/detection.md``).
    attenuation_range_per_m : tuple of float
        The least and greatest attenuation searched, per metre...
    attenuation_steps : int
        ...in this many log-spaced steps.
    """

    prior_per_m: float = PRIOR_PER_M
    prior_weight: float = 0.25
    attenuation_range_per_m: tuple[float, float] = (6.0, 70.0)
    attenuation_steps: int = 24

    RULES: ClassVar[Rules] = {
        "prior_per_m": POSITIVE, "prior_weight": NON_NEGATIVE,
        "attenuation_range_per_m": Numbers(POSITIVE, "ascending", 2),
        "attenuation_steps": COUNT,
    }

    def __post_init__(self) -> None:
        check(self)

    def to_dict(self) -> dict:
        """The parameters, for summary.json."""
        return asdict(self)

    @cached_property
    def attenuations(self) -> np.ndarray:
        """The attenuations searched, per metre (made once per config: :func:`locate` runs
        for every pop)."""
        return np.geomspace(*self.attenuation_range_per_m, self.attenuation_steps)


DEFAULT_LOCATOR = LocatorConfig()


@dataclass(frozen=True)
class Location:
    """Result of :func:`locate`: the level, the fitted attenuation, and each candidate level
    with the fit's least cost there (the level's is the least of all): what
    :func:`pooled_level` adds up over the repeats of one source.
    """

    level: str
    attenuation_per_m: float
    costs: tuple[tuple[str, float], ...]


def candidate_levels(mics: Sequence[str], *, beyond: int = 0) -> list[str]:
    """Levels a pop may be placed at: the mics' span and ``beyond`` levels past each end.

    Past the end of the array every mic's distance grows by the same amount, which relative
    energies cannot see; so by default a pop beyond the last mic is placed at that mic.
    """
    lo = max(0, level_index(mics[0]) - beyond)
    hi = min(len(LEVELS) - 1, level_index(mics[-1]) + beyond)
    return list(LEVELS[lo: hi + 1])


def locate(energy: np.ndarray, mics: Sequence[str], *, background: np.ndarray | None = None,
           config: LocatorConfig = DEFAULT_LOCATOR) -> Location:
    """Place a pop at a spinal level from its energy at each mic.

    Parameters
    ----------
    energy : ndarray, shape (n_mics,)
        The pop's power at each mic with the background removed (any unit; ratios matter).
    background : ndarray, shape (n_mics,), optional
        The background power at each mic, same unit: a mic where the pop stands high above
        its background counts more in the fit than one where it barely shows.
    mics : sequence of str
        The level each mic sits over, top to bottom.
    config : LocatorConfig
        The attenuation prior and the attenuations searched.

    Returns
    -------
    Location

    Examples
    --------
    >>> import numpy as np
    >>> from backpop_sense.pops.locate import locate
    >>> d = np.array([0.105, 0.015, 0.105])  # a pop at L1 between mics at T10, L1, L4
    >>> locate(np.exp(-25 * d), ["T10", "L1", "L4"]).level
    'L1'
    """
    prior_per_m = config.prior_per_m
    if len(mics) == 1:
        return Location(mics[0], prior_per_m, ((mics[0], 0.0),))
    levels = candidate_levels(mics)
    b = config.attenuations
    log_e = np.log(np.maximum(np.asarray(energy, dtype=float), 1e-30))
    # A mic that did not hear the pop above its background says only "far": 30 dB below
    # the loudest is as far as the fit needs to know.
    log_e = np.maximum(log_e, log_e.max() - np.log(1e3))
    if background is None:
        w = np.ones(len(mics))
    else:
        w = np.clip(np.asarray(energy) / np.maximum(np.asarray(background), 1e-30), 0.1, 10.0)
    residual = _residuals(log_e, w / w.sum(), mics, levels, b)
    # A prior on the attenuation: a factor 2 either way costs prior_weight * ln(2)^2 residual
    # units. With three mics and two free parameters the fit has one degree of
    # freedom left, and at low SNR a free attenuation lets a neighbouring level fit as well.
    cost = residual + config.prior_weight * np.log(b / prior_per_m)[None, :] ** 2
    if len(mics) == 2:
        cost = cost + 1e3 * (np.log(b / prior_per_m) ** 2)[None, :]  # too few mics to fit b
    best = np.unravel_index(np.argmin(cost), cost.shape)
    by_level = cost.min(axis=1)
    return Location(levels[best[0]], float(b[best[1]]),
                    tuple((lv, float(c)) for lv, c in zip(levels, by_level, strict=True)))


def _residuals(log_e: np.ndarray, w: np.ndarray, mics: Sequence[str], levels: Sequence[str],
               b: np.ndarray) -> np.ndarray:
    """Weighted squared deviation of ``log_e + b * d`` from its mean over the mics, for each
    source level and attenuation (shape (levels, b)): 0 when the energies fall exactly as
    ``exp(-b d)`` from that level (``d``: each mic's distance from it, m)."""
    mic_pos = np.array([level_index(m) for m in mics]) * SEGMENT_LENGTH_M
    src_pos = np.array([level_index(lv) for lv in levels]) * SEGMENT_LENGTH_M
    d = np.abs(src_pos[:, None] - mic_pos[None, :]) + SKIN_DEPTH_M     # (levels, mics)
    predicted = log_e[None, None, :] + b[None, :, None] * d[:, None, :]  # = a if collinear
    mean = (predicted * w).sum(axis=-1, keepdims=True)
    return (w * (predicted - mean) ** 2).sum(axis=-1)


POOL_SLACK = DEFAULT_LOCATOR.prior_weight * math.log(2.0) ** 2
"""How much worse, by its own fit, the pooled level may be for a pop that takes it, in
residual units: what the attenuation prior charges for a fitted attenuation a factor 2 from
its typical value."""


def pooled_level(levels: Sequence[str], own: np.ndarray, repeats: np.ndarray, *,
                 slack: float = POOL_SLACK) -> str:
    """The level of a pop from its own fit and its repeats'.

    The level whose costs, summed over the pop and its repeats, are least; the pop takes it
    if its own cost there is within ``slack`` of its best, and otherwise keeps its own level:
    a pop that its own energies place clearly elsewhere is not moved by its neighbours.

    Parameters
    ----------
    levels : sequence of str
        The candidate levels (those of :attr:`Location.costs`).
    own : ndarray, shape (n_levels,)
        The pop's cost at each level.
    repeats : ndarray, shape (n_repeats, n_levels)
        Each repeat's cost at each level.

    Examples
    --------
    >>> import numpy as np
    >>> from backpop_sense.pops.locate import pooled_level
    >>> faint = np.array([0.30, 0.35, 0.9])   # alone, a near tie
    >>> clear = np.array([[0.9, 0.1, 0.8], [0.9, 0.1, 0.8]])
    >>> pooled_level(["L2", "L3", "L4"], faint, clear)
    'L3'
    """
    own = np.asarray(own, dtype=float)
    repeats = np.asarray(repeats, dtype=float)
    if repeats.size == 0:
        repeats = np.zeros((0, len(levels)))
    if own.shape != (len(levels),) or repeats.ndim != 2 or repeats.shape[1] != len(levels):
        raise ValueError(f"costs of {len(levels)} levels expected, got {own.shape} and "
                         f"{repeats.shape}")
    k = int(np.argmin(own + repeats.sum(axis=0)))
    return levels[k] if own[k] - own.min() <= slack else levels[int(np.argmin(own))]


def pool_levels(levels: Sequence[str], costs: np.ndarray, own: Sequence[str],
                repeats: Mapping[int, np.ndarray], *, min_count: int,
                slack: float = POOL_SLACK) -> list[str]:
    """The level of each of a session's pops, its repeats' fits pooled with its own.

    A pop with at least ``min_count - 1`` repeats takes :func:`pooled_level`'s level, if at
    least ``min_count`` of those repeats are at that level by their own sound: a pop joins a
    recurring source its repeats make on their own; pops that merely share a posture do not
    make one. Every other pop keeps its own level.

    Parameters
    ----------
    levels : sequence of str
        The candidate levels, as in :attr:`Location.costs`.
    costs : ndarray, shape (n_pops, n_levels)
        Each pop's cost at each level.
    own : sequence of str
        Each pop's own level.
    repeats : mapping of int to ndarray
        For each pop that may be pooled (by index), the indices of its repeats (what repeats
        a pop, the same posture in other movement cycles, is the caller's to find).
    min_count : int
        Pops a recurring source needs (the pop and its repeats).
    slack : float
        As in :func:`pooled_level`.
    """
    own_a = np.asarray(own)
    out = list(own)
    for i, found in repeats.items():
        if len(found) + 1 < min_count:
            continue
        level = pooled_level(levels, costs[i], costs[found], slack=slack)
        if level != own[i] and np.sum(own_a[found] == level) >= min_count:
            out[i] = level
    return out
