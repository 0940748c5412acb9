"""The motion stage on real session folders: angles, signs, units and axes, streaming, contexts.

Sessions are written to ``tmp_path`` with :class:`SessionWriter` (IMU signals made here from
a known rotation sequence, so the expected angles are exact) or with the simulator (physics
with sensor noise, bias and mounting errors, and ground truth).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SessionFactory
from scipy.spatial.transform import Rotation

from backpop_sense.blocks import ImuBlock
from backpop_sense.motion.evaluate import events_table, frames_table, score_motion
from backpop_sense.motion.spine import segment_angles, spine_angles, spine_rotation
from backpop_sense.motion.tracker import MotionConfig, MotionEvent, MotionFrame, MotionTracker
from backpop_sense.motion_family import draw_motion
from backpop_sense.session import ImuInfo, MicInfo, Session, SessionInfo, SessionWriter
from backpop_sense.simulate import SimConfig, script_from_plan, simulate_session
from backpop_sense.sources.replay import ReplaySource

GRAVITY = 9.80665
RATE = 200.0
UP = np.array([0.0, 0.0, 1.0])


def _ramp(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * x)


def rotation_sequence(moves: list[tuple[str, float]], *, rest_s: float = 3.0,
                      move_s: float = 1.5, hold_s: float = 1.5) -> tuple[np.ndarray, Rotation]:
    """Thorax orientations for rotations about body axes: rise, hold, return, rest.

    ``moves`` are (axis, degrees) with axis ``x``, ``y`` or ``z``: a rotation by that angle
    about the pelvis's right, forward or up axis (right-hand rule).
    """
    segments = [np.zeros((int(rest_s * RATE), 3))]
    for axis, degrees in moves:
        unit = np.eye(3)["xyz".index(axis)] * np.radians(degrees)
        tt = np.arange(int((2 * move_s + hold_s + rest_s) * RATE)) / RATE
        shape = _ramp(tt / move_s) - _ramp((tt - move_s - hold_s) / move_s)
        segments.append(shape[:, None] * unit)
    rotvec = np.concatenate(segments)
    return np.arange(len(rotvec)) / RATE, Rotation.from_rotvec(rotvec)


def imu_signals(orientation: Rotation) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free specific force (m/s^2) and angular velocity (rad/s) in the sensor frame."""
    step = orientation[:-1].inv() * orientation[1:]
    gyro = step.as_rotvec() * RATE
    gyro = np.vstack([gyro, gyro[-1:]])
    acc = orientation.inv().apply(GRAVITY * UP)
    return acc, gyro


def write_session(path: Path, t: np.ndarray, thorax: Rotation | None, pelvis: Rotation | None,
                  **imu_options: str) -> Path:
    """A session whose IMUs carry the given orientations (None leaves that IMU out)."""
    imus = tuple(ImuInfo(name, level, **imu_options)
                 for name, level, rot in (("thoracic", "T12", thorax), ("sacral", "S1", pelvis))
                 if rot is not None)
    info = SessionInfo("S01", "motion", datetime(2026, 11, 20, tzinfo=UTC), (MicInfo("L1"),),
                       imus)
    sr = 4000
    with SessionWriter(path, info, sr=sr) as w:
        w.write_audio(np.zeros((int(round(t[-1] * sr)) + 1, 1)))
        for name, rot in (("thoracic", thorax), ("sacral", pelvis)):
            if rot is not None:
                acc, gyro = imu_signals(rot)
                w.write_imu(name, t, acc, gyro)
    return path


def track(path: Path, *, block_size: int = 4096, config: MotionConfig | None = None
          ) -> tuple[pd.DataFrame, list[MotionEvent], MotionTracker]:
    session = Session(path)
    tracker = MotionTracker(session.info, session.imu_rates, config or MotionConfig())
    out = []
    for block in ReplaySource(session, block_size=block_size):
        out += tracker.feed(block)
    out += tracker.finish()
    frames = frames_table([o for o in out if isinstance(o, MotionFrame)])
    return frames, [o for o in out if isinstance(o, MotionEvent)], tracker


def expected_angles(t: np.ndarray, frames: pd.DataFrame, moves: list[tuple[str, float]]
                    ) -> np.ndarray:
    """Flexion, lateral, twist at the frames: a rotation about x by -a is flexion a, etc."""
    _, rot = rotation_sequence(moves)
    rotvec = np.degrees(rot.as_rotvec())
    idx = np.round(frames["t"].to_numpy() * RATE).astype(int).clip(0, len(t) - 1)
    return rotvec[idx] * np.array([-1.0, 1.0, 1.0])


MOVES = [("x", -40.0), ("x", 15.0), ("y", 20.0), ("y", -20.0), ("z", 30.0), ("z", -30.0),
         ("x", -60.0)]


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    t, thorax = rotation_sequence(MOVES)
    pelvis = Rotation.identity(len(t))
    path = write_session(tmp_path_factory.mktemp("known") / "s", t, thorax, pelvis)
    return path, t


