"""Client sessions in the KV state machine: a retried session write applies at most once (issue 15)."""

from __future__ import annotations

import msgpack
import pytest

from raftkv.kv import (
    ClientSession,
    Command,
    CommandError,
    KVStore,
    Op,
    Outcome,
    SnapshotError,
    decode_command,
)
from raftkv.kv import encode_command as enc
from raftkv.kv.sessions import MAX_RESULTS_PER_SESSION, MAX_SESSIONS


def put(key: str, value: str, version: int, cid: str | None = None, seq: int = 1, min_seq: int = 1) -> bytes:
    session = None if cid is None else ClientSession(client_id=cid, seq=seq, min_seq=min_seq)
    return enc(Command(request_id=f"r{seq}", op=Op.PUT, key=key, value=value, expected_version=version,
                       session=session))


def delete(key: str, version: int, cid: str | None = None, seq: int = 1, min_seq: int = 1) -> bytes:
    session = None if cid is None else ClientSession(client_id=cid, seq=seq, min_seq=min_seq)
    return enc(Command(request_id=f"d{seq}", op=Op.DELETE, key=key, expected_version=version, session=session))


def aba(store: KVStore) -> list[tuple[Outcome, int]]:
    """Issue 15's scenario: a create (expected 0) of client a applies, its answer is lost; b deletes the key, c
    re-creates it (version 1 again); a's retry of the same write arrives."""
    out = []
    out.append(store.apply(1, put("k", "a1", 0, "a", seq=1)))
    out.append(store.apply(2, delete("k", 1, "b", seq=1)))
    out.append(store.apply(3, put("k", "c1", 0, "c", seq=1)))
    out.append(store.apply(4, delete("k", 1, "c", seq=2)))
    out.append(store.apply(5, put("k", "a1", 0, "a", seq=1)))  # the retry
    return [(r.outcome, r.version) for r in out]


def test_a_retried_create_across_a_delete_applies_once() -> None:
    store = KVStore()
    results = aba(store)
    assert results[-1] == (Outcome.OK, 1)  # the original answer, replayed
    assert store.get("k") is None  # ... and not applied again: c's delete is the last word
    assert store.apply(6, put("k", "x", 0, "a", seq=1)).replayed


def test_the_no_dedup_failpoint_brings_back_the_double_apply() -> None:
    store = KVStore(failpoints=frozenset({"no-dedup"}))
    aba(store)
    assert store.get("k") == ("a1", 1)  # the double apply that issue 15 is about


def test_a_dedup_hit_returns_the_original_refusal_too() -> None:
    store = KVStore()
    store.apply(1, put("k", "v", 0))
    first = store.apply(2, put("k", "w", 5, "a", seq=1))
    assert first.outcome is Outcome.VERSION_MISMATCH and not first.replayed
    store.apply(3, delete("k", 1))
    store.apply(4, put("k", "z", 0))
    again = store.apply(5, put("k", "w", 5, "a", seq=1))
    assert (again.outcome, again.version, again.replayed) == (Outcome.VERSION_MISMATCH, 1, True)


def test_a_new_seq_applies() -> None:
    store = KVStore()
    assert store.apply(1, put("k", "v1", 0, "a", seq=1)).outcome is Outcome.OK
    r = store.apply(2, put("k", "v2", 1, "a", seq=2))
    assert (r.outcome, r.version, r.replayed) == (Outcome.OK, 2, False)
    assert store.get("k") == ("v2", 2)


def test_min_seq_forgets_answers_and_later_retries_are_refused() -> None:
    store = KVStore()
    store.apply(1, put("k", "v1", 0, "a", seq=1))
    store.apply(2, put("k", "v2", 1, "a", seq=2, min_seq=2))  # the client has seq 1's answer
    late = store.apply(3, put("k", "v1", 0, "a", seq=1))
    assert late.outcome is Outcome.SESSION_EXPIRED
    assert store.get("k") == ("v2", 2)


def test_an_evicted_session_is_refused_not_reapplied() -> None:
    store = KVStore()
    store.apply(1, put("k", "v1", 0, "old", seq=1))
    store.apply(2, put("k", "v2", 1, "old", seq=2, min_seq=2))
    for i in range(MAX_SESSIONS):  # MAX_SESSIONS newer sessions push "old" out (least recently used)
        store.apply(3 + i, put(f"x{i}", "v", 0, f"s{i}", seq=1))
    assert store.sessions == MAX_SESSIONS
    r = store.apply(10_000, put("k", "v2", 1, "old", seq=2, min_seq=2))
    assert r.outcome is Outcome.SESSION_EXPIRED
    assert store.get("k") == ("v2", 2)


