"""A strap emulated in software: a Bumble GATT server that plays a recorded session.

The emulator advertises like the strap (the profile's name pattern and service UUID), serves
the profile's characteristics, and once a central has subscribed to all of them it plays the
session packetised per the profile at the profile's real rate (or ``speed`` times it): each
packet leaves when its last sample would have been measured. Like a real strap it keeps
sampling through a lost link (those packets are lost, the counters run on) and advertises
again after a disconnect. ``drop`` and ``disconnect_at`` inject the radio's faults, since
Bumble's ``LocalLink`` models no radio.

Needs the ``ble`` extra (``pip install backpop-sense[ble]``).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, Service

from ..errors import BadInput, BadParameter
from ..params import check_values
from ..session import ACC_UNITS, GYRO_UNITS, Session, parse_axes
from .ble import PACE_RULES
from .packets import PacketEncoder
from .profiles import ImuSpec, Profile

ADVERTISING_INTERVAL_MS = 20.0
"""Shortest legal advertising interval: a central reconnects within about one interval."""
RATE_TOLERANCE = 0.02
"""Relative difference allowed between a session's IMU rate and the profile's."""

SendHook = Callable[[str, float, int, float], None]
"""Called after each packet leaves: ``(stream, t0_s, samples, time.perf_counter())``."""


@dataclass(order=True)
class _Item:
    t_send: float
    order: int
    stream: str = field(compare=False)
    t0: float = field(compare=False)
    samples: np.ndarray = field(compare=False)


def check_session(session: Session, profile: Profile) -> None:
    """Raise :class:`BadInput` unless the session can be played as a strap with ``profile``.

    The session needs the profile's mics (same levels, same rate) and each of its IMUs at the
    profile's rate (within 2 %).
    """
    file = session.path / "session.json"
    if profile.audio is not None:
        if tuple(session.info.mic_names) != profile.audio.mics:
            raise BadInput(file, "field mics",
                           f"the session's mics {session.info.mic_names} are not those of "
                           f"profile {profile.name} {list(profile.audio.mics)}")
        if session.audio.sr != profile.audio.sr:
            raise BadInput(session.path / "mic.wav", "sample rate",
                           f"{session.audio.sr} Hz, but profile {profile.name} sends "
                           f"{profile.audio.sr} Hz")
    for spec in profile.imus:
        if spec.name not in session.imu_rates:
            raise BadInput(file, "field imus",
                           f"no IMU {spec.name!r}, which profile {profile.name} sends")
        rate = session.imu_rates[spec.name]
        if abs(rate / spec.rate - 1) > RATE_TOLERANCE:
            raise BadInput(session.imu_path(spec.name), "field t",
                           f"{rate:.1f} Hz, but profile {profile.name} sends {spec.rate:g} Hz")


def imu_counts(acc: np.ndarray, gyro: np.ndarray, spec: ImuSpec) -> np.ndarray:
    """SI body-axis samples to the strap's int16 counts ``ax ay az gx gy gz`` (sensor axes)."""
    rot = parse_axes(spec.axes)
    raw = np.hstack([acc @ rot / ACC_UNITS[spec.acc_unit] / spec.acc_lsb,
                     gyro @ rot / GYRO_UNITS[spec.gyro_unit] / spec.gyro_lsb])
    return np.clip(np.rint(raw), -32768, 32767).astype(np.int16)


def _audio_items(session: Session, profile: Profile) -> Iterator[_Item]:
    spec = profile.audio
    assert spec is not None
    index = 0
    for block in session.audio_blocks(spec.frames):
        if block.n < spec.frames:
            return  # a strap sends whole packets only
        frames = np.clip(np.rint(block.data.astype(np.float64) * 32768), -32768, 32767)
        yield _Item((index + spec.frames) / spec.sr, 0, "audio", index / spec.sr,
                    frames.astype(np.int16))
        index += spec.frames


