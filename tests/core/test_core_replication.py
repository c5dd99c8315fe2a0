"""Log replication and commitment: sentences of the Raft paper as tests."""

from __future__ import annotations

import contextlib
import random

import pytest
from core_cluster import Cluster

from raftkv.core import (
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    NotLeader,
    ProposalDropped,
    ProtocolError,
    Raft,
    RaftConfig,
    Role,
)


def test_basic_agreement() -> None:
    c = Cluster(3, seed=1)
    c.wait_leader()
    for i in range(5):
        index = c.propose(f"v{i}".encode())
        c.tick()
        assert all(c.nodes[n].applied_index >= index for n in c.ids)
    assert all(c.applied(n) == [f"v{i}".encode() for i in range(5)] for n in c.ids)


def test_each_entry_is_sent_to_each_follower_about_once() -> None:
    c = Cluster(5, seed=1)
    leader = c.wait_leader()
    c.tick(2)
    start = len(c.sent)
    for _i in range(50):
        c.raft(leader).propose(b"x" * 100)
        c.deliver()
    sent = c.sent[start:]
    carried = sum(len(m.entries) for m in sent if m.type is MessageType.APPEND)
    assert carried == 50 * 4  # each of 4 followers got each entry exactly once
    payload = sum(len(e.data) for m in sent if m.type is MessageType.APPEND for e in m.entries)
    assert payload == 50 * 4 * 100


def test_batching_puts_many_proposals_in_one_append() -> None:
    c = Cluster(3, seed=1)
    leader = c.wait_leader()
    c.tick(2)
    start = len(c.sent)
    c.raft(leader).propose_many([b"a"] * 500)
    c.deliver()
    appends = [m for m in c.sent[start:] if m.type is MessageType.APPEND and m.entries]
    assert len(appends) == 2  # one per follower


def test_appends_respect_max_entries_and_the_inflight_window() -> None:
    c = Cluster(3, seed=1, max_entries_per_msg=10, max_inflight_msgs=3)
    leader = c.wait_leader()
    c.tick(2)
    c.raft(leader).propose_many([b"a"] * 100)
    c.process(leader)
    appends = [m for m in c.queue if m.type is MessageType.APPEND and m.dst != leader]
    per_peer = {m.dst: 0 for m in appends}
    for m in appends:
        per_peer[m.dst] += 1
        assert len(m.entries) <= 10
    assert set(per_peer.values()) == {3}  # the window: 3 unacknowledged messages per follower
    c.deliver()
    c.tick()
    assert all(c.nodes[n].applied_index == c.raft(leader).last_index for n in c.ids)


def test_agreement_despite_a_failed_follower_and_its_catch_up() -> None:
    c = Cluster(3, seed=1)
    leader = c.wait_leader()
    follower = next(n for n in c.ids if n != leader)
    c.crash(follower)
    for i in range(10):
        c.propose(f"v{i}".encode())
    c.tick()
    live = [n for n in c.ids if n != follower]
    assert all(len(c.applied(n)) == 10 for n in live)
    c.restart(follower)
    c.tick(3)
    assert c.applied(follower) == c.applied(leader)


def test_no_agreement_without_a_majority() -> None:
    c = Cluster(5, seed=1)
    leader = c.wait_leader()
    c.tick()
    others = [n for n in c.ids if n != leader]
    for n in others[:3]:
        c.crash(n)
    commit = c.raft(leader).commit_index
    index = c.propose(b"lonely")
    c.tick(5)
    assert c.raft(leader).commit_index == commit < index
    for n in others[:3]:
        c.restart(n)
    c.tick(30)
    new = c.wait_leader()
    c.propose(b"after")
    c.tick(3)
    assert b"after" in c.applied(new)


def test_concurrent_proposals_all_commit_in_one_order() -> None:
    c = Cluster(3, seed=1)
    leader = c.wait_leader()
    indexes = [c.raft(leader).propose(f"p{i}".encode()) for i in range(30)]
    assert indexes == list(range(indexes[0], indexes[0] + 30))
    c.deliver()
    c.tick()
    assert all(c.applied(n) == [f"p{i}".encode() for i in range(30)] for n in c.ids)


