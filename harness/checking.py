"""Run a workload's checkers over a history and combine their verdicts (false > unknown > true)."""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from typing import Any

from harness.protocols import Checker

RANK = {False: 2, "unknown": 1, True: 0}


def combine(valids: list[Any]) -> bool | str:
    """false over unknown over true; anything that is not exactly True/False counts as unknown; none = unknown."""
    if not valids:
        return "unknown"
    norm = [v if v is True or v is False else "unknown" for v in valids]
    return max(norm, key=lambda v: RANK[v])


def run_checkers(checkers: Checker | Mapping[str, Checker], test: Mapping[str, Any],
                 history: list[dict[str, Any]]) -> dict[str, Any]:
    """The result contract of docs/history.md. A single checker's own result is kept as-is when it already has the
    {"valid", "checkers"} shape; otherwise results go under "checkers" by name. A checker that raises counts as
    {"valid": "unknown", "error": ...}."""
    if not isinstance(checkers, Mapping):
        res = _one(checkers, test, history)
        if "checkers" in res:
            return res
        name = getattr(checkers, "name", type(checkers).__name__)
        return {"valid": combine([res.get("valid")]), "checkers": {str(name): res}}
    results = {name: _one(c, test, history) for name, c in checkers.items()}
    return {"valid": combine([r.get("valid") for r in results.values()]), "checkers": results}


def _one(checker: Checker, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        res = checker.check(test, history)
        if not isinstance(res, dict) or "valid" not in res:
            return {"valid": "unknown", "error": f"checker returned {res!r}, not a result with 'valid'"}
        return res
    except Exception as e:  # noqa: BLE001 - a crashing checker is unknown, never a pass
        return {"valid": "unknown", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
