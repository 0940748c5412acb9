"""The package's docstring examples (``--doctest-modules``, pyproject.toml) run as a reader
would run them: in a fresh interpreter at the repository root.

Each example starts from an empty namespace, so it imports what it uses (and is compiled
without its module's ``from __future__ import annotations``), and runs in a temporary folder
where ``data/`` and ``firmware_configs/`` are the repository's: it reads the shipped sessions
and profiles by the paths the README uses, and what it writes (``out/...``, ``backpop.db``)
stays out of the repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem

ROOT = Path(__file__).resolve().parents[1]
SHARED = ("data", "firmware_configs")


@pytest.fixture(autouse=True)
def _run_examples_as_a_reader(request: pytest.FixtureRequest, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    if isinstance(request.node, DoctestItem):
        globs = request.node.dtest.globs
        globs.clear()
        globs["__name__"] = "__main__"
        for name in SHARED:
            (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
        monkeypatch.chdir(tmp_path)
