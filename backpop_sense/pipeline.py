"""One pipeline, live and offline: source -> stages -> :class:`SessionResult`.

source -> pop stage (detector, artifact gate, localisation) and motion tracker -> correlator
(pops in motion context, pop typing) -> :class:`SessionResult`. Every stage takes each block
in time order through ``feed`` and is flushed with ``finish()``.

:func:`analyze` is the one way to run it: a recorded session analysed to files, replayed with
the live view, recorded live from a strap, ingested by the store or a batch, or re-analysed for
a report, it is a source and a :class:`PipelineConfig` (every stage's parameters) through
:func:`analyze`. The analysis version the store keeps is a hash of that config.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Protocol

from .blocks import AudioBlock, Block, Gap
from .correlate import CorrelateConfig, Correlator, PopInContext, statistics
from .motion.tracker import DEFAULT_MOTION, MotionConfig, MotionEvent, MotionFrame, MotionTracker
from .params import Instance, Rules, check
from .pops.artifacts import GateConfig
from .pops.detector import LIVE_CHUNK, DetectorConfig
from .pops.locate import LocatorConfig
from .pops.stage import Heard, Pop, PopStage, Rejected
from .session import AudioInfo, SessionInfo
from .sources.replay import ReplaySource

FrameSink = Callable[[list[MotionFrame]], None]
OutputHook = Callable[[list, Block], None]


class Recording(Protocol):
    """What a stream is from, as the pipeline needs it: the session's metadata, its audio
    format and IMU rates when the stream starts, and its length (s) once it has ended. A
    session folder (:class:`~backpop_sense.session.Session`) is one; so is a strap being
    recorded (:class:`~backpop_sense.sources.ble.LiveSession`)."""

    @property
    def info(self) -> SessionInfo: ...

    @property
    def audio(self) -> AudioInfo | None: ...

    @property
    def imu_rates(self) -> Mapping[str, float]: ...

    @property
    def duration_s(self) -> float: ...


class Source(Protocol):
    """Blocks in time order (:mod:`~backpop_sense.blocks`) and the recording they are from:
    a replayed folder (:class:`~backpop_sense.sources.replay.ReplaySource`) or a live strap."""

    @property
    def session(self) -> Recording: ...

    def __iter__(self) -> Iterator[Block]: ...


@dataclass(frozen=True)
class PipelineConfig:
    """The parameters of every stage: detector, artifact gate, locator, pop typing (the
    correlator) and motion. One config, one analysis: :meth:`to_dict` is what summary.json
    holds and what the store's analysis version hashes.

    Examples
    --------
    >>> from backpop_sense.pipeline import PipelineConfig
    >>> from backpop_sense.pops.detector import DetectorConfig
    >>> config = PipelineConfig(detector=DetectorConfig(threshold=7.0))
    >>> sorted(config.to_dict())
    ['correlate', 'detector', 'gate', 'locator', 'motion']
    """

    detector: DetectorConfig = DetectorConfig()
    gate: GateConfig = GateConfig()
    locator: LocatorConfig = LocatorConfig()
    correlate: CorrelateConfig = CorrelateConfig()
    motion: MotionConfig = DEFAULT_MOTION

    RULES: ClassVar[Rules] = {
        "detector": Instance(DetectorConfig, "a DetectorConfig"),
        "gate": Instance(GateConfig, "a GateConfig"),
        "locator": Instance(LocatorConfig, "a LocatorConfig"),
        "correlate": Instance(CorrelateConfig, "a CorrelateConfig"),
        "motion": Instance(MotionConfig, "a MotionConfig"),
    }

    def __post_init__(self) -> None:
        check(self)

    def to_dict(self) -> dict:
        """Every stage's parameters, keyed by stage, as :attr:`SessionResult.parameters`."""
        return {"detector": self.detector.to_dict(), "gate": self.gate.to_dict(),
                "locator": self.locator.to_dict(), "correlate": self.correlate.to_dict(),
                "motion": self.motion.to_dict()}

    def live(self) -> PipelineConfig:
        """The same analysis for a stream paced like a live one: audio in short chunks, so
        that a pop is out about 0.1 s after its sound (the pops do not depend on it)."""
        return replace(self, detector=replace(self.detector, chunk=LIVE_CHUNK))


DEFAULT_CONFIG = PipelineConfig()


@dataclass
class SessionResult:
    """Everything the pipeline found in one session, with what it took to find it.

    ``pops`` are typed and in time order. ``frames`` holds the 10 Hz motion frames unless the
    pipeline was given a frame sink (then they went there, and memory stays flat however long
    the session).
    """

    session: Recording
    pops: list[PopInContext] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    frames: list[MotionFrame] = field(default_factory=list)
    motion_events: list[MotionEvent] = field(default_factory=list)
    motion_summary: dict = field(default_factory=dict)
    pop_statistics: dict = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    wall_s: float = 0.0


def default_parameters() -> dict:
    """Every stage's default parameters, keyed as :attr:`SessionResult.parameters` is."""
    return DEFAULT_CONFIG.to_dict()


