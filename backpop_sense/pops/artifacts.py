"""The artifact gate: onsets that are not pops, and why.

A spinal pop is a short, sharp transient born at one level, heard once (background.md):
a facet joint cannot cavitate again for about 20 minutes and a tendon snaps once per
movement cycle. Its band is not known (100 Hz to 8 kHz: ``family.py``), so no rule rejects a
sound for its band alone; the rules rest on what holds whatever the sound: where it comes
from along the spine, whether the body was jolted, whether it rises out of its band's noise,
whether it dies away, whether it repeats.

How the gate decides. An onset the IMUs felt as an impact is rejected outright. Every other
onset is judged by a learned model over all of its features and its context
(``pops/model.py``, ``min_score``): trained on one family of sound models, it judged the
other family better than the hand rules did (``benchmarks/detection.md``). Its features
include where along the spine the onset comes from (:func:`place`) and how fast the spine
itself was bending or twisting around it (``bending``: a pop comes with stretching,
twisting or a movement cycle, background.md; a heartbeat or a word comes whatever the spine
does); a one-mic session, which cannot place a sound and has no IMUs, has its own judge
without them. The hand rules
below name the reason of a rejection: the first that applies, or ``unlike a pop`` if none
does. With ``min_score = 0`` they decide alone.

``impact``
    A heel strike, a fall or a bump is felt by the IMUs as a jolt in the specific force at the
    moment it is heard; a pop moves no sensor. Rejected when an IMU impact falls within
    ``impact_window_s``, whatever the sound's band (a heel strike's click is as sharp as a
    pop).
``knock``
    An external knock (a door, a table, a tap on the chair) reaches every mic through the air
    or the furniture at the same level, whereas a pop fades along the spine (2-8 dB per
    level). The loudest and the quietest mic within ``knock_spread_db``. Each mic's share
    is counted above what that mic heard just before, so a rub or a footstep under way on
    one mic does not lift the knock's spread past the limit. Needs at least two mics.
``noise``
    A peak of the ongoing sound: in every octave, the onset's frames rose less than
    ``min_excess_db`` above what the background's own frames reach
    (:attr:`Candidate.excess_db`, a constant-false-alarm test: a narrow low band's noise
    swings far more than a wide high band's).
``no burst``
    Its energy does not fall after its first 5 ms (less than ``min_decay_db`` between the
    first 5 ms and 15-40 ms after onset, what sounded just before taken from both): not a
    transient. Unless it is a clear burst, rising within ``sharp_rise_ms`` (or
    ``sharp_rise_periods`` of its band's centre: see :func:`rise_periods`) to a prominence
    above ``clear_prominence``: a burst with something louder after it, such as a pop as a
    rub swells.
``voice``
    Speech carried through the body is harmonic: its waveform repeats at the voice's period
    (80-400 Hz), which a pop's decaying burst does not. The normalised autocorrelation at a
    voice period above ``voice_harmonicity``, unless the onset dies away by
    ``burst_decay_db`` (a pop while the subject talks).
``rub``
    Fabric rubbing on the strap rises slowly and lasts long; a pop rises within a
    millisecond or two (a period or two of its pitch) and is over within tens. A rise slower
    than ``rub_rise_ms`` and ``rub_rise_periods``, or
    longer than ``rub_duration_ms`` without dying away.
``series``
    One of a series of onsets: heart sounds (S1 and S2 of every beat), footsteps, knocking,
    a hand tapping the strap, the crackle of a rub. Either ``series_count`` other onsets
    within ``series_window_s`` either side sound alike (each mic's share within
    ``alike_place_db``, the rise per octave within ``alike_sound_db`` RMS, the length
    within a factor ``alike_length``); or ``periodic_members`` onsets from the same place
    fall on one steady interval through it (``periodic_period_s``, within
    ``periodic_tolerance``): the heart, whatever its band, is known by its rhythm.
``same event``
    Within ``same_event_s`` of the pop before: the ringing or the second click of that pop
    (a joint readjustment can click twice within about 12 ms), not a pop of its own.

What decides a pop: this gate, onset by onset; and, once the session is over, a snap's
repeats, which may take back an onset rejected for a reason in :data:`DOUBTFUL`
(``pops/repeats.py``). Nothing else makes an onset a pop or stops it being one.

A series is known only once it has been heard on both sides, so an onset is judged
:attr:`ArtifactGate.lookahead_s` after it was heard, and once the IMUs have
reported past it. A live view cannot wait that long: as soon as the IMUs have reported past
an onset, :meth:`ArtifactGate.early` judges it provisionally on the onsets up to it (the same
rules and judge, its series counted on one side only, so that the verdict does not depend on
how the stream was cut into blocks). The final judgement, seconds later, confirms or
overrules it; only the final one counts.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

from ..blocks import ImuBlock
from ..params import COUNT, FINITE, FRACTION, NON_NEGATIVE, POSITIVE, Numbers, Rules, check
from ..session import GRAVITY
from .detector import Candidate
from .locate import DEFAULT_LOCATOR, locate
from .model import FEATURES, TreeModel, default_model

DOUBTFUL = ("noise", "no burst")
"""Rejections for want of standing out, not for a sign of something else (a low band, equal
mics, a slow rise, a voice): a faint pop on a busy background is judged so. Such an onset
carries the pop it would be, which its repeats may still vouch for at the end of the session
(a recurring snap: ``pops/repeats.py``)."""


BIAS_BIN_S = 1.0
"""The gyros' rates are averaged over bins of this long (s), at fixed times of the session,
before the median that reads their bias difference (:meth:`ArtifactGate._bias`): the same
bins however the stream is cut into blocks."""


IMU_HISTORY_S = 60.0
"""The most IMU history (s) the gate keeps for the spine's movement, behind the IMUs' newest
sample: memory stays bounded when the audio lags (an onset heard later than that is judged as
if without IMUs)."""


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the artifact rules (dB, ms, s, m/s^2, ratios)."""

    knock_spread_db: float = 4.0
    impact_ms2: float = 3.0
    impact_window_s: float = 0.08
    series_window_s: float = 1.75
    """Longest time between alike onsets of one series: a heart at 40 beats a minute beats
    every 1.5 s; a tendon snaps once per movement cycle, 2 s or more apart."""
    series_count: int = 2
    periodic_members: int = 4
    """Onsets at one steady interval (``periodic_period_s``, within ``periodic_tolerance``
    of it) that make a train: the heart's beats, steps, knocking."""
    periodic_period_s: tuple[float, float] = (0.3, 1.6)
    periodic_tolerance: float = 0.06
    cluster_window_s: float = 0.75
    """How close (either side) other clear onsets from the same place make a cluster: a hand
    taps or adjusts the strap several times within a second or two, where a joint, once
    popped, is silent for minutes and a tendon snaps once per movement cycle (background.md);
    shorter than the quickest snapping cycle (about 1.3 s)."""
    cluster_count: int = 2
    """Other clear onsets from the same place within ``cluster_window_s`` that make a cluster."""
    faint_excess_db: float = 5.0
    """The least rise over its band's noise (dB, :attr:`Candidate.excess_db`) of the onsets
    counted in the judge's ``faint`` column: the cluster's count (``cluster_window_s``, the
    same place) over onsets fainter than a clear one. A hand on the strap taps a few times
    and scrapes, and the taps after the first are often heard only faintly under the
    scrape; the judge weighs the count against the chance of a noise peak from the same
    place."""
    cluster_heard_db: float = 15.0
    """Mics more than this under the loudest count as not hearing an onset when the places
    of a cluster are compared: their share is the background's, not the source's."""
    min_excess_db: float = 8.0
    """An onset that rose less than this over what its band's noise reaches is ``noise``
    (:attr:`Candidate.excess_db`)."""
    min_score: float = 0.97
    """The learned judge's probability at which a candidate is a pop (0: the hand rules
    decide alone; see ``pops/model.py``)."""
    alike_place_db: float = 4.0
    alike_sound_db: float = 6.0
    alike_length: float = 2.0
    rub_rise_ms: float = 6.0
    rub_rise_periods: float = 8.0
    """A rise is slow (``rub``) only when it is slower than ``rub_rise_ms`` and than this many
    periods of its band's centre: a 150 Hz pop's burst cannot rise in less than a period or
    so (6.7 ms), a 2 kHz crack's in a few tenths of a millisecond."""
    rub_duration_ms: float = 30.0
    voice_harmonicity: float = 0.33
    burst_decay_db: float = 10.0
    min_decay_db: float = 4.5
    clear_prominence: float = 3.0
    sharp_rise_ms: float = 2.0
    sharp_rise_periods: float = 2.0
    same_event_s: float = 0.05
    motion_window_s: float = 0.5
    """How far before an onset (s) the spine's own movement is looked for (up to
    ``impact_window_s`` after it): a pop comes with stretching, twisting or a movement
    cycle (background.md), a heartbeat or a word whether the spine moves or not."""
    bending_floor_dps: float = 1.0
    """The least spine movement read (deg/s): below it is the gyros' own noise (0.2 deg/s per
    axis on each of two gyros reads about 0.5: ``tests/test_gate.py``; it differs with each
    real gyro), not movement, and the judge must not tell a quiet gyro from a noisy one."""
    gyro_bias_window_s: float = 60.0
    """How far back (s) the two gyros' bias difference is read before the spine's movement
    (:meth:`ArtifactGate._bias`): a spine cannot turn one way for more than a few seconds,
    so over a minute the median of the top gyro's rate less the bottom one's is what they
    read alike at rest, their zero-rate offsets (up to a few deg/s per axis on consumer
    MEMS gyros: ``motion_family.py``)."""
    gyro_bias_min_s: float = 10.0
    """How much of ``gyro_bias_window_s`` (s) must have been recorded by both spine IMUs
    before their bias difference is read; until then it is taken as zero."""

    RULES: ClassVar[Rules] = {
        "knock_spread_db": NON_NEGATIVE, "impact_ms2": POSITIVE, "impact_window_s": NON_NEGATIVE,
        "series_window_s": POSITIVE, "series_count": COUNT, "periodic_members": COUNT,
        "periodic_period_s": Numbers(POSITIVE, "ascending", 2),
        "periodic_tolerance": NON_NEGATIVE, "cluster_window_s": NON_NEGATIVE,
        "cluster_count": COUNT, "faint_excess_db": FINITE, "cluster_heard_db": NON_NEGATIVE,
        "min_excess_db": FINITE,
        "min_score": FRACTION, "alike_place_db": NON_NEGATIVE, "alike_sound_db": NON_NEGATIVE,
        "alike_length": POSITIVE, "rub_rise_ms": NON_NEGATIVE, "rub_rise_periods": NON_NEGATIVE,
        "rub_duration_ms": NON_NEGATIVE, "voice_harmonicity": FRACTION,
        "burst_decay_db": FINITE, "min_decay_db": FINITE, "clear_prominence": NON_NEGATIVE,
        "sharp_rise_ms": NON_NEGATIVE, "sharp_rise_periods": NON_NEGATIVE,
        "same_event_s": NON_NEGATIVE, "motion_window_s": NON_NEGATIVE,
        "bending_floor_dps": NON_NEGATIVE, "gyro_bias_window_s": NON_NEGATIVE,
        "gyro_bias_min_s": NON_NEGATIVE,
    }

    def __post_init__(self) -> None:
        check(self)

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
    mics : sequence of str
        The level each mic sits over, top to bottom (the knock rule needs two or more; the
        judge sees where along them the onset comes from).
    imus : sequence of str
        Names of the session's IMUs; with none, the impact rule has no impacts to go by.
    config : GateConfig
        Thresholds.
    """

    def __init__(self, mics: Sequence[str], imus: list[str], config: GateConfig | None = None
                 ) -> None:
        self.config = config or GateConfig()
        self.mics = tuple(mics)
        self.imu_time = {name: -np.inf for name in imus}
        self.spine_imus = (imus[0], imus[-1]) if len(imus) >= 2 else ()
        """The two IMUs whose rotation against each other is the spine's (top and bottom)."""
        self.gyro: dict[str, deque[tuple[np.ndarray, np.ndarray]]] = {
            name: deque() for name in self.spine_imus}
        """Each of :attr:`spine_imus`' recent blocks: times (s) and angular velocity (rad/s),
        kept back to ``motion_window_s`` before the earliest onset still to judge."""
        self.rest: dict[str, dict[int, np.ndarray]] = {name: {} for name in self.spine_imus}
        """Each of :attr:`spine_imus`' mean angular velocity (rad/s) over each complete bin
        of ``BIAS_BIN_S`` (bin ``k`` from ``k * BIAS_BIN_S`` s), in time order, back to
        ``gyro_bias_window_s`` before the oldest movement still to read."""
        self.unbinned: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {
            name: [] for name in self.spine_imus}
        """Each IMU's samples of its bin still under way (times, angular velocity)."""
        self.audio_time = -np.inf
        self.impacts: deque[float] = deque()
        self.pending: deque[Candidate] = deque()
        self.heard: deque[Candidate] = deque()  # every onset of the last 2 series windows
        self.shares: dict[int, np.ndarray] = {}
        """Each onset of ``heard``'s :func:`shares_db`, by id: worked out once, not at every
        judgement that counts it."""
        self.where: dict[int, tuple[tuple[float, ...], float]] = {}
        """The :func:`place` of each onset of ``heard`` the judge has seen and the spine's
        movement around it (:meth:`_bending`), by id: fitted and read once for its
        provisional and its final judgement (the IMUs have passed it by both)."""
        self.last_pop = -np.inf
        self.unheard: deque[Candidate] = deque()  # awaiting the provisional judgement
        self.last_early = -np.inf
        self.model: TreeModel | None = (default_model(one_mic=len(self.mics) == 1)
                                         if self.config.min_score > 0 else None)
        self.features: dict[float, np.ndarray] = {}
        """What the judge saw of each candidate at its final judgement, by onset time, when
        ``keep_features`` (for training it)."""
        self.keep_features = False

    def feed_imu(self, block: ImuBlock) -> list[tuple[Candidate, str | None]]:
        """Take IMU samples: note impacts; return the candidates now judged."""
        jolt = np.abs(np.linalg.norm(block.acc, axis=1) - GRAVITY) > self.config.impact_ms2
        if jolt.any():
            times = block.t[jolt]
            self.impacts.extend(times.tolist())
        self.imu_time[block.imu] = float(block.t[-1])
        # The spine's movement is read only for the judge (hand rules alone: no bins kept).
        if block.imu in self.gyro and (self.model is not None or self.keep_features):
            self.gyro[block.imu].append((block.t, block.gyro))
            self._bin(block.imu, block.t, block.gyro)
        return self._release(final=False)

    def feed(self, candidates: list[Candidate], heard_until: float = -np.inf
             ) -> list[tuple[Candidate, str | None]]:
        """Take new candidates, and the time (s) up to which every onset has been reported;
        return the candidates now judged, each with its reason."""
        self.pending.extend(candidates)
        self.unheard.extend(candidates)
        self.heard.extend(candidates)
        self.shares.update((id(c), shares_db(c)) for c in candidates)
        self.audio_time = max(self.audio_time, heard_until)
        return self._release(final=False)

    @property
    def lookahead_s(self) -> float:
        """How long after an onset the gate must have heard before judging it (s): the
        furthest a series or a train reaches."""
        return max(self.config.series_window_s, 2 * self.config.periodic_period_s[1] + 0.1)

    def finish(self) -> list[tuple[Candidate, str | None]]:
        """Judge everything still held (the final judgement needs no provisional one)."""
        self.unheard.clear()
        return self._release(final=True)

    def early(self) -> list[tuple[Candidate, str | None]]:
        """The candidates the IMUs have now reported past, judged provisionally on the onsets
        up to each (see the module's last paragraph), each with its reason; the final
        judgement (:meth:`feed`) comes :attr:`lookahead_s` later and may differ."""
        seen = min(self.imu_time.values(), default=np.inf)
        out = []
        while self.unheard and self.unheard[0].t + self.config.impact_window_s < seen:
            c = self.unheard.popleft()
            reason = self._verdict(c, until=c.t)
            if reason is None and c.t - self.last_early < self.config.same_event_s:
                reason = "same event"
            if reason is None:
                self.last_early = c.t
            out.append((c, reason))
        return out

    def _release(self, final: bool) -> list[tuple[Candidate, str | None]]:
        cfg = self.config
        seen = min(self.imu_time.values(), default=np.inf)
        out = []
        while self.pending and (final or (self.pending[0].t + cfg.impact_window_s < seen and
                                          self.pending[0].t + self.lookahead_s
                                          < self.audio_time)):
            c = self.pending.popleft()
            out.append((c, self.reason(c)))
        oldest = self.pending[0].t if self.pending else self.audio_time
        while self.heard and self.heard[0].t < oldest - self.lookahead_s:
            gone = id(self.heard.popleft())
            del self.shares[gone]
            self.where.pop(gone, None)
        horizon = (self.pending[0].t if self.pending else seen) - 2 * cfg.impact_window_s
        while self.impacts and self.impacts[0] < horizon:
            self.impacts.popleft()
        # Onsets still to come lie after audio_time, those still to judge at their own times;
        # at most IMU_HISTORY_S is kept, however far the audio lags.
        earliest = min([self.audio_time, *(q[0].t for q in (self.pending, self.unheard) if q)])
        earliest = max(earliest, max(self.imu_time.values(), default=0.0) - IMU_HISTORY_S)
        for blocks in self.gyro.values():
            while len(blocks) > 1 and blocks[0][0][-1] < earliest - cfg.motion_window_s:
                blocks.popleft()
        first_bin = math.floor((earliest - cfg.motion_window_s - cfg.gyro_bias_window_s)
                               / BIAS_BIN_S) - 1
        for bins in self.rest.values():  # in time order: the oldest first
            while bins and (k := next(iter(bins))) < first_bin:
                del bins[k]
        return out

    def reason(self, c: Candidate) -> str | None:
        """The rule that rejects ``c``, or None if it is taken for a pop.

        An impact the IMUs felt rejects it outright. Otherwise the learned judge decides
        (``min_score``), and a rejection is named by the first hand rule that also rejects
        it (``unlike a pop`` if none does); without the judge, the hand rules decide.
        """
        reason = self._verdict(c)
        if reason is None and c.t - self.last_pop < self.config.same_event_s:
            return "same event"
        if reason is None:
            self.last_pop = c.t
        return reason

    def _verdict(self, c: Candidate, until: float = math.inf) -> str | None:
        """:meth:`reason` before the ``same event`` rule, counting the onsets heard up to
        ``until`` (s) in its series."""
        cfg = self.config
        if any(abs(t - c.t) <= cfg.impact_window_s for t in self.impacts):
            return "impact"
        # the final judgement counts every onset heard: no copy on that path
        heard = self.heard if until == math.inf else [o for o in self.heard if o.t <= until]
        shares = self.shares
        if id(c) not in shares:  # judged by reason() without having been fed
            shares = {**shares, id(c): shares_db(c)}
        alike_n = self._alike(c, heard, shares)
        periodic_n = self._periodic(c, heard, shares)
        cluster_n, faint_n = self._cluster(c, heard, shares)
        hand = self._hand_reason(c, alike_n, periodic_n, cluster_n)
        reason = hand
        if self.model is not None or self.keep_features:
            # Near an impact the rule above has already rejected it: the judge sees 0 with
            # IMUs, NaN without (it learns how far to trust a session with no IMUs).
            where, bending = self._where(c)
            x = features(c, where, alike=alike_n, periodic=periodic_n, cluster=cluster_n,
                         faint=faint_n,
                         impact=0.0 if self.imu_time else math.nan, bending=bending)
            if self.keep_features and until == math.inf:  # the final judgement's
                self.features[c.t] = x
        if self.model is not None:
            score = float(self.model.score(x)[0])
            reason = None if score >= cfg.min_score else (hand or "unlike a pop")
        return reason

    def _bending(self, t: float) -> float:
        """How fast the spine bent or twisted around ``t`` (s): the root mean square of the
        top IMU's angular velocity less the bottom one's and less their bias difference
        (:meth:`_bias`, read before the window), from ``motion_window_s`` before ``t`` to
        ``impact_window_s`` after, in deg/s and at least ``bending_floor_dps`` (both IMUs in body
        axes; a turn or a step of the whole body moves both alike). NaN without two IMUs."""
        cfg = self.config
        lo, hi = t - cfg.motion_window_s, t + cfg.impact_window_s
        parts = []
        for name in self.spine_imus:
            blocks = [(u, g) for u, g in self.gyro[name] if u[-1] >= lo and u[0] <= hi]
            u = np.concatenate([u for u, _ in blocks]) if blocks else np.zeros(0)
            inside = (u >= lo) & (u <= hi)
            if inside.sum() < 2:
                return math.nan
            parts.append((u[inside], np.vstack([g for _, g in blocks])[inside]))
        if not parts:
            return math.nan
        (ta, ga), (tb, gb) = parts
        other = np.column_stack([np.interp(ta, tb, gb[:, k]) for k in range(3)])
        rel = ga - other - self._bias(lo)
        rms = math.degrees(math.sqrt(float(np.mean(np.sum(rel ** 2, axis=1)))))
        return max(rms, cfg.bending_floor_dps)

    def _bin(self, name: str, t: np.ndarray, gyro: np.ndarray) -> None:
        """Add an IMU block's samples to ``unbinned`` and move each bin they complete to
        ``rest`` as its mean (the same samples in the same order whatever the blocks: the
        same means)."""
        parts = self.unbinned[name]
        parts.append((t, gyro))
        last = math.floor(t[-1] / BIAS_BIN_S)
        if math.floor(parts[0][0][0] / BIAS_BIN_S) == last:
            return
        u = np.concatenate([p for p, _ in parts])
        g = np.vstack([q for _, q in parts])
        k = np.floor(u / BIAS_BIN_S).astype(np.int64)
        edges = np.flatnonzero(np.diff(k)) + 1
        for a, b in zip(np.r_[0, edges], np.r_[edges, len(k)], strict=True):
            if k[a] < last:
                self.rest[name][int(k[a])] = g[a:b].mean(axis=0)
        done = int(np.searchsorted(k, last))
        parts[:] = [(u[done:], g[done:])]

    def _bias(self, lo: float) -> np.ndarray:
        """The top gyro's zero-rate offset less the bottom one's (rad/s per body axis), as
        read before ``lo`` (s): the median over the bins of the ``gyro_bias_window_s``
        before it of their mean rates' difference (``GateConfig.gyro_bias_window_s``);
        zero until ``gyro_bias_min_s`` of it has been recorded."""
        cfg = self.config
        key = math.floor(lo / BIAS_BIN_S)
        top, bottom = (self.rest[name] for name in self.spine_imus)
        n = int(round(cfg.gyro_bias_window_s / BIAS_BIN_S))
        both = [k for k in range(key - n, key) if k in top and k in bottom]
        if not both or len(both) * BIAS_BIN_S < cfg.gyro_bias_min_s:
            return np.zeros(3)
        return np.median([top[k] - bottom[k] for k in both], axis=0)

    def _where(self, c: Candidate) -> tuple[tuple[float, ...], float]:
        """:func:`place` of ``c`` and :meth:`_bending` at it, kept while ``c`` is heard (an
        onset judged without having been fed is worked out each time)."""
        if id(c) not in self.shares:
            return place(c, self.mics), self._bending(c.t)
        if id(c) not in self.where:
            self.where[id(c)] = (place(c, self.mics), self._bending(c.t))
        return self.where[id(c)]

    def _hand_reason(self, c: Candidate, alike_n: int, periodic_n: int, cluster_n: int
                     ) -> str | None:
        """The first hand rule that rejects ``c`` (the module's list), or None."""
        cfg = self.config
        if len(self.mics) >= 2 and spread_db(c) < cfg.knock_spread_db:
            return "knock"
        if c.excess_db < cfg.min_excess_db:
            return "noise"  # it does not rise beyond what its band's noise reaches
        # A sharp burst clearly out of the noise is a transient even if something louder
        # follows it (a pop as a rub swells).
        periods = rise_periods(c)
        clear = c.prominence > cfg.clear_prominence and (c.rise_ms <= cfg.sharp_rise_ms
                                                         or periods <= cfg.sharp_rise_periods)
        if c.decay_db < cfg.min_decay_db and not clear:
            return "no burst"
        dies_away = c.decay_db >= cfg.burst_decay_db
        sustained = not dies_away and not clear
        # A burst that dies away is no voice, though voice may be heard after it: a pop
        # while the subject talks.
        if c.harmonicity > cfg.voice_harmonicity and not dies_away:
            return "voice"
        slow = c.rise_ms > cfg.rub_rise_ms and periods > cfg.rub_rise_periods
        if slow or (c.duration_ms > cfg.rub_duration_ms and sustained):
            return "rub"
        if (alike_n >= cfg.series_count or periodic_n >= cfg.periodic_members
                or cluster_n >= cfg.cluster_count):
            return "series"
        return None

    def _alike(self, c: Candidate, heard: Iterable[Candidate], shares: dict[int, np.ndarray]
               ) -> int:
        """How many other onsets of ``heard`` within ``series_window_s`` sound like ``c``,
        from the same place (see ``series``); ``shares`` holds each onset's
        :func:`shares_db` by id."""
        cfg = self.config
        count = 0
        for o in heard:
            gap = abs(o.t - c.t)
            if gap < cfg.same_event_s or gap > cfg.series_window_s:
                continue
            if alike(c, o, cfg, shares[id(c)], shares[id(o)]):
                count += 1
        return count

    def _cluster(self, c: Candidate, heard: Iterable[Candidate], shares: dict[int, np.ndarray]
                 ) -> tuple[int, int]:
        """How many other onsets of ``heard`` from the same place (shares within
        ``alike_place_db``, each at most ``cluster_heard_db`` under; with one mic, any) fall
        within ``cluster_window_s`` of ``c``, not counting its own ringing
        (``same_event_s``): the clear ones (``min_excess_db``: see ``series``), and those from
        ``faint_excess_db`` (the judge's ``faint``), counted in one pass."""
        cfg = self.config
        here = np.maximum(shares[id(c)], -cfg.cluster_heard_db)
        least = min(cfg.min_excess_db, cfg.faint_excess_db)
        clear = faint = 0
        for o in heard:
            gap = abs(o.t - c.t)
            if (gap < cfg.same_event_s or gap > cfg.cluster_window_s
                    or o.excess_db < least):
                continue
            if (len(c.band_energy) < 2 or np.max(np.abs(
                    np.maximum(shares[id(o)], -cfg.cluster_heard_db) - here))
                    <= cfg.alike_place_db):
                clear += int(o.excess_db >= cfg.min_excess_db)
                faint += int(o.excess_db >= cfg.faint_excess_db)
        return clear, faint

    def _periodic(self, c: Candidate, heard: Iterable[Candidate], shares: dict[int, np.ndarray]
                  ) -> int:
        """How many onsets of ``heard`` (``c`` among them) fall on one steady interval
        through ``c``: the most, over intervals to its neighbours, of onsets at ``c.t + k * T``
        (k = -2..2) within ``periodic_tolerance * T``, each from the same place (shares
        within ``alike_place_db``) and in a band that overlaps ``c``'s (see ``series``)."""
        cfg = self.config
        lo, hi = cfg.periodic_period_s
        near = [o for o in heard if abs(o.t - c.t) <= 2 * hi + 0.1
                and o.band_hz[0] <= c.band_hz[1] and o.band_hz[1] >= c.band_hz[0]
                and (len(c.band_energy) < 2 or np.max(np.abs(shares[id(o)] - shares[id(c)]))
                     <= cfg.alike_place_db)]
        times = np.array([o.t for o in near])
        periods = np.abs(times - c.t)
        periods = periods[(lo <= periods) & (periods <= hi)]
        if not len(periods):
            return 1
        # for each interval T to a neighbour: which of c.t + k * T (k = -2, -1, 1, 2) an
        # onset falls on, within periodic_tolerance * T
        steps = np.array([-2.0, -1.0, 1.0, 2.0])
        targets = c.t + steps[None, :] * periods[:, None]
        tol = cfg.periodic_tolerance * periods
        hit = (np.abs(times[None, None, :] - targets[:, :, None]) <= tol[:, None, None]).any(-1)
        return 1 + int(hit.sum(axis=1).max())


