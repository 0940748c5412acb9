"""The motion stage of the pipeline: IMU blocks in; 10 Hz spine frames, catches and falls out.

What it does, in order
    1. Orientation: one VQF filter per IMU (:mod:`~backpop_sense.motion.orientation`), 6-axis
       unless the config asks for the magnetometer.
    2. Ticks: samples are gathered on a 50 Hz grid (:mod:`~backpop_sense.motion.ticks`), so
       IMUs of any rate and clock phase meet on one clock: per tick the orientation at its
       centre (the nearest sample's, carried there by its angular velocity), the mean
       bias-corrected angular velocity, the mean and peak specific force.
    3. Calibration, at the first still period (nothing moved within the surrounding second)
       in which every sensor sees gravity within ``calibration_max_tilt_deg`` of its declared
       "up" and, once the subject has walked ``calibration_walk_s``, within
       ``calibration_agree_deg`` of the up walking gave (sitting still is no standing):
       gravity gives each sensor's up, the declared axes give forward (the mounting
       rotation is the smallest one that brings the measured up onto the declared one), and
       the lowest IMU (the sacral one) is the reference frame. Twist is zero there. Without a
       still period for ``calibration_timeout_s`` (a session that starts on the move), up is
       taken provisionally from the mean specific force while walking (the trunk swings
       about upright), or from the declared axes without ``calibration_walk_s`` of walking,
       until the first such period comes; twist is then zero at the first upright tick
       (bent, a turn about the vertical is part side bend).
       Forward is then refined from movement: bending forward turns each segment about its
       own right axis, which shows how far the sensor is turned on the body (``yaw_*``); the
       heading turns with every refinement, so the twist stays as it was.
       An IMU whose ``mounting`` is ``exact`` (session.json: a rigid holder aligned at the
       factory) keeps its declared axes as the body's: no tilt is taken from gravity and no
       yaw from movement, so a subject who stands tilted at the calibration shows that tilt.
       Its twist is zeroed and re-zeroed all the same: that is the heading, which drifts.
    4. Angles (:mod:`~backpop_sense.motion.spine`): the upper segment relative to the lower,
       intrinsic X-Y-Z; with one IMU, that segment against gravity and heading (Z-Y-X).
       Without a magnetometer each sensor's heading drifts on its own, so twist is re-zeroed
       whenever the subject stands still and upright (every segment within ``upright_deg``
       of vertical), unless the twist then exceeds ``rezero_max_deg`` plus the drift allowed
       since the last re-zero and also ranged over more than ``rezero_max_deg`` within the
       last ``rezero_window_s`` (a twist just made and held is not erased; drift, however
       large, never locks re-zeroing out). While walking (two IMUs), the twist's mean over
       ``walk_window_s`` is re-zeroed likewise: nobody walks twisted. Between re-zeros the
       heading follows a drift rate (the relative bias of the gyros' vertical axes, which VQF
       cannot see in motion), learnt from re-zeros ``drift_anchor_s`` apart and moved
       opposite to VQF's own bias estimates as they change; the drift removed is reported.
       With one IMU, twist is the heading since the subject last stood still and upright
       (turning on the spot counts), and it is re-zeroed there without that limit.
    5. Context at 10 Hz (:mod:`~backpop_sense.motion.context`, :mod:`~backpop_sense.motion.gait`;
       ``twist`` only for a twist made by moving, never for drift), catches and falls
       (:mod:`~backpop_sense.motion.events`).

Streaming
    Samples are processed in chunks of ``chunk_s`` on the fixed tick grid, once every IMU has
    delivered a sample past the chunk's end (or another IMU is ``max_lag_s`` ahead, when one
    has stopped), so what is computed never depends on how the stream was cut into blocks.
    State is a bounded number of ticks (at most the calibration timeout plus a few seconds),
    whatever the session length. Frames come out in time order, and so do events.

Latency (stream time from a sample to its output, in seconds for a given config:
:meth:`MotionTracker.latency_s`)
    A frame: up to one chunk (``chunk_s``), plus half the still window (``still_window_s``),
    plus the gait decision (:attr:`GaitDetector.delay_ticks`: ``min_steps - 1`` step
    intervals of ``step_max_interval_s`` and the reach of a step). A catch: one chunk, half
    the still window and the catch detector's look-ahead (``resume_max_s`` and a little
    more); a fall: one chunk, half the still window and the fall detector's (``window_s`` +
    ``settle_s``). Before calibration, frames wait for it (at most
    ``calibration_timeout_s``). The chunk trades latency for speed: its cost is mostly fixed
    (numpy calls on a few hundred ticks), so a shorter chunk answers sooner and runs slower
    (figures in ``benchmarks/motion.md``).

Frames are written only where every IMU used has data; inside a gap there are none.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from ..blocks import Block, Gap, ImuBlock
from ..levels import level_index
from ..params import ANGLE_DEG, NON_NEGATIVE, POSITIVE, Instance, Number, Rules, check
from ..session import GRAVITY, SessionInfo
from ..vocab import AXES, CONTEXTS
from .context import DEFAULT_CONTEXT, ContextConfig, label_context
from .events import CatchConfig, CatchDetector, Detection, FallConfig, FallDetector
from .gait import GaitDetector
from .orientation import (
    ImuOrientation,
    OrientationConfig,
    quat_about_z,
    quat_between,
    quat_conjugate,
    quat_matrix,
    quat_multiply,
    quat_rotate,
    row_norm,
    tilt_deg,
)
from .rom import AngleHistogram
from .spine import segment_angles_quat, spine_angles_quat
from .ticks import TICK_S, TickWindow

FRAME_TICKS = 5
"""Ticks per 10 Hz frame."""
_UP = np.array([0.0, 0.0, 1.0])


def _carried(quat: np.ndarray, w: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Orientations ``quat`` carried on by angular velocities ``w`` (rad/s, sensor frame) for
    ``dt`` seconds each (at most half a sample period)."""
    # Within half a sample period the turn is small: the first-order quaternion step
    # [1, v], normalised.
    v = 0.5 * w * dt[:, None]
    scale = 1.0 / np.sqrt(1.0 + np.einsum("ij,ij->i", v, v))
    step = np.empty((len(v), 4))
    step[:, 0] = scale
    step[:, 1:] = v * scale[:, None]
    return quat_multiply(quat, step)


