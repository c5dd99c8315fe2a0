"""The node: asyncio around the sans-I/O Raft core and the KV state machine.

One `ready loop` owns the core's output and follows its contract for every Ready:
  send `messages` (they promise nothing; a leader's appends go out while it writes its own copy)
  -> persist snapshot / entries / hard state on the WAL thread (one write + one fdatasync per batch)
  -> send `messages_after_persist` (votes, acknowledgements: only now are they true)
  -> restore a received snapshot, apply `committed_entries`, serve `read_states` -> `advance`.
While the WAL thread syncs, the event loop keeps accepting requests; their proposals queue up and go into the next
Ready as one `propose_many` batch: that is the group commit (one fsync covers every write that arrived meanwhile).
A Ready whose only durable change is the commit index is not written at all (it rides along with the next synced
batch): the commit index may be lost safely (the core's HardState contract), so committing never costs a disk
flush or a trip to the WAL thread of its own.

Writes: a request becomes a `Command` with a request id unique to this node's boot, is proposed, and its future
resolves when an entry with that request id is applied here. If the deadline passes first, or this node stops
being leader, the answer is MAYBE (`MaybeError`): the entry may still commit under the next leader.
Linearizable reads, on the leader or any follower: queued reads share one ReadIndex round (at most one round in
flight; every read queued before the round began is covered by it; a follower's round is forwarded to the leader
by the core) and are served from the local state machine once it has applied the read index. Followers serving
reads spreads the HTTP work of reads over every node; the leader only pays one heartbeat round per batch.

Snapshots: after `snapshot_entries` applied entries, the KV state is copied on the loop (a shallow copy of the
key table: milliseconds) and the copy is serialized on the snapshot thread while the loop goes on applying,
serving, heartbeating and persisting; then the core compacts its log and the snapshot thread writes the file
durably; only then are WAL segments covered by it deleted (on the WAL thread, the only thread that touches the
WAL).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from raftkv.core import (
    Entry,
    EntryKind,
    Message,
    NotLeader,
    ProposalDropped,
    ProtocolError,
    Raft,
    RaftConfig,
    Role,
    SoftState,
)
from raftkv.failpoints import FAILPOINTS, for_layer
from raftkv.kv import ClientSession, Command, FrozenState, KVStore, Op, Result, SnapshotError, encode_command

from .config import ServerConfig
from .leaderships import LeadershipJournal
from .metrics import Metrics
from .storage import DiskStorage, MemoryStorage
from .transport import Transport, cluster_id_of


class NodeError(Exception):
    """Base of the answers a request can get besides a result."""


class NotLeaderError(NodeError):
    def __init__(self, leader: str | None, leader_url: str | None) -> None:
        super().__init__(f"not the leader; leader is {leader or 'unknown'}")
        self.leader = leader
        self.leader_url = leader_url


class UnavailableError(NodeError):
    """Definite: nothing was proposed (or it is a read)."""


class MaybeError(NodeError):
    """Indefinite: proposed, but the commit could not be confirmed."""


@dataclass(slots=True)
class _ReadRound:
    waiters: list[tuple[str, asyncio.Future[tuple[str, int] | None]]]
    started: float


class Node:
    MAX_PENDING = 20_000

    def __init__(self, cfg: ServerConfig, log: logging.Logger) -> None:
        self.cfg = cfg
        self.log = log
        self.metrics = Metrics(cfg.id)
        self._kv_failpoints = for_layer(cfg.failpoints, "kv")
        self.kv = KVStore(failpoints=self._kv_failpoints)
        # FAILPOINT definite-on-ambiguous (raftkv/failpoints.py): a write whose fate is unknown is answered with
        # the definite "unavailable" instead of "maybe".
        self._ambiguous: type[NodeError] = (UnavailableError if "definite-on-ambiguous" in cfg.failpoints
                                            else MaybeError)
        self.raft: Raft | None = None
        self.storage: DiskStorage | MemoryStorage = MemoryStorage()
        self.client_urls: dict[str, str] = {cfg.id: cfg.advertised_client_url}
        self._wake = asyncio.Event()
        self._proposals: list[tuple[bytes, str, asyncio.Future[Result]]] = []
        self._pending: dict[str, asyncio.Future[Result]] = {}
        self._read_queue: list[tuple[str, asyncio.Future[tuple[str, int] | None]]] = []
        self._read_rounds: dict[bytes, _ReadRound] = {}
        self._read_waiting: list[tuple[int, _ReadRound]] = []  # confirmed, waiting for apply
        self._read_seq = 0
        self._deadlines: list[tuple[float, int, asyncio.Future[Any], str | None]] = []
        self._dl_seq = 0
        self._req_seq = 0
        self._boot = os.urandom(4).hex()
        self._ctx_prefix = f"{cfg.id}.{self._boot}.".encode()
        self._role = Role.FOLLOWER
        self._leader: str | None = None
        self._term = 0
        self.snapshot_index = 0
        self.snapshot_term = 0
        self._snap_due: FrozenState | None = None  # the state the snapshotter should make a snapshot of
        self._snap_wake = asyncio.Event()
        self._snapshotting = False
        self.stopping = False
        self._wal_exec = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wal")
        self._snap_exec = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="snap")
        self.transport: Transport | None = None
        self._tick_s = cfg.tick_ms / 1000
        self.leaderships = LeadershipJournal(None, log)  # the terms this node led (recover() reads its journal)
        self._leaderships_seen = 0  # the core's leadership_count already noted

    # -- start-up -----------------------------------------------------------------------------------------------

    def recover(self) -> None:
        """Load durable state (blocking; before serving) and build the core."""
        cfg = self.cfg
        hard_state = snapshot = None
        entries: list = []
        for name in sorted(cfg.failpoints):
            fp = FAILPOINTS[name]
            self.log.warning("FAILPOINT ENABLED: %s (%s layer) PLANTS A BUG ON PURPOSE: %s", name, fp.layer,
                             fp.mimics)
            self.metrics.failpoint.labels(name=name).set(1)
        self.leaderships = LeadershipJournal.open(None if cfg.memory else cfg.data_dir, self.log)
        if cfg.memory:
            self.log.warning("RUNNING WITH --memory: NOTHING IS WRITTEN TO DISK; ALL STATE IS LOST ON RESTART")
        else:
            assert cfg.data_dir is not None
            self.storage, rec = DiskStorage.open(cfg.data_dir, segment_bytes=cfg.segment_bytes, log=self.log,
                                                 failpoints=for_layer(cfg.failpoints, "storage"))
            for a in rec.actions:
                self.log.info("recovery: %s", a)
            hard_state, snapshot, entries = rec.hard_state, rec.snapshot, rec.entries
        applied = 0
        if snapshot is not None:
            self.kv.restore(snapshot.data)
            applied = snapshot.meta.index
            self.snapshot_index, self.snapshot_term = snapshot.meta.index, snapshot.meta.term
        rng = random.Random(cfg.seed if cfg.seed is not None else int.from_bytes(os.urandom(8), "big"))
        self.raft = Raft(RaftConfig(id=cfg.id, peers=tuple(sorted(cfg.peers)), rng=rng,
                                    election_tick=cfg.election_ticks, heartbeat_tick=cfg.heartbeat_ticks,
                                    lease_reads=cfg.lease, failpoints=for_layer(cfg.failpoints, "core")),
                         hard_state=hard_state, snapshot=snapshot, entries=entries, applied=applied)
        self._term = self.raft.term
        self.metrics.set_role(self._role.value)
        self.metrics.set_leader(None)
        self.log.info("started: term %d, log %d..%d, commit %d, snapshot index %d", self.raft.term,
                      self.raft.first_index, self.raft.last_index, self.raft.commit_index, self.snapshot_index)

    def make_transport(self) -> Transport:
        cfg = self.cfg
        m = self.metrics
        secret = cfg.peer_secret()
        if secret is None:
            self.log.warning("PEERS ARE NOT AUTHENTICATED: anyone who reaches %s can speak as a member of this "
                             "cluster. Start every node with the same --peer-secret-file.", cfg.listen)
        self.transport = Transport(
            node_id=cfg.id, peers=cfg.peers, cluster_id=cfg.cluster_id if cfg.cluster_id is not None
            else cluster_id_of(cfg.peers), client_url=cfg.advertised_client_url, on_message=self.on_message,
            on_hello=self._on_hello, log=self.log, secret=secret or b"", max_frame=cfg.max_frame,
            on_peer_state=lambda p, up: m.peer_up.labels(peer=p).set(1 if up else 0),
            on_drop=lambda p: m.peer_dropped.labels(peer=p).inc(),
            on_reject=lambda why: m.peer_rejected.inc(),
            on_auth_failure=lambda why: m.peer_auth_failures.inc())
        return self.transport

    def _on_hello(self, peer: str, url: str) -> None:
        if self.client_urls.get(peer) != url:
            self.client_urls[peer] = url
            self.log.info("peer %s serves clients at %s", peer, url)

    # -- inputs -------------------------------------------------------------------------------------------------

    def on_message(self, msg: Message) -> None:
        assert self.raft is not None
        try:
            self.raft.step(msg)
        except ProtocolError as e:
            self.log.warning("rejected %s from %s: %s", msg.type.name, msg.src, e)
            return
        self._wake.set()

    async def run_ticker(self) -> None:
        assert self.raft is not None
        tick = self._tick_s
        nxt = time.monotonic()
        while True:
            nxt += tick
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))
            if time.monotonic() - nxt > 10 * tick:  # we were stalled (e.g. SIGSTOP): do not replay the ticks
                nxt = time.monotonic()
            self.raft.tick()
            self._expire_read_rounds()
            self._expire_deadlines()
            self._wake.set()

    # -- requests -----------------------------------------------------------------------------------------------

    @property
    def leader_url(self) -> str | None:
        return self.client_urls.get(self._leader) if self._leader else None

    @property
    def is_leader(self) -> bool:
        return self._role is Role.LEADER

    def _not_leader(self) -> NodeError:
        if self._leader and self._leader != self.cfg.id and self.leader_url:
            return NotLeaderError(self._leader, self.leader_url)
        return UnavailableError(f"no leader known (this node is {self._role.value}, term {self._term})")

    async def write(self, op: Op, key: str, value: str | None, version: int, timeout: float,
                    session: ClientSession | None = None) -> Result:
        """Propose and wait. Raises NotLeaderError/UnavailableError (definite) or MaybeError (indefinite); a
        `session` makes the write apply at most once however often it is retried (raftkv/kv/sessions.py)."""
        if self.stopping:
            raise UnavailableError("node is shutting down")
        if self._role is not Role.LEADER:
            raise self._not_leader()
        if len(self._pending) >= self.MAX_PENDING:
            raise UnavailableError("overloaded: too many writes in flight")
        self._req_seq += 1
        rid = f"{self.cfg.id}.{self._boot}.{self._req_seq}"
        data = encode_command(Command(request_id=rid, op=op, key=key, value=value, expected_version=version,
                                      session=session))
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._proposals.append((data, rid, fut))
        self._add_deadline(timeout, fut, rid)
        self._wake.set()
        return await fut

    async def read(self, key: str, timeout: float, *, lease: bool = False) -> tuple[str, int] | None:
        """A linearizable read by ReadIndex, on the leader or on a follower (the core forwards the request to the
        leader; the follower serves it once it has applied the read index). With the core's lease reads on, the
        leader answers from its lease. `lease=True` asks for a lease read: leader only (else NotLeaderError).
        It waits at most two election timeouts, then answers unavailable so the client tries elsewhere."""
        if self.stopping:
            raise UnavailableError("node is shutting down")
        if self._role is not Role.LEADER and (lease or self._leader is None):
            raise self._not_leader()
        # A read that a quorum cannot confirm within two election timeouts will not be confirmed here soon (this
        # node is cut off, or a leader it knew is gone): answer unavailable then, so the client tries elsewhere
        # within its own deadline.
        timeout = min(timeout, max(0.5, 2 * self._tick_s * self.cfg.election_ticks))
        fut: asyncio.Future[tuple[str, int] | None] = asyncio.get_running_loop().create_future()
        self._read_queue.append((key, fut))
        self._add_deadline(timeout, fut, None)
        self._wake.set()
        return await fut

    def _add_deadline(self, timeout: float, fut: asyncio.Future[Any], rid: str | None) -> None:
        """Deadlines live in one heap swept every tick (cheaper than a timer per request; a tick late at most)."""
        self._dl_seq += 1
        heapq.heappush(self._deadlines, (time.monotonic() + timeout, self._dl_seq, fut, rid))

    def _expire_deadlines(self) -> None:
        """A write proposed but not applied by its deadline is MAYBE; one never proposed (still queued) and a
        read are UNAVAILABLE (definite: nothing happened)."""
        dl, now = self._deadlines, time.monotonic()
        while dl and dl[0][0] <= now:
            _, _, fut, rid = heapq.heappop(dl)
            if fut.done():
                continue
            if rid is None:
                fut.set_exception(UnavailableError("read index not confirmed before the deadline"))
            elif self._pending.pop(rid, None) is not None:
                fut.set_exception(self._ambiguous("commit not confirmed before the deadline"))
            else:
                fut.set_exception(UnavailableError("not proposed before the deadline"))

    def read_stale(self, key: str) -> tuple[str, int] | None:
        return self.kv.get(key)

    # -- the ready loop -----------------------------------------------------------------------------------------

    def _drain_proposals(self) -> None:
        if not self._proposals:
            return
        batch, self._proposals = self._proposals, []
        batch = [p for p in batch if not p[2].done()]
        if not batch:
            return
        assert self.raft is not None
        try:
            self.raft.propose_many([d for d, _, _ in batch])
        except NotLeader:
            err: NodeError = self._not_leader()
        except ProposalDropped as e:
            err = UnavailableError(f"proposal dropped: {e.reason}")
        else:
            for _, rid, fut in batch:
                self._pending[rid] = fut
            self.metrics.proposals.inc(len(batch))
            return
        for _, _, fut in batch:
            fut.set_exception(err)

    def _issue_reads(self) -> None:
        if not self._read_queue or self._read_rounds:
            return
        assert self.raft is not None
        waiters, self._read_queue = self._read_queue, []
        self._read_seq += 1
        # Unique per node and boot: the leader serves rounds of several followers at once.
        ctx = self._ctx_prefix + self._read_seq.to_bytes(8, "big")
        try:
            self.raft.read_index(ctx)
        except NotLeader:
            err: NodeError = self._not_leader()
        except ProposalDropped as e:
            err = UnavailableError(f"read dropped: {e.reason}")
        else:
            self._read_rounds[ctx] = _ReadRound(waiters, time.monotonic())
            return
        for _, fut in waiters:
            if not fut.done():
                fut.set_exception(err)

    def _expire_read_rounds(self) -> None:
        """A ReadIndex round may vanish (lost message, leader change): re-queue its reads after a timeout."""
        if not self._read_rounds:
            return
        limit = self._tick_s * self.cfg.election_ticks
        now = time.monotonic()
        for ctx, rnd in list(self._read_rounds.items()):
            if now - rnd.started > limit:
                del self._read_rounds[ctx]
                self._read_queue[:0] = [w for w in rnd.waiters if not w[1].done()]

    def _serve_reads(self) -> None:
        if not self._read_waiting:
            return
        applied = self.kv.applied_index
        still = []
        for index, rnd in self._read_waiting:
            if index > applied:
                still.append((index, rnd))
                continue
            get = self.kv.get
            for key, fut in rnd.waiters:
                if not fut.done():
                    fut.set_result(get(key))
            self.metrics.read_index_latency.observe(time.monotonic() - rnd.started)
        self._read_waiting = still

    def _on_soft_state(self, ss: SoftState) -> None:
        m = self.metrics
        if ss.role is not self._role:
            self.log.info("role %s -> %s (term %d)", self._role.value, ss.role.value, self.raft.term)  # type: ignore
            if ss.role is Role.LEADER:
                m.elections_won.inc()
            if self._role is Role.LEADER:
                self._lost_leadership()
            self._role = ss.role
            m.set_role(ss.role.value)
        if ss.leader != self._leader:
            if self._read_rounds:  # forwarded ReadIndex rounds die with the old leader: ask the new one
                for rnd in self._read_rounds.values():
                    self._read_queue[:0] = [w for w in rnd.waiters if not w[1].done()]
                self._read_rounds.clear()
            self.log.info("leader %s -> %s (term %d)", self._leader, ss.leader, self.raft.term)  # type: ignore
            self._leader = ss.leader
            m.leader_changes.inc()
            m.set_leader(ss.leader)

    def _note_leaderships(self) -> None:
        """Record the terms the core became leader in since the last Ready: in memory at once, in the journal on
        the WAL thread (queued before this Ready's persist; raftkv.server.leaderships says why not on the loop)."""
        raft = self.raft
        assert raft is not None
        count, led = raft.leadership_count, raft.leaderships
        new = self.leaderships.note(led[max(0, len(led) - (count - self._leaderships_seen)):])
        self._leaderships_seen = count
        self._wal_exec.submit(self.leaderships.append_sync, new)

    def _lost_leadership(self) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(self._ambiguous("leadership lost before the commit was confirmed"))
        err = UnavailableError("leadership lost before the read was confirmed")
        rounds = list(self._read_rounds.values()) + [r for _, r in self._read_waiting]
        self._read_rounds.clear()
        self._read_waiting.clear()
        for rnd in rounds:
            for _, rfut in rnd.waiters:
                if not rfut.done():
                    rfut.set_exception(err)

    def _apply(self, entries: Sequence[Entry]) -> None:
        """Apply committed entries in order, resolving the writes proposed here."""
        kv = self.kv
        pending = self._pending
        for e in entries:
            if e.index <= kv.applied_index:
                continue
            if e.kind is EntryKind.NOOP or not e.data:
                kv.note_applied(e.index, e.term, e.data)
                continue
            res = kv.apply(e.index, e.data, e.term)
            fut = pending.pop(res.request_id, None)
            if fut is not None and not fut.done():
                fut.set_result(res)

    async def run_ready_loop(self) -> None:
        assert self.raft is not None and self.transport is not None
        raft, transport, storage, m = self.raft, self.transport, self.storage, self.metrics
        loop = asyncio.get_running_loop()
        durable_hs = raft.term, raft.vote
        while True:
            await self._wake.wait()
            # One more loop iteration before cutting the batch: requests and peer answers that arrived in the
            # same poll join it (bigger batches: fewer Readys, fsyncs and messages per write).
            await asyncio.sleep(0)
            self._wake.clear()
            self._drain_proposals()
            self._issue_reads()
            if not raft.has_ready():
                continue
            rd = raft.ready()
            if raft.leadership_count != self._leaderships_seen:
                self._note_leaderships()
            if rd.soft_state is not None:
                self._on_soft_state(rd.soft_state)
            if rd.hard_state is not None and rd.hard_state.term != self._term:
                self._term = rd.hard_state.term
                # A new term with our own vote is an election we started (seen even when candidate and leader
                # follow each other within one Ready, as in a one-node cluster).
                if rd.hard_state.vote == self.cfg.id:
                    m.elections.inc()
                self.log.info("term %d (vote %s)", self._term, rd.hard_state.vote)
            if rd.messages:
                transport.send(rd.messages)
            if rd.snapshot is not None:
                # Restore into a fresh store BEFORE anything reaches the disk: a snapshot whose data is not a KV
                # snapshot (a bug elsewhere) stops the node with its durable state untouched, instead of
                # poisoning the disk so that it could never restart. Off the loop: the loop keeps stepping messages
                # (heartbeats keep this follower's election timer quiet) and serving stale reads meanwhile.
                restored = KVStore(failpoints=self._kv_failpoints)
                try:
                    await loop.run_in_executor(self._snap_exec, restored.restore, rd.snapshot.data)
                except SnapshotError as e:
                    self.log.critical("the leader's snapshot at index %d is not a KV snapshot (%s): stopping "
                                      "before it reaches the disk", rd.snapshot.meta.index, e)
                    raise
            hs = rd.hard_state
            needs_sync = bool(rd.entries) or rd.snapshot is not None or (
                hs is not None and (hs.term, hs.vote) != durable_hs)
            if needs_sync:
                t0 = time.perf_counter()
                stats = await loop.run_in_executor(self._wal_exec, storage.persist_sync, rd)
                m.append_latency.observe(time.perf_counter() - t0)
                m.fsync_latency.observe(stats.fsync_seconds)
                m.wal_bytes.inc(stats.bytes)
                if rd.entries:
                    m.batch_entries.observe(len(rd.entries))
                if hs is not None:
                    durable_hs = hs.term, hs.vote
            elif hs is not None:
                # Only the commit index moved: losing it is safe (the core's HardState contract), so it is not
                # written now (no trip to the WAL thread); the next synced batch or segment header carries it.
                storage.note_commit_only(hs)
            if rd.snapshot is not None:
                self.kv = restored  # built and checked before the persist above
                meta = rd.snapshot.meta
                self.snapshot_index, self.snapshot_term = meta.index, meta.term
                m.snapshots.labels(kind="installed").inc()
                m.snapshot_bytes.set(len(rd.snapshot.data))
                self.log.info("installed snapshot from the leader: index %d term %d, %d bytes", meta.index,
                              meta.term, len(rd.snapshot.data))
            if rd.messages_after_persist:
                transport.send(rd.messages_after_persist)
            if rd.committed_entries:
                self._apply(rd.committed_entries)
            for rs in rd.read_states:
                rnd = self._read_rounds.pop(rs.context, None)
                if rnd is not None:
                    self._read_waiting.append((rs.index, rnd))
            raft.advance(rd)
            self._serve_reads()
            m.commit.set(raft.commit_index)
            m.applied.set(self.kv.applied_index)
            m.term.set(raft.term)
            self._maybe_snapshot()
            if self._proposals or self._read_queue or raft.has_ready():
                self._wake.set()

    # -- snapshots ----------------------------------------------------------------------------------------------

    def _maybe_snapshot(self) -> None:
        applied = self.kv.applied_index
        if self._snapshotting or applied - self.snapshot_index < self.cfg.snapshot_entries:
            return
        self._snapshotting = True
        # The state at `applied`, detached from the applies that follow: the snapshot thread serializes the copy.
        self._snap_due = self.kv.frozen()
        self._snap_wake.set()

    async def run_snapshotter(self) -> None:
        """Make a snapshot off the event loop: the copy `_maybe_snapshot` took is serialized on the snapshot
        thread while the loop goes on applying and serving; then the core compacts its log, the file is written
        durably (snapshot thread) and WAL segments it covers are deleted (WAL thread)."""
        loop = asyncio.get_running_loop()
        assert self.raft is not None
        while True:
            await self._snap_wake.wait()
            self._snap_wake.clear()
            frozen, self._snap_due = self._snap_due, None
            if frozen is None:
                continue
            index = frozen.applied
            try:
                data = await loop.run_in_executor(self._snap_exec, frozen.encode)
                if index < self.snapshot_index:  # a snapshot from the leader was installed meanwhile
                    continue
                snap = self.raft.compact(index, data)
                self.snapshot_index, self.snapshot_term = snap.meta.index, snap.meta.term
                self.log.info("snapshot made at index %d term %d (%d bytes); log compacted", snap.meta.index,
                              snap.meta.term, len(snap.data))
                self.metrics.snapshots.labels(kind="made").inc()
                self.metrics.snapshot_bytes.set(len(snap.data))
                await loop.run_in_executor(self._snap_exec, self.storage.save_snapshot_sync, snap)
                await loop.run_in_executor(self._wal_exec, self.storage.release_sync, snap.meta.index)
            finally:
                self._snapshotting = False

    # -- status and shutdown ------------------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        r = self.raft
        assert r is not None and self.transport is not None
        return {
            # Role, term and leader from one source, the core, as it is now: the server's own copies follow the
            # core only once a Ready is persisted, so while a disk stalls they lag (a deposed leader reported
            # "leader" of the new term it had already seen, which read as two leaders of one term).
            "id": self.cfg.id, "role": r.role.value, "term": r.term, "leader": r.leader,
            "commit": r.commit_index, "applied": self.kv.applied_index,
            "last_snapshot": {"index": self.snapshot_index, "term": self.snapshot_term},
            "leader_url": self.leader_url, "first_index": r.first_index, "last_index": r.last_index,
            "keys": len(self.kv), "durable": self.storage.durable,
            "peers": {p: {"address": self.cfg.peers[p], "connected": self.transport.connected(p)}
                      for p in self.transport.senders},
            "pending_writes": len(self._pending),
            "failpoints": sorted(self.cfg.failpoints),
        }

    def waiting(self) -> tuple[int, int, int]:
        """(writes proposed and unanswered, writes queued and never proposed, reads waiting)."""
        rounds = list(self._read_rounds.values()) + [r for _, r in self._read_waiting]
        reads = len(self._read_queue) + sum(len(r.waiters) for r in rounds)
        return len(self._pending), len(self._proposals), reads

    def fail_all_pending(self, why: str) -> None:
        """Answer every waiting request: proposed writes `maybe` (they may still commit elsewhere), queued writes
        and reads `unavailable` (definite: nothing was proposed, reads have no effect)."""
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(self._ambiguous(why))
        queued, self._proposals = self._proposals, []
        for _, _, fut in queued:
            if not fut.done():
                fut.set_exception(UnavailableError(why))
        self._lost_leadership()
        for _, rfut in self._read_queue:
            if not rfut.done():
                rfut.set_exception(UnavailableError(why))
        self._read_queue.clear()

    def idle(self) -> bool:
        return not self._pending and not self._proposals and not self._read_queue and not self._read_rounds

    def close(self) -> None:
        """After the loops stopped: let the WAL and snapshot threads finish, then close the files."""
        self._snap_exec.shutdown(wait=True)
        self._wal_exec.shutdown(wait=True)
        self.storage.close()
