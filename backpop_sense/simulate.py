"""Synthetic strap sessions with ground truth, from a physical model of body and sound.

No public recordings of spinal pops exist, so detection is measured here. The model is built
from physiology and physics, not from what any detector looks for:

Motion
    A scripted activity (standing, forward bends, extensions, twists, side bends, walking with
    heel strikes, sitting, lying, a fall with an impact, a bend arrested mid-range) gives the
    pelvis orientation and position and the lumbar flexion, lateral bend and twist as smooth
    functions of time. The sacral sensor rides on the pelvis; the thoracic sensor is the pelvis
    composed with the lumbar rotation (:func:`~backpop_sense.motion.spine.spine_rotation`),
    carried on a two-link spine. Accelerometers read specific force in their own frame (the
    second derivative of position minus gravity, rotated into the sensor), plus heel-strike
    shocks and white noise; gyroscopes read the body angular velocity plus a constant bias,
    a slow bias walk and white noise. Each sensor is mounted a few degrees off its nominal axes.

Sound
    Each contact mic hears a continuous floor (electronic and body noise, muscle rumble that
    grows with movement, heartbeat louder near the heart, breathing, mains hum), intermittent
    artifacts (footstep thumps at heel strikes, fabric rub during movement, bone-conducted
    speech, external knocks that reach every mic equally, the thud of a fall) and pops. A pop
    is a transient born at one spinal level and carried along the spine to each mic, losing
    level with distance (about 3.3 dB per level), losing high frequencies (a first-order
    low-pass whose corner falls with distance) and arriving later (1800 m/s).

Pops follow background.md
    ``cavitation``: during fast movement or stretch, mid-range, broadband and short; a level
    that has popped cannot cavitate again inside the refractory window (20 minutes).
    ``snap``: a tendon slipping over bone at the same angle of every forward-bend cycle, at one
    level, lower in pitch and longer. ``readjustment``: near the end of the range of a twist or
    a stretch; a double click. In a held stretch (``held-stretch``: a bend, twist or side bend
    held 3-8 s, as a physiotherapist's exercise holds it) the spine is still at the end of its
    range: readjustments of a held twist or forward bend, and cavitations of a held side bend
    (a stretch lowers the joint's pressure), come during the hold, pops that no movement of
    the spine accompanies.

SNR
    A pop's ``snr_db`` is measured at its nearest mic: mean power over the 10 ms after its onset
    divided by the mean power of the continuous floor over the surrounding second (artifacts
    excluded). Every pop is scaled to meet the requested SNR exactly.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import signal
from scipy.ndimage import maximum_filter1d
from scipy.spatial.transform import Rotation

from . import __version__, family, motion_family
from .levels import LEVELS, SKIN_DEPTH_M, level_distance_m, level_index
from .motion.context import DEFAULT_CONTEXT, ContextConfig, label_context
from .motion.spine import spine_rotation
from .params import (
    FINITE,
    FLAG,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    Choice,
    Identifier,
    Instance,
    Level,
    Levels,
    Number,
    OrNone,
    Rules,
    check,
)
from .session import (
    AUDIO_SUBTYPES,
    GRAVITY,
    MAX_AUDIO_RATE_HZ,
    MAX_IMU_RATE_HZ,
    MIN_AUDIO_RATE_HZ,
    MIN_IMU_RATE_HZ,
    ImuInfo,
    MicInfo,
    SessionInfo,
    SessionWriter,
)
from .sounds import Event, Track, damped, mic_weights, ramp, seed_of

SCENARIOS = ("healthy", "twist-cavitation", "snapping", "post-fall", "artifacts-only", "long",
             "held-stretch")
DEFAULT_MINUTES = {"healthy": 2.0, "twist-cavitation": 2.0, "snapping": 2.0, "post-fall": 3.0,
                   "artifacts-only": 2.0, "long": 120.0, "held-stretch": 3.0}
SNR_WINDOW_S = 0.010
"""Pop power is averaged over this long after the onset."""
BACKGROUND_WINDOW_S = 1.0
"""The floor's power is averaged over this long, centred on the pop."""
ATTENUATION_LENGTH_M = 0.08
"""Amplitude falls by e over this distance along the spine (about 3.3 dB per level)."""
SOUND_SPEED_MS = 1800.0
"""Propagation speed of a pop along the spine (soft tissue to cortical bone: 1540-3000 m/s)."""
CHUNK = 1 << 17
"""Audio samples rendered at a time; bounds the simulator's audio memory."""
HEART_LEVEL = "T6"
PELVIS_HEIGHT_M = 1.0
LUMBAR_LOWER_M, LUMBAR_UPPER_M, SENSOR_DEPTH_M = 0.12, 0.18, 0.08


@dataclass(frozen=True)
class SimConfig:
    """Everything that decides a simulated session; the same config gives the same files.

    Attributes
    ----------
    scenario : str
        One of :data:`SCENARIOS`.
    minutes : float, optional
        Length; ``None`` takes :data:`DEFAULT_MINUTES` of the scenario.
    seed : int
        Random seed.
    snr_db : float
        Every pop's SNR at its nearest mic, dB.
    sr : int
        Audio rate, Hz.
    imu_rate : float
        IMU rate, Hz.
    artifacts : bool
        Footsteps, fabric rub, speech, knocks and fall thuds (the floor is always there).
    rom_scale : float
        Range of motion relative to a healthy adult (1.0); below 1, stiffer.
    pop_scale : float
        Multiplies every pop probability.
    refractory_s : float
        Cavitation refractory period per level, seconds (about 20 minutes).
    with_fall, with_catch : bool, optional
        Force a fall or a mid-range catch into the script (the scenario decides when None).
    snap_level : str, optional
        Level of the snapping tendon (random when None).
    catch_pop : float
        Probability that a catch comes with a pop (a cavitation as the joint gives).
    acoustics : Acoustics, optional
        A member of the simulator family (``family.py``, :func:`family_member`): its sounds
        instead of the project's own model.
    with_imus : bool
        Write the two IMUs (a session with mics only when False).
    motion : MotionMember, optional
        A member of the motion family (``motion_family.py``): its IMU errors, rates and
        plan instead of the project's own sensors (``imu_rate`` is then the rate of the
        kinematics the readings are drawn from). With no ``mics`` the session is IMU-only.
    """

    scenario: str = "healthy"
    minutes: float | None = None
    seed: int = 0
    snr_db: float = 15.0
    sr: int = 16000
    imu_rate: float = 200.0
    artifacts: bool = True
    subject: str = "SIM01"
    session: str | None = None
    start: datetime = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    mics: tuple[str, ...] = ("T10", "L1", "L4")
    rom_scale: float = 1.0
    pop_scale: float = 1.0
    refractory_s: float = 1200.0
    with_fall: bool | None = None
    with_catch: bool | None = None
    with_mag: bool = False
    subtype: str = "PCM_16"
    snap_level: str | None = None
    catch_pop: float = 0.9
    acoustics: family.Acoustics | None = None
    with_imus: bool = True
    motion: motion_family.MotionMember | None = None

    RULES: ClassVar[Rules] = {
        "scenario": Choice(SCENARIOS), "minutes": OrNone(Number(0, 24 * 60, above=True)),
        "seed": Number(0, whole=True), "snr_db": FINITE,
        "sr": Number(MIN_AUDIO_RATE_HZ, MAX_AUDIO_RATE_HZ, whole=True),
        "imu_rate": Number(MIN_IMU_RATE_HZ, MAX_IMU_RATE_HZ), "artifacts": FLAG,
        "subject": Identifier(), "session": OrNone(Identifier()),
        "start": Instance(datetime, "a datetime"), "mics": Levels(), "rom_scale": POSITIVE,
        "pop_scale": NON_NEGATIVE, "refractory_s": NON_NEGATIVE, "with_fall": OrNone(FLAG),
        "with_catch": OrNone(FLAG), "with_mag": FLAG,
        "subtype": Choice(tuple(sorted(AUDIO_SUBTYPES))), "snap_level": OrNone(Level()),
        "catch_pop": FRACTION, "acoustics": OrNone(Instance(family.Acoustics, "an Acoustics")),
        "with_imus": FLAG,
        "motion": OrNone(Instance(motion_family.MotionMember, "a MotionMember")),
    }
    """Checked when made, before anything is drawn or written: a session the reader would
    refuse, or one sized by an absurd rate, is never begun."""

    def __post_init__(self) -> None:
        check(self)

    @property
    def duration_s(self) -> float:
        """Session length in seconds."""
        return 60.0 * (self.minutes if self.minutes is not None
                       else DEFAULT_MINUTES[self.scenario])


