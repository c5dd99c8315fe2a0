"""The recovery checker: liveness as a verdict. After the faults heal, the system must serve again within a bound.

Pure, over the history alone (docs/history.md), so `harness analyze` re-checks a stored run exactly as the run did.

What it judges (docs/history.md, "The recovery checker"):
- **Heal windows.** A heal is the moment no fault is active any more (the completion of a nemesis `stop` that leaves
  no fault of any kind active; a `stop` while another fault is still active is not a heal). A window runs from a
  heal to the invoke of the next `start` (or the end of the history); the last one is the *final* window, which
  holds the quiesce and the final reads. In each window the system must complete a write `ok` and a read `ok`
  within `bound_s` of being asked: the clock starts at the heal when an operation of that kind was in flight then,
  else at the first one invoked after it (the final reads only start once the quiesce is over). Missing it is a
  liveness failure; a window cut by the next fault before the bound ran out, or one in which no operation of that
  kind was sent, is *unknown* for that kind and changes nothing.
- **The quiesce** (process "harness", f "quiesce"): the running nodes did not agree on one leader by the quiesce
  timeout, or a running node that answers applied less than the commit index the agreed cluster had (it did not
  catch up within the bound the engine gave it): a liveness failure naming the nodes.
- **Stuck-cluster observations** (process "harness", f "stuck", recorded by the engine's monitor): a majority answered
  but no node led, or the commit index did not move while clients were sending operations, for many election
  timeouts. Invalid when no fault was active at any time in the stuck interval and the clients sent writes in it
  (nothing excuses it); otherwise reported only (a partition, a pause or packet loss may leave no majority
  connected, which the monitor cannot see, or only reads were sent, which commit nothing).

Result: `{"valid", "failure_kind": "liveness", "bound_s", "windows", "quiesce", "stuck", "failures", "unknown",
"anomaly_time"}` (`anomaly_time`, when invalid: controller ns at which the first failure became visible);
`valid` is false when `failures` is not empty, else true (unknown windows are listed, not counted against the run).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from .history import HARNESS, NEMESIS, Operation, pair

DEFAULT_BOUND_S = 5.0  # only for histories whose test.json names no bound (runs older than the option)
NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Window:
    """From a heal (`heal`, ns) to the invoke of the next fault's start (`end`, ns; None: the end of the history)."""

    heal: int
    heal_index: int
    end: int | None
    healed: str  # what the last stop healed, e.g. "partition n1 n2"
    final: bool


@dataclass(frozen=True, slots=True)
class Interval:
    """A time when at least one fault was active: [start, stop) in ns (stop None: never healed)."""

    start: int
    stop: int | None


def _describe_fault(value: Any) -> str:
    if not isinstance(value, dict):
        return "a fault"
    kind = str(value.get("fault", "fault"))
    targets = value.get("targets")
    if isinstance(targets, list) and targets:
        flat = [str(x) for t in targets for x in (t if isinstance(t, list) else [t])]
        return f"{kind} of {' '.join(flat)}"
    return kind


def fault_timeline(history: list[dict[str, Any]]) -> tuple[list[Window], list[Interval]]:
    """The heal windows and the intervals when some fault was active, from the nemesis events.

    A kind is active from the completion of its `start` to the completion of its next `stop` (docs/history.md);
    a window ends at the *invoke* of the next start, since a nemesis may act before it completes."""
    active: dict[str, Any] = {}
    heals: list[tuple[int, int, str]] = []
    starts: list[int] = []  # times of start events
    intervals: list[Interval] = []
    busy_since: int | None = None
    for event in history:
        if event["process"] != NEMESIS:
            continue
        value = event.get("value")
        kind = str(value.get("fault")) if isinstance(value, dict) and value.get("fault") is not None else None
        if event["f"] == "start":
            starts.append(event["time"])  # invoke and completion: a start invoked before a heal may end after it
        if event["type"] == "invoke":
            continue
        if kind is None:
            continue
        if event["f"] == "start":
            if not active:
                busy_since = event["time"]
            active[kind] = value
        elif event["f"] == "stop" and kind in active:
            started = active.pop(kind)
            if not active:
                heals.append((event["time"], event["index"], _describe_fault(started)))
                intervals.append(Interval(busy_since if busy_since is not None else event["time"], event["time"]))
                busy_since = None
    if active and busy_since is not None:
        intervals.append(Interval(busy_since, None))
    windows = []
    for time, index, healed in heals:
        later = [s for s in starts if s >= time]
        windows.append(Window(time, index, min(later) if later else None, healed, final=False))
    if windows and windows[-1].end is None:
        last = windows[-1]
        windows[-1] = Window(last.heal, last.heal_index, None, last.healed, final=True)
    return windows, intervals


