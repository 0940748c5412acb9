"""The bundled sample cohort (``data/samples``): how it is made, so anyone can remake it.

Two subjects, three sessions each on different days, made with the simulator, and a symptom
diary per subject:

- ``S01`` is healthy: ordinary days, the odd harmless pop, no symptoms to speak of.
- ``S02`` develops a history that the red-flag rules should notice: pain reported right after
  pops, range of motion falling session by session (100 %, 85 %, 70 % of the first), a fall
  with pops after it, a catch mid-bend, a tendon snapping at the same level, and tingling
  reported once.

Sessions are short (50 s), recorded at the reference strap's rates (16 kHz audio, IMUs at
200 Hz) so that ``backpop record --profile backpop-strap-v1 --emulate`` can play any of them.

Run ``python -m backpop_sense.samples OUT`` (``make samples``) to remake it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd

from .diary import DIARY_COLUMNS, write_diary_csv
from .simulate import SimConfig, simulate_session, start_of_day

SAMPLE_SECONDS = 50.0


@dataclass(frozen=True)
class _Visit:
    day: int
    config: SimConfig
    pain_after_pops: float | None


def _visits() -> dict[str, list[_Visit]]:
    def cfg(subject: str, day: int, scenario: str, seed: int, **kw: object) -> SimConfig:
        start = start_of_day(day)
        return SimConfig(scenario=scenario, minutes=SAMPLE_SECONDS / 60, seed=seed, sr=16000,
                         imu_rate=200.0, subject=subject, start=start,
                         session=f"{start:%Y-%m-%d}a", **kw)  # type: ignore[arg-type]

    return {
        "S01": [
            _Visit(0, cfg("S01", 0, "healthy", 101, pop_scale=4.0), None),
            _Visit(7, cfg("S01", 7, "healthy", 102, pop_scale=4.0), None),
            _Visit(14, cfg("S01", 14, "healthy", 103, pop_scale=4.0), None),
        ],
        "S02": [
            _Visit(1, cfg("S02", 1, "snapping", 201, snap_level="L3"), 5.0),
            _Visit(8, cfg("S02", 8, "post-fall", 202, rom_scale=0.85, snap_level="L3",
                          with_fall=True, pop_scale=2.0), 6.0),
            _Visit(15, cfg("S02", 15, "snapping", 203, rom_scale=0.7, snap_level="L3",
                           with_catch=True, catch_pop=1.0), 7.0),
        ],
    }


def _entry(time: pd.Timestamp, pain: float, stiffness: float, note: str = "",
           **flags: int) -> dict:
    row = {c: 0 for c in DIARY_COLUMNS}
    row.update(time=time, pain=pain, stiffness=stiffness, note=note, **flags)
    return row


def make_sample_cohort(root: str | Path) -> list[Path]:
    """Write the sample cohort under ``root``; returns the session folders."""
    root = Path(root)
    folders = []
    for subject, visits in _visits().items():
        diary = []
        for visit in visits:
            folder = root / subject / str(visit.config.session)
            simulate_session(folder, visit.config)
            folders.append(folder)
            start = pd.Timestamp(visit.config.start)
            end = start + timedelta(seconds=SAMPLE_SECONDS)
            if visit.pain_after_pops is not None:
                truth = pd.read_csv(folder / "truth.csv")
                rows = [_entry(start + timedelta(seconds=float(t) + 2.0), visit.pain_after_pops,
                               4.0 + visit.day / 5, "sharp pain right after the pop")
                        for t in truth["t"][:3]]
                pd.DataFrame(rows, columns=list(DIARY_COLUMNS)).pipe(
                    lambda f, folder=folder: write_diary_csv(folder / "symptoms.csv", f))
                diary.append(_entry(end + timedelta(hours=3), visit.pain_after_pops - 1,
                                    3.0 + visit.day / 5, "back still sore in the evening"))
            else:
                diary.append(_entry(end + timedelta(hours=3), 0, 1, "felt fine"))
        for day in range(0, 17, 2):
            morning = pd.Timestamp(start_of_day(day, hour=8))
            if subject == "S01":
                diary.append(_entry(morning, 0, 1))
            else:
                diary.append(_entry(morning, min(2 + day / 3, 7), min(2 + day / 4, 7)))
        if subject == "S02":
            diary.append(_entry(pd.Timestamp(start_of_day(8, hour=8)), 6, 5,
                                "slipped on the stairs and fell on my back", trauma=1))
            diary.append(_entry(pd.Timestamp(start_of_day(15, hour=20)), 6, 6,
                                "tingling down the left leg this evening", tingling=1))
        frame = pd.DataFrame(diary, columns=list(DIARY_COLUMNS)).sort_values("time")
        write_diary_csv(root / subject / "diary.csv", frame)
    return folders


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m backpop_sense.samples OUT")
    for path in make_sample_cohort(sys.argv[1]):
        print(path)
