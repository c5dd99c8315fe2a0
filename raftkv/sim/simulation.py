"""One randomized simulation run from one seed: a safety phase full of faults, then a liveness phase.

Phases (the run stops at the first violated invariant; every event's effects are checked as they happen):

1. **setup**: the seed's ``config`` generator picks the run's shape: network quality, PreVote and CheckQuorum on
   or off, lease reads (a quarter of the runs with CheckQuorum; then drift stays within the lease's clock
   assumption), how often nodes snapshot, tick drift; 2 to 6 clients start issuing Gets and versioned Puts on
   1 to 5 keys.
2. **safety** (``steps`` events): the ``nemesis`` generator injects faults at random intervals: symmetric
   partitions, one-way cuts, isolating the leader, crashes (also of every node at once, and of a node caught in
   the middle of the fsync of a vote or an acknowledgement, restarted within 50 ms) with restarts later, network quality changes, tick drift changes, leadership transfers,
   and heals; and, on a schedule of their own, process pauses (SIGSTOP-like freezes of 10-800 ms; not in lease
   runs, whose clock assumption a pause breaks) and vote traps (the next node asked for its vote in a term
   where it already voted for another candidate restarts on the spot, from its disk, before it answers: a vote
   must survive a restart) and leader traps (the next node elected leader is crashed as soon as it is elected,
   or as soon as it first commits: leaders killed before or while they bring the others up to date, the
   window where a new leader has committed only part of what it will replicate).
3. **liveness**: faults stop; a random majority is healed (running, connected, reliable links), the rest stays
   as it is. Within a bound (``liveness_timeout_us``) the majority must elect a leader and commit a new entry,
   the clients' last operations must end, and the majority must apply everything that leader committed.
4. **final checks**: every acknowledged write is in the leader's log, and the client history agrees with what
   the state machine applied (`raftkv.sim.history`).

``failpoints`` (raftkv/failpoints.py) plant bugs of the core, kv and storage layers in every node. An exception
that escapes a node or the simulator itself is a finding too (``sim-crash``, with where it was raised): it ends
that run with a violation and never the caller's sweep.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from raftkv.core import Message, MessageType, Ready, Role
from raftkv.kv import Command, Op, encode_command

from .client import ClientOptions, OpRecord
from .cluster import Cluster, ClusterConfig
from .disk import DiskFaults
from .invariants import InvariantViolation
from .network import LinkFaults
from .node import SimNode
from .rng import child_rng

__all__ = ["DEFAULT_STEPS", "SimResult", "run_simulation"]

DEFAULT_STEPS = 20_000


@dataclass
class SimResult:
    """What one run did. ``violation`` is the first violated invariant (None when all held)."""

    seed: int
    nodes: int
    steps: int
    violation: InvariantViolation | None = None
    broken_sync: bool = False
    failpoints: frozenset[str] = frozenset()
    deletes: float = 0.0
    sessions: bool = True
    phase: str = "setup"
    events: int = 0
    virtual_us: int = 0
    settings: str = ""
    stats: dict[str, int] = field(default_factory=dict)
    stats_extra: dict[str, int] = field(default_factory=dict)
    history: list[OpRecord] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.violation is None

    def reproduce(self) -> str:
        extra = " --broken-sync" if self.broken_sync else ""
        if self.failpoints:
            extra += f" --failpoint {','.join(sorted(self.failpoints))}"
        extra += (f" --deletes {self.deletes}" if self.deletes else "") + ("" if self.sessions else " --no-sessions")
        return f"python -m raftkv.sim --seed {self.seed} --nodes {self.nodes} --steps {self.steps}{extra}"

    def line(self) -> str:
        """A short line for sweeps: the verdict and the main figures (the full `summary` for a violation)."""
        if self.violation is not None:
            return self.summary()
        s = self.stats
        return (f"seed {self.seed}: ok  {self.events} events, {self.virtual_us / 1e6:5.1f}s virtual, "
                f"{s.get('leaders', 0):2d} leaders, {s.get('committed', 0):4d} committed, {s.get('crashes', 0):2d} "
                f"crashes, ops {s.get('ops_ok', 0)} ok/{s.get('ops_fail', 0)} fail/{s.get('ops_info', 0)} info")

    def summary(self) -> str:
        """One line: the verdict and the main figures."""
        s = self.stats
        figures = (f"{self.nodes} nodes, {self.events} events, {self.virtual_us / 1e6:.2f}s virtual, "
                   f"{s.get('leaders', 0)} leaders, {s.get('committed', 0)} committed, "
                   f"{s.get('crashes', 0)} crashes, {s.get('faults', 0)} faults, client ops "
                   f"{s.get('ops_ok', 0)} ok / {s.get('ops_fail', 0)} fail / {s.get('ops_info', 0)} info")
        if self.violation is None:
            return f"seed {self.seed}: ok ({figures}; {self.settings})"
        v = self.violation
        return (f"seed {self.seed}: VIOLATION {v.invariant} in the {self.phase} phase at "
                f"{v.time / 1e6:.6f}s: {v.detail} ({figures}; {self.settings})")


_LINKS = (
    ("reliable", LinkFaults()),
    ("lossy", LinkFaults(min_delay=500, max_delay=5_000, loss=0.05, duplicate=0.02, reorder=0.05)),
    ("unreliable", LinkFaults.unreliable()),
)


_PROMISES = frozenset({MessageType.VOTE_RESP, MessageType.APPEND_RESP, MessageType.SNAPSHOT_RESP})


class _Nemesis:
    """The fault schedule of the safety phase, drawn from the seed's ``nemesis`` generator."""

    def __init__(self, cluster: Cluster, seed: int) -> None:
        self.c = cluster
        self.seed = seed
        self.rng = child_rng(seed, "nemesis")
        self.pause_rng = child_rng(seed, "nemesis/pause")
        self.vote_rng = child_rng(seed, "nemesis/vote-trap")
        self.leader_rng = child_rng(seed, "nemesis/leader-trap")
        self.leader_traps = 0
        self._trap_on_commit = False
        self._traps_left = 0
        self.pauses = 0
        self.vote_traps = 0
        self.trap_crashes = 0
        self.active = True
        self.faults = 0
        self.crashes = 0
        self.max_drift = 0.2

    def start(self, pauses: bool) -> None:
        self.c.loop.after(self._gap(), self._act, None)
        # Vote traps have their own generator and schedule too (added later: the other draws keep their meaning).
        self.c.loop.after(self.vote_rng.randint(100_000, 2_000_000), self._arm_vote_trap, None)
        self.c.loop.after(self.leader_rng.randint(100_000, 2_000_000), self._arm_leader_trap, None)
        if pauses:
            # Pauses have their own generator and schedule, so they do not shift the other faults' draws.
            self.pause_rng = child_rng(self.seed, "nemesis/pause")
            self.c.loop.after(self.pause_rng.randint(100_000, 2_000_000), self._pause, None)

    def _pause(self, _: object) -> None:
        if not self.active:
            return
        rng = self.pause_rng
        node = self.c.node(rng.randint(1, len(self.c.nodes)))
        hold = rng.randint(10_000, 800_000)
        if node.alive and not node.paused:
            self.pauses += 1
            self._trace(f"pause n{node.id} for {hold}us")
            node.pause()
            self.c.loop.after(hold, self._resume, (node.id, node.incarnation))
        self.c.loop.after(rng.randint(100_000, 2_000_000), self._pause, None)

    def _arm_vote_trap(self, _: object) -> None:
        if not self.active:
            return
        for node in self.c.nodes:
            node.vote_hook = self._vote_trap
        self.c.loop.after(self.vote_rng.randint(100_000, 2_000_000), self._arm_vote_trap, None)

    def _arm_leader_trap(self, _: object) -> None:
        if not self.active:
            return
        self._trap_on_commit = self.leader_rng.random() < 0.5
        self._traps_left = self.leader_rng.randint(1, 6)  # a burst of leader kills in a row: election churn
        for node in self.c.nodes:
            node.leader_hook = self._leader_trap
        self.c.loop.after(self.leader_rng.randint(100_000, 2_000_000), self._arm_leader_trap, None)

    def _leader_trap(self, node: SimNode, term: int, committed: bool) -> None:
        if not self.active or committed != self._trap_on_commit:
            return
        self._traps_left -= 1
        self._trap_on_commit = self.leader_rng.random() < 0.5
        if self._traps_left <= 0:
            for other in self.c.nodes:
                other.leader_hook = None
        self.leader_traps += 1
        what = f"as it commits up to {node.commit}" if committed else "as it is elected"
        self._trace(f"leader trap: crash n{node.id}, leader of term {term}, {what}")
        self._crash(node.id, soon=self.leader_rng.random() < 0.5)

    def _vote_trap(self, node: SimNode, request: Message) -> None:
        raft = node.raft
        if (not self.active or raft is None or request.term != raft.term or raft.vote is None
                or raft.vote == request.src):
            return  # the answer does not depend on a vote already given in this term
        for other in self.c.nodes:
            other.vote_hook = None
        self.vote_traps += 1
        self._trace(f"vote trap: restart n{node.id} (voted {raft.vote} in term {raft.term}) before it answers "
                    f"{request.src}")
        node.crash()
        node.start()

    def _resume(self, item: tuple[int, int]) -> None:
        i, incarnation = item
        node = self.c.node(i)
        if node.incarnation == incarnation and node.paused:
            self._trace(f"resume n{i}")
            node.resume()

    def _gap(self) -> int:
        return self.rng.randint(20_000, 400_000)

    def _trace(self, text: str) -> None:
        if self.c.tracer.on:
            self.c.tracer(f"nemesis {text}")

    def _act(self, _: object) -> None:
        if not self.active:
            return
        c, rng = self.c, self.rng
        ids = list(c.ids)
        action = rng.choices(
            ("partition", "one-way", "isolate-leader", "heal", "crash", "crash-syncing", "crash-all",
             "network", "drift", "transfer"),
            weights=(12, 6, 8, 14, 10, 6, 1, 5, 3, 3),
        )[0]
        self.faults += 1
        if action == "partition":
            rng.shuffle(ids)
            k = rng.randint(1, len(ids) - 1) if len(ids) > 1 else 1
            c.net.partition([ids[:k], ids[k:]])
            self._trace(f"partition {sorted(ids[:k])} | {sorted(ids[k:])}")
        elif action == "one-way":
            for _ in range(rng.randint(1, 3)):
                a, b = rng.choice(ids), rng.choice(ids)
                c.net.block(a, b)
            self._trace(f"cuts now {c.net.cuts()}")
        elif action == "isolate-leader":
            leader = c.leader()
            if leader is not None:
                c.net.isolate(leader.id, [i for i in ids if i != leader.id])
                self._trace(f"isolate leader n{leader.id}")
        elif action == "heal":
            c.net.heal()
            self._trace("heal")
        elif action == "crash":
            alive = [n for n in c.nodes if n.alive]
            if alive:
                self._crash(rng.choice(alive).id)
        elif action == "crash-syncing":
            # Arm a trap: the next node that starts an fsync of a Ready holding promises (a vote, an
            # acknowledgement) is crashed before the fsync completes, and restarted soon, while its term is still
            # current. A driver that sent the promises early would now have broken them.
            self._trace("armed: crash the next node that syncs a promise")
            for node in c.nodes:
                node.sync_hook = self._sync_trap
        elif action == "crash-all":
            for node in c.nodes:
                if node.alive:
                    self._crash(node.id)
        elif action == "network":
            name, faults = rng.choice(_LINKS)
            c.net.faults = faults
            self._trace(f"network {name}")
        elif action == "drift":
            node = rng.choice(c.nodes)
            node.drift = rng.uniform(-0.2, 0.2) * self.max_drift / 0.2
            self._trace(f"drift n{node.id} {node.drift:+.3f}")
        elif action == "transfer":
            leader = c.leader()
            if leader is not None:
                to = rng.choice([i for i in ids if i != leader.id] or ids)
                self._trace(f"transfer leadership n{leader.id} -> n{to}")
                leader.transfer_leadership(to)
        c.loop.after(self._gap(), self._act, None)

    def _crash(self, i: int, soon: bool = False) -> None:
        c = self.c
        self.crashes += 1
        self._trace(f"crash n{i}")
        c.crash(i)
        downtime = self.rng.randint(1_000, 50_000) if soon else self.rng.randint(10_000, 1_500_000)
        c.loop.after(downtime, self._restart, (i, c.node(i).incarnation))

    def _sync_trap(self, node: SimNode, ready: Ready, delay: int) -> None:
        # A Ready "holds a promise" when it answers a vote or an append: by the contract those answers are in
        # messages_after_persist, but the trap looks at both lists, so it also springs on a core or driver that
        # put them in the wrong one.
        if not self.active or not any(m.type in _PROMISES for m in ready.messages_after_persist + ready.messages):
            return
        for other in self.c.nodes:
            other.sync_hook = None
        at = self.rng.randint(0, max(0, delay - 1))
        self.c.loop.after(at, self._crash_in_sync, (node.id, node.incarnation))

    def _crash_in_sync(self, item: tuple[int, int]) -> None:
        i, incarnation = item
        if self.active and self.c.node(i).incarnation == incarnation and self.c.node(i).alive:
            self.trap_crashes += 1
            self._crash(i, soon=True)

    def _restart(self, item: tuple[int, int]) -> None:
        i, incarnation = item
        node = self.c.node(i)
        if node.alive or node.incarnation != incarnation:
            return  # already restarted by someone else (the liveness phase)
        self._trace(f"restart n{i}")
        node.start()


