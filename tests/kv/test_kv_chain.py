"""The commitment to the applied log (raftkv.kv.chain) in the KV store: same log, same chain; any difference in an
entry's index, term or bytes, and every later head differs; it rides in the snapshot (format /3), and an older
snapshot restores without one."""

from __future__ import annotations

import msgpack
import pytest

from raftkv.kv import Command, KVStore, Op, SnapshotError, encode_command
from raftkv.kv.chain import EVERY, KEEP, RECENT


def put(key: str, value: str, version: int = 0) -> bytes:
    return encode_command(Command(request_id=f"r-{key}-{value}", op=Op.PUT, key=key, value=value,
                                  expected_version=version))


def fill(store: KVStore, terms: list[int], start: int = 1) -> None:
    for offset, term in enumerate(terms):
        index = start + offset
        if index % 5 == 0:
            store.note_applied(index, term)  # a no-op entry of the term
        else:
            store.apply(index, put(f"k{index}", "v"), term)


def test_replicas_that_applied_one_log_report_one_chain_at_every_recent_index_and_every_EVERY_before() -> None:
    a, b = KVStore(), KVStore()
    fill(a, [1] * 40)
    fill(b, [1] * 40)
    assert a.chain == b.chain
    view = a.chain
    assert view is not None and (view["index"], view["term"], len(view["hash"])) == (40, 1, 16)
    assert [p[0] for p in view["checkpoints"]] == list(range(1, 41))
    assert view["checkpoints"][-1] == [40, 1, view["hash"]]
    fill(a, [1] * 160, start=41)
    view = a.chain
    assert view is not None
    assert [p[0] for p in view["checkpoints"]] == [i for i in range(EVERY, 200 - RECENT + 1, EVERY)] + list(
        range(200 - RECENT + 1, 201))


def test_an_entry_of_another_term_changes_the_chain_from_its_index_on() -> None:
    a, b = KVStore(), KVStore()
    fill(a, [1] * 20 + [2] * 20)
    fill(b, [1] * 20 + [3] + [2] * 19)  # same data, entry 21 of another term
    ca, cb = a.chain, b.chain
    assert ca is not None and cb is not None
    pa, pb = ({p[0]: p for p in c["checkpoints"]} for c in (ca, cb))
    assert all(pa[i] == pb[i] for i in range(1, 21))  # before the difference
    assert all(pa[i][2] != pb[i][2] for i in range(21, 41)) and ca["hash"] != cb["hash"]  # from it on
    assert a.frozen().digest() == b.frozen().digest()  # the states agree: only the chain sees it


def test_checkpoints_are_bounded() -> None:
    store = KVStore()
    for index in range(1, EVERY * (KEEP + 10) + 1):
        store.note_applied(index, 1)
    view = store.chain
    assert view is not None and len(view["checkpoints"]) == KEEP + RECENT - RECENT // EVERY
    assert view["checkpoints"][-1][0] == EVERY * (KEEP + 10)


def test_the_chain_survives_a_snapshot_and_continues_as_if_never_compacted() -> None:
    whole, restored = KVStore(), KVStore()
    fill(whole, [1] * 30 + [2] * 30)
    snap = KVStore()
    fill(snap, [1] * 30 + [2] * 5)
    restored.restore(snap.snapshot())
    fill(restored, [2] * 25, start=36)
    a, b = whole.chain, restored.chain
    assert a is not None and b is not None
    assert (a["index"], a["term"], a["hash"]) == (b["index"], b["term"], b["hash"])
    assert b["checkpoints"] == [p for p in a["checkpoints"] if p[0] > 35]


def test_an_old_snapshot_restores_without_a_chain_and_a_bad_chain_is_refused() -> None:
    store = KVStore()
    fill(store, [1] * 10)
    tag, applied, items, sessions, chain = msgpack.unpackb(store.snapshot())
    assert tag == "raftkv.kv/3" and chain[0] == applied == 10
    old = KVStore()
    old.restore(msgpack.packb(["raftkv.kv/2", applied, items, sessions]))
    assert old.chain is None and old.applied_index == 10 and old.items() == store.items()
    old.note_applied(11, 1)
    assert old.chain is None  # still unknown: its prefix was never hashed here
    for bad in ([9, 1, chain[2]], [10, 1, b"short"], [10, -1, chain[2]], "x"):
        with pytest.raises(SnapshotError, match="bad chain"):
            KVStore().restore(msgpack.packb([tag, applied, items, sessions, bad]))
