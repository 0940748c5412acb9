"""The BLE path end to end: bleak's real client API on Bumble's stack, against an emulated strap.

No mock: the emulator is a Bumble GATT server on a virtual controller; the recorder uses
``bleak.BleakClient`` with the Bumble backend over an in-process ``LocalLink``. Time is
compressed (the emulator plays faster than real time) to keep the suite short.
"""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError
from rich.console import Console

from backpop_sense.blocks import AudioBlock
from backpop_sense.errors import BadInput
from backpop_sense.session import ACC_UNITS, GYRO_UNITS, Session, parse_axes
from backpop_sense.simulate import SimConfig, simulate_session
from backpop_sense.sources.ble import Emulation, LiveSource, record
from backpop_sense.sources.bumble_backend import (
    BumbleClient,
    BumbleScanner,
    VirtualRadio,
)
from backpop_sense.sources.emulator import StrapEmulator, check_session, emulate, strap_view
from backpop_sense.sources.profiles import load_profile

V1 = load_profile("backpop-strap-v1")
PCM = load_profile("backpop-strap-v1-pcm")
STRAP, CENTRAL = "C0:98:E5:49:00:01", "C0:98:E5:49:00:99"
BACKPOP = Path(sys.executable).parent / "backpop"
SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"


@pytest.fixture(autouse=True)
def _quiet_bumble():
    # Bumble logs a warning for every packet its virtual controller finds no link for.
    logging.getLogger("bumble").setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    """A 12 s session at the reference strap's rates (16 kHz, 3 mics, 2 IMUs at 200 Hz)."""
    out = tmp_path_factory.mktemp("ble") / "sim"
    simulate_session(out, SimConfig(scenario="twist-cavitation", minutes=0.2, seed=5))
    return out


def _gap_mask(path: Path, stream: str, times: np.ndarray) -> np.ndarray:
    """True where a time falls strictly inside one of the recording's marked gaps."""
    gaps = pd.read_csv(path / "gaps.csv")
    gaps = gaps[gaps.stream == stream]
    inside = np.zeros(len(times), dtype=bool)
    for a, b in zip(gaps.t_start, gaps.t_end, strict=True):
        inside |= (times > a) & (times < b)
    return inside


def assert_recording_matches(rec: Path, src: Path, profile) -> dict[str, int]:
    """Every sample outside the marked gaps is the strap's, exactly once; gaps hold nothing.

    Returns the number of samples lost per stream.
    """
    expected = strap_view(src, profile)
    got = Session(rec)
    audio = np.rint(got.read_audio() * 32768).astype(np.int16)
    n = len(audio)
    assert n <= len(expected.audio)
    t = np.arange(n) / profile.audio.sr
    gap = _gap_mask(rec, "audio", t)
    np.testing.assert_array_equal(audio[~gap], expected.audio[:n][~gap])
    assert not audio[gap].any()
    lost = {"audio": int(gap.sum()) + len(expected.audio) - n}
    for spec in profile.imus:
        block = got.read_imu(spec.name)
        counts = expected.imu_counts[spec.name]
        t_src = expected.imu_t[spec.name]
        # Each recorded row is one sent sample (nearest in time, within a device tick).
        k = np.searchsorted(t_src, block.t - 0.5 / spec.rate)
        assert np.all(np.abs(t_src[k] - block.t) <= 1 / profile.ts_hz)
        assert np.all(np.diff(k) > 0), "a sample recorded twice"
        rot = parse_axes(spec.axes)
        np.testing.assert_array_equal(
            block.acc, counts[k, :3] * spec.acc_lsb @ rot.T * ACC_UNITS[spec.acc_unit])
        np.testing.assert_array_equal(
            block.gyro, counts[k, 3:] * spec.gyro_lsb @ rot.T * GYRO_UNITS[spec.gyro_unit])
        missing = np.setdiff1d(np.arange(len(t_src)), k)
        inside = _gap_mask(rec, spec.name, t_src[missing])
        # Rows missing before the first or after the last received are the stream's edges.
        edges = (t_src[missing] < block.t[0]) | (t_src[missing] > block.t[-1])
        assert np.all(inside | edges), f"{spec.name}: samples missing outside the marked gaps"
        lost[spec.name] = len(missing)
    return lost


@pytest.mark.parametrize("profile", [V1, PCM], ids=["ima-adpcm", "pcm16"])
def test_record_from_the_emulator_is_sample_identical(sim: Path, tmp_path: Path,
                                                      profile) -> None:
    out = tmp_path / "rec"
    r = record(profile, out, subject="S01", emulate=Emulation(sim, speed=8.0))
    assert r.link.connects == 1 and r.link.mtu == 247
    assert r.decode.lost == {} and r.decode.malformed == {}
    lost = assert_recording_matches(out, sim, profile)
    assert lost == {"audio": 0, "thoracic": 0, "sacral": 0}
    if profile.audio.encoding == "pcm16":
        src = Session(sim).read_audio()
        got = Session(out).read_audio()
        np.testing.assert_array_equal(got, src[:len(got)])
        assert len(src) - len(got) < profile.audio.frames
    assert Session(out).info.extra["recording"]["complete"] is True
    assert r.result is not None and r.result.samples["audio"] == Session(out).audio.frames


