"""The session folder, format ``backpop-session/1``: read, validate, write.

A session folder holds ``session.json`` (metadata), ``mic.wav`` (one channel per contact
mic), one ``imu_<name>.csv`` per IMU and, optionally, ``symptoms.csv``, ``truth.csv`` and
``motion_truth.csv``. The format is defined in docs/formats.md; this module is its one reader and
its one writer.

Everything read from a session comes out in SI units and body axes (x = right,
y = forward, z = up while the subject stands upright): accelerations in m/s^2, angular rates
in rad/s. Writing is the mirror: body-frame SI data in, the units and axes the metadata
declares on disk.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from .blocks import AudioBlock, ImuBlock
from .errors import BadInput, shown
from .levels import is_level, level_index
from .tables import check_columns, numeric_chunks, read_header, read_small_table
from .times import check_time
from .vocab import (
    CONTEXTS,
    ID_RULE,
    IMU_COLUMNS,
    MAG_COLUMNS,
    MOTION_COLUMNS,
    POP_KINDS,
    TRUTH_COLUMNS,
    is_identifier,
)

FORMAT = "backpop-session/1"

GRAVITY = 9.80665
"""Standard gravity, m/s^2."""
ACC_UNITS = {"m/s^2": 1.0, "g": GRAVITY}
"""Accelerometer units and their factor to m/s^2 (standard gravity)."""
GYRO_UNITS = {"rad/s": 1.0, "deg/s": math.pi / 180.0}
"""Gyroscope units and their factor to rad/s."""
DEFAULT_AXES = "x=right,y=forward,z=up"
MOUNTINGS = ("calibrate", "exact")
"""How far the motion stage trusts an IMU's declared ``axes``: ``calibrate`` (the default)
takes the sensor's tilt at the subject's first still upright period for upright and refines
its turn about up from movement; ``exact`` takes the declared axes as the body's (a rigid
holder aligned at the factory), so a tilt there is the subject's."""
_DIRECTIONS = {
    "right": (1, 0, 0), "left": (-1, 0, 0),
    "forward": (0, 1, 0), "backward": (0, -1, 0), "back": (0, -1, 0),
    "up": (0, 0, 1), "down": (0, 0, -1),
}
AUDIO_SUBTYPES = {"PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"}
MIN_AUDIO_RATE_HZ = 4000
MAX_AUDIO_RATE_HZ = 192000
"""The audio sample rates accepted, Hz: a header outside them is damaged or not a strap's."""
MIN_IMU_RATE_HZ = 50.0
MAX_IMU_RATE_HZ = 2000.0
"""The IMU sample rates accepted (from the median step of ``t``), Hz."""
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
"""WAV sample formats that can hold NaN or infinity."""
RATE_TOLERANCE = 1e-3
"""Relative slack on the IMU rate minimum: times rounded to text make 50 Hz read as 49.99..."""
MAX_ACC_MS2 = 64 * GRAVITY
"""The largest acceleration accepted on an axis, m/s^2 (64 g): twice the widest range of
body-worn MEMS IMUs (+-32 g; the strap's is +-16 g). A larger value is damage or a unit
mistake (milli-g read as g)."""
MAX_GYRO_RADS = math.radians(4000.0)
"""The largest angular rate accepted on an axis, rad/s (4000 deg/s): the widest range of
MEMS gyroscopes (the strap's is +-2000 deg/s)."""
IMU_CHUNK_ROWS = 16384
"""Rows read at a time from an IMU CSV; bounds the reader's memory."""
IMU_OVERRUN_S = 60.0
"""How far past the audio's end an IMU record may go on, seconds: a strap's streams stop within
a reconnection's back-off of each other, so a row later than this is damaged (t = 1e9 s)."""
MAX_SESSION_S = 48 * 3600.0
"""The latest IMU time of a session without audio, seconds: twice DESIGN's 24-hour session."""


@dataclass(frozen=True)
class MicInfo:
    """One contact mic; ``name`` is the spinal level it sits over (``C1``..``S5``)."""

    name: str


