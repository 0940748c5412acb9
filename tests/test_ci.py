"""CI's choice of the tests that run on the newest releases allowed (.ci/affected.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("affected", ROOT / ".ci" / "affected.py")
affected = importlib.util.module_from_spec(spec)
spec.loader.exec_module(affected)


def chosen(*drifts: tuple[str, str, str]) -> list[str] | None:
    diff = "\n".join(f"< {name}=={was}\n> {name}=={now}" for name, was, now in drifts)
    return affected.select(affected.drifted(diff))


def test_a_test_only_dependency_runs_the_tests_that_import_it():
    files = chosen(("hypothesis", "6.170.29", "6.171.0"))
    assert "tests/test_fuzz.py" in files
    assert "tests/test_pops.py" not in files
    assert not any(f.startswith("backpop_sense/") for f in files)


def test_a_command_runs_only_the_tests_that_run_that_command():
    """dask is imported by ``backpop batch`` alone: a test that runs ``backpop analyze`` and
    ``evaluate`` (test_pops) cannot meet it, one that runs ``batch`` (test_batch) can."""
    files = chosen(("dask", "2026.11.0", "2026.12.0"))
    assert "tests/test_batch.py" in files and "backpop_sense/batch.py" in files
    assert "tests/test_pops.py" not in files


def test_a_core_dependency_runs_what_reaches_it_through_the_package_or_conftest():
    """pandas: every test file (tests/conftest.py imports it, and it is loaded with each),
    and the docstring examples of the modules that reach it, not of those that do not."""
    files = chosen(("pandas", "3.1.2", "3.1.3"))
    tests = {f"tests/{p.name}" for p in (ROOT / "tests").glob("test_*.py")}
    assert tests <= set(files)
    assert "backpop_sense/store.py" in files
    assert "backpop_sense/vocab.py" not in files


def test_an_indirect_dependency_counts_at_a_new_major_version_only():
    threadpool = affected.requires().get("scikit-learn", set())
    if "threadpoolctl" not in threadpool:
        pytest.skip("this scikit-learn does not require threadpoolctl")
    assert chosen(("threadpoolctl", "3.6.0", "3.7.0")) == []
    files = chosen(("threadpoolctl", "3.6.0", "4.0.0"))
    assert "tests/test_train_gate.py" in files


def test_the_test_runner_runs_everything():
    assert chosen(("pytest", "9.0.0", "9.1.0")) is None
    assert chosen() == []
