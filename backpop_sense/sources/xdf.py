"""A strap's streams in an XDF file (LabRecorder's), read back into a session folder.

A LabRecorder file holds the streams of every device the lab recorded. The strap's are those
that :mod:`.lsl` published: ``desc/backpop/format`` is :data:`~backpop_sense.vocab.LSL_FORMAT`,
with the session's subject, session, start and audio offset, the mics' levels as the audio's
channel labels and each IMU's name, level and mounting (docs/formats.md). The other devices'
streams are listed and left alone; the strap's events stream is left too (the analysis finds
them again).

Time: pyxdf maps every stream onto the recording computer's clock from the file's clock
offsets (``synchronize_clocks``). Jitter removal is not asked for: the outlets stamp each
sample with its time on the strap's (drift-corrected) clock, so there is no transport jitter
to remove, and the IMUs' own sampling times are data. The audio is placed by sample count
from its first stamp (its stamps are checked to be regular, so none was lost); the IMU times
are the stamps, rounded to the microsecond (far below any clock's error, and enough to give
back the session's own times).

pyxdf (the ``lsl`` extra) is imported when a file is read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInput, shown
from ..session import MOUNTINGS, ImuInfo, MicInfo, SessionInfo, SessionWriter
from ..vocab import IMU_CHANNELS, LSL_FORMAT
from .lsl import IMU_UNITS

MAX_RATE_ERROR = 0.01
"""Largest relative difference between a strap stream's declared and measured rates: the
strap's crystals are off by tens of ppm, so more is a stream that is not what it says."""
MAX_STEP_PERIODS = 10
"""Longest step between two audio stamps, in sample periods; a longer one is samples lost
(the audio stream is regular: a gap in the strap's link is zeros, not a hole)."""
MAX_END_SPREAD_S = 10.0
"""How much earlier than the strap's other streams one may end, seconds (a strap's streams
stop within a reconnection's back-off of each other); more is a stream cut short."""
TIME_DECIMALS = 6
"""IMU times are rounded to 10**-6 s."""


@dataclass
class XdfStrap:
    """The strap's streams found in an XDF file.

    Attributes
    ----------
    path : Path
        The file.
    info : SessionInfo
        The session they are from (``desc/backpop``).
    audio : dict or None
        pyxdf's audio stream; None for an IMU-only strap.
    imus : dict
        pyxdf's IMU streams by IMU name.
    ignored : list of str
        The other streams, as ``name (type)``: other devices' and the strap's events.
    """

    path: Path
    info: SessionInfo
    audio: dict | None
    imus: dict[str, dict] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def _first(node: Any, key: str) -> Any:
    """pyxdf's XML dicts hold lists: the first value under ``key``, or None."""
    if not isinstance(node, dict):
        return None
    values = node.get(key) or [None]
    return values[0]


def _backpop(stream: dict) -> dict[str, str]:
    """A stream's ``desc/backpop`` as plain text values ({} for another device's)."""
    meta = _first(_first(stream["info"], "desc"), "backpop")
    if not isinstance(meta, dict) or _first(meta, "format") != LSL_FORMAT:
        return {}
    return {k: _first(meta, k) for k in meta}


def _channels(stream: dict, key: str) -> list[str | None]:
    """``key`` (label, unit...) of each channel in a stream's ``desc/channels``."""
    channels = _first(_first(stream["info"], "desc"), "channels")
    listed = (channels.get("channel") or []) if isinstance(channels, dict) else []
    return [_first(c, key) for c in listed]


def _name(stream: dict) -> str:
    return str(_first(stream["info"], "name"))


def _load(path: Path) -> list[dict]:
    try:
        import pyxdf
    except ImportError as exc:
        raise BadInput(path, None, f"reading XDF needs pyxdf ({exc}): pip install "
                       "'backpop-sense[lsl]'") from None
    log = logging.getLogger("pyxdf")
    quiet = log.propagate, log.level
    # pyxdf logs what it skips; a damaged strap stream is reported by the checks below.
    log.propagate, log.level = False, logging.CRITICAL
    try:
        streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=True,
                                    dejitter_timestamps=False)
    except Exception as exc:  # noqa: BLE001 - pyxdf raises bare Exceptions for bad files
        raise BadInput(path, None, f"not a readable XDF file ({type(exc).__name__}: "
                       f"{exc})") from None
    finally:
        log.propagate, log.level = quiet
    return streams


def read_xdf(path: str | Path) -> XdfStrap:
    """Find and check the strap's streams in an XDF file.

    Parameters
    ----------
    path : str or Path
        A LabRecorder file holding the streams ``record --lsl`` or ``replay --lsl``
        published.

    Returns
    -------
    XdfStrap
        The session's metadata, its audio and IMU streams, and what was left alone.

    Raises
    ------
    BadInput
        One line naming the file and the stream: no strap stream, a stream cut short, a
        rate that does not match its header.
    """
    path = Path(path)
    streams = _load(path)
    audios = [s for s in streams if _backpop(s).get("role") == "audio"]
    if len(audios) > 1:
        raise BadInput(path, None, f"holds {len(audios)} strap recordings (" + ", ".join(
            f"{_backpop(s)['subject']}/{_backpop(s)['session']}" for s in audios) +
            "); one is analysed at a time")
    strap = [s for s in streams if _backpop(s).get("role") in ("audio", "imu")]
    if not strap:
        seen = ", ".join(f"{_name(s)} ({_first(s['info'], 'type')})" for s in streams)
        raise BadInput(path, None, "holds no strap stream (none with desc/backpop/format "
                       f"{LSL_FORMAT}); it holds: {seen or 'no stream at all'}")
    meta = _backpop(audios[0] if audios else strap[0])
    strap = [s for s in strap if (_backpop(s)["subject"], _backpop(s)["session"]) ==
             (meta["subject"], meta["session"])]
    for s in strap:
        _check(path, s)
    _check_ends(path, strap)
    imus = {_backpop(s)["imu"]: s for s in strap if _backpop(s)["role"] == "imu"}
    info = _session_info(path, meta, audios[0] if audios else None, imus)
    ignored = [f"{_name(s)} ({_first(s['info'], 'type')})" for s in streams
               if not any(s is x for x in strap)]
    return XdfStrap(path, info, audios[0] if audios else None, imus, ignored)