@dataclass(frozen=True)
class ImuInfo:
    """One IMU as declared in ``session.json``.

    Attributes
    ----------
    name : str
        Identifier; the data file is ``imu_<name>.csv``.
    level : str
        Spinal level the IMU sits over.
    acc_unit, gyro_unit : str
        Units on disk: ``m/s^2`` or ``g``; ``rad/s`` or ``deg/s``.
    axes : str
        Body direction of each sensor axis while the subject stands upright.
    mounting : str
        One of :data:`MOUNTINGS`: ``calibrate`` (the tracker calibrates the mounting on the
        subject) or ``exact`` (the declared axes are the body's axes).
    """

    name: str
    level: str
    acc_unit: str = "m/s^2"
    gyro_unit: str = "rad/s"
    axes: str = DEFAULT_AXES
    mounting: str = "calibrate"

    @property
    def sensor_to_body(self) -> np.ndarray:
        """3x3 rotation taking a sensor-frame vector to body axes: ``body = M @ sensor``."""
        return parse_axes(self.axes)


@dataclass(frozen=True)
class SessionInfo:
    """The metadata of one session (``session.json``).

    Unknown fields found on read are kept in ``extra`` and written back unchanged, so a file
    from a newer writer loses nothing when it passes through this one.
    """

    subject: str
    session: str
    start: datetime
    mics: tuple[MicInfo, ...]
    imus: tuple[ImuInfo, ...] = ()
    strap: str = "backpop-strap-v1"
    audio_offset_s: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def mic_names(self) -> list[str]:
        """Mic levels in channel order."""
        return [m.name for m in self.mics]

    def imu(self, name: str) -> ImuInfo:
        """The IMU called ``name``."""
        for imu in self.imus:
            if imu.name == name:
                return imu
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The ``session.json`` document."""
        doc: dict[str, Any] = {
            "format": FORMAT,
            "subject": self.subject,
            "session": self.session,
            "start": self.start.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "strap": self.strap,
            "mics": [{"name": m.name} for m in self.mics],
            # The default mounting is left out: files written before it existed stay as they were.
            "imus": [
                {"name": i.name, "level": i.level, "acc_unit": i.acc_unit,
                 "gyro_unit": i.gyro_unit, "axes": i.axes}
                | ({"mounting": i.mounting} if i.mounting != "calibrate" else {})
                for i in self.imus
            ],
            "audio_offset_s": self.audio_offset_s,
        }
        doc.update({k: v for k, v in self.extra.items() if k not in doc})
        return doc


@dataclass(frozen=True)
class AudioInfo:
    """What ``mic.wav`` holds: rate in Hz, frames, channels and sample format."""

    sr: int
    frames: int
    channels: int
    subtype: str

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return self.frames / self.sr


def parse_axes(axes: str, *, where: tuple[str | Path, str] | None = None) -> np.ndarray:
    """Turn an axes declaration into the sensor-to-body rotation.

    Parameters
    ----------
    axes : str
        Such as ``"x=right,y=forward,z=up"``: each sensor axis once, each pointing to one of
        right, left, forward, backward, up, down, forming a right-handed frame.
    where : (file, field), optional
        Where the text came from, for the error message.

    Returns
    -------
    ndarray, shape (3, 3)
        ``M`` with ``body = M @ sensor``; its columns are the sensor axes in body axes.

    Examples
    --------
    >>> from backpop_sense.session import parse_axes
    >>> parse_axes("x=forward,y=left,z=up") @ [1.0, 0.0, 0.0]
    array([0., 1., 0.])
    """
    file, fld = where if where else ("axes", "axes")
    parts = [p.strip() for p in axes.split(",")]
    mapping: dict[str, tuple[int, int, int]] = {}
    for part in parts:
        key, _, direction = part.partition("=")
        key, direction = key.strip().lower(), direction.strip().lower()
        if key not in ("x", "y", "z") or key in mapping or direction not in _DIRECTIONS:
            raise BadInput(
                file, f"field {fld}",
                f"cannot read axes {shown(axes)}: expected e.g. {DEFAULT_AXES!r} "
                "(x, y, z once each; right/left/forward/backward/up/down)",
            )
        mapping[key] = _DIRECTIONS[direction]
    if len(mapping) != 3:
        raise BadInput(file, f"field {fld}", f"axes {shown(axes)} must name x, y and z")
    m = np.array([mapping["x"], mapping["y"], mapping["z"]], dtype=float).T
    if not np.isclose(np.linalg.det(m), 1.0):
        raise BadInput(
            file, f"field {fld}",
            f"axes {shown(axes)} are not a right-handed set of three directions"
        )
    return m


JSON_TYPES = {str: "a string", list: "a list", dict: "an object", int: "an integer",
              float: "a number"}
"""How an error names the JSON type a field must have."""


def _require(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], file: Path,
             prefix: str = "") -> Any:
    if key not in doc:
        raise BadInput(file, f"field {prefix}{key}", "is missing")
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        names = " or ".join(JSON_TYPES.get(k, k.__name__) for k in kinds)
        raise BadInput(file, f"field {prefix}{key}", f"must be {names}, not {shown(value)}")
    return value


def _optional(doc: Mapping[str, Any], key: str, kind: type, default: Any, file: Path,
              prefix: str = "") -> Any:
    """``doc[key]`` if it is there (and of JSON type ``kind``), else ``default``."""
    return _require(doc, key, kind, file, prefix) if key in doc else default


def _identifier(value: str, file: Path, fld: str) -> str:
    if not is_identifier(value):
        raise BadInput(file, f"field {fld}",
                       f"{shown(value)} is not a valid identifier ({ID_RULE})")
    return value


def _parse_start(text: str, file: Path) -> datetime:
    """The session's start from its ISO 8601 text (UTC when it names no zone)."""
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(file, "field start", f"{shown(text)} is not an ISO 8601 time") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    check_time(start, file, "field start")
    return start


