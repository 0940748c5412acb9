"""What each parameter may be, checked when a config is made.

A config dataclass declares a rule for each of its fields in ``RULES`` (and, in ``ORDER``, the
pairs of fields of which the first must be below the second) and calls :func:`check` from
``__post_init__``: a bad value is refused where it enters, naming the field and the values
allowed, not when the first block of audio arrives.

Examples
--------
>>> from dataclasses import dataclass
>>> from typing import ClassVar
>>> from backpop_sense.params import POSITIVE, Rules, check
>>> @dataclass(frozen=True)
... class WindowConfig:
...     length_s: float = 1.0
...     RULES: ClassVar[Rules] = {"length_s": POSITIVE}
...     def __post_init__(self) -> None:
...         check(self)
>>> WindowConfig(length_s=-1)
Traceback (most recent call last):
...
backpop_sense.errors.BadParameter: WindowConfig: field length_s: must be a number above 0, not -1
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Protocol

import numpy as np

from .errors import BadParameter, shown
from .levels import LEVELS, is_level, level_index
from .vocab import ID_RULE, is_identifier


class Rule(Protocol):
    """What a field may be: ``admits`` says whether a value is allowed, ``str`` says in words
    which values are (for the message that refuses one)."""

    def admits(self, value: Any) -> bool: ...


Rules = Mapping[str, Rule]


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool | np.bool_)


def _sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


@dataclass(frozen=True)
class Number:
    """A finite number, optionally whole (and odd), within ``lo`` and ``hi``; ``above`` and
    ``below`` leave the bounds themselves out."""

    lo: float | None = None
    hi: float | None = None
    above: bool = False
    below: bool = False
    whole: bool = False
    odd: bool = False

    def __str__(self) -> str:
        kind = "an odd whole number" if self.odd else "a whole number" if self.whole \
            else "a number"
        if self.lo is not None and self.hi is not None and not (self.above or self.below):
            return f"{kind} from {self.lo:g} to {self.hi:g}"
        bounds = []
        if self.lo is not None:
            bounds.append(f"{'above' if self.above else 'at least'} {self.lo:g}")
        if self.hi is not None:
            bounds.append(f"{'below' if self.below else 'at most'} {self.hi:g}")
        return " ".join([kind, " and ".join(bounds)]) if bounds else f"a finite {kind[2:]}"

    def admits(self, value: Any) -> bool:
        if not _is_number(value) or not math.isfinite(value):
            return False
        if self.whole and not isinstance(value, Integral):
            return False
        if self.odd and value % 2 != 1:
            return False
        if self.lo is not None and (value <= self.lo if self.above else value < self.lo):
            return False
        return self.hi is None or (value < self.hi if self.below else value <= self.hi)


@dataclass(frozen=True)
class Numbers:
    """A tuple of numbers, each admitted by ``each``, strictly in ``order`` (``"ascending"``,
    ``"descending"`` or None) and, if ``size`` is given, that many; none at all only if
    ``empty``."""

    each: Number
    order: str | None = None
    size: int | None = None
    empty: bool = False

    def __str__(self) -> str:
        count = f"{self.size} numbers" if self.size is not None else \
            "numbers" if self.empty else "one or more numbers"
        each = str(self.each).split(" number ", 1)[-1] if " number " in str(self.each) else ""
        return ", ".join(p for p in (f"a tuple of {count} {each}".strip(), self.order) if p)

    def admits(self, value: Any) -> bool:
        if not (_sequence(value) and (self.empty or len(value) > 0)
                and all(self.each.admits(v) for v in value)
                and (self.size is None or len(value) == self.size)):
            return False
        steps = np.diff(np.asarray(value, dtype=float))
        return self.order is None or bool((steps > 0).all() if self.order == "ascending"
                                          else (steps < 0).all())


@dataclass(frozen=True)
class Flag:
    """True or False."""

    def __str__(self) -> str:
        return "True or False"

    def admits(self, value: Any) -> bool:
        return isinstance(value, bool | np.bool_)


@dataclass(frozen=True)
class Choice:
    """One of ``options``."""

    options: tuple[str, ...]

    def __str__(self) -> str:
        return f"one of {', '.join(self.options)}"

    def admits(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.options


@dataclass(frozen=True)
class Instance:
    """An instance of ``kind`` (a class or a tuple of classes), described as ``what``."""

    kind: type | tuple[type, ...]
    what: str

    def __str__(self) -> str:
        return self.what

    def admits(self, value: Any) -> bool:
        return isinstance(value, self.kind)


@dataclass(frozen=True)
class Identifier:
    """A subject, session or IMU identifier (:data:`~backpop_sense.vocab.ID_PATTERN`)."""

    def __str__(self) -> str:
        return f"an identifier ({ID_RULE})"

    def admits(self, value: Any) -> bool:
        return is_identifier(value)


@dataclass(frozen=True)
class Level:
    """A spinal level (``C1``..``S5``)."""

    def __str__(self) -> str:
        return f"a spinal level ({LEVELS[0]}..{LEVELS[-1]})"

    def admits(self, value: Any) -> bool:
        return isinstance(value, str) and is_level(value)


@dataclass(frozen=True)
class Levels:
    """A tuple of spinal levels, top to bottom (none at all included)."""

    def __str__(self) -> str:
        return f"a tuple of spinal levels ({LEVELS[0]}..{LEVELS[-1]}), top to bottom"

    def admits(self, value: Any) -> bool:
        return (_sequence(value) and all(Level().admits(v) for v in value)
                and all(level_index(a) < level_index(b)
                        for a, b in zip(value, value[1:], strict=False)))


@dataclass(frozen=True)
class OrNone:
    """None, or what ``rule`` admits."""

    rule: Rule

    def __str__(self) -> str:
        return f"None or {self.rule}"

    def admits(self, value: Any) -> bool:
        return value is None or self.rule.admits(value)


POSITIVE = Number(0, above=True)
NON_NEGATIVE = Number(0)
FINITE = Number()
FRACTION = Number(0, 1)
PROBABILITY = Number(0, 1, below=True)
COUNT = Number(1, whole=True)
ANGLE_DEG = Number(0, 180)
FLAG = Flag()


def check_values(owner: str, rules: Rules, **values: Any) -> None:
    """Check each of ``values`` against its rule in ``rules`` (a function's parameters, say);
    raise :class:`~backpop_sense.errors.BadParameter` for the first that fails.

    Examples
    --------
    >>> from backpop_sense.params import POSITIVE, check_values
    >>> check_values("emulator", {"speed": POSITIVE}, speed=0)
    Traceback (most recent call last):
    ...
    backpop_sense.errors.BadParameter: emulator: field speed: must be a number above 0, not 0
    """
    for name, value in values.items():
        rule = rules[name]
        if not rule.admits(value):
            raise BadParameter(owner, name, f"must be {rule}, not {shown(value)}")


def check(config: Any) -> None:
    """Check every field of ``config`` against its class's ``RULES``, then each pair of its
    ``ORDER``; raise :class:`~backpop_sense.errors.BadParameter` for the first that fails."""
    owner = type(config).__name__
    rules = type(config).RULES
    check_values(owner, rules, **{name: getattr(config, name) for name in rules})
    for low, high in getattr(type(config), "ORDER", ()):
        a, b = getattr(config, low), getattr(config, high)
        if not a < b:
            raise BadParameter(owner, high, f"must be above {low} ({shown(a)}), not {shown(b)}")
