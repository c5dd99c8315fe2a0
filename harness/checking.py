"""Run a workload's checkers over a history and combine their verdicts (false > unknown > true), and say which
failures are of safety and which of liveness (docs/history.md, "The checker's result")."""

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
            return {**res, "failures": failures(res["checkers"])}
        name = getattr(checkers, "name", type(checkers).__name__)
        results = {str(name): res}
    else:
        results = {name: _one(c, test, history) for name, c in checkers.items()}
    return {"valid": combine([r.get("valid") for r in results.values()]), "failures": failures(results),
            "checkers": results}


def failures(results: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The invalid checkers' findings, split: ``{"safety": [...], "liveness": [...]}``. A checker says its kind
    with ``"failure_kind": "liveness"`` (default safety); a liveness checker's own ``failures`` list is copied
    entry by entry, each tagged with the checker's name. Every entry has ``checker`` and ``message``."""
    out: dict[str, list[dict[str, Any]]] = {"safety": [], "liveness": []}
    for name, res in results.items():
        if not isinstance(res, Mapping) or res.get("valid") is not False:
            continue
        kind = "liveness" if res.get("failure_kind") == "liveness" else "safety"
        listed = [f for f in res.get("failures") or [] if isinstance(f, Mapping)]
        if listed:
            out[kind].extend({"checker": name, **f} for f in listed)
            continue
        raw = res.get("failure")
        failure: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        part = failure.get("part")
        message = (f"key {part} is not linearizable" if part is not None and failure else
                   str(failure.get("explanation") or res.get("error") or f"the {name} checker found the history "
                                                                            "invalid"))
        out[kind].append({"checker": name, "message": message, **({"part": part} if part is not None else {})})
    return out


def _one(checker: Checker, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        res = checker.check(test, history)
        if not isinstance(res, dict) or "valid" not in res:
            return {"valid": "unknown", "error": f"checker returned {res!r}, not a result with 'valid'"}
        return res
    except Exception as e:  # noqa: BLE001 - a crashing checker is unknown, never a pass
        return {"valid": "unknown", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