def _parse_mics(mic_docs: list, file: Path) -> list[MicInfo]:
    """The ``mics`` list: one spinal level each, distinct and ordered top to bottom."""
    mics = []
    for i, m in enumerate(mic_docs):
        if not isinstance(m, dict):
            raise BadInput(file, f"field mics[{i}]", "must be an object with a name")
        name = _require(m, "name", str, file, f"mics[{i}].")
        if not is_level(name):
            raise BadInput(file, f"field mics[{i}].name",
                           f"{shown(name)} is not a spinal level C1..S5")
        mics.append(MicInfo(name))
    order = [level_index(m.name) for m in mics]
    if order != sorted(set(order)):
        raise BadInput(file, "field mics", "mic levels must be distinct and ordered top to bottom")
    return mics


def _parse_imus(imu_docs: list, file: Path) -> list[ImuInfo]:
    """The ``imus`` list: each a distinct name, a spinal level, its units, axes and mounting."""
    imus = []
    for i, d in enumerate(imu_docs):
        p = f"imus[{i}]."
        if not isinstance(d, dict):
            raise BadInput(file, f"field imus[{i}]", "must be an object")
        name = _identifier(_require(d, "name", str, file, p), file, p + "name")
        level = _require(d, "level", str, file, p)
        if not is_level(level):
            raise BadInput(file, f"field {p}level", f"{shown(level)} is not a spinal level C1..S5")
        acc_unit = _optional(d, "acc_unit", str, "m/s^2", file, p)
        if acc_unit not in ACC_UNITS:
            raise BadInput(file, f"field {p}acc_unit",
                           f"unknown unit {shown(acc_unit)}; use one of {', '.join(ACC_UNITS)}")
        gyro_unit = _optional(d, "gyro_unit", str, "rad/s", file, p)
        if gyro_unit not in GYRO_UNITS:
            raise BadInput(file, f"field {p}gyro_unit",
                           f"unknown unit {shown(gyro_unit)}; use one of {', '.join(GYRO_UNITS)}")
        axes = _optional(d, "axes", str, DEFAULT_AXES, file, p)
        parse_axes(axes, where=(file, p + "axes"))
        mounting = _optional(d, "mounting", str, "calibrate", file, p)
        if mounting not in MOUNTINGS:
            raise BadInput(file, f"field {p}mounting",
                           f"unknown mounting {shown(mounting)}; use one of {', '.join(MOUNTINGS)}")
        imus.append(ImuInfo(name, level, acc_unit, gyro_unit, axes, mounting))
    if len({i.name for i in imus}) != len(imus):
        raise BadInput(file, "field imus", "IMU names must be distinct")
    return imus