@dataclass(frozen=True)
class Move:
    """One scripted movement of the lumbar spine (or the whole body, for a fall)."""

    kind: str
    axis: str
    t_start: float
    t_peak: float
    t_hold_end: float
    t_end: float
    amplitude_deg: float
    held: bool = False
    """A held stretch: the spine stays still at the peak from ``t_peak`` to ``t_hold_end``."""


@dataclass
class Script:
    """The scripted activity, sampled at the IMU rate: the ground truth of the motion."""

    t: np.ndarray
    flexion: np.ndarray
    lateral: np.ndarray
    twist: np.ndarray
    pelvis_flexion: np.ndarray
    pelvis_roll: np.ndarray
    heading: np.ndarray
    position: np.ndarray
    walking: np.ndarray
    heel_strikes: list[float] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    falls: list[float] = field(default_factory=list)
    catches: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Pop:
    """A scheduled pop: time of its onset at the source (s), level, kind and motion angle."""

    t: float
    level: str
    kind: str
    angle_deg: float


@dataclass(frozen=True)
class SimSummary:
    """What a simulation wrote."""

    path: Path
    duration_s: float
    pops: int
    kinds: dict[str, int]
    steps: int
    falls: int


class _ScriptBuilder:
    """Lays activities end to end; each starts and ends standing upright and still."""

    def __init__(self, duration_s: float, rate: float, rng: np.random.Generator,
                 rom_scale: float) -> None:
        n = int(round(duration_s * rate))
        self.rate = rate
        self.t = np.arange(n) / rate
        self.rng = rng
        self.rom = rom_scale
        z = np.zeros(n)
        self.flexion, self.lateral, self.twist = z.copy(), z.copy(), z.copy()
        self.pelvis_flexion, self.pelvis_roll, self.heading = z.copy(), z.copy(), z.copy()
        self.height_drop = z.copy()
        self.velocity = np.zeros((n, 2))
        self.walking = np.zeros(n, dtype=bool)
        self.heel_strikes: list[float] = []
        self.moves: list[Move] = []
        self.falls: list[float] = []
        self.catches: list[float] = []
        self.cursor = 0.0
        self.heading_now = 0.0

    @property
    def duration(self) -> float:
        return self.t[-1] + 1.0 / self.rate if len(self.t) else 0.0

    def _span(self, t0: float, t1: float) -> slice:
        return slice(int(math.ceil(t0 * self.rate)), min(int(math.ceil(t1 * self.rate)),
                                                          len(self.t)))

    def _bump(self, target: np.ndarray, t0: float, rise: float, hold: float, fall: float,
              amplitude: float) -> None:
        s = self._span(t0, t0 + rise + hold + fall)
        tt = self.t[s] - t0
        target[s] += amplitude * (ramp(tt / rise) - ramp((tt - rise - hold) / fall))

    def stand(self, seconds: float) -> None:
        t0 = self.cursor
        s = self._span(t0, t0 + seconds)
        phase = self.rng.uniform(0, 2 * np.pi)
        sway = 0.3 * np.sin(2 * np.pi * 0.15 * (self.t[s] - t0) + phase)
        edge = ramp((self.t[s] - t0) / 1.0) * ramp((t0 + seconds - self.t[s]) / 1.0)
        self.flexion[s] += sway * edge
        self.cursor += seconds

    def bent_start(self, degrees: float) -> None:
        """The session starts with the trunk bent forward by ``degrees`` and rising (3 s)."""
        s = self._span(0.0, 3.0)
        rise = degrees * (1.0 - ramp(self.t[s] / 3.0))
        self.flexion[s] += rise
        self.pelvis_flexion[s] += 0.4 * rise
        self.cursor += 3.0

    def movement(self, kind: str, reps: int, held: bool = False) -> None:
        """Repeated lumbar movements: ``bend`` (forward), ``extend``, ``twist``, ``side``;
        ``held``: each held at its peak for :data:`HELD_STRETCH_S` instead of 0.3-0.9 s."""
        base = {"bend": (55.0, 10.0), "extend": (-20.0, 4.0), "twist": (38.0, 6.0),
                "side": (25.0, 4.0)}[kind]
        target = {"bend": self.flexion, "extend": self.flexion, "twist": self.twist,
                  "side": self.lateral}[kind]
        axis = {"bend": "flexion", "extend": "flexion", "twist": "twist", "side": "lateral"}[kind]
        sign = 1.0
        for _ in range(reps):
            amp = sign * self.rom * (base[0] + self.rng.uniform(-1, 1) * base[1])
            rise, hold, fall = (self.rng.uniform(1.0, 1.8),
                                self.rng.uniform(*(HELD_STRETCH_S if held else (0.3, 0.9))),
                                self.rng.uniform(1.0, 1.8))
            t0 = self.cursor
            self._bump(target, t0, rise, hold, fall, amp)
            if kind in ("bend", "extend"):
                # Lumbopelvic rhythm: the pelvis supplies about a third of trunk flexion.
                self._bump(self.pelvis_flexion, t0, rise, hold, fall, 0.4 * amp)
            self.moves.append(Move(kind, axis, t0, t0 + rise, t0 + rise + hold,
                                   t0 + rise + hold + fall, amp, held))
            self.cursor += rise + hold + fall + self.rng.uniform(0.6, 1.5)
            if kind in ("twist", "side"):
                sign = -sign

    def catch(self) -> None:
        """A forward bend arrested abruptly mid-range, held, then resumed (a catch)."""
        amp = self.rom * self.rng.uniform(45, 60)
        stop_frac = self.rng.uniform(0.35, 0.55)
        rise1 = self.rng.uniform(0.5, 0.8)
        self._arrest("flexion", amp, stop_frac, rise1, decel=0.06, halt=0.8, rise2=1.0,
                     hold=0.5, fall=1.6)

    def varied_catch(self) -> None:
        """A catch in any direction: a bend, a twist or a side bend, arrested within 40-100 ms
        somewhere mid-range, held 0.3-1.2 s, then resumed."""
        axis = str(self.rng.choice(["flexion", "twist", "lateral"]))
        low, high = {"flexion": (45, 60), "twist": (30, 40), "lateral": (20, 28)}[axis]
        sign = 1.0 if axis == "flexion" else float(self.rng.choice([-1.0, 1.0]))
        amp = sign * self.rom * self.rng.uniform(low, high)
        self._arrest(axis, amp, self.rng.uniform(0.35, 0.6), self.rng.uniform(0.4, 0.8),
                     decel=self.rng.uniform(0.04, 0.1), halt=self.rng.uniform(0.3, 1.2),
                     rise2=self.rng.uniform(0.8, 1.2), hold=0.5, fall=self.rng.uniform(1.2, 1.8))

    def _arrest(self, axis: str, amp: float, stop_frac: float, rise1: float, *, decel: float,
                halt: float, rise2: float, hold: float, fall: float) -> None:
        """A movement about ``axis`` stopped at ``stop_frac`` of ``amp`` within ``decel``
        seconds, held ``halt`` seconds, resumed to ``amp``, held, and returned."""
        t0 = self.cursor
        s = self._span(t0, t0 + rise1 + decel + halt + rise2 + hold + fall)
        tt = self.t[s] - t0
        v_peak = stop_frac * amp / (rise1 + decel / 2)
        # Angular velocity: steady movement, an abrupt stop within decel, a pause, then resume.
        vel = np.where(tt < rise1, v_peak * ramp(tt / 0.25), 0.0)
        stop = (tt >= rise1) & (tt < rise1 + decel)
        vel[stop] = v_peak * (1 - ramp((tt[stop] - rise1) / decel))
        angle = np.cumsum(vel) / self.rate
        reached = angle[np.searchsorted(tt, rise1 + decel)] if len(angle) else 0.0
        t_resume = rise1 + decel + halt
        resume = ramp((tt - t_resume) / rise2) * (amp - reached)
        back = ramp((tt - t_resume - rise2 - hold) / fall) * amp
        target = {"flexion": self.flexion, "twist": self.twist, "lateral": self.lateral}[axis]
        target[s] += angle + resume - back
        if axis == "flexion":
            self.pelvis_flexion[s] += 0.4 * (angle + resume - back)
        self.catches.append(t0 + rise1 + decel / 2)
        self.moves.append(Move("catch", axis, t0, t0 + t_resume + rise2,
                               t0 + t_resume + rise2 + hold, t0 + t_resume + rise2 + hold + fall,
                               amp))
        self.cursor += rise1 + decel + halt + rise2 + hold + fall + 1.0

    def walk(self, seconds: float) -> None:
        """Walking at about 1.2 m/s and 1.8 steps/s, with heel strikes, then stopping."""
        t0 = self.cursor
        s = self._span(t0, t0 + seconds)
        tt = self.t[s] - t0
        cadence = self.rng.uniform(1.7, 1.95)
        speed = self.rng.uniform(1.0, 1.35)
        env = ramp(tt / 1.0) * ramp((seconds - tt) / 1.0)
        phase = 2 * np.pi * cadence * tt
        stride = phase / 2
        self.twist[s] += 4.0 * np.sin(stride) * env
        self.lateral[s] += 2.0 * np.sin(stride + 0.5) * env
        self.pelvis_roll[s] += 3.0 * np.sin(stride) * env
        self.heading[s] += -4.0 * np.sin(stride) * env
        self.height_drop[s] += 0.02 * (1 + np.cos(phase)) * env
        forward = speed * env * (1 + 0.08 * np.cos(phase))
        h = np.radians(self.heading_now)
        self.velocity[s, 0] += -np.sin(h) * forward
        self.velocity[s, 1] += np.cos(h) * forward
        strikes = t0 + np.arange(1, int(seconds * cadence)) / cadence
        strikes = strikes[(strikes > t0 + 0.8) & (strikes < t0 + seconds - 0.8)]
        self.heel_strikes.extend(strikes.tolist())
        if len(strikes):
            self.walking[self._span(strikes[0], strikes[-1] + 0.5 / cadence)] = True
        self.cursor += seconds

    def turn(self, degrees: float) -> None:
        """Turn the whole body on the spot (no lumbar twist)."""
        seconds = 2.0
        s = self._span(self.cursor, self.duration)
        self.heading[s] += degrees * ramp((self.t[s] - self.cursor) / seconds)
        self.heading_now += degrees
        self.cursor += seconds + 0.5

    def sit(self, seconds: float) -> None:
        t0, down = self.cursor, 2.0
        self._bump(self.height_drop, t0, down, seconds, down, 0.45)
        self._bump(self.pelvis_flexion, t0, down, seconds, down, -15.0)
        self._bump(self.flexion, t0, down, seconds, down, 15.0)
        # Sit-to-stand and back lean the trunk forward mid-transition.
        self._bump(self.flexion, t0 + 0.3, 0.7, 0.0, 0.8, 20.0)
        self._bump(self.flexion, t0 + down + seconds + 0.1, 0.7, 0.0, 0.9, 20.0)
        self.cursor += 2 * down + seconds + 1.0

    def lie(self, seconds: float) -> None:
        t0, down = self.cursor, 4.0
        self._bump(self.height_drop, t0, down, seconds, down, 0.8)
        self._bump(self.pelvis_flexion, t0, down, seconds, down, -90.0)
        self.cursor += 2 * down + seconds + 1.0

    def fall(self, lie_seconds: float) -> None:
        """A backward fall: accelerating rotation and drop, an impact, lying still, getting up."""
        self._fall(self.pelvis_flexion, -90.0, lie_seconds, t_fall=0.6, t_stop=0.07)

    def varied_fall(self, lie_seconds: float) -> None:
        """A fall backward, forward or to a side, lasting 0.5-0.9 s, the impact stopping the
        body within 50-120 ms (softer ground, a hand put out), then lying and getting up."""
        direction = str(self.rng.choice(["backward", "forward", "left", "right"]))
        target, angle = {"backward": (self.pelvis_flexion, -90.0),
                         "forward": (self.pelvis_flexion, 90.0),
                         "left": (self.pelvis_roll, -90.0),
                         "right": (self.pelvis_roll, 90.0)}[direction]
        self._fall(target, angle, lie_seconds, t_fall=self.rng.uniform(0.5, 0.9),
                   t_stop=self.rng.uniform(0.05, 0.12))

    def _fall(self, target: np.ndarray, angle: float, lie_seconds: float, *, t_fall: float,
              t_stop: float) -> None:
        t0, up = self.cursor, 5.0
        s = self._span(t0, t0 + t_fall + t_stop + lie_seconds + up)
        tt = self.t[s] - t0
        # Velocity grows until the body meets the floor, then dies within t_stop (the impact).
        grow = np.clip(tt / t_fall, 0, None)
        decay = np.where(tt < t_fall, 1.0, 1 - ramp((tt - t_fall) / t_stop))
        profile = np.cumsum(grow * decay) / self.rate
        profile = profile / profile[-1]
        getting_up = ramp((tt - t_fall - t_stop - lie_seconds) / up)
        shape = profile * (1 - getting_up)
        target[s] += angle * shape
        self.height_drop[s] += 0.85 * shape
        self.falls.append(t0 + t_fall + t_stop / 2)
        self.moves.append(Move("fall", "pelvis", t0, t0 + t_fall, t0 + t_fall + lie_seconds,
                               t0 + t_fall + t_stop + lie_seconds + up, angle))
        self.cursor += t_fall + t_stop + lie_seconds + up + 1.0

    def build(self) -> Script:
        position = np.zeros((len(self.t), 3))
        position[:, :2] = np.cumsum(self.velocity, axis=0) / self.rate
        position[:, 2] = PELVIS_HEIGHT_M - self.height_drop
        return Script(self.t, self.flexion, self.lateral, self.twist, self.pelvis_flexion,
                      self.pelvis_roll, self.heading, position, self.walking,
                      self.heel_strikes, self.moves, self.falls, self.catches)


