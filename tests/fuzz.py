"""The fuzz harness's parts: the inputs it starts from, their mutations, and a runner that puts
the real command line under a time and memory limit.

Every case is one input file changed one field at a time (a session.json field, a WAV header
field, a CSV cell, a diary cell, a rule file's field) or cut, and the command that reads it.
What it must do is :func:`check`: exit 0, or exit 2 with one line under 300 characters naming
the file; never exit 1 (an internal error), a traceback, a signal, a hang or a memory blow-up.

The runner forks this process, which has imported the package and compiled its numba kernels
once, and runs ``backpop_sense.cli.main`` in the child as the ``backpop`` command runs it: its
own stdout and stderr, ``RLIMIT_AS`` at :data:`MEMORY_HEADROOM` above what the child starts
with, and killed after :data:`TIMEOUT_S`. A case costs a tenth of a second this way, against
two and a half for a new interpreter.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import re
import resource
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

TIMEOUT_S = 60.0
"""A case still running after this is a hang (the good session takes well under a second)."""
MEMORY_HEADROOM = 1 << 30
"""Address space a case may add to what the child starts with, bytes: the good session needs a
few MB; a header that sizes buffers by an absurd rate asks for gigabytes."""
MAX_LINE = 300
"""Characters an error line may have."""
CORPUS = Path(__file__).resolve().parent / "corpus"
KINDS = ("session", "diary", "rules")


# --- running the command line ------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What one run of the command line did."""

    args: tuple[str, ...]
    code: int | None
    """Exit status; negative for a signal; None for a hang (killed)."""
    stdout: str
    stderr: str


def _child(args: list[str], out: int, err: int) -> None:
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + MEMORY_HEADROOM, used + MEMORY_HEADROOM))
    os.environ.pop("BACKPOP_DEBUG", None)
    os.environ["COLUMNS"] = "200"
    sys.argv = ["backpop", *args]
    from backpop_sense.cli import main

    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_cli(args: list[str], timeout: float = TIMEOUT_S) -> Run:
    """``backpop ARGS`` in a forked child under the time and memory limits."""
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = ctx.Process(target=_child, args=(args, out.fileno(), err.fileno()))
        child.start()
        child.join(timeout)
        if child.is_alive():
            child.kill()
            child.join()
            code = None
        else:
            code = child.exitcode
        out.seek(0)
        err.seek(0)
        return Run(tuple(args), code, out.read().decode("utf-8", "replace"),
                   err.read().decode("utf-8", "replace"))


def check(run: Run, named: Path) -> None:
    """Success, or exit 2 with one line under :data:`MAX_LINE` characters naming ``named``
    (the input file, or the session folder, any file in which may be the one at fault)."""
    said = f"backpop {' '.join(run.args)}\n  stdout: {run.stdout[-2000:]!r}\n  stderr: " \
           f"{run.stderr[-2000:]!r}"
    assert run.code is not None, f"hang (killed after {TIMEOUT_S:g} s): {said}"
    assert "Traceback" not in run.stderr + run.stdout, said
    assert run.code in (0, 2), f"exit status {run.code}: {said}"
    if run.code == 2:
        lines = run.stderr.splitlines()
        assert len(lines) == 1, said
        assert len(lines[0]) < MAX_LINE, said
        assert lines[0].startswith("backpop: error: "), said
        assert str(named) in lines[0], said
        assert not re.search(r"np\.\w+\(", lines[0]), f"a numpy type in the line: {said}"


# --- the inputs cases start from -----------------------------------------------------------


DIARY = """time,pain,stiffness,numbness,tingling,weakness,swelling,bruising,trauma,note
2026-11-20T08:00:00Z,2,3,0,0,0,0,0,0,morning
2026-11-20T09:31:00Z,6.5,7,0,1,0,0,0,0,"sharp, after the twist"
2026-11-21T10:00:00+01:00,0,0,0,0,0,1,0,1,
"""
RULES = Path(__file__).resolve().parent.parent / "backpop_sense" / "rules" / "redflags.toml"
SUBJECT = "S01"


