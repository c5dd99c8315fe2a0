"""Checkers besides linearizability, and their composition (Jepsen's checker/compose).

Every checker has `check(test, history) -> dict` with `"valid": True | False | "unknown"` (the Checker protocol of
harness.protocols, matched structurally: this package imports nothing of harness).
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from typing import Any, Protocol

from .history import LAB_PROCESSES
from .models import freeze

Valid = bool | str  # True, False or "unknown"


class Checker(Protocol):
    def check(self, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]: ...


def merge_valid(values: list[Valid]) -> Valid:
    """false over unknown over true; an empty list is true."""
    if any(v is False for v in values):
        return False
    if any(v is not True for v in values):
        return "unknown"
    return True


class Compose:
    """Runs named checkers; a checker that raises yields {"valid": "unknown", "error": ...} instead of crashing."""

    def __init__(self, checkers: Mapping[str, Checker]) -> None:
        self.checkers = dict(checkers)

    def check(self, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for name, checker in self.checkers.items():
            try:
                result = checker.check(test, history)
                if not isinstance(result, dict) or result.get("valid") not in (True, False, "unknown"):
                    raise TypeError(f"checker {name} returned {result!r}, expected a dict with valid")
            except Exception as exc:  # noqa: BLE001 - a crashing checker must not crash the run
                result = {"valid": "unknown", "error": f"{type(exc).__name__}: {exc}",
                          "traceback": traceback.format_exc(limit=5)}
            results[name] = result
        return {"valid": merge_valid([r["valid"] for r in results.values()]), "checkers": results}


class Stats:
    """Counts of completions by f and type. Invalid when the history has no ok operation at all (a run where
    nothing worked proves nothing); fs without any ok are listed under `no_ok` (Jepsen marks those invalid too,
    but here a rarely-succeeding f, such as a contended delete, is not a failure of the system)."""

    def check(self, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
        by_f: dict[str, dict[str, int]] = {}
        pending: dict[Any, str] = {}
        for event in history:
            process = event["process"]
            if process in LAB_PROCESSES:
                continue
            kind = event["type"]
            if kind == "invoke":
                pending[process] = event["f"]
                by_f.setdefault(event["f"], {"ok": 0, "fail": 0, "info": 0})
                continue
            pending.pop(process, None)
            by_f.setdefault(event["f"], {"ok": 0, "fail": 0, "info": 0})[kind] += 1
        for f in pending.values():  # invokes never completed are indeterminate
            by_f[f]["info"] += 1
        total = {k: sum(c[k] for c in by_f.values()) for k in ("ok", "fail", "info")}
        return {
            "valid": total["ok"] > 0,
            "failure_kind": "liveness",  # nothing worked: the system never served
            "count": sum(total.values()),
            **{f"{k}_count": v for k, v in total.items()},
            "by_f": dict(sorted(by_f.items())),
            "no_ok": sorted(f for f, c in by_f.items() if c["ok"] == 0),
        }


class SetChecker:
    """Jepsen's set checker on `add` (invoke value = element) and `read` (ok value = all elements).

    The final read is the last ok read. Elements: `lost` (add ok, absent from the final read), `unexpected` (read
    but never added), `duplicated` (more than once in one read), `recovered` (add info/pending, present at the end).
    Each lost or unexpected element carries the time it was last seen in a read (null if never). Unknown when no read
    completed ok.
    """

    def check(self, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
        attempted: set[Any] = set()
        acknowledged: dict[Any, int] = {}
        last_seen: dict[Any, int] = {}
        duplicated: dict[Any, int] = {}
        final: list[Any] | None = None
        final_time = None
        pending: dict[Any, dict[str, Any]] = {}
        for event in history:
            process = event["process"]
            if process in LAB_PROCESSES:
                continue
            if event["type"] == "invoke":
                pending[process] = event
                if event["f"] == "add":
                    attempted.add(freeze(event.get("value")))
                continue
            invoke = pending.pop(process, None)
            if event["type"] != "ok":
                continue
            if event["f"] == "add" and invoke is not None:
                acknowledged[freeze(invoke.get("value"))] = event["time"]
            elif event["f"] == "read":
                elements = [freeze(v) for v in (event.get("value") or [])]
                counts: dict[Any, int] = {}
                for element in elements:
                    counts[element] = counts.get(element, 0) + 1
                    last_seen[element] = event["time"]
                for element, count in counts.items():
                    if count > 1:
                        duplicated[element] = max(duplicated.get(element, 0), count)
                final = elements
                final_time = event["time"]
        if final is None:
            return {"valid": "unknown", "error": "no read completed ok, so nothing can be said about the set",
                    "attempt_count": len(attempted), "acknowledged_count": len(acknowledged)}
        present = set(final)
        lost = sorted((e for e in acknowledged if e not in present), key=repr)
        unexpected = sorted((e for e in last_seen if e not in attempted), key=repr)
        recovered = sorted((e for e in present if e in attempted and e not in acknowledged), key=repr)
        return {
            "valid": not lost and not unexpected and not duplicated,
            "final_read_time": final_time,
            "attempt_count": len(attempted),
            "acknowledged_count": len(acknowledged),
            "ok_count": sum(1 for e in acknowledged if e in present),
            "lost": [{"element": e, "acknowledged_at": acknowledged[e], "last_seen": last_seen.get(e)} for e in lost],
            "unexpected": [{"element": e, "last_seen": last_seen[e]} for e in unexpected],
            "duplicated": [{"element": e, "max_copies": duplicated[e]}
                           for e in sorted(duplicated, key=repr)],
            "recovered_count": len(recovered),
        }
