"""Orientation of one IMU with VQF, fed batch by batch, and the quaternion algebra around it.

VQF (Laidig & Seel, Information Fusion 2023) fuses gyroscope and accelerometer (and, when
asked, magnetometer) into the sensor's orientation and estimates the gyroscope bias, at rest
and in motion. It is used because it was the most accurate of the open filters on real
data, the BROAD benchmark (``benchmarks/motion.md``). Its ``updateBatch`` runs the same
per-sample recursion as ``update`` in compiled code, so feeding a stream in batches of any
size gives the same orientation sample for sample.

Quaternions are arrays ``[w, x, y, z]`` (scalar first, as VQF returns them). ``q`` maps
vectors from the sensor frame to the earth frame: ``v_earth = rotate(q, v_sensor)``. Without a
magnetometer each filter's earth frame has z up and an arbitrary heading of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import vqf

from ..params import FLAG, POSITIVE, Rules, check


def _product_table() -> np.ndarray:
    """The Hamilton product as a (16, 4) table: ``a * b == outer(a, b).ravel() @ table``."""
    table = np.zeros((4, 4, 4))
    # (i, j, k, sign): component i of a times component j of b adds sign to component k.
    for i, j, k, sign in ((0, 0, 0, 1), (1, 1, 0, -1), (2, 2, 0, -1), (3, 3, 0, -1),
                          (0, 1, 1, 1), (1, 0, 1, 1), (2, 3, 1, 1), (3, 2, 1, -1),
                          (0, 2, 2, 1), (1, 3, 2, -1), (2, 0, 2, 1), (3, 1, 2, 1),
                          (0, 3, 3, 1), (1, 2, 3, 1), (2, 1, 3, -1), (3, 0, 3, 1)):
        table[i, j, k] = sign
    return table.reshape(16, 4)


_PRODUCT = _product_table()
_LEFT, _RIGHT = np.repeat(np.arange(4), 4), np.tile(np.arange(4), 4)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of quaternions (broadcast over leading axes).

    Examples
    --------
    >>> import numpy as np
    >>> from backpop_sense.motion.orientation import quat_multiply
    >>> quat_multiply(np.array([1.0, 0, 0, 0]), np.array([0.0, 1, 0, 0]))
    array([0., 1., 0., 0.])
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if b.ndim == 1:
        # One right factor: a 4x4 matrix product, the cheapest form.
        return a @ np.tensordot(b, _PRODUCT.reshape(4, 4, 4), axes=(0, 1))
    # Every product of a component of a with one of b in one array operation, then the
    # signed sums in one matrix product (a few numpy calls instead of 28).
    return (a[..., _LEFT] * b[..., _RIGHT]) @ _PRODUCT


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """The inverse of unit quaternions."""
    return np.asarray(q, dtype=float) * np.array([1.0, -1.0, -1.0, -1.0])


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v`` (..., 3) by unit quaternions ``q`` (..., 4).

    Examples
    --------
    >>> import numpy as np
    >>> from backpop_sense.motion.orientation import quat_about_z, quat_rotate
    >>> np.round(quat_rotate(quat_about_z(np.pi / 2), np.array([1.0, 0.0, 0.0])), 6)
    array([0., 1., 0.])
    """
    q, v = np.asarray(q, dtype=float), np.asarray(v, dtype=float)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    vx, vy, vz = v[..., 0], v[..., 1], v[..., 2]
    # v + 2w (u x v) + 2 u x (u x v), with u the vector part.
    tx, ty, tz = 2.0 * (y * vz - z * vy), 2.0 * (z * vx - x * vz), 2.0 * (x * vy - y * vx)
    out = np.empty(np.broadcast_shapes(q.shape[:-1], v.shape[:-1]) + (3,))
    out[..., 0] = vx + w * tx + y * tz - z * ty
    out[..., 1] = vy + w * ty + z * tx - x * tz
    out[..., 2] = vz + w * tz + x * ty - y * tx
    return out


def quat_matrix(q: np.ndarray) -> np.ndarray:
    """The 3x3 rotation matrix of one unit quaternion: ``quat_rotate(q, v) == matrix @ v``."""
    return quat_rotate(q, np.eye(3)).T


def quat_about_z(angle_rad: np.ndarray | float) -> np.ndarray:
    """Rotations by ``angle_rad`` about the vertical (earth z) axis."""
    half = 0.5 * np.asarray(angle_rad, dtype=float)
    out = np.zeros(half.shape + (4,))
    out[..., 0] = np.cos(half)
    out[..., 3] = np.sin(half)
    return out


