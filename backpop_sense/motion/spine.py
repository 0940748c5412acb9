"""Lumbar angles and the one Euler sequence that defines them.

The lumbar rotation is the thoracic segment's orientation relative to the sacral one, both in
body axes (x = right, y = forward, z = up, subject upright). Following the ISB recommendation
for the spine (Wu et al., J Biomech 2002), it is decomposed as an intrinsic X-Y-Z Cardan
sequence: flexion/extension about the right axis first, then lateral bend about the floating
forward axis, then axial twist about the segment's own up axis.

Signs (DESIGN.md): flexion positive bending forward (the up axis tips toward forward, a
negative rotation about x); lateral bend positive to the right (a positive rotation about
forward tips up toward right); twist positive turning the shoulders to the left (a positive
rotation about up, right-hand rule).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

SEQUENCE = "XYZ"
"""scipy's name for the intrinsic x-y-z sequence used for every spine angle."""


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