def run_simulation(seed: int, nodes: int = 5, steps: int = DEFAULT_STEPS, *, trace: bool = False,
                   trace_sink: Callable[[str], None] | None = None, broken_sync: bool = False,
                   failpoints: frozenset[str] = frozenset(), deletes: float = 0.0,
                   sessions: bool = True) -> SimResult:
    """Run one simulation (see the module docstring). Never raises for a violated invariant or a crash inside the
    run: it is in the result. ``trace_sink`` receives each trace line as it is made (with ``trace``); otherwise
    lines are dropped. ``broken_sync`` runs deliberately broken nodes whose fsync does nothing (to test the checks
    themselves); ``failpoints`` plants those bugs (`ValueError` for a server failpoint: not simulated).
    ``deletes``: the clients' share of Deletes (ClientOptions.delete_ratio; 0 replays every seed as before);
    ``sessions=False``: clients without client sessions, whose retries can apply twice across a delete."""
    if nodes < 1:
        raise ValueError(f"--nodes must be >= 1, got {nodes}")
    if steps < 0:
        raise ValueError(f"--steps must be >= 0, got {steps}")
    result = SimResult(seed=seed, nodes=nodes, steps=steps, broken_sync=broken_sync, failpoints=failpoints,
                       deletes=deletes, sessions=sessions)
    client_options = ClientOptions(delete_ratio=deletes, sessions=sessions)  # checks the values first
    rng = child_rng(seed, "config")
    link_name, link = rng.choice(_LINKS)
    pre_vote = rng.random() < 0.7
    check_quorum = rng.random() < 0.7
    snapshot_entries = rng.choice((0, 10, 30, 100))
    drift = rng.choice((0.0, 0.05, 0.2))
    # Later additions draw from their own generators, so the draws above keep their meaning for every seed.
    lease_reads = check_quorum and child_rng(seed, "config/lease").random() < 0.25
    # Small APPEND batches in some runs: a leader then brings a follower up to date over several messages, and
    # acknowledgements cover part of what it will replicate (probing, pipelining and commit rules get exercised).
    batch = child_rng(seed, "config/batch")
    max_entries = 32 if batch.random() < 0.6 else batch.choice((1, 2, 4))
    max_drift = 0.2
    if lease_reads:
        # The lease's clock assumption (RaftConfig.lease_reads): tick rates differ by a bounded ratio. With
        # election_tick 10 and a margin of 2 ticks, drifts within +-5% keep every follower's timeout longer.
        drift, max_drift = min(drift, 0.05), 0.05
    shape = child_rng(seed, "config/clients")
    n_clients = shape.randint(2, 6)
    keys = ["a", "b", "c", "d", "e"][: shape.randint(1, 5)]
    result.settings = (f"{n_clients} clients on {len(keys)} keys, {link_name} network, pre_vote={pre_vote}, "
                       f"check_quorum={check_quorum}, lease_reads={lease_reads}, "
                       f"snapshot every {snapshot_entries or 'never'}, drift {drift}, "
                       f"{max_entries} entries per APPEND at most")
    config = ClusterConfig(
        nodes=nodes, link=link, disk=DiskFaults(), drift=drift, snapshot_entries=snapshot_entries,
        broken_sync=broken_sync, failpoints=failpoints,
        raft=(("election_tick", 10), ("heartbeat_tick", 1), ("pre_vote", pre_vote),
              ("check_quorum", check_quorum), ("lease_reads", lease_reads), ("lease_margin_ticks", 2),
              ("max_inflight_msgs", 16), ("max_entries_per_msg", max_entries),
              ("snapshot_chunk_bytes", 512)),
    )
    sink = trace_sink if trace_sink is not None else (lambda line: None)
    cluster = Cluster(config, seed=seed, trace=trace, trace_sink=sink, start=False)
    nemesis = _Nemesis(cluster, seed)
    nemesis.max_drift = max_drift
    try:
        if trace:
            cluster.tracer(f"sim seed {seed}: {result.settings}")
        for node in cluster.nodes:
            node.start()
        clients = cluster.add_clients(n_clients, keys, client_options)
        for client in clients:
            client.start()
        nemesis.start(pauses=not lease_reads)
        result.phase = "safety"
        loop = cluster.loop
        while loop.events_run < steps and loop.step():
            pass
        result.phase = "liveness"
        safety_events = loop.events_run
        _liveness(cluster, nemesis, seed)
        result.stats_extra["liveness_events"] = loop.events_run - safety_events
        result.phase = "final"
        cluster.check_acknowledged()
        cluster.check_history()
    except InvariantViolation as violation:
        result.violation = violation
    except Exception as exc:  # a node or the simulator crashed: a finding of this seed, never the sweep's end
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        result.violation = InvariantViolation(
            "sim-crash", f"{type(exc).__name__}: {exc} (raised at {frame.filename.rsplit('/', 1)[-1]}:"
            f"{frame.lineno} in {frame.name})", cluster.loop.now)
    result.events = cluster.loop.events_run
    result.virtual_us = cluster.loop.now
    result.stats = _stats(cluster, nemesis) | result.stats_extra
    result.history = cluster.history
    return result


