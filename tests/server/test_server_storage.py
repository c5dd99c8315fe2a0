"""DiskStorage: what a Ready persists is exactly what recovery returns, across segment cuts, compaction (segments
deleted only below a durable snapshot), follower log truncation, and snapshot installs (finished or not)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftkv.core import Entry, HardState, Ready, Snapshot, SnapshotMeta, codec
from raftkv.server.storage import INSTALL, DiskStorage, StorageCorrupt
from raftkv.server.wal import frame_all

LOG = logging.getLogger("test")
VOTERS = ("n1", "n2", "n3")


def ents(lo: int, hi: int, term: int = 1) -> tuple[Entry, ...]:
    return tuple(Entry(term=term, index=i, data=b"x%d" % i) for i in range(lo, hi + 1))


def open_(d: Path, segment_bytes: int = 1 << 20) -> tuple[DiskStorage, list[Entry], HardState | None,
                                                           Snapshot | None]:
    st, rec = DiskStorage.open(d, segment_bytes=segment_bytes, log=LOG)
    return st, rec.entries, rec.hard_state, rec.snapshot


def test_round_trip_with_overwrites_and_commit_only_states(tmp_path: Path) -> None:
    st, e, hs, snap = open_(tmp_path)
    assert (e, hs, snap) == ([], HardState(), None)
    st.persist_sync(Ready(entries=ents(1, 5), hard_state=HardState(term=1, vote="n2", commit=0)))
    st.persist_sync(Ready(entries=ents(4, 6, term=2), hard_state=HardState(term=2, vote="n3", commit=3)))
    st.persist_sync(Ready(hard_state=HardState(term=2, vote="n3", commit=5)), sync=False)
    st.close()
    _, e, hs, snap = open_(tmp_path)
    assert [(x.index, x.term) for x in e] == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)]
    assert hs == HardState(term=2, vote="n3", commit=5) and snap is None


def test_segments_cut_and_released_only_below_a_durable_snapshot(tmp_path: Path) -> None:
    st, *_ = open_(tmp_path, segment_bytes=200)
    for lo in range(1, 100, 10):
        st.persist_sync(Ready(entries=ents(lo, lo + 9), hard_state=HardState(term=1, vote="n1", commit=lo + 9)))
    n_segments = len(st.wal.segments())
    assert n_segments >= 5
    assert st.release_sync(95) == 0  # no durable snapshot yet: nothing may go
    st.close()
    st, e, hs, snap = open_(tmp_path, segment_bytes=200)
    st.save_snapshot_sync(Snapshot(meta=SnapshotMeta(index=60, term=1, voters=VOTERS), data=b"state@60"))
    removed = st.release_sync(60)
    assert removed > 0 and len(st.wal.segments()) < n_segments
    st.close()
    _, e, hs, snap = open_(tmp_path, segment_bytes=200)
    assert snap is not None and snap.meta.index == 60 and snap.data == b"state@60"
    assert [x.index for x in e] == list(range(61, 101))
    assert hs is not None and hs.commit == 100 and hs.vote == "n1"


def test_snapshot_install_replaces_the_log(tmp_path: Path) -> None:
    st, *_ = open_(tmp_path)
    st.persist_sync(Ready(entries=ents(1, 10), hard_state=HardState(term=1, vote=None, commit=10)))
    snap = Snapshot(meta=SnapshotMeta(index=50, term=3, voters=VOTERS), data=b"leader-state")
    st.persist_sync(Ready(snapshot=snap, entries=ents(51, 52, term=3), hard_state=HardState(term=3, commit=50)))
    st.close()
    _, e, hs, got = open_(tmp_path)
    assert got == snap and [x.index for x in e] == [51, 52] and hs == HardState(term=3, commit=50)


def test_unfinished_install_leaves_the_old_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    st, *_ = open_(tmp_path)
    st.persist_sync(Ready(entries=ents(1, 10), hard_state=HardState(term=1, commit=10)))
    # crash after the marker's fsync, before the snapshot file existed
    meta = SnapshotMeta(index=50, term=3, voters=VOTERS)
    st.wal.append_sync(frame_all([(INSTALL, codec.encode_snapshot_meta(meta))]))
    st.close()
    with caplog.at_level(logging.INFO):
        st, rec = DiskStorage.open(tmp_path, segment_bytes=1 << 20, log=LOG)
    assert [x.index for x in rec.entries] == list(range(1, 11)) and rec.snapshot is None
    assert any("ignored unfinished snapshot install at index 50" in a for a in rec.actions)


def test_gap_between_snapshot_and_log_refuses(tmp_path: Path) -> None:
    st, *_ = open_(tmp_path, segment_bytes=100)
    for lo in range(1, 40, 5):
        st.persist_sync(Ready(entries=ents(lo, lo + 4)))
    st.wal.remove_segments_before(st.wal.seq)  # lose segments WITHOUT a snapshot covering them
    st.close()
    with pytest.raises(StorageCorrupt, match="the log starts at index"):
        open_(tmp_path, segment_bytes=100)


def test_a_commit_only_change_rides_with_the_next_batch(tmp_path: Path) -> None:
    st, *_ = open_(tmp_path)
    st.persist_sync(Ready(entries=ents(1, 3), hard_state=HardState(term=1, vote="n1", commit=0)))
    st.note_commit_only(HardState(term=1, vote="n1", commit=3))
    st.close()
    _, e, hs, _ = open_(tmp_path)
    assert hs == HardState(term=1, vote="n1", commit=0)  # not written: losing a commit index is safe
    st, *_ = open_(tmp_path)
    st.note_commit_only(HardState(term=1, vote="n1", commit=3))
    st.persist_sync(Ready(entries=ents(4, 4)))  # no hard state of its own: carries the remembered one
    st.close()
    _, e, hs, _ = open_(tmp_path)
    assert hs == HardState(term=1, vote="n1", commit=3) and [x.index for x in e] == [1, 2, 3, 4]


batches = st.lists(st.tuples(st.integers(0, 3), st.integers(1, 4), st.integers(0, 2)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches, st.data())
def test_any_torn_last_batch_recovers_to_the_batches_before_it(tmp_path_factory: pytest.TempPathFactory,
                                                               plan: list[tuple[int, int, int]],
                                                               data: st.DataObject) -> None:
    """Persist random batches (a follower's log may be cut back: `back` entries overwritten, terms rising), tear
    the last write at any byte, reopen: exactly the batches before the torn one are there with their hard state,
    never entries without the hard state of their term (the core would refuse to start on that)."""
    d = tmp_path_factory.mktemp("wal")
    s, *_ = open_(d, segment_bytes=300)
    model: list[tuple[int, int]] = []
    term = 1
    after: list[tuple[list[tuple[int, int]], HardState]] = [([], HardState())]
    start = (0, 0)
    for back, count, bump in plan:
        first = max(1, len(model) + 1 - back)
        term += bump
        new = ents(first, first + count - 1, term=term)
        model = model[: first - 1] + [(x.index, x.term) for x in new]
        hs = HardState(term=term, vote="n1", commit=max(0, len(model) - 2))
        start = (s.wal.seq, s.wal.size)
        s.persist_sync(Ready(entries=new, hard_state=hs))
        after.append((list(model), hs))
    last_seq = s.wal.seq
    s.close()
    seg = d / "wal" / f"{last_seq:020d}.wal"
    raw = seg.read_bytes()
    lo = start[1] if start[0] == last_seq else 0  # the last batch opened a new segment: tear anywhere in it
    cut = data.draw(st.integers(lo, len(raw) - 1), label="tear at byte")
    seg.write_bytes(raw[:cut])
    _, e, hs, _ = open_(d, segment_bytes=300)
    assert ([(x.index, x.term) for x in e], hs) == after[-2]
    assert all(t <= hs.term for _, t in [(x.index, x.term) for x in e])


@pytest.mark.parametrize(("file_survives", "segment_bytes"), [(True, 1 << 20), (False, 1 << 20), (True, 64)])
def test_a_crash_inside_a_snapshot_install_leaves_a_state_the_core_accepts(tmp_path: Path, file_survives: bool,
                                                                           segment_bytes: int) -> None:
    """A follower at term 1 gets a snapshot of term 3 with a term bump in the same Ready; the process dies after
    the install marker (and maybe the file, and maybe a new segment's header) but before the batch that follows.
    The durable hard state must be of the snapshot's term, and its commit must not point past the log."""
    from raftkv.core import Raft, RaftConfig

    st, *_ = open_(tmp_path, segment_bytes=segment_bytes)
    st.persist_sync(Ready(entries=ents(1, 5), hard_state=HardState(term=1, vote="n2", commit=3)))
    size = st.wal.size
    snap = Snapshot(meta=SnapshotMeta(index=50, term=3, voters=VOTERS), data=b"leader-state")
    seq = st.wal.seq
    st.persist_sync(Ready(snapshot=snap, entries=ents(51, 52, term=3), hard_state=HardState(term=3, commit=50)))
    cut = st.wal.seq != seq  # the batch went to a new segment, after its header
    st.close()
    seg = sorted((tmp_path / "wal").glob("*.wal"))[-1]
    raw = seg.read_bytes()
    from raftkv.server import records as rec_mod
    # drop the Ready's batch: the last record of the last segment (after the marker, or after the new header)
    recs, _ = rec_mod.decode_all(raw, 0 if cut else size)
    assert cut == (segment_bytes == 64)
    seg.write_bytes(raw[: recs[-1][2]])
    if not file_survives:
        for f in (tmp_path / "snap").glob("*.snap"):
            f.unlink()
    _, rec = DiskStorage.open(tmp_path, segment_bytes=segment_bytes, log=LOG)
    assert rec.hard_state is not None and rec.hard_state.term == 3 and rec.hard_state.vote is None
    if file_survives:
        assert rec.snapshot == snap and rec.entries == []
    else:
        assert rec.snapshot is None and [x.index for x in rec.entries] == [1, 2, 3, 4, 5]
        assert rec.hard_state.commit <= 5
    import random

    Raft(RaftConfig(id="n1", peers=VOTERS, rng=random.Random(1)), hard_state=rec.hard_state,
         snapshot=rec.snapshot, entries=rec.entries)  # the core accepts it
