"""Shared fixtures: small, deterministic, valid session folders written with SessionWriter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backpop_sense.session import DEFAULT_AXES, ImuInfo, MicInfo, SessionInfo, SessionWriter

MICS = ("T10", "L1", "L4")
IMUS = (("thoracic", "T12"), ("sacral", "S1"))
GRAVITY = 9.80665


@dataclass(frozen=True)
class Written:
    """What the factory wrote, in SI units and body axes (before any on-disk conversion)."""

    path: Path
    info: SessionInfo
    sr: int
    audio: np.ndarray
    imu: dict[str, dict[str, np.ndarray]]


def synth_audio(sr: int, duration_s: float, n_mics: int, seed: int = 1) -> np.ndarray:
    """Deterministic noise, shape (frames, mics), well inside full scale."""
    rng = np.random.default_rng(seed)
    return (0.25 * rng.standard_normal((round(sr * duration_s), n_mics))).clip(-0.9, 0.9)


def synth_imu(t: np.ndarray, phase: float) -> dict[str, np.ndarray]:
    """Gravity on body z plus small, distinct sinusoids on every axis (m/s^2, rad/s)."""
    w = 2 * np.pi * np.array([0.7, 1.1, 1.7])[None, :]
    acc = 0.3 * np.sin(w * t[:, None] + phase) + np.array([0.0, 0.0, GRAVITY])
    gyro = 0.2 * np.cos(1.3 * w * t[:, None] + phase) + np.array([0.01, -0.02, 0.03])
    return {"t": t, "acc": acc, "gyro": gyro}


class SessionFactory:
    """Write a valid session folder under ``tmp_path``; each call may choose its options.

    Call it with keyword options (see :meth:`__call__`); it returns the folder. The data it
    wrote are kept in :attr:`written` by folder, for tests that compare with what is read.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: dict[Path, Written] = {}

    def __call__(
        self,
        name: str = "good",
        *,
        duration_s: float = 3.0,
        sr: int = 8000,
        imu_rate: float = 100.0,
        acc_unit: str = "m/s^2",
        gyro_unit: str = "rad/s",
        axes: str = DEFAULT_AXES,
        audio_offset_s: float = 0.0,
        imu_hole: tuple[float, float] | None = None,
        extra: dict[str, Any] | None = None,
        side_tables: bool = True,
    ) -> Path:
        """Write a session and return its folder.

        ``imu_hole=(a, b)`` drops every IMU sample with ``a < t < b`` (seconds) from both IMUs.
        """
        path = self.root / name
        info = SessionInfo(
            subject="S01",
            session="2026-11-20a",
            start=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
            mics=tuple(MicInfo(m) for m in MICS),
            imus=tuple(ImuInfo(n, level, acc_unit, gyro_unit, axes) for n, level in IMUS),
            audio_offset_s=audio_offset_s,
            extra=extra or {},
        )
        audio = synth_audio(sr, duration_s, len(MICS))
        t = np.arange(round(duration_s * imu_rate)) / imu_rate
        if imu_hole is not None:
            t = t[(t <= imu_hole[0]) | (t >= imu_hole[1])]
        imu = {n: synth_imu(t, phase=0.5 * i) for i, (n, _) in enumerate(IMUS)}
        with SessionWriter(path, info, sr=sr) as w:
            w.write_audio(audio)
            for n, d in imu.items():
                w.write_imu(n, d["t"], d["acc"], d["gyro"])
            if side_tables:
                w.write_table("truth.csv", pd.DataFrame(
                    {"t": [0.5, 1.25, 2.75], "level": ["T10", "L1", "L4"],
                     "kind": ["cavitation", "snap", "readjustment"]}))
                w.write_table("motion_truth.csv", pd.DataFrame(
                    {"t": [0.0, 0.1, 0.2], "flexion_deg": [0.0, 12.5, 35.0],
                     "lateral_deg": [0.0, -3.0, 1.5], "twist_deg": [0.0, 20.0, -4.0],
                     "context": ["static", "twist", "stretch"]}))
                w.write_table("symptoms.csv", pd.DataFrame(
                    {"time": ["2026-11-20T09:30:30Z", "2026-11-20T09:31:00+01:00"],
                     "pain": [3, 7.5], "stiffness": [0, 10], "numbness": [0, 1],
                     "tingling": [0, 0], "weakness": [1, 0], "swelling": [0, 0],
                     "bruising": [0, 1], "trauma": [0, 0], "note": ["after lifting", ""]}))
        self.written[path] = Written(path, info, sr, audio, imu)
        return path


@pytest.fixture
def make_session(tmp_path: Path) -> SessionFactory:
    """Factory: ``make_session(name, duration_s=..., acc_unit=..., axes=..., ...) -> Path``."""
    return SessionFactory(tmp_path)


@pytest.fixture
def session_dir(make_session: SessionFactory) -> Path:
    """A small valid session: mics T10, L1, L4 at 8 kHz, 3 s; IMUs thoracic and sacral at
    100 Hz; truth.csv, motion_truth.csv and symptoms.csv."""
    return make_session()