def parse_info(doc: Any, file: Path) -> SessionInfo:
    """Validate a ``session.json`` document and return its :class:`SessionInfo`."""
    if not isinstance(doc, dict):
        raise BadInput(file, None, "must hold a JSON object")
    fmt = _require(doc, "format", str, file)
    if fmt != FORMAT:
        raise BadInput(file, "field format",
                       f"unknown format {shown(fmt)}; this reader knows {FORMAT}")
    subject = _identifier(_require(doc, "subject", str, file), file, "subject")
    session = _identifier(_require(doc, "session", str, file), file, "session")
    start = _parse_start(_require(doc, "start", str, file), file)
    strap = _optional(doc, "strap", str, "backpop-strap-v1", file)
    offset = doc.get("audio_offset_s", 0.0)
    # An integer of 400 digits is a JSON number too, and too large for a float.
    if isinstance(offset, bool) or not isinstance(offset, int | float) or not (
            abs(offset) < 1e300 and math.isfinite(offset)):
        raise BadInput(file, "field audio_offset_s",
                       f"must be a finite number of seconds, not {shown(offset)}")
    mic_docs = _require(doc, "mics", list, file)
    imu_docs = _optional(doc, "imus", list, [], file)
    if not mic_docs and not imu_docs:
        raise BadInput(file, "field mics", "must list at least one mic (or, for an IMU-only "
                       "recording, at least one IMU)")
    mics = _parse_mics(mic_docs, file)
    imus = _parse_imus(imu_docs, file)
    known = {"format", "subject", "session", "start", "strap", "mics", "imus", "audio_offset_s"}
    extra = {k: v for k, v in doc.items() if k not in known}
    return SessionInfo(subject, session, start, tuple(mics), tuple(imus), strap, float(offset),
                       extra)