def _imu_items(session: Session, spec: ImuSpec, order: int) -> Iterator[_Item]:
    t_buf, c_buf = np.empty(0), np.empty((0, 6), dtype=np.int16)
    for chunk in session.imu_chunks(spec.name):
        t_buf = np.concatenate([t_buf, chunk.t])
        c_buf = np.concatenate([c_buf, imu_counts(chunk.acc, chunk.gyro, spec)])
        n = len(t_buf) // spec.samples * spec.samples
        for a in range(0, n, spec.samples):
            yield _Item(float(t_buf[a] + spec.samples / spec.rate), order, spec.name,
                        float(t_buf[a]), c_buf[a:a + spec.samples])
        t_buf, c_buf = t_buf[n:], c_buf[n:]


def packet_items(session: Session, profile: Profile) -> Iterator[_Item]:
    """Every packet's content in the order a strap sends them (by the time it is complete)."""
    check_session(session, profile)
    streams = [_audio_items(session, profile)] if profile.audio else []
    streams += [_imu_items(session, spec, i + 1) for i, spec in enumerate(profile.imus)]
    return heapq.merge(*streams)


@dataclass
class StrapView:
    """What a strap with a profile sends of a session, decoded: the exact expected recording.

    Attributes
    ----------
    audio : ndarray, shape (frames, mics), int16
        The audio as the receiver decodes it (IMA-ADPCM: the coder's reconstruction).
    imu_t : dict of ndarray
        Per IMU, the sample times, s.
    imu_counts : dict of ndarray, shape (n, 6), int16
        Per IMU, the counts sent.
    """

    audio: np.ndarray
    imu_t: dict[str, np.ndarray]
    imu_counts: dict[str, np.ndarray]


def strap_view(session: Session | str | Path, profile: Profile) -> StrapView:
    """Decode-side view of everything a strap with ``profile`` sends of ``session``.

    Examples
    --------
    >>> from backpop_sense.sources.emulator import strap_view
    >>> from backpop_sense.sources.profiles import load_profile
    >>> view = strap_view("data/samples/S01/2026-11-02a", load_profile("backpop-strap-v1"))
    >>> view.audio.shape
    (799920, 3)
    """
    session = session if isinstance(session, Session) else Session(session)
    encoder = PacketEncoder(profile)
    audio: list[np.ndarray] = []
    counts: dict[str, list[np.ndarray]] = {i.name: [] for i in profile.imus}
    for item in packet_items(session, profile):
        if item.stream == "audio":
            audio.append(encoder.audio(item.samples, item.t0)[1])
        else:
            counts[item.stream].append(item.samples)
    n_mics = len(profile.audio.mics) if profile.audio else 0
    sent = {k: np.concatenate(v) for k, v in counts.items()}
    return StrapView(
        np.concatenate(audio) if audio else np.empty((0, n_mics), dtype=np.int16),
        {k: session.read_imu(k).t[:len(v)] for k, v in sent.items()}, sent)


@dataclass
class EmulatorStats:
    """What the emulator did: packets sent, dropped on purpose, lost while disconnected."""

    sent: int = 0
    dropped: int = 0
    unheard: int = 0
    disconnects: int = 0


