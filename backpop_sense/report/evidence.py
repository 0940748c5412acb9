"""A red flag's evidence in plain words, for the physiotherapist's report.

Each rule (R1-R8, ``rules/engine.py``) stores its evidence as a JSON-ready dict; here each
becomes one summary sentence and a list of detail lines (one per session, entry or event).
The words are plain text: the template escapes them, diary notes included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

MAX_DETAILS = 12
"""Detail lines shown per flag; the rest are counted (and all are in the export)."""
AXIS_NAMES = {"flexion": "flexion", "lateral": "side bend", "twist": "twist"}
"""The spine's axes in the physiotherapist's words."""


@dataclass(frozen=True)
class Evidence:
    """A flag's evidence in words.

    Attributes
    ----------
    summary : str
        One sentence: what was measured or reported, how often, when.
    details : list of str
        The items behind it, at most :data:`MAX_DETAILS`.
    more : int
        Items left out of ``details``.
    """

    summary: str
    details: list[str]
    more: int = 0


def when(value: Any, *, clock: bool = True) -> str:
    """A UTC time as ``17 Nov 2026 20:30`` (``17 Nov 2026`` without ``clock``); empty for a
    missing time.

    Examples
    --------
    >>> from backpop_sense.report.evidence import when
    >>> when("2026-11-17T20:30:00Z"), when("2026-11-07T20:30:00Z", clock=False)
    ('17 Nov 2026 20:30', '7 Nov 2026')
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    text = pd.Timestamp(value).tz_convert("UTC").strftime("%d %b %Y %H:%M" if clock
                                                          else "%d %b %Y")
    return text.removeprefix("0")


def _day(value: Any) -> str:
    return when(value, clock=False)


def _sentence(parts: list[str]) -> str:
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "."


def _quote(note: str) -> str:
    return f": \u201c{note}\u201d" if note else ""


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _score(value: float) -> str:
    return f"{value:.0f}/10" if float(value).is_integer() else f"{value:.1f}/10"


def _r1(e: dict) -> tuple[str, list[str]]:
    summary = (f"Pain of {_score(e['pain_min'])} or more was reported with popping in "
               f"{e['sessions_with_pops_and_pain']} of the "
               f"{_plural(e['sessions_with_pops'], 'session')} that had pops.")
    return summary, [f"Session {s['session']}: {_plural(s['pops'], 'pop')}, pain up to "
                     f"{_score(s['max_pain'])}" for s in e["sessions"]]


def _r2(e: dict) -> tuple[str, list[str]]:
    parts, details = [], []
    after = e.get("after_pops", [])
    if after:
        parts.append(f"sharp or severe pain was reported soon after a pop "
                     f"{_plural(len(after), 'time')} ({_day(after[0]['time'])} to "
                     f"{_day(after[-1]['time'])})")
        details += [f"{when(a['time'])}: pain {_score(a['pain'])}{_quote(a['note'])}"
                    for a in after]
    trend = e.get("trend")
    if trend:
        parts.append(f"diary pain rose by {trend['rise']:g} points "
                     f"({trend['slope_per_week']:g} per week) from {_day(trend['from'])} "
                     f"to {_day(trend['to'])}, over {trend['entries']} entries")
        details.insert(0, f"Pain trend: +{trend['slope_per_week']:g} points per week "
                          f"(Theil-Sen slope over {trend['entries']} diary entries)")
    return _sentence(parts), details


def _r3(e: dict) -> tuple[str, list[str]]:
    restricted, stiff = e.get("restricted_range", []), e.get("reported_stiffness", [])
    parts, details = [], []
    if restricted:
        parts.append(f"range of motion below {e['rom_ratio_max']:.0%} of the subject's own "
                     f"baseline in {_plural(len({r['session'] for r in restricted}), 'session')}"
                     " with pops")
        details += [f"Session {r['session']}: {AXIS_NAMES[r['axis']]} range "
                    f"{r['range_deg']:g}\u00b0, {r['ratio']:.0%} of the baseline "
                    f"{r['baseline_deg']:g}\u00b0" for r in restricted]
    if stiff:
        parts.append(f"stiffness reported in {_plural(len(stiff), 'session')} with pops "
                     f"(up to {_score(max(s['max_stiffness'] for s in stiff))})")
        details += [f"Session {s['session']}: stiffness up to {_score(s['max_stiffness'])}"
                    for s in stiff]
    return _sentence(parts), details


