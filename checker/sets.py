"""The set checker of the `set` workload: unique adds to a few sets (one per key), reads of whole sets. Pure.

Vocabulary (docs/history.md; DB-neutral, the workload's clients speak it):
- `add`, key K, invoke value E: add the element E (unique over the whole run) to the set K. ok: E is in K;
  `fail`: it certainly is not (and never will be); `info`: either.
- `read`, key K: ok value = the elements of K (a list, in any order).

What every ok read R of a key K is held to (Jepsen's set-full, without its timing statistics):
- `lost`: an add of K acknowledged (ok) before R was invoked whose element R lacks. An acknowledged add took
  effect, so every read that starts after it must see it;
- `unexpected`: an element that no add of K ever tried;
- `failed-present`: an element whose add completed `fail` (the DB said it certainly did not happen);
- `duplicated`: an element more than once in R (a set holds it once).
Beside those (no anomaly): `recovered`, the adds that ended `info` (or never completed) but whose element the last
ok read of the key holds: they took effect although nobody was told. An add that is never followed by an ok read
of its key cannot be judged: counted as `unread`. Valid: false when any anomaly is found; unknown when there are
acknowledged adds but no ok read at all; else true.

The result counts each anomaly kind (`anomalies`: distinct elements; an element lost by five reads counts once),
lists a few `examples` of each (element, key, the read's op index), and says it in one `explanation` sentence (the report shows it). Cost: one pass over the history plus,
per read, the acknowledged adds of its key that precede it (the workload reads each key a handful of times, at the
end: linear in practice).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .anomalies import Findings
from .history import LAB_PROCESSES
from .models import freeze

ANOMALIES = ("lost", "unexpected", "failed-present", "duplicated")


@dataclass(slots=True)
class _Key:
    """What the pass gathered about one set: the adds by element and the ok reads, in history order."""

    outcome: dict[Any, str] = field(default_factory=dict)  # element -> ok | fail | info (info: never completed too)
    acked: list[tuple[int, Any]] = field(default_factory=list)  # (completion index, element), in that order
    reads: list[tuple[int, list[Any]]] = field(default_factory=list)  # (invoke index = op id, elements)


def _gather(history: list[dict[str, Any]]) -> dict[Any, _Key]:
    """One pass: pair each completion with its process's invoke and file adds and ok reads by key."""
    keys: dict[Any, _Key] = {}
    pending: dict[Any, dict[str, Any]] = {}
    for event in history:
        process = event["process"]
        if process in LAB_PROCESSES:
            continue
        if event["type"] == "invoke":
            pending[process] = event
            if event["f"] == "add":
                keys.setdefault(event.get("key"), _Key()).outcome.setdefault(freeze(event.get("value")), "info")
            continue
        invoke = pending.pop(process, None)
        if invoke is None:
            continue
        k = keys.setdefault(invoke.get("key"), _Key())
        if invoke["f"] == "add" and event["type"] in ("ok", "fail"):
            element = freeze(invoke.get("value"))
            k.outcome[element] = event["type"]
            if event["type"] == "ok":
                k.acked.append((event["index"], element))
        elif invoke["f"] == "read" and event["type"] == "ok":
            k.reads.append((invoke["index"], [freeze(v) for v in event.get("value") or []]))
    return keys


def _check_read(key: Any, k: _Key, read: tuple[int, list[Any]], found: Findings) -> None:
    """File the anomalies of one ok read of the set `key` (read: its op id, the invoke index, and elements)."""
    op, elements = read
    present: set[Any] = set()
    for element in elements:
        if element in present:
            found.add("duplicated", (key, element), key=key, element=element, read=op)
            continue
        present.add(element)
        outcome = k.outcome.get(element)
        if outcome is None:
            found.add("unexpected", (key, element), key=key, element=element, read=op)
        elif outcome == "fail":
            found.add("failed-present", (key, element), key=key, element=element, read=op)
    for done, element in k.acked:
        if done > op:
            break
        if element not in present:
            found.add("lost", (key, element), key=key, element=element, acknowledged_at=done, read=op)


class KeyedSetChecker:
    """Checks every ok read of every set (key) of a `set` workload history; see the module docstring."""

    def check(self, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
        found = Findings(ANOMALIES)
        recovered = unread = attempted = acknowledged = 0
        keys = _gather(history)
        for key, k in keys.items():
            attempted += len(k.outcome)
            acknowledged += len(k.acked)
            for read in k.reads:
                _check_read(key, k, read, found)
            last = set(k.reads[-1][1]) if k.reads else set()
            recovered += sum(1 for e, o in k.outcome.items() if o == "info" and e in last)
            last_read = k.reads[-1][0] if k.reads else -1
            unread += sum(1 for done, _ in k.acked if done > last_read)
        anomalies = found.counts()
        reads = sum(len(k.reads) for k in keys.values())
        valid: bool | str = not anomalies
        if valid and reads == 0 and acknowledged:
            valid = "unknown"
        return {"valid": valid, "attempt_count": attempted, "acknowledged_count": acknowledged, "read_count": reads,
                "keys": len(keys), "anomalies": anomalies,
                "examples": found.examples(),
                "recovered_count": recovered, "unread_count": unread,
                "explanation": found.explain("Set", _describe) if anomalies else
                f"{reads} reads hold every one of the {acknowledged} acknowledged adds that preceded them.",
                **({"unknown_reason": "no read completed ok, so nothing can be said about the sets"}
                   if valid == "unknown" else {})}


def _describe(example: Mapping[str, Any]) -> str:
    return f"element {example['element']!r} of {example['key']!r} in the read op {example['read']}"
