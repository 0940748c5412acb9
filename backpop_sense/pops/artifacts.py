"""The artifact gate: onsets that are not pops, and why.

A spinal pop is a short, sharp, broadband transient born at one level (background.md). Each
rule below names something else the contact mics hear and the property that gives it away;
the first rule that applies rejects the candidate and its name is the reason recorded.

``knock``
    An external knock (a door, a table, a tap on the chair) reaches every mic through the air
    or the furniture at the same level, whereas a pop fades along the spine (about 3 dB per
    level: mics three levels apart differ by ~10 dB). Rejected when the loudest and the
    quietest mic are within ``knock_spread_db``. Each mic's share is counted above what that
    mic heard just before, so a rub or a footstep under way on one mic does not lift the
    knock's spread past the limit. Needs at least two mics.
``footstep``
    A heel strike is a thump: most of its energy lies below ~300 Hz, and it coincides with an
    impact seen by the IMUs (a jolt in the specific force). Rejected when the low band holds
    most of the energy and an IMU impact falls within ``impact_window_s``.
``heartbeat``
    Heart sounds are low-band thumps that recur with a steady period (0.4-1.5 s). Rejected
    when low-band and the previous low-band events repeat at a steady interval.
``thump``
    Any other event whose energy is mostly below ~300 Hz is not the broadband transient of a
    pop either (a bump, a fall's thud without a clear impact on the IMU).
``noise``
    A peak of the ongoing sound, not an event of its own. Either its first 5 ms are less
    than ``min_contrast_db`` above the sound of the 20 ms before or of 15-40 ms after (the
    crest of a rub's swell: a pop, a burst, stands out of both); or the envelope, summed over
    the mics in units of each mic's noise level, never climbs clearly above the highest the
    noise alone reached in the 200 ms before (less than ``min_prominence`` times it), and
    those first 5 ms are not clearly out of their surroundings either (``clear_contrast_db``):
    a weak pop's envelope may not top a rub's loudest moment 100 ms before, while it still
    stands out of the sound around it. Neither applies when the spectral onset is beyond
    doubt (strength of ``clear_strength`` MAD units, twice the detector's default
    threshold): in a busy background a weak pop's envelope may not stand out at one mic,
    while its sudden broadband rise still does. Nor to a short burst: over within
    ``short_duration_ms`` (15 ms), its first 5 ms ``short_decay_db`` (6 dB) above 15-40 ms
    after, what sounded just before taken from both, at least ``short_contrast_db`` (3 dB)
    out of the sound on both sides, with a clear spectral onset (``short_strength``, 8 MAD
    units): a weak pop on a busy background, whereas the crest of a rub or of a voice lasts
    and carries on.
``no burst``
    Whatever it is, its energy does not fall after its first 5 ms (less than
    ``min_decay_db`` between the first 5 ms and 15-40 ms after onset, what sounded just
    before taken from both): not a transient. Unless it is a clear burst, rising within
    ``sharp_rise_ms`` to a prominence above ``clear_prominence``: then it is a burst with
    something louder after it, such as a pop as a rub swells (a rub's own start rises
    more slowly).
``voice``
    Speech carried through the body is harmonic: its waveform repeats at the voice's period
    (80-400 Hz), which a pop's decaying burst does not. Rejected when the normalised
    autocorrelation at a voice period exceeds ``voice_harmonicity``, unless the onset is a
    burst that dies away by ``burst_decay_db`` (a pop while the subject talks: the voice is
    heard after it, but voice does not fall 10 dB within 40 ms of an onset).
``rub``
    Fabric rubbing on the strap rises slowly and lasts long (hundreds of ms); a pop rises
    within a millisecond or two and is over within tens. Rejected when the rise is slower
    than ``rub_rise_ms``, or the event outlasts ``rub_duration_ms`` without dying away: it
    loses less than ``burst_decay_db`` from its first 5 ms to 15-40 ms after onset, where a
    pop, whose ringing dies within a few ms, loses far more. Voice onsets are caught here
    too. A pop riding on a rub still stands out: a clear burst (see ``no burst``) is spared.
``same event``
    Within ``same_event_s`` of the pop before: the ringing or the second click of that pop
    (a joint readjustment can click twice within about 12 ms), not a pop of its own.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from ..blocks import ImuBlock
from ..session import GRAVITY
from .detector import Candidate


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the artifact rules (dB, ms, s, m/s^2, ratios)."""

    knock_spread_db: float = 4.0
    low_band_ratio: float = 0.7
    impact_ms2: float = 3.0
    impact_window_s: float = 0.08
    heartbeat_period_s: tuple[float, float] = (0.4, 1.5)
    heartbeat_jitter: float = 0.15
    rub_rise_ms: float = 6.0
    rub_duration_ms: float = 30.0
    voice_harmonicity: float = 0.33
    burst_decay_db: float = 10.0
    min_decay_db: float = 4.5
    min_prominence: float = 1.4
    clear_prominence: float = 3.0
    sharp_rise_ms: float = 2.0
    clear_strength: float = 12.0
    same_event_s: float = 0.05
    min_contrast_db: float = 6.0
    clear_contrast_db: float = 7.0
    short_contrast_db: float = 3.0
    short_duration_ms: float = 15.0
    short_decay_db: float = 6.0
    short_strength: float = 8.0

    def to_dict(self) -> dict:
        """The thresholds, for summary.json."""
        return asdict(self)


