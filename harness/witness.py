"""Records the nodes' own grey-box evidence (the Witness capability) as lab observations for the oracles.

Polled every status interval during the run and once more at its end (after the final reads, when every node runs
again, so nodes killed during the run report what they kept on disk), each node's ``witness`` answer becomes:

- a ``leader`` observation (process "harness", f "leader", value ``{"term", "node", "source": "node"}``) for each
  term the node says it led and that was not recorded before (harness.monitor.LeaderWitness dedups it with the
  status polls' own sightings): checker.election then sees every leadership, also one deposed between two polls;
- ONE ``chain`` observation per round, value ``{"final": bool, "nodes": {node: chain view}}``, where a node's
  view keeps only the checkpoints not recorded before with the same hash (its head is always kept), and a node
  with nothing new is left out (no event when no node has anything new): checker.logmatch judges it.

A node that does not answer is skipped this round (it is evidence that is missing, not a finding). The recorder
judges nothing: `harness analyze` re-checks from the history alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from checker.logmatch import CHAIN
from harness.monitor import LeaderWitness
from harness.protocols import TestContext, Witness

__all__ = ["CHAIN", "WitnessRecorder"]

ASK_TIMEOUT_S = 2.0


class WitnessRecorder:
    """See the module docstring. ``record(f, value)`` writes one observation; ``leaders`` is the run's
    LeaderWitness (shared so a (term, node) is recorded once, whoever saw it first)."""

    def __init__(self, test: TestContext, db: Witness, *, leaders: LeaderWitness,
                 record: Callable[[str, dict[str, Any]], None], interval: float) -> None:
        if interval <= 0:
            raise ValueError(f"witness interval must be > 0, got {interval}")
        self.test = test
        self.db = db
        self.leaders = leaders
        self.record = record
        self.interval = interval
        self._recorded: dict[str, dict[int, str]] = {}  # node -> index -> hash already recorded

    async def _ask(self, node: str) -> Mapping[str, Any] | None:
        try:
            async with asyncio.timeout(ASK_TIMEOUT_S):
                answer = await self.db.witness(self.test, node)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a node that does not answer gives no evidence this round
            return None
        return answer if isinstance(answer, Mapping) else None

    async def poll_once(self, *, final: bool = False) -> None:
        """Ask every node (concurrently) and record what is new (see the module docstring)."""
        nodes = self.test.nodes
        answers = await asyncio.gather(*(self._ask(n) for n in nodes))
        chains: dict[str, dict[str, Any]] = {}
        for node, answer in zip(nodes, answers, strict=True):
            if answer is None:
                continue
            for term in answer.get("leaderships") or ():
                if type(term) is int:
                    self.leaders.note(term, node, source="node")
            view = answer.get("chain")
            if isinstance(view, Mapping):
                fresh = self._fresh(node, view)
                if fresh is not None:
                    chains[node] = fresh
        if chains:
            self.record(CHAIN, {"final": final, "nodes": chains})

    def _fresh(self, node: str, view: Mapping[str, Any]) -> dict[str, Any] | None:
        """The view with only the checkpoints not yet recorded with this hash; None when nothing is new."""
        done = self._recorded.setdefault(node, {})
        points = [p for p in view.get("checkpoints") or () if isinstance(p, list) and len(p) == 3
                  and type(p[0]) is int and done.get(p[0]) != p[2]]
        head = view.get("index"), view.get("hash")
        if not points and (type(head[0]) is not int or done.get(head[0]) == head[1]):
            return None
        for index, _, digest in points:
            done[index] = digest
        if type(head[0]) is int and isinstance(head[1], str):
            done[head[0]] = head[1]
        return {"index": view.get("index"), "term": view.get("term"), "hash": view.get("hash"),
                "checkpoints": points}

    async def run(self) -> None:
        """Poll forever at the interval (cancel to stop). The sleep is the polling period, not a wait."""
        while True:
            await self.poll_once()
            await asyncio.sleep(self.interval)
