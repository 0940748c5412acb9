"""Scoring motion against truth: spine angles, context, catches, falls; and the BROAD metric.

:func:`score_motion` compares the tracker's 10 Hz frames and events with a session's
``motion_truth.csv`` and the simulator's event truth (``session.json`` ``simulation``
``falls_s`` and ``catches_s``). :func:`orientation_errors` scores an orientation estimate
against optical ground truth exactly as the BROAD benchmark does (Laidig et al., Data 2021).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..vocab import ANGLE_COLUMNS, CONTEXTS, EVENT_COLUMNS
from .orientation import quat_about_z, quat_conjugate, quat_multiply

EVENT_TOLERANCE_S = 1.0
"""A detected catch or fall matches a true one this close in time, seconds."""


def _wrap_deg(x: np.ndarray) -> np.ndarray:
    return (np.asarray(x, dtype=float) + 180.0) % 360.0 - 180.0


def match_events(detected: Sequence[float], truth: Sequence[float],
                 tolerance_s: float = EVENT_TOLERANCE_S) -> int:
    """Number of one-to-one matches between detected and true event times (nearest first).

    Examples
    --------
    >>> from backpop_sense.motion.evaluate import match_events
    >>> match_events([1.0, 5.2, 9.0], [1.3, 5.0, 20.0])
    2
    """
    pairs = sorted((abs(d - t), i, j) for i, d in enumerate(detected)
                   for j, t in enumerate(truth) if abs(d - t) <= tolerance_s)
    used_d: set[int] = set()
    used_t: set[int] = set()
    for _, i, j in pairs:
        if i not in used_d and j not in used_t:
            used_d.add(i)
            used_t.add(j)
    return len(used_d)


def _event_scores(detected: Sequence[float], truth: Sequence[float], hours: float,
                  tolerance_s: float) -> dict[str, float | int | None]:
    hits = match_events(detected, truth, tolerance_s)
    false = len(detected) - hits
    return {
        "truth": len(truth), "detected": len(detected), "hits": hits,
        "recall": hits / len(truth) if len(truth) else None,
        "false": false, "false_per_hour": false / hours if hours > 0 else None,
    }


def score_motion(frames: pd.DataFrame, truth: pd.DataFrame, events: pd.DataFrame | None = None,
                 truth_events: Mapping[str, Sequence[float]] | None = None, *,
                 tolerance_s: float = EVENT_TOLERANCE_S) -> dict:
    """Angle RMSE per axis, context accuracy, and catch and fall recall and false alarms.

    Parameters
    ----------
    frames : DataFrame
        ``t, flexion_deg, lateral_deg, twist_deg, context`` (``motion.csv``).
    truth : DataFrame
        The same columns from ``motion_truth.csv`` (``Session.motion_truth()``).
    events : DataFrame, optional
        ``t, type, detail`` (``events.csv``); rows of other types (``gap``) are ignored.
    truth_events : mapping, optional
        ``falls_s`` and ``catches_s``: true event times in seconds (``session.json``
        ``simulation``).
    tolerance_s : float
        Largest time difference of a matched event, seconds.

    Returns
    -------
    dict
        ``frames`` matched by time; ``coverage`` (matched over true frames); ``rmse_deg``
        per axis (``flexion``, ``lateral``, ``twist``, degrees; twist differences wrapped to
        +-180); ``context_accuracy`` (fraction of matched frames) and ``context_confusion``
        (true label -> estimated label -> frames); ``catch`` and ``fall`` with ``truth``,
        ``detected``, ``hits``, ``recall``, ``false`` and ``false_per_hour``.

    Examples
    --------
    >>> import pandas as pd
    >>> from backpop_sense.motion.evaluate import score_motion
    >>> f = pd.DataFrame({"t": [0.0, 0.1], "flexion_deg": [1.0, 2.0], "lateral_deg": [0.0, 0.0],
    ...                   "twist_deg": [0.0, 0.0], "context": ["static", "other"]})
    >>> score_motion(f, f.assign(flexion_deg=[0.0, 2.0]))["rmse_deg"]["flexion"]
    0.7071
    """
    m, ref = _match_frames(frames, truth)
    labels_est = m["context"].astype(str).to_numpy()
    labels_true = m["context_true"].astype(str).to_numpy()
    out = {
        "frames": len(m),
        "coverage": round(len(m) / len(ref), 4) if len(ref) else None,
        "rmse_deg": _angle_rmse(m),
        "context_accuracy": round(float((labels_est == labels_true).mean()), 4) if len(m)
        else None,
        "context_confusion": _confusion(labels_true, labels_est),
    }
    if truth_events is not None:
        t_all = np.concatenate([truth["t"].to_numpy(dtype=float),
                                frames["t"].to_numpy(dtype=float)])
        hours = (t_all.max() - t_all.min() + 0.1) / 3600.0 if len(t_all) else 0.0
        ev = events if events is not None else pd.DataFrame(columns=list(EVENT_COLUMNS))
        for kind, key in (("catch", "catches_s"), ("fall", "falls_s")):
            detected = ev.loc[ev["type"] == kind, "t"].astype(float).tolist()
            out[kind] = _event_scores(detected, list(truth_events.get(key, [])), hours,
                                      tolerance_s)
    return out


def _match_frames(frames: pd.DataFrame, truth: pd.DataFrame
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Estimated and true frames joined on their 0.1 s slot (true columns suffixed
    ``_true``; the first frame of a slot counts), and the true frames one per slot."""
    key_f = np.round(frames["t"].to_numpy(dtype=float) * 10).astype(np.int64)
    key_t = np.round(truth["t"].to_numpy(dtype=float) * 10).astype(np.int64)
    est = frames.assign(_k=key_f).drop_duplicates("_k")
    ref = truth.assign(_k=key_t).drop_duplicates("_k")
    return est.merge(ref, on="_k", suffixes=("", "_true")), ref


