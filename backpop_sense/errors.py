"""The one exception type for bad input (and its kind for a bad parameter), which the CLI turns
into one line and exit status 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MAX_WHERE = 80
"""Characters of the line/field kept in a message."""
MAX_REASON = 180
"""Characters of the reason kept in a message: with the file, the line stays under 300 for any
path a user types, whatever value the file held (a 50 MB cell is not echoed)."""


def cut(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and ``...``.

    Examples
    --------
    >>> from backpop_sense.errors import cut
    >>> cut("a" * 10, 6)
    'aaa...'
    """
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def shown(value: Any, limit: int = 40) -> str:
    """A value as a message quotes it: ``repr`` for text, plain digits for numbers (numpy's
    included, never ``np.float64(2.99)``), cut to ``limit`` characters.

    Examples
    --------
    >>> import numpy as np
    >>> from backpop_sense.errors import shown
    >>> shown(np.float64(2.99)), shown("L9"), shown("x" * 100, 10)
    ('2.99', "'L9'", "'xxxxxx...")
    """
    if isinstance(value, bool) or value is None:
        text = repr(value)
    elif hasattr(value, "dtype") and getattr(value, "shape", None) == ():
        return shown(value.item(), limit)
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = f"{value:.10g}"
    else:
        text = repr(value[: limit + 1] if isinstance(value, str) else value)
    return cut(text, limit)


class BadInput(Exception):
    """Input that cannot be used as it is.

    Parameters
    ----------
    file : str or Path
        The file at fault (or the folder, when a file is missing from it).
    where : str, optional
        The line (``"line 12"``) or field (``"field mics[1].name"``) at fault.
    reason : str
        What is wrong, in words a user can act on. Messages are one line: the line/field and
        the reason are cut to :data:`MAX_WHERE` and :data:`MAX_REASON` characters.

    Examples
    --------
    >>> from backpop_sense.errors import BadInput
    >>> str(BadInput("s/imu_sacral.csv", "line 7", "t is not strictly increasing"))
    's/imu_sacral.csv: line 7: t is not strictly increasing'
    """

    def __init__(self, file: str | Path, where: str | None, reason: str) -> None:
        self.file = str(file)
        self.where = cut(_one_line(where), MAX_WHERE) if where else where
        self.reason = cut(_one_line(reason), MAX_REASON)
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [self.file] + ([self.where] if self.where else []) + [self.reason]
        return ": ".join(parts)


def _one_line(text: str) -> str:
    # Library messages (pandas, libsndfile, tomllib) may hold newlines; a message is one line.
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


class BadParameter(BadInput):
    """A parameter outside what it may be: which config (or function) it went to, the field,
    and the values allowed.

    The library names fields, never command-line flags; the CLI words a field it sets from a
    flag as that flag.

    Parameters
    ----------
    owner : str
        What took the parameter: a config class (``"DetectorConfig"``) or a task
        (``"batch"``).
    field : str
        The parameter's name.
    reason : str
        What it must be, and what it was.

    Examples
    --------
    >>> from backpop_sense.errors import BadParameter
    >>> str(BadParameter("DetectorConfig", "max_size", "must be an odd whole number, not 2"))
    'DetectorConfig: field max_size: must be an odd whole number, not 2'
    """

    def __init__(self, owner: str, field: str, reason: str) -> None:
        self.owner = owner
        self.field = field
        super().__init__(owner, f"field {field}", reason)
