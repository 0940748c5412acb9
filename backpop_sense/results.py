"""The analysis output folder (DESIGN.md): ``pops.csv``, ``events.csv``, ``summary.json``."""

from __future__ import annotations

import json
import platform
from collections import Counter
from pathlib import Path

import pandas as pd

from . import __version__
from .pipeline import SessionResult

POP_COLUMNS = ("t", "level", "kind", "context", "amplitude_db", "snr_db", "centroid_hz",
               "duration_ms", "flexion_deg", "lateral_deg", "twist_deg", "twist_rate_dps")
"""Contract columns of pops.csv, in order; diagnostic columns follow them."""


def pops_frame(result: SessionResult) -> pd.DataFrame:
    """One row per pop, the contract columns first; kind and context are ``unknown`` and the
    angles empty until the motion and correlation stages fill them."""
    rows = [{
        "t": round(p.t, 6), "level": p.level, "kind": "unknown", "context": "unknown",
        "amplitude_db": round(p.amplitude_db, 2), "snr_db": round(p.snr_db, 2),
        "centroid_hz": round(p.centroid_hz, 1), "duration_ms": round(p.duration_ms, 2),
        "flexion_deg": None, "lateral_deg": None, "twist_deg": None, "twist_rate_dps": None,
        "strength": round(p.strength, 2), "spread_db": round(p.spread_db, 2),
    } for p in result.pops]
    return pd.DataFrame(rows, columns=[*POP_COLUMNS, "strength", "spread_db"])


def events_frame(result: SessionResult) -> pd.DataFrame:
    """Catches, falls and data gaps: ``t,type,detail``."""
    rows = [{"t": round(g.t_start, 6), "type": "gap",
             "detail": f"{g.stream}: no samples for {g.t_end - g.t_start:.3f} s"}
            for g in result.gaps]
    return pd.DataFrame(rows, columns=["t", "type", "detail"])


def summary(result: SessionResult) -> dict:
    """Counts, rejections by reason, versions and every parameter used."""
    import librosa
    import numpy as np

    s = result.session
    minutes = s.duration_s / 60.0
    return {
        "subject": s.info.subject, "session": s.info.session,
        "start": s.info.start.isoformat(), "duration_s": s.duration_s,
        "pops": len(result.pops),
        "pops_per_minute": len(result.pops) / minutes if minutes else 0.0,
        "by_level": dict(Counter(p.level for p in result.pops)),
        "rejected_by_reason": dict(Counter(r.reason for r in result.rejected)),
        "gaps": len(result.gaps),
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
    events_frame(result).to_csv(out / "events.csv", index=False)
    (out / "summary.json").write_text(json.dumps(summary(result), indent=2) + "\n",
                                      encoding="utf-8")
    return out
