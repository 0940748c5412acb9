"""One pipeline, live and offline: source -> stages -> :class:`SessionResult`.

Every stage takes each block in time order through ``feed(block)`` and is flushed with
``finish()``; offline analysis is the live pipeline fed as fast as the disk allows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .blocks import Block, Gap
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
    parameters: dict = field(default_factory=dict)
    wall_s: float = 0.0


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
    result = SessionResult(session, parameters={
        "detector": stage.detector.config.to_dict(), "gate": stage.gate.config.to_dict()})
    started = time.perf_counter()

    def take(events: list[Pop | Rejected]) -> None:
        for e in events:
            (result.pops if isinstance(e, Pop) else result.rejected).append(e)

    for block in blocks:
        if isinstance(block, Gap):
            result.gaps.append(block)
        take(stage.feed(block))
    take(stage.finish())
    result.wall_s = time.perf_counter() - started
    return result


def analyze(path: str | Path, *, block_size: int = 4096, speed: float = 0.0) -> SessionResult:
    """Replay a recorded session through the pipeline."""
    source = ReplaySource(path, block_size=block_size, speed=speed)
    return run(source, source.session)
