"""The project's words, each defined once: identifiers, spine axes, motion contexts, pop kinds
and the column lists of the files the project reads and writes.

Every module takes its words from here, the session format and the analysis alike, so that the
format imports nothing from the analysis and a new word is added in one place. Spinal levels
have their own module (:mod:`~backpop_sense.levels`), as they come with distances.
"""

from __future__ import annotations

import re

from .errors import BadInput, shown

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Subject, session and IMU identifiers: a pseudonym, never a name or a path."""
ID_RULE = "1-64 characters of A-Z, a-z, 0-9, _ and -"
""":data:`ID_PATTERN` in words, for messages."""

AXES = ("flexion", "lateral", "twist")
"""The lumbar angles, in the order every table and array holds them."""
ANGLE_COLUMNS = tuple(f"{axis}_deg" for axis in AXES)
"""The angle columns of motion tables, degrees."""

CONTEXTS = ("twist", "stretch", "bend", "walk", "static", "other")
"""What the spine is doing at an instant (:mod:`~backpop_sense.motion.context`)."""
POP_KINDS = ("cavitation", "snap", "readjustment")
"""What made a pop: a joint cavitating, a tendon snapping, a joint readjusting."""
UNKNOWN = "unknown"
"""The kind of a pop that cannot be typed, and the context of one without motion data."""
KINDS = (*POP_KINDS, UNKNOWN)
"""The kinds the analysis gives a pop."""

IMU_COLUMNS = ("t", "ax", "ay", "az", "gx", "gy", "gz")
"""Columns of a session's ``imu_<name>.csv``; :data:`MAG_COLUMNS` may follow."""
MAG_COLUMNS = ("mx", "my", "mz")
TRUTH_COLUMNS = ("t", "level", "kind")
"""Columns of a session's ``truth.csv``."""
MOTION_COLUMNS = ("t", *ANGLE_COLUMNS, "context")
"""Columns of ``motion.csv`` (the analysis) and ``motion_truth.csv`` (a session's truth)."""
POP_COLUMNS = ("t", "level", "kind", "context", "amplitude_db", "snr_db", "centroid_hz",
               "duration_ms", *ANGLE_COLUMNS, "twist_rate_dps")
"""Contract columns of ``pops.csv``, in order."""
EXTRA_POP_COLUMNS = ("kind_rule", "end_fraction", "strength", "spread_db")
"""Diagnostic columns of ``pops.csv``, after the contract ones: why a pop got its kind."""
EVENT_COLUMNS = ("t", "type", "detail")
"""Columns of ``events.csv``."""

LSL_FORMAT = "backpop-lsl/1"
"""The ``desc/backpop/format`` of every Lab Streaming Layer stream the project publishes
(docs/formats.md): how a strap's streams are told apart from other devices' in an XDF file."""
LSL_TYPES = {"audio": "Audio", "imu": "IMU", "events": "Markers"}
"""The LSL content type of each kind of stream published (``desc/backpop/role``)."""
IMU_CHANNELS = IMU_COLUMNS[1:]
"""The channels of a published IMU stream: acceleration (m/s^2), then angular rate (rad/s)."""
MARKER_EVENTS = ("pop", "pop_confirmed", "pop_overruled", "pop_placed", "pop_typed", "catch",
                 "fall", "gap")
"""The ``event`` of each marker: a pop heard (the gate's provisional verdict), confirmed or
overruled by its final verdict, placed in its motion context, typed at the end of the session;
a catch, a fall, a gap in a stream."""


def is_identifier(value: object) -> bool:
    """Whether ``value`` is a valid subject, session or IMU identifier (:data:`ID_PATTERN`).

    Examples
    --------
    >>> from backpop_sense.vocab import is_identifier
    >>> is_identifier("S01"), is_identifier("../S01")
    (True, False)
    """
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def check_subject(subject: str) -> str:
    """``subject`` if it is a valid pseudonym (:data:`ID_PATTERN`), else :class:`BadInput`."""
    if not is_identifier(subject):
        raise BadInput("subject", None, f"{shown(subject)} is not a valid subject ID ({ID_RULE})")
    return subject
