"""The motion stage measured: angles, context, catches, falls, speed, memory, and real data.

Simulated part
    Fresh sessions (seeds the parameters were never tuned on) are simulated into
    ``bench-out/motion/`` (cached): the four short scenarios with a catch, the ``long`` one
    (10 min), two series of catches among other movements (forward bends arrested; bends,
    twists and side bends arrested with random timing), a series of falls (backward, forward,
    to either side, with random timing and impact), and a day-living plan (walking,
    sitting, lying down slowly, turning) that holds no fall and no catch, and ``long``
    sessions of 10 min and 2 h (seed 2001) of daily living. Each is replayed
    through :class:`~backpop_sense.motion.tracker.MotionTracker` and scored against its truth
    with :func:`~backpop_sense.motion.evaluate.score_motion`. Angle RMSE and context accuracy
    are pooled over every frame; catches and falls are counted over every session.

Motion family
    ``--family``: members of :mod:`backpop_sense.motion_family` (IMU errors, different rates,
    moving and busy starts), 10 min each: the tuning members (``FAMILY_TUNING``, looked at
    while choosing parameters, and ``FAMILY_FORCED``, tuning seeds forced to the conditions
    of two earlier held-out misses), the held-out members (``FAMILY_HELDOUT``, seeds
    1400-1411, never used for choosing) and the previous held-out set (``FAMILY_EARLIER``);
    ``--long`` adds a 2 h member to each of the last two. Each is tracked from its session
    folder and scored against its truth.

Speed and memory
    A fresh process replays and tracks a 10 min and a 2 h session (two 200 Hz IMUs, block
    size 4096): throughput is the time spent inside the tracker's ``feed``/``finish`` (reading
    the files is not counted), as session seconds times IMUs over wall seconds; peak memory
    (VmHWM) shows whether memory grows with session length.

Real data
    The three BROAD trials in ``../shared/data/broad``, each written as a one-IMU session
    folder whose mounting is declared ``exact`` (BROAD's reference is the sensor's own
    orientation) and analysed end to end (``motion.csv``), next to VQF offline through the
    same angle path, the same folder declared ``calibrate`` and the orientation stage alone,
    scored as BROAD defines it (inclination RMSE over the movement phase, constant heading
    offset removed); see :func:`broad`.

Run: ``.venv/bin/python benchmarks/motion.py`` (``--quick`` for one seed and no 2 h session,
``--broad`` for the BROAD table alone).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import vqf
from publish import published
from scipy.spatial.transform import Rotation, Slerp

from backpop_sense.motion.evaluate import (
    events_table,
    frames_table,
    orientation_errors,
    score_motion,
)
from backpop_sense.motion.orientation import (
    ImuOrientation,
    quat_about_z,
    quat_between,
    quat_conjugate,
    quat_multiply,
    quat_rotate,
)
from backpop_sense.motion.spine import segment_angles_quat, segment_rotation
from backpop_sense.motion.ticks import TICK_S
from backpop_sense.motion.tracker import DEFAULT_MOTION, MotionEvent, MotionFrame, MotionTracker
from backpop_sense.motion_family import MotionMember, describe, draw_motion
from backpop_sense.results import analyze_to
from backpop_sense.session import ImuInfo, Session, SessionInfo, read_info
from backpop_sense.simulate import SimConfig, simulate_session
from backpop_sense.sources.replay import ReplaySource

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench-out" / "motion"
BROAD = ROOT.parent / "shared" / "data" / "broad"
EVALUATION_SEEDS = (1001, 1002, 1003)
"""Never used while choosing parameters (those were seeds 1-5; the tests use 31-33); the
long sessions use seed 2001."""

CATCH_PLAN = [("catch", 1), ("walk", 10), ("catch", 1), ("twist", 2), ("catch", 1), ("sit", 12),
              ("catch", 1), ("bend", 2), ("catch", 1), ("side", 2), ("catch", 1), ("walk", 8),
              ("catch", 1), ("extend", 2), ("catch", 2), ("turn", 90), ("catch", 1)]
VARIED_PLAN = [("varied-catch", 2), ("walk", 10), ("varied-catch", 2), ("twist", 2),
               ("varied-catch", 2), ("sit", 12), ("varied-catch", 2), ("bend", 2),
               ("varied-catch", 2), ("side", 2), ("varied-catch", 2), ("walk", 8),
               ("varied-catch", 2)]
FALL_PLAN = [("walk", 8), ("varied-fall", 6), ("stand", 3), ("varied-fall", 8), ("walk", 10),
             ("varied-fall", 6), ("bend", 1), ("varied-fall", 5), ("sit", 10), ("varied-fall", 5)]
DAILY_PLAN = [("walk", 30), ("sit", 40), ("stand", 5), ("lie", 30), ("walk", 20), ("turn", -90),
              ("bend", 3), ("twist", 3), ("sit", 30), ("walk", 40), ("lie", 20), ("stand", 10),
              ("side", 3), ("extend", 2), ("walk", 25), ("turn", 180), ("walk", 25)]

CHILD = """
import json, sys, time
from backpop_sense.motion.tracker import MotionTracker
from backpop_sense.sources.replay import ReplaySource
source = ReplaySource(sys.argv[1])
session = source.session
tracker = MotionTracker(session.info, session.imu_rates)
busy = 0.0
outputs = 0
for block in source:
    t = time.perf_counter()
    outputs += len(tracker.feed(block))
    busy += time.perf_counter() - t
