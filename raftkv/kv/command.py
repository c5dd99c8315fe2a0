"""Commands of the KV state machine and their byte encoding (msgpack array, compact, deterministic)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgpack

from raftkv.api import MAX_KEY_BYTES, MAX_VALUE_BYTES

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_REQUEST_ID_BYTES",
    "MAX_VALUE_BYTES",
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
class Command:
    """One request to the state machine. `request_id` lets the proposer match the `Result` (unique per client
    request; the state machine only echoes it). PUT needs `value`; GET and DELETE have none. `expected_version`:
    PUT >= 0 (0 = create), DELETE >= 1, GET must be 0."""

    request_id: str
    op: Op
    key: str
    value: str | None = None
    expected_version: int = 0

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """The outcome of applying a command. `value`/`version`: for GET OK the value and its version; for PUT OK the
    value written and its new version; for DELETE OK the version deleted; for VERSION_MISMATCH the key's current
    value and version; for NO_KEY None and 0."""

    request_id: str
    outcome: Outcome
    value: str | None = None
    version: int = 0
    detail: str = ""


def encode_command(cmd: Command) -> bytes:
    """Bytes for a log entry: msgpack [request_id, op, key, value, expected_version]."""
    if type(cmd) is not Command:
        raise TypeError(f"encode_command takes a Command, got {type(cmd).__name__}")
    return msgpack.packb([cmd.request_id, int(cmd.op), cmd.key, cmd.value, cmd.expected_version])


def decode_command(data: bytes) -> Command:
    """The inverse of `encode_command`; `CommandError` for anything else (never another exception)."""
    if type(data) is not bytes:
        raise CommandError(f"a command must be bytes, got {type(data).__name__}")
    try:
        fields = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise CommandError(f"not a msgpack value: {type(exc).__name__}: {exc}") from None
    if type(fields) is not list or len(fields) != 5:
        raise CommandError("a command is a msgpack array of 5 fields")
    request_id, op, key, value, expected = fields
    if type(op) is not int or op not in _OPS:
        raise CommandError(f"unknown command op {op!r}")
    # Command.__post_init__ checks every other field and raises CommandError itself.
    return Command(request_id=request_id, op=_OPS[op], key=key, value=value, expected_version=expected)


_OPS = {int(op): op for op in Op}