def _liveness(cluster: Cluster, nemesis: _Nemesis, seed: int) -> None:
    """Heal a random majority and require that it elects a leader and commits, within a bound."""
    nemesis.active = False
    for node in cluster.nodes:
        node.sync_hook = None
        node.vote_hook = None
        node.leader_hook = None
    rng = child_rng(seed, "liveness")
    ids = list(cluster.ids)
    rng.shuffle(ids)
    majority = sorted(ids[: len(ids) // 2 + 1])
    minority = sorted(ids[len(ids) // 2 + 1 :])
    cluster.net.faults = LinkFaults()
    cluster.net.heal()
    for i in minority:  # the rest stays as it is, but may not help: cut it off
        cluster.net.isolate(i, majority)
    for node in cluster.nodes:
        node.resume()
    for i in majority:
        node = cluster.node(i)
        if not node.alive:
            node.start()
        node.drift = 0.0
    if cluster.tracer.on:
        cluster.tracer(f"liveness: healed majority {majority}, minority {minority} cut off")
    for client in cluster.clients:
        client.stop()
    bound = 100 * cluster.config.tick_us * 10  # 100 election timeouts' worth of ticks is generous
    # A healthy cluster needs a few thousand events per virtual second; a message storm (a loop of messages
    # that breeds more messages) would make the bound take forever in real time, so events are bounded too.
    budget = cluster.loop.events_run + 100_000
    probe = encode_command(Command(request_id="liveness", op=Op.GET, key="liveness"))
    state = {"index": 0, "leader": 0}

    def committed() -> bool:
        _check_budget()
        leaders = [cluster.node(i) for i in majority
                   if cluster.node(i).alive and cluster.node(i).role is Role.LEADER]
        if not leaders:
            return False
        leader = max(leaders, key=lambda n: n.term)
        index = state["index"]
        if index and state["leader"] == leader.id and cluster.applied_data.get(index) == probe \
                and leader.applied >= index:
            return True
        if not index or state["leader"] != leader.id or (index in cluster.applied_data
                                                         and cluster.applied_data[index] != probe):
            got = leader.propose(probe)
            if got is not None:
                state["index"], state["leader"] = got, leader.id
        return False

    def _check_budget() -> None:
        if cluster.loop.events_run > budget:
            raise InvariantViolation("liveness", "message storm: over 100,000 events in the liveness phase "
                                     f"(healthy runs need ~1,000; {cluster.describe()})",
                                     cluster.now)

    if not cluster.run_until(committed, bound):
        raise InvariantViolation("liveness", f"the healed majority {majority} did not elect a leader and commit "
                                 f"within {bound / 1e6:.1f}s ({cluster.describe()})", cluster.now)
    leader = cluster.node(state["leader"])
    target = leader.commit
    def settled() -> bool:
        _check_budget()
        return cluster.clients_idle() and all(cluster.node(i).applied >= target for i in majority)

    if not cluster.run_until(settled, bound):
        raise InvariantViolation("liveness", f"the majority {majority} did not apply up to {target} and finish "
                                 f"the clients' operations within {bound / 1e6:.1f}s ({cluster.describe()})",
                                 cluster.now)


def _stats(cluster: Cluster, nemesis: _Nemesis) -> dict[str, int]:
    ops = cluster.history
    return {
        "leaders": len(cluster.invariants.leaders),
        "committed": cluster.invariants.max_committed,
        "crashes": nemesis.crashes,
        "pauses": nemesis.pauses,
        "faults": nemesis.faults,
        "ops_ok": sum(1 for o in ops if o.type == "ok"),
        "ops_fail": sum(1 for o in ops if o.type == "fail"),
        "ops_info": sum(1 for o in ops if o.type == "info"),
        "messages": cluster.net.stats.total_sent(),
        "snapshot_messages": cluster.net.stats.sent.get("SNAPSHOT", 0),
        "trap_crashes": nemesis.trap_crashes,
        "vote_traps": nemesis.vote_traps,
        "leader_traps": nemesis.leader_traps,
        "protocol_errors": sum(n.protocol_errors for n in cluster.nodes),
        "compactions": sum(n.compactions for n in cluster.nodes),
        "torn_writes": sum(n.disk.torn_writes for n in cluster.nodes),
    }
