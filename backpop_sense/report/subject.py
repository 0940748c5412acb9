"""The physiotherapist's report on one subject: one HTML file, flags first.

In this order: who and which period; the red flags (severity, evidence in plain words,
reason, not a diagnosis); pops per day by spinal level and kind; pops by motion context; range
of motion per axis against the subject's own baseline; pain and stiffness from the diary with
pops per day; catches, falls and reported trauma on a time line; the sessions, each linked to
its session report. The plots are embedded: the file opens from disk and asks nothing of any
other host.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .. import __version__
from ..diary import FLAGS
from ..rules import NOT_A_DIAGNOSIS, SEVERITIES, load_rules
from . import plots
from .evidence import describe
from .render import write_html
from .session import REPORT_DIR, session_link, write_session_report
from .tables import known_subject, subject_tables

if TYPE_CHECKING:
    from ..store import Store


def default_subject_path(subject: str) -> Path:
    """Where a subject's report goes by default: ``reports/<subject>.html``."""
    return REPORT_DIR / f"{subject}.html"


def _period(tables: Mapping[str, pd.DataFrame]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """From the first to the last session or diary entry, padded to whole days."""
    sessions, diary = tables["sessions"], tables["diary"]
    # A subject with a diary and no session has an empty sessions table of object columns.
    start = pd.to_datetime(sessions["start"], utc=True)
    times = pd.concat([start, start + pd.to_timedelta(sessions["duration_s"].astype(float),
                                                      unit="s"), diary["time"]])
    if times.empty:
        now = pd.Timestamp.now(tz="UTC").floor("D")
        return now, now + pd.Timedelta(days=1)
    return times.min().floor("D"), times.max().floor("D") + pd.Timedelta(days=1)


def _flags(flags: pd.DataFrame) -> list[dict[str, Any]]:
    rows = [{"rule_id": f.rule_id, "severity": f.severity, "title": f.title,
             "first_seen": f.first_seen, "last_seen": f.last_seen, "reason": f.reason,
             "evidence": describe(f.rule_id, f.evidence)} for f in flags.itertuples()]
    return sorted(rows, key=lambda r: (SEVERITIES.index(r["severity"]), r["rule_id"]))


def _notes(diary: pd.DataFrame) -> list[dict[str, Any]]:
    """Diary entries with a note or a reported symptom, newest first."""
    rows = []
    for r in diary.iloc[::-1].itertuples():
        reported = [name for name in FLAGS if getattr(r, name) == 1]
        if reported or str(r.note).strip():
            rows.append({"time": r.time, "pain": r.pain, "stiffness": r.stiffness,
                         "reported": ", ".join(reported), "note": str(r.note)})
    return rows


def _timeline(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Catches and falls measured, trauma reported: ``time``, ``what``, ``session``,
    ``detail``."""
    events = tables["events"]
    measured = events[events["type"].isin(["catch", "fall"])]
    diary = tables["diary"]
    trauma = diary[diary["trauma"] == 1]
    return pd.concat([
        pd.DataFrame({"time": measured["time"], "what": measured["type"] + " (measured)",
                      "session": measured["session"], "detail": measured["detail"]}),
        pd.DataFrame({"time": trauma["time"], "what": "trauma (reported)", "session": "",
                      "detail": trauma["note"]}),
    ]).sort_values("time", kind="stable").reset_index(drop=True)


def _context(store: Store, subject: str, rules: Mapping[str, Any] | None,
             linked: frozenset[str]) -> dict[str, Any]:
    """Everything the subject template shows (tables, flags in words, plots as data URIs);
    ``linked``: the sessions whose report is beside the subject's, to link to."""
    rules = rules or load_rules()
    tables = subject_tables(store, subject, rules)
    period = _period(tables)
    sessions, diary = tables["sessions"], tables["diary"]
    timeline = _timeline(tables)
    has_pops = not tables["pops"].empty
    context_table = tables["pops_by_context"]
    figures = {
        "pops_per_day": plots.pops_per_day(tables["pops_per_day"], period) if has_pops else None,
        "pops_by_context": (plots.pops_by_context(context_table)
                            if (context_table["minutes"] > 0).any() else None),
        "range_of_motion": (plots.range_of_motion(tables["range_of_motion"], period)
                            if not tables["range_of_motion"].empty else None),
        "pain": (plots.pain_with_pops(diary, tables["days"], period)
                 if not diary.empty else None),
        "timeline": plots.catches_and_falls(timeline, period) if not timeline.empty else None,
    }
    return {
        "subject": subject,
        "first_day": period[0],
        "last_day": period[1] - pd.Timedelta(days=1),
        "generated": datetime.now(UTC),
        "version": __version__,
        "not_a_diagnosis": NOT_A_DIAGNOSIS,
        "flags": _flags(tables["flags"]),
        "evaluated_at": tables["flags"]["evaluated_at"].max() if len(tables["flags"]) else None,
        "sessions": sessions,
        "first_session": sessions["start"].min() if len(sessions) else None,
        "last_session": sessions["start"].max() if len(sessions) else None,
        "recorded_min": float(sessions["duration_s"].sum()) / 60.0,
        "pop_count": len(tables["pops"]),
        "diary": diary,
        "notes": _notes(diary),
        "timeline": timeline,
        "images": {k: plots.data_uri(fig) if fig is not None else None
                   for k, fig in figures.items()},
        "links": {s: session_link(subject, s) for s in sessions["session"] if s in linked},
        "rom_rule": rules["R3"],
        "after_session_h": float(rules["defaults"].get("after_session_h", 6.0)),
    }


def write_subject_report(store: Store, subject: str, out: str | Path | None = None, *,
                         session_reports: bool = False,
                         rules: Mapping[str, Any] | None = None) -> Path:
    """Write the physiotherapist's report on one subject: one self-contained HTML file.

    Parameters
    ----------
    store : Store
    subject : str
        A subject the store holds.
    out : str or Path, optional
        The HTML file; default ``reports/<subject>.html``.
    session_reports : bool
        Also write every session's report (:func:`write_session_report`, which re-analyses
        each session from its folder) to ``<out's folder>/<subject>/<session>.html``. Either
        way the sessions table links to each session report found there.
    rules : mapping, optional
        The rule file's content, for the range-of-motion baseline (rule R3); the flags shown
        are those stored, as ``backpop flags`` shows them.

    Returns
    -------
    Path
        The report written.

    Raises
    ------
    BadInput
        For a subject the store does not hold (or, with ``session_reports``, a session folder
        that is gone).

    Examples
    --------
    >>> from backpop_sense.report import write_subject_report
    >>> from backpop_sense.store import Store
    >>> with Store("backpop.db") as store:  # doctest: +SKIP
    ...     write_subject_report(store, "S02")
    PosixPath('reports/S02.html')
    """
    known_subject(store, subject)
    out = Path(out) if out is not None else default_subject_path(subject)
    if session_reports:
        for session in store.sessions(subject)["session"]:
            write_session_report(store, session, subject=subject,
                                 out=out.parent / session_link(subject, session))
    linked = frozenset(s for s in store.sessions(subject)["session"]
                       if (out.parent / session_link(subject, s)).is_file())
    return write_html("subject.html.j2", out,
                      **_context(store, subject, rules, linked))
