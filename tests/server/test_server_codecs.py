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


KEY = frames.session_key(b"s" * 16, b"a" * 16, b"b" * 16, 7, "n1", "n2")
frame_items = st.lists(st.tuples(st.integers(0, 2**32 - 1), st.text(min_size=1, max_size=10),
                                 st.binary(min_size=1, max_size=200)), max_size=10)


@given(frame_items, st.lists(st.integers(1, 50), max_size=50))
def test_frames_round_trip_in_arbitrary_chunks_and_verify_in_order(items: list[tuple[int, str, bytes]],
                                                                    chunks: list[int]) -> None:
    encoders: dict[tuple[int, str], frames.FrameEncoder] = {}
    wire = b""
    for c, s, p in items:
        wire += encoders.setdefault((c, s), frames.FrameEncoder(c, s, KEY)).encode(p)
    dec = frames.FrameDecoder()
    got: list[frames.Frame] = []
    pos = 0
    for n in chunks:
        got += dec.feed(wire[pos:pos + n])
        pos += n
    got += dec.feed(wire[pos:])
    assert [(f.cluster_id, f.sender, f.payload) for f in got] == items
    assert dec.buffered == 0
    seqs: dict[tuple[int, str], int] = {}
    for f in got:
        seq = seqs[(f.cluster_id, f.sender)] = seqs.get((f.cluster_id, f.sender), -1) + 1
        assert f.verify(KEY, seq) and not f.verify(KEY, seq + 1)


def test_a_tag_fails_for_another_key_a_replay_a_reordering_or_a_changed_byte() -> None:
    enc = frames.FrameEncoder(7, "n1", KEY)
    first, second = enc.encode(b"\x00one"), enc.encode(b"\x00two")
    got = frames.FrameDecoder().feed(first + second)
    assert got[0].verify(KEY, 0) and got[1].verify(KEY, 1)
    other = frames.session_key(b"s" * 16, b"a" * 16, b"c" * 16, 7, "n1", "n2")  # another connection's nonce
    assert not got[0].verify(other, 0)
    assert not got[1].verify(KEY, 0)  # reordered (or replayed as the first frame)
    assert not frames.FrameDecoder().feed(first)[0].verify(KEY, 1)  # replayed later on the connection
    tampered = bytearray(first)
    tampered[-1] ^= 1
    assert not frames.FrameDecoder().feed(bytes(tampered))[0].verify(KEY, 0)
    assert frames.session_key(b"s" * 16, b"a" * 16, b"b" * 16, 7, "n1", "n3") != KEY  # bound to both ids


def test_the_header_is_checked_before_the_body_is_buffered() -> None:
    seen: list[tuple[int, str]] = []

    def check(cluster_id: int, sender: str) -> None:
        seen.append((cluster_id, sender))
        if sender == "intruder":
            raise frames.FrameError(f"frame from unknown sender {sender!r}")

    dec = frames.FrameDecoder(max_frame=1 << 30, check_header=check)
    big = frames.FrameEncoder(7, "intruder", KEY, max_frame=1 << 30).encode(b"x" * (1 << 20))
    with pytest.raises(frames.FrameError, match="unknown sender"):
        dec.feed(big[:4 + 6 + len("intruder")])  # the header alone: refused with the body still unsent
    assert seen == [(7, "intruder")] and dec.buffered < 100
    ok = frames.FrameDecoder(check_header=check)
    wire = frames.FrameEncoder(7, "n1", KEY).encode(b"x" * 1000)
    assert ok.feed(wire[:20]) == [] and ok.feed(wire[20:500]) == [] and len(ok.feed(wire[500:])) == 1
    assert seen[1:] == [(7, "n1")]  # checked once, not once per chunk


@given(st.binary(max_size=500))
@settings(max_examples=300)
def test_frames_garbage_gives_frame_error_or_frames(data: bytes) -> None:
    dec = frames.FrameDecoder(max_frame=1024)
    try:
        for f in dec.feed(data):
            assert isinstance(f.sender, str) and 1 <= len(f.sender.encode()) <= 64
            assert not f.verify(KEY, 0)
    except frames.FrameError:
        with pytest.raises(frames.FrameError):
            dec.feed(b"")  # a failed decoder refuses further use


def test_frames_oversize_rejected() -> None:
    dec = frames.FrameDecoder(max_frame=100)
    with pytest.raises(frames.FrameError, match="exceeds"):
        dec.feed((1000).to_bytes(4, "big"))
    enc = frames.FrameEncoder(1, "n1", KEY, max_frame=100)
    with pytest.raises(ValueError):
        enc.encode(b"x" * 200)
    assert enc.seq == 0  # a refused frame uses up no sequence number
