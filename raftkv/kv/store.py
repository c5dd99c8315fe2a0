"""`KVStore`: the versioned key-value state machine (apply committed commands in log order)."""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack

from raftkv.failpoints import FailpointError, check_layer

from .chain import ChainError, CommitChain
from .command import (
    MAX_KEY_BYTES,
    MAX_VALUE_BYTES,
    Command,
    CommandError,
    Op,
    Outcome,
    Result,
    decode_command,
)
from .sessions import SessionTable, SessionTableError

__all__ = ["KVStore", "KVUsageError", "SnapshotError"]

# Snapshot formats: /1 = [tag, applied, items] (before client sessions; restored with an empty session table),
# /2 = [tag, applied, items, sessions] (SessionTable.encode), /3 = [tag, applied, items, sessions, chain]
# (CommitChain.encode: the applied prefix's commitment; /1 and /2 restore with an unanchored chain). Written: /3.
_SNAPSHOT_TAG_V1 = "raftkv.kv/1"
_SNAPSHOT_TAG_V2 = "raftkv.kv/2"
_SNAPSHOT_TAG = "raftkv.kv/3"


class KVUsageError(Exception):
    """The caller misused the store (e.g. applied an index not above the applied index)."""


class SnapshotError(ValueError):
    """Snapshot bytes that are not a valid KV snapshot (restore leaves the store unchanged)."""


class FrozenState:
    """A copy of a store's state at one applied index (see :meth:`KVStore.frozen`)."""

    __slots__ = ("applied", "_data", "_sessions", "_chain")

    def __init__(self, applied: int, data: dict[str, tuple[str, int]], sessions: list[Any],
                 chain: CommitChain | None = None) -> None:
        self.applied = applied
        self._data = data
        self._sessions = sessions
        self._chain = chain if chain is not None else CommitChain(applied, anchored=False)

    def digest(self) -> str:
        """The hex sha256 of the state's canonical content: msgpack of ``[[key, ...], [[value, version], ...]]``,
        the keys sorted and their (value, version) pairs in the same order (no applied index), so equal states give
        equal digests on every replica whatever order the keys were written in. The session table is not part of
        the digest (its format is the convergence oracle's contract; a divergent table shows in the data). Safe on any thread, like
        :meth:`encode`. About 0.1 s at 10^5 keys, mostly the sort (of the keys alone: sorting the items, tuples,
        took twice as long)."""
        data = self._data
        keys = sorted(data)
        return hashlib.sha256(msgpack.packb([keys, list(map(data.__getitem__, keys))])).hexdigest()

    def encode(self) -> bytes:
        """:meth:`KVStore.snapshot`'s bytes for this state. Safe on any thread: nothing else holds the copy."""
        items = [[key, value, version] for key, (value, version) in sorted(self._data.items())]
        return msgpack.packb([_SNAPSHOT_TAG, self.applied, items, self._sessions, self._chain.encode()])