t = time.perf_counter()
outputs += len(tracker.finish())
busy += time.perf_counter() - t
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent that simulated.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"outputs": outputs, "tracker_s": busy, "session_s": session.duration_s,
                  "imus": len(session.imu_rates), "peak_rss_mb": int(hwm.split()[1]) / 1024}))
"""


def plan_sessions(seeds: tuple[int, ...]) -> list[tuple[str, SimConfig, list | None]]:
    """Every evaluation session: (name, config, plan)."""
    out: list[tuple[str, SimConfig, list | None]] = []
    for seed in seeds:
        for scenario in ("healthy", "twist-cavitation", "snapping", "post-fall"):
            out.append((f"{scenario}-s{seed}", SimConfig(scenario, minutes=3, seed=seed, sr=4000,
                                                         artifacts=False, with_catch=True), None))
        out.append((f"long-s{seed}", SimConfig("long", minutes=10, seed=seed, sr=4000,
                                               artifacts=False, with_catch=True), None))
        out.append((f"catches-s{seed}", SimConfig("healthy", minutes=2.5, seed=seed, sr=4000,
                                                  artifacts=False), CATCH_PLAN))
        out.append((f"varied-catches-s{seed}", SimConfig("healthy", minutes=3, seed=seed,
                                                         sr=4000, artifacts=False), VARIED_PLAN))
        out.append((f"falls-s{seed}", SimConfig("healthy", minutes=2.5, seed=seed, sr=4000,
                                                artifacts=False), FALL_PLAN))
        out.append((f"daily-living-s{seed}", SimConfig("healthy", minutes=7, seed=seed, sr=4000,
                                                       artifacts=False), DAILY_PLAN))
    return out


def simulated(name: str, config: SimConfig, plan: list | None) -> Path:
    path = OUT / name
    if not (path / "motion_truth.csv").exists():
        if path.exists():
            raise SystemExit(f"{path} is incomplete; remove it and run again")
        simulate_session(path, config, plan=plan)
    return path


def run_tracker(path: Path, block_size: int = 4096) -> tuple[pd.DataFrame, pd.DataFrame, dict,
                                                              float]:
    """Frames, events, summary and seconds spent in the tracker for one session."""
    source = ReplaySource(path, block_size=block_size)
    tracker = MotionTracker(source.session.info, source.session.imu_rates)
    out = []
    busy = 0.0
    for block in source:
        t = time.perf_counter()
        out += tracker.feed(block)
        busy += time.perf_counter() - t
    t = time.perf_counter()
    out += tracker.finish()
    busy += time.perf_counter() - t
    frames = frames_table([o for o in out if isinstance(o, MotionFrame)])
    events = events_table([o for o in out if isinstance(o, MotionEvent)])
    return frames, events, tracker.summary(), busy


def evaluate_simulated(items: list[tuple[str, SimConfig, list | None]]) -> dict:
    errors = {"flexion": [], "lateral": [], "twist": []}
    correct = total = 0
    counts = {k: {"truth": 0, "hits": 0, "false": 0} for k in ("catch", "fall")}
    hours = 0.0
    walking_hours = 0.0
    per_kind: dict[str, list[dict]] = {}
    drift = []
    for name, config, plan in items:
        path = simulated(name, config, plan)
        session = Session(path)
        frames, events, summary, _ = run_tracker(path)
        truth = session.motion_truth()
        scores = score_motion(frames, truth, events, session.info.extra["simulation"])
        m = frames.merge(truth, on="t", suffixes=("", "_true"))
        for axis in errors:
            err = m[f"{axis}_deg"] - m[f"{axis}_deg_true"]
            errors[axis].append(((err + 180) % 360 - 180).to_numpy())
        correct += int((m["context"] == m["context_true"]).sum())
        total += len(m)
        hours += session.duration_s / 3600
        walking_hours += (truth["context"] == "walk").sum() / 36000
        for kind in counts:
            for key in counts[kind]:
                counts[kind][key] += scores[kind][key]
        per_kind.setdefault(name.rsplit("-s", 1)[0], []).append(scores)
        if summary["twist_drift"]["max_abs_deg"] is not None:
            drift.append(summary["twist_drift"]["max_rate_deg_per_min"])
    rmse = {axis: float(np.sqrt(np.mean(np.concatenate(v) ** 2))) for axis, v in errors.items()}
    worst = {axis: max(s["rmse_deg"][axis] for v in per_kind.values() for s in v)
             for axis in errors}
    return {
        "sessions": sum(len(v) for v in per_kind.values()), "hours": hours,
        "walking_hours": walking_hours, "frames": total, "rmse_deg": rmse,
        "worst_session_rmse_deg": worst, "context_accuracy": correct / total,
        "context_by_kind": {k: float(np.mean([s["context_accuracy"] for s in v]))
                            for k, v in per_kind.items()},
        "events": counts, "max_twist_drift_deg_per_min": max(drift) if drift else None,
    }


def replay_in_child(path: Path) -> dict:
    """Replay and track a session in a fresh process: time inside the tracker, peak RSS."""
    result = subprocess.run([sys.executable, "-c", CHILD, str(path)], check=True,
                            capture_output=True, text=True)
    r = json.loads(result.stdout)
    r["x_real_time"] = r["session_s"] / r["tracker_s"]
    r["x_real_time_per_imu"] = r["session_s"] * r["imus"] / r["tracker_s"]
    return r


def broad_session(trial: Path, folder: Path, mounting: str = "exact") -> Path:
    """A BROAD trial as a one-IMU, IMU-only session folder, its sensor axes declared as body
    axes with ``mounting`` (``exact``: the reference is the sensor's own orientation, so
    nothing is to be calibrated); the IMU file is written once, ``session.json`` again
    whenever it declares something else (a folder from before the mounting was declared)."""
    info = SessionInfo("BROAD", trial.name.split("_")[0], datetime(2021, 7, 1, tzinfo=UTC), (),
                       (ImuInfo("thoracic", "T12", mounting=mounting),))
    if not (folder / "session.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        imu = pd.read_csv(trial / "imu.csv.gz")
        imu[["t", "ax", "ay", "az", "gx", "gy", "gz"]].to_csv(folder / "imu_thoracic.csv",
                                                              index=False, float_format="%.9g")
    elif read_info(folder) == info:
        return folder
    (folder / "session.json").write_text(json.dumps(info.to_json(), indent=2) + "\n")
    return folder


def _quat_at(t_source: np.ndarray, quat: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Orientations ``[w, x, y, z]`` at times ``t`` (slerp); NaN where the source is NaN."""
    ok = np.isfinite(quat).all(axis=1)
    slerp = Slerp(t_source[ok], Rotation.from_quat(quat[ok][:, [1, 2, 3, 0]]))
    out = slerp(np.clip(t, t_source[ok][0], t_source[ok][-1])).as_quat()[:, [3, 0, 1, 2]]
    near = np.clip(np.searchsorted(t_source, t), 0, len(t_source) - 1)
    out[~ok[near] | ~ok[np.maximum(near - 1, 0)]] = np.nan
    return out


