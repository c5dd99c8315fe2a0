"""Unit tests of the simulator's parts that do not need the Raft core: RNG split, event loop, network, disk,
durable log recovery, the invariant checker and the client-history checker."""

from __future__ import annotations

import random

import pytest

from raftkv.core import ConfigError, Entry, HardState, Raft, RaftConfig, Snapshot, SnapshotMeta
from raftkv.kv import Command, Op, Outcome, Result, encode_command
from raftkv.sim.client import OpRecord
from raftkv.sim.disk import Disk, DiskFaults, TornRecord
from raftkv.sim.history import AppliedLog, check_history
from raftkv.sim.invariants import Invariants, InvariantViolation, LogView
from raftkv.sim.loop import EventLoop
from raftkv.sim.network import LinkFaults, Network
from raftkv.sim.rng import child_rng, child_seed
from raftkv.sim.storage import (
    Append,
    Batch,
    Compact,
    DurableLog,
    Install,
    SetHardState,
    StorageError,
    recover,
)


# --- rng ---------------------------------------------------------------------------------------------------------
def test_child_rngs_are_stable_and_independent() -> None:
    assert child_seed(7, "network") == child_seed(7, "network")
    assert child_seed(7, "network") != child_seed(7, "disk")
    assert child_seed(7, "network") != child_seed(8, "network")
    a = [child_rng(7, "network").random() for _ in range(3)]
    assert a == [child_rng(7, "network").random() for _ in range(3)]
    # A known value pins the derivation: a change of it would silently change what every seed means.
    assert child_seed(1, "network") == int.from_bytes(__import__("hashlib").sha256(b"1/network").digest()[:8], "big")