def test_propose_on_a_follower_names_the_leader() -> None:
    c = Cluster(3, seed=1)
    leader = c.wait_leader()
    follower = next(n for n in c.ids if n != leader)
    with pytest.raises(NotLeader) as info:
        c.raft(follower).propose(b"x")
    assert info.value.leader_hint == leader


def test_too_many_uncommitted_proposals_are_dropped() -> None:
    c = Cluster(3, seed=1, max_uncommitted_entries=5)
    leader = c.wait_leader()
    c.tick()
    for n in c.ids:
        if n != leader:
            c.crash(n)
    c.raft(leader).propose_many([b"x"] * 5)
    with pytest.raises(ProposalDropped):
        c.raft(leader).propose(b"y")
    with pytest.raises(ProposalDropped):
        c.raft(leader).propose_many([b"y"])


def test_rejoining_old_leader_has_its_uncommitted_entries_overwritten() -> None:
    c = Cluster(3, seed=1)
    c.elect("n1")
    c.propose(b"committed")
    c.tick()
    c.isolate("n1")
    for i in range(3):
        c.raft("n1").propose(f"lost{i}".encode())  # can never commit: n1 is cut off
    c.deliver()
    c.tick(25)
    new = c.wait_leader()
    assert new != "n1"
    c.propose(b"new", via=new)
    c.heal()
    c.tick(5)
    assert c.applied("n1") == [b"committed", b"new"] == c.applied(new)
    assert all(e.data[:4] != b"lost" for e in c.raft("n1").entries(1, c.raft("n1").last_index + 1))


def test_backing_up_over_fifty_conflicting_entries_takes_few_round_trips() -> None:
    """The rejection carries the conflicting term and its first index: the leader skips a term per round trip
    instead of an entry at a time."""
    c = Cluster(5, seed=1)
    c.elect("n1")
    c.propose(b"base")
    c.tick()
    # n1 and n2 get 50 entries that never commit (n3..n5 cut off), then go down.
    for n in ("n3", "n4", "n5"):
        c.isolate(n)
    c.cut -= {("n1", "n2"), ("n2", "n1")}
    c.raft("n1").propose_many([b"doomed"] * 50)
    c.deliver()
    c.crash("n1")
    c.crash("n2")
    c.heal()
    c.tick(40)
    leader = c.wait_leader()
    c.raft(leader).propose_many([b"kept"] * 50)
    c.deliver()
    c.tick()
    # A fresh leader starts probing from its own last index + 1, far beyond where n1 and n2 diverge.
    target = next(n for n in ("n3", "n4", "n5") if n != leader)
    c.raft(leader).transfer_leadership(target)
    c.deliver()
    assert c.leader() == target
    c.restart("n1")
    c.restart("n2")
    start = len(c.sent)
    c.tick(5)
    rejects = [m for m in c.sent[start:] if m.type is MessageType.APPEND_RESP and m.reject]
    assert {m.src for m in rejects} <= {"n1", "n2"}
    assert 1 <= len(rejects) <= 4, rejects  # about one per conflicting term per follower, not 50
    for n in c.ids:
        assert c.applied(n) == [b"base"] + [b"kept"] * 50


def _leader_with_divergent_follower(conflicting: int) -> tuple[Raft, Raft]:
    """A leader (term 3) whose log is base + 1 noop, and a follower holding `conflicting` entries of term 2."""
    peers = ("n1", "n2", "n3")
    base = [Entry(term=1, index=1, data=b"base")]
    follower_log = base + [Entry(term=2, index=i, data=b"old") for i in range(2, 2 + conflicting)]
    leader = Raft(RaftConfig(id="n1", peers=peers, rng=random.Random(1), pre_vote=False),
                  hard_state=HardState(term=2, commit=1), entries=base)
    follower = Raft(RaftConfig(id="n2", peers=peers, rng=random.Random(2), pre_vote=False),
                    hard_state=HardState(term=2, commit=1), entries=follower_log)
    return leader, follower


