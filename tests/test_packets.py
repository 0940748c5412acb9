"""Strap profiles and packets: validation, exact round trips, gaps, drift, and fuzzing."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from backpop_sense.blocks import AudioBlock, Gap, ImuBlock
from backpop_sense.errors import BadInput
from backpop_sense.session import GRAVITY, GYRO_UNITS
from backpop_sense.sources.packets import PacketDecoder, PacketEncoder
from backpop_sense.sources.profiles import PROFILE_DIR, list_profiles, load_profile, parse_profile

V1 = load_profile("backpop-strap-v1")
PCM = load_profile("backpop-strap-v1-pcm")
IMU_ONLY = load_profile("imu-research-sensor")
PROFILES = (V1, PCM, IMU_ONLY)


def _doc(name: str = "backpop-strap-v1") -> dict:
    return tomllib.loads((PROFILE_DIR / f"{name}.toml").read_text())


def test_shipped_profiles_load_and_the_reference_fits_ble_4_2() -> None:
    names = {p.name for p in list_profiles()}
    assert {"backpop-strap-v1", "backpop-strap-v1-pcm", "imu-research-sensor"} <= names
    assert V1.audio is not None and V1.audio.sr == 16000 and len(V1.audio.mics) == 3
    assert [(i.name, i.rate) for i in V1.imus] == [("thoracic", 200.0), ("sacral", 200.0)]
    assert V1.link_bytes_per_s() < 0.4 * 98000
    assert max(V1.packet_bytes().values()) <= V1.mtu - 3 == 244
    assert IMU_ONLY.audio is None and V1.matches_name("BackPop-0042")
    assert not V1.matches_name("IMU-7") and not V1.matches_name(None)


def test_pcm16_audio_does_not_fit_ble_4_2() -> None:
    doc = _doc("backpop-strap-v1-pcm")
    doc["radio"]["budget_bytes_per_s"] = 98000
    with pytest.raises(BadInput, match="radio.budget_bytes_per_s.*bytes/s"):
        parse_profile(doc, Path("pcm.toml"))


@pytest.mark.parametrize(("edit", "match"), [
    (lambda d: d["strap"].pop("service_uuid"), "strap.service_uuid: is missing"),
    (lambda d: d["audio"].update(characteristic="not-a-uuid"), "audio.characteristic.*UUID"),
    (lambda d: d["audio"].update(encoding="mp3"), "audio.encoding.*pcm16"),
    (lambda d: d["audio"].update(frames_per_packet=400), "frames_per_packet.*MTU"),
    (lambda d: d["audio"].update(mics=["L4", "T10"]), "audio.mics.*top to bottom"),
    (lambda d: d["imu"][1].update(axes="x=up,y=up,z=left"), r"imu\[1\].axes"),
    (lambda d: d["imu"][0].update(acc_unit="furlong"), r"imu\[0\].acc_unit.*m/s\^2"),
    (lambda d: d["imu"][0].update(sample_rate_hz="fast"), r"imu\[0\].sample_rate_hz.*int"),
    (lambda d: d["imu"][0].update(mounting="glued"), r"imu\[0\].mounting.*calibrate, exact"),
    (lambda d: d["packet"].update(sequence_bytes=3), "sequence_bytes: must be 1, 2 or 4"),
    (lambda d: d["imu"][1].update(characteristic=d["imu"][0]["characteristic"]),
     "own characteristic"),
    (lambda d: d.pop("packet"), "field packet: is missing"),
])
def test_a_wrong_profile_gives_a_clear_error(edit, match) -> None:
    doc = _doc()
    edit(doc)
    with pytest.raises(BadInput, match=match) as err:
        parse_profile(doc, Path("lab.toml"))
    assert str(err.value).startswith("lab.toml: field ")


def test_unknown_or_unreadable_profile(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such profile.*backpop-strap-v1"):
        load_profile("no-such-strap")
    bad = tmp_path / "bad.toml"
    bad.write_text("[strap\nname=1")
    with pytest.raises(BadInput, match="bad.toml: invalid TOML"):
        load_profile(bad)


def _audio_packets(profile, frames: np.ndarray, enc: PacketEncoder):
    n = profile.audio.frames
    for k in range(len(frames) // n):
        yield enc.audio(frames[k * n:(k + 1) * n], k * n / profile.audio.sr)


def _concat_audio(blocks) -> np.ndarray:
    audio = [b for b in blocks if isinstance(b, AudioBlock)]
    assert [b.start_index for b in audio] == list(np.cumsum([0] + [b.n for b in audio[:-1]]))
    return np.concatenate([b.data for b in audio])


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_audio_round_trips_exactly(data) -> None:
    profile = data.draw(st.sampled_from((V1, PCM)))
    n_packets = data.draw(st.integers(1, 6))
    frames = data.draw(hnp.arrays(np.int16, (n_packets * profile.audio.frames, 3)))
    enc, dec = PacketEncoder(profile, ts0=data.draw(st.integers(0, 2**32 - 1))), \
        PacketDecoder(profile)
    blocks, heard = [], []
    for packet, h in _audio_packets(profile, frames, enc):
        blocks += dec.feed("audio", packet)
        heard.append(h)
    got = _concat_audio(blocks)
    np.testing.assert_array_equal(got * 32768, np.concatenate(heard))
    if profile.audio.encoding == "pcm16":
        np.testing.assert_array_equal(got * 32768, frames)
    assert dec.stats.packets == {"audio": n_packets} and not dec.stats.malformed


def test_adpcm_is_close_to_the_source_for_audio_like_signals() -> None:
    t = np.arange(V1.audio.frames * 50) / 16000
    x = (8000 * np.sin(2 * np.pi * 440 * t)[:, None] * [1, 0.5, 0.25]).astype(np.int16)
    dec = PacketDecoder(V1)
    blocks = [b for p, _ in _audio_packets(V1, x, PacketEncoder(V1)) for b in dec.feed("audio", p)]
    err = _concat_audio(blocks) * 32768 - x
    assert np.sqrt(np.mean(err[200:] ** 2)) < 0.02 * 8000


@settings(max_examples=30, deadline=None)
@given(counts=hnp.arrays(np.int16, (10, 6)), profile=st.sampled_from((V1, PCM)))
def test_imu_round_trips_exactly(counts: np.ndarray, profile) -> None:
    enc, dec = PacketEncoder(profile), PacketDecoder(profile)
    frames = np.zeros((profile.audio.frames, 3), dtype=np.int16)
    dec.feed("audio", enc.audio(frames, 0.0)[0])
    (block,) = dec.feed("sacral", enc.imu("sacral", counts, 0.0))
    spec = profile.imus[1]
    np.testing.assert_array_equal(block.acc, counts[:, :3] * spec.acc_lsb * GRAVITY)
    np.testing.assert_array_equal(block.gyro, counts[:, 3:] * spec.gyro_lsb * GYRO_UNITS["deg/s"])
    np.testing.assert_allclose(block.t, np.arange(10) / 200, atol=1 / profile.ts_hz)


def test_imu_only_profile_uses_the_device_clock_and_its_axes() -> None:
    enc, dec = PacketEncoder(IMU_ONLY, ts0=123456), PacketDecoder(IMU_ONLY)
    counts = np.zeros((5, 6), dtype=np.int16)
    counts[:, 0] = 4096  # 1 g along the sensor x axis, which points up
    blocks = [b for k in range(3) for b in dec.feed("sacral", enc.imu("sacral", counts, k / 20))]
    t = np.concatenate([b.t for b in blocks])
    np.testing.assert_allclose(t, np.arange(15) / 100, atol=1 / IMU_ONLY.ts_hz)
    np.testing.assert_allclose(blocks[0].acc[0], [0, 0, GRAVITY])


def _stream(profile, n_packets: int, lose: set[int], *, ppm: float = 0.0, ts0: int = 7):
    """Packets of every stream in send order; the sequence numbers in ``lose`` are not sent."""
    enc = PacketEncoder(profile, ts0=ts0, clock_ppm=ppm)
    rng = np.random.default_rng(1)
    sr, n = profile.audio.sr, profile.audio.frames
    imu_n = profile.imus[0].samples
    sent: list[tuple[float, str, bytes]] = []
    for k in range(n_packets):
        frames = rng.integers(-3000, 3000, (n, 3)).astype(np.int16)
        packet, _ = enc.audio(frames, k * n / sr)
        if k not in lose:
            sent.append(((k + 1) * n / sr, "audio", packet))
    for k in range(int(n_packets * n / sr * 200 / imu_n)):
        for spec in profile.imus:
            counts = rng.integers(-2000, 2000, (imu_n, 6)).astype(np.int16)
            packet = enc.imu(spec.name, counts, k * imu_n / 200)
            if k not in lose:
                sent.append(((k + 1) * imu_n / 200, spec.name, packet))
    sent.sort(key=lambda s: s[0])
    return [(s, p) for _, s, p in sent]


def test_sequence_gaps_are_marked_with_exact_sample_counts() -> None:
    dec = PacketDecoder(V1)
    blocks = [b for s, p in _stream(V1, 200, {5, 6, 30}) for b in dec.feed(s, p)]
    gaps = [b for b in blocks if isinstance(b, Gap)]
    audio_gaps = [g for g in gaps if g.stream == "audio"]
    n = V1.audio.frames
    assert [(g.t_start, g.t_end) for g in audio_gaps] == [
        ((5 * n - 1) / 16000, 7 * n / 16000), ((30 * n - 1) / 16000, 31 * n / 16000)]
    assert dec.stats.lost == {"audio": 3, "thoracic": 3, "sacral": 3}
    audio = _concat_audio(blocks)
    assert len(audio) == 200 * n and not audio[5 * n:7 * n].any()
    imu_gaps = [g for g in gaps if g.stream == "thoracic"]
    assert [round(g.t_start, 3) for g in imu_gaps] == [0.245, 1.495]
    assert [round(g.t_end, 3) for g in imu_gaps] == [0.35, 1.55]


def test_a_long_outage_that_wraps_the_counter_is_placed_by_the_timestamp() -> None:
    enc, dec = PacketEncoder(V1, ts0=2**32 - 1000), PacketDecoder(V1)
    frames = np.ones((V1.audio.frames, 3), dtype=np.int16)
    dec.feed("audio", enc.audio(frames, 0.0)[0])
    for _ in range(70000):  # more than one wrap of the 16-bit counter
        enc.skip("audio")
    t = 70001 * V1.audio.frames / 16000
    blocks = dec.feed("audio", enc.audio(frames, t)[0])
    assert blocks[-1].start_index == 70001 * V1.audio.frames
    assert isinstance(blocks[0], Gap) and blocks[0].t_end == pytest.approx(t)
    assert dec.stats.lost == {"audio": 70000}


def test_a_timestamp_jump_the_counter_does_not_bear_out_is_skipped() -> None:
    """The next packet by its counter, stamped 10 hours later: a corrupt header, skipped and
    counted, not 10 hours of zeros; the stream goes on from the packet after it, with the
    skipped packet's samples a gap."""
    enc, dec = PacketEncoder(V1), PacketDecoder(V1)
    frames = np.ones((V1.audio.frames, 3), dtype=np.int16)
    step = V1.audio.frames / V1.audio.sr
    dec.feed("audio", enc.audio(frames, 0.0)[0])
    wild = bytearray(enc.audio(frames, step)[0])
    wild[V1.seq_bytes:V1.header_bytes] = int(10 * 3600 * V1.ts_hz).to_bytes(V1.ts_bytes,
                                                                             "little")
    assert dec.feed("audio", bytes(wild)) == []
    assert dec.stats.malformed == {"audio": 1} and dec.stats.lost == {}
    gap, zeros, block = dec.feed("audio", enc.audio(frames, 2 * step)[0])
    assert isinstance(gap, Gap) and gap.t_end == pytest.approx(2 * step, abs=1e-6)
    assert zeros.start_index == V1.audio.frames and zeros.n == V1.audio.frames
    assert isinstance(block, AudioBlock) and block.start_index == 2 * V1.audio.frames
    assert dec.stats.lost == {"audio": 1}


