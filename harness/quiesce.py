"""The quiesce phase after the final heal: do the running nodes agree on a leader, and do they all catch up?

Its outcome is evidence for the recovery checker (checker/recovery.py), not a log line: :func:`quiesce` returns the
value of the history event ``{"process": "harness", "type": "info", "f": "quiesce", "value": ...}`` the engine
records (docs/history.md), so `harness analyze` judges it again from the history alone.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from harness.monitor import ClusterMonitor
from harness.protocols import Process, TestContext
from harness.readiness import one_leader_named

STATUS_FIELDS = ("role", "term", "leader", "commit", "applied", "error")
RUNNING_TIMEOUT_S = 10.0


async def _running(test: TestContext) -> dict[str, bool]:
    """node -> whether its process runs (a node whose check fails counts as running: it is judged, not excused; so
    does every node of a DB without Process)."""
    db = test.db

    async def one(node: str) -> bool:
        if not isinstance(db, Process):
            return True
        try:
            async with asyncio.timeout(RUNNING_TIMEOUT_S):
                return bool(await db.is_running(test, node))
        except Exception:  # noqa: BLE001 - unknown means it is held to the bound like a running node
            return True

    results = await asyncio.gather(*(one(n) for n in test.nodes))
    return dict(zip(test.nodes, results, strict=True))


def agreed_leader(last: dict[str, dict[str, Any]], running: dict[str, bool]) -> str | None:
    """The leader every running node names, when they all answer and name the same one; else None."""
    return one_leader_named({node: st for node, st in last.items() if running.get(node, True)})


def caught_up(last: dict[str, dict[str, Any]], running: dict[str, bool], commit: int) -> bool:
    """Every running node answered and applied at least `commit`."""
    return all("error" not in st and isinstance(st.get("applied"), int) and st["applied"] >= commit
               for node, st in last.items() if running.get(node, True))


async def _poll_until(monitor: ClusterMonitor, done: Any, timeout: float) -> bool:
    """Poll until done(monitor.last) or the timeout (s); True when done. The sleep is the polling period."""
    deadline = time.monotonic() + timeout
    while True:
        await monitor.poll_once()
        if done(monitor.last):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(min(0.1, monitor.interval))


async def quiesce(test: TestContext, *, heal_time: int, timeout: float, catch_up_s: float,
                  interval: float) -> dict[str, Any]:
    """Wait at most `timeout` s for the running nodes to agree on a leader, then at most `catch_up_s` s for every
    running node to apply the commit index the leader had when they agreed. Returns the observation:
    ``{"agreed", "leader", "waited_s", "timeout_s", "heal_time", "agreed_time", "commit", "caught_up",
    "catch_up_s", "nodes": {node: {role, term, leader, commit, applied | error, "running"}}}`` (times: monotonic
    ns, as the history's)."""
    monitor = ClusterMonitor(test, None, interval=interval)
    started = time.monotonic()
    running = await _running(test)
    agreed = await _poll_until(monitor, lambda last: agreed_leader(last, running) is not None, timeout)
    waited = time.monotonic() - started
    leader = agreed_leader(monitor.last, running) if agreed else None
    agreed_time = time.monotonic_ns() if agreed else None
    commit = monitor.last.get(leader or "", {}).get("commit")
    done: bool | None = None
    if isinstance(commit, int):
        done = await _poll_until(monitor, lambda last: caught_up(last, running, commit), catch_up_s)
    running = await _running(test)
    nodes = {node: {**{k: st[k] for k in STATUS_FIELDS if k in st}, "running": running[node]}
             for node, st in sorted(monitor.last.items())}
    return {"agreed": agreed, "leader": leader, "waited_s": round(waited, 3), "timeout_s": timeout,
            "heal_time": heal_time, "agreed_time": agreed_time, "commit": commit if isinstance(commit, int) else None,
            "caught_up": done, "catch_up_s": catch_up_s, "nodes": nodes}
