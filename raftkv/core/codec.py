"""Pure encoding of the core's values to compact bytes (msgpack) and back, for the wire and the WAL.

`decode_*` of anything that is not a valid encoding raises `DecodeError` saying what is wrong, never another
exception. Encodings are versionless arrays of fields in a fixed order (compact); a leading tag names the kind.
"""

from __future__ import annotations

from .errors import RaftError
from .types import Entry, HardState, Message, Snapshot, SnapshotMeta

__all__ = [
    "DecodeError",
    "decode_entry",
    "decode_hard_state",
    "decode_message",
    "decode_snapshot",
    "decode_snapshot_meta",
    "encode_entry",
    "encode_hard_state",
    "encode_message",
    "encode_snapshot",
    "encode_snapshot_meta",
]


class DecodeError(RaftError, ValueError):
    """Bytes that are not a valid encoding (truncated, wrong kind, wrong field type, out-of-range value)."""


def encode_entry(entry: Entry) -> bytes:
    raise NotImplementedError


def decode_entry(data: bytes) -> Entry:
    raise NotImplementedError


def encode_hard_state(state: HardState) -> bytes:
    raise NotImplementedError


def decode_hard_state(data: bytes) -> HardState:
    raise NotImplementedError


def encode_snapshot_meta(meta: SnapshotMeta) -> bytes:
    raise NotImplementedError


def decode_snapshot_meta(data: bytes) -> SnapshotMeta:
    raise NotImplementedError


def encode_message(msg: Message) -> bytes:
    raise NotImplementedError


def decode_message(data: bytes) -> Message:
    raise NotImplementedError


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """Meta and data together (for a snapshot file)."""
    raise NotImplementedError


def decode_snapshot(data: bytes) -> Snapshot:
    raise NotImplementedError
