"""The Raft state machine (sans-I/O). See `Raft`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .config import RaftConfig
from .types import Entry, HardState, Message, Ready, Role, Snapshot

__all__ = ["PeerStatus", "ProgressState", "Raft", "Status"]

import enum


class ProgressState(enum.Enum):
    """How a leader replicates to one follower (after etcd's Progress): PROBE sends one APPEND at a time until the
    follower's match is found; REPLICATE streams up to the in-flight window; SNAPSHOT waits for an
    InstallSnapshot to finish."""

    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


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
    """A snapshot of a core's state for status pages, metrics and tests."""

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
        raise NotImplementedError

    # --- inputs -------------------------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time by one tick (election timeout, heartbeats, check-quorum, lease)."""
        raise NotImplementedError

    def step(self, msg: Message) -> None:
        """Handle one message from a peer. Raises `ProtocolError` if the message breaks the protocol (it is then
        ignored) and `UsageError` if it is not addressed to this node or not a `Message`."""
        raise NotImplementedError

    def propose(self, data: bytes) -> int:
        """Append `data` as a new entry (leader only) and return its index. The entry may still be lost (a new
        leader may overwrite it): the caller learns its fate when an entry at that index is applied (compare the
        data or a request id inside it). Raises `NotLeader(leader_hint)` or `ProposalDropped(reason)`."""
        raise NotImplementedError

    def propose_many(self, datas: Sequence[bytes]) -> range:
        """Like `propose` for a batch (all or none); returns the range of indexes the entries got."""
        raise NotImplementedError

    def read_index(self, context: bytes) -> None:
        """Request a linearizable read point. Later a `ReadState(index, context)` appears in a Ready: serve the
        read once applied >= index. On a follower the request is forwarded to the leader. Raises `NotLeader` when
        no leader is known and `ProposalDropped` when too many reads are pending. A request may silently vanish
        (leader change, lost message): the caller retries after a timeout."""
        raise NotImplementedError

    def transfer_leadership(self, to: str) -> None:
        """Leader only: hand leadership to voter `to` (brings it up to date, then sends TIMEOUT_NOW). Proposals are
        dropped during the transfer; it is abandoned after an election timeout."""
        raise NotImplementedError

    def campaign(self) -> None:
        """Start an election now (as if the election timeout elapsed). No-op on a leader."""
        raise NotImplementedError

    def compact(self, index: int, snapshot_data: bytes) -> Snapshot:
        """The application made a snapshot `snapshot_data` of its state machine at applied `index`: the log up to
        `index` is dropped and the snapshot is kept to send to followers that lag behind it. Returns the
        `Snapshot` (the caller persists it, then may drop its durable log up to `index`).
        `UsageError` if index > applied or index < the current snapshot's index."""
        raise NotImplementedError

    # --- output -------------------------------------------------------------------------------------------

    def has_ready(self) -> bool:
        """True when `ready()` would hand out a non-empty batch (and none is outstanding)."""
        raise NotImplementedError

    def ready(self) -> Ready:
        """Hand out the next batch of work. `UsageError` if the previous one was not advanced or nothing is ready."""
        raise NotImplementedError

    def advance(self, ready: Ready) -> None:
        """Acknowledge that `ready` (the last batch handed out) was persisted, sent and applied."""
        raise NotImplementedError

    # --- read-only state ----------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        raise NotImplementedError

    @property
    def term(self) -> int:
        raise NotImplementedError

    @property
    def vote(self) -> str | None:
        raise NotImplementedError

    @property
    def role(self) -> Role:
        raise NotImplementedError

    @property
    def leader(self) -> str | None:
        raise NotImplementedError

    @property
    def commit_index(self) -> int:
        raise NotImplementedError

    @property
    def applied_index(self) -> int:
        raise NotImplementedError

    @property
    def first_index(self) -> int:
        raise NotImplementedError

    @property
    def last_index(self) -> int:
        raise NotImplementedError

    def status(self) -> Status:
        raise NotImplementedError

    def entries(self, lo: int, hi: int) -> tuple[Entry, ...]:
        """The log entries with lo <= index < hi (for tests and status); `UsageError` if compacted or beyond."""
        raise NotImplementedError