def _angle_path(frames: pd.DataFrame) -> np.ndarray:
    """The one-IMU angles of ``motion.csv`` back to an orientation ``[w, x, y, z]``."""
    rot = segment_rotation(frames["flexion_deg"], frames["lateral_deg"], frames["twist_deg"])
    return rot.as_quat()[:, [3, 0, 1, 2]]


def _inclination(quat: np.ndarray, reference: np.ndarray, moving: np.ndarray) -> float:
    """Inclination RMSE (deg) of orientations ``[w, x, y, z]`` after the one-IMU angle path
    (angles rounded as in ``motion.csv``)."""
    angles = pd.DataFrame(np.round(segment_angles_quat(quat), 2),
                          columns=["flexion_deg", "lateral_deg", "twist_deg"])
    return orientation_errors(_angle_path(angles), reference, moving)["inclination_rmse_deg"]


def _tracker_mount(imu: pd.DataFrame, calibration: dict) -> np.ndarray:
    """The mounting rotation the tracker calibrated (``summary.json``), made again from the
    trial: gravity is the mean accelerometer over the still window round the calibration
    tick, then the learnt yaw."""
    half = DEFAULT_MOTION.context.still_window_s / 2
    t0 = calibration["t"] - TICK_S / 2
    window = ((imu["t"] >= t0 - half) & (imu["t"] < t0 + half)).to_numpy()
    gravity = imu.loc[window, ["ax", "ay", "az"]].to_numpy().mean(axis=0)
    yaw = np.radians(calibration["mount_yaw_deg"]["thoracic"])
    return quat_multiply(quat_between(np.array([0.0, 0.0, 1.0]), gravity), quat_about_z(-yaw))


