"""Commands of the KV state machine and their byte encoding (msgpack array, compact, deterministic)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgpack

from raftkv.api import MAX_KEY_BYTES, MAX_VALUE_BYTES

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_REQUEST_ID_BYTES",
    "MAX_CLIENT_ID_BYTES",
    "MAX_VALUE_BYTES",
    "ClientSession",
    "Command",
    "CommandError",
    "Op",
    "Outcome",
    "Result",
    "decode_command",
    "encode_command",
]

# The key and value limits are the client API's (raftkv/api.py, documented in docs/openapi.yaml): one definition, so
# the state machine can never accept what the API refuses or the other way round. Keys must be non-empty.
MAX_REQUEST_ID_BYTES = 256
"""The largest request id, in UTF-8 bytes (may be empty)."""
MAX_CLIENT_ID_BYTES = 64
"""The largest client (session) id, in UTF-8 bytes (must not be empty)."""


class CommandError(ValueError):
    """A command is invalid (built with bad fields, or bytes that do not decode to a valid command)."""


class Op(enum.IntEnum):
    GET = 1
    PUT = 2
    DELETE = 3


class Outcome(enum.Enum):
    """OK: done. NO_KEY: the key does not exist. VERSION_MISMATCH: the expected version did not match (the
    result's `version` holds the current one). INVALID: the log entry was not a valid command (deterministic on
    every replica; `detail` says why)."""

    OK = "ok"
    NO_KEY = "no-key"
    VERSION_MISMATCH = "version-mismatch"
    INVALID = "invalid"
    SESSION_EXPIRED = "session-expired"
    """A write of a client session the state machine no longer remembers (evicted, or this sequence number's
    answer already forgotten at the client's request): NOT applied now; an earlier attempt may have been."""


def _utf8_len(name: str, value: object, limit: int, allow_empty: bool) -> None:
    if type(value) is not str:
        raise CommandError(f"{name} must be a str, got {type(value).__name__}")
    if not allow_empty and not value:
        raise CommandError(f"{name} must not be empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise CommandError(f"{name} is not encodable as UTF-8: {exc}") from None
    if size > limit:
        raise CommandError(f"{name} is {size} bytes, over the limit of {limit}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSession:
    """The identity of one client write for exactly-once application (the Raft dissertation's client sessions,
    section 6.3; docs/server.md). `client_id` names the client's session (chosen by the client, unique: e.g. 128
    random bits); `seq` numbers its writes from 1 (a retry carries the SAME seq); `min_seq` (1 <= min_seq <= seq):
    the client holds an answer for every seq below it, so the state machine may forget their results."""

    client_id: str
    seq: int
    min_seq: int = 1

    def __post_init__(self) -> None:
        _utf8_len("ClientSession.client_id", self.client_id, MAX_CLIENT_ID_BYTES, False)
        if type(self.seq) is not int or self.seq < 1:
            raise CommandError(f"ClientSession.seq must be an int >= 1, got {self.seq!r}")
        if type(self.min_seq) is not int or not 1 <= self.min_seq <= self.seq:
            raise CommandError(f"ClientSession.min_seq must be an int in 1..seq ({self.seq}), got {self.min_seq!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One request to the state machine. `request_id` lets the proposer match the `Result` (unique per client
    request; the state machine only echoes it). PUT needs `value`; GET and DELETE have none. `expected_version`:
    PUT >= 0 (0 = create), DELETE >= 1, GET must be 0. `session`: the write's client session (PUT and DELETE
    only), which makes a retried write apply at most once; None for a client without one (at-most-once only when
    it never retries)."""

    request_id: str
    op: Op
    key: str
    value: str | None = None
    expected_version: int = 0
    session: ClientSession | None = None

    def __post_init__(self) -> None:
        _utf8_len("Command.request_id", self.request_id, MAX_REQUEST_ID_BYTES, True)
        if type(self.op) is not Op:
            raise CommandError(f"Command.op must be an Op, got {self.op!r}")
        _utf8_len("Command.key", self.key, MAX_KEY_BYTES, False)
        if type(self.expected_version) is not int or self.expected_version < 0:
            raise CommandError(f"Command.expected_version must be an int >= 0, got {self.expected_version!r}")
        if self.op is Op.PUT:
            _utf8_len("Command.value", self.value, MAX_VALUE_BYTES, True)
        elif self.value is not None:
            raise CommandError(f"Command.value must be None for {self.op.name}")
        if self.op is Op.DELETE and self.expected_version < 1:
            raise CommandError("Command.expected_version must be >= 1 for DELETE")
        if self.op is Op.GET and self.expected_version != 0:
            raise CommandError("Command.expected_version must be 0 for GET")
        if self.session is not None and (type(self.session) is not ClientSession or self.op is Op.GET):
            raise CommandError(f"Command.session must be None or a ClientSession of a PUT/DELETE, got {self.session!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """The outcome of applying a command. `value`/`version`: for GET OK the value and its version; for PUT OK the
    value written and its new version; for DELETE OK the version deleted; for VERSION_MISMATCH the key's current
    value and version; for NO_KEY None and 0. `replayed`: the answer of an earlier application of the same
    session write, from the session table (then `value` is None: the table keeps outcomes and versions only)."""

    request_id: str
    outcome: Outcome
    value: str | None = None
    version: int = 0
    detail: str = ""
    replayed: bool = False


def encode_command(cmd: Command) -> bytes:
    """Bytes for a log entry: msgpack [request_id, op, key, value, expected_version], plus [client_id, seq,
    min_seq] for a write with a session (8 fields). Commands without a session keep the 5-field form, so logs
    written before sessions existed decode unchanged."""
    if type(cmd) is not Command:
        raise TypeError(f"encode_command takes a Command, got {type(cmd).__name__}")
    fields: list[object] = [cmd.request_id, int(cmd.op), cmd.key, cmd.value, cmd.expected_version]
    if cmd.session is not None:
        fields += [cmd.session.client_id, cmd.session.seq, cmd.session.min_seq]
    return msgpack.packb(fields)


def decode_command(data: bytes) -> Command:
    """The inverse of `encode_command`; `CommandError` for anything else (never another exception)."""
    if type(data) is not bytes:
        raise CommandError(f"a command must be bytes, got {type(data).__name__}")
    try:
        fields = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise CommandError(f"not a msgpack value: {type(exc).__name__}: {exc}") from None
    if type(fields) is not list or len(fields) not in (5, 8):
        raise CommandError("a command is a msgpack array of 5 fields (8 with a client session)")
    request_id, op, key, value, expected = fields[:5]
    if type(op) is not int or op not in _OPS:
        raise CommandError(f"unknown command op {op!r}")
    # ClientSession and Command check every other field and raise CommandError themselves.
    session = ClientSession(client_id=fields[5], seq=fields[6], min_seq=fields[7]) if len(fields) == 8 else None
    return Command(request_id=request_id, op=_OPS[op], key=key, value=value, expected_version=expected,
                   session=session)


_OPS = {int(op): op for op in Op}
