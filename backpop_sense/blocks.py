"""The blocks a source streams: audio, IMU samples and gaps, on one session timebase.

Every time is in seconds since the session start (``session.json`` ``start``). Audio blocks
carry the index of their first sample, so their timestamps are sample-exact:
``t = audio_offset_s + index / sr``, never an accumulated float.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class AudioBlock:
    """A run of contact-mic samples, all mics together.

    Attributes
    ----------
    start_index : int
        Index of the first sample in the session's audio.
    sr : int
        Sample rate in Hz.
    data : ndarray, shape (n, n_mics), float32
        Samples in full-scale units (-1..1), one column per mic in ``session.json`` order.
    offset_s : float
        Time of audio sample 0 relative to the session start, in seconds.
    """

    start_index: int
    sr: int
    data: np.ndarray
    offset_s: float = 0.0

    @property
    def n(self) -> int:
        """Number of samples in the block."""
        return int(self.data.shape[0])

    @property
    def t0(self) -> float:
        """Time of the first sample, in seconds since session start."""
        return self.offset_s + self.start_index / self.sr

    @property
    def t_end(self) -> float:
        """Time just after the last sample (the next block's ``t0``), in seconds."""
        return self.offset_s + (self.start_index + self.n) / self.sr

    def times(self) -> np.ndarray:
        """Time of every sample, in seconds since session start."""
        return self.offset_s + (self.start_index + np.arange(self.n)) / self.sr


@dataclass(frozen=True, eq=False)
class ImuBlock:
    """A run of samples from one IMU, in SI units and body axes.

    Attributes
    ----------
    imu : str
        The IMU's name in ``session.json`` (``thoracic``, ``sacral``...).
    start_index : int
        Index of the first row in that IMU's stream.
    t : ndarray, shape (n,)
        Sample times in seconds since session start, strictly increasing.
    acc : ndarray, shape (n, 3)
        Specific force in m/s^2, body axes x=right, y=forward, z=up.
    gyro : ndarray, shape (n, 3)
        Angular velocity in rad/s, same axes.
    mag : ndarray, shape (n, 3), optional
        Magnetic field (units as recorded, typically microtesla), same axes.
    """

    imu: str
    start_index: int
    t: np.ndarray
    acc: np.ndarray
    gyro: np.ndarray
    mag: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of samples in the block."""
        return int(self.t.shape[0])

    @property
    def t0(self) -> float:
        """Time of the first sample, in seconds since session start."""
        return float(self.t[0])


@dataclass(frozen=True)
class Gap:
    """A stretch where a stream has no data (dropped packets, a sensor reset).

    Attributes
    ----------
    stream : str
        ``"audio"`` or the IMU name.
    t_start : float
        Time of the last sample before the gap, in seconds since session start.
    t_end : float
        Time of the first sample after the gap, in seconds.
    """

    stream: str
    t_start: float
    t_end: float
    reason: str = field(default="missing samples")

    @property
    def t0(self) -> float:
        """Start of the gap, in seconds since session start (for time ordering)."""
        return self.t_start


Block = AudioBlock | ImuBlock | Gap
