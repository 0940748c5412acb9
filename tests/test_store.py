"""The longitudinal store: a real SQLite file, real sample sessions, a real SIGKILL."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from conftest import SessionFactory

from backpop_sense import store as store_module
from backpop_sense.diary import DIARY_COLUMNS, read_diary_csv, write_diary_csv
from backpop_sense.errors import BadInput
from backpop_sense.motion.tracker import MotionEvent
from backpop_sense.pipeline import SessionResult, analyze
from backpop_sense.simulate import SimConfig, simulate_session
from backpop_sense.store import MIGRATIONS, SCHEMA_VERSION, Store, default_db_path
from backpop_sense.vocab import POP_COLUMNS

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data" / "samples"
SAMPLE = SAMPLES / "S02" / "2026-11-03a"
"""50 s, three mics, two IMUs, and a symptoms.csv with three entries."""
TABLES = ("subjects", "sessions", "pops", "motion", "events", "diary", "flags")


@pytest.fixture(scope="module")
def sample_result() -> SessionResult:
    return analyze(SAMPLE)


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order; the time of writing is left out."""
    columns = {"sessions": ", ".join(store_module.SESSION_COLUMNS[:-1])}
    with closing(sqlite3.connect(db)) as conn:
        return {t: sorted(conn.execute(f"SELECT {columns.get(t, '*')} FROM {t}").fetchall(),
                          key=repr) for t in TABLES}


def test_the_schema_is_created_in_wal_mode_with_foreign_keys_and_a_version(tmp_path: Path
                                                                           ) -> None:
    db = tmp_path / "backpop.db"
    with Store(db) as store:
        conn = store.connection
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS) == 1
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert set(TABLES) <= names
    with closing(sqlite3.connect(db)) as conn:  # the file itself says so, not just our connection
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    Store(db).close()  # opening again migrates nothing and fails on nothing


def test_a_new_migration_is_applied_once_and_a_failing_one_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "backpop.db"
    Store(db).close()
    monkeypatch.setattr(store_module, "MIGRATIONS",
                        [*MIGRATIONS, "ALTER TABLE pops ADD COLUMN spare REAL; NOT SQL AT ALL;"])
    with pytest.raises(sqlite3.OperationalError):
        Store(db)
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
        assert "spare" not in {r[1] for r in conn.execute("PRAGMA table_info(pops)")}
    monkeypatch.setattr(store_module, "MIGRATIONS",
                        [*MIGRATIONS, "ALTER TABLE pops ADD COLUMN spare REAL;"])
    for _ in range(2):
        with Store(db) as store:
            assert store.schema_version == 2
            assert "spare" in {r[1] for r in store.connection.execute("PRAGMA table_info(pops)")}


def test_the_database_path_comes_from_the_argument_then_the_environment_then_the_cwd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKPOP_DB", raising=False)
    assert default_db_path(None) == Path("backpop.db")
    monkeypatch.setenv("BACKPOP_DB", str(tmp_path / "env.db"))
    assert default_db_path(None) == tmp_path / "env.db"
    assert default_db_path(tmp_path / "arg.db") == tmp_path / "arg.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BACKPOP_DB")
    Store().close()
    assert (tmp_path / "backpop.db").is_file()


def test_ingesting_the_same_session_twice_changes_nothing(tmp_path: Path,
                                                          sample_result: SessionResult) -> None:
    db = tmp_path / "backpop.db"
    with Store(db) as store:
        assert store.ingest(SAMPLE) == "stored"  # analysed here, by the real pipeline
        with closing(sqlite3.connect(db)) as conn:
            first = {t: conn.execute(f"SELECT * FROM {t}").fetchall() for t in TABLES}
        assert store.ingest(SAMPLE) == "unchanged"
        with closing(sqlite3.connect(db)) as conn:
            assert {t: conn.execute(f"SELECT * FROM {t}").fetchall() for t in TABLES} == first
        pops, sessions = store.pops("S02"), store.sessions("S02")
        assert len(pops) == len(sample_result.pops) > 0
        assert len(sessions) == 1 and len(store.motion()) == 1
        assert sessions["analysis_version"].iloc[0] == store_module.analysis_version()
        assert sessions["summary"].iloc[0]["pops"] == len(sample_result.pops)
        start = sessions["start"].iloc[0]
        assert start == pd.Timestamp("2026-11-03T09:30:00Z")
        offsets = (pops["time"] - start).dt.total_seconds()
        assert (offsets - pops["t"]).abs().max() < 1e-5
        diary = store.diary("S02")
        assert list(diary["source"]) == ["session:2026-11-03a"] * 3