def test_angles_of_a_known_rotation_sequence(known: tuple[Path, np.ndarray]) -> None:
    path, t = known
    frames, events, tracker = track(path)
    assert len(frames) == pytest.approx(t[-1] * 10, abs=2)
    want = expected_angles(t, frames, MOVES)
    got = frames[["flexion_deg", "lateral_deg", "twist_deg"]].to_numpy()
    # Each move is about one body axis, so the single-axis angle is exact in any sequence.
    assert np.abs(got - want).max() < 0.5
    assert got[:, 0].max() == pytest.approx(60.0, abs=0.3)
    assert got[:, 0].min() == pytest.approx(-15.0, abs=0.3)
    assert events == []
    summary = tracker.summary()
    assert summary["rom_deg"]["flexion"]["max"] == pytest.approx(60.0, abs=0.3)
    assert summary["rom_deg"]["twist"]["min"] == pytest.approx(-30.0, abs=0.3)
    assert summary["calibration"]["method"] == "first still period"


def test_sign_conventions(tmp_path: Path) -> None:
    """docs/formats.md: flexion positive forward, lateral positive right, twist positive left."""
    cases = {
        # the thorax's up tips toward forward (+y): a forward bend
        "forward": (Rotation.from_rotvec([-np.radians(30), 0, 0]), "flexion_deg", +1),
        # up tips toward backward: extension
        "backward": (Rotation.from_rotvec([np.radians(20), 0, 0]), "flexion_deg", -1),
        # up tips toward the right (+x): a bend to the right
        "right": (Rotation.from_rotvec([0, np.radians(20), 0]), "lateral_deg", +1),
        # the shoulders turn counter-clockwise seen from above: a twist to the left
        "left": (Rotation.from_rotvec([0, 0, np.radians(25)]), "twist_deg", +1),
    }
    for name, (pose, column, sign) in cases.items():
        up = pose.apply(UP)
        if name == "forward":
            assert up[1] > 0.4
        if name == "right":
            assert up[0] > 0.3
        rotvec = pose.as_rotvec()
        axis = "xyz"[int(np.argmax(np.abs(rotvec)))]
        moves = [(axis, float(np.degrees(rotvec[np.argmax(np.abs(rotvec))])))]
        t, thorax = rotation_sequence(moves)
        frames, _, _ = track(write_session(tmp_path / name, t, thorax, Rotation.identity(len(t))))
        peak = frames[column].to_numpy()[np.argmax(np.abs(frames[column].to_numpy()))]
        assert np.sign(peak) == sign, name
        assert abs(peak) == pytest.approx(np.degrees(np.linalg.norm(rotvec)), abs=0.5)


@pytest.mark.parametrize("options", [
    {"acc_unit": "g", "gyro_unit": "deg/s"},
    {"axes": "x=left,y=backward,z=up"},
    {"axes": "x=right,y=backward,z=down"},  # mounted upside down
    {"axes": "x=up,y=left,z=backward", "acc_unit": "g"},
])
def test_units_and_axes_variants_give_the_same_angles(
        known: tuple[Path, np.ndarray], tmp_path: Path, options: dict[str, str]) -> None:
    path, t = known
    reference, _, _ = track(path)
    _, thorax = rotation_sequence(MOVES)
    variant = write_session(tmp_path / "variant", t, thorax, Rotation.identity(len(t)), **options)
    frames, _, _ = track(variant)
    assert len(frames) == len(reference)
    diff = (frames[["flexion_deg", "lateral_deg", "twist_deg"]].to_numpy()
            - reference[["flexion_deg", "lateral_deg", "twist_deg"]].to_numpy())
    # Only the 6 significant digits of the CSV differ.
    assert np.abs(diff).max() < 0.05
    assert (frames["context"] == reference["context"]).all()


TILT = (5.0, 3.0)
"""Flexion and lateral bend (deg) the thorax holds throughout, the still start included."""


@pytest.mark.parametrize("two", [True, False], ids=["two-imus", "one-imu"])
def test_an_exact_mounting_reports_a_tilt_held_at_the_still_start(tmp_path: Path,
                                                                  two: bool) -> None:
    """session.json ``mounting: exact``: the declared axes are the body's, so the first still
    period is not taken for upright; the default calibration takes it for upright."""
    t, moves = rotation_sequence(MOVES)
    thorax = spine_rotation(*TILT, 0.0) * moves
    pelvis = Rotation.identity(len(t)) if two else None
    exact, _, tracker = track(write_session(tmp_path / "exact", t, thorax, pelvis,
                                            mounting="exact"))
    calibrated, _, _ = track(write_session(tmp_path / "calibrate", t, thorax, pelvis))
    bends = ["flexion_deg", "lateral_deg"]
    start = exact["t"] < 2.5  # MOVES begin after 3 s at rest
    assert np.abs(exact.loc[start, bends].to_numpy() - TILT).max() < 0.1
    assert np.abs(calibrated.loc[start, bends].to_numpy()).max() < 0.1
    # Throughout, the exact mounting gives the thorax's true angles.
    idx = np.round(exact["t"].to_numpy() * RATE).astype(int).clip(0, len(t) - 1)
    want = (spine_angles if two else segment_angles)(thorax[idx])[:, :2]
    assert np.abs(exact[bends].to_numpy() - want).max() < 0.5
    calibration = tracker.summary()["calibration"]
    assert calibration["mounting"]["thoracic"] == "exact"
    assert calibration["mount_tilt_deg"]["thoracic"] == 0.0