def _rest_tilts(imu: pd.DataFrame, ref: pd.DataFrame) -> tuple[float, float]:
    """The sensor's tilt before the first movement (deg), from the optical reference and from
    the accelerometer."""
    first = ref["t"].to_numpy()[np.argmax(ref["movement"].to_numpy() == 1)]
    q = ref.loc[ref["t"] < first, ["qw", "qx", "qy", "qz"]].to_numpy()
    up = np.nanmean(quat_rotate(quat_conjugate(q), np.array([0.0, 0.0, 1.0])), axis=0)
    acc = imu.loc[imu["t"] < first, ["ax", "ay", "az"]].to_numpy().mean(axis=0)
    return tuple(float(np.degrees(np.arccos(v[2] / np.linalg.norm(v)))) for v in (up, acc))


def _analysed(trial: Path, mounting: str) -> tuple[pd.DataFrame, dict]:
    """``motion.csv`` and the motion calibration (``summary.json``) of ``trial`` as a session
    folder declaring ``mounting``, through ``analyze`` (what ``backpop analyze`` runs)."""
    name = "broad" if mounting == "exact" else f"broad-{mounting}"
    folder = broad_session(trial, OUT / name / trial.name, mounting)
    out = OUT / f"{name}-out" / trial.name
    analyze_to(folder, out)
    summary = json.loads((out / "summary.json").read_text())
    return pd.read_csv(out / "motion.csv"), summary["motion"]["calibration"]


