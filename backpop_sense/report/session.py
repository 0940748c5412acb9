"""The researcher's report on one session: what was found, and everything needed to find it
again.

The session is re-analysed from its folder (the store keeps counts, not angle traces or
audio): angle traces with pops marked by kind, waveform and spectrogram around a sample of
pops, counts and rates with exact confidence intervals, every detector and motion parameter,
package versions, and the checksum of every input file against the one stored at ingest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import soundfile as sf

from .. import __version__
from ..errors import BadInput
from ..levels import level_index
from ..rules import NOT_A_DIAGNOSIS
from ..store import analysis_version, input_checksum
from . import plots
from .render import write_html
from .tables import known_subject

if TYPE_CHECKING:
    from ..correlate import PopInContext
    from ..pipeline import SessionResult
    from ..store import Store

REPORT_DIR = Path("reports")
SNIPPET_S = (-0.05, 0.15)
"""Audio shown around each sampled pop: from 50 ms before its onset to 150 ms after."""
SNIPPET_POPS = 6
"""Pops whose audio is shown, spread over the session and over the kinds found."""
MAX_POP_ROWS = 1000
"""Pops listed in the table; the rest are in ``backpop analyze``'s pops.csv."""


def session_link(subject: str, session: str) -> str:
    """A session report's path relative to its subject's report: ``<subject>/<session>.html``.
    """
    return f"{subject}/{session}.html"


def default_session_path(subject: str, session: str) -> Path:
    """Where a session's report goes by default: ``reports/<subject>/<session>.html``."""
    return REPORT_DIR / session_link(subject, session)


def poisson_rate(count: int, exposure: float, confidence: float = 0.95
                 ) -> tuple[float | None, float | None, float | None]:
    """A rate with its exact (Garwood) confidence interval.

    Parameters
    ----------
    count : int
        Events.
    exposure : float
        Time at risk (minutes gives a rate per minute).
    confidence : float

    Returns
    -------
    rate, low, high : float or None
        Events per unit of exposure; all None without exposure.

    Examples
    --------
    >>> from backpop_sense.report.session import poisson_rate
    >>> [round(x, 3) for x in poisson_rate(3, 2.0)]
    [1.5, 0.309, 4.384]
    """
    # Imported here: the subject report imports this module but needs no scipy.stats.
    from scipy import stats

    if exposure <= 0:
        return None, None, None
    alpha = 1.0 - confidence
    low = stats.chi2.ppf(alpha / 2, 2 * count) / 2 if count > 0 else 0.0
    high = stats.chi2.ppf(1 - alpha / 2, 2 * count + 2) / 2
    return count / exposure, float(low) / exposure, float(high) / exposure


def _find(store: Store, session: str, subject: str | None) -> pd.Series:
    """The stored row of ``session`` (of ``subject`` when given)."""
    rows = store.sessions(known_subject(store, subject) if subject is not None else None)
    rows = rows[rows["session"] == session]
    if rows.empty:
        where = f"session {session}" + (f" of subject {subject}" if subject else "")
        raise BadInput(store.path, where, "no such session in the store")
    if len(rows) > 1:
        raise BadInput(store.path, f"session {session}", "held for several subjects ("
                       f"{', '.join(rows['subject'])}): name the subject too")
    return rows.iloc[0]


def _rates(counts: Mapping[str, int], minutes: Mapping[str, float]) -> list[dict[str, Any]]:
    """Each count per minute of its exposure (``minutes[name]``, none: no rate)."""
    rows = []
    for name, n in counts.items():
        exposure = minutes.get(name, 0.0)
        rate, low, high = poisson_rate(n, exposure)
        rows.append({"name": name, "count": n, "minutes": exposure, "rate": rate, "low": low,
                     "high": high})
    return rows


def _sample(pops: Sequence[PopInContext], n: int) -> list[PopInContext]:
    """Up to ``n`` pops in time order: the slots shared out between the kinds in turn, and
    each kind's pops taken evenly spread over the session."""
    by_kind: dict[str, list[PopInContext]] = {}
    for p in pops:
        by_kind.setdefault(p.kind, []).append(p)
    quota = dict.fromkeys(by_kind, 0)
    while sum(quota.values()) < min(n, len(pops)):
        for kind, group in by_kind.items():
            if quota[kind] < len(group) and sum(quota.values()) < n:
                quota[kind] += 1
    picked = []
    for kind, group in by_kind.items():
        # The middle of each of quota[kind] equal stretches of the kind's pops.
        index = ((np.arange(quota[kind]) + 0.5) * len(group) / quota[kind]).astype(int)
        picked += [group[i] for i in index]
    return sorted(picked, key=lambda p: p.t)


