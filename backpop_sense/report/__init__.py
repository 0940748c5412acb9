"""Reports: the physiotherapist's HTML report on a subject (flags first), the researcher's
HTML report on a session (full provenance), and the tables behind them as CSV or Parquet.

Each report is one self-contained file: plots embedded, style inline, no script, nothing
fetched from anywhere.
"""

from .export import export_tables
from .session import write_session_report
from .subject import write_subject_report

__all__ = ["export_tables", "write_session_report", "write_subject_report"]