def test_eviction_is_least_recently_used_by_log_index() -> None:
    store = KVStore()
    store.apply(1, put("a", "v", 0, "first", seq=1))
    for i in range(MAX_SESSIONS - 1):
        store.apply(2 + i, put(f"x{i}", "v", 0, f"s{i}", seq=1))
    store.apply(10_000, put("a", "w", 1, "first", seq=2, min_seq=2))  # "first" is used again: now the newest
    store.apply(10_001, put("b", "v", 0, "newcomer", seq=1))  # evicts s0, the least recently used
    assert store.apply(10_002, put("a", "w", 1, "first", seq=2, min_seq=2)).replayed
    assert store.apply(10_003, put("x0", "v", 1, "s0", seq=2, min_seq=2)).outcome is Outcome.SESSION_EXPIRED


def test_answers_per_session_are_bounded_and_the_dropped_seq_is_refused() -> None:
    store = KVStore()
    for seq in range(1, MAX_RESULTS_PER_SESSION + 2):  # never acknowledged: min_seq stays 1
        store.apply(seq, put(f"k{seq}", "v", 0, "a", seq=seq))
    r = store.apply(1000, put("k1", "v", 0, "a", seq=1))
    assert r.outcome is Outcome.SESSION_EXPIRED  # its answer was dropped: refused, never applied again
    assert store.apply(1001, put("k2", "v", 0, "a", seq=2)).replayed


def test_snapshot_round_trip_keeps_the_table_and_its_order() -> None:
    store = KVStore()
    aba(store)
    store.apply(6, put("j", "v", 0, "d", seq=3))
    copy = KVStore()
    copy.restore(store.snapshot())
    assert copy.snapshot() == store.snapshot()
    assert copy.apply(7, put("k", "a1", 0, "a", seq=1)).replayed
    assert copy.sessions == store.sessions == 4


def test_an_old_format_snapshot_restores_with_an_empty_table() -> None:
    old = msgpack.packb(["raftkv.kv/1", 7, [["k", "v", 3]]])
    store = KVStore()
    store.restore(old)
    assert (store.applied_index, store.get("k"), store.sessions) == (7, ("v", 3), 0)
    assert store.apply(8, put("k", "w", 3, "a")).outcome is Outcome.OK


@pytest.mark.parametrize("sessions", [
    "x", [["a", 1, 1]], [["", 1, 1, []]], [["a", 2, 1, []], ["b", 2, 1, []]], [["a", 1, 0, []]],
    [["a", 1, 1, [[1, "ok", 1], [1, "ok", 2]]]], [["a", 1, 2, [[1, "ok", 1]]]], [["a", 1, 1, [[1, "what", 1]]]],
])
def test_a_bad_session_table_is_refused_and_changes_nothing(sessions: object) -> None:
    store = KVStore()
    store.apply(1, put("k", "v", 0))
    before = store.snapshot()
    with pytest.raises(SnapshotError, match="session"):
        store.restore(msgpack.packb(["raftkv.kv/2", 9, [], sessions]))
    assert store.snapshot() == before


def test_command_encoding_with_and_without_a_session() -> None:
    old = put("k", "v", 0)
    assert len(msgpack.unpackb(old)) == 5  # a command without a session keeps the old form
    cmd = decode_command(put("k", "v", 0, "c", seq=4, min_seq=2))
    assert cmd.session == ClientSession(client_id="c", seq=4, min_seq=2)
    with pytest.raises(CommandError, match="min_seq"):
        ClientSession(client_id="c", seq=2, min_seq=3)
    with pytest.raises(CommandError, match="client_id"):
        ClientSession(client_id="", seq=1)
    with pytest.raises(CommandError, match="session"):
        Command(request_id="", op=Op.GET, key="k", session=ClientSession(client_id="c", seq=1))
    with pytest.raises(CommandError, match="8 with a client session"):
        decode_command(msgpack.packb(["", 2, "k", "v", 0, "c"]))


def test_two_replicas_fed_one_log_evict_alike_and_snapshot_to_equal_bytes() -> None:
    """Eviction depends on the log alone: a replica that restored a snapshot midway and one that applied every
    entry hold the same table afterwards, byte for byte."""
    import random

    rng = random.Random(5)
    log = [put(f"k{rng.randrange(50)}", "v", 0, f"c{rng.randrange(MAX_SESSIONS + 300)}", seq=1)
           for _ in range(3 * MAX_SESSIONS)]
    a, b = KVStore(), KVStore()
    for index, entry in enumerate(log, start=1):
        a.apply(index, entry)
        if index == MAX_SESSIONS:
            b.restore(a.snapshot())
        elif index > MAX_SESSIONS:
            b.apply(index, entry)
    assert a.sessions == b.sessions == MAX_SESSIONS
    assert a.snapshot() == b.snapshot()