def features(c: Candidate, where: Sequence[float], *, alike: int, periodic: int, cluster: int,
             faint: int, impact: float, bending: float) -> np.ndarray:
    """The learned judge's view of a candidate: one row, columns as :data:`FEATURES`.

    Levels and times are taken in logs where they span decades; the sound's shape is its
    rise per octave under its largest (at most 20 dB under; NaN for octaves above the
    session's rate); ``alike``, ``periodic``, ``cluster``, ``faint`` and ``impact`` are the
    gate's context (see ``series``, ``GateConfig.faint_excess_db`` and ``impact``);
    ``where``, where along the spine it comes from (:func:`place`); ``bending``, the last,
    how fast the spine moved around it (deg/s, NaN without two IMUs:
    :meth:`ArtifactGate._bending`).
    """
    shape = np.full(7, np.nan)
    profile = sound_shape_db(c)[:7]
    shape[: len(profile)] = profile
    row = [
        math.log(max(c.strength, 1.0)), c.excess_db, math.log(max(c.prominence, 1e-3)),
        float(np.clip(c.contrast_db, -30, 40)), float(np.clip(c.decay_db, -30, 40)),
        math.log(min(max(c.duration_ms, 1.0), 500.0)), rise_periods(c), c.harmonicity,
        float(np.clip(c.snr_db, -30, 40)),
        float(np.clip(spread_db(c), 0, 40)) if len(c.band_energy) > 1 else 0.0,
        math.log2(max(c.band_hz[0], 1.0)), math.log2(max(c.band_hz[1], 1.0)),
        *shape, float(alike), float(periodic), float(cluster), float(faint), impact,
        float(len(c.band_energy)),
        *where, bending,
    ]
    assert len(row) == len(FEATURES)
    return np.array(row)[None, :]