class Pipeline:
    """All stages of one session: ``feed(block) -> [outputs]``, ``finish() -> SessionResult``;
    :func:`analyze` drives it.

    ``feed`` returns what became known with that block, for a live view: pops as soon as
    they are heard (:class:`~backpop_sense.pops.stage.Heard`, provisional, about 0.1 s after
    the sound with live chunks), the gate's final judgement of each onset seconds later (a
    :class:`~backpop_sense.pops.stage.Pop`, or a :class:`~backpop_sense.pops.stage.Rejected`
    that may overrule a pop heard), the pops placed in their motion context once the motion
    has caught up (:class:`PopInContext`, not typed yet), motion frames and events, and gaps.

    Parameters
    ----------
    session : Recording
        What the stream is from (mics, IMUs, rates).
    config : PipelineConfig
        Every stage's parameters.
    frame_sink : callable, optional
        Receives the motion frames as they come instead of the result keeping them.
    live : bool
        Whether ``feed`` hears pops provisionally (``Heard``); the result is the same without.
    """

    def __init__(self, session: Recording, config: PipelineConfig = DEFAULT_CONFIG, *,
                 frame_sink: FrameSink | None = None, live: bool = True) -> None:
        self.session = session
        # An IMU-only session has motion and no pops.
        self.pop_stage = PopStage(session.info, session.audio.sr, detector=config.detector,
                                  gate=config.gate, locator=config.locator, early=live) \
            if session.audio is not None else None
        self.motion = (MotionTracker(session.info, dict(session.imu_rates), config.motion)
                       if session.info.imus else None)
        self.correlator = Correlator(config.correlate, has_motion=self.motion is not None)
        self.frame_sink = frame_sink
        self.result = SessionResult(session, parameters=config.to_dict())
        self.result.samples.update({"audio": 0, **{imu.name: 0 for imu in session.info.imus}})

    def feed(self, block: Block) -> list:
        """Take one block; return what it completed (see the class docstring)."""
        if isinstance(block, Gap):
            self.result.gaps.append(block)
        else:
            self.result.samples["audio" if isinstance(block, AudioBlock) else block.imu] += \
                block.n
        outputs = self.pop_stage.feed(block) if self.pop_stage is not None else []
        if self.motion is not None:
            outputs += self.motion.feed(block)
        out = self._route(outputs)
        if isinstance(block, Gap):
            out.append(block)
        return out

    def finish(self) -> SessionResult:
        """Flush every stage, type the pops and compute the session's statistics."""
        outputs = self.pop_stage.finish() if self.pop_stage is not None else []
        if self.motion is not None:
            outputs += self.motion.finish()
            self.result.motion_summary = self.motion.summary()
        self._route(outputs)
        r = self.result
        r.pops = self.correlator.finish()
        r.rejected = self.correlator.rejected
        r.pop_statistics = statistics(r.pops, r.motion_summary.get("context_s", {}),
                                      self.session.duration_s)
        return r

    def _route(self, outputs: list) -> list:
        if not outputs:  # most blocks complete nothing; the correlator waits on new outputs
            return []
        frames = [o for o in outputs if isinstance(o, MotionFrame)]
        if frames:
            if self.frame_sink is not None:
                self.frame_sink(frames)
            else:
                self.result.frames.extend(frames)
        events = [o for o in outputs if isinstance(o, MotionEvent)]
        self.result.motion_events.extend(events)
        placed = self.correlator.feed(outputs)
        judged = [o for o in outputs if isinstance(o, Heard | Pop | Rejected)]
        return [*judged, *placed, *frames, *events]


OFFLINE_BLOCK = 16384
"""Audio samples per block when analysing a file: results do not depend on it, speed does."""


def open_replay(path: str | Path, *, block_size: int = OFFLINE_BLOCK, speed: float = 0.0
                ) -> ReplaySource:
    """A recorded session as a stream, its side tables (truth, motion truth, symptoms) checked.

    The side tables are small: a bad one is refused before streaming starts rather than found
    later.
    """
    source = ReplaySource(path, block_size=block_size, speed=speed)
    source.session.truth()
    source.session.motion_truth()
    source.session.symptoms()
    return source


def analyze(source: str | Path | Source, config: PipelineConfig = DEFAULT_CONFIG, *,
            block_size: int = OFFLINE_BLOCK, frame_sink: FrameSink | None = None,
            on_output: OutputHook | None = None) -> SessionResult:
    """Run the pipeline: every block of ``source`` through every stage, with ``config``.

    Parameters
    ----------
    source : str, Path or Source
        A session folder (replayed in blocks of ``block_size`` audio samples, as fast as the
        disk allows; the results do not depend on the block size), or any source of blocks
        with the recording they are from: :func:`open_replay`'s (to pace it), a live strap's.
    config : PipelineConfig
        Every stage's parameters (the defaults unless given).
    frame_sink : callable, optional
        Receives the motion frames as they come instead of the result keeping them, so that
        memory stays flat however long the session.
    on_output : callable, optional
        ``on_output(outputs, block)`` after each block, with what it completed (see
        :meth:`Pipeline.feed`): for a live view.

    Returns
    -------
    SessionResult
        The typed pops, motion, rejections and gaps, with ``config`` as its parameters.

    Examples
    --------
    >>> from backpop_sense.pipeline import PipelineConfig, analyze
    >>> from backpop_sense.pops.artifacts import GateConfig
    >>> result = analyze("data/samples/S01/2026-11-02a")
    >>> result.session.info.subject, len(result.frames)
    ('S01', 501)
    >>> strict = PipelineConfig(gate=GateConfig(min_score=0.95))
    >>> stricter = analyze("data/samples/S01/2026-11-02a", strict)  # doctest: +SKIP
    """
    if isinstance(source, str | Path):
        source = open_replay(source, block_size=block_size)
    started = time.perf_counter()
    # Only a caller that sees the outputs as they come needs the pops heard early.
    pipeline = Pipeline(source.session, config, frame_sink=frame_sink,
                        live=on_output is not None)
    for block in source:
        outputs = pipeline.feed(block)
        if on_output is not None:
            on_output(outputs, block)
    result = pipeline.finish()
    result.wall_s = time.perf_counter() - started
    return result
