"""The one exception type for bad input, which the CLI turns into one line and exit status 2."""

from __future__ import annotations

from pathlib import Path


class BadInput(Exception):
    """Input that cannot be used as it is.

    Parameters
    ----------
    file : str or Path
        The file at fault (or the folder, when a file is missing from it).
    where : str, optional
        The line (``"line 12"``) or field (``"field mics[1].name"``) at fault.
    reason : str
        What is wrong, in words a user can act on.

    Examples
    --------
    >>> str(BadInput("s/imu_sacral.csv", "line 7", "t is not strictly increasing"))
    's/imu_sacral.csv: line 7: t is not strictly increasing'
    """

    def __init__(self, file: str | Path, where: str | None, reason: str) -> None:
        self.file = str(file)
        self.where = where
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [self.file] + ([self.where] if self.where else []) + [self.reason]
        return ": ".join(parts)