def test_dropped_packets_and_disconnects_become_marked_gaps(sim: Path, tmp_path: Path) -> None:
    out = tmp_path / "rec"
    r = record(V1, out, subject="S01", emulate=Emulation(
        sim, speed=2.0, drop=0.02, disconnect_at=(3.0, 7.5), clock_ppm=80.0))
    # The strap samples on through a lost link: on a loaded machine a reconnection may come
    # after the second cut is due, so at least one drop and one reconnection.
    assert r.link.link_losses >= 1 and r.link.connects >= 2
    assert r.emulator.stats.dropped > 0
    lost = assert_recording_matches(out, sim, V1)
    assert lost["audio"] > 0
    gaps = pd.read_csv(out / "gaps.csv")
    assert {"link lost", "lost packets"} <= set(gaps.reason)
    assert len(r.result.gaps) == len(gaps)


def test_transport_latency_from_send_to_decoded_block(sim: Path, tmp_path: Path) -> None:
    """Real-time pace: from the emulator's notify to the decoded block, p99 well under 150 ms."""
    sent: dict[int, float] = {}
    decoded: dict[int, float] = {}

    def on_send(stream: str, t0: float, n: int, at: float) -> None:
        if stream == "audio":
            sent[round(t0 * V1.audio.sr)] = at

    def on_decoded(block, at: float) -> None:
        if isinstance(block, AudioBlock):
            decoded[block.start_index] = at

    source = LiveSource(V1, emulate=Emulation(sim, on_send=on_send), on_decoded=on_decoded)
    for block in source:
        if block.t0 > 4.0:
            source.stop()
    lat = np.array([decoded[k] - sent[k] for k in sent if k in decoded])
    assert len(lat) > 400
    assert np.percentile(lat, 99) < 0.05


def test_a_wrong_profile_gives_a_clear_error(sim: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="imu_sacral.csv: field t: 200.0 Hz, but profile imu-"):
        record("imu-research-sensor", tmp_path / "x", emulate=Emulation(sim))
    with pytest.raises(BadInput, match="mic.wav: sample rate: 16000 Hz, but profile"):
        check_session(Session(sim), _with_rate(8000))


def test_a_session_the_profile_cannot_play_is_refused_before_anything_is_drawn(
        make_session, tmp_path: Path) -> None:
    eight_khz = make_session("eight_khz", sr=8000)
    out = tmp_path / "rec"
    drawn = io.StringIO()
    with pytest.raises(BadInput, match="eight_khz/mic.wav: sample rate: 8000 Hz, but profile "
                       "backpop-strap-v1 sends 16000 Hz"):
        record(V1, out, emulate=Emulation(eight_khz), console=Console(file=drawn))
    assert drawn.getvalue() == ""
    assert not out.exists()