def test_an_exact_mounting_learns_no_yaw_from_movement(tmp_path: Path) -> None:
    """A sensor turned 10 deg about up on the body: the calibration learns the turn from the
    bends; declared exact, the turn is kept as declared (and shows as side bend)."""
    t, thorax = rotation_sequence(MOVES)
    sensor = thorax * Rotation.from_rotvec([0.0, 0.0, np.radians(10.0)])
    pelvis = Rotation.identity(len(t))
    runs = {mounting: track(write_session(tmp_path / mounting, t, sensor, pelvis,
                                          mounting=mounting))
            for mounting in ("calibrate", "exact")}
    learnt = runs["calibrate"][2].summary()["calibration"]
    kept = runs["exact"][2].summary()["calibration"]
    assert learnt["yaw_updates"] >= 1
    assert learnt["mount_yaw_deg"]["thoracic"] == pytest.approx(10.0, abs=2.0)
    assert kept["yaw_updates"] == 0 and kept["mount_yaw_deg"]["thoracic"] == 0.0
    # At the 60 deg bend: seen through axes turned by 10 deg, it is part side bend.
    side = np.degrees(np.arcsin(np.sin(np.radians(60.0)) * np.sin(np.radians(10.0))))
    for mounting, want in (("calibrate", 0.0), ("exact", side)):
        frames = runs[mounting][0]
        peak = frames.loc[frames["flexion_deg"].idxmax()]
        assert peak["flexion_deg"] == pytest.approx(60.0, abs=0.5)
        assert peak["lateral_deg"] == pytest.approx(want, abs=0.3)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Physics with noise, bias and mounting errors: walking, bends, a fall, four catches."""
    path = tmp_path_factory.mktemp("sim") / "s"
    plan = [("walk", 12), ("bend", 2), ("catch", 1), ("twist", 2), ("side", 2), ("extend", 1),
            ("stand", 3), ("fall", 6), ("walk", 8), ("catch", 1), ("varied-catch", 2),
            ("sit", 12)]
    simulate_session(path, SimConfig("healthy", minutes=2.3, seed=31, sr=4000,
                                     artifacts=False), plan=plan)
    return path


def test_results_do_not_depend_on_block_size(simulated: Path) -> None:
    runs = [track(simulated, block_size=size) for size in (256, 4096, 65536)]
    first_frames, first_events, first_tracker = runs[0]
    assert len(first_frames) > 1000 and first_events
    for frames, events, tracker in runs[1:]:
        pd.testing.assert_frame_equal(frames, first_frames)
        assert events == first_events
        assert tracker.summary() == first_tracker.summary()


def test_simulated_session_meets_the_targets(simulated: Path) -> None:
    frames, events, tracker = track(simulated)
    session = Session(simulated)
    truth = session.info.extra["simulation"]
    scores = score_motion(frames, session.motion_truth(), events_table(events), truth)
    assert scores["coverage"] > 0.99
    assert scores["rmse_deg"]["flexion"] <= 2.0
    assert scores["rmse_deg"]["lateral"] <= 2.0
    assert scores["rmse_deg"]["twist"] <= 3.0
    assert scores["context_accuracy"] >= 0.9
    assert scores["catch"]["hits"] == 4 and scores["catch"]["false"] == 0
    assert scores["fall"]["hits"] == 1 and scores["fall"]["false"] == 0
    fall = next(e for e in events if e.type == "fall")
    assert "impact" in fall.detail and "lying" in fall.detail
    summary = tracker.summary()
    json.dumps(summary)
    assert summary["catches"] == 4 and summary["falls"] == 1
    assert summary["twist_drift"]["rezeros"] > 0
    assert summary["parameters"]["catch"]["move_dps"] == MotionConfig().catch.move_dps
    assert set(summary["context_s"]) == {"twist", "stretch", "bend", "walk", "static", "other"}
    # Frames and events each come out in time order.
    assert frames["t"].is_monotonic_increasing
    assert [e.t for e in events] == sorted(e.t for e in events)


def test_each_context_label_on_a_scripted_motion(simulated: Path) -> None:
    frames, _, _ = track(simulated)
    truth = Session(simulated).motion_truth()
    m = frames.merge(truth, on="t", suffixes=("", "_true"))
    for label in ("twist", "stretch", "bend", "walk", "static", "other"):
        rows = m[m["context_true"] == label]
        assert len(rows) >= 10, label
        assert (rows["context"] == label).mean() >= 0.8, label


def bend_with_pause(stop_s: float) -> tuple[np.ndarray, Rotation]:
    """A forward bend at 40 deg/s that stops (over ``stop_s``) at 25 degrees, pauses 0.6 s,
    goes on to 50 degrees and comes back up."""
    t = np.arange(int(16 * RATE)) / RATE
    v = np.zeros_like(t)
    start, cruise = 3.0, 40.0
    moving = (t >= start) & (t < start + 25.0 / cruise)
    v[moving] = cruise * _ramp((t[moving] - start) / 0.2)
    stop = (t >= start + 25.0 / cruise) & (t < start + 25.0 / cruise + stop_s)
    v[stop] = cruise * (1 - _ramp((t[stop] - start - 25.0 / cruise) / stop_s))
    flexion = np.cumsum(v) / RATE
    resume = start + 25.0 / cruise + stop_s + 0.6
    flexion += _ramp((t - resume) / 1.0) * (50.0 - flexion.max())
    flexion -= _ramp((t - resume - 2.0) / 1.5) * 50.0
    return t, Rotation.from_rotvec(np.radians(-flexion)[:, None] * [1.0, 0.0, 0.0])


def test_an_abrupt_arrest_mid_movement_is_a_catch_a_gentle_pause_is_not(tmp_path: Path) -> None:
    found = {}
    for stop_s in (0.05, 0.5):
        t, thorax = bend_with_pause(stop_s)
        path = write_session(tmp_path / f"stop{stop_s}", t, thorax, Rotation.identity(len(t)))
        _, events, _ = track(path)
        found[stop_s] = [e for e in events if e.type == "catch"]
    assert len(found[0.05]) == 1
    catch = found[0.05][0]
    assert catch.t == pytest.approx(3.0 + 25.0 / 40.0 + 0.025, abs=0.05)
    t, thorax = bend_with_pause(0.05)
    held = -np.degrees(thorax[int((catch.t + 0.3) * RATE)].as_rotvec()[0])
    assert f"flexion {held:.0f}," in catch.detail
    assert found[0.5] == []


def test_slow_lying_down_sitting_and_walking_are_not_falls(tmp_path: Path) -> None:
    plan = [("walk", 15), ("sit", 15), ("lie", 20), ("stand", 3), ("walk", 10), ("lie", 12),
            ("bend", 2)]
    simulate_session(tmp_path / "s", SimConfig("healthy", minutes=2.0, seed=32, sr=4000,
                                               artifacts=False), plan=plan)
    frames, events, tracker = track(tmp_path / "s")
    assert [e for e in events if e.type == "fall"] == []
    assert (frames["context"] == "walk").sum() > 150
    assert tracker.summary()["falls"] == 0


def test_falls_in_every_direction_are_found(tmp_path: Path) -> None:
    plan = [("varied-fall", 5), ("walk", 6), ("varied-fall", 5), ("varied-fall", 5)]
    simulate_session(tmp_path / "s", SimConfig("healthy", minutes=1.3, seed=34, sr=4000,
                                               artifacts=False), plan=plan)
    frames, events, _ = track(tmp_path / "s")
    session = Session(tmp_path / "s")
    scores = score_motion(frames, session.motion_truth(), events_table(events),
                          session.info.extra["simulation"])
    assert scores["fall"]["truth"] == 3
    assert scores["fall"]["hits"] == 3 and scores["fall"]["false"] == 0
    assert scores["catch"]["false"] == 0


def test_a_fall_needs_lying_still_after_the_impact(tmp_path: Path) -> None:
    """An impact above 3 g with the subject upright and moving straight after is no fall."""
    t, thorax = rotation_sequence([("x", -20.0)], rest_s=4.0)
    pelvis = Rotation.identity(len(t))
    path = write_session(tmp_path / "knock", t, thorax, pelvis)
    session = Session(path)
    tracker = MotionTracker(session.info, session.imu_rates)
    out = []
    for block in ReplaySource(session):
        if isinstance(block, ImuBlock) and block.t[0] <= 3.0 < block.t[-1]:
            i = int(np.searchsorted(block.t, 3.0))
            acc = block.acc.copy()
            acc[i:i + 3] += [0.0, 30.0, 20.0]  # a knock of about 4 g on the strap
            block = replace(block, acc=acc)
        out += tracker.feed(block)
    out += tracker.finish()
    assert [o for o in out if isinstance(o, MotionEvent)] == []


def test_one_imu_gives_angles_against_gravity(tmp_path: Path) -> None:
    config = SimConfig("healthy", minutes=1.0, seed=33, sr=4000, artifacts=False)
    plan = [("bend", 3), ("side", 2), ("walk", 8)]
    simulate_session(tmp_path / "both", config, plan=plan)
    both = Session(tmp_path / "both")
    info = replace(both.info, imus=(both.info.imu("thoracic"),), extra={})
    imu = both.read_imu("thoracic")
    with SessionWriter(tmp_path / "one", info, sr=4000) as w:
        w.write_audio(both.read_audio())
        w.write_imu("thoracic", imu.t, imu.acc, imu.gyro)
    frames, _, tracker = track(tmp_path / "one")
    assert tracker.summary()["mode"] == "one IMU"
    # The truth: the thorax against gravity, pelvis and lumbar spine together.
    script = script_from_plan(plan, config, np.random.default_rng([config.seed, 0]))
    thorax = (Rotation.from_euler("Z", script.heading[:, None], degrees=True)
              * spine_rotation(script.pelvis_flexion, script.pelvis_roll, 0.0)
              * spine_rotation(script.flexion, script.lateral, script.twist))
    want = segment_angles(thorax)
    idx = np.round(frames["t"].to_numpy() * config.imu_rate).astype(int).clip(0, len(want) - 1)
    err = frames[["flexion_deg", "lateral_deg"]].to_numpy() - want[idx, :2]
    assert np.sqrt(np.mean(err**2, axis=0)).max() < 1.5
    assert frames["flexion_deg"].max() > 60  # pelvis and lumbar flexion together


def test_no_frames_inside_an_imu_gap(make_session: SessionFactory) -> None:
    path = make_session("gap", duration_s=12.0, imu_hole=(4.0, 6.0))
    frames, _, tracker = track(path)
    t = frames["t"].to_numpy()
    assert not ((t > 4.05) & (t < 5.95)).any()
    assert (t < 4.0).any() and (t > 6.0).any()
    assert tracker.summary()["gaps"]["thoracic"]["count"] == 1


def test_state_stays_bounded_in_a_long_stream() -> None:
    info = SessionInfo("S01", "long", datetime(2026, 11, 20, tzinfo=UTC), (MicInfo("L1"),),
                       (ImuInfo("thoracic", "T12"), ImuInfo("sacral", "S1")))
    tracker = MotionTracker(info, {"thoracic": RATE, "sacral": RATE})
    rng = np.random.default_rng(0)
    sizes = []
    block_s = 10.0
    n = int(block_s * RATE)
    for k in range(int(40 * 60 / block_s)):
        t = (k * n + np.arange(n)) / RATE
        # Gently swaying, with walking-like bounces now and then.
        sway = 0.2 * np.sin(2 * np.pi * 0.3 * t)[:, None] * [1.0, 0.0, 0.0]
        bounce = (k % 4 == 0) * 2.5 * np.cos(2 * np.pi * 1.8 * t)[:, None] * UP
        for name in ("thoracic", "sacral"):
            acc = GRAVITY * UP + bounce + rng.normal(0, 0.03, (n, 3))
            gyro = sway + rng.normal(0, 0.004, (n, 3))
            tracker.feed(ImuBlock(name, k * n, t, acc, gyro))
        if k in (30, 239):
            sizes.append((tracker._ticks.used, len(tracker.gait.steps),
                          len(tracker._pending), sum(len(s.parts) for s in tracker.streams)))
    tracker.finish()
    assert sizes[0][0] == sizes[1][0] or sizes[1][0] <= 2 * tracker._ticks.keep
    assert sizes[1][1] <= 20 and sizes[1][2] <= 2 and sizes[1][3] <= 4
    assert tracker.summary()["frames"] == pytest.approx(40 * 60 * 10, abs=5)


def test_score_motion_counts_hits_and_false_alarms() -> None:
    t = np.round(np.arange(36000) * 0.1, 1)
    truth = pd.DataFrame({"t": t, "flexion_deg": 0.0, "lateral_deg": 0.0, "twist_deg": 179.0,
                          "context": "static"})
    est = truth.assign(flexion_deg=1.0, twist_deg=-179.0,
                       context=np.where(t < 360, "other", "static"))
    events = pd.DataFrame({"t": [10.2, 500.0, 700.0], "type": ["catch", "catch", "fall"],
                           "detail": ""})
    scores = score_motion(est, truth, events, {"catches_s": [10.0, 20.0], "falls_s": [700.5]})
    assert scores["rmse_deg"] == {"flexion": 1.0, "lateral": 0.0, "twist": 2.0}
    assert scores["context_accuracy"] == pytest.approx(0.9)
    assert scores["catch"] == {"truth": 2, "detected": 2, "hits": 1, "recall": 0.5, "false": 1,
                               "false_per_hour": pytest.approx(1.0)}
    assert scores["fall"]["recall"] == 1.0 and scores["fall"]["false"] == 0


def imu_signals_at(orientation: Rotation, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free specific force (m/s^2) and angular velocity (rad/s) at ``rate`` Hz."""
    step = orientation[:-1].inv() * orientation[1:]
    gyro = step.as_rotvec() * rate
    return orientation.inv().apply(GRAVITY * UP), np.vstack([gyro, gyro[-1:]])


