"""Reading CSV tables with errors that name the file, the line and the field at fault.

Line numbers are those a text editor shows: the header is line 1, the first data row line 2.
A UTF-8 byte-order mark before the header (spreadsheets write one) is accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import BadInput, shown

ENCODING = "utf-8-sig"
"""UTF-8, with or without a byte-order mark."""
MAX_HEADER_BYTES = 4096
"""The longest header line read: a file whose first line is longer is not one of our tables."""


def read_header(path: Path) -> list[str]:
    """The column names on line 1 of a CSV file.

    Raises
    ------
    BadInput
        If the file is missing, empty or not text.
    """
    if not path.is_file():
        raise BadInput(path, None, "file is missing")
    with path.open("rb") as f:
        head = f.readline(MAX_HEADER_BYTES + 1)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise BadInput(path, "line 1", "is UTF-16 text (a UTF-16 byte-order mark); save it as "
                       "UTF-8 (CSV UTF-8)")
    if len(head) > MAX_HEADER_BYTES:
        raise BadInput(path, "line 1", f"longer than {MAX_HEADER_BYTES} bytes: not a header line")
    try:
        first = head.decode(ENCODING)
    except UnicodeDecodeError:
        raise BadInput(path, "line 1", "not a UTF-8 text file") from None
    if not first.strip():
        raise BadInput(path, "line 1", "file is empty: expected a header line")
    return [c.strip() for c in first.strip().split(",")]


def check_columns(
    path: Path, found: Sequence[str], required: Sequence[str], optional: Sequence[str] = ()
) -> list[str]:
    """Check a header: ``required`` first, in order, then optionally ``optional`` in order.

    Returns
    -------
    list of str
        The columns present.
    """
    required, optional = list(required), list(optional)
    allowed = [required, required + optional] if optional else [required]
    if list(found) not in allowed:
        expected = " or ".join(",".join(a) for a in allowed)
        raise BadInput(path, "line 1",
                       f"expected columns {expected}; {_first_difference(found, allowed[-1])}")
    return list(found)


def _first_difference(found: Sequence[str], expected: Sequence[str]) -> str:
    """Where a header departs from ``expected``, the cell quoted so that a stray invisible
    character shows (``'t\\u200b'``), never two lists that look the same."""
    for i, (have, want) in enumerate(zip(found, expected, strict=False)):
        if have != want:
            return f"column {i + 1} is {shown(have)}, not {shown(want)}"
    if len(found) < len(expected):
        return f"column {expected[len(found)]} is missing after {shown(found[-1])}"
    return f"column {len(expected) + 1} ({shown(found[len(expected)])}) is one too many"


def numeric_chunks(
    path: Path, columns: Sequence[str], *, chunk_rows: int = 65536
) -> Iterator[tuple[int, pd.DataFrame]]:
    """Read the numeric CSV ``path`` in chunks, every cell checked to be a finite number.

    Parameters
    ----------
    path : Path
        The CSV file; its header must already have been checked to be ``columns``.
    columns : sequence of str
        The column names.
    chunk_rows : int
        Rows per chunk; memory is bounded by this, not by the file's length.

    Yields
    ------
    first_line : int
        Line number (1-based, header = 1) of the chunk's first row.
    frame : DataFrame
        The chunk, float64.
    """
    try:
        yield from _chunks(path, columns, chunk_rows, fast=True)
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, BadInput):
            raise
        # A cell that is not a number: find and name it with the slow, text-reading path.
        for _ in _chunks(path, columns, chunk_rows, fast=False):
            pass
        raise BadInput(path, None, f"unreadable numbers ({exc})") from None


def _chunks(path: Path, columns: Sequence[str], chunk_rows: int, *, fast: bool
            ) -> Iterator[tuple[int, pd.DataFrame]]:
    line = 2
    blank_at: int | None = None
    reader = None
    try:
        # Opening reads the first buffer too: it may already meet a bad byte or row.
        reader = pd.read_csv(
            path, chunksize=chunk_rows, dtype=np.float64 if fast else str,
            keep_default_na=fast, skip_blank_lines=False, engine="c", encoding=ENCODING,
        )
        for raw in reader:
            if list(raw.columns) != list(columns):
                raise BadInput(path, "line 1", f"expected columns {','.join(columns)}")
            rows, blank_at = _without_trailing_blanks(path, raw, line, blank_at)
            if not rows.empty:
                yield line, _checked(path, rows, line) if fast else _to_numeric(path, rows, line)
            line += len(raw)
    except pd.errors.ParserError as exc:
        raise BadInput(path, _parser_line(str(exc)),
                       f"malformed row ({str(exc).strip()})") from None
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    finally:
        if reader is not None:
            reader.close()


def _checked(path: Path, frame: pd.DataFrame, first_line: int) -> pd.DataFrame:
    """A chunk parsed as floats: every cell must be finite (empty cells read as NaN)."""
    values = frame.to_numpy()
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        what = "is empty or not a finite number"
        raise BadInput(path, f"line {first_line + int(row)}, field {frame.columns[col]}", what)
    return frame


def _without_trailing_blanks(path: Path, raw: pd.DataFrame, first_line: int,
                             blank_at: int | None) -> tuple[pd.DataFrame, int | None]:
    """Drop blank lines at the end of the file; a blank line before more data is an error.

    ``blank_at`` is the line of the first blank line seen so far (in earlier chunks), if any.
    Blank lines are read as rows, not skipped, so every line number stays the editor's.
    """
    blank = (raw.isna() | raw.eq("")).all(axis=1).to_numpy()
    data = np.flatnonzero(~blank)
    if data.size and blank_at is not None:
        raise BadInput(path, f"line {blank_at}", "blank line inside the data")
    if blank.any():
        first_blank = int(np.argmax(blank))
        if data.size and data[-1] > first_blank:
            raise BadInput(path, f"line {first_line + first_blank}", "blank line inside the data")
        blank_at = blank_at if blank_at is not None else first_line + first_blank
        raw = raw.iloc[:first_blank]
    return raw, blank_at


def _to_numeric(path: Path, raw: pd.DataFrame, first_line: int) -> pd.DataFrame:
    out = {}
    for name in raw.columns:
        text = raw[name].to_numpy(dtype=object)
        values = pd.to_numeric(raw[name], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.argmax(bad))
            cell = str(text[i]).strip()
            what = "is empty" if cell == "" else f"is not a finite number ({shown(cell)})"
            raise BadInput(path, f"line {first_line + i}, field {name}", what)
        out[name] = values
    return pd.DataFrame(out)


def _not_utf8(path: Path) -> BadInput:
    # pandas does not say where decoding failed; find the line again (only on this error path).
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return BadInput(path, f"line {number}", "not UTF-8 text")
    return BadInput(path, None, "not a UTF-8 text file")


def _parser_line(message: str) -> str | None:
    # pandas says "line N" (1-based, header included) or, for an unclosed quote, "row N"
    # (0-based, header = row 0).
    words = message.replace(",", " ").split()
    for i, word in enumerate(words[:-1]):
        if word in ("line", "row") and words[i + 1].isdigit():
            return f"line {int(words[i + 1]) + (word == 'row')}"
    return None


def read_small_table(
    path: Path, required: Sequence[str], *, numeric: Sequence[str] = ()
) -> pd.DataFrame:
    """Read a small CSV whose first columns must be ``required`` (more may follow).

    Columns in ``numeric`` are checked to be finite numbers; the others stay text.
    """
    header = read_header(path)
    if header[: len(required)] != list(required):
        raise BadInput(path, "line 1", f"expected columns {','.join(required)} first; "
                       f"{_first_difference(header, required)}")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False,
                          engine="c", encoding=ENCODING)
    except pd.errors.ParserError as exc:
        raise BadInput(path, _parser_line(str(exc)),
                       f"malformed row ({str(exc).strip()})") from None
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    raw, _ = _without_trailing_blanks(path, raw, 2, None)
    frame = raw.copy()
    if numeric:
        converted = _to_numeric(path, raw[list(numeric)], 2)
        for name in numeric:
            frame[name] = converted[name]
    return frame
