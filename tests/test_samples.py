"""The bundled sample cohort: valid, small, what the README says, and remade by its code."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backpop_sense.diary import read_diary_csv
from backpop_sense.samples import make_sample_cohort
from backpop_sense.session import Session
from backpop_sense.sources.emulator import check_session
from backpop_sense.sources.profiles import load_profile

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
BACKPOP = Path(sys.executable).parent / "backpop"


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_committed_samples_are_what_the_code_makes(tmp_path: Path) -> None:
    make_sample_cohort(tmp_path)
    made, committed = _files(tmp_path), _files(SAMPLES)
    assert made.keys() == committed.keys()
    # Text tables and metadata match exactly; signals to the last bit of their format, which
    # another CPU's floating point may flip.
    exact = [name for name in made if not name.endswith(("mic.wav", ".csv"))
             or name.endswith(("truth.csv", "diary.csv", "symptoms.csv"))]
    assert {n: made[n] for n in exact} == {n: committed[n] for n in exact}
    for folder in sorted(p.parent for p in SAMPLES.glob("*/*/session.json")):
        ours, theirs = Session(tmp_path / folder.relative_to(SAMPLES)), Session(folder)
        assert np.abs(ours.read_audio() - theirs.read_audio()).max() <= 2 / 32768
        for imu in ("thoracic", "sacral"):
            a, b = ours.read_imu(imu), theirs.read_imu(imu)
            np.testing.assert_allclose(a.acc, b.acc, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(a.gyro, b.gyro, rtol=1e-4, atol=1e-5)


def test_two_subjects_three_days_each_small_and_valid() -> None:
    sessions = sorted(p.parent for p in SAMPLES.glob("*/*/session.json"))
    assert [p.parent.name for p in sessions] == ["S01"] * 3 + ["S02"] * 3
    # At the reference strap's rates (16 kHz, 200 Hz) six 50 s sessions take about 37 MB.
    assert sum(f.stat().st_size for f in SAMPLES.rglob("*") if f.is_file()) <= 40e6
    for path in sessions:
        s = Session(path)
        s.validate()
        assert s.duration_s <= 120
    days = {Session(p).info.start.date() for p in sessions}
    assert len(days) == 6


@pytest.mark.parametrize("profile", ["backpop-strap-v1", "backpop-strap-v1-pcm"])
def test_every_sample_can_be_played_by_the_shipped_straps(profile: str) -> None:
    for path in sorted(p.parent for p in SAMPLES.glob("*/*/session.json")):
        check_session(Session(path), load_profile(profile))


def test_the_second_subject_has_the_history_the_rules_need() -> None:
    s02 = [Session(p) for p in sorted((SAMPLES / "S02").glob("*/session.json"))
           for p in [p.parent]]
    sims = [s.info.extra["simulation"] for s in s02]
    assert [sim["config"]["rom_scale"] for sim in sims] == [1.0, 0.85, 0.7]
    assert sum(len(sim["falls_s"]) for sim in sims) == 1
    assert sum(len(sim["catches_s"]) for sim in sims) == 1
    diary = read_diary_csv(SAMPLES / "S02" / "diary.csv")
    assert diary["tingling"].sum() == 1
    assert diary["trauma"].sum() == 1
    for s in s02:
        symptoms = s.symptoms()
        assert symptoms is not None and (symptoms["pain"] >= 5).all()
    healthy = read_diary_csv(SAMPLES / "S01" / "diary.csv")
    assert healthy[["numbness", "tingling", "weakness", "trauma"]].to_numpy().sum() == 0
    assert np.max(healthy["pain"]) <= 1


def test_demo_analyses_stores_and_flags_every_sample(tmp_path: Path) -> None:
    run = subprocess.run([str(BACKPOP), "demo"], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "COLUMNS": "160"})
    assert run.returncode == 0, run.stderr
    for path in SAMPLES.glob("*/*/session.json"):
        session = f"{path.parent.parent.name}/{path.parent.name}"
        assert session in run.stdout
        assert (tmp_path / "out" / session / "summary.json").is_file()
    assert (tmp_path / "backpop.db").is_file()
    assert "S01: no red flags" in run.stdout
    assert "URGENT" in run.stdout and "R5 Numbness, tingling or weakness" in run.stdout
    assert "not a diagnosis" in run.stdout
    for subject in ("S01", "S02"):
        assert (tmp_path / "reports" / f"{subject}.html").is_file()
        assert len(list((tmp_path / "reports" / subject).glob("*.html"))) == 3
