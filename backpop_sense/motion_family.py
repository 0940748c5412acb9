"""The motion family: each session's IMU errors, rates and activity drawn per seed from wide ranges.

The project's own simulator (``simulate.py``) gives every session the same gentle sensors: a
gyro offset of about 0.6 deg/s, sensors a degree or two off their declared axes, both IMUs
at 200 Hz, a session that starts standing still. A tracker tuned there fails on a strap that
differs. A *motion family member* draws, from its seed, every sensor error within what
consumer MEMS IMUs are specified to, each IMU's rate and phase, and a plan of daily living
that may start on the move and may keep moving for ten minutes.

Members are split by seed: parameters are chosen on :data:`TUNING_SEEDS`, figures are
reported on :data:`HELDOUT_SEEDS` (never used for choosing anything).

Ranges, and where they come from
--------------------------------
=========================  ==========================  =======================================
parameter                  range (per IMU)             source
=========================  ==========================  =======================================
gyro bias                  +-1 deg/s per axis,         zero-rate offset of consumer MEMS gyros
                           uniform                     at room temperature: +-0.5-1 deg/s
                                                       typical (datasheets of the BMI270,
                                                       LSM6DSO, ICM-42688 class); issue 22
gyro bias walk             0.0005-0.002 deg/s/sqrt(s)  in-run drift with temperature on the
                           (random walk)               body: 0.04-0.17 deg/s over 2 h
gyro noise density         0.004-0.02 deg/s/sqrt(Hz)   datasheets: 0.004-0.007 typical; up to
                                                       3x for older parts and vibration
accelerometer bias         +-0.1 m/s^2 per axis        zero-g offset after the assembly's
                                                       offset calibration (about +-10 mg;
                                                       +-20-50 mg raw, which the firmware
                                                       removes)
accelerometer noise        100-300 ug/sqrt(Hz)         datasheets: 70-300 ug/sqrt(Hz)
misalignment               0-10 deg about a random     a strap worn by the subject: sensors
                           axis                        sit up to 10 deg off their declared
                                                       axes (issue 22)
rate                       50, 52, 100, 104, 200,      the output data rates of Bosch (25*2^k)
                           208 or 400 Hz, the two      and ST (13*2^k) IMUs between 50 and
                           IMUs different              400 Hz (issue 22)
phase                      0 to one sample period      the IMUs' clocks are not aligned
start                      still, walking or bent      issue 22: sessions that start on the
                           (1/3 each)                  move, with no still start
busy stretch               up to 10 min of walking     issue 22: long stretches without
                           and turning, no still       standing still
                           moment, after the start
=========================  ==========================  =======================================

Readings are drawn at each IMU's own rate from the simulator's 200 Hz kinematics (the body
moves well below 20 Hz; heel-strike shocks ring at 15 Hz), interpolated linearly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

TUNING_SEEDS = range(0, 100)
"""Members parameters may be chosen on."""
HELDOUT_SEEDS = range(1000, 2000)
"""Members figures are reported on; never used for choosing anything."""
RATES_HZ = (50.0, 52.0, 100.0, 104.0, 200.0, 208.0, 400.0)
STARTS = ("still", "walking", "bent")
IMUS = ("thoracic", "sacral")
BUSY_S = 600.0
"""The longest stretch without a still moment, seconds."""


@dataclass(frozen=True)
class ImuErrors:
    """One IMU of a member: its rate and every sensor error (units in the names)."""

    rate_hz: float
    phase_s: float
    gyro_bias_dps: tuple[float, float, float]
    gyro_walk_dps_per_sqrt_s: float
    gyro_noise_dps_per_sqrt_hz: float
    acc_bias_ms2: tuple[float, float, float]
    acc_noise_ms2_per_sqrt_hz: float
    misalignment_rotvec_deg: tuple[float, float, float]

    @property
    def misalignment_deg(self) -> float:
        """How far the sensor sits off its declared axes, degrees."""
        return float(np.linalg.norm(self.misalignment_rotvec_deg))


@dataclass(frozen=True)
class MotionMember:
    """A member of the motion family: per-IMU errors and how the session starts."""

    seed: int
    thoracic: ImuErrors
    sacral: ImuErrors
    start: str
    busy_s: float

    def imu(self, name: str) -> ImuErrors:
        """The errors of IMU ``name`` (``thoracic`` or ``sacral``)."""
        return {"thoracic": self.thoracic, "sacral": self.sacral}[name]

    def plan(self, duration_s: float) -> list[tuple[str, float]]:
        """The member's activities (``simulate.script_from_plan``) filling ``duration_s``.

        The start (walking, or rising from a forward bend of 30-60 degrees, or standing),
        then up to ``busy_s`` of walking and turning with no still moment, then daily living
        (standing, walking, bends, twists, side bends, extensions, sitting, lying, turns)
        to the end.
        """
        rng = np.random.default_rng([self.seed, 22, 1])
        plan: list[tuple[str, float]] = []
        budget = duration_s - 20.0
        used = 0.0
        if self.start == "bent":
            plan.append(("bent-start", float(rng.uniform(30.0, 60.0))))
            used += 3.0
        if self.start != "still":
            walk = round(float(rng.uniform(20.0, 60.0)), 1)
            plan.append(("walk", walk))
            used += walk
        busy = min(self.busy_s, 0.4 * budget)
        while used < busy - 30.0:
            walk = float(min(rng.uniform(40.0, 120.0), busy - used))
            plan += [("walk", round(walk, 1)), ("turn", float(rng.choice([-1, 1]) * 90.0))]
            used += walk + 2.5
        if self.start == "still" and not plan:
            plan.append(("stand", 6.0))
            used += 6.0
        daily = [("stand", 8.0), ("walk", 30.0), ("bend", 3.0), ("stand", 5.0), ("twist", 3.0),
                 ("sit", 40.0), ("side", 2.0), ("turn", 90.0), ("walk", 20.0), ("extend", 2.0),
                 ("stand", 6.0), ("lie", 30.0), ("walk", 40.0), ("twist", 2.0), ("bend", 2.0)]
        cost = {"sit": 5.0, "lie": 9.0, "turn": 2.5}
        while True:
            name, value = daily[int(rng.integers(len(daily)))]
            if name in ("stand", "walk", "sit", "lie"):
                value = round(value * float(rng.uniform(0.6, 1.6)), 1)
                seconds = value + cost.get(name, 0.0)
            elif name == "turn":
                value = float(rng.choice([-1, 1]) * value)
                seconds = cost["turn"]
            else:
                seconds = 6.0 * value
            if used + seconds > budget:
                break
            plan.append((name, value))
            used += seconds
        return plan


def _rotvec(rng: np.random.Generator, max_deg: float) -> tuple[float, float, float]:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = max_deg * math.sqrt(rng.uniform())  # uniform over the disc of tilts
    return tuple(float(v) for v in axis * angle)  # type: ignore[return-value]


def draw_imu(rng: np.random.Generator, rate_hz: float) -> ImuErrors:
    """One IMU's errors, drawn from the ranges in the module docstring."""
    return ImuErrors(
        rate_hz=rate_hz,
        phase_s=float(rng.uniform(0.0, 1.0 / rate_hz)),
        gyro_bias_dps=tuple(float(v) for v in rng.uniform(-1.0, 1.0, 3)),  # type: ignore[arg-type]
        gyro_walk_dps_per_sqrt_s=float(rng.uniform(0.0005, 0.002)),
        gyro_noise_dps_per_sqrt_hz=float(rng.uniform(0.004, 0.02)),
        acc_bias_ms2=tuple(float(v) for v in rng.uniform(-0.1, 0.1, 3)),  # type: ignore[arg-type]
        acc_noise_ms2_per_sqrt_hz=float(rng.uniform(100e-6, 300e-6) * 9.80665),
        misalignment_rotvec_deg=_rotvec(rng, 10.0),
    )


