"""Catches (a movement locking mid-range) and falls (impact, then lying still), from tick series.

Both detectors work on the tracker's regular tick grid (50 Hz), are fed runs of consecutive
ticks, keep only the ticks their windows need, and decide an event once the ticks after it
have arrived: :attr:`CatchDetector.lookahead_ticks` and :attr:`FallDetector.lookahead_ticks`
are their latencies.

Catch (background.md R4: a joint that locks or catches during movement)
    The trunk turns at speed, then its angular velocity falls from near its recent peak to
    almost nothing within about 100 ms (an arrest, far quicker than any voluntary stop,
    which eases out over 200 ms or more), stays arrested for a moment, and the movement then
    resumes in the same direction, which shows that the arrest was mid-range and not at the
    end of the range.

Fall (background.md R8)
    An impact (the specific force's magnitude above ``impact_g``; published trunk thresholds
    for falls are about 3-3.5 g, Bourke et al., Gait Posture 2007), then, within a few
    seconds, the trunk still and lying (tilted ``lying_deg`` or more from vertical) and its
    posture changed from before the impact. The acceleration alone would false-alarm: real
    lower-back recordings of daily life peak at 2-3.4 g.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..params import ANGLE_DEG, FRACTION, NON_NEGATIVE, POSITIVE, Number, Numbers, Rules, check
from ..session import GRAVITY
from .orientation import row_norm
from .ticks import TickWindow


@dataclass(frozen=True)
class CatchConfig:
    """Thresholds of the catch detector (degrees per second, seconds, cosine).

    Attributes
    ----------
    move_dps : float
        The movement's peak angular speed before the arrest must reach this.
    peak_window_s : float
        The peak is looked for over this long before the arrest.
    arrest_fraction : float
        Speed at the start of the arrest, as a fraction of the peak.
    arrest_max_s : float
        From ``arrest_fraction`` of the peak to ``still_dps`` within this long (~100 ms).
    still_dps : float
        Arrested: the angular speed is below this.
    hold_min_s : float
        The arrest lasts at least this long (speed below ``hold_dps``).
    hold_dps : float
        Speed ceiling while held.
    resume_max_s : float
        The movement resumes (speed above ``resume_dps``) within this long after the arrest.
    resume_dps : float
        Speed that counts as moving again.
    same_direction_cos : float
        Cosine between the angular velocity before the arrest and after resumption.
    refractory_s : float
        At most one catch in this long.
    """

    move_dps: float = 10.0
    peak_window_s: float = 0.5
    arrest_fraction: float = 0.8
    arrest_max_s: float = 0.1
    still_dps: float = 5.0
    hold_min_s: float = 0.2
    hold_dps: float = 6.0
    resume_max_s: float = 3.0
    resume_dps: float = 8.0
    same_direction_cos: float = 0.5
    refractory_s: float = 1.0

    RULES: ClassVar[Rules] = {
        "move_dps": NON_NEGATIVE, "peak_window_s": POSITIVE, "arrest_fraction": FRACTION,
        "arrest_max_s": POSITIVE, "still_dps": NON_NEGATIVE, "hold_min_s": NON_NEGATIVE,
        "hold_dps": NON_NEGATIVE, "resume_max_s": POSITIVE, "resume_dps": NON_NEGATIVE,
        "same_direction_cos": Number(-1, 1), "refractory_s": NON_NEGATIVE,
    }

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class FallConfig:
    """Thresholds of the fall detector (g, degrees, degrees per second, m/s^2, seconds).

    Attributes
    ----------
    impact_g : float
        Specific-force magnitude of an impact, in g.
    settle_s : float
        Stillness is looked for from this long after the impact...
    window_s : float
        ...until this long after it.
    still_s : float
        The trunk is still for at least this long...
    still_dps, still_acc_ms2 : float
        ...meaning angular speed and linear acceleration below these.
    lying_deg : float
        While still, every trunk segment is tilted at least this far from vertical.
    change_deg : float
        And the tilt differs from the posture before the fall by at least this much.
    before_s : tuple of float
        The posture before is the mean tilt between these times before the impact.
    refractory_s : float
        At most one fall in this long.
    """

    impact_g: float = 3.0
    settle_s: float = 0.3
    window_s: float = 6.0
    still_s: float = 1.0
    still_dps: float = 20.0
    still_acc_ms2: float = 2.0
    lying_deg: float = 60.0
    change_deg: float = 30.0
    before_s: tuple[float, float] = (1.6, 0.9)
    refractory_s: float = 10.0

    RULES: ClassVar[Rules] = {
        "impact_g": POSITIVE, "settle_s": NON_NEGATIVE, "window_s": POSITIVE,
        "still_s": POSITIVE, "still_dps": NON_NEGATIVE, "still_acc_ms2": NON_NEGATIVE,
        "lying_deg": ANGLE_DEG, "change_deg": ANGLE_DEG,
        "before_s": Numbers(NON_NEGATIVE, "descending", 2), "refractory_s": NON_NEGATIVE,
    }
    ORDER: ClassVar = (("settle_s", "window_s"),)

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class Detection:
    """An event found on the tick grid: its tick, type (``catch``/``fall``) and evidence."""

    tick: float
    type: str
    detail: str


class CatchDetector:
    """Catches from the trunk's angular velocity, tick by tick.

    Parameters
    ----------
    tick_s : float
        Tick spacing, seconds.
    config : CatchConfig
        Thresholds.
    """

    def __init__(self, tick_s: float, config: CatchConfig | None = None) -> None:
        self.config = c = config or CatchConfig()
        self.tick_s = tick_s
        self.pre = int(round(c.peak_window_s / tick_s))
        self.arrest_ticks = c.arrest_max_s / tick_s
        self.hold = max(1, int(round(c.hold_min_s / tick_s)))
        self.resume = int(round(c.resume_max_s / tick_s))
        self.direction = max(1, int(round(0.2 / tick_s)))
        self.lookahead_ticks = self.resume + self.direction + 1
        self._window = TickWindow(self.pre + self.direction + self.lookahead_ticks + 2,
                               w=(3,), angles=(3,))
        self._next = 1
        self._last = -np.inf

    @property
    def decided(self) -> int:
        """Every catch before this tick has been reported (a catch is timed mid-arrest, up
        to ``arrest_max_s`` before the tick that decides it)."""
        return self._next - int(math.ceil(self.arrest_ticks)) - 1

    def feed(self, omega_dps: np.ndarray, angles_deg: np.ndarray) -> list[Detection]:
        """Take the next ticks: angular velocity (deg/s, any fixed frame) and lumbar angles."""
        self._window.extend(w=np.asarray(omega_dps, float), angles=np.asarray(angles_deg, float))
        return self._scan(self._window.end - self.lookahead_ticks)

    def finish(self) -> list[Detection]:
        """Decide the last ticks with what has arrived."""
        return self._scan(self._window.end)

    def _scan(self, stop: int) -> list[Detection]:
        c, win = self.config, self._window
        a = max(self._next, win.start + 1)
        if stop <= a:
            return []
        # NaN (no samples) compares False: a gap is never taken for an arrest.
        speed = row_norm(win.get("w", a - 1, stop))
        arrests = np.flatnonzero((speed[:-1] > c.still_dps) & (speed[1:] <= c.still_dps)) + a
        self._next = stop
        found = []
        for j in arrests.tolist():
            if (j - self._last) * self.tick_s < c.refractory_s:
                continue
            detection = self._judge(j)
            if detection is not None:
                self._last = j
                found.append(detection)
        return found

    def _judge(self, j: int) -> Detection | None:
        c, win = self.config, self._window
        w_before = win.get("w", j - self.pre, j)
        w_after = win.get("w", j, j + self.resume + self.direction)
        if not (len(w_before) and np.isfinite(w_before).all() and np.isfinite(w_after).all()):
            return None
        s_before = row_norm(w_before)
        if s_before.max() < c.move_dps:
            return None
        peak = float(s_before.max())
        fast = np.flatnonzero(s_before >= c.arrest_fraction * peak)
        k = j - len(s_before) + int(fast[-1])
        if j - k > self.arrest_ticks:
            return None
        s_after = row_norm(w_after)
        if len(s_after) < self.hold or s_after[:self.hold].max() > c.hold_dps:
            return None
        moving = np.flatnonzero(s_after[self.hold:self.resume] >= c.resume_dps)
        if not len(moving):
            return None
        r = self.hold + int(moving[0])
        before = win.get("w", k - self.direction + 1, k + 1).mean(axis=0)
        after = w_after[r:r + self.direction].mean(axis=0)
        cos = float(before @ after / (row_norm(before) * row_norm(after) + 1e-12))
        if cos < c.same_direction_cos:
            return None
        half = k + int(np.argmax(row_norm(win.get("w", k, j + 1)) < 0.5 * peak))
        angles = win.get("angles", j, j + 1)[0]
        held = int(np.argmax(np.append(s_after[self.hold:], np.inf) > c.hold_dps)) + self.hold
        detail = (f"arrested at {peak:.0f} deg/s within {(j - k) * self.tick_s * 1000:.0f} ms, "
                  f"held {held * self.tick_s:.1f} s, resumed; flexion {angles[0]:.0f}, "
                  f"lateral {angles[1]:.0f}, twist {angles[2]:.0f} deg")
        return Detection(float(half), "catch", detail)


class FallDetector:
    """Falls: an impact, then the trunk still and lying, its posture changed.

    Parameters
    ----------
    tick_s : float
        Tick spacing, seconds.
    config : FallConfig
        Thresholds.
    """

    def __init__(self, tick_s: float, config: FallConfig | None = None) -> None:
        self.config = c = config or FallConfig()
        self.tick_s = tick_s
        self.before = (int(round(c.before_s[0] / tick_s)), int(round(c.before_s[1] / tick_s)))
        self.settle = int(round(c.settle_s / tick_s))
        self.span = int(round(c.window_s / tick_s))
        self.still = max(1, int(round(c.still_s / tick_s)))
        self.lookahead_ticks = self.span + self.settle + 1
        self._window = TickWindow(self.before[0] + self.lookahead_ticks + 2, acc=(), speed=(),
                               lin=(), tilt=())
        self._next = 0
        self._last = -np.inf

    @property
    def decided(self) -> int:
        """Every fall before this tick has been reported."""
        return self._next

    def feed(self, acc_ms2: np.ndarray, speed_dps: np.ndarray, lin_ms2: np.ndarray,
             tilt_deg: np.ndarray) -> list[Detection]:
        """Take the next ticks.

        Parameters
        ----------
        acc_ms2 : array
            Largest specific-force magnitude of any IMU in the tick, m/s^2.
        speed_dps : array
            Largest angular speed of any IMU, deg/s.
        lin_ms2 : array
            Largest linear-acceleration magnitude of any IMU, m/s^2.
        tilt_deg : array
            Smallest tilt from vertical of the trunk segments, degrees.
        """
        self._window.extend(acc=np.asarray(acc_ms2, float), speed=np.asarray(speed_dps, float),
                            lin=np.asarray(lin_ms2, float), tilt=np.asarray(tilt_deg, float))
        return self._scan(self._window.end - self.lookahead_ticks)

    def finish(self) -> list[Detection]:
        """Decide the last ticks with what has arrived."""
        return self._scan(self._window.end)

    def _scan(self, stop: int) -> list[Detection]:
        c, win = self.config, self._window
        a = max(self._next, win.start)
        if stop <= a:
            return []
        acc = win.get("acc", a, stop)
        self._next = stop
        found = []
        with np.errstate(invalid="ignore"):
            impacts = np.flatnonzero(acc >= c.impact_g * GRAVITY) + a
        for i in impacts.tolist():
            if (i - self._last) * self.tick_s < c.refractory_s:
                continue
            # The strongest tick of the impact: look a little ahead for a higher one.
            near = np.nan_to_num(win.get("acc", i, i + self.settle))
            i_peak = i + int(np.argmax(near))
            detection = self._judge(i_peak)
            if detection is not None:
                self._last = i_peak
                found.append(detection)
        return found

    def _judge(self, i: int) -> Detection | None:
        c, win = self.config, self._window
        after = slice(i + self.settle, i + self.span)
        quiet = ((win.get("speed", after.start, after.stop) < c.still_dps)
                 & (win.get("lin", after.start, after.stop) < c.still_acc_ms2))
        tilt_after = win.get("tilt", after.start, after.stop)
        run = 0
        for k, q in enumerate(quiet.tolist()):
            run = run + 1 if q else 0
            if run >= self.still:
                lying = float(np.nanmean(tilt_after[k - run + 1:k + 1]))
                break
        else:
            return None
        earlier = win.get("tilt", i - self.before[0], i - self.before[1])
        earlier = earlier[np.isfinite(earlier)]
        # At the very start of a stream there is no "before": the lying posture must do.
        before = float(earlier.mean()) if len(earlier) else 0.0
        if not (lying >= c.lying_deg and abs(lying - before) >= c.change_deg):
            return None
        peak_g = float(win.get("acc", i, i + 1)[0]) / GRAVITY
        detail = (f"impact {peak_g:.1f} g, then still and lying (trunk tilt {lying:.0f} deg, "
                  f"{before:.0f} deg before)")
        return Detection(float(i), "fall", detail)