def place(c: Candidate, mics: Sequence[str]) -> tuple[float, float, float, float]:
    """Where along the spine the onset comes from, by the locator's single-source fit of its
    band energy at each mic (``pops/locate.py``, its default prior, whatever the session's
    locator: these are what the judge was trained on): the fit's least cost (log), the
    fitted attenuation (log, per metre), how far inside the mics' span the level lies (0 at
    an end mic, 0.5 in the middle) and the cost margin to the next-best level. A pop is one
    source inside the body whose sound falls along the spine; a tap on one mic or a sound
    outside the body fits no level as well. NaN with one mic.
    """
    if len(mics) < 2:
        return (math.nan,) * 4
    where = locate(c.band_energy, mics, background=c.band_background, config=DEFAULT_LOCATOR)
    costs = np.array([cost for _, cost in where.costs])
    i = [lv for lv, _ in where.costs].index(where.level)
    return (math.log(costs.min() + 1e-3), math.log(where.attenuation_per_m),
            min(i, len(costs) - 1 - i) / (len(costs) - 1), float(np.sort(costs)[1] - costs.min()))


def rise_periods(c: Candidate) -> float:
    """The onset's rise (:attr:`Candidate.rise_ms`) in periods of its band's centre (the
    geometric mean of its edges): how fast it rose for a sound of its pitch. A burst cannot
    rise much faster than one period, so the same rise in ms is sharp for a 150 Hz pop and
    slow for a 2 kHz crack."""
    lo, hi = c.band_hz
    return c.rise_ms / 1000.0 * math.sqrt(max(lo, 1.0) * max(hi, 1.0))


