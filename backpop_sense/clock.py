"""What paces a stream and times a flush: the system's clock, or one a caller supplies.

A replay paced in real time and a recorder that flushes every second read the time; taking
the clock as a parameter lets a caller run them on simulated time (a test kills a recorder
after exactly so many seconds of session, without waiting for them).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """``monotonic()``: seconds since an arbitrary start; ``sleep(s)``: wait ``s`` seconds."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float, /) -> None: ...


SYSTEM_CLOCK: Clock = time
"""The :mod:`time` module: real, monotonic seconds."""


class SimulatedClock:
    """A clock whose time moves only when someone sleeps on it: a paced replay or a recorder
    run on it takes no wall time, and its time is exactly what they waited (s).

    Examples
    --------
    >>> from backpop_sense.clock import SimulatedClock
    >>> clock = SimulatedClock(start=100.0)
    >>> clock.sleep(2.5)
    >>> clock.monotonic()
    102.5
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float, /) -> None:
        if seconds < 0:
            raise ValueError(f"sleep length must be non-negative, not {seconds}")
        self.now += seconds