@dataclass(frozen=True)
class MotionConfig:
    """Every parameter of the motion stage (see the module docstring for what each does).

    Attributes
    ----------
    orientation, context, catch, fall :
        The configs of the filter, the context labels and gait, the catch and fall detectors.
    chunk_s : float
        Seconds of samples processed at a time (a multiple of 0.1 s).
    max_lag_s : float
        Go on without an IMU that is this far behind the others, seconds.
    calibration_max_tilt_deg : float
        Calibrate only on a still period where every sensor's gravity is this close to its
        declared up, degrees.
    calibration_timeout_s : float
        Without such a period for this long, calibrate provisionally (until one comes) on
        the mean specific force while walking, or take the declared axes as they are,
        seconds.
    calibration_walk_s : float
        Walking needed for the provisional calibration, seconds.
    calibration_agree_deg : float
        Once the subject has walked ``calibration_walk_s`` (before or after a provisional
        calibration), a still period calibrates only where every sensor's gravity is this
        close to the up that walking gave, degrees (sitting still is no standing).
    upright_deg : float
        Re-zero twist when still and every segment is within this of vertical, degrees.
    rezero_max_deg, rezero_drift_dps : float
        Re-zero a twist up to ``rezero_max_deg`` + ``rezero_drift_dps`` x the time since the
        last re-zero (degrees, degrees per second)...
    rezero_window_s : float
        ...or one that has stayed within ``rezero_max_deg`` for this long, seconds (a twist
        held still longer is taken for drift).
    drift_rate_tau_s, drift_anchor_s : float
        Re-zeros at least ``drift_anchor_s`` apart correct the twist drift rate the heading
        follows between re-zeros, by the drift left over the interval, weighted by
        interval / (interval + ``drift_rate_tau_s``), seconds.
    drift_backlog_walk_s : float
        Ticks that waited for the calibration take the drift rate from the slope of their
        walking re-zeros when they hold this much walking, seconds.
    walk_window_s : float
        While walking, twist is re-zeroed so that its mean over this long is zero, seconds
        (about two strides).
    yaw_learn_deg : float
        Refine each sensor's mounting yaw, from all flexion movement seen so far, after every
        this many degrees of it (0 turns the functional calibration off and trusts the
        declared axes alone).
    yaw_min_rate_dps, yaw_cone_deg : float
        Flexion movement: relative angular speed at least ``yaw_min_rate_dps``, its axis
        within ``yaw_cone_deg`` of the right axis.
    yaw_max_deg : float
        The refined yaw stays within this of the declared axes, degrees.
    yaw_spread_max_deg : float
        Refine the yaw only while the movements' axes scatter by less than this (circular
        standard deviation, degrees).
    """

    orientation: OrientationConfig = OrientationConfig()
    context: ContextConfig = DEFAULT_CONTEXT
    catch: CatchConfig = CatchConfig()
    fall: FallConfig = FallConfig()
    chunk_s: float = 6.0
    max_lag_s: float = 30.0
    calibration_max_tilt_deg: float = 30.0
    calibration_timeout_s: float = 60.0
    calibration_walk_s: float = 10.0
    calibration_agree_deg: float = 8.0
    upright_deg: float = 25.0
    rezero_max_deg: float = 8.0
    rezero_drift_dps: float = 0.05
    rezero_window_s: float = 10.0
    drift_rate_tau_s: float = 30.0
    drift_anchor_s: float = 10.0
    drift_backlog_walk_s: float = 20.0
    walk_window_s: float = 2.0
    yaw_learn_deg: float = 45.0
    yaw_min_rate_dps: float = 15.0
    yaw_cone_deg: float = 30.0
    yaw_max_deg: float = 15.0
    yaw_spread_max_deg: float = 5.0

    RULES: ClassVar[Rules] = {
        "orientation": Instance(OrientationConfig, "an OrientationConfig"),
        "context": Instance(ContextConfig, "a ContextConfig"),
        "catch": Instance(CatchConfig, "a CatchConfig"),
        "fall": Instance(FallConfig, "a FallConfig"),
        "chunk_s": POSITIVE, "max_lag_s": POSITIVE, "calibration_max_tilt_deg": ANGLE_DEG,
        "calibration_timeout_s": POSITIVE, "calibration_walk_s": NON_NEGATIVE,
        "calibration_agree_deg": ANGLE_DEG, "upright_deg": ANGLE_DEG,
        "rezero_max_deg": NON_NEGATIVE, "rezero_drift_dps": NON_NEGATIVE,
        "rezero_window_s": POSITIVE, "drift_rate_tau_s": NON_NEGATIVE,
        "drift_anchor_s": NON_NEGATIVE, "drift_backlog_walk_s": NON_NEGATIVE,
        "walk_window_s": POSITIVE, "yaw_learn_deg": NON_NEGATIVE,
        "yaw_min_rate_dps": NON_NEGATIVE, "yaw_cone_deg": Number(0, 90),
        "yaw_max_deg": ANGLE_DEG, "yaw_spread_max_deg": NON_NEGATIVE,
    }

    def __post_init__(self) -> None:
        check(self)

    def to_dict(self) -> dict:
        """The parameters, nested configs included, for summary.json."""
        return {name: _jsonable(value) for name, value in asdict(self).items()}


DEFAULT_MOTION = MotionConfig()


@dataclass(frozen=True)
class MotionFrame:
    """The spine at one 10 Hz instant.

    Attributes
    ----------
    t : float
        Seconds since session start (a multiple of 0.1).
    flexion_deg, lateral_deg, twist_deg : float
        Lumbar angles, degrees (docs/formats.md signs).
    context : str
        One of :data:`~backpop_sense.vocab.CONTEXTS`.
    twist_rate_dps, flexion_rate_dps, lateral_rate_dps : float
        Angular velocity of the upper segment relative to the lower one about up, right and
        forward (signed like the angles), degrees per second, averaged over the frame's tick.
    """

    t: float
    flexion_deg: float
    lateral_deg: float
    twist_deg: float
    context: str
    twist_rate_dps: float
    flexion_rate_dps: float
    lateral_rate_dps: float


@dataclass(frozen=True)
class MotionEvent:
    """A catch or a fall: time (s since session start), ``type`` and the evidence in words."""

    t: float
    type: str
    detail: str


