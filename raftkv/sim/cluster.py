"""A simulated cluster: N nodes, the network between them, clients, the invariant checks, one seed.

`Cluster` is the scenario API the tests use (after the classic Raft lab's tester: disconnect and connect nodes,
crash and restart them, agree on one value, count committed copies, find the one leader) and the base of the
randomized `Simulation`. Everything runs on one `EventLoop`; every random choice comes from a child generator of
the seed (`raftkv.sim.rng`), so a cluster built with the same arguments does the same thing, event for event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from raftkv.core import Role
from raftkv.kv import Result

from .client import ClientOptions, OpRecord, SimClient
from .disk import DiskFaults
from .history import AppliedLog, check_history
from .invariants import Invariants, InvariantViolation
from .loop import EventLoop
from .network import LinkFaults, Network
from .node import NodeOptions, SimNode
from .rng import child_rng
from .trace import Tracer

__all__ = ["Cluster", "ClusterConfig", "ScenarioFailure"]

CLIENT_BASE = 1000  # client endpoints are CLIENT_BASE + 1, + 2, ...


class ScenarioFailure(AssertionError):
    """A scenario's expectation did not come true in time (no leader elected, a value not committed...)."""


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """Everything that shapes a cluster besides the seed.

    - ``nodes``: cluster size (>= 1).
    - ``link``: network faults; ``disk``: crash behaviour of the disks.
    - ``raft``: extra `RaftConfig` fields (election_tick, pre_vote, check_quorum, ...).
    - ``tick_us``: the nominal tick period; ``drift``: each node's tick period is off by a factor drawn in
      [1 - drift, 1 + drift] (0 <= drift < 1).
    - ``snapshot_entries``: a node snapshots and compacts when its log holds more entries (0: never).
    - ``sync_min_us`` / ``sync_max_us``: how long one fsync takes.
    - ``broken_sync``: a deliberately broken node driver whose fsync does nothing (only for testing that the
      checks catch lost durability).
    - ``failpoints``: planted bugs (raftkv/failpoints.py) of the core, kv and storage layers, in every node.
    """

    nodes: int = 5
    link: LinkFaults = LinkFaults()
    disk: DiskFaults = DiskFaults()
    raft: tuple[tuple[str, Any], ...] = ()
    tick_us: int = 10_000
    drift: float = 0.0
    snapshot_entries: int = 0
    sync_min_us: int = 100
    sync_max_us: int = 1_000
    broken_sync: bool = False
    failpoints: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError(f"a cluster needs at least one node, got {self.nodes}")
        if not 0.0 <= self.drift < 1.0:
            raise ValueError(f"drift must be in [0, 1), got {self.drift}")