class KVStore:
    """The state machine. `apply(index, data)` must be called with strictly increasing indexes (gaps are fine:
    NOOP entries carry no command; `note_applied` records them). `snapshot()` is deterministic: equal states
    give equal bytes, whatever order the keys were written in.

    Writes that carry a client session apply at most once (raftkv/kv/sessions.py).

    `failpoints`: kv failpoints (raftkv/failpoints.py; test labs only), bound here: `cas-ignores-version` applies
    a Put or Delete whatever its expected version (a lost-update bug); `no-dedup` ignores client sessions, so a
    retried write can apply twice across a delete (issue 15's bug). `KVUsageError` for a name that is not one."""

    __slots__ = ("_data", "_applied", "_check_versions", "_sessions", "_exactly_once", "_chain")

    def __init__(self, *, failpoints: frozenset[str] = frozenset()) -> None:
        try:
            check_layer(failpoints, "kv", where="KVStore failpoints")
        except FailpointError as exc:
            raise KVUsageError(str(exc)) from None
        self._data: dict[str, tuple[str, int]] = {}
        self._applied = 0
        self._check_versions = "cas-ignores-version" not in failpoints  # FAILPOINT cas-ignores-version if False
        self._sessions = SessionTable()
        self._exactly_once = "no-dedup" not in failpoints  # FAILPOINT no-dedup if False
        self._chain = CommitChain()

    @property
    def applied_index(self) -> int:
        """The index of the last log entry applied (0 before any)."""
        return self._applied

    def get(self, key: str) -> tuple[str, int] | None:
        """The current (value, version) of `key`, or None (a local read: serve it only under a ReadState)."""
        return self._data.get(key)

    def _check_index(self, index: int) -> None:
        if type(index) is not int or index <= self._applied:
            raise KVUsageError(f"apply index {index!r} must be an int above the applied index {self._applied}")

    @property
    def chain(self) -> dict[str, Any] | None:
        """The commitment to the applied log prefix (raftkv.kv.chain, CommitChain.view), None if unknown."""
        return self._chain.view()

    def note_applied(self, index: int, term: int = 0, data: bytes = b"") -> None:
        """Record that `index` (a NOOP entry, or one with no command; its `term` and `data` go into the chain) is
        applied."""
        self._check_index(index)
        self._applied = index
        self._chain.add(index, term, data)

    def apply(self, index: int, data: bytes, term: int = 0) -> Result:
        """Apply the command encoded in `data` (the entry at log `index`, of `term`) and return its result.
        Undecodable data gives an INVALID result (the same on every replica), not an exception. Every applied
        entry, with its term, is folded into the chain (raftkv.kv.chain): a replica passes the entry's term; a
        caller without a log (tests) may leave it 0."""
        self._check_index(index)
        self._applied = index
        self._chain.add(index, term, data)
        try:
            cmd = decode_command(data)
        except CommandError as exc:
            return Result(request_id="", outcome=Outcome.INVALID, detail=str(exc))
        session = cmd.session
        if session is None or not self._exactly_once:
            return self._apply(cmd)
        answer = self._sessions.check(index, cmd.request_id, session)
        if answer is not None:
            return answer
        result = self._apply(cmd)
        self._sessions.record(index, session, result.outcome, result.version)
        return result

    def _apply(self, cmd: Command) -> Result:
        """Apply one decoded command to the data (no session bookkeeping)."""
        current = self._data.get(cmd.key)
        rid = cmd.request_id
        if cmd.op is Op.GET:
            if current is None:
                return Result(request_id=rid, outcome=Outcome.NO_KEY)
            return Result(request_id=rid, outcome=Outcome.OK, value=current[0], version=current[1])
        expected = cmd.expected_version
        if not self._check_versions and current is not None:
            expected = current[1]  # FAILPOINT cas-ignores-version: the write wins whatever version it expected
        if current is None:
            if expected != 0:
                return Result(request_id=rid, outcome=Outcome.NO_KEY)
        elif current[1] != expected:
            return Result(request_id=rid, outcome=Outcome.VERSION_MISMATCH, value=current[0], version=current[1])
        if cmd.op is Op.PUT:
            assert cmd.value is not None  # guaranteed by Command
            self._data[cmd.key] = (cmd.value, expected + 1)
            return Result(request_id=rid, outcome=Outcome.OK, value=cmd.value, version=expected + 1)
        # DELETE: expected >= 1 by Command, so the key exists here with that version.
        del self._data[cmd.key]
        return Result(request_id=rid, outcome=Outcome.OK, version=expected)

    def snapshot(self) -> bytes:
        """The whole state (applied index, every key, the sessions and the chain of the applied log) as bytes; keys
        sorted so replicas that applied the same log give equal bytes."""
        return self.frozen().encode()

    def frozen(self) -> FrozenState:
        """The state as it is now, detached from later applies: a shallow copy of the key table (values are
        immutable), a few ms for 200,000 keys, so that the expensive :meth:`FrozenState.encode` can run on another
        thread while this store keeps applying."""
        return FrozenState(self._applied, self._data.copy(), self._sessions.encode(), self._chain.copy())

    def restore(self, data: bytes) -> None:
        """Replace the whole state by a `snapshot()`; `SnapshotError` (and no change) if `data` is not one. An old
        (/1) snapshot, from before client sessions, restores with an empty session table."""
        if type(data) is not bytes:
            raise SnapshotError(f"a snapshot must be bytes, got {type(data).__name__}")
        try:
            decoded = msgpack.unpackb(data, raw=False, use_list=True)
        except Exception as exc:  # msgpack raises several unrelated types for garbage
            raise SnapshotError(f"not a msgpack value: {type(exc).__name__}: {exc}") from None
        if type(decoded) is list and len(decoded) == 3 and decoded[0] == _SNAPSHOT_TAG_V1:
            decoded = [*decoded, [], None]
        elif type(decoded) is list and len(decoded) == 4 and decoded[0] == _SNAPSHOT_TAG_V2:
            decoded = [*decoded, None]
        elif type(decoded) is not list or len(decoded) != 5 or decoded[0] != _SNAPSHOT_TAG:
            raise SnapshotError(f"not a KV snapshot (expected [{_SNAPSHOT_TAG!r}, applied, items, sessions, chain], "
                                f"[{_SNAPSHOT_TAG_V2!r}, applied, items, sessions] or "
                                f"[{_SNAPSHOT_TAG_V1!r}, applied, items])")
        _, applied, items, encoded_sessions, encoded_chain = decoded
        try:
            sessions = SessionTable.decode(encoded_sessions)
        except SessionTableError as exc:
            raise SnapshotError(f"bad session table: {exc}") from None
        if type(applied) is not int or applied < 0:
            raise SnapshotError(f"bad applied index {applied!r}")
        try:
            chain = CommitChain.decode(encoded_chain, applied)
        except ChainError as exc:
            raise SnapshotError(f"bad chain: {exc}") from None
        if type(items) is not list:
            raise SnapshotError("items must be an array")
        state: dict[str, tuple[str, int]] = {}
        for n, item in enumerate(items):
            if type(item) is not list or len(item) != 3:
                raise SnapshotError(f"item {n} is not [key, value, version]")
            key, value, version = item
            if type(key) is not str or not key or len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
                raise SnapshotError(f"item {n}: bad key")
            if type(value) is not str or len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
                raise SnapshotError(f"item {n}: bad value")
            if type(version) is not int or version < 1:
                raise SnapshotError(f"item {n}: bad version {version!r}")
            if key in state:
                raise SnapshotError(f"item {n}: duplicate key {key!r}")
            state[key] = (value, version)
        self._data = state
        self._applied = applied
        self._sessions = sessions
        self._chain = chain

    def __len__(self) -> int:
        return len(self._data)

    @property
    def sessions(self) -> int:
        """How many client sessions the session table holds."""
        return len(self._sessions)

    def items(self) -> list[tuple[str, str, int]]:
        """Every (key, value, version), sorted by key (for tests and debugging)."""
        return [(key, value, version) for key, (value, version) in sorted(self._data.items())]
