"""GET /debug/state: what a node has applied and a digest of it, for the lab's grey-box oracles (docs/server.md).

The answer: ``{"id", "term", "role", "commit", "applied", "last_index", "last_term", "digest", "leaderships",
"chain"}``:
- ``digest``: the hex sha256 of the state machine's canonical content at ``applied``
  (raftkv.kv.store.FrozenState.digest); replicas that applied the same log prefix must report the same digest
  (the convergence oracle). ``GET /debug/state?digest=0`` leaves it out (cheap enough to poll every half second
  whatever the size of the state).
- ``leaderships``: the terms this node became leader in, oldest first, across restarts (raftkv.server.leaderships;
  the newest 1000): the election-safety oracle sees leaderships no status poll caught.
- ``chain``: the commitment to the applied log prefix (raftkv.kv.chain: ``{"index", "term", "hash",
  "checkpoints"}``, or null when the store was restored from a snapshot older than the chain): the log-matching
  oracle compares replicas at common indexes, and each replica with itself over time.

Cost: the fields are taken in one synchronous step on the loop, with a shallow copy of the key table (a few ms at
10^5 keys); the digest (sort, encode, hash) runs on a worker thread so the node keeps ticking. A node asked again
before it applied anything new answers from the digest it computed last (same store object, same applied index).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raftkv.kv import KVStore

    from .node import Node


class StateView:
    """Builds /debug/state answers for one node, keeping the last digest (see the module docstring)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._cached: tuple[KVStore, int, str] | None = None  # (store, applied, digest)

    async def state(self, *, with_digest: bool = True) -> dict[str, Any]:
        node = self.node
        raft = node.raft
        assert raft is not None
        status = node.status()
        kv, applied = node.kv, node.kv.applied_index
        out: dict[str, Any] = {"id": status["id"], "term": status["term"], "role": status["role"],
                               "commit": status["commit"], "applied": applied, "last_index": raft.last_index,
                               "last_term": raft.last_term, "leaderships": list(node.leaderships.terms),
                               "chain": kv.chain}
        if not with_digest:
            return out
        cached = self._cached
        if cached is not None and cached[0] is kv and cached[1] == applied:
            out["digest"] = cached[2]
            return out
        frozen = kv.frozen()  # taken with the fields above, with no await in between: they describe one state
        digest = await asyncio.get_running_loop().run_in_executor(None, frozen.digest)
        self._cached = (kv, applied, digest)
        out["digest"] = digest
        return out
