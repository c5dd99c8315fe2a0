"""The values the Raft core takes in and hands out: entries, durable state, snapshots, messages, Ready batches.

All are frozen, slotted, keyword-only dataclasses validated when built (a wrong type or a negative index raises
`TypeError`/`ValueError` naming the field), so a bad value is caught where it is made, not deep in the core.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

__all__ = [
    "Entry",
    "EntryKind",
    "HardState",
    "Message",
    "MessageType",
    "ReadState",
    "Ready",
    "Role",
    "Snapshot",
    "SnapshotMeta",
    "SoftState",
]


def _check_int(name: str, value: object, minimum: int = 0) -> None:
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_id(name: str, value: object) -> None:
    if type(value) is not str or not value:
        raise TypeError(f"{name} must be a non-empty str, got {value!r}")


class EntryKind(enum.IntEnum):
    """What a log entry carries. NORMAL: application data. NOOP: the empty entry a new leader appends at the start
    of its term so that entries of earlier terms become committed (Raft paper section 5.4.2 / 8)."""

    NORMAL = 0
    NOOP = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One log entry. `index` >= 1, `term` >= 1; a NOOP carries no data."""

    term: int
    index: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""

    def __post_init__(self) -> None:
        # Fast path first: entries are built by the hundred thousand per second.
        if (type(self.term) is int and self.term >= 1 and type(self.index) is int and self.index >= 1
                and type(self.data) is bytes and (self.kind is EntryKind.NORMAL or
                                                   (self.kind is EntryKind.NOOP and not self.data))):
            return
        _check_int("Entry.term", self.term, 1)
        _check_int("Entry.index", self.index, 1)
        if type(self.kind) is not EntryKind:
            raise TypeError(f"Entry.kind must be an EntryKind, got {self.kind!r}")
        if type(self.data) is not bytes:
            raise TypeError(f"Entry.data must be bytes, got {type(self.data).__name__}")
        if self.kind is EntryKind.NOOP and self.data:
            raise ValueError("Entry.data must be empty for a NOOP entry")


_new_object = object.__new__
# The slot descriptors of Entry (a frozen dataclass refuses plain attribute assignment).
_slot: Any = vars(Entry)
_set_term = _slot["term"].__set__
_set_index = _slot["index"].__set__
_set_kind = _slot["kind"].__set__
_set_data = _slot["data"].__set__


def trusted_entry(term: int, index: int, data: bytes, kind: EntryKind = EntryKind.NORMAL) -> Entry:
    """Build an Entry without validation, for the core's hot path, where the caller has checked the fields
    (term, index >= 1 ints; data bytes; empty for NOOP). Several times faster than `Entry(...)`."""
    entry = _new_object(Entry)
    _set_term(entry, term)
    _set_index(entry, index)
    _set_kind(entry, kind)
    _set_data(entry, data)
    return entry


@dataclass(frozen=True, slots=True, kw_only=True)
class HardState:
    """The state that must be durable before the messages of the same Ready leave: current term, the vote cast in
    that term (None if none), and the commit index (persisting commit is an optimisation: it lets a restarted node
    apply sooner; commit may safely be lost)."""

    term: int = 0
    vote: str | None = None
    commit: int = 0

    def __post_init__(self) -> None:
        _check_int("HardState.term", self.term)
        if self.vote is not None:
            _check_id("HardState.vote", self.vote)
        _check_int("HardState.commit", self.commit)


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotMeta:
    """Where a snapshot sits in the log: it replaces every entry up to and including `index` (of term `term`).
    `voters` is the configuration at that point (fixed membership: the config's peers)."""

    index: int
    term: int
    voters: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_int("SnapshotMeta.index", self.index)
        _check_int("SnapshotMeta.term", self.term)
        if (self.index == 0) != (self.term == 0):
            raise ValueError(f"SnapshotMeta index {self.index} and term {self.term}: both or neither must be 0")
        if type(self.voters) is not tuple:
            raise TypeError("SnapshotMeta.voters must be a tuple of str")
        for voter in self.voters:
            _check_id("SnapshotMeta.voters[]", voter)


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """A state-machine snapshot (opaque `data` made by the application) and where it sits in the log."""

    meta: SnapshotMeta
    data: bytes

    def __post_init__(self) -> None:
        if type(self.meta) is not SnapshotMeta:
            raise TypeError("Snapshot.meta must be a SnapshotMeta")
        if type(self.data) is not bytes:
            raise TypeError("Snapshot.data must be bytes")


class MessageType(enum.IntEnum):
    """The kinds of message between cores. Which `Message` fields each kind uses is documented on `Message`."""

    VOTE = 1
    VOTE_RESP = 2
    PRE_VOTE = 3
    PRE_VOTE_RESP = 4
    APPEND = 5
    APPEND_RESP = 6
    HEARTBEAT = 7
    HEARTBEAT_RESP = 8
    SNAPSHOT = 9
    SNAPSHOT_RESP = 10
    TIMEOUT_NOW = 11
    READ_INDEX = 12
    READ_INDEX_RESP = 13