def broad() -> list[dict]:
    """Each BROAD trial several ways, inclination RMSE over the movement phase at the 10 Hz
    frame times (reference slerped to them, BROAD's constant heading offset free):

    ``end_to_end``: the trial as a session folder declaring its mounting ``exact`` through
    ``analyze``, the tilt rebuilt from ``motion.csv``; ``vqf_offline``: VQF's offline
    estimate through the same angle path; ``online``: online VQF (the tracker's filter) at
    the frame times through that path (what ``motion.csv`` is, with nothing calibrated);
    ``calibrate_end_to_end``: the same folder declaring ``calibrate`` (the tracker takes the
    sensor's tilt at its first still period for upright, and refines its yaw from movement)
    through ``analyze``; ``vqf_offline_calibrated``: VQF offline with that calibration's
    mount; ``orientation``: the orientation stage alone (online VQF, every sample, as in
    issue 4); the sensor's tilt at rest before the first movement, optical and from the
    accelerometer, and the calibration's tilt.
    """
    rows = []
    for trial in sorted(p for p in BROAD.iterdir() if p.is_dir()):
        frames, exact = _analysed(trial, "exact")
        calibrated_frames, calibration = _analysed(trial, "calibrate")
        assert exact["mounting"] == {"thoracic": "exact"}
        imu = pd.read_csv(trial / "imu.csv.gz")
        ref = pd.read_csv(trial / "reference.csv.gz")
        t = frames["t"].to_numpy()
        reference = _quat_at(ref["t"].to_numpy(), ref[["qw", "qx", "qy", "qz"]].to_numpy(), t)
        moving = ref["movement"].to_numpy()[np.clip(np.searchsorted(ref["t"], t), 0,
                                                    len(ref) - 1)] == 1
        gyro = np.ascontiguousarray(imu[["gx", "gy", "gz"]].to_numpy())
        acc = np.ascontiguousarray(imu[["ax", "ay", "az"]].to_numpy())
        ts = float(np.median(np.diff(imu["t"])))
        offline = _quat_at(imu["t"].to_numpy(), vqf.offlineVQF(gyro, acc, None, ts)["quat6D"], t)
        filt = ImuOrientation(1.0 / ts)
        online = np.concatenate([filt.update(gyro[i:i + 1024], acc[i:i + 1024]).quat
                                 for i in range(0, len(imu), 1024)])
        stage = orientation_errors(online, ref[["qw", "qx", "qy", "qz"]].to_numpy(),
                                   ref["movement"].to_numpy() == 1)
        online = _quat_at(imu["t"].to_numpy(), online, t)
        mount = _tracker_mount(imu, calibration)
        optical, accelerometer = _rest_tilts(imu, ref)
        assert (calibrated_frames["t"].to_numpy() == t).all()
        rows.append({
            "trial": trial.name,
            "end_to_end_deg": orientation_errors(_angle_path(frames), reference,
                                                 moving)["inclination_rmse_deg"],
            "vqf_offline_deg": _inclination(offline, reference, moving),
            "online_deg": _inclination(online, reference, moving),
            "calibrate_end_to_end_deg": orientation_errors(
                _angle_path(calibrated_frames), reference, moving)["inclination_rmse_deg"],
            "vqf_offline_calibrated_deg": _inclination(quat_multiply(offline, mount),
                                                       reference, moving),
            "orientation_stage_deg": stage["inclination_rmse_deg"],
            "orientation_stage_heading_deg": stage["heading_rmse_deg"],
            "rest_tilt_optical_deg": optical, "rest_tilt_accelerometer_deg": accelerometer,
            "calibration_tilt_deg": calibration["mount_tilt_deg"]["thoracic"],
        })
    return rows


FAMILY_TUNING = (*range(18), 24, 35, 36, 47, 52, 57, 62, 65, 87)
"""Motion family members looked at while choosing parameters (10 min each): seeds 0-17, and
the tuning seeds drawn with the conditions of held-out 1301 and 1303 (a bent start with IMUs
at 200-400 Hz; a walking start with a 50 Hz IMU)."""
FAMILY_FORCED = tuple((seed, start, rates) for start, rates in (("bent", (400.0, 208.0)),
                                                                ("walking", (200.0, 50.0)))
                      for seed in (20, 21, 22, 23, 25, 26, 27, 28, 29, 30))
"""Tuning members forced to the conditions of held-out 1301 (bent start, 400/208 Hz) and 1303
(walking start, 200/50 Hz), no busy stretch: (seed, start, thoracic and sacral rate, Hz)."""
FAMILY_HELDOUT = tuple(range(1400, 1412))
"""Motion family members reported on, never run before the parameters were fixed (10 min
each; 2 h for the first with ``--long``). Seeds 1000-1005, 1100-1111 and 1200-1211 were each
run once at an earlier commit (``motion.md``) and are no longer reported as held out."""
FAMILY_EARLIER = tuple(range(1300, 1312))
"""The previous held-out set, run again: the conditions of its two misses (not their data)
were reproduced on tuning members, so it is no longer clean."""


