"""The notebooks run from top to bottom on the sample data, in a real Jupyter kernel, so they
never rot; their committed form holds no outputs."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
KERNEL = "backpop-test-python"


@pytest.fixture
def this_python_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec that runs this very interpreter (the venv's), ahead of any other spec."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "backpop-sense tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL


def test_there_are_the_three_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == ["01_explore_a_session.ipynb", "02_cohort.ipynb",
                                           "03_lsl_markers.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_valid_and_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_the_samples(path: Path, tmp_path: Path, this_python_kernel: str
                                      ) -> None:
    copy = shutil.copy(path, tmp_path / path.name)  # nothing is written next to the original
    nb = nbformat.read(copy, as_version=4)
    NotebookClient(nb, kernel_name=this_python_kernel, timeout=300,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in nb.cells if cell.cell_type == "code"
               for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plots were drawn
    if path.stem == "02_cohort":
        text = "".join(o.get("text", "") for o in outputs)
        assert "6 sessions" in text and "6 stored" in text and "0 failed" in text
        assert "This is not a diagnosis" in text