def _r4(e: dict) -> tuple[str, list[str]]:
    catches = _plural(e["catches"], "measured catch", "measured catches")
    summary = (f"{e['catches_with_pops']} of {catches} (movement suddenly arrested) came with "
               "a pop at the same moment.")
    details = []
    for c in e["events"]:
        pops = ", ".join(f"{p['level']} ({p['kind']}) {p['seconds_from_catch']:+g} s"
                         for p in c["pops"])
        details.append(f"{when(c['time'])}, session {c['session']}: {c['catch']}; pops: {pops}")
    return summary, details


def _symptoms(e: dict) -> tuple[str, list[str]]:
    """R5 and R6: diary entries reporting symptoms."""
    entries = e["entries"]
    symptoms = sorted({s for entry in entries for s in entry["symptoms"]})
    summary = _sentence([f"{' and '.join(symptoms)} reported in the diary "
                         f"{_plural(len(entries), 'time')}, last on "
                         f"{when(entries[-1]['time'])}"])
    return summary, [f"{when(x['time'])}: {', '.join(x['symptoms'])}{_quote(x['note'])}"
                     for x in entries]


def _r7(e: dict) -> tuple[str, list[str]]:
    spots = e["spots"]
    summary = _sentence([
        f"{s['pops']} pops at {s['level']} over {_plural(len(s['sessions']), 'session')} "
        f"({s['share']:.0%} of all pops)" + (", with pain" if s["painful"] else "")
        for s in spots])
    details = []
    for s in spots:
        posture = s.get("posture_deg")
        at = (f", {s['pops_at_one_posture']} of them at one posture (flexion "
              f"{posture['flexion']:g}\u00b0, side bend {posture['lateral']:g}\u00b0, twist "
              f"{posture['twist']:g}\u00b0)" if posture else "")
        details.append(f"{s['level']}: sessions {', '.join(s['sessions'])}{at}; pain up to "
                       f"{_score(s['max_pain_in_those_sessions'])} in those sessions")
    return summary, details


def _r8(e: dict) -> tuple[str, list[str]]:
    traumas = e["traumas"]
    first = traumas[0]
    what = _plural(len(traumas), "fall or trauma", "falls or traumas")
    summary = (f"Popping changed after {what} (first on {when(first['time'])}): "
               f"{first['pops_after']} pops after it against {first['pops_before']} before")
    if first["new_levels"]:
        summary += f", new at {', '.join(first['new_levels'])}"
    details = [f"{when(t['time'])}, {t['trauma']}: {t['rate_after_per_min']:g} pops per "
               f"recorded minute after against {t['rate_before_per_min']:g} before"
               + (f"; new level {', '.join(t['new_levels'])}" if t["new_levels"] else "")
               for t in traumas]
    return summary + ".", details


_RULES: dict[str, Callable[[dict], tuple[str, list[str]]]] = {
    "R1": _r1, "R2": _r2, "R3": _r3, "R4": _r4, "R5": _symptoms, "R6": _symptoms, "R7": _r7,
    "R8": _r8}


def describe(rule_id: str, evidence: dict) -> Evidence:
    """A flag's evidence as a summary sentence and detail lines.

    Parameters
    ----------
    rule_id : str
        ``R1`` ... ``R8``.
    evidence : dict
        As the rule stored it (``Flag.evidence``).

    Examples
    --------
    >>> from backpop_sense.report.evidence import describe
    >>> describe("R5", {"entries": [{"time": "2026-11-17T20:30:00Z",
    ...     "symptoms": ["tingling"], "note": "left leg"}], "count": 1}).summary
    'Tingling reported in the diary 1 time, last on 17 Nov 2026 20:30.'
    """
    summary, details = _RULES[rule_id](evidence)
    return Evidence(summary, details[:MAX_DETAILS], max(0, len(details) - MAX_DETAILS))
