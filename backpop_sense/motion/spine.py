"""Lumbar angles and the one Euler sequence that defines them.

The lumbar rotation is the thoracic segment's orientation relative to the sacral one, both in
body axes (x = right, y = forward, z = up, subject upright). Following the ISB recommendation
for the spine (Wu et al., J Biomech 2002), it is decomposed as an intrinsic X-Y-Z Cardan
sequence: flexion/extension about the right axis first, then lateral bend about the floating
forward axis, then axial twist about the segment's own up axis.

Signs (docs/formats.md): flexion positive bending forward (the up axis tips toward forward, a
negative rotation about x); lateral bend positive to the right (a positive rotation about
forward tips up toward right); twist positive turning the shoulders to the left (a positive
rotation about up, right-hand rule).

With one IMU only there is no sacral frame to refer to: the segment's orientation is taken
relative to gravity and a reference heading, and decomposed heading first (intrinsic Z-Y-X:
twist about up, then lateral bend about the turned forward axis, then flexion about the
segment's own right axis), so that a forward bend reads as flexion whichever way the subject
faces. Lateral bend is the middle angle, as in the lumbar sequence: the decomposition is
singular only at a 90 degree side bend, not at the 90 degree forward bends a trunk reaches.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

SEQUENCE = "XYZ"
"""scipy's name for the intrinsic x-y-z sequence used for every spine angle."""
SINGLE_SEQUENCE = "ZYX"
"""The intrinsic sequence for one segment against gravity and heading (one-IMU fallback)."""


def spine_rotation(flexion_deg: np.ndarray | float, lateral_deg: np.ndarray | float,
                   twist_deg: np.ndarray | float) -> Rotation:
    """The rotation of the thorax relative to the sacrum for given lumbar angles.

    Parameters
    ----------
    flexion_deg, lateral_deg, twist_deg : float or array
        Lumbar angles in degrees, signs as in the module docstring.

    Returns
    -------
    Rotation
        Maps thoracic body-frame vectors into the sacral body frame.

    Examples
    --------
    >>> import numpy as np
    >>> from backpop_sense.motion.spine import spine_rotation
    >>> r = spine_rotation(90.0, 0.0, 0.0)
    >>> np.round(r.apply([0.0, 0.0, 1.0]), 6)  # the thorax's up now points forward
    array([0., 1., 0.])
    """
    angles = np.stack(np.broadcast_arrays(-np.asarray(flexion_deg, dtype=float),
                                          np.asarray(lateral_deg, dtype=float),
                                          np.asarray(twist_deg, dtype=float)), axis=-1)
    return Rotation.from_euler(SEQUENCE, angles, degrees=True)


def spine_angles(relative: Rotation) -> np.ndarray:
    """Lumbar angles of a relative rotation: the inverse of :func:`spine_rotation`.

    Returns
    -------
    ndarray, shape (..., 3)
        Flexion, lateral bend and twist in degrees.
    """
    euler = relative.as_euler(SEQUENCE, degrees=True)
    return euler * np.array([-1.0, 1.0, 1.0])


def segment_angles(orientation: Rotation) -> np.ndarray:
    """Angles of one segment relative to gravity and a heading (the one-IMU fallback).

    Parameters
    ----------
    orientation : Rotation
        Maps segment body-frame vectors into an earth frame with z up.

    Returns
    -------
    ndarray, shape (..., 3)
        Flexion, lateral bend and twist (the heading) in degrees, signs as for the lumbar
        angles.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.spatial.transform import Rotation
    >>> from backpop_sense.motion.spine import segment_angles
    >>> r = Rotation.from_euler("ZYX", [30.0, 5.0, -20.0], degrees=True)
    >>> np.round(segment_angles(r), 6)
    array([20.,  5., 30.])
    """
    twist, lateral, minus_flexion = np.moveaxis(
        orientation.as_euler(SINGLE_SEQUENCE, degrees=True), -1, 0)
    return np.stack([-minus_flexion, lateral, twist], axis=-1)


def segment_rotation(flexion_deg: np.ndarray | float, lateral_deg: np.ndarray | float,
                     twist_deg: np.ndarray | float) -> Rotation:
    """The segment orientation of one-IMU angles: the inverse of :func:`segment_angles`.

    Examples
    --------
    >>> import numpy as np
    >>> from backpop_sense.motion.spine import segment_angles, segment_rotation
    >>> np.round(segment_angles(segment_rotation(20.0, 5.0, 30.0)), 6)
    array([20.,  5., 30.])
    """
    angles = np.stack(np.broadcast_arrays(np.asarray(twist_deg, dtype=float),
                                          np.asarray(lateral_deg, dtype=float),
                                          -np.asarray(flexion_deg, dtype=float)), axis=-1)
    return Rotation.from_euler(SINGLE_SEQUENCE, angles, degrees=True)


def spine_angles_quat(q: np.ndarray) -> np.ndarray:
    """:func:`spine_angles` of unit quaternions ``[w, x, y, z]`` (..., 4), in plain numpy.

    The same decomposition without building scipy rotations, for the streaming tracker.

    Examples
    --------
    >>> import numpy as np
    >>> from backpop_sense.motion.spine import spine_angles_quat, spine_rotation
    >>> q = spine_rotation(20.0, -5.0, 10.0).as_quat()[[3, 0, 1, 2]]
    >>> np.round(spine_angles_quat(q), 6)
    array([20., -5., 10.])
    """
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=float), -1, 0)
    # Intrinsic X-Y-Z: R = Rx(a) Ry(b) Rz(c); R02 = sin b, R12 = -sin a cos b,
    # R22 = cos a cos b, R01 = -cos b sin c, R00 = cos b cos c.
    out = np.empty(np.shape(w) + (3,))
    out[..., 0] = np.arctan2(2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y))
    out[..., 1] = np.arcsin(np.minimum(np.maximum(2.0 * (x * z + w * y), -1.0), 1.0))
    out[..., 2] = np.arctan2(-2.0 * (x * y - w * z), 1.0 - 2.0 * (y * y + z * z))
    return np.degrees(out, out=out)


def segment_angles_quat(q: np.ndarray) -> np.ndarray:
    """:func:`segment_angles` of unit quaternions ``[w, x, y, z]`` (..., 4), in plain numpy.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.spatial.transform import Rotation
    >>> from backpop_sense.motion.spine import segment_angles_quat
    >>> q = Rotation.from_euler("ZYX", [30.0, 5.0, -20.0], degrees=True).as_quat()[[3, 0, 1, 2]]
    >>> np.round(segment_angles_quat(q), 6)
    array([20.,  5., 30.])
    """
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=float), -1, 0)
    # Intrinsic Z-Y-X: R = Rz(c) Ry(b) Rx(a); R20 = -sin b, R21 = sin a cos b,
    # R22 = cos a cos b, R10 = cos b sin c, R00 = cos b cos c.
    out = np.empty(np.shape(w) + (3,))
    out[..., 0] = -np.arctan2(2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y))
    out[..., 1] = -np.arcsin(np.minimum(np.maximum(2.0 * (x * z - w * y), -1.0), 1.0))
    out[..., 2] = np.arctan2(2.0 * (x * y + w * z), 1.0 - 2.0 * (y * y + z * z))
    return np.degrees(out, out=out)
