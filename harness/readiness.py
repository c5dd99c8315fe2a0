"""When a freshly started cluster may take clients: the DB's own :class:`~harness.protocols.Ready` check when it
offers one; else every node's process runs (:class:`~harness.protocols.Process`) and, when the DB reports its
:class:`~harness.protocols.ClusterStatus`, every node answers it; else at once (a DB with none of these started
itself in setup and says nothing more).

Also the raft-shaped check a DB may choose for its ``ready``: :func:`one_leader_named` (every node answers its
status and all name the same leader), which the raftkv adapter uses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from harness.protocols import ClusterStatus, Process, Ready, TestContext

CHECK_TIMEOUT_S = 2.0  # one readiness check; a check that hangs is "not ready yet"


def one_leader_named(statuses: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The leader every node names, when every node answered (no ``"error"``) and all name the same non-empty one;
    else None."""
    if not statuses or any("error" in st for st in statuses.values()):
        return None
    leaders = {st.get("leader") for st in statuses.values()}
    leader = leaders.pop() if len(leaders) == 1 else None
    return leader if isinstance(leader, str) and leader else None


async def check_ready(test: TestContext) -> bool:
    """One readiness check of ``test.db`` (see the module docstring); an exception or a check that takes longer
    than CHECK_TIMEOUT_S counts as not ready."""
    db = test.db
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            if isinstance(db, Ready):
                return bool(await db.ready(test))
            if isinstance(db, Process) and not all(await asyncio.gather(*(db.is_running(test, n)
                                                                           for n in test.nodes))):
                return False
            if isinstance(db, ClusterStatus):
                await asyncio.gather(*(db.status(test, n) for n in test.nodes))  # raises while one does not answer
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - not ready yet; the caller's deadline bounds the wait
        return False
    return True


async def wait_ready(test: TestContext, timeout: float, *, interval: float = 0.1) -> bool:
    """Check until ready or ``timeout`` seconds have passed (at least one check); True when ready. The sleep is
    the polling period: there is nothing to await but the DB's answer."""
    deadline = time.monotonic() + timeout
    while True:
        if await check_ready(test):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
