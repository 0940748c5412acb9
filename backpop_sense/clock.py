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
