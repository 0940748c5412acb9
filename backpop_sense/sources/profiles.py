"""Strap profiles: what a strap's firmware sends over BLE, read from ``firmware_configs/*.toml``.

A profile names the GATT service and one notify characteristic per stream (the audio of all
mics together, and each IMU), the advertised name pattern, the packet layout (a header with a
sequence counter and a device timestamp, then the payload) and what the payload means (sample
rates, audio encoding, IMU scales, units and axes). The decoder (:mod:`.packets`), the
emulator and the recorder are all driven by it, so a lab supports its own firmware by writing
a profile, not code.

Every profile is checked on load; a fault raises :class:`~backpop_sense.errors.BadInput` naming
the file and the field.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput
from ..levels import is_level, level_index
from ..session import ACC_UNITS, GYRO_UNITS, MIN_AUDIO_RATE_HZ, MOUNTINGS, parse_axes
from ..vocab import ID_RULE, is_identifier

PROFILE_DIR = Path(__file__).resolve().parents[2] / "firmware_configs"
"""The profiles shipped with the repository; ``$BACKPOP_PROFILES`` (a folder) is searched first."""
ENCODINGS = ("pcm16", "ima-adpcm")
"""Audio payload encodings: raw little/big-endian int16, or IMA-ADPCM (4 bits per sample)."""
ATT_OVERHEAD_BYTES = 7
"""Bytes a notification costs on the link beyond its value: ATT opcode + handle, L2CAP header."""
ADPCM_CHANNEL_HEADER = 4
"""Per mic and packet, the IMA-ADPCM state before the first sample: int16 predictor, u8 step
index, one reserved byte; it makes each packet decodable on its own, so a lost packet costs
only its own samples."""


@dataclass(frozen=True)
class AudioSpec:
    """The audio characteristic: all mics interleaved, one packet per ``frames`` frames.

    Attributes
    ----------
    characteristic : str
        Notify characteristic UUID (lower case).
    sr : int
        Sample rate, Hz.
    encoding : str
        One of :data:`ENCODINGS`.
    frames : int
        Frames (one sample of every mic) per packet.
    mics : tuple of str
        Spinal level of each mic, top to bottom, in channel order.
    """

    characteristic: str
    sr: int
    encoding: str
    frames: int
    mics: tuple[str, ...]

    @property
    def payload_bytes(self) -> int:
        """Payload size of one packet, bytes."""
        n = len(self.mics)
        if self.encoding == "pcm16":
            return 2 * n * self.frames
        return n * (ADPCM_CHANNEL_HEADER + (self.frames + 1) // 2)


@dataclass(frozen=True)
class ImuSpec:
    """One IMU's characteristic: int16 counts ``ax ay az gx gy gz`` per sample.

    Attributes
    ----------
    name, level : str
        Identifier (``imu_<name>.csv``) and the spinal level it sits over.
    characteristic : str
        Notify characteristic UUID (lower case).
    rate : float
        Sample rate, Hz.
    samples : int
        Samples per packet.
    acc_unit, gyro_unit : str
        Units of the scaled values: ``g`` or ``m/s^2``; ``deg/s`` or ``rad/s``.
    acc_lsb, gyro_lsb : float
        Value of one count, in ``acc_unit`` and ``gyro_unit``.
    axes : str
        Body direction of each sensor axis while the subject stands upright.
    mounting : str
        One of :data:`~backpop_sense.session.MOUNTINGS`, written to ``session.json``:
        ``calibrate`` (the default: the motion tracker learns how the sensor sits from the
        subject's movement) or ``exact`` (a rigid holder aligned at the factory: ``axes``
        hold as declared).
    """

    name: str
    level: str
    characteristic: str
    rate: float
    samples: int
    acc_unit: str
    acc_lsb: float
    gyro_unit: str
    gyro_lsb: float
    axes: str
    mounting: str = "calibrate"

    @property
    def payload_bytes(self) -> int:
        """Payload size of one packet, bytes."""
        return 12 * self.samples


@dataclass(frozen=True)
class Profile:
    """A strap's firmware as seen over BLE.

    Attributes
    ----------
    name : str
        Profile identifier, also written as ``strap`` in ``session.json``.
    description : str
        One line for people.
    name_pattern : str
        Shell-style pattern of the advertised local name (``BackPop-*``).
    service_uuid : str
        The strap's primary GATT service, lower case.
    mtu : int
        ATT MTU the central asks for, bytes; every packet fits ``mtu - 3``.
    budget_bytes_per_s : float
        Sustained link throughput the profile is designed for, bytes/s; the profile's streams
        with their ATT overhead must fit in it.
    byte_order : str
        ``little`` or ``big``, for the header and every payload number.
    seq_bytes, ts_bytes : int
        Sizes of the header's sequence counter and device timestamp, bytes.
    ts_hz : float
        Device timestamp ticks per second.
    audio : AudioSpec or None
        The audio stream; None for an IMU-only sensor.
    imus : tuple of ImuSpec
        The IMU streams.
    source : Path
        The TOML file it was read from.
    """

    name: str
    description: str
    name_pattern: str
    service_uuid: str
    mtu: int
    budget_bytes_per_s: float
    byte_order: str
    seq_bytes: int
    ts_bytes: int
    ts_hz: float
    audio: AudioSpec | None
    imus: tuple[ImuSpec, ...]
    source: Path

    @property
    def header_bytes(self) -> int:
        """Header size of every packet, bytes."""
        return self.seq_bytes + self.ts_bytes

    @property
    def characteristics(self) -> dict[str, str]:
        """Stream name (``audio`` or the IMU name) for each characteristic UUID."""
        out = {self.audio.characteristic: "audio"} if self.audio else {}
        out.update({imu.characteristic: imu.name for imu in self.imus})
        return out

    def packet_rates(self) -> dict[str, float]:
        """Packets per second of each stream."""
        out = {"audio": self.audio.sr / self.audio.frames} if self.audio else {}
        out.update({imu.name: imu.rate / imu.samples for imu in self.imus})
        return out

    def packet_bytes(self) -> dict[str, int]:
        """Size of one packet of each stream, header included, bytes."""
        out = {"audio": self.header_bytes + self.audio.payload_bytes} if self.audio else {}
        out.update({imu.name: self.header_bytes + imu.payload_bytes for imu in self.imus})
        return out

    def link_bytes_per_s(self) -> float:
        """Throughput the profile needs on the link, ATT overhead included, bytes/s."""
        rates, sizes = self.packet_rates(), self.packet_bytes()
        return sum(rates[s] * (sizes[s] + ATT_OVERHEAD_BYTES) for s in rates)

    def matches_name(self, local_name: str | None) -> bool:
        """Whether an advertised local name fits :attr:`name_pattern`."""
        return local_name is not None and fnmatch.fnmatchcase(local_name, self.name_pattern)


class _Fields:
    """Typed access to one TOML table, raising :class:`BadInput` with the field's path."""

    def __init__(self, doc: Any, file: Path, prefix: str) -> None:
        if doc is None:
            raise BadInput(file, f"field {prefix.rstrip('.')}", "is missing")
        if not isinstance(doc, Mapping):
            raise BadInput(file, f"field {prefix.rstrip('.')}", "must be a table")
        self.doc, self.file, self.prefix = doc, file, prefix

    def fail(self, key: str, reason: str) -> BadInput:
        return BadInput(self.file, f"field {self.prefix}{key}", reason)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.doc:
            if default is ...:
                raise self.fail(key, "is missing")
            return default
        value = self.doc[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise self.fail(key, f"must be a {'/'.join(k.__name__ for k in kinds)}, "
                                 f"not {value!r}")
        return value

    def positive(self, key: str, kind: type = float, default: Any = ...) -> Any:
        value = self.get(key, (int, float) if kind is float else int, default)
        if value <= 0:
            raise self.fail(key, f"must be positive, not {value!r}")
        return kind(value)

    def choice(self, key: str, choices: tuple[str, ...] | Mapping[str, Any],
               default: Any = ...) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise self.fail(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def uuid(self, key: str) -> str:
        value = self.get(key, str)
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise self.fail(key, f"{value!r} is not a UUID "
                                 "(like 6e4b0001-8a3c-4b7e-9d2f-3b1c0a5e7f10)") from None

    def level(self, key: str) -> str:
        value = self.get(key, str)
        if not is_level(value):
            raise self.fail(key, f"{value!r} is not a spinal level C1..S5")
        return value


def _audio(doc: Any, file: Path) -> AudioSpec:
    f = _Fields(doc, file, "audio.")
    sr = f.positive("sample_rate_hz", int)
    if sr < MIN_AUDIO_RATE_HZ:
        raise f.fail("sample_rate_hz", f"{sr} Hz is below the {MIN_AUDIO_RATE_HZ} Hz minimum")
    mics = f.get("mics", list)
    if not mics or not all(isinstance(m, str) and is_level(m) for m in mics):
        raise f.fail("mics", "must list the spinal level (C1..S5) of each mic, at least one")
    order = [level_index(m) for m in mics]
    if order != sorted(set(order)):
        raise f.fail("mics", "mic levels must be distinct and ordered top to bottom")
    return AudioSpec(f.uuid("characteristic"), sr, f.choice("encoding", ENCODINGS),
                     f.positive("frames_per_packet", int), tuple(mics))


def _imu(doc: Any, file: Path, i: int) -> ImuSpec:
    f = _Fields(doc, file, f"imu[{i}].")
    name = f.get("name", str)
    if not is_identifier(name):
        raise f.fail("name", f"{name!r} is not a valid identifier ({ID_RULE})")
    axes = f.get("axes", str)
    parse_axes(axes, where=(file, f"imu[{i}].axes"))
    return ImuSpec(name, f.level("level"), f.uuid("characteristic"),
                   f.positive("sample_rate_hz"), f.positive("samples_per_packet", int),
                   f.choice("acc_unit", ACC_UNITS), f.positive("acc_lsb"),
                   f.choice("gyro_unit", GYRO_UNITS), f.positive("gyro_lsb"), axes,
                   f.choice("mounting", MOUNTINGS, default="calibrate"))


def parse_profile(doc: Mapping[str, Any], file: Path) -> Profile:
    """Validate a profile document (parsed TOML) and return its :class:`Profile`.

    Parameters
    ----------
    doc : mapping
        The TOML document.
    file : Path
        Where it came from, for error messages.

    Raises
    ------
    BadInput
        Naming the field at fault: a missing or mistyped value, a malformed UUID, a packet
        larger than the MTU allows, streams that need more throughput than the budget...
    """
    strap = _Fields(doc.get("strap"), file, "strap.")
    name = strap.get("name", str)
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise strap.fail("name", f"{name!r} is not a valid profile name ([A-Za-z0-9_.-])")
    radio = _Fields(doc.get("radio", {}), file, "radio.")
    mtu = radio.positive("mtu", int, 247)
    if not 23 <= mtu <= 517:
        raise radio.fail("mtu", f"{mtu} is outside the ATT MTU range 23..517")
    packet = _Fields(doc.get("packet"), file, "packet.")
    seq_bytes = packet.positive("sequence_bytes", int)
    if seq_bytes not in (1, 2, 4):
        raise packet.fail("sequence_bytes", "must be 1, 2 or 4")
    ts_bytes = packet.positive("timestamp_bytes", int)
    if ts_bytes not in (4, 8):
        raise packet.fail("timestamp_bytes", "must be 4 or 8")
    audio, imus = _streams(doc, file)
    profile = Profile(
        name, strap.get("description", str, ""), strap.get("advertised_name", str),
        strap.uuid("service_uuid"), mtu, radio.positive("budget_bytes_per_s", float, 98000.0),
        packet.choice("byte_order", ("little", "big")), seq_bytes, ts_bytes,
        packet.positive("timestamp_hz"), audio, imus, file)
    _check_link(profile, file)
    return profile


def _streams(doc: Mapping[str, Any], file: Path
             ) -> tuple[AudioSpec | None, tuple[ImuSpec, ...]]:
    """The ``[audio]`` table and the ``[[imu]]`` tables: at least one stream, IMU names
    distinct."""
    audio = _audio(doc["audio"], file) if "audio" in doc else None
    imu_docs = doc.get("imu", [])
    if not isinstance(imu_docs, list):
        raise BadInput(file, "field imu", "must be an array of tables ([[imu]])")
    imus = tuple(_imu(d, file, i) for i, d in enumerate(imu_docs))
    if audio is None and not imus:
        raise BadInput(file, None, "declares no stream: add an [audio] table or [[imu]] tables")
    if len({i.name for i in imus}) != len(imus):
        raise BadInput(file, "field imu", "IMU names must be distinct")
    return audio, imus


def _check_link(profile: Profile, file: Path) -> None:
    """Raise :class:`BadInput` unless every stream has its own characteristic, every packet
    fits one notification of the MTU, and the streams fit the link's budget."""
    chars = [profile.audio.characteristic] if profile.audio else []
    chars += [i.characteristic for i in profile.imus]
    if len(set(chars)) != len(chars) or profile.service_uuid in chars:
        raise BadInput(file, "field characteristic",
                       "every stream needs its own characteristic UUID, distinct from the service")
    mtu = profile.mtu
    for stream, size in profile.packet_bytes().items():
        if size > mtu - 3:
            where = "audio.frames_per_packet" if stream == "audio" else "imu.samples_per_packet"
            raise BadInput(file, f"field {where}",
                           f"a {stream} packet is {size} bytes but an MTU of {mtu} carries at "
                           f"most {mtu - 3} per notification")
    need = profile.link_bytes_per_s()
    if need > profile.budget_bytes_per_s:
        raise BadInput(file, "field radio.budget_bytes_per_s",
                       f"the streams need {need:.0f} bytes/s on the link, more than the "
                       f"{profile.budget_bytes_per_s:.0f} budgeted (use IMA-ADPCM audio, "
                       "fewer channels or a faster PHY)")


def profile_dirs() -> list[Path]:
    """Folders searched for profiles by name: ``$BACKPOP_PROFILES`` first, then the shipped ones."""
    extra = os.environ.get("BACKPOP_PROFILES")
    return ([Path(extra)] if extra else []) + [PROFILE_DIR]


def load_profile(name_or_path: str | Path) -> Profile:
    """Read and validate a profile, by file path or by name (``backpop-strap-v1``).

    Parameters
    ----------
    name_or_path : str or Path
        A ``.toml`` file, or the name of one in :func:`profile_dirs`.

    Returns
    -------
    Profile

    Raises
    ------
    BadInput
        When no such profile exists, the file is not valid TOML, or a field is wrong.

    Examples
    --------
    >>> from backpop_sense.sources.profiles import load_profile
    >>> p = load_profile("backpop-strap-v1")
    >>> p.audio.sr, [i.name for i in p.imus]
    (16000, ['thoracic', 'sacral'])
    """
    path = Path(name_or_path)
    if not path.is_file():
        found = [d / f"{name_or_path}.toml" for d in profile_dirs()
                 if (d / f"{name_or_path}.toml").is_file()]
        if not found:
            known = ", ".join(p.name for p in list_profiles()) or "none"
            raise BadInput(str(name_or_path), None, f"no such profile (known: {known})")
        path = found[0]
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise BadInput(path, None, "not a UTF-8 text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(path, None, f"invalid TOML ({exc})") from None
    return parse_profile(doc, path)


def list_profiles() -> list[Profile]:
    """Every valid profile in :func:`profile_dirs` (a name found twice: the first wins)."""
    seen: dict[str, Profile] = {}
    for folder in profile_dirs():
        for file in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            profile = load_profile(file)
            seen.setdefault(profile.name, profile)
    return list(seen.values())