def shares_db(c: Candidate) -> np.ndarray:
    """Each mic's share of the onset, dB under the loudest (at most 30)."""
    e = np.maximum(c.band_energy, 1e-30)
    return np.maximum(10 * np.log10(e / e.max()), -30.0)


def sound_shape_db(c: Candidate) -> np.ndarray:
    """The onset's rise per octave, dB under its largest, at most 20 under (the octaves it
    did not reach all look alike)."""
    p = np.asarray(c.profile_db, dtype=float)
    return np.maximum(p - p.max(), -20.0) if len(p) else p


def alike(a: Candidate, b: Candidate, cfg: GateConfig, shares_a: np.ndarray,
          shares_b: np.ndarray) -> bool:
    """Whether two onsets sound alike and come from the same place (``series``), given
    each one's :func:`shares_db`."""
    if a.duration_ms <= 0 or b.duration_ms <= 0:
        return False
    ratio = a.duration_ms / b.duration_ms
    if not 1 / cfg.alike_length <= ratio <= cfg.alike_length:
        return False
    if len(a.band_energy) > 1 and np.max(np.abs(shares_a - shares_b)) > cfg.alike_place_db:
        return False
    sa, sb = sound_shape_db(a), sound_shape_db(b)
    return len(sa) == len(sb) and float(np.sqrt(np.mean((sa - sb) ** 2))) <= cfg.alike_sound_db
