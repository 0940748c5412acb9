"""Streaming pop detection on the contact mics: onset strength, adaptive threshold, refinement.

A pop is a short transient (background.md), but its band is not known: a cavitation's crack
may reach 8 kHz, a tendon's snap may be a dull clunk at 100-800 Hz, and the tissue low-passes
both (``family.py`` names the ranges). So the detector looks for sudden rises of energy in
every band, and judges each onset in the band where it rose most:

1. Each mic's audio is cut into ``frame_s`` Hann frames every ``hop_s`` (block-independent:
   frame ``f`` always starts at sample ``f * hop``), summarised as log energies in three sets
   of mel bands: ``fmin_hz``-``fmax_hz`` (the cracks), ``low_fmin_hz``-``low_fmax_hz`` (the
   snaps) and ``bass_fmin_hz``-``bass_fmax_hz`` (the lowest pops, where the frames resolve
   only a few wide bands). Averaged with the bands it does not reach, a narrow onset's rise
   would be diluted by their noise; each set has its own onset strength.
2. Onset strength is librosa's spectral flux over each set, each frame against the one
   ``lag`` hops before, so that the overlapping frames see a pop's whole rise; with
   SuperFlux's maximum filter across bands (Boeck & Widmer 2013) so that gliding harmonics
   (speech) rise less.
3. Each mic's flux of each set is turned into a robust z-score against its own recent past
   (running median and MAD over ``history_s``, updated every ``update_frames`` frames). The
   z-scores are combined by taking the largest, so one pop heard on several mics and in
   several sets is one peak.
4. A peak above ``threshold`` that is the largest within ``peak_radius_s`` is tested on the
   frames first: per octave of ``band_edges_hz``, how far its frames rose above what that
   octave's own noise reaches (the ``band_percentile`` of the previous ``background_s``, a
   constant-false-alarm test: a narrow low band's noise swings far more than a wide high
   band's). A peak that rose less than ``min_band_rise`` dB in every octave is not measured.
   The octave that rose most, with its neighbours within ``band_span_db``, is the onset's
   band; every feature below is measured there. Two candidates whose refined onsets fall
   within ``min_separation_s`` are one burst, measured from the stronger peak (a weak peak
   of the noise just before a pop may refine to the noise and must not hide the pop).
   Nothing longer holds back the next candidate: the gate (``artifacts.py``) decides what
   is the same event.
5. Its time is refined on the waveform, band-passed to the onset's band: where the burst
   that holds the peak of the envelopes (each mic in units of its own noise, summed) rose
   above the noise, or an earlier click of the same pop reaching two fifths of the climb.

Features for the artifact gate and for ``pops.csv`` are measured on a snippet around the
onset kept in a ring buffer; see :class:`Candidate`.

State carried between blocks: the unframed tail of the audio, the last ``lag`` frames of
band energies, the octaves' power over the last ``background_s``, the flux history of the
threshold, the frames awaiting their look-ahead, the ring buffer and the candidates awaiting
their post-onset samples. Feeding one block or ten thousand gives the same candidates.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import librosa
import numpy as np
from scipy import fft as sp_fft
from scipy import signal

try:  # scipy's compiled loop under sosfilt, without its checks and axis moves
    from scipy.signal._sosfilt import _sosfilt
except ImportError:  # a scipy that moved it: sosfilt itself (the same numbers, slower)
    _sosfilt = None

from ..blocks import AudioBlock
from ..params import COUNT, NON_NEGATIVE, POSITIVE, Number, Numbers, Rules, check

CHUNK = 16384
"""Default audio samples processed at a time (:attr:`DetectorConfig.chunk`)."""
LIVE_CHUNK = 512
"""Chunk for live streams: a pop is out about 0.1 s after its sound instead of up to 1 s."""


@dataclass(frozen=True)
class DetectorConfig:
    """Detector parameters; times in seconds, frequencies in Hz, thresholds in MAD units."""

    frame_s: float = 0.016
    hop_s: float = 0.004
    fmin_hz: float = 400.0
    fmax_hz: float = 7000.0
    n_bands: int = 24
    low_fmin_hz: float = 200.0
    """The second onset strength's band (0: none), for the low-pitched snaps."""
    low_fmax_hz: float = 1500.0
    low_bands: int = 8
    bass_fmin_hz: float = 60.0
    """The third onset strength's band (0: none): a pop may be as low as 100 Hz, where the
    16 ms frames resolve only a few wide bands."""
    bass_fmax_hz: float = 400.0
    bass_bands: int = 3
    lag: int = 2
    max_size: int = 3
    threshold: float = 6.0
    min_band_rise: float = 4.0
    """A peak is measured only if, in some octave at some mic, its frames rose this many dB
    above what that octave's noise reaches (step 4): a cheap first test on the frames; the
    gate's ``noise`` rule asks for more of every candidate. 0 dB: measure almost every peak."""
    history_s: float = 1.0
    update_frames: int = 32
    peak_radius_s: float = 0.012
    min_separation_s: float = 0.012
    band_edges_hz: tuple[float, ...] = (62.5, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0,
                                        8000.0)
    """Octave bands in which an onset's own band is chosen (:meth:`PopDetector._event_band`):
    every feature is then measured there, so a pop is judged in the band where it sounds,
    wherever that is."""
    band_span_db: float = 6.0
    """The onset's band holds the octave where it rose most over its background and the
    neighbouring octaves within this many dB of it."""
    band_percentile: float = 95.0
    """What the background's noise reaches in a band: this percentile of its windows'
    power."""
    background_s: float = 0.5
    pop_window_s: float = 0.010
    min_head_ratio: float = 2.0
    """A candidate is dismissed unless its first ``pop_window_s`` at the loudest mic, in its
    own band, has this many times the median power of the background before."""
    head_s: float = 0.003
    level_periods: float = 2.0
    """The shares the locator places a pop by are measured over this many periods of its
    centroid (at least ``head_s``, at most half of ``snippet_after_s``): over less than a
    period, a low pop's power at each mic depends on where in its cycle the window ends."""
    locate_corner: float = 0.7
    """The high-pass for the mics' shares sits at this fraction of the pop's centroid."""
    snippet_after_s: float = 0.08
    chunk: int = CHUNK
    """Audio samples processed at a time, at fixed positions in the session, so results do not
    depend on the caller's block size. Small chunks cut latency, large ones cost less per
    sample; the carried state makes the results the same for any chunk, down to a few
    samples (tested)."""

    RULES: ClassVar[Rules] = {
        "frame_s": POSITIVE, "hop_s": POSITIVE, "fmin_hz": POSITIVE, "fmax_hz": POSITIVE,
        "n_bands": COUNT, "low_fmin_hz": NON_NEGATIVE, "low_fmax_hz": POSITIVE,
        "low_bands": COUNT, "bass_fmin_hz": NON_NEGATIVE, "bass_fmax_hz": POSITIVE,
        "bass_bands": COUNT, "lag": COUNT, "max_size": Number(1, whole=True, odd=True),
        "threshold": POSITIVE, "min_band_rise": NON_NEGATIVE, "history_s": POSITIVE,
        "update_frames": COUNT, "peak_radius_s": POSITIVE, "min_separation_s": NON_NEGATIVE,
        "band_edges_hz": Numbers(POSITIVE, "ascending"), "band_span_db": NON_NEGATIVE,
        "band_percentile": Number(0, 100), "background_s": POSITIVE, "pop_window_s": POSITIVE,
        "min_head_ratio": NON_NEGATIVE, "head_s": POSITIVE, "level_periods": NON_NEGATIVE,
        "locate_corner": POSITIVE,
        "snippet_after_s": NON_NEGATIVE, "chunk": COUNT,
    }
    ORDER: ClassVar = (("fmin_hz", "fmax_hz"), ("low_fmin_hz", "low_fmax_hz"),
                       ("bass_fmin_hz", "bass_fmax_hz"))

    def __post_init__(self) -> None:
        check(self)

    def to_dict(self) -> dict:
        """The parameters, for summary.json."""
        return asdict(self)


