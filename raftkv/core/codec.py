"""Pure encoding of the core's values to compact bytes (msgpack) and back, for the wire and the WAL.

Each encoding is a msgpack array whose first element is a small integer tag naming the kind (so a WAL record or a
frame of the wrong kind is refused, not misread). Fields follow in a fixed order; a message omits its trailing
fields that hold their default values, and entries inside a message omit their index (it follows from
`Message.index`). `decode_*` of anything that is not a valid encoding of that kind raises `DecodeError` saying
what is wrong, and never another exception.
"""

from __future__ import annotations

from itertools import chain
from operator import attrgetter
from typing import Any

import msgpack

from .errors import RaftError
from .types import Entry, EntryKind, HardState, Message, MessageType, Snapshot, SnapshotMeta, trusted_entry

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

_TAG_ENTRY = 1
_TAG_HARD_STATE = 2
_TAG_SNAPSHOT_META = 3
_TAG_SNAPSHOT = 4
_TAG_MESSAGE = 5

# Message fields after (type, src, dst, term), in wire order, with their defaults.
_MSG_FIELDS: tuple[tuple[str, Any], ...] = (
    ("index", 0), ("log_term", 0), ("commit", 0), ("entries", ()), ("reject", False), ("hint_term", 0),
    ("hint_index", 0), ("seq", 0), ("context", b""), ("snapshot", None), ("offset", 0), ("data", b""),
    ("done", False), ("transfer", False),
)
_MSG_DEFAULTS = tuple(default for _, default in _MSG_FIELDS)


class DecodeError(RaftError, ValueError):
    """Bytes that are not a valid encoding (truncated, wrong kind, wrong field type, out-of-range value)."""


def _unpack(data: bytes, tag: int, what: str, min_len: int, max_len: int) -> list[Any]:
    if type(data) is not bytes:
        raise DecodeError(f"{what}: expected bytes, got {type(data).__name__}")
    try:
        fields = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises many unrelated exception types on garbage
        raise DecodeError(f"{what}: not a msgpack value ({type(exc).__name__}: {exc})") from None
    if type(fields) is not list or not fields:
        raise DecodeError(f"{what}: expected a non-empty msgpack array, got {type(fields).__name__}")
    if fields[0] != tag or type(fields[0]) is not int:
        raise DecodeError(f"{what}: wrong kind tag {fields[0]!r} (expected {tag})")
    if not min_len <= len(fields) - 1 <= max_len:
        raise DecodeError(f"{what}: {len(fields) - 1} fields, expected {min_len}..{max_len}")
    return fields


def _build(what: str, cls: Any, **kwargs: Any) -> Any:
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # the dataclasses validate every field and say which one
        raise DecodeError(f"{what}: {exc}") from None


def _entry_kind(value: Any) -> EntryKind:
    if type(value) is not int or value not in _ENTRY_KINDS:
        raise DecodeError(f"unknown entry kind {value!r}")
    return _ENTRY_KINDS[value]


_ENTRY_KINDS = {int(kind): kind for kind in EntryKind}
_KIND_VALUES = set(_ENTRY_KINDS)
_INT = {int}
_BYTES = {bytes}
_entry_triple = attrgetter("term", "kind", "data")
_MESSAGE_TYPES = {int(kind): kind for kind in MessageType}


def encode_entry(entry: Entry) -> bytes:
    """[tag, term, index, kind, data]."""
    return msgpack.packb([_TAG_ENTRY, entry.term, entry.index, int(entry.kind), entry.data])


def decode_entry(data: bytes) -> Entry:
    _, term, index, kind, payload = _unpack(data, _TAG_ENTRY, "entry", 4, 4)
    return _build("entry", Entry, term=term, index=index, kind=_entry_kind(kind), data=payload)


def encode_hard_state(state: HardState) -> bytes:
    """[tag, term, vote, commit]."""
    return msgpack.packb([_TAG_HARD_STATE, state.term, state.vote, state.commit])


def decode_hard_state(data: bytes) -> HardState:
    _, term, vote, commit = _unpack(data, _TAG_HARD_STATE, "hard state", 3, 3)
    return _build("hard state", HardState, term=term, vote=vote, commit=commit)


def _meta_fields(meta: SnapshotMeta) -> list[Any]:
    return [meta.index, meta.term, list(meta.voters)]


