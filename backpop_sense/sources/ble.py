"""A live strap over Bluetooth LE (bleak): scan, connect, keep the link, stream blocks, record.

:class:`StrapLink` connects with bleak's ``BleakClient``, takes the MTU the strap offers,
subscribes to the profile's characteristics and, when the link drops, reconnects with an
exponential backoff while the recording goes on; the packets lost meanwhile come out of the
decoder as gaps (the strap's sequence counters run on). bleak-retry-connector is not used: it
is built around BlueZ's D-Bus state (device cache, adapter slots) and wraps a single connect,
whereas the loop here must also resubscribe and must work with any bleak backend, including
:mod:`.bumble_backend` for emulated straps.

:class:`LiveSource` runs that asyncio side in a background thread (with, for ``--emulate``,
an emulated strap on Bumble's in-process radio) and hands decoded blocks to the calling
thread, where :func:`record` tees them to a :class:`~backpop_sense.record.SessionRecorder`
and runs the pipeline and its live view on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakCharacteristicNotFoundError, BleakError

from ..blocks import AudioBlock, Block, Gap, ImuBlock
from ..errors import BadInput
from ..params import (
    FINITE,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    Instance,
    Numbers,
    OrNone,
    Rules,
    check,
)
from ..record import SessionRecorder, info_from_profile
from ..session import AudioInfo, Session, SessionInfo
from ..vocab import is_identifier
from .packets import DecodeStats, PacketDecoder
from .profiles import Profile, list_profiles, load_profile

if TYPE_CHECKING:
    from ..pipeline import PipelineConfig
    from .lsl import LslConfig, Outlets

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
FIRST_CONNECT_S = 30.0
BACKOFF_S = (0.05, 5.0)
"""First and longest wait between failed connection attempts, seconds (doubling)."""
IDLE_S = 0.25
"""How long the consumer waits for a block before it flushes the recorder and redraws."""
REDRAW_S = 0.25
"""Shortest time between two renderings of the live view, seconds."""
PIPELINE_SLICE_S = 1.0
"""Longest audio block handed to the pipeline (a long zero-filled gap comes in slices)."""


@dataclass(frozen=True)
class FoundStrap:
    """A device seen advertising that matches a profile (name pattern or service UUID)."""

    address: str
    name: str | None
    rssi: int
    profile: str
    device: BLEDevice = field(repr=False, compare=False)


def match_profile(name: str | None, ad: AdvertisementData,
                  profiles: Sequence[Profile]) -> Profile | None:
    """The first profile whose service UUID is advertised or whose name pattern fits."""
    for p in profiles:
        if p.service_uuid in ad.service_uuids or p.matches_name(name or ad.local_name):
            return p
    return None


async def scan_async(timeout_s: float = 5.0, *, profiles: Sequence[Profile] | None = None,
                     backend: type[BaseBleakScanner] | None = None,
                     backend_kwargs: dict[str, Any] | None = None) -> list[FoundStrap]:
    """Scan for ``timeout_s`` seconds; return the straps matching any profile, by RSSI.

    Parameters
    ----------
    timeout_s : float
        Scan duration, seconds.
    profiles : sequence of Profile, optional
        Which straps to look for; every known profile by default.
    backend, backend_kwargs
        A bleak scanner backend and its arguments (None: the platform's).
    """
    profiles = list(profiles) if profiles is not None else list_profiles()
    seen = await BleakScanner.discover(timeout=timeout_s, return_adv=True, backend=backend,
                                       **(backend_kwargs or {}))
    found = []
    for device, ad in seen.values():
        profile = match_profile(device.name, ad, profiles)
        if profile is not None:
            found.append(FoundStrap(device.address, ad.local_name or device.name, ad.rssi,
                                    profile.name, device))
    return sorted(found, key=lambda f: -f.rssi)


def scan(timeout_s: float = 5.0, *, profile: str | None = None) -> list[FoundStrap]:
    """``backpop scan``: straps advertising nearby that match a profile (platform radio).

    Parameters
    ----------
    timeout_s : float
        Scan duration, seconds.
    profile : str, optional
        Only this profile (name or file); all known profiles by default.

    Returns
    -------
    list of FoundStrap
        Strongest signal first.

    Examples
    --------
    >>> from backpop_sense.sources.ble import scan
    >>> for s in scan(5.0):  # doctest: +SKIP
    ...     print(s.address, s.name, s.rssi, s.profile)
    """
    profiles = [load_profile(profile)] if profile else None
    try:
        return asyncio.run(scan_async(timeout_s, profiles=profiles))
    except (BleakError, OSError) as exc:
        raise BadInput("bluetooth", None, f"cannot scan ({exc!r}): is there a Bluetooth "
                       "adapter, and is its service (BlueZ on Linux) running?") from None


@dataclass
class LinkStats:
    """The link's history: connections, losses and how long each reconnection took."""

    connects: int = 0
    link_losses: int = 0
    failed_attempts: int = 0
    reconnect_s: list[float] = field(default_factory=list)
    mtu: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The statistics as JSON-able values (reconnection times summarised)."""
        r = np.asarray(self.reconnect_s)
        return {"connects": self.connects, "link_losses": self.link_losses,
                "failed_attempts": self.failed_attempts, "mtu": self.mtu,
                "reconnect_median_s": float(np.median(r)) if r.size else None,
                "reconnect_max_s": float(r.max()) if r.size else None}


class StrapLink:
    """Connect to a strap, subscribe to its streams, and reconnect after every loss.

    Parameters
    ----------
    profile : Profile
        The strap's profile (service and characteristics).
    target : BLEDevice or str
        The strap (a scan result, or an address).
    on_packet : callable
        ``on_packet(stream, data)`` for each notification, in the event loop's thread.
    on_link_lost : callable, optional
        Called when the link drops unasked.
    backend, backend_kwargs
        A bleak client backend and its arguments (None: the platform's).
    connect_timeout_s : float
        Timeout of each connection attempt, seconds.
    backoff_s : (float, float)
        First and longest wait between failed attempts, seconds.
    first_connect_s : float
        Give up (:class:`BadInput`) if the first connection has not succeeded by then,
        seconds; once connected, the link is retried for as long as the recording runs.
    """

    def __init__(self, profile: Profile, target: BLEDevice | str,
                 on_packet: Callable[[str, bytearray], None], *,
                 on_link_lost: Callable[[], None] | None = None,
                 backend: type[BaseBleakClient] | None = None,
                 backend_kwargs: dict[str, Any] | None = None,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 backoff_s: tuple[float, float] = BACKOFF_S,
                 first_connect_s: float = FIRST_CONNECT_S) -> None:
        self.profile = profile
        self.target = target
        self.on_packet = on_packet
        self.on_link_lost = on_link_lost
        self.backend = backend
        self.backend_kwargs = backend_kwargs or {}
        self.connect_timeout_s = connect_timeout_s
        self.backoff_s = backoff_s
        self.first_connect_s = first_connect_s
        self.stats = LinkStats()
        self.connected = asyncio.Event()

    async def _open(self, lost: asyncio.Event) -> BleakClient:
        client = BleakClient(self.target, lambda _: lost.set(), [self.profile.service_uuid],
                             timeout=self.connect_timeout_s, backend=self.backend,
                             **self.backend_kwargs)
        await client.connect()
        try:
            if client.services.get_service(self.profile.service_uuid) is None:
                raise BadInput(f"profile {self.profile.name}", None,
                               f"the device at {client.address} has no service "
                               f"{self.profile.service_uuid}")
            for uuid, stream in self.profile.characteristics.items():
                await client.start_notify(uuid, lambda _, data, s=stream: self.on_packet(s, data))
        except BleakCharacteristicNotFoundError as exc:
            await client.disconnect()
            raise BadInput(f"profile {self.profile.name}", None,
                           f"the device at {client.address} lacks characteristic "
                           f"{exc.char_specifier}") from None
        except BaseException:
            await client.disconnect()
            raise
        return client

    async def _open_within(self, lost: asyncio.Event, timeout_s: float) -> BleakClient:
        # Connection, discovery and subscriptions together can stall when the link drops
        # under them, and some stacks ignore the cancellation wait_for would wait for: a
        # stalled attempt is abandoned instead.
        task = asyncio.ensure_future(self._open(lost))
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if not done:
            task.cancel()
            raise TimeoutError(f"no connection in {timeout_s:g} s")
        return task.result()

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the strap connected and subscribed until ``stop`` is set."""
        failures = 0
        lost_at: float | None = None
        started = time.monotonic()
        while not stop.is_set():
            lost = asyncio.Event()
            try:
                client = await self._open_within(lost, 2 * self.connect_timeout_s)
            except BadInput:
                raise
            except Exception as exc:
                if isinstance(exc, OSError) and self.stats.connects == 0:
                    raise BadInput("bluetooth", None, f"cannot connect ({exc!r}): is there a "
                                   "Bluetooth adapter, and is its service running?") from None
                # Each backend raises its own errors for a refused, failed or interrupted
                # connection (bleak's, D-Bus or Bumble errors): all mean "try again".
                log.info("connection attempt failed: %r", exc)
                if self.stats.connects == 0 and \
                        time.monotonic() - started > self.first_connect_s:
                    raise BadInput(f"strap {self.target}", None,
                                   f"no connection in {self.first_connect_s:g} s "
                                   f"({exc!r})") from None
                failures += 1
                self.stats.failed_attempts += 1
                wait = min(self.backoff_s[1], self.backoff_s[0] * 2 ** (failures - 1))
                await _wait_any(stop, timeout=wait)
                continue
            failures = 0
            self.stats.connects += 1
            self.stats.mtu = client.mtu_size
            if lost_at is not None:
                self.stats.reconnect_s.append(time.monotonic() - lost_at)
            self.connected.set()
            await _wait_any(stop, lost)
            if not lost.is_set():
                await client.disconnect()
                return
            lost_at = time.monotonic()
            self.connected.clear()
            self.stats.link_losses += 1
            if self.on_link_lost is not None:
                self.on_link_lost()


async def _wait_any(*events: asyncio.Event, timeout: float | None = None) -> None:
    tasks = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


PACE_RULES: Rules = {"speed": POSITIVE, "drop": PROBABILITY,
                     "disconnect_at": Numbers(NON_NEGATIVE, empty=True)}
"""How an emulated strap may be played (here or by ``backpop emulate``): its pace (1 = real
time), its packet loss and the session times (s) at which it drops the link."""


@dataclass(frozen=True)
class Emulation:
    """Play a recorded session as an emulated strap in-process (``record --emulate``).

    Attributes
    ----------
    session : Path
        The session to play.
    speed : float
        Pace: 1.0 is real time.
    drop : float
        Probability of losing each packet.
    disconnect_at : tuple of float
        Session times, s, at which the strap drops the link.
    clock_ppm : float
        Error of the strap's timestamp clock, ppm.
    on_send : callable, optional
        Latency probe: the emulator's send hook (see ``emulator.SendHook``).
    """

    session: Path
    speed: float = 1.0
    drop: float = 0.0
    disconnect_at: tuple[float, ...] = ()
    clock_ppm: float = 0.0
    on_send: Callable[[str, float, int, float], None] | None = None

    RULES: ClassVar[Rules] = {
        "session": Instance((str, Path), "a session folder"), **PACE_RULES,
        "clock_ppm": FINITE, "on_send": OrNone(Instance(Callable, "a callable")),
    }

    def __post_init__(self) -> None:
        check(self)


_END = object()


class LiveSource:
    """Decoded blocks from a strap over BLE, iterated in the calling thread.

    The BLE side (bleak, the decoder and, with ``emulate``, the emulated strap on Bumble's
    in-process radio) runs in a background thread. Iteration ends when :meth:`stop` is called
    or when the emulated session has been played.

    Parameters
    ----------
    profile : Profile
        The strap's profile.
    address : str, optional
        The strap's address; by default the first device found that matches the profile.
    emulate : Emulation, optional
        Record from an emulated strap instead of the platform's radio.
    scan_timeout_s, connect_timeout_s : float
        Seconds to look for the strap, and per connection attempt.
    on_idle : callable, optional
        Called in the iterating thread whenever no block came for :data:`IDLE_S`.
    on_decoded : callable, optional
        Latency probe: ``on_decoded(block, time.perf_counter())`` in the BLE thread.

    Examples
    --------
    >>> from pathlib import Path
    >>> from backpop_sense.sources.ble import Emulation, LiveSource
    >>> from backpop_sense.sources.profiles import load_profile
    >>> src = LiveSource(load_profile("backpop-strap-v1"),
    ...                  emulate=Emulation(Path("data/samples/S01/2026-11-02a"), speed=10.0))
    >>> blocks = list(src)  # doctest: +SKIP
    """

    def __init__(self, profile: Profile, *, address: str | None = None,
                 emulate: Emulation | None = None, scan_timeout_s: float = 10.0,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 on_idle: Callable[[], None] | None = None,
                 on_decoded: Callable[[Block, float], None] | None = None) -> None:
        self.profile = profile
        self.address = address
        self.emulate = emulate
        self.scan_timeout_s = scan_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.on_idle = on_idle
        self.on_decoded = on_decoded
        self.decoder = PacketDecoder(profile)
        self.link: StrapLink | None = None
        self.emulator: Any = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._thread_main, name="backpop-ble",
                                        daemon=True)
        self._started = False

    @property
    def stats(self) -> DecodeStats:
        """The decoder's packet statistics."""
        return self.decoder.stats

    def stop(self) -> None:
        """End the stream (thread-safe): disconnect, and let iteration finish."""
        if self._loop is not None and self._stop is not None:
            # The loop may have closed already (the emulated session ended meanwhile).
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)

    def __iter__(self) -> Iterator[Block]:
        # A fresh iterator after an interruption (Ctrl-C) goes on with what is queued.
        if not self._started:
            self._started = True
            self._thread.start()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=IDLE_S)
                except queue.Empty:
                    if self.on_idle is not None:
                        self.on_idle()
                    continue
                if item is _END:
                    self._thread.join()
                    return
                if isinstance(item, BaseException):
                    self._thread.join()
                    raise item
                yield item
        finally:
            self.stop()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # handed to the iterating thread, which raises it
            self._queue.put(exc)
        self._queue.put(_END)

    def _on_packet(self, stream: str, data: bytearray) -> None:
        for block in self.decoder.feed(stream, data):
            if self.on_decoded is not None:
                self.on_decoded(block, time.perf_counter())
            self._queue.put(block)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        backend: Any = None
        kwargs: dict[str, Any] = {}
        scanner: Any = None
        play: asyncio.Future[Any] | None = None
        if self.emulate is not None:
            from .bumble_backend import BumbleClient, BumbleScanner, VirtualRadio
            from .emulator import StrapEmulator

            radio = VirtualRadio()
            e = self.emulate
            self.emulator = StrapEmulator(
                e.session, self.profile, radio.device(self.profile.name, "C0:98:E5:49:00:01"),
                speed=e.speed, drop=e.drop, disconnect_at=e.disconnect_at,
                clock_ppm=e.clock_ppm, on_send=e.on_send)
            await self.emulator.start()
            backend, scanner = BumbleClient, BumbleScanner
            kwargs = {"bumble": radio.central("backpop", "C0:98:E5:49:00:99")}
            play = asyncio.ensure_future(self.emulator.play())
        target: BLEDevice | str | None = self.address
        if target is None:
            profiles = [self.profile]
            try:
                target = await BleakScanner.find_device_by_filter(
                    lambda d, ad: match_profile(d.name, ad, profiles) is not None,
                    timeout=self.scan_timeout_s, backend=scanner, **kwargs)
            except (BleakError, OSError) as exc:
                raise BadInput("bluetooth", None, f"cannot scan ({exc!r}): is there a "
                               "Bluetooth adapter, and is its service running?") from None
            if target is None:
                raise BadInput(f"profile {self.profile.name}", None,
                               f"no strap matching it found in {self.scan_timeout_s:g} s "
                               "(is it on and advertising?)")
        self.link = StrapLink(self.profile, target, self._on_packet,
                              on_link_lost=self.decoder.link_lost, backend=backend,
                              backend_kwargs=kwargs, connect_timeout_s=self.connect_timeout_s)
        link = asyncio.ensure_future(self.link.run(self._stop))
        if play is not None:
            play.add_done_callback(lambda _: self._stop.set() if self._stop else None)
        stopped = asyncio.ensure_future(self._stop.wait())
        # The link ends on a stop, or by itself on a fatal error (no adapter, wrong strap).
        await asyncio.wait({link, stopped}, return_when=asyncio.FIRST_COMPLETED)
        self._stop.set()
        try:
            await link
        finally:
            if play is not None:
                play.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await play  # raises what ended the emulator, if it failed


