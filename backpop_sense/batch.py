"""Many sessions at once: analysed in worker processes or on a Dask cluster, stored by one
writer.

The workers run :func:`analyze_session` and send back what the store needs; only the process
that called :func:`run_batch` opens the SQLite store, and it writes each session in one
transaction as soon as its analysis comes back, so an interrupted batch keeps every session
finished before the interruption. A session whose inputs and analysis version the store holds
already is skipped by its worker after a checksum, without being analysed. A session that
fails (bad input or any other error) is reported with its error and the others go on. At the
end the red flags of every subject in the batch are re-evaluated.

The ``local`` engine is a process pool on this machine; the ``dask`` engine submits the same
function to a ``dask.distributed`` cluster (the extra ``backpop-sense[dask]``): the one at a
scheduler address, or a ``LocalCluster`` started for the batch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BadInput, BadParameter
from .params import COUNT, Choice, Instance, OrNone, Rules, check_values

if TYPE_CHECKING:
    from .motion.tracker import MotionFrame
    from .pipeline import SessionResult
    from .store import Store

ENGINES = ("local", "dask")
BATCH_RULES: Rules = {"engine": Choice(ENGINES), "workers": OrNone(COUNT),
                      "scheduler": OrNone(Instance(str, "a scheduler address"))}
SINGLE_THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                            "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                                            "NUMBA_NUM_THREADS")}
"""Each worker computes on one thread, so that N workers keep N cores busy and no more."""

LOCAL_CLUSTER_CONFIG = {
    # Dask's default has glibc return freed memory to the OS at once; the pipeline frees a
    # block-sized array per block and runs slower so (benchmarks/batch.md).
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    # The statistical profiler samples each worker's stack every 10 ms; nothing reads it here.
    "distributed.worker.profile.enabled": False,
}
"""Dask settings of the ``LocalCluster`` a batch starts (a cluster elsewhere keeps its own)."""

Task = tuple[str, str | None]
"""What a worker is sent: the session folder and the checksum stored for it (or None)."""


@dataclass(frozen=True)
class Analysed:
    """What a worker sends back for one session folder.

    Attributes
    ----------
    path : str
        The session folder, as sent to the worker.
    status : str
        ``"analysed"`` (``result`` holds the analysis), ``"current"`` (the store holds these
        very inputs analysed by this version: nothing was done) or ``"failed"``.
    result : SessionResult, optional
        The analysis, without motion frames (the store keeps none).
    error : str, optional
        Why it failed, in one line.
    checksum : str, optional
        The folder's input checksum, computed once here and handed to the store.
    """

    path: str
    status: str
    result: SessionResult | None = None
    error: str | None = None
    checksum: str | None = None


@dataclass
class BatchReport:
    """What a batch did with each session folder.

    Attributes
    ----------
    stored, replaced, skipped : list of Path
        Folders stored anew, stored over an older analysis, and left as they were because the
        store holds the same inputs analysed by the same version.
    failed : list of (Path, str)
        Folders that could not be analysed or stored, each with its error in one line.
    subjects : list of str
        Subjects whose red flags were re-evaluated.
    engine : str
        ``"local"`` or ``"dask"``.
    workers : int or None
        Worker processes used (None: those of the cluster at a scheduler address).
    wall_s : float
        Wall time of the whole batch, seconds.
    """

    stored: list[Path] = field(default_factory=list)
    replaced: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    engine: str = "local"
    workers: int | None = None
    wall_s: float = 0.0

    def summary(self) -> str:
        """One line: how many sessions went where, and how long it took."""
        total = len(self.stored) + len(self.replaced) + len(self.skipped) + len(self.failed)
        workers = "cluster workers" if self.workers is None else \
            f"{self.workers} worker{'s' * (self.workers != 1)}"
        return (f"{total} session{'s' * (total != 1)} in {self.wall_s:.1f} s ({self.engine}, "
                f"{workers}): {len(self.stored)} stored, {len(self.replaced)} replaced, "
                f"{len(self.skipped)} skipped, {len(self.failed)} failed")


def _discard_frames(frames: list[MotionFrame]) -> None:
    """Frame sink of the workers: the store keeps no motion frames, so none travel back."""


def _one_line(exc: BaseException) -> str:
    message = str(exc) if isinstance(exc, BadInput) else f"{type(exc).__name__}: {exc}"
    return " ".join(message.split())


def analyze_session(path: str, stored_checksum: str | None = None) -> Analysed:
    """Analyse one session folder for the store; the function every worker runs.

    It never raises: any error comes back as a ``"failed"`` :class:`Analysed`, so that one
    bad session does not stop a batch (and no exception has to travel between processes).

    Parameters
    ----------
    path : str
        The session folder, as the worker sees it.
    stored_checksum : str, optional
        The input checksum (:func:`backpop_sense.store.input_checksum`) that the store holds
        for this session analysed by the current version; when the folder's checksum is the
        same, nothing is analysed.

    Returns
    -------
    Analysed
        The analysis, or that the store is current, or the error.

    Examples
    --------
    >>> from backpop_sense.batch import analyze_session
    >>> analyze_session("data/samples/S01/2026-11-02a").status  # doctest: +SKIP
    'analysed'
    """
    try:
        from .pipeline import analyze
        from .store import input_checksum

        checksum = input_checksum(path)
        if checksum == stored_checksum:
            return Analysed(path, "current")
        return Analysed(path, "analysed", analyze(path, frame_sink=_discard_frames),
                        checksum=checksum)
    except Exception as exc:  # noqa: BLE001 - reported per session; the batch goes on
        return Analysed(path, "failed", error=_one_line(exc))


def _default_workers() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _import_dask() -> tuple[Any, Any, Any, Any]:
    try:
        import dask
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_completed
    except ImportError:
        raise BadParameter("batch", "engine", "dask is not installed; install the extra: "
                           "pip install 'backpop-sense[dask]'") from None
    return dask.config, Client, LocalCluster, dask_completed


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` inside the block (for the processes started there)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _collect(future: Any, path: str) -> Analysed:
    """A finished future's :class:`Analysed`; a lost worker makes it ``"failed"``."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - e.g. a worker killed by the OS
        return Analysed(path, "failed", error=_one_line(exc))


