"""The simulator family: every range drawn and exercised, each sound as its parameters say."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from backpop_sense import family
from backpop_sense.family import (
    FAMILIES,
    PopSound,
    beat_times,
    draw_acoustics,
    heart_weights,
    pop_wave,
)
from backpop_sense.session import Session
from backpop_sense.simulate import (
    SimConfig,
    family_member,
    simulate_session,
    simulate_stems,
    sounding_events,
)

SR = 16000


@pytest.fixture(scope="module")
def draws() -> list[family.Acoustics]:
    return [draw_acoustics(fam, seed, 3) for fam in FAMILIES for seed in range(200)]


@pytest.mark.parametrize("name,lo,hi", [
    ("attenuation_db_per_level", 2.0, 8.0),
    ("heart_bpm", 40.0, 180.0),
    ("speech_f0_hz", 80.0, 300.0),
    ("heart_click_hz", 150.0, 1200.0),
    ("footstep_click_hz", 300.0, 4000.0),
    ("floor_dbfs", -65.0, -50.0),
    ("rub_swell_s", 0.02, 0.4),
])
def test_each_range_is_drawn_across_its_width(draws, name: str, lo: float, hi: float) -> None:
    values = np.array([getattr(a, name) for a in draws])
    assert values.min() >= lo and values.max() <= hi
    width = hi - lo
    assert values.min() < lo + 0.1 * width and values.max() > hi - 0.1 * width


def test_pop_sounds_span_100_hz_to_8_khz_tonal_and_noisy_1_to_3_clicks(draws) -> None:
    sounds = [p for a in draws for p in a.pops]
    centres = np.array([p.centre_hz for p in sounds])
    durations = np.array([p.duration_ms for p in sounds])
    assert centres.min() < 130 and centres.max() > 6000 and centres.min() >= 100
    assert durations.min() < 2.5 and durations.max() > 25 and durations.max() <= 30
    assert {p.clicks for p in sounds} == {1, 2, 3}
    assert {p.tonal for p in sounds} == {True, False}


def test_mics_are_contact_or_phone_with_their_high_pass(draws) -> None:
    for a in draws:
        lo, hi = (100.0, 300.0) if a.mic_kind == "phone" else (10.0, 60.0)
        assert lo <= a.mic_highpass_hz <= hi
        assert all(-1.0 <= g <= 1.0 for g in a.mic_gain_db)
    assert {a.mic_kind for a in draws} == {"phone", "contact"}
    assert {a.heart_rhythm for a in draws} == {"regular", "extra beats", "irregular"}


def _centroid(x: np.ndarray) -> float:
    f, p = signal.periodogram(x, SR)
    return float((f * p).sum() / p.sum())


@pytest.mark.parametrize("fam", FAMILIES)
@pytest.mark.parametrize("centre", [150.0, 600.0, 5000.0])
def test_a_pops_spectrum_sits_where_its_centre_says(fam: str, centre: float) -> None:
    ac = draw_acoustics(fam, 1, 3)
    for tonal in (True, False):
        sound = PopSound(centre, 0.3 if tonal else 1.5, tonal, 1, 5.0, 10.0)
        ac = replace(ac, pops=(sound, sound, sound))
        rng = np.random.default_rng(3)
        cents = [_centroid(pop_wave(ac, "snap", rng, SR)) for _ in range(5)]
        assert centre / 2.5 < np.median(cents) < centre * 2.5


@pytest.mark.parametrize("fam", FAMILIES)
def test_a_pops_duration_follows_its_parameter(fam: str) -> None:
    ac = draw_acoustics(fam, 2, 3)

    def lasting(ms: float) -> float:
        sound = PopSound(2000.0, 2.0, False, 1, 5.0, ms)
        x = pop_wave(replace(ac, pops=(sound,) * 3), "cavitation", np.random.default_rng(4), SR)
        env = np.convolve(x ** 2, np.ones(16) / 16, mode="same")
        return 1000 * np.flatnonzero(env > env.max() * 1e-3)[-1] / SR  # 30 dB down, ms

    short, long = lasting(2.0), lasting(30.0)
    assert short < 6.0
    assert 10.0 < long < 40.0


@pytest.mark.parametrize("bpm", [60.0, 150.0])
def test_a_regular_heart_beats_at_its_rate(bpm: float) -> None:
    ac = replace(draw_acoustics("dev", 3, 3), heart_bpm=bpm, heart_rhythm="regular",
                 heart_variability=0.02, heart_extra_per_min=0.0)
    beats = beat_times(ac, 120.0, np.random.default_rng(1))
    rr = np.diff([b[0] for b in beats])
    assert np.median(rr) == pytest.approx(60.0 / bpm, rel=0.03)
    assert not any(b[2] for b in beats)


def test_extra_beats_come_early_with_a_compensatory_pause() -> None:
    ac = replace(draw_acoustics("heldout", 3, 3), heart_bpm=70.0, heart_rhythm="extra beats",
                 heart_variability=0.02, heart_extra_per_min=10.0)
    beats = beat_times(ac, 300.0, np.random.default_rng(2))
    times = np.array([b[0] for b in beats])
    premature = [i for i, b in enumerate(beats) if b[2]]
    assert 25 <= len(premature) <= 75  # about 10 a minute
    rr = 60.0 / 70.0
    for i in premature[:-1]:
        assert 0.45 * rr < times[i] - times[i - 1] < 0.85 * rr
        assert times[i + 1] - times[i - 1] == pytest.approx(2 * rr, rel=0.1)


def test_the_heart_is_loudest_at_the_mic_nearest_it() -> None:
    ac = replace(draw_acoustics("dev", 5, 3), heart_level="T6")
    w = heart_weights(ac, ("T10", "L1", "L4"))
    assert w[0] == 1.0 and w[0] > w[1] > w[2]


@pytest.mark.parametrize("fam", FAMILIES)
def test_a_member_session_has_pops_at_the_requested_snr(fam: str) -> None:
    config = family_member(fam, 7, scenario="twist-cavitation", minutes=1.0, snr_db=10.0,
                           artifacts=False)
    _, _, pops, parts = simulate_stems(config)
    assert len(pops) >= 3
    sr = config.sr
    floor, popped = parts["floor"], parts["pops"]
    for p in pops:
        i = int(round(p.t * sr))
        near = int(np.argmax(np.mean(popped[i: i + 160] ** 2, axis=0)))
        power = np.mean(popped[i: i + int(0.01 * sr), near] ** 2)
        background = np.mean(floor[max(0, i - sr // 2): i + sr // 2, near] ** 2)
        assert 10 * np.log10(power / background) == pytest.approx(10.0, abs=1.5)


@pytest.mark.parametrize("config", [
    family_member("dev", 21, scenario="artifacts-only", minutes=1.0),
    family_member("heldout", 21, scenario="artifacts-only", minutes=1.0),
    family_member("dev2", 21, scenario="artifacts-only", minutes=1.0),
    family_member("dev3", 21, scenario="artifacts-only", minutes=1.0),
    family_member("dev4", 21, scenario="artifacts-only", minutes=1.0),
    SimConfig("artifacts-only", minutes=1.0, seed=21),
], ids=["dev", "heldout", "dev2", "dev3", "dev4", "first simulator"])
def test_sounding_events_are_the_artifacts_the_session_renders(config: SimConfig) -> None:
    """Where sounding_events says an artifact sounds, the rendered artifacts are there; away
    from every artifact it names, they are silent but for the mic response's ringing."""
    events = sounding_events(config)
    assert events == sorted(events) and events == sounding_events(config)
    kinds = {k for _, _, k in events}
    assert "heartbeat" in kinds and kinds & {"knock", "speech", "handling", "footstep", "rub"}
    art = simulate_stems(config)[3]["artifacts"]
    sr = config.sr
    power = np.mean(art ** 2, axis=1)
    near = np.zeros(len(power), dtype=bool)
    for a, b, kind in events:
        if kind != "heartbeat":  # the heart sounds are part of the floor, not the artifacts
            near[int(a * sr): int((b + 0.2) * sr)] = True
    quiet = float(power[~near].max()) if (~near).any() else 0.0
    for a, b, kind in events:
        if kind != "heartbeat":
            assert power[int(a * sr): int(b * sr) + 1].max() > 1e3 * max(quiet, 1e-30), kind