class LiveSession:
    """A session being recorded, as the pipeline sees a recording
    (:class:`~backpop_sense.pipeline.Recording`).

    The pipeline reads ``info``, ``audio.sr`` and ``imu_rates`` when it starts and
    ``duration_s`` when it finishes; the recorder advances ``audio.frames`` as audio comes.
    """

    def __init__(self, path: Path, info: SessionInfo, profile: Profile) -> None:
        self.path = path
        self.info = info
        # No audio (an IMU-only strap): the pipeline runs motion only, as for such a folder.
        self.audio = AudioInfo(profile.audio.sr, 0, len(info.mics), "PCM_16") \
            if profile.audio else None
        self.imu_rates = {i.name: i.rate for i in profile.imus}
        self.reached_s = 0.0

    @property
    def duration_s(self) -> float:
        """Audio received so far (gaps included), seconds; IMU time for an IMU-only strap."""
        return self.audio.duration_s if self.audio is not None else self.reached_s

    def set_frames(self, frames: int) -> None:
        """Record that ``frames`` audio frames have been received."""
        if self.audio is not None:
            self.audio = replace(self.audio, frames=frames)

    def truth(self) -> None:
        """A live session has no ground truth."""
        return None

    motion_truth = truth
    symptoms = truth


@dataclass
class RecordResult:
    """The outcome of :func:`record`."""

    path: Path
    session: LiveSession
    result: Any
    link: LinkStats
    decode: DecodeStats
    emulator: Any = None