class Cluster:
    """N simulated nodes on one virtual clock. Node ids are 1..N (Raft names "n1".."nN")."""

    def __init__(self, config: ClusterConfig | None = None, *, seed: int = 0, trace: bool = False,
                 trace_sink: Callable[[str], None] | None = None, start: bool = True, **overrides: Any) -> None:
        if config is None:
            config = ClusterConfig(**overrides)
        elif overrides:
            raise TypeError("pass either a ClusterConfig or keyword overrides, not both")
        self.config = config
        self.seed = seed
        self.loop = EventLoop()
        loop = self.loop
        self.tracer = Tracer(lambda: loop.now, on=trace, sink=trace_sink)
        self.invariants = Invariants(lambda: loop.now)
        self.net = Network(loop, child_rng(seed, "network"), self._deliver, config.link)
        self.applied = AppliedLog()
        self.applied_data: dict[int, bytes] = {}
        self.history: list[OpRecord] = []
        self.clients: list[SimClient] = []
        names = tuple(f"n{i}" for i in range(1, config.nodes + 1))
        self.names = names
        options = NodeOptions(tick_us=config.tick_us, raft=dict(config.raft),
                              snapshot_entries=config.snapshot_entries, sync_min_us=config.sync_min_us,
                              sync_max_us=config.sync_max_us, broken_sync=config.broken_sync,
                              failpoints=config.failpoints)
        drift_rng = child_rng(seed, "drift")
        self.nodes: list[SimNode] = []
        for i in range(1, config.nodes + 1):
            node = SimNode(node_id=i, names=names, seed=seed, loop=loop, net=self.net, invariants=self.invariants,
                           tracer=self.tracer, options=options, on_apply=self._on_apply)
            node.disk.faults = config.disk
            node.drift = drift_rng.uniform(-config.drift, config.drift) if config.drift else 0.0
            self.nodes.append(node)
        self.max_applied = [0] * (config.nodes + 1)
        self._disconnected: set[int] = set()
        if start:
            for node in self.nodes:
                node.start()

    # --- plumbing ---------------------------------------------------------------------------------------------
    @property
    def now(self) -> int:
        return self.loop.now

    @property
    def ids(self) -> range:
        return range(1, len(self.nodes) + 1)

    def node(self, i: int) -> SimNode:
        return self.nodes[i - 1]

    def _deliver(self, src: int, dst: int, payload: Any) -> None:
        if dst <= len(self.nodes):
            self.nodes[dst - 1].deliver(src, payload)
        else:
            self.clients[dst - CLIENT_BASE - 1].on_reply(payload)

    def _on_apply(self, node: int, index: int, data: bytes, result: Result | None) -> None:
        self.applied.record(node, index, data, result)
        if index not in self.applied_data:
            self.applied_data[index] = data
        if index > self.max_applied[node]:
            self.max_applied[node] = index

    # --- running ----------------------------------------------------------------------------------------------
    def run_for(self, us: int) -> None:
        """Let ``us`` virtual microseconds pass."""
        self.loop.run_until(self.loop.now + us)

    def run_until(self, predicate: Callable[[], bool], timeout_us: int, poll_us: int = 5_000) -> bool:
        """Run until ``predicate()`` holds (checked every ``poll_us``) or ``timeout_us`` passed; whether it held."""
        deadline = self.loop.now + timeout_us
        while True:
            if predicate():
                return True
            if self.loop.now >= deadline:
                return False
            self.loop.run_until(min(deadline, self.loop.now + poll_us))

    # --- faults -----------------------------------------------------------------------------------------------
    def connected(self, i: int) -> bool:
        return i not in self._disconnected

    def disconnect(self, i: int) -> None:
        """Cut node i from every other node, both ways (clients still reach it)."""
        self._disconnected.add(i)
        self.net.isolate(i, [j for j in self.ids if j != i])
        if self.tracer.on:
            self.tracer(f"nemesis disconnect n{i}")

    def connect(self, i: int) -> None:
        """Undo `disconnect` for node i (links to nodes that are themselves disconnected stay cut)."""
        self._disconnected.discard(i)
        self.net.connect(i, [j for j in self.ids if j != i and j not in self._disconnected])
        if self.tracer.on:
            self.tracer(f"nemesis connect n{i}")

    def crash(self, i: int) -> None:
        self.node(i).crash()

    def restart(self, i: int) -> None:
        """Crash node i if it runs, then boot it from its disk."""
        node = self.node(i)
        node.crash()
        node.start()

    # --- observations -----------------------------------------------------------------------------------------
    def leaders(self, only_connected: bool = True) -> list[SimNode]:
        """Running nodes that consider themselves leader (of the connected ones, by default)."""
        return [n for n in self.nodes if n.alive and n.role is Role.LEADER
                and (not only_connected or self.connected(n.id))]

    def leader(self) -> SimNode | None:
        """The connected leader of the highest term, if any."""
        leaders = self.leaders()
        return max(leaders, key=lambda n: (n.term, n.id)) if leaders else None

    def check_one_leader(self, timeout_us: int = 5_000_000) -> int:
        """Wait until exactly one connected node leads the highest term seen; return its id."""
        def one() -> bool:
            leaders = self.leaders()
            if not leaders:
                return False
            top = max(n.term for n in leaders)
            return sum(1 for n in leaders if n.term == top) == 1
        if not self.run_until(one, timeout_us):
            raise ScenarioFailure(f"no leader elected within {timeout_us}us ({self.describe()})")
        leader = self.leader()
        assert leader is not None
        return leader.id

    def check_no_leader(self) -> None:
        leaders = self.leaders()
        if leaders:
            raise ScenarioFailure(f"expected no leader among connected nodes, found "
                                  f"{', '.join(n.name for n in leaders)} ({self.describe()})")

    def terms(self) -> list[int]:
        """The terms of the connected running nodes."""
        return [n.term if n.raft is None else n.raft.term for n in self.nodes if n.alive and self.connected(n.id)]

    def n_committed(self, index: int) -> tuple[int, bytes | None]:
        """How many nodes have applied ``index`` (at any time, crashes included) and the data applied there."""
        count = sum(1 for i in self.ids if self.max_applied[i] >= index)
        return count, self.applied_data.get(index)

    def wait_committed(self, index: int, n: int, timeout_us: int = 5_000_000) -> bytes | None:
        """Wait until at least ``n`` nodes applied ``index``; return the data there (ScenarioFailure on timeout)."""
        if not self.run_until(lambda: self.n_committed(index)[0] >= n, timeout_us):
            raise ScenarioFailure(f"index {index} applied on {self.n_committed(index)[0]} nodes, wanted {n}")
        return self.applied_data.get(index)

    def one(self, data: bytes, expected: int, retry: bool = True, timeout_us: int = 10_000_000) -> int:
        """Get ``data`` committed on at least ``expected`` nodes; return its index (the lab tester's `one`).

        Proposes at whichever running, connected node accepts it as leader, then waits up to 2 s for the copies;
        with ``retry`` it proposes again (possibly elsewhere) when the entry did not make it."""
        deadline = self.loop.now + timeout_us
        start = 0
        while self.loop.now < deadline:
            index = None
            for k in range(len(self.nodes)):
                node = self.nodes[(start + k) % len(self.nodes)]
                if node.alive and self.connected(node.id) and node.role is Role.LEADER:
                    index = node.propose(data)
                    if index is not None:
                        start = (start + k + 1) % len(self.nodes)
                        break
            if index is not None:
                until = min(deadline, self.loop.now + 2_000_000)
                def settled(i: int = index) -> bool:
                    return self.n_committed(i)[0] >= expected or (i in self.applied_data
                                                                  and self.applied_data[i] != data)
                got = self.run_until(settled, until - self.loop.now)
                count, at = self.n_committed(index)
                if got and count >= expected and at == data:
                    return index
                if not retry:
                    raise ScenarioFailure(f"one({data!r}) failed to reach agreement: index {index} applied on "
                                          f"{count} nodes, wanted {expected}")
            else:
                self.run_for(50_000)
        raise ScenarioFailure(f"one({data!r}) failed to reach agreement within {timeout_us}us ({self.describe()})")

    def describe(self) -> str:
        """A one-line state summary: each node's liveness, role, term, commit and applied index."""
        parts = []
        for n in self.nodes:
            if not n.alive:
                parts.append(f"{n.name}:down")
                continue
            mark = "L" if n.role is Role.LEADER else n.role.value[0]
            cut = "" if self.connected(n.id) else "/cut"
            parts.append(f"{n.name}:{mark} t{n.term} c{n.commit} a{n.applied}{cut}")
        return " ".join(parts)

    # --- clients ----------------------------------------------------------------------------------------------
    def add_clients(self, count: int, keys: list[str], options: ClientOptions | None = None) -> list[SimClient]:
        """Create ``count`` clients over ``keys`` (not started)."""
        made = []
        for _ in range(count):
            cid = CLIENT_BASE + len(self.clients) + 1
            client = SimClient(client_id=cid, rng=child_rng(self.seed, f"client/{cid}"), loop=self.loop,
                               net=self.net, nodes=list(self.ids), keys=keys, tracer=self.tracer,
                               history=self.history, options=options or ClientOptions())
            self.clients.append(client)
            made.append(client)
        return made

    def clients_idle(self) -> bool:
        return all(c.idle for c in self.clients)

    def check_history(self) -> None:
        """The client-visible checks of `raftkv.sim.history` on everything so far."""
        try:
            check_history(self.history, self.applied)
        except InvariantViolation as violation:
            violation.time = self.now
            raise

    def check_acknowledged(self) -> None:
        """Every acknowledged write is in the leader's log, and in the log of each running node whose commit
        index reaches it (or under their snapshots)."""
        leader = self.leader()
        for node in self.nodes:
            if node.alive:
                self.invariants.check_acknowledged_in(node.id, upto=None if node is leader else node.commit)

