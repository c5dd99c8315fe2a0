"""Phase 7: on leaving the main phase, however it ends, every fault is ended (the nemesis's heal, recorded as a
stop of each active fault) and every node must run again (a DB with Process). The outcome is ``RunState.
heal_result``, stored as results.json's ``heal``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from harness.phases.state import RunState
from harness.protocols import Process, TestContext

log = logging.getLogger("harness.run")

HEAL_TIMEOUT_S = 60.0


@contextlib.asynccontextmanager
async def healed_on_leaving(r: RunState) -> AsyncIterator[None]:
    """Phase 7 on leaving phase 6, however it ends (a failure or a cancellation heals too, before the teardown)."""
    try:
        yield
    finally:
        r.phase("heal")
        await heal(r)


async def heal(r: RunState, timeout: float = HEAL_TIMEOUT_S) -> None:
    """End every fault and verify: the nemesis's heal, recorded as a stop of each active fault, then every node
    must run (a DB with Process). Sets r.heal_result = {"ok", "details": {"nemesis": ..., "running": {node:
    bool}}}."""
    assert r.test is not None and r.history is not None
    active = sorted(r.tally.faults)
    for kind in active:
        r.record_nemesis("stop", "invoke", {"fault": kind, "heal": True})
        if kind != active[-1]:
            r.record_nemesis("stop", "info", {"fault": kind, "heal": True})
    res = await _nemesis_heal(r, timeout)
    if active:
        r.record_nemesis("stop", "info", {"fault": active[-1], "heal": True, "ok": bool(res.get("ok"))})
    running = await running_nodes(r.test)
    ok = bool(res.get("ok")) and all(v is True for v in running.values())
    r.heal_result = {"ok": ok, "details": {"nemesis": res.get("details"), "running": running}}
    (log.info if ok else log.warning)("heal: %s", r.heal_result)


async def _nemesis_heal(r: RunState, timeout: float) -> dict[str, Any]:
    """The nemesis's own heal result; a timeout or an exception is a failed heal, never raised."""
    assert r.test is not None
    try:
        async with asyncio.timeout(timeout):
            return await r.nemesis.heal(r.test)
    except TimeoutError:
        return {"ok": False, "details": f"heal did not finish within {timeout} s"}
    except Exception as e:  # noqa: BLE001 - recorded as a failed heal
        return {"ok": False, "details": f"heal raised {type(e).__name__}: {e}"}


async def running_nodes(test: TestContext) -> dict[str, Any]:
    """node -> whether its process runs (or the error asking it); {} for a DB without Process."""
    db = test.db
    if not isinstance(db, Process):
        return {}
    running: dict[str, Any] = {}
    for node in test.nodes:
        try:
            async with asyncio.timeout(10):
                running[node] = bool(await db.is_running(test, node))
        except Exception as e:  # noqa: BLE001
            running[node] = f"error: {type(e).__name__}: {e}"
    return running
