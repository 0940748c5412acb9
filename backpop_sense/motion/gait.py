"""Walking from the gait rhythm: steps in the trunk's vertical acceleration, chained into bouts.

The detector works on a regular tick grid (the tracker's 50 Hz) of vertical linear
acceleration in m/s^2 (earth z, gravity removed), fed in runs of ticks. It low-passes the
signal, takes every peak above the step threshold that is the largest within half the
shortest step interval on each side as a step, and chains steps that follow each other
within the allowed intervals into bouts. A tick is walking when it lies between two steps of
a bout of at least ``min_steps`` steps, or within half a step after the bout's last step.

Whether a tick is walking is known only :attr:`GaitDetector.delay_ticks` later (a bout must
show its third step), so the detector reports up to which tick its answers are final.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .context import DEFAULT_CONTEXT, ContextConfig


class GaitDetector:
    """Steps and walking bouts from a tick series, in bounded memory.

    Parameters
    ----------
    tick_s : float
        Tick spacing, seconds.
    config : ContextConfig
        The step and bout thresholds.

    Examples
    --------
    >>> import numpy as np
    >>> from backpop_sense.motion.gait import GaitDetector
    >>> g = GaitDetector(0.02)
    >>> t = np.arange(500) * 0.02
    >>> g.feed(2.5 * np.cos(2 * np.pi * 1.8 * t))
    >>> bool(g.walking(np.arange(100, 200)).all())
    True
    """

    def __init__(self, tick_s: float, config: ContextConfig = DEFAULT_CONTEXT) -> None:
        self.tick_s = tick_s
        self.config = config
        # A Hann window as wide as one period of the cut-off: a zero-phase low-pass, so steps
        # keep their times (a causal filter would delay them by its group delay).
        m = max(1, int(round(0.5 / config.step_lowpass_hz / tick_s)))
        kernel = np.hanning(2 * m + 3)[1:-1]
        self._kernel = kernel / kernel.sum()
        self.smooth = m
        self.half = max(1, int(round(config.step_min_interval_s / 2 / tick_s)))
        self.min_gap = int(round(config.step_min_interval_s / tick_s))
        self.max_gap = int(round(config.step_max_interval_s / tick_s))
        self.reach = self.half + self.smooth
        self.delay_ticks = (config.min_steps - 1) * self.max_gap + self.reach + 1
        self._tail = np.zeros(0)
        self._fed = 0
        self.steps: deque[int] = deque()

    @property
    def final(self) -> int:
        """Ticks before this one have a final walking answer."""
        return self._fed - self.delay_ticks

    def feed(self, vertical_acc: np.ndarray) -> None:
        """Take the next ticks of vertical linear acceleration (m/s^2; NaN where missing)."""
        x = np.nan_to_num(np.asarray(vertical_acc, dtype=float))
        if not len(x):
            return
        self._tail = np.concatenate([self._tail, x])
        self._fed += len(x)
        self._scan(self._tail)

    def finish(self) -> None:
        """The stream has ended: decide the last ticks' steps (every answer is now final)."""
        if self._fed:
            fed = self._fed
            self._fed += self.reach
            self._scan(np.concatenate([self._tail, np.zeros(self.reach)]))
            self._fed = fed
        self.delay_ticks = 0

    def _scan(self, raw: np.ndarray) -> None:
        """Find the steps among ``raw`` (the ticks just before ``_fed``) not yet decided."""
        start = self._fed - len(raw)
        m, h = self.smooth, self.half
        if len(raw) > 2 * self.reach:
            y = np.convolve(raw, self._kernel, mode="valid")
            windows = np.lib.stride_tricks.sliding_window_view(y, 2 * h + 1)
            centre = windows[:, h]
            is_peak = ((centre >= self.config.step_acc_ms2)
                       & (centre > windows[:, :h].max(axis=1))
                       & (centre >= windows[:, h + 1:].max(axis=1)))
            for i in np.flatnonzero(is_peak):
                tick = start + m + h + int(i)
                if not self.steps or tick - self.steps[-1] >= self.min_gap:
                    self.steps.append(tick)
        # Keep what the next scan needs: the neighbourhoods of the ticks not yet decided.
        self._tail = raw[-2 * self.reach:] if len(raw) >= 2 * self.reach else raw

    def walking(self, ticks: np.ndarray) -> np.ndarray:
        """Whether each tick (absolute index, all below :attr:`final`) is walking."""
        ticks = np.asarray(ticks, dtype=int)
        out = np.zeros(len(ticks), dtype=bool)
        if len(self.steps) < self.config.min_steps or not len(ticks):
            return out
        s = np.fromiter(self.steps, dtype=int, count=len(self.steps))
        gaps = np.diff(s)
        link = (gaps >= self.min_gap) & (gaps <= self.max_gap)
        bout = np.concatenate([[0], np.cumsum(~link)])
        size = np.bincount(bout)
        i = np.searchsorted(s, ticks, side="right") - 1
        ok = i >= 0
        ii = np.clip(i, 0, len(s) - 1)
        big = size[bout[ii]] >= self.config.min_steps
        inside = ok & (ii < len(s) - 1) & np.concatenate([link, [False]])[ii]
        previous_gap = np.concatenate([[0], np.where(link, gaps, 0)])[ii]
        tail = ok & (previous_gap > 0) & (ticks - s[ii] <= previous_gap / 2)
        out[:] = big & (inside | tail)
        return out

    def forget_before(self, tick: int) -> None:
        """Drop steps no longer needed to answer for ticks from ``tick`` on."""
        keep_from = tick - (self.config.min_steps + 1) * self.max_gap
        while self.steps and self.steps[0] < keep_from:
            self.steps.popleft()
