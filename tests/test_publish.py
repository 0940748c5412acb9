"""benchmarks/publish.py: benchmark output replaces its own section of the README, nothing else."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from publish import measured, publish, published  # noqa: E402

PAGE = """# Measured figures

Prose typed by hand.

<!-- begin replay.py -->
old figures
<!-- end replay.py -->

<!-- begin ble.py -->
ble figures
<!-- end ble.py -->

Closing words.
"""


def test_a_section_is_replaced_and_the_rest_kept(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text(PAGE)
    publish("replay.py", "new figures\n| a | b |", page)
    assert page.read_text() == PAGE.replace("old figures", "new figures\n| a | b |")
    publish("replay.py", "new figures\n| a | b |", page)
    assert page.read_text() == PAGE.replace("old figures", "new figures\n| a | b |")


def test_a_missing_section_is_added_at_the_end(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text(PAGE)
    publish("detection.py --family-only", "held out", page)
    assert page.read_text() == (PAGE + "\n<!-- begin detection.py --family-only -->\nheld out\n"
                                "<!-- end detection.py --family-only -->\n")
    fresh = tmp_path / "new.md"
    publish("replay.py", "x", fresh)
    assert fresh.read_text() == "<!-- begin replay.py -->\nx\n<!-- end replay.py -->\n"


def test_a_section_without_its_end_is_refused_untouched(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    damaged = PAGE.replace("<!-- end replay.py -->", "")
    page.write_text(damaged)
    with pytest.raises(ValueError, match="<!-- begin replay.py --> has no <!-- end replay.py"):
        publish("replay.py", "new", page)
    assert page.read_text() == damaged


def test_what_a_run_prints_is_published_under_its_command(tmp_path: Path, capsys) -> None:
    page = tmp_path / "README.md"
    page.write_text(PAGE)
    with published("replay.py", ["--block-size", "512"], page):
        print("session  x real time")
        print("10 min   1834")
    assert capsys.readouterr().out == "session  x real time\n10 min   1834\n"
    text = page.read_text()
    assert text.startswith(PAGE)  # a new command is a new section: replay.py's is kept
    body = text.split("<!-- begin replay.py --block-size 512 -->\n")[1].split("\n<!-- end")[0]
    assert body.startswith("Printed by `.venv/bin/python benchmarks/replay.py --block-size "
                           "512` on ")
    assert body.endswith("```text\nsession  x real time\n10 min   1834\n```")


def test_quick_and_failed_runs_publish_nothing(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text(PAGE)
    with published("replay.py", ["--quick"], page):
        print("smoke test")
    with pytest.raises(RuntimeError), published("replay.py", [], page):
        print("half a table")
        raise RuntimeError("benchmark failed")
    assert page.read_text() == PAGE


def test_the_header_names_date_command_and_cores() -> None:
    text = measured("ble.py", "\nfigures\n", when=datetime(2026, 12, 6, tzinfo=UTC))
    head, block = text.split("\n\n")
    assert head.startswith("Printed by `.venv/bin/python benchmarks/ble.py` on 2026-12-06 at ")
    assert re.search(r"\(\d+ cores available, load average \d+\.\d\):$", head)
    assert block == "```text\nfigures\n```"
