"""Benchmark output into ``benchmarks/README.md``, so that no measured figure is typed by hand.

Each benchmark script runs its ``main`` inside :func:`published`: what it prints to stdout is
printed as before and, when the run ends without an error, written into the README between
``<!-- begin SECTION -->`` and ``<!-- end SECTION -->``, where SECTION is the command that
made it (``detection.py --family-only``), with the date, the commit, the cores it had and the
load on them. A run with ``--quick`` is a smoke test and publishes nothing.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"


def _markers(section: str) -> tuple[str, str]:
    return f"<!-- begin {section} -->", f"<!-- end {section} -->"


def publish(section: str, markdown: str, path: Path = README) -> None:
    """Put ``markdown`` between the section's markers in ``path``, replacing what was there.

    A section not in the file yet is added at its end; the rest of the file is left as it is.

    Raises
    ------
    ValueError
        If the file has the section's begin marker without its end marker after it (the file
        was damaged by hand; writing would lose what follows).
    """
    begin, end = _markers(section)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    body = markdown.strip("\n")
    start = text.find(begin)
    if start < 0:
        text = f"{text.rstrip()}\n\n{begin}\n{body}\n{end}\n".lstrip()
    else:
        stop = text.find(end, start + len(begin))
        if stop < 0:
            raise ValueError(f"{path}: {begin} has no {end} after it")
        text = f"{text[:start + len(begin)]}\n{body}\n{text[stop:]}"
    path.write_text(text, encoding="utf-8")


def _commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no", "--", "backpop_sense", "benchmarks",
                                ":!*.md"],  # what was published before changes no figure
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "an unknown commit"
    return f"{head} with uncommitted changes" if dirty else head


def measured(command: str, output: str, *, when: datetime | None = None,
             commit: str | None = None) -> str:
    """The markdown of one run: who made it, when, where, then its output as printed.

    ``commit`` is the code measured (by default the checkout's now), ``when`` the run's start.
    """
    when = when or datetime.now(UTC)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # Timings depend on what else the machine was doing: the load at the end says so.
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (f"Printed by `.venv/bin/python benchmarks/{command}` on {when:%Y-%m-%d} at "
            f"{commit or _commit()} ({cores} cores available{load}):\n\n```text\n"
            f"{output.strip(chr(10))}\n```")


class _Tee(io.TextIOBase):
    def __init__(self, *streams: io.TextIOBase) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


@contextlib.contextmanager
def published(script: str, args: Sequence[str] | None = None,
              path: Path = README) -> Iterator[None]:
    """Print as usual; at a clean end, publish what was printed under the command's section.

    Parameters
    ----------
    script : str
        The benchmark's file name, such as ``replay.py``.
    args : sequence of str, optional
        Its command-line arguments (``sys.argv[1:]`` by default); part of the section's name,
        so runs with other arguments keep their own sections.
    """
    args = list(sys.argv[1:] if args is None else args)
    if "--quick" in args:
        yield
        return
    command = " ".join([script, *args])
    # The code measured is the checkout as the run starts; it may be committed meanwhile.
    started, commit = datetime.now(UTC), _commit()
    captured = io.StringIO()
    with contextlib.redirect_stdout(_Tee(sys.stdout, captured)):
        yield
    publish(command, measured(command, captured.getvalue(), when=started, commit=commit), path)
    print(f"published in {path} under '{command}'", file=sys.stderr)
