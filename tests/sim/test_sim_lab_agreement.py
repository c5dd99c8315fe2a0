"""Log agreement scenarios of the classic Raft lab, on the simulator."""

from __future__ import annotations

import random

import pytest
from simlab import ELECTION, lab_cluster

from raftkv.core import MessageType, Role
from raftkv.sim import ScenarioFailure

REQUESTS = ("VOTE", "PRE_VOTE", "APPEND", "HEARTBEAT", "SNAPSHOT", "TIMEOUT_NOW", "READ_INDEX")


def test_basic_agreement() -> None:
    c = lab_cluster(3)
    c.check_one_leader()
    previous = 0
    for k in range(1, 4):
        data = b"cmd%d" % (k * 100)
        index = c.one(data, 3, retry=False)
        assert index > previous, "an agreed index went backwards"
        assert c.n_committed(index)[1] == data
        previous = index
    assert c.node(1).applied == previous  # applied in order up to the last one (NOOPs included)


def test_each_entry_is_sent_to_each_peer_about_once() -> None:
    c = lab_cluster(3)
    c.check_one_leader()
    c.one(b"99", 3)
    bytes0 = c.net.stats.total_bytes(["APPEND"])
    carried: list[int] = []  # entries carried by each APPEND sent from now on
    c.net.observers.append(lambda s, d, m: carried.append(len(m.entries))
                           if getattr(m, "type", None) is MessageType.APPEND else None)
    rng = random.Random(5)
    sent = 0
    for _ in range(2, 11):
        data = bytes(rng.randrange(97, 123) for _ in range(5000))
        c.one(data, 3, retry=False)
        sent += len(data)
    got = c.net.stats.total_bytes(["APPEND"]) - bytes0
    expected = 2 * sent  # two followers
    assert got <= expected + 50_000, f"{got} APPEND bytes for {sent} bytes of commands ({expected} expected)"
    assert sum(carried) <= 2 * 9 + 2, f"{sum(carried)} entry copies sent for 9 entries to 2 followers"
    # Commit-index updates may travel in empty APPENDs; nothing else should: at most two APPENDs per entry each.
    assert len(carried) <= 2 * 2 * 9 + 4, f"{len(carried)} APPEND messages for 9 entries to 2 followers"


def test_agreement_despite_a_failed_follower() -> None:
    c = lab_cluster(3)
    c.one(b"101", 3)
    leader = c.check_one_leader()
    follower = leader % 3 + 1
    c.disconnect(follower)
    c.one(b"102", 2)
    c.run_for(ELECTION)
    c.one(b"103", 2)
    c.one(b"104", 2)
    c.connect(follower)  # it catches up
    c.one(b"106", 3)
    c.run_for(ELECTION)
    c.one(b"107", 3)


def test_leader_and_follower_failure_then_no_agreement() -> None:
    c = lab_cluster(3)
    c.one(b"101", 3)
    leader1 = c.check_one_leader()
    c.disconnect(leader1)
    c.one(b"102", 2)
    c.run_for(ELECTION)
    c.one(b"103", 2)
    leader2 = c.check_one_leader()
    c.disconnect(leader2)
    remaining = [i for i in c.ids if i not in (leader1, leader2)]
    committed = c.invariants.max_committed
    index = c.node(remaining[0]).propose(b"104")
    c.run_for(2 * ELECTION)
    if index is not None:
        assert c.n_committed(index)[0] == 0, "an entry committed without a majority"
    assert c.invariants.max_committed == committed, "something committed while no two nodes could talk"


def test_no_agreement_without_a_majority() -> None:
    c = lab_cluster(5)
    first = c.one(b"10", 5)
    leader = c.check_one_leader()
    for k in (1, 2, 3):
        c.disconnect((leader - 1 + k) % 5 + 1)
    index = c.node(leader).propose(b"20")
    assert index == first + 1, f"the leader put the entry at {index}, expected {first + 1}"
    c.run_for(2 * ELECTION)
    assert c.n_committed(index)[0] == 0, "committed although a majority was cut off"
    for k in (1, 2, 3):
        c.connect((leader - 1 + k) % 5 + 1)
    leader2 = c.check_one_leader()
    index2 = c.node(leader2).propose(b"30")
    assert index2 is not None and first + 1 <= index2 <= first + 4
    c.one(b"1000", 5)


def test_concurrent_proposals_all_commit() -> None:
    c = lab_cluster(3)
    for _attempt in range(5):
        leader = c.node(c.check_one_leader())
        term = leader.term
        indexes = [leader.propose(b"100%d" % i) for i in range(5)]
        if any(i is None for i in indexes):
            continue
        c.run_until(lambda ix=indexes: all(c.n_committed(i)[0] == 3 for i in ix), 5 * ELECTION)
        if leader.term != term:
            continue  # the term moved on; the lab tester tries again
        assert sorted(c.n_committed(i)[1] for i in indexes) == sorted(b"100%d" % i for i in range(5))
        assert sorted(indexes) == list(range(indexes[0], indexes[0] + 5)), "proposals did not get consecutive indexes"
        return
    pytest.fail("the term kept changing")