def row_norm(x: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis (a faster ``np.linalg.norm(x, axis=-1)``)."""
    x = np.asarray(x, dtype=float)
    return np.sqrt(np.einsum("...i,...i->...", x, x))


def quat_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction ``a`` to direction ``b`` (3-vectors)."""
    a = np.asarray(a, dtype=float) / np.linalg.norm(a)
    b = np.asarray(b, dtype=float) / np.linalg.norm(b)
    dot = float(a @ b)
    if dot < -1.0 + 1e-9:
        # Opposite directions: half a turn about any axis perpendicular to a.
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return np.array([0.0, *axis])
    q = np.array([1.0 + dot, *np.cross(a, b)])
    return q / np.linalg.norm(q)


def tilt_deg(q: np.ndarray) -> np.ndarray:
    """Angle between the frame's z axis and earth up, in degrees (0 upright, 90 lying)."""
    q = np.asarray(q, dtype=float)
    up_z = 1.0 - 2.0 * (q[..., 1] ** 2 + q[..., 2] ** 2)
    return np.degrees(np.arccos(np.minimum(np.maximum(up_z, -1.0), 1.0)))


@dataclass(frozen=True)
class OrientationConfig:
    """Settings of the orientation filter (VQF's own defaults unless said otherwise).

    Attributes
    ----------
    tau_acc_s : float
        Time constant of the accelerometer correction, seconds (VQF default 3 s).
    use_mag : bool
        Fuse the magnetometer (9-axis) when the IMU has one. Off by default: indoors the field
        is rarely clean, and VQF's 6-axis estimate is what the benchmarks measure.
    rest_bias, motion_bias : bool
        Gyroscope bias estimation at rest and during motion.
    bias_clip_dps : float
        Largest gyroscope bias VQF will estimate, deg/s. VQF's default (2 deg/s) also stops
        its rest detection when a gyro's offset is larger, and then the bias is never
        learnt; uncalibrated MEMS gyros are specified to about +-5 deg/s (e.g. the MPU-6050's
        zero-rate output), so that is the default here.
    """

    tau_acc_s: float = 3.0
    use_mag: bool = False
    rest_bias: bool = True
    motion_bias: bool = True
    bias_clip_dps: float = 5.0

    RULES: ClassVar[Rules] = {"tau_acc_s": POSITIVE, "use_mag": FLAG, "rest_bias": FLAG,
                              "motion_bias": FLAG, "bias_clip_dps": POSITIVE}

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class OrientationBatch:
    """What the filter says about each sample of a batch.

    Attributes
    ----------
    quat : ndarray, shape (n, 4)
        Sensor-to-earth orientation, ``[w, x, y, z]``.
    bias : ndarray, shape (n, 3)
        Gyroscope bias estimate, rad/s, sensor axes.
    rest : ndarray of bool, shape (n,)
        VQF's rest detection.
    mag_disturbed : ndarray of bool, shape (n,), optional
        VQF's magnetic disturbance detection (9-axis only).
    """

    quat: np.ndarray
    bias: np.ndarray
    rest: np.ndarray
    mag_disturbed: np.ndarray | None = None


class ImuOrientation:
    """VQF for one IMU, fed batch by batch; results do not depend on how the stream is cut.

    Parameters
    ----------
    rate_hz : float
        The IMU's nominal sample rate, Hz.
    config : OrientationConfig
        Filter settings.

    Examples
    --------
    >>> import numpy as np
    >>> from backpop_sense.motion.orientation import ImuOrientation
    >>> from backpop_sense.session import GRAVITY
    >>> f = ImuOrientation(200.0)
    >>> out = f.update(np.zeros((4, 3)), np.tile([0.0, 0.0, GRAVITY], (4, 1)))
    >>> np.round(out.quat[-1], 6)
    array([1., 0., 0., 0.])
    """

    def __init__(self, rate_hz: float, config: OrientationConfig | None = None) -> None:
        self.config = config or OrientationConfig()
        self.rate_hz = float(rate_hz)
        ts = 1.0 / self.rate_hz
        c = self.config
        self._filter = vqf.VQF(ts, ts, ts if c.use_mag else -1.0, tauAcc=c.tau_acc_s,
                               restBiasEstEnabled=c.rest_bias,
                               motionBiasEstEnabled=c.motion_bias, biasClip=c.bias_clip_dps)

    def update(self, gyro: np.ndarray, acc: np.ndarray,
               mag: np.ndarray | None = None) -> OrientationBatch:
        """Feed samples in time order: gyro in rad/s, acc in m/s^2, mag in any unit.

        Returns
        -------
        OrientationBatch
            The orientation after each sample.
        """
        gyro = np.ascontiguousarray(gyro, dtype=float)
        acc = np.ascontiguousarray(acc, dtype=float)
        if self.config.use_mag and mag is not None:
            out = self._filter.updateBatch(gyro, acc, np.ascontiguousarray(mag, dtype=float))
            return OrientationBatch(out["quat9D"], out["bias"], out["restDetected"],
                                    out["magDistDetected"])
        out = self._filter.updateBatch(gyro, acc)
        return OrientationBatch(out["quat6D"], out["bias"], out["restDetected"])

    @property
    def bias(self) -> np.ndarray:
        """The current gyroscope bias estimate, rad/s."""
        return np.asarray(self._filter.getBiasEstimate()[0])