def spread_db(candidate: Candidate) -> float:
    """How much louder the loudest mic heard the event than the quietest, in dB."""
    e = np.maximum(candidate.band_energy, 1e-30)
    return float(10 * np.log10(e.max() / e.min()))


class ArtifactGate:
    """Judges candidates; holds each until the IMUs have reported past its time.

    Parameters
    ----------
    n_mics : int
        Mics in the session (the knock rule needs two or more).
    imus : sequence of str
        Names of the session's IMUs; with none, the footstep rule cannot use impacts and
        candidates are judged at once.
    config : GateConfig
        Thresholds.
    """

    def __init__(self, n_mics: int, imus: list[str], config: GateConfig | None = None) -> None:
        self.config = config or GateConfig()
        self.n_mics = n_mics
        self.imu_time = {name: -np.inf for name in imus}
        self.impacts: deque[float] = deque()
        self.low_band_times: deque[float] = deque(maxlen=4)
        self.pending: deque[Candidate] = deque()
        self.last_pop = -np.inf

    def feed_imu(self, block: ImuBlock) -> list[tuple[Candidate, str | None]]:
        """Take IMU samples: note impacts; return the candidates now judged."""
        jolt = np.abs(np.linalg.norm(block.acc, axis=1) - GRAVITY) > self.config.impact_ms2
        if jolt.any():
            times = block.t[jolt]
            self.impacts.extend(times.tolist())
        self.imu_time[block.imu] = float(block.t[-1])
        return self._release(final=False)

    def feed(self, candidates: list[Candidate]) -> list[tuple[Candidate, str | None]]:
        """Take new candidates; return the candidates now judged, each with its reason."""
        self.pending.extend(candidates)
        return self._release(final=False)

    def finish(self) -> list[tuple[Candidate, str | None]]:
        """Judge everything still held."""
        return self._release(final=True)

    def _release(self, final: bool) -> list[tuple[Candidate, str | None]]:
        seen = min(self.imu_time.values(), default=np.inf)
        out = []
        while self.pending and (final or self.pending[0].t + self.config.impact_window_s < seen):
            c = self.pending.popleft()
            out.append((c, self.reason(c)))
        horizon = (self.pending[0].t if self.pending else seen) - 2 * self.config.impact_window_s
        while self.impacts and self.impacts[0] < horizon:
            self.impacts.popleft()
        return out

    def reason(self, c: Candidate) -> str | None:
        """The rule that rejects ``c``, or None if it is taken for a pop."""
        cfg = self.config
        if self.n_mics >= 2 and spread_db(c) < cfg.knock_spread_db:
            return "knock"
        if c.low_band_ratio > cfg.low_band_ratio:
            near = any(abs(t - c.t) <= cfg.impact_window_s for t in self.impacts)
            periodic = self._periodic(c.t)
            self.low_band_times.append(c.t)
            if near:
                return "footstep"
            return "heartbeat" if periodic else "thump"
        if c.strength < cfg.clear_strength and (
                c.contrast_db < cfg.min_contrast_db
                or (c.prominence < cfg.min_prominence and c.contrast_db < cfg.clear_contrast_db)
                ) and not self._short_burst(c):
            return "noise"  # a crest of the ongoing sound, or a peak of the noise
        # A sharp burst clearly out of the noise is a transient even if something louder
        # follows it (a pop as a rub swells).
        clear = c.prominence > cfg.clear_prominence and c.rise_ms <= cfg.sharp_rise_ms
        if c.decay_db < cfg.min_decay_db and not clear:
            return "no burst"
        dies_away = c.decay_db >= cfg.burst_decay_db
        sustained = not dies_away and not clear
        # A burst that dies away is no voice, though voice may be heard after it: a pop
        # while the subject talks.
        if c.harmonicity > cfg.voice_harmonicity and not dies_away:
            return "voice"
        if c.rise_ms > cfg.rub_rise_ms or (c.duration_ms > cfg.rub_duration_ms and sustained):
            return "rub"
        if c.t - self.last_pop < cfg.same_event_s:
            return "same event"
        self.last_pop = c.t
        return None

    def _short_burst(self, c: Candidate) -> bool:
        """Whether ``c`` is a weak pop's burst though it stands out little: over within
        ``short_duration_ms``, dying away by ``short_decay_db``, out of the sound on both
        sides by ``short_contrast_db`` and a clear spectral onset (``short_strength``)."""
        cfg = self.config
        return (c.duration_ms <= cfg.short_duration_ms and c.decay_db >= cfg.short_decay_db
                and c.contrast_db >= cfg.short_contrast_db and c.strength >= cfg.short_strength)

    def _periodic(self, t: float) -> bool:
        times = [*self.low_band_times, t]
        if len(times) < 3:
            return False
        gaps = np.diff(times[-3:])
        lo, hi = self.config.heartbeat_period_s
        return bool(lo <= gaps.mean() <= hi
                    and abs(gaps[1] - gaps[0]) <= self.config.heartbeat_jitter * gaps.mean())
