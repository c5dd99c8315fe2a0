"""raftkv.core.log: the in-memory log and its cursors."""

from __future__ import annotations

import pytest

from raftkv.core import Entry
from raftkv.core.log import LogConflict, RaftLog


def ents(*terms: int, start: int = 1) -> list[Entry]:
    return [Entry(term=t, index=start + n) for n, t in enumerate(terms)]


def test_terms_and_bounds() -> None:
    log = RaftLog(snap_index=3, snap_term=2, entries=ents(2, 3, 3, start=4), committed=3, applied=3)
    assert (log.first_index, log.last_index, log.last_term) == (4, 6, 3)
    assert [log.term(i) for i in range(2, 8)] == [None, 2, 2, 3, 3, None]


def test_construction_refuses_gaps_decreasing_terms_and_bad_cursors() -> None:
    with pytest.raises(LogConflict):
        RaftLog(entries=[Entry(term=1, index=2)])
    with pytest.raises(LogConflict):
        RaftLog(entries=ents(2, 1))
    with pytest.raises(LogConflict):
        RaftLog(entries=ents(1), committed=2)
    with pytest.raises(LogConflict):
        RaftLog(entries=ents(1, 1), committed=1, applied=2)


def test_append_that_matches_is_merged_without_truncation() -> None:
    log = RaftLog(entries=ents(1, 1, 2, 2))
    log.persisted = 4
    # A duplicate (or stale, shorter) append must not truncate what follows it.
    assert log.maybe_append(1, 1, 0, tuple(ents(1, 2, start=2))) == 3
    assert log.last_index == 4 and log.persisted == 4


def test_conflict_truncates_from_the_first_differing_term() -> None:
    log = RaftLog(entries=ents(1, 1, 2, 2))
    log.persisted = 4
    assert log.maybe_append(2, 1, 0, tuple(ents(3, start=3))) == 3
    assert [log.term(i) for i in (1, 2, 3)] == [1, 1, 3] and log.last_index == 3
    assert log.persisted == 2  # the overwritten entries must be written again
    assert [e.index for e in log.unstable()] == [3]


def test_mismatch_at_prev_returns_none_and_changes_nothing() -> None:
    log = RaftLog(entries=ents(1, 1))
    assert log.maybe_append(2, 5, 2, tuple(ents(5, start=3))) is None
    assert log.maybe_append(3, 1, 2, ()) is None
    assert log.last_index == 2 and log.committed == 0


def test_overwriting_a_committed_entry_is_a_conflict_and_leaves_the_log() -> None:
    log = RaftLog(entries=ents(1, 1, 1), committed=2)
    with pytest.raises(LogConflict):
        log.maybe_append(1, 1, 0, tuple(ents(2, 2, start=2)))
    assert [log.term(i) for i in (1, 2, 3)] == [1, 1, 1]


def test_commit_follows_the_leader_but_not_beyond_the_new_entries() -> None:
    log = RaftLog(entries=ents(1, 1, 1))
    assert log.maybe_append(1, 1, 10, ()) == 1
    assert log.committed == 1  # only what the append proved to match
    log.maybe_append(3, 1, 10, ())
    assert log.committed == 3


def test_commit_to_never_goes_back_or_beyond() -> None:
    log = RaftLog(entries=ents(1, 1))
    log.commit_to(2)
    log.commit_to(1)
    assert log.committed == 2
    with pytest.raises(LogConflict):
        log.commit_to(3)


def test_up_to_date_compares_last_term_then_length() -> None:
    log = RaftLog(entries=ents(1, 2, 2))
    assert log.is_up_to_date(3, 2) and log.is_up_to_date(1, 3)
    assert not log.is_up_to_date(2, 2) and not log.is_up_to_date(9, 1)


def test_first_and_last_index_of_a_term() -> None:
    log = RaftLog(snap_index=2, snap_term=1, entries=ents(1, 3, 3, 3, 5, start=3), committed=2, applied=2)
    assert log.first_index_of_term(6) == 4
    assert log.first_index_of_term(3) == 3  # the term began before the snapshot: first stored index
    assert log.last_index_of_term(3, 100) == 6
    assert log.last_index_of_term(3, 5) == 5
    assert log.last_index_of_term(4, 100) is None
    assert log.last_index_of_term(1, 2) == 2  # the snapshot point itself
    assert log.last_index_of_term(1, 100) == 3


def test_stable_to_ignores_entries_replaced_meanwhile() -> None:
    log = RaftLog()
    log.append(ents(1, 1))
    log.stable_to(2, 1)
    assert log.persisted == 2
    log.append(ents(1, start=3))
    log.maybe_append(2, 1, 0, tuple(ents(2, start=3)))  # index 3 was overwritten after being handed out
    log.stable_to(3, 1)
    assert log.persisted == 2


def test_compact_and_restore() -> None:
    log = RaftLog(entries=ents(1, 1, 2, 2), committed=4, applied=3)
    with pytest.raises(LogConflict):
        log.compact(4)  # not applied yet
    log.compact(3)
    assert (log.first_index, log.term(3), log.term(2), log.last_index) == (4, 2, None, 4)
    log.restore(10, 3)
    assert (log.first_index, log.last_index, log.last_term, log.committed, log.applied) == (11, 10, 3, 10, 10)


def test_slice_limited_respects_count_and_bytes_but_sends_at_least_one() -> None:
    log = RaftLog(entries=[Entry(term=1, index=i, data=b"x" * 10) for i in range(1, 11)])
    assert len(log.slice_limited(1, 4, 1000)) == 4
    assert len(log.slice_limited(1, 100, 25)) == 2
    assert len(log.slice_limited(1, 100, 1)) == 1
    assert [e.index for e in log.slice_limited(9, 100, 1000)] == [9, 10]


def test_a_stale_append_never_lowers_the_commit_index() -> None:
    log = RaftLog(entries=ents(1, 1, 1, 1), committed=4, applied=0)
    assert log.maybe_append(1, 1, 10, tuple(ents(1, start=2))) == 2
    assert log.committed == 4