def read_info(folder: Path) -> SessionInfo:
    """Read and validate ``folder/session.json``."""
    file = folder / "session.json"
    if not folder.is_dir():
        raise BadInput(folder, None, "session folder is missing")
    if not file.is_file():
        raise BadInput(file, None, "file is missing")
    try:
        doc = json.loads(file.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise BadInput(file, None, "not a UTF-8 text file") from None
    except json.JSONDecodeError as exc:
        raise BadInput(file, f"line {exc.lineno}", f"invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise BadInput(file, None, "invalid JSON: nested too deeply") from None
    return parse_info(doc, file)


def _wav_data_check(path: Path) -> None:
    """Refuse a WAV whose data chunk is shorter than its header declares (a cut-off copy)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            return  # not RIFF: let soundfile report what it is
        if head[:4] == b"RF64":
            return  # RF64 keeps its sizes in a ds64 chunk; soundfile checks those
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, clen = struct.unpack("<4sI", f.read(8))
            if cid == b"data":
                if clen not in (0, 0xFFFFFFFF) and pos + 8 + clen > size:
                    have = size - pos - 8
                    raise BadInput(
                        path, "data chunk",
                        f"truncated: the header declares {clen} bytes of audio, the file holds "
                        f"{have}",
                    )
                return
            pos += 8 + clen + (clen & 1)
    raise BadInput(path, "data chunk", "no audio data chunk: the file is truncated")


def check_finite_wav(path: Path, sr: int, block_frames: int = 65536) -> None:
    """Refuse NaN or infinite samples in a float WAV, naming the first run of them.

    A pop under such samples would vanish from the analysis without a word. Read once when the
    session is opened, in blocks (bounded memory), so that nothing is analysed or written
    before the refusal; PCM WAVs cannot hold such values and are not read here.
    """
    start = None
    with sf.SoundFile(str(path)) as f:
        for index, data in enumerate(f.blocks(blocksize=block_frames, dtype="float32",
                                              always_2d=True)):
            bad = ~np.isfinite(data).all(axis=1)
            first = index * block_frames
            if start is None and bad.any():
                start = first + int(np.argmax(bad))
            if start is not None and not bad[max(0, start - first):].all():
                end = max(start, first) + int(np.argmin(bad[max(0, start - first):]))
                break
        else:
            if start is None:
                return
            end = f.frames
    raise BadInput(path, f"samples {start}-{end - 1}",
                   f"NaN or infinite (t = {start / sr:.3f}-{end / sr:.3f} s); a float WAV "
                   "must hold finite samples")


def read_audio_info(path: Path, n_mics: int, info_file: Path) -> AudioInfo:
    """Open ``mic.wav`` far enough to validate it against the declared mics."""
    if not path.is_file():
        raise BadInput(path, None, "file is missing")
    _wav_data_check(path)
    try:
        meta = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise BadInput(path, None, f"not a readable WAV file ({exc})") from None
    if meta.format not in ("WAV", "WAVEX", "RF64"):
        raise BadInput(path, None, f"is {meta.format}, not WAV")
    if meta.subtype not in AUDIO_SUBTYPES:
        raise BadInput(path, "format", f"sample format {meta.subtype} is not PCM 16/24/32 or float")
    # Checked on the header alone, before any buffer is sized by the rate.
    if not MIN_AUDIO_RATE_HZ <= meta.samplerate <= MAX_AUDIO_RATE_HZ:
        raise BadInput(path, "sample rate", f"{meta.samplerate} Hz is outside the "
                       f"{MIN_AUDIO_RATE_HZ}-{MAX_AUDIO_RATE_HZ} Hz accepted")
    if meta.channels != n_mics:
        raise BadInput(path, "channels",
                       f"has {meta.channels} channel(s) but {info_file.name} lists {n_mics} mics")
    if meta.frames <= 0:
        raise BadInput(path, "data chunk", "holds no audio samples")
    if meta.subtype in FLOAT_SUBTYPES:
        check_finite_wav(path, int(meta.samplerate))
    return AudioInfo(int(meta.samplerate), int(meta.frames), int(meta.channels), meta.subtype)


class Session:
    """A session folder, opened and checked: metadata, audio format and IMU headers.

    Opening reads only headers and the first rows of each IMU file; the data are read on
    demand, in bounded chunks, and every chunk is validated as it is read (so a bad cell
    anywhere raises :class:`BadInput` naming its line). :meth:`validate` reads all of it.

    Parameters
    ----------
    path : str or Path
        The session folder.

    Examples
    --------
    >>> from backpop_sense.session import Session
    >>> s = Session("data/samples/S01/2026-11-02a")
    >>> s.audio.sr, s.info.mic_names, round(s.imu_rates["sacral"])
    (16000, ['T10', 'L1', 'L4'], 200)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.info = read_info(self.path)
        # An IMU-only recording (a strap without mics) lists no mics and has no mic.wav.
        self.audio = read_audio_info(self.path / "mic.wav", len(self.info.mics),
                                     self.path / "session.json") if self.info.mics else None
        if self.audio is None and (self.path / "mic.wav").exists():
            raise BadInput(self.path / "session.json", "field mics",
                           "lists no mics, but the folder holds a mic.wav")
        offset = self.info.audio_offset_s
        if self.audio is not None and not abs(offset) < self.audio.duration_s:
            raise BadInput(self.path / "session.json", "field audio_offset_s",
                           f"{offset:g} s is not within the audio's own length "
                           f"({self.audio.duration_s:g} s) of the session start")
        self.imu_columns: dict[str, list[str]] = {}
        self.imu_rates: dict[str, float] = {}
        for imu in self.info.imus:
            file = self.imu_path(imu.name)
            self.imu_columns[imu.name] = check_columns(
                file, read_header(file), IMU_COLUMNS, MAG_COLUMNS
            )
            self.imu_rates[imu.name] = self._nominal_rate(imu.name)

    def imu_path(self, name: str) -> Path:
        """The CSV file of IMU ``name``."""
        return self.path / f"imu_{name}.csv"

    @property
    def duration_s(self) -> float:
        """Length of the audio, in seconds (of the IMU record, for an IMU-only session)."""
        if self.audio is not None:
            return self.audio.duration_s
        return max((self._last_time(imu.name) for imu in self.info.imus), default=0.0)

    def _last_time(self, name: str) -> float:
        """``t`` of the IMU file's last row plus one nominal period, seconds."""
        with self.imu_path(name).open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            rows = [r for r in f.read().decode("utf-8", "replace").splitlines() if r.strip()]
        try:
            return float(rows[-1].split(",")[0]) + 1.0 / self.imu_rates[name]
        except (ValueError, IndexError):
            raise BadInput(self.imu_path(name), "last line", "no time in the last row") from None

    def _nominal_rate(self, name: str) -> float:
        file = self.imu_path(name)
        first = next(self.imu_chunks(name), None)
        if first is None or first.n < 2:
            raise BadInput(file, "line 2", "needs at least two samples")
        rate = 1.0 / float(np.median(np.diff(first.t)))
        if not (MIN_IMU_RATE_HZ * (1 - RATE_TOLERANCE) <= rate
                <= MAX_IMU_RATE_HZ * (1 + RATE_TOLERANCE)):
            raise BadInput(file, "field t", f"sample rate {rate:.1f} Hz is outside the "
                           f"{MIN_IMU_RATE_HZ:.0f}-{MAX_IMU_RATE_HZ:.0f} Hz accepted")
        return rate

    def _time_limit(self) -> tuple[float, str]:
        """The latest time a row of the session's tables may have, seconds, and its words."""
        if self.audio is not None:
            return (self.info.audio_offset_s + self.audio.duration_s + IMU_OVERRUN_S,
                    f"the audio's end plus {IMU_OVERRUN_S:g} s")
        return MAX_SESSION_S, "the 48 hours a session may last"

    def _check_times(self, file: Path, frame: pd.DataFrame) -> None:
        """Every ``t`` of a side table within the recording (a time of 1e300 s is damage, and
        scoring would walk to it)."""
        t_max, limit = self._time_limit()
        t_min = min(0.0, self.info.audio_offset_s)
        t = frame["t"].to_numpy(dtype=float)
        bad = (t < t_min) | (t > t_max)
        if bad.any():
            i = int(np.argmax(bad))
            where = f"is before the recording ({t_min:g} s)" if t[i] < t_min else \
                f"is past {limit} ({t_max:g} s)"
            raise BadInput(file, f"line {i + 2}, field t", f"{shown(t[i])} s {where}")

    def audio_blocks(self, block_size: int) -> Iterator[AudioBlock]:
        """The audio in blocks of ``block_size`` samples (the last may be shorter)."""
        if self.audio is None:
            return
        index = 0
        with sf.SoundFile(str(self.path / "mic.wav")) as f:
            for data in f.blocks(blocksize=block_size, dtype="float32", always_2d=True):
                yield AudioBlock(index, self.audio.sr, data, self.info.audio_offset_s)
                index += data.shape[0]
        if index != self.audio.frames:
            raise BadInput(self.path / "mic.wav", "data chunk",
                           f"ended after {index} of {self.audio.frames} frames")

    def read_audio(self) -> np.ndarray:
        """All audio at once, shape (frames, mics), float32; for short sessions and tests."""
        data, _ = sf.read(str(self.path / "mic.wav"), dtype="float32", always_2d=True)
        return data

    def imu_chunks(self, name: str, chunk_rows: int = IMU_CHUNK_ROWS) -> Iterator[ImuBlock]:
        """IMU ``name`` in validated chunks, converted to SI units and body axes.

        Raises
        ------
        BadInput
            Naming the line and field of the first bad cell, or the first ``t`` that does not
            increase.
        """
        imu = self.info.imu(name)
        file = self.imu_path(name)
        columns = self.imu_columns.get(name) or check_columns(
            file, read_header(file), IMU_COLUMNS, MAG_COLUMNS
        )
        rot = imu.sensor_to_body
        t_max, limit = self._time_limit()
        acc_scale = ACC_UNITS[imu.acc_unit]
        gyro_scale = GYRO_UNITS[imu.gyro_unit]
        last_t = -math.inf
        index = 0
        for first_line, chunk in numeric_chunks(file, columns, chunk_rows=chunk_rows):
            t = chunk["t"].to_numpy()
            steps = np.diff(np.concatenate(([last_t], t)))
            if (steps <= 0).any():
                i = int(np.argmax(steps <= 0))
                what = "repeats the previous row's time" if steps[i] == 0 else "goes back in time"
                raise BadInput(file, f"line {first_line + i}, field t",
                               f"t must be strictly increasing; {shown(t[i])} {what}")
            if t[0] < 0 and index == 0:
                raise BadInput(file, f"line {first_line}, field t",
                               "t is seconds since session start and cannot be negative")
            if t[-1] > t_max:
                i = int(np.argmax(t > t_max))
                raise BadInput(file, f"line {first_line + i}, field t",
                               f"{float(t[i]):g} s is past {limit} ({t_max:g} s)")
            last_t = float(t[-1])
            acc = _within(file, chunk, first_line, ("ax", "ay", "az"), MAX_ACC_MS2 / acc_scale,
                          imu.acc_unit, "acc_unit")
            gyro = _within(file, chunk, first_line, ("gx", "gy", "gz"),
                           MAX_GYRO_RADS / gyro_scale, imu.gyro_unit, "gyro_unit")
            acc, gyro = acc @ rot.T * acc_scale, gyro @ rot.T * gyro_scale
            mag = chunk[list(MAG_COLUMNS)].to_numpy() @ rot.T if "mx" in chunk else None
            yield ImuBlock(name, index, t, acc, gyro, mag)
            index += len(t)

    def read_imu(self, name: str) -> ImuBlock:
        """All of IMU ``name`` as one block; for short sessions and tests."""
        parts = list(self.imu_chunks(name))
        if not parts:
            raise BadInput(self.imu_path(name), "line 2", "holds no samples")
        mags = [p.mag for p in parts]
        mag = np.concatenate(mags) if mags[0] is not None else None
        return ImuBlock(name, 0, np.concatenate([p.t for p in parts]),
                        np.concatenate([p.acc for p in parts]),
                        np.concatenate([p.gyro for p in parts]), mag)

    def truth(self) -> pd.DataFrame | None:
        """Ground-truth pops (``truth.csv``), or None when the session has none."""
        file = self.path / "truth.csv"
        if not file.exists():
            return None
        frame = read_small_table(file, TRUTH_COLUMNS, numeric=["t"])
        self._check_times(file, frame)
        _check_choices(file, frame, "level", None)
        _check_choices(file, frame, "kind", POP_KINDS)
        return frame

    def motion_truth(self) -> pd.DataFrame | None:
        """Ground-truth spine angles and context (``motion_truth.csv``), or None."""
        file = self.path / "motion_truth.csv"
        if not file.exists():
            return None
        frame = read_small_table(file, MOTION_COLUMNS, numeric=MOTION_COLUMNS[:4])
        self._check_times(file, frame)
        for name in MOTION_COLUMNS[1:4]:
            angles = frame[name].to_numpy(dtype=float)
            if (np.abs(angles) > 180).any():
                i = int(np.argmax(np.abs(angles) > 180))
                raise BadInput(file, f"line {i + 2}, field {name}",
                               f"{shown(angles[i])} deg is not an angle within +-180 deg")
        _check_choices(file, frame, "context", CONTEXTS)
        return frame

    def symptoms(self) -> pd.DataFrame | None:
        """Diary entries made during the session (``symptoms.csv``), or None."""
        from .diary import read_diary_csv

        file = self.path / "symptoms.csv"
        return read_diary_csv(file) if file.exists() else None

    def validate(self) -> None:
        """Read every byte of the session once, raising :class:`BadInput` at the first fault."""
        for _ in self.audio_blocks(65536):
            pass
        for imu in self.info.imus:
            for _ in self.imu_chunks(imu.name):
                pass
        self.truth()
        self.motion_truth()
        self.symptoms()


def _within(file: Path, chunk: pd.DataFrame, first_line: int, columns: Sequence[str],
            limit: float, unit: str, unit_field: str) -> np.ndarray:
    """The chunk's ``columns``, every value within +-``limit`` (in the file's ``unit``)."""
    values = chunk[list(columns)].to_numpy()
    bad = np.abs(values) > limit
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise BadInput(file, f"line {first_line + int(row)}, field {columns[col]}",
                       f"{shown(values[row, col])} {unit} is beyond the +-{limit:.4g} {unit} a "
                       f"body-worn IMU measures (is {unit_field} in session.json right?)")
    return values


def _check_choices(file: Path, frame: pd.DataFrame, column: str,
                   choices: Sequence[str] | None) -> None:
    values = frame[column].astype(str).to_numpy()
    ok = np.array([is_level(v) for v in values], dtype=bool) if choices is None else np.isin(
        values, list(choices))
    if not ok.all():
        i = int(np.argmax(~ok))
        allowed = "a spinal level C1..S5" if choices is None else "one of " + "|".join(choices)
        raise BadInput(file, f"line {i + 2}, field {column}",
                       f"{shown(values[i])} is not {allowed}")


class SessionWriter:
    """Write a session folder incrementally: ``session.json`` first, then data as it comes.

    Data go in as SI units in body axes; the writer converts them to the units and sensor
    axes that ``info`` declares, the mirror of :class:`Session`'s reading.

    Parameters
    ----------
    path : Path
        The folder to create (it may exist, but must not hold a session already).
    info : SessionInfo
        The metadata.
    sr : int
        Audio sample rate in Hz.
    subtype : str
        WAV sample format: ``PCM_16``, ``PCM_24``, ``PCM_32`` or ``FLOAT``.

    Examples
    --------
    >>> from backpop_sense.session import Session, SessionWriter
    >>> s = Session("data/samples/S01/2026-11-02a")
    >>> with SessionWriter("out/S01/copy", s.info, sr=s.audio.sr) as w:
    ...     w.write_audio(s.read_audio())
    ...     for imu in s.info.imus:
    ...         x = s.read_imu(imu.name)
    ...         w.write_imu(imu.name, x.t, x.acc, x.gyro)
    """

    def __init__(self, path: str | Path, info: SessionInfo, *, sr: int,
                 subtype: str = "PCM_16") -> None:
        if subtype not in AUDIO_SUBTYPES:
            raise ValueError(f"subtype must be one of {sorted(AUDIO_SUBTYPES)}")
        self.path = Path(path)
        self.info = info
        self.path.mkdir(parents=True, exist_ok=True)
        if (self.path / "session.json").exists():
            raise BadInput(self.path / "session.json", None,
                           "already exists; refusing to overwrite a session")
        (self.path / "session.json").write_text(
            json.dumps(info.to_json(), indent=2) + "\n", encoding="utf-8"
        )
        # An IMU-only session (no mics) has no mic.wav, as Session reads it.
        self._audio = sf.SoundFile(str(self.path / "mic.wav"), "w", samplerate=sr,
                                   channels=len(info.mics), format="WAV",
                                   subtype=subtype) if info.mics else None
        self._imu_files: dict[str, Any] = {}

    def write_audio(self, data: np.ndarray) -> None:
        """Append samples, shape (n, mics), full scale -1..1."""
        if self._audio is None:
            raise ValueError("the session lists no mics: it has no audio to write")
        self._audio.write(np.asarray(data, dtype=np.float32))

    def write_imu(self, name: str, t: np.ndarray, acc: np.ndarray, gyro: np.ndarray,
                  mag: np.ndarray | None = None) -> None:
        """Append IMU samples: ``t`` in s, ``acc`` in m/s^2 and ``gyro`` in rad/s, body axes."""
        imu = self.info.imu(name)
        rot = imu.sensor_to_body
        acc_s = np.asarray(acc) @ rot / ACC_UNITS[imu.acc_unit]
        gyro_s = np.asarray(gyro) @ rot / GYRO_UNITS[imu.gyro_unit]
        columns = list(IMU_COLUMNS) + (list(MAG_COLUMNS) if mag is not None else [])
        parts = [np.asarray(t)[:, None], acc_s, gyro_s]
        if mag is not None:
            parts.append(np.asarray(mag) @ rot)
        table = np.hstack(parts)
        f = self._imu_files.get(name)
        if f is None:
            f = self._imu_files[name] = (self.path / f"imu_{name}.csv").open(
                "w", encoding="utf-8", newline="")
            f.write(",".join(columns) + "\n")
        fmt = ",".join(["%.10g"] + ["%.6g"] * (table.shape[1] - 1))
        np.savetxt(f, table, fmt=fmt, delimiter=",")

    def write_table(self, filename: str, frame: pd.DataFrame) -> None:
        """Write a side table (``truth.csv``, ``motion_truth.csv``, ``symptoms.csv``)."""
        frame.to_csv(self.path / filename, index=False, float_format="%.6g")

    def close(self) -> None:
        """Finish the WAV header and close every file."""
        if self._audio is not None:
            self._audio.close()
        for f in self._imu_files.values():
            f.close()
        for imu in self.info.imus:
            if imu.name not in self._imu_files:
                raise ValueError(f"no samples were written for IMU {imu.name!r}")

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