def two_rate_session(path: Path, thoracic_rate: float, *, phase_s: float = 0.0) -> Path:
    """The MOVES sequence with the sacral IMU at 200 Hz and the thoracic one at its own rate
    and clock phase."""
    info = SessionInfo("S01", "rates", datetime(2026, 11, 20, tzinfo=UTC), (), (
        ImuInfo("thoracic", "T12"), ImuInfo("sacral", "S1")))
    t, thorax = rotation_sequence(MOVES)
    fine = np.arange(len(t)) / RATE
    with SessionWriter(path, info, sr=4000) as w:
        acc, gyro = imu_signals_at(Rotation.identity(len(t)), RATE)
        w.write_imu("sacral", fine, acc, gyro)
        own = np.arange(phase_s, fine[-1], 1.0 / thoracic_rate)
        rotvec = thorax.as_rotvec()
        at = np.stack([np.interp(own, fine, rotvec[:, i]) for i in range(3)], axis=1)
        acc, gyro = imu_signals_at(Rotation.from_rotvec(at), thoracic_rate)
        w.write_imu("thoracic", own, acc, gyro)
    return path


def test_imus_at_100_and_200_hz_give_the_angles_of_both_at_200_hz(tmp_path: Path) -> None:
    """Samples of the two IMUs meet on one clock, whatever their rates and phases."""
    same, _, _ = track(two_rate_session(tmp_path / "same", RATE))
    mixed, _, tracker = track(two_rate_session(tmp_path / "mixed", 100.0, phase_s=0.0075))
    assert tracker.summary()["samples"]["thoracic"] == pytest.approx(
        tracker.summary()["samples"]["sacral"] / 2, abs=2)
    m = same.merge(mixed, on="t", suffixes=("", "_mixed"))
    assert len(m) >= len(same) - 2
    for column in ("flexion_deg", "lateral_deg", "twist_deg"):
        diff = (m[column] - m[column + "_mixed"]).abs()
        assert diff.max() < 0.5, column
    # The movements were made: the comparison is not between two flat lines.
    assert m["flexion_deg"].max() > 55 and m["twist_deg"].abs().max() > 25