def test_child_rng_rejects_bad_input() -> None:
    with pytest.raises(TypeError):
        child_seed("1", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        child_seed(1, "")


# --- loop --------------------------------------------------------------------------------------------------------
def test_loop_runs_in_time_then_schedule_order() -> None:
    loop = EventLoop()
    seen: list[str] = []
    loop.at(10, seen.append, "b")
    loop.at(5, seen.append, "a")
    loop.at(10, seen.append, "c")
    loop.run_until(9)
    assert seen == ["a"] and loop.now == 9
    loop.run_until(100)
    assert seen == ["a", "b", "c"] and loop.now == 100
    assert not loop.step()
    with pytest.raises(ValueError):
        loop.at(50, seen.append, "past")
    with pytest.raises(ValueError):
        loop.after(-1, seen.append, "negative")


# --- network -----------------------------------------------------------------------------------------------------
def _net(faults: LinkFaults, seed: int = 1) -> tuple[EventLoop, Network, list[tuple[int, int, object]]]:
    loop = EventLoop()
    got: list[tuple[int, int, object]] = []
    net = Network(loop, child_rng(seed, "network"), lambda s, d, p: got.append((s, d, p)), faults)
    return loop, net, got


def test_reliable_network_delivers_everything_once_within_the_delay_bounds() -> None:
    loop, net, got = _net(LinkFaults(min_delay=100, max_delay=200))
    for i in range(100):
        net.send(1, 2, i, "x", 10)
    loop.run_until(199)
    loop.run_until(200)
    assert sorted(p for _, _, p in got) == list(range(100))
    assert net.stats.sent == {"x": 100} and net.stats.bytes == {"x": 1000}


def test_lossy_network_loses_duplicates_and_reorders() -> None:
    loop, net, got = _net(LinkFaults(min_delay=0, max_delay=1000, loss=0.2, duplicate=0.2, reorder=0.2))
    for i in range(2000):
        net.send(1, 2, i, "x", 1)
    loop.run_until(10**9)
    payloads = [p for _, _, p in got]
    assert 0 < net.stats.dropped < 2000 and net.stats.duplicated > 0
    assert len(payloads) != len(set(payloads))  # duplicates arrived
    assert payloads != sorted(payloads)  # order was not kept
    assert len(set(payloads)) < 2000  # some were lost


def test_stream_messages_may_be_lost_but_never_duplicated() -> None:
    loop, net, got = _net(LinkFaults(min_delay=0, max_delay=1000, loss=0.2, duplicate=0.5))
    for i in range(2000):
        net.send(1001, 2, i, "client-request", 64, stream=True)
    loop.run_until(10**9)
    payloads = [p for _, _, p in got]
    assert len(payloads) == len(set(payloads)) < 2000 and net.stats.duplicated == 0


def test_partitions_are_directed_and_eat_messages_in_flight() -> None:
    loop, net, got = _net(LinkFaults(min_delay=100, max_delay=100))
    net.block(1, 2)
    net.send(1, 2, "cut", "x", 1)
    net.send(2, 1, "back", "x", 1)
    net.send(1, 3, "in flight", "x", 1)
    net.cut(1, 3)  # cut after sending: the message in flight is lost too
    loop.run_until(1000)
    assert got == [(2, 1, "back")]
    net.partition([[1, 2], [3]])
    assert not net.blocked(1, 2) and net.blocked(1, 3) and net.blocked(3, 2)
    net.heal()
    assert net.cuts() == []


def test_link_faults_validate() -> None:
    with pytest.raises(ValueError):
        LinkFaults(min_delay=5, max_delay=1)
    with pytest.raises(ValueError):
        LinkFaults(loss=1.5)


# --- disk --------------------------------------------------------------------------------------------------------
def test_disk_keeps_only_synced_records_when_nothing_is_flushed_or_torn() -> None:
    disk = Disk(child_rng(1, "disk"), DiskFaults(flush_some=0.0, tear=0.0))
    disk.write("a", 10)
    disk.sync()
    disk.write("b", 10)
    assert disk.unsynced() == 1
    disk.crash()
    assert disk.read() == ["a"]


def test_disk_crash_may_flush_a_prefix_and_tear_the_next_write() -> None:
    seen_torn = seen_flushed = False
    for seed in range(200):
        disk = Disk(child_rng(seed, "disk"), DiskFaults(flush_some=0.5, tear=0.5))
        disk.write("synced", 10)
        disk.sync()
        for name in ("w1", "w2", "w3"):
            disk.write(name, 10)
        disk.crash()
        records = disk.read()
        assert records[0] == "synced"
        plain = [r for r in records if not isinstance(r, TornRecord)]
        assert plain == ["synced", "w1", "w2", "w3"][: len(plain)]  # a prefix, in write order
        torn = [r for r in records if isinstance(r, TornRecord)]
        assert len(torn) <= 1 and (not torn or records[-1] is torn[0])  # only the tail can be torn
        if torn:
            seen_torn = True
            assert 0 <= torn[0].kept < torn[0].size
        seen_flushed |= len(plain) > 1
    assert seen_torn and seen_flushed


# --- durable log -------------------------------------------------------------------------------------------------
def _e(index: int, term: int, data: bytes = b"") -> Entry:
    return Entry(index=index, term=term, data=data)


def _snap(index: int, term: int, data: bytes = b"s") -> Snapshot:
    return Snapshot(meta=SnapshotMeta(index=index, term=term, voters=("n1",)), data=data)


def test_durable_log_appends_truncates_and_compacts() -> None:
    log = DurableLog()
    log.apply(Append((_e(1, 1), _e(2, 1), _e(3, 2))))
    log.apply(Append((_e(3, 3), _e(4, 3))))  # overwrites from index 3
    assert [log.term_at(i) for i in range(0, 6)] == [0, 1, 1, 3, 3, None]
    log.apply(Compact(_snap(2, 1)))
    assert log.snap_index == 2 and log.term_at(1) is None and log.term_at(2) == 1 and log.last_index == 4
    with pytest.raises(StorageError):
        log.apply(Append((_e(7, 3),)))  # a gap
    with pytest.raises(StorageError):
        log.apply(Compact(_snap(4, 2)))  # wrong term at 4
    log.apply(Install(_snap(10, 5)))
    assert log.entries == [] and log.last_index == 10 and log.term_at(10) == 5


def test_recovery_replays_synced_records_and_cuts_a_torn_tail() -> None:
    disk = Disk(child_rng(3, "disk"), DiskFaults(flush_some=0.0, tear=1.0))
    disk.write(Append((_e(1, 1), _e(2, 1))), 50)
    disk.write(SetHardState(HardState(term=1, vote="n1", commit=2)), 40)
    disk.sync()
    disk.write(Append((_e(3, 1),)), 30)
    disk.crash()
    assert isinstance(disk.read()[-1], TornRecord)
    log, torn = recover(disk)
    assert torn and log.last_index == 2 and log.hard_state.commit == 2
    assert not any(isinstance(r, TornRecord) for r in disk.read())  # the tail was cut off the disk
    log2, torn2 = recover(disk)
    assert not torn2 and log2.records() == log.records()


def test_a_ready_split_across_frames_can_be_unbootable_so_the_driver_writes_one_frame() -> None:
    """Why `Batch` exists: if a crash kept a Ready's entries (of a new term) but not its hard state, the core
    would refuse to restart. One frame per Ready: a crash keeps all of it or none."""
    with pytest.raises(ConfigError):
        Raft(RaftConfig(id="n1", peers=("n1", "n2", "n3"), rng=random.Random(1)),
             hard_state=HardState(term=1), entries=(_e(1, 2),))
    for seed in range(40):
        disk = Disk(child_rng(seed, "disk"), DiskFaults(flush_some=1.0, tear=0.5))
        disk.write(Batch((Append((_e(1, 2),)), SetHardState(HardState(term=2, vote="n2", commit=1)))), 80)
        disk.crash()
        log, _ = recover(disk)
        assert (log.last_index, log.hard_state.term) in ((0, 0), (1, 2))


# --- invariants --------------------------------------------------------------------------------------------------
def _view(terms: dict[int, int], snap: int = 0) -> LogView:
    return LogView(lambda i: 0 if i == 0 else terms.get(i), lambda: snap)


def test_two_leaders_in_one_term_are_caught() -> None:
    inv = Invariants()
    inv.register(1, _view({}))
    inv.register(2, _view({}))
    inv.on_leader(1, 3)
    inv.on_leader(1, 3)  # repeated reports are fine
    with pytest.raises(InvariantViolation) as caught:
        inv.on_leader(2, 3)
    assert caught.value.invariant == "election-safety"


def test_log_matching_catches_same_index_and_term_with_different_data_or_history() -> None:
    inv = Invariants()
    inv.on_persist(1, 5, 2, 1, b"x")
    inv.on_persist(2, 5, 2, 1, b"x")
    with pytest.raises(InvariantViolation, match="different data"):
        inv.on_persist(3, 5, 2, 1, b"y")
    with pytest.raises(InvariantViolation, match="follows term"):
        inv.on_persist(3, 5, 2, 2, b"x")


def test_commit_apply_and_leader_completeness() -> None:
    inv = Invariants()
    log1 = {1: 1, 2: 1}
    log2 = {1: 1, 2: 2}
    inv.register(1, _view(log1))
    inv.register(2, _view(log2))
    inv.on_commit(1, 2, 1)
    inv.on_apply(1, 1, 1)
    with pytest.raises(InvariantViolation) as caught:
        inv.on_apply(1, 3, 1)  # a gap
    assert caught.value.invariant == "state-machine-safety"
    with pytest.raises(InvariantViolation) as caught:
        inv.on_commit(2, 2, 2)  # another entry at a committed index
    assert caught.value.invariant == "state-machine-safety"
    with pytest.raises(InvariantViolation) as caught:
        inv.on_leader(2, 3)  # leads term 3 without 2@t1, committed in term 1
    assert caught.value.invariant == "leader-completeness"
    with pytest.raises(InvariantViolation) as caught:
        inv.on_commit(1, 1, 1)
    assert caught.value.invariant == "monotonic-commit"
    inv.register(1, _view(log1))  # a restart may lower the commit index
    inv.on_commit(1, 1, 1)


def test_a_stale_leader_may_lack_an_old_entry_committed_in_a_later_term() -> None:
    """Regression (seed 87, 3 nodes): 24@t4 committed by the leader of term 8 is not owed to a stale leader of
    term 5 (completeness is about the term an entry BECAME committed in, not its own term)."""
    inv = Invariants()
    inv.register(1, _view({24: 4}, snap=23))
    inv.register(2, _view({24: 5}, snap=23))
    inv.on_leader(2, 5)
    inv.on_leader(1, 8)
    inv.on_commit(1, 24, 8)  # no violation: n2 leads term 5 < 8
    inv.register(3, _view({24: 5}, snap=23))
    with pytest.raises(InvariantViolation, match="leader-completeness"):
        inv.on_leader(3, 9)  # but a leader of term 9 must have it


def test_snapshots_at_one_index_must_agree() -> None:
    inv = Invariants()
    inv.register(1, _view({1: 1}))
    inv.register(2, _view({1: 1}))
    inv.on_commit(1, 1, 1)
    inv.on_apply(1, 1, 1)
    inv.on_snapshot(1, 1, 1, b"state", restore=False)
    with pytest.raises(InvariantViolation):
        inv.on_snapshot(2, 1, 1, b"other", restore=True)


def test_acknowledged_write_must_be_committed() -> None:
    inv = Invariants()
    inv.register(1, _view({1: 1}))
    with pytest.raises(InvariantViolation) as caught:
        inv.on_ack(1, 1, 1)
    assert caught.value.invariant == "acknowledged-write-lost"


# --- history -----------------------------------------------------------------------------------------------------
def _put(applied: AppliedLog, index: int, key: str, value: str, version: int) -> None:
    data = encode_command(Command(request_id=f"r{index}", op=Op.PUT, key=key, value=value,
                                  expected_version=version - 1))
    applied.record(1, index, data, Result(request_id=f"r{index}", outcome=Outcome.OK, value=value, version=version))


def _op(f: str, key: str, *, value: str | None = None, t: str = "ok", version: int = 0, invoke: int = 0,
        complete: int = 1, result: str | None = None) -> OpRecord:
    return OpRecord(client=1, f=f, key=key, value=value, expected=max(0, version - 1), invoke=invoke,
                    complete=complete, type=t, result_value=result if f == "get" else value,
                    result_version=version)


def test_history_accepts_a_consistent_run() -> None:
    applied = AppliedLog()
    _put(applied, 1, "k", "a", 1)
    _put(applied, 2, "k", "b", 2)
    check_history([_op("put", "k", value="a", version=1, invoke=0, complete=5),
                   _op("get", "k", version=1, result="a", invoke=6, complete=7),
                   _op("put", "k", value="b", version=2, invoke=8, complete=9),
                   _op("get", "k", version=2, result="b", invoke=10, complete=11),
                   _op("put", "k", value="c", t="info", invoke=12, complete=13)], applied)


def test_history_catches_lost_write_stale_read_and_applied_failure() -> None:
    applied = AppliedLog()
    _put(applied, 1, "k", "a", 1)
    _put(applied, 2, "k", "b", 2)
    with pytest.raises(InvariantViolation, match="acknowledged-write-lost"):
        check_history([_op("put", "k", value="z", version=2)], applied)
    with pytest.raises(InvariantViolation, match="read-consistency"):
        check_history([_op("put", "k", value="b", version=2, invoke=0, complete=5),
                       _op("get", "k", version=1, result="a", invoke=6, complete=7)], applied)
    with pytest.raises(InvariantViolation, match="failed-write-applied"):
        check_history([_op("put", "k", value="b", t="fail")], applied)
    with pytest.raises(InvariantViolation, match="read-consistency"):
        check_history([_op("get", "k", version=2, result="a")], applied)
    other = AppliedLog()
    _put(other, 1, "k", "a", 1)
    with pytest.raises(InvariantViolation, match="state-machine-safety"):
        other.record(2, 1, b"", Result(request_id="r1", outcome=Outcome.INVALID))


# --- misuse of the scenario API ----------------------------------------------------------------------------------
def test_cluster_configuration_is_validated() -> None:
    from raftkv.sim import Cluster, ClusterConfig

    with pytest.raises(ValueError, match="at least one node"):
        ClusterConfig(nodes=0)
    with pytest.raises(ValueError, match="drift"):
        ClusterConfig(drift=1.5)
    with pytest.raises(TypeError, match="either"):
        Cluster(ClusterConfig(nodes=3), nodes=5)
    c = Cluster(nodes=3, seed=1)
    with pytest.raises(RuntimeError, match="already running"):
        c.node(1).start()
    with pytest.raises(ValueError, match="drift"):
        c.node(1).drift = -1.0
    c.crash(2)
    c.crash(2)  # crashing a crashed node is a no-op
    assert not c.node(2).alive
    c.node(2).start()
    assert c.node(2).alive and c.node(2).boots == 2