_ENTRY_TYPE = {Entry}
_index_of = attrgetter("index")


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One message between two cores. Every message has `type`, `src`, `dst` and `term` (the sender's term; for
    PRE_VOTE the term the sender *would* campaign in, and for a granted PRE_VOTE_RESP that same term).

    Fields per type (unlisted fields keep their defaults):

    ==============  ======================================================================================
    VOTE, PRE_VOTE  index = candidate's last log index, log_term = its term; transfer = True when the election
                    was started by TIMEOUT_NOW (a leadership transfer), which overrides the leader lease.
    *_VOTE_RESP     reject = True when not granted.
    APPEND          index = index of the entry before `entries`, log_term = its term, entries, commit.
    APPEND_RESP     success: index = the last index now known to match the leader's log.
                    reject: index = the rejected `index` of the APPEND; hint_term = the follower's term at
                    that index (0 if its log is shorter); hint_index = the first index the follower has of
                    hint_term (or its last index + 1 when the log is shorter). The leader backs up by a term.
    HEARTBEAT       commit (already limited to the follower's known match), seq = the leader's heartbeat round.
    HEARTBEAT_RESP  seq echoed (confirms leadership for ReadIndex and the lease).
    SNAPSHOT        snapshot = meta; offset = where `data` starts in the snapshot bytes; done = last chunk.
    SNAPSHOT_RESP   index = snapshot index; offset = the next byte wanted; done = fully restored (the leader
                    then probes from index + 1); reject = the chunk did not fit (restart from `offset`).
    TIMEOUT_NOW     (nothing): the receiver campaigns at once, leadership transfer.
    READ_INDEX      context: a follower forwards a ReadIndex request to the leader.
    READ_INDEX_RESP context echoed; index = the read index; reject = the leader could not serve it.
    ==============  ======================================================================================
    """

    type: MessageType
    src: str
    dst: str
    term: int
    index: int = 0
    log_term: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    hint_term: int = 0
    hint_index: int = 0
    snapshot: SnapshotMeta | None = None
    offset: int = 0
    data: bytes = b""
    done: bool = False
    context: bytes = b""
    seq: int = 0
    transfer: bool = False

    def __post_init__(self) -> None:
        if type(self.type) is not MessageType:
            raise TypeError(f"Message.type must be a MessageType, got {self.type!r}")
        _check_id("Message.src", self.src)
        _check_id("Message.dst", self.dst)
        _check_int("Message.term", self.term)
        _check_int("Message.index", self.index)
        _check_int("Message.log_term", self.log_term)
        _check_int("Message.commit", self.commit)
        _check_int("Message.hint_term", self.hint_term)
        _check_int("Message.hint_index", self.hint_index)
        _check_int("Message.offset", self.offset)
        _check_int("Message.seq", self.seq)
        if type(self.entries) is not tuple:
            raise TypeError("Message.entries must be a tuple of Entry")
        entries = self.entries
        if entries:
            # Checked with C-speed builtins: an APPEND may carry thousands of entries.
            if set(map(type, entries)) != _ENTRY_TYPE:
                raise TypeError("Message.entries must hold Entry values")
            first = self.index + 1
            if list(map(_index_of, entries)) != list(range(first, first + len(entries))):
                raise ValueError(f"Message.entries must be contiguous from index {first}, got indexes "
                                 f"{[e.index for e in entries][:10]}...")
        if self.snapshot is not None and type(self.snapshot) is not SnapshotMeta:
            raise TypeError("Message.snapshot must be a SnapshotMeta or None")
        if type(self.data) is not bytes or type(self.context) is not bytes:
            raise TypeError("Message.data and Message.context must be bytes")
        if type(self.reject) is not bool or type(self.done) is not bool or type(self.transfer) is not bool:
            raise TypeError("Message.reject, Message.done and Message.transfer must be bool")


class Role(enum.Enum):
    """The role a core plays. PRE_CANDIDATE: probing with PreVote whether an election could be won."""

    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True, kw_only=True)
class SoftState:
    """Volatile state worth reporting (need not be persisted): the role and the leader known (None if unknown)."""

    role: Role
    leader: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadState:
    """A ReadIndex request (identified by the caller's `context`) is confirmed: the read may be served by this
    node's state machine as soon as it has applied `index` (applied >= index). It reflects every write committed
    before `read_index` was called."""

    index: int
    context: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Ready:
    """One batch of work from the core. The caller MUST handle it in this order, then call `Raft.advance(ready)`:

    1. **persist** (durably, fsync before step 2): if `snapshot` is set, replace the whole durable log with it
       (discard every stored entry) and hand `snapshot.data` to the state machine (restore); then write `entries`
       (they overwrite the durable log from `entries[0].index` on: drop any stored entry at or after that index
       first); then write `hard_state` if it is not None.
    2. **send** `messages_after_persist` (only now: they promise what step 1 made durable, e.g. a vote granted or
       entries acknowledged). `messages` carry no such promise and may be sent at once, even before or in
       parallel with step 1 (a leader's appends: the leader counts its own copy only after `advance`).
       Sending is best effort: a lost message is repaired by the protocol.
    3. **apply** `committed_entries` to the state machine in order (skip NOOP entries, but note their index as
       applied); serve each `read_states` entry once the applied index reaches its `index`. Committed entries
       may include entries of this very Ready's `entries` (hence persist first), and follow `snapshot` if both
       are set.
    4. **advance**: call `Raft.advance(ready)` with this very object. Until then `Raft.ready()` refuses to hand out
       another batch (`tick`, `step` and `propose` may still be called; their work goes to the next batch).

    `soft_state` is set when the role or the known leader changed (informational). An empty Ready
    (`Raft.has_ready()` False) is never handed out.
    """

    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    messages: tuple[Message, ...] = ()
    messages_after_persist: tuple[Message, ...] = ()
    committed_entries: tuple[Entry, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    soft_state: SoftState | None = None

    @property
    def must_sync(self) -> bool:
        """True when step 1 has something to make durable (then an fsync is due before the after-persist send)."""
        return self.hard_state is not None or bool(self.entries) or self.snapshot is not None