class _Recorded:
    """A strap's stream as the pipeline's source: each block is written to the session folder
    before the pipeline sees it (audio in slices of at most :data:`PIPELINE_SLICE_S`); the
    stream stops once ``duration_s`` of it has come, and ``after_block`` runs after each
    block has been analysed."""

    def __init__(self, source: LiveSource, recorder: SessionRecorder, session: LiveSession,
                 duration_s: float | None, after_block: Callable[[], None]) -> None:
        self.source = source
        self.recorder = recorder
        self.session = session
        self.duration_s = duration_s
        self.after_block = after_block

    def __iter__(self) -> Iterator[Block]:
        stopping = False
        for block in self.source:
            self.recorder.feed(block)
            self.session.set_frames(self.recorder.frames)
            self.session.reached_s = max(self.session.reached_s, _end_of(block))
            yield from _slices(block)
            self.after_block()
            if self.duration_s is not None and self.session.reached_s >= self.duration_s \
                    and not stopping:
                stopping = True
                self.source.stop()


def _end_of(block: Block) -> float:
    if isinstance(block, Gap | AudioBlock):
        return block.t_end
    return float(block.t[-1]) if isinstance(block, ImuBlock) else 0.0


@contextlib.contextmanager
def _interrupt_stops(source: LiveSource) -> Iterator[None]:
    """Ctrl-C ends the stream as :meth:`LiveSource.stop` does: what the strap sent until then
    is written and analysed. A second Ctrl-C interrupts as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Ctrl-C reaches the main thread only
        return
    previous = signal.getsignal(signal.SIGINT)

    def stop(*_: object) -> None:
        signal.signal(signal.SIGINT, previous)
        source.stop()

    signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _slices(block: Block) -> Iterator[Block]:
    if not isinstance(block, AudioBlock):
        yield block
        return
    step = max(1, int(block.sr * PIPELINE_SLICE_S))
    for a in range(0, block.n, step):
        yield block if block.n <= step else AudioBlock(
            block.start_index + a, block.sr, block.data[a:a + step], block.offset_s)


def record(profile: str | Path | Profile, out: str | Path, *, subject: str = "anonymous",
           session: str | None = None, address: str | None = None,
           emulate: Emulation | None = None, duration_s: float | None = None,
           analyse: bool = True, config: PipelineConfig | None = None, console: Any = None,
           on_output: Callable[[list, float], None] | None = None, lsl: LslConfig | None = None
           ) -> RecordResult:
    """``backpop record``: stream a strap to a session folder with the live pipeline.

    Every block is first written by a crash-safe :class:`SessionRecorder`, then fed to the
    pipeline, whose outputs drive a rich live view when ``console`` is given. Stops at
    ``duration_s``, on Ctrl-C, or when an emulated session ends; the folder is finalised.

    Parameters
    ----------
    profile : str, Path or Profile
        The strap's profile (name or file).
    out : str or Path
        The session folder to write (must not hold a session yet).
    subject : str
        Subject pseudonym.
    session : str, optional
        Session identifier; the folder's name by default (or a timestamp if that is not a
        valid identifier).
    address : str, optional
        The strap's address; by default the first strap found advertising the profile.
    emulate : Emulation, optional
        Record from an emulated strap playing a session, over Bumble's in-process radio.
    duration_s : float, optional
        Stop after this much received audio (or IMU time for an IMU-only strap), seconds.
    analyse : bool
        Run the pipeline on the stream (pops and motion; motion only without mics).
    config : PipelineConfig, optional
        Every stage's parameters (the defaults unless given), run in live-sized chunks
        (:meth:`~backpop_sense.pipeline.PipelineConfig.live`).
    console : rich.console.Console, optional
        Where to draw the live view; none by default.
    on_output : callable, optional
        ``on_output(outputs, perf_counter)`` after each pipeline step (latency probes).
    lsl : LslConfig, optional
        Also publish on Lab Streaming Layer (:mod:`.lsl`), the outlets up across reconnections.

    Returns
    -------
    RecordResult
        The folder, the pipeline's result (None without analysis), link and decoder statistics.

    Examples
    --------
    >>> from backpop_sense.sources.ble import Emulation, record
    >>> done = record("backpop-strap-v1", "out/S01/live", subject="S01",
    ...               emulate=Emulation("data/samples/S01/2026-11-02a"))  # doctest: +SKIP
    """
    prof, out = _playable_profile(profile, emulate), Path(out)
    recorder, live = _open_recording(prof, out, subject, _session_id(out, session))
    source = LiveSource(prof, address=address, emulate=emulate, on_idle=recorder.tick)
    outlets = _outlets(lsl, live, prof, address or subject)
    result, link = _stream_live(source, recorder, live, prof, duration_s=duration_s,
                                analyse=analyse, config=config, console=console,
                                on_output=on_output, outlets=outlets)
    return RecordResult(out, live, result, link, source.stats, source.emulator)


def _open_recording(prof: Profile, out: Path, subject: str,
                    session: str) -> tuple[SessionRecorder, LiveSession]:
    """The folder's crash-safe recorder and the session as the pipeline sees it."""
    info = info_from_profile(prof, subject=subject, session=session)
    recorder = SessionRecorder(out, info, sr=prof.audio.sr if prof.audio else None,
                               imu_lsb={i.name: (i.acc_lsb, i.gyro_lsb) for i in prof.imus})
    return recorder, LiveSession(out, info, prof)


