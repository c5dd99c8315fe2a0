"""Persistence scenarios of the classic Raft lab: crash and restart one node, a majority, all nodes, and churn.

A crash here is a power cut: the node loses its memory and whatever its disk had not synced (possibly tearing the
last write); it restarts only from what the disk kept."""

from __future__ import annotations

import random

from simlab import ELECTION, lab_cluster

from raftkv.sim import ClientOptions, Cluster, DiskFaults, LinkFaults


def _restart_all(c: Cluster) -> None:
    for i in c.ids:
        c.crash(i)
    for i in c.ids:
        c.node(i).start()


def test_persistence_across_crash_of_one_majority_and_all() -> None:
    c = lab_cluster(3)
    c.one(b"11", 3)
    _restart_all(c)  # all
    c.one(b"12", 3)
    leader1 = c.check_one_leader()
    c.restart(leader1)  # the leader
    c.one(b"13", 3)
    leader2 = c.check_one_leader()
    c.crash(leader2)
    c.one(b"14", 2)
    c.node(leader2).start()
    index = c.one(b"14b", 3)
    c.wait_committed(index, 3)
    i3 = c.check_one_leader() % 3 + 1
    c.crash(i3)
    c.one(b"15", 2)
    c.node(i3).start()
    c.one(b"16", 3)


def test_persistence_majority_crashes_repeatedly() -> None:
    c = lab_cluster(5, seed=2)
    index = 1
    for _ in range(5):
        c.one(b"%d" % (10 + index), 5)
        index += 1
        leader1 = c.check_one_leader()
        n = lambda k, base=leader1: (base - 1 + k) % 5 + 1  # noqa: E731
        c.crash(n(1))
        c.crash(n(2))
        c.one(b"%d" % (10 + index), 3)
        index += 1
        c.crash(n(0))  # the leader
        c.crash(n(3))
        c.crash(n(4))
        c.node(n(1)).start()
        c.node(n(2)).start()
        c.run_for(ELECTION)
        c.node(n(3)).start()
        c.one(b"%d" % (10 + index), 3)
        index += 1
        c.node(n(4)).start()
        c.node(n(0)).start()
    c.one(b"1000", 5)


def test_persistence_leader_and_follower_crash_while_one_is_cut() -> None:
    c = lab_cluster(3)
    c.one(b"101", 3)
    leader = c.check_one_leader()
    n = lambda k: (leader - 1 + k) % 3 + 1  # noqa: E731
    c.disconnect(n(2))
    c.one(b"102", 2)
    c.crash(n(0))
    c.crash(n(1))
    c.connect(n(2))
    c.node(n(0)).start()
    c.one(b"103", 2)
    c.node(n(1)).start()
    c.one(b"104", 3)


def test_crashes_in_the_middle_of_fsyncs_lose_nothing_committed() -> None:
    """Crash nodes exactly while a write is being synced, many times; the invariants (checked at every step) catch
    a vote or an acknowledged entry that did not survive."""
    c = lab_cluster(5, seed=4)
    rng = random.Random(4)
    c.one(b"start", 5)
    for k in range(40):
        leader = c.leader()
        if leader is not None:
            leader.propose(b"x%d" % k)
        c.run_for(rng.randrange(200, 3_000))
        busy = [n for n in c.nodes if n.alive and n.busy]
        if busy:
            victim = rng.choice(busy)
            c.crash(victim.id)
            c.run_for(rng.randrange(1_000, ELECTION // 2))
            victim.start()
    c.one(b"end", 5, timeout_us=20 * ELECTION)
    assert sum(n.disk.torn_writes for n in c.nodes) >= 0


def _churn(*, unreliable: bool, seed: int) -> None:
    """Clients write and read while nodes are cut off, crashed and restarted at random; then everything heals.
    No value a client saw committed may be lost (the history check), and the whole cluster converges."""
    rng = random.Random(seed)
    c = lab_cluster(5, seed=seed, unreliable=unreliable)
    clients = c.add_clients(3, ["x", "y", "z"], ClientOptions(timeout_us=500_000))
    for client in clients:
        client.start()
    for _ in range(20):
        if rng.randrange(1000) < 200:
            c.disconnect(rng.randrange(1, 6))
        if rng.randrange(1000) < 500:
            i = rng.randrange(1, 6)
            if not c.node(i).alive:
                c.node(i).start()
            c.connect(i)
        if rng.randrange(1000) < 200:
            i = rng.randrange(1, 6)
            if c.node(i).alive:
                c.crash(i)
        c.run_for(ELECTION * 7 // 10)
    c.run_for(ELECTION)
    c.net.faults = LinkFaults()
    for i in c.ids:
        if not c.node(i).alive:
            c.node(i).start()
        c.connect(i)
    for client in clients:
        client.stop()
    assert c.run_until(c.clients_idle, 20 * ELECTION)
    last = c.one(b"final", 5, timeout_us=20 * ELECTION)
    c.wait_committed(last, 5)
    c.check_acknowledged()
    c.check_history()
    ok_puts = [op for op in c.history if op.f == "put" and op.type == "ok"]
    assert ok_puts, "the clients never got a write through: the scenario tested nothing"
    final = {key: c.node(1).kv.get(key) for key in ("x", "y", "z")}  # type: ignore[union-attr]
    for op in ok_puts:
        current = final[op.key]
        assert current is not None and current[1] >= op.result_version, f"{op.describe()} lost: now {current}"


def test_reliable_churn() -> None:
    _churn(unreliable=False, seed=21)


def test_unreliable_churn() -> None:
    _churn(unreliable=True, seed=22)


def test_a_node_crashing_mid_fsync_on_rejoin_can_always_restart() -> None:
    """A node that rejoins after missing an election learns the new term from the new leader while its first
    Readies are written; crash it in the middle of that fsync, over and over, with a disk that flushes some of the
    unsynced writes and tears the next: it must always restart from what the disk kept and catch up."""
    rng = random.Random(41)
    c = lab_cluster(5, seed=41, disk=DiskFaults(flush_some=1.0, tear=0.5))
    c.one(b"start", 5)
    crashed_mid_sync = 0
    for k in range(25):
        leader = c.check_one_leader()
        follower = rng.choice([i for i in c.ids if i != leader])
        c.disconnect(follower)
        c.disconnect(leader)  # a new leader, of a new term, that the follower does not know of
        c.one(b"k%d" % k, 3)
        c.connect(leader)
        c.connect(follower)
        if c.run_until(lambda f=follower: c.node(f).busy, ELECTION, poll_us=100):
            c.crash(follower)
            crashed_mid_sync += 1
            c.node(follower).start()
        c.one(b"after%d" % k, 5, timeout_us=20 * ELECTION)
    assert crashed_mid_sync > 10
