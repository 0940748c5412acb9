"""Spinal levels, top to bottom, and the distance between them along the spine."""

from __future__ import annotations

LEVELS: tuple[str, ...] = (
    tuple(f"C{i}" for i in range(1, 8))
    + tuple(f"T{i}" for i in range(1, 13))
    + tuple(f"L{i}" for i in range(1, 6))
    + tuple(f"S{i}" for i in range(1, 6))
)
"""Every level a mic or IMU may sit over, ordered from the skull down."""

_INDEX = {name: i for i, name in enumerate(LEVELS)}

SEGMENT_LENGTH_M = 0.03
"""Typical adult distance between neighbouring vertebral levels, in metres (about 3 cm)."""

SKIN_DEPTH_M = 0.015
"""Depth of a facet joint under the skin: the shortest path from a joint to the mic over it."""


def is_level(name: str) -> bool:
    """Whether ``name`` is a spinal level (``C1``..``S5``)."""
    return name in _INDEX


def level_index(name: str) -> int:
    """Position of a level from the top (C1 = 0, S5 = 31).

    Examples
    --------
    >>> from backpop_sense.levels import level_index
    >>> level_index("L1") - level_index("T12")
    1
    """
    return _INDEX[name]


def level_distance_m(a: str, b: str) -> float:
    """Distance along the spine between two levels, in metres."""
    return abs(level_index(a) - level_index(b)) * SEGMENT_LENGTH_M
