"""Log compaction and InstallSnapshot."""

from __future__ import annotations

import random

import pytest
from core_cluster import Cluster

from raftkv.core import HardState, MessageType, Raft, RaftConfig, Snapshot, SnapshotMeta, UsageError


def lag_a_follower_behind_compaction(c: Cluster, values: list[bytes]) -> tuple[str, str]:
    """Crash a follower, commit `values` without it, compact the leader's log past them and restart the
    follower, so it can only catch up by InstallSnapshot. Returns (leader, lagging follower)."""
    leader = c.wait_leader()
    lagging = next(n for n in c.ids if n != leader)
    c.crash(lagging)
    for v in values:
        c.propose(v)
    c.tick()
    c.compact(leader)
    c.restart(lagging)
    return leader, lagging


def restart_all_and_check(c: Cluster, before: list[bytes], settle_ticks: int, end_ticks: int) -> None:
    """Restart every (crashed) node, let a leader be elected, commit one more value and check that every node
    applied `before` and then it."""
    for n in c.ids:
        c.restart(n)
    c.tick(settle_ticks)
    c.wait_leader()
    c.propose(b"end")
    c.tick(end_ticks)
    for n in c.ids:
        assert c.applied(n) == before + [b"end"], n


def test_compaction_keeps_the_log_bounded() -> None:
    c = Cluster(3, seed=1)
    leader = c.wait_leader()
    for i in range(200):
        c.propose(f"v{i}".encode())
        if i % 50 == 49:
            c.tick()
            for n in c.ids:
                c.compact(n)
    c.tick()
    for n in c.ids:
        raft = c.raft(n)
        assert raft.last_index - raft.first_index < 60
        assert len(c.nodes[n].durable.entries) < 60
    assert c.applied(leader) == [f"v{i}".encode() for i in range(200)]


def test_compact_refuses_indexes_not_applied_or_behind_the_snapshot() -> None:
    c = Cluster(3, seed=1)
    leader = c.wait_leader()
    c.propose(b"x")
    c.tick()
    raft = c.raft(leader)
    with pytest.raises(UsageError):
        raft.compact(raft.applied_index + 5, b"")
    c.compact(leader)
    with pytest.raises(UsageError):
        raft.compact(raft.first_index - 2, b"")


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_a_follower_behind_the_compaction_point_gets_the_snapshot_in_chunks(chunk: int) -> None:
    c = Cluster(3, seed=1, snapshot_chunk_bytes=chunk)
    leader, lagging = lag_a_follower_behind_compaction(c, [f"v{i}".encode() for i in range(30)])
    c.tick(5)
    chunks = [m for m in c.sent if m.type is MessageType.SNAPSHOT and m.dst == lagging]
    assert chunks and all(len(m.data) <= chunk for m in chunks)
    snapshot = c.nodes[leader].durable.snapshot
    assert snapshot is not None
    assert len(chunks) >= len(snapshot.data) // chunk
    assert c.nodes[lagging].snapshots_restored == 1
    assert c.applied(lagging) == c.applied(leader)
    c.propose(b"after")
    c.tick()
    assert c.applied(lagging)[-1] == b"after"


def test_snapshot_install_over_an_unreliable_network() -> None:
    c = Cluster(3, seed=3, snapshot_chunk_bytes=16)
    rng = random.Random(3)
    leader, lagging = lag_a_follower_behind_compaction(c, [f"value-{i}".encode() for i in range(40)])
    c.drop_filter = lambda m: m.type in (MessageType.SNAPSHOT, MessageType.SNAPSHOT_RESP) and rng.random() < 0.3
    for _ in range(300):
        c.tick()
        if c.nodes[lagging].applied_index >= c.raft(leader).commit_index:
            break
    assert c.applied(lagging) == c.applied(leader)


def test_a_follower_whose_log_already_holds_the_snapshot_point_keeps_its_log() -> None:
    c = Cluster(3, seed=1, check_quorum=False)
    c.elect("n1")
    for i in range(5):
        c.propose(f"v{i}".encode())
    c.tick()
    snap = c.compact("n1")
    n2 = c.raft("n2")
    last = n2.last_index
    n2.step(type(c.sent[0])(type=MessageType.SNAPSHOT, src="n1", dst="n2", term=1, snapshot=snap.meta,
                            data=snap.data, done=True))
    assert n2.last_index == last and n2.first_index == 1
    c.process("n2")
    assert c.nodes["n2"].snapshots_restored == 0


def test_restart_from_a_snapshot() -> None:
    c = Cluster(3, seed=1)
    c.wait_leader()
    for i in range(20):
        c.propose(f"v{i}".encode())
    c.tick()
    for n in c.ids:
        c.compact(n)
    for i in range(20, 25):
        c.propose(f"v{i}".encode())
    c.tick()
    for n in c.ids:
        c.crash(n)
    restart_all_and_check(c, [f"v{i}".encode() for i in range(25)], settle_ticks=40, end_ticks=2)


def test_all_nodes_crash_while_a_follower_installs_a_snapshot() -> None:
    c = Cluster(3, seed=2, snapshot_chunk_bytes=8)
    lag_a_follower_behind_compaction(c, [f"v{i}".encode() for i in range(30)])
    c.tick()  # part of the snapshot is sent, then everybody crashes
    for n in c.ids:
        c.crash(n)
    c.queue.clear()
    restart_all_and_check(c, [f"v{i}".encode() for i in range(30)], settle_ticks=60, end_ticks=3)


def test_restored_core_rejects_inconsistent_durable_state() -> None:
    config = RaftConfig(id="n1", peers=("n1", "n2", "n3"), rng=random.Random(1))
    snap = Snapshot(meta=SnapshotMeta(index=5, term=2, voters=("n1", "n2", "n3")), data=b"")
    with pytest.raises(UsageError):
        Raft(config, hard_state=HardState(term=1), snapshot=snap)  # term below the log's
    with pytest.raises(UsageError):
        Raft(config, hard_state=HardState(term=2, commit=9), snapshot=snap)  # commit beyond the log
    other = Snapshot(meta=SnapshotMeta(index=5, term=2, voters=("n1", "x")), data=b"")
    with pytest.raises(UsageError):
        Raft(config, hard_state=HardState(term=2), snapshot=other)
    raft = Raft(config, hard_state=HardState(term=2, commit=3), snapshot=snap)
    assert (raft.first_index, raft.last_index, raft.commit_index, raft.applied_index) == (6, 5, 5, 5)


def test_a_snapshot_of_another_membership_is_a_protocol_error() -> None:
    from raftkv.core import Message, ProtocolError

    c = Cluster(3, seed=1)
    c.elect("n1")
    meta = SnapshotMeta(index=9, term=1, voters=("n1", "n2", "x"))
    with pytest.raises(ProtocolError, match="voters"):
        c.raft("n2").step(Message(type=MessageType.SNAPSHOT, src="n1", dst="n2", term=1, snapshot=meta,
                                  data=b"", done=True))
    assert c.raft("n2").first_index == 1
