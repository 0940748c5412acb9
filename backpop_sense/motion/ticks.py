"""The tick grid every motion stage works on, and a bounded window of per-tick series.

Tick ``j`` holds the IMU samples with ``(j - 0.5) * TICK_S <= t < (j + 0.5) * TICK_S``: it is
centred on ``j * TICK_S``, so every 10 Hz frame time (``k * 0.1`` s) is a tick centre and the
sample recorded at that instant falls inside it whatever the rounding of its time stamp.
"""

from __future__ import annotations

import numpy as np

TICK_S = 0.02
"""Tick spacing, seconds (50 Hz): fine enough for a 100 ms arrest, the IMU minimum rate."""


class TickWindow:
    """The last ``keep`` ticks (at least) of named series, addressed by absolute tick index.

    Series live in preallocated arrays of twice ``keep`` rows; when they fill up, the newest
    ``keep`` rows move to the front, so appending costs O(1) per tick and memory is bounded.

    Parameters
    ----------
    keep : int
        Ticks that stay addressable behind the newest one.
    **columns : tuple of int
        Name and per-tick shape of each series (``()`` for a scalar per tick).

    Examples
    --------
    >>> import numpy as np
    >>> from backpop_sense.motion.ticks import TickWindow
    >>> w = TickWindow(3, x=())
    >>> w.extend(x=np.arange(8.0))
    >>> w.start, w.get("x", 0, 8)
    (0, array([0., 1., 2., 3., 4., 5., 6., 7.]))
    """

    def __init__(self, keep: int, **columns: tuple[int, ...]) -> None:
        self.keep = keep
        self.start = 0
        self.used = 0
        self._data = {k: np.full((2 * keep, *shape), np.nan) for k, shape in columns.items()}

    @property
    def end(self) -> int:
        """One past the newest tick held."""
        return self.start + self.used

    def extend(self, **rows: np.ndarray) -> None:
        """Append the next ticks of every series (all of the same length)."""
        n = len(next(iter(rows.values())))
        capacity = len(next(iter(self._data.values())))
        if self.used + n > capacity:
            retain = min(self.used, self.keep)
            if retain + n > capacity:
                capacity = retain + n + self.keep
            for k, old in self._data.items():
                new = old if len(old) == capacity else np.full((capacity, *old.shape[1:]),
                                                               np.nan)
                new[:retain] = old[self.used - retain:self.used]
                self._data[k] = new
            self.start += self.used - retain
            self.used = retain
        for k, v in rows.items():
            self._data[k][self.used:self.used + n] = v
        self.used += n

    def get(self, name: str, a: int, b: int) -> np.ndarray:
        """Series ``name`` over ticks ``[a, b)``, clipped to what is held (a view)."""
        a, b = max(a, self.start), min(b, self.end)
        return self._data[name][a - self.start: max(a, b) - self.start]

    def at(self, name: str, ticks: np.ndarray) -> np.ndarray:
        """Series ``name`` at the given ticks (absolute indices, all held)."""
        return self._data[name][np.asarray(ticks) - self.start]

    def put(self, name: str, a: int, values: np.ndarray) -> None:
        """Overwrite series ``name`` from tick ``a`` on with ``values``."""
        self._data[name][a - self.start: a - self.start + len(values)] = values
