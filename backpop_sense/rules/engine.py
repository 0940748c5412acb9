"""The red-flag rule engine: R1-R8 of ../shared/background.md over a subject's whole history.

Each rule reads measured evidence (pops with their levels, kinds and angles; range of motion
against the subject's own earlier sessions; catches and falls) and reported evidence (the
diary), with thresholds, severities and reasons from a TOML file (``redflags.toml`` beside
this module by default). A flag carries its evidence (session ids, times, counts, measured
values) and its reason, and says it is not a diagnosis.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import BadInput, cut, shown
from ..vocab import ANGLE_COLUMNS, AXES

if TYPE_CHECKING:
    from ..store import Store

DEFAULT_RULES = Path(__file__).with_name("redflags.toml")
SEVERITIES = ("urgent", "consult", "monitor", "info")
"""Most severe first."""
NOT_A_DIAGNOSIS = ("This is not a diagnosis. It shows what was measured and reported; a "
                   "healthcare professional decides what it means.")
NEURO = ("numbness", "tingling", "weakness")


@dataclass(frozen=True)
class Flag:
    """One raised rule.

    Attributes
    ----------
    rule_id, severity, title, reason : str
    first_seen, last_seen : pandas.Timestamp
        Times (UTC) of the earliest and latest evidence.
    evidence : dict
        What was measured or reported: sessions, times, counts, values (JSON-ready).
    note : str
        Always :data:`NOT_A_DIAGNOSIS`.
    """

    rule_id: str
    severity: str
    title: str
    first_seen: pd.Timestamp
    last_seen: pd.Timestamp
    evidence: dict
    reason: str
    note: str = NOT_A_DIAGNOSIS

    def to_dict(self) -> dict:
        d = asdict(self)
        d["first_seen"] = _iso(self.first_seen)
        d["last_seen"] = _iso(self.last_seen)
        return d


@dataclass
class History:
    """A subject's history as DataFrames (times are UTC timestamps).

    Attributes
    ----------
    sessions : DataFrame
        ``session``, ``start``, ``duration_s``.
    pops : DataFrame
        ``session``, ``time``, ``level``, ``kind``, ``context``, ``flexion_deg``,
        ``lateral_deg``, ``twist_deg``.
    motion : DataFrame
        ``session`` and ``<axis>_p5``, ``<axis>_p95`` per axis (degrees).
    events : DataFrame
        ``session``, ``time``, ``type`` (``catch``, ``fall``, ``gap``), ``detail``.
    diary : DataFrame
        The diary columns (``time``, ``pain``, ..., ``note``).
    """

    sessions: pd.DataFrame
    pops: pd.DataFrame
    motion: pd.DataFrame
    events: pd.DataFrame
    diary: pd.DataFrame
    after_session_h: float = field(default=6.0)

    def session_diary(self) -> dict[str, pd.DataFrame]:
        """The diary entries of each session: from its start to ``after_session_h`` after
        its end."""
        out = {}
        for s in self.sessions.itertuples():
            end = s.start + pd.Timedelta(seconds=s.duration_s + self.after_session_h * 3600)
            out[s.session] = self.diary[(self.diary["time"] >= s.start)
                                        & (self.diary["time"] <= end)]
        return out


@dataclass(frozen=True)
class Field:
    """What a field of a rule file may hold.

    ``kind`` is ``str``, ``int`` (a whole number), ``float`` (any number), ``list`` (of words)
    or ``dict`` (a number per axis); numbers lie from ``low`` to ``high``.
    """

    kind: type
    low: float = 0.0
    high: float = 0.0


FIELDS = {
    "title": Field(str), "reason": Field(str), "severity": Field(str),
    "painful_severity": Field(str), "sharp_words": Field(list),
    "after_session_h": Field(float, 0, 24 * 30),
    "pain_min": Field(float, 0, 10), "sharp_pain_min": Field(float, 0, 10),
    "stiffness_min": Field(float, 0, 10), "trend_min_rise": Field(float, 0, 10),
    "min_fraction": Field(float, 0, 1), "min_share": Field(float, 0, 1),
    "rom_ratio_max": Field(float, 0, 1),
    "sharp_window_min": Field(float, 0, 7 * 24 * 60), "window_s": Field(float, 0, 3600),
    "follow_days": Field(float, 0, 3650), "trend_min_slope_per_week": Field(float, 0, 1000),
    "rate_factor": Field(float, 0, 1000), "angle_tol_deg": Field(float, 0, 180),
    "min_span_deg": Field(dict, 0, 360),
    "min_sessions": Field(int, 1, 10_000), "baseline_sessions": Field(int, 1, 10_000),
    "trend_min_entries": Field(int, 2, 1_000_000), "min_pops": Field(int, 1, 1_000_000),
    "min_pops_after": Field(int, 0, 1_000_000),
}
"""Every field a rule file may hold, by name (a name means the same in every rule). Which
fields each rule has is the default file's: all of them, except in ``[defaults]``, where a
field left out keeps its default."""
MAX_RULES_BYTES = 1 << 20
"""The largest rule file read, bytes (the default one is 5 kB)."""


def load_rules(path: str | Path | None = None) -> dict[str, dict]:
    """Read and check a rule file; returns ``{rule id: parameters}`` (with ``defaults``).

    The file must have the default file's rules and fields, each of the kind and within the
    range :data:`FIELDS` gives; numbers come back as ``float`` or ``int`` as declared there.

    Raises
    ------
    BadInput
        Naming the file and the field (``[R1] pain_min``) or line at fault: a file that is
        missing or not UTF-8 TOML, a rule or field missing or unknown, a value of the wrong
        kind or out of range, an unknown severity.

    Examples
    --------
    >>> from backpop_sense.rules.engine import load_rules
    >>> load_rules()["R1"]["pain_min"]
    4.0
    """
    default = _read_toml(DEFAULT_RULES)
    if path is None:
        return _checked_rules(DEFAULT_RULES, default, default)
    return _checked_rules(Path(path), _read_toml(Path(path)), default)


def _read_toml(path: Path) -> dict:
    if not path.is_file():
        raise BadInput(path, None, "file is missing" if not path.exists() else "is not a file")
    if path.stat().st_size > MAX_RULES_BYTES:
        raise BadInput(path, None, f"{path.stat().st_size} bytes: a rule file is at most "
                       f"{MAX_RULES_BYTES} bytes")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise BadInput(path, None, "not a UTF-8 text file") from None
    except RecursionError:
        raise BadInput(path, None, "not valid TOML: nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib says where as "(at line 3, column 7)"; the line goes where the line goes.
        message, _, at = str(exc).partition(" (at ")
        line = at.split(",")[0] if at.startswith("line ") else None
        col = at.split(", ")[1].rstrip(")") if line and ", " in at else None
        raise BadInput(path, line, f"not valid TOML: {message}"
                       + (f" ({col})" if col else "")) from None


def _checked_rules(path: Path, doc: dict, default: dict) -> dict[str, dict]:
    unknown = [k for k in doc if k not in default]
    if unknown:
        raise BadInput(path, f"[{cut(unknown[0], 30)}]",
                       f"no such rule (the rules are {', '.join(RULES)} and defaults)")
    out = {}
    for table, fields in default.items():
        given = doc.get(table, {})
        if not isinstance(given, dict):
            raise BadInput(path, f"[{table}]", f"must be a table of fields, not {shown(given)}")
        if table != "defaults" and table not in doc:
            raise BadInput(path, f"[{table}]", "rule is missing")
        extra = [k for k in given if k not in fields]
        if extra:
            raise BadInput(path, f"[{table}] {cut(extra[0], 30)}",
                           f"no such field in {table} (it has {', '.join(fields)})")
        checked = {}
        for key, value in fields.items():
            if key not in given and table != "defaults":
                raise BadInput(path, f"[{table}] {key}", "is missing")
            checked[key] = _field(path, f"[{table}] {key}", key, given.get(key, value))
        out[table] = checked
    return out


def _field(path: Path, where: str, key: str, value: object) -> object:
    spec = FIELDS[key]
    if spec.kind is str:
        if not isinstance(value, str) or not value.strip():
            raise BadInput(path, where, f"must be text, not {shown(value)}")
        if "severity" in key and value not in SEVERITIES:
            raise BadInput(path, where, f"{shown(value)} is not one of {', '.join(SEVERITIES)}")
        return value
    if spec.kind is list:
        if not isinstance(value, list) or not all(isinstance(w, str) and w.strip()
                                                  for w in value):
            raise BadInput(path, where, f"must be a list of words, not {shown(value)}")
        return value
    if spec.kind is dict:
        if not isinstance(value, dict) or set(value) != set(AXES):
            raise BadInput(path, where, f"must give a number for each of {', '.join(AXES)}, "
                           f"not {shown(value)}")
        return {axis: _number(path, f"{where}.{axis}", value[axis], Field(float, spec.low,
                                                                         spec.high))
                for axis in AXES}
    return _number(path, where, value, spec)


def _number(path: Path, where: str, value: object, spec: Field) -> float | int:
    whole = spec.kind is int
    if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
        raise BadInput(path, where, f"must be {'a whole number' if whole else 'a number'}, "
                       f"not {shown(value)}")
    if not spec.low <= value <= spec.high:  # NaN fails this too
        raise BadInput(path, where, f"{shown(value)} is outside {spec.low:g}-{spec.high:g}")
    return value if whole else float(value)


def evaluate(history: History, rules: dict[str, dict] | None = None) -> list[Flag]:
    """Every rule over the history; the flags raised, most severe first.

    Parameters
    ----------
    history : History
    rules : dict, optional
        From :func:`load_rules` (the default file when None).
    """
    rules = rules or load_rules()
    history.after_session_h = float(rules["defaults"].get("after_session_h", 6.0))
    flags = []
    for rule_id, fn in RULES.items():
        params = rules[rule_id]
        try:
            flag = fn(history, params)
        except KeyError as exc:
            raise BadInput(DEFAULT_RULES.name, f"[{rule_id}]",
                           f"missing threshold {exc.args[0]!r}") from None
        if flag is not None:
            flags.append(flag)
    return sorted(flags, key=lambda f: (SEVERITIES.index(f.severity), f.rule_id))


# ---------------------------------------------------------------------------- rules


def _flag(rule_id: str, p: dict, times: list[pd.Timestamp], evidence: dict,
          severity: str | None = None) -> Flag:
    return Flag(rule_id, severity or p["severity"], p["title"], min(times), max(times),
                evidence, p["reason"])


def r1_pain_with_pops(h: History, p: dict) -> Flag | None:
    """Pain at or after pops in at least ``min_sessions`` sessions with pops, and in at
    least ``min_fraction`` of them."""
    popping = sorted(set(h.pops["session"]))
    if not popping:
        return None
    by_session = h.session_diary()
    painful = []
    for s in popping:
        pain = by_session[s]["pain"]
        if (pain >= p["pain_min"]).any():
            painful.append({"session": s, "max_pain": float(pain.max()),
                            "pops": int((h.pops["session"] == s).sum())})
    if len(painful) < p["min_sessions"] or len(painful) / len(popping) < p["min_fraction"]:
        return None
    times = [h.pops.loc[h.pops["session"] == r["session"], "time"].min() for r in painful]
    return _flag("R1", p, times, {"sessions_with_pops": len(popping),
                                  "sessions_with_pops_and_pain": len(painful),
                                  "pain_min": p["pain_min"], "sessions": painful})


def r2_sharp_or_rising_pain(h: History, p: dict) -> Flag | None:
    """Pain of ``sharp_pain_min`` or more, or described as sharp, within ``sharp_window_min``
    after a pop; or a diary pain trend rising by ``trend_min_slope_per_week`` with a rise of
    ``trend_min_rise`` while the subject has pops."""
    evidence: dict = {}
    times = []
    if len(h.pops):
        pop_times = np.sort(h.pops["time"].to_numpy())
        d = h.diary
        k = np.searchsorted(pop_times, d["time"].to_numpy(), side="right") - 1
        since = np.full(len(d), np.inf)
        ok = k >= 0
        since[ok] = (d["time"].to_numpy()[ok] - pop_times[k[ok]]) / np.timedelta64(1, "m")
        words = d["note"].fillna("").str.lower().str.contains(
            "|".join(re.escape(w.lower()) for w in p["sharp_words"])) if p["sharp_words"] \
            else pd.Series(False, index=d.index)
        sharp = d[(since <= p["sharp_window_min"])
                  & ((d["pain"] >= p["sharp_pain_min"]) | words).to_numpy()]
        if len(sharp):
            evidence["after_pops"] = [{"time": _iso(r.time), "pain": float(r.pain),
                                       "note": str(r.note)} for r in sharp.itertuples()]
            times += list(sharp["time"])
    d = h.diary.dropna(subset=["pain"])
    if len(h.pops) and len(d) >= p["trend_min_entries"]:
        from scipy import stats  # here: scipy.stats takes a second to import


        weeks = (d["time"] - d["time"].min()) / pd.Timedelta(weeks=1)
        fit = stats.theilslopes(d["pain"].to_numpy(float), weeks.to_numpy(float))
        rise = fit.slope * float(weeks.max())
        if fit.slope >= p["trend_min_slope_per_week"] and rise >= p["trend_min_rise"]:
            evidence["trend"] = {"slope_per_week": round(float(fit.slope), 2),
                                 "rise": round(float(rise), 1), "entries": len(d),
                                 "from": _iso(d["time"].min()), "to": _iso(d["time"].max())}
            times += [d["time"].min(), d["time"].max()]
    return _flag("R2", p, times, evidence) if evidence else None


def r3_stiffness_with_pops(h: History, p: dict) -> Flag | None:
    """In a session with pops: an axis's range (5th-95th percentile) below ``rom_ratio_max``
    of the median of up to ``baseline_sessions`` earlier sessions where that axis moved, or
    stiffness of ``stiffness_min`` or more reported."""
    sessions = h.sessions.sort_values("start")
    motion = h.motion.set_index("session")
    popping = set(h.pops["session"])
    diary = h.session_diary()
    restricted, stiff, times = [], [], []
    earlier: dict[str, list[float]] = {a: [] for a in AXES}
    for s in sessions.itertuples():
        for axis in AXES:
            if s.session not in motion.index:
                continue
            span = float(motion.loc[s.session, f"{axis}_p95"] - motion.loc[s.session,
                                                                        f"{axis}_p5"])
            if not np.isfinite(span) or span < p["min_span_deg"][axis]:
                continue
            base = earlier[axis][:p["baseline_sessions"]]
            if base and s.session in popping and span < p["rom_ratio_max"] * np.median(base):
                restricted.append({"session": s.session, "axis": axis,
                                   "range_deg": round(span, 1),
                                   "baseline_deg": round(float(np.median(base)), 1),
                                   "ratio": round(span / float(np.median(base)), 2)})
                times.append(s.start)
            earlier[axis].append(span)
        entries = diary[s.session]
        if s.session in popping and (entries["stiffness"] >= p["stiffness_min"]).any():
            stiff.append({"session": s.session,
                          "max_stiffness": float(entries["stiffness"].max())})
            times.append(s.start)
    if not restricted and not stiff:
        return None
    return _flag("R3", p, times, {"restricted_range": restricted, "reported_stiffness": stiff,
                                  "rom_ratio_max": p["rom_ratio_max"]})


def r4_catch_with_pop(h: History, p: dict) -> Flag | None:
    """A measured catch with a pop within ``window_s`` of it, in the same session."""
    catches = h.events[h.events["type"] == "catch"]
    found = []
    for c in catches.itertuples():
        near = h.pops[(h.pops["session"] == c.session)
                      & ((h.pops["time"] - c.time).abs() <= pd.Timedelta(seconds=p["window_s"]))]
        if len(near):
            found.append({"session": c.session, "time": _iso(c.time), "catch": c.detail,
                          "pops": [{"level": r.level, "kind": r.kind,
                                    "seconds_from_catch": round(
                                        (r.time - c.time).total_seconds(), 2)}
                                   for r in near.itertuples()]})
    if not found:
        return None
    return _flag("R4", p, [pd.Timestamp(f["time"]) for f in found],
                 {"catches_with_pops": len(found), "catches": len(catches), "events": found})


def r5_neurological(h: History, p: dict) -> Flag | None:
    """Any diary entry with numbness, tingling or weakness, whatever else is there."""
    d = h.diary
    hits = d[(d[list(NEURO)] == 1).any(axis=1)]
    if not len(hits):
        return None
    entries = [{"time": _iso(r.time), "symptoms": [s for s in NEURO if getattr(r, s) == 1],
                "note": str(r.note)} for r in hits.itertuples()]
    return _flag("R5", p, list(hits["time"]), {"entries": entries, "count": len(entries)})


def r6_swelling(h: History, p: dict) -> Flag | None:
    """Any diary entry with swelling or bruising."""
    d = h.diary
    hits = d[(d[["swelling", "bruising"]] == 1).any(axis=1)]
    if not len(hits):
        return None
    entries = [{"time": _iso(r.time),
                "symptoms": [s for s in ("swelling", "bruising") if getattr(r, s) == 1],
                "note": str(r.note)} for r in hits.itertuples()]
    return _flag("R6", p, list(hits["time"]), {"entries": entries, "count": len(entries)})


def r7_same_spot(h: History, p: dict) -> Flag | None:
    """A level with ``min_pops`` pops over ``min_sessions`` sessions that holds ``min_share``
    of all pops, or whose pops mostly come at one posture; ``painful_severity`` with pain."""
    pops = h.pops
    if not len(pops):
        return None
    diary = h.session_diary()
    spots = []
    for level, group in pops.groupby("level"):
        sessions = sorted(set(group["session"]))
        if len(group) < p["min_pops"] or len(sessions) < p["min_sessions"]:
            continue
        share = len(group) / len(pops)
        angles = group[list(ANGLE_COLUMNS)].dropna().to_numpy(float)
        at_posture = 0
        if len(angles):
            posture = np.median(angles, axis=0)
            at_posture = int((np.abs(angles - posture).max(axis=1) <= p["angle_tol_deg"]).sum())
        if share < p["min_share"] and at_posture < p["min_pops"]:
            continue
        pain = max((float(diary[s]["pain"].max()) for s in sessions if len(diary[s])),
                   default=0.0)
        spot = {"level": str(level), "pops": len(group), "sessions": sessions,
                "share": round(share, 2), "pops_at_one_posture": at_posture,
                "max_pain_in_those_sessions": pain, "painful": pain >= p["pain_min"]}
        if len(angles):
            spot["posture_deg"] = dict(zip(AXES, np.round(np.median(angles, axis=0), 1)
                                           .tolist(), strict=True))
        spots.append((spot, group["time"]))
    if not spots:
        return None
    painful = any(s["painful"] for s, _ in spots)
    times = [t for _, g in spots for t in (g.min(), g.max())]
    return _flag("R7", p, times, {"spots": [s for s, _ in spots]},
                 p.get("painful_severity", p["severity"]) if painful else None)


def r8_after_trauma(h: History, p: dict) -> Flag | None:
    """After a measured fall or reported trauma: pops within ``follow_days`` at a rate
    ``rate_factor`` above the earlier rate, or at a level that had not popped before."""
    traumas = [(t, "fall measured: " + str(d)) for t, d in
               h.events.loc[h.events["type"] == "fall", ["time", "detail"]].itertuples(
                   index=False)]
    traumas += [(t, "trauma reported: " + str(n)) for t, n in
                h.diary.loc[h.diary["trauma"] == 1, ["time", "note"]].itertuples(index=False)]
    found = []
    for when, what in sorted(traumas, key=lambda x: x[0]):
        end = when + pd.Timedelta(days=p["follow_days"])
        before = h.pops[h.pops["time"] < when]
        after = h.pops[(h.pops["time"] >= when) & (h.pops["time"] <= end)]
        if len(after) < p["min_pops_after"]:
            continue
        min_before, min_after = _recorded_minutes(h.sessions, when, end)
        rate_before = len(before) / min_before if min_before > 0 else 0.0
        rate_after = len(after) / min_after if min_after > 0 else 0.0
        new_levels = sorted(set(after["level"]) - set(before["level"]))
        if rate_after > p["rate_factor"] * rate_before or new_levels:
            found.append({"trauma": what, "time": _iso(when), "pops_before": len(before),
                          "pops_after": len(after),
                          "rate_before_per_min": round(rate_before, 2),
                          "rate_after_per_min": round(rate_after, 2),
                          "new_levels": new_levels,
                          "sessions_after": sorted(set(after["session"]))})
    if not found:
        return None
    times = [pd.Timestamp(f["time"]) for f in found]
    return _flag("R8", p, times, {"traumas": found})


def _recorded_minutes(sessions: pd.DataFrame, when: pd.Timestamp, end: pd.Timestamp
                      ) -> tuple[float, float]:
    """Minutes recorded before ``when``, and between ``when`` and ``end``."""
    before = after = 0.0
    for s in sessions.itertuples():
        s0, s1 = s.start, s.start + pd.Timedelta(seconds=s.duration_s)
        before += max(0.0, (min(s1, when) - s0).total_seconds())
        after += max(0.0, (min(s1, end) - max(s0, when)).total_seconds())
    return before / 60.0, after / 60.0


def _iso(t: pd.Timestamp) -> str:
    return pd.Timestamp(t).tz_convert("UTC").isoformat().replace("+00:00", "Z")


RULES: dict[str, Callable[[History, dict], Flag | None]] = {
    "R1": r1_pain_with_pops, "R2": r2_sharp_or_rising_pain, "R3": r3_stiffness_with_pops,
    "R4": r4_catch_with_pop, "R5": r5_neurological, "R6": r6_swelling, "R7": r7_same_spot,
    "R8": r8_after_trauma,
}


def history_from_store(store: Store, subject: str) -> History:
    """A subject's whole history out of the store.

    The same report may reach the diary twice (a session's symptoms.csv and a later import):
    entries identical in time and content count once.
    """
    diary = store.diary(subject)
    diary = diary.drop_duplicates(subset=[c for c in diary.columns if c != "source"])
    return History(sessions=store.sessions(subject), pops=store.pops(subject),
                   motion=store.motion(subject), events=store.events(subject),
                   diary=diary.reset_index(drop=True))


def refresh_flags(store: Store, subject: str, rules: dict[str, dict] | None = None
                  ) -> list[Flag]:
    """Re-evaluate every rule over the subject's history and store the flags (replacing the
    old ones in one transaction); returns them, most severe first."""
    flags = evaluate(history_from_store(store, subject), rules)
    store.replace_flags(subject, [f.to_dict() for f in flags])
    return flags
