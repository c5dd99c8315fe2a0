"""The checkers a run uses, composed: what `results.json` holds (docs/history.md)."""

from __future__ import annotations

from typing import Any

from .checkers import Compose, SetChecker, Stats
from .linearizability import LinearizabilityChecker
from .models import make_model


def standard_checker(model: str = "versioned-kv", *, initial: Any = None, timeout: float | None = None,
                     jepsen: bool = False) -> Compose:
    """linearizable (against `model`) + stats, + set for the set model. `check(test, history)` returns
    {"valid": ..., "checkers": {...}}; a checker that raises (even on a malformed history) yields unknown."""
    checkers: dict[str, Any] = {
        "linearizable": LinearizabilityChecker(make_model(model, initial, jepsen=jepsen), timeout=timeout),
        "stats": Stats(),
    }
    if model == "set":
        checkers["set"] = SetChecker()
    return Compose(checkers)
