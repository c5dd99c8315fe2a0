"""A Hypothesis rule-based state machine over a small cluster of cores: faults, proposals, compactions and
crashes interleaved as Hypothesis likes, Raft's safety properties checked after every rule, and failures
shrunk to a minimal sequence."""

from __future__ import annotations

import contextlib

from core_cluster import Cluster, SafetyChecker
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from raftkv.core import NotLeader, ProposalDropped

NODES = ("n1", "n2", "n3")
node_ids = st.sampled_from(NODES)


class CoreCluster(RuleBasedStateMachine):
    @initialize(seed=st.integers(0, 2**16), pre_vote=st.booleans(), chunk=st.sampled_from([4, 1 << 20]),
                per_msg=st.sampled_from([1, 2, 64]))
    def setup(self, seed: int, pre_vote: bool, chunk: int, per_msg: int) -> None:
        self.c = Cluster(3, seed=seed, pre_vote=pre_vote, snapshot_chunk_bytes=chunk,
                         max_entries_per_msg=per_msg, election_tick=4)
        self.checker = SafetyChecker(self.c)
        self.counter = 0
        self.c.wait_leader()  # start from a working cluster: the rules then break it

    @rule(node=node_ids, times=st.integers(1, 6))
    def tick(self, node: str, times: int) -> None:
        if node in self.c.down:
            return
        for _ in range(times):
            self.c.raft(node).tick()
        self.c.process(node)

    @precondition(lambda self: bool(self.c.queue))
    @rule(pick=st.integers(min_value=0), fate=st.sampled_from(["deliver", "deliver", "drop", "duplicate"]))
    def network(self, pick: int, fate: str) -> None:
        queue = self.c.queue
        k = pick % len(queue)
        queue.rotate(-k)
        msg = queue.popleft()
        queue.rotate(k)
        if fate == "drop":
            return
        if fate == "duplicate":
            queue.append(msg)
        if msg.dst in self.c.down or msg.src in self.c.down or (msg.src, msg.dst) in self.c.cut:
            return
        self.c.raft(msg.dst).step(msg)
        self.c.process(msg.dst)

    @rule()
    def deliver_everything(self) -> None:
        self.c.deliver()

    @rule(count=st.integers(1, 5), process=st.booleans())
    def propose(self, count: int, process: bool) -> None:
        leader = self.c.leader()
        if leader is None:
            return
        for _ in range(count):
            self.counter += 1
            with contextlib.suppress(NotLeader, ProposalDropped):
                self.c.raft(leader).propose(b"p%d" % self.counter)
        if process:  # else the Ready waits: a crash may catch it half done
            self.c.process(leader)

    @rule()
    def tick_all(self) -> None:
        for node in NODES:
            if node not in self.c.down:
                self.c.raft(node).tick()
                self.c.process(node)

    @rule(node=node_ids)
    def compact(self, node: str) -> None:
        if node not in self.c.down and self.c.nodes[node].applied_index >= self.c.raft(node).first_index:
            self.c.compact(node)

    @rule(node=node_ids, mid_ready=st.booleans())
    def crash_or_restart(self, node: str, mid_ready: bool) -> None:
        if node in self.c.down:
            self.c.restart(node)
            self.c.restarted.add(node)
        elif not self.c.down and not (mid_ready and self.c.crash_mid_ready(node)):
            self.c.crash(node)

    @rule(node=node_ids)
    def isolate(self, node: str) -> None:
        self.c.heal()
        self.c.isolate(node)

    @rule()
    def heal(self) -> None:
        self.c.heal()

    @invariant()
    def safe(self) -> None:
        if hasattr(self, "checker"):
            self.checker.check()
            self.c.restarted.clear()


TestCoreCluster = CoreCluster.TestCase
TestCoreCluster.settings = settings(max_examples=60, stateful_step_count=60, deadline=None,
                                    suppress_health_check=[HealthCheck.too_slow])
