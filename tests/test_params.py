"""Every config checks its parameters when made, naming the field and the values allowed."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import backpop_sense
from backpop_sense.correlate import CorrelateConfig
from backpop_sense.errors import BadInput, BadParameter
from backpop_sense.motion.context import ContextConfig
from backpop_sense.motion.events import CatchConfig, FallConfig
from backpop_sense.motion.tracker import MotionConfig
from backpop_sense.params import (
    Choice,
    Flag,
    Identifier,
    Instance,
    Level,
    Levels,
    Number,
    Numbers,
    OrNone,
    Rule,
)
from backpop_sense.pops.artifacts import GateConfig
from backpop_sense.pops.detector import DetectorConfig
from backpop_sense.simulate import SimConfig
from backpop_sense.sources.ble import Emulation

PACKAGE = Path(backpop_sense.__file__).parent
BACKPOP = Path(sys.executable).parent / "backpop"


def _configs() -> list[type]:
    """Every class of the package named ``...Config``, and the other checked configs."""
    found = {Emulation}
    for info in pkgutil.walk_packages(backpop_sense.__path__, "backpop_sense."):
        module = importlib.import_module(info.name)
        found |= {c for name, c in vars(module).items() if name.endswith("Config")
                  and isinstance(c, type) and c.__module__ == module.__name__}
    return sorted(found, key=lambda c: c.__name__)


CONFIGS = _configs()


def _outside(rule: Rule) -> Any:
    """A value ``rule`` refuses: just past a bound where it has one."""
    match rule:
        case Number(odd=True):
            return 2
        case Number(lo=lo, above=above) if lo is not None:
            return lo if above else lo - 1
        case Number(hi=hi, below=below) if hi is not None:
            return hi if below else hi + 1
        case Number():
            return float("nan")
        case Numbers(each=each, size=size):
            return (_outside(each),) * (size or 1)
        case Flag():
            return 1
        case Choice():
            return "nope"
        case Instance():
            return 3
        case Identifier():
            return "../S01"
        case Level():
            return "L9"
        case Levels():
            return ("L4", "L1")
        case OrNone(rule=inner):
            return _outside(inner)
    raise AssertionError(f"no bad value for {rule!r}")


def test_the_configs_are_found() -> None:
    assert {c.__name__ for c in CONFIGS} >= {
        "DetectorConfig", "GateConfig", "CorrelateConfig", "MotionConfig", "OrientationConfig",
        "ContextConfig", "CatchConfig", "FallConfig", "SimConfig", "Emulation"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.__name__)
def test_every_field_of_every_config_has_a_rule(config: type) -> None:
    assert set(config.RULES) == {f.name for f in dataclasses.fields(config)}


@pytest.mark.parametrize(("config", "name"), [
    (c, name) for c in CONFIGS for name in c.RULES],
    ids=lambda x: x if isinstance(x, str) else x.__name__)
def test_a_bad_value_in_any_field_is_refused_naming_the_field(config: type, name: str) -> None:
    required = {"session": "data/x"} if config is Emulation and name != "session" else {}
    bad = _outside(config.RULES[name])
    with pytest.raises(BadParameter) as caught:
        config(**required, **{name: bad})
    assert (caught.value.owner, caught.value.field) == (config.__name__, name)
    message = str(caught.value)
    assert message.startswith(f"{config.__name__}: field {name}: must be ")
    assert "\n" not in message


@pytest.mark.parametrize(("make", "said"), [
    (lambda: DetectorConfig(max_size=2),
     "DetectorConfig: field max_size: must be an odd whole number at least 1, not 2"),
    (lambda: DetectorConfig(threshold=-1),
     "DetectorConfig: field threshold: must be a number above 0, not -1"),
    (lambda: DetectorConfig(fmax_hz=300.0),
     "DetectorConfig: field fmax_hz: must be above fmin_hz (400), not 300"),
    (lambda: DetectorConfig(chunk=512.0),
     "DetectorConfig: field chunk: must be a whole number at least 1, not 512"),
    (lambda: DetectorConfig(band_edges_hz=(500.0, 250.0)),
     "DetectorConfig: field band_edges_hz: must be a tuple of one or more numbers above 0, "
     "ascending, not (500.0, 250.0)"),
    (lambda: GateConfig(min_score=1.5),
     "GateConfig: field min_score: must be a number from 0 to 1, not 1.5"),
    (lambda: GateConfig(periodic_period_s=(1.6,)),
     "GateConfig: field periodic_period_s: must be a tuple of 2 numbers above 0, ascending, "
     "not (1.6,)"),
    (lambda: CorrelateConfig(pool_reach=-1),
     "CorrelateConfig: field pool_reach: must be a whole number at least 0, not -1"),
    (lambda: CorrelateConfig(rescue="no"),
     "CorrelateConfig: field rescue: must be True or False, not 'no'"),
    (lambda: ContextConfig(step_min_interval_s=2.0),
     "ContextConfig: field step_max_interval_s: must be above step_min_interval_s (2), not 1"),
    (lambda: MotionConfig(context=dataclasses.replace(ContextConfig(), twist_deg=400.0)),
     "ContextConfig: field twist_deg: must be a number from 0 to 180, not 400"),
    (lambda: MotionConfig(catch=FallConfig()),
     "MotionConfig: field catch: must be a CatchConfig, not FallConfig("),
    (lambda: CatchConfig(same_direction_cos=2.0),
     "CatchConfig: field same_direction_cos: must be a number from -1 to 1, not 2"),
    (lambda: FallConfig(before_s=(0.9, 1.6)),
     "FallConfig: field before_s: must be a tuple of 2 numbers at least 0, descending"),
    (lambda: Emulation(Path("x"), drop=1.0),
     "Emulation: field drop: must be a number at least 0 and below 1, not 1"),
    (lambda: SimConfig(mics=("L4", "L1")),
     "SimConfig: field mics: must be a tuple of spinal levels (C1..S5), top to bottom"),
    (lambda: SimConfig(minutes=float("inf")),
     "SimConfig: field minutes: must be None or a number above 0 and at most 1440, not inf"),
])
def test_the_message_says_what_the_field_may_be(make: Any, said: str) -> None:
    with pytest.raises(BadParameter) as caught:
        make()
    assert str(caught.value).startswith(said)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.__name__)
def test_the_defaults_pass_and_replace_checks_too(config: type) -> None:
    made = config(Path("x")) if config is Emulation else config()
    name, rule = next(iter(config.RULES.items()))
    with pytest.raises(BadParameter, match=f"field {name}:"):
        dataclasses.replace(made, **{name: _outside(rule)})


def test_library_errors_name_fields_never_command_line_flags() -> None:
    """Only cli.py words an error with ``--flag``: a raise anywhere else whose message
    starts with ``--`` would tell a Python caller about a flag it never typed."""
    worded = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                for arg in node.exc.args:
                    first = arg.values[0] if isinstance(arg, ast.JoinedStr) and arg.values \
                        else arg
                    if isinstance(first, ast.Constant) and str(first.value).startswith("--"):
                        worded.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert worded == []


@pytest.mark.parametrize(("args", "said"), [
    (["simulate", "{tmp}/s", "--snr", "inf"], "--snr: must be a finite number, not inf"),
    (["simulate", "{tmp}/s", "--scenario", "nope"], "--scenario: must be one of healthy, "),
    (["batch", "{tmp}/s", "--workers", "0"], "--workers: must be None or a whole number at "
                                             "least 1, not 0"),
    (["record", "--profile", "backpop-strap-v1", "-o", "{tmp}/r", "--emulate", "{tmp}/s",
      "--speed", "0"], "--speed: must be a number above 0, not 0"),
    (["record", "--profile", "backpop-strap-v1", "-o", "{tmp}/r", "--emulate", "{tmp}/s",
      "--drop", "1"], "--drop: must be a number at least 0 and below 1, not 1"),
])
def test_the_cli_gives_a_bad_parameter_as_one_line_naming_the_flag(
        tmp_path: Path, args: list[str], said: str) -> None:
    done = subprocess.run([str(BACKPOP), *(a.format(tmp=tmp_path) for a in args)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"backpop: error: {said}"), line
    assert not (tmp_path / "s").exists() and not (tmp_path / "r").exists()


def test_a_parameter_the_command_line_did_not_set_keeps_its_config_name() -> None:
    """The CLI words as a flag only what its flags set; anything else is named as the
    library names it (still one line, status 2: a BadParameter is a BadInput)."""
    assert issubclass(BadParameter, BadInput)
    from backpop_sense.cli import _flags

    with pytest.raises(BadParameter, match="^DetectorConfig: field threshold"), \
            _flags(speed="--speed"):
        DetectorConfig(threshold=0)
    with pytest.raises(BadInput, match="^--speed: must be a number above 0, not 0$"), \
            _flags(speed="--speed"):
        Emulation(Path("x"), speed=0)
