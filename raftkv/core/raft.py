"""The Raft state machine (sans-I/O). See `Raft`."""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any, TypeVar

from .config import RaftConfig
from .errors import ConfigError, NotLeader, ProposalDropped, ProtocolError, RaftError, RaftHalted, UsageError
from .log import LogConflict, RaftLog
from .progress import Progress, ProgressState
from .quorum import VoteResult, committed_index, vote_result
from .types import (
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
    SoftState,
    trusted_entry,
)

__all__ = ["PeerStatus", "ProgressState", "Raft", "Status"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerStatus:
    """A leader's view of one follower."""

    id: str
    match: int
    next: int
    state: ProgressState
    inflight: int
    recent_active: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """A snapshot of a core's state for status pages, metrics and tests (`progress` is empty unless leader)."""

    id: str
    term: int
    vote: str | None
    role: Role
    leader: str | None
    commit_index: int
    applied_index: int
    first_index: int
    last_index: int
    snapshot_index: int
    snapshot_term: int
    progress: tuple[PeerStatus, ...]


_F = TypeVar("_F", bound=Callable[..., Any])
_term_of = attrgetter("term")

_MT = MessageType
# Messages that promise something made durable in the same Ready: they leave only after the persist step.
_AFTER_PERSIST = frozenset({_MT.VOTE, _MT.VOTE_RESP, _MT.APPEND_RESP, _MT.SNAPSHOT_RESP})
_FROM_LEADER = frozenset({_MT.APPEND, _MT.HEARTBEAT, _MT.SNAPSHOT})
MAX_LEADERSHIPS = 1000  # how many of the terms it led a core remembers (Raft.leaderships)


def _guarded(method: _F) -> _F:
    """Public entry points: refuse use after an internal error; turn an unexpected exception into a halt."""

    @functools.wraps(method)
    def wrapper(self: Raft, *args: Any, **kwargs: Any) -> Any:
        if self._halted is not None:
            raise RaftHalted(self._halted)
        try:
            return method(self, *args, **kwargs)
        except RaftError:
            raise
        except Exception as exc:  # a bug in the core: stop rather than limp on with a corrupt state
            self._halted = exc
            raise RaftHalted(exc) from exc

    return wrapper  # type: ignore[return-value]


class Raft:
    """One Raft node's protocol logic, driven from outside and doing no I/O.

    Inputs: `tick()` (time), `step(message)` (a message from a peer), `propose(data)` / `propose_many(datas)`,
    `read_index(context)`, `transfer_leadership(to)`, `campaign()`, `compact(index, data)`.
    Output: `ready()` hands out one `Ready` batch (see its docstring for the persist -> send -> apply -> advance
    contract) and `advance(ready)` acknowledges it. `has_ready()` says whether there is work.

    Restart: build it from the durable state: the last `HardState`, the last `Snapshot` the application made or
    received (None if none), and the durable log `entries` after that snapshot (contiguous). `applied` is the
    index the application's state machine already reflects (default: the snapshot's index); committed entries
    after it are handed out again.

    Errors: `UsageError` (and `ConfigError`) for caller misuse, `NotLeader`/`ProposalDropped` for refused
    requests, `ProtocolError` for a peer's bad message (the message is ignored; `step` raises nothing else for
    a peer's message). Any other error inside the core halts it: every later call raises `RaftHalted`.
    """

    def __init__(self, config: RaftConfig, *, hard_state: HardState | None = None,
                 snapshot: Snapshot | None = None, entries: Iterable[Entry] = (),
                 applied: int | None = None) -> None:
        if not isinstance(config, RaftConfig):
            raise ConfigError(f"config must be a RaftConfig, got {type(config).__name__}")
        hard_state = hard_state if hard_state is not None else HardState()
        if type(hard_state) is not HardState:
            raise ConfigError("hard_state must be a HardState or None")
        if snapshot is not None and type(snapshot) is not Snapshot:
            raise ConfigError("snapshot must be a Snapshot or None")
        entry_list = list(entries)
        if any(type(e) is not Entry for e in entry_list):
            raise ConfigError("entries must be Entry values")
        snap_index = snapshot.meta.index if snapshot is not None else 0
        snap_term = snapshot.meta.term if snapshot is not None else 0
        if snapshot is not None and snapshot.meta.voters and sorted(snapshot.meta.voters) != sorted(config.peers):
            raise ConfigError(f"snapshot voters {snapshot.meta.voters} differ from the configured peers "
                              f"{config.peers} (membership is fixed)")
        if hard_state.vote is not None and hard_state.vote not in config.peers:
            raise ConfigError(f"hard_state.vote {hard_state.vote!r} is not a peer")
        last_term = entry_list[-1].term if entry_list else snap_term
        if last_term > hard_state.term:
            raise ConfigError(f"the log holds term {last_term}, above the hard state's term {hard_state.term}")
        commit = max(hard_state.commit, snap_index)
        applied = snap_index if applied is None else applied
        try:
            self._log = RaftLog(snap_index=snap_index, snap_term=snap_term, entries=entry_list,
                                committed=commit, applied=applied)
        except LogConflict as exc:
            raise ConfigError(f"inconsistent durable state: {exc}") from None
        self._cfg = config
        self._id = config.id
        self._peers = config.peers
        self._others = tuple(p for p in config.peers if p != config.id)
        self._other_set = frozenset(self._others)
        self._sorted_peers = sorted(config.peers)
        self._quorum = config.quorum
        self._rng = config.rng
        self._halted: BaseException | None = None
        self._snapshot: Snapshot | None = snapshot
        self._term = hard_state.term
        # FAILPOINT forget-vote: the vote is not restored on restart (and the next hard state written forgets it).
        self._vote = None if "forget-vote" in config.failpoints else hard_state.vote
        self._lead: str | None = None
        self._role = Role.FOLLOWER
        self._applied_acked = applied
        self._msgs: list[Message] = []
        self._msgs_after: list[Message] = []
        self._read_states: list[ReadState] = []
        self._snapshot_to_persist: Snapshot | None = None
        self._outstanding: Ready | None = None
        self._prev_hard = (hard_state.term, hard_state.vote, hard_state.commit)
        self._prev_soft: tuple[Role, str | None] = (Role.FOLLOWER, None)
        self._ticks = 0  # ticks since this object was built (the leader lease is measured in them)
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = config.election_tick
        self._votes: dict[str, bool] = {}
        self._prs: dict[str, Progress] = {}
        self._lead_transferee: str | None = None
        self._send_due: set[str] = set()  # leader: peers that may have something to send at the next flush
        self._hb_seq = 0  # leader: heartbeat rounds sent, never reset (ReadIndex and lease confirmations)
        self._read_round_due = False
        self._pending_reads: deque[tuple[int, int, bytes, str | None]] = deque()  # (seq, index, ctx, origin)
        self._reads_waiting_commit: list[tuple[bytes, str | None]] = []
        self._seq_ticks: deque[tuple[int, int]] = deque()  # (seq, tick it was sent) for the lease
        self._lease_start: int | None = None
        self._lease_broken = False
        # With leader leases, a freshly (re)started node refuses votes for an election timeout: it may have
        # acknowledged a leader's heartbeat just before it crashed, and that leader may be counting on it.
        self._boot_quiet_ticks = config.election_tick if config.lease_reads else 0
        # The terms this core became leader in, newest last (bounded: evidence for the lab's election oracle, which
        # reads it through the server; a leadership deposed within milliseconds is still in here).
        self._leaderships: deque[int] = deque(maxlen=MAX_LEADERSHIPS)
        self._leadership_count = 0
        self._snap_recv: tuple[SnapshotMeta, bytearray] | None = None  # follower: snapshot being received
        self._step: Callable[[Message], None] = self._step_follower
        self._election_tick: Callable[[], None] = self._tick_election
        self._tick: Callable[[], None] = self._tick_election
        self._bind_failpoints(config.failpoints)
        self._become_follower(self._term, None)

    def _bind_failpoints(self, names: frozenset[str]) -> None:
        """Choose, once, the branches that the failpoints (raftkv/failpoints.py: planted bugs for test labs) swap
        in. With none enabled every choice below is the correct behaviour, bound as a method or a constant, so a
        disabled failpoint costs nothing per call."""
        cfg = self._cfg
        # How long a confirmed heartbeat round lets the leader answer reads alone (the lease, RaftConfig).
        self._lease_on = cfg.lease_reads
        self._lease_ticks = cfg.election_tick - cfg.lease_margin_ticks
        if "long-lease" in names:  # FAILPOINT: a lease ten election timeouts long, on even without lease_reads
            self._lease_on = True
            self._lease_ticks = 10 * cfg.election_tick
        # Whether a read at the commit index may be answered now, without a new heartbeat round.
        self._read_confirmed: Callable[[], bool] = self._lease_valid
        if "read-without-quorum" in names:  # FAILPOINT: a leader trusts itself to still be leader
            self._read_confirmed = _always
        self._follower_read: Callable[[bytes, str], None] = self._forward_read
        if "follower-local-read" in names:  # FAILPOINT: a follower answers at its own commit index
            self._follower_read = self._local_read
        # Where a follower's acknowledgements go: after the persist step of their Ready (the contract)...
        self._ack: Callable[[Message], None] = self._send_after_persist
        if "ack-before-persist" in names:  # FAILPOINT: ...or out at once, before the entries are durable
            self._ack = self._send_now
        # Figure 8: a leader commits only through an entry of its own term.
        self._commit_own_term_only = "commit-old-term" not in names  # FAILPOINT commit-old-term when False
        self._apply_persisted = "apply-uncommitted" in names  # FAILPOINT: apply what is durable here, committed or not
        self._accept_stale_appends = "accept-stale-append" in names  # FAILPOINT
        self._commit_to_leader = "commit-beyond-match" in names  # FAILPOINT: commit = min(leader's, last index)
        self._snapshot_restore_skew = 1 if "snapshot-off-by-one" in names else 0  # FAILPOINT: restore one too far
        self._stuck_after_failed_campaign = "election-timer-stuck" in names  # FAILPOINT

    def _campaign_failed(self) -> None:
        """FAILPOINT election-timer-stuck: a (pre-)campaign was lost or ran out of time, and the election timer is
        not re-armed: this node never campaigns again until it restarts (it still votes and follows)."""
        self._election_tick = _nothing
        self._tick = _nothing

    # --- role changes -------------------------------------------------------------------------------------

    def _reset(self, term: int) -> None:
        if term != self._term:
            self._term = term
            self._vote = None
            self._snap_recv = None  # a partial snapshot from an earlier term's leader
        self._lead = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = self._cfg.election_tick + self._rng.randrange(self._cfg.election_tick)
        self._votes = {}
        self._prs = {}
        self._lead_transferee = None
        self._send_due = set()
        self._read_round_due = False
        self._pending_reads.clear()
        self._reads_waiting_commit = []
        self._seq_ticks.clear()
        self._lease_start = None
        self._lease_broken = False

    def _become_follower(self, term: int, lead: str | None) -> None:
        self._reset(term)
        self._role = Role.FOLLOWER
        self._lead = lead
        self._step = self._step_follower
        self._tick = self._election_tick

    def _become_pre_candidate(self) -> None:
        # No term change and no vote: PreVote must not disturb anybody (Raft thesis 9.6).
        self._role = Role.PRE_CANDIDATE
        self._lead = None
        self._votes = {self._id: True}
        self._step = self._step_candidate
        self._tick = self._election_tick

    def _become_candidate(self) -> None:
        self._reset(self._term + 1)
        self._vote = self._id
        self._role = Role.CANDIDATE
        self._votes = {self._id: True}
        self._step = self._step_candidate
        self._tick = self._election_tick

    def _become_leader(self) -> None:
        self._reset(self._term)
        self._role = Role.LEADER
        self._leaderships.append(self._term)
        self._leadership_count += 1
        self._lead = self._id
        self._step = self._step_leader
        self._tick = self._tick_leader
        log = self._log
        next_index = log.last_index + 1
        self._prs = {peer: Progress(next_index=next_index, max_inflight=self._cfg.max_inflight_msgs)
                     for peer in self._others}
        # The no-op of the new term: committing it commits every earlier entry (Raft 5.4.2, 8).
        log.append([Entry(term=self._term, index=next_index, kind=EntryKind.NOOP)])
        self._send_due.update(self._others)
        self._maybe_commit()  # a single-node cluster (it still waits for its own persist)

    def _hup(self, transfer: bool = False) -> None:
        """Start an election: the election timeout elapsed or campaign() (with PreVote first, if configured), or
        TIMEOUT_NOW (`transfer`: straight to the real election, and the voters' lease is overridden)."""
        if self._role is Role.LEADER:
            return
        if self._cfg.pre_vote and not transfer:
            self._become_pre_candidate()
            self._request_votes(_MT.PRE_VOTE, self._term + 1, transfer=False)
        else:
            self._start_election(transfer)

    def _start_election(self, transfer: bool) -> None:
        self._become_candidate()
        self._request_votes(_MT.VOTE, self._term, transfer)

    def _request_votes(self, kind: MessageType, term: int, transfer: bool) -> None:
        if len(self._peers) == 1:
            self._win_election()
            return
        log = self._log
        for peer in self._others:
            self._send(Message(type=kind, src=self._id, dst=peer, term=term, index=log.last_index,
                               log_term=log.last_term, transfer=transfer))

    def _win_election(self) -> None:
        if self._role is Role.PRE_CANDIDATE:
            self._start_election(transfer=False)  # the pre-vote is won: now the real election
        else:
            self._become_leader()

    # --- sending ------------------------------------------------------------------------------------------

    def _send(self, msg: Message) -> None:
        if msg.type in _AFTER_PERSIST:
            self._msgs_after.append(msg)
        else:
            self._msgs.append(msg)

    def _send_after_persist(self, msg: Message) -> None:
        self._msgs_after.append(msg)

    def _send_now(self, msg: Message) -> None:
        self._msgs.append(msg)

    def _send_append(self, peer: str, pr: Progress, allow_empty: bool) -> bool:
        """Send `peer` what it needs next (entries, or a snapshot when they are compacted away). Returns True if
        a message went out."""
        if pr.paused:
            return False
        log = self._log
        prev = pr.next - 1
        prev_term = log.term(prev)
        if prev_term is None:
            if prev < log.snap_index:
                self._send_snapshot_chunk(peer, pr)
                return True
            # next is beyond our log: only after a stale update; fall back to probing from the match.
            pr.become_probe()
            prev = pr.next - 1
            prev_term = log.term(prev)
            if prev_term is None:
                self._send_snapshot_chunk(peer, pr)
                return True
        cfg = self._cfg
        if pr.next <= log.last_index:
            entries = log.slice_limited(pr.next, cfg.max_entries_per_msg, cfg.max_bytes_per_msg)
        else:
            if not allow_empty:
                return False
            entries = []
        self._msgs.append(Message(type=_MT.APPEND, src=self._id, dst=peer, term=self._term, index=prev,
                                  log_term=prev_term, entries=tuple(entries), commit=log.committed))
        pr.sent_append(prev + len(entries), len(entries))
        return True

    def _send_snapshot_chunk(self, peer: str, pr: Progress) -> None:
        snap = self._snapshot
        if snap is None:
            raise AssertionError("the log was compacted without a snapshot to send")
        if pr.state is not ProgressState.SNAPSHOT or pr.pending_snapshot != snap.meta.index:
            pr.become_snapshot(snap.meta.index)
        offset = pr.snap_offset
        chunk = snap.data[offset:offset + self._cfg.snapshot_chunk_bytes]
        self._msgs.append(Message(type=_MT.SNAPSHOT, src=self._id, dst=peer, term=self._term, snapshot=snap.meta,
                                  offset=offset, data=chunk, done=offset + len(chunk) >= len(snap.data)))
        pr.snap_wait = 0

    def _send_timeout_now(self, to: str) -> None:
        self._msgs.append(Message(type=_MT.TIMEOUT_NOW, src=self._id, dst=to, term=self._term))
        # The transferee's election overrides the followers' lease (transfer=True): our lease can no longer be
        # trusted in this term, even if the transfer is abandoned.
        self._lease_broken = True

    def _bcast_heartbeat(self) -> None:
        self._hb_seq += 1
        seq = self._hb_seq
        if self._lease_on:
            self._seq_ticks.append((seq, self._ticks))
            while self._seq_ticks and self._ticks - self._seq_ticks[0][1] > self._cfg.election_tick:
                self._seq_ticks.popleft()
        committed = self._log.committed
        for peer in self._others:
            pr = self._prs[peer]
            self._msgs.append(Message(type=_MT.HEARTBEAT, src=self._id, dst=peer, term=self._term,
                                      commit=min(pr.match, committed), seq=seq))
        self._read_round_due = False
        if not self._others:
            self._check_reads()

    def _flush(self) -> None:
        """Turn the leader's pending work (new entries, a moved commit index, reads) into messages, batched."""
        if self._role is not Role.LEADER:
            return
        # Followers learn a new commit index from the next APPEND or HEARTBEAT: no message of its own (that
        # would double the APPENDs of a steady load; heartbeats come every heartbeat_tick anyway).
        if self._send_due:
            peers = sorted(self._send_due, key=self._peers.index)
            self._send_due = set()
            for peer in peers:
                pr = self._prs[peer]
                while self._send_append(peer, pr, allow_empty=False) and pr.state is ProgressState.REPLICATE:
                    pass
        if self._read_round_due:
            self._bcast_heartbeat()

    # --- time -----------------------------------------------------------------------------------------------

    @_guarded
    def tick(self) -> None:
        """Advance logical time by one tick (election timeout, heartbeats, check-quorum, lease)."""
        self._ticks += 1
        self._tick()

    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if self._election_elapsed >= self._randomized_timeout:
            self._election_elapsed = 0
            if self._stuck_after_failed_campaign and self._role is not Role.FOLLOWER:
                self._campaign_failed()  # FAILPOINT election-timer-stuck: the campaign ran out of time
                return
            self._hup()

    def _tick_leader(self) -> None:
        cfg = self._cfg
        self._election_elapsed += 1
        if self._election_elapsed >= cfg.election_tick:
            self._election_elapsed = 0
            if cfg.check_quorum:
                active = 1
                for pr in self._prs.values():
                    if pr.recent_active:
                        active += 1
                    pr.recent_active = False
                if active < self._quorum:
                    # CheckQuorum: not heard from a majority within an election timeout: step down.
                    self._become_follower(self._term, None)
                    return
            self._lead_transferee = None  # a transfer that did not finish within an election timeout
        self._heartbeat_elapsed += 1
        if self._heartbeat_elapsed >= cfg.heartbeat_tick:
            self._heartbeat_elapsed = 0
            self._bcast_heartbeat()
        for peer, pr in self._prs.items():
            if pr.state is ProgressState.SNAPSHOT:
                pr.snap_wait += 1
                if pr.snap_wait >= cfg.election_tick:  # a chunk or its answer was lost: send it again
                    self._send_snapshot_chunk(peer, pr)

    # --- messages -------------------------------------------------------------------------------------------

    @_guarded
    def step(self, msg: Message) -> None:
        """Handle one message from a peer. Raises `ProtocolError` if the message breaks the protocol (it is then
        ignored, though its term may have been adopted) and `UsageError` if it is not addressed to this node or
        not a `Message`."""
        if type(msg) is not Message:
            raise UsageError(f"step takes a Message, got {type(msg).__name__}")
        if msg.dst != self._id:
            raise UsageError(f"message for {msg.dst!r} stepped into node {self._id!r}")
        self._validate(msg)
        kind = msg.type
        term = self._term
        if msg.term > term:
            if ((kind is _MT.VOTE or kind is _MT.PRE_VOTE) and self._cfg.check_quorum and not msg.transfer
                    and self._election_elapsed < self._cfg.election_tick
                    and (self._lead is not None or self._ticks < self._boot_quiet_ticks)):
                # We heard from a leader within the election timeout: ignore the disruption (thesis 4.2.3).
                return
            if kind is _MT.PRE_VOTE or (kind is _MT.PRE_VOTE_RESP and not msg.reject):
                pass  # PreVote never changes terms; a granted answer carries the term we would campaign in
            else:
                self._become_follower(msg.term, msg.src if kind in _FROM_LEADER else None)
        elif msg.term < term:
            if kind is _MT.APPEND and self._accept_stale_appends:
                self._accept_stale_append(msg)
                return
            if kind is _MT.APPEND or kind is _MT.HEARTBEAT:
                # A stale leader (e.g. back from a partition): tell it the new term so that it steps down;
                # with PreVote/CheckQuorum it could otherwise never learn it.
                # (index 0, not a rejection: should it reach a leader of our term, it changes nothing.)
                self._msgs.append(Message(type=_MT.APPEND_RESP, src=self._id, dst=msg.src, term=term))
            elif kind is _MT.PRE_VOTE:
                self._msgs.append(Message(type=_MT.PRE_VOTE_RESP, src=self._id, dst=msg.src, term=term,
                                          reject=True))
            return
        if kind is _MT.VOTE or kind is _MT.PRE_VOTE:
            self._handle_vote_request(msg)
        else:
            self._step(msg)

    def _validate(self, msg: Message) -> None:
        """Checks that need no state: a message failing them is refused before it changes anything."""
        if msg.src not in self._other_set:
            raise ProtocolError(f"message {msg.type.name} from {msg.src!r}, not a peer of {self._id!r}")
        kind = msg.type
        if kind is _MT.APPEND:
            if msg.log_term > msg.term:
                raise ProtocolError(f"APPEND from {msg.src}: previous term {msg.log_term} above its term {msg.term}")
            entries = msg.entries
            if entries:
                terms = list(map(_term_of, entries))
                if terms[0] < msg.log_term or terms[-1] > msg.term or terms != sorted(terms):
                    raise ProtocolError(f"APPEND from {msg.src}: entry terms must not decrease and lie within "
                                        f"[{msg.log_term}, {msg.term}]")
        elif kind is _MT.SNAPSHOT:
            if msg.snapshot is None:
                raise ProtocolError(f"SNAPSHOT from {msg.src} without snapshot meta")
            if msg.snapshot.term > msg.term or msg.snapshot.index == 0:
                raise ProtocolError(f"SNAPSHOT from {msg.src}: bad meta {msg.snapshot}")
            if sorted(msg.snapshot.voters) != self._sorted_peers:
                raise ProtocolError(f"SNAPSHOT from {msg.src}: voters {msg.snapshot.voters} are not ours "
                                    f"(membership is fixed: {self._peers})")
        elif (kind is _MT.VOTE or kind is _MT.PRE_VOTE) and msg.log_term > msg.term:
            raise ProtocolError(f"{kind.name} from {msg.src}: last log term above its term")

    def _handle_vote_request(self, msg: Message) -> None:
        is_pre = msg.type is _MT.PRE_VOTE
        resp = _MT.PRE_VOTE_RESP if is_pre else _MT.VOTE_RESP
        can_vote = (self._vote == msg.src or (self._vote is None and self._lead is None)
                    or (is_pre and msg.term > self._term))
        if can_vote and self._log.is_up_to_date(msg.index, msg.log_term):
            # A granted answer carries the request's term: for PreVote that is a term we are not in (yet).
            self._send(Message(type=resp, src=self._id, dst=msg.src, term=msg.term))
            if not is_pre:
                self._election_elapsed = 0
                self._vote = msg.src
        else:
            self._send(Message(type=resp, src=self._id, dst=msg.src, term=self._term, reject=True))

    def _step_follower(self, msg: Message) -> None:
        kind = msg.type
        if kind is _MT.APPEND:
            self._election_elapsed = 0
            self._lead = msg.src
            self._handle_append(msg)
        elif kind is _MT.HEARTBEAT:
            self._election_elapsed = 0
            self._lead = msg.src
            self._handle_heartbeat(msg)
        elif kind is _MT.SNAPSHOT:
            self._election_elapsed = 0
            self._lead = msg.src
            self._handle_snapshot(msg)
        elif kind is _MT.TIMEOUT_NOW:
            self._hup(transfer=True)
        elif kind is _MT.READ_INDEX_RESP and not msg.reject:
            self._read_states.append(ReadState(index=msg.index, context=msg.context))
        # Anything else at our term is stale (answers to a role we no longer have): ignore it.

    def _step_candidate(self, msg: Message) -> None:
        kind = msg.type
        if kind in _FROM_LEADER:
            self._become_follower(msg.term, msg.src)  # a leader of our term exists
            self._step_follower(msg)
            return
        pre = self._role is Role.PRE_CANDIDATE
        if (kind is _MT.PRE_VOTE_RESP) if pre else (kind is _MT.VOTE_RESP):
            if pre and not msg.reject and msg.term != self._term + 1:
                return  # a grant from an earlier pre-campaign
            self._votes.setdefault(msg.src, not msg.reject)
            result = vote_result(self._votes, self._peers)
            if result is VoteResult.WON:
                self._win_election()
            elif result is VoteResult.LOST:
                self._become_follower(self._term, None)
                if self._stuck_after_failed_campaign:
                    self._campaign_failed()  # FAILPOINT election-timer-stuck

    def _step_leader(self, msg: Message) -> None:
        kind = msg.type
        if kind is _MT.APPEND_RESP:
            self._handle_append_resp(msg)
        elif kind is _MT.HEARTBEAT_RESP:
            self._handle_heartbeat_resp(msg)
        elif kind is _MT.SNAPSHOT_RESP:
            self._handle_snapshot_resp(msg)
        elif kind is _MT.READ_INDEX:
            self._leader_read(msg.context, msg.src)
        elif kind in _FROM_LEADER:
            raise ProtocolError(f"{kind.name} from {msg.src} claims to lead term {msg.term}, which {self._id} leads")

    # --- follower side of replication -------------------------------------------------------------------------

    def _handle_append(self, msg: Message) -> None:
        log = self._log
        if self._commit_to_leader:
            # FAILPOINT commit-beyond-match: the leader's commit index is taken before (and whether or not) the
            # log matched, bounded by our last index instead of the last entry this APPEND proved we share.
            log.commit_to(min(msg.commit, log.last_index))
        prev, prev_term, entries = msg.index, msg.log_term, msg.entries
        committed = log.committed
        if prev < committed:
            # Entries up to our commit index must equal ours (committed entries never change): check their
            # terms where we still have them, then skip them.
            skip = min(committed - prev, len(entries))
            first = log.first_index
            for entry in entries[:skip]:
                if entry.index >= first and entry.term != log.term(entry.index):
                    raise ProtocolError(f"APPEND from {msg.src}: entry {entry.index} of term {entry.term} "
                                        f"conflicts with our committed entry of term {log.term(entry.index)}")
            if prev + len(entries) <= committed:
                self._ack(Message(type=_MT.APPEND_RESP, src=self._id, dst=msg.src, term=self._term,
                                  index=committed))
                return
            prev_term = entries[skip - 1].term
            prev, entries = committed, entries[skip:]
        try:
            last_new = log.maybe_append(prev, prev_term, msg.commit, entries)
        except LogConflict as exc:
            raise ProtocolError(f"APPEND from {msg.src}: {exc}") from None
        if last_new is not None:
            self._ack(Message(type=_MT.APPEND_RESP, src=self._id, dst=msg.src, term=self._term, index=last_new))
            return
        # Rejected: tell the leader our term at that index and where that term starts (fast back-up).
        if prev > log.last_index:
            hint_term, hint_index = 0, log.last_index + 1
        else:
            term_at = log.term(prev)
            assert term_at is not None  # prev >= committed >= snap_index
            hint_term, hint_index = term_at, log.first_index_of_term(prev)
        self._msgs_after.append(Message(type=_MT.APPEND_RESP, src=self._id, dst=msg.src, term=self._term,
                                        index=msg.index, reject=True, hint_term=hint_term,
                                        hint_index=hint_index))

    def _accept_stale_append(self, msg: Message) -> None:
        """FAILPOINT accept-stale-append: an APPEND of an older term is handled as if its sender still led, and
        acknowledged under the sender's term (so the deposed leader counts the acknowledgement)."""
        marks = len(self._msgs), len(self._msgs_after)
        self._handle_append(msg)
        for out, mark in zip((self._msgs, self._msgs_after), marks, strict=True):
            out[mark:] = [replace(m, term=msg.term) if m.type is _MT.APPEND_RESP else m for m in out[mark:]]

    def _handle_heartbeat(self, msg: Message) -> None:
        log = self._log
        log.commit_to(min(msg.commit, log.last_index))
        self._msgs.append(Message(type=_MT.HEARTBEAT_RESP, src=self._id, dst=msg.src, term=self._term,
                                  seq=msg.seq))

    def _handle_snapshot(self, msg: Message) -> None:
        meta = msg.snapshot
        assert meta is not None  # _validate
        log = self._log
        if meta.index <= log.committed:
            # We already have everything it holds; tell the leader where we are instead.
            self._snap_recv = None
            self._msgs_after.append(Message(type=_MT.APPEND_RESP, src=self._id, dst=msg.src, term=self._term,
                                            index=log.committed))
            return
        recv = self._snap_recv
        if msg.offset == 0:
            recv = (meta, bytearray())
        elif recv is None or recv[0] != meta or msg.offset != len(recv[1]):
            have = len(recv[1]) if recv is not None and recv[0] == meta else 0
            self._msgs.append(Message(type=_MT.SNAPSHOT_RESP, src=self._id, dst=msg.src, term=self._term,
                                      index=meta.index, offset=have, reject=msg.offset > have))
            return
        buffer = recv[1]
        if len(buffer) + len(msg.data) > self._cfg.max_snapshot_bytes:
            self._snap_recv = None
            raise ProtocolError(f"SNAPSHOT from {msg.src}: over max_snapshot_bytes "
                                f"({self._cfg.max_snapshot_bytes})")
        buffer += msg.data
        if not msg.done:
            self._snap_recv = recv
            self._msgs.append(Message(type=_MT.SNAPSHOT_RESP, src=self._id, dst=msg.src, term=self._term,
                                      index=meta.index, offset=len(buffer)))
            return
        self._snap_recv = None
        if log.match_term(meta.index, meta.term):
            # Our log already holds the snapshot's last entry: keep the log, just commit (etcd does the same).
            log.commit_to(meta.index)
            self._ack(Message(type=_MT.APPEND_RESP, src=self._id, dst=msg.src, term=self._term, index=meta.index))
            return
        snapshot = Snapshot(meta=meta, data=bytes(buffer))
        # (FAILPOINT snapshot-off-by-one: the skew is 1, the log restarts one index past the snapshot's state.)
        log.restore(meta.index + self._snapshot_restore_skew, meta.term)
        self._snapshot = snapshot
        self._snapshot_to_persist = snapshot
        self._ack(Message(type=_MT.SNAPSHOT_RESP, src=self._id, dst=msg.src, term=self._term, index=meta.index,
                          offset=len(snapshot.data), done=True))

    # --- leader side of replication -----------------------------------------------------------------------

    def _handle_append_resp(self, msg: Message) -> None:
        pr = self._prs[msg.src]
        pr.recent_active = True
        log = self._log
        if msg.reject:
            if msg.hint_term == 0:
                next_hint = msg.hint_index
            else:
                ours = log.last_index_of_term(msg.hint_term, msg.index)
                next_hint = ours + 1 if ours is not None else msg.hint_index
            if pr.maybe_decrease_to(msg.index, next_hint):
                self._send_due.add(msg.src)
            return
        if msg.index > log.last_index:
            raise ProtocolError(f"APPEND_RESP from {msg.src} acknowledges index {msg.index}, beyond our last "
                                f"index {log.last_index}")
        if not pr.maybe_update(msg.index):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT:
            if pr.match >= pr.pending_snapshot:
                pr.become_replicate()
        else:
            pr.free_up_to(msg.index)
        self._maybe_commit()
        self._send_due.add(msg.src)
        if msg.src == self._lead_transferee and pr.match == log.last_index:
            self._send_timeout_now(msg.src)

    def _handle_heartbeat_resp(self, msg: Message) -> None:
        pr = self._prs[msg.src]
        pr.recent_active = True
        if msg.seq > pr.acked_seq:
            if msg.seq > self._hb_seq:
                raise ProtocolError(f"HEARTBEAT_RESP from {msg.src} echoes round {msg.seq}, never sent")
            pr.acked_seq = msg.seq
            self._check_reads()
        if pr.match < self._log.last_index:
            if pr.state is ProgressState.PROBE:
                pr.probe_sent = False  # the follower is reachable: probe again
                self._send_append(msg.src, pr, allow_empty=True)
            elif pr.state is ProgressState.REPLICATE:
                # An APPEND may have been lost: free one slot and send from `next` (an empty APPEND there
                # makes the follower reject if it lacks entries, which puts it back into probing).
                if pr.paused:
                    pr.inflight.popleft()
                self._send_append(msg.src, pr, allow_empty=True)

    def _handle_snapshot_resp(self, msg: Message) -> None:
        pr = self._prs[msg.src]
        pr.recent_active = True
        if pr.state is not ProgressState.SNAPSHOT or msg.index != pr.pending_snapshot:
            return  # stale
        if msg.done:
            pr.maybe_update(msg.index)
            pr.become_probe()
            self._send_due.add(msg.src)
            return
        snap = self._snapshot
        if msg.reject or msg.offset > pr.snap_offset:
            pr.snap_offset = msg.offset
            if snap is not None and snap.meta.index == pr.pending_snapshot and msg.offset <= len(snap.data):
                self._send_snapshot_chunk(msg.src, pr)
            else:
                pr.become_snapshot(pr.pending_snapshot)  # a newer snapshot replaced it: start that one
                self._send_snapshot_chunk(msg.src, pr)

    def _maybe_commit(self) -> bool:
        """Advance the commit index to what a majority has, but only through an entry of the current term
        (Raft 5.4.2, Figure 8: counting replicas of older entries is not enough)."""
        log = self._log
        matches = [log.persisted]
        matches.extend(pr.match for pr in self._prs.values())
        index = committed_index(matches, len(self._peers))
        if index <= log.committed or (self._commit_own_term_only and log.term(index) != self._term):
            return False
        first_in_term = log.term(log.committed) != self._term
        log.committed = index
        if first_in_term and self._reads_waiting_commit:
            waiting, self._reads_waiting_commit = self._reads_waiting_commit, []
            for context, origin in waiting:
                self._leader_read(context, origin, counted=True)
        return True

    # --- reads --------------------------------------------------------------------------------------------------

    def _leader_read(self, context: bytes, origin: str | None, counted: bool = False) -> None:
        """A read request (`origin`: the follower that forwarded it, None for our own). `counted`: it was
        already admitted under max_pending_reads (a waiting read being released)."""
        log = self._log
        if not counted and (len(self._pending_reads) + len(self._reads_waiting_commit)
                            >= self._cfg.max_pending_reads):
            if origin is None:
                raise ProposalDropped("too many pending reads")
            self._msgs.append(Message(type=_MT.READ_INDEX_RESP, src=self._id, dst=origin, term=self._term,
                                      context=context, reject=True))
            return
        if log.term(log.committed) != self._term:
            # The commit index is only known to be up to date once an entry of this term is committed.
            self._reads_waiting_commit.append((context, origin))
            return
        if not self._others or self._read_confirmed():
            self._answer_read(log.committed, context, origin)
            return
        self._pending_reads.append((self._hb_seq + 1, log.committed, context, origin))
        self._read_round_due = True

    def _lease_valid(self) -> bool:
        if (not self._lease_on or self._lead_transferee is not None or self._lease_start is None
                or self._lease_broken):
            return False
        return self._ticks - self._lease_start < self._lease_ticks

    def _answer_read(self, index: int, context: bytes, origin: str | None) -> None:
        if origin is None:
            self._read_states.append(ReadState(index=index, context=context))
        else:
            self._msgs.append(Message(type=_MT.READ_INDEX_RESP, src=self._id, dst=origin, term=self._term,
                                      index=index, context=context))

    def _check_reads(self) -> None:
        """Release the reads whose heartbeat round a majority has answered (and renew the lease)."""
        acked = [self._hb_seq]
        acked.extend(pr.acked_seq for pr in self._prs.values())
        confirmed = committed_index(acked, len(self._peers))
        pending = self._pending_reads
        while pending and pending[0][0] <= confirmed:
            _, index, context, origin = pending.popleft()
            self._answer_read(index, context, origin)
        seq_ticks = self._seq_ticks
        while seq_ticks and seq_ticks[0][0] <= confirmed:
            self._lease_start = seq_ticks.popleft()[1]

    # --- client requests -----------------------------------------------------------------------------------

    def _check_proposal(self, count: int) -> None:
        if self._role is not Role.LEADER:
            raise NotLeader(self._lead)
        if self._lead_transferee is not None:
            raise ProposalDropped(f"leadership transfer to {self._lead_transferee} in progress")
        log = self._log
        if log.last_index - log.committed + count > self._cfg.max_uncommitted_entries:
            raise ProposalDropped(f"too many uncommitted entries (max_uncommitted_entries="
                                  f"{self._cfg.max_uncommitted_entries})")

    def propose(self, data: bytes) -> int:
        """Append `data` as a new entry (leader only) and return its index. The entry may still be lost (a new
        leader may overwrite it): the caller learns its fate when an entry at that index is applied (compare the
        data or a request id inside it). Raises `NotLeader(leader_hint)` or `ProposalDropped(reason)`."""
        # The hot path of a server: the guard of `_guarded` is inlined here to save a call.
        if self._halted is not None:
            raise RaftHalted(self._halted)
        if type(data) is not bytes:
            raise UsageError(f"propose takes bytes, got {type(data).__name__}")
        try:
            log = self._log
            entries = log._entries
            index = log.snap_index + len(entries) + 1
            if (self._role is not Role.LEADER or self._lead_transferee is not None
                    or index - log.committed > self._cfg.max_uncommitted_entries):
                self._check_proposal(1)
            entries.append(trusted_entry(self._term, index, data))
            if len(self._send_due) != len(self._others):
                self._send_due.update(self._others)
            return index
        except RaftError:
            raise
        except Exception as exc:  # a bug: halt (as `_guarded` does)
            self._halted = exc
            raise RaftHalted(exc) from exc

    @_guarded
    def propose_many(self, datas: Sequence[bytes]) -> range:
        """Like `propose` for a batch (all or none); returns the range of indexes the entries got."""
        for data in datas:
            if type(data) is not bytes:
                raise UsageError(f"propose_many takes bytes values, got {type(data).__name__}")
        self._check_proposal(len(datas))
        log = self._log
        first = log.last_index + 1
        term = self._term
        log._entries.extend([trusted_entry(term, index, data) for index, data in enumerate(datas, start=first)])
        if datas and self._others:
            self._send_due.update(self._others)
        return range(first, first + len(datas))

    @_guarded
    def read_index(self, context: bytes) -> None:
        """Request a linearizable read point. Later a `ReadState(index, context)` appears in a Ready: serve the
        read once applied >= index. On a follower the request is forwarded to the leader. Raises `NotLeader` when
        no leader is known and `ProposalDropped` when too many reads are pending. A request may silently vanish
        (leader change, lost message): the caller retries after a timeout."""
        if type(context) is not bytes:
            raise UsageError(f"read_index takes bytes, got {type(context).__name__}")
        if self._role is Role.LEADER:
            self._leader_read(context, None)
        elif self._lead is None:
            raise NotLeader(None)
        else:
            self._follower_read(context, self._lead)

    def _forward_read(self, context: bytes, lead: str) -> None:
        self._msgs.append(Message(type=_MT.READ_INDEX, src=self._id, dst=lead, term=self._term,
                                  context=context))

    def _local_read(self, context: bytes, lead: str) -> None:
        """FAILPOINT follower-local-read: answer from this follower's own commit index, without the leader."""
        self._read_states.append(ReadState(index=self._log.committed, context=context))

    @_guarded
    def transfer_leadership(self, to: str) -> None:
        """Leader only: hand leadership to voter `to` (brings it up to date, then sends TIMEOUT_NOW). Proposals are
        dropped during the transfer; it is abandoned after an election timeout. No-op if `to` is this node."""
        if to not in self._peers:
            raise UsageError(f"cannot transfer leadership to {to!r}: not a peer")
        if self._role is not Role.LEADER:
            raise NotLeader(self._lead)
        if to == self._id or to == self._lead_transferee:
            return
        self._lead_transferee = to
        self._election_elapsed = 0
        pr = self._prs[to]
        if pr.match == self._log.last_index:
            self._send_timeout_now(to)
        else:
            self._send_due.add(to)

    @_guarded
    def campaign(self) -> None:
        """Start an election now (as if the election timeout elapsed). No-op on a leader."""
        self._hup()

    @_guarded
    def compact(self, index: int, snapshot_data: bytes) -> Snapshot:
        """The application made a snapshot `snapshot_data` of its state machine at applied `index`: the log up to
        `index` is dropped and the snapshot is kept to send to followers that lag behind it. Returns the
        `Snapshot` (the caller persists it, then may drop its durable log up to `index`). `index` may be any index
        handed out for applying (in a Ready), even before that Ready is advanced.
        `UsageError` if index is beyond that or below the current snapshot's index."""
        if type(snapshot_data) is not bytes:
            raise UsageError(f"compact takes bytes, got {type(snapshot_data).__name__}")
        log = self._log
        if type(index) is not int or not log.snap_index <= index <= log.applied:
            raise UsageError(f"compact index {index!r} outside [snapshot index {log.snap_index}, applied "
                             f"{log.applied}]")
        term = log.term(index)
        assert term is not None
        log.compact(index)
        snapshot = Snapshot(meta=SnapshotMeta(index=index, term=term, voters=self._peers), data=snapshot_data)
        self._snapshot = snapshot
        return snapshot

    # --- output ---------------------------------------------------------------------------------------------

    @_guarded
    def has_ready(self) -> bool:
        """True when `ready()` would hand out a non-empty batch (and none is outstanding)."""
        if self._outstanding is not None:
            return False
        self._flush()
        log = self._log
        return bool(self._msgs or self._msgs_after or self._read_states
                    or self._snapshot_to_persist is not None
                    or log.persisted < log.last_index or log.applied < log.committed
                    or (self._apply_persisted and log.applied < log.persisted)
                    or self._prev_hard != (self._term, self._vote, log.committed)
                    or self._prev_soft != (self._role, self._lead))

    @_guarded
    def ready(self) -> Ready:
        """Hand out the next batch of work. `UsageError` if the previous one was not advanced or nothing is ready."""
        if self._outstanding is not None:
            raise UsageError("ready() called again before advance() of the previous Ready")
        self._flush()
        log = self._log
        hard = (self._term, self._vote, log.committed)
        hard_state = None
        msgs, after = self._msgs, self._msgs_after
        if hard != self._prev_hard:
            hard_state = HardState(term=hard[0], vote=hard[1], commit=hard[2])
            if hard[0] != self._prev_hard[0] or hard[1] != self._prev_hard[1]:
                # A new term or vote must be durable before anything we say under it leaves.
                msgs, after = [], msgs + after
            self._prev_hard = hard
        soft = (self._role, self._lead)
        soft_state = None
        if soft != self._prev_soft:
            soft_state = SoftState(role=soft[0], leader=soft[1])
            self._prev_soft = soft
        entries = log.unstable() if log.persisted < log.last_index else ()
        upto = log.committed
        if self._apply_persisted and log.persisted > upto:
            upto = log.persisted  # FAILPOINT apply-uncommitted: hand out what is durable here, committed or not
        committed = log.to_apply(upto) if log.applied < upto else ()
        if committed:
            log.applied = upto
        ready = Ready(hard_state=hard_state, entries=tuple(entries), snapshot=self._snapshot_to_persist,
                      messages=tuple(msgs), messages_after_persist=tuple(after),
                      committed_entries=tuple(committed), read_states=tuple(self._read_states),
                      soft_state=soft_state)
        self._msgs, self._msgs_after, self._read_states = [], [], []
        self._snapshot_to_persist = None
        if not (hard_state or entries or ready.snapshot or msgs or after or committed or ready.read_states
                or soft_state):
            raise UsageError("ready() called with nothing ready (check has_ready() first)")
        self._outstanding = ready
        return ready

    @_guarded
    def advance(self, ready: Ready) -> None:
        """Acknowledge that `ready` (the last batch handed out) was persisted, sent and applied."""
        if ready is not self._outstanding:
            raise UsageError("advance() must be given the Ready last handed out by ready(), once")
        self._outstanding = None
        log = self._log
        if ready.snapshot is not None:
            self._applied_acked = max(self._applied_acked, ready.snapshot.meta.index)
        if ready.committed_entries:
            self._applied_acked = max(self._applied_acked, ready.committed_entries[-1].index)
        if ready.entries:
            last = ready.entries[-1]
            before = log.persisted
            log.stable_to(last.index, last.term)
            if self._role is Role.LEADER and log.persisted != before:
                self._maybe_commit()  # our own copy now counts

    # --- read-only state ------------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def term(self) -> int:
        return self._term

    @property
    def vote(self) -> str | None:
        return self._vote

    @property
    def role(self) -> Role:
        return self._role

    @property
    def leader(self) -> str | None:
        return self._lead

    @property
    def commit_index(self) -> int:
        return self._log.committed

    @property
    def applied_index(self) -> int:
        """The index the application has applied (acknowledged by `advance`)."""
        return self._applied_acked

    @property
    def first_index(self) -> int:
        """The first index still in the log (snapshot index + 1)."""
        return self._log.first_index

    @property
    def last_index(self) -> int:
        return self._log.last_index

    @property
    def last_term(self) -> int:
        return self._log.last_term

    @property
    def snapshot_meta(self) -> SnapshotMeta | None:
        """The meta of the latest snapshot this core holds (made by `compact` or received), or None."""
        return self._snapshot.meta if self._snapshot is not None else None

    @property
    def leaderships(self) -> tuple[int, ...]:
        """The terms this core became leader in since it was built, oldest first; the last MAX_LEADERSHIPS only."""
        return tuple(self._leaderships)

    @property
    def leadership_count(self) -> int:
        """How many times this core became leader since it was built (not bounded: tells new leaderships apart
        from those already seen when `leaderships` is full)."""
        return self._leadership_count

    @property
    def lead_transferee(self) -> str | None:
        return self._lead_transferee

    @property
    def halted(self) -> bool:
        return self._halted is not None

    def status(self) -> Status:
        log = self._log
        progress = tuple(
            PeerStatus(id=peer, match=pr.match, next=pr.next, state=pr.state, inflight=len(pr.inflight),
                       recent_active=pr.recent_active)
            for peer, pr in self._prs.items())
        return Status(id=self._id, term=self._term, vote=self._vote, role=self._role, leader=self._lead,
                      commit_index=log.committed, applied_index=self._applied_acked, first_index=log.first_index,
                      last_index=log.last_index, snapshot_index=log.snap_index, snapshot_term=log.snap_term,
                      progress=progress)

    def entries(self, lo: int, hi: int) -> tuple[Entry, ...]:
        """The log entries with lo <= index < hi (for tests and status); `UsageError` if compacted or beyond."""
        log = self._log
        if not log.first_index <= lo <= hi <= log.last_index + 1:
            raise UsageError(f"entries [{lo}, {hi}) outside the log [{log.first_index}, {log.last_index + 1})")
        return tuple(log.slice(lo, hi))


def _always() -> bool:
    return True


def _nothing() -> None:
    return None
