"""The README is a front door that works: its example runs, its links and commands exist."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import typer

from backpop_sense.cli import app
from backpop_sense.levels import is_level
from backpop_sense.results import POP_COLUMNS
from backpop_sense.session import Session
from backpop_sense.sources.emulator import check_session
from backpop_sense.sources.profiles import load_profile

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
TEXT = README.read_text(encoding="utf-8")
FIRST_SCREEN = "\n".join(TEXT.splitlines()[:50])


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", TEXT, flags=re.DOTALL)


def test_the_readme_is_a_short_front_door() -> None:
    assert len(TEXT.splitlines()) <= 200
    for moved in ("## Formats", "## How it works", "## Measured figures"):
        assert moved not in TEXT


def test_the_python_example_analyses_a_bundled_session(monkeypatch, capsys) -> None:
    [example] = _blocks("python")
    assert len(example.strip().splitlines()) <= 10
    monkeypatch.chdir(REPO)
    namespace: dict = {}
    exec(compile(example, str(README), "exec"), namespace)
    pops = namespace["pops"]
    assert isinstance(pops, pd.DataFrame) and len(pops) > 0
    assert list(pops.columns[:len(POP_COLUMNS)]) == list(POP_COLUMNS)
    assert all(is_level(level) for level in pops["level"])
    assert "level" in capsys.readouterr().out


def test_the_live_path_on_the_first_screen_uses_a_session_its_profile_plays() -> None:
    record = re.search(r"backpop record --profile (\S+) --emulate (\S+)", FIRST_SCREEN)
    assert record is not None, "the emulated live path is not on the README's first screen"
    profile, session = record.groups()
    check_session(Session(REPO / session), load_profile(profile))
    recorded = re.search(r" -o (\S+)", FIRST_SCREEN[record.end():]).group(1)
    assert f"backpop analyze {recorded}" in FIRST_SCREEN
    for command in ("make demo", "make test"):
        assert command in FIRST_SCREEN


def test_every_command_is_in_the_table() -> None:
    commands = typer.main.get_command(app).commands
    table = "\n".join(line for line in TEXT.splitlines() if line.startswith("| `backpop "))
    for name, command in commands.items():
        subcommands = getattr(command, "commands", None) or {"": None}
        for sub in subcommands:
            assert f"`backpop {name} {sub}".rstrip() in table, f"backpop {name} {sub}"


@pytest.mark.parametrize("page", ["README.md", "docs/formats.md", "docs/how-it-works.md",
                                  "firmware_configs/README.md", "benchmarks/README.md"])
def test_links_and_paths_lead_somewhere_inside_the_repository(page: str) -> None:
    path = REPO / page
    text = path.read_text(encoding="utf-8")
    if page != "benchmarks/README.md":  # its moved figures name data kept outside
        assert "../shared" not in text
    links = re.findall(r"\]\(([^)#]+)\)", text)  # relative to the page
    paths = re.findall(r"`((?:docs|firmware_configs|benchmarks|notebooks|backpop_sense|tests|"
                       r"data)/[^`\s<*]*)`", text)  # relative to the repository
    assert links or paths
    for target in links:
        assert (path.parent / target).exists(), f"{page}: link {target} leads nowhere"
    for target in paths:
        assert (REPO / target).exists(), f"{page}: {target} does not exist"
