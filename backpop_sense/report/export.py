"""``backpop export``: every table behind a subject's report, one file per table.

Times are written as ISO 8601 UTC text in CSV (and as UTC timestamps in Parquet); nested
values (a session's summary, a flag's evidence, seconds per motion context) as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import BadParameter
from .tables import TABLES, subject_tables

if TYPE_CHECKING:
    from ..store import Store

FORMATS = ("csv", "parquet")


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """Dict and list cells as JSON text: neither CSV nor Parquet holds them as they are."""
    # Cells are looked at one by one: Series.map keeps an empty column's dtype, and pandas 3
    # refuses .any() on an (empty) datetime column.
    nested = [c for c in frame.columns if any(isinstance(v, dict | list) for v in frame[c])]
    return frame.assign(**{c: [json.dumps(v, default=str) if isinstance(v, dict | list) else v
                               for v in frame[c]] for c in nested})


def export_tables(store: Store, subject: str, out_dir: str | Path, fmt: str = "csv", *,
                  rules: Mapping[str, Any] | None = None) -> list[Path]:
    """Write every table behind the subject's report (see
    :func:`~backpop_sense.report.tables.subject_tables`) to ``out_dir/<table>.<fmt>``.

    Parameters
    ----------
    store : Store
    subject : str
        A subject the store holds.
    out_dir : str or Path
        Created if missing; files of the same names are replaced.
    fmt : {"csv", "parquet"}
        Parquet needs pyarrow (``pip install backpop-sense[parquet]``).
    rules : mapping, optional
        The rule file's content, for the range-of-motion baseline (rule R3).

    Returns
    -------
    list of Path
        The files written, in the order of :data:`~backpop_sense.report.tables.TABLES`.

    Raises
    ------
    BadInput
        For an unknown subject or format, or Parquet without pyarrow.

    Examples
    --------
    >>> from backpop_sense.report import export_tables
    >>> from backpop_sense.store import Store
    >>> with Store("backpop.db") as store:  # doctest: +SKIP
    ...     [p.name for p in export_tables(store, "S02", "out")][:3]
    ['sessions.csv', 'pops.csv', 'motion.csv']
    """
    if fmt not in FORMATS:
        raise BadParameter("export", "fmt", f"must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise BadParameter("export", "fmt", "parquet needs pyarrow: pip install "
                               "'backpop-sense[parquet]' (or export csv)") from None
    tables = subject_tables(store, subject, rules)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TABLES:
        frame = _flat(tables[name])
        path = out / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ",
                         float_format="%.10g")
        else:
            frame.to_parquet(path, index=False)
        written.append(path)
    return written
