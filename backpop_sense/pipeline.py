"""One pipeline, live and offline: source -> stages -> :class:`SessionResult`.

Every stage takes each block in time order through ``feed(block)`` and is flushed with
``finish()``; offline analysis is the live pipeline fed as fast as the disk allows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .blocks import AudioBlock, Block, Gap
from .motion.tracker import MotionEvent, MotionFrame, MotionTracker
from .pops.artifacts import GateConfig
from .pops.detector import DetectorConfig
from .pops.stage import Pop, PopStage, Rejected
from .session import Session
from .sources.replay import ReplaySource


@dataclass
class SessionResult:
    """Everything the pipeline found in one session, with what it took to find it."""

    session: Session
    pops: list[Pop] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    frames: list[MotionFrame] = field(default_factory=list)
    motion_events: list[MotionEvent] = field(default_factory=list)
    motion_summary: dict = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    wall_s: float = 0.0

    def pop_frames(self) -> list[MotionFrame | None]:
        """For each pop, the motion frame nearest its time (None without motion)."""
        if not self.frames:
            return [None] * len(self.pops)
        times = np.fromiter((f.t for f in self.frames), float, len(self.frames))
        at = np.array([p.t for p in self.pops], dtype=float)
        k = np.clip(np.searchsorted(times, at), 1, max(len(times) - 1, 1))
        nearer_before = (at - times[k - 1]) <= (times[np.minimum(k, len(times) - 1)] - at)
        k = np.where(nearer_before, k - 1, np.minimum(k, len(times) - 1))
        return [self.frames[i] for i in k]

def run(blocks: Iterable[Block], session: Session, *, detector: DetectorConfig | None = None,
        gate: GateConfig | None = None) -> SessionResult:
    """Feed ``blocks`` (from any source) through every stage.

    Parameters
    ----------
    blocks : iterable of Block
        The stream, in time order.
    session : Session
        What the stream is from (mics, IMUs, rates).
    """
    stage = PopStage(session.info, session.audio.sr, detector=detector, gate=gate)
    motion = MotionTracker(session.info, session.imu_rates) if session.info.imus else None
    result = SessionResult(session, parameters={
        "detector": stage.detector.config.to_dict(), "gate": stage.gate.config.to_dict()})
    sinks = {Pop: result.pops, Rejected: result.rejected, MotionFrame: result.frames,
             MotionEvent: result.motion_events}
    started = time.perf_counter()

    def take(outputs: list) -> None:
        for o in outputs:
            sinks[type(o)].append(o)

    counts = result.samples
    counts.update({"audio": 0, **{imu.name: 0 for imu in session.info.imus}})
    for block in blocks:
        if isinstance(block, Gap):
            result.gaps.append(block)
        else:
            counts["audio" if isinstance(block, AudioBlock) else block.imu] += block.n
        take(stage.feed(block))
        if motion is not None:
            take(motion.feed(block))
    take(stage.finish())
    if motion is not None:
        take(motion.finish())
        result.motion_summary = motion.summary()
    result.wall_s = time.perf_counter() - started
    return result


OFFLINE_BLOCK = 16384
"""Audio samples per block when analysing a file: results do not depend on it, speed does."""


def analyze(path: str | Path, *, block_size: int = OFFLINE_BLOCK, speed: float = 0.0
            ) -> SessionResult:
    """Replay a recorded session through the pipeline.

    The side tables (truth, motion truth, symptoms) are small: a bad one is refused before
    streaming starts rather than found later.
    """
    source = ReplaySource(path, block_size=block_size, speed=speed)
    source.session.truth()
    source.session.motion_truth()
    source.session.symptoms()
    return run(source, source.session)
