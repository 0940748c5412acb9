"""What the spine is doing at each instant: the context labels and their one config.

Labels (docs/formats.md), at each instant the first that applies: ``walk`` while the gait
rhythm is present; ``twist`` when |twist| exceeds ``twist_deg``; ``stretch`` when |flexion|
exceeds ``stretch_deg`` (forward bend or extension); ``bend`` when |lateral bend| exceeds
``bend_deg``; ``static`` when nothing moved within the surrounding ``still_window_s``;
otherwise ``other`` (angles in degrees, times in seconds; :class:`ContextConfig`).

The thresholds sit near the middle of healthy adult lumbar ranges (flexion about 40-60
degrees, lateral bend and axial rotation about 20-30 degrees each way, e.g. Troke et al.,
Clin Biomech 2005), so a label marks a clearly deliberate movement rather than posture sway.

Walking is found from the gait rhythm (see :mod:`~backpop_sense.motion.gait`): steps are the
peaks of the trunk's vertical acceleration, which rises by about 2-5 m/s^2 at every heel strike
(Zijlstra & Hof, Gait Posture 2003); a bout is at least ``min_steps`` steps
``step_min_interval_s`` to ``step_max_interval_s`` apart (cadences from slow walking to
running), labelled from its first step to half a step after its last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..params import ANGLE_DEG, COUNT, NON_NEGATIVE, POSITIVE, Rules, check


@dataclass(frozen=True)
class ContextConfig:
    """Thresholds of the context labels (degrees, degrees per second, m/s^2, seconds, Hz).

    ``twist`` needs the twist to have been made by moving: within the last
    ``twist_window_s`` it spanned more than ``twist_deg`` (gyro drift, under 1 deg/s once
    the biases are learnt, cannot).

    ``step_*`` and ``min_steps`` define the gait rhythm: a step is a peak of the low-passed
    (``step_lowpass_hz``) vertical linear acceleration above ``step_acc_ms2``; steps
    ``step_min_interval_s`` to ``step_max_interval_s`` apart chain into a bout, and a bout of
    ``min_steps`` or more is walking.
    """

    twist_deg: float = 15.0
    twist_window_s: float = 10.0
    stretch_deg: float = 30.0
    bend_deg: float = 15.0
    still_rate_dps: float = 4.0
    still_acc_ms2: float = 0.3
    still_window_s: float = 1.0
    rate_hz: float = 10.0
    step_acc_ms2: float = 1.2
    step_lowpass_hz: float = 3.0
    step_min_interval_s: float = 0.25
    step_max_interval_s: float = 1.0
    min_steps: int = 3

    RULES: ClassVar[Rules] = {
        "twist_deg": ANGLE_DEG, "twist_window_s": POSITIVE, "stretch_deg": ANGLE_DEG,
        "bend_deg": ANGLE_DEG, "still_rate_dps": NON_NEGATIVE, "still_acc_ms2": NON_NEGATIVE,
        "still_window_s": POSITIVE, "rate_hz": POSITIVE, "step_acc_ms2": NON_NEGATIVE,
        "step_lowpass_hz": POSITIVE, "step_min_interval_s": POSITIVE,
        "step_max_interval_s": POSITIVE, "min_steps": COUNT,
    }
    ORDER: ClassVar = (("step_min_interval_s", "step_max_interval_s"),)

    def __post_init__(self) -> None:
        check(self)


DEFAULT_CONTEXT = ContextConfig()


def label_context(*, walking: np.ndarray, flexion_deg: np.ndarray, lateral_deg: np.ndarray,
                  twist_deg: np.ndarray, still: np.ndarray,
                  config: ContextConfig = DEFAULT_CONTEXT,
                  twist_span_deg: np.ndarray | None = None) -> np.ndarray:
    """Label each instant with its context.

    Parameters
    ----------
    walking : bool array
        Whether the gait rhythm is present.
    flexion_deg, lateral_deg, twist_deg : float arrays
        Lumbar angles in degrees.
    still : bool array
        Whether nothing moved within the surrounding ``config.still_window_s``.
    twist_span_deg : float array, optional
        How far the twist ranged over the last ``config.twist_window_s`` (degrees); a twist
        that did not range over more than ``config.twist_deg`` is no ``twist`` (drift).
        Truth, which knows the twist, leaves it out.

    Returns
    -------
    ndarray of str
        One label of :data:`~backpop_sense.vocab.CONTEXTS` per instant.
    """
    conditions = [
        np.asarray(walking, dtype=bool),
        (np.abs(twist_deg) > config.twist_deg) & (
            True if twist_span_deg is None else np.asarray(twist_span_deg) > config.twist_deg),
        np.abs(flexion_deg) > config.stretch_deg,
        np.abs(lateral_deg) > config.bend_deg,
        np.asarray(still, dtype=bool),
    ]
    return np.select(conditions, ["walk", "twist", "stretch", "bend", "static"], "other")
