"""raftkv.sim: a deterministic simulator of a raftkv cluster (one process, virtual time, one seed).

The real Raft core (`raftkv.core`) and KV state machine (`raftkv.kv`) run on N simulated nodes with a simulated
network (`network`), disks that keep written and synced data apart (`disk`, `storage`), crashes and restarts,
tick drift and clients (`client`). Safety invariants are checked after every event (`invariants`, `history`).

- `Cluster`: the scenario API for tests (disconnect, crash, restart, `one`, `check_one_leader`, ...).
- `run_simulation(seed, nodes, steps)`: one randomized run (faults, then a liveness phase) -> `SimResult`.
- Command line: ``python -m raftkv.sim --seed S [--nodes N] [--steps K] [--trace]`` or ``--seeds A..B``.

No asyncio, threads, wall clock or module-level random here: every random choice comes from a child generator of
the seed (`rng`), so a seed replays its run exactly.
"""

from .client import ClientOptions, OpRecord, SimClient
from .cluster import Cluster, ClusterConfig, ScenarioFailure
from .disk import Disk, DiskFaults, TornRecord
from .invariants import Invariants, InvariantViolation
from .loop import EventLoop
from .network import LinkFaults, Network, NetworkStats
from .rng import child_rng, child_seed
from .simulation import DEFAULT_STEPS, SimResult, run_simulation

__all__ = [
    "DEFAULT_STEPS",
    "ClientOptions",
    "Cluster",
    "ClusterConfig",
    "Disk",
    "DiskFaults",
    "EventLoop",
    "InvariantViolation",
    "Invariants",
    "LinkFaults",
    "Network",
    "NetworkStats",
    "OpRecord",
    "ScenarioFailure",
    "SimClient",
    "SimResult",
    "TornRecord",
    "child_rng",
    "child_seed",
    "run_simulation",
]
