"""A tiny in-memory cluster of Raft cores for core-level tests (the full simulator lives in raftkv.sim).

Each node has a durable store (hard state, snapshot, log) that its Ready batches are written to, and an applied
list as its state machine. Messages go into one FIFO queue; `cut`/`isolate` drop them. Everything is
deterministic from the seed.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack

from raftkv.core import (
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    Raft,
    RaftConfig,
    ReadState,
    Role,
    Snapshot,
)


def encode_state(applied: list[tuple[int, bytes]]) -> bytes:
    return msgpack.packb([[i, d] for i, d in applied])


def decode_state(data: bytes) -> list[tuple[int, bytes]]:
    """The test application's snapshot format. Data that is not one (a fuzzed peer can send any bytes, and the core
    cannot judge an application's snapshot) restores as an empty state, as a real application would reject it."""
    try:
        return [(i, d) for i, d in msgpack.unpackb(data)]
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return []


@dataclass
class Durable:
    hard_state: HardState | None = None
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)


@dataclass
class Node:
    raft: Raft
    durable: Durable
    applied: list[tuple[int, bytes]] = field(default_factory=list)  # the state machine: (index, data)
    applied_index: int = 0
    read_states: list[ReadState] = field(default_factory=list)
    snapshots_restored: int = 0


class Cluster:
    def __init__(self, n: int = 3, *, seed: int = 1, **overrides: object) -> None:
        self.ids = tuple(f"n{i}" for i in range(1, n + 1))
        self.seed = seed
        self.overrides = overrides
        self.nodes: dict[str, Node] = {}
        self.queue: deque[Message] = deque()
        self.cut: set[tuple[str, str]] = set()  # (src, dst) pairs whose messages are dropped
        self.down: set[str] = set()
        self.sent: list[Message] = []  # every message that left a node (for counting)
        self.drop_filter: Callable[[Message], bool] | None = None  # True: drop the message
        self.restarted: set[str] = set()  # for checkers: nodes restarted since they last looked
        for node_id in self.ids:
            self.nodes[node_id] = Node(raft=self._build(node_id, Durable()), durable=Durable())

    def config(self, node_id: str) -> RaftConfig:
        rng = random.Random(f"{self.seed}/{node_id}/{len(self.sent)}")
        return RaftConfig(id=node_id, peers=self.ids, rng=rng, **self.overrides)  # type: ignore[arg-type]

    def _build(self, node_id: str, durable: Durable) -> Raft:
        return Raft(self.config(node_id), hard_state=durable.hard_state, snapshot=durable.snapshot,
                    entries=list(durable.entries))

    def raft(self, node_id: str) -> Raft:
        return self.nodes[node_id].raft

    # --- driving ----------------------------------------------------------------------------------------

    def process(self, node_id: str) -> None:
        """Handle every Ready of one node: persist, send, apply, advance."""
        node = self.nodes[node_id]
        raft = node.raft
        while raft.has_ready():
            rd = raft.ready()
            durable = node.durable
            if rd.snapshot is not None:
                durable.snapshot = rd.snapshot
                durable.entries = []
                node.applied = decode_state(rd.snapshot.data)
                node.applied_index = rd.snapshot.meta.index
                node.snapshots_restored += 1
            if rd.entries:
                first = rd.entries[0].index
                base = durable.snapshot.meta.index + 1 if durable.snapshot else 1
                del durable.entries[first - base:]
                durable.entries.extend(rd.entries)
            if rd.hard_state is not None:
                durable.hard_state = rd.hard_state
            for msg in rd.messages + rd.messages_after_persist:
                self.sent.append(msg)
                self.queue.append(msg)
            for entry in rd.committed_entries:
                assert entry.index == node.applied_index + 1, (node_id, entry.index, node.applied_index)
                node.applied_index = entry.index
                if entry.kind is EntryKind.NORMAL:
                    node.applied.append((entry.index, entry.data))
            node.read_states.extend(rd.read_states)
            raft.advance(rd)

    def process_all(self) -> None:
        for node_id in self.ids:
            if node_id not in self.down:
                self.process(node_id)

    def deliver(self, max_messages: int = 100_000) -> int:
        """Deliver queued messages (and the work they cause) until quiet. Returns how many were delivered."""
        delivered = 0
        self.process_all()
        while self.queue:
            assert delivered < max_messages, "the cluster does not quiesce"
            msg = self.queue.popleft()
            if (msg.dst in self.down or msg.src in self.down or (msg.src, msg.dst) in self.cut
                    or (self.drop_filter is not None and self.drop_filter(msg))):
                continue
            delivered += 1
            self.nodes[msg.dst].raft.step(msg)
            self.process(msg.dst)
        return delivered

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            for node_id in self.ids:
                if node_id not in self.down:
                    self.nodes[node_id].raft.tick()
            self.deliver()

    def elect(self, node_id: str) -> None:
        """Make `node_id` leader by an election it starts now."""
        self.raft(node_id).campaign()
        self.deliver()
        assert self.raft(node_id).role is Role.LEADER, self.status()

    def leader(self) -> str | None:
        leaders = [i for i in self.ids if i not in self.down and self.raft(i).role is Role.LEADER]
        if not leaders:
            return None
        return max(leaders, key=lambda i: self.raft(i).term)

    def wait_leader(self, max_ticks: int = 200) -> str:
        for _ in range(max_ticks):
            leader = self.leader()
            if leader is not None:
                return leader
            self.tick()
        raise AssertionError(f"no leader within {max_ticks} ticks: {self.status()}")

    def propose(self, data: bytes, via: str | None = None) -> int:
        node_id = via or self.leader()
        assert node_id is not None
        index = self.raft(node_id).propose(data)
        self.deliver()
        return index

    # --- faults -------------------------------------------------------------------------------------------

    def isolate(self, node_id: str) -> None:
        for other in self.ids:
            if other != node_id:
                self.cut.add((node_id, other))
                self.cut.add((other, node_id))

    def heal(self) -> None:
        self.cut.clear()

    def crash(self, node_id: str) -> None:
        """Lose everything not durable; the node stays down until `restart`."""
        self.down.add(node_id)

    def crash_mid_ready(self, node_id: str) -> bool:
        """Crash `node_id` in the middle of handling a Ready: its `messages` (allowed to leave before the persist
        step) are sent, nothing is persisted, nothing after-persist leaves. Returns False if it had no Ready."""
        raft = self.nodes[node_id].raft
        if not raft.has_ready():
            return False
        rd = raft.ready()
        for msg in rd.messages:
            self.sent.append(msg)
            self.queue.append(msg)
        self.crash(node_id)
        return True

    def restart(self, node_id: str) -> None:
        node = self.nodes[node_id]
        durable = node.durable
        raft = self._build(node_id, durable)
        applied: list[tuple[int, bytes]] = []
        applied_index = 0
        if durable.snapshot is not None:
            applied_index = durable.snapshot.meta.index
            applied = decode_state(durable.snapshot.data)
        self.nodes[node_id] = Node(raft=raft, durable=durable, applied=applied, applied_index=applied_index)
        self.down.discard(node_id)

    def compact(self, node_id: str) -> Snapshot:
        """The node's state machine snapshots itself at its applied index; the core and the durable log drop
        the prefix."""
        node = self.nodes[node_id]
        snapshot = node.raft.compact(node.applied_index, encode_state(node.applied))
        durable = node.durable
        base = durable.snapshot.meta.index + 1 if durable.snapshot else 1
        del durable.entries[:snapshot.meta.index + 1 - base]
        durable.snapshot = snapshot
        return snapshot

    def status(self) -> str:
        return "; ".join(f"{i}: {r.role.name} t{r.term} lead={r.leader} last={r.last_index} "
                         f"commit={r.commit_index}" + (" DOWN" if i in self.down else "")
                         for i in self.ids for r in [self.raft(i)])

    def count(self, kind: MessageType) -> int:
        return sum(1 for m in self.sent if m.type is kind)

    def applied(self, node_id: str) -> list[bytes]:
        """The data of the entries `node_id` has applied, in order."""
        return [d for _, d in self.nodes[node_id].applied]