@dataclass(frozen=True, slots=True)
class OpIndex:
    """The ops of one kind sorted by call time, so that each window looks at its own ops only (a run with many
    heals and 100,000 ops would otherwise cost seconds per check). `ended` maps an op's id to the time of its
    completion event, of any type (an `info` op's client gave up then, though the op may still take effect); an
    op without one never ended."""

    ops: list[Operation]
    ended: Mapping[int, int]
    calls: list[int] = field(init=False)
    open_ops: list[Operation] = field(init=False)  # never completed: in flight from their call on
    longest: int = field(init=False)  # the longest time from a call to its completion event, ns

    def __post_init__(self) -> None:
        self.ops.sort(key=lambda op: op.call_time)
        object.__setattr__(self, "calls", [op.call_time for op in self.ops])
        object.__setattr__(self, "open_ops", [op for op in self.ops if op.id not in self.ended])
        object.__setattr__(self, "longest", max((self.ended[op.id] - op.call_time for op in self.ops
                                                 if op.id in self.ended), default=0))

    def in_flight(self, t: int) -> list[Operation]:
        """Ops called before t whose completion event (if any) is not before t."""
        lo = bisect_left(self.calls, t - self.longest)
        done = [op for op in self.ops[lo:bisect_left(self.calls, t)] if op.id in self.ended and self.ended[op.id] >= t]
        return done + [op for op in self.open_ops if op.call_time < t]

    def called(self, a: int, b: int) -> list[Operation]:
        """Ops called in [a, b)."""
        return self.ops[bisect_left(self.calls, a):bisect_left(self.calls, b)]


def _dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _rel(t: int | None, origin: int) -> float | None:
    return None if t is None else round((t - origin) / NS, 3)