@dataclass
class _Stream:
    """One IMU's samples waiting to be processed, its filter and its bookkeeping."""

    name: str
    rate_hz: float
    filter: ImuOrientation
    parts: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    last_t: float = -math.inf
    processed_to: float = -math.inf
    samples: int = 0
    late: int = 0
    gaps: int = 0
    gap_s: float = 0.0
    mount: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0, 0.0]))
    base: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0, 0.0]))
    bias_seen: np.ndarray = field(default_factory=lambda: np.zeros(3))
    base_matrix: np.ndarray = field(default_factory=lambda: np.eye(3))
    mount_matrix: np.ndarray = field(default_factory=lambda: np.eye(3))
    exact: bool = False
    gravity: float = GRAVITY
    mount_tilt_deg: float | None = None
    mount_yaw_deg: float = 0.0

    def add(self, block: ImuBlock) -> None:
        t = block.t
        if not len(t):
            return
        if t[0] >= self.processed_to:
            self.parts.append((t, block.acc, block.gyro, block.mag))
        else:
            # Samples for time already processed (an IMU far behind the others) are counted.
            keep = t >= self.processed_to
            self.late += int((~keep).sum())
            if not keep.any():
                return
            mag = None if block.mag is None else block.mag[keep]
            self.parts.append((t[keep], block.acc[keep], block.gyro[keep], mag))
        self.last_t = float(t[-1])

    @property
    def pending(self) -> bool:
        return bool(self.parts)

    def take(self, j0: int, j1: int) -> dict[str, np.ndarray]:
        """Run the filter over ticks ``[j0, j1)`` and summarise each tick.

        Returns per tick: ``n`` samples, ``q`` the orientation at the tick's centre (the
        nearest sample's, carried to the centre by its bias-corrected angular velocity, so
        IMUs of any rate and phase meet on one clock), ``w`` the mean bias-corrected angular
        velocity (rad/s), ``acc`` the mean specific force and ``amax`` its largest magnitude
        (m/s^2), ``b`` VQF's gyro bias estimate at the nearest sample (rad/s). A tick
        without samples of its own (an IMU at 50 Hz or slower, or a clock that drifts
        against the grid) takes its nearest sample's values when that lies within one
        sample period of the centre; otherwise everything is NaN and ``n`` zero.
        """
        n_ticks = j1 - j0
        edges = (np.arange(j0, j1 + 1) - 0.5) * TICK_S
        self.processed_to = float(edges[-1])
        t = self._joined(0)
        cut = 0 if t is None else int(np.searchsorted(t, edges[-1]))
        if cut == 0:
            return {"n": np.zeros(n_ticks), "q": np.full((n_ticks, 4), np.nan),
                    "w": np.full((n_ticks, 3), np.nan), "acc": np.full((n_ticks, 3), np.nan),
                    "amax": np.full(n_ticks, np.nan), "b": np.full((n_ticks, 3), np.nan)}
        t, acc, gyro, mag = self._split(t, cut)
        self.samples += cut
        est = self.filter.update(gyro, acc, mag)
        bounds = np.searchsorted(t, edges)
        counts = np.diff(bounds)
        centres = np.arange(j0, j1) * TICK_S
        right = np.minimum(np.searchsorted(t, centres), cut - 1)
        left = np.maximum(right - 1, 0)
        nearest = np.where(np.abs(t[left] - centres) <= np.abs(t[right] - centres), left, right)
        w_near = gyro[nearest] - est.bias[nearest]
        starts = np.minimum(bounds[:-1], cut - 1)
        n = np.maximum(counts, 1)[:, None]
        rows = {
            "n": counts.astype(float),
            "q": _carried(est.quat[nearest], w_near, centres - t[nearest]),
            "w": np.add.reduceat(gyro, starts) / n - est.bias[nearest],
            "b": est.bias[nearest],
            "acc": np.add.reduceat(acc, starts) / n,
            "amax": np.sqrt(np.maximum.reduceat(np.einsum("ij,ij->i", acc, acc), starts)),
        }
        empty = counts == 0
        if empty.any():
            # reduceat reads one sample for an empty tick: the nearest one stands in for it
            # when it is close enough, and nothing does across a gap.
            rows["w"][empty] = w_near[empty]
            rows["acc"][empty] = acc[nearest[empty]]
            rows["amax"][empty] = row_norm(acc[nearest[empty]])
            far = empty & (np.abs(t[nearest] - centres) > 1.0 / self.rate_hz)
            for v in rows.values():
                v[far] = np.nan
            rows["n"][empty] = 0.0
        return rows

    def _split(self, t: np.ndarray, cut: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """The first ``cut`` waiting samples (``t`` their times, acc, gyro, mag), the rest
        left waiting."""
        acc, gyro, mag = self._joined(1), self._joined(2), self._joined(3)
        if cut < len(t):
            self.parts = [(t[cut:], acc[cut:], gyro[cut:], None if mag is None else mag[cut:])]
            t, acc, gyro = t[:cut], acc[:cut], gyro[:cut]
            mag = None if mag is None else mag[:cut]
        else:
            self.parts = []
        return t, acc, gyro, mag

    def _joined(self, i: int) -> np.ndarray | None:
        """Column ``i`` (t, acc, gyro, mag) of the waiting samples, as one array."""
        if not self.parts:
            return None
        cols = [p[i] for p in self.parts]
        if any(c is None for c in cols):
            return None
        return cols[0] if len(cols) == 1 else np.concatenate(cols)


class MotionTracker:
    """Spine motion from the IMU blocks of a session: ``feed(block)``, ``finish()``.

    Parameters
    ----------
    info : SessionInfo
        The session's IMUs. The lowest (by spinal level) is the reference segment, the highest
        the moving one; with one IMU its own angles against gravity are reported. Further
        IMUs in between are ignored.
    imu_rates : dict
        Nominal sample rate of each IMU, Hz (``Session.imu_rates``).
    config : MotionConfig
        Every parameter.

    Examples
    --------
    >>> from backpop_sense.motion.tracker import MotionFrame, MotionTracker
    >>> from backpop_sense.session import Session
    >>> from backpop_sense.sources.replay import ReplaySource
    >>> s = Session("data/samples/S01/2026-11-02a")
    >>> tracker = MotionTracker(s.info, s.imu_rates)
    >>> out = [o for b in ReplaySource(s) for o in tracker.feed(b)]
    >>> out += tracker.finish()
    >>> frames = [o for o in out if isinstance(o, MotionFrame)]
    >>> frames[0].t, frames[-1].t
    (0.0, 50.0)
    """

    def __init__(self, info: SessionInfo, imu_rates: dict[str, float],
                 config: MotionConfig = DEFAULT_MOTION) -> None:
        self.config = config
        imus = sorted((i for i in info.imus if i.name in imu_rates),
                      key=lambda i: level_index(i.level))
        if not imus:
            raise ValueError("the session declares no IMU with a known rate")
        chosen = [imus[0]] if len(imus) == 1 else [imus[0], imus[-1]]
        self.streams = [_Stream(i.name, float(imu_rates[i.name]),
                                ImuOrientation(imu_rates[i.name], config.orientation),
                                exact=i.mounting == "exact")
                        for i in chosen]
        self._by_name = {s.name: s for s in self.streams}
        self.upper = self.streams[0]
        self.lower = self.streams[-1]
        self.two = len(self.streams) == 2
        self.chunk_ticks = max(FRAME_TICKS, int(round(config.chunk_s / TICK_S / FRAME_TICKS))
                               * FRAME_TICKS)
        self.half_window = int(round(config.context.still_window_s / 2 / TICK_S))
        self.gait = GaitDetector(TICK_S, config.context)
        self._gait_delay = self.gait.delay_ticks
        self.catches = CatchDetector(TICK_S, config.catch)
        self.falls = FallDetector(TICK_S, config.fall)
        columns: dict[str, tuple[int, ...]] = {"moving": (), "valid": (), "amax": (),
                                               "speed": (), "lin": (), "still": (),
                                               "angles": (3,), "rates": (3,), "tilt": (),
                                               "free": (), "walk": (), "clock": ()}
        for k in range(len(self.streams)):
            columns |= {f"n{k}": (), f"q{k}": (4,), f"w{k}": (3,), f"acc{k}": (3,),
                        f"b{k}": (3,)}
        # Ticks wait for calibration (at most its timeout), then for the gait decision.
        keep = (int(config.calibration_timeout_s / TICK_S) + 2 * self.chunk_ticks
                + self.gait.delay_ticks + 2 * self.half_window)
        self._ticks = TickWindow(keep, **columns)
        self._next_chunk = 0
        self._angles_done = 0
        self._frames_done = 0
        self._first_data_tick: int | None = None
        self._calibrated_at: int | None = None
        self._calibration = "none"
        self._provisional = False
        self._heading = 0.0
        self._last_rezero_tick: int | None = None
        self._drift_rate_dps = 0.0
        self._anchor: tuple[int, float, float] | None = None
        self._clock = 0.0
        self._walk_done = 0
        self._rezero_run = False
        self._drift: list[float] = [0, 0.0, 0.0, 0.0]  # count, sum |deg|, max |deg|, deg/min
        self._rom = {a: AngleHistogram() for a in AXES}
        self._peak_rates = np.zeros(3)
        self._yaw_sums = np.zeros((len(self.streams), 2))
        self._yaw_lengths = np.zeros(len(self.streams))
        self._yaw_turned = np.zeros(len(self.streams))
        self._yaw_updates = 0
        self._yaw_changed = False
        self._contexts: Counter[str] = Counter(dict.fromkeys(CONTEXTS, 0))
        self._events = {"catch": 0, "fall": 0}
        self._frames = 0
        self._pending: list[Detection] = []
        self._finished = False

    # ------------------------------------------------------------------ streaming

    def feed(self, block: Block) -> list[MotionFrame | MotionEvent]:
        """Take one block of any kind; return the frames and events it completed, in time order."""
        if isinstance(block, ImuBlock):
            stream = self._by_name.get(block.imu)
            if stream is None:
                return []
            stream.add(block)
        elif isinstance(block, Gap):
            stream = self._by_name.get(block.stream)
            if stream is not None:
                stream.gaps += 1
                stream.gap_s += block.t_end - block.t_start
            return []
        else:
            return []
        out: list[MotionFrame | MotionEvent] = []
        while self._chunk_ready():
            out += self._process_chunk(final=False)
        return sorted(out, key=lambda o: o.t)

    def finish(self) -> list[MotionFrame | MotionEvent]:
        """Process everything still held and flush every decision; call once at the end."""
        if self._finished:
            return []
        self._finished = True
        out: list[MotionFrame | MotionEvent] = []
        while any(s.pending for s in self.streams):
            out += self._process_chunk(final=False)
        out += self._process_chunk(final=True)
        return sorted(out, key=lambda o: o.t)

    def _chunk_ready(self) -> bool:
        end = (self._next_chunk + self.chunk_ticks - 0.5) * TICK_S
        lead = max(s.last_t for s in self.streams)
        return all(s.last_t >= end for s in self.streams) or lead >= end + self.config.max_lag_s

    # ------------------------------------------------------------------ one chunk

    def _process_chunk(self, *, final: bool) -> list[MotionFrame | MotionEvent]:
        if not final:
            j0 = self._next_chunk
            j1 = j0 + self.chunk_ticks
            self._next_chunk = j1
            self._add_ticks(j0, j1)
        tk = self._ticks
        angles_to = tk.end if final else tk.end - self.half_window
        out: list[MotionFrame | MotionEvent] = []
        if angles_to > self._angles_done:
            self._pending += self._angles(self._angles_done, angles_to, final=final)
        if final:
            self.gait.finish()
            self._note_walking()
        frames_to = min(self._angles_done, tk.end if final else self.gait.final)
        if frames_to > self._frames_done:
            out += self._emit_frames(self._frames_done, frames_to)
        if final:
            flushed = self.catches.finish() + self.falls.finish()
            for d in flushed:
                self._events[d.type] += 1
            self._pending += flushed
        # Events leave in time order: each waits until both detectors have decided its time.
        decided = math.inf if final else min(self.catches.decided, self.falls.decided)
        ready = sorted((d for d in self._pending if d.tick < decided), key=lambda d: d.tick)
        self._pending = [d for d in self._pending if d.tick >= decided]
        out += [MotionEvent(round(d.tick * TICK_S, 3), d.type, d.detail) for d in ready]
        self.gait.forget_before(self._frames_done)
        return out

    def _add_ticks(self, j0: int, j1: int) -> None:
        c = self.config.context
        rows: dict[str, np.ndarray] = {}
        moving = np.zeros(j1 - j0, dtype=bool)
        valid = np.ones(j1 - j0, dtype=bool)
        amax = np.full(j1 - j0, np.nan)
        speed_max = np.full(j1 - j0, np.nan)
        lin_max = np.full(j1 - j0, np.nan)
        vertical = np.full(j1 - j0, np.nan)
        for k, stream in enumerate(self.streams):
            r = stream.take(j0, j1)
            speed = np.degrees(row_norm(r["w"]))
            lin = quat_rotate(r["q"], r["acc"]) - stream.gravity * _UP
            lin_norm = row_norm(lin)
            moving |= (speed >= c.still_rate_dps) | (lin_norm > c.still_acc_ms2)
            valid &= np.isfinite(r["q"]).all(axis=1)
            amax = np.fmax(amax, r["amax"])
            speed_max = np.fmax(speed_max, speed)
            lin_max = np.fmax(lin_max, lin_norm)
            if stream is self.lower:
                vertical = lin[:, 2]
            rows |= {f"n{k}": r["n"], f"q{k}": r["q"], f"w{k}": r["w"], f"acc{k}": r["acc"],
                     f"b{k}": r["b"]}
        if self._first_data_tick is None and valid.any():
            self._first_data_tick = j0 + int(np.argmax(valid))
        n = j1 - j0
        nan3 = np.full((n, 3), np.nan)
        self._ticks.extend(moving=moving.astype(float), valid=valid.astype(float), amax=amax,
                           speed=speed_max, lin=lin_max, still=np.zeros(n), angles=nan3,
                           rates=nan3.copy(), tilt=np.full(n, np.nan), **rows)
        self.gait.feed(vertical)
        self._note_walking()

    def _note_walking(self) -> None:
        """Keep the gait's final answers per tick (the ``walk`` series)."""
        done = max(self._walk_done, self._ticks.start)
        if self.gait.final > done:
            self._ticks.put("walk", done, self.gait.walking(np.arange(done, self.gait.final)))
            self._walk_done = self.gait.final

    def _still(self, a: int, b: int) -> np.ndarray:
        """Whether nothing moved within the surrounding second, for ticks ``[a, b)``."""
        tk, h = self._ticks, self.half_window
        lo, hi = max(a - h, tk.start), min(b + h, tk.end)
        moving = tk.get("moving", lo, hi)
        csum = np.concatenate([[0.0], np.cumsum(moving)])
        j = np.arange(a, b)
        first = np.maximum(j - h, lo) - lo
        last = np.minimum(j + h, hi) - lo
        return (csum[last] - csum[first]) == 0

    # ------------------------------------------------------------------ calibration, angles

    def _calibrate(self, a: int, b: int, still: np.ndarray, *, final: bool,
                   late: bool = False) -> bool:
        """Calibrate at the first still upright period among ticks ``[a, b)``; without one
        for ``calibration_timeout_s``, take the declared axes until one comes (``late``)."""
        h = self.half_window
        candidates = self._calibration_ticks(a, b, still, late=late)
        if len(candidates):
            j = a + int(candidates[0])
            self._set_mounts(j - h, j + h)
            self._calibration = ("first still period, provisional axes before it" if late
                                 else "first still period")
            self._provisional = False
        elif late:
            return False
        else:
            start = self._first_data_tick
            waited = start is not None and (b - start) * TICK_S >= self.config.calibration_timeout_s
            if not (waited or (final and start is not None)):
                return False
            # Walking, the trunk swings about upright: its mean specific force over the
            # strides is gravity, closer to the body's up than the declared axes (until a
            # still period shows it better).
            walking = self._ticks.get("walk", start, b) > 0
            if walking.sum() * TICK_S >= self.config.calibration_walk_s and self._set_mounts(
                    start, b, walking):
                self._calibration = "walking (no still upright period yet)"
            else:
                self._calibration = "declared axes (no still upright period yet)"
            self._provisional = True
            j = start
        # Twist is zeroed upright: bent, a turn about the vertical is part twist and part
        # side bend, and nulling the twist there with mounts whose yaw is not yet known
        # leaves both wrong once the subject stands up (a session that starts bent).
        zero = j if len(candidates) else self._first_upright(j, b)
        self._calibrated_at = j
        self._heading = self._zero_twist(zero)
        self._anchor = None
        if not late:
            # The drift rate starts from the biases VQF holds now. A late calibration keeps
            # the rate learnt before it, so what VQF learns at its still period (often the
            # first rest of the session) must still come off that rate.
            for stream in self.streams:
                stream.bias_seen = stream.filter.bias
        self._last_rezero_tick = zero
        return True

    def _first_upright(self, a: int, b: int) -> int:
        """The first tick among ``[a, b)`` where every segment is within ``upright_deg`` of
        vertical (``a`` if there is none)."""
        tilts = np.stack([tilt_deg(s) for s in self._segments(a, b)])
        upright = np.flatnonzero((tilts < self.config.upright_deg).all(axis=0))
        return a + int(upright[0]) if len(upright) else a

    def _calibration_ticks(self, a: int, b: int, still: np.ndarray, *, late: bool
                           ) -> np.ndarray:
        """The ticks among ``[a, b)`` (from ``a``) a still period may calibrate on.

        Every sensor still, with data, and its gravity within ``calibration_max_tilt_deg`` of
        its declared up; and, once the subject has walked ``calibration_walk_s`` (whether or
        not the provisional calibration used it), within ``calibration_agree_deg`` of the up
        that walking gave: standing is upright as walking is, sitting tips the pelvis back by
        15 degrees, and a session that starts walking may sit down before it first stands.
        """
        tk = self._ticks
        limit = math.cos(math.radians(self.config.calibration_max_tilt_deg))
        agree = math.cos(math.radians(self.config.calibration_agree_deg))
        ok = still & (tk.get("valid", a, b) > 0)
        if late and self._calibration.startswith("walking"):
            walked: list[np.ndarray] | None = [s.base_matrix[:, 2] for s in self.streams]
        else:
            walked = self._walking_up(b)
        for k in range(len(self.streams)):
            acc = tk.get(f"acc{k}", a, b)
            unit = acc / np.maximum(row_norm(acc), 1e-9)[:, None]
            ok &= np.nan_to_num(unit[:, 2]) >= limit
            if walked is not None:
                ok &= np.nan_to_num(unit @ walked[k]) >= agree
        return np.flatnonzero(ok)

    def _walking_up(self, b: int) -> list[np.ndarray] | None:
        """Each sensor's up (unit mean specific force) over the walking ticks from the first
        data to ``b``; None with less than ``calibration_walk_s`` of walking, or an up beyond
        ``calibration_max_tilt_deg`` of its declared one."""
        start = self._first_data_tick
        if start is None:
            return None
        walking = self._ticks.get("walk", start, b) > 0
        if walking.sum() * TICK_S < self.config.calibration_walk_s:
            return None
        ups = [self._mean_force(k, start, b, walking) for k in range(len(self.streams))]
        ups = [g / np.linalg.norm(g) for g in ups]
        limit = math.cos(math.radians(self.config.calibration_max_tilt_deg))
        return ups if all(u[2] >= limit for u in ups) else None

    def _mean_force(self, k: int, a: int, b: int, use: np.ndarray | None) -> np.ndarray:
        """Sensor ``k``'s mean specific force (m/s^2, sensor axes) over the ``use`` ticks of
        ``[a, b)`` (every tick held when None), each tick weighted by its samples."""
        tk = self._ticks
        n = tk.get(f"n{k}", a, b) * (1.0 if use is None else use)
        return np.nansum(tk.get(f"acc{k}", a, b) * n[:, None], axis=0) / max(n.sum(), 1.0)

    def _set_mounts(self, a: int, b: int, use: np.ndarray | None = None) -> bool:
        """Each sensor's mount from its mean specific force over the ``use`` ticks of
        ``[a, b)`` (every tick held when None), taken for gravity; False (nothing set) if one
        is too far from its declared up. An ``exact`` sensor keeps its declared axes, and
        takes only the size of gravity."""
        limit = math.cos(math.radians(self.config.calibration_max_tilt_deg))
        gravity = []
        for k, stream in enumerate(self.streams):
            g = self._mean_force(k, a, b, use)
            if not (stream.exact or g[2] >= limit * np.linalg.norm(g)):
                return False
            gravity.append(g)
        for stream, g in zip(self.streams, gravity, strict=True):
            stream.mount = stream.base = np.array([1.0, 0.0, 0.0, 0.0]) if stream.exact \
                else quat_between(_UP, g)
            stream.mount_matrix = stream.base_matrix = quat_matrix(stream.base)
            stream.gravity = float(np.linalg.norm(g))
            stream.mount_tilt_deg = float(tilt_deg(stream.mount))
            stream.mount_yaw_deg = 0.0
        self._yaw_sums[:] = 0.0
        self._yaw_lengths[:] = 0.0
        self._yaw_turned[:] = 0.0
        return True

    def _segments(self, a: int, b: int) -> list[np.ndarray]:
        return [quat_multiply(self._ticks.get(f"q{k}", a, b), s.mount)
                for k, s in enumerate(self.streams)]

    def _raw_angles(self, segments: list[np.ndarray], heading: np.ndarray) -> np.ndarray:
        """Angles (deg) with the upper sensor's earth frame turned by ``heading`` (rad)."""
        upper = quat_multiply(quat_about_z(heading), segments[0])
        if self.two:
            upper = quat_multiply(quat_conjugate(segments[1]), upper)
        # A segment without data (NaN) gives NaN angles.
        return spine_angles_quat(upper) if self.two else segment_angles_quat(upper)

    def _zero_twist(self, j: int) -> float:
        """The heading offset (rad) that makes the twist at tick ``j`` zero."""
        segments = self._segments(j, j + 1)
        heading = self._heading
        for _ in range(3):
            twist = self._raw_angles(segments, np.array([heading]))[0, 2]
            if not np.isfinite(twist):
                break
            heading -= math.radians(twist)
        return heading

    def _angles(self, a: int, b: int, *, final: bool) -> list[Detection]:
        """Calibrate if needed; then angles, re-zeroing, rates and events for ticks ``[a, b)``."""
        still = self._still(a, b)
        if self._calibrated_at is None and not self._calibrate(a, b, still, final=final):
            return []
        if self._provisional:
            self._calibrate(a, b, still, final=final, late=True)
        # The chunk's own flexion movements refine the mounts before its angles are made.
        self._learn_yaw(a, b)
        segments = self._segments(a, b)
        tilts = np.stack([tilt_deg(s) for s in segments])
        ticks = np.arange(a, b)
        last = a if self._last_rezero_tick is None else self._last_rezero_tick
        upright = (tilts < self.config.upright_deg).all(axis=0)
        clock, last_clock = self._drift_clock(a, b, upright & ~still, last)
        correction, before, base = self._carried_headings(a, b, segments, clock, last_clock)
        rezero, marks = self._rezero_marks(ticks, last, still & upright, before, base,
                                           correction)
        heading = before
        angles = base
        if rezero.any():
            heading = self._rezero(a, rezero, marks, before, clock, correction)
            angles = self._raw_angles(segments, heading)
        self._rezero_run = bool(rezero[-1])
        rates = self._rates(a, b, segments, heading, angles)
        self._peak_rates = np.fmax(self._peak_rates, np.nanmax(np.abs(rates), axis=0, initial=0))
        return self._store_and_detect(a, b, still, angles, rates, tilts)

    def _drift_clock(self, a: int, b: int, running: np.ndarray, last: int
                     ) -> tuple[np.ndarray, float]:
        """The drift clock at ticks ``[a, b)`` (stored as the ``clock`` series) and its reading
        at tick ``last``, seconds.

        Between re-zeros the heading follows the twist drift rate learnt so far, on a clock
        that runs only while upright and moving (``running``): the rate is the relative bias
        of the gyros' vertical axes upright, and VQF learns the biases whenever still.
        """
        clock = self._clock + np.cumsum(np.where(running, TICK_S, 0.0))
        self._ticks.put("clock", a, clock)
        self._clock = float(clock[-1])
        last_clock = clock[last - a] if a <= last < b else self._ticks.at("clock", last)
        if not np.isfinite(last_clock):
            last_clock = clock[0]
        return clock, last_clock

    def _carried_headings(self, a: int, b: int, segments: list[np.ndarray], clock: np.ndarray,
                          last_clock: float) -> tuple[float, np.ndarray, np.ndarray]:
        """The drift correction (rad per second of drift clock), the headings carried from the
        last re-zero at the drift rate (rad) and the angles they give (deg) at ticks
        ``[a, b)``; the twist before re-zeroing is stored as the ``free`` series."""
        if self.two:
            self._follow_bias()
        correction = -math.radians(self._drift_rate_dps) if self.two else 0.0
        before = self._heading + correction * (clock - last_clock)
        base = self._raw_angles(segments, before)
        self._ticks.put("free", a, base[:, 2] - np.degrees(before))
        if self.two and b - a > 2 * self.chunk_ticks and self._learn_backlog_rate(
                np.arange(a, b), clock):
            # The backlog that waited for the calibration (or the timeout) walked long enough
            # to show the drift rate: its headings are made with it.
            correction = -math.radians(self._drift_rate_dps)
            before = self._heading + correction * (clock - last_clock)
            base = self._raw_angles(segments, before)
        return correction, before, base

    def _rezero_marks(self, ticks: np.ndarray, last: int, rezero: np.ndarray,
                      before: np.ndarray, base: np.ndarray, correction: float
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Which of ``ticks`` re-zero the twist, and the heading (rad) each re-zero sets.

        ``rezero`` holds the still upright ticks; ``last`` is the last re-zero's tick.
        """
        cfg = self.config
        if self.two:
            # A held twist is not erased: re-zero a twist within the drift allowed since the
            # last re-zero, or one that has stayed within rezero_max_deg for rezero_window_s
            # (whatever its size: drift builds slowly, a twist is made by moving).
            since = (ticks - last) * TICK_S
            allowed = cfg.rezero_max_deg + cfg.rezero_drift_dps * since
            with np.errstate(invalid="ignore"):
                beyond = rezero & ~(np.abs(base[:, 2]) <= allowed)
            if beyond.any():
                width = int(round(cfg.rezero_window_s / TICK_S))
                settled = (self._free_span(ticks, width) <= cfg.rezero_max_deg) & (
                    ticks - width >= max(self._ticks.start, self._calibrated_at or 0))
                rezero &= ~beyond | settled
        marks = np.full(len(ticks), np.nan)
        marks[rezero] = before[rezero] - np.radians(base[rezero, 2])
        if self.two:
            walk_marks = self._walk_marks(ticks, correction)
            use = ~rezero & np.isfinite(walk_marks)
            marks[use] = walk_marks[use]
            rezero = rezero | use
        return rezero, marks

    def _rezero(self, a: int, rezero: np.ndarray, marks: np.ndarray, before: np.ndarray,
                clock: np.ndarray, correction: float) -> np.ndarray:
        """The headings (rad) of the ticks from ``a`` on, after the ``rezero`` ticks.

        Re-zeroed ticks take their new heading; later ticks go on from there at the drift
        rate. Upright, a turn about earth up is a turn about the segment's up, so one step
        nulls the twist to second order in the tilt.
        """
        idx = np.flatnonzero(rezero)
        fill = np.maximum.accumulate(np.where(rezero, np.arange(len(rezero)), -1))
        after = fill >= 0
        at = np.maximum(fill, 0)
        if (self._last_rezero_tick or 0) > a:
            # Calibrated later than these ticks (frames waited for it): the first re-zero
            # here is closer in time than the calibration.
            at = np.maximum(at, idx[0])
            after[:] = True
        heading = np.where(after, marks[at] + correction * (clock - clock[at]), before)
        self._note_drift(a, idx, rezero, before, heading, marks)
        if self.two:
            self._learn_drift_rate(a, idx, marks, clock, correction)
        self._heading = float(marks[idx[-1]])
        self._last_rezero_tick = a + int(idx[-1])
        return heading

    def _store_and_detect(self, a: int, b: int, still: np.ndarray, angles: np.ndarray,
                          rates: np.ndarray, tilts: np.ndarray) -> list[Detection]:
        """Keep the ticks' stillness, angles, rates and least tilt; feed the catch and fall
        detectors and return what they found."""
        tk = self._ticks
        tk.put("still", a, still)
        tk.put("angles", a, angles)
        tk.put("rates", a, rates)
        tk.put("tilt", a, np.fmin.reduce(tilts, axis=0))
        self._angles_done = b
        upper_w = np.degrees(tk.get("w0", a, b))
        found = self.catches.feed(upper_w, angles) + self.falls.feed(
            tk.get("amax", a, b), tk.get("speed", a, b), tk.get("lin", a, b),
            tk.get("tilt", a, b))
        for d in found:
            self._events[d.type] += 1
        return found

    def _follow_bias(self) -> None:
        """Take what VQF newly learnt of the gyro biases (at rest) off the drift rate.

        The drift rate is the relative bias of the sensors' upright vertical axes left over
        by VQF's estimates; when an estimate moves, what is left over moves the other way.
        """
        change = 0.0
        for stream in self.streams:
            bias = stream.filter.bias
            up = stream.base_matrix[:, 2]
            moved = float((bias - stream.bias_seen) @ up)
            change += moved if stream is self.upper else -moved
            stream.bias_seen = bias
        self._drift_rate_dps -= math.degrees(change)

    def _learn_backlog_rate(self, ticks: np.ndarray, clock: np.ndarray) -> bool:
        """Take the drift rate from the slope of the walking re-zeros over ``ticks``, when
        they cover ``drift_backlog_walk_s`` or more; True if it was taken."""
        raw = self._walk_marks(ticks, 0.0)
        ok = np.isfinite(raw)
        if ok.sum() * TICK_S < self.config.drift_backlog_walk_s:
            return False
        slope = np.polyfit(clock[ok], np.unwrap(raw[ok]), 1)[0]
        self._drift_rate_dps = -math.degrees(slope)
        # That is the drift with the biases VQF held while walking, and the backlog's
        # headings follow it; what VQF has learnt since (at the still period that ended the
        # backlog, often) comes off the rate from the next chunk on (_follow_bias).
        a, b = int(ticks[0]), int(ticks[-1]) + 1
        walking = self._ticks.get("walk", a, b) > 0
        for k, stream in enumerate(self.streams):
            held = self._ticks.get(f"b{k}", a, b)[walking]
            held = held[np.isfinite(held).all(axis=1)]
            if len(held):
                stream.bias_seen = held.mean(axis=0)
        return True

    def _learn_drift_rate(self, a: int, idx: np.ndarray, marks: np.ndarray, clock: np.ndarray,
                          correction: float) -> None:
        """Correct the twist drift rate from re-zeros at least ``drift_anchor_s`` apart.

        Each re-zero's heading is an estimate of the right heading at its tick; where the
        heading carried from the previous such re-zero at the drift rate misses it, the rate
        was wrong by the miss over the drift clock's interval. Each correction is weighted by
        interval / (interval + ``drift_rate_tau_s``).
        """
        cfg = self.config
        gap = int(round(cfg.drift_anchor_s / TICK_S))
        anchor = self._anchor
        i = 0
        while i < len(idx):
            j, k = a + int(idx[i]), int(idx[i])
            if anchor is not None and j - anchor[0] >= gap and clock[k] - anchor[1] >= 1.0:
                seconds = clock[k] - anchor[1]
                predicted = anchor[2] + correction * seconds
                miss = math.degrees((predicted - marks[k] + math.pi) % (2 * math.pi) - math.pi)
                self._drift_rate_dps += miss / (seconds + cfg.drift_rate_tau_s)
                correction = -math.radians(self._drift_rate_dps)
            if anchor is None or j - anchor[0] >= gap:
                anchor = (j, float(clock[k]), float(marks[k]))
            i = int(np.searchsorted(idx, anchor[0] - a + gap))
        self._anchor = anchor

    def _walk_marks(self, ticks: np.ndarray, correction: float) -> np.ndarray:
        """Headings (rad) that null the mean twist over each walking window, NaN elsewhere.

        Nobody walks with the trunk held twisted: over a stride or two the twist swings about
        zero, so its mean over ``walk_window_s`` of walking is drift. The window ends as far
        back as the gait decision lags, and its heading is carried to each tick at the drift
        rate.
        """
        tk = self._ticks
        width = int(round(self.config.walk_window_s / TICK_S))
        lo = max(int(ticks[0]) - self._gait_delay - width, tk.start)
        hi = int(ticks[-1]) - self._gait_delay + 1
        if hi - lo < width:
            return np.full(len(ticks), np.nan)
        walk = tk.get("walk", lo, hi) > 0
        if not walk.any():
            return np.full(len(ticks), np.nan)
        free = np.radians(tk.get("free", lo, hi))
        ok = walk & np.isfinite(free)
        csum = [np.concatenate([[0.0], np.cumsum(np.where(ok, v, 0.0))])
                for v in (np.cos(free), np.sin(free), ok.astype(float))]
        end = ticks - self._gait_delay - lo + 1
        start = end - width
        inside = start >= 0
        c, s, n = (np.where(inside, x[end.clip(0)] - x[start.clip(0)], 0.0) for x in csum)
        full = inside & (n == width)
        centre = np.maximum(ticks - self._gait_delay - width // 2, tk.start)
        carried = tk.at("clock", ticks) - tk.at("clock", centre)
        out = np.full(len(ticks), np.nan)
        out[full] = -np.arctan2(s[full], c[full]) + correction * carried[full]
        return out

    def _note_drift(self, a: int, idx: np.ndarray, rezero: np.ndarray, before: np.ndarray,
                    heading: np.ndarray, marks: np.ndarray) -> None:
        """Record the twist each re-zero run removes: the drift since the previous one."""
        previous = np.concatenate([[self._rezero_run], rezero[:-1]])
        starts = idx[~previous[idx]]
        # The run that holds the calibration removes nothing: twist was just zeroed there.
        starts = starts[a + starts > (self._calibrated_at or 0)]
        if not len(starts):
            return
        prior = np.concatenate([[before[0]], heading[:-1]])[starts]
        removed = (np.degrees(prior - marks[starts]) + 180.0) % 360.0 - 180.0
        last = self._last_rezero_tick
        for j, d in zip(starts.tolist(), removed.tolist(), strict=True):
            if self._yaw_changed:
                self._yaw_changed = False
                last = a + j
                continue
            if not math.isfinite(d):
                continue
            self._drift[0] += 1
            self._drift[1] += abs(d)
            self._drift[2] = max(self._drift[2], abs(d))
            seconds = (a + j - last) * TICK_S if last is not None else 0.0
            if seconds >= self.config.drift_anchor_s:
                # Shorter intervals (walking re-zeros a stride apart) give no rate worth saying.
                self._drift[3] = max(self._drift[3], abs(d) / (seconds / 60.0))
            last = a + j

    def _rates(self, a: int, b: int, segments: list[np.ndarray], heading: np.ndarray,
               angles: np.ndarray) -> np.ndarray:
        """Flexion, lateral and twist rates (deg/s) of the upper segment against the lower,
        at the frame ticks among ``[a, b)`` (NaN at the others).

        With one IMU, the segment's angular velocity in its heading frame.
        """
        tk = self._ticks
        out = np.full((b - a, 3), np.nan)
        pick = np.arange((-a) % FRAME_TICKS, b - a, FRAME_TICKS)
        ticks = a + pick
        upper = quat_rotate(quat_multiply(quat_about_z(heading[pick]), tk.at("q0", ticks)),
                            tk.at("w0", ticks))
        if self.two:
            lower = quat_rotate(tk.at("q1", ticks), tk.at("w1", ticks))
            local = quat_rotate(quat_conjugate(segments[1][pick]), upper - lower)
        else:
            local = quat_rotate(quat_about_z(-np.radians(angles[pick, 2])), upper)
        out[pick] = np.degrees(local) * np.array([-1.0, 1.0, 1.0])
        return out

    def _learn_yaw(self, a: int, b: int) -> None:
        """Functional calibration of each sensor's mounting yaw from flexion movements.

        Gravity cannot tell how far a sensor is turned about the vertical on the body; the
        declared axes give the first guess. Bending forward and back (and sitting down, lying
        down) turns the pelvis and the trunk about their own right axes, so the horizontal
        direction of each sensor's own angular velocity, in its segment frame, during such
        movements shows the residual yaw. No earth frame is involved, so the estimate does
        not depend on how the sensors' headings are aligned. The evidence is summed over the
        whole session in the frame gravity gave (each movement's axis scatters by some
        degrees about the right axis, and hand or strap movements that are no flexion add
        more); every ``yaw_learn_deg`` degrees of such movement, the yaw of that sum is
        applied (within ``yaw_max_deg`` of the declared axes), unless the axes scatter by
        more than ``yaw_spread_max_deg``: a trunk bends about one axis, and movements about
        many (a sensor turned in the hand, a strap that slips) show no mounting yaw. An
        ``exact`` sensor's yaw is the declared one and is not learnt.
        """
        cfg = self.config
        if not cfg.yaw_learn_deg:
            return
        cos_cone = math.cos(math.radians(cfg.yaw_cone_deg))
        min_rate = math.radians(cfg.yaw_min_rate_dps)
        for k, stream in enumerate(self.streams):
            if stream.exact:
                continue
            w = self._ticks.get(f"w{k}", a, b) @ stream.mount_matrix
            speed = row_norm(w)
            with np.errstate(invalid="ignore"):
                pick = (speed >= min_rate) & (np.abs(w[:, 0]) >= cos_cone * speed)
            if not pick.any():
                continue
            o = self._ticks.get(f"w{k}", a, b)[pick] @ stream.base_matrix
            v = np.sign(o[:, :1]) * o[:, :2]
            self._yaw_sums[k] += v.sum(axis=0)
            self._yaw_lengths[k] += float(row_norm(v).sum())
            self._yaw_turned[k] += float(np.degrees(np.abs(o[:, 0]).sum()) * TICK_S)
            if self._yaw_turned[k] < cfg.yaw_learn_deg:
                continue
            self._yaw_turned[k] = 0.0
            sx, sy = self._yaw_sums[k]
            # Circular standard deviation of the axes' directions, weighted by speed.
            resultant = min(math.hypot(sx, sy) / self._yaw_lengths[k], 1.0)
            if math.degrees(math.sqrt(-2.0 * math.log(resultant))) > cfg.yaw_spread_max_deg:
                continue
            # The segment's right axis reads (cos g, -sin g) in a frame turned by g.
            self._set_yaw(stream, float(np.clip(-math.degrees(math.atan2(sy, sx)),
                                                -cfg.yaw_max_deg, cfg.yaw_max_deg)))

    def _set_yaw(self, stream: _Stream, total: float) -> None:
        """Turn ``stream``'s mount by ``total`` degrees about its up from the one gravity
        gave, keeping the twist as it was."""
        stream.mount = quat_multiply(stream.base, quat_about_z(-math.radians(total)))
        stream.mount_matrix = quat_matrix(stream.mount)
        # Upright, turning a sensor's mount about its up is turning its earth frame: the
        # heading makes up for it, so the twist of the last re-zero stays as it was and
        # what the heading held of the old mount does not show up as a bend lying down.
        change = math.radians(total - stream.mount_yaw_deg)
        shift = change if stream is self.upper else -change
        self._heading += shift
        if self._anchor is not None:
            self._anchor = (*self._anchor[:2], self._anchor[2] + shift)
        # The twist history, as the new mounts would have read it.
        history = self._ticks.get("free", self._ticks.start, self._ticks.end)
        history -= math.degrees(shift)
        stream.mount_yaw_deg = total
        self._yaw_updates += 1
        # The next re-zero removes this change of mounting too: it is not drift.
        self._yaw_changed = True

    # ------------------------------------------------------------------ frames

    def _emit_frames(self, a: int, b: int) -> list[MotionFrame]:
        tk = self._ticks
        first = a + (-a) % FRAME_TICKS
        ticks = np.arange(first, b, FRAME_TICKS)
        self._frames_done = b
        if not len(ticks):
            return []
        angles = tk.at("angles", ticks)
        ticks = ticks[(tk.at("valid", ticks) > 0) & np.isfinite(angles).all(axis=1)]
        if not len(ticks):
            return []
        angles = tk.at("angles", ticks)
        rates = tk.at("rates", ticks)
        labels = label_context(walking=tk.at("walk", ticks) > 0, flexion_deg=angles[:, 0],
                               lateral_deg=angles[:, 1], twist_deg=angles[:, 2],
                               still=tk.at("still", ticks) > 0, config=self.config.context,
                               twist_span_deg=self._twist_span(ticks, angles[:, 2]))
        for axis, values in zip(AXES, angles.T, strict=True):
            self._rom[axis].add(values)
        self._contexts.update(labels.tolist())
        self._frames += len(ticks)
        times = np.round(ticks * TICK_S, 6)
        return [MotionFrame(t, f, lat, tw, lab, rt, rf, rl) for t, (f, lat, tw), lab, (rf, rl, rt)
                in zip(times.tolist(), angles.tolist(), labels.tolist(), rates.tolist(),
                       strict=True)]

    def _twist_span(self, ticks: np.ndarray, twist: np.ndarray) -> np.ndarray:
        """How far the twist (before re-zeroing) ranged over the ``twist_window_s`` up to
        each of ``ticks``, degrees (0 where ``twist`` is within ``twist_deg`` anyway)."""
        if not (np.abs(twist) > self.config.context.twist_deg).any():
            return np.zeros(len(ticks))
        return self._free_span(ticks, int(round(self.config.context.twist_window_s / TICK_S)))

    def _free_span(self, ticks: np.ndarray, width: int) -> np.ndarray:
        """Range (max - min, degrees) of the twist before re-zeroing over the ``width`` ticks
        up to each of ``ticks`` (increasing; gaps take the last twist seen)."""
        tk = self._ticks
        lo = max(int(ticks[0]) - width, tk.start)
        free = tk.get("free", lo, int(ticks[-1]) + 1)
        ok = np.isfinite(free)
        if not ok.any():
            return np.zeros(len(ticks))
        fill = np.maximum.accumulate(np.where(ok, np.arange(len(free)), 0))
        filled = free[fill]
        filled[:int(np.argmax(ok))] = free[int(np.argmax(ok))]
        filled = np.degrees(np.unwrap(np.radians(filled)))
        high = maximum_filter1d(filled, size=width + 1, origin=width // 2, mode="nearest")
        low = minimum_filter1d(filled, size=width + 1, origin=width // 2, mode="nearest")
        return (high - low)[ticks - lo]

    # ------------------------------------------------------------------ summary

    def latency_s(self) -> dict[str, float]:
        """Longest stream time from a sample to the frame or event it decides, seconds."""
        chunk = self.chunk_ticks * TICK_S
        still = self.half_window * TICK_S
        return {
            "frame": round(chunk + still + self._gait_delay * TICK_S, 2),
            "catch": round(chunk + still + self.catches.lookahead_ticks * TICK_S, 2),
            "fall": round(chunk + still + self.falls.lookahead_ticks * TICK_S, 2),
        }

    def summary(self) -> dict:
        """The session's motion in numbers (JSON-ready; angles in degrees, rates in deg/s).

        Returns
        -------
        dict
            ``mode`` and the ``imus`` used, ``calibration`` (with each IMU's ``mounting``
            from session.json), ``frames``, ``rom_deg`` per axis
            (``p5``, ``p95``, ``min``, ``max``), ``peak_rate_dps`` per axis, ``context_s``
            (seconds in each context), ``catches``, ``falls``, ``twist_drift`` (re-zeros, the
            twist they removed and the drift rate the heading follows at the end),
            ``gyro_bias_dps`` at the end, ``samples`` processed per IMU, ``gaps`` (with
            samples that came too late to use), ``latency_s`` and every
            ``parameters`` value. Peak rates are read at the 10 Hz frames (each the mean over
            20 ms).
        """
        count, total, worst, rate = self._drift
        return {
            "mode": "two IMUs" if self.two else "one IMU",
            "imus": {"reference": self.lower.name if self.two else None,
                     "moving": self.upper.name},
            "calibration": {
                "method": self._calibration,
                "mounting": {s.name: "exact" if s.exact else "calibrate" for s in self.streams},
                "t": None if self._calibrated_at is None else round(
                    self._calibrated_at * TICK_S, 3),
                "mount_tilt_deg": {s.name: None if s.mount_tilt_deg is None
                                   else round(s.mount_tilt_deg, 2) for s in self.streams},
                "mount_yaw_deg": {s.name: round(s.mount_yaw_deg, 2) for s in self.streams},
                "yaw_updates": self._yaw_updates,
            },
            "frames": self._frames,
            "rom_deg": {a: self._rom[a].summary() for a in AXES},
            "peak_rate_dps": {a: round(float(v), 1) for a, v in zip(AXES, self._peak_rates,
                                                                     strict=True)},
            "context_s": {k: round(v / self.config.context.rate_hz, 1)
                          for k, v in self._contexts.items()},
            "catches": self._events["catch"],
            "falls": self._events["fall"],
            "twist_drift": {
                "rezeros": int(count),
                "mean_abs_deg": round(total / count, 3) if count else None,
                "max_abs_deg": round(worst, 3) if count else None,
                "max_rate_deg_per_min": round(rate, 3) if count else None,
                "learnt_rate_deg_per_s": round(self._drift_rate_dps, 4),
            },
            "gyro_bias_dps": {s.name: np.round(np.degrees(s.filter.bias), 4).tolist()
                              for s in self.streams},
            "samples": {s.name: s.samples for s in self.streams},
            "gaps": {s.name: {"count": s.gaps, "seconds": round(s.gap_s, 3),
                              "late_samples": s.late} for s in self.streams},
            "latency_s": self.latency_s(),
            "parameters": self.config.to_dict(),
        }


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value
