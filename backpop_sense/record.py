"""Write a live stream of blocks to a session folder, so that a crash loses at most a second.

The folder is a normal ``backpop-session/1`` folder from the first second on:

- ``session.json`` is written first, with ``"recording": {"complete": false}``, and replaced
  (atomically) by the final version, ``"complete": true`` with the link statistics, at the end;
- ``mic.wav`` is PCM16; its RIFF and data sizes are rewritten after every flush, so the header
  always describes the audio that is on disk;
- ``imu_<name>.csv`` rows are appended;
- ``gaps.csv`` (``stream,t_start,t_end,reason``) lists every gap as it is found: where the
  audio holds zeros and the IMU files have no rows because the strap's packets never arrived.

Data are flushed to the operating system at least every ``flush_s`` seconds (each flush is
one ``write`` per file of whole rows or frames, so a killed process leaves no torn row), which
is what a SIGKILL or a crash of this program can lose; ``close`` also ``fsync`` s, for power
loss.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .blocks import AudioBlock, Block, Gap, ImuBlock
from .clock import SYSTEM_CLOCK, Clock
from .errors import BadInput
from .params import Identifier, check_values
from .session import ACC_UNITS, GYRO_UNITS, ImuInfo, MicInfo, SessionInfo
from .sources.profiles import Profile
from .vocab import IMU_COLUMNS

FLUSH_S = 1.0
"""Longest time data wait in memory before reaching the files, seconds (wall clock)."""
WAV_HEADER_BYTES = 44
AUDIO_SLICE = 1 << 16
"""Frames converted and written at a time, which bounds memory across a long zero-filled gap."""


def info_from_profile(profile: Profile, *, subject: str, session: str,
                      start: datetime | None = None) -> SessionInfo:
    """The ``session.json`` metadata of a recording from a strap with ``profile``.

    IMU units and axes are the profile's, so the files hold the strap's values as sent
    (counts times the profile's scale), not a conversion of them.

    Parameters
    ----------
    profile : Profile
        The strap's profile.
    subject, session : str
        Identifiers (pseudonyms), ``[A-Za-z0-9_-]{1,64}``.
    start : datetime, optional
        Session start; now (UTC) by default.

    Examples
    --------
    >>> from backpop_sense.record import info_from_profile
    >>> from backpop_sense.sources.profiles import load_profile
    >>> info = info_from_profile(load_profile("backpop-strap-v1"), subject="S01",
    ...                          session="2026-11-26a")
    >>> info.mic_names, [imu.name for imu in info.imus]
    (['T10', 'L1', 'L4'], ['thoracic', 'sacral'])
    """
    check_values("recording", {"subject": Identifier(), "session": Identifier()},
                 subject=subject, session=session)
    mics = tuple(MicInfo(m) for m in profile.audio.mics) if profile.audio else ()
    imus = tuple(ImuInfo(i.name, i.level, i.acc_unit, i.gyro_unit, i.axes, i.mounting)
                 for i in profile.imus)
    return SessionInfo(subject, session, start or datetime.now(UTC).replace(microsecond=0),
                       mics, imus, profile.name)


def _wav_header(channels: int, sr: int, data_bytes: int) -> bytes:
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16,
                       1, channels, sr, sr * channels * 2, channels * 2, 16, b"data",
                       data_bytes)


class _Appender:
    """A file written by whole ``os.write`` calls, so a kill never leaves half a row."""

    def __init__(self, path: Path, head: bytes) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.pending: list[bytes] = [head] if head else []

    def add(self, data: bytes) -> None:
        self.pending.append(data)

    def flush(self) -> None:
        if self.pending:
            data = b"".join(self.pending)
            self.pending = []
            while data:
                data = data[os.write(self.fd, data):]

    def close(self) -> None:
        self.flush()
        os.fsync(self.fd)
        os.close(self.fd)


class SessionRecorder:
    """Tee a live stream to a session folder: ``feed(block)`` as blocks come, then ``close()``.

    Parameters
    ----------
    path : str or Path
        The session folder to create; it must not hold a session already.
    info : SessionInfo
        The metadata (see :func:`info_from_profile`); ``audio_offset_s`` must be 0, the
        live sources' timebase.
    sr : int, optional
        Audio sample rate, Hz; None for a strap without mics (no ``mic.wav`` is written).
    imu_lsb : mapping, optional
        Per IMU, ``(acc_lsb, gyro_lsb)`` in the declared units: values are written as whole
        counts times these, exactly as the strap sent them.
    flush_s : float
        Longest time data stay in memory, seconds.
    clock : Clock, optional
        What ``flush_s`` is measured on (default the system's monotonic clock).

    Examples
    --------
    >>> from backpop_sense.record import SessionRecorder
    >>> from backpop_sense.sources.replay import ReplaySource
    >>> source = ReplaySource("data/samples/S01/2026-11-02a")
    >>> rec = SessionRecorder("out/S01/live", source.session.info, sr=16000)
    >>> for block in source:
    ...     rec.feed(block)
    >>> rec.close({"packets": 1234})
    """

    def __init__(self, path: str | Path, info: SessionInfo, *, sr: int | None,
                 imu_lsb: Mapping[str, tuple[float, float]] | None = None,
                 flush_s: float = FLUSH_S, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = Path(path)
        self.clock = clock
        self.info = info
        self.sr = sr
        self.flush_s = flush_s
        self.imu_lsb = dict(imu_lsb or {})
        self.path.mkdir(parents=True, exist_ok=True)
        if (self.path / "session.json").exists():
            raise BadInput(self.path / "session.json", None,
                           "already exists; refusing to overwrite a session")
        self._write_info({"complete": False})
        self.frames = 0
        self._wav: _Appender | None = None
        if sr is not None:
            self._wav = _Appender(self.path / "mic.wav", _wav_header(len(info.mics), sr, 0))
        head = (",".join(IMU_COLUMNS) + "\n").encode()
        self._imus = {i.name: _Appender(self.path / f"imu_{i.name}.csv", head) for i in info.imus}
        self._rot = {i.name: i.sensor_to_body for i in info.imus}
        self.rows = {i.name: 0 for i in info.imus}
        self.gaps: list[Gap] = []
        self._gaps = _Appender(self.path / "gaps.csv", b"stream,t_start,t_end,reason\n")
        self._last_flush = self.clock.monotonic()
        self._closed = False

    def _write_info(self, recording: Mapping[str, Any]) -> None:
        info = replace(self.info, extra={**self.info.extra, "recording": dict(recording)})
        tmp = self.path / "session.json.tmp"
        tmp.write_text(json.dumps(info.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.path / "session.json")

    def feed(self, block: Block) -> None:
        """Take one block; data reach the files within ``flush_s``."""
        if isinstance(block, AudioBlock):
            self._audio(block)
        elif isinstance(block, ImuBlock):
            self._imu(block)
        else:
            self.gaps.append(block)
            self._gaps.add(f"{block.stream},{block.t_start!r},{block.t_end!r},"
                           f"{block.reason}\n".encode())
        self.tick()

    def tick(self) -> None:
        """Flush if ``flush_s`` has passed; call it while no block comes (a lost link)."""
        if self.clock.monotonic() - self._last_flush >= self.flush_s:
            self.flush()

    def _audio(self, block: AudioBlock) -> None:
        if self._wav is None or block.sr != self.sr:
            raise ValueError(f"audio at {block.sr} Hz, the recording is at {self.sr} Hz")
        if block.start_index < self.frames:
            raise ValueError(f"audio block at sample {block.start_index} overlaps what is "
                             f"written ({self.frames} samples)")
        channels = len(self.info.mics)
        fill = block.start_index - self.frames
        for a in range(0, fill, AUDIO_SLICE):
            self._wav.add(bytes(min(AUDIO_SLICE, fill - a) * channels * 2))
        for a in range(0, block.n, AUDIO_SLICE):
            x = np.asarray(block.data[a:a + AUDIO_SLICE], dtype=np.float64) * 32768.0
            self._wav.add(np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes())
        self.frames = block.start_index + block.n

    def _imu(self, block: ImuBlock) -> None:
        imu = self.info.imu(block.imu)
        rot = self._rot[block.imu]
        acc = block.acc @ rot / ACC_UNITS[imu.acc_unit]
        gyro = block.gyro @ rot / GYRO_UNITS[imu.gyro_unit]
        if block.imu in self.imu_lsb:
            # Undo the float error of the unit conversion: the strap sent whole counts.
            acc_lsb, gyro_lsb = self.imu_lsb[block.imu]
            acc = np.rint(acc / acc_lsb) * acc_lsb
            gyro = np.rint(gyro / gyro_lsb) * gyro_lsb
        table = np.hstack([block.t[:, None], acc, gyro]).tolist()
        # repr is the shortest text that reads back as the same float.
        self._imus[block.imu].add(
            "".join(",".join(map(repr, row)) + "\n" for row in table).encode())
        self.rows[block.imu] += block.n

    def flush(self) -> None:
        """Write everything held to the files now and make the WAV header describe it."""
        if self._wav is not None:
            self._wav.flush()
            data_bytes = self.frames * len(self.info.mics) * 2
            os.pwrite(self._wav.fd, _wav_header(len(self.info.mics), self.sr or 0,
                                                data_bytes), 0)
        for f in self._imus.values():
            f.flush()
        self._gaps.flush()
        self._last_flush = self.clock.monotonic()

    def close(self, stats: Mapping[str, Any] | None = None) -> None:
        """Flush, ``fsync`` and finalise ``session.json`` (``recording.complete`` true).

        Parameters
        ----------
        stats : mapping, optional
            JSON-able facts about the recording (packets, losses, reconnections) kept under
            ``recording`` in ``session.json``.
        """
        if self._closed:
            return
        self.flush()
        for f in [*self._imus.values(), self._gaps] + ([self._wav] if self._wav else []):
            f.close()
        self._closed = True
        self._write_info({
            "complete": True,
            "ended": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "audio_frames": self.frames, "imu_rows": dict(self.rows), "gaps": len(self.gaps),
            **dict(stats or {})})

    def __enter__(self) -> SessionRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
