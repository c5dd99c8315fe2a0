"""Shared set-up of the simulator scenario tests (imported as ``simlab``): a cluster with the classic lab's timings.

The lab's tester assumes at most ~10 heartbeats per second and elections that settle within a few seconds, so the
scenario clusters tick every 10 ms with heartbeats every 10 ticks (100 ms) and election timeouts of 30-60 ticks
(300-600 ms). ``ELECTION`` is the lab's "election timeout" constant used for its sleeps (1 s).
"""

from __future__ import annotations

from typing import Any

from raftkv.sim import Cluster, ClusterConfig, DiskFaults, LinkFaults

ELECTION = 1_000_000  # us: the lab tester's RaftElectionTimeout

LAB_RAFT = (("election_tick", 30), ("heartbeat_tick", 10), ("pre_vote", True), ("check_quorum", True))


def lab_cluster(n: int, *, seed: int = 1, unreliable: bool = False, snapshot_entries: int = 0,
                raft: tuple[tuple[str, Any], ...] = (), **kw: Any) -> Cluster:
    """A started cluster of ``n`` nodes with the lab's timings (``raft`` entries override LAB_RAFT's)."""
    merged = dict(LAB_RAFT)
    merged.update(dict(raft))
    config = ClusterConfig(nodes=n, link=LinkFaults.unreliable() if unreliable else LinkFaults(),
                           raft=tuple(sorted(merged.items())), snapshot_entries=snapshot_entries,
                           disk=kw.pop("disk", DiskFaults()), **kw)
    return Cluster(config, seed=seed)
