"""The analysis output folder (docs/formats.md): pops.csv, motion.csv, events.csv, summary.json."""

from __future__ import annotations

import csv
import json
import platform
from collections import Counter
from pathlib import Path
from typing import IO

import librosa
import numpy as np
import pandas as pd
import scipy

from . import __version__
from .motion.evaluate import frames_table
from .motion.tracker import MotionFrame
from .pipeline import (
    DEFAULT_CONFIG,
    OFFLINE_BLOCK,
    PipelineConfig,
    SessionResult,
    analyze,
    open_replay,
)
from .vocab import EVENT_COLUMNS, EXTRA_POP_COLUMNS, MOTION_COLUMNS, POP_COLUMNS


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def pops_frame(result: SessionResult) -> pd.DataFrame:
    """One row per pop, the contract columns first, then why it got its kind.

    Context and angles are the motion at the pop (empty without IMUs).
    """
    rows = []
    for p in result.pops:
        pop = p.pop
        rows.append({
            "t": round(p.t, 6), "level": p.level, "kind": p.kind, "context": p.context,
            "amplitude_db": round(pop.amplitude_db, 2), "snr_db": round(pop.snr_db, 2),
            "centroid_hz": round(pop.centroid_hz, 1), "duration_ms": round(pop.duration_ms, 2),
            "flexion_deg": _r(p.flexion_deg, 2), "lateral_deg": _r(p.lateral_deg, 2),
            "twist_deg": _r(p.twist_deg, 2), "twist_rate_dps": _r(p.twist_rate_dps, 2),
            "kind_rule": p.rule, "end_fraction": _r(p.end_fraction, 3),
            "strength": round(pop.strength, 2), "spread_db": round(pop.spread_db, 2),
        })
    return pd.DataFrame(rows, columns=[*POP_COLUMNS, *EXTRA_POP_COLUMNS])


class MotionCsv:
    """``motion.csv`` written as the frames come, so nothing grows with session length.

    Use as the pipeline's ``frame_sink``; close it (or use ``with``) at the end.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[str] = self.path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file, lineterminator="\n")
        self._writer.writerow(MOTION_COLUMNS)

    def __call__(self, frames: list[MotionFrame]) -> None:
        self._writer.writerows(
            (f"{f.t:.3f}".rstrip("0").rstrip("."), _num(f.flexion_deg), _num(f.lateral_deg),
             _num(f.twist_deg), f.context) for f in frames)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MotionCsv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _num(value: float) -> str:
    return repr(round(value, 2))


def motion_frame(result: SessionResult) -> pd.DataFrame:
    """``motion.csv``: lumbar angles and context at 10 Hz (from frames kept in the result)."""
    return frames_table(result.frames).round(
        {"t": 3, "flexion_deg": 2, "lateral_deg": 2, "twist_deg": 2})


def events_frame(result: SessionResult) -> pd.DataFrame:
    """Catches, falls and data gaps in time order: ``t,type,detail``."""
    rows = [{"t": round(e.t, 3), "type": e.type, "detail": e.detail}
            for e in result.motion_events]
    rows += [{"t": round(g.t_start, 6), "type": "gap",
              "detail": f"{g.stream}: no samples for {g.t_end - g.t_start:.3f} s"}
             for g in result.gaps]
    return pd.DataFrame(sorted(rows, key=lambda r: r["t"]), columns=list(EVENT_COLUMNS))


def versions() -> dict[str, str]:
    """The versions that decide the numbers."""
    return {"backpop-sense": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "scipy": scipy.__version__, "librosa": librosa.__version__,
            "pandas": pd.__version__}


def summary(result: SessionResult) -> dict:
    """Pops (counts by level, kind and context, rates, rate ratio, recurring pops), motion,
    rejections by reason, gaps, versions and every parameter used."""
    s = result.session
    stats = dict(result.pop_statistics)
    return {
        "subject": s.info.subject, "session": s.info.session,
        "start": s.info.start.isoformat(), "duration_s": s.duration_s,
        "pops": stats.pop("count"),
        "pops_per_minute": stats.pop("per_minute"),
        **stats,
        "rejected_by_reason": dict(sorted(Counter(r.reason for r in result.rejected).items())),
        "gaps": len(result.gaps),
        "motion": result.motion_summary,
        "processing": {"wall_s": result.wall_s,
                       "times_real_time": s.duration_s / result.wall_s if result.wall_s else None},
        "versions": versions(),
        "parameters": result.parameters,
    }


def analyze_to(session: str | Path, out: str | Path, config: PipelineConfig = DEFAULT_CONFIG,
               *, block_size: int = OFFLINE_BLOCK) -> SessionResult:
    """Analyse a session (:func:`~backpop_sense.pipeline.analyze`) straight into an output
    folder, motion.csv written as it streams.

    The result's ``frames`` stay empty: memory does not grow with the session's length.
    """
    source = open_replay(session, block_size=block_size)  # a bad session writes nothing
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with MotionCsv(out / "motion.csv") as motion:
        result = analyze(source, config, frame_sink=motion)
    _write_rest(result, out)
    return result


def _write_rest(result: SessionResult, out: Path) -> None:
    pops_frame(result).to_csv(out / "pops.csv", index=False)
    events_frame(result).to_csv(out / "events.csv", index=False)
    (out / "summary.json").write_text(json.dumps(summary(result), indent=2) + "\n",
                                      encoding="utf-8")