def forced_member(seed: int, start: str, rates: tuple[float, float]) -> MotionMember:
    """Tuning member ``seed`` with the given start and IMU rates (thoracic, sacral; each clock
    phase kept within the new sample period) and no busy stretch."""
    member = draw_motion(seed, start=start, busy_s=0.0)
    return replace(member, **{name: replace(member.imu(name), rate_hz=rate,
                                            phase_s=member.imu(name).phase_s % (1.0 / rate))
                              for name, rate in zip(("thoracic", "sacral"), rates,
                                                    strict=True)})


def family_sessions(members: list[tuple[str, MotionMember]], minutes: float) -> list[dict]:
    """Track motion family members (IMU-only sessions, each in its folder under
    ``bench-out/motion``) and score them against their truth."""
    rows = []
    for folder, member in members:
        path = OUT / folder
        if not (path / "motion_truth.csv").exists():
            simulate_session(path, SimConfig("healthy", minutes=minutes, seed=member.seed,
                                             mics=(), artifacts=False, motion=member))
        frames, _, summary, busy = run_tracker(path)
        session = Session(path)
        scores = score_motion(frames, session.motion_truth())
        rows.append({"seed": member.seed, "minutes": minutes, **describe(member),
                     "rmse_deg": scores["rmse_deg"], "frames": scores["frames"],
                     "context_accuracy": scores["context_accuracy"],
                     "calibration": summary["calibration"]["method"],
                     "x_real_time_per_imu": 2 * session.duration_s / busy})
    return rows


def drawn(seeds: tuple[int, ...], minutes: float) -> list[dict]:
    """:func:`family_sessions` of members drawn from their seeds."""
    return family_sessions([(f"family/s{seed}-{minutes:g}min", draw_motion(seed))
                            for seed in seeds], minutes)


def print_family(title: str, rows: list[dict]) -> None:
    """One line per member: its draw, angle RMSE and context agreement."""
    print(f"\n{title}")
    print(f"{'seed':>5} {'min':>4} {'start':>8} {'busy s':>6} {'rates Hz':>10} "
          f"{'misalign deg':>12} {'flex/lat/twist RMSE deg':>24} {'context':>8}")
    for r in rows:
        e = r["rmse_deg"]
        rates = f"{r['thoracic']['rate_hz']:g}/{r['sacral']['rate_hz']:g}"
        mis = f"{r['thoracic']['misalignment_deg']:.1f}/{r['sacral']['misalignment_deg']:.1f}"
        print(f"{r['seed']:>5} {r['minutes']:>4g} {r['start']:>8} {r['busy_s']:>6.0f} "
              f"{rates:>10} {mis:>12} "
              f"{e['flexion']:>8.2f}/{e['lateral']:.2f}/{e['twist']:.2f}       "
              f"{100 * r['context_accuracy']:>6.1f} %")
    frames = np.array([r["frames"] for r in rows], dtype=float)
    pooled = {axis: float(np.sqrt(np.sum(frames * [r["rmse_deg"][axis] ** 2 for r in rows])
                                  / frames.sum())) for axis in ("flexion", "lateral", "twist")}
    met = sum(r["rmse_deg"]["flexion"] <= 1 and r["rmse_deg"]["lateral"] <= 1
              and r["rmse_deg"]["twist"] <= 2 and r["context_accuracy"] >= 0.95 for r in rows)
    context = float(np.sum(frames * [r["context_accuracy"] for r in rows]) / frames.sum())
    print(f"{'pooled':>5} {frames.sum() / 36000:>4.1f}h {'':>8} {'':>6} {'':>10} {'':>12} "
          f"{pooled['flexion']:>8.2f}/{pooled['lateral']:.2f}/{pooled['twist']:.2f}       "
          f"{100 * context:>6.1f} %   ({met} of {len(rows)} members meet every target)")
    print("targets on held-out members: RMSE <= 1 / 1 / 2 deg, context >= 95 %")


