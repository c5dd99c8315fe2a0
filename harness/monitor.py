"""Polls every node's view of the cluster (the DB's :class:`~harness.protocols.ClusterStatus`) into cluster.jsonl
and keeps the latest leader; a :class:`StuckDetector` may watch the polls for a cluster that stopped making
progress. Only for a DB with that capability: the engine runs no monitor for one without it.

Lines (docs/store.md): ``{"time": ns, "node": "n1", "role": ..., "term": ..., "leader": ..., "commit": ...,
"applied": ...}``, or ``{"time": ns, "node": "n1", "error": "..."}`` when the poll failed. ``time`` is the
controller's monotonic clock, the same as history.jsonl's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from harness.protocols import ClusterStatus, TestContext
from harness.store import JsonlWriter


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class ClusterMonitor:
    """Polls ``test.db``'s ClusterStatus of every node; TypeError naming the DB when it lacks the capability."""

    def __init__(self, test: TestContext, writer: JsonlWriter | None, *, interval: float = 0.5,
                 timeout: float = 2.0, on_poll: Callable[[dict[str, dict[str, Any]]], None] | None = None) -> None:
        if interval <= 0:
            raise ValueError(f"status interval must be > 0, got {interval}")
        if not isinstance(test.db, ClusterStatus):
            raise TypeError(f"{type(test.db).__name__} has no ClusterStatus capability: nothing to monitor")
        self.db: ClusterStatus = test.db
        self.test = test
        self.writer = writer
        self.interval = interval
        self.timeout = timeout
        self.last: dict[str, dict[str, Any]] = {}
        self.on_poll = on_poll  # told every round of polls (the stuck-cluster detector, the leader witness)

    async def poll_once(self) -> dict[str, dict[str, Any]]:
        """Poll every node once (concurrently); record and return node -> status or {"error": ...}."""
        results = await asyncio.gather(*(self._poll(n) for n in self.test.nodes))
        self.last = dict(zip(self.test.nodes, results, strict=True))
        if self.on_poll is not None:
            self.on_poll(self.last)
        return self.last

    async def _poll(self, node: str) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.timeout):
                st = await self.db.status(self.test, node)
            if not isinstance(st, Mapping):
                raise TypeError(f"status returned {type(st).__name__}, not a mapping")
            line: dict[str, Any] = {"time": time.monotonic_ns(), "node": node, **st}
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - an unreachable node is data, not a failure of the run
            line = {"time": time.monotonic_ns(), "node": node, "error": _describe(e)}
        if self.writer is not None:
            self.writer.append(line)
        return line

    @property
    def leader(self) -> str | None:
        """The leader claimed by a node that says it leads, at the highest term seen; else None."""
        best: tuple[int, str] | None = None
        for node, st in self.last.items():
            if "error" not in st and st.get("role") == "leader":
                raw = st.get("term")
                term = raw if isinstance(raw, int) else -1
                if best is None or term > best[0]:
                    best = (term, node)
        return best[1] if best else None

    async def run(self) -> None:
        """Poll forever at the interval (cancel to stop). The sleep is the polling period, not a wait."""
        while True:
            await self.poll_once()
            await asyncio.sleep(self.interval)


class LeaderWitness:
    """Told every round of status polls: records each (term, node) that a node reports leading, the first time it is
    seen (``record(value)``; the engine writes a history event of process "harness", f "leader", which the
    election-safety checker judges: two leaders of one term break Raft's Election Safety). At most one event per
    (term, node), so a run holds a handful. :meth:`note` takes sightings from elsewhere too (harness.witness: the
    terms a node says it led, ``source`` "node"; a status poll's sighting has no source)."""

    def __init__(self, record: Callable[[dict[str, Any]], None]) -> None:
        self.record = record
        self.seen: set[tuple[int, str]] = set()

    def __call__(self, polls: dict[str, dict[str, Any]]) -> None:
        for node, st in polls.items():
            term = st.get("term")
            if "error" in st or st.get("role") != "leader" or not isinstance(term, int):
                continue
            self.note(term, node)

    def note(self, term: int, node: str, *, source: str | None = None) -> None:
        """Record that `node` led `term`, unless that was recorded before."""
        if (term, node) not in self.seen:
            self.seen.add((term, node))
            self.record({"term": term, "node": node, **({"source": source} if source else {})})


STUCK_ELECTIONS = 20  # "many election timeouts": how long a stuck condition must hold before it is recorded
MAX_STUCK_EVENTS = 20


class StuckDetector:
    """Watches each round of status polls during the run for a cluster that is stuck, and records an observation
    (``record(value)``, the engine writes it as a history event of process "harness", f "stuck") once a condition
    has held for ``after_s`` seconds:

    - ``no-leader``: a majority of the nodes answer their status, but none of them says it leads in the highest
      term any of them reports;
    - ``no-commit-progress``: the highest commit index any node reports has not grown, while the clients invoked
      operations (``activity()`` counts their invokes; the checker tells writes from reads in the history).

    One observation per episode (a condition that stops holding starts a new one), at most MAX_STUCK_EVENTS in a
    run. Value: ``{"condition", "since" (monotonic ns), "held_s", "after_s", "invokes", "nodes": {node: status}}``.
    The detector judges nothing: whether a fault excused it is the recovery checker's call, from the history.
    """

    def __init__(self, *, nodes: int, after_s: float, activity: Callable[[], int],
                 record: Callable[[dict[str, Any]], None]) -> None:
        if after_s <= 0:
            raise ValueError(f"stuck threshold must be > 0 s, got {after_s}")
        self.majority = nodes // 2 + 1
        self.after_ns = int(after_s * 1e9)
        self.activity = activity
        self.record = record
        self.enabled = True
        self.events = 0
        self._since: dict[str, tuple[int, int] | None] = {"no-leader": None, "no-commit-progress": None}
        self._reported: set[str] = set()
        self._commit: int | None = None

    def __call__(self, polls: dict[str, dict[str, Any]]) -> None:
        if not self.enabled:
            return
        now = time.monotonic_ns()
        answered = {n: st for n, st in polls.items() if "error" not in st}
        terms = [st["term"] for st in answered.values() if isinstance(st.get("term"), int)]
        top = max(terms, default=None)
        led = any(st.get("role") == "leader" and st.get("term") == top for st in answered.values())
        commits = [st["commit"] for st in answered.values() if isinstance(st.get("commit"), int)]
        commit = max(commits, default=None)
        progressed = commit is not None and (self._commit is None or commit > self._commit)
        if commit is not None:
            self._commit = max(commit, self._commit or commit)
        self._step("no-leader", len(answered) >= self.majority and not led, now, polls)
        self._step("no-commit-progress", not progressed, now, polls)

    def _step(self, condition: str, holds: bool, now: int, polls: dict[str, dict[str, Any]]) -> None:
        started = self._since[condition]
        if not holds:
            self._since[condition] = None
            self._reported.discard(condition)
            return
        if started is None:
            self._since[condition] = (now, self.activity())
            return
        since, invokes_then = started
        invokes = self.activity() - invokes_then
        if condition in self._reported or now - since < self.after_ns or self.events >= MAX_STUCK_EVENTS:
            return
        if condition == "no-commit-progress" and invokes == 0:
            return  # nobody asked for anything: no progress is expected
        self._reported.add(condition)
        self.events += 1
        self.record({"condition": condition, "since": since, "held_s": round((now - since) / 1e9, 3),
                     "after_s": self.after_ns / 1e9, "invokes": invokes,
                     "nodes": {n: {k: st[k] for k in ("role", "term", "leader", "commit", "applied", "error")
                                   if k in st} for n, st in sorted(polls.items())}})