def _run_local(tasks: Sequence[Task], workers: int) -> Iterator[Analysed]:
    # Spawned (not forked) workers start fresh, so they read the thread settings at start.
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
    try:
        with _environment(SINGLE_THREAD_ENV):
            futures: dict[Future, str] = {pool.submit(analyze_session, *task): task[0]
                                          for task in tasks}
        for future in as_completed(futures):
            yield _collect(future, futures[future])
    finally:
        pool.shutdown(cancel_futures=True)


def _run_dask(tasks: Sequence[Task], workers: int | None, scheduler: str | None
              ) -> Iterator[Analysed]:
    config, client_class, cluster_class, dask_completed = _import_dask()
    with ExitStack() as stack:
        if scheduler is None:
            stack.enter_context(config.set(LOCAL_CLUSTER_CONFIG))
            target = stack.enter_context(cluster_class(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, env=SINGLE_THREAD_ENV))
        else:
            target = scheduler
        try:
            client = stack.enter_context(client_class(target))
        except OSError as exc:
            raise BadParameter("batch", "scheduler",
                               f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        futures = {client.submit(analyze_session, *task, pure=False): task[0]
                   for task in tasks}
        for future in dask_completed(futures):
            yield _collect(future, futures[future])
            future.release()


def _plan(given: Sequence[Path], store: Store, report: BatchReport
          ) -> tuple[list[Task], dict[str, tuple[Path, str]]]:
    """The worker tasks, and each task's folder as given and subject.

    Folders that cannot be read, or that hold a subject and session named by an earlier folder
    too, go straight to ``report.failed``; a folder given twice is taken once.
    """
    from .session import read_info
    from .store import analysis_version
    from .vocab import check_subject

    version = analysis_version()
    held = {key: checksum for key, (held_version, checksum) in store.stored_inputs().items()
            if held_version == version}
    tasks: list[Task] = []
    folders: dict[str, tuple[Path, str]] = {}
    keys: dict[tuple[str, str], Path] = {}
    seen: set[str] = set()
    for folder in given:
        path = str(folder.resolve())
        if path in seen:
            continue
        seen.add(path)
        try:
            info = read_info(Path(path))
            key = (check_subject(info.subject), info.session)
        except Exception as exc:  # noqa: BLE001 - reported; the batch goes on
            report.failed.append((folder, _one_line(exc)))
            continue
        if key in keys:
            report.failed.append((folder, f"{key[0]}/{key[1]} is also in {keys[key]}: "
                                          "one folder per session"))
            continue
        keys[key] = folder
        folders[path] = (folder, key[0])
        tasks.append((path, held.get(key)))
    return tasks, folders


def _write(store: Store, outcome: Analysed, folder: Path, report: BatchReport) -> None:
    if outcome.status == "current":
        report.skipped.append(folder)
        return
    if outcome.result is None:
        report.failed.append((folder, outcome.error or "failed"))
        return
    try:
        status = store.ingest(outcome.path, result=outcome.result, checksum=outcome.checksum)
    except Exception as exc:  # noqa: BLE001 - reported; the batch goes on
        report.failed.append((folder, _one_line(exc)))
        return
    {"stored": report.stored, "replaced": report.replaced,
     "unchanged": report.skipped}[status].append(folder)


def run_batch(paths: Iterable[str | Path], *, db: str | Path | None = None,
              engine: str = "local", workers: int | None = None, scheduler: str | None = None,
              progress: bool = True) -> BatchReport:
    """Analyse and store many session folders in parallel, with a progress bar.

    The local engine (and a Dask ``LocalCluster``) start their workers as fresh processes
    ("spawn"), which import the main module: in a script, call this function under
    ``if __name__ == "__main__":``, as with any process pool.

    Parameters
    ----------
    paths : iterable of str or Path
        Session folders. The workers of a Dask cluster elsewhere must see them at the same
        paths (a shared file system) and have backpop-sense installed.
    db : str or Path, optional
        The store file; see :func:`backpop_sense.store.default_db_path`.
    engine : {"local", "dask"}
        ``local``: a pool of processes on this machine. ``dask``: the Dask cluster at
        ``scheduler``, or a ``LocalCluster`` of ``workers`` processes started for the batch.
    workers : int, optional
        Worker processes, one thread each (default: the cores this process may use). Not
        with ``scheduler``: that cluster has its own workers.
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``); only with ``engine="dask"``.
    progress : bool
        Show a progress bar (rich) while the batch runs.

    Returns
    -------
    BatchReport
        Which folders were stored, replaced, skipped (already current) and failed, and why,
        each list in the order the folders were given.

    Raises
    ------
    BadInput
        An unknown engine, a bad worker count, ``scheduler`` without the dask engine, dask
        not installed, a scheduler that cannot be reached, or a store that cannot be opened.
        A bad session folder is not raised: it is reported in ``failed``.

    Examples
    --------
    >>> from backpop_sense.batch import run_batch
    >>> report = run_batch(["data/samples/S01/2026-11-02a", "data/samples/S02/2026-11-03a"],
    ...                    db="backpop.db", workers=2)  # doctest: +SKIP
    >>> report.summary()  # doctest: +SKIP
    '2 sessions in 6.1 s (local, 2 workers): 2 stored, 0 replaced, 0 skipped, 0 failed'
    """
    _check_engine(engine, workers, scheduler)
    from .store import Store

    started = time.perf_counter()
    given = [Path(p) for p in paths]
    report = BatchReport(engine=engine)
    with Store(db) as store:
        folders = _analyse_and_store(store, given, report, workers, scheduler, progress)
        _refresh_flags(store, folders, report)
    _sort_as_given(report, given)
    report.wall_s = time.perf_counter() - started
    return report


def _check_engine(engine: str, workers: int | None, scheduler: str | None) -> None:
    """Raise :class:`BadParameter` for an engine, worker count or scheduler that cannot run."""
    check_values("batch", BATCH_RULES, engine=engine, workers=workers, scheduler=scheduler)
    if scheduler is not None and engine != "dask":
        raise BadParameter("batch", "scheduler", "needs the dask engine")
    if scheduler is not None and workers is not None:
        raise BadParameter("batch", "workers", "sets the size of a local cluster; the cluster "
                           "at the scheduler has its own workers")
    if engine == "dask":
        _import_dask()


def _analyse_and_store(store: Store, given: Sequence[Path], report: BatchReport,
                       workers: int | None, scheduler: str | None, progress: bool
                       ) -> dict[str, tuple[Path, str]]:
    """Run the batch's engine over ``given``, storing each session as its analysis comes
    back, under a progress bar; return each task's folder as given and subject."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    tasks, folders = _plan(given, store, report)
    if scheduler is None:
        report.workers = min(workers or _default_workers(), max(len(tasks), 1))
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[tally]}"), TimeElapsedColumn(),
                   TimeRemainingColumn(), disable=not progress)
    with bar:
        job = bar.add_task(f"batch ({report.engine})", total=len(tasks) + len(report.failed),
                           completed=len(report.failed), tally="")
        if tasks:
            engine_run = (_run_local(tasks, report.workers or 1) if report.engine == "local"
                          else _run_dask(tasks, report.workers, scheduler))
            with closing(engine_run) as outcomes:  # an interruption stops the workers
                for outcome in outcomes:
                    _write(store, outcome, folders[outcome.path][0], report)
                    bar.update(job, advance=1, tally=(
                        f"{len(report.stored) + len(report.replaced)} stored, "
                        f"{len(report.skipped)} skipped, {len(report.failed)} failed"))
    return folders


def _refresh_flags(store: Store, folders: dict[str, tuple[Path, str]],
                   report: BatchReport) -> None:
    """Re-evaluate the red flags of every subject with a session stored or current."""
    from .rules import refresh_flags

    done = {*report.stored, *report.replaced, *report.skipped}
    report.subjects = sorted({subject for folder, subject in folders.values()
                              if folder in done})
    for subject in report.subjects:
        refresh_flags(store, subject)


def _sort_as_given(report: BatchReport, given: Sequence[Path]) -> None:
    """Each list of the report in the order its folders were first given."""
    position: dict[Path, int] = {}
    for i, folder in enumerate(given):
        position.setdefault(folder, i)
    for done_list in (report.stored, report.replaced, report.skipped):
        done_list.sort(key=position.__getitem__)
    report.failed.sort(key=lambda failure: position[failure[0]])