def _meta_from(what: str, fields: Any) -> SnapshotMeta:
    if type(fields) is not list or len(fields) != 3:
        raise DecodeError(f"{what}: snapshot meta must be [index, term, voters]")
    index, term, voters = fields
    if type(voters) is not list:
        raise DecodeError(f"{what}: snapshot voters must be an array")
    return _build(what, SnapshotMeta, index=index, term=term, voters=tuple(voters))


def encode_snapshot_meta(meta: SnapshotMeta) -> bytes:
    """[tag, index, term, [voters...]]."""
    return msgpack.packb([_TAG_SNAPSHOT_META, *_meta_fields(meta)])


def decode_snapshot_meta(data: bytes) -> SnapshotMeta:
    fields = _unpack(data, _TAG_SNAPSHOT_META, "snapshot meta", 3, 3)
    return _meta_from("snapshot meta", fields[1:])


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """[tag, [index, term, voters], data]: meta and data together (for a snapshot file)."""
    return msgpack.packb([_TAG_SNAPSHOT, _meta_fields(snapshot.meta), snapshot.data])


def decode_snapshot(data: bytes) -> Snapshot:
    _, meta, payload = _unpack(data, _TAG_SNAPSHOT, "snapshot", 2, 2)
    return _build("snapshot", Snapshot, meta=_meta_from("snapshot", meta), data=payload)


def encode_message(msg: Message) -> bytes:
    """[tag, type, src, dst, term, index, log_term, commit, [term1, kind1, data1, term2, ...], reject, ...] with
    trailing default fields left out (entries flattened: no array per entry, and their index is implied)."""
    values: list[Any] = [msg.index, msg.log_term, msg.commit,
                         list(chain.from_iterable(map(_entry_triple, msg.entries))) if msg.entries else (),
                         msg.reject, msg.hint_term, msg.hint_index, msg.seq, msg.context,
                         _meta_fields(msg.snapshot) if msg.snapshot is not None else None,
                         msg.offset, msg.data, msg.done, msg.transfer]
    n = len(values)
    while n and values[n - 1] == _MSG_DEFAULTS[n - 1] and type(values[n - 1]) is type(_MSG_DEFAULTS[n - 1]):
        n -= 1
    return msgpack.packb([_TAG_MESSAGE, int(msg.type), msg.src, msg.dst, msg.term, *values[:n]])


def _decode_entries(flat: Any, index: int) -> tuple[Entry, ...]:
    """[term, kind, data, ...] -> Entries from index + 1 on. Checked with C-speed builtins (an APPEND may carry
    thousands of entries), then built without a second validation."""
    if type(flat) is not list or len(flat) % 3:
        raise DecodeError("message: entries must be a flat array of [term, kind, data] triples")
    if not flat:
        return ()
    terms, kinds, datas = flat[0::3], flat[1::3], flat[2::3]
    if set(map(type, terms)) != _INT or min(terms) < 1:
        raise DecodeError("message: entry terms must be ints >= 1")
    if set(map(type, kinds)) != _INT or not set(kinds) <= _KIND_VALUES:
        raise DecodeError(f"message: unknown entry kind in {sorted(set(map(repr, kinds)))[:5]}")
    if set(map(type, datas)) != _BYTES:
        raise DecodeError("message: entry data must be bytes")
    noop = int(EntryKind.NOOP)
    if noop in kinds and any(k == noop and d for k, d in zip(kinds, datas, strict=True)):
        raise DecodeError("message: a NOOP entry must carry no data")
    return tuple(map(trusted_entry, terms, range(index + 1, index + 1 + len(terms)), datas,
                     map(_ENTRY_KINDS.__getitem__, kinds)))


def decode_message(data: bytes) -> Message:
    fields = _unpack(data, _TAG_MESSAGE, "message", 4, 4 + len(_MSG_FIELDS))
    kind = fields[1]
    if type(kind) is not int or kind not in _MESSAGE_TYPES:
        raise DecodeError(f"message: unknown message type {kind!r}")
    extra = fields[5:]
    kwargs: dict[str, Any] = dict(zip((name for name, _ in _MSG_FIELDS), extra, strict=False))
    index = kwargs.get("index", 0)
    raw_entries = kwargs.get("entries", ())
    if raw_entries != ():
        if type(index) is not int:
            raise DecodeError("message: index must be an int")
        kwargs["entries"] = _decode_entries(raw_entries, index)
    if kwargs.get("snapshot") is not None:
        kwargs["snapshot"] = _meta_from("message", kwargs["snapshot"])
    return _build("message", Message, type=_MESSAGE_TYPES[kind], src=fields[2], dst=fields[3], term=fields[4],
                  **kwargs)