def draw_motion(seed: int, **fixed: object) -> MotionMember:
    """A member of the motion family, drawn from its own stream of ``seed``.

    Parameters
    ----------
    seed : int
        The same seed gives the same member.
    **fixed
        Fields to set instead of drawing them (``start="walking"``, ``busy_s=0.0``...).

    Examples
    --------
    >>> from backpop_sense.motion_family import draw_motion
    >>> m = draw_motion(1003)
    >>> m.thoracic.rate_hz != m.sacral.rate_hz
    True
    """
    rng = np.random.default_rng([seed, 22])
    rates = rng.choice(RATES_HZ, size=2, replace=False)
    member = MotionMember(
        seed=seed,
        thoracic=draw_imu(rng, float(rates[0])),
        sacral=draw_imu(rng, float(rates[1])),
        start=str(rng.choice(STARTS)),
        busy_s=float(rng.choice([0.0, BUSY_S])),
    )
    return replace(member, **fixed)  # type: ignore[arg-type]


def sample_times(errors: ImuErrors, duration_s: float) -> np.ndarray:
    """The IMU's sample times over the session, seconds."""
    n = int(math.floor((duration_s - errors.phase_s) * errors.rate_hz))
    return errors.phase_s + np.arange(max(n, 0)) / errors.rate_hz


