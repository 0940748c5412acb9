"""Which test files can meet a release newer than constraints.txt: CI's second venv runs those.

Run by .ci/run with the newest-releases venv's Python, in the repository root:

    python .ci/affected.py DRIFT_FILE

DRIFT_FILE is ``diff constraints.txt resolved.txt``'s output (lines ``< name==version`` for the
tested release and ``> name==version`` for the newest allowed). Prints one path per line: the
test files (tests/test_*.py) and the package modules (for their docstring examples) that
import, directly or through the package, the benchmarks or the ``backpop`` command they run,
a distribution that drifted. Prints ``ALL`` when every test must run (pytest itself drifted),
nothing when no test can meet the drift.

Why not every fast test: the whole fast suite takes about 9 minutes of CPU beside make test's
12, on 2 cores: 15 minutes of CI whenever any release lands. Most releases touch one corner
of the package.

What counts as a drift that a file can meet:
- a distribution the project names (pyproject.toml's dependencies and extras) drifted, and
  the file imports it (its import names from the venv's metadata);
- a distribution the project does not name drifted to another major version (its first
  version number): it counts against every named distribution that requires it, directly or
  not. A minor or patch release of an indirect dependency is its dependents' to test, and
  those (certifi, fonttools, ...) land most weeks, under librosa and matplotlib, which nearly
  every test reaches.
Imports are read from the source (every ``import`` statement, those inside functions too;
tests/conftest.py's count for every test file, which pytest loads it with), so the selection
errs towards running a test, never towards skipping one that imports the release.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "backpop_sense"
RUNNERS = {"pytest", "pluggy"}
"""Distributions that run every test: a drift there runs them all."""
CLI = ROOT / PACKAGE / "cli.py"
CLI_MODULE = f"{PACKAGE}.cli"
CLI_CALL = re.compile(r"""(?:BACKPOP|backpop)\)?,\s*(?:"([a-z][a-z-]*)"|\*)""")
"""How a test runs the ``backpop`` command in a subprocess: ``[str(BACKPOP), "analyze", ...]``
(that command) or ``[str(BACKPOP), *args]`` (any command)."""


def normal(name: str) -> str:
    """A distribution's name as PEP 503 compares it: ``Typing_Extensions`` is
    ``typing-extensions``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    return normal(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec).group(1))


def drifted(diff: str) -> dict[str, tuple[str, str]]:
    """Each drifted distribution: (tested version, newest allowed); '' where absent."""
    seen: dict[str, list[str]] = {}
    for line in diff.splitlines():
        found = re.match(r"([<>]) ([^=\s]+)==(\S+)", line)
        if found:
            side, name, version = found.groups()
            pair = seen.setdefault(normal(name), ["", ""])
            pair[0 if side == "<" else 1] = version
    return {name: (a, b) for name, (a, b) in seen.items()}


def major(version: str) -> str:
    return version.split(".")[0]


def named() -> set[str]:
    """The distributions pyproject.toml names, extras included."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        specs.extend(extra)
    return {requirement_name(spec) for spec in specs} - {normal(project["name"])}


def requires() -> dict[str, set[str]]:
    """Each installed distribution's requirements (markers ignored: errs towards more)."""
    graph: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        graph[normal(dist.metadata["Name"])] = {
            requirement_name(spec) for spec in (dist.requires or [])}
    return graph


def affected_distributions(drift: dict[str, tuple[str, str]]) -> set[str]:
    """The project's named distributions a test can meet the drift through (see the module)."""
    direct = named()
    hit = {name for name in drift if name in direct}
    majors = {name for name, (was, now) in drift.items()
              if name not in direct and major(was) != major(now)}
    graph = requires()
    for name in direct:
        todo, seen = list(graph.get(name, ())), set()
        while todo:
            dep = todo.pop()
            if dep in seen:
                continue
            seen.add(dep)
            if dep in majors:
                hit.add(name)
                break
            todo.extend(graph.get(dep, ()))
    return hit


