"""Building blocks of simulated sound: events rendered on demand, and their common shapes.

Shared by the project's simulator (``simulate.py``) and its family of sound models
(``family.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .levels import level_distance_m


def ramp(x: np.ndarray) -> np.ndarray:
    """Raised-cosine step from 0 (x <= 0) to 1 (x >= 1), smooth in velocity."""
    x = np.clip(x, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * x)


def damped(t: np.ndarray, freqs: np.ndarray, taus: np.ndarray, phases: np.ndarray,
           weights: np.ndarray, rise_s: float) -> np.ndarray:
    """Sum of damped sinusoids starting at t = 0 (s), with a raised-cosine onset of ``rise_s``
    seconds; ``freqs`` in Hz, ``taus`` (decay time constants) in s."""
    tt = np.maximum(t, 0.0)[:, None]
    y = (weights * np.exp(-tt / taus) * np.sin(2 * np.pi * freqs * tt + phases)).sum(axis=1)
    return np.where(t >= 0, y * ramp(t / rise_s), 0.0)


@dataclass(frozen=True)
class Event:
    """A short sound: ``length`` samples from sample ``start``, rendered by ``make`` on demand.

    ``make`` returns an array of shape (length, mics) and draws its randomness from its own
    seed, so rendering order does not matter and only sounding events occupy memory.
    """

    start: int
    length: int
    make: Callable[[], np.ndarray]
    kind: str


class Track:
    """Events placed chunk by chunk, in time order; memory is bounded by what is sounding."""

    def __init__(self, events: list[Event], n_mics: int) -> None:
        self.events = sorted(events, key=lambda e: e.start)
        self.n_mics = n_mics
        self.next = 0
        self.active: list[tuple[Event, np.ndarray]] = []

    def add(self, event: Event) -> None:
        """Append an event that starts no earlier than any already rendered."""
        self.events.append(event)

    def render(self, a: int, b: int) -> np.ndarray:
        """The sum of every event over samples ``a`` to ``b``; call with increasing ``a``."""
        out = np.zeros((b - a, self.n_mics))
        while self.next < len(self.events) and self.events[self.next].start < b:
            e = self.events[self.next]
            self.next += 1
            if e.start + e.length > a:
                self.active.append((e, e.make()))
        still = []
        for e, x in self.active:
            lo, hi = max(a, e.start), min(b, e.start + e.length)
            if lo < hi:
                out[lo - a: hi - a] += x[lo - e.start: hi - e.start]
            if e.start + e.length > b:
                still.append((e, x))
        self.active = still
        return out


def mic_weights(mics: tuple[str, ...], origin: str, length_m: float) -> np.ndarray:
    """Amplitude at each mic of a sound from ``origin``, falling by e every ``length_m`` m."""
    return np.array([math.exp(-level_distance_m(origin, m) / length_m) for m in mics])


def seed_of(rng: np.random.Generator) -> int:
    """A fresh seed drawn from ``rng``, for an event that renders from its own stream."""
    return int(rng.integers(2**63))
