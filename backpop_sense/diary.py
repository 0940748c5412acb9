"""The symptom diary: what the subject reports (pain, stiffness, neurological signs...).

Format (DESIGN.md), one row per entry:
``time,pain,stiffness,numbness,tingling,weakness,swelling,bruising,trauma,note`` with ``time``
ISO 8601, ``pain`` and ``stiffness`` 0-10, the next five and ``trauma`` 0 or 1, ``note`` text.
The same format is a session's ``symptoms.csv`` and a diary import file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import BadInput
from .tables import read_small_table
from .times import check_time

DIARY_COLUMNS = ("time", "pain", "stiffness", "numbness", "tingling", "weakness", "swelling",
                 "bruising", "trauma", "note")
SCALES = ("pain", "stiffness")
"""Reported on a 0-10 scale."""
FLAGS = ("numbness", "tingling", "weakness", "swelling", "bruising", "trauma")
"""Reported as 0 (absent) or 1 (present)."""


def parse_time(text: str, file: Path | str, where: str) -> datetime:
    """An ISO 8601 time, naive times taken as UTC, within the years 1970-2199
    (:func:`backpop_sense.times.check_time`)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(file, where, f"{text!r} is not an ISO 8601 time") from None
    return check_time(value if value.tzinfo else value.replace(tzinfo=UTC), file, where)


def read_diary_csv(path: Path) -> pd.DataFrame:
    """Read and validate a diary CSV.

    Returns
    -------
    DataFrame
        Columns of :data:`DIARY_COLUMNS`; ``time`` as UTC timestamps, scales as float,
        flags as int, ``note`` as text.

    Raises
    ------
    BadInput
        Naming the line and field of the first bad value.
    """
    frame = read_small_table(path, DIARY_COLUMNS[:-1], numeric=SCALES + FLAGS)
    if "note" not in frame:
        frame["note"] = ""
    frame = frame[list(DIARY_COLUMNS)].copy()
    for name in SCALES:
        bad = ~frame[name].between(0, 10).to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise BadInput(path, f"line {i + 2}, field {name}",
                           f"{frame[name].iloc[i]:g} is outside the 0-10 scale")
    for name in FLAGS:
        bad = ~frame[name].isin([0, 1]).to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise BadInput(path, f"line {i + 2}, field {name}",
                           f"{frame[name].iloc[i]:g} must be 0 (absent) or 1 (present)")
        frame[name] = frame[name].astype(int)
    frame["time"] = pd.to_datetime(
        [parse_time(t, path, f"line {i + 2}, field time") for i, t in enumerate(frame["time"])],
        utc=True,
    )
    return frame


def write_diary_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write diary entries in the diary format (the mirror of :func:`read_diary_csv`)."""
    out = frame[list(DIARY_COLUMNS)].copy()
    out["time"] = pd.to_datetime(out["time"], utc=True).map(
        lambda t: t.isoformat().replace("+00:00", "Z"))
    out.to_csv(path, index=False)