def _check(path: Path, stream: dict) -> None:
    """A strap stream holds samples, all its footer counts, at the rate its header says."""
    where = f"stream {_name(stream)}"
    stamps = np.asarray(stream["time_stamps"], dtype=float)
    footer = _first((stream.get("footer") or {}).get("info"), "sample_count")
    if footer is not None and int(footer) > len(stamps):
        raise BadInput(path, where, f"cut short: its footer counts {int(footer)} samples, "
                       f"the file holds {len(stamps)}")
    if len(stamps) < 2:
        raise BadInput(path, where, f"cut short: it holds {len(stamps)} sample(s)")
    rate = float(_first(stream["info"], "nominal_srate"))
    steps = np.diff(stamps)
    role = _backpop(stream)["role"]
    if role == "audio" and steps.max() > MAX_STEP_PERIODS / rate:
        at = int(np.argmax(steps))
        raise BadInput(path, where, f"cut short: {steps[at] * rate - 1:.0f} samples missing "
                       f"after sample {at} (the stream broke off and resumed)")
    measured = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if role == "audio" \
        else 1.0 / float(np.median(steps))
    if abs(measured / rate - 1.0) > MAX_RATE_ERROR:
        raise BadInput(path, where, f"its samples come at {measured:.6g} Hz, its header says "
                       f"{rate:g} Hz")
    if role == "imu" and _channels(stream, "unit") != list(IMU_UNITS):
        raise BadInput(path, where, f"channel units {_channels(stream, 'unit')}, not the "
                       f"published {list(IMU_UNITS)}")


def _check_ends(path: Path, strap: list[dict]) -> None:
    ends = {_name(s): float(s["time_stamps"][-1]) for s in strap}
    last = max(ends.values())
    for name, end in ends.items():
        if last - end > MAX_END_SPREAD_S:
            raise BadInput(path, f"stream {name}", f"cut short: it ends {last - end:.1f} s "
                           "before the strap's other streams")


def _session_info(path: Path, meta: dict[str, str], audio: dict | None,
                  imus: dict[str, dict]) -> SessionInfo:
    try:
        start = datetime.fromisoformat(meta["start"])
        offset = float(meta["audio_offset_s"]) if audio is not None else 0.0
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(path, f"stream {_name(audio or next(iter(imus.values())))}",
                       f"desc/backpop lacks a valid start or audio_offset_s ({exc})") from None
    mics = tuple(MicInfo(str(m)) for m in _channels(audio, "label")) if audio else ()
    return SessionInfo(meta["subject"], meta["session"], start, mics,
                       tuple(ImuInfo(name, _backpop(s)["level"], mounting=_mounting(path, s))
                             for name, s in imus.items()),
                       meta.get("strap") or "backpop-strap-v1", offset,
                       {"converted_from": path.name})


def _mounting(path: Path, stream: dict) -> str:
    """An IMU stream's ``desc/backpop/mounting`` (``calibrate`` in files that name none)."""
    mounting = _backpop(stream).get("mounting") or "calibrate"
    if mounting not in MOUNTINGS:
        raise BadInput(path, f"stream {_name(stream)}", f"desc/backpop mounting "
                       f"{shown(mounting)} is not one of {', '.join(MOUNTINGS)}")
    return mounting


def convert(path: str | Path, out: str | Path) -> XdfStrap:
    """``backpop convert FILE.xdf -o SESSION``: the strap's streams as a session folder.

    The audio is written as float WAV (every sample as published); IMU values in m/s^2 and
    rad/s, body axes. ``session.json`` keeps the file's name under ``converted_from``.

    Parameters
    ----------
    path : str or Path
        The XDF file (see :func:`read_xdf`).
    out : str or Path
        The session folder to write; it must not hold a session yet.

    Returns
    -------
    XdfStrap
        What was found, with the streams left alone.

    Examples
    --------
    >>> from backpop_sense.sources.xdf import convert
    >>> strap = convert("lab/run-1.xdf", "out/S01/run-1")  # doctest: +SKIP
    >>> strap.ignored  # doctest: +SKIP
    ['EMG (EMG)', 'backpop-events (Markers)']
    """
    strap = read_xdf(path)
    audio = strap.audio
    sr = round(float(_first(audio["info"], "nominal_srate"))) if audio is not None else 1
    if audio is not None:
        t0 = float(audio["time_stamps"][0]) - strap.info.audio_offset_s
    else:
        t0 = min(float(s["time_stamps"][0]) for s in strap.imus.values())
    with SessionWriter(out, strap.info, sr=sr, subtype="FLOAT") as writer:
        if audio is not None:
            writer.write_audio(np.asarray(audio["time_series"], dtype=np.float32))
        for name, s in strap.imus.items():
            values = np.asarray(s["time_series"], dtype=float)
            t = np.round(np.asarray(s["time_stamps"]) - t0, TIME_DECIMALS)
            n = len(IMU_CHANNELS) // 2
            writer.write_imu(name, t, values[:, :n], values[:, n:])
    return strap