def test_fast_backup_needs_one_rejection_per_conflicting_term() -> None:
    leader, follower = _leader_with_divergent_follower(50)
    leader.campaign()
    # n3 grants the vote so that n1 leads term 3 with the no-op at index 2.
    leader.step(Message(type=MessageType.VOTE_RESP, src="n3", dst="n1", term=3))
    assert leader.role is Role.LEADER
    rejections = 0
    for _round in range(20):
        moved = False
        for raft, other in ((leader, follower), (follower, leader)):
            while raft.has_ready():
                rd = raft.ready()
                for m in rd.messages + rd.messages_after_persist:
                    if m.dst == other.id:
                        rejections += m.type is MessageType.APPEND_RESP and m.reject
                        other.step(m)
                        moved = True
                raft.advance(rd)
        if not moved:
            break
    assert rejections <= 2  # 50 conflicting entries of one term: one rejection backs up over all of them
    assert follower.entries(1, follower.last_index + 1) == leader.entries(1, leader.last_index + 1)
    assert follower.last_index == 2


def test_a_duplicate_or_stale_append_never_truncates() -> None:
    raft = Raft(RaftConfig(id="n2", peers=("n1", "n2", "n3"), rng=random.Random(1)))
    ents = tuple(Entry(term=1, index=i, data=bytes([i])) for i in range(1, 6))
    raft.step(Message(type=MessageType.APPEND, src="n1", dst="n2", term=1, index=0, log_term=0, entries=ents))
    # A delayed, shorter copy of an earlier append arrives after the longer one.
    raft.step(Message(type=MessageType.APPEND, src="n1", dst="n2", term=1, index=0, log_term=0, entries=ents[:2]))
    assert raft.last_index == 5
    rd = raft.ready()
    acks = [m.index for m in rd.messages_after_persist if m.type is MessageType.APPEND_RESP]
    assert acks == [5, 2]  # each ack states only what its append proved


def test_append_acks_leave_only_after_persisting_but_leader_appends_at_once() -> None:
    c = Cluster(3, seed=1)
    leader = c.wait_leader()
    c.tick()
    raft = c.raft(leader)
    raft.propose(b"x")
    rd = raft.ready()
    assert rd.entries and [m.type for m in rd.messages] == [MessageType.APPEND] * 2
    raft.advance(rd)
    follower = c.raft(rd.messages[0].dst)
    follower.step(rd.messages[0])
    frd = follower.ready()
    assert frd.entries and not frd.messages
    assert [m.type for m in frd.messages_after_persist] == [MessageType.APPEND_RESP]


def test_a_leader_never_commits_an_entry_of_an_earlier_term_by_counting_replicas() -> None:
    """Figure 8 in a cluster: n1 leads term 1 and gets index 2 onto n2 only; n5 leads term 2 with entries of its
    own that reach nobody; n1 leads term 3 and spreads its term-1 entry. What n1 commits must be safe from n5:
    n5 can no longer win, and its entries are overwritten."""
    c = Cluster(5, seed=1, check_quorum=False, pre_vote=False)
    c.elect("n1")
    c.tick()
    c.isolate("n1")
    c.cut -= {("n1", "n2"), ("n2", "n1")}
    c.raft("n1").propose(b"term1-entry")  # index 2 reaches n2 only
    c.deliver()
    c.heal()
    c.crash("n1")
    c.crash("n2")
    c.drop_filter = lambda m: m.src == "n5" and m.type is MessageType.APPEND
    c.elect("n5")  # term 2: its no-op (index 2) and n5-entry (index 3) stay on n5
    c.raft("n5").propose(b"n5-entry")
    c.deliver()
    c.drop_filter = None
    c.crash("n5")
    c.restart("n1")
    c.restart("n2")
    c.raft("n1").campaign()  # term 2: n3 and n4 already voted for n5 in term 2
    c.deliver()
    c.elect("n1")
    raft = c.raft("n1")
    assert raft.term == 3
    c.tick(3)
    assert raft.entries(raft.commit_index, raft.commit_index + 1)[0].term == 3
    c.restart("n5")
    c.tick(40)
    leader = c.wait_leader()
    c.propose(b"last", via=leader)
    c.tick(3)
    assert leader != "n5"
    for n in c.ids:
        assert c.applied(n) == [b"term1-entry", b"last"], n


