"""Randomized safety runs of the core over a lossy, reordering, duplicating network with crashes and restarts.

Not the simulator (raftkv.sim does this thoroughly): a fast net under the core's own tests, checking after every
step: one leader per term, log matching, state machine safety (applied sequences agree), commit never going
backwards, and no committed entry ever lost (every entry applied anywhere is in every later leader's log).
"""

from __future__ import annotations

import contextlib
import random

import pytest
from core_cluster import Cluster, SafetyChecker

from raftkv.core import NotLeader, ProposalDropped


class ReadChecker:
    """ReadIndex (and lease) linearizability: a read point handed out must be at least every commit index any
    node knew when the read was requested (every write completed before the read started is visible), and
    itself a committed index."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster
        self.issued: dict[bytes, int] = {}
        self.seen: dict[str, int] = {}
        self.served = 0

    def known_commit(self) -> int:
        return max(self.c.raft(i).commit_index for i in self.c.ids)

    def issue(self, node_id: str) -> None:
        context = b"r%d" % len(self.issued)
        self.issued[context] = self.known_commit()
        with contextlib.suppress(NotLeader, ProposalDropped):
            self.c.raft(node_id).read_index(context)
        self.c.process(node_id)

    def check(self) -> None:
        high = self.known_commit()
        for node_id in self.c.ids:
            states = self.c.nodes[node_id].read_states
            if len(states) < self.seen.get(node_id, 0):
                self.seen[node_id] = 0  # the node restarted: a new, empty list
            for rs in states[self.seen.get(node_id, 0):]:
                floor = self.issued[rs.context]
                assert floor <= rs.index <= high, (
                    f"{node_id} got read point {rs.index} for {rs.context!r}, issued when commit {floor} was "
                    f"known (highest commit now {high})")
                self.served += 1
            self.seen[node_id] = len(states)


def run(seed: int, steps: int = 1500, n: int = 5, snapshots: bool = True) -> tuple[Cluster, ReadChecker]:
    rng = random.Random(seed)
    c = Cluster(n, seed=seed, max_entries_per_msg=rng.choice([1, 3, 64]), max_inflight_msgs=rng.choice([1, 4, 64]),
                snapshot_chunk_bytes=rng.choice([7, 64, 1 << 20]), pre_vote=rng.random() < 0.8,
                check_quorum=rng.random() < 0.8)
    if c.overrides["check_quorum"] and rng.random() < 0.5:
        c = Cluster(n, seed=seed, **{**c.overrides, "lease_reads": True})
    checker = SafetyChecker(c)
    counter = 0
    reads = ReadChecker(c)
    loss = rng.choice([0.0, 0.05, 0.2])
    for _ in range(steps):
        r = rng.random()
        if r < 0.08:
            for node_id in c.ids:
                if node_id not in c.down:
                    c.raft(node_id).tick()
                    if rng.random() < 0.8:
                        c.process(node_id)
        elif r < 0.20:
            leader = c.leader()
            if leader is not None:
                counter += 1
                with contextlib.suppress(NotLeader, ProposalDropped):
                    c.raft(leader).propose(f"{seed}:{counter}".encode())
                if rng.random() < 0.6:  # else the Ready waits (a crash may catch it half done)
                    c.process(leader)
        elif r < 0.22 and snapshots:
            node_id = rng.choice(c.ids)
            if node_id not in c.down and c.nodes[node_id].applied_index > c.raft(node_id).first_index:
                c.compact(node_id)
        elif r < 0.225:
            node_id = rng.choice(c.ids)
            if node_id in c.down:
                c.restart(node_id)
                c.restarted.add(node_id)
            elif len(c.down) < (n - 1) // 2:
                # Sometimes in the middle of a Ready: its early messages leave, nothing is persisted.
                if rng.random() < 0.5 or not c.crash_mid_ready(node_id):
                    c.crash(node_id)
                c.queue = type(c.queue)(m for m in c.queue if m.dst != node_id)
        elif r < 0.235:
            c.heal()
            if rng.random() < 0.5:
                c.isolate(rng.choice(c.ids))
        elif r < 0.26:
            node_id = rng.choice(c.ids)
            if node_id not in c.down:
                reads.issue(node_id)
        elif c.queue:
            # Deliver a random queued message (reordering), maybe dropping or duplicating it.
            k = rng.randrange(len(c.queue))
            c.queue.rotate(-k)
            msg = c.queue.popleft()
            c.queue.rotate(k)
            if rng.random() < 0.05:
                c.queue.append(msg)
            if (rng.random() >= loss and msg.dst not in c.down and msg.src not in c.down
                    and (msg.src, msg.dst) not in c.cut):
                c.raft(msg.dst).step(msg)
                c.process(msg.dst)
        checker.check()
        reads.check()
        c.restarted.clear()
    # Liveness: heal everything, restart every node, and require progress.
    c.heal()
    for node_id in list(c.down):
        c.restart(node_id)
    c.queue.clear()
    # A proposal may be lost to a leader change: retry (as a client would) until one is applied everywhere.
    for attempt in range(20):
        leader = c.wait_leader(max_ticks=300)
        data = f"final-{attempt}".encode()
        try:
            c.raft(leader).propose(data)
        except (NotLeader, ProposalDropped):
            c.tick()
            continue
        c.deliver()
        for _ in range(40):
            if all(data in (d for _, d in c.nodes[i].applied) for i in c.ids):
                break
            c.tick()
        checker.check()
        if all(data in (d for _, d in c.nodes[i].applied) for i in c.ids):
            break
    else:
        raise AssertionError(f"no progress after healing: {c.status()}")
    return c, reads


@pytest.mark.parametrize("seed", range(40))
def test_random_faults_keep_safety_and_recover(seed: int) -> None:
    run(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(40, 1040))
def test_random_faults_many_seeds(seed: int) -> None:
    run(seed, steps=3000)
