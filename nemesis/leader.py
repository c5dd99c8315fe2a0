"""Asking the DB for its leader on behalf of a nemesis ("isolate the leader", "kill the leader").

Only a DB with the :class:`~harness.protocols.Primaries` capability has one to ask: against any other, a fault
aimed at the leader is skipped and its completion says why (:func:`no_leader_reason`), never aimed at a guess.
"""

from __future__ import annotations

import asyncio

from harness.protocols import Primaries, RemoteError, TestContext

LEADER_TIMEOUT_S = 5.0
NO_LEADER = "no leader"  # the DB has leaders, but names none now
NO_LEADER_CAPABILITY = "no leader capability"  # the DB has no leader to name (no Primaries)


async def current_leader(test: TestContext, timeout_s: float = LEADER_TIMEOUT_S) -> str | None:
    """The leader as the DB reports it, or None when the DB has no Primaries, names none within `timeout_s` or
    cannot be asked."""
    db = test.db
    if not isinstance(db, Primaries):
        return None
    try:
        async with asyncio.timeout(timeout_s):
            return await db.leader(test)
    except (TimeoutError, OSError, RemoteError):
        return None


def no_leader_reason(test: TestContext) -> str:
    """The ``"skipped"`` value of a leader-aimed start that found no leader: NO_LEADER_CAPABILITY for a DB without
    Primaries, else NO_LEADER."""
    return NO_LEADER if isinstance(test.db, Primaries) else NO_LEADER_CAPABILITY