@dataclass(frozen=True)
class Base:
    """The good inputs every case starts from, written once per test session."""

    session: Path
    db: Path
    """A store holding the session and a diary for ``SUBJECT``."""

    def command(self, kind: str, target: Path, work: Path, variant: str) -> list[str]:
        """The command a case of ``kind`` runs on ``target`` (its copy of the input)."""
        if kind == "session":
            if variant == "ingest":
                return ["ingest", str(target), "--db", str(work / "fresh.db")]
            if variant == "evaluate":
                return ["evaluate", str(target), "--json"]
            return ["replay", str(target), "--speed", "0"]
        db = work / "store.db"
        shutil.copyfile(self.db, db)
        if kind == "diary":
            return ["diary", "import", str(target), "--subject", SUBJECT, "--db", str(db)]
        if variant == "report":
            return ["report", SUBJECT, "--rules", str(target), "--db", str(db), "-o",
                    str(work / "report.html")]
        return ["flags", SUBJECT, "--json", "--rules", str(target), "--db", str(db)]

    def copy(self, kind: str, work: Path) -> Path:
        """A fresh copy of ``kind``'s good input in ``work``: the folder, diary or rule file."""
        if kind == "session":
            return Path(shutil.copytree(self.session, work / "session"))
        if kind == "diary":
            (work / "diary.csv").write_text(DIARY, encoding="utf-8")
            return work / "diary.csv"
        shutil.copyfile(RULES, work / "rules.toml")
        return work / "rules.toml"


def make_base(root: Path) -> Base:
    """Write the good session (1 s, 3 mics at 8 kHz, 2 IMUs at 100 Hz, side tables) and a
    store holding it and :data:`DIARY`."""
    from conftest import SessionFactory

    import backpop_sense.cli  # noqa: F401 - imported once here, not in every case
    import backpop_sense.report  # noqa: F401
    from backpop_sense.diary import read_diary_csv
    from backpop_sense.pipeline import analyze
    from backpop_sense.rules import refresh_flags
    from backpop_sense.store import Store

    session = SessionFactory(root)("good", duration_s=1.0)
    (root / "diary.csv").write_text(DIARY, encoding="utf-8")
    db = root / "store.db"
    # In this process, so that every forked case starts with numba's kernels compiled.
    result = analyze(session)
    with Store(db) as store:
        store.ingest(session, result=result)
        store.add_diary(SUBJECT, read_diary_csv(root / "diary.csv"), "import:diary.csv")
        refresh_flags(store, SUBJECT)
    return Base(session, db)


# --- mutations -----------------------------------------------------------------------------
# A mutation is data (JSON), so that a case can be printed, saved and replayed; apply() turns
# it into changed bytes.

HOSTILE_TEXT = [
    "", " ", "nan", "NaN", "-nan", "inf", "-Infinity", "1e308", "-1e308", "1e999", "0", "-0",
    "1e-320", "0x10", "1_000", "1,5", "true", "null", "None", "\ufeff1", "\u0661", "\u200b",
    '"', '""', "'", "\\", "\n", "\r", "\t", "\x00", ",", ",,,", "../../etc/passwd", "C1", "S5",
    "L9", "T12", "2026-11-20T09:30:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59",
    "2026-13-40", "1970-01-01T00:00:00+14:00", "2199-12-31T23:59:59-12:00", "x" * 1000,
    "9" * 400, "-1", "11", "10.0000001", "0.5", "2", "1e9", "-1e9", "4e5", "cavitation",
    "snap", "walk", "<script>alert(1)</script>", "%s%n", "{}", "[]",
]
"""Cell and field texts that have broken parsers elsewhere: numbers in every spelling,
invisible characters, separators, quotes, dates out of range, huge and tiny values."""


def text_values() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=12),
                     st.floats(allow_nan=True, allow_infinity=True).map(repr),
                     st.integers(-(10 ** 30), 10 ** 30).map(str))


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10 ** 400), 10 ** 400),
                        st.floats(allow_nan=True, allow_infinity=True),
                        st.sampled_from(HOSTILE_TEXT), st.text(max_size=8),
                        st.sampled_from([0, -1, 1e300, -1e300, 10 ** 400, 0.3, 3.0, 59.9]))
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["name", "level", "acc_unit", "axes", "x", "",
                                         "falls_s", "catches_s"]), inner,
                        max_size=3)), max_leaves=4)


def _json_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    paths = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            paths += _json_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            paths += _json_paths(value, (*prefix, i))
    return paths


def _get(doc: Any, path: tuple) -> Any:
    for step in path:
        doc = doc[step]
    return doc


