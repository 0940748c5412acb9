"""The live view: a pop is shown when heard, and taken off if the gate overrules it."""

from __future__ import annotations

from backpop_sense.correlate import PopInContext
from backpop_sense.pops.stage import Heard, Pop, Rejected
from backpop_sense.view import LiveView


def _pop(t: float, level: str = "L4") -> Pop:
    return Pop(t, level, -30.0, 20.0, 900.0, 8.0, 12.0, 9.0)


def test_a_pop_heard_early_and_overruled_is_taken_off_the_view() -> None:
    view = LiveView("S01/a")
    kept, overruled = _pop(1.0), _pop(2.0, "T10")
    view.update([Heard(kept), Heard(overruled)], 2.1)
    assert view.by_level == {"L4": 1, "T10": 1} and [p.t for p in view.last] == [1.0, 2.0]
    view.update([_pop(1.0), Rejected(2.0, "series", 12.0, 9.0, None)], 5.5)
    assert +view.by_level == {"L4": 1} and [p.t for p in view.last] == [1.0]
    assert view.rejected == 1 and view.provisional == {}


def test_a_pop_confirmed_without_being_heard_early_is_shown_once() -> None:
    view = LiveView("S01/a")
    view.update([_pop(3.0)], 6.5)
    view.update([PopInContext(_pop(3.0), context="twist")], 9.0)
    assert view.by_level == {"L4": 1} and [(p.t, p.context) for p in view.last] == [
        (3.0, "twist")]
