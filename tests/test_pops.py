"""Pop detection, artifact gate, localisation and scoring, on real session files."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backpop_sense.blocks import AudioBlock
from backpop_sense.evaluate import score_pops
from backpop_sense.levels import level_distance_m, level_index
from backpop_sense.pipeline import PipelineConfig, analyze, open_replay
from backpop_sense.pops.detector import DetectorConfig, PopDetector
from backpop_sense.pops.locate import locate, pooled_level
from backpop_sense.session import ImuInfo, MicInfo, Session, SessionInfo, SessionWriter
from backpop_sense.simulate import (
    GRAVITY,
    SimConfig,
    footstep_events,
    heartbeat_events,
    knock_events,
    pop_at_mics,
    simulate_session,
    speech_events,
)
from backpop_sense.sounds import Track

BACKPOP = Path(sys.executable).parent / "backpop"
MICS = ("T10", "L1", "L4")
SR = 16000
IMU_RATE = 200.0


def _floor(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A plausible contact-mic floor: white noise plus low-passed body noise."""
    from scipy import signal

    n = int(seconds * SR)
    low = signal.sosfilt(signal.butter(1, 300, fs=SR, output="sos"), rng.normal(0, 0.02, (n, 3)),
                         axis=0)
    return rng.normal(0, 0.0015, (n, 3)) + low


def _write(path: Path, audio: np.ndarray, *, shocks: list[float] = (),
           truth: pd.DataFrame | None = None) -> Path:
    """A session of ``audio`` with two still IMUs (plus heel-strike jolts at ``shocks``)."""
    info = SessionInfo("T01", "s1", pd.Timestamp("2026-11-20T09:00Z").to_pydatetime(),
                       tuple(MicInfo(m) for m in MICS),
                       (ImuInfo("thoracic", "T12"), ImuInfo("sacral", "S1")))
    t = np.arange(int(len(audio) / SR * IMU_RATE)) / IMU_RATE
    acc = np.tile([0.0, 0.0, GRAVITY], (len(t), 1))
    for ts in shocks:
        k = np.arange(30)
        i = int(ts * IMU_RATE)
        jolt = 8.0 * np.exp(-k / IMU_RATE / 0.02) * np.sin(2 * np.pi * 15 * k / IMU_RATE)
        acc[i: i + 30, 2] += jolt[: len(acc[i: i + 30])]
    with SessionWriter(path, info, sr=SR) as w:
        w.write_audio(np.clip(audio, -0.99, 0.99))
        for name in ("thoracic", "sacral"):
            w.write_imu(name, t, acc, np.zeros_like(acc))
        if truth is not None:
            w.write_table("truth.csv", truth)
    return path


