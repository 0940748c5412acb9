"""The analysis output folder (DESIGN.md): pops.csv, motion.csv, events.csv, summary.json."""

from __future__ import annotations

import json
import platform
from collections import Counter
from pathlib import Path

import librosa
import numpy as np
import pandas as pd

from . import __version__
from .motion.evaluate import frames_table
from .pipeline import SessionResult

POP_COLUMNS = ("t", "level", "kind", "context", "amplitude_db", "snr_db", "centroid_hz",
               "duration_ms", "flexion_deg", "lateral_deg", "twist_deg", "twist_rate_dps")
"""Contract columns of pops.csv, in order; diagnostic columns follow them."""


def pops_frame(result: SessionResult) -> pd.DataFrame:
    """One row per pop, the contract columns first.

    Context and angles come from the motion frame nearest the pop (empty without IMUs);
    ``kind`` stays ``unknown`` until pop typing lands.
    """
    rows = []
    for p, f in zip(result.pops, result.pop_frames(), strict=True):
        rows.append({
            "t": round(p.t, 6), "level": p.level, "kind": "unknown",
            "context": f.context if f else "unknown",
            "amplitude_db": round(p.amplitude_db, 2), "snr_db": round(p.snr_db, 2),
            "centroid_hz": round(p.centroid_hz, 1), "duration_ms": round(p.duration_ms, 2),
            "flexion_deg": round(f.flexion_deg, 2) if f else None,
            "lateral_deg": round(f.lateral_deg, 2) if f else None,
            "twist_deg": round(f.twist_deg, 2) if f else None,
            "twist_rate_dps": round(f.twist_rate_dps, 2) if f else None,
            "strength": round(p.strength, 2), "spread_db": round(p.spread_db, 2),
        })
    return pd.DataFrame(rows, columns=[*POP_COLUMNS, "strength", "spread_db"])


def motion_frame(result: SessionResult) -> pd.DataFrame:
    """``motion.csv``: lumbar angles and context at 10 Hz."""
    return frames_table(result.frames).round(
        {"t": 3, "flexion_deg": 2, "lateral_deg": 2, "twist_deg": 2})


def events_frame(result: SessionResult) -> pd.DataFrame:
    """Catches, falls and data gaps in time order: ``t,type,detail``."""
    rows = [{"t": round(e.t, 3), "type": e.type, "detail": e.detail}
            for e in result.motion_events]
    rows += [{"t": round(g.t_start, 6), "type": "gap",
              "detail": f"{g.stream}: no samples for {g.t_end - g.t_start:.3f} s"}
             for g in result.gaps]
    return pd.DataFrame(sorted(rows, key=lambda r: r["t"]), columns=["t", "type", "detail"])


def summary(result: SessionResult) -> dict:
    """Counts, rejections by reason, versions and every parameter used."""
    s = result.session
    minutes = s.duration_s / 60.0
    return {
        "subject": s.info.subject, "session": s.info.session,
        "start": s.info.start.isoformat(), "duration_s": s.duration_s,
        "pops": len(result.pops),
        "pops_per_minute": len(result.pops) / minutes if minutes else 0.0,
        "by_level": dict(Counter(p.level for p in result.pops)),
        "by_context": dict(Counter(f.context for f in result.pop_frames() if f is not None)),
        "rejected_by_reason": dict(Counter(r.reason for r in result.rejected)),
        "gaps": len(result.gaps),
        "motion": result.motion_summary,
        "processing": {"wall_s": result.wall_s,
                       "times_real_time": s.duration_s / result.wall_s if result.wall_s else None},
        "versions": {"backpop-sense": __version__, "python": platform.python_version(),
                     "numpy": np.__version__, "librosa": librosa.__version__,
                     "pandas": pd.__version__},
        "parameters": result.parameters,
    }


def write_outputs(result: SessionResult, out: str | Path) -> Path:
    """Write the output folder; returns its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pops_frame(result).to_csv(out / "pops.csv", index=False)
    motion_frame(result).to_csv(out / "motion.csv", index=False)
    events_frame(result).to_csv(out / "events.csv", index=False)
    (out / "summary.json").write_text(json.dumps(summary(result), indent=2) + "\n",
                                      encoding="utf-8")
    return out
