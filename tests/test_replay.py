"""Replaying a session: the same stream whatever the block size, in time order, paced."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SessionFactory

from backpop_sense.blocks import AudioBlock, Block, Gap, ImuBlock
from backpop_sense.cli import describe_stream
from backpop_sense.clock import SimulatedClock
from backpop_sense.session import Session
from backpop_sense.sources.replay import GAP_FACTOR, ReplaySource

BLOCK_SIZES = (256, 1000, 4096, 65536)
BACKPOP = Path(sys.executable).parent / "backpop"


def replay(path: Path, block_size: int, **kwargs: float) -> list[Block]:
    return list(ReplaySource(path, block_size=block_size, **kwargs))


def audio_of(blocks: list[Block]) -> list[AudioBlock]:
    return [b for b in blocks if isinstance(b, AudioBlock)]


def imu_of(blocks: list[Block], name: str) -> list[ImuBlock]:
    return [b for b in blocks if isinstance(b, ImuBlock) and b.imu == name]


def gaps_of(blocks: list[Block]) -> list[Gap]:
    return [b for b in blocks if isinstance(b, Gap)]


def order_key(block: Block) -> tuple[float, int]:
    """The ordering rule of replay.py: by time; a gap at its end (it is known only when the
    sample after it arrives); at equal times audio, then gaps, then IMU samples."""
    if isinstance(block, Gap):
        return (block.t_end, 1)
    return (block.t0, 0 if isinstance(block, AudioBlock) else 2)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("BACKPOP_DEBUG", None)
    return subprocess.run([str(BACKPOP), *args], capture_output=True, text=True, timeout=60,
                          env=env)


@pytest.fixture
def hole_session(make_session: SessionFactory) -> Path:
    """Both IMUs miss every sample strictly between t = 1 s and t = 2 s."""
    return make_session("hole", imu_hole=(1.0, 2.0))


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_stream_is_the_files_whatever_the_block_size(session_dir: Path, block_size: int) -> None:
    blocks = replay(session_dir, block_size)
    as_int, sr = sf.read(str(session_dir / "mic.wav"), dtype="int16", always_2d=True)
    audio = np.concatenate([b.data for b in audio_of(blocks)])
    assert audio.dtype == np.float32 and sr == 8000
    np.testing.assert_array_equal(audio, as_int / np.float32(32768))
    assert all(b.n == block_size for b in audio_of(blocks)[:-1])
    s = Session(session_dir)
    for name in ("thoracic", "sacral"):
        want = s.read_imu(name)
        got = imu_of(blocks, name)
        np.testing.assert_array_equal(np.concatenate([b.t for b in got]), want.t)
        np.testing.assert_array_equal(np.concatenate([b.acc for b in got]), want.acc)
        np.testing.assert_array_equal(np.concatenate([b.gyro for b in got]), want.gyro)
    assert gaps_of(blocks) == []


@pytest.mark.parametrize("name", ["good", "hole"])
def test_same_stream_for_every_block_size(make_session: SessionFactory, name: str) -> None:
    path = make_session(name, imu_hole=(1.0, 2.0) if name == "hole" else None)
    runs = {size: replay(path, size) for size in BLOCK_SIZES}
    ref = runs[BLOCK_SIZES[0]]
    for blocks in runs.values():
        np.testing.assert_array_equal(np.concatenate([b.data for b in audio_of(blocks)]),
                                      np.concatenate([b.data for b in audio_of(ref)]))
        for imu in ("thoracic", "sacral"):
            for attr in ("t", "acc", "gyro"):
                np.testing.assert_array_equal(
                    np.concatenate([getattr(b, attr) for b in imu_of(blocks, imu)]),
                    np.concatenate([getattr(b, attr) for b in imu_of(ref, imu)]))
        assert gaps_of(blocks) == gaps_of(ref)


@pytest.mark.parametrize("offset", [0.0, 0.25, -0.5])
@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_blocks_in_time_order(make_session: SessionFactory, offset: float,
                              block_size: int) -> None:
    path = make_session(imu_hole=(1.0, 2.0), audio_offset_s=offset)
    keys = [order_key(b) for b in replay(path, block_size)]
    assert keys == sorted(keys)


@pytest.mark.parametrize("offset", [0.0, 0.25, -0.5])
@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_audio_timestamps_are_sample_exact(make_session: SessionFactory, offset: float,
                                           block_size: int) -> None:
    path = make_session(audio_offset_s=offset)
    blocks = audio_of(replay(path, block_size))
    start = 0
    for prev, block in zip([None, *blocks[:-1]], blocks, strict=True):
        assert block.start_index == start
        assert block.sr == 8000 and block.offset_s == offset
        assert block.t0 == offset + start / 8000
        if prev is not None:
            assert block.t0 == prev.t_end
        np.testing.assert_array_equal(block.times(), offset + (start + np.arange(block.n)) / 8000)
        start += block.n
    assert start == 24000
    assert blocks[-1].t_end == offset + 3.0


@pytest.mark.parametrize("offset", [0.25, -0.5])
def test_audio_offset_keeps_every_imu_sample(make_session: SessionFactory, offset: float) -> None:
    path = make_session(audio_offset_s=offset)
    blocks = replay(path, 1000)
    assert audio_of(blocks)[0].t0 == offset
    for name in ("thoracic", "sacral"):
        t = np.concatenate([b.t for b in imu_of(blocks, name)])
        np.testing.assert_allclose(t, np.arange(300) / 100.0, rtol=0, atol=1e-12)
    if offset > 0:
        # IMU samples before the first audio sample come first.
        assert isinstance(blocks[0], ImuBlock) and blocks[0].t0 == 0.0
    else:
        # Audio ends at 2.5 s; the IMU samples after it are still streamed, after the audio.
        last_audio = max(i for i, b in enumerate(blocks) if isinstance(b, AudioBlock))
        tail = [b for b in blocks[last_audio + 1:] if isinstance(b, ImuBlock)]
        assert tail and min(b.t0 for b in tail) >= blocks[last_audio].t0
        assert max(b.t[-1] for b in tail) == pytest.approx(2.99)


@pytest.mark.parametrize("block_size", (*BLOCK_SIZES, 8000, 4000))
def test_imu_hole_is_exactly_one_gap(hole_session: Path, block_size: int) -> None:
    blocks = replay(hole_session, block_size)
    gaps = gaps_of(blocks)
    assert len(gaps) == 2
    assert sorted(g.stream for g in gaps) == ["sacral", "thoracic"]
    for g in gaps:
        assert g.t_start == pytest.approx(1.0, abs=1e-12)
        assert g.t_end == pytest.approx(2.0, abs=1e-12)
    for name in ("thoracic", "sacral"):
        stream = [b for b in blocks if isinstance(b, ImuBlock | Gap)
                  and (b.imu if isinstance(b, ImuBlock) else b.stream) == name]
        i = next(i for i, b in enumerate(stream) if isinstance(b, Gap))
        assert isinstance(stream[i - 1], ImuBlock) and stream[i - 1].t[-1] == pytest.approx(1.0)
        assert isinstance(stream[i + 1], ImuBlock) and stream[i + 1].t0 == pytest.approx(2.0)
        assert sum(b.n for b in stream if isinstance(b, ImuBlock)) == 300 - 99
        period = 1.0 / 100.0
        for b in stream:
            if isinstance(b, ImuBlock) and b.n > 1:
                assert np.diff(b.t).max() < GAP_FACTOR * period


def test_short_jitter_is_not_a_gap(make_session: SessionFactory) -> None:
    # Two missing samples (a 30 ms interval) stay under GAP_FACTOR periods.
    path = make_session(imu_hole=(1.0, 1.03))
    assert gaps_of(replay(path, 256)) == []


def test_describe_stream_counts(hole_session: Path) -> None:
    for size in BLOCK_SIZES:
        summary = describe_stream(hole_session, block_size=size)
        assert summary["duration_s"] == 3.0
        assert summary["imu_samples"] == {"thoracic": 201, "sacral": 201}
        assert summary["gaps"] == 2


@pytest.mark.parametrize("speed", [1.0, 10.0])
def test_speed_paces_the_stream(session_dir: Path, speed: float) -> None:
    """Each block is handed out once its end is due on the clock at ``speed``, not before
    and not a block later: 3 s of session take 3 s / speed."""
    clock = SimulatedClock(start=100.0)
    source = ReplaySource(session_dir, block_size=4096, speed=speed, clock=clock)
    first = None
    audio = 0
    for block in source:
        if isinstance(block, AudioBlock):
            first = block.t0 if first is None else first
            due = 100.0 + (block.t_end - first) / speed
            assert clock.now == pytest.approx(due)
            audio += block.n
    assert audio == 24000
    assert clock.now == pytest.approx(100.0 + 3.0 / speed)


def test_unpaced_replay_never_waits(session_dir: Path) -> None:
    clock = SimulatedClock(start=100.0)
    assert sum(b.n for b in audio_of(list(ReplaySource(session_dir, clock=clock)))) == 24000
    assert clock.now == 100.0


def test_replay_rejects_bad_parameters(session_dir: Path) -> None:
    with pytest.raises(ValueError, match="block_size"):
        ReplaySource(session_dir, block_size=0)
    with pytest.raises(ValueError, match="speed"):
        ReplaySource(session_dir, speed=-1.0)


def test_cli_replay_prints_duration(session_dir: Path) -> None:
    result = run_cli("replay", str(session_dir), "--speed", "0")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "3.0 s" in result.stdout
    assert "S01/" in result.stdout and "T10,L1,L4" in result.stdout and "8 kHz" in result.stdout


def test_cli_replay_bad_option_is_one_line(session_dir: Path) -> None:
    result = run_cli("replay", str(session_dir), "--speed", "-1")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--speed" in lines[0]