class StrapEmulator:
    """A strap on a Bumble device that plays ``session`` per ``profile``.

    Parameters
    ----------
    session : Session or path
        The recorded session to play; its mics and IMU rates must match the profile.
    profile : Profile
        What to advertise and how to packetise.
    device : Device
        A Bumble device, not powered on (from ``VirtualRadio.device`` or a real transport).
    name : str, optional
        Advertised local name; by default the profile's pattern with ``*`` as ``0001``.
    speed : float
        1.0 plays in real time, 10 ten times faster (compressed time for tests).
    drop : float
        Probability that a packet is lost on the air (0..1).
    disconnect_at : sequence of float
        Session times, s, at which the strap drops the link (a cut due while the link is
        down drops the next one as soon as it is up).
    seed : int
        Seed of the packet-loss draw.
    ts0 : int
        The strap's clock at session time 0, ticks.
    clock_ppm : float
        Error of the strap's timestamp clock against its audio clock, ppm.
    on_send : callable, optional
        A :data:`SendHook`, for latency measurements.

    Examples
    --------
    ``start`` advertises; ``play`` then sends the session once a central has subscribed to every
    stream (as :class:`~backpop_sense.sources.ble.LiveSource` with ``emulate`` does, in the same
    event loop).

    >>> import asyncio
    >>> from backpop_sense.sources.bumble_backend import VirtualRadio
    >>> from backpop_sense.sources.emulator import StrapEmulator
    >>> from backpop_sense.sources.profiles import load_profile
    >>> async def advertise(session, profile):
    ...     radio = VirtualRadio()
    ...     emulator = StrapEmulator(session, profile, radio.device("strap", "C0:98:E5:49:00:01"))
    ...     await emulator.start()
    ...     return emulator.name
    >>> asyncio.run(advertise("data/samples/S01/2026-11-02a", load_profile("backpop-strap-v1")))
    'BackPop-0001'
    """

    def __init__(self, session: Session | str | Path, profile: Profile, device: Device, *,
                 name: str | None = None, speed: float = 1.0, drop: float = 0.0,
                 disconnect_at: Sequence[float] = (), seed: int = 0, ts0: int = 0x10000,
                 clock_ppm: float = 0.0, on_send: SendHook | None = None) -> None:
        check_values("StrapEmulator", PACE_RULES, speed=speed, drop=drop,
                     disconnect_at=tuple(disconnect_at))
        self.session = session if isinstance(session, Session) else Session(session)
        check_session(self.session, profile)
        self.profile = profile
        self.device = device
        self.name = name or profile.name_pattern.replace("*", "0001").replace("?", "0")
        self.speed = speed
        self.drop = drop
        self.disconnect_at = sorted(disconnect_at)
        self.rng = np.random.default_rng(seed)
        self.encoder = PacketEncoder(profile, ts0=ts0, clock_ppm=clock_ppm)
        self.on_send = on_send
        self.stats = EmulatorStats()
        self.done = asyncio.Event()
        self._subscribed: set[str] = set()
        self._all_subscribed = asyncio.Event()
        self._chars: dict[str, Characteristic] = {}

    async def start(self) -> None:
        """Add the GATT service, power on and advertise."""
        for uuid, stream in self.profile.characteristics.items():
            char = Characteristic(uuid, Characteristic.Properties.NOTIFY,
                                  Characteristic.Permissions.READABLE, b"")
            char.on(Characteristic.EVENT_SUBSCRIPTION, self._subscription(stream))
            self._chars[stream] = char
        self.device.add_service(Service(self.profile.service_uuid, list(self._chars.values())))
        self.device.gatt_server.max_mtu = self.profile.mtu
        self.device.on(Device.EVENT_CONNECTION, self._on_connection)
        await self.device.power_on()
        ad = AdvertisingData([
            (AdvertisingData.FLAGS, bytes([0x06])),
            (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode()),
            (AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
             UUID(self.profile.service_uuid).to_bytes(force_128=True)),
        ])
        await self.device.start_advertising(
            advertising_data=bytes(ad), auto_restart=True,
            advertising_interval_min=ADVERTISING_INTERVAL_MS,
            advertising_interval_max=ADVERTISING_INTERVAL_MS)

    @property
    def address(self) -> str:
        """The address the strap advertises with."""
        return self.device.random_address.to_string(False)

    def _subscription(self, stream: str) -> Callable[..., None]:
        def on_subscription(connection: Connection, notify: bool, indicate: bool) -> None:
            if notify:
                self._subscribed.add(stream)
            else:
                self._subscribed.discard(stream)
            if self._subscribed == set(self._chars):
                self._all_subscribed.set()
            else:
                self._all_subscribed.clear()
        return on_subscription

    def _on_connection(self, connection: Connection) -> None:
        def on_disconnection(reason: int) -> None:
            self._subscribed.clear()
            self._all_subscribed.clear()
        connection.on(Connection.EVENT_DISCONNECTION, on_disconnection)

    async def play(self) -> EmulatorStats:
        """Wait for a central to subscribe to every stream, then play the whole session."""
        await self._all_subscribed.wait()
        start = time.monotonic()
        cuts = list(self.disconnect_at)
        for item in packet_items(self.session, self.profile):
            delay = start + item.t_send / self.speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            # A cut due while the link is down waits for the next link: every cut drops one.
            while cuts and cuts[0] <= item.t_send and self._all_subscribed.is_set():
                cuts.pop(0)
                await self.drop_link()
            await self._send(item)
        self.done.set()
        return self.stats

    async def _send(self, item: _Item) -> None:
        if item.stream == "audio":
            packet, _ = self.encoder.audio(item.samples, item.t0)
        else:
            packet = self.encoder.imu(item.stream, item.samples, item.t0)
        if self.drop and self.rng.random() < self.drop:
            self.stats.dropped += 1
            return
        if item.stream not in self._subscribed:
            self.stats.unheard += 1
            return
        await self.device.notify_subscribers(self._chars[item.stream], packet)
        self.stats.sent += 1
        if self.on_send is not None:
            self.on_send(item.stream, item.t0, len(item.samples), time.perf_counter())

    async def drop_link(self) -> None:
        """Drop the link now (the strap disconnects), as ``disconnect_at`` does on schedule."""
        for connection in list(self.device.connections.values()):
            self.stats.disconnects += 1
            await connection.disconnect()


