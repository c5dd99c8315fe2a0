"""Durable Raft state on disk: the WAL (hard state, entries, snapshot-install markers) plus snapshot files.

WAL record types (payloads are raftkv.core.codec encodings, opaque to wal.py):
- HARD_STATE (1): encode_hard_state. The last one replayed wins. Every new segment starts with the current hard
  state, so deleting older segments never loses it.
- ENTRIES (2): msgpack list of encode_entry; entries overwrite the log from their first index (a follower's log
  may be cut back by a new leader).
- BATCH (4): msgpack list of [type, payload] of the records above: everything one Ready persists (entries and
  the hard state) in ONE checksummed record, so a torn write keeps all of it or none of it. (Entries without the
  hard state of their term would be refused by the core at restart: a log term above the hard state's term.)
- INSTALL (3): encode_snapshot_meta of a snapshot received from the leader. Written and fsynced BEFORE the
  snapshot file: on replay the marker counts only if a snapshot file at or beyond its index exists (otherwise the
  install never finished and the old log stands; its acknowledgement was never sent). When it counts, every
  entry before it is discarded ("the snapshot replaces the whole log").

Snapshots made locally (compaction) need no WAL record: the log after the snapshot index stays valid, and WAL
segments whose entries all lie at or below the newest durable snapshot are deleted (never the current one).

Recovery (`DiskStorage.open`) returns the newest snapshot, the last hard state and the entries after the
snapshot, contiguous from snapshot index + 1; a gap or an unreadable record raises `StorageCorrupt` (or
`WalCorrupt`/`SnapshotCorrupt` from the layers below) naming what and where.

`persist_sync(ready)` and the snapshot methods are blocking: the node runs them on its single WAL thread.
`MemoryStorage` (--memory) keeps nothing: every call is a no-op and state is lost on restart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

from raftkv.core import Entry, HardState, Ready, Snapshot, codec

from . import wal as wal_mod
from .snapfiles import SnapshotStore
from .wal import WAL, frame_all

HARD_STATE, ENTRIES, INSTALL, BATCH = 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class _Rec:
    segment: int
    rtype: int
    payload: bytes


class StorageCorrupt(RuntimeError):
    """The durable state is inconsistent (e.g. a gap between the snapshot and the log)."""


@dataclass(slots=True)
class Recovered:
    hard_state: HardState | None = None
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)


@dataclass(slots=True)
class PersistStats:
    fsync_seconds: float = 0.0
    bytes: int = 0


class MemoryStorage:
    """--memory: nothing is written anywhere."""

    durable = False

    def persist_sync(self, ready: Ready, sync: bool = True) -> PersistStats:
        return PersistStats()

    def note_commit_only(self, hard_state: HardState) -> None:
        pass

    def save_snapshot_sync(self, snapshot: Snapshot) -> int:
        return 0

    def release_sync(self, index: int) -> int:
        return 0

    def wal_bytes(self) -> int:
        return 0

    def close(self) -> None:
        pass


class DiskStorage:
    durable = True

    def __init__(self, wal: WAL, snaps: SnapshotStore, log: logging.Logger) -> None:
        self.wal = wal
        self.snaps = snaps
        self._log = log
        self.hard_state = HardState()
        self.segment_max: dict[int, int] = {}  # segment seq -> highest entry index written into it
        self.snapshot_index = 0  # of the newest durable snapshot file
        self._unwritten_hs: HardState | None = None  # a commit-only change not yet written (see note_commit_only)

    @classmethod
    def open(cls, data_dir: Path, *, segment_bytes: int, log: logging.Logger,
             failpoints: frozenset[str] = frozenset()) -> tuple[DiskStorage, Recovered]:
        """Recover the durable state. `failpoints`: storage failpoints (raftkv/failpoints.py), test labs only."""
        snaps = SnapshotStore(data_dir / "snap", log=log,
                              rename_unsynced="snapshot-rename-unsynced" in failpoints)
        latest = snaps.load_latest()
        wal, replayed = WAL.open(data_dir / "wal", segment_bytes=segment_bytes, log=log,
                                 skip_fsync="skip-fsync" in failpoints)
        self = cls(wal, snaps, log)
        rec = Recovered()
        snap_index = 0
        if latest is not None:
            try:
                rec.snapshot = codec.decode_snapshot(latest[1])
            except codec.DecodeError as e:
                raise StorageCorrupt(f"snapshot file {latest[0].path} does not decode: {e}") from None
            snap_index = self.snapshot_index = rec.snapshot.meta.index
            rec.actions.append(f"loaded snapshot {latest[0].path.name} (index {snap_index})")
        log_entries: list[Entry] = []
        base = -1  # index before log_entries[0]; -1 = not yet known
        flat: list[tuple[int, int, bytes]] = []  # (segment, type, payload) with batches opened up
        for r in replayed:
            if r.rtype != BATCH:
                flat.append((r.segment, r.rtype, r.payload))
                continue
            try:
                flat.extend((r.segment, t, p) for t, p in msgpack.unpackb(r.payload))
            except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
                raise StorageCorrupt(f"WAL segment {r.segment}: a batch record does not decode: {exc}") from None
        for item in (_Rec(*f) for f in flat):
            try:
                if item.rtype == HARD_STATE:
                    self.hard_state = codec.decode_hard_state(item.payload)
                elif item.rtype == ENTRIES:
                    for ent in (codec.decode_entry(b) for b in msgpack.unpackb(item.payload)):
                        if base < 0:
                            base = ent.index - 1
                        if ent.index <= base:
                            continue
                        if ent.index > base + len(log_entries) + 1:
                            raise StorageCorrupt(f"WAL segment {item.segment}: entry {ent.index} leaves a gap after "
                                                 f"{base + len(log_entries)}")
                        del log_entries[ent.index - base - 1:]
                        log_entries.append(ent)
                        if ent.index > self.segment_max.get(item.segment, 0):
                            self.segment_max[item.segment] = ent.index
                elif item.rtype == INSTALL:
                    meta = codec.decode_snapshot_meta(item.payload)
                    if meta.index <= snap_index:
                        log_entries.clear()
                        base = meta.index
                    else:
                        rec.actions.append(f"ignored unfinished snapshot install at index {meta.index}")
                else:
                    raise StorageCorrupt(f"WAL segment {item.segment}: unknown record type {item.rtype}")
            except (codec.DecodeError, ValueError, TypeError) as exc:
                if isinstance(exc, StorageCorrupt):
                    raise
                raise StorageCorrupt(f"WAL segment {item.segment}: record of type {item.rtype} does not decode: "
                                     f"{exc}") from None
        kept = [e for e in log_entries if e.index > snap_index]
        if kept and kept[0].index != snap_index + 1:
            raise StorageCorrupt(f"the log starts at index {kept[0].index} but the snapshot ends at {snap_index}")
        rec.entries = kept
        rec.hard_state = self.hard_state
        rec.actions.append(f"replayed {len(replayed)} WAL records: {len(kept)} entries after the snapshot, "
                           f"hard state term={self.hard_state.term} vote={self.hard_state.vote} "
                           f"commit={self.hard_state.commit}")
        return self, rec

    # -- blocking operations, run on the WAL thread -------------------------------------------------------------

    def persist_sync(self, ready: Ready, sync: bool = True) -> PersistStats:
        """Step 1 of the Ready contract: durable before return. One write + one fdatasync for the whole batch.
        `sync=False` only when nothing but the commit index changed (its loss is safe)."""
        items: list[tuple[int, bytes]] = []
        if ready.snapshot is not None:
            # The marker first (fsynced), then the file: see the module docstring. The marker carries the Ready's
            # term and vote (with the commit already durable: a commit may be lost, and the snapshot's index may
            # lie past the old log), so that a crash between here and the batch below never leaves a snapshot of
            # a newer term than the durable hard state (the core refuses to start on that).
            marker: list[tuple[int, bytes]] = [(INSTALL, codec.encode_snapshot_meta(ready.snapshot.meta))]
            if ready.hard_state is not None:
                hs0 = HardState(term=ready.hard_state.term, vote=ready.hard_state.vote,
                                commit=min(self.hard_state.commit, ready.hard_state.commit))
                marker.append((HARD_STATE, codec.encode_hard_state(hs0)))
                self.hard_state = hs0  # durable below: a segment header written next must not go back from it
            self.wal.append_sync(frame_all([(BATCH, msgpack.packb(marker))]))
            self.save_snapshot_sync(ready.snapshot)
        if ready.entries:
            enc = codec.encode_entry
            items.append((ENTRIES, msgpack.packb([enc(e) for e in ready.entries])))
        if self.wal.size >= self.wal.segment_bytes:
            # The new segment starts with the hard state durable BEFORE this batch (a torn batch must not leave
            # its hard state behind without its entries: its commit could point past the log).
            header = self._unwritten_hs or self.hard_state
            self.wal.cut(frame_all([(HARD_STATE, codec.encode_hard_state(header))]))
        hs = ready.hard_state or self._unwritten_hs
        self._unwritten_hs = None
        if hs is not None:
            self.hard_state = hs
            items.append((HARD_STATE, codec.encode_hard_state(hs)))
        data = frame_all(items) if len(items) <= 1 else frame_all([(BATCH, msgpack.packb(items))])
        t0 = time.perf_counter()
        self.wal.append_sync(data, sync or bool(ready.entries) or ready.snapshot is not None)
        dt = time.perf_counter() - t0
        if ready.entries:
            last = ready.entries[-1].index
            self.segment_max[self.wal.seq] = last
            # After a follower's log was cut back this may lower the segment's max: safe, since the entries
            # above it are overwritten (dead) and every live entry of the segment is at or below it.
        return PersistStats(dt, len(data))

    def note_commit_only(self, hard_state: HardState) -> None:
        """A hard state that differs from the durable one only in its commit index: not written now (its loss is
        safe); remembered so that the next batch or segment header carries it. Called on the event loop between
        WAL-thread calls (never concurrently with persist_sync: the ready loop awaits each one)."""
        self._unwritten_hs = hard_state

    def save_snapshot_sync(self, snapshot: Snapshot) -> int:
        """Durable snapshot file (tmp, fsync, rename, dir fsync). Returns its size in bytes."""
        meta = snapshot.meta
        f = self.snaps.save(meta.index, meta.term, codec.encode_snapshot(snapshot))
        self.snapshot_index = max(self.snapshot_index, meta.index)
        self._log.info("snapshot saved: index %d term %d, %d bytes (%s)", meta.index, meta.term, f.size,
                       f.path.name)
        return f.size

    def release_sync(self, index: int) -> int:
        """Delete WAL segments whose entries all lie at or below `index` and below the newest durable snapshot
        (never more: a log without the snapshot that covers its start would not restart)."""
        index = min(index, self.snapshot_index)
        drop_before = 0
        for seq in sorted(self.segment_max):
            if seq != self.wal.seq and self.segment_max[seq] <= index:
                drop_before = seq + 1
            else:
                break
        if not drop_before:
            return 0
        removed = self.wal.remove_segments_before(drop_before)
        for p in removed:
            self.segment_max.pop(int(p.name[: -len(wal_mod.SUFFIX)]), None)
        if removed:
            self._log.info("WAL: deleted %d segment(s) covered by the snapshot at index %d", len(removed), index)
        return len(removed)

    def wal_bytes(self) -> int:
        return self.wal.total_bytes()

    def close(self) -> None:
        self.wal.close()

