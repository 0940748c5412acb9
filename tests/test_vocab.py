"""The vocabulary: one place for the words, and a session format that needs no analysis."""

from __future__ import annotations

import subprocess
import sys

import pytest

from backpop_sense.errors import BadInput
from backpop_sense.vocab import (
    ANGLE_COLUMNS,
    AXES,
    ID_RULE,
    MOTION_COLUMNS,
    check_subject,
    is_identifier,
)


def test_the_session_format_imports_nothing_from_the_analysis() -> None:
    code = ("import sys, backpop_sense.session; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('backpop_sense'))))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert loaded <= {f"backpop_sense{m}" for m in ("", ".session", ".blocks", ".errors",
                                                     ".levels", ".tables", ".times", ".vocab")}


def test_angle_columns_follow_the_axes() -> None:
    assert ANGLE_COLUMNS == tuple(f"{a}_deg" for a in AXES)
    assert MOTION_COLUMNS == ("t", "flexion_deg", "lateral_deg", "twist_deg", "context")


@pytest.mark.parametrize("value", ["S01", "a_b-C", "x" * 64])
def test_identifiers_that_are_pseudonyms_pass(value: str) -> None:
    assert is_identifier(value) and check_subject(value) == value


@pytest.mark.parametrize("value", ["", "Jane Doe", "../S01", "x" * 65, "S01\n", 7, None])
def test_anything_else_is_refused_with_the_rule_in_words(value: object) -> None:
    assert not is_identifier(value)
    with pytest.raises(BadInput, match="not a valid subject ID") as caught:
        check_subject(value)  # type: ignore[arg-type]
    assert ID_RULE in str(caught.value) and "\n" not in str(caught.value)
