"""One simulated raftkv node: the real Raft core and KV state machine, driven by the Ready contract.

The driver follows `raftkv.core.Ready` exactly, with the fsync taking virtual time:

1. take a Ready; send ``messages`` at once (they promise nothing durable); WRITE the snapshot, entries and hard
   state to the disk (page cache only) and schedule the end of the fsync ``sync_delay`` later. While the fsync
   runs the node keeps ticking and stepping messages (the core allows it; the work goes to the next Ready), but it
   takes no new Ready.
2. when the fsync completes: the disk is synced; only now ``messages_after_persist`` leave (votes, append
   acknowledgements); a snapshot from the Ready is restored into the state machine; committed entries are applied
   in order (client writes answered); read states are served once applied reaches them; then ``advance``.
3. after advancing, when the log has grown past ``snapshot_entries`` entries, the node snapshots its state
   machine at its applied index and compacts (the snapshot is written and synced, the disk rewritten).

A crash (`crash`) loses everything volatile: the core, the state machine, pending requests, the unsynced writes
(the disk decides what a crash keeps). `start` rebuilds the node ONLY from what the disk kept: the durable log
is recovered (a torn tail cut off), the state machine restored from the snapshot, and a new core built from the
hard state, snapshot and entries; committed entries after the snapshot are applied again.

Every step is reported to the `Invariants`, which raise at the first violation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from raftkv.core import (
    EntryKind,
    Message,
    MessageType,
    NotLeader,
    ProposalDropped,
    ProtocolError,
    Raft,
    RaftConfig,
    Ready,
    Role,
)
from raftkv.failpoints import FAILPOINTS, for_layer
from raftkv.kv import KVStore, Op, Outcome, Result, encode_command

from .disk import Disk
from .invariants import Invariants, InvariantViolation, LogView
from .loop import EventLoop
from .messages import ClientReply, ClientRequest, ReplyStatus, message_kind, message_size
from .network import Network
from .rng import child_rng
from .storage import (
    Append,
    Batch,
    Compact,
    DurableLog,
    Install,
    SetHardState,
    StorageError,
    record_size,
    recover,
)
from .trace import Tracer

__all__ = ["NodeOptions", "SimNode"]

_NOOP = EntryKind.NOOP
_LEADER = Role.LEADER


class NodeOptions:
    """Per-cluster knobs of the node driver (plain attributes; see `Cluster` for the defaults)."""

    __slots__ = ("tick_us", "raft", "snapshot_entries", "sync_min_us", "sync_max_us", "read_timeout_us",
                 "broken_sync", "core_failpoints", "kv_failpoints", "rename_unsynced")

    def __init__(self, *, tick_us: int = 10_000, raft: dict[str, Any] | None = None, snapshot_entries: int = 0,
                 sync_min_us: int = 100, sync_max_us: int = 1_000, read_timeout_us: int = 1_000_000,
                 broken_sync: bool = False, failpoints: frozenset[str] = frozenset()) -> None:
        if tick_us < 1:
            raise ValueError(f"tick_us must be >= 1, got {tick_us}")
        if not 0 <= sync_min_us <= sync_max_us:
            raise ValueError(f"need 0 <= sync_min_us <= sync_max_us, got {sync_min_us}..{sync_max_us}")
        if snapshot_entries < 0:
            raise ValueError(f"snapshot_entries must be >= 0 (0 = never), got {snapshot_entries}")
        self.tick_us = tick_us
        self.raft = dict(raft or {})
        self.snapshot_entries = snapshot_entries
        self.sync_min_us = sync_min_us
        self.sync_max_us = sync_max_us
        self.read_timeout_us = read_timeout_us
        # A deliberately broken driver for the checker's own tests: fsync does nothing, so a crash loses what the
        # node promised was durable (votes, acknowledged entries). Never set outside tests. It is the storage
        # failpoint skip-fsync (raftkv/failpoints.py) of the simulated disk.
        self.broken_sync = broken_sync or "skip-fsync" in failpoints
        # Planted bugs (raftkv/failpoints.py) handed to the real core and state machine: decided once, per run.
        self.core_failpoints = for_layer(failpoints, "core")
        self.kv_failpoints = for_layer(failpoints, "kv")
        self.rename_unsynced = "snapshot-rename-unsynced" in failpoints
        unreachable = sorted(n for n in failpoints if not FAILPOINTS[n].in_simulator)
        if unreachable:
            raise ValueError(f"the simulator cannot plant {', '.join(unreachable)}: server failpoints live in the "
                             "HTTP server, which the simulator does not run (use the lab: --raftkv-failpoints)")


class SimNode:
    """A node of the simulated cluster. ``id`` is its network endpoint (1..N), ``name`` its Raft id ("n1")."""

    def __init__(
        self,
        *,
        node_id: int,
        names: tuple[str, ...],
        seed: int,
        loop: EventLoop,
        net: Network,
        invariants: Invariants,
        tracer: Tracer,
        options: NodeOptions,
        on_apply: Callable[[int, int, bytes, Result | None], None],
    ) -> None:
        self.id = node_id
        self.name = names[node_id - 1]
        self._names = names
        self._ids = {name: i + 1 for i, name in enumerate(names)}
        self._seed = seed
        self._loop = loop
        self._net = net
        self._inv = invariants
        self._trace = tracer
        self._opt = options
        self._on_apply = on_apply
        self._rng = child_rng(seed, f"node/{self.name}")
        self.disk = Disk(child_rng(seed, f"disk/{self.name}"))
        self.drift = 0.0
        self.alive = False
        self.incarnation = 0  # bumped by every start and crash: stale timers and fsyncs check it
        self.boots = 0
        self.raft: Raft | None = None
        self.kv: KVStore | None = None
        self.log = DurableLog()
        self.busy = False
        self.paused = False
        self._held: list[tuple[Callable[[Any], None], Any]] = []
        self.role = Role.FOLLOWER
        self.leader_hint: int | None = None
        self.term = 0
        self.commit = 0
        self.applied = 0
        # Called as sync_hook(node, ready, fsync_delay) when an fsync starts: lets a nemesis crash a node right in
        # the window where it has written but not yet synced (and so not yet sent its promises).
        self.sync_hook: Callable[[SimNode, Ready, int], None] | None = None
        # Called as vote_hook(node, request) before a VOTE request is stepped: lets a nemesis restart the node at
        # the moment its durable vote decides the answer (the request then goes to the restarted node).
        self.vote_hook: Callable[[SimNode, Message], None] | None = None
        # Called as leader_hook(node, term, committed) when this node has just become leader (committed False)
        # or, as leader, has just advanced its commit index (committed True).
        self.leader_hook: Callable[[SimNode, int, bool], None] | None = None
        self.protocol_errors = 0
        self.readies = 0
        self.compactions = 0
        self._pending_writes: dict[int, tuple[int, int, ClientRequest]] = {}
        self._pending_reads: dict[bytes, tuple[int, int, ClientRequest]] = {}
        self._waiting_reads: list[tuple[int, bytes]] = []

    # --- life cycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Boot (or reboot after `crash`) from the disk's durable content only."""
        if self.alive:
            raise RuntimeError(f"{self.name} is already running")
        self.incarnation += 1
        self.boots += 1
        try:
            log, torn = recover(self.disk)
            kv = KVStore(failpoints=self._opt.kv_failpoints)
            if log.snapshot is not None:
                kv.restore(log.snapshot.data)
            config = RaftConfig(id=self.name, peers=self._names,
                                rng=child_rng(self._seed, f"core/{self.name}/{self.boots}"),
                                failpoints=self._opt.core_failpoints, **self._opt.raft)
            self.raft = Raft(config, hard_state=log.hard_state, snapshot=log.snapshot,
                             entries=tuple(log.entries), applied=log.snap_index)
        except Exception as exc:  # a node that cannot boot from its own disk is a durability bug
            raise InvariantViolation("restart-failed", f"{self.name} cannot restart from its disk: {exc!r}",
                                     self._loop.now) from exc
        self.log = log
        self.kv = kv
        self.alive = True
        self.busy = False
        self.role = Role.FOLLOWER
        self.leader_hint = None
        self.term = log.hard_state.term
        self.commit = 0
        self.applied = log.snap_index
        self._pending_writes = {}
        self._pending_reads = {}
        self._waiting_reads = []
        inv = self._inv
        inv.register(self.id, LogView(log.term_at, log.snapshot_index))
        if log.snapshot is not None:
            meta = log.snapshot.meta
            inv.on_snapshot(self.id, meta.index, meta.term, log.snapshot.data, restore=True)
        inv.on_commit(self.id, max(log.hard_state.commit, log.snap_index), log.hard_state.term)
        if self._trace.on:
            self._trace(f"{self.name} start #{self.boots}: term {log.hard_state.term} vote "
                        f"{log.hard_state.vote} commit {log.hard_state.commit} snapshot {log.snap_index} "
                        f"last {log.last_index}{' (torn tail cut)' if torn else ''}")
        # The first tick lands at a random phase of the tick period, so nodes do not tick in lockstep.
        self._loop.after(self._rng.randint(1, self._opt.tick_us), self._tick, self.incarnation)
        self._pump()

    def crash(self) -> None:
        """Power off: every volatile thing is gone, the disk keeps what a crash keeps."""
        if not self.alive:
            return
        self.alive = False
        self.paused = False
        self._held = []
        self.incarnation += 1  # invalidates scheduled ticks and fsync completions
        self.disk.crash()
        self.raft = None
        self.kv = None
        self.busy = False
        self._pending_writes = {}
        self._pending_reads = {}
        self._waiting_reads = []
        self._inv.on_follower(self.id)
        if self._trace.on:
            self._trace(f"{self.name} crash (disk kept {len(self.disk.read())} records)")

    @property
    def drift(self) -> float:
        """Tick-rate drift: this node ticks every ``tick_us * (1 + drift)`` (|drift| < 1)."""
        return self._drift

    @drift.setter
    def drift(self, value: float) -> None:
        if not -1.0 < value < 1.0:
            raise ValueError(f"drift must be in (-1, 1), got {value}")
        self._drift = value
        self._tick_interval = max(1, int(self._opt.tick_us * (1.0 + value)))

    def tick_interval(self) -> int:
        return self._tick_interval

    # --- inputs -----------------------------------------------------------------------------------------------
    def _deliver_held(self, item: tuple[int, Any]) -> None:
        self.deliver(item[0], item[1])

    def _tick(self, incarnation: int) -> None:
        if incarnation != self.incarnation:
            return
        if self.paused:
            self._loop.after(self._tick_interval, self._tick, incarnation)
            return
        self._guard(self.raft.tick)  # type: ignore[union-attr]
        self._pump()
        self._loop.after(self._tick_interval, self._tick, incarnation)

    def pause(self) -> None:
        """Freeze the process (as SIGSTOP does): it stops ticking; arriving messages and a completing fsync wait
        until `resume`. The disk and the network carry on."""
        if self.alive and not self.paused:
            self.paused = True
            if self._trace.on:
                self._trace(f"{self.name} paused")

    def resume(self) -> None:
        """Thaw a paused process: it handles, in order, everything that arrived meanwhile (ticks missed while
        frozen are lost, as a timer loop would not replay them)."""
        if not self.paused:
            return
        self.paused = False
        held, self._held = self._held, []
        if self._trace.on:
            self._trace(f"{self.name} resumed with {len(held)} held events")
        incarnation = self.incarnation
        for callback, arg in held:
            if self.incarnation != incarnation or self.paused:
                break  # cannot happen while handling (no crash or pause from inside); kept for safety
            callback(arg)

    def deliver(self, src: int, payload: Any) -> None:
        """A message arrived from endpoint ``src`` (a peer's Raft message or a client's request)."""
        if not self.alive:
            return
        if self.paused:
            self._held.append((self._deliver_held, (src, payload)))
            return
        if type(payload) is Message:
            if self.vote_hook is not None and payload.type is MessageType.VOTE:
                self.vote_hook(self, payload)
            if self._trace.on:
                self._trace(f"{self.name} <- {payload.src} {_describe(payload)}")
            try:
                self.raft.step(payload)  # type: ignore[union-attr]
            except ProtocolError as exc:
                self.protocol_errors += 1
                if self._trace.on:
                    self._trace(f"{self.name} protocol error: {exc}")
            except Exception as exc:
                self._core_failed("step", exc)
            self._pump()
        elif type(payload) is ClientRequest:
            self._client_request(src, payload)
        else:
            raise TypeError(f"{self.name} got an unknown payload {payload!r}")

    def propose(self, data: bytes) -> int | None:
        """Propose raw ``data`` (tests); the index it got, or None when this node refused (not leader, dropped)."""
        if not self.alive:
            return None
        try:
            index = self.raft.propose(data)  # type: ignore[union-attr]
        except (NotLeader, ProposalDropped):
            return None
        except Exception as exc:
            self._core_failed("propose", exc)
        self._pump()
        return index

    def propose_many(self, datas: list[bytes]) -> range | None:
        """Propose a batch (all or none); the indexes it got, or None when this node refused."""
        if not self.alive:
            return None
        try:
            indexes = self.raft.propose_many(datas)  # type: ignore[union-attr]
        except (NotLeader, ProposalDropped):
            return None
        except Exception as exc:
            self._core_failed("propose_many", exc)
        self._pump()
        return indexes

    def transfer_leadership(self, to: int) -> bool:
        """Ask this node, if it leads, to hand leadership to node ``to``; whether it accepted. The role seen here
        comes from the last Ready: the core may have stepped down since, and then refuses (NotLeader)."""
        if not self.alive or self.role is not _LEADER:
            return False
        try:
            self.raft.transfer_leadership(self._names[to - 1])  # type: ignore[union-attr]
        except NotLeader:
            return False
        except Exception as exc:
            self._core_failed("transfer_leadership", exc)
        self._pump()
        return True

    def _guard(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            self._core_failed(getattr(fn, "__name__", "call"), exc)

    def _core_failed(self, what: str, exc: Exception) -> None:
        raise InvariantViolation("core-error", f"{self.name} core raised on {what}: {exc!r}",
                                 self._loop.now) from exc

    # --- client requests --------------------------------------------------------------------------------------
    def _reply(self, client: int, reply: ClientReply) -> None:
        self._net.send(self.id, client, reply, "client-reply", 32, stream=True)

    def _client_request(self, client: int, req: ClientRequest) -> None:
        raft = self.raft
        assert raft is not None
        cmd = req.command
        try:
            if cmd.op is Op.GET:
                ctx = req.rid.encode()
                raft.read_index(ctx)
                self._pending_reads[ctx] = (self._loop.now, client, req)
            else:
                index = raft.propose(encode_command(cmd))
                old = self._pending_writes.get(index)
                if old is not None:  # our earlier proposal at this index was overwritten before being applied
                    self._reply(old[1], ClientReply(old[2].rid, ReplyStatus.LOST))
                self._pending_writes[index] = (raft.term, client, req)
        except NotLeader as exc:
            hint = self._ids.get(exc.leader_hint) if exc.leader_hint else None
            self._reply(client, ClientReply(req.rid, ReplyStatus.NOT_LEADER, leader=hint))
            return
        except ProposalDropped:
            self._reply(client, ClientReply(req.rid, ReplyStatus.DROPPED))
            return
        except Exception as exc:
            self._core_failed("client request", exc)
        if self._trace.on:
            self._trace(f"{self.name} accepts {req.rid} {cmd.op.name} {cmd.key}")
        self._pump()

    # --- the Ready loop ---------------------------------------------------------------------------------------
    def _send(self, msg: Message) -> None:
        dst = self._ids[msg.dst]
        if msg.type is MessageType.VOTE_RESP and not msg.reject:
            self._inv.on_vote(self.id, msg.term, dst)  # a vote granted: a promise from now on
        elif msg.type is MessageType.VOTE:
            self._inv.on_vote(self.id, msg.term, self.id)  # a candidate's vote for itself, promised as it asks
        if self._trace.on:
            self._trace(f"{self.name} -> {msg.dst} {_describe(msg)}")
        self._net.send(self.id, dst, msg, message_kind(msg), message_size(msg))

    def _pump(self) -> None:
        """Take the next Ready if there is one and none is being worked on."""
        raft = self.raft
        if self.busy or raft is None:
            return
        try:
            if not raft.has_ready():
                return
            rd = raft.ready()
            term = raft.term
        except Exception as exc:
            self._core_failed("ready", exc)
        self.busy = True
        self.readies += 1
        for msg in rd.messages:
            self._send(msg)
        if rd.must_sync:
            disk = self.disk
            log = self.log
            inv = self._inv
            parts: list[Install | Append | SetHardState] = []
            if rd.snapshot is not None:
                parts.append(Install(rd.snapshot))
            if rd.entries:
                parts.append(Append(rd.entries))
            if rd.hard_state is not None:
                parts.append(SetHardState(rd.hard_state))
            record = Batch(tuple(parts))  # one frame: a crash keeps the whole Ready's state or none of it
            try:
                log.apply(record)
            except StorageError as exc:
                raise InvariantViolation("ready-contract", f"{self.name}: {exc}", self._loop.now) from exc
            disk.write(record, record_size(record))
            if rd.entries:
                prev = log.term_at(rd.entries[0].index - 1)
                for entry in rd.entries:
                    inv.on_persist(self.id, entry.index, entry.term, prev or 0, entry.data)
                    prev = entry.term
            if self._trace.on:
                hs = rd.hard_state
                self._trace(f"{self.name} write{' snapshot' if rd.snapshot else ''} {len(rd.entries)} entries"
                            + (f" hs t{hs.term} v{hs.vote} c{hs.commit}" if hs else ""))
            opt = self._opt
            delay = self._rng.randint(opt.sync_min_us, opt.sync_max_us)
            self._loop.after(delay, self._synced, (self.incarnation, rd, term))
            if self.sync_hook is not None:
                self.sync_hook(self, rd, delay)
        else:
            self._finish(rd, term)

    def _synced(self, item: tuple[int, Ready, int]) -> None:
        incarnation, rd, term = item
        if incarnation != self.incarnation:
            return  # crashed while the fsync ran
        if self.paused:
            self._held.append((self._synced, item))
            return
        if not self._opt.broken_sync:
            self.disk.sync()
        self._finish(rd, term)

    def _finish(self, rd: Ready, term: int) -> None:
        """Steps 2 to 4 of the Ready contract, once step 1 is durable."""
        inv = self._inv
        kv = self.kv
        raft = self.raft
        assert kv is not None and raft is not None
        node = self.id
        led = self.role is _LEADER and self.term == term  # leader of this term since the last Ready at least
        if rd.snapshot is not None:
            meta = rd.snapshot.meta
            kv.restore(rd.snapshot.data)
            inv.on_snapshot(node, meta.index, meta.term, rd.snapshot.data, restore=True)
            self.applied = meta.index
            # Proposals at or below the snapshot: their fate is unknown here; the clients will time out.
            for index in [i for i in self._pending_writes if i <= meta.index]:
                del self._pending_writes[index]
        if rd.soft_state is not None:
            self.role = rd.soft_state.role
            leader = rd.soft_state.leader
            self.leader_hint = self._ids[leader] if leader else None
            if self.role is _LEADER:
                inv.on_leader(node, term)
            else:
                inv.on_follower(node)
            if self._trace.on:
                self._trace(f"{self.name} is {self.role.value} in term {term} (leader {leader})")
        self.term = term
        leader_committed = False
        elected = rd.soft_state is not None and rd.soft_state.role is _LEADER
        if rd.hard_state is not None:
            leader_committed = rd.hard_state.commit > self.commit and self.role is _LEADER
            if leader_committed and led:
                inv.on_leader_commit(node, rd.hard_state.commit, term, self.log.term_at(rd.hard_state.commit))
            self.commit = rd.hard_state.commit
            inv.on_commit(node, rd.hard_state.commit, term)
        for msg in rd.messages_after_persist:
            self._send(msg)
        if rd.committed_entries:
            on_apply = self._on_apply
            pending = self._pending_writes
            for entry in rd.committed_entries:
                index = entry.index
                inv.on_apply(node, index, entry.term)
                result: Result | None
                if entry.kind is _NOOP:
                    kv.note_applied(index, entry.term, entry.data)
                    result = None
                else:
                    result = kv.apply(index, entry.data, entry.term)
                self.applied = index
                on_apply(node, index, entry.data, result)
                if pending:
                    waiting = pending.pop(index, None)
                    if waiting is not None:
                        t, client, req = waiting
                        if t == entry.term and result is not None:
                            inv.on_ack(node, index, entry.term)
                            self._reply(client, ClientReply(req.rid, ReplyStatus.OK, result))
                        else:
                            self._reply(client, ClientReply(req.rid, ReplyStatus.LOST))
        if rd.read_states:
            for rs in rd.read_states:
                self._waiting_reads.append((rs.index, rs.context))
        if self._waiting_reads:
            self._serve_reads()
        try:
            raft.advance(rd)
        except Exception as exc:
            self._core_failed("advance", exc)
        self.busy = False
        if (leader_committed or elected) and self.leader_hook is not None:
            self.leader_hook(self, term, leader_committed)
            if not self.alive:
                return
        opt = self._opt
        # Compact only past the core's own snapshot: an InstallSnapshot stepped in while this Ready was being
        # synced is already in the core but not yet applied here (it comes in the next Ready).
        if (opt.snapshot_entries and len(self.log.entries) > opt.snapshot_entries
                and self.applied > self.log.snap_index and self.applied >= raft.first_index):
            self._compact()
        self._pump()

    def _serve_reads(self) -> None:
        kv = self.kv
        assert kv is not None
        applied = self.applied
        still: list[tuple[int, bytes]] = []
        for index, ctx in self._waiting_reads:
            if index > applied:
                still.append((index, ctx))
                continue
            waiting = self._pending_reads.pop(ctx, None)
            if waiting is None:
                continue
            _, client, req = waiting
            found = kv.get(req.command.key)
            if found is None:
                result = Result(request_id=req.rid, outcome=Outcome.NO_KEY)
            else:
                result = Result(request_id=req.rid, outcome=Outcome.OK, value=found[0], version=found[1])
            self._reply(client, ClientReply(req.rid, ReplyStatus.OK, result))
        self._waiting_reads = still
        if len(self._pending_reads) > 64:  # forget reads the core dropped silently (their clients gave up)
            horizon = self._loop.now - self._opt.read_timeout_us
            for ctx in [c for c, (t, _, _) in self._pending_reads.items() if t < horizon]:
                del self._pending_reads[ctx]

    def _compact(self) -> None:
        kv = self.kv
        raft = self.raft
        assert kv is not None and raft is not None
        index = self.applied
        data = kv.snapshot()
        try:
            snapshot = raft.compact(index, data)
        except Exception as exc:
            self._core_failed("compact", exc)
        self.compactions += 1
        self._inv.on_snapshot(self.id, index, snapshot.meta.term, data, restore=False)
        try:
            self.log.apply(Compact(snapshot))
        except StorageError as exc:
            raise InvariantViolation("ready-contract", f"{self.name}: {exc}", self._loop.now) from exc
        records = self.log.records()
        # FAILPOINT snapshot-rename-unsynced: the snapshot (the first record) was renamed into place unsynced.
        self.disk.rewrite(records, fragile=records[0] if self._opt.rename_unsynced else None)
        if self._trace.on:
            self._trace(f"{self.name} snapshot at {index}@t{snapshot.meta.term}, log now {len(self.log.entries)}")


def _describe(msg: Message) -> str:
    text = f"{msg.type.name} t{msg.term}"
    if msg.index or msg.log_term:
        text += f" i{msg.index}/t{msg.log_term}"
    if msg.entries:
        text += f" +{len(msg.entries)}"
    if msg.commit:
        text += f" c{msg.commit}"
    if msg.reject:
        text += f" reject(hint t{msg.hint_term} i{msg.hint_index})"
    return text

