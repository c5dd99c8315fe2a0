"""A peer's message, however wrong, never raises anything but ProtocolError and never halts the core."""

from __future__ import annotations

import contextlib

from core_cluster import Cluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftkv.core import Entry, EntryKind, Message, MessageType, ProtocolError, SnapshotMeta

IDS = ("n1", "n2", "n3")
SMALL = st.integers(min_value=0, max_value=12)


@st.composite
def messages(draw: st.DrawFn, dst: str) -> Message:
    index = draw(SMALL)
    base_term = draw(st.integers(1, 6))
    n = draw(st.integers(0, 4))
    terms = sorted(draw(st.lists(st.integers(1, 6), min_size=n, max_size=n)))
    entries = tuple(Entry(term=t, index=index + 1 + k, kind=draw(st.sampled_from(list(EntryKind))))
                    for k, t in enumerate(terms))
    meta = draw(st.none() | st.builds(lambda i, t: SnapshotMeta(index=i, term=t, voters=IDS),
                                      st.integers(1, 12), st.integers(1, 6)))
    return Message(
        type=draw(st.sampled_from(list(MessageType))), src=draw(st.sampled_from(IDS + ("n9",))), dst=dst,
        term=draw(SMALL), index=index, log_term=draw(st.integers(0, base_term)), entries=entries,
        commit=draw(st.integers(0, 20)), reject=draw(st.booleans()), hint_term=draw(SMALL),
        hint_index=draw(SMALL), snapshot=meta, offset=draw(st.integers(0, 40)),
        data=draw(st.binary(max_size=8)), done=draw(st.booleans()), context=draw(st.binary(max_size=2)),
        seq=draw(st.integers(0, 50)), transfer=draw(st.booleans()))


def build() -> Cluster:
    c = Cluster(3, seed=1, snapshot_chunk_bytes=8, check_quorum=True)
    c.elect("n1")
    for i in range(6):
        c.propose(f"v{i}".encode())
    c.tick()
    c.compact("n1")
    c.raft("n1").read_index(b"r")
    return c


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_peer_messages_raise_only_protocol_error(data: st.DataObject) -> None:
    c = build()
    for _ in range(data.draw(st.integers(1, 12))):
        dst = data.draw(st.sampled_from(IDS))
        msg = data.draw(messages(dst))
        if msg.src == dst:
            continue
        raft = c.raft(dst)
        with contextlib.suppress(ProtocolError):
            raft.step(msg)
        assert not raft.halted
        # The core keeps working: it can hand out its work and take ticks.
        c.process(dst)
        if data.draw(st.booleans()):
            raft.tick()
            c.process(dst)
    # No claim that the cluster converges afterwards: a forged APPEND with the current term and a high commit
    # index is indistinguishable from the real leader's, so it can make a follower commit entries the real leader
    # never had (Raft does not tolerate Byzantine peers). Later real APPENDs then conflict with that committed
    # entry, which the core reports as the ProtocolError it is; it must still never halt.
    c.queue.clear()
    for _ in range(60):
        for node_id in IDS:
            c.raft(node_id).tick()
        c.process_all()
        for _ in range(1000):  # bounded: a round of an idle 3-node cluster is a handful of messages
            if not c.queue:
                break
            msg = c.queue.popleft()
            with contextlib.suppress(ProtocolError):
                c.raft(msg.dst).step(msg)
            c.process(msg.dst)
    assert not any(c.raft(node_id).halted for node_id in IDS)