def _long_drift_run(hours: float, bias_dps: float, rate: float = 50.0) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """Track a session of ``hours`` with opposite gyro biases of ``bias_dps`` on every axis of
    the two IMUs: each minute 20 s standing, a 30-degree twist and back (5 s), then 35 s of
    bending to and fro without a still moment. Returns frame times and twist errors (deg)."""
    info = SessionInfo("S01", "drift", datetime(2026, 11, 20, tzinfo=UTC), (),
                       (ImuInfo("thoracic", "T12"), ImuInfo("sacral", "S1")))
    tracker = MotionTracker(info, {"thoracic": rate, "sacral": rate})
    rng = np.random.default_rng(5)
    cycle = np.arange(int(60 * rate)) / rate
    twist = 30.0 * (_ramp((cycle - 20.0) / 1.5) - _ramp((cycle - 23.0) / 1.5))
    sway = np.where(cycle >= 25.0, 10.0 * (1 - np.cos(2 * np.pi * 0.25 * (cycle - 25.0))), 0.0)
    thorax = (Rotation.from_euler("z", twist[:, None], degrees=True)
              * Rotation.from_euler("x", -sway[:, None], degrees=True))
    pelvis = Rotation.identity(len(cycle))
    signals = {name: imu_signals_at(rot, rate)
               for name, rot in (("thoracic", thorax), ("sacral", pelvis))}
    bias = {"thoracic": np.radians(bias_dps), "sacral": -np.radians(bias_dps)}
    out = []
    step = int(10 * rate)  # 10 s blocks, the IMUs interleaved as a strap sends them
    for k in range(int(hours * 60)):
        for i in range(0, len(cycle), step):
            part = slice(i, i + step)
            t = k * 60.0 + cycle[part]
            for name, (acc, gyro) in signals.items():
                noisy_acc = acc[part] + rng.normal(0, 0.02, (len(t), 3))
                noisy_gyro = gyro[part] + bias[name] + rng.normal(0, 0.002, (len(t), 3))
                out += tracker.feed(ImuBlock(name, k * len(cycle) + i, t, noisy_acc,
                                             noisy_gyro))
    out += tracker.finish()
    frames = [o for o in out if isinstance(o, MotionFrame)]
    times = np.array([f.t for f in frames])
    truth = np.interp(times % 60.0, cycle, twist)
    err = (np.array([f.twist_deg for f in frames]) - truth + 180.0) % 360.0 - 180.0
    return times, err