def test_the_record_command_refuses_such_a_session_in_one_line(make_session,
                                                               tmp_path: Path) -> None:
    eight_khz = make_session("eight_khz", sr=8000)
    out = tmp_path / "rec"
    run = subprocess.run([str(BACKPOP), "record", "--profile", "backpop-strap-v1", "--emulate",
                          str(eight_khz), "-o", str(out)], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr == (f"backpop: error: {eight_khz}/mic.wav: sample rate: 8000 Hz, but "
                          "profile backpop-strap-v1 sends 16000 Hz\n")
    assert not out.exists()


def test_the_live_path_plays_a_shipped_sample(tmp_path: Path) -> None:
    """The README's first screen: a bundled session played by the emulated default strap,
    recorded with the live view, then the recording analysed."""
    sample = SAMPLES / "S02" / "2026-11-17a"
    rec, out = tmp_path / "rec", tmp_path / "out"
    run = subprocess.run([str(BACKPOP), "record", "--profile", "backpop-strap-v1", "--emulate",
                          str(sample), "--subject", "S02", "-o", str(rec), "--speed", "8",
                          "--duration", "12"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "pops by level" in run.stdout
    got = Session(rec)
    assert (got.audio.sr, got.info.mic_names) == (16000, ["T10", "L1", "L4"])
    run = subprocess.run([str(BACKPOP), "analyze", str(rec), "-o", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    first = Session(sample).truth().iloc[0]
    pops = pd.read_csv(out / "pops.csv")
    assert ((abs(pops.t - first.t) < 0.01) & (pops.level == first.level)).any()


def test_emulate_on_a_transport_that_cannot_open_is_a_clear_error(sim: Path) -> None:
    with pytest.raises(BadInput, match="^emulator: field transport: cannot use 'warp-drive:0'"):
        emulate(sim, "backpop-strap-v1", transport="warp-drive:0")


def test_an_imu_only_strap_records_its_imu_with_the_device_clock(tmp_path: Path) -> None:
    src = tmp_path / "sim100"
    simulate_session(src, SimConfig(minutes=0.1, seed=2, imu_rate=100.0, sr=8000))
    profile = load_profile("imu-research-sensor")
    r = record(profile, tmp_path / "rec", subject="S01", emulate=Emulation(src, speed=4.0))
    assert r.decode.packets["sacral"] > 100
    assert r.result.pops == [] and len(r.result.frames) > 20  # motion ran live
    expected = strap_view(src, profile)
    rows = pd.read_csv(tmp_path / "rec" / "imu_sacral.csv")
    n = len(rows)
    spec = profile.imus[0]
    np.testing.assert_array_equal(rows[["ax", "ay", "az"]].to_numpy(),
                                  expected.imu_counts["sacral"][:n, :3] * spec.acc_lsb)
    np.testing.assert_allclose(rows.t, expected.imu_t["sacral"][:n], atol=1 / profile.ts_hz)
    assert not (tmp_path / "rec" / "mic.wav").exists()
    # the folder reads back as an IMU-only session and the pipeline runs its motion stage
    from backpop_sense.pipeline import analyze, default_parameters

    result = analyze(tmp_path / "rec")
    assert result.session.audio is None and result.session.info.mic_names == []
    assert result.session.duration_s == pytest.approx(rows.t.iloc[-1] + 0.01, abs=1e-6)
    assert result.pops == [] and len(result.frames) > 20
    assert result.parameters == default_parameters()  # every stage's, run or not


def _with_rate(sr: int):
    from dataclasses import replace

    return replace(V1, audio=replace(V1.audio, sr=sr))


async def _central_and_strap(sim: Path, **kw):
    radio = VirtualRadio()
    emulator = StrapEmulator(sim, V1, radio.device("strap", STRAP), **kw)
    await emulator.start()
    return emulator, radio.central("central", CENTRAL)


def test_bleak_api_over_bumble_scan_connect_notify_disconnect(sim: Path) -> None:
    async def main() -> None:
        emulator, central = await _central_and_strap(sim, speed=4.0)
        found = await BleakScanner.discover(timeout=0.3, return_adv=True,
                                            backend=BumbleScanner, bumble=central,
                                            service_uuids=[V1.service_uuid])
        ((device, ad),) = found.values()
        assert ad.local_name == "BackPop-0001" and device.address == STRAP
        lost = asyncio.Event()
        async with BleakClient(device, lambda _: lost.set(), backend=BumbleClient,
                               bumble=central, timeout=2.0) as client:
            assert client.mtu_size == V1.mtu
            char = client.services.get_characteristic(V1.audio.characteristic)
            assert "notify" in char.properties
            got: list[bytearray] = []
            enough = asyncio.Event()

            def heard(_, data: bytearray) -> None:
                got.append(data)
                if len(got) > 20:
                    enough.set()
            await client.start_notify(char, heard)
            for spec in V1.imus:
                await client.start_notify(spec.characteristic, lambda _, data: None)
            play = asyncio.ensure_future(emulator.play())
            await asyncio.wait_for(enough.wait(), 30.0)  # a guard against a hang, not a timing
            assert all(len(p) == 234 for p in got)
            seqs = [int.from_bytes(p[:2], "little") for p in got]
            assert seqs == list(range(len(seqs)))
            await emulator.drop_link()
            await asyncio.wait_for(lost.wait(), 30.0)
            assert not client.is_connected
            play.cancel()

    asyncio.run(main())


def test_connecting_to_an_absent_strap_times_out_and_the_next_connect_works(sim: Path) -> None:
    async def main() -> None:
        emulator, central = await _central_and_strap(sim)
        absent = BleakClient("C0:98:E5:49:00:42", backend=BumbleClient, bumble=central,
                             timeout=0.2)
        with pytest.raises(BleakError, match="no connection"):
            await absent.connect()
        async with BleakClient(STRAP, backend=BumbleClient, bumble=central,
                               timeout=2.0) as client:
            assert client.is_connected

    asyncio.run(main())


@pytest.mark.slow
def test_100_disconnects_in_an_emulated_hour(tmp_path: Path) -> None:
    """100 link drops, as in an hour with a bad radio, compressed: one every second of a
    100-second session played at 2x. Every sample outside the marked gaps is there exactly
    once, and the median reconnection (wall time) is under 2 s."""
    src = tmp_path / "sim"
    simulate_session(src, SimConfig(scenario="healthy", minutes=101 / 60, seed=9,
                                    artifacts=False))
    cuts = tuple(0.5 + 1.0 * k for k in range(100))
    r = record(V1, tmp_path / "rec", subject="S01", analyse=False,
               emulate=Emulation(src, speed=2.0, disconnect_at=cuts))
    assert r.emulator.stats.disconnects == 100
    # A drop can land while the recorder is still subscribing: a failed attempt, not a loss.
    assert r.link.link_losses + r.link.failed_attempts >= 100
    assert r.link.link_losses >= 90 and len(r.link.reconnect_s) >= r.link.link_losses - 1
    assert np.median(r.link.reconnect_s) < 2.0
    lost = assert_recording_matches(tmp_path / "rec", src, V1)
    gaps = pd.read_csv(tmp_path / "rec" / "gaps.csv")
    assert (gaps.reason == "link lost").sum() >= 3 * 99
    assert lost["audio"] < 0.5 * Session(src).audio.frames
