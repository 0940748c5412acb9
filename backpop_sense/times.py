"""The span of time a recording or a diary entry may have: 1970 to 2200, UTC.

A time outside it is a typing error (year 1 for 2001, 20266 for 2026), and the store could not
write it as the fixed-width ISO 8601 text it sorts and reads back, so it is refused where it
enters, naming the file and field, before anything is written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from .errors import BadInput

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""The first time accepted (inclusive)."""
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
"""The first time no longer accepted."""


def check_time(value: datetime, file: str | Path, where: str | None) -> datetime:
    """``value`` if it lies from :data:`EARLIEST` up to (not including) :data:`LATEST`.

    Parameters
    ----------
    value : datetime
        A timezone-aware time (a :class:`pandas.Timestamp` will do).
    file, where : str or Path, str
        What to name in the error: the file (or option) and the line or field.

    Returns
    -------
    datetime
        ``value``, unchanged.

    Raises
    ------
    BadInput
        For a time before 1970 or from 2200 on.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from backpop_sense.times import check_time
    >>> check_time(datetime(2026, 11, 20, tzinfo=UTC), "diary.csv", "line 2, field time").year
    2026
    """
    if not EARLIEST <= value < LATEST:
        raise BadInput(file, where, f"{value.isoformat()} is outside the years "
                       f"{EARLIEST.year}-{LATEST.year - 1}")
    return value