def test_rejoining_old_leader_has_its_conflicting_entries_overwritten() -> None:
    c = lab_cluster(3)
    c.one(b"101", 3)
    leader1 = c.check_one_leader()
    c.disconnect(leader1)
    stale = [c.node(leader1).propose(b"stale%d" % k) for k in (102, 103, 104)]  # never committed
    assert all(i is not None for i in stale)
    c.one(b"103", 2)
    leader2 = c.check_one_leader()
    c.disconnect(leader2)
    c.connect(leader1)
    c.one(b"104", 2)
    c.connect(leader2)
    c.one(b"105", 3)
    for index in stale:
        assert c.n_committed(index)[1] != b"stale%d" % (102 + stale.index(index))
    # The old leader's log now matches the others'.
    last = c.node(leader1).log.last_index
    terms = {tuple(n.log.term_at(i) for i in range(1, last + 1)) for n in c.nodes}
    assert len(terms) == 1


def test_backing_up_quickly_over_fifty_conflicting_entries() -> None:
    rng = random.Random(7)

    def cmd() -> bytes:
        return b"%d" % rng.randrange(10**9)

    c = lab_cluster(5)
    c.one(cmd(), 5)
    leader1 = c.check_one_leader()
    n = lambda k: (leader1 - 1 + k) % 5 + 1  # noqa: E731
    for k in (2, 3, 4):
        c.disconnect(n(k))
    for _ in range(50):  # the old leader piles up 50 entries that will never commit
        c.node(leader1).propose(cmd())
    c.run_for(ELECTION // 2)
    c.disconnect(n(0))
    c.disconnect(n(1))
    for k in (2, 3, 4):
        c.connect(n(k))
    for _ in range(50):
        c.one(cmd(), 3)
    leader2 = c.check_one_leader()
    other = n(2) if leader2 != n(2) else n(3)
    c.disconnect(other)
    for _ in range(50):  # the new leader piles up 50 more that will never commit
        c.node(leader2).propose(cmd())
    c.run_for(ELECTION // 2)
    # From here on two repairs happen: the first leader and its follower rejoin with 50 conflicting entries of an
    # old term (repaired by the new leader right away), then the second leader and its follower with 50 more.
    # Count the rejected APPENDs: each is one round trip of backing up; one per conflicting TERM is the goal.
    rejects: list[int] = []
    c.net.observers.append(lambda s, d, m: rejects.append(s) if getattr(m, "type", None) is MessageType.APPEND_RESP
                           and m.reject else None)
    for i in c.ids:
        c.disconnect(i)
    for i in (n(0), n(1), other):
        c.connect(i)
    for _ in range(50):
        c.one(cmd(), 3)
    for i in c.ids:
        c.connect(i)
    c.one(cmd(), 5)
    assert 0 < len(rejects) <= 12, f"{len(rejects)} rejected APPENDs to repair the logs: backing up is too slow"
    print(f"backing up over 50 conflicting entries on each of 2 nodes took {len(rejects)} rejected APPENDs")


def test_message_budget_for_ten_entries() -> None:
    c = lab_cluster(3)
    for _attempt in range(5):
        leader = c.node(c.check_one_leader())
        term = leader.term
        before = c.net.stats.total_sent(REQUESTS)
        indexes = [leader.propose(b"%d" % (100 + i)) for i in range(11)]
        if any(i is None for i in indexes):
            continue
        ok = c.run_until(lambda ix=indexes: all(c.n_committed(i)[0] == 3 for i in ix), 5 * ELECTION, poll_us=1_000)
        if not ok or leader.term != term:
            continue
        used = c.net.stats.total_sent(REQUESTS) - before
        assert used <= (10 + 1 + 3) * 3, f"{used} requests for 11 entries"
        return
    raise ScenarioFailure("the term kept changing")


def test_unreliable_agreement() -> None:
    c = lab_cluster(5, unreliable=True, seed=11)
    for it in range(1, 51):
        leader = c.leader()
        if leader is not None:
            for j in range(4):  # concurrent proposals, retried by `one` below if lost
                leader.propose(b"%d" % (100 * it + j))
        c.one(b"%d" % it, 1)
    c.net.faults = type(c.net.faults)()  # reliable again
    c.one(b"100", 5)


def test_figure_8_reliable() -> None:
    _figure_8(unreliable=False, seed=8)


def test_figure_8_unreliable() -> None:
    _figure_8(unreliable=True, seed=9)


def _figure_8(*, unreliable: bool, seed: int) -> None:
    """Leaders crash (or get cut off) right after proposing, over and over, while at least a majority stays up;
    entries of old terms must never be committed by counting replicas (the Figure 8 rule, checked by the
    invariants at every step); at the end the whole cluster agrees."""
    rng = random.Random(seed)
    c = lab_cluster(5, seed=seed, unreliable=unreliable)
    c.one(b"%d" % rng.randrange(10000), 1)
    up = 5
    for _ in range(1000):
        leader = None
        for node in c.nodes:
            if (node.alive and c.connected(node.id) and node.role is Role.LEADER
                    and node.propose(b"%d" % rng.randrange(10000)) is not None):
                leader = node.id
        if rng.randrange(1000) < 100:
            c.run_for(rng.randrange(ELECTION // 2))
        else:
            c.run_for(rng.randrange(13_000))
        if leader is not None:
            if unreliable:
                c.disconnect(leader)
            else:
                c.crash(leader)
            up -= 1
        if up < 3:
            s = rng.randrange(1, 6)
            if unreliable and not c.connected(s):
                c.connect(s)
                up += 1
            elif not unreliable and not c.node(s).alive:
                c.node(s).start()
                up += 1
    for node in c.nodes:
        if not node.alive:
            node.start()
        c.connect(node.id)
    c.net.faults = type(c.net.faults)()
    c.one(b"%d" % rng.randrange(10000), 5, timeout_us=20 * ELECTION)
