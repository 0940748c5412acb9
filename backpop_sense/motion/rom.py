"""Range of motion in bounded memory: a fixed-bin histogram per axis."""

from __future__ import annotations

import numpy as np


class AngleHistogram:
    """Counts of angles in fixed bins, from which percentiles are read in constant memory.

    Parameters
    ----------
    lo_deg, hi_deg : float
        The histogram's span, degrees; values outside count in the end bins.
    bin_deg : float
        Bin width, degrees; percentiles are exact to half a bin.

    Examples
    --------
    >>> import numpy as np
    >>> from backpop_sense.motion.rom import AngleHistogram
    >>> h = AngleHistogram()
    >>> h.add(np.linspace(-10.0, 10.0, 2001))
    >>> round(h.percentile(95)), round(h.max, 1)
    (9, 10.0)
    """

    def __init__(self, lo_deg: float = -180.0, hi_deg: float = 180.0,
                 bin_deg: float = 0.1) -> None:
        self.lo, self.bin = lo_deg, bin_deg
        self.counts = np.zeros(int(round((hi_deg - lo_deg) / bin_deg)), dtype=np.int64)
        self.min = np.inf
        self.max = -np.inf

    @property
    def n(self) -> int:
        """Number of values counted."""
        return int(self.counts.sum())

    def add(self, values: np.ndarray) -> None:
        """Count finite values, degrees."""
        v = np.asarray(values, dtype=float)
        finite = np.isfinite(v)
        if not finite.all():
            v = v[finite]
        if not len(v):
            return
        lo, hi = v.min(), v.max()
        idx = np.clip(((v - self.lo) / self.bin).astype(int), 0, len(self.counts) - 1)
        first = min(int((lo - self.lo) / self.bin), len(self.counts) - 1) if lo > self.lo else 0
        counts = np.bincount(idx - first)
        self.counts[first:first + len(counts)] += counts
        self.min = min(self.min, float(lo))
        self.max = max(self.max, float(hi))

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100), degrees, to half a bin; NaN when empty."""
        total = self.counts.sum()
        if total == 0:
            return float("nan")
        k = int(np.searchsorted(np.cumsum(self.counts), q / 100.0 * total))
        return self.lo + (min(k, len(self.counts) - 1) + 0.5) * self.bin

    def summary(self) -> dict[str, float | None]:
        """5th and 95th percentile, minimum and maximum, degrees (None when empty)."""
        if self.n == 0:
            return {"p5": None, "p95": None, "min": None, "max": None}
        return {"p5": round(self.percentile(5), 2), "p95": round(self.percentile(95), 2),
                "min": round(self.min, 2), "max": round(self.max, 2)}
