"""Polls every node's view of the cluster (DB.status) into cluster.jsonl and keeps the latest leader.

Lines (docs/store.md): ``{"time": ns, "node": "n1", "role": ..., "term": ..., "leader": ..., "commit": ...,
"applied": ...}``, or ``{"time": ns, "node": "n1", "error": "..."}`` when the poll failed. ``time`` is the
controller's monotonic clock, the same as history.jsonl's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from harness.protocols import TestContext
from harness.store import JsonlWriter


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class ClusterMonitor:
    def __init__(self, test: TestContext, writer: JsonlWriter | None, *, interval: float = 0.5,
                 timeout: float = 2.0) -> None:
        if interval <= 0:
            raise ValueError(f"status interval must be > 0, got {interval}")
        self.test = test
        self.writer = writer
        self.interval = interval
        self.timeout = timeout
        self.last: dict[str, dict[str, Any]] = {}

    async def poll_once(self) -> dict[str, dict[str, Any]]:
        """Poll every node once (concurrently); record and return node -> status or {"error": ...}."""
        results = await asyncio.gather(*(self._poll(n) for n in self.test.nodes))
        self.last = dict(zip(self.test.nodes, results, strict=True))
        return self.last

    async def _poll(self, node: str) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.timeout):
                st = await self.test.db.status(self.test, node)
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

    def agreed(self) -> bool:
        """Every node answered and all name the same, non-empty leader (the cluster has quiesced)."""
        if not self.last or any("error" in st for st in self.last.values()):
            return False
        leaders = {st.get("leader") for st in self.last.values()}
        return len(leaders) == 1 and None not in leaders and "" not in leaders

    async def run(self) -> None:
        """Poll forever at the interval (cancel to stop). The sleep is the polling period, not a wait."""
        while True:
            await self.poll_once()
            await asyncio.sleep(self.interval)

    async def wait_agreed(self, timeout: float) -> bool:
        """Poll until :meth:`agreed` or the timeout; True when agreed."""
        deadline = time.monotonic() + timeout
        while True:
            await self.poll_once()
            if self.agreed():
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(0.1, self.interval))