def _snippets(result: SessionResult) -> list[plots.Snippet]:
    """Audio around sampled pops, each from the mic nearest the pop's level; read from the
    file one snippet at a time, so memory does not grow with the session."""
    session = result.session
    if session.audio is None:  # an IMU-only session: no sound to show
        return []
    sr, frames = session.audio.sr, session.audio.frames
    mics = [level_index(m) for m in session.info.mic_names]
    out = []
    for p in _sample(result.pops, SNIPPET_POPS):
        channel = int(np.argmin([abs(m - level_index(p.level)) for m in mics]))
        onset = round((p.t - session.info.audio_offset_s) * sr)
        start = max(0, onset + round(SNIPPET_S[0] * sr))
        stop = min(frames, onset + round(SNIPPET_S[1] * sr))
        audio, _ = sf.read(str(session.path / "mic.wav"), start=start, stop=stop,
                           dtype="float32", always_2d=True)
        out.append(plots.Snippet(
            f"{p.t:.2f} s, {p.level} ({session.info.mic_names[channel]} mic), {p.kind}",
            audio[:, channel], sr, (start - onset) / sr))
    return out


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested parameters as ``(dotted name, value)`` rows."""
    rows = []
    for key, value in tree.items():
        if isinstance(value, Mapping):
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", json.dumps(value, default=str)))
    return rows


def _files(folder: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        with path.open("rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        rows.append({"name": path.name, "bytes": path.stat().st_size, "sha256": digest})
    return rows


def _context(store: Store, session: str, subject: str | None) -> dict[str, Any]:
    """Everything the session template shows, the session analysed afresh from the folder
    it was ingested from."""
    # The analysis modules are slow to import: only a session report needs them.
    from ..motion.evaluate import frames_table
    from ..pipeline import analyze
    from ..results import pops_frame, summary, versions

    row = _find(store, session, subject)
    folder = Path(row["source_path"])
    if not (folder / "session.json").is_file():
        raise BadInput(folder, None, "the session folder is gone or moved: the session "
                       "report re-analyses the recording it was ingested from")
    result = analyze(folder)
    now = summary(result)
    motion = result.motion_summary
    minutes = result.session.duration_s / 60.0
    context_min = {c: s / 60.0 for c, s in motion.get("context_s", {}).items()}
    pops = pops_frame(result)
    frames = frames_table(result.frames)
    snippets = _snippets(result)
    stored_versions = row["summary"].get("versions", {})
    checksum = input_checksum(folder)
    return {
        "subject": row["subject"], "session": session, "start": row["start"],
        "duration_s": result.session.duration_s, "folder": str(folder),
        "info": result.session.info,
        "sr": result.session.audio.sr if result.session.audio is not None else None,
        "generated": datetime.now(UTC), "version": __version__,
        "not_a_diagnosis": NOT_A_DIAGNOSIS,
        "analysis": {"stored": row["analysis_version"],
                     "now": analysis_version(result.parameters)},
        "total": dict(zip(("rate", "low", "high"), poisson_rate(len(result.pops), minutes),
                          strict=True)) | {"count": len(result.pops)},
        "by_level": _rates(now["by_level"], dict.fromkeys(now["by_level"], minutes)),
        "by_kind": _rates(now["by_kind"], dict.fromkeys(now["by_kind"], minutes)),
        "by_context": _rates(now["by_context"], context_min),
        "ratio": now["twist_stretch_rate_ratio"],
        "rejected": now["rejected_by_reason"],
        "recurring": now["recurring"],
        "pops": pops.head(MAX_POP_ROWS), "pop_rows_left": max(0, len(pops) - MAX_POP_ROWS),
        "rom": motion.get("rom_deg", {}), "context_s": motion.get("context_s", {}),
        "events": result.motion_events,
        "gaps": result.gaps,
        "parameters": {name: _flatten(values) for name, values in
                       [*result.parameters.items(), ("motion", motion.get("parameters", {}))]},
        "versions": [{"name": k, "now": v, "stored": stored_versions.get(k, "")}
                     for k, v in versions().items()],
        "files": _files(folder),
        "checksum": {"now": checksum, "stored": row["input_sha256"]},
        "images": {
            "angles": (plots.data_uri(plots.angle_traces(frames, pops), "png")
                       if not frames.empty else None),
            "snippets": (plots.data_uri(plots.pop_snippets(snippets), "png")
                         if snippets else None)},
    }


def write_session_report(store: Store, session: str, *, subject: str | None = None,
                         out: str | Path | None = None) -> Path:
    """Write the researcher's report on one session: one self-contained HTML file.

    Parameters
    ----------
    store : Store
    session : str
        A stored session's id.
    subject : str, optional
        Its subject; needed only when several subjects have a session of that id.
    out : str or Path, optional
        The HTML file; default ``reports/<subject>/<session>.html`` (where the subject
        report links to).

    Returns
    -------
    Path
        The report written.

    Raises
    ------
    BadInput
        For an unknown subject or session, or a session folder that is no longer where it
        was ingested from.

    Examples
    --------
    >>> from backpop_sense.report import write_session_report
    >>> from backpop_sense.store import Store
    >>> with Store("backpop.db") as store:  # doctest: +SKIP
    ...     write_session_report(store, "2026-11-17a")
    PosixPath('reports/S02/2026-11-17a.html')
    """
    context = _context(store, session, subject)
    out = Path(out) if out is not None else default_session_path(context["subject"], session)
    return write_html("session.html.j2", out, **context)
