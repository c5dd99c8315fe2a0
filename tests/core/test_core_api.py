"""The public face: value validation, configuration, the Ready/advance contract, errors and halting."""

from __future__ import annotations

import random

import pytest
from core_cluster import Cluster

from raftkv.core import (
    ConfigError,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    ProtocolError,
    Raft,
    RaftConfig,
    RaftHalted,
    Role,
    SnapshotMeta,
    SoftState,
    UsageError,
)

PEERS = ("n1", "n2", "n3")


def config(**kw: object) -> RaftConfig:
    base: dict[str, object] = {"id": "n1", "peers": PEERS, "rng": random.Random(1)}
    base.update(kw)
    return RaftConfig(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kw", "words"), [
    ({"id": ""}, "id"),
    ({"id": "n9"}, "include"),
    ({"peers": ("n1", "n1")}, "duplicates"),
    ({"peers": ["n1"]}, "tuple"),
    ({"rng": 4}, "random.Random"),
    ({"election_tick": 1}, "exceed"),
    ({"max_inflight_msgs": 0}, "max_inflight_msgs"),
    ({"pre_vote": 1}, "bool"),
    ({"lease_reads": True, "check_quorum": False}, "check_quorum"),
    ({"lease_margin_ticks": 10}, "lease_margin_ticks"),
])
def test_config_is_validated_when_built(kw: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        config(**kw)


@pytest.mark.parametrize("build", [
    lambda: Entry(term=0, index=1),
    lambda: Entry(term=1, index=0),
    lambda: Entry(term=1, index=1, data="str"),  # type: ignore[arg-type]
    lambda: Entry(term=1, index=1, kind=EntryKind.NOOP, data=b"x"),
    lambda: Entry(term=1, index=1, kind=0),  # type: ignore[arg-type]
    lambda: HardState(term=-1),
    lambda: HardState(vote=""),
    lambda: SnapshotMeta(index=3, term=0, voters=()),
    lambda: SnapshotMeta(index=1, term=1, voters=["a"]),  # type: ignore[arg-type]
    lambda: Message(type=MessageType.APPEND, src="a", dst="b", term=1, index=1,
                    entries=(Entry(term=1, index=3),)),
    lambda: Message(type=5, src="a", dst="b", term=1),  # type: ignore[arg-type]
    lambda: Message(type=MessageType.HEARTBEAT, src="a", dst="b", term=True),
    lambda: Message(type=MessageType.HEARTBEAT, src="a", dst="b", term=1, reject=1),  # type: ignore[arg-type]
])
def test_values_are_validated_when_built(build: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        build()  # type: ignore[operator]


def test_values_are_frozen_and_keyword_only() -> None:
    entry = Entry(term=1, index=1)
    with pytest.raises(AttributeError):
        entry.term = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Entry(1, 1)  # type: ignore[call-arg]


def test_ready_then_advance_in_order() -> None:
    raft = Raft(config(pre_vote=False))
    assert not raft.has_ready()
    with pytest.raises(UsageError):
        raft.ready()
    raft.campaign()
    assert raft.has_ready()
    rd = raft.ready()
    assert rd.must_sync and rd.soft_state == SoftState(role=Role.CANDIDATE, leader=None)
    assert not raft.has_ready()
    with pytest.raises(UsageError):
        raft.ready()  # not before advance
    raft.tick()  # inputs are fine meanwhile
    with pytest.raises(UsageError):
        raft.advance(type(rd)())  # not the Ready handed out
    raft.advance(rd)
    with pytest.raises(UsageError):
        raft.advance(rd)  # only once


def test_a_term_change_holds_every_message_until_persisted() -> None:
    raft = Raft(config(id="n2"))
    raft.step(Message(type=MessageType.HEARTBEAT, src="n1", dst="n2", term=3, seq=1))
    rd = raft.ready()
    assert rd.hard_state == HardState(term=3, vote=None, commit=0)
    assert not rd.messages and [m.type for m in rd.messages_after_persist] == [MessageType.HEARTBEAT_RESP]


def test_step_misuse_is_a_usage_error_and_a_foreign_peer_a_protocol_error() -> None:
    raft = Raft(config())
    with pytest.raises(UsageError):
        raft.step(Message(type=MessageType.HEARTBEAT, src="n2", dst="n3", term=1))
    with pytest.raises(UsageError):
        raft.step("not a message")  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        raft.step(Message(type=MessageType.HEARTBEAT, src="n1", dst="n1", term=1))  # from itself
    with pytest.raises(UsageError):
        raft.propose("str")  # type: ignore[arg-type]


def test_an_internal_error_halts_the_core() -> None:
    raft = Raft(config())

    def broken(msg: Message) -> None:
        raise KeyError("bug")

    raft._step = broken
    with pytest.raises(RaftHalted) as info:
        raft.step(Message(type=MessageType.HEARTBEAT, src="n2", dst="n1", term=0))
    assert isinstance(info.value.cause, KeyError)
    assert raft.halted
    for call in (raft.tick, raft.has_ready, lambda: raft.propose(b"x")):
        with pytest.raises(RaftHalted):
            call()


def test_persistence_across_restarts_of_one_a_majority_and_all() -> None:
    c = Cluster(5, seed=4)
    c.wait_leader()
    expected: list[bytes] = []
    for group in (["n1"], ["n2", "n3", "n4"], list(c.ids)):
        for _i in range(3):
            data = f"{len(expected)}".encode()
            leader = c.wait_leader()
            c.raft(leader).propose(data)
            c.deliver()
            expected.append(data)
        c.tick()
        for n in group:
            c.crash(n)
        for n in group:
            c.restart(n)
        c.tick(50)
    leader = c.wait_leader()
    c.propose(b"end", via=leader)
    c.tick(2)
    for n in c.ids:
        assert c.applied(n) == expected + [b"end"], n


def test_restart_replays_committed_entries_after_the_applied_index() -> None:
    c = Cluster(3, seed=1)
    c.wait_leader()
    for i in range(5):
        c.propose(f"v{i}".encode())
    c.tick()
    durable = c.nodes["n2"].durable
    raft = Raft(c.config("n2"), hard_state=durable.hard_state, entries=durable.entries)
    rd = raft.ready()
    assert [e.data for e in rd.committed_entries if e.kind is EntryKind.NORMAL] == [
        f"v{i}".encode() for i in range(5)]
    assert rd.hard_state is None and not rd.entries  # nothing new to persist


def test_status_reports_progress_on_the_leader() -> None:
    c = Cluster(3, seed=1)
    leader = c.wait_leader()
    c.propose(b"x")
    status = c.raft(leader).status()
    assert status.role is Role.LEADER and status.leader == leader
    assert {p.id for p in status.progress} == set(c.ids) - {leader}
    assert all(p.match == status.last_index for p in status.progress)