def test_figure8_commit_rule_directly() -> None:
    """The leader of term 3 has an entry of term 1 at index 2 on a majority; it commits nothing until its own
    no-op (term 3) is on a majority."""
    peers = ("n1", "n2", "n3")
    base = (Entry(term=1, index=1, kind=EntryKind.NOOP), Entry(term=1, index=2, data=b"old"))
    leader = Raft(RaftConfig(id="n1", peers=peers, rng=random.Random(1), pre_vote=False),
                  hard_state=HardState(term=2, commit=1), entries=base)
    leader.campaign()
    leader.step(Message(type=MessageType.VOTE_RESP, src="n2", dst="n1", term=3))
    assert leader.role is Role.LEADER and leader.last_index == 3
    rd = leader.ready()
    leader.advance(rd)
    leader.step(Message(type=MessageType.APPEND_RESP, src="n2", dst="n1", term=3, index=2))
    assert leader.commit_index == 1  # index 2 is on n1 and n2 (a majority) but of term 1
    leader.step(Message(type=MessageType.APPEND_RESP, src="n2", dst="n1", term=3, index=3))
    assert leader.commit_index == 3


def test_unreliable_agreement() -> None:
    c = Cluster(5, seed=9)
    rng = random.Random(9)
    c.drop_filter = lambda m: rng.random() < 0.2
    c.wait_leader(max_ticks=500)
    expected = []
    for i in range(30):
        data = f"u{i}".encode()
        for _attempt in range(50):
            leader = c.leader()
            if leader is not None:
                with contextlib.suppress(NotLeader, ProposalDropped):
                    c.raft(leader).propose(data)
            c.tick()
            if any(data in c.applied(n) for n in c.ids):
                break
        expected.append(data)
    c.drop_filter = None
    c.tick(10)
    for n in c.ids:
        got = c.applied(n)
        assert all(x in got for x in expected)
        assert got == c.applied(c.ids[0])


def test_peer_messages_breaking_the_protocol_raise_protocol_error_and_change_nothing() -> None:
    c = Cluster(3, seed=1)
    c.elect("n1")
    c.propose(b"x")
    c.tick()
    n2 = c.raft("n2")
    bad = [
        Message(type=MessageType.APPEND, src="n9", dst="n2", term=1),  # not a peer
        Message(type=MessageType.APPEND, src="n1", dst="n2", term=1, index=1, log_term=2),  # prev term > term
        Message(type=MessageType.APPEND, src="n1", dst="n2", term=1, index=0, log_term=0,
                entries=(Entry(term=1, index=1), Entry(term=1, index=2, data=b"other"))),
        Message(type=MessageType.SNAPSHOT, src="n1", dst="n2", term=1),  # no meta
    ]
    before = n2.entries(1, n2.last_index + 1), n2.commit_index
    for m in bad[:2] + bad[3:]:
        with pytest.raises(ProtocolError):
            n2.step(m)
    # index 2 is committed on n2 ("x"); an append of term 1 rewriting it as "other" means two leaders in term 1.
    assert n2.commit_index == 2
    n2.step(bad[2])  # same term at index 2: log matching says identical, nothing to do
    assert (n2.entries(1, n2.last_index + 1), n2.commit_index) == before
    conflicting = Message(type=MessageType.APPEND, src="n1", dst="n2", term=5, index=1, log_term=1,
                          entries=(Entry(term=5, index=2, data=b"rewrite"),))
    with pytest.raises(ProtocolError):
        n2.step(conflicting)
    assert n2.entries(1, n2.last_index + 1) == before[0]
    leader = c.raft("n1")
    with pytest.raises(ProtocolError):
        leader.step(Message(type=MessageType.APPEND_RESP, src="n2", dst="n1", term=1, index=99))
    assert not leader.halted and leader.role is Role.LEADER