def test_a_phone_mic_takes_away_the_low_band() -> None:
    base = family_member("dev", 8, scenario="artifacts-only", minutes=0.5, artifacts=False)
    ac = base.acoustics
    low = {}
    for kind, corner in (("contact", 20.0), ("phone", 250.0)):
        config = replace(base, acoustics=replace(ac, mic_kind=kind, mic_highpass_hz=corner))
        mix = simulate_stems(config)[3]["mix"][:, 0]
        f, p = signal.welch(mix, config.sr, nperseg=2048)
        low[kind] = p[f < 60].sum() / p.sum()
    assert low["phone"] < 0.1 * low["contact"]


def test_a_one_mic_member_without_imus_is_a_valid_session(tmp_path: Path) -> None:
    config = family_member("heldout", 9, scenario="snapping", minutes=1.0, mics=("L1",),
                           with_imus=False, sr=8000)
    simulate_session(tmp_path / "s", config)
    s = Session(tmp_path / "s")
    s.validate()
    assert s.info.imus == () and s.info.mic_names == ["L1"] and s.audio.sr == 8000
    truth = pd.read_csv(tmp_path / "s" / "truth.csv")
    assert len(truth) > 0 and set(truth["level"]) == {"L1"}


def test_the_same_member_twice_gives_the_same_audio() -> None:
    a = simulate_stems(family_member("dev", 10, scenario="healthy", minutes=0.5))[3]["mix"]
    b = simulate_stems(family_member("dev", 10, scenario="healthy", minutes=0.5))[3]["mix"]
    c = simulate_stems(family_member("heldout", 10, scenario="healthy", minutes=0.5))[3]["mix"]
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_the_cli_simulates_a_family_member(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    backpop = Path(sys.executable).parent / "backpop"
    done = subprocess.run([str(backpop), "simulate", str(tmp_path / "s"), "--family", "heldout",
                           "--seed", "4", "--minutes", "0.5"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "s" / "session.json").read_text())
    assert doc["simulation"]["config"]["acoustics"]["family"] == "heldout"
    bad = subprocess.run([str(backpop), "simulate", str(tmp_path / "t"), "--family", "other"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "--family" in bad.stderr and not (tmp_path / "t").exists()


@pytest.mark.parametrize("fam", FAMILIES)
def test_a_rub_holds_its_place_unless_set_to_move(fam: str) -> None:
    """By default each mic's share of a rub is the same from start to end; with
    ``artifact_drift_db`` the shares move (each mic's gain within a band that wide, so two
    mics' shares part by at most twice it)."""
    mics, sr = ("T10", "L1", "L4"), 8000

    def shares_moved(drift: float) -> np.ndarray:
        ac = replace(draw_acoustics(fam, 5, 3), artifact_drift_db=drift)
        (rub,) = family.rub_events(ac, [0.0], mics, sr, np.random.default_rng(1),
                                   np.full(3, 1e-3))
        x = rub.make()
        q = len(x) // 4
        db = 10 * np.log10(np.mean(x[:q] ** 2, axis=0) / np.mean(x[-q:] ** 2, axis=0))
        return db - db.mean()  # how far each mic's share moved from the first to the last quarter

    assert np.allclose(shares_moved(0.0), 0.0, atol=1e-9)
    moved = shares_moved(12.0)
    assert np.ptp(moved) > 1.0
    assert np.ptp(moved) <= 24.0 + 1e-6


def test_dev4_voice_fills_its_length_whatever_the_pitch() -> None:
    """A glottal pulse due at the wave's last sample's end is not placed past it (a member
    of dev4 once stopped there)."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        length, f0 = rng.uniform(1.0, 4.0), rng.uniform(60.0, 350.0)
        wave = family._speech_dev4(f0, length, 8000, rng)
        assert len(wave) == int(length * 8000) and np.isfinite(wave).all()


def test_every_family_has_one_renderer_for_every_sound() -> None:
    """``SOUND_MODELS`` is the one place a sound model is chosen: one entry per family."""
    assert set(family.SOUND_MODELS) == set(FAMILIES)