def _errors(ops: list[Operation]) -> str:
    counts: dict[str, int] = {}
    for op in ops:
        if op.complete_type != "ok":
            reason = op.error or ("no completion" if op.complete_index is None else op.complete_type)
            counts[reason] = counts.get(reason, 0) + 1
    return ", ".join(f"{k} x{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:5])


def judge_kind(ops: OpIndex, window: Window, bound: int, history_end: int, origin: int,
               label: str, node_of: Mapping[int, str]) -> dict[str, Any]:
    """Did the ops of one kind (all writes, or all reads) get served within `bound` ns of being asked after the
    heal? verdict recovered | missed | unknown, with the first ok op and, for a miss, the nodes asked."""
    end = window.end if window.end is not None else history_end
    in_flight = ops.in_flight(window.heal)
    after = ops.called(window.heal, end)
    ok = sorted((op for op in in_flight + after if op.complete_type == "ok" and op.return_time is not None
                 and window.heal <= op.return_time <= end), key=lambda op: op.return_time or 0)
    if in_flight:
        clock = window.heal
    elif after:
        clock = min(op.call_time for op in after)
    elif window.end is not None:
        return {"verdict": "unknown", "reason": f"no {label} was sent before the next fault began "
                                                f"{(window.end - window.heal) / NS:.2f} s after the heal"}
    else:
        return {"verdict": "unknown", "reason": f"no {label} was sent after the heal"}
    out: dict[str, Any] = {"clock_s": _rel(clock, origin), "asked": len(in_flight) + len(after)}
    deadline = clock + bound
    if ok and (ok[0].return_time or 0) <= deadline:
        first = ok[0]
        return {"verdict": "recovered", **out, "first_ok_s": round(((first.return_time or 0) - window.heal) / NS, 3),
                "op": first.id}
    if ok:
        out["first_ok_s"] = round(((ok[0].return_time or 0) - window.heal) / NS, 3)
        out["op"] = ok[0].id
    if deadline > end:
        cut = "the next fault began" if window.end is not None else "the history ends"
        return {"verdict": "unknown", **out, "reason": f"{cut} {(end - clock) / NS:.2f} s after the first {label} "
                                                       f"was asked, before the bound ran out"}
    asked = [op for op in in_flight + after if op.call_time <= deadline]
    nodes = sorted({node_of[op.id] for op in asked if op.id in node_of})
    return {"verdict": "missed", **out, "deadline_s": _rel(deadline, origin), "nodes": nodes, "errors": _errors(asked),
            "reason": f"no {label} succeeded within {bound / NS:g} s: {len(asked)} tried"
                      + (f" at {', '.join(nodes)}" if nodes else "") + (f" ({_errors(asked)})" if asked else "")}


def _node_line(node: str, st: Any) -> str:
    if not isinstance(st, dict):
        return f"{node} ?"
    if st.get("error"):
        return f"{node} unreachable ({st['error']})"
    lead = st.get("leader") or "none"
    return (f"{node} {st.get('role', '?')} (term {st.get('term', '?')}, leader {lead}, commit {st.get('commit', '?')}, "
            f"applied {st.get('applied', '?')})")


def judge_quiesce(event: dict[str, Any], origin: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The quiesce observation: (what it says, liveness failures). See the module docstring."""
    value = _dict(event.get("value"))
    nodes = _dict(value.get("nodes"))
    at = _rel(event["time"], origin)
    running = {n: st for n, st in nodes.items() if not (isinstance(st, dict) and st.get("running") is False)}
    summary = {"at_s": at, "agreed": value.get("agreed"), "leader": value.get("leader"),
               "waited_s": value.get("waited_s"), "caught_up": value.get("caught_up")}
    failures: list[dict[str, Any]] = []
    leaders = {st.get("leader") for st in running.values() if isinstance(st, dict) and not st.get("error")}
    answered = all(isinstance(st, dict) and not st.get("error") for st in running.values())
    agreed = bool(running) and answered and len(leaders) == 1 and None not in leaders and "" not in leaders
    if not agreed:
        failures.append({"what": "leader", "since_s": _rel(value.get("heal_time"), origin), "at_s": at,
                         "nodes": sorted(running),
                         "message": f"The running nodes did not agree on a leader within "
                                    f"{value.get('timeout_s', '?')} s of the final heal: "
                                    + "; ".join(_node_line(n, st) for n, st in sorted(running.items())) + "."})
        return summary, failures
    target = value.get("commit")
    behind = sorted(n for n, st in running.items() if isinstance(target, int)
                    and isinstance(_dict(st).get("applied"), int) and st["applied"] < target)
    if behind:
        failures.append({"what": "catch-up", "since_s": _rel(value.get("agreed_time"), origin), "at_s": at,
                         "nodes": behind,
                         "message": f"{', '.join(behind)} ran but did not catch up to the commit index {target} "
                                    f"within {value.get('catch_up_s', '?')} s of the leader agreement: "
                                    + "; ".join(_node_line(n, running[n]) for n in behind) + "."})
    return summary, failures


def _overlaps(a: int, b: int, intervals: list[Interval]) -> bool:
    return any(i.start < b and (i.stop is None or i.stop > a) for i in intervals)


def judge_stuck(event: dict[str, Any], intervals: list[Interval], writes: OpIndex,
                origin: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One stuck-cluster observation: (the anomaly as reported, a liveness failure or None)."""
    value = _dict(event.get("value"))
    until: int = event["time"]
    since: int = value["since"] if isinstance(value.get("since"), int) else until
    nodes = _dict(value.get("nodes"))
    sent = len(writes.called(since, until + 1))
    anomaly: dict[str, Any] = {"since_s": _rel(since, origin), "at_s": _rel(until, origin), "condition": value.get("condition"),
               "writes_sent": sent, "nodes": {n: _node_line(n, st) for n, st in sorted(nodes.items())}}
    if _overlaps(since, until, intervals):
        anomaly["judged"] = "reported only: a fault was active in the interval (it may have left no majority " \
                            "connected, which the monitor cannot see)"
        return anomaly, None
    if value.get("condition") == "no-commit-progress" and sent == 0:
        anomaly["judged"] = "reported only: no write was sent in the interval, so nothing had to commit"
        return anomaly, None
    anomaly["judged"] = "invalid: no fault was active"
    held = (until - since) / NS
    what = "no node led" if value.get("condition") == "no-leader" else "the commit index did not move"
    return anomaly, {"what": "stuck", "since_s": anomaly["since_s"], "at_s": anomaly["at_s"],
                     "nodes": sorted(nodes), "message": f"With no fault active, {what} for {held:.1f} s "
                     f"(from {anomaly['since_s']} s; {sent} writes sent): "
                     + "; ".join(anomaly["nodes"].values()) + "."}


def _nodes(history: list[dict[str, Any]], ops: list[Operation]) -> dict[int, str]:
    """op id -> the node its completion (else its invoke) names, for ops that name one."""
    out: dict[int, str] = {}
    for op in ops:
        for index in (op.complete_index, op.invoke_index):
            node = history[index].get("node") if index is not None and index < len(history) else None
            if node is not None:
                out[op.id] = str(node)
                break
    return out


class RecoveryChecker:
    """Liveness after faults (see the module docstring). `writes` and `reads` name the workload's fs of each kind;
    `bound_s` is the recovery bound (the engine stores the one it used in test.json's options as
    `recovery_bound_s`, which wins, so a re-check uses the bound of the run)."""

    def __init__(self, *, writes: Collection[str], reads: Collection[str], bound_s: float | None = None) -> None:
        if bound_s is not None and not bound_s > 0:
            raise ValueError(f"recovery bound must be > 0 s, got {bound_s!r}")
        self.writes = frozenset(writes)
        self.reads = frozenset(reads)
        self.bound_s = bound_s

    def _bound(self, test: Mapping[str, Any]) -> tuple[float, str]:
        options = test.get("options") if isinstance(test.get("options"), Mapping) else {}
        stored = options.get("recovery_bound_s") if options else None
        if isinstance(stored, int | float) and not isinstance(stored, bool) and stored > 0:
            return float(stored), "test.json"
        if self.bound_s is not None:
            return self.bound_s, "checker"
        return DEFAULT_BOUND_S, "default"

    def check(self, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
        bound_s, source = self._bound(test)
        bound = int(bound_s * NS)
        start = test.get("start_time")
        origin = start if isinstance(start, int) else (history[0]["time"] if history else 0)
        history_end = max((e["time"] for e in history), default=0)
        ops = pair(history)
        node_of = _nodes(history, ops)
        ended = {op.id: history[op.complete_index]["time"] for op in ops if op.complete_index is not None}
        writes = OpIndex([op for op in ops if op.f in self.writes], ended)
        reads = OpIndex([op for op in ops if op.f in self.reads], ended)
        windows, intervals = fault_timeline(history)
        failures: list[dict[str, Any]] = []
        judged = []
        for w in windows:
            row: dict[str, Any] = {"heal_s": _rel(w.heal, origin), "heal_index": w.heal_index, "healed": w.healed,
                                   "final": w.final, "until_s": _rel(w.end, origin)}
            for label, kind_ops in (("write", writes), ("read", reads)):
                row[label] = res = judge_kind(kind_ops, w, bound, history_end, origin, label, node_of)
                if res["verdict"] == "missed":
                    failures.append({"what": label, "since_s": row["heal_s"], "at_s": res["deadline_s"],
                                     "nodes": res.get("nodes", []),
                                     "message": f"After the {'final ' if w.final else ''}heal at {row['heal_s']} s "
                                                f"({w.healed}): {res['reason']}."})
            judged.append(row)
        observations = [e for e in history if e["process"] == HARNESS]
        quiesce = None
        for event in (e for e in observations if e["f"] == "quiesce"):
            quiesce, found = judge_quiesce(event, origin)
            failures.extend(found)
        stuck = []
        for event in (e for e in observations if e["f"] == "stuck"):
            anomaly, failure = judge_stuck(event, intervals, writes, origin)
            stuck.append(anomaly)
            if failure is not None:
                failures.append(failure)
        unknown = [f"{label} after the heal at {row['heal_s']} s: {row[label]['reason']}" for row in judged
                   for label in ("write", "read") if row[label]["verdict"] == "unknown"]
        seen = [f["at_s"] for f in failures if isinstance(f.get("at_s"), float | int)]
        return {"valid": not failures, "failure_kind": "liveness", "bound_s": bound_s, "bound_source": source,
                "windows": judged, "quiesce": quiesce, "stuck": stuck, "failures": failures, "unknown": unknown,
                # when the first failure became visible (controller ns, as harness.detection reads it)
                **({"anomaly_time": origin + int(min(seen) * NS)} if seen else {})}
