"""Templates to files: the jinja2 environment (autoescaping every value, so a diary note or
any other user text is shown as text, never read as markup) and the atomic write."""

from __future__ import annotations

import math
import os
import secrets
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from ..errors import BadInput
from .evidence import AXIS_NAMES, when

EVERY_REPORT_SAYS = (
    "It is not a diagnosis; seek medical attention for persistent or increasing pain, "
    "stiffness, restricted movement, neurological symptoms, swelling or bruising, or popping "
    "after an injury.")
"""The sentence every report carries (../shared/background.md, "Every report says")."""


def number(value: Any, digits: int = 1) -> str:
    """A number for a table cell: ``digits`` decimals, an em dash for a missing value.

    Examples
    --------
    >>> from backpop_sense.report.render import number
    >>> number(2.345), number(float("nan")), number(None), number(3, 0)
    ('2.3', '—', '—', '3')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2014"
    return f"{value:.{digits}f}"


@cache
def environment() -> Environment:
    """The report templates (``templates/*.j2`` in this package), autoescaped."""
    env = Environment(loader=PackageLoader("backpop_sense.report", "templates"),
                      autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["when"] = when
    env.filters["day"] = lambda value: when(value, clock=False)
    env.filters["number"] = number
    env.globals["every_report_says"] = EVERY_REPORT_SAYS
    env.globals["axis_names"] = AXIS_NAMES
    return env


def write_html(template: str, out: Path, **context: Any) -> Path:
    """Render ``template`` with ``context`` into ``out``, which appears whole or not at all.

    Returns
    -------
    Path
        ``out``.
    """
    html = environment().get_template(template).render(**context)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its file is private (0600); a report gets the usual mode.
    temp = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with temp.open("x", encoding="utf-8") as f:
            f.write(html)
        os.replace(temp, out)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        # The user named ``out``, not the hidden file beside it.
        raise BadInput(out, None, f"cannot write the report: {exc.strerror or exc}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return out