def readings(errors: ImuErrors, t_kin: np.ndarray, gyro: np.ndarray, specific_force: np.ndarray,
             rng: np.random.Generator, duration_s: float) -> dict[str, np.ndarray]:
    """Noisy readings at the IMU's own rate from noise-free kinematics on ``t_kin``.

    Parameters
    ----------
    errors : ImuErrors
        The IMU.
    t_kin, gyro, specific_force : ndarray
        Kinematics time (s), angular velocity (rad/s) and specific force (m/s^2) in the
        sensor frame.
    rng : Generator
        The noise.
    duration_s : float
        Session length, seconds.

    Returns
    -------
    dict
        ``t`` (s), ``acc`` (m/s^2), ``gyro`` (rad/s).
    """
    t = sample_times(errors, duration_s)
    t = t[t <= t_kin[-1]]
    n = len(t)

    def at(x: np.ndarray) -> np.ndarray:
        return np.stack([np.interp(t, t_kin, x[:, i]) for i in range(3)], axis=1)

    dt = 1.0 / errors.rate_hz
    walk = np.cumsum(rng.normal(0.0, errors.gyro_walk_dps_per_sqrt_s * math.sqrt(dt), (n, 3)),
                     axis=0)
    gyro_noise = errors.gyro_noise_dps_per_sqrt_hz * math.sqrt(errors.rate_hz / 2.0)
    acc_noise = errors.acc_noise_ms2_per_sqrt_hz * math.sqrt(errors.rate_hz / 2.0)
    g = at(gyro) + np.radians(np.asarray(errors.gyro_bias_dps) + walk
                              + rng.normal(0.0, gyro_noise, (n, 3)))
    a = at(specific_force) + np.asarray(errors.acc_bias_ms2) + rng.normal(0.0, acc_noise, (n, 3))
    return {"t": t, "acc": a, "gyro": g}


def describe(member: MotionMember) -> dict[str, object]:
    """The member as JSON-ready numbers (for ``session.json`` and reports)."""
    def imu(e: ImuErrors) -> dict[str, object]:
        return {"rate_hz": e.rate_hz, "gyro_bias_dps": [round(v, 3) for v in e.gyro_bias_dps],
                "acc_bias_ms2": [round(v, 3) for v in e.acc_bias_ms2],
                "misalignment_deg": round(e.misalignment_deg, 2)}
    return {"seed": member.seed, "start": member.start, "busy_s": member.busy_s,
            "thoracic": imu(member.thoracic), "sacral": imu(member.sacral)}
