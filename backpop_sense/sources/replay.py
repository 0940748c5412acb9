"""Replay a recorded session as a time-ordered stream of blocks, optionally paced as if live."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..blocks import AudioBlock, Block, Gap, ImuBlock
from ..clock import SYSTEM_CLOCK, Clock
from ..session import Session

GAP_FACTOR = 3.0
"""An IMU interval longer than this many nominal sample periods is reported as a gap."""


class _ImuCursor:
    """Hands out one IMU's samples up to a time, splitting them at gaps."""

    def __init__(self, session: Session, name: str) -> None:
        self.name = name
        self._chunks = session.imu_chunks(name)
        self._chunk: ImuBlock | None = None
        self._pos = 0
        self._last_t: float | None = None
        self._gap_s = GAP_FACTOR / session.imu_rates[name]
        self.done = False

    def _current(self) -> ImuBlock | None:
        while self._chunk is None or self._pos >= self._chunk.n:
            self._chunk = next(self._chunks, None)
            self._pos = 0
            if self._chunk is None:
                self.done = True
                return None
        return self._chunk

    def take_until(self, t_end: float) -> list[ImuBlock | Gap]:
        """Every sample with ``t < t_end`` not handed out yet, as blocks and gaps."""
        out: list[ImuBlock | Gap] = []
        while (chunk := self._current()) is not None:
            stop = int(np.searchsorted(chunk.t, t_end, side="left"))
            if stop <= self._pos:
                break
            out.extend(self._split(chunk, self._pos, stop))
            self._pos = stop
        return out

    def _split(self, chunk: ImuBlock, a: int, b: int) -> list[ImuBlock | Gap]:
        t = chunk.t[a:b]
        prev = np.concatenate(([self._last_t if self._last_t is not None else t[0]], t[:-1]))
        cuts = np.flatnonzero(t - prev > self._gap_s)
        out: list[ImuBlock | Gap] = []
        bounds = sorted({0, *cuts.tolist(), len(t)})
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            if lo in cuts:
                out.append(Gap(self.name, float(prev[lo]), float(t[lo])))
            if hi > lo:
                out.append(_slice(chunk, a + lo, a + hi))
        self._last_t = float(t[-1])
        return out


def _slice(block: ImuBlock, a: int, b: int) -> ImuBlock:
    return ImuBlock(block.imu, block.start_index + a, block.t[a:b], block.acc[a:b],
                    block.gyro[a:b], None if block.mag is None else block.mag[a:b])


def _order_key(block: Block) -> tuple[float, int]:
    # A gap is known only when the sample after it arrives, so it sorts at its end.
    if isinstance(block, Gap):
        return (block.t_end, 1)
    return (block.t0, 0 if isinstance(block, AudioBlock) else 2)


class ReplaySource:
    """A recorded session as a stream of blocks, in time order.

    Each step hands out one audio block of ``block_size`` samples, then every IMU sample
    before that block's end, split wherever an IMU interval exceeds :data:`GAP_FACTOR`
    nominal periods (a :class:`~backpop_sense.blocks.Gap` is emitted there). Concatenating
    the blocks gives the files' contents exactly, whatever ``block_size``.

    Parameters
    ----------
    session : Session or path
        The session to replay.
    block_size : int
        Audio samples per block (256 to 65536 are typical).
    speed : float
        Pacing: 1.0 streams in real time, 2.0 twice as fast; 0 (default) as fast as the disk
        allows.
    clock : Clock, optional
        What paces the stream: ``monotonic()`` (s) and ``sleep(s)``; default the system's
        (:mod:`time`). A simulated clock replays a paced session without waiting.

    Examples
    --------
    >>> from backpop_sense.sources.replay import ReplaySource
    >>> source = ReplaySource("data/samples/S01/2026-11-02a", block_size=4096)
    >>> for block, _ in zip(source, range(3)):
    ...     print(type(block).__name__, block.t0)
    AudioBlock 0.0
    ImuBlock 0.0
    ImuBlock 0.0
    """

    def __init__(self, session: Session | str | Path, *, block_size: int = 4096,
                 speed: float = 0.0, clock: Clock = SYSTEM_CLOCK) -> None:
        if block_size < 1:
            raise ValueError("block_size must be at least 1 sample")
        if speed < 0:
            raise ValueError("speed must be 0 (as fast as possible) or positive")
        self.session = session if isinstance(session, Session) else Session(session)
        self.block_size = block_size
        self.speed = speed
        self.clock = clock

    def __iter__(self) -> Iterator[Block]:
        s = self.session
        audio = s.audio_blocks(self.block_size)
        cursors = [_ImuCursor(s, imu.name) for imu in s.info.imus]
        # Without audio (an IMU-only session) the IMUs are handed out a second at a time.
        step_s = self.block_size / s.audio.sr if s.audio is not None else 1.0
        t_end = s.info.audio_offset_s
        t_first: float | None = None
        wall_start = self.clock.monotonic()
        while True:
            block = next(audio, None)
            t_end = block.t_end if block is not None else t_end + step_s
            step: list[Block] = [block] if block is not None else []
            for cursor in cursors:
                step.extend(cursor.take_until(t_end))
            if not step:
                if block is None and all(c.done for c in cursors):
                    return
                continue
            step.sort(key=_order_key)
            if self.speed > 0:
                t_first = step[0].t0 if t_first is None else t_first
                delay = wall_start + (t_end - t_first) / self.speed - self.clock.monotonic()
                if delay > 0:
                    self.clock.sleep(delay)
            yield from step
