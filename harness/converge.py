"""The convergence oracle's observation (grey-box, ours: Jepsen is black-box only).

After the heal, the quiesce and the final reads, every node of a DB with the StateDigest capability is asked what
it applied and a digest of it, again and again until every running node reports the same applied index (or the
time is up). The last answers are the observation, recorded by the engine as ONE history event of process
"harness", f "converge" (docs/history.md), so that checker.ConvergenceChecker judges it and `harness analyze`
re-judges it from the history alone. The value:

    {"converged": bool, "elapsed_s": float, "polls": int,
     "nodes": {node: {"applied", "digest", "last_index", "last_term", ...} | {"error": "..."}}}

or ``{"skipped": reason}`` when the DB has no StateDigest capability. A node that is not running is
``{"error": "not running"}`` and does not hold up convergence; a running node that does not answer does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from checker.convergence import CONVERGE
from checker.history import HARNESS
from harness.protocols import Process, StateDigest, TestContext

__all__ = ["CONVERGE", "HARNESS", "agreed", "observe_convergence"]

ASK_TIMEOUT_S = 10.0  # one node's answer (a digest of a large state takes a moment)


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


async def _ask(db: StateDigest, test: TestContext, node: str) -> dict[str, Any]:
    """One node's state, or {"error": ...}: never raises (but for cancellation)."""
    try:
        async with asyncio.timeout(ASK_TIMEOUT_S):
            if isinstance(test.db, Process) and not await test.db.is_running(test, node):
                return {"error": "not running"}
            state = dict(await db.state_digest(test, node))
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - a node that cannot answer is part of the observation
        return {"error": _describe(e)}
    if type(state.get("applied")) is not int or not isinstance(state.get("digest"), str):
        return {"error": f"no applied index and digest in {state!r}"}
    return state


def agreed(states: Mapping[str, Mapping[str, Any]]) -> bool:
    """Every node that runs answered, and they all report the same applied index."""
    answered = [s for s in states.values() if s.get("error") != "not running"]
    if any("error" in s for s in answered):
        return False
    return len({s["applied"] for s in answered}) <= 1


async def observe_convergence(test: TestContext, *, timeout: float, interval: float) -> dict[str, Any]:
    """Poll every node (concurrently, every ``interval`` s) until :func:`agreed` or ``timeout`` s have passed (at
    least one poll); return the observation value described in the module docstring."""
    db = test.db
    if not isinstance(db, StateDigest):
        return {"skipped": f"the DB ({type(db).__name__}) has no StateDigest capability"}
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + timeout
    polls = 0
    while True:
        polls += 1
        answers = await asyncio.gather(*(_ask(db, test, n) for n in test.nodes))
        states = dict(zip(test.nodes, answers, strict=True))
        converged = agreed(states)
        if converged or loop.time() + interval > deadline:
            break
        await asyncio.sleep(interval)
    return {"converged": converged, "elapsed_s": round(loop.time() - start, 3), "polls": polls, "nodes": states}