def _activity_plan(config: SimConfig, rng: np.random.Generator) -> list[tuple[str, float]]:
    """The scenario's sequence of (activity, parameter), cycled to fill the session."""
    daily = [("stand", 6), ("walk", 20), ("bend", 3), ("stand", 4), ("twist", 4), ("sit", 15),
             ("side", 4), ("turn", 90), ("walk", 15), ("extend", 2), ("stand", 5)]
    plans = {
        "healthy": daily,
        "twist-cavitation": [("stand", 5), ("twist", 6), ("walk", 10), ("twist", 6),
                             ("bend", 2), ("stand", 4)],
        "snapping": [("stand", 5), ("bend", 6), ("walk", 10), ("bend", 6), ("twist", 2)],
        "post-fall": daily,
        "artifacts-only": daily,
        "long": daily + [("lie", 30), ("walk", 40), ("sit", 60), ("twist", 4), ("bend", 4)],
        "held-stretch": [("stand", 5), ("held-bend", 2), ("walk", 10), ("held-twist", 2),
                         ("held-side", 2), ("stand", 4), ("bend", 2)],
    }
    plan = list(plans[config.scenario])
    rng.shuffle(plan[1:])
    return plan


def build_script(config: SimConfig, rng: np.random.Generator) -> Script:
    """Lay out the scenario's activities over the session."""
    b = _ScriptBuilder(config.duration_s, config.imu_rate, rng, config.rom_scale)
    plan = _activity_plan(config, rng)
    end = config.duration_s - 12.0
    fall_at = None
    if config.with_fall or (config.with_fall is None and config.scenario == "post-fall"):
        fall_at = 0.3 * config.duration_s
    catch_at = 0.5 * config.duration_s if config.with_catch else None
    b.stand(4.0)
    i = 0
    while b.cursor < end:
        if fall_at is not None and b.cursor >= fall_at:
            b.fall(lie_seconds=rng.uniform(6, 10))
            fall_at = None
            continue
        if catch_at is not None and b.cursor >= catch_at:
            b.catch()
            catch_at = None
            continue
        name, value = plan[i % len(plan)]
        i += 1
        # Activities stop short of a scripted fall or catch, so those happen on time.
        deadline = min(x for x in (end, fall_at, catch_at) if x is not None)
        room = deadline - b.cursor
        if name in ("stand", "walk", "sit", "lie"):
            seconds = min(float(value) * rng.uniform(0.7, 1.3), room)
            if seconds < 3.0 or (name in ("sit", "lie") and seconds < 10):
                b.stand(max(min(room, 3.0), 0.1))
                continue
            getattr(b, name)(seconds)
        elif name == "turn":
            b.turn(float(rng.choice([-1, 1]) * value))
        elif name.startswith("held-"):
            if room >= HELD_REP_S:
                b.movement(name[5:], reps=max(1, int(min(value, room // HELD_REP_S))),
                           held=True)
            else:
                b.stand(max(room, 0.1))
        elif room >= 5.0:
            b.movement(name, reps=max(1, int(min(value, room // 5))))
        else:
            b.stand(max(room, 0.1))
    b.stand(max(b.duration - b.cursor, 0.0))
    return b.build()


PLAN_ACTIVITIES = ("stand", "walk", "sit", "lie", "turn", "fall", "varied-fall", "catch",
                   "varied-catch", "bend", "extend", "twist", "side", "held-bend", "held-twist",
                   "held-side", "bent-start")
"""What a scripted plan may hold: seconds for stand/walk/sit/lie, degrees for turn, seconds
lying for fall (backward) and varied-fall (any direction, random timing), repetitions for
catch (a forward bend arrested), varied-catch (a bend, twist or side bend arrested, with
random timing), the bend/extend/twist/side movements and the held-bend/held-twist/held-side
stretches (held :data:`HELD_STRETCH_S`); degrees of forward bend for bent-start (first in a
plan without a still start: the session begins bent and rising)."""
HELD_STRETCH_S = (3.0, 8.0)
"""How long a held stretch stays at its peak (s): long enough that the gate's look at the
spine's movement around a pop in it (0.5 s before to 0.08 s after) sees none."""
HELD_REP_S = 14.0
"""The room (s) a scenario's held rep is given: rise and fall up to 1.8 s each, the hold up
to :data:`HELD_STRETCH_S`'s 8 s and the pause after up to 1.5 s, rounded up."""


def script_from_plan(plan: Sequence[tuple[str, float]], config: SimConfig,
                     rng: np.random.Generator, *, still_start: bool = True) -> Script:
    """Lay out a given sequence of activities, in order and once, after 4 s of standing.

    Parameters
    ----------
    plan : sequence of (activity, value)
        Activities of :data:`PLAN_ACTIVITIES` and their value (see there).
    config : SimConfig
        Length, IMU rate and range of motion (its scenario is not used).
    rng : Generator
        Randomness of the movements' amplitudes and timing.
    still_start : bool
        Begin with the 4 s of standing (False: the first activity starts at once).

    Raises
    ------
    ValueError
        For an unknown activity, or a plan longer than the session.
    """
    b = _ScriptBuilder(config.duration_s, config.imu_rate, rng, config.rom_scale)
    if still_start:
        b.stand(4.0)
    for name, value in plan:
        if name == "bent-start":
            b.bent_start(float(value))
        elif name in ("stand", "walk", "sit", "lie"):
            getattr(b, name)(float(value))
        elif name == "turn":
            b.turn(float(value))
        elif name in ("fall", "varied-fall"):
            (b.fall if name == "fall" else b.varied_fall)(lie_seconds=float(value))
        elif name in ("catch", "varied-catch"):
            arrest = b.catch if name == "catch" else b.varied_catch
            for _ in range(int(value)):
                arrest()
        elif name in ("bend", "extend", "twist", "side"):
            b.movement(name, reps=int(value))
        elif name in ("held-bend", "held-twist", "held-side"):
            b.movement(name[5:], reps=int(value), held=True)
        else:
            raise ValueError(f"unknown activity {name!r}; use one of {PLAN_ACTIVITIES}")
    if b.cursor > b.duration:
        raise ValueError(f"the plan lasts {b.cursor:.0f} s, longer than the session "
                         f"({b.duration:.0f} s)")
    b.stand(max(b.duration - b.cursor, 0.0))
    return b.build()


@dataclass
class Kinematics:
    """Orientation, angular velocity and specific force of both sensors, noise-free."""

    t: np.ndarray
    orientation: dict[str, Rotation]
    gyro: dict[str, np.ndarray]
    specific_force: dict[str, np.ndarray]
    linear_acc: dict[str, np.ndarray]


def _heel_shock(t: np.ndarray, strikes: list[float], peak: float) -> np.ndarray:
    """Vertical shock of heel strikes at the trunk: a damped ~15 Hz oscillation per step."""
    out = np.zeros_like(t)
    if not strikes:
        return out
    dt = t[1] - t[0]
    k = np.arange(int(0.15 / dt))
    kernel = peak * np.exp(-k * dt / 0.02) * np.sin(2 * np.pi * 15.0 * k * dt)
    idx = np.clip(np.round(np.asarray(strikes) / dt).astype(int), 0, len(t) - 1)
    impulses = np.zeros_like(t)
    np.add.at(impulses, idx, 1.0)
    return signal.fftconvolve(impulses, kernel)[: len(t)]


def kinematics(script: Script, rng: np.random.Generator,
               member: motion_family.MotionMember | None = None) -> Kinematics:
    """Sensor kinematics from the script: the physics of the IMU half of the simulator.

    Each sensor sits a degree or two off its segment's axes, or as far as ``member`` says.
    """
    t = script.t
    dt = t[1] - t[0]
    world_pelvis = Rotation.from_euler("Z", script.heading[:, None], degrees=True) * spine_rotation(
        script.pelvis_flexion, script.pelvis_roll, 0.0)
    world_thorax = world_pelvis * spine_rotation(script.flexion, script.lateral, script.twist)
    up = np.array([0.0, 0.0, 1.0])
    back = np.array([0.0, -SENSOR_DEPTH_M, 0.0])
    joint = script.position + world_pelvis.apply(LUMBAR_LOWER_M * up)
    positions = {
        "sacral": script.position + world_pelvis.apply(back),
        "thoracic": joint + world_thorax.apply(LUMBAR_UPPER_M * up + back),
    }
    shock = _heel_shock(t, script.heel_strikes, 8.0)
    out = Kinematics(t, {}, {}, {}, {})
    for name, segment in (("sacral", world_pelvis), ("thoracic", world_thorax)):
        mount = Rotation.from_rotvec(rng.normal(0.0, np.radians(1.5), 3))
        if member is not None:
            mount = Rotation.from_rotvec(member.imu(name).misalignment_rotvec_deg, degrees=True)
        sensor = segment * mount
        acc = np.gradient(np.gradient(positions[name], dt, axis=0), dt, axis=0)
        acc[:, 2] += shock * (1.0 if name == "sacral" else 0.6)
        rel = sensor[:-1].inv() * sensor[1:]
        omega = rel.as_rotvec() / dt
        omega = np.vstack([omega, omega[-1:]])
        out.orientation[name] = sensor
        out.gyro[name] = omega
        out.linear_acc[name] = acc
        out.specific_force[name] = sensor.inv().apply(acc + GRAVITY * up)
    return out


def imu_readings(kin: Kinematics, rng: np.random.Generator, with_mag: bool
                 ) -> dict[str, dict[str, np.ndarray]]:
    """Add sensor errors: accelerometer bias and noise; gyro bias, bias walk and noise."""
    n = len(kin.t)
    dt = kin.t[1] - kin.t[0]
    readings = {}
    for name in ("thoracic", "sacral"):
        acc = kin.specific_force[name] + rng.normal(0, 0.05, 3) + rng.normal(0, 0.03, (n, 3))
        walk = np.cumsum(rng.normal(0, 2e-5 * math.sqrt(dt), (n, 3)), axis=0)
        gyro = (kin.gyro[name] + rng.normal(0, np.radians(0.6), 3) + walk
                + rng.normal(0, 0.004, (n, 3)))
        r = {"t": kin.t, "acc": acc, "gyro": gyro}
        if with_mag:
            earth = np.array([0.0, 20.0, -44.0])
            r["mag"] = kin.orientation[name].inv().apply(earth) + rng.normal(0, 0.3, (n, 3))
        readings[name] = r
    return readings


def motion_truth(script: Script, kin: Kinematics,
                 config: ContextConfig = DEFAULT_CONTEXT) -> pd.DataFrame:
    """Ground-truth lumbar angles and context at 10 Hz (``motion_truth.csv``)."""
    rate = 1.0 / (script.t[1] - script.t[0])
    moving = np.zeros(len(script.t), dtype=bool)
    for name in ("thoracic", "sacral"):
        moving |= np.degrees(np.linalg.norm(kin.gyro[name], axis=1)) >= config.still_rate_dps
        moving |= np.linalg.norm(kin.linear_acc[name], axis=1) > config.still_acc_ms2
    window = max(1, int(round(config.still_window_s * rate)))
    still = ~maximum_filter1d(moving, size=window, mode="nearest")
    labels = label_context(walking=script.walking, flexion_deg=script.flexion,
                           lateral_deg=script.lateral, twist_deg=script.twist, still=still,
                           config=config)
    step = int(round(rate / config.rate_hz))
    idx = np.arange(0, len(script.t), step)
    return pd.DataFrame({
        "t": np.round(script.t[idx], 6), "flexion_deg": script.flexion[idx],
        "lateral_deg": script.lateral[idx], "twist_deg": script.twist[idx],
        "context": labels[idx],
    })


def _pop_levels(mics: tuple[str, ...]) -> list[str]:
    lo, hi = level_index(mics[0]), level_index(mics[-1])
    return list(LEVELS[lo:hi + 1])


POP_PROBABILITY = {
    # scenario: (cavitation per movement, readjustment per twist/stretch, snap per bend cycle)
    "healthy": (0.08, 0.08, 0.0),
    "twist-cavitation": (0.5, 0.15, 0.0),
    "snapping": (0.05, 0.05, 0.95),
    "post-fall": (0.08, 0.08, 0.0),
    "artifacts-only": (0.0, 0.0, 0.0),
    "long": (0.3, 0.08, 0.0),
    "held-stretch": (0.35, 0.5, 0.0),
}
SNAP_ANGLE_DEG = 25.0
"""Flexion at which the scripted tendon slips over bone: anatomy, so the same every cycle."""
POST_FALL_PROBABILITY = (0.4, 0.45, 0.0)
"""After a fall: new popping, well above the earlier rate (background.md R8)."""


def schedule_pops(script: Script, config: SimConfig, rng: np.random.Generator) -> list[Pop]:
    """Place pops on the motion, kind by kind, as background.md describes them."""
    levels = _pop_levels(config.mics)
    snap_level = config.snap_level or str(rng.choice(levels[1:-1] or levels))
    pops = _movement_pops(script, config, rng, levels, snap_level)
    pops += _catch_pops(script, config, levels, pops)
    pops.sort(key=lambda p: p.t)
    kept: list[Pop] = []
    for p in pops:
        # Two pops within 150 ms would be one event to any listener; keep the first.
        if not kept or p.t - kept[-1].t >= 0.15:
            kept.append(p)
    return [p for p in kept if p.t < config.duration_s - 1.0]


def _crossing(move: Move, fraction: float, trace: np.ndarray, t: np.ndarray, rate: float
              ) -> float:
    """Time during the rise when ``trace`` (the angle of the move's axis, sampled at
    ``rate`` Hz at times ``t``) reaches ``fraction`` of the move's peak."""
    s = slice(int(move.t_start * rate), int(move.t_peak * rate) + 1)
    ratio = trace[s] / move.amplitude_deg
    k = int(np.argmax(ratio >= fraction)) if (ratio >= fraction).any() else len(ratio) - 1
    return float(t[s][k])


def _movement_pops(script: Script, config: SimConfig, rng: np.random.Generator,
                   levels: list[str], snap_level: str) -> list[Pop]:
    """Snaps, cavitations and readjustments drawn move by move (the draws' order is part of
    the seed)."""
    p_cav, p_readj, p_snap = POP_PROBABILITY[config.scenario]
    fall_t = script.falls[0] if script.falls else math.inf
    rate = config.imu_rate
    last_cavitation: dict[str, float] = {}
    angles = {"flexion": script.flexion, "lateral": script.lateral, "twist": script.twist}
    pops: list[Pop] = []
    for move in script.moves:
        if move.kind in ("fall",):
            continue
        after_fall = move.t_start > fall_t
        pc, pr, ps = (POST_FALL_PROBABILITY if after_fall else (p_cav, p_readj, p_snap))
        pc, pr, ps = (min(1.0, p * config.pop_scale) for p in (pc, pr, ps))
        trace = angles[move.axis]
        if move.kind == "bend" and ps > 0 and rng.random() < ps:
            t = _crossing(move, SNAP_ANGLE_DEG / move.amplitude_deg + rng.normal(0, 0.02),
                          trace, script.t, rate)
            pops.append(Pop(t, snap_level, "snap", float(script.flexion[int(t * rate)])))
        if rng.random() < pc:
            free = [lv for lv in levels
                    if move.t_start - last_cavitation.get(lv, -math.inf) >= config.refractory_s]
            if free:
                level = str(rng.choice(free))
                # Mid-range as the joint is moved. A held side bend cavitates while held; in
                # a held twist or stretch a pop at the end of the range is a readjustment
                # (background.md's types), drawn below.
                t = (float(rng.uniform(move.t_peak + 0.6, move.t_hold_end - 0.2))
                     if move.held and move.kind == "side"
                     else _crossing(move, rng.uniform(0.35, 0.65), trace, script.t, rate))
                last_cavitation[level] = t
                pops.append(Pop(t, level, "cavitation", float(trace[int(t * rate)])))
        # Readjustment comes with twist or stretch (a forward bend past 30 deg) near the end
        # of the range; a 20-degree extension is not a stretch in docs/formats.md's contexts.
        if move.kind in ("twist", "bend") and rng.random() < pr:
            level = str(rng.choice(levels))
            t = float(rng.uniform(move.t_peak - 0.1, move.t_hold_end))
            pops.append(Pop(t, level, "readjustment", float(trace[int(t * rate)])))
    return pops


def _catch_pops(script: Script, config: SimConfig, levels: list[str], pops: list[Pop]
                ) -> list[Pop]:
    """A joint that catches pops as it gives (background.md R4): a cavitation at most catches,
    at a level with no cavitation in ``pops`` within the refractory period, drawn from a stream
    of its own so the other pops stay as they were."""
    catch_rng = np.random.default_rng([config.seed, 11])
    found: list[Pop] = []
    for c in script.catches:
        busy = {p.level for p in pops
                if p.kind == "cavitation" and abs(p.t - c) < config.refractory_s}
        free = [lv for lv in levels if lv not in busy]
        if free and catch_rng.random() < config.catch_pop:
            level = str(catch_rng.choice(free))
            t = c + float(catch_rng.uniform(0.05, 0.3))
            k = int(t * config.imu_rate)
            found.append(Pop(t, level, "cavitation", float(script.flexion[k])))
    return found


# ---------------------------------------------------------------- sound sources


def pop_source(kind: str, rng: np.random.Generator, sr: int) -> Callable[[np.ndarray], np.ndarray]:
    """The waveform of a pop at its source, as a function of time since onset (s)."""
    top = 0.42 * sr
    if kind == "cavitation":
        f = np.minimum(rng.uniform(1000, 4500, 3), top)
        tau = rng.uniform(0.4e-3, 1.2e-3, 3)
        f = np.append(f, rng.uniform(200, 400))
        tau = np.append(tau, 3e-3)
        w = np.array([1.0, 0.8, 0.6, 0.3])
        ph = rng.uniform(0, 2 * np.pi, 4)
        return lambda t: damped(t, f, tau, ph, w, 1e-4)
    if kind == "snap":
        f = np.minimum(rng.uniform(250, 1200, 3), top)
        tau = rng.uniform(2e-3, 5e-3, 3)
        w, ph = np.array([1.0, 0.7, 0.5]), rng.uniform(0, 2 * np.pi, 3)
        return lambda t: damped(t, f, tau, ph, w, 1e-3)
    f1, f2 = np.minimum(rng.uniform(600, 2500, 2), top), np.minimum(rng.uniform(600, 2500, 2), top)
    tau1, tau2 = rng.uniform(1e-3, 2.5e-3, 2), rng.uniform(1e-3, 2.5e-3, 2)
    gap = rng.uniform(4e-3, 12e-3)
    ph1, ph2 = rng.uniform(0, 2 * np.pi, 2), rng.uniform(0, 2 * np.pi, 2)
    w = np.array([1.0, 0.6])
    return lambda t: (damped(t, f1, tau1, ph1, w, 3e-4)
                      + 0.7 * damped(t - gap, f2, tau2, ph2, w, 3e-4))


def pop_at_mics(kind: str, level: str, mics: tuple[str, ...], sr: int,
                rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A pop as each mic hears it, onset at sample 0, scaled to unit power at its nearest mic.

    Returns
    -------
    ndarray, shape (n, mics)
        The pop at each mic, the nearest mic's mean power over :data:`SNR_WINDOW_S` being 1.
    int
        Index of the nearest mic.
    """
    source = pop_source(kind, rng, sr)
    n = int(0.06 * sr)
    t = np.arange(n) / sr
    out = np.zeros((n, len(mics)))
    distances = [level_distance_m(level, m) + SKIN_DEPTH_M for m in mics]
    for j, d in enumerate(distances):
        y = source(t - d / SOUND_SPEED_MS) * math.exp(-d / ATTENUATION_LENGTH_M)
        corner = min(6000.0 * math.exp(-d / 0.1), 0.45 * sr)
        b, a = signal.butter(1, corner, fs=sr)
        out[:, j] = signal.lfilter(b, a, y)
    nearest = int(np.argmin(distances))
    power = np.mean(out[: int(round(SNR_WINDOW_S * sr)), nearest] ** 2)
    return out / math.sqrt(power), nearest


def heartbeat_events(duration_s: float, mics: tuple[str, ...], sr: int,
                     rng: np.random.Generator) -> list[Event]:
    """Heart sounds (S1, then S2 0.3 s later) at about 70 beats/min, loudest near the heart."""
    t = np.arange(int(0.4 * sr)) / sr
    s1 = damped(t, np.array([45.0, 70.0]), np.array([0.02, 0.015]), np.zeros(2),
                 np.array([1.0, 0.5]), 0.005)
    s2 = damped(t - 0.3, np.array([60.0]), np.array([0.015]), np.zeros(1), np.array([1.0]),
                 0.005)
    wave = (s1 + 0.6 * s2)[:, None] * 0.006 * mic_weights(mics, HEART_LEVEL, 0.15)
    period = 60.0 / rng.uniform(62, 78)
    events, beat = [], rng.uniform(0, 0.8)
    while beat < duration_s:
        gain = rng.uniform(0.9, 1.1)
        events.append(Event(int(beat * sr), len(t), lambda g=gain: wave * g, "heartbeat"))
        beat += period * rng.uniform(0.95, 1.05)
    return events


def footstep_events(strikes: list[float], mics: tuple[str, ...], sr: int,
                    rng: np.random.Generator) -> list[Event]:
    """Heel-strike thumps travelling up from the pelvis: energy below about 300 Hz."""
    weights = mic_weights(mics, "S1", 0.3)
    t = np.arange(int(0.15 * sr)) / sr
    events = []
    for ts in strikes:
        amp = rng.uniform(0.015, 0.035)
        f = rng.uniform([40, 80, 140], [60, 120, 220])
        ph = rng.uniform(0, 6, 3)

        def make(amp: float = amp, f: np.ndarray = f, ph: np.ndarray = ph) -> np.ndarray:
            wave = damped(t, f, np.array([0.03, 0.02, 0.012]), ph, np.array([1.0, 0.6, 0.3]),
                           0.004)
            return amp * wave[:, None] * weights

        events.append(Event(int(ts * sr), len(t), make, "footstep"))
    return events


def fall_events(falls: list[float], mics: tuple[str, ...], sr: int,
                rng: np.random.Generator) -> list[Event]:
    """The thud of the body meeting the floor: loud, low, on every mic."""
    t = np.arange(int(0.4 * sr)) / sr
    events = []
    for tf in falls:
        ph = rng.uniform(0, 6, 4)

        def make(ph: np.ndarray = ph) -> np.ndarray:
            wave = damped(t, np.array([30.0, 55.0, 110.0, 240.0]),
                           np.array([0.08, 0.05, 0.03, 0.01]), ph, np.array([1.0, 0.8, 0.5, 0.3]),
                           0.003)
            return 0.15 * wave[:, None] * np.ones(len(mics))

        events.append(Event(int((tf - 0.03) * sr), len(t), make, "fall"))
    return events


def knock_events(duration_s: float, per_minute: float, mics: tuple[str, ...], sr: int,
                 rng: np.random.Generator) -> list[Event]:
    """External knocks (a door, a table): sharp, and equally loud on every mic at once."""
    events = []
    t = np.arange(int(0.05 * sr)) / sr
    n_bursts = rng.poisson(per_minute * duration_s / 60.0)
    for start in np.sort(rng.uniform(2.0, max(duration_s - 3.0, 2.5), n_bursts)):
        tk = start
        for _ in range(int(rng.integers(2, 5))):
            f = np.minimum(rng.uniform([150, 400, 900], [300, 900, 1800]), 0.42 * sr)
            tau, ph = rng.uniform(3e-3, 8e-3, 3), rng.uniform(0, 6, 3)
            level = rng.uniform(0.03, 0.1) * rng.uniform(0.98, 1.02, len(mics))

            def make(f: np.ndarray = f, tau: np.ndarray = tau, ph: np.ndarray = ph,
                     level: np.ndarray = level) -> np.ndarray:
                wave = damped(t, f, tau, ph, np.array([1.0, 0.7, 0.4]), 2e-4)
                return wave[:, None] * level

            events.append(Event(int(tk * sr), len(t), make, "knock"))
            tk += rng.uniform(0.15, 0.3)
    return events


def _speech(length: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(length * sr)) / sr
    f0 = rng.uniform(100, 200) * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    formant1, formant2 = rng.uniform(450, 800), rng.uniform(1100, 2000)
    wave = np.zeros_like(t)
    for k in range(1, int(min(3000, 0.42 * sr) / 100)):
        fk = k * f0
        gain = (np.exp(-(((fk - formant1) / 250) ** 2))
                + 0.5 * np.exp(-(((fk - formant2) / 350) ** 2)) + 0.05)
        wave += gain * np.sin(k * phase) / k**0.5
    syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3.5, 5.0) * t), 0, None) ** 2
    wave *= syllables * ramp(t / 0.1) * ramp((length - t) / 0.1)
    return wave * rng.uniform(0.006, 0.015) / (np.sqrt(np.mean(wave**2)) + 1e-12)


def speech_events(duration_s: float, per_minute: float, mics: tuple[str, ...], sr: int,
                  rng: np.random.Generator) -> list[Event]:
    """Bone-conducted speech: voiced, harmonic (F0 100-200 Hz), syllables at about 4 Hz."""
    weights = mic_weights(mics, "C7", 0.25)
    events = []
    n = rng.poisson(per_minute * duration_s / 60.0)
    for start in np.sort(rng.uniform(1.0, max(duration_s - 5.0, 1.5), n)):
        length, seed = rng.uniform(1.5, 4.0), seed_of(rng)

        def make(length: float = length, seed: int = seed) -> np.ndarray:
            return _speech(length, sr, np.random.default_rng(seed))[:, None] * weights

        events.append(Event(int(start * sr), int(length * sr), make, "speech"))
    return events


def rub_events(script: Script, mics: tuple[str, ...], sr: int, rng: np.random.Generator
               ) -> list[Event]:
    """Fabric rub as the strap slides during movement: long, slow-rising, 0.6-3.5 kHz noise."""
    events = []
    starts = _rub_starts(script, rng)
    sos = signal.butter(2, [600.0, min(3500.0, 0.45 * sr)], btype="bandpass", fs=sr,
                        output="sos")
    for start in starts:
        length, seed = rng.uniform(0.3, 1.0), seed_of(rng)

        def make(length: float = length, seed: int = seed) -> np.ndarray:
            r = np.random.default_rng(seed)
            t = np.arange(int(length * sr)) / sr
            env = ramp(t / r.uniform(0.1, 0.25)) * ramp((length - t) / r.uniform(0.1, 0.2))
            env *= 1 + 0.5 * np.sin(2 * np.pi * r.uniform(5, 15) * t)
            noise = signal.sosfilt(sos, r.normal(0, 1, len(t)))
            wave = env * noise / (np.std(noise) + 1e-12) * r.uniform(0.004, 0.015)
            weights = np.full(len(mics), 0.3)
            weights[r.integers(len(mics))] = 1.0
            return wave[:, None] * weights

        events.append(Event(int(start * sr), int(length * sr), make, "rub"))
    return events


class _Floor:
    """The continuous background of every mic, rendered chunk by chunk with carried state."""

    def __init__(self, config: SimConfig, script: Script, kin: Kinematics,
                 beats: list[Event], scale: float = 1.0) -> None:
        sr, mics = config.sr, config.mics
        self.sr, self.m = sr, len(mics)
        self.seed = config.seed
        ny = 0.45 * sr
        ac = config.acoustics
        self.gains = tuple(scale * g for g in (ac.floor_gains if ac is not None
                                               else (1.0, 1.0, 1.0, 1.0, 1.0)))
        corner = ac.pink_corner_hz if ac is not None else 300.0
        self.sos_pink = signal.butter(1, corner, fs=sr, output="sos")
        self.sos_rumble = signal.butter(2, [8.0, 60.0], btype="bandpass", fs=sr, output="sos")
        self.sos_breath = signal.butter(2, [150.0, min(900.0, ny)], btype="bandpass", fs=sr,
                                        output="sos")
        self.z_pink = np.zeros((1, 2, self.m))
        self.z_rumble = np.zeros((2, 2, self.m))
        self.z_breath = np.zeros((2, 2, 1))
        rel = np.linalg.norm(kin.gyro["thoracic"] - kin.gyro["sacral"], axis=1)
        self.motion_t = script.t
        self.motion = np.clip(rel + 0.5 * np.linalg.norm(kin.gyro["sacral"], axis=1), 0, 2.0)
        self.breath_w = 0.0015 * mic_weights(mics, "T6", 0.3)
        self.hum_phase = np.random.default_rng([config.seed, 7]).uniform(0, 2 * np.pi)
        self.breath_rate = np.random.default_rng([config.seed, 8]).uniform(0.2, 0.3)
        self.beats = Track(beats, self.m)

    def render(self, a: int, b: int, k: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 2, k])
        n = b - a
        t = (a + np.arange(n)) / self.sr
        white = rng.normal(0, 0.0015, (n, self.m))
        pink, self.z_pink = signal.sosfilt(self.sos_pink, rng.normal(0, 0.02, (n, self.m)),
                                           axis=0, zi=self.z_pink)
        rumble_src = 0.7 * rng.normal(0, 1, (n, 1)) + 0.3 * rng.normal(0, 1, (n, self.m))
        rumble, self.z_rumble = signal.sosfilt(self.sos_rumble, rumble_src, axis=0,
                                               zi=self.z_rumble)
        intensity = np.interp(t, self.motion_t, self.motion)
        rumble *= (0.01 + 0.05 * intensity)[:, None]
        breath, self.z_breath = signal.sosfilt(self.sos_breath, rng.normal(0, 1, (n, 1)),
                                               axis=0, zi=self.z_breath)
        breath_env = (0.5 + 0.5 * np.sin(2 * np.pi * self.breath_rate * t)) ** 2
        breath = breath * breath_env[:, None] * self.breath_w * 3.0
        hum = (0.0008 * np.sin(2 * np.pi * 50.0 * t + self.hum_phase)
               + 0.0003 * np.sin(2 * np.pi * 150.0 * t + 2 * self.hum_phase))
        g_white, g_pink, g_rumble, g_breath, g_hum = self.gains
        return (g_white * white + g_pink * pink + g_rumble * rumble + g_breath * breath
                + g_hum * hum[:, None] + self.beats.render(a, b))


def _rub_starts(script: Script, rng: np.random.Generator) -> list[float]:
    """When the strap rubs: early in some movements, and now and then while walking."""
    starts = [m.t_start + rng.uniform(0.2, 0.8) for m in script.moves if rng.random() < 0.4]
    return starts + [s for s in script.heel_strikes[::6] if rng.random() < 0.3]


def _family_sounds(config: SimConfig, script: Script, kin: Kinematics, pops: list[Pop],
                   rng: np.random.Generator
                   ) -> tuple[_Floor, list[Event], list[tuple[np.ndarray, int]],
                              family.MicResponse]:
    """A family member's floor (with its heart), artifacts, pops and mic response
    (``family.py``). The floor is set to the member's level (``floor_dbfs`` at its loudest mic,
    over its first two seconds without the heart), and artifacts against it."""
    ac, sr, mics = config.acoustics, config.sr, config.mics
    assert ac is not None
    duration = config.duration_s
    probe = _Floor(config, script, kin, []).render(0, min(int(round(duration * sr)), 2 * sr), 0)
    scale = 10 ** (ac.floor_dbfs / 20) / float(np.sqrt(np.mean(probe ** 2, axis=0)).max())
    floor_rms = scale * np.sqrt(np.mean(probe ** 2, axis=0))
    floor = _Floor(config, script, kin,
                   family.heart_events(ac, duration, mics, sr, rng, floor_rms), scale)
    events: list[Event] = []
    if config.artifacts:
        busy = 2.0 if config.scenario == "artifacts-only" else 0.4
        events += family.footstep_events(ac, script.heel_strikes, mics, sr, rng, floor_rms)
        events += fall_events(script.falls, mics, sr, rng)
        events += family.knock_events(ac, duration, 0.75 * busy, mics, sr, rng, floor_rms)
        events += family.speech_events(ac, duration, busy, mics, sr, rng, floor_rms)
        events += family.rub_events(ac, _rub_starts(script, rng), mics, sr, rng, floor_rms)
        events += family.handling_events(ac, duration, ac.handling_per_min * busy / 2, mics, sr,
                                         rng, floor_rms)
    response = family.MicResponse(ac, sr, len(mics))
    shapes = []
    head = int(round(SNR_WINDOW_S * sr))
    for p in pops:
        heard = response.filter_only(family.propagate(ac, family.pop_wave(ac, p.kind, rng, sr),
                                                      p.level, mics, sr))
        nearest = int(np.argmin([level_distance_m(p.level, m) for m in mics]))
        power = np.mean(heard[:head, nearest] ** 2)
        shapes.append((heard / math.sqrt(max(power, 1e-30)), nearest))
    return floor, events, shapes, response


def _own_sounds(config: SimConfig, script: Script, kin: Kinematics, pops: list[Pop],
                rng: np.random.Generator
                ) -> tuple[_Floor, list[Event], list[tuple[np.ndarray, int]], None]:
    """The project's own sound model: its floor (with the heart), artifacts and pops at the
    mics, in :func:`_family_sounds`'s shape (no mic response)."""
    sr, mics = config.sr, config.mics
    floor = _Floor(config, script, kin, heartbeat_events(config.duration_s, mics, sr, rng))
    artifact_events: list[Event] = []
    if config.artifacts:
        busy = 2.0 if config.scenario == "artifacts-only" else 0.4
        artifact_events += footstep_events(script.heel_strikes, mics, sr, rng)
        artifact_events += fall_events(script.falls, mics, sr, rng)
        artifact_events += knock_events(config.duration_s, 0.75 * busy, mics, sr, rng)
        artifact_events += speech_events(config.duration_s, busy, mics, sr, rng)
        artifact_events += rub_events(script, mics, sr, rng)
    shapes = [pop_at_mics(p.kind, p.level, mics, sr, rng) for p in pops]
    return floor, artifact_events, shapes, None


def _floor_chunks(floor: _Floor, response: family.MicResponse | None, total: int, m: int
                  ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """The floor's ``total`` samples in chunks of :data:`CHUNK` (through the mic response,
    if any): each chunk's first sample, the chunk and the next chunk (empty at the end).
    One chunk is rendered ahead, so that a pop's background can look past the chunk's end."""
    bounds = list(range(0, total, CHUNK)) + [total]
    chunks = deque[tuple[int, np.ndarray]]()

    def fill(k: int) -> None:
        if k < len(bounds) - 1:
            chunk = floor.render(bounds[k], bounds[k + 1], k)
            chunks.append((bounds[k], response(chunk) if response is not None else chunk))

    fill(0)
    fill(1)
    for k in range(len(bounds) - 1):
        a, cur = chunks.popleft()
        fill(k + 2)
        yield a, cur, chunks[0][1] if chunks else np.zeros((0, m))


def _add_pops(track: Track, starts: list[int], shapes: list[tuple[np.ndarray, int]],
              a: int, b: int, context: np.ndarray, context_start: int, half: int,
              snr_db: float) -> None:
    """Add to ``track`` the pops that start in samples ``[a, b)``, each scaled so that its
    power over its nearest mic's floor (``context``, from sample ``context_start``) within
    ``half`` samples either side is ``snr_db``."""
    for i, s in enumerate(starts):
        if a <= s < b:
            lo, hi = max(s - half, context_start), min(s + half, context_start + len(context))
            background = np.mean(context[lo - context_start: hi - context_start,
                                         shapes[i][1]] ** 2)
            scale = math.sqrt(background * 10 ** (snr_db / 10))
            track.add(Event(s, len(shapes[i][0]), lambda x=shapes[i][0], g=scale: x * g, "pop"))


def render_audio(config: SimConfig, script: Script, kin: Kinematics, pops: list[Pop],
                 rng: np.random.Generator, *, stems: bool = False
                 ) -> Iterator[tuple[int, np.ndarray, dict[str, np.ndarray]]]:
    """The mic signals, chunk by chunk, and optionally their parts.

    Yields
    ------
    start : int
        Index of the chunk's first sample.
    mix : ndarray, shape (n, mics)
        What the mics record.
    parts : dict
        With ``stems``: ``floor`` (the continuous background), ``artifacts``, ``pops``.
    """
    sr, m = config.sr, len(config.mics)
    if config.acoustics is None:
        floor, artifact_events, shapes, response = _own_sounds(config, script, kin, pops, rng)
    else:
        floor, artifact_events, shapes, response = _family_sounds(config, script, kin, pops, rng)
    art_response = family.MicResponse(response.ac, sr, m) if response is not None else None
    artifacts = Track(artifact_events, m)
    pop_track = Track([], m)
    starts = [int(round(p.t * sr)) for p in pops]
    half = int(BACKGROUND_WINDOW_S * sr / 2)
    previous: np.ndarray | None = None
    for a, cur, nxt in _floor_chunks(floor, response, int(round(config.duration_s * sr)), m):
        b = a + len(cur)
        context_start = a - (len(previous) if previous is not None else 0)
        context = np.concatenate([x for x in (previous, cur, nxt) if x is not None])
        _add_pops(pop_track, starts, shapes, a, b, context, context_start, half, config.snr_db)
        art = artifacts.render(a, b)
        popped = pop_track.render(a, b)
        floor_part = cur
        if response is not None and art_response is not None:
            art = art_response(art) * response.gain
            popped = popped * response.gain
            floor_part = cur * response.gain
        mix = floor_part + art + popped
        parts = {"floor": floor_part, "artifacts": art, "pops": popped} if stems else {}
        yield a, mix, parts
        previous = cur[-half:] if half else None


def session_info(config: SimConfig) -> SessionInfo:
    """The metadata of a simulated session."""
    return SessionInfo(
        subject=config.subject,
        session=config.session or f"{config.scenario}-s{config.seed}",
        start=config.start,
        mics=tuple(MicInfo(m) for m in config.mics),
        imus=(ImuInfo("thoracic", "T12"), ImuInfo("sacral", "S1")) if config.with_imus else (),
        extra={},
    )


def family_member(family_name: str, seed: int, *, acoustics: dict | None = None,
                  **config: object) -> SimConfig:
    """A session of the simulator family: its acoustics drawn from ``seed`` (``family.py``).

    Parameters
    ----------
    family_name : str
        ``dev`` (parameters are chosen on these) or ``heldout`` (figures are reported on
        these).
    seed : int
        Draws the acoustics and, as for any session, the motion and the pops.
    acoustics : dict, optional
        Acoustic parameters to set instead of drawing them (see :class:`family.Acoustics`).
    **config
        Other :class:`SimConfig` fields (scenario, minutes, snr_db, sr, mics...).

    Examples
    --------
    >>> from backpop_sense.simulate import family_member
    >>> c = family_member("heldout", 3, scenario="snapping", snr_db=5.0)
    >>> c.acoustics.family
    'heldout'
    """
    mics = config.get("mics", SimConfig.mics)
    drawn = family.draw_acoustics(family_name, seed, len(mics), **(acoustics or {}))  # type: ignore[arg-type]
    return SimConfig(seed=seed, acoustics=drawn, **config)  # type: ignore[arg-type]


def _config_doc(config: SimConfig) -> dict:
    doc = asdict(config)
    doc["start"] = config.start.isoformat()
    doc["mics"] = list(config.mics)
    if config.motion is None:
        # Sessions simulated without the motion family are written as before it existed.
        del doc["motion"]
    return doc


def _simulate(config: SimConfig, plan: Sequence[tuple[str, float]] | None
              ) -> tuple[np.random.Generator, Script, Kinematics, dict, list[Pop]]:
    """Motion, IMU readings and pops, drawn from one generator in a fixed order (the audio
    is rendered from the same generator afterwards, so the order is part of the seed)."""
    if config.scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {config.scenario!r}")
    rng = np.random.default_rng([config.seed, 0])
    member = config.motion
    if plan is None and member is not None:
        plan = member.plan(config.duration_s)
    script = build_script(config, rng) if plan is None else script_from_plan(
        plan, config, rng, still_start=member is None or member.start == "still")
    kin = kinematics(script, rng, member)
    imus = imu_readings(kin, rng, config.with_mag)
    if member is not None:
        noise = np.random.default_rng([config.seed, 22, 2])
        imus = {name: motion_family.readings(member.imu(name), kin.t, kin.gyro[name],
                                             kin.specific_force[name], noise, config.duration_s)
                for name in motion_family.IMUS}
    pops = schedule_pops(script, config, rng) if config.mics else []
    return rng, script, kin, imus, pops


def simulate_session(out: str | Path, config: SimConfig, *,
                     plan: Sequence[tuple[str, float]] | None = None) -> SimSummary:
    """Write a synthetic session folder with ``truth.csv`` and ``motion_truth.csv``.

    Parameters
    ----------
    out : path
        Folder to create.
    config : SimConfig
        The scenario, length, seed and signal settings.
    plan : sequence of (activity, value), optional
        Script these activities in order (:func:`script_from_plan`) instead of the scenario's;
        the pops still follow the scenario's probabilities.

    Returns
    -------
    SimSummary

    Examples
    --------
    >>> from backpop_sense.simulate import SimConfig, simulate_session
    >>> summary = simulate_session("out/s1", SimConfig("snapping", minutes=1, seed=3))
    >>> summary.duration_s
    60.0
    """
    rng, script, kin, imus, pops = _simulate(config, plan)
    truth_motion = motion_truth(script, kin)
    with SessionWriter(out, _simulated_info(config, script, plan), sr=config.sr,
                       subtype=config.subtype) as writer:
        for name, r in imus.items() if config.with_imus else ():
            _write_imu(writer, name, r)
        peak = 0.0
        for _, mix, _ in render_audio(config, script, kin, pops, rng) if config.mics else ():
            peak = max(peak, float(np.abs(mix).max()))
            writer.write_audio(np.clip(mix, -0.999, 0.999))
        truth = _pop_truth(config, script, pops, truth_motion)
        writer.write_table("truth.csv", truth)
        writer.write_table("motion_truth.csv", truth_motion)
    if peak >= 0.999:
        raise RuntimeError(f"simulated audio clipped (peak {peak:.3f}); lower the levels")
    kinds = truth["kind"].value_counts().to_dict()
    return SimSummary(Path(out), config.duration_s, len(pops), kinds, len(script.heel_strikes),
                      len(script.falls))


def _simulated_info(config: SimConfig, script: Script,
                    plan: Sequence[tuple[str, float]] | None) -> SessionInfo:
    """The session's metadata, with how it was simulated under ``extra["simulation"]``."""
    return replace(session_info(config), extra={"simulation": {
        "generator": f"backpop-sense {__version__}",
        "config": _config_doc(config),
        "falls_s": [round(f, 4) for f in script.falls],
        "catches_s": [round(c, 4) for c in script.catches],
        "heel_strikes": len(script.heel_strikes),
        **({"plan": [[name, value] for name, value in plan]} if plan is not None else {}),
        **({"motion_family": motion_family.describe(config.motion)}
           if config.motion is not None else {}),
        "snr_definition": "nearest-mic power over 10 ms after onset / continuous floor power "
                          "over the surrounding 1 s",
    }})


def _write_imu(writer: SessionWriter, name: str, readings: dict[str, np.ndarray]) -> None:
    """One IMU's readings, written in pieces that bound the writer's memory."""
    step = 65536
    for i in range(0, len(readings["t"]), step):
        writer.write_imu(name, readings["t"][i:i + step], readings["acc"][i:i + step],
                         readings["gyro"][i:i + step],
                         readings["mag"][i:i + step] if "mag" in readings else None)


def _pop_truth(config: SimConfig, script: Script, pops: list[Pop], truth_motion: pd.DataFrame
               ) -> pd.DataFrame:
    """``truth.csv``: each pop with its level, kind, SNR, and the context and angles the
    motion truth holds at its time."""
    labels = truth_motion["context"].to_numpy()
    idx = np.clip(np.searchsorted(truth_motion["t"].to_numpy(), [p.t for p in pops]) - 1,
                  0, len(labels) - 1)
    k = np.clip(np.round(np.array([p.t for p in pops]) * config.imu_rate).astype(int), 0,
                len(script.t) - 1)
    return pd.DataFrame({
        "t": [round(p.t, 6) for p in pops], "level": [p.level for p in pops],
        "kind": [p.kind for p in pops], "snr_db": config.snr_db,
        "context": labels[idx] if len(pops) else [],
        "flexion_deg": script.flexion[k], "lateral_deg": script.lateral[k],
        "twist_deg": script.twist[k],
    })


def simulate_stems(config: SimConfig
                   ) -> tuple[Script, Kinematics, list[Pop], dict[str, np.ndarray]]:
    """The whole simulation in memory with the audio split into its parts; for tests."""
    rng, script, kin, _, pops = _simulate(config, None)
    parts: dict[str, list[np.ndarray]] = {"mix": [], "floor": [], "artifacts": [], "pops": []}
    for _, mix, p in render_audio(config, script, kin, pops, rng, stems=True):
        parts["mix"].append(mix)
        for key, value in p.items():
            parts[key].append(value)
    return script, kin, pops, {k: np.concatenate(v) for k, v in parts.items()}


def sounding_events(config: SimConfig, plan: Sequence[tuple[str, float]] | None = None
                    ) -> list[tuple[float, float, str]]:
    """What sounds in a simulated session besides its floor and its pops: every artifact and
    heart sound as ``(start s, end s, kind)``, in time order; kinds as the simulator names
    them (``heartbeat``, ``footstep``, ``fall``, ``knock``, ``speech``, ``rub``,
    ``handling``).

    The same events :func:`simulate_session` renders for ``config`` and ``plan`` (drawn from
    the same generator in the same order, without rendering the audio), so that a
    detector's false onsets can be told by what was sounding when it heard them. An event's
    end is where its waveform ends; the mic response rings a little past it.
    """
    rng, script, kin, _, pops = _simulate(config, plan)
    sounds = _own_sounds if config.acoustics is None else _family_sounds
    floor, artifacts, _, _ = sounds(config, script, kin, pops, rng)
    sr = config.sr
    return sorted((e.start / sr, (e.start + e.length) / sr, e.kind)
                  for e in [*floor.beats.events, *artifacts])


def start_of_day(day: int, hour: int = 9) -> datetime:
    """A session start ``day`` days after the sample cohort's first day."""
    return datetime(2026, 11, 2, hour, 30, tzinfo=UTC) + timedelta(days=day)
