"""Round-trip and fuzz tests of the WAL record codec and the peer frame codec: garbage gives a clean error or a
clean stop, never a crash and never a wrong record."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftkv.server import frames, records
from raftkv.server.records import StopReason

recs = st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=300)), max_size=20)


@given(recs)
def test_records_round_trip(items: list[tuple[int, bytes]]) -> None:
    buf = b"".join(records.encode(t, p) for t, p in items)
    out, stop = records.decode_all(buf)
    assert [(t, p) for t, p, _ in out] == items
    assert stop.reason is StopReason.END and stop.offset == len(buf)


@given(recs, st.integers(0, 10_000))
def test_records_any_prefix_is_a_clean_stop(items: list[tuple[int, bytes]], cut: int) -> None:
    buf = b"".join(records.encode(t, p) for t, p in items)
    cut = min(cut, len(buf))
    out, stop = records.decode_all(buf[:cut])
    # Every decoded record is one of the originals, in order, and nothing past the cut is invented.
    assert [(t, p) for t, p, _ in out] == items[: len(out)]
    assert stop.offset <= cut
    if stop.reason is not StopReason.END:
        assert stop.reason in (StopReason.SHORT_HEADER, StopReason.SHORT_PAYLOAD, StopReason.ZEROS)


@given(st.binary(max_size=2000))
@settings(max_examples=300)
def test_records_garbage_never_crashes(data: bytes) -> None:
    out, stop = records.decode_all(data)
    assert stop.offset <= len(data)
    for t, p, off in out:  # whatever decodes must re-encode to the very bytes it came from
        assert data[off:off + records.HEADER_SIZE + len(p)] == records.encode(t, p)


@given(recs.filter(bool), st.data())
def test_records_flipped_byte_is_detected(items: list[tuple[int, bytes]], data: st.DataObject) -> None:
    buf = bytearray(b"".join(records.encode(t, p) for t, p in items))
    i = data.draw(st.integers(0, len(buf) - 1))
    buf[i] ^= data.draw(st.integers(1, 255))
    out, stop = records.decode_all(bytes(buf))
    assert [(t, p) for t, p, _ in out] == items[: len(out)]
    assert stop.reason is not StopReason.END


def test_record_encode_rejects_bad_type() -> None:
    with pytest.raises(records.RecordError):
        records.encode(0, b"x")


frame_items = st.lists(st.tuples(st.integers(0, 2**32 - 1), st.text(min_size=1, max_size=10),
                                 st.binary(max_size=200)), max_size=10)


@given(frame_items, st.lists(st.integers(1, 50), max_size=50))
def test_frames_round_trip_in_arbitrary_chunks(items: list[tuple[int, str, bytes]], chunks: list[int]) -> None:
    wire = b"".join(frames.encode(c, s, p) for c, s, p in items)
    dec = frames.FrameDecoder()
    got: list[frames.Frame] = []
    pos = 0
    for n in chunks:
        got += dec.feed(wire[pos:pos + n])
        pos += n
    got += dec.feed(wire[pos:])
    assert [(f.cluster_id, f.sender, f.payload) for f in got] == items
    assert dec.buffered == 0


@given(st.binary(max_size=500))
@settings(max_examples=300)
def test_frames_garbage_gives_frame_error_or_frames(data: bytes) -> None:
    dec = frames.FrameDecoder(max_frame=1024)
    try:
        for f in dec.feed(data):
            assert isinstance(f.sender, str) and 1 <= len(f.sender.encode()) <= 64
    except frames.FrameError:
        with pytest.raises(frames.FrameError):
            dec.feed(b"")  # a failed decoder refuses further use


def test_frames_oversize_rejected() -> None:
    dec = frames.FrameDecoder(max_frame=100)
    with pytest.raises(frames.FrameError, match="exceeds"):
        dec.feed((1000).to_bytes(4, "big"))
    with pytest.raises(ValueError):
        frames.encode(1, "n1", b"x" * 200, max_frame=100)
