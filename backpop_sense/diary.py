"""The symptom diary: what the subject reports (pain, stiffness, neurological signs...).

Format (docs/formats.md), one row per entry:
``time,pain,stiffness,numbness,tingling,weakness,swelling,bruising,trauma,note`` with ``time``
ISO 8601, ``pain`` and ``stiffness`` 0-10, the next five and ``trauma`` 0 or 1, ``note`` text
(at most :data:`MAX_NOTE_CHARS` characters). The same format is a session's ``symptoms.csv`` and
a diary import file.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import BadInput, shown
from .tables import read_small_table
from .times import check_time

DIARY_COLUMNS = ("time", "pain", "stiffness", "numbness", "tingling", "weakness", "swelling",
                 "bruising", "trauma", "note")
SCALES = ("pain", "stiffness")
"""Reported on a 0-10 scale."""
FLAGS = ("numbness", "tingling", "weakness", "swelling", "bruising", "trauma")
"""Reported as 0 (absent) or 1 (present)."""
MAX_NOTE_CHARS = 2000
"""The longest note kept, characters: a paragraph; more is not a diary note but a pasted file."""


def parse_time(text: str, file: Path | str, where: str) -> datetime:
    """An ISO 8601 time, naive times taken as UTC, within the years 1970-2199
    (:func:`backpop_sense.times.check_time`)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(file, where, f"{shown(text)} is not an ISO 8601 time") from None
    return check_time(value if value.tzinfo else value.replace(tzinfo=UTC), file, where)


def read_diary_csv(path: str | Path) -> pd.DataFrame:
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
    path = Path(path)
    frame = read_small_table(path, DIARY_COLUMNS[:-1], numeric=SCALES + FLAGS)
    if "note" not in frame:
        frame["note"] = ""
    frame = check_values(frame[list(DIARY_COLUMNS)], path, lambda i: f"line {i + 2}")
    frame["time"] = pd.to_datetime(
        [parse_time(t, path, f"line {i + 2}, field time") for i, t in enumerate(frame["time"])],
        utc=True,
    )
    return frame


def check_values(entries: pd.DataFrame, file: Path | str,
                 row: Callable[[int], str]) -> pd.DataFrame:
    """Check the scales, flags and notes of diary entries, column by column.

    Parameters
    ----------
    entries : DataFrame
        The diary columns; scales and flags numeric, ``note`` text (or missing values).
    file : str or Path
        What to name in an error (the diary file, or the source of the entries).
    row : callable
        Row position (0-based) to its name in an error (``"line 5"``, ``"entry 4"``).

    Returns
    -------
    DataFrame
        A copy with flags as int and notes as text (empty for a missing note).

    Raises
    ------
    BadInput
        Naming the row and field of the first value out of its scale.
    """
    frame = entries.copy()
    for name in SCALES + FLAGS:
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        ok = (values >= 0) & (values <= 10) if name in SCALES else np.isin(values, [0, 1])
        if not ok.all():
            i = int(np.argmax(~ok))
            scale = "is outside the 0-10 scale" if name in SCALES else \
                "must be 0 (absent) or 1 (present)"
            raise BadInput(file, f"{row(i)}, field {name}",
                           f"{shown(frame[name].iloc[i])} {scale}")
        frame[name] = values.astype(int) if name in FLAGS else values
    notes = frame["note"].fillna("").astype(str)
    long = (notes.str.len() > MAX_NOTE_CHARS).to_numpy()
    if long.any():
        i = int(np.argmax(long))
        raise BadInput(file, f"{row(i)}, field note", f"{len(notes.iloc[i])} characters long; "
                       f"a note holds at most {MAX_NOTE_CHARS}")
    frame["note"] = notes
    return frame


def write_diary_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write diary entries in the diary format (the mirror of :func:`read_diary_csv`)."""
    out = frame[list(DIARY_COLUMNS)].copy()
    out["time"] = pd.to_datetime(out["time"], utc=True).map(
        lambda t: t.isoformat().replace("+00:00", "Z"))
    out.to_csv(path, index=False)