def _angle_rmse(m: pd.DataFrame) -> dict[str, float | None]:
    """RMSE of each angle over the matched frames, degrees (twist differences wrapped to
    +-180); None without frames."""
    rmse = {}
    for column in ANGLE_COLUMNS:
        err = m[column].to_numpy(dtype=float) - m[column + "_true"].to_numpy(dtype=float)
        if column == "twist_deg":
            err = _wrap_deg(err)
        rmse[column.removesuffix("_deg")] = (round(float(np.sqrt(np.mean(err**2))), 4)
                                             if len(err) else None)
    return rmse


def _confusion(labels_true: np.ndarray, labels_est: np.ndarray) -> dict[str, dict[str, int]]:
    """True context -> estimated context -> frames, leaving out pairs that never occur."""
    return {
        t: {e: int(((labels_true == t) & (labels_est == e)).sum()) for e in CONTEXTS
            if ((labels_true == t) & (labels_est == e)).any()}
        for t in CONTEXTS if (labels_true == t).any()
    }


def orientation_errors(estimate: np.ndarray, reference: np.ndarray,
                       scored: np.ndarray | None = None, *,
                       heading_offset_free: bool = True) -> dict[str, float]:
    """RMS orientation error split into inclination and heading, as BROAD defines it.

    The error quaternion ``estimate * inverse(reference)`` is expressed in the earth frame;
    the constant heading offset between the two earth frames is removed (estimated as the
    circular mean of the heading error over the scored samples, which is what a 6-axis
    filter leaves free); the error's rotation about vertical is the heading error and the
    rest the inclination error; each is an RMS over the scored samples.

    Parameters
    ----------
    estimate, reference : ndarray, shape (n, 4)
        Unit quaternions ``[w, x, y, z]``, sensor to earth (z up). NaN rows in the reference
        (markers lost) are skipped.
    scored : bool array, shape (n,), optional
        The samples to score (BROAD's ``movement`` phase); all by default.
    heading_offset_free : bool
        Remove the mean heading offset (6-axis); False keeps it (9-axis against ENU truth).

    Returns
    -------
    dict
        ``inclination_rmse_deg``, ``heading_rmse_deg``, ``total_rmse_deg``, ``samples``.

    Examples
    --------
    >>> import numpy as np
    >>> from backpop_sense.motion.evaluate import orientation_errors
    >>> q = np.tile([1.0, 0.0, 0.0, 0.0], (5, 1))
    >>> orientation_errors(q, q)["inclination_rmse_deg"]
    0.0
    """
    est = np.asarray(estimate, dtype=float)
    ref = np.asarray(reference, dtype=float)
    ok = np.isfinite(ref).all(axis=1) & np.isfinite(est).all(axis=1)
    if scored is not None:
        ok &= np.asarray(scored, dtype=bool)
    est = est[ok] / np.linalg.norm(est[ok], axis=1, keepdims=True)
    ref = ref[ok] / np.linalg.norm(ref[ok], axis=1, keepdims=True)
    err = quat_multiply(est, quat_conjugate(ref))
    heading = 2.0 * np.arctan2(err[:, 3], err[:, 0])
    if heading_offset_free and len(heading):
        offset = float(np.angle(np.mean(np.exp(1j * heading))))
        err = quat_multiply(quat_about_z(-offset), err)
    w, z = err[:, 0], err[:, 3]
    heading_err = 2.0 * np.arctan(np.abs(z / np.where(w == 0, 1e-300, w)))
    incl_err = 2.0 * np.arccos(np.clip(np.sqrt(w**2 + z**2), 0.0, 1.0))
    total = 2.0 * np.arccos(np.clip(np.abs(w), 0.0, 1.0))

    def rms(x: np.ndarray) -> float:
        return round(float(np.degrees(np.sqrt(np.mean(x**2)))), 4) if len(x) else float("nan")

    return {"inclination_rmse_deg": rms(incl_err), "heading_rmse_deg": rms(heading_err),
            "total_rmse_deg": rms(total), "samples": int(ok.sum())}


def frames_table(frames: Sequence[object]) -> pd.DataFrame:
    """Motion frames (objects with ``t``, the angles and ``context``) as a DataFrame."""
    columns = ["t", *ANGLE_COLUMNS, "context"]
    return pd.DataFrame([[getattr(f, c) for c in columns] for f in frames], columns=columns)


def events_table(events: Sequence[object]) -> pd.DataFrame:
    """Motion events (objects with ``t``, ``type``, ``detail``) as a DataFrame."""
    return pd.DataFrame([[e.t, e.type, e.detail] for e in events],  # type: ignore[attr-defined]
                        columns=list(EVENT_COLUMNS))