def family_tables(*, long: bool) -> None:
    """The motion family tables: tuning, forced tuning, held out and the previous held-out
    set (``long``: a 2 h member for each of the last two)."""
    print_family("motion family, tuning members (looked at while choosing parameters)",
                 drawn(FAMILY_TUNING, 10.0))
    print_family("motion family, tuning members forced to the conditions of held-out 1301 "
                 "(bent, 400/208 Hz) and 1303 (walking, 200/50 Hz)", family_sessions(
                     [(f"family-forced/{start[:4]}-s{seed}", forced_member(seed, start, rates))
                      for seed, start, rates in FAMILY_FORCED], 10.0))
    for title, seeds in (("held-out members (never run before, never used for choosing)",
                          FAMILY_HELDOUT),
                         ("the previous held-out members, run again (see FAMILY_EARLIER)",
                          FAMILY_EARLIER)):
        rows = drawn(seeds, 10.0) + (drawn(seeds[:1], 120.0) if long else [])
        print_family(f"motion family, {title}", rows)


def print_broad(real: list[dict]) -> None:
    """The BROAD end-to-end table next to VQF offline, and where the difference goes."""
    if not real:
        return
    print("\nBROAD (real IMU, optical truth), one-IMU session folder (mounting exact) end to "
          "end: inclination RMSE, deg")
    print(f"{'trial':<34} {'motion.csv':>11} {'VQF offline':>12} {'difference':>11} "
          f"{'target met':>11}")
    for r in real:
        difference = r["end_to_end_deg"] - r["vqf_offline_deg"]
        met = difference <= 0.2 and r["end_to_end_deg"] <= 1.0
        print(f"{r['trial']:<34} {r['end_to_end_deg']:>11.2f} {r['vqf_offline_deg']:>12.2f} "
              f"{difference:>+11.2f} {'yes' if met else 'no':>11}")
    print("target: motion.csv within 0.2 deg of VQF offline on each trial, and <= 1 deg")
    print("\nwhere it goes: online VQF (the tracker's filter) through the same angle path; the "
          "folder declaring mounting calibrate; the sensor's tilt at rest, deg")
    print(f"{'trial':<34} {'online':>7} {'calibrate: motion.csv / VQF offline':>36} "
          f"{'orientation stage (incl/heading)':>33} "
          f"{'tilt at rest optical/acc':>25} {'calibration tilt':>17}")
    for r in real:
        print(f"{r['trial']:<34} {r['online_deg']:>7.2f} {r['calibrate_end_to_end_deg']:>22.2f}"
              f" / {r['vqf_offline_calibrated_deg']:<11.2f}"
              f"{r['orientation_stage_deg']:>16.2f} / {r['orientation_stage_heading_deg']:<14.2f}"
              f" {r['rest_tilt_optical_deg']:>14.2f} / {r['rest_tilt_accelerometer_deg']:<8.2f}"
              f" {r['calibration_tilt_deg']:>17.2f}")
    print("online: what motion.csv is with the mounting exact (nothing calibrated); calibrate: "
          "the tracker takes the sensor's tilt at its first still period for upright (and its "
          "yaw from movement), end to end and applied to VQF offline")


def long_session(minutes: float) -> tuple[str, SimConfig, None]:
    """A ``long`` day-living session (no catch, no fall), for speed, memory and false alarms."""
    return (f"long-{minutes:g}min", SimConfig("long", minutes=minutes, seed=2001, sr=4000,
                                              artifacts=False), None)


def _long(minutes: float) -> Path:
    return simulated(*long_session(minutes))