def test_device_clock_drift_is_corrected() -> None:
    dec = PacketDecoder(V1)
    blocks = [b for s, p in _stream(V1, 2000, set(), ppm=300.0) for b in dec.feed(s, p)]
    t = np.concatenate([b.t for b in blocks if isinstance(b, ImuBlock) and b.imu == "sacral"])
    # Uncorrected, 300 ppm over 18 s would be 5.4 ms off; the fit keeps it within 2 ticks.
    assert np.abs(t - np.arange(len(t)) / 200).max() < 2 / V1.ts_hz
    assert dec.clock.slope == pytest.approx(1 / (V1.ts_hz * 1.0003), rel=1e-6)


def test_duplicates_and_wrong_sizes_are_counted_and_skipped() -> None:
    enc, dec = PacketEncoder(V1), PacketDecoder(V1)
    frames = np.zeros((V1.audio.frames, 3), dtype=np.int16)
    first, _ = enc.audio(frames, 0.0)
    assert len(dec.feed("audio", first)) == 1
    assert dec.feed("audio", first) == []
    assert dec.feed("audio", first[:-1]) == []
    assert dec.feed("gyro9", first) == []
    assert dec.feed_characteristic("00002a37-0000-1000-8000-00805f9b34fb", first) == []
    assert dec.stats.duplicates == {"audio": 1}
    assert dec.stats.malformed["audio"] == 1 and dec.stats.malformed["unknown"] == 2