def import_names(dists: set[str]) -> set[str]:
    """The top-level names those distributions are imported by (``scikit-learn`` -> ``sklearn``)."""
    names = set()
    for top, owners in metadata.packages_distributions().items():
        if any(normal(owner) in dists for owner in owners):
            names.add(top)
    return names


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] in ("benchmarks", "tests"):
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported(node: ast.AST, package: str) -> set[str]:
    """Every module the ``import`` statements under ``node`` name, inside functions too
    (relative ones resolved from ``package``, the module's own package)."""
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Import):
            found.update(alias.name for alias in sub.names)
        elif isinstance(sub, ast.ImportFrom):
            base = sub.module or ""
            if sub.level:
                parts = package.split(".")
                stem = parts[: len(parts) - sub.level + 1]
                base = ".".join([*stem, base] if base else stem)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in sub.names)
    return found


def is_test(path: Path) -> bool:
    return path.parent.name == "tests" and path.name.startswith("test_")


def imports(path: Path) -> set[str]:
    """What ``path`` imports (:func:`imported`); for a test file also tests/conftest.py,
    which pytest loads with it, and each ``backpop`` command it runs (``cli:COMMAND``, or
    the whole CLI when it cannot tell which)."""
    source = path.read_text()
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = imported(ast.parse(source, str(path)), package)
    if is_test(path):
        found.add("conftest")
        for call in CLI_CALL.finditer(source):
            found.add(f"{CLI_MODULE}:{call.group(1)}" if call.group(1) else CLI_MODULE)
    return found


def cli_commands() -> dict[str, set[str]]:
    """What each ``backpop`` command imports: the CLI module's own imports, and those of the
    command's function and of the module's functions it calls, nested or not. The CLI imports
    most of the package lazily, inside its commands, so a test that runs ``backpop analyze``
    meets what ``analyze`` imports, not what ``batch`` does."""
    tree = ast.parse(CLI.read_text(), str(CLI))
    top = set()
    functions: dict[str, ast.FunctionDef] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions[node.name] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            top |= imported(node, PACKAGE)
    calls = {name: {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name)} & set(functions)
             for name, node in functions.items()}
    commands = {}
    for name, node in functions.items():
        if not any("command" in ast.unparse(d) for d in node.decorator_list):
            continue
        todo, seen = [name], set()
        while todo:
            fn = todo.pop()
            if fn not in seen:
                seen.add(fn)
                todo.extend(calls[fn])
        found = set(top)
        for fn in seen:
            found |= imported(functions[fn], PACKAGE)
        commands[name.replace("_", "-")] = found
    return commands


def select(drift: dict[str, tuple[str, str]]) -> list[str] | None:
    """The files to run (``None``: all of them)."""
    if RUNNERS & set(drift):
        return None
    tops = import_names(affected_distributions(drift))
    if not tops:
        return []
    files = [*sorted((ROOT / PACKAGE).rglob("*.py")), *sorted((ROOT / "benchmarks").glob("*.py")),
             *sorted((ROOT / "tests").glob("*.py"))]
    graph = {module_name(f): imports(f) for f in files}
    graph.update({f"{CLI_MODULE}:{name}": found for name, found in cli_commands().items()})
    hit = {module for module, names in graph.items()
           if any(name.split(".")[0] in tops for name in names)}
    grew = True
    while grew:
        more = {module for module, names in graph.items() if module not in hit and names & hit}
        hit |= more
        grew = bool(more)

    chosen = []
    for f in files:
        is_package = f.is_relative_to(ROOT / PACKAGE) and f.name != "conftest.py"
        if (is_test(f) or is_package) and module_name(f) in hit:
            chosen.append(str(f.relative_to(ROOT)))
    return chosen


def main() -> None:
    chosen = select(drifted(Path(sys.argv[1]).read_text()))
    print("ALL" if chosen is None else "\n".join(chosen))


if __name__ == "__main__":
    main()