def _pop_train(rng: np.random.Generator, seconds: float, times: list[float], levels: list[str],
               snr_db: float) -> np.ndarray:
    audio = _floor(seconds, rng)
    for t, level in zip(times, levels, strict=True):
        kind = ["cavitation", "snap", "readjustment"][int(rng.integers(3))]
        shape, nearest = pop_at_mics(kind, level, MICS, SR, rng)
        i = int(round(t * SR))
        background = np.mean(audio[i - SR // 2: i + SR // 2, nearest] ** 2)
        audio[i: i + len(shape)] += shape * np.sqrt(background * 10 ** (snr_db / 10))
    return audio


@pytest.fixture(scope="module")
def pop_train(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float], list[str]]:
    rng = np.random.default_rng(7)
    times = [2.0 + 1.37 * k for k in range(12)]
    levels = [MICS[0], "T11", "T12", MICS[1], "L2", "L3", MICS[2]] * 2
    levels = levels[:12]
    audio = _pop_train(rng, 20.0, times, levels, snr_db=15.0)
    truth = pd.DataFrame({"t": times, "level": levels, "kind": "cavitation"})
    path = _write(tmp_path_factory.mktemp("train") / "s", audio, truth=truth)
    return path, times, levels


def test_a_known_pop_train_is_found_at_its_times_and_levels(pop_train) -> None:
    path, times, levels = pop_train
    result = analyze(path)
    found = sorted(result.pops, key=lambda p: p.t)
    assert len(found) == len(times)
    for pop, t in zip(found, times, strict=True):
        assert abs(pop.t - t) <= 0.002
    assert sum(p.level == lv for p, lv in zip(found, levels, strict=True)) >= len(levels) - 1
    snr = np.array([p.pop.snr_db for p in found])
    assert np.median(snr) == pytest.approx(15.0, abs=1.0)
    assert np.all(np.abs(snr - 15.0) <= 4.0)


@pytest.fixture(scope="module")
def blocks_session(tmp_path_factory) -> Path:
    """A minute of snaps among artifacts at 10 dB: pops, rejections of every kind."""
    path = tmp_path_factory.mktemp("blocks") / "s"
    simulate_session(path, SimConfig("snapping", minutes=1.0, seed=31, snr_db=10.0))
    return path


def test_results_do_not_depend_on_the_processing_chunk(blocks_session: Path) -> None:
    """Any chunk gives the same pops and rejections, down to chunks shorter than a frame's
    hop (a first chunk of fewer frames than the onset strength's lag once shifted every
    frame by one)."""
    from backpop_sense.pops.detector import LIVE_CHUNK, DetectorConfig

    path = blocks_session
    found = {}
    hop = round(DetectorConfig().hop_s * SR)
    chunks = (hop - 7, 300, LIVE_CHUNK, 3000, DetectorConfig().chunk)
    for chunk in chunks:
        r = analyze(path, PipelineConfig(detector=DetectorConfig(chunk=chunk)), block_size=777)
        found[chunk] = ([(round(p.t * SR), p.level, p.kind, round(p.pop.snr_db, 6))
                         for p in r.pops], [(round(x.t * SR), x.reason) for x in r.rejected])
    assert len(found[LIVE_CHUNK][0]) > 3
    for chunk in chunks:
        assert found[chunk] == found[DetectorConfig().chunk], chunk


@pytest.mark.parametrize("block_size", [256, 1000, 65536])
def test_results_do_not_depend_on_block_size(blocks_session: Path, block_size: int) -> None:
    path = blocks_session
    reference = analyze(path, block_size=4096)
    other = analyze(path, block_size=block_size)
    assert len(reference.pops) > 3
    assert [(round(p.t * SR), p.level, p.kind, p.context) for p in other.pops] == \
        [(round(p.t * SR), p.level, p.kind, p.context) for p in reference.pops]
    assert [(round(r.t * SR), r.reason) for r in other.rejected] == \
        [(round(r.t * SR), r.reason) for r in reference.rejected]


def _louder(events: list, gain: float) -> list:
    """The same events, ``gain`` times louder (to make each rule, not the noise rule, decide)."""
    return [replace(e, make=(lambda f: (lambda: gain * f()))(e.make)) for e in events]


def _artifact_session(tmp_path: Path, kind: str) -> Path:
    rng = np.random.default_rng(11)
    seconds = 30.0
    audio = _floor(seconds, rng)
    shocks: list[float] = []
    if kind == "knock":
        events = knock_events(seconds, 12.0, MICS, SR, rng)
    elif kind == "footstep":
        shocks = list(np.arange(2.0, seconds - 2, 0.55))
        events = footstep_events(shocks, MICS, SR, rng)
    elif kind == "heartbeat":
        events = _louder(heartbeat_events(seconds, MICS, SR, rng), 6.0)
    elif kind == "speech":
        events = _louder(speech_events(seconds, 8.0, MICS, SR, rng), 4.0)
    else:
        from backpop_sense.simulate import Move, Script, rub_events

        moves = [Move("bend", "flexion", t, t + 1, t + 1.5, t + 2.5, 50.0)
                 for t in np.arange(1.0, seconds - 3, 1.2)]
        script = Script(*(np.zeros(2) for _ in range(7)), np.zeros((2, 3)), np.zeros(2, bool),
                        [], moves)
        events = _louder(rub_events(script, MICS, SR, rng), 3.0)
    audio += Track(events, 3).render(0, len(audio))
    return _write(tmp_path / kind, audio, shocks=shocks)


# The learned judge rejects; the reason is the first hand rule that also rejects. Sounds born
# away from the spine (heart, steps, voice) or spread by the fabric (rub) reach every mic at
# about one level, which is the knock rule's evidence, so it may name them first; a heart
# sound rings at a period of its own, which is the voice rule's evidence.
@pytest.mark.parametrize("kind,reasons", [
    pytest.param("knock", {"knock", "noise", "unlike a pop"}, marks=pytest.mark.xfail(
        strict=True, reason="issue 21, open: the learned gate takes 1 knock for a pop")),
    ("footstep", {"impact", "knock", "noise", "no burst", "series", "unlike a pop"}),
    ("heartbeat", {"series", "knock", "noise", "no burst", "voice", "unlike a pop"}),
    ("speech", {"voice", "rub", "no burst", "noise", "knock", "unlike a pop"}),
    ("rub", {"rub", "knock", "series", "no burst", "noise", "unlike a pop"}),
])
def test_each_artifact_type_is_not_a_pop(tmp_path: Path, kind: str, reasons: set[str]) -> None:
    result = analyze(_artifact_session(tmp_path, kind))
    assert result.pops == []
    if kind in ("knock", "speech", "rub"):
        assert result.rejected, f"the {kind}s were never even onsets"
    assert {r.reason for r in result.rejected} <= reasons


def test_a_pop_soon_after_a_knock_is_still_found(tmp_path: Path) -> None:
    """A knock 30 or 150 ms before a pop neither hides it nor makes it look like noise."""
    rng = np.random.default_rng(5)
    seconds = 12.0
    audio = _floor(seconds, rng)
    knock = knock_events(seconds, 30.0, MICS, SR, rng)[0]
    knocks = [2.0, 5.0, 8.0]
    audio += Track([replace(knock, start=int(t * SR)) for t in knocks], 3).render(0, len(audio))
    times = [2.15, 5.03, 8.15]
    for t, level in zip(times, ("T12", "L2", "L1"), strict=True):
        shape, nearest = pop_at_mics("cavitation", level, MICS, SR, rng)
        i = int(round(t * SR))
        background = np.mean(audio[i - SR // 2: i + SR // 2, nearest] ** 2)
        audio[i: i + len(shape)] += shape * np.sqrt(background * 10 ** (10 / 10))
    result = analyze(_write(tmp_path / "s", audio))
    found = sorted(p.t for p in result.pops)
    assert len(found) == len(times)
    assert np.all(np.abs(np.array(found) - times) <= 0.002)
    assert [r.reason for r in result.rejected if any(abs(r.t - k) < 0.01 for k in knocks)] \
        == ["knock"] * 3


@pytest.mark.xfail(strict=True, reason=(
    "issue 21, open: the learned gate finds 24 and 25 of the 29 (seeds 8 and 9)"))
@pytest.mark.parametrize("seed", [8, 9])
def test_joint_readjustments_are_not_taken_for_rub(tmp_path: Path, seed: int) -> None:
    """A joint readjustment clicks twice within about 12 ms (background.md), and at a mic
    the second click may be the louder: the rise is the first click's, not the gap before
    the second, so the rub rule (a slow rise) does not take it. 29 readjustments at 10 dB,
    all found (measuring the rise to the louder click lost one to 'rub' on each seed)."""
    rng = np.random.default_rng(seed)
    times = [1.0 + 1.3 * k for k in range(29)]
    levels = [MICS[0], "T11", "T12", MICS[1], "L2", "L3", MICS[2]]
    audio = _floor(40.0, rng)
    for n, t in enumerate(times):
        shape, nearest = pop_at_mics("readjustment", levels[n % len(levels)], MICS, SR, rng)
        i = int(round(t * SR))
        background = np.mean(audio[i - SR // 2: i + SR // 2, nearest] ** 2)
        audio[i: i + len(shape)] += shape * np.sqrt(background * 10 ** (10 / 10))
    result = analyze(_write(tmp_path / "s", audio))
    hits = sum(any(abs(p.t - t) <= 0.002 for p in result.pops) for t in times)
    assert hits == len(times)
    assert not [r for r in result.rejected if r.reason == "rub"]


@pytest.mark.xfail(strict=True, reason=(
    "issue 21, open: the learned gate finds 5 of these 8 pops under loud voice (6 asked); "
    "two of the misses are judged a series: the pops come every 0.9 s from one level"))
def test_a_pop_while_the_subject_talks_is_a_pop(tmp_path: Path) -> None:
    """Voice heard after a pop does not make the pop voice: a burst that dies away by 10 dB
    is not the onset of speech, which carries on. (The speech alone is still no pop: see
    test_each_artifact_type_is_not_a_pop. Before this rule, 3 of these 8 pops were taken
    for voice and 4 found.)"""
    rng = np.random.default_rng(9)
    seconds = 14.0
    audio = _floor(seconds, rng)
    voice = _louder(speech_events(seconds, 30.0, MICS, SR, rng), 4.0)
    audio += Track(voice, 3).render(0, len(audio))
    spans = [(e.start / SR + 0.3, (e.start + e.length) / SR - 0.3) for e in voice]
    times = [t for t in np.arange(1.0, seconds - 1.0, 0.9) if any(a < t < b for a, b in spans)]
    assert len(times) >= 6
    for t in times:
        click, nearest = pop_at_mics("cavitation", "L1", MICS, SR, rng)
        i = int(round(t * SR))
        background = np.mean(audio[i - SR // 2: i + SR // 2, nearest] ** 2)
        audio[i: i + len(click)] += click * np.sqrt(background * 10 ** (10 / 10))
    result = analyze(_write(tmp_path / "s", audio))
    hits = sum(any(abs(p.t - t) <= 0.002 for p in result.pops) for t in times)
    as_voice = [r.t for r in result.rejected
                if r.reason == "voice" and any(abs(r.t - t) <= 0.002 for t in times)]
    assert as_voice == []
    # Under voice this loud a pop may still be lost otherwise (taken for a knock, as the
    # voice is about as loud at every mic): most are found.
    assert hits >= 0.75 * len(times)


@pytest.mark.xfail(strict=True, reason=(
    "issue 21, open: the learned gate finds 23 of 29 snaps at 3 "
    "dB (90 % asked)"))
def test_faint_snaps_are_found(tmp_path: Path) -> None:
    """Tendon snaps (250-1200 Hz) at 3 dB in the simulator's floor: at least 90 % found to 2 ms.

    The 200-1500 Hz onset strength is what finds them: on this session the 400-7000 Hz bands
    alone found 24 of its 29 pops (seeds 41 and 43 also pass, by a smaller margin).
    """
    from backpop_sense.pops.detector import DetectorConfig

    path = tmp_path / "s"
    simulate_session(path, SimConfig("snapping", minutes=3.0, seed=42, snr_db=3.0,
                                     artifacts=False))
    truth = pd.read_csv(path / "truth.csv")
    assert (truth.kind == "snap").sum() >= 20
    found = {}
    for name, cfg in (("default", DetectorConfig()), ("no snap band",
                                                       DetectorConfig(low_fmin_hz=0.0))):
        pops = analyze(path, PipelineConfig(detector=cfg), block_size=4096).pops
        hits = sum(any(abs(p.t - t) <= 0.002 for p in pops) for t in truth.t)
        found[name] = (hits, len(pops) - hits)
    hits, false = found["default"]
    assert hits >= 0.9 * len(truth) and false == 0
    assert found["no snap band"][0] < 0.9 * len(truth)


def test_locate_places_a_pop_at_every_level_between_the_mics() -> None:
    rng = np.random.default_rng(3)
    for level in ("T10", "T11", "T12", "L1", "L2", "L3", "L4"):
        d = np.array([level_distance_m(level, m) + 0.015 for m in MICS])
        energy = np.exp(-2 * d / 0.08) * rng.uniform(0.8, 1.25, 3)  # +-1 dB of mic noise
        assert locate(energy, MICS).level == level


def _low_pop_shares(level_periods: float) -> tuple[np.ndarray, str]:
    """A 150 Hz tonal pop at T11 (5 dB per level, its phase lagging a twentieth of a period
    per level, as tissue's low-pass turns a low sound) over faint noise, through the
    detector: the level shares of its one candidate over the true ones (dB per mic), and
    the level they place it at."""
    sr, f0 = 16000, 150.0
    levels = np.array([abs(level_index("T11") - level_index(m)) for m in MICS])
    gain_db = -5.0 * levels
    rng = np.random.default_rng(5)
    audio = 1e-4 * rng.standard_normal((3 * sr, 3))
    t = np.arange(int(0.05 * sr)) / sr
    for k in range(3):
        ring = np.exp(-t / 0.008) * np.sin(2 * np.pi * (f0 * t - levels[k] / 20))
        audio[sr: sr + len(t), k] += 0.05 * 10 ** (gain_db[k] / 20) * ring
    detector = PopDetector(sr, 3, replace(DetectorConfig(), level_periods=level_periods))
    found = detector.feed(AudioBlock(0, sr, audio.astype(np.float32))) + detector.finish()
    (pop,) = [c for c in found if abs(c.t - 1.0) < 0.01]
    share = 10 * np.log10(pop.level_energy / pop.level_energy.max())
    return share - (gain_db - gain_db.max()), locate(pop.level_energy, MICS).level


def test_a_low_pops_level_shares_span_its_periods() -> None:
    """Over two periods of its pitch, a low pop's power at each mic is what reached it (within
    1.5 dB), whatever the phase it arrived with; over the 3 ms the gate's shares take, less
    than half a period, it is not."""
    error, level = _low_pop_shares(DetectorConfig().level_periods)
    assert np.abs(error).max() < 1.5 and level == "T11"
    short, _ = _low_pop_shares(0.0)
    assert np.abs(short).max() > 3.0


def test_a_source_heard_five_times_is_placed_better_from_all_five() -> None:
    rng = np.random.default_rng(4)
    d = np.array([level_distance_m("T11", m) + 0.015 for m in MICS])
    alone = pooled = 0
    for _ in range(40):
        # 1.5 dB (sd) of noise on each mic's energy: alone, over a tenth misplaced
        fits = [locate(np.exp(-2 * d / 0.08) * 10 ** rng.normal(0, 0.15, 3), MICS)
                for _ in range(5)]
        assert all(min(f.costs, key=lambda c: c[1])[0] == f.level for f in fits)
        levels = [lv for lv, _ in fits[0].costs]
        costs = np.array([[c for _, c in f.costs] for f in fits])
        alone += sum(f.level == "T11" for f in fits)
        pooled += sum(pooled_level(levels, costs[k], np.delete(costs, k, axis=0)) == "T11"
                      for k in range(5))
    assert alone < 0.9 * 200 and pooled > alone and pooled >= 0.95 * 200
    with pytest.raises(ValueError, match="costs of 7 levels"):
        pooled_level(levels, costs[0], costs[1:, :2])


def test_scores_of_a_tiny_case_match_the_hand_count() -> None:
    truth_t, truth_level = [1.0, 2.0, 3.0, 4.0], ["L1", "L2", "L3", "L4"]
    est_t, est_level = [1.004, 2.03, 3.2, 4.0], ["L1", "L1", "L3", "L4"]
    s = score_pops(truth_t, truth_level, est_t, est_level, 3600.0)
    # +-10 ms: 1.004 and 4.0 match; +-50 ms adds 2.03; 3.2 matches nothing.
    assert (s["10ms"]["tp"], s["10ms"]["fp"], s["10ms"]["fn"]) == (2, 2, 2)
    assert (s["50ms"]["tp"], s["50ms"]["fp"], s["50ms"]["fn"]) == (3, 1, 1)
    assert s["50ms"]["f1"] == pytest.approx(0.75)
    assert s["fp_per_hour"] == pytest.approx(1.0)
    assert s["level_accuracy"] == pytest.approx(2 / 3)  # 2.03 was placed at L1, not L2


def test_scores_beyond_mir_evals_30000_second_limit() -> None:
    truth = [10.0, 29999.0, 45000.0, 80000.0]
    s = score_pops(truth, ["L1"] * 4, [t + 0.005 for t in truth], ["L1"] * 4, 90000.0)
    assert s["10ms"]["tp"] == 4 and s["10ms"]["f1"] == 1.0


def test_evaluate_command_reports_the_same_numbers(pop_train, tmp_path: Path) -> None:
    path, times, levels = pop_train
    truth = pd.DataFrame({"t": times[:-1] + [19.5], "level": levels, "kind": "snap"})
    truth.loc[0, "level"] = "L4"
    session = tmp_path / "copy"
    session.mkdir()
    for f in path.iterdir():
        (session / f.name).write_bytes(f.read_bytes())
    truth.to_csv(session / "truth.csv", index=False)
    run = subprocess.run([str(BACKPOP), "evaluate", str(session), "--json"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    [row] = json.loads(run.stdout)
    # 11 of 12 truth times are real pops, the 12th (19.5 s) is not; the pop at the last real
    # time is extra; the first truth level is wrong on purpose.
    assert (row["10ms"]["tp"], row["10ms"]["fp"], row["10ms"]["fn"]) == (11, 1, 1)
    assert row["10ms"]["f1"] == pytest.approx(11 / 12)
    found = sorted(analyze(session).pops, key=lambda p: p.t)[:11]
    right = sum(p.level == lv for p, lv in zip(found, truth["level"][:11], strict=True))
    assert row["level_accuracy"] == pytest.approx(right / 11)
    assert right <= 10  # the first truth level was made wrong


def test_analyze_writes_the_contract_columns(pop_train, tmp_path: Path) -> None:
    path, times, _ = pop_train
    run = subprocess.run([str(BACKPOP), "analyze", str(path), "-o", str(tmp_path / "out")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    pops = pd.read_csv(tmp_path / "out" / "pops.csv")
    assert list(pops.columns[:12]) == [
        "t", "level", "kind", "context", "amplitude_db", "snr_db", "centroid_hz",
        "duration_ms", "flexion_deg", "lateral_deg", "twist_deg", "twist_rate_dps"]
    assert len(pops) == len(times)
    # a still subject: no snap or readjustment, and repeats at a level within 20 min are
    # not cavitation
    assert set(pops["kind"]) <= {"cavitation", "unknown"}
    assert pops["kind_rule"].notna().all()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["pops"] == len(times)
    assert summary["parameters"]["detector"]["threshold"] > 0


@pytest.mark.parametrize("compiled", [True, False], ids=["scipy's loop", "sosfilt"])
def test_the_detectors_zero_phase_filter_matches_scipy(compiled: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The zero-phase filter with cached initial conditions gives scipy's numbers exactly,
    through scipy's compiled loop or, where a scipy lacks it, through sosfilt (it exists
    only to skip per-call overhead): one channel or three, float32 or float64."""
    from scipy import signal

    from backpop_sense.pops import detector

    if not compiled:
        monkeypatch.setattr(detector, "_sosfilt", None)
    assert (detector._sosfilt is not None) == compiled
    rng = np.random.default_rng(2)
    for n, corner in ((16, 300.0), (900, 300.0), (10080, 1234.0)):
        sos = signal.butter(4, corner, btype="highpass", fs=SR, output="sos")
        band = signal.butter(2, [corner, 2 * corner], btype="bandpass", fs=SR, output="sos")
        for x in (rng.normal(size=(n, 3)), rng.normal(size=n),
                  rng.normal(size=(n, 3)).astype(np.float32)):
            for s in (sos, band):
                assert np.array_equal(detector._filtfilt(s, signal.sosfilt_zi(s), x),
                                      signal.sosfiltfilt(s, x, axis=0))


def test_the_detectors_mean_square_matches_numpy() -> None:
    """The mean power the detector takes of its slices is np.mean's of the squares, to the
    bit (it exists only to skip np.mean's dispatch), whole or along an axis, float32 or
    float64."""
    from backpop_sense.pops.detector import _mean_square

    rng = np.random.default_rng(3)
    for x in (rng.normal(size=(161, 3)), rng.normal(size=(50, 160, 3)).astype(np.float32),
              rng.normal(size=7)):
        assert np.array_equal(_mean_square(x), np.mean(x**2))
        for axis in range(x.ndim):
            assert np.array_equal(_mean_square(x, axis), np.mean(x**2, axis=axis))
    # An empty slice (an onset in a session's last 15 ms has no body) is NaN, as np.mean
    # makes it, without a warning in the user's output.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(_mean_square(np.zeros(0)))
        assert np.isnan(_mean_square(np.zeros((0, 3)), 0)).all()
        assert _mean_square(np.zeros((0, 3)), 0).shape == (3,)


def test_the_locators_high_pass_is_scipys_butterworth() -> None:
    """The high-pass designed per candidate is scipy's fourth-order Butterworth and its step
    initial conditions, to rounding, at every corner the locator can ask for; filtered
    through it, noise comes out as through scipy's (relative 1e-12)."""
    from scipy import signal

    from backpop_sense.pops.detector import _filtfilt, _highpass

    for sr in (4000, 8000, 16000, 44100):
        for corner in np.geomspace(40.0, 0.4 * sr, 60):
            sos = signal.butter(4, corner, btype="highpass", fs=sr, output="sos")
            ours, zi = _highpass(corner, sr)
            np.testing.assert_allclose(ours, sos, rtol=0, atol=1e-13)
            np.testing.assert_allclose(zi, signal.sosfilt_zi(sos), rtol=0, atol=1e-10)
    x = np.random.default_rng(7).normal(size=(10080, 3))
    for corner in (60.0, 1234.0, 6000.0):
        sos = signal.butter(4, corner, btype="highpass", fs=SR, output="sos")
        np.testing.assert_allclose(_filtfilt(*_highpass(corner, SR), x),
                                   signal.sosfiltfilt(sos, x, axis=0), rtol=0, atol=1e-12)


def test_the_detectors_band_maximum_matches_scipy() -> None:
    """SuperFlux's maximum over neighbouring bands gives scipy's numbers exactly, edges
    included (it exists only to skip per-call overhead on small arrays)."""
    from scipy import ndimage

    from backpop_sense.pops.detector import _band_max

    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 50, 24)).astype(np.float32)
    for size in (1, 3, 5, 7):
        assert np.array_equal(_band_max(x, size), ndimage.maximum_filter1d(x, size, axis=-1))
    with pytest.raises(ValueError, match="odd"):
        _band_max(x, 4)


def test_the_detectors_percentiles_match_numpys() -> None:
    """The one-partition percentiles give np.percentile's numbers exactly: every count the
    detector meets (one frame to a background's 50), one mic or three, ties, both ends."""
    from backpop_sense.pops.detector import _percentiles

    rng = np.random.default_rng(6)
    for n in range(1, 80):
        for shape in ((n,), (n, 3)):
            x = rng.lognormal(size=shape)
            for qs in ((50.0,), (50.0, 10.0), (0.0, 100.0), (95.0,)):
                assert np.array_equal(_percentiles(x.copy(), qs), np.percentile(x, qs, axis=0))
    ties = np.array([[1.0, 3.0], [2.0, 3.0], [2.0, 3.0], [9.0, 3.0]])
    assert np.array_equal(_percentiles(ties, (50.0, 10.0)), np.percentile(ties, (50.0, 10.0),
                                                                          axis=0))


def test_the_frames_first_test_skips_only_what_would_not_be_a_pop(tmp_path: Path) -> None:
    """The octave-rise test on the frames spares peaks their measurement, and what it spares
    would not have been true pops: every pop found measuring every peak, and no rejection that
    measuring every peak does not also make, on pops at 3 dB among rubs, footsteps, voice
    and knocks; measuring every peak, each true pop found had risen more than the test asks."""
    from backpop_sense.blocks import AudioBlock
    from backpop_sense.pops.detector import DetectorConfig, PopDetector

    path = tmp_path / "s"
    simulate_session(path, SimConfig("snapping", minutes=3.0, seed=44, snr_db=3.0))
    default = DetectorConfig().min_band_rise
    truth = Session(path).truth()["t"].to_numpy(float)
    pops, rejected, measured, weakest = {}, {}, {}, {}
    for rise in (0.0, default):
        cfg = DetectorConfig(min_band_rise=rise)
        r = analyze(path, PipelineConfig(detector=cfg))
        pops[rise] = [(p.t, p.level, p.kind) for p in r.pops]
        weakest[rise] = min(p.pop.excess_db for p in r.pops
                            if np.min(np.abs(truth - p.t)) <= 0.05)
        rejected[rise] = {(x.t, x.reason) for x in r.rejected}
        source = open_replay(path)
        det = PopDetector(source.session.audio.sr, len(source.session.info.mics), cfg)
        for block in source:
            if isinstance(block, AudioBlock):
                det.feed(block)
        det.finish()
        measured[rise] = det.measured
    assert len(pops[0.0]) >= 10
    # Every pop of the default is found measuring every peak; what the test spares is no
    # true pop (a peak it spares may still pass the judge as a false one: the one here
    # 0.1 s after a snap).
    assert set(pops[default]) <= set(pops[0.0])
    spared = [t for t, _, _ in set(pops[0.0]) - set(pops[default])]
    assert all(np.min(np.abs(truth - t)) > 0.05 for t in spared)
    assert weakest[0.0] > default  # measuring every peak, each true pop's band rose more
    # The onsets turned away are onsets measuring every peak finds too (within 50 ms: a
    # peak it measures may take the place of a weaker one; the reason may differ, as the
    # series and cluster counts see only the onsets measured).
    every = np.array(sorted(t for t, _ in rejected[0.0]))
    assert all(np.min(np.abs(every - t)) <= 0.05 for t, _ in rejected[default])
    assert measured[default] < 0.5 * measured[0.0]


def test_a_lower_threshold_keeps_every_candidate(tmp_path: Path) -> None:
    """More peaks never hide a burst: every candidate found at the default threshold is
    found at a lower one too, at the same onset and as strong, on pops at 3 dB among rubs,
    footsteps, voice and knocks. (A weak noise peak just before a pop used to refine to the
    noise and take the pop's place: two such pops here.)"""
    from backpop_sense.blocks import AudioBlock
    from backpop_sense.pops.detector import DetectorConfig, PopDetector

    path = tmp_path / "s"
    simulate_session(path, SimConfig("snapping", minutes=3.0, seed=7301, snr_db=3.0))
    found = {}
    for threshold in (6.0, 5.0):
        source = open_replay(path)
        det = PopDetector(source.session.audio.sr, len(source.session.info.mics),
                          DetectorConfig(threshold=threshold))
        cands = [c for b in source if isinstance(b, AudioBlock) for c in det.feed(b)]
        found[threshold] = {c.index: c.strength for c in cands + det.finish()}
    assert len(found[6.0]) >= 20 and len(found[5.0]) > len(found[6.0])
    lower = np.array(sorted(found[5.0]))
    for index, strength in found[6.0].items():
        k = int(np.argmin(np.abs(lower - index)))
        assert abs(lower[k] - index) <= 16  # 1 ms at 16 kHz
        assert found[5.0][int(lower[k])] >= strength


@pytest.mark.parametrize("length", [251, 250])
def test_the_thresholds_running_median_and_mad_match_numpys(length: int) -> None:
    """The threshold's median and MAD are numpy's over the frames before each refresh,
    whatever the pieces the signal comes in."""
    from backpop_sense.pops.detector import _RunningMedian

    rng = np.random.default_rng(4)
    x = rng.gamma(1.0, size=(2000, 6))
    every = 32
    pieces = np.split(np.arange(len(x)), [5, 300, 301, 1000, 1777])
    stats = _RunningMedian(length, every, (6,))
    level, scale = (np.concatenate(parts) for parts in zip(
        *(stats.update(x[p], int(p[0])) for p in pieces if len(p)), strict=True))
    for frame in (4 * every, 300, length + 5, 1000, 1999):
        refresh = frame // every * every
        past = x[max(0, refresh - length): refresh]
        assert np.array_equal(level[frame], np.median(past, axis=0))
        assert np.allclose(scale[frame], np.median(np.abs(past - level[frame]), axis=0),
                           rtol=0, atol=1e-15)
    assert np.isnan(level[4 * every - 1]).all()


def test_the_detectors_median_matches_numpys() -> None:
    """The one-partition median gives np.median's numbers exactly, for odd and even counts."""
    from backpop_sense.pops.detector import _median

    rng = np.random.default_rng(5)
    for shape in ((7,), (3, 8), (4, 6, 251), (2, 3, 3200), (5, 1), (3, 2)):
        x = rng.gamma(1.0, size=shape)
        assert np.array_equal(_median(x.copy()), np.median(x, axis=-1))
    ties = np.array([[1.0, 2.0, 2.0, 2.0, 5.0, 9.0], [3.0, 3.0, 3.0, 3.0, 3.0, 3.0]])
    assert np.array_equal(_median(ties.copy()), np.median(ties, axis=-1))
