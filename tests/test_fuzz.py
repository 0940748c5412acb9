"""Fuzz: session folders, WAV headers, IMU tables, diaries and rule files mutated field by
field, each run through the real command line under a time and memory limit (tests/fuzz.py).

Every case must succeed, or exit 2 with one line under 300 characters naming the file; never
exit 1, a traceback, a hang or a memory blow-up; and leave its input as it was. The cases run
here are reproducible (``derandomize``), a modest number per kind so that the whole module
takes about a minute. To search further::

    BACKPOP_FUZZ_EXAMPLES=2000 BACKPOP_FUZZ_SAVE=1 .venv/bin/python -m pytest tests/test_fuzz.py

runs that many random cases per kind and keeps each failing one in tests/corpus/KIND/ (the
mutated file and case.json); the shrunk case hypothesis prints is the one to keep once fixed.
Every kept case is replayed by :func:`test_corpus_case`, which also asks the library call
behind the command for the very error line the command printed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from fuzz import (
    Base,
    apply,
    check,
    corpus_cases,
    diary_mutations,
    fresh_dir,
    make_base,
    replay_case,
    rules_mutations,
    run_cli,
    save_case,
    session_mutations,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backpop_sense.errors import BadInput

EXPLORE = int(os.environ.get("BACKPOP_FUZZ_EXAMPLES", "0"))
SAVE = os.environ.get("BACKPOP_FUZZ_SAVE") == "1"


def budget(examples: int) -> settings:
    """``examples`` reproducible cases, or ``BACKPOP_FUZZ_EXAMPLES`` random ones."""
    return settings(max_examples=EXPLORE or examples, derandomize=not EXPLORE, deadline=None,
                    database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    return make_base(tmp_path_factory.mktemp("fuzz-base"))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _snapshot(target: Path) -> dict[str, bytes]:
    files = sorted(target.rglob("*")) if target.is_dir() else [target]
    return {str(p): p.read_bytes() for p in files if p.is_file()}


def run_case(kind: str, mutation: dict, variant: str, base: Base, root: Path) -> None:
    folder = fresh_dir(root, kind)
    try:
        target = base.copy(kind, folder)
        changed = apply(mutation, target)
        before = _snapshot(target)
        run = run_cli(base.command(kind, target, folder, variant))
        try:
            check(run, target)
            assert _snapshot(target) == before, f"{kind} input changed: {run.args}"
        except AssertionError:
            if SAVE:
                save_case(kind, mutation, variant, changed, run)
            raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@budget(150)
@given(data=st.data(), variant=st.sampled_from(["replay", "ingest", "evaluate"]))
def test_fuzz_session_folders(base: Base, work: Path, data: st.DataObject,
                              variant: str) -> None:
    """session.json fields, WAV header fields, IMU and side-table cells."""
    run_case("session", data.draw(session_mutations(base)), variant, base, work)


@budget(60)
@given(mutation=diary_mutations())
def test_fuzz_diaries(base: Base, work: Path, mutation: dict) -> None:
    run_case("diary", mutation, "import", base, work)


@budget(80)
@given(mutation=rules_mutations(), variant=st.sampled_from(["flags"] * 4 + ["report"]))
def test_fuzz_rule_files(base: Base, work: Path, mutation: dict, variant: str) -> None:
    run_case("rules", mutation, variant, base, work)


# --- the corpus: the cases the harness found, replayed -------------------------------------


def _library_call(kind: str, variant: str, target: Path, folder: Path) -> None:
    """What the command calls in the library, in this process."""
    from backpop_sense.diary import read_diary_csv
    from backpop_sense.pipeline import analyze
    from backpop_sense.rules import load_rules
    from backpop_sense.store import Store

    if kind == "session" and variant == "ingest":
        with Store(folder / "library.db") as store:
            store.ingest(target)
    elif kind == "session" and variant == "evaluate":
        from backpop_sense.evaluate import simulated_events

        session = analyze(target).session
        if session.truth() is None:
            raise BadInput(target / "truth.csv", None, "file is missing: nothing to score "
                           "against")
        session.motion_truth()
        simulated_events(session.info.extra, target / "session.json",
                         session.duration_s + session.info.audio_offset_s)
    elif kind == "session":
        analyze(target)
    elif kind == "diary":
        with Store(folder / "library.db") as store:
            store.add_diary("S01", read_diary_csv(target), "import")
    else:
        load_rules(target)


@pytest.mark.parametrize(("kind", "case"), [pytest.param(kind, folder, id=f"{kind}-{folder.name}")
                                            for kind, folder in corpus_cases()])
def test_corpus_case(base: Base, work: Path, kind: str, case: Path) -> None:
    """A case the harness found: the command succeeds or gives one line; the library call
    behind it gives the same line as BadInput (or succeeds too)."""
    import json

    folder = fresh_dir(work, f"corpus-{kind}")
    variant = json.loads((case / "case.json").read_text(encoding="utf-8"))["variant"]
    run, target, _ = replay_case(kind, case, base, folder)
    check(run, target)
    if run.code == 2:
        with pytest.raises(BadInput) as err:
            _library_call(kind, variant, target, folder)
        assert run.stderr == f"backpop: error: {err.value}\n"
    else:
        _library_call(kind, variant, target, folder)


def test_the_corpus_is_kept() -> None:
    assert len(corpus_cases()) >= 10