def test_a_new_analysis_version_replaces_the_old_rows(
        tmp_path: Path, sample_result: SessionResult, monkeypatch: pytest.MonkeyPatch) -> None:
    older = dataclasses.replace(sample_result, pops=sample_result.pops[:1], motion_events=[
        MotionEvent(1.0, "catch", "an old analysis's catch")])
    with Store(tmp_path / "backpop.db") as store:
        with monkeypatch.context() as m:
            m.setattr(store_module, "analysis_version", lambda *a: "0.0.1+older")
            assert store.ingest(SAMPLE, result=older) == "stored"
            assert store.ingest(SAMPLE, result=older) == "unchanged"
        assert len(store.pops()) == 1 and len(store.events()) == 1
        assert store.ingest(SAMPLE, result=sample_result) == "replaced"
        assert store.ingest(SAMPLE, result=sample_result) == "unchanged"
        sessions = store.sessions()
        assert list(sessions["analysis_version"]) == [store_module.analysis_version()]
        assert len(store.pops()) == len(sample_result.pops)
        assert len(store.events()) == len(sample_result.motion_events) + len(sample_result.gaps)
        assert len(store.motion()) == 1 and len(store.diary()) == 3
        assert len(store.subjects()) == 1


def test_changed_inputs_replace_the_session_and_its_symptoms(
        tmp_path: Path, sample_result: SessionResult) -> None:
    session = shutil.copytree(SAMPLE, tmp_path / "session")
    with Store(tmp_path / "backpop.db") as store:
        assert store.ingest(session, result=sample_result) == "stored"
        symptoms = read_diary_csv(session / "symptoms.csv")
        write_diary_csv(session / "symptoms.csv", symptoms.iloc[:2])
        assert store.ingest(session, result=sample_result) == "replaced"
        assert len(store.diary("S02")) == 2 and len(store.sessions()) == 1