def test_two_hours_with_one_degree_per_second_of_bias_keep_twist_within_two_degrees() -> None:
    """A 2 h session (IMU arrays straight into the tracker, 50 Hz, so it stays cheap): the
    gyros read 1 deg/s off on every axis, in opposite directions on the two IMUs."""
    times, err = _long_drift_run(2.0, 1.0)
    assert times[-1] > 2 * 3600 - 10
    settled = times > 120.0  # VQF learns the biases at the first rests
    assert np.sqrt(np.mean(err[settled] ** 2)) < 1.0
    assert np.abs(err[settled]).max() < 2.0


def test_a_moving_start_calibrates_once_the_subject_stands_still(tmp_path: Path) -> None:
    """70 s of walking first (past the calibration timeout), then standing: the declared axes
    serve until then and the calibration comes at the first still period. After it, flexion
    is right for sensors 3-6 degrees off their declared axes (3 degrees RMSE if the declared
    axes stayed); lateral bend keeps the part of the misalignment that gravity cannot show
    (a turn about up) until the bends have shown it."""
    member = draw_motion(7, start="walking", busy_s=0.0)
    plan = [("walk", 70.0), ("stand", 8.0), ("bend", 3), ("twist", 2), ("side", 2),
            ("stand", 5.0), ("walk", 15.0), ("stand", 5.0)]
    simulate_session(tmp_path / "s", SimConfig("healthy", minutes=2.5, seed=7, mics=(),
                                               artifacts=False, motion=member), plan=plan)
    frames, _, tracker = track(tmp_path / "s")
    calibration = tracker.summary()["calibration"]
    assert calibration["method"] == "first still period, provisional axes before it"
    assert 70.0 <= calibration["t"] <= 78.0
    truth = Session(tmp_path / "s").motion_truth()
    m = frames.merge(truth, on="t", suffixes=("", "_true"))
    after = m[m["t"] > calibration["t"]]
    for axis, limit in (("flexion", 1.0), ("lateral", 2.0)):
        err = after[f"{axis}_deg"] - after[f"{axis}_deg_true"]
        assert np.sqrt(np.mean(err**2)) < limit, axis
    assert (after["context"] == after["context_true"]).mean() >= 0.95