def summary_rows(sim: dict, runs: dict[int, dict]) -> list[tuple[str, str, str]]:
    """The evaluation table's rows (measure, result, target) from the simulated sessions'
    scores and the replays in a child process (by session minutes)."""
    ev = sim["events"]
    speed = runs[max(runs)]
    memory = {minutes: r["peak_rss_mb"] for minutes, r in runs.items()}

    def rate(kind: str) -> tuple[str, str]:
        c = ev[kind]
        recall = f"{100 * c['hits'] / c['truth']:.0f} % ({c['hits']}/{c['truth']})"
        return recall, f"{c['false']} ({c['false'] / sim['hours']:.2f}/h)"

    rows = [
        ("flexion RMSE, pooled (worst session)",
         f"{sim['rmse_deg']['flexion']:.2f} ({sim['worst_session_rmse_deg']['flexion']:.2f}) deg",
         "<= 2 deg"),
        ("lateral bend RMSE, pooled (worst session)",
         f"{sim['rmse_deg']['lateral']:.2f} ({sim['worst_session_rmse_deg']['lateral']:.2f}) deg",
         "<= 2 deg"),
        ("twist RMSE, pooled (worst session)",
         f"{sim['rmse_deg']['twist']:.2f} ({sim['worst_session_rmse_deg']['twist']:.2f}) deg",
         "<= 3 deg"),
        ("context accuracy", f"{100 * sim['context_accuracy']:.1f} %", ">= 90 %"),
        ("catch recall", rate("catch")[0], ">= 90 %"),
        ("false catches", rate("catch")[1], "<= 1/h"),
        ("fall recall", rate("fall")[0], "100 %"),
        ("false falls (walking, sitting, lying down)", rate("fall")[1], "0"),
        ("largest twist drift removed at a re-zero",
         f"{sim['max_twist_drift_deg_per_min']:.2f} deg/min"
         if sim["max_twist_drift_deg_per_min"] is not None else "-", ""),
    ]
    rows += [(f"throughput per 200 Hz IMU, {minutes} min session",
              f"{r['x_real_time_per_imu']:.0f} x real time", ">= 5000 x")
             for minutes, r in runs.items()]
    rows.append(("throughput, whole 2-IMU session", f"{speed['x_real_time']:.0f} x real time",
                 ""))
    rows += [(f"peak RSS, {minutes} min session (replay + tracker)", f"{mb:.1f} MB", "flat")
             for minutes, mb in memory.items()]
    if len(memory) == 2:
        rows.append(("peak RSS, 2 h against 10 min",
                     f"{100 * (memory[120] / memory[10] - 1):+.1f} %", "flat"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, no 2 h session")
    parser.add_argument("--broad", action="store_true",
                        help="only the BROAD end-to-end table")
    parser.add_argument("--family", action="store_true",
                        help="only the motion family tables (tuning and held out)")
    parser.add_argument("--long", action="store_true",
                        help="with --family, also a 2 h held-out member")
    args = parser.parse_args()
    if args.broad:
        print_broad(broad())
        return
    if args.family:
        family_tables(long=args.long)
        return
    seeds = EVALUATION_SEEDS[:1] if args.quick else EVALUATION_SEEDS
    t0 = time.perf_counter()
    lengths = (10,) if args.quick else (10, 120)
    sim = evaluate_simulated(plan_sessions(seeds) + [long_session(m) for m in lengths])
    runs = {minutes: replay_in_child(_long(minutes)) for minutes in lengths}
    real = broad() if BROAD.is_dir() else []
    print(f"\nmotion stage, {sim['sessions']} fresh simulated sessions (seeds "
          f"{', '.join(map(str, seeds))} and 2001 for {' and '.join(map(str, lengths))} min of "
          f"daily living; {sim['hours']:.2f} h, {sim['walking_hours']:.2f} h walking, "
          f"{sim['frames']} frames at 10 Hz)")
    print(f"{'measure':<44} {'result':>22} {'target':>14}")
    rows = summary_rows(sim, runs)
    for name, value, target in rows:
        print(f"{name:<44} {value:>22} {target:>14}")
    print_broad(real)
    print("context accuracy by session kind: " + ", ".join(
        f"{k} {100 * v:.1f} %" for k, v in sim["context_by_kind"].items()))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(
        {"simulated": sim, "replay": runs, "broad": real},
        indent=2, default=float) + "\n")
    print(f"(details in {OUT / 'results.json'}; {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    with published("motion.py"):
        main()
