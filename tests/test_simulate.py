"""The simulator's physics and its ground truth, checked on the files it writes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from backpop_sense.errors import BadParameter
from backpop_sense.levels import level_distance_m
from backpop_sense.session import Session
from backpop_sense.simulate import (
    GRAVITY,
    HELD_STRETCH_S,
    SNAP_ANGLE_DEG,
    SimConfig,
    script_from_plan,
    simulate_session,
    simulate_stems,
)

BACKPOP = Path(sys.executable).parent / "backpop"


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.name != "session.json"}


@pytest.fixture(scope="module")
def twist_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "twist"
    simulate_session(out, SimConfig("twist-cavitation", minutes=1.5, seed=4, sr=8000))
    return out


def test_simulated_session_reads_back_whole(twist_session: Path) -> None:
    s = Session(twist_session)
    s.validate()
    assert s.duration_s == pytest.approx(90.0)
    assert s.imu_rates["thoracic"] == pytest.approx(200.0)
    truth = s.truth()
    assert list(truth.columns[:3]) == ["t", "level", "kind"]
    assert len(truth) > 0
    assert set(truth["kind"]) <= {"cavitation", "readjustment"}


def test_imu_at_rest_reads_gravity(twist_session: Path) -> None:
    s = Session(twist_session)
    motion = s.motion_truth()
    static = motion[motion["context"] == "static"]["t"].to_numpy()
    assert len(static) > 20
    for name in ("thoracic", "sacral"):
        imu = s.read_imu(name)
        at_rest = np.isin(np.round(imu.t, 6), np.round(static, 6))
        magnitude = np.linalg.norm(imu.acc[at_rest], axis=1)
        # Sensor bias (~0.05 m/s^2 per axis) and noise allowed; the physics must give g.
        assert magnitude.mean() == pytest.approx(GRAVITY, abs=0.15)
        # Upright and still: gravity is along body "up".
        assert imu.acc[at_rest, 2].mean() == pytest.approx(GRAVITY, abs=0.3)


def test_gyro_integrated_over_a_pure_twist_gives_the_truth_angle() -> None:
    config = SimConfig("twist-cavitation", minutes=1.0, seed=9, sr=8000)
    script, kin, _, _ = simulate_stems(config)
    rng = np.random.default_rng(0)
    from backpop_sense.simulate import imu_readings

    gyro = imu_readings(kin, rng, with_mag=False)["thoracic"]["gyro"]
    twists = [m for m in script.moves if m.kind == "twist"]
    assert twists
    dt = 1.0 / config.imu_rate
    for move in twists[:3]:
        a, b = int(move.t_start / dt), int(move.t_peak / dt)
        bias = gyro[a - int(0.5 / dt): a].mean(axis=0)
        orientation = Rotation.identity()
        for w in gyro[a:b]:
            orientation = orientation * Rotation.from_rotvec((w - bias) * dt)
        integrated = np.degrees(orientation.magnitude())
        truth = abs(script.twist[b] - script.twist[a])
        assert integrated == pytest.approx(truth, abs=1.0)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_pops_sit_at_truth_times_with_the_requested_snr(snr_db: float) -> None:
    config = SimConfig("twist-cavitation", minutes=1.0, seed=5, sr=16000, snr_db=snr_db)
    _, _, pops, stems = simulate_stems(config)
    assert len(pops) >= 3
    sr = config.sr
    window, half = int(0.010 * sr), sr // 2
    for pop in pops:
        start = int(round(pop.t * sr))
        distances = [level_distance_m(pop.level, m) for m in config.mics]
        nearest = int(np.argmin(distances))
        power = np.mean(stems["pops"][start:start + window] ** 2, axis=0)
        floor = np.mean(stems["floor"][max(0, start - half):start + half, nearest] ** 2)
        assert 10 * np.log10(power[nearest] / floor) == pytest.approx(snr_db, abs=1.0)
        # The nearest mic hears it loudest; farther mics fade along the spine.
        assert int(np.argmax(power)) == nearest
        trace = np.abs(stems["pops"][start - 80:start + 400, nearest])
        onset = (int(np.argmax(trace > 0.1 * trace.max())) - 80) / sr
        assert abs(onset) <= 0.001


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    config = SimConfig("healthy", minutes=0.5, seed=3, sr=8000, imu_rate=100.0)
    simulate_session(tmp_path / "a", config)
    simulate_session(tmp_path / "b", config)
    simulate_session(tmp_path / "c", SimConfig("healthy", minutes=0.5, seed=4, sr=8000,
                                               imu_rate=100.0))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a")["mic.wav"] != _digest(tmp_path / "c")["mic.wav"]


def test_snaps_recur_at_one_level_and_one_angle(tmp_path: Path) -> None:
    simulate_session(tmp_path / "s", SimConfig("snapping", minutes=1.5, seed=2, sr=8000))
    truth = Session(tmp_path / "s").truth()
    snaps = truth[truth["kind"] == "snap"]
    assert len(snaps) >= 5
    assert snaps["level"].nunique() == 1
    assert snaps["flexion_deg"].astype(float).to_numpy() == pytest.approx(SNAP_ANGLE_DEG, abs=4)


def test_cavitation_respects_the_refractory_period() -> None:
    config = SimConfig("twist-cavitation", minutes=6.0, seed=1, sr=4000, refractory_s=240.0,
                       artifacts=False)
    _, _, pops, _ = simulate_stems(config)
    cav = [p for p in pops if p.kind == "cavitation"]
    assert len(cav) >= 5
    for level in {p.level for p in cav}:
        times = np.array([p.t for p in cav if p.level == level])
        assert (np.diff(times) >= 240.0).all()


def test_a_held_stretch_pops_while_the_spine_is_still() -> None:
    config = SimConfig("held-stretch", minutes=3.0, seed=3, sr=4000, artifacts=False)
    script, _, pops, _ = simulate_stems(config)
    held = [m for m in script.moves if m.held]
    assert held and all(m.t_hold_end - m.t_peak >= HELD_STRETCH_S[0] for m in held)
    rate = config.imu_rate
    still = []
    for p in pops:
        # The gate looks at the spine's movement from 0.5 s before an onset to 0.08 s after.
        s = slice(int((p.t - 0.5) * rate), int((p.t + 0.08) * rate) + 1)
        swing = max(float(np.ptp(a[s])) for a in (script.flexion, script.lateral, script.twist))
        if swing < 0.1 and any(m.t_peak <= p.t <= m.t_hold_end for m in held):
            still.append(p)
    assert len(still) >= 3
    assert {p.kind for p in still} <= {"readjustment", "cavitation"}


def test_a_plan_holds_its_held_stretches_still_and_its_plain_moves_briefly() -> None:
    config = SimConfig("healthy", minutes=1.0, seed=5, sr=4000)
    plan = [("held-twist", 2), ("twist", 1), ("held-side", 1)]
    script = script_from_plan(plan, config, np.random.default_rng(5))
    assert [(m.kind, m.held) for m in script.moves] == [
        ("twist", True), ("twist", True), ("twist", False), ("side", True)]
    rate = config.imu_rate
    for m in script.moves:
        hold = m.t_hold_end - m.t_peak
        trace = {"twist": script.twist, "side": script.lateral}[m.kind]
        inside = trace[int(m.t_peak * rate) + 1: int(m.t_hold_end * rate)]
        if m.held:
            assert HELD_STRETCH_S[0] <= hold <= HELD_STRETCH_S[1]
            assert np.ptp(inside) < 1e-6  # still at the peak throughout the hold
        else:
            assert hold <= 0.9


def test_post_fall_has_an_impact_then_lying_still(tmp_path: Path) -> None:
    simulate_session(tmp_path / "f", SimConfig("post-fall", minutes=1.5, seed=6, sr=8000))
    s = Session(tmp_path / "f")
    fall_t = s.info.extra["simulation"]["falls_s"][0]
    imu = s.read_imu("sacral")
    near = (imu.t > fall_t - 0.3) & (imu.t < fall_t + 0.3)
    assert np.linalg.norm(imu.acc[near], axis=1).max() > 3.5 * GRAVITY
    lying = (imu.t > fall_t + 1.5) & (imu.t < fall_t + 5.0)
    # Supine: the body's forward axis points up, so gravity reads on +y.
    assert imu.acc[lying, 1].mean() == pytest.approx(GRAVITY, abs=0.5)
    assert abs(imu.acc[lying, 2].mean()) < 1.0


def test_artifacts_only_has_artifacts_and_no_pops() -> None:
    config = SimConfig("artifacts-only", minutes=1.0, seed=8, sr=8000)
    script, _, pops, stems = simulate_stems(config)
    assert pops == []
    assert np.abs(stems["pops"]).max() == 0
    assert script.heel_strikes
    floor_rms = np.sqrt(np.mean(stems["floor"] ** 2))
    assert np.abs(stems["artifacts"]).max() > 5 * floor_rms


def test_cli_simulate_writes_a_valid_session(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    run = subprocess.run([str(BACKPOP), "simulate", str(out), "--scenario", "snapping",
                          "--minutes", "0.5", "--seed", "7", "--sr", "8000"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    Session(out).validate()
    bad = subprocess.run([str(BACKPOP), "simulate", str(tmp_path / "x"), "--scenario", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "--scenario: must be one of healthy" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(("option", "value", "said"), [
    ("--sr", "2000000000", "must be a whole number from 4000 to 192000, not 2000000000"),
    ("--sr", "100", "must be a whole number from 4000 to 192000, not 100"),
    ("--imu-rate", "1000000", "must be a number from 50 to 2000, not 1000000"),
    ("--imu-rate", "10", "must be a number from 50 to 2000, not 10"),
    ("--snr", "nan", "must be a finite number, not nan"),
    ("--subject", "../x", "must be an identifier (1-64 characters"),
    ("--minutes", "0", "must be None or a number above 0 and at most 1440, not 0"),
])
def test_cli_refuses_a_session_it_could_not_make_or_read_before_writing_it(
        tmp_path: Path, option: str, value: str, said: str) -> None:
    out = tmp_path / "never"
    bad = subprocess.run([str(BACKPOP), "simulate", str(out), "--minutes", "0.1", option,
                          value], capture_output=True, text=True)
    assert (bad.returncode, bad.stdout) == (2, "")
    (line,) = bad.stderr.splitlines()
    assert line.startswith(f"backpop: error: {option}: {said}")
    assert not out.exists()
    field = {"--snr": "snr_db", "--imu-rate": "imu_rate"}.get(option, option[2:])
    typed = {"sr": int, "subject": str}.get(field, float)(value)
    with pytest.raises(BadParameter, match=f"^SimConfig: field {field}: ") as caught:
        SimConfig(**{field: typed})
    assert caught.value.field == field