@st.composite
def session_json_mutations(draw: st.DrawFn, doc: dict) -> dict:
    """One field of session.json (any depth) replaced, removed or added, or the text cut."""
    paths = _json_paths(doc)
    action = draw(st.sampled_from(["set", "set", "set", "delete", "add", "cut", "nest"]))
    if action == "cut":
        return {"file": "session.json", "op": "cut", "at": draw(st.integers(0, 700))}
    if action == "nest":
        return {"file": "session.json", "op": "json-nest", "path": [draw(st.sampled_from(
            sorted(doc)))], "value": draw(st.sampled_from([10, 1000, 5000]))}
    # Mostly a leaf (a value a reader checks), sometimes a whole list or object.
    leaves = [p for p in paths[1:] if not isinstance(_get(doc, p), dict | list)]
    choices = paths[1:] if action == "delete" or draw(st.integers(0, 3)) == 0 else leaves
    path = list(draw(st.sampled_from(choices)))
    value = draw(json_values())
    if action == "add":
        return {"file": "session.json", "op": "json-add", "path": path,
                "key": draw(st.sampled_from(["extra", "audio_offset_s", "imus", "mics",
                                             "start", "name", "simulation"])), "value": value}
    return {"file": "session.json", "op": f"json-{action}", "path": path, "value": value}


WAV_FIELDS = {
    # name: (offset from the start of the fmt chunk's body, or of the file for RIFF, bytes)
    "riff_size": ("riff", 4, 4), "format_tag": ("fmt", 0, 2), "channels": ("fmt", 2, 2),
    "sample_rate": ("fmt", 4, 4), "byte_rate": ("fmt", 8, 4), "block_align": ("fmt", 12, 2),
    "bits": ("fmt", 14, 2), "fmt_size": ("fmt", -4, 4), "data_size": ("data", -4, 4),
}


@st.composite
def wav_mutations(draw: st.DrawFn) -> dict:
    """One field of mic.wav's header set to an edge or random value, a byte of the header
    changed, or the file cut."""
    action = draw(st.sampled_from(["field", "field", "field", "byte", "cut"]))
    if action == "cut":
        return {"file": "mic.wav", "op": "cut", "at": draw(st.integers(0, 48100))}
    if action == "byte":
        return {"file": "mic.wav", "op": "byte", "at": draw(st.integers(0, 63)),
                "value": draw(st.integers(0, 255))}
    name = draw(st.sampled_from(sorted(WAV_FIELDS)))
    size = WAV_FIELDS[name][2]
    top = (1 << (8 * size)) - 1
    value = draw(st.one_of(st.sampled_from([0, 1, 2, 3, 4, 8, 16, 24, 32, 64, 3000, 8000,
                                            192001, 2_000_000_000, top >> 1, top, top - 1]),
                           st.integers(0, top)))
    return {"file": "mic.wav", "op": "wav-field", "field": name, "value": value}


@st.composite
def csv_mutations(draw: st.DrawFn, file: str, rows: int, columns: int) -> dict:
    """One cell of a CSV table (the header included) set to a hostile text, or a line removed,
    repeated or added, a column dropped, line ends changed, a BOM added or the file cut."""
    action = draw(st.sampled_from(["cell"] * 6 + ["delete-line", "repeat-line", "insert-line",
                                                  "drop-column", "crlf", "bom", "cut"]))
    row = draw(st.integers(0, rows))
    if action == "cell":
        return {"file": file, "op": "cell", "row": row, "column": draw(st.integers(0, columns - 1)),
                "value": draw(text_values())}
    if action == "insert-line":
        return {"file": file, "op": action, "row": row, "value": draw(text_values())}
    if action == "drop-column":
        return {"file": file, "op": action, "column": draw(st.integers(0, columns - 1))}
    if action == "cut":
        return {"file": file, "op": "cut", "at": draw(st.integers(0, 200 * rows))}
    return {"file": file, "op": action, "row": row}


@st.composite
def session_mutations(draw: st.DrawFn, base: Base) -> dict:
    """A mutation of one file of the good session."""
    doc = json.loads((base.session / "session.json").read_text(encoding="utf-8"))
    target = draw(st.sampled_from(["session.json", "session.json", "mic.wav", "mic.wav",
                                   "imu_thoracic.csv", "imu_sacral.csv", "symptoms.csv",
                                   "truth.csv", "motion_truth.csv"]))
    if target == "session.json":
        return draw(session_json_mutations(doc))
    if target == "mic.wav":
        return draw(wav_mutations())
    lines = (base.session / target).read_text(encoding="utf-8").splitlines()
    return draw(csv_mutations(target, len(lines) - 1, len(lines[0].split(","))))


