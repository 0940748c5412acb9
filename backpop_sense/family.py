"""The simulator family: every acoustic parameter of a session drawn from wide ranges.

No public recording of a spinal pop exists, so nobody knows its spectrum, and the project's
own simulator (``simulate.py``) renders one guess at each sound. A detector tuned on one guess
fails on the next. A *family member* is a session whose acoustics (its pops, heart, rub,
speech, footsteps, knocks, strap handling, floor, tissue and mics) are drawn per seed from
the ranges below, and whose sounds are rendered by one of five independent sound models:

``dev``
    Sums of exponentially damped sinusoids (modal synthesis): pops, heart sounds, footsteps
    and knocks as a few ringing modes; rub as band-passed noise under a smooth swell; speech
    as additive harmonics shaped by formants.
``heldout``
    Shaped noise and pulses: pops as noise bursts through band-pass filters or a resonator
    struck by a pulse; heart sounds as Gaussian-windowed falling chirps; rub as stick-slip
    crackle (a random train of impulses); speech as glottal pulses through formant
    resonators, with plosive bursts; footsteps and knocks as decaying filtered noise.
``dev2``
    Gamma-envelope grains and driven resonances (added 2026-12-07, so that a choice made on
    dev can be checked on a dev model left out): a tonal pop as a gammatone whose pitch
    glides, a noisy one as a spray of short grains crowding its start (a crack as many small
    ruptures); heart sounds as band-limited 1/f noise under a fast-rising, slow-falling
    envelope; rub as band noise whose loudness wanders (a log-normal random walk), some with
    a squeak; speech as jittered glottal pulses through three formants moving from vowel to
    vowel, with fricatives; a footstep's thump as the body's low resonance driven by the
    heel's half-sine force; knocks as the hit and two ringing grains.
``dev3``
    Strings and spikes (added 2026-12-07, so that adding a model to the training can itself
    be checked on one left out): a tonal pop as a plucked string (Karplus-Strong, a tendon
    snapping), a noisy one as a collapsing bubble's spikes, closer and closer, heard through
    the band; heart sounds as a rising chirp under a tapered envelope (the wall tensing), the
    valve click and every short click as a windowed-sinc band's response; rub as brown noise
    gated by stick and slip; speech as a square wave through one broad formant, with breath;
    a footstep's thump as the rate of change of the ground's push; knocks as plucked boards.
``dev4``
    Bars, friction and grains (added 2026-12-07, so that the choice of which models the
    judges learn from is checked on a model neither choice learned from): a tonal pop as a
    struck bar (inharmonic modes) damped by dry friction (its amplitude falling in a straight
    line), a noisy one as noise shaped to a Gaussian in log frequency; heart sounds as a few
    Ricker-wavelet thuds one after another, the valve click and every short click as a
    Blackman tone burst; rub as grains of friction noise through a Chebyshev band-pass under
    a logistic swell; speech by formant wave functions (FOF grains every glottal period); a
    footstep's thump as the critically damped push of heel and toe; knocks as a Hertzian
    contact and a ringing bar.

Parameters are chosen on ``dev``, ``dev2``, ``dev3`` and ``dev4`` members (and the first
simulator) and figures reported on ``heldout`` members: held out by family (another physics
of every sound), not only by seed. Every family draws from the same ranges.

Ranges, and where they come from
--------------------------------
=========================  ======================  ==============================================
parameter                  range                   source
=========================  ======================  ==============================================
pop spectrum centre        100 Hz - 8 kHz          issue 21: broadband cracks (cavitation) to
                           (log-uniform)           dull low clunks (tendons); exact unknown
pop character              tonal or noisy (1/2)    issue 21; tonal 1/6-1/2 octave, noisy 1-3 oct
pop clicks                 1 - 3, 2-12 ms apart    issue 21; background.md (double click)
pop duration               2 - 30 ms (log-unif.)   issue 21: "a few to a few tens of ms"
attenuation along spine    2 - 8 dB per level      issue 21
tissue low-pass            2-8 kHz at the joint,   soft tissue absorbs high frequencies faster;
                           e-fold per 5-20 cm      corner and rate unknown, drawn
mic high-pass              contact 10-60 Hz or     piezo contact mics: corner set by the input
                           phone 100-300 Hz        impedance; phone voice path high-passes
mic gain                   +-1 dB per mic          MEMS datasheets: +-1 dB sensitivity
                                                   tolerance
floor level                -65..-50 dBFS RMS       a 16-bit recording's gain set with headroom
heart rate                 40 - 180 bpm            bradycardia to exercise tachycardia
heart rhythm               regular (1-5 % beat to  sinus rhythm with respiratory arrhythmia;
                           beat), extra beats      premature beats (55-75 % of the interval,
                           2-12/min, or irregular  compensatory pause); atrial fibrillation
                           (10-25 % RR spread)     (RR spread)
heart sounds               S1 80-150 ms, S2 60-    issue 21 "20-400 Hz plus click"; clinical S1
                           120 ms, 20-400 Hz,      and S2 lengths; S1-S2 0.33 s * sqrt(RR/1 s)
                           valve click 2-10 ms,    (systole shortens with heart rate)
                           150-1200 Hz
heart loudness             S1 -5..+25 dB over the  a contact mic near the heart hears it well
                           floor at nearest mic    above its floor; far mics less
rub                        band 100-1500 Hz up to  issue 21: varied spectra and swells
                           1-6 kHz; swell 20-400
                           ms; 0.2-1.5 s long
speech                     f0 80-300 Hz            issue 21; adult and child voices
footstep                   thump 30-250 Hz, heel   issue 21: "footsteps with sharp heel clicks"
                           click 1-5 ms 0.3-4 kHz
                           at -15..+6 dB
knock                      100 Hz - 5 kHz, equal   external: through air or furniture, the same
                           at every mic +-0.5 dB   at every mic; air delays up to 0.4 ms
strap handling             2-6 touches in 0.5-2 s  a hand adjusting the strap: taps and a scrape
                           on one mic, others      at the mic touched
                           -25..-10 dB
artifact drift             0 dB (set to move)      a sliding strap moves a rub along the mics;
                                                   held-out stress set only (not drawn)
floor                      each part x 0.3-3       body and electronics differ per subject
=========================  ======================  ==============================================

Where a range is wider than what a body produces, it is wider on purpose: the detector must be
right across the whole range, not for one guess at it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import signal

from .levels import SEGMENT_LENGTH_M, SKIN_DEPTH_M, level_distance_m, level_index
from .sounds import Event, damped, mic_weights, ramp, seed_of
from .vocab import POP_KINDS

FAMILIES = ("dev", "heldout", "dev2", "dev3", "dev4")
"""The five sound models; parameters are chosen on ``dev``, ``dev2``, ``dev3`` and ``dev4``, figures
reported on ``heldout`` (the order is part of every member's seed: a new model goes last)."""

HEART_LEVELS = ("T3", "T4", "T5", "T6", "T7", "T8")
"""Levels the heart lies in front of (it is anterior, 6-12 cm deep from the back's skin)."""


@dataclass(frozen=True)
class PopSound:
    """What one kind of pop sounds like at its source in one session.

    Attributes
    ----------
    centre_hz : float
        Centre of the source spectrum, Hz.
    bandwidth_oct : float
        Width of the spectrum, octaves (tonal: under 1/2; noisy: 1-3).
    tonal : bool
        A ringing tone rather than a noise burst.
    clicks : int
        Clicks per pop (1-3).
    gap_ms : float
        Time between clicks, ms.
    duration_ms : float
        Time for one click to fall 60 dB, ms.
    """

    centre_hz: float
    bandwidth_oct: float
    tonal: bool
    clicks: int
    gap_ms: float
    duration_ms: float


@dataclass(frozen=True)
class Acoustics:
    """Every acoustic parameter of one family member (see the module's table for ranges).

    Levels are dB; frequencies Hz; times s unless named ``_ms``. ``pops`` holds one
    :class:`PopSound` per kind, in :data:`POP_KINDS` order.
    """

    family: str
    pops: tuple[PopSound, ...]
    attenuation_db_per_level: float
    tissue_corner_hz: float
    tissue_length_m: float
    sound_speed_ms: float
    mic_kind: str
    mic_highpass_hz: float
    mic_gain_db: tuple[float, ...]
    floor_dbfs: float
    heart_bpm: float
    heart_rhythm: str
    heart_variability: float
    heart_extra_per_min: float
    heart_db: float
    heart_level: str
    heart_depth_m: float
    heart_s1_hz: tuple[float, float]
    heart_s2_hz: tuple[float, float]
    heart_s1_ms: float
    heart_s2_ms: float
    heart_click_hz: float
    heart_click_db: float
    rub_band_hz: tuple[float, float]
    rub_swell_s: float
    rub_gain: float
    speech_f0_hz: float
    speech_gain: float
    footstep_click_db: float
    footstep_click_hz: float
    knock_band_hz: tuple[float, float]
    handling_per_min: float
    floor_gains: tuple[float, float, float, float, float] = (1.0, 1.0, 1.0, 1.0, 1.0)
    """Multipliers of the floor's white noise, body noise, rumble, breathing and mains hum."""
    pink_corner_hz: float = 300.0
    artifact_drift_db: float = 0.0
    """How far a rub or a strap handling moves along the mics within one event, dB: each
    mic's gain goes from one point to another of a band this wide over a rub or a scrape,
    and differs by as much from tap to tap. Not drawn: 0 (every artifact holds its place)
    unless set, as the held-out stress set does (``benchmarks/heldout.py``): a strap that
    slides moves the sound along the mics."""

    def pop(self, kind: str) -> PopSound:
        """The sound of pops of ``kind``."""
        return self.pops[POP_KINDS.index(kind)]


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def draw_pop_sound(rng: np.random.Generator, *, centre_hz: tuple[float, float] = (100.0, 8000.0),
                   tonal: bool | None = None) -> PopSound:
    """One kind's pop sound, drawn from the family's ranges (or the given centre range)."""
    is_tonal = bool(rng.random() < 0.5) if tonal is None else tonal
    return PopSound(
        centre_hz=_loguniform(rng, *centre_hz),
        bandwidth_oct=float(rng.uniform(1 / 6, 0.5) if is_tonal else rng.uniform(1.0, 3.0)),
        tonal=is_tonal,
        clicks=int(rng.integers(1, 4)),
        gap_ms=float(rng.uniform(2.0, 12.0)),
        duration_ms=_loguniform(rng, 2.0, 30.0),
    )


def _draw_path(rng: np.random.Generator, phone: bool, n_mics: int) -> dict:
    """The pops at their source, the tissue between them and the mics, the mics, the floor
    level: :func:`draw_acoustics`'s draws in their order."""
    return dict(
        pops=tuple(draw_pop_sound(rng) for _ in POP_KINDS),
        attenuation_db_per_level=float(rng.uniform(2.0, 8.0)),
        tissue_corner_hz=_loguniform(rng, 2000.0, 8000.0),
        tissue_length_m=float(rng.uniform(0.05, 0.20)),
        sound_speed_ms=float(rng.uniform(1500.0, 3000.0)),
        mic_kind="phone" if phone else "contact",
        mic_highpass_hz=_loguniform(rng, 100.0, 300.0) if phone else _loguniform(rng, 10.0, 60.0),
        mic_gain_db=tuple(float(g) for g in rng.uniform(-1.0, 1.0, n_mics)),
        floor_dbfs=float(rng.uniform(-65.0, -50.0)),
    )


def _draw_heart(rng: np.random.Generator, rhythm: str, s1_lo: float, s2_lo: float) -> dict:
    """The heart's rate, rhythm, place and sounds: :func:`draw_acoustics`'s draws in their
    order (``s1_lo`` and ``s2_lo``, the sounds' lowest frequencies in Hz, drawn before)."""
    return dict(
        heart_bpm=float(rng.uniform(40.0, 180.0)),
        heart_rhythm=rhythm,
        heart_variability=float(rng.uniform(0.01, 0.05) if rhythm != "irregular"
                                else rng.uniform(0.10, 0.25)),
        heart_extra_per_min=float(rng.uniform(2.0, 12.0)) if rhythm == "extra beats" else 0.0,
        heart_db=float(rng.uniform(-5.0, 25.0)),
        heart_level=str(rng.choice(HEART_LEVELS)),
        heart_depth_m=float(rng.uniform(0.06, 0.12)),
        heart_s1_hz=(float(s1_lo), float(rng.uniform(max(2 * s1_lo, 100.0), 400.0))),
        heart_s2_hz=(float(s2_lo), float(rng.uniform(max(2 * s2_lo, 120.0), 400.0))),
        heart_s1_ms=float(rng.uniform(80.0, 150.0)),
        heart_s2_ms=float(rng.uniform(60.0, 120.0)),
        heart_click_hz=_loguniform(rng, 150.0, 1200.0),
        heart_click_db=float(rng.uniform(-20.0, -3.0)),
    )


def _draw_artifacts(rng: np.random.Generator) -> dict:
    """Rub, speech, footsteps, knocks and strap handling: :func:`draw_acoustics`'s draws in
    their order."""
    return dict(
        rub_band_hz=(_loguniform(rng, 100.0, 1500.0), _loguniform(rng, 1000.0, 6000.0)),
        rub_swell_s=_loguniform(rng, 0.02, 0.4),
        rub_gain=_loguniform(rng, 0.5, 3.0),
        speech_f0_hz=_loguniform(rng, 80.0, 300.0),
        speech_gain=_loguniform(rng, 0.5, 3.0),
        footstep_click_db=float(rng.uniform(-15.0, 6.0)),
        footstep_click_hz=_loguniform(rng, 300.0, 4000.0),
        knock_band_hz=(_loguniform(rng, 100.0, 800.0), _loguniform(rng, 1000.0, 5000.0)),
        handling_per_min=float(rng.uniform(0.5, 3.0)),
    )


def draw_acoustics(family: str, seed: int, n_mics: int, **fixed: object) -> Acoustics:
    """A family member's acoustics, drawn from its own stream of ``seed``.

    Parameters
    ----------
    family : str
        One of :data:`FAMILIES`.
    seed : int
        The member's seed; the same seed gives the same acoustics.
    n_mics : int
        Mics of the session (one gain each).
    **fixed
        Fields to set instead of drawing them (``pops=...`` for low tonal snaps, say).

    Raises
    ------
    ValueError
        For an unknown family or field.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    rng = np.random.default_rng([seed, 21, FAMILIES.index(family)])
    # The order of the draws is part of every member: these four come first, then the fields
    # in the order Acoustics declares them.
    phone = bool(rng.random() < 0.5)
    rhythm = str(rng.choice(["regular", "extra beats", "irregular"], p=[0.5, 0.3, 0.2]))
    s1_lo = rng.uniform(20.0, 60.0)
    s2_lo = rng.uniform(30.0, 80.0)
    ac = Acoustics(
        family=family,
        **_draw_path(rng, phone, n_mics),
        **_draw_heart(rng, rhythm, s1_lo, s2_lo),
        **_draw_artifacts(rng),
        floor_gains=tuple(float(g) for g in np.exp(rng.uniform(math.log(0.3), math.log(3.0), 5))),
        pink_corner_hz=_loguniform(rng, 100.0, 600.0),
    )
    unknown = set(fixed) - set(Acoustics.__dataclass_fields__)
    if unknown:
        raise ValueError(f"no such acoustic parameter: {', '.join(sorted(unknown))}")
    return replace(ac, **fixed)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- pops

def _band(centre: float, octaves: float, sr: int) -> tuple[float, float]:
    top = 0.45 * sr
    lo = centre * 2 ** (-octaves / 2)
    hi = min(centre * 2 ** (octaves / 2), top)
    return min(max(lo, 20.0), 0.8 * hi), hi


def _click_modes(sound: PopSound, rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """``dev``: one click as damped sinusoids, 60 dB down after its duration."""
    lo, hi = _band(sound.centre_hz, sound.bandwidth_oct, sr)
    k = int(rng.integers(1, 4)) if sound.tonal else int(rng.integers(8, 16))
    f = np.exp(rng.uniform(math.log(lo), math.log(hi), k))
    tau = sound.duration_ms / 1000 / 6.9 * rng.uniform(0.6, 1.4, k)
    w = rng.uniform(0.3, 1.0, k)
    t = np.arange(n) / sr
    return damped(t, f, tau, rng.uniform(0, 2 * np.pi, k), w, rng.uniform(5e-5, 1e-3))


def _click_burst(sound: PopSound, rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """``heldout``: one click as a shaped noise burst through a band-pass, or a resonator
    struck by a short pulse (tonal)."""
    t = np.arange(n) / sr
    d = sound.duration_ms / 1000
    if sound.tonal:
        # A resonator struck by a smooth blow lasting half its period: it rings at f0 for
        # the duration (or a couple of periods, if that is longer).
        f0 = min(sound.centre_hz, 0.42 * sr)
        q = max(2.0, math.pi * f0 * d / 6.9)
        b, a = signal.iirpeak(f0, q, fs=sr)
        width = max(2, int(rng.uniform(0.3, 0.6) / f0 * sr))
        pulse = np.zeros(n)
        pulse[:width] = np.hanning(width + 2)[1:-1][: n]
        return signal.lfilter(b, a, signal.lfilter(b, a, pulse))
    attack = rng.uniform(5e-5, 1e-3)
    env = np.minimum(t / attack, 1.0) * np.exp(-np.maximum(t - attack, 0) * 6.9 / d)
    lo, hi = _band(sound.centre_hz, sound.bandwidth_oct, sr)
    sos = signal.butter(2, [lo, hi], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, rng.normal(0, 1, n) * env)


def pop_wave(ac: Acoustics, kind: str, rng: np.random.Generator, sr: int) -> np.ndarray:
    """A pop at its source: its kind's sound in this session, varied a little pop by pop."""
    base = ac.pop(kind)
    sound = replace(base, centre_hz=base.centre_hz * 2 ** rng.normal(0, 0.15),
                    duration_ms=base.duration_ms * rng.uniform(0.8, 1.25))
    n = int(0.1 * sr)
    render = SOUND_MODELS[ac.family].pop
    out = np.zeros(n)
    at = 0
    for k in range(sound.clicks):
        x = render(sound, rng, sr, n - at)
        x = x / (np.sqrt(np.mean(x[: max(1, int(0.01 * sr))] ** 2)) + 1e-12)
        out[at:] += x * (1.0 if k == 0 else rng.uniform(0.4, 1.2))
        at += int(sound.gap_ms * rng.uniform(0.8, 1.2) / 1000 * sr)
        if at >= n:
            break
    return out


def _delay(x: np.ndarray, seconds: float, sr: int) -> np.ndarray:
    """``x`` delayed by ``seconds`` (a fraction of a sample through the spectrum)."""
    n = len(x)
    spec = np.fft.rfft(x, 2 * n)
    f = np.fft.rfftfreq(2 * n, 1 / sr)
    return np.fft.irfft(spec * np.exp(-2j * np.pi * f * seconds), 2 * n)[:n]


def propagate(ac: Acoustics, wave: np.ndarray, level: str, mics: tuple[str, ...], sr: int
              ) -> np.ndarray:
    """A source at ``level`` as each mic hears it: attenuated by ``attenuation_db_per_level``
    with distance, low-passed by tissue, delayed by the speed of sound in tissue."""
    out = np.zeros((len(wave), len(mics)))
    for j, m in enumerate(mics):
        d = level_distance_m(level, m) + SKIN_DEPTH_M
        gain = 10 ** (-ac.attenuation_db_per_level * (d / SEGMENT_LENGTH_M) / 20)
        corner = min(ac.tissue_corner_hz * math.exp(-d / ac.tissue_length_m), 0.45 * sr)
        b, a = signal.butter(1, corner, fs=sr)
        out[:, j] = gain * signal.lfilter(b, a, _delay(wave, d / ac.sound_speed_ms, sr))
    return out


# --------------------------------------------------------------------------- heart

def beat_times(ac: Acoustics, duration_s: float, rng: np.random.Generator
               ) -> list[tuple[float, float, bool]]:
    """The heart's beats: (S1 time, RR interval before the next beat, premature) each."""
    rr0 = 60.0 / ac.heart_bpm
    breath = rng.uniform(3.0, 6.0)
    out = []
    t = rng.uniform(0, rr0)
    while t < duration_s:
        if ac.heart_rhythm == "irregular":
            rr = rr0 * float(np.exp(rng.normal(0, ac.heart_variability)))
        else:
            rr = rr0 * (1 + 0.5 * ac.heart_variability * math.sin(2 * math.pi * t / breath)
                        + rng.normal(0, 0.5 * ac.heart_variability))
        rr = max(rr, 0.3)
        if ac.heart_extra_per_min and rng.random() < ac.heart_extra_per_min * rr0 / 60:
            early = rr * rng.uniform(0.55, 0.75)
            out.append((t, early, False))
            out.append((t + early, 2 * rr - early, True))
            t += 2 * rr
            continue
        out.append((t, rr, False))
        t += rr
    return out


def _heart_sound(ac: Acoustics, which: str, rng: np.random.Generator, sr: int) -> np.ndarray:
    lo, hi = ac.heart_s1_hz if which == "S1" else ac.heart_s2_hz
    ms = ac.heart_s1_ms if which == "S1" else ac.heart_s2_ms
    d = ms / 1000 * rng.uniform(0.9, 1.1)
    n = int((d + 0.05) * sr)
    t = np.arange(n) / sr
    x = SOUND_MODELS[ac.family].heart(lo, hi, d, t, rng, sr)
    x = x / (np.max(np.abs(x)) + 1e-12)
    click_gain = 10 ** (ac.heart_click_db / 20)
    click_f = min(ac.heart_click_hz * 2 ** rng.normal(0, 0.1), 0.42 * sr)
    at = int(rng.uniform(0.005, 0.03) * sr)
    m = min(int(0.02 * sr), n - at)
    tc = np.arange(m) / sr
    width = rng.uniform(0.002, 0.01)
    click = SOUND_MODELS[ac.family].valve(tc, click_f, width, rng, sr)
    x[at: at + m] += click_gain * click / (np.max(np.abs(click)) + 1e-12)
    return x


def heart_weights(ac: Acoustics, mics: tuple[str, ...]) -> np.ndarray:
    """The heart's loudness at each mic, relative to the nearest: a deep source in the chest
    heard through the back, fading as 1/distance and with tissue loss."""
    along = np.array([level_index(m) - level_index(ac.heart_level) for m in mics], float)
    r = np.hypot(along * SEGMENT_LENGTH_M, ac.heart_depth_m)
    loss = 10 ** (-ac.attenuation_db_per_level * (r - r.min()) / SEGMENT_LENGTH_M / 40)
    w = r.min() / r * loss
    return w / w.max()


def heart_events(ac: Acoustics, duration_s: float, mics: tuple[str, ...], sr: int,
                 rng: np.random.Generator, floor_rms: np.ndarray) -> list[Event]:
    """S1 and S2 of every beat, at ``heart_db`` over ``floor_rms`` (per mic) at the nearest
    mic; premature beats weaker or stronger, S2 0.33 s * sqrt(RR) after S1."""
    w = heart_weights(ac, mics)
    nearest = int(np.argmax(w))
    peak = float(floor_rms[nearest]) * 10 ** (ac.heart_db / 20) * math.sqrt(2)
    events = []
    for t, rr, premature in beat_times(ac, duration_s, rng):
        gain = peak * rng.uniform(0.85, 1.15) * (rng.uniform(0.4, 1.3) if premature else 1.0)
        systole = 0.33 * math.sqrt(min(rr, 1.5))
        for which, at, g in (("S1", t, gain), ("S2", t + systole, gain * rng.uniform(0.5, 1.0))):
            s = seed_of(rng)

            def make(which: str = which, g: float = g, s: int = s) -> np.ndarray:
                x = _heart_sound(ac, which, np.random.default_rng(s), sr)
                return g * x[:, None] * w

            length = int((max(ac.heart_s1_ms, ac.heart_s2_ms) * 1.1 / 1000 + 0.05) * sr)
            events.append(Event(int(at * sr), length, _fit(make, length), "heartbeat"))
    return events


def _fit(make: Callable[[], np.ndarray], length: int) -> Callable[[], np.ndarray]:
    """``make`` padded or cut to ``length`` rows."""
    def made() -> np.ndarray:
        x = make()
        if len(x) >= length:
            return x[:length]
        return np.vstack([x, np.zeros((length - len(x), x.shape[1]))])
    return made


# ------------------------------------------------------------------------ artifacts

def footstep_events(ac: Acoustics, strikes: list[float], mics: tuple[str, ...], sr: int,
                    rng: np.random.Generator, floor_rms: np.ndarray) -> list[Event]:
    """Heel strikes: a low thump and a sharp heel click at the strike, coming up from below
    the mics (the same tissue loss per level as a pop)."""
    n = int(0.15 * sr)
    t = np.arange(n) / sr
    spine = propagate(ac, np.r_[1.0, np.zeros(63)], "S1", mics, sr).sum(axis=0)
    w = spine / spine.max()
    events = []
    for ts in strikes:
        amp = float(floor_rms.max()) * 10 ** (rng.uniform(6, 26) / 20)
        s = seed_of(rng)

        def make(amp: float = amp, s: int = s) -> np.ndarray:
            r = np.random.default_rng(s)
            thump = SOUND_MODELS[ac.family].thump(t, r, sr)
            thump = thump / (np.max(np.abs(thump)) + 1e-12)
            click = _short_click(ac.footstep_click_hz, r.uniform(1e-3, 5e-3), r, sr, n,
                                 ac.family)
            x = thump + 10 ** (ac.footstep_click_db / 20) * click
            return amp * x[:, None] * w

        events.append(Event(int(ts * sr), n, make, "footstep"))
    return events


def _short_click(centre_hz: float, length_s: float, rng: np.random.Generator, sr: int, n: int,
                 family: str) -> np.ndarray:
    """A click of ``length_s`` around ``centre_hz``, peak 1."""
    t = np.arange(n) / sr
    f = min(centre_hz * 2 ** rng.normal(0, 0.2), 0.42 * sr)
    x = SOUND_MODELS[family].click(t, f, length_s, rng, sr)
    return x / (np.max(np.abs(x)) + 1e-12)


def knock_events(ac: Acoustics, duration_s: float, per_minute: float, mics: tuple[str, ...],
                 sr: int, rng: np.random.Generator, floor_rms: np.ndarray) -> list[Event]:
    """External knocks in bursts of 2-4: the same at every mic (+-0.5 dB), reaching them
    through the air up to 0.4 ms apart."""
    n = int(0.06 * sr)
    t = np.arange(n) / sr
    events = []
    for start in np.sort(rng.uniform(2.0, max(duration_s - 3.0, 2.5),
                                     rng.poisson(per_minute * duration_s / 60.0))):
        tk = start
        for _ in range(int(rng.integers(2, 5))):
            amp = float(floor_rms.max()) * 10 ** (rng.uniform(10, 30) / 20)
            level = amp * 10 ** (rng.uniform(-0.5, 0.5, len(mics)) / 20)
            delays = np.abs(rng.uniform(-1, 1) * np.arange(len(mics))) * 0.4e-3 / max(
                1, len(mics) - 1)
            s = seed_of(rng)

            def make(level: np.ndarray = level, delays: np.ndarray = delays, s: int = s
                     ) -> np.ndarray:
                r = np.random.default_rng(s)
                lo, hi = ac.knock_band_hz
                hi = min(hi, 0.45 * sr)
                x = SOUND_MODELS[ac.family].knock(t, lo, hi, r, sr)
                x = x / (np.max(np.abs(x)) + 1e-12)
                return np.stack([lv * _delay(x, d, sr) for lv, d in zip(level, delays,
                                                                        strict=True)], axis=1)

            events.append(Event(int(tk * sr), n, make, "knock"))
            tk += rng.uniform(0.15, 0.3)
    return events


def _speech_dev(f0: float, length: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(length * sr)) / sr
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    f1, f2 = rng.uniform(300, 800), rng.uniform(900, 2200)
    wave = np.zeros_like(t)
    for k in range(1, int(min(3000, 0.42 * sr) / f0)):
        fk = k * pitch
        gain = np.exp(-(((fk - f1) / 250) ** 2)) + 0.5 * np.exp(-(((fk - f2) / 350) ** 2)) + 0.05
        wave += gain * np.sin(k * phase) / k ** 0.5
    return wave


def _speech_heldout(f0: float, length: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Glottal pulses (Rosenberg) through two formant resonators, with plosive bursts."""
    n = int(length * sr)
    t = np.arange(n) / sr
    pitch = f0 * (1 + 0.12 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t + rng.uniform(0, 6)))
    phase = np.cumsum(pitch) / sr
    frac = phase % 1.0
    open_q = rng.uniform(0.4, 0.7)
    rise = 0.7 * open_q
    pulse = np.where(frac < rise, 0.5 * (1 - np.cos(np.pi * frac / rise)),
                     np.where(frac < open_q, np.cos(0.5 * np.pi * (frac - rise)
                                                     / (open_q - rise)), 0.0))
    src = np.diff(pulse, prepend=0.0)
    y = src
    for f, bw in ((rng.uniform(300, 800), 90.0), (rng.uniform(900, 2200), 130.0)):
        f = min(f, 0.42 * sr)
        b, a = signal.iirpeak(f, f / bw, fs=sr)
        y = y + signal.lfilter(b, a, src)
    for at in rng.uniform(0, length, int(rng.integers(0, 4))):  # plosives ("t", "k")
        i, m = int(at * sr), int(rng.uniform(0.005, 0.02) * sr)
        m = min(m, n - i)
        if m > 0:
            y[i: i + m] += rng.normal(0, 3 * np.std(y) + 1e-9, m) * np.exp(-np.arange(m) / (m / 3))
    return y


def speech_events(ac: Acoustics, duration_s: float, per_minute: float, mics: tuple[str, ...],
                  sr: int, rng: np.random.Generator, floor_rms: np.ndarray) -> list[Event]:
    """Bone-conducted speech from the throat, low-passed by the body (corner 1-3 kHz)."""
    weights = mic_weights(mics, "C7", 0.25)
    events = []
    for start in np.sort(rng.uniform(1.0, max(duration_s - 5.0, 1.5),
                                     rng.poisson(per_minute * duration_s / 60.0))):
        length, s = rng.uniform(1.0, 4.0), seed_of(rng)
        rms = float(floor_rms.max()) * ac.speech_gain * 10 ** (rng.uniform(0, 15) / 20)

        def make(length: float = length, s: int = s, rms: float = rms) -> np.ndarray:
            r = np.random.default_rng(s)
            f0 = ac.speech_f0_hz * 2 ** r.normal(0, 0.1)
            wave = SOUND_MODELS[ac.family].speech(f0, length, sr, r)
            sos = signal.butter(2, min(r.uniform(1000, 3000), 0.45 * sr), fs=sr, output="sos")
            wave = signal.sosfilt(sos, wave)
            t = np.arange(len(wave)) / sr
            syllables = np.clip(np.sin(2 * np.pi * r.uniform(3.0, 6.0) * t), 0, None) ** 2
            wave = wave * syllables * ramp(t / 0.1) * ramp((length - t) / 0.1)
            return (wave * rms / (np.sqrt(np.mean(wave ** 2)) + 1e-12))[:, None] * weights

        events.append(Event(int(start * sr), int(length * sr), make, "speech"))
    return events


def _rub_wave(ac: Acoustics, length: float, sr: int, r: np.random.Generator) -> np.ndarray:
    t = np.arange(int(length * sr)) / sr
    lo, hi = ac.rub_band_hz
    hi = min(max(hi, 1.5 * lo), 0.45 * sr)
    lo = min(lo, 0.6 * hi)
    swell = ac.rub_swell_s * r.uniform(0.7, 1.4)
    x = SOUND_MODELS[ac.family].rub(t, lo, hi, swell, length, r, sr)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def rub_events(ac: Acoustics, starts: list[float], mics: tuple[str, ...], sr: int,
               rng: np.random.Generator, floor_rms: np.ndarray) -> list[Event]:
    """Fabric rub as the strap slides, loudest at the mic it slides over."""
    events = []
    for start in starts:
        length, s = rng.uniform(0.2, 1.5), seed_of(rng)
        rms = float(floor_rms.max()) * ac.rub_gain * 10 ** (rng.uniform(0, 12) / 20)

        def make(length: float = length, s: int = s, rms: float = rms) -> np.ndarray:
            r = np.random.default_rng(s)
            weights = r.uniform(0.1, 0.5, len(mics))
            weights[r.integers(len(mics))] = 1.0
            wave = _rub_wave(ac, length, sr, r)
            return rms * wave[:, None] * weights * _drift(ac, len(wave), len(mics), r)

        events.append(Event(int(start * sr), int(length * sr), make, "rub"))
    return events


def handling_events(ac: Acoustics, duration_s: float, per_minute: float, mics: tuple[str, ...],
                    sr: int, rng: np.random.Generator, floor_rms: np.ndarray) -> list[Event]:
    """A hand adjusting the strap, ``per_minute`` times a minute: 2-6 taps within 0.5-2 s and
    a scrape, at one mic."""
    events = []
    n_tap = int(0.04 * sr)
    for start in np.sort(rng.uniform(1.0, max(duration_s - 3.0, 1.5),
                                     rng.poisson(per_minute * duration_s / 60.0))):
        mic = int(rng.integers(len(mics)))
        weights = 10 ** (rng.uniform(-25, -10, len(mics)) / 20)
        weights[mic] = 1.0
        span = rng.uniform(0.5, 2.0)
        for at in np.sort(start + rng.uniform(0, span, int(rng.integers(2, 7)))):
            amp = float(floor_rms.max()) * 10 ** (rng.uniform(10, 30) / 20)
            s = seed_of(rng)

            def make(amp: float = amp, s: int = s, w: np.ndarray = weights) -> np.ndarray:
                r = np.random.default_rng(s)
                tap = _short_click(r.uniform(100, 2000), r.uniform(3e-3, 20e-3), r, sr, n_tap,
                                   ac.family)
                return amp * tap[:, None] * w * _drift(ac, 1, len(w), r)

            events.append(Event(int(at * sr), n_tap, make, "handling"))
        length, s = span, seed_of(rng)
        rms = float(floor_rms.max()) * 10 ** (rng.uniform(0, 12) / 20)

        def scrape(length: float = length, s: int = s, rms: float = rms,
                   w: np.ndarray = weights) -> np.ndarray:
            r = np.random.default_rng(s)
            wave = _rub_wave(ac, length, sr, r)
            return rms * wave[:, None] * w * _drift(ac, len(wave), len(w), r)

        events.append(Event(int(start * sr), int(length * sr), scrape, "handling"))
    return events


def _drift(ac: Acoustics, n: int, n_mics: int, r: np.random.Generator) -> np.ndarray | float:
    """Each mic's gain over an event's ``n`` samples (shape (n, mics)) as its place moves:
    from a random start within +-``artifact_drift_db``/2 to a random end as far, along a
    raised cosine. 1.0 (drawing nothing, so that members without drift are as before) when
    ``artifact_drift_db`` is 0."""
    if ac.artifact_drift_db <= 0:
        return 1.0
    half = ac.artifact_drift_db / 2
    start, end = r.uniform(-half, half, n_mics), r.uniform(-half, half, n_mics)
    path = start + (end - start) * ramp(np.linspace(0.0, 1.0, n))[:, None]
    return 10 ** (path / 20)


# ------------------------------------------------- the first two models' sounds, by name

def _heart_dev(lo: float, hi: float, d: float, t: np.ndarray, rng: np.random.Generator,
               sr: int) -> np.ndarray:
    """``dev``: a heart sound as three damped modes within ``lo``-``hi`` Hz."""
    k = 3
    f = np.exp(rng.uniform(math.log(lo), math.log(hi), k))
    return damped(t, f, np.full(k, d / 4.6), rng.uniform(0, 6, k), np.array([1.0, 0.7, 0.4]),
                  d / 6)


def _heart_heldout(lo: float, hi: float, d: float, t: np.ndarray, rng: np.random.Generator,
                   sr: int) -> np.ndarray:
    """``heldout``: a heart sound as a Gaussian-windowed chirp falling from ``hi`` to ``lo``."""
    centre = d / 2
    env = np.exp(-0.5 * ((t - centre) / (d / 5)) ** 2)
    freq = hi + (lo - hi) * np.clip(t / d, 0, 1)  # a falling chirp
    return env * np.sin(2 * np.pi * np.cumsum(freq) / sr + rng.uniform(0, 6))


def _noise_click(t: np.ndarray, lo: float, hi: float, decay_s: float, rng: np.random.Generator,
                 sr: int) -> np.ndarray:
    """``heldout``'s click: noise decaying 60 dB in ``decay_s`` through a band-pass."""
    sos = signal.butter(2, [lo, min(hi, 0.45 * sr)], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, rng.normal(0, 1, len(t)) * np.exp(-t * 6.9 / decay_s))


def _thump_dev(t: np.ndarray, r: np.random.Generator, sr: int) -> np.ndarray:
    """``dev``: a heel strike's thump as three damped low modes."""
    f = r.uniform([30, 70, 130], [60, 130, 250])
    return damped(t, f, np.array([0.03, 0.02, 0.012]), r.uniform(0, 6, 3),
                  np.array([1.0, 0.6, 0.3]), 0.004)


def _thump_heldout(t: np.ndarray, r: np.random.Generator, sr: int) -> np.ndarray:
    """``heldout``: a heel strike's thump as decaying noise through 30-250 Hz."""
    sos = signal.butter(2, [30.0, 250.0], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, r.normal(0, 1, len(t)) * np.exp(-t / 0.025))


def _knock_dev(t: np.ndarray, lo: float, hi: float, r: np.random.Generator, sr: int
               ) -> np.ndarray:
    """``dev``: a knock as three damped modes within ``lo``-``hi`` Hz."""
    f = np.exp(r.uniform(math.log(lo), math.log(hi), 3))
    return damped(t, f, r.uniform(3e-3, 8e-3, 3), r.uniform(0, 6, 3),
                  np.array([1.0, 0.7, 0.4]), 2e-4)


def _knock_heldout(t: np.ndarray, lo: float, hi: float, r: np.random.Generator, sr: int
                   ) -> np.ndarray:
    """``heldout``: a knock as decaying noise through ``lo``-``hi`` Hz."""
    sos = signal.butter(2, [lo, hi], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, r.normal(0, 1, len(t)) * np.exp(-t / r.uniform(2e-3, 8e-3)))


def _knock_dev3(t: np.ndarray, lo: float, hi: float, r: np.random.Generator, sr: int
                ) -> np.ndarray:
    """``dev3``: a knock as a plucked board at ``lo``-``hi`` Hz, ringing 5-30 ms."""
    return _pluck(float(np.exp(r.uniform(math.log(lo), math.log(hi)))),
                  r.uniform(0.005, 0.03), sr, len(t), r)


def _rub_filtered(t: np.ndarray, lo: float, hi: float, env: np.ndarray, src: np.ndarray,
                  sr: int) -> np.ndarray:
    """``src`` through a band-pass of ``lo``-``hi`` Hz, under ``env``."""
    sos = signal.butter(2, [lo, hi], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, src) * env


def _rub_dev(t: np.ndarray, lo: float, hi: float, swell: float, length: float,
             r: np.random.Generator, sr: int) -> np.ndarray:
    """``dev``: rub as band-passed noise under a smooth swell with a tremolo."""
    env = ramp(t / swell) * ramp((length - t) / r.uniform(0.05, 0.2))
    env *= 1 + 0.5 * np.sin(2 * np.pi * r.uniform(3, 20) * t)
    return _rub_filtered(t, lo, hi, env, r.normal(0, 1, len(t)), sr)


def _rub_heldout(t: np.ndarray, lo: float, hi: float, swell: float, length: float,
                 r: np.random.Generator, sr: int) -> np.ndarray:
    """``heldout``: stick-slip rub, a random train of impulses, denser as the rub swells."""
    env = (1 - np.exp(-t / swell)) * np.exp(-np.maximum(t - 0.7 * length, 0) / 0.05)
    rate = r.uniform(300, 3000)
    src = np.zeros(len(t))
    hits = r.random(len(t)) < rate / sr
    src[hits] = r.lognormal(0, 0.7, int(hits.sum())) * r.choice([-1, 1], int(hits.sum()))
    return _rub_filtered(t, lo, hi, env, src, sr)


# ------------------------------------------------------------------- the third model

@functools.cache
def _gamma_k(order: int) -> float:
    """How many time constants after its start an order-``order`` gamma envelope
    ``t**(order-1) * exp(-t/tau)`` lies 60 dB under its peak (bisection; 6.9 at order 1)."""
    peak = order - 1

    def down(k: float) -> float:  # dB under the peak at k time constants (k > peak)
        return -20 * math.log10(math.e) * ((order - 1) * math.log(k / peak) - (k - peak)) \
            if peak else 20 * math.log10(math.e) * k

    lo, hi = peak + 1e-6, peak + 60.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if down(mid) < 60.0 else (lo, mid)
    return (lo + hi) / 2


def _gammatone(t: np.ndarray, sr: int, f: float, dur: float, order: int = 4,
               glide_oct: float = 0.0, phase: float = 0.0) -> np.ndarray:
    """``dev2``'s grain: a tone at ``f`` Hz under an order-``order`` gamma envelope that rises
    and falls 60 dB ``dur`` s after its start (peak 1), its pitch gliding ``glide_oct``
    octaves over that time (a collapsing bubble or a slipping band changes its pitch)."""
    tau = dur / _gamma_k(order)
    tt = np.maximum(t, 0.0)
    peak_t = max(order - 1, 1e-9) * tau
    env = (tt / peak_t) ** (order - 1) * np.exp(-(tt - peak_t) / tau) if order > 1 \
        else np.exp(-tt / tau)
    freq = f * 2.0 ** (glide_oct * np.clip(tt / dur, 0.0, 1.0))
    return np.where(t >= 0, env * np.sin(2 * np.pi * np.cumsum(freq) / sr + phase), 0.0)


def _click_grains(sound: PopSound, rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """``dev2``: one click as a gliding gammatone (tonal), or as a spray of short grains
    across the band whose onsets crowd the click's start (noisy: a crack is many small
    ruptures)."""
    t = np.arange(n) / sr
    d = sound.duration_ms / 1000
    top = 0.42 * sr
    if sound.tonal:
        f0 = min(sound.centre_hz, top)
        x = _gammatone(t, sr, f0, d, int(rng.integers(2, 5)), rng.uniform(-0.5, 0.5),
                       rng.uniform(0, 2 * np.pi))
        if 2 * f0 < top:  # a stiff source's second harmonic
            x += rng.uniform(0.0, 0.3) * _gammatone(t, sr, 2 * f0, 0.6 * d, 3, 0.0,
                                                    rng.uniform(0, 2 * np.pi))
        return x
    lo, hi = _band(sound.centre_hz, sound.bandwidth_oct, sr)
    x = np.zeros(n)
    for _ in range(int(rng.integers(12, 40))):
        f = float(np.exp(rng.uniform(math.log(lo), math.log(hi))))
        at = float(rng.exponential(0.12 * d))
        if at >= d:
            continue
        grain = max(0.25 * d, 3.0 / f)  # at least three periods
        x += math.exp(-6.9 * at / d) * _gammatone(t - at, sr, f, grain, 2, 0.0,
                                                  rng.uniform(0, 2 * np.pi))
    return x


def _band_noise(rng: np.random.Generator, n: int, lo: float, hi: float, sr: int,
                tilt: float = 1.0) -> np.ndarray:
    """``dev2``'s noise: white noise kept between ``lo`` and ``hi`` Hz in its spectrum, its
    power falling as f**-``tilt`` there (unit RMS)."""
    return _shaped_noise(rng, n, sr, lambda f: np.where((f >= lo) & (f <= hi),
                                                        np.maximum(f, 1.0) ** (-tilt / 2), 0.0))


def _shaped_noise(rng: np.random.Generator, n: int, sr: int,
                  gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``n`` samples of white noise whose spectrum is multiplied by ``gain`` of each bin's
    frequency (Hz), at unit RMS."""
    spec = np.fft.rfft(rng.normal(0, 1, n))
    x = np.fft.irfft(spec * gain(np.fft.rfftfreq(n, 1 / sr)), n)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def _heart_dev2(lo: float, hi: float, d: float, t: np.ndarray, rng: np.random.Generator,
                sr: int) -> np.ndarray:
    """``dev2``: a heart sound as band-limited noise (power falling as 1/f) under a fast-rising,
    slow-falling envelope (t e^-t)."""
    tau = d / _gamma_k(2)
    env = (t / tau) * np.exp(1 - t / tau)
    return env * _band_noise(rng, len(t), lo, hi, sr)


def _thump_dev2(t: np.ndarray, r: np.random.Generator, sr: int) -> np.ndarray:
    """``dev2``: a heel strike's thump, the body's low resonance (40-120 Hz, Q 1-3) driven by
    the strike's half-sine force (8-25 ms)."""
    width = r.uniform(0.008, 0.025)
    force = np.where(t < width, np.sin(np.pi * t / width), 0.0)
    f0 = r.uniform(40.0, 120.0)
    b, a = signal.iirpeak(f0, r.uniform(1.0, 3.0), fs=sr)
    return signal.lfilter(b, a, force)


def _knock_dev2(t: np.ndarray, lo: float, hi: float, r: np.random.Generator, sr: int
                ) -> np.ndarray:
    """``dev2``: a knock as the hit itself (a 0.1-0.5 ms half-sine) and two ringing grains of
    the struck object within ``lo``-``hi`` Hz."""
    width = r.uniform(1e-4, 5e-4)
    x = np.where(t < width, np.sin(np.pi * t / width), 0.0)
    for _ in range(2):
        f = float(np.exp(r.uniform(math.log(lo), math.log(hi))))
        x = x + r.uniform(0.3, 1.0) * _gammatone(t, sr, f, r.uniform(0.005, 0.03), 2, 0.0,
                                                 r.uniform(0, 6))
    return x


def _speech_dev2(f0: float, length: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``dev2``: a jittered train of decaying glottal pulses through three formants that move
    from vowel to vowel every 120-300 ms (filtered in 10 ms steps), with fricatives (noise
    above 2.5-4 kHz, where the rate allows)."""
    n = int(length * sr)
    src = np.zeros(n)
    at = rng.uniform(0, 1 / f0)
    while at < length:
        i = int(at * sr)
        m = min(int(0.004 * sr), n - i)
        src[i: i + m] += rng.uniform(0.8, 1.2) * np.exp(-np.arange(m) / (0.0008 * sr))
        at += (1 / f0) * (1 + rng.normal(0, 0.015))
    targets = []
    t = 0.0
    while t < length + 0.3:
        targets.append((t, rng.uniform(250, 850), rng.uniform(800, 2400),
                        rng.uniform(2200, 3200)))
        t += rng.uniform(0.12, 0.3)
    times = np.array([x[0] for x in targets])
    step = max(1, int(0.01 * sr))
    y = np.zeros(n)
    for k in range(3):
        track = np.array([x[k + 1] for x in targets])
        zi = np.zeros(2)
        for i in range(0, n, step):
            f = min(float(np.interp(i / sr, times, track)), 0.42 * sr)
            b, a = signal.iirpeak(f, f / (70.0 + 40.0 * k), fs=sr)
            out, zi = signal.lfilter(b, a, src[i: i + step], zi=zi * 1.0)
            y[i: i + step] += out / (k + 1)
    hiss = min(rng.uniform(2500, 4000), 0.4 * sr)
    sos = signal.butter(2, hiss, btype="highpass", fs=sr, output="sos")
    for at in rng.uniform(0, length, int(rng.integers(0, 3))):
        i, m = int(at * sr), int(rng.uniform(0.05, 0.15) * sr)
        m = min(m, n - i)
        if m > 8:
            y[i: i + m] += signal.sosfilt(sos, rng.normal(0, 2 * np.std(y) + 1e-9, m)) \
                * np.hanning(m)
    return y


def _rub_dev2(t: np.ndarray, lo: float, hi: float, swell: float, length: float,
              r: np.random.Generator, sr: int) -> np.ndarray:
    """``dev2``: rub as band noise (1/f within the band) whose loudness wanders (a slow
    log-normal random walk) after a Gaussian-shaped swell, sometimes with a squeak (a
    tone in the band, with vibrato)."""
    n = len(t)
    wander = signal.sosfilt(signal.butter(1, r.uniform(2.0, 15.0), fs=sr, output="sos"),
                            r.normal(0, 1, n))
    wander = wander / (np.std(wander) + 1e-12) * r.uniform(0.2, 0.6)
    env = (1 - np.exp(-((t / swell) ** 2))) * np.exp(wander) * ramp((length - t) / 0.05)
    x = _band_noise(r, n, lo, hi, sr) * env
    if r.random() < 0.5:
        f = float(np.exp(r.uniform(math.log(lo), math.log(hi))))
        vib = 1 + 0.02 * np.sin(2 * np.pi * r.uniform(4, 12) * t)
        x += r.uniform(0.3, 1.0) * env * np.sin(2 * np.pi * np.cumsum(f * vib) / sr)
    return x


# ------------------------------------------------------------------ the fourth model

def _pluck(f0: float, dur: float, sr: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``dev3``: a plucked string (Karplus-Strong): a loop one period long (``f0`` Hz, to
    the nearest whole sample) that averages neighbours and loses 60 dB in ``dur`` s (or
    in three periods, if that is longer: a tone needs a few), plucked by a smooth blow half
    a period wide with a little noise on it. A tendon or a board rings so: harmonics that
    die faster the higher they are."""
    f0 = min(f0, 0.42 * sr)
    period = max(1, int(round(sr / f0 - 0.5)))  # the loop's average delays half a sample
    g = 10 ** (-3.0 / max(dur * sr / period, 3.0))
    a = np.zeros(period + 2)
    a[0], a[period], a[period + 1] = 1.0, -g / 2, -g / 2
    width = max(1, period // 2)
    x = np.zeros(n)
    blow = np.hanning(width + 2)[1:-1] * (1 + rng.uniform(0.0, 0.3) * rng.normal(0, 1, width))
    x[: min(width, n)] = blow[:n]
    return signal.lfilter([1.0], a, x)


def _fir_band(lo: float, hi: float, sr: int, length_s: float) -> np.ndarray:
    """``dev3``'s filter: a linear-phase band-pass (windowed sinc, Hamming) about
    ``length_s`` long, its response a click of that length."""
    taps = max(5, int(length_s * sr) | 1)
    hi = min(hi, 0.45 * sr)
    lo = min(max(lo, 10.0), 0.8 * hi)
    return signal.firwin(taps, [lo, hi], pass_zero=False, fs=sr)


def _fir_click(lo: float, hi: float, sr: int, length_s: float, n: int) -> np.ndarray:
    """``dev3``'s click: :func:`_fir_band`'s response, in ``n`` samples (cut or padded)."""
    kernel = _fir_band(lo, hi, sr, length_s)[:n]
    return np.pad(kernel, (0, n - len(kernel)))


def _click_collapse(sound: PopSound, rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """``dev3``: one click as a plucked string (tonal), or as a collapsing bubble (noisy):
    3-8 pressure spikes whose spacing shrinks as the bubble rebounds smaller, each heard
    through the band (a windowed-sinc kernel), fading 60 dB over the duration."""
    d = sound.duration_ms / 1000
    if sound.tonal:
        return _pluck(sound.centre_hz, d, sr, n, rng)
    lo, hi = _band(sound.centre_hz, sound.bandwidth_oct, sr)
    spikes = np.zeros(n)
    at, gap = 0.0, rng.uniform(0.15, 0.4) * d
    for _ in range(int(rng.integers(3, 9))):
        i = int(at * sr)
        if i >= n or at > d:
            break
        spikes[i] += math.exp(-6.9 * at / d) * rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0)
        at += gap
        gap *= rng.uniform(0.5, 0.8)
    kernel = _fir_band(lo, hi, sr, max(0.3 * d, 3.0 / max(lo, 1.0), 0.001))
    return np.convolve(spikes, kernel)[len(kernel) // 2: len(kernel) // 2 + n]


def _heart_dev3(lo: float, hi: float, d: float, t: np.ndarray, rng: np.random.Generator,
                sr: int) -> np.ndarray:
    """``dev3``: a heart sound as the chamber's vibration when a valve shuts: its pitch
    rising from ``lo`` to ``hi`` Hz as the wall tenses (a rising chirp), under a tapered
    (Tukey) envelope ``d`` s long (``t``: the samples' times, s)."""
    m = max(2, int(round(d * sr)))
    env = np.zeros(len(t))
    env[: min(m, len(t))] = signal.windows.tukey(m, rng.uniform(0.3, 0.8))[: len(t)]
    freq = lo + (hi - lo) * np.clip(t / d, 0, 1) ** rng.uniform(0.5, 2.0)
    return env * np.sin(2 * np.pi * np.cumsum(freq) / sr + rng.uniform(0, 6))


def _thump_dev3(t: np.ndarray, r: np.random.Generator, sr: int) -> np.ndarray:
    """``dev3``: a heel strike's thump as the rate of change of the ground's push (the
    derivative of a Gaussian 5-15 ms wide), low-passed at 80-250 Hz."""
    width = r.uniform(0.005, 0.015)
    centre = 3 * width
    pulse = -(t - centre) / width ** 2 * np.exp(-0.5 * ((t - centre) / width) ** 2)
    sos = signal.butter(2, min(r.uniform(80.0, 250.0), 0.45 * sr), fs=sr, output="sos")
    return signal.sosfilt(sos, pulse)


def _speech_dev3(f0: float, length: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``dev3``: voice as a square wave at the pitch (odd harmonics, the folds shutting
    abruptly) through one broad formant band (windowed sinc, 250-3000 Hz), its loudness
    shaking at 4-7 Hz, with breath noise mixed in."""
    n = int(length * sr)
    t = np.arange(n) / sr
    pitch = f0 * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.2, 0.8) * t + rng.uniform(0, 6)))
    src = np.sign(np.sin(2 * np.pi * np.cumsum(pitch) / sr))
    src = src + rng.uniform(0.05, 0.3) * rng.normal(0, 1, n)
    y = np.convolve(src, _fir_band(rng.uniform(250, 600), rng.uniform(1500, 3000), sr, 0.004),
                    mode="same")
    return y * (1 + 0.4 * np.sin(2 * np.pi * rng.uniform(4.0, 7.0) * t))


def _rub_dev3(t: np.ndarray, lo: float, hi: float, swell: float, length: float,
              r: np.random.Generator, sr: int) -> np.ndarray:
    """``dev3``: rub as brown (1/f^2) noise through the band, gated on and off as the fabric
    sticks and slips (a smoothed square wave at 5-40 Hz, 40-90 % on), under a straight swell
    and a 50 ms fade."""
    n = len(t)
    brown = np.cumsum(r.normal(0, 1, n))
    brown = brown - np.convolve(brown, np.ones(64) / 64, mode="same")
    x = np.convolve(brown, _fir_band(lo, hi, sr, 0.003), mode="same")
    rate, duty = r.uniform(5.0, 40.0), r.uniform(0.4, 0.9)
    gate = ((rate * t + r.uniform(0, 1)) % 1.0 < duty).astype(float)
    gate = np.convolve(gate, np.hanning(max(3, int(0.004 * sr))), mode="same")
    gate = gate / (gate.max() + 1e-12)
    env = np.clip(t / swell, 0.0, 1.0) * ramp((length - t) / 0.05)
    return x * (0.3 + 0.7 * gate) * env


# ------------------------------------------------------------------- the fifth model

BAR_PARTIALS = (1.0, 2.756, 5.404, 8.933)
"""A free-free bar's modes over its first (Euler-Bernoulli beam theory): ``dev4``'s struck
sources ring at these, not at harmonics."""


def _friction_decay(t: np.ndarray, dur: float) -> np.ndarray:
    """``dev4``'s decay: an amplitude falling in a straight line to 0 at ``dur`` s, as an
    oscillator damped by dry (Coulomb) friction does (0 before ``t`` = 0 and after ``dur``)."""
    return np.where(t >= 0, np.clip(1.0 - t / max(dur, 1e-6), 0.0, 1.0), 0.0)


def _bar(t: np.ndarray, f0: float, dur: float, rng: np.random.Generator, sr: int
         ) -> np.ndarray:
    """``dev4``: a struck bar at ``f0`` Hz: its modes (:data:`BAR_PARTIALS`) below 0.42 of
    ``sr``, each weaker and shorter than the one below, under friction's straight decay."""
    x = np.zeros(len(t))
    for k, ratio in enumerate(BAR_PARTIALS):
        f = f0 * ratio
        if f >= 0.42 * sr:
            break
        x += (rng.uniform(0.3, 1.0) / (k + 1) ** 1.5 * _friction_decay(t, dur / (1 + k))
              * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)))
    return x


def _log_band_noise(rng: np.random.Generator, n: int, centre: float, octaves: float,
                    sr: int) -> np.ndarray:
    """``dev4``'s noise: white noise whose spectrum is shaped to a Gaussian in log frequency
    about ``centre`` Hz, ``octaves`` wide between its points 8.7 dB down (unit RMS)."""
    sigma = max(octaves, 0.1) / 2
    return _shaped_noise(rng, n, sr, lambda f: np.exp(
        -0.5 * (np.log2(np.maximum(f, 1.0) / centre) / sigma) ** 2))


def _click_bar(sound: PopSound, rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """``dev4``: one click as a struck bar with dry friction (tonal: a tendon flicking over
    bone), or as noise shaped in log frequency under an attack of 0.05-1 ms and a fall as
    the square of a straight line (noisy), both ending at the duration."""
    t = np.arange(n) / sr
    d = sound.duration_ms / 1000
    if sound.tonal:
        return _bar(t, min(sound.centre_hz, 0.42 * sr), d, rng, sr)
    attack = rng.uniform(5e-5, 1e-3)
    env = np.minimum(t / attack, 1.0) * _friction_decay(t - attack, d) ** 2
    return env * _log_band_noise(rng, n, min(sound.centre_hz, 0.42 * sr),
                                 sound.bandwidth_oct, sr)


def _ricker(t: np.ndarray, f: float) -> np.ndarray:
    """A Ricker wavelet (the second derivative of a Gaussian) peaking at ``f`` Hz in its
    spectrum, centred on ``t`` = 0."""
    a = (np.pi * f * t) ** 2
    return (1 - 2 * a) * np.exp(-a)


def _heart_dev4(lo: float, hi: float, d: float, t: np.ndarray, rng: np.random.Generator,
                sr: int) -> np.ndarray:
    """``dev4``: a heart sound as 2-4 thuds (Ricker wavelets at ``lo``-``hi`` Hz, log-
    uniform) spread over its ``d`` s, each weaker than the one before: the valve leaflets,
    the blood column and the wall moving one after another."""
    x = np.zeros(len(t))
    k = int(rng.integers(2, 5))
    for j, at in enumerate(np.sort(rng.uniform(0.15 * d, 0.85 * d, k))):
        f = float(np.exp(rng.uniform(math.log(lo), math.log(hi))))
        x += 0.7 ** j * _ricker(t - at, f)
    return x


def _tone_burst(f: float, length_s: float, sr: int, n: int) -> np.ndarray:
    """``dev4``'s click: whole cycles of a sine at ``f`` Hz (as many as fit in ``length_s``,
    at least one) under a Blackman window, in ``n`` samples (cut or padded)."""
    cycles = max(1, round(length_s * f))
    m = max(4, int(round(cycles / f * sr)))
    t = np.arange(m) / sr
    x = np.blackman(m) * np.sin(2 * np.pi * f * t)
    return np.pad(x[:n], (0, max(0, n - m)))


def _thump_dev4(t: np.ndarray, r: np.random.Generator, sr: int) -> np.ndarray:
    """``dev4``: a heel strike's thump as a critically damped push at 30-120 Hz (the heel
    pad, no ringing) and the toe's smaller one 15-40 ms later, the other way."""
    x = np.zeros(len(t))
    for at, gain in ((0.0, 1.0), (r.uniform(0.015, 0.04), -r.uniform(0.3, 0.6))):
        tau = 1 / (2 * np.pi * r.uniform(30.0, 120.0))
        u = np.maximum(t - at, 0.0) / tau
        x += gain * u * np.exp(1 - u)
    return x


def _knock_dev4(t: np.ndarray, lo: float, hi: float, r: np.random.Generator, sr: int
                ) -> np.ndarray:
    """``dev4``: a knock as a Hertzian contact (a half-sine to the power 1.5, 0.1-1 ms)
    and the struck object ringing as a bar at ``lo``-``hi`` Hz for 5-30 ms."""
    width = r.uniform(1e-4, 1e-3)
    hit = np.where(t < width, np.sin(np.pi * np.minimum(t, width) / width), 0.0) ** 1.5
    f0 = float(np.exp(r.uniform(math.log(lo), math.log(hi))))
    return hit + r.uniform(0.5, 1.5) * _bar(t, f0, r.uniform(0.005, 0.03), r, sr)


def _speech_dev4(f0: float, length: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``dev4``: voice by formant wave functions (FOF): every glottal period (jittered, the
    pitch drifting) starts one grain per formant, a tone at the formant's frequency with a
    smooth 1-3 ms attack and a decay set by its bandwidth (60-200 Hz); the three formants
    jump to a new vowel every 150-350 ms."""
    n = int(length * sr)
    src = np.zeros(n)
    drift = rng.uniform(-0.15, 0.15)
    at = rng.uniform(0, 1 / f0)
    while int(at * sr) < n:
        src[int(at * sr)] += rng.uniform(0.8, 1.2)
        at += 1 / (f0 * (1 + drift * at / length)) * (1 + rng.normal(0, 0.01))
    m = int(0.03 * sr)
    tg = np.arange(m) / sr
    y = np.zeros(n + m)
    a = 0
    while a < n:
        b = min(n, a + int(rng.uniform(0.15, 0.35) * sr))
        grain = np.zeros(m)
        for k, (flo, fhi) in enumerate(((250, 850), (800, 2400), (2200, 3300))):
            f = min(rng.uniform(flo, fhi), 0.42 * sr)
            rise = rng.uniform(0.001, 0.003)
            attack = np.where(tg < rise, 0.5 - 0.5 * np.cos(np.pi * tg / rise), 1.0)
            grain += (attack * np.exp(-np.pi * rng.uniform(60, 200) * tg)
                      * np.sin(2 * np.pi * f * tg) / (k + 1))
        y[a: b + m - 1] += np.convolve(src[a:b], grain)
        a = b
    return y[:n]


def _rub_dev4(t: np.ndarray, lo: float, hi: float, swell: float, length: float,
              r: np.random.Generator, sr: int) -> np.ndarray:
    """``dev4``: rub as grains of friction noise (2-15 ms Hann-windowed bursts at 100-1000 a
    second, Poisson) through a Chebyshev band-pass (1 dB ripple) of the band, under a
    logistic swell and a 50 ms fade."""
    n = len(t)
    starts = np.zeros(n)
    hits = r.random(n) < r.uniform(100.0, 1000.0) / sr
    starts[hits] = r.uniform(0.3, 1.0, int(hits.sum()))
    grains = np.convolve(starts, np.hanning(max(3, int(r.uniform(0.002, 0.015) * sr))))[:n]
    sos = signal.cheby1(3, 1.0, [lo, hi], btype="bandpass", fs=sr, output="sos")
    x = signal.sosfilt(sos, r.normal(0, 1, n) * grains)
    swell_env = 1 / (1 + np.exp(-(t - swell) / (swell / 4)))
    return x * swell_env * ramp((length - t) / 0.05)


@dataclass(frozen=True)
class SoundModel:
    """One sound model's renderers, each a function of the same arguments in every model:
    ``pop`` (one click of a :class:`PopSound`), ``heart`` (S1 or S2), ``valve`` (the valve
    click of ``width`` s at ``f`` Hz), ``thump`` (a heel strike's), ``click`` (a short
    click of ``length_s`` at ``f`` Hz: heel clicks and strap taps), ``knock``, ``speech``
    and ``rub``."""

    pop: Callable[..., np.ndarray]
    heart: Callable[..., np.ndarray]
    valve: Callable[..., np.ndarray]
    thump: Callable[..., np.ndarray]
    click: Callable[..., np.ndarray]
    knock: Callable[..., np.ndarray]
    speech: Callable[..., np.ndarray]
    rub: Callable[..., np.ndarray]


SOUND_MODELS = {
    "dev": SoundModel(
        pop=_click_modes, heart=_heart_dev,
        valve=lambda t, f, width, rng, sr: damped(t, np.array([f]), np.array([width / 4.6]),
                                                  np.zeros(1), np.ones(1), 2e-4),
        thump=_thump_dev,
        click=lambda t, f, length_s, rng, sr: damped(
            t, np.array([f, 1.7 * f if 1.7 * f < 0.45 * sr else f]), np.full(2, length_s / 6.9),
            rng.uniform(0, 6, 2), np.array([1.0, 0.5]), 5e-5),
        knock=_knock_dev, speech=_speech_dev, rub=_rub_dev),
    "heldout": SoundModel(
        pop=_click_burst, heart=_heart_heldout,
        valve=lambda t, f, width, rng, sr: _noise_click(t, f / 1.6, f * 1.6, width, rng, sr),
        thump=_thump_heldout,
        click=lambda t, f, length_s, rng, sr: _noise_click(t, f / 1.8, 1.8 * f, length_s, rng,
                                                           sr),
        knock=_knock_heldout, speech=_speech_heldout, rub=_rub_heldout),
    "dev2": SoundModel(
        pop=_click_grains, heart=_heart_dev2,
        valve=lambda t, f, width, rng, sr: _gammatone(t, sr, f, width, 2, 0.0,
                                                      rng.uniform(0, 6)),
        thump=_thump_dev2,
        click=lambda t, f, length_s, rng, sr: _gammatone(t, sr, f, length_s, 2, 0.0,
                                                         rng.uniform(0, 6)),
        knock=_knock_dev2, speech=_speech_dev2, rub=_rub_dev2),
    "dev3": SoundModel(
        pop=_click_collapse, heart=_heart_dev3,
        valve=lambda t, f, width, rng, sr: _fir_click(f / 1.6, f * 1.6, sr, width, len(t)),
        thump=_thump_dev3,
        click=lambda t, f, length_s, rng, sr: _fir_click(f / 1.8, 1.8 * f, sr, length_s,
                                                         len(t)),
        knock=_knock_dev3, speech=_speech_dev3, rub=_rub_dev3),
    "dev4": SoundModel(
        pop=_click_bar, heart=_heart_dev4,
        valve=lambda t, f, width, rng, sr: _tone_burst(f, width, sr, len(t)),
        thump=_thump_dev4,
        click=lambda t, f, length_s, rng, sr: _tone_burst(f, length_s, sr, len(t)),
        knock=_knock_dev4, speech=_speech_dev4, rub=_rub_dev4),
}
"""Each of :data:`FAMILIES`' renderers: the one place a sound model is chosen."""


@dataclass
class MicResponse:
    """The mics' own response, applied to everything they record: a second-order high-pass
    at ``mic_highpass_hz`` and a gain per mic; its filter state carries across chunks."""

    ac: Acoustics
    sr: int
    n_mics: int
    zi: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.sos = signal.butter(2, self.ac.mic_highpass_hz, btype="highpass", fs=self.sr,
                                 output="sos")
        self.gain = 10 ** (np.asarray(self.ac.mic_gain_db[: self.n_mics]) / 20)

    def filter_only(self, x: np.ndarray) -> np.ndarray:
        """The high-pass alone, from rest (for one event or one pop)."""
        return signal.sosfilt(self.sos, x, axis=0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The next chunk of a continuous signal, high-passed with carried state."""
        if self.zi is None:
            self.zi = np.zeros((self.sos.shape[0], 2, x.shape[1]))
        y, self.zi = signal.sosfilt(self.sos, x, axis=0, zi=self.zi)
        return y
