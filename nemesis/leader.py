"""Asking the DB for its leader on behalf of a nemesis ("isolate the leader", "kill the leader")."""

from __future__ import annotations

import asyncio

from harness.protocols import RemoteError, TestContext

LEADER_TIMEOUT_S = 5.0


async def current_leader(test: TestContext, timeout_s: float = LEADER_TIMEOUT_S) -> str | None:
    """The leader as the DB reports it, or None when it names none within `timeout_s` or cannot be asked (a
    fault aimed at the leader is then skipped, never aimed at a guess)."""
    try:
        async with asyncio.timeout(timeout_s):
            return await test.db.leader(test)
    except (TimeoutError, OSError, RemoteError):
        return None