def test_a_failure_inside_the_write_leaves_the_database_as_it_was(
        tmp_path: Path, sample_result: SessionResult, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "backpop.db"
    with Store(db) as store:
        store.ingest(SAMPLE, result=sample_result)
        before = snapshot(db)
        # The old rows are deleted first, then this event breaks the events table's CHECK.
        broken = dataclasses.replace(sample_result, motion_events=[MotionEvent(2.0, "x", "")])
        monkeypatch.setattr(store_module, "analysis_version", lambda *a: "9.9.9+new")
        with pytest.raises(sqlite3.IntegrityError):
            store.ingest(SAMPLE, result=broken)
        assert not store.connection.in_transaction
        assert snapshot(db) == before


def test_the_frames_have_their_columns_and_utc_times(tmp_path: Path,
                                                     sample_result: SessionResult) -> None:
    with Store(tmp_path / "backpop.db") as store:
        store.ingest(SAMPLE, result=sample_result)
        store.replace_flags("S02", [])
        key = ["subject", "session"]
        expected = {
            "subjects": ["subject", "created_at", "sessions"],
            "sessions": [*key, "start", "duration_s", "analysis_version", "input_sha256",
                         "source_path", "summary", "ingested_at"],
            "pops": [*key, "t", "time", *POP_COLUMNS[1:], "kind_rule", "end_fraction",
                     "strength", "spread_db"],
            "motion": [*key, "start", "duration_s"] + [
                f"{a}_{s}" for a in ("flexion", "lateral", "twist")
                for s in ("p5", "p95", "min", "max")] + ["context_s", "catches", "falls"],
            "events": [*key, "t", "time", "type", "detail"],
            "diary": ["subject", *DIARY_COLUMNS, "source"],
            "flags": ["subject", "rule_id", "severity", "title", "first_seen", "last_seen",
                      "evidence", "reason", "evaluated_at"],
        }
        for name, columns in expected.items():
            for frame in (getattr(store, name)(), getattr(store, name)("S01")
                          if name != "subjects" else store.subjects()):
                assert list(frame.columns) == columns, name
                for column in ("start", "time", "created_at", "ingested_at"):
                    if column in frame:
                        assert str(frame[column].dtype).endswith("UTC]"), (name, column)
        assert store.pops("S01").empty and not store.has_subject("S01")
        assert store.has_subject("S02") and list(store.subjects()["sessions"]) == [1]
        motion = store.motion("S02").iloc[0]
        rom = sample_result.motion_summary["rom_deg"]
        assert motion["twist_p95"] == rom["twist"]["p95"]
        assert motion["context_s"] == sample_result.motion_summary["context_s"]


def test_a_bad_subject_id_is_bad_input(tmp_path: Path) -> None:
    entries = read_diary_csv(SAMPLES / "S01" / "diary.csv")
    with Store(tmp_path / "backpop.db") as store:
        for subject in ("", "has space", "../etc", "x" * 65, "Ünï"):
            with pytest.raises(BadInput, match="not a valid subject ID"):
                store.add_diary(subject, entries, "diary.csv")
            with pytest.raises(BadInput):
                store.replace_flags(subject, [])
        assert store.subjects().empty and store.diary().empty


def test_importing_the_same_diary_again_adds_nothing(tmp_path: Path) -> None:
    entries = read_diary_csv(SAMPLES / "S01" / "diary.csv")
    with Store(tmp_path / "backpop.db") as store:
        assert store.add_diary("S01", entries, "diary.csv") == len(entries) > 0
        assert store.add_diary("S01", entries, "diary.csv") == 0
        assert store.add_diary("S01", entries.iloc[:3], "diary.csv") == 0
        assert store.add_diary("S01", entries.iloc[:3], "phone") == 3
        diary = store.diary("S01")
        assert len(diary) == len(entries) + 3
        held = diary[diary["source"] == "diary.csv"].reset_index(drop=True)
        pd.testing.assert_series_equal(held["time"], entries["time"].astype(held["time"].dtype),
                                       check_names=False)
        assert list(held["pain"]) == list(entries["pain"])


def test_flags_are_replaced_as_a_whole(tmp_path: Path) -> None:
    flag = {"rule_id": "new-neuro", "severity": "urgent", "title": "New numbness",
            "first_seen": "2026-11-03T09:30:11Z", "last_seen": pd.Timestamp("2026-11-10"),
            "evidence": {"sessions": ["2026-11-03a"], "count": 2}, "reason": "not a diagnosis"}
    with Store(tmp_path / "backpop.db") as store:
        store.replace_flags("S02", [flag, {**flag, "rule_id": "other", "first_seen": None}])
        assert list(store.flags("S02")["rule_id"]) == ["new-neuro", "other"]
        store.replace_flags("S02", [flag])
        flags = store.flags("S02")
        assert list(flags["rule_id"]) == ["new-neuro"]
        assert flags["evidence"].iloc[0] == flag["evidence"]
        assert flags["last_seen"].iloc[0] == pd.Timestamp("2026-11-10", tz="UTC")
        with pytest.raises(ValueError, match="lacks reason"):
            store.replace_flags("S02", [{k: v for k, v in flag.items() if k != "reason"}])
        assert len(store.flags("S02")) == 1


CHILD = """
import pickle, sys
from backpop_sense.store import Store

db, session, pickled = sys.argv[1:]
with open(pickled, "rb") as f:
    result = pickle.load(f)
store = Store(db)

def traced(sql):  # name the statement about to run, then wait for the parent: go, or a kill
    print("SQL", sql.split()[0], flush=True)
    sys.stdin.readline()

store.connection.set_trace_callback(traced)
print("READY", flush=True)
sys.stdin.readline()
print("DONE", store.ingest(session, result=result), flush=True)
"""


def _ingest_in_child(db: Path, session: Path, pickled: Path, kill_at: int | None) -> list[str]:
    """Run an ingest in a child that stops before each statement; SIGKILL it before line
    ``kill_at`` of what it says runs (None: let it finish). What it said, up to the kill."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(session), str(pickled)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert child.stdin is not None and child.stdout is not None
    said = []
    for line in child.stdout:
        said.append(line.strip())
        if len(said) - 1 == kill_at:
            os.kill(child.pid, signal.SIGKILL)
            break
        if not said[-1].startswith("DONE"):
            child.stdin.write("go\n")
            child.stdin.flush()
    child.wait(timeout=60)
    assert child.returncode == (-signal.SIGKILL if kill_at is not None else 0), said[-3:]
    return said


@pytest.mark.slow
def test_a_killed_ingest_leaves_the_old_state_or_the_new_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ingest killed before any of its statements (before the write, inside it, at its
    commit, after it) leaves the store as it was or as the whole ingest makes it, never in
    between, and the next ingest completes it."""
    session = tmp_path / "session"
    simulate_session(session, SimConfig("twist-cavitation", minutes=3, seed=1, sr=8000,
                                        imu_rate=100, pop_scale=4, with_fall=True))
    symptoms = read_diary_csv(SAMPLE / "symptoms.csv")
    write_diary_csv(session / "symptoms.csv", symptoms.assign(
        time=symptoms["time"] + pd.Timedelta(days=17)))
    result = dataclasses.replace(analyze(session), frames=[])
    pickled = tmp_path / "result.pkl"
    pickled.write_bytes(pickle.dumps(result))

    before_db, after_db = tmp_path / "before.db", tmp_path / "after.db"
    with Store(before_db) as store:
        store.add_diary("SIM01", read_diary_csv(SAMPLES / "S01" / "diary.csv"), "diary.csv")
        with monkeypatch.context() as m:
            m.setattr(store_module, "analysis_version", lambda *a: "0.0.1+older")
            store.ingest(session, result=dataclasses.replace(result, pops=result.pops[:2]))
    shutil.copy(before_db, after_db)
    full = _ingest_in_child(after_db, session, pickled, None)
    assert full[-1] == "DONE replaced"
    before, after = snapshot(before_db), snapshot(after_db)
    assert before != after and len(after["pops"]) == len(result.pops) > 10

    begin, commit = full.index("SQL BEGIN"), full.index("SQL COMMIT")
    assert commit - begin >= 4, full
    for kill_at in sorted({0, begin, begin + 1, (begin + commit) // 2, commit - 1, commit,
                           len(full) - 1}):
        db = tmp_path / f"killed{kill_at}.db"
        shutil.copy(before_db, db)
        said = _ingest_in_child(db, session, pickled, kill_at)
        where = f"killed before {said[-1]!r} (line {kill_at})"
        with Store(db) as store:
            conn = store.connection
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
            state = snapshot(db)
            assert state in (before, after), f"partial state, {where}"
            if begin <= kill_at < commit:
                assert state == before, where
            assert store.ingest(session, result=result) in ("replaced", "unchanged")
        assert snapshot(db) == after


def test_two_different_entries_at_the_same_time_are_both_kept(tmp_path: Path) -> None:
    # S02's diary holds a morning entry and a trauma report at the same minute.
    entries = read_diary_csv(SAMPLES / "S02" / "diary.csv")
    assert entries["time"].duplicated().any()
    with Store(tmp_path / "backpop.db") as store:
        assert store.add_diary("S02", entries, "diary.csv") == len(entries)
        assert store.add_diary("S02", entries, "diary.csv") == 0
        assert store.diary("S02")["trauma"].sum() == entries["trauma"].sum() == 1


def test_a_store_that_cannot_be_opened_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot open the store"):
        Store(tmp_path / "no such folder" / "backpop.db")
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("not a database, just text that is long enough " * 50)
    with pytest.raises(BadInput, match="cannot open the store"):
        Store(not_sqlite)
    assert not_sqlite.read_text().startswith("not a database")


# --- every command on every store the code can produce ------------------------------------


BACKPOP = Path(sys.executable).parent / "backpop"


def backpop(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command on ``db``, its warnings and errors in ``stderr``."""
    env = {k: v for k, v in os.environ.items() if k != "BACKPOP_DEBUG"}
    return subprocess.run([str(BACKPOP), *args, "--db", str(db)], capture_output=True,
                          text=True, env=env)


@pytest.fixture(scope="module")
def sparse_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store made by the command line: S01 has one still, quiet session (no pop, no
    catch, fall or gap, no symptoms); D01 has one diary entry and no session."""


    root = tmp_path_factory.mktemp("sparse")
    session = SessionFactory(root)("quiet", side_tables=False)
    db = root / "sparse.db"
    for args in (("ingest", str(session)),
                 ("diary", "add", "D01", "--pain", "2", "--time", "2026-11-21T08:00:00Z")):
        made = backpop(db, *args)
        assert made.returncode == 0, made.stderr
    with Store(db) as store:
        assert len(store.sessions("S01")) == 1
        assert store.pops("S01").empty and store.events("S01").empty
        assert store.sessions("D01").empty and len(store.diary("D01")) == 1
    return db


@pytest.mark.parametrize("subject", ["S01", "D01"])
def test_every_command_works_on_a_subject_without_pops_or_events(
        sparse_db: Path, tmp_path: Path, subject: str) -> None:
    # pandas 3 refused .any() on the empty datetime column of such a subject's events table.
    runs = [("report", subject, "--sessions", "-o", str(tmp_path / "report" / "r.html")),
            ("export", subject, "-o", str(tmp_path / "csv")),
            ("export", subject, "-o", str(tmp_path / "parquet"), "--format", "parquet"),
            ("flags", subject, "--json"), ("diary", "list", subject)]
    if subject == "S01":
        runs.append(("report", "--session", "2026-11-20a", "-o", str(tmp_path / "s.html")))
    for args in runs:
        done = backpop(sparse_db, *args)
        assert (done.returncode, done.stderr) == (0, ""), args
    assert json.loads(backpop(sparse_db, "flags", subject, "--json").stdout)["flags"] == []
    for name in ("pops", "events"):
        table = pd.read_csv(tmp_path / "csv" / f"{name}.csv")
        assert table.empty and {"session", "t", "time"} <= set(table.columns)
    sessions = pd.read_csv(tmp_path / "csv" / "sessions.csv")
    assert list(sessions["pops"]) == ([0] if subject == "S01" else [])
    diary = pd.read_csv(tmp_path / "csv" / "diary.csv")
    assert len(diary) == (1 if subject == "D01" else 0)


# --- a store that cannot be broken ---------------------------------------------------------


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error line of a command that must have failed on bad input (exit 2)."""
    assert "Traceback" not in done.stderr and done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("backpop: error: ") and len(line) < 300, line
    return line


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00", "1969-12-31T23:59:59Z",
                                  "2200-01-01T00:00:00+00:00", "9999-12-31T23:59:59"])
def test_a_diary_time_outside_1970_2199_is_refused_and_the_store_stays_usable(
        sparse_db: Path, tmp_path: Path, when: str) -> None:
    db = tmp_path / "copy.db"
    with Store(sparse_db) as source, closing(sqlite3.connect(db)) as copy:
        source.connection.backup(copy)
    before = snapshot(db)
    line = one_line_error(backpop(db, "diary", "add", "D01", "--time", when))
    assert line.startswith("backpop: error: --time: ") and "outside the years 1970-2199" in line
    csv = tmp_path / "diary.csv"
    csv.write_text("time,pain,stiffness,numbness,tingling,weakness,swelling,bruising,trauma\n"
                   "2026-11-20T08:00:00Z,1,1,0,0,0,0,0,0\n"
                   f"{when},2,2,0,0,0,0,0,0\n")
    line = one_line_error(backpop(db, "diary", "import", str(csv), "--subject", "D01"))
    assert f"{csv}: line 3, field time: " in line and "outside the years 1970-2199" in line
    assert snapshot(db) == before
    assert backpop(db, "report", "D01", "-o", str(tmp_path / "d01.html")).returncode == 0
    # The library refuses it too, however the time is given, before anything is written.
    entry = dict.fromkeys(DIARY_COLUMNS, 0) | {"note": ""}
    with Store(db) as store:
        for value in (when, datetime.fromisoformat(when)):
            with pytest.raises(BadInput, match=r"^api: entry 1, field time: .*1970-2199"):
                store.add_diary("D01", pd.DataFrame([entry | {"time": value}]), "api")
    assert snapshot(db) == before


def test_a_session_starting_outside_1970_2199_is_refused(make_session: SessionFactory,
                                                         tmp_path: Path) -> None:
    session = make_session(side_tables=False)
    info = session / "session.json"
    info.write_text(info.read_text().replace("2026-11-20T09:30:00", "0026-11-20T09:30:00"))
    db = tmp_path / "backpop.db"
    line = one_line_error(backpop(db, "ingest", str(session)))
    assert f"{info}: field start: 0026-11-20T09:30:00+00:00 is outside the years" in line
    with Store(db) as store:
        assert store.subjects().empty


def test_a_store_of_a_newer_schema_is_refused_and_left_as_it_is(sparse_db: Path,
                                                                tmp_path: Path) -> None:
    db = tmp_path / "newer.db"
    shutil.copy(sparse_db, db)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.execute("PRAGMA journal_mode=DELETE")
    data = db.read_bytes()
    with pytest.raises(BadInput, match=f"schema version {SCHEMA_VERSION + 1}, newer than "
                                       f"version {SCHEMA_VERSION}"):
        Store(db)
    for args in (("diary", "add", "S01"), ("diary", "list", "S01"), ("flags", "S01")):
        line = one_line_error(backpop(db, *args))
        assert line.startswith(f"backpop: error: {db}: the store has schema version "
                               f"{SCHEMA_VERSION + 1}, newer than version {SCHEMA_VERSION}")
    assert db.read_bytes() == data  # not even switched to WAL
    assert not Path(f"{db}-wal").exists()


def test_a_locked_store_is_named(sparse_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "locked.db"
    shutil.copy(sparse_db, db)
    entry = pd.DataFrame([dict.fromkeys(DIARY_COLUMNS, 0) | {"time": "2026-11-21", "note": ""}])
    other = sqlite3.connect(db, isolation_level=None)
    with closing(other), Store(db, timeout_s=0) as store:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(BadInput, match=f"^{re.escape(str(db))}: the store is locked by "
                                           "another process"):
            store.add_diary("S01", entry, "cli")
        assert store.diary("S01").empty  # reading goes on meanwhile
        other.execute("ROLLBACK")
        assert store.add_diary("S01", entry, "cli") == 1


def _without_root_override() -> list[str]:
    """A prefix that runs a command without the power to write a read-only file: nothing for
    a user, ``setpriv`` dropping CAP_DAC_OVERRIDE for root (else the test skips)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a read-only file cannot be made")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.parametrize("folder_writable", [True, False])
def test_a_read_only_store_is_named_as_given(sparse_db: Path, tmp_path: Path,
                                            folder_writable: bool) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    db = folder / "ro.db"
    shutil.copy(sparse_db, db)
    db.chmod(0o444)
    if not folder_writable:
        folder.chmod(0o555)
    prefix = _without_root_override()
    env = {k: v for k, v in os.environ.items() if k != "BACKPOP_DEBUG"}
    try:
        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*prefix, str(BACKPOP), *args, "--db", "shared/ro.db"],
                                  capture_output=True, text=True, cwd=tmp_path, env=env)

        data = db.read_bytes()
        line = one_line_error(run("diary", "add", "S01", "--pain", "3"))
        assert line.startswith("backpop: error: shared/ro.db: the store cannot be written")
        assert db.read_bytes() == data
        listed = run("diary", "list", "S01")
        if folder_writable:
            assert listed.returncode == 0, listed.stderr
        else:  # SQLite cannot make its -shm file beside it, even to read
            assert "shared/ro.db: the store cannot be written" in one_line_error(listed)
    finally:
        folder.chmod(0o755)


def test_a_report_that_cannot_be_written_names_the_report_not_its_temp_file(
        sparse_db: Path, tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    folder.chmod(0o555)
    env = {k: v for k, v in os.environ.items() if k != "BACKPOP_DEBUG"}
    try:
        done = subprocess.run([*_without_root_override(), str(BACKPOP), "report", "S01", "-o",
                               "reports/S01.html", "--db", str(sparse_db)],
                              capture_output=True, text=True, cwd=tmp_path, env=env)
    finally:
        folder.chmod(0o755)
    line = one_line_error(done)
    assert line.startswith("backpop: error: reports/S01.html: cannot write the report: ")
    assert ".tmp" not in line and not list(folder.iterdir())
