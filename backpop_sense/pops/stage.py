"""The pop stage of the pipeline: detector, then artifact gate, then localisation."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..blocks import AudioBlock, Block, ImuBlock
from ..session import SessionInfo
from .artifacts import DOUBTFUL, ArtifactGate, GateConfig, spread_db
from .detector import Candidate, DetectorConfig, PopDetector
from .locate import LocatorConfig, locate


@dataclass(frozen=True)
class Pop:
    """A detected pop: when, where, and what it sounded like.

    Attributes
    ----------
    t : float
        Onset, seconds since session start.
    level : str
        Spinal level of the source.
    amplitude_db, snr_db, centroid_hz, duration_ms : float
        As in ``pops.csv`` (dB full scale, dB, Hz, ms).
    strength : float
        Onset strength at detection, MAD units above the running median.
    spread_db : float
        Loudest over quietest mic, dB.
    excess_db : float
        How far it rose above what its band's noise reaches (:attr:`Candidate.excess_db`).
    level_costs : tuple of (str, float)
        The locator's cost of each candidate level (:attr:`Location.costs`), for pooling the
        repeats of one source at the end of the session.
    """

    t: float
    level: str
    amplitude_db: float
    snr_db: float
    centroid_hz: float
    duration_ms: float
    strength: float
    spread_db: float
    excess_db: float = math.inf
    level_costs: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Heard:
    """A pop as soon as it is heard, for a live view: judged provisionally on the sound so
    far (:meth:`~backpop_sense.pops.artifacts.ArtifactGate.early`), about 0.1 s after it.
    The final judgement follows seconds later, as the :class:`Pop` of the same ``t`` or as a
    :class:`Rejected` of that ``t`` that overrules it; only that one is kept."""

    pop: Pop

    @property
    def t(self) -> float:
        """Onset, seconds since session start."""
        return self.pop.t


@dataclass(frozen=True)
class Rejected:
    """An onset the artifact gate turned away, with the rule that did it; for the reasons
    in :data:`~backpop_sense.pops.artifacts.DOUBTFUL`, ``pop`` is the pop it would have been
    (located), else None."""

    t: float
    reason: str
    strength: float
    spread_db: float
    pop: Pop | None = None


class PopStage:
    """Pops from the stream: ``feed(block) -> [Pop | Rejected]``, ``finish() -> [...]``.

    Parameters
    ----------
    info : SessionInfo
        The session's mics and IMUs.
    sr : int
        Audio rate, Hz.
    early : bool
        Whether to hear pops provisionally (:class:`Heard`, for a live view). Without it the
        final judgements are the same (the provisional verdict changes nothing the final one
        uses) and cost about a tenth less.
    """

    def __init__(self, info: SessionInfo, sr: int, *, detector: DetectorConfig | None = None,
                 gate: GateConfig | None = None, locator: LocatorConfig | None = None,
                 early: bool = True) -> None:
        self.early = early
        self.mics = info.mic_names
        self.locator = locator or LocatorConfig()
        self.detector = PopDetector(sr, len(self.mics), detector)
        self.gate = ArtifactGate(self.mics, [i.name for i in info.imus], gate)

    def feed(self, block: Block) -> list[Heard | Pop | Rejected]:
        """Take one block of any kind; return the pops heard (provisionally), and the pops and
        rejections it completed (the final judgement)."""
        if isinstance(block, AudioBlock):
            heard = self.detector.feed(block)
            judged = self.gate.feed(heard, self.detector.heard_until())
        elif isinstance(block, ImuBlock):
            judged = self.gate.feed_imu(block)
        else:
            return []
        if not self.early:
            return self._judged(judged)
        early = [Heard(self._pop(c)) for c, reason in self.gate.early() if reason is None]
        return [*early, *self._judged(judged)]

    def finish(self) -> list[Pop | Rejected]:
        """Flush the detector and the gate at the end of the stream."""
        judged = self.gate.feed(self.detector.finish())
        return self._judged(judged + self.gate.finish())

    def _judged(self, judged: list[tuple[Candidate, str | None]]) -> list[Pop | Rejected]:
        out: list[Pop | Rejected] = []
        for c, reason in judged:
            if reason is not None and reason not in DOUBTFUL:
                out.append(Rejected(c.t, reason, c.strength, spread_db(c)))
                continue
            pop = self._pop(c)
            out.append(pop if reason is None
                       else Rejected(c.t, reason, c.strength, pop.spread_db, pop))
        return out

    def _pop(self, c: Candidate) -> Pop:
        """The pop ``c`` would be, located."""
        where = locate(c.level_energy, self.mics, background=c.band_background,
                       config=self.locator)
        return Pop(c.t, where.level, c.amplitude_db, c.snr_db, c.centroid_hz, c.duration_ms,
                   c.strength, spread_db(c), c.excess_db, where.costs)
