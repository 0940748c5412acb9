"""Strap packets, driven by a :class:`~.profiles.Profile`: encode (the strap's side) and decode.

Every packet is ``header + payload``. The header holds a per-stream sequence counter (it
counts packets and wraps) and the device timestamp of the packet's first sample (ticks of the
strap's clock, which wraps too). Payloads:

- audio ``pcm16``: ``frames x mics`` int16, interleaved;
- audio ``ima-adpcm``: per mic, the coder state before the packet (int16 predictor, u8 step
  index, u8 reserved), then per mic ``frames`` 4-bit codes, low nibble first; every packet
  decodes on its own;
- IMU: per sample int16 counts ``ax ay az gx gy gz`` in sensor axes, scaled by the profile.

The decoder places samples by sequence number, so a jump in the counter gives the exact
number of missing samples, reported as a :class:`~backpop_sense.blocks.Gap` (and, for audio,
filled with zeros so that the audio index stays the session's clock). The device clock is
mapped to session time by a line fitted to the reference clock (the audio sample clock when
the strap has mics, else the device clock itself), which corrects the drift between the
strap's timestamp crystal and its ADC. Malformed packets (a wrong size, an impossible coder
state, a timestamp jump the sequence counter does not bear out) are counted and skipped,
never raised: a radio delivers garbage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ..blocks import AudioBlock, Block, Gap, ImuBlock
from ..session import ACC_UNITS, GYRO_UNITS, parse_axes
from .profiles import ADPCM_CHANNEL_HEADER, Profile

_STEPS = np.array([
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45, 50, 55, 60,
    66, 73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230, 253, 279, 307, 337, 371,
    408, 449, 494, 544, 598, 658, 724, 796, 876, 963, 1060, 1166, 1282, 1411, 1552, 1707, 1878,
    2066, 2272, 2499, 2749, 3024, 3327, 3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845,
    8630, 9493, 10442, 11487, 12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086,
    29794, 32767], dtype=np.int32)
"""IMA-ADPCM quantiser step sizes (89 entries, index 0..88)."""
MAX_PENDING = 256
"""Packets held while waiting for the reference stream's first packet; more are dropped (and
counted as malformed): a strap whose reference stream never comes is misconfigured."""
_INDEX_SHIFT = np.array([-1, -1, -1, -1, 2, 4, 6, 8] * 2, dtype=np.int32)
CLOCK_SLACK = (2.0, 0.0005)
"""How far the packets a timestamp jump spans may differ from those the sequence counter
says (its wraps included): 2 packets of jitter plus 500 ppm of the jump (a strap's crystals
drift tens of ppm; the tests drive 300). A header beyond it is corrupt, and is skipped:
trusted, one wild timestamp would fill hours of audio with zeros. Past one wrap of the
counter the check weakens (any jump lands within half a wrap of some count of wraps), so a
corrupt header can still open a long gap there."""


@njit(cache=True)
def _adpcm_encode(x: np.ndarray, pred: np.ndarray, index: np.ndarray, steps: np.ndarray,
                  shifts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # x: (n, channels) int16; pred, index: (channels,) int32, updated in place.
    n, ch = x.shape
    codes = np.empty((n, ch), dtype=np.uint8)
    out = np.empty((n, ch), dtype=np.int16)
    for c in range(ch):
        p, i = pred[c], index[c]
        for k in range(n):
            step = steps[i]
            diff = np.int32(x[k, c]) - p
            code = 0
            if diff < 0:
                code = 8
                diff = -diff
            vp = step >> 3
            if diff >= step:
                code |= 4
                diff -= step
                vp += step
            if diff >= step >> 1:
                code |= 2
                diff -= step >> 1
                vp += step >> 1
            if diff >= step >> 2:
                code |= 1
                vp += step >> 2
            p = p - vp if code & 8 else p + vp
            p = min(32767, max(-32768, p))
            i = min(88, max(0, i + shifts[code]))
            codes[k, c] = code
            out[k, c] = p
        pred[c], index[c] = p, i
    return codes, out


@njit(cache=True)
def _adpcm_decode(codes: np.ndarray, pred: np.ndarray, index: np.ndarray, steps: np.ndarray,
                  shifts: np.ndarray) -> np.ndarray:
    # codes: (n, channels) uint8; pred, index: (channels,) int32 start states.
    n, ch = codes.shape
    out = np.empty((n, ch), dtype=np.int16)
    for c in range(ch):
        p, i = np.int32(pred[c]), np.int32(index[c])
        for k in range(n):
            code = codes[k, c]
            step = steps[i]
            vp = step >> 3
            if code & 4:
                vp += step
            if code & 2:
                vp += step >> 1
            if code & 1:
                vp += step >> 2
            p = p - vp if code & 8 else p + vp
            p = min(32767, max(-32768, p))
            i = min(88, max(0, i + shifts[code]))
            out[k, c] = p
    return out


def _warm_up() -> None:
    # Loading the compiled codec takes about a second; pay it now, not on the first packet of
    # a live stream (where it would show up as latency).
    one = np.zeros((1, 1), dtype=np.int32)
    _adpcm_encode(np.zeros((1, 1), dtype=np.int16), one[0].copy(), one[0].copy(), _STEPS,
                  _INDEX_SHIFT)
    _adpcm_decode(np.zeros((1, 1), dtype=np.uint8), one[0], one[0], _STEPS, _INDEX_SHIFT)


def _int16(order: str) -> np.dtype:
    return np.dtype("<i2" if order == "little" else ">i2")


class PacketEncoder:
    """The strap's side: samples in, packets out, one counter and coder state per stream.

    Parameters
    ----------
    profile : Profile
        The packet layout.
    ts0 : int
        Device timestamp of session time 0, ticks (a strap's clock rarely starts at zero).
    clock_ppm : float
        How fast the device timestamp clock runs against the audio clock, parts per million;
        lets tests and the emulator exercise the decoder's drift correction.

    Examples
    --------
    >>> import numpy as np
    >>> from backpop_sense.sources.packets import PacketEncoder
    >>> from backpop_sense.sources.profiles import load_profile
    >>> profile = load_profile("backpop-strap-v1")
    >>> enc = PacketEncoder(profile)
    >>> frames = np.zeros((profile.audio.frames, len(profile.audio.mics)), dtype=np.int16)
    >>> packet, heard = enc.audio(frames, t0_s=0.0)
    >>> len(packet), heard.shape
    (234, (144, 3))
    """

    def __init__(self, profile: Profile, *, ts0: int = 0, clock_ppm: float = 0.0) -> None:
        self.profile = profile
        self.ts0 = ts0
        self.clock_scale = profile.ts_hz * (1.0 + clock_ppm * 1e-6)
        self.seq: dict[str, int] = {s: 0 for s in profile.packet_rates()}
        n_mics = len(profile.audio.mics) if profile.audio else 0
        self._pred = np.zeros(n_mics, dtype=np.int32)
        self._index = np.zeros(n_mics, dtype=np.int32)
        if profile.audio and profile.audio.encoding == "ima-adpcm":
            _warm_up()

    def _header(self, stream: str, t0_s: float) -> bytes:
        p = self.profile
        seq = self.seq[stream] % (1 << (8 * p.seq_bytes))
        self.seq[stream] += 1
        ts = (self.ts0 + round(t0_s * self.clock_scale)) % (1 << (8 * p.ts_bytes))
        return (seq.to_bytes(p.seq_bytes, p.byte_order)
                + ts.to_bytes(p.ts_bytes, p.byte_order))

    def skip(self, stream: str) -> None:
        """Count a packet the strap made but never sent (a lost or dropped packet)."""
        self.seq[stream] += 1

    def audio(self, frames: np.ndarray, t0_s: float) -> tuple[bytes, np.ndarray]:
        """One audio packet.

        Parameters
        ----------
        frames : ndarray, shape (profile.audio.frames, mics), int16
            The samples, in counts of full scale (32768).
        t0_s : float
            Session time of the first frame, seconds.

        Returns
        -------
        packet : bytes
        heard : ndarray, int16
            What the receiver will decode: ``frames`` for PCM16, the coder's reconstruction
            for IMA-ADPCM (lossy).
        """
        spec = self.profile.audio
        if spec is None or frames.shape != (spec.frames, len(spec.mics)):
            raise ValueError("frames must have shape (frames_per_packet, mics)")
        header = self._header("audio", t0_s)
        if spec.encoding == "pcm16":
            return header + frames.astype(_int16(self.profile.byte_order)).tobytes(), frames
        state = np.empty(len(spec.mics), dtype=[("pred", _int16(self.profile.byte_order)),
                                                 ("index", "u1"), ("reserved", "u1")])
        state["pred"], state["index"], state["reserved"] = self._pred, self._index, 0
        codes, heard = _adpcm_encode(np.ascontiguousarray(frames, dtype=np.int16), self._pred,
                                     self._index, _STEPS, _INDEX_SHIFT)
        codes = codes.T
        if spec.frames % 2:
            codes = np.pad(codes, ((0, 0), (0, 1)))
        packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)
        return header + state.tobytes() + packed.tobytes(), heard

    def imu(self, name: str, counts: np.ndarray, t0_s: float) -> bytes:
        """One IMU packet: ``counts`` (samples, 6) int16 ``ax ay az gx gy gz``, sensor axes."""
        spec = next(i for i in self.profile.imus if i.name == name)
        if counts.shape != (spec.samples, 6):
            raise ValueError("counts must have shape (samples_per_packet, 6)")
        return self._header(name, t0_s) + counts.astype(_int16(self.profile.byte_order)).tobytes()


class ClockMap:
    """Session time of a device timestamp: a line fitted to (ticks, reference time) pairs.

    Accumulates the fit's means and co-moments incrementally (Welford), so it is exact enough
    over days of ticks and costs O(1) per packet. Until two pairs are known, the nominal tick
    rate is used.
    """

    def __init__(self, ts_hz: float) -> None:
        self.ts_hz = ts_hz
        self.n = 0
        self._mx = self._my = self._cxx = self._cxy = 0.0

    def add(self, ticks: float, t_s: float) -> None:
        """Add a pair: device ``ticks`` (unwrapped, from the anchor) seen at reference ``t_s``."""
        self.n += 1
        dx = ticks - self._mx
        self._mx += dx / self.n
        self._my += (t_s - self._my) / self.n
        self._cxx += dx * (ticks - self._mx)
        self._cxy += dx * (t_s - self._my)

    @property
    def slope(self) -> float:
        """Seconds of session time per device tick."""
        if self.n < 2 or self._cxx <= 0:
            return 1.0 / self.ts_hz
        return self._cxy / self._cxx

    def __call__(self, ticks: float | np.ndarray) -> float | np.ndarray:
        """Session time, s, of unwrapped device ticks."""
        if self.n == 0:
            return ticks / self.ts_hz
        return self._my + (ticks - self._mx) * self.slope


@dataclass
class DecodeStats:
    """What the decoder saw, per stream: packets decoded, lost (by sequence), bad."""

    packets: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)

    def count(self, table: dict[str, int], stream: str, n: int = 1) -> None:
        """Add ``n`` to ``table[stream]``."""
        table[stream] = table.get(stream, 0) + n


@dataclass
class _StreamState:
    seq: int | None = None
    ts: int | None = None
    next_index: int = 0
    last_t: float | None = None


class PacketDecoder:
    """Packets in, blocks out: ``feed(stream, packet) -> [AudioBlock | ImuBlock | Gap]``.

    Parameters
    ----------
    profile : Profile
        The packet layout.

    Attributes
    ----------
    stats : DecodeStats
        Packets decoded, lost, malformed and duplicated, per stream.
    clock : ClockMap
        Device ticks (from the first reference packet) to session time.

    Examples
    --------
    >>> import numpy as np
    >>> from backpop_sense.sources.packets import PacketDecoder, PacketEncoder
    >>> from backpop_sense.sources.profiles import load_profile
    >>> profile = load_profile("backpop-strap-v1")
    >>> frames = np.zeros((profile.audio.frames, len(profile.audio.mics)), dtype=np.int16)
    >>> packet, _ = PacketEncoder(profile).audio(frames, t0_s=0.0)
    >>> dec = PacketDecoder(profile)
    >>> [(type(b).__name__, b.data.shape) for b in dec.feed("audio", packet)]
    [('AudioBlock', (144, 3))]
    """

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.stats = DecodeStats()
        self.clock = ClockMap(profile.ts_hz)
        self._link_lost: set[str] = set()
        self._streams = {s: _StreamState() for s in profile.packet_rates()}
        self._reference = "audio" if profile.audio else None
        self._anchor: int | None = None
        self._pending: list[tuple[str, bytes]] = []
        self._imus = {i.name: i for i in profile.imus}
        order = profile.byte_order
        self._i16 = _int16(order)
        self._rot = {i.name: parse_axes(i.axes) for i in profile.imus}
        if profile.audio and profile.audio.encoding == "ima-adpcm":
            self._adpcm_state = np.dtype([("pred", self._i16), ("index", "u1"),
                                          ("reserved", "u1")])
            _warm_up()
        self._sizes = profile.packet_bytes()

    def link_lost(self) -> None:
        """Note that the link dropped: the next gap of each stream is reported as ``link lost``."""
        self._link_lost = set(self._streams)

    @property
    def waiting(self) -> int:
        """Packets held until the reference stream's first packet sets the clock (at most
        ``MAX_PENDING``): neither decoded nor counted yet."""
        return len(self._pending)

    def feed_characteristic(self, uuid: str, packet: bytes | bytearray) -> list[Block]:
        """As :meth:`feed`, the stream named by its characteristic UUID."""
        stream = self.profile.characteristics.get(uuid.lower())
        if stream is None:
            self.stats.count(self.stats.malformed, "unknown")
            return []
        return self.feed(stream, packet)

    def feed(self, stream: str, packet: bytes | bytearray) -> list[Block]:
        """Decode one packet of ``stream`` (``audio`` or an IMU name); return its blocks.

        A packet of the wrong size or with an impossible header is counted in
        :attr:`stats` and skipped. Packets of other streams that arrive before the first
        packet of the reference stream wait for it (they cannot be timed before).
        """
        if stream not in self._streams:
            self.stats.count(self.stats.malformed, "unknown")
            return []
        if len(packet) != self._sizes[stream]:
            self.stats.count(self.stats.malformed, stream)
            return []
        if self._anchor is None and self._reference not in (None, stream):
            if len(self._pending) >= MAX_PENDING:
                self.stats.count(self.stats.malformed, stream)
            else:
                self._pending.append((stream, bytes(packet)))
            return []
        out = self._decode(stream, bytes(packet))
        if self._pending and self._anchor is not None:
            pending, self._pending = self._pending, []
            for s, p in pending:
                out += self._decode(s, p)
        return out

    def _decode(self, stream: str, packet: bytes) -> list[Block]:
        p = self.profile
        seq = int.from_bytes(packet[:p.seq_bytes], p.byte_order)
        ts_raw = int.from_bytes(packet[p.seq_bytes:p.header_bytes], p.byte_order)
        payload = packet[p.header_bytes:]
        st = self._streams[stream]
        ticks_per_packet = p.ts_hz / p.packet_rates()[stream]
        if st.seq is None:
            advance = 0
            ts = ts_raw if self._anchor is None else self._unwrap_first(ts_raw)
        else:
            ts_wrap = 1 << (8 * p.ts_bytes)
            dts = (ts_raw - st.ts) % ts_wrap
            if dts == 0 or dts > ts_wrap // 2:
                # Same or earlier device time than the last packet: a repeat or a reordering.
                self.stats.count(self.stats.duplicates, stream)
                return []
            seq_wrap = 1 << (8 * p.seq_bytes)
            step = (seq - st.seq) % seq_wrap
            # The timestamp tells how many counter wraps a long outage hid.
            expected = dts / ticks_per_packet
            advance = step + seq_wrap * max(0, round((expected - step) / seq_wrap))
            if advance == 0:
                self.stats.count(self.stats.duplicates, stream)
                return []
            if abs(advance - expected) > CLOCK_SLACK[0] + CLOCK_SLACK[1] * expected:
                self.stats.count(self.stats.malformed, stream)
                return []
            ts = st.ts + dts
        if stream == "audio":
            samples = self._audio_samples(payload)
        else:
            samples = np.frombuffer(payload, dtype=self._i16).reshape(-1, 6)
        if samples is None:
            self.stats.count(self.stats.malformed, stream)
            return []
        if self._anchor is None:
            self._anchor = ts
        per_packet = p.audio.frames if stream == "audio" else self._imus[stream].samples
        missing = max(0, advance - 1) * per_packet
        st.seq, st.ts = seq, ts
        self.stats.count(self.stats.packets, stream)
        if missing:
            self.stats.count(self.stats.lost, stream, advance - 1)
        reason = "link lost" if stream in self._link_lost else "lost packets"
        self._link_lost.discard(stream)
        index = st.next_index + missing
        st.next_index = index + per_packet
        ticks = ts - self._anchor
        if stream == "audio":
            return self._audio_blocks(samples, index, missing, ticks, reason)
        return self._imu_blocks(stream, samples, index, missing, ticks, reason)

    def _unwrap_first(self, ts_raw: int) -> int:
        # A stream's first packet after the anchor: the nearest unwrapped time to the anchor.
        wrap = 1 << (8 * self.profile.ts_bytes)
        assert self._anchor is not None
        return self._anchor + ((ts_raw - self._anchor + wrap // 2) % wrap) - wrap // 2

    def _audio_samples(self, payload: bytes) -> np.ndarray | None:
        spec = self.profile.audio
        assert spec is not None
        n_mics = len(spec.mics)
        if spec.encoding == "pcm16":
            return np.frombuffer(payload, dtype=self._i16).reshape(spec.frames, n_mics)
        head = np.frombuffer(payload[:n_mics * ADPCM_CHANNEL_HEADER], dtype=self._adpcm_state)
        if (head["index"] > 88).any():
            return None
        packed = np.frombuffer(payload[n_mics * ADPCM_CHANNEL_HEADER:], dtype=np.uint8)
        packed = packed.reshape(n_mics, -1)
        codes = np.empty((n_mics, packed.shape[1] * 2), dtype=np.uint8)
        codes[:, 0::2] = packed & 0x0F
        codes[:, 1::2] = packed >> 4
        return _adpcm_decode(np.ascontiguousarray(codes[:, :spec.frames].T),
                             head["pred"].astype(np.int32), head["index"].astype(np.int32),
                             _STEPS, _INDEX_SHIFT)

    def _audio_blocks(self, samples: np.ndarray, index: int, missing: int, ticks: int,
                      reason: str) -> list[Block]:
        sr = self.profile.audio.sr
        self.clock.add(ticks, index / sr)
        out: list[Block] = []
        if missing:
            out.append(Gap("audio", (index - missing - 1) / sr, index / sr, reason))
            # Zeros keep the audio index the session clock; broadcast, so that a long outage
            # costs no memory here (consumers write and analyse it in bounded slices).
            zeros = np.broadcast_to(np.zeros((1, samples.shape[1]), dtype=np.float32),
                                    (missing, samples.shape[1]))
            out.append(AudioBlock(index - missing, sr, zeros))
        out.append(AudioBlock(index, sr, samples.astype(np.float32) / 32768.0))
        return out

    def _imu_blocks(self, name: str, counts: np.ndarray, index: int, missing: int, ticks: int,
                    reason: str) -> list[Block]:
        spec = self._imus[name]
        st = self._streams[name]
        if self._reference is None:
            self.clock.add(ticks, ticks / self.profile.ts_hz)
        t = np.asarray(self.clock(ticks + np.arange(spec.samples) * self.profile.ts_hz
                                  / spec.rate), dtype=float)
        out: list[Block] = []
        keep = t >= 0 if st.last_t is None else t > st.last_t
        if not keep.all():
            # Samples timed before the session start (or overlapping after a clock jump).
            self.stats.count(self.stats.malformed, name)
            counts, t = counts[keep], t[keep]
            if not len(t):
                return out
        if missing and st.last_t is not None:
            out.append(Gap(name, st.last_t, float(t[0]), reason))
        st.last_t = float(t[-1])
        rot = self._rot[name]
        acc = (counts[:, :3] * spec.acc_lsb) @ rot.T * ACC_UNITS[spec.acc_unit]
        gyro = (counts[:, 3:] * spec.gyro_lsb) @ rot.T * GYRO_UNITS[spec.gyro_unit]
        out.append(ImuBlock(name, index, t, acc, gyro))
        return out