def _outlets(lsl: LslConfig | None, live: LiveSession, prof: Profile,
             key: str) -> Outlets | None:
    """The LSL outlets of the recording, if asked for; their source id is by default the
    strap's address, else the subject (:func:`.lsl.default_source_id`)."""
    if lsl is None:
        return None
    from .lsl import default_source_id, open_outlets

    return open_outlets(live, lsl, default_source_id(prof.name, key))


def _playable_profile(profile: str | Path | Profile, emulate: Emulation | None) -> Profile:
    """The strap's profile, loaded if named; raises :class:`BadInput` if the session to
    emulate is one it cannot play."""
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    if emulate is not None:
        from .emulator import check_session

        # A session the profile cannot play is refused before the folder is made and the live
        # view drawn, not when the emulator starts inside the stream.
        check_session(Session(emulate.session), prof)
    return prof


def _session_id(out: Path, session: str | None) -> str:
    """``session``, or the folder's name, or (if that is no identifier) the time now."""
    if session is None:
        session = out.name if is_identifier(out.name) else \
            datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S")
    return session


def _stream_live(source: LiveSource, recorder: SessionRecorder, live: LiveSession,
                 prof: Profile, *, duration_s: float | None, analyse: bool,
                 config: PipelineConfig | None, console: Any,
                 on_output: Callable[[list, float], None] | None,
                 outlets: Outlets | None) -> tuple[Any, LinkStats]:
    """Record ``source`` until it stops (analysing it with ``analyse``, publishing it on
    ``outlets``) under the live view; close the recorder with the link and decoder
    statistics, and the outlets, whatever happens. Returns the pipeline's result (None
    without analysis) and the link statistics; ``live`` then holds the audio frames
    recorded."""
    view, display = _live_view(live.info, console)
    drawn = 0.0

    def redraw() -> None:
        nonlocal drawn
        if view is not None and time.monotonic() - drawn >= REDRAW_S:
            display.update(view.render())
            drawn = time.monotonic()

    def show(outputs: list, block: Block) -> None:
        if outlets is not None:
            outlets.push_outputs(outputs)
        if on_output is not None:
            on_output(outputs, time.perf_counter())
        if view is not None:
            view.update(outputs, live.reached_s)

    stream: Any = _Recorded(source, recorder, live, duration_s, after_block=redraw)
    stream = outlets.publish(stream) if outlets is not None else stream
    result = None
    try:
        with display, _interrupt_stops(source):
            if analyse:
                from ..pipeline import DEFAULT_CONFIG, analyze

                result = analyze(stream, (config or DEFAULT_CONFIG).live(), on_output=show)
                if outlets is not None:
                    outlets.finish(result)
            else:
                for _ in stream:
                    pass
    finally:
        if outlets is not None:
            outlets.close()
        link = source.link.stats if source.link else LinkStats()
        recorder.close({"profile": prof.name, "link": link.to_json(),
                        "packets": dict(source.stats.packets), "lost": dict(source.stats.lost),
                        "malformed": dict(source.stats.malformed),
                        "duplicates": dict(source.stats.duplicates)})
    live.set_frames(recorder.frames)
    return result, link


def _live_view(info: SessionInfo, console: Any) -> tuple[Any, Any]:
    if console is None:
        return None, _NoDisplay()
    from rich.live import Live

    from ..view import LiveView

    view = LiveView(f"{info.subject}/{info.session} (live)")
    return view, Live(view.render(), console=console, refresh_per_second=4,
                      transient=console.is_terminal)


class _NoDisplay:
    def __enter__(self) -> _NoDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, renderable: Any) -> None:
        """Nothing to draw."""