async def serve(session: Session | str | Path, profile: Profile, transport: str, *,
                speed: float = 1.0, drop: float = 0.0, disconnect_at: Sequence[float] = (),
                address: str = "C0:98:E5:49:00:01") -> EmulatorStats:
    """Play ``session`` as a strap on a Bumble HCI transport (``backpop emulate``).

    Parameters
    ----------
    session, profile
        As :class:`StrapEmulator`.
    transport : str
        A Bumble transport spec: ``usb:0`` (a real USB dongle), ``serial:/dev/ttyACM0``,
        ``tcp-client:127.0.0.1:9000`` (a virtual controller such as Android's netsim)...
    speed, drop, disconnect_at
        As :class:`StrapEmulator`.
    address : str
        The strap's address.

    Returns
    -------
    EmulatorStats
        When the whole session has been played.
    """
    from bumble.hci import Address
    from bumble.transport import open_transport

    async with await open_transport(transport) as hci:
        device = Device.with_hci(profile.name, Address(address), hci.source, hci.sink)
        emulator = StrapEmulator(session, profile, device, speed=speed, drop=drop,
                                 disconnect_at=disconnect_at)
        await emulator.start()
        return await emulator.play()


def emulate(session: str | Path, profile: str | Path | Profile, *, transport: str,
            speed: float = 1.0, drop: float = 0.0,
            disconnect_at: Sequence[float] = ()) -> EmulatorStats:
    """``backpop emulate SESSION --profile P --transport T``: :func:`serve`, run to the end.

    Parameters
    ----------
    session : str or Path
        The session folder to play.
    profile : str, Path or Profile
        Profile name or file.
    transport : str
        Bumble transport spec of the controller the strap is emulated on (see :func:`serve`).
    speed, drop, disconnect_at
        As :class:`StrapEmulator`.

    Returns
    -------
    EmulatorStats

    Raises
    ------
    BadInput
        For a session that does not fit the profile, or a transport that cannot be opened.
    """
    from bumble.transport.common import TransportInitError, TransportSpecError

    from .profiles import load_profile

    check_values("emulator", PACE_RULES, speed=speed, drop=drop,
                 disconnect_at=tuple(disconnect_at))
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    sess = Session(session)
    check_session(sess, prof)
    try:
        return asyncio.run(serve(sess, prof, transport, speed=speed, drop=drop,
                                 disconnect_at=disconnect_at))
    except (OSError, TransportInitError, TransportSpecError) as exc:
        raise BadParameter("emulator", "transport", f"cannot use {transport!r}: {exc}") from None
