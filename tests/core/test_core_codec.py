"""raftkv.core.codec: round trips of every value, and garbage only ever raising DecodeError."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftkv.core import Entry, EntryKind, HardState, Message, MessageType, Snapshot, SnapshotMeta
from raftkv.core.codec import (
    DecodeError,
    decode_entry,
    decode_hard_state,
    decode_message,
    decode_snapshot,
    decode_snapshot_meta,
    encode_entry,
    encode_hard_state,
    encode_message,
    encode_snapshot,
    encode_snapshot_meta,
)

RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
IDS = st.sampled_from(["n1", "n2", "node-3", "ä"])
SMALL = st.integers(min_value=0, max_value=2**40)
TERMS = st.integers(min_value=1, max_value=2**40)


@st.composite
def entries(draw: st.DrawFn, index: int | None = None) -> Entry:
    kind = draw(st.sampled_from(list(EntryKind)))
    data = b"" if kind is EntryKind.NOOP else draw(st.binary(max_size=20))
    return Entry(term=draw(TERMS), index=index if index is not None else draw(TERMS), kind=kind, data=data)


metas = st.builds(lambda i, t, v: SnapshotMeta(index=i, term=t if i else 0, voters=tuple(v)),
                  SMALL, TERMS, st.lists(IDS, max_size=3))


@st.composite
def messages(draw: st.DrawFn) -> Message:
    index = draw(SMALL)
    n = draw(st.integers(0, 3))
    ents = tuple(draw(entries(index=index + 1 + k)) for k in range(n))
    return Message(
        type=draw(st.sampled_from(list(MessageType))), src=draw(IDS), dst=draw(IDS), term=draw(SMALL),
        index=index, log_term=draw(SMALL), entries=ents, commit=draw(SMALL), reject=draw(st.booleans()),
        hint_term=draw(SMALL), hint_index=draw(SMALL), snapshot=draw(st.none() | metas), offset=draw(SMALL),
        data=draw(st.binary(max_size=10)), done=draw(st.booleans()), context=draw(st.binary(max_size=10)),
        seq=draw(SMALL), transfer=draw(st.booleans()))


@RELAXED
@given(messages())
def test_message_round_trip(msg: Message) -> None:
    assert decode_message(encode_message(msg)) == msg


@RELAXED
@given(entries())
def test_entry_round_trip(entry: Entry) -> None:
    assert decode_entry(encode_entry(entry)) == entry


@given(st.builds(HardState, term=SMALL, vote=st.none() | IDS, commit=SMALL))
def test_hard_state_round_trip(state: HardState) -> None:
    assert decode_hard_state(encode_hard_state(state)) == state


@given(metas, st.binary(max_size=30))
def test_snapshot_round_trips(meta: SnapshotMeta, data: bytes) -> None:
    assert decode_snapshot_meta(encode_snapshot_meta(meta)) == meta
    snap = Snapshot(meta=meta, data=data)
    assert decode_snapshot(encode_snapshot(snap)) == snap


def test_a_heartbeat_is_compact() -> None:
    msg = Message(type=MessageType.HEARTBEAT, src="n1", dst="n2", term=7, commit=100, seq=12)
    assert len(encode_message(msg)) <= 20


DECODERS = [decode_message, decode_entry, decode_hard_state, decode_snapshot_meta, decode_snapshot]


@RELAXED
@given(st.binary(max_size=80), st.sampled_from(DECODERS))
def test_garbage_bytes_raise_only_decode_error(data: bytes, decode: object) -> None:
    with contextlib.suppress(DecodeError):
        decode(data)  # type: ignore[operator]


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=4),
                    st.binary(max_size=4), st.floats(allow_nan=False))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=2),
                                                                                           inner, max_size=2),
                      max_leaves=12)


@RELAXED
@given(st.integers(0, 6), st.lists(values, max_size=20), st.sampled_from(DECODERS))
def test_well_formed_msgpack_of_wrong_shape_raises_only_decode_error(tag: int, fields: list[object],
                                                                     decode: object) -> None:
    with contextlib.suppress(DecodeError):
        decode(msgpack.packb([tag, *fields]))  # type: ignore[operator]


@RELAXED
@given(messages(), st.data())
def test_corrupted_encodings_raise_only_decode_error(msg: Message, data: st.DataObject) -> None:
    raw = bytearray(encode_message(msg))
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        with contextlib.suppress(DecodeError):
            decode_message(candidate)


@pytest.mark.parametrize(("decode", "data", "words"), [
    (decode_message, b"", "msgpack"),
    (decode_message, msgpack.packb([2, 1, None, 0]), "kind tag"),
    (decode_message, msgpack.packb([5, 99, "a", "b", 1]), "message type"),
    (decode_message, msgpack.packb([5, 5, "a", "b", -1]), "Message.term"),
    (decode_message, msgpack.packb([5, 5, "a", "b", 1, 0, 0, 0, [1, 7, b""]]), "entry kind"),
    (decode_message, msgpack.packb([5, 5, "a", "b", 1, 0, 0, 0, [1, 0]]), "triples"),
    (decode_message, msgpack.packb([5, 5, "a", "b", 1, 0, 0, 0, [1, 1, b"x"]]), "NOOP"),
    (decode_message, msgpack.packb([5, 5, "a", "b", 1, 0, 0, 0, [0, 0, b"x"]]), "terms"),
    (decode_message, msgpack.packb([5, 5, "a", "b", 1, 0, 0, 0, [1, 0, "str"]]), "bytes"),
    (decode_message, msgpack.packb([5, 5, "a", "b", 1, 0, 0, 0, [1, True, b""]]), "kind"),
    (decode_entry, msgpack.packb([1, 1, 1, 1, b"x"]), "NOOP"),
    (decode_hard_state, msgpack.packb({"a": 1}), "array"),
    (decode_hard_state, msgpack.packb([2, 1, None]), "fields"),
    (decode_snapshot, b"not bytes", "msgpack"),
])
def test_decode_errors_say_what_is_wrong(decode: object, data: bytes, words: str) -> None:
    with pytest.raises(DecodeError, match=words):
        decode(data)  # type: ignore[operator]


def test_decoding_a_str_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_message("text")  # type: ignore[arg-type]