@dataclass(frozen=True)
class Candidate:
    """A detected onset with what the gate and the locator need to judge it.

    Attributes
    ----------
    t : float
        Refined onset time, seconds since session start.
    index : int
        Onset sample index in the session's audio.
    strength : float
        Peak z-score of the onset strength (MAD units above the running median).
    mic : int
        Index of the loudest mic.
    band_energy : ndarray
        Per mic, power over the first ``head_s`` after onset minus the background's (the
        larger of its median over the previous 0.5 s and its mean over the 20 ms before),
        above a high-pass at ``locate_corner`` times the centroid (and at least the lower
        edge of the onset's band).
    band_background : ndarray
        Per mic, the background power through that high-pass (median over the previous
        0.5 s).
    level_energy : ndarray
        As ``band_energy``, over ``level_periods`` periods of the centroid (at least
        ``head_s``), and over the median background alone when the 20 ms before the onset
        outweigh the pop at some mic: what the locator places the pop by.
    amplitude_db : float
        Peak amplitude at the loudest mic, dB full scale.
    snr_db : float
        At the loudest mic: full-band pop power over 10 ms (background removed) against the
        full-band background over the previous 0.5 s, dB.
    centroid_hz : float
        Spectral centroid of the first 10 ms at the loudest mic.
    band_hz : tuple of float
        The onset's own band (Hz): the octaves where it rose most over its background. The
        features below are measured there.
    profile_db : ndarray
        Per octave of ``band_edges_hz``, how far the onset rose above what the background's
        noise reaches there (dB, the largest over mics; see
        :meth:`PopDetector._event_band`): what it sounded like, for comparing it with other
        onsets.
    excess_db : float
        That rise in the octave where it is largest: how clearly the onset stands out of
        the noise of its own band.
    duration_ms : float
        How long the onset's energy in its band stays up (see :func:`_duration_ms`).
    rise_ms : float
        Time from the onset to 90 % of the first click's peak at the loudest mic (of a double
        click, the first; the gap before the second is no slow rise).
    harmonicity : float
        Peak normalised autocorrelation at 80-400 Hz periods over 15-55 ms after onset
        (voice: near 1; a pop's own ringing has died away by then).
    decay_db : float
        Energy in the band of the first 5 ms over that of 15-40 ms after onset: a pop is a
        burst that dies away (even on top of another sound); rub and voice carry on.
    prominence : float
        Peak of the noise-normalised envelope (summed over mics) over the highest the noise
        alone reached in the 200 ms before (the second highest of its 25 ms maxima, so that
        one knock in that stretch does not count): near 1 for a noise peak.
    contrast_db : float
        Power in the band of the first 5 ms after onset over the larger of that of the
        20 ms before and of 15-40 ms after, at the loudest mic: whether the onset stands out
        of the sound around it on both sides, as a burst does and the crest of a swelling
        rub does not.
    """

    t: float
    index: int
    strength: float
    mic: int
    band_energy: np.ndarray = field(repr=False)
    band_background: np.ndarray = field(repr=False)
    amplitude_db: float = 0.0
    snr_db: float = 0.0
    centroid_hz: float = 0.0
    band_hz: tuple[float, float] = (0.0, 0.0)
    profile_db: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    excess_db: float = 0.0
    duration_ms: float = 0.0
    rise_ms: float = 0.0
    harmonicity: float = 0.0
    decay_db: float = 0.0
    prominence: float = 0.0
    contrast_db: float = 0.0
    level_energy: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)


