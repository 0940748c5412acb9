"""Red-flag rules over a subject's history (engine.py) and their default file."""

from .engine import (
    NOT_A_DIAGNOSIS,
    SEVERITIES,
    Flag,
    History,
    evaluate,
    history_from_store,
    load_rules,
    refresh_flags,
)

__all__ = ["NOT_A_DIAGNOSIS", "SEVERITIES", "Flag", "History", "evaluate", "history_from_store",
           "load_rules", "refresh_flags"]
