"""Snapshot scenarios of the classic Raft lab: the log stays bounded, InstallSnapshot brings a lagging follower
back (reliable, unreliable, with crashes), all nodes crash, and nodes restart from a snapshot."""

from __future__ import annotations

import random

from simlab import lab_cluster

from raftkv.kv import Command, Op, encode_command
from raftkv.sim import Cluster

SNAPSHOT_EVERY = 10  # a node snapshots when its log holds more entries than this
MAX_LOG = 2 * SNAPSHOT_EVERY + 5


def _check_log_bounded(c: Cluster) -> None:
    for node in c.nodes:
        if node.alive:
            assert len(node.log.entries) <= MAX_LOG, (f"{node.name} keeps {len(node.log.entries)} entries "
                                                      f"although it snapshots every {SNAPSHOT_EVERY}")
            assert node.raft.last_index - node.raft.first_index + 1 <= MAX_LOG  # type: ignore[union-attr]


def _snapshot_common(*, disconnect: bool, unreliable: bool, crash: bool, seed: int) -> None:
    rng = random.Random(seed)
    c = lab_cluster(3, seed=seed, unreliable=unreliable, snapshot_entries=SNAPSHOT_EVERY,
                    raft=(("snapshot_chunk_bytes", 64),))

    counter = iter(range(10**9))

    def cmd() -> bytes:  # real KV writes: snapshots carry state, several 64-byte chunks of it
        return _put(next(counter))

    c.one(cmd(), 3)
    leader1 = c.check_one_leader()
    for i in range(30):
        victim, sender = leader1 % 3 + 1, leader1
        if i % 3 == 1:
            victim, sender = sender, victim
        if disconnect:
            c.disconnect(victim)
            c.one(cmd(), 2)
        if crash:
            c.crash(victim)
            c.one(cmd(), 2)
        for _ in range(SNAPSHOT_EVERY // 2 + rng.randrange(SNAPSHOT_EVERY)):  # enough to force a snapshot
            c.node(sender).propose(cmd())
        c.one(cmd(), 3 if not (disconnect or crash) else 2)
        _check_log_bounded(c)
        if disconnect:
            c.connect(victim)  # it is behind the others' snapshots now: needs InstallSnapshot
            c.one(cmd(), 3)
            leader1 = c.check_one_leader()
        if crash:
            c.node(victim).start()
            c.one(cmd(), 3)
            leader1 = c.check_one_leader()
    assert sum(n.compactions for n in c.nodes) > 0, "no node ever snapshotted"
    if disconnect or crash:
        sent = c.net.stats.sent.get("SNAPSHOT", 0)
        assert sent > 0, "no InstallSnapshot was ever sent to the lagging follower"
    last = c.one(cmd(), 3)
    assert c.run_until(lambda: all(n.applied >= last for n in c.nodes), 2_000_000)
    assert len({tuple(n.kv.items()) for n in c.nodes if n.applied == last}) == 1  # type: ignore[union-attr]


def test_snapshot_basic_log_stays_bounded() -> None:
    _snapshot_common(disconnect=False, unreliable=False, crash=False, seed=31)


def test_snapshot_install_to_lagging_follower() -> None:
    _snapshot_common(disconnect=True, unreliable=False, crash=False, seed=32)


def test_snapshot_install_unreliable() -> None:
    _snapshot_common(disconnect=True, unreliable=True, crash=False, seed=33)


def test_snapshot_install_with_crashes() -> None:
    _snapshot_common(disconnect=False, unreliable=False, crash=True, seed=34)


def test_snapshot_install_unreliable_with_crashes() -> None:
    _snapshot_common(disconnect=False, unreliable=True, crash=True, seed=35)


def test_snapshot_all_nodes_crash() -> None:
    rng = random.Random(36)
    c = lab_cluster(3, seed=36, snapshot_entries=SNAPSHOT_EVERY)
    c.one(b"%d" % rng.randrange(10**9), 3)
    for _ in range(5):
        for _ in range(SNAPSHOT_EVERY // 2 + rng.randrange(SNAPSHOT_EVERY)):
            c.one(b"%d" % rng.randrange(10**9), 3)
        index1 = c.one(b"%d" % rng.randrange(10**9), 3)
        for i in c.ids:
            c.crash(i)
        for i in c.ids:
            c.node(i).start()
        index2 = c.one(b"%d" % rng.randrange(10**9), 3)
        assert index2 >= index1 + 1, f"the log went back: {index2} after {index1}"
    assert all(n.log.snapshot is not None for n in c.nodes)


def _put(n: int) -> bytes:
    """A KV command that succeeds (a fresh key), so the state machines and their snapshots hold real state."""
    return encode_command(Command(request_id=f"r{n}", op=Op.PUT, key=f"k{n}", value=f"v{n}", expected_version=0))


def test_restart_from_a_snapshot() -> None:
    c = lab_cluster(3, seed=37, snapshot_entries=SNAPSHOT_EVERY)
    c.one(_put(0), 3)
    for n in range(1, SNAPSHOT_EVERY + 3):
        c.one(_put(n), 3)
    before = {n.id: n.log.snap_index for n in c.nodes}
    assert all(v > 0 for v in before.values()), f"no snapshot was taken: {before}"
    for i in c.ids:
        c.crash(i)
    for i in c.ids:
        c.node(i).start()  # the state machine comes back from the snapshot, the rest from the log
        assert c.node(i).applied >= before[i]
        assert c.node(i).kv.get("k1") == ("v1", 1)  # type: ignore[union-attr]
    c.one(_put(100), 3)
    for i in c.ids:
        c.crash(i)
    for i in c.ids:
        c.node(i).start()
    last = c.one(_put(101), 3)
    assert c.run_until(lambda: all(n.applied == last for n in c.nodes), 1_000_000)
    states = {tuple(n.kv.items()) for n in c.nodes}  # type: ignore[union-attr]
    assert len(states) == 1, "the state machines differ after restarting from snapshots"
    assert len(next(iter(states))) == SNAPSHOT_EVERY + 3 + 2
