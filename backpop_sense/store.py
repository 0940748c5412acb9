"""The longitudinal store: one SQLite file (WAL mode, foreign keys on) with every subject's
sessions, pops, motion, events, symptom diary and red flags.

``PRAGMA user_version`` is the schema version; :data:`MIGRATIONS` upgrades an older file when
it is opened. Every write is one transaction, so a crash or kill leaves the file as it was
before the write or as it is after it. Times are stored as ISO 8601 UTC text
(``2026-11-20T09:30:00.000000Z``, which sorts as it reads) and read as pandas UTC timestamps.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import __version__
from .diary import DIARY_COLUMNS, check_values, read_diary_csv
from .errors import BadInput, shown
from .session import read_info
from .times import check_time
from .vocab import AXES, EXTRA_POP_COLUMNS, POP_COLUMNS, check_subject

if TYPE_CHECKING:
    from .pipeline import SessionResult

DB_ENV = "BACKPOP_DB"
ROM_STATS = ("p5", "p95", "min", "max")
ROM_COLUMNS = tuple(f"{a}_{s}" for a in AXES for s in ROM_STATS)
SESSION_COLUMNS = ("subject_id", "session_id", "start", "duration_s", "analysis_version",
                   "input_sha256", "source_path", "summary", "ingested_at")
STORED_POP_COLUMNS = (*POP_COLUMNS[1:], *EXTRA_POP_COLUMNS)
"""The pops.csv columns after ``t`` that the ``pops`` table holds."""
FLAG_KEYS = ("rule_id", "severity", "title", "first_seen", "last_seen", "evidence", "reason")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

MIGRATIONS: list[str] = [
    """
    CREATE TABLE subjects (subject_id TEXT PRIMARY KEY, created_at TEXT NOT NULL);
    CREATE TABLE sessions (
        subject_id TEXT NOT NULL REFERENCES subjects ON DELETE CASCADE,
        session_id TEXT NOT NULL, start TEXT NOT NULL, duration_s REAL NOT NULL,
        analysis_version TEXT NOT NULL, input_sha256 TEXT NOT NULL, source_path TEXT,
        summary TEXT NOT NULL, ingested_at TEXT NOT NULL,
        PRIMARY KEY (subject_id, session_id));
    CREATE TABLE pops (
        subject_id TEXT NOT NULL, session_id TEXT NOT NULL, t REAL NOT NULL, time TEXT NOT NULL,
        level TEXT, kind TEXT, context TEXT, amplitude_db REAL, snr_db REAL, centroid_hz REAL,
        duration_ms REAL, flexion_deg REAL, lateral_deg REAL, twist_deg REAL,
        twist_rate_dps REAL, kind_rule TEXT, end_fraction REAL, strength REAL, spread_db REAL,
        FOREIGN KEY (subject_id, session_id) REFERENCES sessions ON DELETE CASCADE);
    CREATE INDEX pops_by_session ON pops (subject_id, session_id, t);
    CREATE TABLE motion (
        subject_id TEXT NOT NULL, session_id TEXT NOT NULL, duration_s REAL NOT NULL,
        flexion_p5 REAL, flexion_p95 REAL, flexion_min REAL, flexion_max REAL,
        lateral_p5 REAL, lateral_p95 REAL, lateral_min REAL, lateral_max REAL,
        twist_p5 REAL, twist_p95 REAL, twist_min REAL, twist_max REAL,
        context_s TEXT NOT NULL, catches INTEGER, falls INTEGER,
        PRIMARY KEY (subject_id, session_id),
        FOREIGN KEY (subject_id, session_id) REFERENCES sessions ON DELETE CASCADE);
    CREATE TABLE events (
        subject_id TEXT NOT NULL, session_id TEXT NOT NULL, t REAL NOT NULL, time TEXT NOT NULL,
        type TEXT NOT NULL CHECK (type IN ('catch', 'fall', 'gap')), detail TEXT,
        FOREIGN KEY (subject_id, session_id) REFERENCES sessions ON DELETE CASCADE);
    CREATE INDEX events_by_session ON events (subject_id, session_id, t);
    CREATE TABLE diary (
        subject_id TEXT NOT NULL REFERENCES subjects ON DELETE CASCADE, time TEXT NOT NULL,
        pain REAL, stiffness REAL, numbness INTEGER, tingling INTEGER, weakness INTEGER,
        swelling INTEGER, bruising INTEGER, trauma INTEGER, note TEXT NOT NULL,
        source TEXT NOT NULL,
        UNIQUE (subject_id, time, source, pain, stiffness, numbness, tingling, weakness,
                swelling, bruising, trauma, note));
    CREATE TABLE flags (
        subject_id TEXT NOT NULL REFERENCES subjects ON DELETE CASCADE,
        rule_id TEXT NOT NULL, severity TEXT NOT NULL, title TEXT NOT NULL,
        first_seen TEXT, last_seen TEXT, evidence TEXT NOT NULL, reason TEXT NOT NULL,
        evaluated_at TEXT NOT NULL);
    CREATE INDEX flags_by_subject ON flags (subject_id);
    """,
]
"""SQL scripts; script ``i`` takes the schema from version ``i`` to ``i + 1``. To change the
schema append a script (such as ``ALTER TABLE pops ADD COLUMN ...``); never edit a shipped one."""
SCHEMA_VERSION = len(MIGRATIONS)


def default_db_path(db: str | Path | None = None) -> Path:
    """The store file: ``db`` if given, else ``$BACKPOP_DB``, else ``./backpop.db``."""
    return Path(db if db is not None else os.environ.get(DB_ENV) or "backpop.db")


def _default_parameters() -> dict[str, Any]:
    from .pipeline import default_parameters

    return default_parameters()


def analysis_version(parameters: Mapping[str, Any] | None = None) -> str:
    """``<package version>+<8 hex digits of the SHA-256 of the parameters' JSON>``.

    The version of the default analysis, or of ``parameters`` (``SessionResult.parameters``:
    every stage's, motion and locator included, :class:`~backpop_sense.pipeline.PipelineConfig`).
    A session stored with another version than the default is re-analysed on ingest, so a
    change to any stage's defaults re-analyses every stored session.

    Examples
    --------
    >>> from backpop_sense import __version__
    >>> from backpop_sense.store import analysis_version
    >>> version, digest = analysis_version().split("+")
    >>> version == __version__, len(digest)
    (True, 8)
    """
    doc = json.dumps({"version": __version__, **(parameters or _default_parameters())},
                     sort_keys=True, default=str)
    return f"{__version__}+{hashlib.sha256(doc.encode()).hexdigest()[:8]}"


def __getattr__(name: str) -> str:
    # ANALYSIS_VERSION is computed on first use: it imports the (slow) analysis modules.
    if name == "ANALYSIS_VERSION":
        return analysis_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def input_checksum(path: str | Path) -> str:
    """SHA-256 (hex) over session.json, mic.wav, imu_*.csv and symptoms.csv, streamed in
    1 MiB chunks, each file prefixed by its name and size."""
    folder = Path(path)
    digest = hashlib.sha256()
    for name in ["session.json", "mic.wav", *sorted(p.name for p in folder.glob("imu_*.csv")),
                 "symptoms.csv"]:
        file = folder / name
        if file.is_file():
            digest.update(f"{name}\0{file.stat().st_size}\0".encode())
            with file.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()


def _iso(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    ts = pd.Timestamp(value)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).strftime(
        _TIME_FORMAT)


def _rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple]:
    """Rows of plain Python values, NaN as None (sqlite3 takes no numpy integers)."""
    cols = [[None if isinstance(v, float) and v != v else v for v in frame[c].tolist()]
            for c in columns]
    return list(zip(*cols, strict=True))


def _statements(script: str) -> Iterator[str]:
    """The statements of an SQL script (``executescript`` would commit the transaction)."""
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                yield pending
            pending = ""


def _insert(table: str, columns: Sequence[str], verb: str = "INSERT") -> str:
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _diary_write(subject: str, entries: pd.DataFrame, source: str) -> tuple[str, list[tuple]]:
    missing = [c for c in DIARY_COLUMNS if c not in entries]
    if missing:
        raise BadInput(source, None, f"diary entries lack column(s) {', '.join(missing)}")
    times = []
    for i, value in enumerate(entries["time"], start=1):
        where = f"entry {i}, field time"
        if value is None or pd.isna(value):
            raise BadInput(source, where, "is missing")
        try:
            time = (value if isinstance(value, datetime) else
                    datetime.fromisoformat(value) if isinstance(value, str) else
                    pd.Timestamp(value))
        except (ValueError, TypeError, OverflowError):
            raise BadInput(source, where, f"{shown(str(value))} is not a time") from None
        time = time if time.tzinfo else time.replace(tzinfo=UTC)
        times.append(_iso(check_time(time, source, where)))
    # Two different entries at the same time are both kept; the very same entry is kept once.
    frame = check_values(entries, source, lambda i: f"entry {i + 1}").assign(time=times)
    return (_insert("diary", ("subject_id", *DIARY_COLUMNS, "source"), "INSERT OR IGNORE"),
            [(subject, *row, source) for row in _rows(frame, DIARY_COLUMNS)])


def _session_writes(result: SessionResult, key: tuple[str, str], version: str, checksum: str,
                    path: Path) -> list[tuple[str, list[tuple]]]:
    """Statements and rows storing one session, all prepared before the transaction."""
    from .results import events_frame, pops_frame, summary

    start = pd.Timestamp(check_time(result.session.info.start, path / "session.json",
                                    "field start")).tz_convert("UTC")
    duration = float(result.session.duration_s)
    writes = [(_insert("sessions", SESSION_COLUMNS), [
        (*key, _iso(start), duration, version, checksum, str(path.resolve()),
         json.dumps(summary(result), default=str), _iso(datetime.now(UTC)))])]
    for table, frame, columns in (("pops", pops_frame(result), ("t", "time", *STORED_POP_COLUMNS)),
                                  ("events", events_frame(result), ("t", "time", "type",
                                                                    "detail"))):
        times = start + pd.to_timedelta(frame["t"].astype(float), unit="s")
        frame = frame.assign(time=times.dt.strftime(_TIME_FORMAT))
        writes.append((_insert(table, ("subject_id", "session_id", *columns)),
                       [(*key, *row) for row in _rows(frame, columns)]))
    motion = result.motion_summary
    rom = motion.get("rom_deg", {})
    writes.append((_insert("motion", ("subject_id", "session_id", "duration_s", *ROM_COLUMNS,
                                      "context_s", "catches", "falls")), [
        (*key, duration, *(rom.get(a, {}).get(s) for a in AXES for s in ROM_STATS),
         json.dumps(motion.get("context_s", {})), motion.get("catches"), motion.get("falls"))]))
    if (path / "symptoms.csv").is_file():
        writes.append(_diary_write(key[0], read_diary_csv(path / "symptoms.csv"),
                                   f"session:{key[1]}"))
    return writes


class Store:
    """The longitudinal SQLite store; opening it creates or upgrades the file.

    Parameters
    ----------
    path : str or Path, optional
        The database file; see :func:`default_db_path`.
    timeout_s : float
        How long to wait for another process's write to finish, seconds.

    Examples
    --------
    >>> from backpop_sense.store import Store
    >>> with Store("backpop.db") as store:  # doctest: +SKIP
    ...     print(store.ingest("data/samples/S01/2026-11-02a"))
    ...     kinds = store.pops("S01").groupby("kind").size()
    stored
    """

    def __init__(self, path: str | Path | None = None, *, timeout_s: float = 30.0) -> None:
        self.path = default_db_path(path)
        self.timeout_s = timeout_s
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        except sqlite3.DatabaseError as exc:
            raise BadInput(self.path, None, f"cannot open the store: {exc}") from None
        try:
            try:
                with self._access():
                    self._conn.execute("PRAGMA schema_version")
            except sqlite3.DatabaseError as exc:
                raise BadInput(self.path, None, f"cannot open the store: {exc}") from None
            held, known = self.schema_version, len(MIGRATIONS)
            if held > known:
                # Written by a newer backpop-sense: its tables may hold what this code would
                # misread or break, so nothing is read or written, not even the journal mode.
                raise BadInput(self.path, None, f"the store has schema version {held}, newer "
                               f"than version {known} that backpop-sense {__version__} knows: "
                               "upgrade backpop-sense to use it")
            with self._access():
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA foreign_keys=ON")
            for version in range(held, known):
                with self._transaction():
                    if self.schema_version > version:
                        continue  # another process upgraded the file meanwhile
                    for statement in _statements(MIGRATIONS[version]):
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            self._conn.close()
            raise

    @property
    def connection(self) -> sqlite3.Connection:
        """The open connection, for ad-hoc SQL (autocommit; ``BEGIN`` groups writes)."""
        return self._conn

    @property
    def schema_version(self) -> int:
        """The schema version the file holds (``PRAGMA user_version``)."""
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def _access(self) -> Iterator[None]:
        """SQLite's errors of access to the file (read-only, locked, unreachable) as
        :class:`BadInput` naming the store's path as given; any other error as it is."""
        try:
            yield
        except (sqlite3.OperationalError, pd.errors.DatabaseError) as exc:
            text = str(exc).lower()
            if "readonly" in text or "read-only" in text:
                reason = ("the store cannot be written: check the permissions of the file "
                          "and of its folder, where SQLite keeps its -wal and -shm files")
            elif "locked" in text or "busy" in text:
                reason = (f"the store is locked by another process, still after {self.timeout_s:g}"
                          " s: try again when that process has finished")
            elif "unable to open" in text or "disk i/o" in text or "disk is full" in text:
                reason = f"cannot read or write the store: {exc}"
            else:
                raise
            raise BadInput(self.path, None, reason) from None

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; on any exception ``ROLLBACK`` and re-raise."""
        with self._access():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stored_inputs(self) -> dict[tuple[str, str], tuple[str, str]]:
        """``{(subject, session): (analysis version, input checksum)}`` of every session held."""
        return {(subject, session): (version, checksum) for subject, session, version, checksum
                in self._conn.execute("SELECT subject_id, session_id, analysis_version, "
                                      "input_sha256 FROM sessions")}

    def ingest(self, session_path: str | Path, *, result: SessionResult | None = None,
               checksum: str | None = None) -> str:
        """Analyse a session folder if needed and store it, replacing an older analysis.

        Parameters
        ----------
        session_path : str or Path
            The session folder; its symptoms.csv goes to the diary as ``session:<id>``.
        result : SessionResult, optional
            Its analysis, when already done; otherwise the pipeline runs here.
        checksum : str, optional
            Its :func:`input_checksum`, when already computed (a batch worker's).

        Returns
        -------
        str
            ``"unchanged"`` (same inputs and analysis version held: nothing analysed or
            written), ``"replaced"`` (older rows replaced atomically) or ``"stored"``.
        """
        path = Path(session_path)
        info = read_info(path)
        key = (check_subject(info.subject), info.session)
        if result is not None and (result.session.info.subject,
                                   result.session.info.session) != key:
            raise ValueError(f"the result is not of {path} ({key[0]}/{key[1]})")
        version = analysis_version(result.parameters if result is not None else None)
        checksum = checksum or input_checksum(path)
        held = self._conn.execute("SELECT analysis_version, input_sha256 FROM sessions "
                                  "WHERE subject_id = ? AND session_id = ?", key).fetchone()
        if held == (version, checksum):
            return "unchanged"
        if result is None:
            from .pipeline import analyze

            result = analyze(path)
        writes = _session_writes(result, key, version, checksum, path)
        with self._transaction():
            self._add_subject(key[0])
            replaced = self._conn.execute(
                "DELETE FROM sessions WHERE subject_id = ? AND session_id = ?", key).rowcount
            self._conn.execute("DELETE FROM diary WHERE subject_id = ? AND source = ?",
                               (key[0], f"session:{key[1]}"))
            for sql, rows in writes:
                self._conn.executemany(sql, rows)
        return "replaced" if replaced else "stored"

    def _add_subject(self, subject: str) -> None:
        self._conn.execute("INSERT OR IGNORE INTO subjects VALUES (?, ?)",
                           (check_subject(subject), _iso(datetime.now(UTC))))

    def add_diary(self, subject: str, entries: pd.DataFrame, source: str) -> int:
        """Add diary entries (as :func:`backpop_sense.diary.read_diary_csv` returns them).

        An entry held already for the same subject, time and ``source`` is kept as it is, so
        importing the same file twice adds nothing. Returns the number of entries added.
        """
        sql, rows = _diary_write(check_subject(subject), entries, source)
        with self._transaction():
            self._add_subject(subject)
            before = self._conn.total_changes
            self._conn.executemany(sql, rows)
            return self._conn.total_changes - before

    def replace_flags(self, subject: str, flags: Sequence[Mapping[str, Any]]) -> None:
        """Replace a subject's red flags, in one transaction.

        Each flag maps ``rule_id``, ``severity``, ``title``, ``first_seen`` and ``last_seen``
        (times or None), ``evidence`` (a JSON-able dict) and ``reason``.
        """
        check_subject(subject)
        now = _iso(datetime.now(UTC))
        rows = []
        for flag in flags:
            if missing := [k for k in FLAG_KEYS if k not in flag]:
                raise ValueError(f"flag {flag.get('rule_id')!r} lacks {', '.join(missing)}")
            rows.append((subject, flag["rule_id"], flag["severity"], flag["title"],
                         _iso(flag["first_seen"]), _iso(flag["last_seen"]),
                         json.dumps(flag["evidence"], default=str), flag["reason"], now))
        with self._transaction():
            self._add_subject(subject)
            self._conn.execute("DELETE FROM flags WHERE subject_id = ?", (subject,))
            self._conn.executemany(_insert("flags", ("subject_id", *FLAG_KEYS, "evaluated_at")),
                                   rows)

    def has_subject(self, subject: str) -> bool:
        """Whether the store knows ``subject``."""
        with self._access():
            return self._conn.execute("SELECT 1 FROM subjects WHERE subject_id = ?",
                                      (subject,)).fetchone() is not None

    def _frame(self, sql: str, subject: str | None, order: str, *, times: Sequence[str] = (),
               json_columns: Sequence[str] = ()) -> pd.DataFrame:
        where = "" if subject is None else " WHERE subject_id = ?"
        with self._access():
            frame = pd.read_sql_query(f"{sql}{where} ORDER BY {order}", self._conn,
                                      params=() if subject is None else (subject,))
        for column in times:
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        for column in json_columns:
            frame[column] = [json.loads(v) for v in frame[column]]
        return frame

    def subjects(self) -> pd.DataFrame:
        """``subject``, ``created_at`` and the number of ``sessions`` stored."""
        return self._frame(
            "SELECT subject_id AS subject, created_at, (SELECT count(*) FROM sessions s "
            "WHERE s.subject_id = subjects.subject_id) AS sessions FROM subjects", None,
            "subject", times=("created_at",))

    def sessions(self, subject: str | None = None) -> pd.DataFrame:
        """``subject``, ``session``, ``start``, ``duration_s``, ``analysis_version``,
        ``input_sha256``, ``source_path``, ``summary`` (summary.json as a dict), ``ingested_at``.
        """
        return self._frame(
            "SELECT subject_id AS subject, session_id AS session, "
            f"{', '.join(SESSION_COLUMNS[2:])} FROM sessions", subject, "subject, start, session",
            times=("start", "ingested_at"), json_columns=("summary",))

    def pops(self, subject: str | None = None) -> pd.DataFrame:
        """``subject``, ``session``, ``t`` (s since session start), ``time`` and pops.csv's
        columns."""
        return self._frame(
            f"SELECT subject_id AS subject, session_id AS session, t, time, "
            f"{', '.join(STORED_POP_COLUMNS)} FROM pops", subject, "subject, time, session, t",
            times=("time",))

    def motion(self, subject: str | None = None) -> pd.DataFrame:
        """Per session: ``start``, ``duration_s``, range of motion in degrees (``flexion_p5``
        ... ``twist_max``), ``context_s`` (dict of seconds), ``catches``, ``falls``."""
        return self._frame(
            "SELECT subject_id AS subject, session_id AS session, s.start, m.duration_s, "
            f"{', '.join(ROM_COLUMNS)}, context_s, catches, falls "
            "FROM motion m JOIN sessions s USING (subject_id, session_id)", subject,
            "subject, start, session", times=("start",), json_columns=("context_s",))

    def events(self, subject: str | None = None) -> pd.DataFrame:
        """Catches, falls and gaps: ``subject``, ``session``, ``t`` (s), ``time``, ``type``,
        ``detail``."""
        return self._frame(
            "SELECT subject_id AS subject, session_id AS session, t, time, type, detail "
            "FROM events", subject, "subject, time, session, t", times=("time",))

    def diary(self, subject: str | None = None) -> pd.DataFrame:
        """``subject``, the diary columns (``time`` in UTC) and ``source``."""
        return self._frame(
            f"SELECT subject_id AS subject, {', '.join(DIARY_COLUMNS)}, source FROM diary",
            subject, "subject, time, source", times=("time",))

    def flags(self, subject: str | None = None) -> pd.DataFrame:
        """``subject``, the flag fields (``evidence`` as a dict) and ``evaluated_at``."""
        return self._frame(
            f"SELECT subject_id AS subject, {', '.join(FLAG_KEYS)}, evaluated_at FROM flags",
            subject, "subject, rowid", times=("first_seen", "last_seen", "evaluated_at"),
            json_columns=("evidence",))