class SafetyChecker:
    """Raft's safety properties over a Cluster, checked after every step: one leader per term, leader
    completeness, commit never going back (except across a restart), state machine safety, log matching."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster
        self.leaders: dict[int, str] = {}
        self.applied: dict[int, bytes] = {}  # index -> data applied somewhere
        # index -> the highest term any node had when the entry was first seen applied: the entry was committed
        # in that term or earlier, so every leader of a LATER term must hold it (Leader Completeness).
        self.applied_term: dict[int, int] = {}
        self.commit: dict[str, int] = {}

    def check(self) -> None:
        c = self.c
        for node_id in c.ids:
            if node_id in c.down:
                continue
            raft = c.raft(node_id)
            if raft.role is Role.LEADER:
                seen = self.leaders.setdefault(raft.term, node_id)
                assert seen == node_id, f"two leaders in term {raft.term}: {seen}, {node_id}"
                # Leader completeness: everything applied anywhere is in this leader's log.
                for index, data in self.applied.items():
                    if index >= raft.first_index and raft.term > self.applied_term[index]:
                        assert index <= raft.last_index, f"leader {node_id} misses applied entry {index}"
                        assert raft.entries(index, index + 1)[0].data == data, f"leader lost entry {index}"
            assert raft.commit_index >= self.commit.get(node_id, 0) or node_id in c.restarted, "commit went back"
            self.commit[node_id] = raft.commit_index
            for index, data in c.nodes[node_id].applied:
                if index not in self.applied:
                    self.applied_term[index] = max(c.raft(i).term for i in c.ids)
                prior = self.applied.setdefault(index, data)
                assert prior == data, f"state machine safety: index {index} applied as {prior!r} and {data!r}"
        # Log matching between every pair of live logs (same index and term -> same prefix): check the
        # highest common index with equal terms has identical entries below it.
        live = [c.raft(i) for i in c.ids if i not in c.down]
        for a in live:
            for b in live:
                if a.id >= b.id:
                    continue
                lo = max(a.first_index, b.first_index)
                hi = min(a.last_index, b.last_index)
                if lo > hi:
                    continue
                ea, eb = a.entries(lo, hi + 1), b.entries(lo, hi + 1)
                for k in range(len(ea) - 1, -1, -1):
                    if ea[k].term == eb[k].term:
                        assert ea[: k + 1] == eb[: k + 1], f"log matching violated between {a.id} and {b.id}"
                        break