streams = st.sampled_from(["audio", "thoracic", "sacral", "nope"])


def _check_stream(profile, dec: PacketDecoder, fed: list[tuple[str, bytes]],
                  blocks: list) -> None:
    """What any input must give: every packet accounted for (decoded, duplicate, malformed,
    or waiting for the first reference packet; a packet decoded in part is also counted
    malformed), and blocks that a pipeline can take: finite values, each stream's samples in
    order and never repeated, gaps forward in time."""
    stats = dec.stats
    whole = (sum(stats.packets.values()) + sum(stats.duplicates.values())
             + dec.waiting)
    assert whole <= len(fed) <= whole + sum(stats.malformed.values())
    sizes = profile.packet_bytes()
    assert stats.malformed.get("unknown", 0) == sum(s not in sizes for s, _ in fed)
    last_index: dict[str, int] = {}
    last_t: dict[str, float] = {}
    for block in blocks:
        if isinstance(block, Gap):
            assert block.t_end >= block.t_start
            continue
        name = block.imu if isinstance(block, ImuBlock) else "audio"
        assert block.start_index >= last_index.get(name, 0)
        last_index[name] = block.start_index + block.n
        if isinstance(block, ImuBlock):
            assert np.isfinite(block.acc).all() and np.isfinite(block.gyro).all()
            assert np.all(np.diff(block.t) > 0) and block.t[0] > last_t.get(name, -np.inf)
            last_t[name] = float(block.t[-1])
        else:
            # A lost stretch's zeros are one row broadcast: look at that row.
            data = block.data if block.data.strides[0] else block.data[:1]
            assert block.start_index >= 0 and np.isfinite(data).all()
            assert np.abs(data).max(initial=0.0) <= 1.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profile=st.sampled_from(PROFILES),
       packets=st.lists(st.tuples(streams, st.binary(max_size=300)), max_size=30))
def test_random_bytes_are_skipped_and_counted(profile, packets) -> None:
    dec = PacketDecoder(profile)
    blocks = [b for stream, packet in packets for b in dec.feed(stream, packet)]
    _check_stream(profile, dec, packets, blocks)
    sizes = profile.packet_bytes()
    wrong = sum(s in sizes and len(p) != sizes[s] for s, p in packets)
    assert sum(v for k, v in dec.stats.malformed.items() if k != "unknown") >= wrong


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profile=st.sampled_from(PROFILES), data=st.data())
def test_random_packets_of_the_right_size_give_well_formed_blocks(profile, data) -> None:
    """Packets of the right size with random headers and payloads (sequence jumps, clocks
    running backwards, ADPCM states out of range) decode to blocks a pipeline can take."""
    dec = PacketDecoder(profile)
    sizes = profile.packet_bytes()
    fed, blocks = [], []
    for _ in range(data.draw(st.integers(1, 20))):
        stream = data.draw(st.sampled_from(sorted(sizes)))
        packet = data.draw(st.binary(min_size=sizes[stream], max_size=sizes[stream]))
        fed.append((stream, packet))
        blocks += dec.feed(stream, packet)
    _check_stream(profile, dec, fed, blocks)