def diary_mutations() -> st.SearchStrategy[dict]:
    lines = DIARY.splitlines()
    return csv_mutations("diary.csv", len(lines) - 1, len(lines[0].split(",")))


def toml_values() -> st.SearchStrategy[Any]:
    from datetime import UTC, datetime

    scalars = st.one_of(st.booleans(), st.integers(-(2 ** 63), 2 ** 63 - 1),
                        st.floats(allow_nan=True, allow_infinity=True),
                        st.sampled_from(HOSTILE_TEXT), st.text(max_size=8),
                        st.sampled_from([0, -1, 1, 2, 2.5, 10, 10.5, 1e300, 3650, 3651]),
                        st.just(datetime(2026, 11, 20, tzinfo=UTC)))
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["flexion", "lateral", "twist", "x"]), inner,
                        max_size=3)), max_leaves=4)


@st.composite
def rules_mutations(draw: st.DrawFn) -> dict:
    """One field (or table) of the rule file replaced, removed or added, or a line of text
    inserted (a syntax error, mostly), or the file cut."""
    import tomllib

    doc = tomllib.loads(RULES.read_text(encoding="utf-8"))
    action = draw(st.sampled_from(["set", "set", "set", "delete", "add", "line", "cut",
                                   "nest"]))
    if action == "cut":
        return {"file": "rules.toml", "op": "cut", "at": draw(st.integers(0, 6000))}
    if action == "nest":
        table = draw(st.sampled_from(sorted(doc)))
        return {"file": "rules.toml", "op": "toml-nest", "value": draw(
            st.sampled_from([10, 1000, 5000])),
            "path": [table, draw(st.sampled_from(sorted(doc[table])))]}
    if action == "line":
        return {"file": "rules.toml", "op": "insert-line", "row": draw(st.integers(0, 80)),
                "value": draw(st.one_of(text_values(), st.sampled_from(
                    ["[R1]", "[R9]", "x = 1", "pain_min = 4", "[[R2]]", "title = '''"])))}
    table = draw(st.sampled_from(sorted(doc)))
    keys = sorted(doc[table])
    path = [table] if action != "add" and draw(st.booleans()) and action == "delete" else \
        [table, draw(st.sampled_from(keys))]
    if action == "add":
        path = [table, draw(st.sampled_from(["extra", "pain_min", "window_s", "severity"]))]
    return {"file": "rules.toml", "op": f"toml-{'delete' if action == 'delete' else 'set'}",
            "path": path, "value": None if action == "delete" else draw(toml_values())}


# --- applying a mutation ---------------------------------------------------------------------


def apply(mutation: dict, target: Path) -> Path:
    """Change the file the mutation names in ``target`` (a session folder, or the diary or rule
    file itself); returns the file changed."""
    file = target / mutation["file"] if target.is_dir() else target
    op = mutation["op"]
    data = file.read_bytes()
    if op == "cut":
        file.write_bytes(data[: mutation["at"]])
    elif op == "byte":
        changed = bytearray(data)
        changed[min(mutation["at"], len(changed) - 1)] = mutation["value"]
        file.write_bytes(bytes(changed))
    elif op == "wav-field":
        file.write_bytes(_wav_field(data, mutation["field"], mutation["value"]))
    elif op.endswith("-nest"):
        # A list nested ``value`` deep, written as text (json and tomllib recurse on it).
        doc = json.loads(data) if op == "json-nest" else _toml(data)
        _edit_nested(doc, "set", mutation["path"], None, NEST)
        text = json.dumps(doc, indent=2) if op == "json-nest" else to_toml(doc)
        deep = "[" * mutation["value"] + "]" * mutation["value"]
        file.write_text(text.replace(json.dumps(NEST), deep), encoding="utf-8")
    elif op.startswith("json-"):
        doc = json.loads(data)
        _edit_nested(doc, op[5:], mutation["path"], mutation.get("key"), mutation["value"])
        file.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    elif op.startswith("toml-"):
        doc = _toml(data)
        _edit_nested(doc, op[5:], mutation["path"], None, mutation["value"])
        file.write_text(to_toml(doc), encoding="utf-8")
    else:
        file.write_bytes(_csv_edit(data.decode("utf-8"), mutation).encode("utf-8"))
    return file


