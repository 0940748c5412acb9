"""Batch analysis: the sample sessions, real worker processes, a real Dask LocalCluster and a
real SQLite store."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from backpop_sense.batch import BatchReport, analyze_session, run_batch
from backpop_sense.errors import BadInput, BadParameter
from backpop_sense.store import Store, input_checksum

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data" / "samples"
SESSIONS = sorted(p.parent for p in SAMPLES.glob("*/*/session.json"))
WITH_SYMPTOMS = SAMPLES / "S02" / "2026-11-03a"


def stored(db: Path, session: str | None = None) -> dict[str, pd.DataFrame]:
    """Every table as DataFrames, without the times of writing and the processing time (the
    only things that may differ between two runs of the same analysis)."""
    with Store(db) as store:
        tables = {"sessions": store.sessions().drop(columns="ingested_at"),
                  "pops": store.pops(), "motion": store.motion(), "events": store.events(),
                  "diary": store.diary(), "flags": store.flags().drop(columns="evaluated_at")}
    tables["sessions"]["summary"] = [
        json.dumps({k: v for k, v in s.items() if k != "processing"}, sort_keys=True)
        for s in tables["sessions"]["summary"]]
    tables["flags"]["evidence"] = [json.dumps(e, sort_keys=True)
                                   for e in tables["flags"]["evidence"]]
    if session is not None:
        del tables["flags"]  # a subject's flags depend on all of its sessions
        tables["diary"] = tables["diary"][tables["diary"]["source"] == f"session:{session}"]
        tables = {name: frame[frame["session"] == session] if "session" in frame else frame
                  for name, frame in tables.items()}
        # A column that is empty in one session is float (NaN) among others, object (None) alone.
        tables = {name: frame.astype(object).where(frame.notna(), None).reset_index(drop=True)
                  for name, frame in tables.items()}
    return tables


def assert_same_tables(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BatchReport]:
    """The six samples batched on two local workers into a new store."""
    db = tmp_path_factory.mktemp("local") / "backpop.db"
    return db, run_batch(SESSIONS, db=db, engine="local", workers=2, progress=False)


def copy_session(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


@pytest.mark.slow
def test_local_batch_stores_every_sample_and_a_rerun_skips_them_all(
        local_run: tuple[Path, BatchReport]) -> None:
    db, report = local_run
    assert len(SESSIONS) == 6
    assert report.stored == SESSIONS
    assert (report.replaced, report.skipped, report.failed) == ([], [], [])
    assert report.subjects == ["S01", "S02"]
    assert (report.engine, report.workers) == ("local", 2)
    with Store(db) as store:
        sessions = store.sessions()
        assert sorted(sessions["session"]) == sorted(p.name for p in SESSIONS)
        assert len(store.pops()) > 0
        assert store.connection.execute("SELECT count(*) FROM flags").fetchone()[0] == len(
            store.flags())
    again = run_batch(SESSIONS, db=db, engine="local", workers=2, progress=False)
    assert again.skipped == SESSIONS
    assert (again.stored, again.replaced, again.failed) == ([], [], [])
    assert again.subjects == ["S01", "S02"]
    with Store(db) as store:
        pd.testing.assert_series_equal(store.sessions()["ingested_at"],
                                       sessions["ingested_at"])  # nothing was written again


@pytest.mark.slow
def test_a_batch_stores_what_ingest_stores(local_run: tuple[Path, BatchReport],
                                           tmp_path: Path) -> None:
    with Store(tmp_path / "one.db") as store:
        assert store.ingest(WITH_SYMPTOMS) == "stored"
    alone = stored(tmp_path / "one.db", WITH_SYMPTOMS.name)
    assert len(alone["diary"]) == 3
    assert_same_tables(stored(local_run[0], WITH_SYMPTOMS.name), alone)


@pytest.mark.slow
def test_dask_on_a_local_cluster_stores_exactly_what_local_workers_store(
        local_run: tuple[Path, BatchReport], tmp_path: Path) -> None:
    db = tmp_path / "dask.db"
    report = run_batch(SESSIONS, db=db, engine="dask", workers=2, progress=False)
    assert report.stored == SESSIONS
    assert (report.failed, report.engine, report.workers) == ([], "dask", 2)
    assert_same_tables(stored(db), stored(local_run[0]))


@pytest.mark.slow
def test_a_broken_session_is_reported_and_the_others_are_stored_then_only_changes_redone(
        tmp_path: Path) -> None:
    good = [copy_session(SESSIONS[0], tmp_path / "good-1"),
            copy_session(WITH_SYMPTOMS, tmp_path / "good-2")]
    bad_imu = copy_session(SESSIONS[1], tmp_path / "bad-imu")
    imu = bad_imu / "imu_sacral.csv"
    lines = imu.read_text().splitlines(keepends=True)
    lines[3000] = "29.99,0.1,oops,9.8,0,0,0\n"
    imu.write_text("".join(lines))
    bad_json = copy_session(SESSIONS[2], tmp_path / "bad-json")
    (bad_json / "session.json").write_text("{ not json", encoding="utf-8")
    twin = copy_session(SESSIONS[0], tmp_path / "twin-of-good-1")
    missing = tmp_path / "missing"
    paths = [good[0], bad_imu, missing, good[1], bad_json, twin, good[0]]
    db = tmp_path / "backpop.db"

    report = run_batch(paths, db=db, workers=2, progress=False)

    assert report.stored == good
    assert [folder for folder, _ in report.failed] == [bad_imu, missing, bad_json, twin]
    errors = dict(report.failed)
    assert "imu_sacral.csv: line 3001" in errors[bad_imu]
    assert errors[missing].endswith("session folder is missing")
    assert "invalid JSON" in errors[bad_json]
    assert f"is also in {good[0]}" in errors[twin]
    assert all("\n" not in error for error in errors.values())
    assert report.subjects == ["S01", "S02"]
    with Store(db) as store:
        assert sorted(store.sessions()["source_path"]) == sorted(str(p) for p in good)

    with (good[1] / "symptoms.csv").open("a", encoding="utf-8") as f:
        f.write("2026-11-03T09:31:00Z,6,5,0,0,0,0,0,0,later\n")
    again = run_batch(good, db=db, workers=2, progress=False)
    assert (again.stored, again.replaced, again.skipped, again.failed) == (
        [], [good[1]], [good[0]], [])
    with Store(db) as store:
        assert len(store.diary("S02")) == 4


def test_a_worker_reports_errors_and_skips_a_current_session(tmp_path: Path) -> None:
    failed = analyze_session(str(tmp_path / "nope"))
    assert (failed.status, failed.result) == ("failed", None)
    assert failed.error == f"{tmp_path / 'nope'}: session folder is missing"
    current = analyze_session(str(WITH_SYMPTOMS), input_checksum(WITH_SYMPTOMS))
    assert (current.status, current.result, current.error) == ("current", None, None)


def test_an_empty_batch_does_nothing(tmp_path: Path) -> None:
    report = run_batch([], db=tmp_path / "backpop.db", progress=False)
    assert (report.stored, report.failed, report.subjects) == ([], [], [])


@pytest.mark.parametrize(("options", "field"), [
    ({"engine": "spark"}, "engine"),
    ({"workers": 0}, "workers"),
    ({"scheduler": "tcp://127.0.0.1:8786"}, "scheduler"),
    ({"engine": "dask", "scheduler": "tcp://127.0.0.1:8786", "workers": 2}, "workers"),
])
def test_bad_options_are_bad_input_before_anything_is_opened(tmp_path: Path, options: dict,
                                                             field: str) -> None:
    with pytest.raises(BadParameter) as caught:
        run_batch(SESSIONS, db=tmp_path / "backpop.db", progress=False, **options)
    assert (caught.value.owner, caught.value.field) == ("batch", field)
    assert not (tmp_path / "backpop.db").exists()


def test_dask_missing_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(BadInput, match=r"backpop-sense\[dask\]"):
        run_batch(SESSIONS, db=tmp_path / "backpop.db", engine="dask", progress=False)


def test_an_unreachable_scheduler_is_bad_input(tmp_path: Path) -> None:
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), \
            pytest.raises(BadInput, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        run_batch(SESSIONS[:1], db=tmp_path / "backpop.db", engine="dask",
                  scheduler="tcp://127.0.0.1:9", progress=False)


def test_cli_batch_reports_failures_with_status_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    backpop = Path(sys.executable).parent / "backpop"
    good = sorted((SAMPLES / "S01").glob("*/session.json"))[0].parent
    run = subprocess.run([str(backpop), "batch", str(good), str(tmp_path / "missing"),
                          "--db", str(tmp_path / "b.db"), "--workers", "1"],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "1 stored" in run.stdout and "1 failed" in run.stdout
    assert "missing: session folder is missing" in run.stdout