def test_a_walking_start_that_sits_down_first_calibrates_when_the_subject_stands(
        tmp_path: Path) -> None:
    """25 s of walking, then sitting (the pelvis tipped back) before the first standing, all
    within the calibration timeout: the sitting still period is no upright one, so the
    calibration waits for the standing and flexion is right from there on."""
    member = draw_motion(7, start="walking", busy_s=0.0)
    plan = [("walk", 25.0), ("sit", 20.0), ("stand", 8.0), ("bend", 3), ("twist", 2),
            ("stand", 5.0), ("walk", 15.0), ("stand", 5.0)]
    simulate_session(tmp_path / "s", SimConfig("healthy", minutes=2.0, seed=7, mics=(),
                                               artifacts=False, motion=member), plan=plan)
    frames, _, tracker = track(tmp_path / "s")
    truth = Session(tmp_path / "s").motion_truth()
    calibration = tracker.summary()["calibration"]
    assert calibration["method"] == "first still period"
    assert calibration["t"] >= 25.0 + 20.0  # after the walk and the sitting
    m = frames.merge(truth, on="t", suffixes=("", "_true"))
    after = m[m["t"] > calibration["t"]]
    err = after["flexion_deg"] - after["flexion_deg_true"]
    assert np.sqrt(np.mean(err**2)) < 1.0


def _forced_member(tmp_path: Path, seed: int, start: str, thoracic: tuple[float, float],
                   sacral: tuple[float, float], plan: list, *, minutes: float):
    """A motion family tuning member forced to ``start`` and to IMU (rate Hz, phase s),
    simulated on ``plan`` and tracked: its frames merged with the truth (``_true``), and the
    tracker's calibration summary."""
    member = draw_motion(seed, start=start, busy_s=0.0)
    member = replace(member, thoracic=replace(member.thoracic, rate_hz=thoracic[0],
                                              phase_s=thoracic[1]),
                     sacral=replace(member.sacral, rate_hz=sacral[0], phase_s=sacral[1]))
    simulate_session(tmp_path / "s", SimConfig("healthy", minutes=minutes, seed=seed, mics=(),
                                               artifacts=False, motion=member), plan=plan)
    frames, _, tracker = track(tmp_path / "s")
    truth = Session(tmp_path / "s").motion_truth()
    return (frames.merge(truth, on="t", suffixes=("", "_true")),
            tracker.summary()["calibration"])


def test_a_bent_start_keeps_twist_and_side_bend_through_the_first_rest(tmp_path: Path) -> None:
    """Rising from a 50 degree bend, then 106 s of walking (past the calibration timeout, so
    the axes are provisional and the drift rate is learnt from walking), then the first
    rest (where VQF learns a 0.46 deg/s relative bias about the vertical), twists, a side
    bend and lying down, IMUs at 400 and 208 Hz. The twist is zeroed upright, not
    bent, where a turn about the vertical is part side bend; what VQF learns of the gyro
    biases at the first rest comes off the drift rate learnt before it, so the twist does
    not drift after it, nor show as side bend lying down."""
    plan = [("bent-start", 50.0), ("walk", 106.0), ("stand", 12.0), ("twist", 3), ("side", 2),
            ("twist", 2), ("lie", 30.0), ("stand", 5.0)]
    m, calibration = _forced_member(tmp_path, 30, "bent", (400.0, 0.001), (208.0, 0.002),
                                    plan, minutes=4.0)
    assert calibration["method"] == "first still period, provisional axes before it"
    # Once up from the bend (3.7 deg RMSE zeroed bent), and after the rest (0.6 deg each
    # with the drift rate left as walking had it).
    for part, axes, limit in ((m[(m["t"] > 4.0) & (m["t"] < 30.0)], ("twist",), 1.0),
                              (m[m["t"] > calibration["t"]], ("lateral", "twist"), 0.4)):
        for axis in axes:
            err = (part[f"{axis}_deg"] - part[f"{axis}_deg_true"] + 180.0) % 360.0 - 180.0
            assert np.sqrt(np.mean(err**2)) < limit, axis


