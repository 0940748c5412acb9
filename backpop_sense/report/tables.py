"""The tables behind the subject report: what the store holds about a subject, and what each
plot of the report shows, computed once so that the report and ``backpop export`` agree.

Times are pandas UTC timestamps; days are UTC calendar days; angles in degrees; durations in
seconds or minutes as the column name says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import BadInput
from ..rules import history_from_store, load_rules
from ..vocab import AXES, CONTEXTS, check_subject

if TYPE_CHECKING:
    from ..store import Store

TABLES = ("sessions", "pops", "motion", "events", "diary", "flags", "days", "pops_per_day",
          "pops_by_context", "range_of_motion")
"""Every table :func:`subject_tables` returns, in this order."""
EVENT_COLUMNS = {"catches": "catch", "falls": "fall", "gaps": "gap"}
"""Columns of the sessions table counting each event type."""


def known_subject(store: Store, subject: str) -> str:
    """``subject`` if it is a valid pseudonym the store holds, else :class:`BadInput`."""
    check_subject(subject)
    if not store.has_subject(subject):
        raise BadInput(store.path, f"subject {subject}", "no such subject in the store")
    return subject


def subject_tables(store: Store, subject: str, rules: Mapping[str, Any] | None = None
                   ) -> dict[str, pd.DataFrame]:
    """Every table behind a subject's report.

    Parameters
    ----------
    store : Store
    subject : str
        A subject the store holds.
    rules : mapping, optional
        A rule file's content (:func:`backpop_sense.rules.load_rules`); the range-of-motion
        baseline follows its rule R3 (the default file when None).

    Returns
    -------
    dict of str to DataFrame
        Keyed by :data:`TABLES`: the store's ``sessions`` (summary figures as columns, the
        whole summary.json as a dict in ``summary``), ``pops``, ``motion``, ``events``,
        ``diary`` (an entry stored twice, from a session and an import, once) and ``flags``
        (``evidence`` as a dict); then ``days`` (sessions, minutes recorded and pops per
        UTC day), ``pops_per_day`` (``date``, ``level``, ``kind``, ``pops``),
        ``pops_by_context`` (pops, minutes spent and pops per minute in each motion context,
        over all sessions) and ``range_of_motion`` (per session and axis: the 5th-95th
        percentile range against the subject's own baseline, degrees).

    Raises
    ------
    BadInput
        For a subject the store does not hold.
    """
    known_subject(store, subject)
    rules = rules or load_rules()
    history = history_from_store(store, subject)
    history.after_session_h = float(rules["defaults"].get("after_session_h", 6.0))
    sessions, pops, motion = history.sessions, history.pops, history.motion
    events = history.events
    by_session = history.session_diary()
    return {
        "sessions": _sessions(sessions, pops, motion, events, by_session),
        "pops": pops,
        "motion": motion,
        "events": events,
        "diary": history.diary,
        "flags": store.flags(subject),
        "days": _days(sessions, pops),
        "pops_per_day": _pops_per_day(pops),
        "pops_by_context": _pops_by_context(pops, motion),
        "range_of_motion": _range_of_motion(sessions, motion, rules["R3"]),
    }


def _sessions(sessions: pd.DataFrame, pops: pd.DataFrame, motion: pd.DataFrame,
              events: pd.DataFrame, diary: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    counts = pops.groupby("session").size()
    kinds = events.groupby(["session", "type"]).size()
    ranges = motion.set_index("session")
    rows = []
    for s in sessions.itertuples():
        n = int(counts.get(s.session, 0))
        entries = diary[s.session]
        row = {"subject": s.subject, "session": s.session, "start": s.start,
               "duration_s": s.duration_s, "pops": n,
               "pops_per_minute": n / (s.duration_s / 60.0) if s.duration_s > 0 else np.nan}
        for column, kind in EVENT_COLUMNS.items():
            row[column] = int(kinds.get((s.session, kind), 0))
        for axis in AXES:
            row[f"{axis}_range_deg"] = (
                ranges.at[s.session, f"{axis}_p95"] - ranges.at[s.session, f"{axis}_p5"]
                if s.session in ranges.index else np.nan)
        row["max_pain"] = entries["pain"].max() if len(entries) else np.nan
        row["max_stiffness"] = entries["stiffness"].max() if len(entries) else np.nan
        row.update(analysis_version=s.analysis_version, input_sha256=s.input_sha256,
                   source_path=s.source_path, summary=s.summary)
        rows.append(row)
    columns = ["subject", "session", "start", "duration_s", "pops", "pops_per_minute",
               "catches", "falls", "gaps", *(f"{a}_range_deg" for a in AXES), "max_pain",
               "max_stiffness", "analysis_version", "input_sha256", "source_path", "summary"]
    return pd.DataFrame(rows, columns=columns)


def _day(times: pd.Series) -> pd.Series:
    return times.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()


def _days(sessions: pd.DataFrame, pops: pd.DataFrame) -> pd.DataFrame:
    per_session = sessions.assign(date=_day(sessions["start"]))
    days = per_session.groupby("date").agg(sessions=("session", "size"),
                                           recorded_min=("duration_s", "sum"))
    days["recorded_min"] /= 60.0
    days["pops"] = pops.groupby(_day(pops["time"])).size().reindex(days.index, fill_value=0)
    return days.reset_index()


def _pops_per_day(pops: pd.DataFrame) -> pd.DataFrame:
    counts = pops.assign(date=_day(pops["time"])).groupby(["date", "level", "kind"]).size()
    return counts.rename("pops").reset_index()


def _pops_by_context(pops: pd.DataFrame, motion: pd.DataFrame) -> pd.DataFrame:
    seconds: dict[str, float] = {}
    for spent in motion["context_s"]:
        for context, s in spent.items():
            seconds[context] = seconds.get(context, 0.0) + float(s)
    counts = pops.groupby("context").size()
    # "unknown" is a pop with no motion data: it has a count but no time spent in it.
    contexts = [*CONTEXTS, *sorted(set(counts.index) - set(CONTEXTS))]
    rows = []
    for context in contexts:
        minutes = seconds.get(context, 0.0) / 60.0
        n = int(counts.get(context, 0))
        if n or minutes:
            rows.append({"context": context, "pops": n, "minutes": minutes,
                         "pops_per_minute": n / minutes if minutes > 0 else np.nan})
    return pd.DataFrame(rows, columns=["context", "pops", "minutes", "pops_per_minute"])


def _range_of_motion(sessions: pd.DataFrame, motion: pd.DataFrame, r3: Mapping[str, Any]
                     ) -> pd.DataFrame:
    """The range of each axis per session against the baseline rule R3 judges it by: the
    median range of up to ``baseline_sessions`` earlier sessions where that axis moved at
    least ``min_span_deg``; below ``rom_ratio_max`` of it is restricted."""
    ranges = motion.set_index("session")
    earlier: dict[str, list[float]] = {a: [] for a in AXES}
    rows = []
    for s in sessions.sort_values("start").itertuples():
        if s.session not in ranges.index:
            continue
        for axis in AXES:
            p5, p95 = ranges.at[s.session, f"{axis}_p5"], ranges.at[s.session, f"{axis}_p95"]
            span = float(p95 - p5)
            base = earlier[axis][:r3["baseline_sessions"]]
            baseline = float(np.median(base)) if base else np.nan
            judged = bool(np.isfinite(span) and span >= r3["min_span_deg"][axis])
            rows.append({"session": s.session, "start": s.start, "axis": axis, "p5_deg": p5,
                         "p95_deg": p95, "range_deg": span, "baseline_deg": baseline,
                         "restricted_below_deg": r3["rom_ratio_max"] * baseline,
                         "restricted": judged and span < r3["rom_ratio_max"] * baseline})
            if judged:
                earlier[axis].append(span)
    return pd.DataFrame(rows, columns=["session", "start", "axis", "p5_deg", "p95_deg",
                                       "range_deg", "baseline_deg", "restricted_below_deg",
                                       "restricted"])
