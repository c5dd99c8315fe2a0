"""The list-append checker: appends of unique values to a few lists (one per key), reads of whole lists. Pure.

Vocabulary (docs/history.md; DB-neutral, the workload's clients speak it):
- `append`, key K, invoke value V: append V (unique over the whole run) to the list K. ok: it is in the list;
  `fail`: it certainly is not and never will be; `info`: either.
- `read`, key K: ok value = the whole list K, in order.

Per key, the longest ok read is the candidate total order of the appends (a correct list only grows at its end,
so every read is a prefix of what is read last). Anomalies (each counted, with a few examples; a value counts once per kind, a read once per kind):
- `incompatible-order`: a read that is not a prefix of the longest read (two reads disagree on the order);
- `duplicate`: a value twice in one read (an append applied twice);
- `unexpected`: a value no append of K ever tried;
- `failed-append-read`: a value whose append completed `fail` (Elle's aborted read, G1a);
- `lost`: an append acknowledged before a read was invoked, missing from that read;
- `stale-read`: a read shorter than a read that completed before it was invoked (it missed what an earlier read
  had already seen: the reads are not linearizable);
- `future-read`: a read holding a value whose append was invoked only after the read completed;
- `realtime-order`: two acknowledged appends in the order against real time (A completed before B was invoked,
  yet B precedes A in the list).
Values from `info` appends may appear or not; an acknowledged append that no later read can confirm is counted as
`unconfirmed` (no anomaly). Valid: false on any anomaly; unknown when appends were acknowledged but no read
completed ok; else true.

Linear in the history's size (no search): one forward pass pairs completions with invokes and records a timeline
of the moments that matter (an ack, a read's invoke and completion), reads are compared element by element with
the longest one, then one backward sweep over the timeline finds lost appends (the shortest read invoked after each
acknowledgement) and one forward sweep the stale reads. bench/listappend.py times it on a million operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .anomalies import Findings
from .history import LAB_PROCESSES
from .models import freeze

ANOMALIES = ("incompatible-order", "duplicate", "unexpected", "failed-append-read", "lost", "stale-read",
             "future-read", "realtime-order")
INFINITE = float("inf")


@dataclass(slots=True)
class _Append:
    key: Any
    value: Any
    invoked: int
    outcome: str = "info"  # ok | fail | info (also: never completed)
    completed: int | None = None  # the completion's index, when ok or fail


@dataclass(slots=True)
class _Read:
    key: Any
    invoked: int
    completed: int
    values: list[Any]
    prefix: bool = True  # a prefix of its key's longest read


@dataclass(slots=True)
class _History:
    """The forward pass's result. `timeline`: (kind, item) in history order, kind "ack" (an _Append acknowledged),
    "call" (an ok _Read's invoke: filled in when it completes; a read that did not end ok stays None) or "done"."""

    appends: dict[Any, _Append] = field(default_factory=dict)  # value -> its append (values are unique)
    reads: list[_Read] = field(default_factory=list)
    timeline: list[tuple[str, Any]] = field(default_factory=list)


def _gather(history: list[dict[str, Any]]) -> _History:
    h = _History()
    pending: dict[Any, tuple[dict[str, Any], int]] = {}  # process -> (invoke, its read's timeline slot)
    for event in history:
        process = event["process"]
        if process in LAB_PROCESSES:
            continue
        f = event["f"]
        if event["type"] == "invoke":
            slot = -1
            if f == "append":
                value = freeze(event.get("value"))
                h.appends[value] = _Append(event.get("key"), value, event["index"])
            elif f == "read":
                slot = len(h.timeline)
                h.timeline.append(("call", None))
            pending[process] = (event, slot)
            continue
        invoke, slot = pending.pop(process, (None, -1))
        if invoke is None:
            continue
        if invoke["f"] == "append" and event["type"] != "info":
            append = h.appends[freeze(invoke.get("value"))]
            append.outcome, append.completed = event["type"], event["index"]
            if event["type"] == "ok":
                h.timeline.append(("ack", append))
        elif invoke["f"] == "read" and event["type"] == "ok":
            read = _Read(invoke.get("key"), invoke["index"], event["index"],
                         [v if type(v) is int or type(v) is str else freeze(v) for v in event.get("value") or []])
            h.reads.append(read)
            h.timeline[slot] = ("call", read)
            h.timeline.append(("done", read))
    return h


def _orders(reads: list[_Read]) -> dict[Any, list[Any]]:
    """Key -> its longest ok read (the first of equal length): the candidate total order of its appends."""
    longest: dict[Any, list[Any]] = {}
    for read in reads:
        if len(read.values) > len(longest.get(read.key, ())):
            longest[read.key] = read.values
        else:
            longest.setdefault(read.key, read.values)
    return longest


def _check_reads(h: _History, orders: dict[Any, list[Any]], found: Findings) -> None:
    """Each read against its key's order, element by element: prefix, duplicates, provenance, future values."""
    for read in h.reads:
        order = orders[read.key]
        seen: set[Any] = set()
        for i, value in enumerate(read.values):
            if read.prefix and (i >= len(order) or order[i] != value):
                read.prefix = False
                found.add("incompatible-order", id(read), key=read.key, read=read.invoked, at=i, value=value,
                          longest_has=order[i] if i < len(order) else None)
            if value in seen:
                found.add("duplicate", value, key=read.key, read=read.invoked, value=value)
                continue
            seen.add(value)
            append = h.appends.get(value)
            if append is None or append.key != read.key:
                found.add("unexpected", (read.key, value), key=read.key, read=read.invoked, value=value)
            elif append.outcome == "fail":
                found.add("failed-append-read", value, key=read.key, read=read.invoked, value=value)
            elif append.invoked > read.completed:
                found.add("future-read", value, key=read.key, read=read.invoked, value=value, append=append.invoked)


def _positions(orders: dict[Any, list[Any]]) -> dict[Any, int]:
    """Value -> its position in its key's order (the first, should it be there twice)."""
    pos: dict[Any, int] = {}
    for order in orders.values():
        for i, value in enumerate(order):
            pos.setdefault(value, i)
    return pos


def _check_lost(h: _History, pos: dict[Any, int], found: Findings) -> int:
    """Backward over the timeline: per key the shortest prefix-read invoked after this moment; an ack whose value
    sits at or beyond that length (or in no read at all) was lost by that read. Returns the unconfirmed count."""
    shortest: dict[Any, _Read] = {}
    unconfirmed = 0
    for kind, item in reversed(h.timeline):
        if kind == "call" and item is not None and item.prefix:
            best = shortest.get(item.key)
            if best is None or len(item.values) <= len(best.values):
                shortest[item.key] = item
        elif kind == "ack":
            read = shortest.get(item.key)
            if read is None:
                unconfirmed += 1
            elif pos.get(item.value, INFINITE) >= len(read.values):
                found.add("lost", item.value, key=item.key, value=item.value, acknowledged_at=item.completed, read=read.invoked)
    return unconfirmed


def _check_stale(h: _History, found: Findings) -> None:
    """Forward over the timeline: a prefix-read invoked after another prefix-read of its key completed must be at
    least as long."""
    longest_done: dict[Any, _Read] = {}
    floor: dict[int, _Read] = {}  # id of a read -> the longest read of its key completed before its invoke
    for kind, item in h.timeline:
        if item is None or kind == "ack" or not item.prefix:
            continue
        if kind == "call":
            before = longest_done.get(item.key)
            if before is not None:
                floor[id(item)] = before
        else:
            before = floor.get(id(item))
            if before is not None and len(item.values) < len(before.values):
                found.add("stale-read", id(item), key=item.key, read=item.invoked, length=len(item.values),
                          earlier_read=before.invoked, earlier_length=len(before.values))
            best = longest_done.get(item.key)
            if best is None or len(item.values) > len(best.values):
                longest_done[item.key] = item


def _check_realtime(h: _History, orders: dict[Any, list[Any]], found: Findings) -> None:
    """Along each order: an acknowledged append must not complete before an append placed earlier was invoked."""
    for key, order in orders.items():
        latest: tuple[int, Any] = (-1, None)  # the latest invoke among the values placed so far
        placed: set[Any] = set()
        for value in order:
            append = h.appends.get(value)
            if append is None or append.key != key or value in placed:  # (reported already)
                continue
            placed.add(value)
            if append.outcome == "ok" and append.completed is not None and append.completed < latest[0]:
                found.add("realtime-order", value, key=key, value=value, completed=append.completed, placed_after=latest[1],
                          invoked=latest[0])
            if append.invoked > latest[0]:
                latest = (append.invoked, value)


class ListAppendChecker:
    """Checks a list-append history (see the module docstring): anomaly counts, examples, one sentence."""

    def check(self, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
        h = _gather(history)
        found = Findings(ANOMALIES)
        orders = _orders(h.reads)
        _check_reads(h, orders, found)
        unconfirmed = _check_lost(h, _positions(orders), found)
        _check_stale(h, found)
        _check_realtime(h, orders, found)
        anomalies = found.counts()
        acknowledged = sum(1 for a in h.appends.values() if a.outcome == "ok")
        valid: bool | str = not anomalies
        if valid and not h.reads and acknowledged:
            valid = "unknown"
        result: dict[str, Any] = {
            "valid": valid, "append_count": len(h.appends), "acknowledged_count": acknowledged,
            "read_count": len(h.reads), "keys": len(orders), "anomalies": anomalies,
            "examples": found.examples(),
            "unconfirmed_count": unconfirmed, "explanation": found.explain("List-append", _describe) if anomalies else
            f"{len(h.reads)} reads are prefixes of one order per key that loses, repeats and invents nothing."}
        if valid == "unknown":
            result["unknown_reason"] = "appends were acknowledged but no read completed ok"
        return result


def _describe(example: Mapping[str, Any]) -> str:
    what = f"value {example['value']!r} of {example['key']!r}" if "value" in example else f"key {example['key']!r}"
    return what + (f", read op {example['read']}" if "read" in example else "")
