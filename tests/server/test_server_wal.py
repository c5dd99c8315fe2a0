"""WAL recovery: torn tails are truncated with a log line, damage elsewhere refuses to start naming file+offset."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from raftkv.server import records
from raftkv.server.snapfiles import SnapshotCorrupt, SnapshotStore
from raftkv.server.wal import WAL, WalCorrupt, frame_all


def _write(d: Path, batches: list[list[bytes]], cut_after: int | None = None) -> WAL:
    wal, replayed = WAL.open(d)
    assert replayed == []
    for i, batch in enumerate(batches):
        wal.append_sync(frame_all((7, p) for p in batch))
        if cut_after is not None and i == cut_after:
            wal.cut(frame_all([(1, b"header")]))
    wal.close()
    return wal


def test_replay_in_order_across_segments(tmp_path: Path) -> None:
    _write(tmp_path, [[b"a", b"b"], [b"c"]], cut_after=0)
    wal, got = WAL.open(tmp_path)
    assert [(r.rtype, r.payload) for r in got] == [(7, b"a"), (7, b"b"), (1, b"header"), (7, b"c")]
    assert [r.segment for r in got] == [1, 1, 2, 2]
    wal.append_sync(frame_all([(7, b"d")]))  # appends continue in the last segment
    wal.close()
    _, got = WAL.open(tmp_path)
    assert got[-1].payload == b"d" and got[-1].segment == 2


@pytest.mark.parametrize("chop", [1, 5, 16, 17])
def test_torn_tail_is_truncated_and_logged(tmp_path: Path, chop: int, caplog: pytest.LogCaptureFixture) -> None:
    _write(tmp_path, [[b"a" * 10, b"b" * 10]])
    seg = next(tmp_path.glob("*.wal"))
    data = seg.read_bytes()
    seg.write_bytes(data[: len(data) - chop])
    with caplog.at_level(logging.WARNING):
        wal, got = WAL.open(tmp_path)
    assert [r.payload for r in got] == [b"a" * 10]
    assert "truncated torn tail" in caplog.text and f"dropped {len(data) - chop - 26} bytes" in caplog.text
    assert seg.stat().st_size == 26
    wal.close()


def test_zero_tail_is_truncated(tmp_path: Path) -> None:
    _write(tmp_path, [[b"a"]])
    seg = next(tmp_path.glob("*.wal"))
    seg.write_bytes(seg.read_bytes() + bytes(100))
    _, got = WAL.open(tmp_path)
    assert [r.payload for r in got] == [b"a"]


def test_bad_checksum_of_last_record_ending_at_eof_is_torn(tmp_path: Path) -> None:
    _write(tmp_path, [[b"a" * 10, b"b" * 10]])
    seg = next(tmp_path.glob("*.wal"))
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF
    seg.write_bytes(bytes(data))
    _, got = WAL.open(tmp_path)
    assert [r.payload for r in got] == [b"a" * 10]


@pytest.mark.parametrize("where", ["payload", "header"])
def test_flipped_byte_mid_log_refuses_to_start(tmp_path: Path, where: str) -> None:
    _write(tmp_path, [[b"a" * 10, b"b" * 10, b"c" * 10]])
    seg = next(tmp_path.glob("*.wal"))
    data = bytearray(seg.read_bytes())
    rec = 26  # the second record starts here
    data[rec + (records.HEADER_SIZE + 3 if where == "payload" else 0)] ^= 0x01
    seg.write_bytes(bytes(data))
    with pytest.raises(WalCorrupt) as e:
        WAL.open(tmp_path)
    assert e.value.path == seg and e.value.offset == rec
    assert str(seg) in str(e.value) and "offset 26" in str(e.value)
    assert seg.read_bytes() == bytes(data)  # nothing was rewritten


def test_damage_in_an_older_segment_refuses_even_at_its_end(tmp_path: Path) -> None:
    _write(tmp_path, [[b"a" * 10], [b"b"]], cut_after=0)
    first = sorted(tmp_path.glob("*.wal"))[0]
    first.write_bytes(first.read_bytes()[:-3])
    with pytest.raises(WalCorrupt, match="short-payload"):
        WAL.open(tmp_path)


def test_remove_segments_before(tmp_path: Path) -> None:
    wal, _ = WAL.open(tmp_path)
    wal.append_sync(frame_all([(7, b"x")]))
    wal.cut(b"")
    wal.cut(b"")
    assert len(wal.segments()) == 3
    wal.remove_segments_before(3)
    assert [p.name for p in wal.segments()] == [f"{3:020d}.wal"]
    wal.close()


def test_snapshot_store(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=2)
    assert store.load_latest() is None
    for i in (5, 9, 12):
        store.save(i, 2, b"state%d" % i)
    assert [f.index for f in store.files()] == [9, 12]
    f, payload = store.load_latest()  # type: ignore[misc]
    assert (f.index, f.term, payload) == (12, 2, b"state12")
    (tmp_path / "x.snap.tmp").write_bytes(b"junk")
    data = bytearray(f.path.read_bytes())
    data[-1] ^= 1
    f.path.write_bytes(bytes(data))
    store = SnapshotStore(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(SnapshotCorrupt, match=f.path.name):
        store.load_latest()


@pytest.mark.parametrize(("call", "op"), [("fdatasync", "fdatasync"), ("write", "write")])
def test_a_failed_write_or_fsync_names_file_and_operation_and_is_not_retried(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str, op: str) -> None:
    import errno
    import os

    from raftkv.server.wal import DiskIOError

    calls = []

    def fail(*args: object) -> None:
        calls.append(args)
        raise OSError(errno.EIO, "Input/output error")

    wal, _ = WAL.open(tmp_path / "wal")
    monkeypatch.setattr(os, call, fail)
    if call == "fdatasync":
        monkeypatch.setattr(wal, "_fdatasync", fail)  # the WAL binds its sync function when it opens (failpoints)
    with pytest.raises(DiskIOError) as err:
        wal.append_sync(frame_all([(1, b"x")]))
    assert err.value.op == op and err.value.errno == errno.EIO and str(err.value.path).endswith(".wal")
    assert f"{op} {tmp_path / 'wal'}" in str(err.value) and "without retrying" in str(err.value)
    assert len(calls) == 1  # fsyncgate: after a failed fsync nothing is known; never retried


def test_new_data_directories_are_synced_into_their_parents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """A power cut after the first start must not take back the WAL's own directory entry (nemesis.unsynced's
    model: a directory entry is durable once its parent is fsynced)."""
    from raftkv.server import wal as wal_mod

    synced: list[Path] = []
    monkeypatch.setattr(wal_mod, "fsync_dir", lambda p: synced.append(p))
    wal_mod.make_dirs_durably(tmp_path / "a" / "wal")
    assert synced == [tmp_path, tmp_path / "a"] and (tmp_path / "a" / "wal").is_dir()
    synced.clear()
    wal_mod.make_dirs_durably(tmp_path / "a" / "wal")
    assert synced == [], "nothing made, nothing to sync"


def test_a_snapshot_that_cannot_be_written_names_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    from raftkv.server.wal import DiskIOError

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    store = SnapshotStore(tmp_path / "snap")  # its directory is made (and synced) first; then the disk fills
    monkeypatch.setattr(os, "fsync", full)
    monkeypatch.setattr(store, "_fsync_file", full)  # bound to os.fsync when the store was made
    with pytest.raises(DiskIOError, match=r"write and fsync .*\.snap\.tmp: No space left"):
        store.save(5, 1, b"state")
