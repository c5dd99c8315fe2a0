"""The node driver keeps the Ready contract: what promises durability leaves only after the (slow) fsync, and a
crash during the fsync loses the unsynced writes and the promises with them."""

from __future__ import annotations

from raftkv.core import Message, MessageType
from raftkv.sim import Cluster, ClusterConfig, DiskFaults, LinkFaults

SYNC = 50_000  # us: a slow disk, so an early send would stand out
HOP = 1_000  # us: every message takes exactly this long


def _cluster() -> tuple[Cluster, list[tuple[int, Message]]]:
    c = Cluster(ClusterConfig(nodes=3, link=LinkFaults(min_delay=HOP, max_delay=HOP), sync_min_us=SYNC,
                              sync_max_us=SYNC, raft=(("election_tick", 30), ("heartbeat_tick", 3))), seed=3)
    sent: list[tuple[int, Message]] = []
    c.net.observers.append(lambda s, d, m: sent.append((c.now, m)) if isinstance(m, Message) else None)
    return c, sent


def test_votes_and_acknowledgements_leave_only_after_the_fsync() -> None:
    c, sent = _cluster()
    leader = c.node(c.check_one_leader())
    for k in range(5):
        leader.propose(b"x%d" % k)
        c.run_for(200_000)
    votes = {(m.src, m.dst, m.term): t for t, m in sent if m.type is MessageType.VOTE}
    granted = [(t, m) for t, m in sent if m.type is MessageType.VOTE_RESP and not m.reject]
    assert granted
    for t, m in granted:
        asked = votes[(m.dst, m.src, m.term)]
        assert t >= asked + HOP + SYNC, f"{m.src} granted its vote {t - asked}us after being asked: before its fsync"
    appends = [(t, m) for t, m in sent if m.type is MessageType.APPEND and m.entries]
    acks = [(t, m) for t, m in sent if m.type is MessageType.APPEND_RESP and not m.reject]
    assert appends and acks
    for t, ack in acks:
        carried = [ts for ts, a in appends if a.dst == ack.src and a.entries[-1].index == ack.index]
        if carried:  # the ack of an APPEND that brought new entries comes after the entries are synced
            assert t >= min(carried) + HOP + SYNC, f"{ack.src} acknowledged index {ack.index} before syncing it"


def test_a_crash_in_the_fsync_loses_the_unsynced_writes_and_sends_no_promise() -> None:
    c, sent = _cluster()
    leader = c.node(c.check_one_leader())
    follower = c.node(next(i for i in c.ids if i != leader.id))
    follower.disk.faults = DiskFaults(flush_some=0.0, tear=0.0)
    c.run_for(100_000)
    durable = follower.disk.read()
    index = leader.propose(b"lost on the follower")
    assert index is not None
    assert c.run_until(lambda: follower.busy and follower.disk.unsynced() > 0, 100_000, poll_us=100)
    c.crash(follower.id)
    assert follower.disk.read() == durable  # the write never synced: gone
    acks = [m for _, m in sent if m.type is MessageType.APPEND_RESP and m.src == follower.name and m.index >= index]
    assert not acks, "the follower acknowledged an entry it never made durable"
    follower.start()
    assert follower.log.last_index < index
    c.wait_committed(index, 3)