class PopDetector:
    """Streaming onset detector over all mics of a session.

    Parameters
    ----------
    sr : int
        Audio sample rate in Hz.
    n_mics : int
        Number of mic channels.
    config : DetectorConfig
        Parameters.

    Examples
    --------
    >>> from backpop_sense.blocks import AudioBlock
    >>> from backpop_sense.pops.detector import PopDetector
    >>> from backpop_sense.sources.replay import ReplaySource
    >>> det = PopDetector(16000, 3)
    >>> candidates = []
    >>> for block in ReplaySource("data/samples/S01/2026-11-02a"):
    ...     if isinstance(block, AudioBlock):
    ...         candidates += det.feed(block)
    >>> candidates += det.finish()
    """

    def __init__(self, sr: int, n_mics: int, config: DetectorConfig | None = None) -> None:
        self.config = c = config or DetectorConfig()
        self.sr, self.m = sr, n_mics
        self.hop = max(1, int(round(c.hop_s * sr)))
        self.n_fft = max(2 * self.hop, int(round(c.frame_s * sr)))
        self.window = signal.get_window("hann", self.n_fft).astype(np.float32)
        fmax = min(c.fmax_hz, 0.45 * sr)
        top = 0.45 * sr
        lows = [e for e in c.band_edges_hz if e < top]
        self.octaves = [(lo, min(hi, top)) for lo, hi in zip(lows, [*lows[1:], top],
                                                             strict=True)]
        mels = [librosa.filters.mel(sr=sr, n_fft=self.n_fft, n_mels=c.n_bands, fmin=c.fmin_hz,
                                    fmax=fmax, norm=None).astype(np.float32)]
        for fmin, fmax_set, n in ((c.low_fmin_hz, c.low_fmax_hz, c.low_bands),
                                  (c.bass_fmin_hz, c.bass_fmax_hz, c.bass_bands)):
            if fmin > 0:
                mels.append(librosa.filters.mel(sr=sr, n_fft=self.n_fft, n_mels=n, fmin=fmin,
                                                fmax=min(fmax_set, fmax), norm=None
                                                ).astype(np.float32))
        edges = np.cumsum([0] + [len(m) for m in mels]).tolist()
        self.set_slices = [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        mel = np.concatenate(mels)
        used = np.flatnonzero(mel.sum(axis=0) > 0)
        self.bins = slice(int(used[0]), int(used[-1]) + 1)
        self.mel_t = np.ascontiguousarray(mel[:, self.bins].T)
        freqs = np.fft.rfftfreq(self.n_fft, 1 / sr)[self.bins]
        self.octave_t = np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in self.octaves],
                                 axis=1).astype(np.float32)  # (bins, octaves)
        self._filters: dict[tuple[float, float], tuple[np.ndarray, np.ndarray]] = {}
        self.radius = max(1, int(round(c.peak_radius_s / c.hop_s)))
        self.min_sep = int(round(c.min_separation_s * sr))
        self.hist_len = int(round(c.history_s / c.hop_s)) | 1  # odd: see _RunningMedian
        self.offset_s = 0.0
        # carried state
        self.tail = np.zeros((n_mics, 0), dtype=np.float32)  # channel-major: fast framing
        self.tail_start = 0
        self.next_frame = 0
        self.prev_bands = np.zeros((n_mics, 0, edges[-1]), dtype=np.float32)
        self.bg_frames = int(round(c.background_s / c.hop_s))
        # each octave's power in the last frames; its last frame is next_frame - 1
        self.band_power = np.zeros((n_mics, 0, len(self.octaves)), dtype=np.float32)
        self.odf_stats = _RunningMedian(self.hist_len, c.update_frames,
                                        (n_mics * len(self.set_slices),))
        self.z_pending = np.zeros(0)
        self.z_start = 0
        self.judged = 0
        self.held: Candidate | None = None  # the last candidate, until no peak can join it
        ring_len = (int(round((c.background_s + 0.1 + c.snippet_after_s) * sr)) + self.n_fft
                    + c.chunk)
        self.ring = np.zeros((ring_len, n_mics), dtype=np.float32)
        self.ring_end = 0
        self.waiting: deque[tuple[int, float, np.ndarray]] = deque()
        self.measured = 0
        """How many peaks have been measured (passed the frames' first test), for diagnostics."""
        self.inbox = np.zeros((0, n_mics), dtype=np.float32)

    # -------------------------------------------------------------- framing and flux
    def feed(self, block: AudioBlock) -> list[Candidate]:
        """Take one audio block; return the candidates completed by it.

        Audio is processed in chunks of ``config.chunk`` samples at fixed positions in the
        session, whatever the block size, so the candidates cannot depend on it.
        """
        self.offset_s = block.offset_s
        self.inbox = np.concatenate([self.inbox, block.data.astype(np.float32, copy=False)])
        out: list[Candidate] = []
        done = 0
        chunk = self.config.chunk
        while self.inbox.shape[0] - done >= chunk:
            out += self._process(self.inbox[done: done + chunk])
            done += chunk
        self.inbox = self.inbox[done:]
        return out

    def finish(self) -> list[Candidate]:
        """Flush: the last partial chunk, the frames awaiting look-ahead, the candidates."""
        out = self._process(self.inbox) if self.inbox.shape[0] else []
        self.inbox = self.inbox[:0]
        self._peaks(final=True)
        return out + self._release(final=True)

    def _process(self, data: np.ndarray) -> list[Candidate]:
        self._remember(data)
        if self.tail.shape[1] == 0:
            self.tail_start = self.ring_end - data.shape[0]
        self.tail = np.concatenate([self.tail, data.T], axis=1)
        n_frames = (self.tail_start + self.tail.shape[1] - self.next_frame * self.hop
                    - self.n_fft) // self.hop + 1
        if n_frames > 0:
            self._frames(n_frames)
        return self._release(final=False)

    def _frames(self, n_frames: int) -> None:
        c = self.config
        start = self.next_frame * self.hop - self.tail_start
        span = self.tail[:, start: start + (n_frames - 1) * self.hop + self.n_fft]
        frames = np.lib.stride_tricks.sliding_window_view(span, self.n_fft, axis=-1)[:, ::self.hop]
        spec = sp_fft.rfft(frames * self.window, axis=-1)[..., self.bins]  # (m, F, bins)
        power = spec.real**2 + spec.imag**2
        bands = power @ self.mel_t
        # each octave's power per frame, kept for the peaks' first test (_candidate_frames)
        kept = self.band_power[:, -(self.bg_frames + 16):]  # what unjudged peaks look back on
        self.band_power = np.concatenate([kept, power @ self.octave_t], axis=1)
        log_bands = 10.0 * np.log10(np.maximum(bands, 1e-12))       # (m, F, bands)
        first = self.next_frame
        self.next_frame += n_frames
        consumed = self.next_frame * self.hop - self.tail_start
        self.tail = self.tail[:, consumed:]
        self.tail_start += consumed

        context = np.concatenate([self.prev_bands, log_bands], axis=1)  # (m, prev + F, bands)
        n_prev = self.prev_bands.shape[1]
        self.prev_bands = context[:, -c.lag:]
        # SuperFlux's reference: the maximum over neighbouring bands, within each band set
        # (computed here, along the contiguous axis and not across the sets' boundary).
        ref = np.concatenate([_band_max(context[..., s], c.max_size) for s in self.set_slices],
                             axis=-1)
        strength = librosa.onset.onset_strength_multi(
            S=np.swapaxes(context, 1, 2), ref=np.swapaxes(ref, 1, 2), lag=c.lag,
            center=False, channels=self.set_slices)                    # (m, sets, prev + F)
        # librosa pads the strength to at least ``lag`` frames: a first chunk of fewer
        # frames than that gave frames that do not exist, and shifted every later one.
        strength = strength[..., n_prev: n_prev + n_frames].reshape(-1, n_frames).T
        level, scale = self.odf_stats.update(strength, first)
        scale = np.maximum(1.4826 * scale, 1e-3 + 0.05 * np.abs(level))
        z = np.nan_to_num((strength - level) / scale, nan=0.0)
        self.z_pending = np.concatenate([self.z_pending, z.max(axis=1)])
        self._peaks(final=False)

    def _peaks(self, final: bool) -> None:
        """Local maxima above threshold, each judged once its look-ahead of `radius` is in."""
        c, r = self.config, self.radius
        z = self.z_pending
        first = self.judged - self.z_start
        ready = len(z) if final else len(z) - r
        peaks = []
        for i in np.flatnonzero(z[first:max(ready, first)] >= c.threshold) + first:
            lo, hi = max(0, i - r), min(len(z), i + r + 1)
            if z[i] >= z[lo:hi].max() and (i == lo or z[i] > z[lo:i].max()):
                peaks.append(int(i))
        if peaks:
            self._candidate_frames(self.z_start + np.array(peaks), z[peaks])
        self.judged = self.z_start + max(ready, first)
        keep = max(0, ready - r)  # judged frames stay as look-behind for the next call
        self.z_pending = z[keep:]
        self.z_start += keep

    def _candidate_frames(self, frames: np.ndarray, strengths: np.ndarray) -> None:
        """The peaks' first test, on the frames: how far each rose above what the noise
        reaches, per octave (see :meth:`_rise`); a peak that rose less than
        ``min_band_rise`` dB in every octave is not measured. ``frames`` ascending."""
        c = self.config
        # Frames frame-6 .. frame+2 span 24 ms either side of the onset guess (at 4 ms hops),
        # more than the 16 ms either side where the onset is then looked for.
        at = frames - (self.next_frame - self.band_power.shape[1])
        n_past = np.minimum(at - 6, self.bg_frames)  # background frames before each peak
        profiles = np.full((len(frames), len(self.octaves)), np.inf)  # none yet: measure
        near = np.stack([self.band_power[:, max(i - 6, 0): i + 3].max(axis=1) for i in at],
                        axis=1)                              # (mics, peaks, octaves)
        full = n_past == self.bg_frames
        if full.any():  # a whole background: all such peaks at once
            windows = np.lib.stride_tricks.sliding_window_view(
                self.band_power, self.bg_frames, axis=1)     # (mics, start, octaves, frames)
            past = windows[:, at[full] - 6 - self.bg_frames]  # (mics, peaks, octaves, frames)
            profiles[full] = self._rise(near[:, full], past)
        for k in np.flatnonzero(~full & (n_past >= 8)):  # the session's first half second
            past = self.band_power[:, max(at[k] - 6 - self.bg_frames, 0): at[k] - 6]
            profiles[k] = self._rise(near[:, k: k + 1], np.moveaxis(past, 1, -1)[:, None])[0]
        for frame, strength, profile in zip(frames, strengths, profiles, strict=True):
            if profile.max() < c.min_band_rise:
                continue
            # The onset lies in the samples frame `frame` added to frame `frame - lag`.
            onset_guess = (int(frame) - c.lag) * self.hop + self.n_fft // 2
            self.waiting.append((onset_guess, float(strength), profile))

    def _rise(self, near: np.ndarray, past: np.ndarray) -> np.ndarray:
        """Per peak and octave, how far (dB) the peak's frames rose above what the background
        reaches: the ``band_percentile`` of the background frames' power, a
        constant-false-alarm test (in a narrow low band the noise's power swings far more
        than in a wide high one; this asks for a rise beyond what the band's own noise
        reaches). The largest over mics. ``near``: (mics, peaks, octaves), the peaks' frames'
        largest power; ``past``: (mics, peaks, octaves, frames), their backgrounds."""
        n = past.shape[-1]
        k = min(int(self.config.band_percentile / 100 * n), n - 1)
        reach = np.partition(past, k, axis=-1)[..., k]
        ratio = np.maximum(near, 1e-30) / np.maximum(reach, 1e-30)
        return 10 * np.log10(ratio.max(axis=0))

    def _band(self, profile: np.ndarray) -> tuple[float, float]:
        """The octave that rose most and its neighbours within ``band_span_db`` of it (Hz)."""
        span = self.config.band_span_db
        finite = np.where(np.isfinite(profile), profile, 0.0)
        if not np.isfinite(profile).all():
            return self.octaves[0][0], self.octaves[-1][1]
        top = int(np.argmax(finite))
        lo_k = hi_k = top
        while lo_k > 0 and finite[lo_k - 1] >= finite[top] - span:
            lo_k -= 1
        while hi_k < len(finite) - 1 and finite[hi_k + 1] >= finite[top] - span:
            hi_k += 1
        return self.octaves[lo_k][0], self.octaves[hi_k][1]

    def heard_until(self) -> float:
        """Time (s) before which every candidate has been returned: no peak still to come can
        refine to an earlier onset."""
        c = self.config
        next_guess = (self.waiting[0][0] if self.waiting
                      else (self.judged - c.lag) * self.hop + self.n_fft // 2)
        frontier = next_guess - self.n_fft
        if self.held is not None:
            frontier = min(frontier, self.held.index)
        return self.offset_s + frontier / self.sr

    # -------------------------------------------------------------- snippets and features
    def _remember(self, data: np.ndarray) -> None:
        n = data.shape[0]
        if n >= len(self.ring):
            self.ring[:] = data[-len(self.ring):]
        else:
            self.ring = np.roll(self.ring, -n, axis=0)
            self.ring[-n:] = data
        self.ring_end += n

    def _snippet(self, a: int, b: int) -> tuple[np.ndarray, int]:
        ring_start = self.ring_end - len(self.ring)
        lo, hi = max(a, ring_start, 0), min(b, self.ring_end)
        return self.ring[lo - ring_start: hi - ring_start], lo

    def _release(self, final: bool) -> list[Candidate]:
        out: list[Candidate] = []
        after = int(round(self.config.snippet_after_s * self.sr))
        while self.waiting and (final or self.waiting[0][0] + after + self.n_fft <= self.ring_end):
            guess, strength, profile = self.waiting.popleft()
            self.measured += 1
            cand = self._measure(guess, strength, profile)
            if cand is None:
                continue
            held = self.held
            if held is not None and cand.index - held.index < self.min_sep:
                # Two peaks refined to one burst: it is the candidate of its stronger peak,
                # measured from there (a weak peak of the noise just before a pop may refine
                # to the noise, and must not stand for the pop).
                if cand.strength > held.strength:
                    self.held = cand
                continue
            if held is not None:
                out.append(held)
            self.held = cand
        # The held candidate is complete once no peak still to measure can refine within
        # min_sep of it: a refined onset lies at most n_fft before its peak's onset guess.
        if self.held is not None:
            c = self.config
            next_guess = (self.waiting[0][0] if self.waiting
                          else (self.judged - c.lag) * self.hop + self.n_fft // 2)
            if final or next_guess - self.n_fft - self.held.index >= self.min_sep:
                out.append(self.held)
                self.held = None
        return out

    def _measure(self, guess: int, strength: float, profile: np.ndarray) -> Candidate | None:
        c, sr = self.config, self.sr
        before = int(round((c.background_s + 0.05) * sr))
        raw, start = self._snippet(guess - before, guess + int(round(c.snippet_after_s * sr)))
        if raw.shape[0] < int(0.05 * sr):
            return None
        band = self._band(profile)
        excess = float(profile.max())
        sos, zi = self._filter(band)
        hp_all = _filtfilt(sos, zi, raw.astype(np.float64))
        onset, mic, rise_ms, prominence = self._refine(hp_all, guess - start, band[0])
        if onset is None:
            return None
        hp = hp_all[:, mic]  # everything from here on is measured at the loudest mic
        w = max(1, int(round(c.pop_window_s * sr)))
        before = slice(0, max(onset - int(0.02 * sr), w))
        just_before = slice(max(onset - int(0.022 * sr), 0), max(onset - int(0.002 * sr), 1))
        bg_hp, floor_hp = _frame_power(hp[before], w, (50.0, 10.0))
        if _mean_square(hp[onset: onset + w]) < c.min_head_ratio * bg_hp:
            return None  # nothing above the background's own level where it was loudest
        (bg_raw,) = _frame_power(raw[before, mic].astype(np.float64), w)
        seg = raw[onset: onset + w, mic].astype(np.float64)
        pop_raw = _mean_square(seg)
        snr = 10 * math.log10(max(pop_raw - bg_raw, 1e-20) / max(bg_raw, 1e-20))
        peak = float(np.max(np.abs(seg))) if len(seg) else 0.0
        lead = int(0.001 * sr)
        earlier = raw[: max(onset - int(0.02 * sr), 0), mic].astype(np.float64)
        event = raw[max(onset - lead, 0): onset + int(0.03 * sr), mic].astype(np.float64)
        freqs, spec = _event_spectrum(event, earlier, lead, sr)
        centroid = float((spec * freqs).sum() / max(spec.sum(), 1e-30))
        band_energy, band_background, level_energy = self._shares(
            raw, onset, band, centroid, before, just_before, w)
        duration, decay, contrast, harm = _shape(hp, onset, floor_hp, just_before, sr)
        index = start + onset
        return Candidate(
            t=self.offset_s + index / sr, index=index, strength=strength, mic=mic,
            band_energy=band_energy, band_background=band_background,
            level_energy=level_energy,
            amplitude_db=20 * math.log10(max(peak, 1e-10)), snr_db=snr, centroid_hz=centroid,
            band_hz=band, profile_db=profile, excess_db=excess, duration_ms=duration,
            rise_ms=rise_ms,
            harmonicity=harm,
            decay_db=decay, prominence=prominence, contrast_db=contrast,
        )

    def _shares(self, raw: np.ndarray, onset: int, band: tuple[float, float], centroid: float,
                before: slice, just_before: slice, w: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each mic's energy over its background in the first ``head_s`` after ``onset``
        (for the knock rule and the places the gate compares), each mic's background power
        over frames of ``w`` samples (full-scale units squared), and each mic's energy over
        its background in the first ``level_periods`` periods of ``centroid`` (for locating:
        see :attr:`Candidate.level_energy`).

        Measured above a high-pass just under the pop's own band, where a pop's energy is,
        so that the body's low noise does not blur the shares of the mics that heard it
        faintly. ``before`` holds the background, ``just_before`` the 20 ms before the onset.
        """
        c, sr = self.config, self.sr
        loc = self.locate_filter(raw, band, centroid)

        def power(n: int) -> tuple[np.ndarray, np.ndarray]:
            """Each mic's mean power over the first ``n`` samples from the onset, and the
            median of its background's over frames of ``n``."""
            return (_mean_square(loc[onset: onset + n], 0),
                    _frame_power(loc[before], n)[0])

        n_head = max(1, int(round(c.head_s * sr)))
        head_loc, bg_head = power(n_head)
        # The background is the larger of the usual (median over 0.5 s) and what sounded in
        # the 20 ms just before: a rub or a footstep under way on one mic adds to that mic's
        # share, which would make a knock look like a pop fading along the spine.
        pre_loc = _mean_square(loc[just_before], 0)
        band_energy = np.maximum(head_loc - np.maximum(bg_head, pre_loc), 1e-20)
        (band_background,) = _frame_power(loc[before], w)
        level_s = min(max(c.head_s, c.level_periods / max(centroid, 1.0)),
                      c.snippet_after_s / 2)
        n_level = max(1, int(round(level_s * sr)))
        level_loc, bg_level = (head_loc, bg_head) if n_level == n_head else power(n_level)
        level = level_loc - np.maximum(bg_level, pre_loc)
        if (level <= 0).any():
            # What sounded just before outweighs the pop at some mic: taken away there, it
            # leaves the fit nothing to go by; over the usual background, the shares still
            # fall along the spine.
            level = level_loc - bg_level
        return band_energy, band_background, np.maximum(level, 1e-20)

    def locate_filter(self, raw: np.ndarray, band: tuple[float, float], centroid: float
                      ) -> np.ndarray:
        """``raw`` (samples x mics) through the high-pass the mics' shares are measured
        above: at ``locate_corner`` of the onset's centroid (Hz), not under its band's lower
        edge, and zero-phase, so that an onset's samples stay where they are."""
        c, sr = self.config, self.sr
        corner = min(max(c.locate_corner * centroid, band[0]), 0.4 * sr)
        return _filtfilt(*_highpass(corner, sr), raw.astype(np.float64))

    def _filter(self, band: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        """A fourth-order band-pass over ``band`` (a high-pass when it reaches the top
        octave), with its initial conditions; made once per band."""
        if band not in self._filters:
            lo, hi = band
            if hi >= self.octaves[-1][1]:
                sos = signal.butter(4, lo, btype="highpass", fs=self.sr, output="sos")
            else:
                sos = signal.butter(2, [lo, hi], btype="bandpass", fs=self.sr, output="sos")
            self._filters[band] = (sos, signal.sosfilt_zi(sos))
        return self._filters[band]

    def _refine(self, hp: np.ndarray, guess: int, low_hz: float
                ) -> tuple[int | None, int, float, float]:
        """The onset sample, the loudest mic, and the rise time in ms.

        Every mic's envelope is divided by its own noise level and the results summed, so the
        mic where the event stands out most weighs most and the earliest arrival counts. The
        onset is the first sample, within 15 ms before the peak, where that sum climbs to a
        fifth of the way from the floor to the peak and stays there for 0.5 ms: the first
        click of a double click, not the louder second one.
        """
        sr = self.sr
        lo = max(0, guess - self.n_fft)
        hi = min(len(hp), guess + self.n_fft)
        if hi - lo < 8:
            return None, 0, 0.0, 0.0
        noise_end = max(lo - int(0.01 * sr), int(0.05 * sr))
        # The envelope only where it is used (the 200 ms of noise and the region), with a
        # margin so that its smoothing sees the same neighbours as over the whole snippet.
        first = max(0, noise_end - int(0.2 * sr))
        a = max(0, first - int(0.001 * sr) - 1)
        b = min(len(hp), max(hi, noise_end) + int(0.001 * sr) + 1)
        env_t = np.zeros(hp.shape[::-1])  # mic-major: each mic's envelope contiguous
        smooth = max(0.0005, 0.5 / low_hz)  # over at least half a period of the band
        env_t[:, a:b] = [_envelope(x, sr, smooth) for x in hp[a:b].T]
        env = env_t.T
        quiet = env[first: noise_end]
        noise = _median(env_t[:, first: noise_end].copy()) + 1e-12
        region = env[lo:hi] / noise
        mic = int(np.argmax(region.max(axis=0)))
        trace = region.sum(axis=1)
        k_peak = int(np.argmax(trace))
        peak, floor = trace[k_peak], float(region.shape[1])
        # Above a fifth of the climb, and above what the noise alone reaches.
        noise_top = _noise_reach((quiet / noise).sum(axis=1), 8)
        level = max(floor + 0.2 * (peak - floor), noise_top)
        start = max(0, k_peak - int(0.015 * sr))
        hold = max(1, int(round(0.0005 * sr)))
        a, b = _burst(trace[start: k_peak + 1], level, floor + 0.4 * (peak - floor), hold)
        k0, end = start + a, start + b
        # The rise is the first click's own (a double click's second click may be the
        # louder, and the gap before it is no slow rise).
        single = region[:, mic]
        reached = np.flatnonzero(single[k0: end] >= 0.9 * single[k0: end].max())
        rise = 1000.0 * reached[0] / sr if len(reached) else 0.0
        return lo + k0, mic, float(rise), float(peak / max(noise_top, floor))


class _RunningMedian:
    """Median and MAD of a frame signal over its previous ``length`` frames.

    Refreshed every ``every`` frames (at absolute frame numbers, so independent of blocks),
    from the frames before the refresh; NaN until ``4 * every`` frames have been seen.
    The detector's ``length`` is odd, so that each median is one of the frames' values and
    :func:`_median` finds it with a single partition.
    """

    def __init__(self, length: int, every: int, shape: tuple[int, ...]) -> None:
        self.length, self.every = length, every
        self.hist = np.zeros((0, *shape))
        self.level = np.full(shape, np.nan)
        self.scale = np.full(shape, np.nan)

    def update(self, x: np.ndarray, first: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame level and scale for frames ``first..first+len(x)``; then remember ``x``."""
        n = x.shape[0]
        hist = np.concatenate([self.hist, x])
        base = first - self.hist.shape[0]
        level = np.empty_like(x, dtype=float)
        scale = np.empty_like(x, dtype=float)
        u = self.every
        updates = np.arange(-(-first // u) * u, first + n, u)
        updates = updates[updates >= 4 * u]
        ends = updates - base
        full = ends >= self.length
        levels = np.empty((len(updates), *x.shape[1:]))
        scales = np.empty_like(levels)
        if full.any():
            # every refresh with a full history at once, through one strided view
            # (U, ..., length): each window contiguous, which partitions fastest
            win = np.lib.stride_tricks.sliding_window_view(hist, self.length, axis=0)
            past = win[ends[full] - self.length]  # a copy, which _median may reorder
            levels[full] = _median(past)
            scales[full] = _median(np.abs(past - levels[full][..., None], out=past))
        for k in np.flatnonzero(~full):
            past = hist[:ends[k]].T.copy()
            levels[k] = _median(past)
            scales[k] = _median(np.abs(past - levels[k][:, None], out=past))
        bounds = [first, *updates.tolist(), first + n]
        for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            if k > 0:
                self.level, self.scale = levels[k - 1], scales[k - 1]
            level[lo - first: hi - first] = self.level
            scale[lo - first: hi - first] = self.scale
        self.hist = hist[-self.length:]
        return level, scale


def _burst(trace: np.ndarray, level: float, strong: float, hold: int) -> tuple[int, int]:
    """Where the burst that ends at ``trace``'s last sample (its peak) began, and where its
    first click ends: ``(start, end)``.

    The trace is cut into runs above ``level``, dips shorter than ``hold`` samples bridged.
    The burst is the run that holds the peak, unless an earlier run reaches ``strong`` and
    lasts ``hold``: then that one (the first click of a double click), which ends where its
    run does; the run that holds the peak ends with the trace. A mere rise of the noise
    before the pop does not pull the onset earlier.
    """
    below = np.concatenate([[True], trace < level, [True]])
    edges = np.flatnonzero(np.diff(below.astype(np.int8)))  # starts (down) and ends (up)
    starts, ends = edges[::2], edges[1::2]                   # runs above: [start, end)
    if len(starts) == 0:
        return len(trace) - 1, len(trace)
    # bridge short dips: a run joins the previous one when the dip between is short
    keep = np.concatenate([[True], starts[1:] - ends[:-1] >= hold])
    run_id = np.cumsum(keep) - 1
    run_start = starts[keep]
    run_end = np.maximum.reduceat(ends, np.flatnonzero(keep))
    main = run_id[-1]
    for k in range(main):
        a, b = run_start[k], run_end[k]
        if b - a >= hold and trace[a:b].max() >= strong:
            return int(a), int(b)
    return int(run_start[main]), len(trace)


def _noise_reach(x: np.ndarray, parts: int) -> float:
    """How high the noise alone reaches in ``x``: the second highest of the maxima of its
    ``parts`` pieces.

    The highest piece is left out, so a knock or a click somewhere in the stretch does not
    count as the noise's reach; the second is kept, so the noise's own peaks still do.
    """
    n = (len(x) // parts) * parts
    if n < 2 * parts:
        return float(x.max()) if len(x) else 0.0
    return float(np.sort(x[len(x) - n:].reshape(parts, -1).max(axis=1))[-2])


def _envelope(x: np.ndarray, sr: int, smooth_s: float = 0.0005) -> np.ndarray:
    """Amplitude envelope: |x| smoothed over ``smooth_s`` seconds (centred, no delay)."""
    n = max(1, int(round(smooth_s * sr)))
    kernel = np.ones(n) / n
    return np.convolve(np.abs(x), kernel, mode="same")


def _mean_square(x: np.ndarray, axis: int | None = None) -> np.ndarray:
    """``np.mean(x**2, axis)``: the same numbers (the same sum, divided by the same count)
    without np.mean's dispatch, which cost more than the sum on the detector's short slices
    (some twenty calls per measured peak). NaN for an empty slice, as np.mean, but without
    its warning (an onset in a session's last 15 ms has no body to measure)."""
    n = x.size if axis is None else x.shape[axis]
    if n == 0:
        return np.add.reduce(x * x, axis=axis) * math.nan
    return np.add.reduce(x * x, axis=axis) / n


def _frame_power(x: np.ndarray, w: int, qs: tuple[float, ...] = (50.0,)
                 ) -> np.ndarray:
    """Percentiles ``qs`` of the mean power of consecutive ``w``-sample frames (the last
    frames of ``x``), per column: shape ``(len(qs), ...)``.

    The median is robust to short events; a low percentile finds the floor between the
    syllables of speech or under an intermittent sound.
    """
    n = (len(x) // w) * w
    if n == 0:
        p = _mean_square(x, 0) if len(x) else np.zeros(x.shape[1:])
        return np.stack([p] * len(qs))
    frames = x[len(x) - n:].reshape(n // w, w, *x.shape[1:])
    return _percentiles(_mean_square(frames, 1), qs)


def _percentiles(x: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """``np.percentile(x, qs, axis=0)`` (its default, linear method) for finite ``x``: the
    same numbers, from one partition at the order statistics needed, without np.percentile's
    general machinery, which cost more than the partition on the detector's short arrays."""
    n = x.shape[0]
    places = []
    for q in qs:
        at = (n - 1) * np.true_divide(q, 100)  # numpy's virtual index for the linear method
        below = min(int(np.floor(at)), n - 1)
        places.append((below, min(below + 1, n - 1), at - np.floor(at)))
    ordered = np.partition(x, sorted({k for a, b, _ in places for k in (a, b)}), axis=0)
    out = []
    for a, b, gamma in places:
        lo, hi = ordered[a], ordered[b]
        step = hi - lo
        # numpy's interpolation, from whichever end is nearer
        out.append(lo + step * gamma if gamma < 0.5 else hi - step * (1 - gamma))
    return np.stack(out)


def _median(x: np.ndarray) -> np.ndarray:
    """``np.median(x, axis=-1)`` for finite ``x``, which it reorders: the same numbers with
    less work. np.median partitions at two places (the two middle values, or the middle and
    the end, where it looks for NaN), which costs several times one partition on the
    detector's arrays; here one partition finds the upper middle value, and for an even
    count the lower one is the largest below it."""
    mid = x.shape[-1] // 2
    x.partition(mid, axis=-1)
    upper = x[..., mid]
    if x.shape[-1] % 2:
        return upper.copy()
    return (x[..., :mid].max(axis=-1) + upper) / 2


def _band_max(x: np.ndarray, size: int) -> np.ndarray:
    """``scipy.ndimage.maximum_filter1d(x, size, axis=-1)`` (mode ``reflect``) for odd
    ``size``: the maximum over the bands within ``size // 2`` on either side. The same
    numbers without scipy's per-call overhead, which dominates on the detector's small
    per-chunk arrays."""
    if size % 2 == 0:
        raise ValueError(f"the band maximum's size must be odd, not {size}")
    out = x.copy()
    for k in range(1, size // 2 + 1):
        np.maximum(out[..., :-k], x[..., k:], out=out[..., :-k])
        np.maximum(out[..., k:], x[..., :-k], out=out[..., k:])
    return out


def _highpass(corner: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """A fourth-order Butterworth high-pass at ``corner`` Hz, as second-order sections, and
    their initial conditions for a step: ``scipy.signal.butter(4, corner, "highpass",
    fs=sr, output="sos")`` and ``sosfilt_zi`` of it, to rounding.

    Written out (the analog prototype's poles turned high-pass, then bilinear with the
    corner prewarped) because the locator's corner follows each onset's centroid, so a
    filter is designed per candidate, and scipy's general design cost more than filtering.
    """
    fs2 = 2.0 * sr
    warped = fs2 * math.tan(math.pi * corner / sr)
    analog = warped / -np.exp(1j * np.pi * np.array([-3.0, -1.0]) / 8)  # one of each pair
    poles = (fs2 + analog) / (fs2 - analog)
    poles = poles[np.argsort(np.abs(poles))]  # the pair nearest the unit circle last
    # the gain that makes the passband 1: 1 / prod(-p) of the prototype (1), times the
    # bilinear's prod(fs2) / prod(fs2 - p) over all four poles
    gain = fs2**4 / np.prod(np.abs(fs2 - analog) ** 2)
    sos = np.zeros((2, 6))
    sos[:, :3] = [1.0, -2.0, 1.0]  # both zero pairs at z = 1
    sos[0, :3] *= gain
    sos[:, 3] = 1.0
    sos[:, 4] = -2.0 * poles.real
    sos[:, 5] = np.abs(poles) ** 2
    # A constant input gives no output: the first section's states hold what a unit step
    # leaves there (b1 + b2 and b2), the second's stay empty.
    zi = np.zeros((2, 2))
    zi[0] = [sos[0, 1] + sos[0, 2], sos[0, 2]]
    return sos, zi


def _filtfilt(sos: np.ndarray, zi: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``scipy.signal.sosfiltfilt(sos, x, axis=0)`` with its initial conditions ``zi``
    (``sosfilt_zi(sos)``) computed once, not per call: the same numbers, less overhead."""
    edge = 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))
    if x.shape[0] <= edge:
        return signal.sosfiltfilt(sos, x, axis=0)
    # Channel-major, so that each channel is filtered in place where it lies (the same
    # numbers; sosfilt would otherwise move the axis and copy twice per pass).
    rows = x.T if x.ndim == 2 else x[None, :]
    ext = np.concatenate([2 * rows[:, :1] - rows[:, edge:0:-1], rows,
                          2 * rows[:, -1:] - rows[:, -2:-edge - 2:-1]], axis=-1)
    y = _sosfilt_forward(sos, zi, ext)
    y = _sosfilt_forward(sos, zi, y[:, ::-1])[:, ::-1][:, edge:-edge]
    return y.T if x.ndim == 2 else y[0]


def _sosfilt_forward(sos: np.ndarray, zi: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Each row of ``x`` (channels x samples) through ``sos``, started from ``zi`` times its
    first sample: ``scipy.signal.sosfilt(sos, x, zi=...)``'s numbers. Its compiled loop is
    called directly when scipy has it where 1.10-1.17 do: sosfilt's checks, axis moves and
    copies cost a third of the filtering on the detector's 0.6 s snippets."""
    if _sosfilt is None:
        y, _ = signal.sosfilt(sos, x, axis=-1, zi=zi[:, None, :] * x[:, :1])
        return y
    y = np.array(x, dtype=np.float64, order="C")  # a copy, filtered in place
    state = np.ascontiguousarray(zi[None, :, :] * y[:, :1, None])  # (channels, sections, 2)
    _sosfilt(np.asarray(sos, dtype=np.float64), y, state)
    return y


def _shape(hp: np.ndarray, onset: int, floor_hp: float, just_before: slice, sr: int
           ) -> tuple[float, float, float, float]:
    """How an onset sounds at its loudest mic (``hp``, high-passed under its band): duration
    over ``floor_hp`` (ms), decay and contrast from its first 5 ms to 15-40 ms after (dB),
    and the harmonicity of 15-55 ms after (``just_before``: the 20 ms before the onset)."""
    duration = _duration_ms(hp[onset:], floor_hp, sr)
    # What was already sounding just before the onset is taken from both, so a pop on top
    # of a rub or a voice still shows as the burst it is.
    pre = _mean_square(hp[just_before])
    head = _mean_square(hp[onset: onset + int(0.005 * sr)]) - pre
    body = _mean_square(hp[onset + int(0.015 * sr): onset + int(0.04 * sr)]) - pre
    decay = 10 * math.log10(max(head, 1e-30) / max(body, floor_hp, 1e-30))
    # Against the sound on both sides, not taken away: a burst stands out of both.
    contrast = 10 * math.log10(max(head + pre, 1e-30) / max(body + pre, pre, 1e-30))
    # Voice is still periodic 15-55 ms after an onset; a pop's ringing has died by then.
    harm = _harmonicity(hp[onset + int(0.015 * sr): onset + int(0.055 * sr)], sr)
    return duration, decay, contrast, harm


def _duration_ms(x: np.ndarray, background_power: float, sr: int) -> float:
    """How long an event's energy stays up, in ms from its onset (capped by ``x``'s end).

    Energy in a 10 ms sliding window, stepped by 1 ms, until it falls below both 6 dB over
    the background and 20 dB under the event's peak. Energy rather than the waveform's
    envelope, and 10 ms rather than less, so that voice (a pulse every 2.5-12 ms) and rub
    count as the long sounds they are; a pop's own length grows by about the window.
    """
    w, step = max(1, int(round(0.010 * sr))), max(1, int(round(0.001 * sr)))
    if len(x) < w:
        return 0.0
    cum = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    starts = np.arange(0, len(x) - w + 1, step)
    energy = (cum[starts + w] - cum[starts]) / w
    k_peak = int(np.argmax(energy[: max(1, int(0.01 * sr) // step)]))
    level = max(4.0 * background_power, energy[k_peak] / 100.0)
    quiet = np.flatnonzero(energy[k_peak:] < level)
    end = k_peak + int(quiet[0]) if len(quiet) else len(energy)
    return 1000.0 * (end * step + w) / sr


def _event_window(n: int, lead: int) -> np.ndarray:
    """Flat over the event, with raised-cosine fades: ``lead`` samples in, a quarter out.

    A Hann window centred on the segment would all but erase a pop's first milliseconds,
    where most of its energy is.
    """
    win = np.ones(n)
    if lead > 0:
        win[:lead] = 0.5 - 0.5 * np.cos(np.pi * np.arange(lead) / lead)
    tail = n // 4
    win[n - tail:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(tail) / tail)
    return win


def _event_spectrum(x: np.ndarray, before: np.ndarray, lead: int, sr: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrum of an event with the background's (Welch, same window) taken away."""
    n = len(x)
    freqs = np.fft.rfftfreq(max(n, 1), 1 / sr)
    if n < 8:
        return freqs, np.zeros_like(freqs)
    win = _event_window(n, lead)
    spec = np.abs(np.fft.rfft((x - x.mean()) * win)) ** 2
    k = len(before) // n
    if k:
        frames = before[len(before) - k * n:].reshape(k, n)
        frames = frames - frames.mean(axis=1, keepdims=True)
        noise = (np.abs(np.fft.rfft(frames * win, axis=1)) ** 2).mean(axis=0)
        spec = np.maximum(spec - noise, 0.0)
    return freqs, spec


def _harmonicity(x: np.ndarray, sr: int) -> float:
    """Largest normalised autocorrelation at voice periods (80-400 Hz): near 1 for voice."""
    if len(x) < int(0.02 * sr):
        return 0.0
    x = x - x.mean()
    ac = np.correlate(x, x, mode="full")[len(x) - 1:]
    if ac[0] <= 0:
        return 0.0
    lo, hi = int(sr / 400), min(int(sr / 80), len(ac) - 1)
    return float(ac[lo:hi].max() / ac[0]) if hi > lo else 0.0