def test_a_walking_start_learns_no_drift_rate_that_vqf_has_learnt_at_the_first_rest(
        tmp_path: Path) -> None:
    """43 s of walking, then the first rest and side bends, IMUs at 200 and 50 Hz. The
    walking re-zeros show the twist drift of the gyro biases VQF held while walking, and the
    backlog's headings follow it; at the rest VQF learns those biases (1.3 deg/s relative,
    about the vertical), so that drift is gone afterwards and must not be corrected again."""
    plan = [("walk", 43.0), ("stand", 6.0), ("side", 2), ("side", 2), ("extend", 2),
            ("side", 2), ("side", 2), ("stand", 4.0)]
    m, calibration = _forced_member(tmp_path, 27, "walking", (200.0, 0.001), (50.0, 0.013),
                                    plan, minutes=2.0)
    assert calibration["method"] == "first still period"
    after = m[m["t"] > calibration["t"]]
    err = (after["twist_deg"] - after["twist_deg_true"] + 180.0) % 360.0 - 180.0
    assert np.sqrt(np.mean(err**2)) < 1.0  # 3.3 deg with the walking rate kept


def test_motion_family_draws_stay_within_their_documented_ranges() -> None:
    members = [draw_motion(seed) for seed in range(200)]
    for m in members:
        assert m.thoracic.rate_hz != m.sacral.rate_hz
        for imu in (m.thoracic, m.sacral):
            assert 50.0 <= imu.rate_hz <= 400.0
            assert max(abs(v) for v in imu.gyro_bias_dps) <= 1.0
            assert max(abs(v) for v in imu.acc_bias_ms2) <= 0.1
            assert imu.misalignment_deg <= 10.0
    assert {m.start for m in members} == {"still", "walking", "bent"}
    assert max(max(abs(v) for v in m.thoracic.gyro_bias_dps) for m in members) > 0.95
    assert max(m.thoracic.misalignment_deg for m in members) > 9.0
    plan = draw_motion(3, start="bent", busy_s=600.0).plan(1800.0)
    assert plan[0][0] == "bent-start" and not any(name == "stand" for name, _ in plan[:6])


def test_drift_alone_is_never_labelled_twist() -> None:
    """Bending to and fro for 3 min without a still moment, the thoracic gyro 0.5 deg/s off
    about its vertical axis (which VQF cannot learn in motion): the twist drifts past 15 deg,
    but only the deliberate 35-degree twist at 150 s is labelled ``twist``."""
    rate = 50.0
    info = SessionInfo("S01", "drift", datetime(2026, 11, 20, tzinfo=UTC), (),
                       (ImuInfo("thoracic", "T12"), ImuInfo("sacral", "S1")))
    tracker = MotionTracker(info, {"thoracic": rate, "sacral": rate})
    t = np.arange(int(180 * rate)) / rate
    sway = 12.0 * (1 - np.cos(2 * np.pi * 0.25 * t))
    twist = 35.0 * (_ramp((t - 150.0) / 1.5) - _ramp((t - 154.0) / 1.5))
    thorax = (Rotation.from_euler("z", twist[:, None], degrees=True)
              * Rotation.from_euler("x", -sway[:, None], degrees=True))
    pelvis = Rotation.from_euler("x", -0.3 * sway[:, None], degrees=True)
    rng = np.random.default_rng(3)
    signals = {}
    for name, rot in (("thoracic", thorax), ("sacral", pelvis)):
        acc, gyro = imu_signals_at(rot, rate)
        if name == "thoracic":
            gyro = gyro + [0.0, 0.0, np.radians(0.5)]
        signals[name] = (acc + rng.normal(0, 0.02, acc.shape), gyro + rng.normal(0, 0.002,
                                                                                 gyro.shape))
    out = []
    step = int(5 * rate)
    for i in range(0, len(t), step):
        for name, (acc, gyro) in signals.items():
            out += tracker.feed(ImuBlock(name, i, t[i:i + step], acc[i:i + step],
                                         gyro[i:i + step]))
    out += tracker.finish()
    frames = frames_table([o for o in out if isinstance(o, MotionFrame)])
    drifted = frames[(frames["t"] < 145.0) & (frames["twist_deg"].abs() > 15.0)]
    assert len(drifted) > 100  # the drift got there...
    assert (drifted["context"] != "twist").all()  # ...and is not taken for a twist
    made = frames[(frames["t"] > 151.5) & (frames["t"] < 153.5)]
    assert (made["context"] == "twist").all()


def test_a_held_twist_is_not_erased_when_the_last_one_was_as_large(tmp_path: Path) -> None:
    """Two 30-degree twists to the left 10 s apart, each held still for 2 s: the second hold
    looks like the first from 10 s away, but it was made by moving and stays 30 degrees."""
    moves = [("z", 30.0), ("z", 30.0)]
    t, thorax = rotation_sequence(moves, rest_s=5.0, move_s=1.5, hold_s=2.0)
    frames, _, _ = track(write_session(tmp_path / "s", t, thorax, Rotation.identity(len(t))))
    second_hold = frames[(frames["t"] > 5.0 + 10.0 + 1.6) & (frames["t"] < 5.0 + 10.0 + 3.4)]
    assert len(second_hold) >= 15
    assert second_hold["twist_deg"].to_numpy() == pytest.approx(30.0, abs=0.5)
    assert (second_hold["context"] == "twist").all()
