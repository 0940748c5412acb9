"""One pipeline, live and offline: source -> stages -> :class:`SessionResult`.

source -> pop stage (detector, artifact gate, localisation) and motion tracker -> correlator
(pops in motion context, pop typing) -> :class:`SessionResult`. Every stage takes each block
in time order through ``feed`` and is flushed with ``finish()``; offline analysis is the live
pipeline fed as fast as the disk allows, and the live view (``backpop replay``, ``record``)
reads what :meth:`Pipeline.feed` returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .blocks import AudioBlock, Block, Gap
from .correlate import CorrelateConfig, Correlator, PopInContext, statistics
from .motion.tracker import MotionEvent, MotionFrame, MotionTracker
from .pops.artifacts import GateConfig
from .pops.detector import DetectorConfig
from .pops.stage import Pop, PopStage, Rejected
from .session import Session
from .sources.replay import ReplaySource

FrameSink = Callable[[list[MotionFrame]], None]


@dataclass
class SessionResult:
    """Everything the pipeline found in one session, with what it took to find it.

    ``pops`` are typed and in time order. ``frames`` holds the 10 Hz motion frames unless the
    pipeline was given a frame sink (then they went there, and memory stays flat however long
    the session).
    """

    session: Session
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
    return {"detector": DetectorConfig().to_dict(), "gate": GateConfig().to_dict(),
            "correlate": CorrelateConfig().to_dict()}


class Pipeline:
    """All stages of one session: ``feed(block) -> [outputs]``, ``finish() -> SessionResult``.

    ``feed`` returns what became known with that block, for a live view: pops as soon as
    they are heard (:class:`~backpop_sense.pops.stage.Pop`, about a second after the sound),
    the same pops placed in their motion context once the motion has caught up
    (:class:`PopInContext`, not typed yet; a few seconds later), rejected onsets, motion
    frames and events, and gaps.

    Parameters
    ----------
    session : Session
        What the stream is from (mics, IMUs, rates).
    frame_sink : callable, optional
        Receives the motion frames as they come instead of the result keeping them.
    """

    def __init__(self, session: Session, *, detector: DetectorConfig | None = None,
                 gate: GateConfig | None = None, correlate: CorrelateConfig | None = None,
                 frame_sink: FrameSink | None = None) -> None:
        self.session = session
        # An IMU-only session has motion and no pops.
        self.pop_stage = PopStage(session.info, session.audio.sr, detector=detector, gate=gate) \
            if session.audio is not None else None
        self.motion = (MotionTracker(session.info, session.imu_rates) if session.info.imus
                       else None)
        self.correlator = Correlator(correlate, has_motion=self.motion is not None)
        self.frame_sink = frame_sink
        parameters = {"correlate": self.correlator.config.to_dict()}
        if self.pop_stage is not None:
            parameters = {"detector": self.pop_stage.detector.config.to_dict(),
                          "gate": self.pop_stage.gate.config.to_dict(), **parameters}
        self.result = SessionResult(session, parameters=parameters)
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
        if self.correlator.rescued:  # taken back as pops: no longer rejected
            back = {p.t for p in self.correlator.rescued}
            r.rejected = [x for x in r.rejected if x.t not in back]
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
        self.result.rejected.extend(o for o in outputs if isinstance(o, Rejected))
        events = [o for o in outputs if isinstance(o, MotionEvent)]
        self.result.motion_events.extend(events)
        placed = self.correlator.feed(outputs)
        heard = [o for o in outputs if isinstance(o, Pop)]
        return [*heard, *placed, *(o for o in outputs if isinstance(o, Rejected)), *frames,
                *events]


def run(blocks: Iterable[Block], session: Session, *, detector: DetectorConfig | None = None,
        gate: GateConfig | None = None, correlate: CorrelateConfig | None = None,
        frame_sink: FrameSink | None = None) -> SessionResult:
    """Feed ``blocks`` (from any source) through every stage.

    Parameters
    ----------
    blocks : iterable of Block
        The stream, in time order.
    session : Session
        What the stream is from (mics, IMUs, rates).
    """
    started = time.perf_counter()
    pipeline = Pipeline(session, detector=detector, gate=gate, correlate=correlate,
                        frame_sink=frame_sink)
    for block in blocks:
        pipeline.feed(block)
    result = pipeline.finish()
    result.wall_s = time.perf_counter() - started
    return result


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


def analyze(path: str | Path, *, block_size: int = OFFLINE_BLOCK, speed: float = 0.0,
            detector: DetectorConfig | None = None, gate: GateConfig | None = None,
            correlate: CorrelateConfig | None = None, frame_sink: FrameSink | None = None
            ) -> SessionResult:
    """Replay a recorded session through the pipeline (stage parameters as for :func:`run`)."""
    source = open_replay(path, block_size=block_size, speed=speed)
    return run(source, source.session, detector=detector, gate=gate, correlate=correlate,
               frame_sink=frame_sink)