NEST = "nested-list-goes-here"


def _toml(data: bytes) -> dict:
    import tomllib

    return tomllib.loads(data.decode("utf-8"))


def _edit_nested(doc: Any, action: str, path: list, key: str | None, value: Any) -> None:
    if action == "set" and not path:
        doc.clear()
        doc["value"] = value
        return
    parent = doc
    for step in path[:-1] if action != "add" else path:
        parent = parent[step]
    if action == "add":
        if isinstance(parent, dict):
            parent[key] = value
        elif isinstance(parent, list):
            parent.append(value)
    elif action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


def _wav_field(data: bytes, name: str, value: int) -> bytes:
    where, offset, size = WAV_FIELDS[name]
    base = 0 if where == "riff" else data.find(b"fmt " if where == "fmt" else b"data") + 8
    at = base + offset
    if base < 8 or at + size > len(data):
        return data
    changed = bytearray(data)
    changed[at:at + size] = (value & ((1 << 8 * size) - 1)).to_bytes(size, "little")
    return bytes(changed)


def _csv_edit(text: str, m: dict) -> str:
    lines = text.splitlines()
    op = m["op"]
    row = min(m.get("row", 0), len(lines) - 1)
    if op == "cell":
        cells = lines[row].split(",")
        cells[min(m["column"], len(cells) - 1)] = m["value"]
        lines[row] = ",".join(cells)
    elif op == "delete-line":
        del lines[row]
    elif op == "repeat-line":
        lines.insert(row, lines[row])
    elif op == "insert-line":
        lines.insert(row, m["value"])
    elif op == "drop-column":
        lines = [",".join(c for i, c in enumerate(line.split(",")) if i != m["column"])
                 for line in lines]
    elif op == "crlf":
        return "\r\n".join(lines) + "\r\n"
    elif op == "bom":
        return "\ufeff" + text
    return "\n".join(lines) + "\n"


def to_toml(doc: dict) -> str:
    """A TOML document for ``doc`` (top-level values first, then one table per dict)."""
    tables = {k: v for k, v in doc.items() if isinstance(v, dict)}
    out = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc.items() if k not in tables]
    for name, table in tables.items():
        out.append(f"[{_toml_key(name)}]")
        out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(out) + "\n"


def _toml_key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "_-" for c in key) and key.isascii() \
        else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}"
                                for k, v in value.items()) + " }"
    return value.isoformat()


# --- the corpus ------------------------------------------------------------------------------


def save_case(kind: str, mutation: dict, variant: str, changed: Path, run: Run,
              found: str = "by the harness", name: str | None = None) -> Path:
    """Keep a case in :data:`CORPUS` (``BACKPOP_FUZZ_SAVE=1``): the mutated file and
    ``case.json`` (the mutation, the command variant, how it was found and what the run
    did then)."""
    import hashlib

    key = hashlib.sha1(json.dumps([kind, variant, mutation], sort_keys=True,
                                  default=str).encode()).hexdigest()[:10]
    folder = CORPUS / kind / (name or key)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(changed, folder / changed.name)
    (folder / "case.json").write_text(json.dumps(
        {"file": mutation["file"], "variant": variant, "mutation": mutation,
         "found": found, "then": {"code": run.code, "stderr": run.stderr[-300:]}},
        indent=2, default=str) + "\n", encoding="utf-8")
    return folder


def corpus_cases() -> list[tuple[str, Path]]:
    """``(kind, folder)`` of every saved case."""
    return [(kind, folder) for kind in KINDS
            for folder in sorted((CORPUS / kind).glob("*")) if (folder / "case.json").is_file()]


def replay_case(kind: str, folder: Path, base: Base, work: Path) -> tuple[Run, Path, Path]:
    """Run a saved case: its file over a fresh copy of the good input, then its command.

    Returns the run, the input given to the command and the file at fault."""
    case = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    target = base.copy(kind, work)
    changed = target / case["file"] if target.is_dir() else target
    shutil.copyfile(folder / case["file"], changed)
    return run_cli(base.command(kind, target, work, case["variant"])), target, changed


def fresh_dir(root: Path, prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))
