"""A node's durable Raft state in the simulator: the records it writes to its `Disk`, and recovery from them.

Records (each one a frame of a write-ahead log; a real WAL would checksum every frame):

- ``Install(snapshot)``: a snapshot from a Ready (an InstallSnapshot from the leader): the whole log is replaced by
  it, every stored entry is discarded (the Ready contract, step 1).
- ``Compact(snapshot)``: a snapshot the application made of its own state: entries up to its index are dropped,
  later ones are kept.
- ``Append(entries)``: entries from a Ready; they overwrite the log from ``entries[0].index`` on.
- ``SetHardState(hard_state)``.
- ``Batch(records)``: the records of one Ready as ONE frame, so a crash keeps all of them or none. This is not a
  detail: written as separate frames, a crash in the middle of the fsync can keep a Ready's entries (of a new
  term) but lose its hard state (still the old term), or keep a commit index beyond the entries that survived,
  and the core rightly refuses to restart from such a state (`ConfigError`). A real WAL must do the same (one
  checksummed frame per Ready, or recovery that repairs the difference).

`DurableLog` is the state those records describe. The driver keeps one up to date with what it WRITES (the node's
log as the protocol sees it, used by the invariant checks), and recovery rebuilds a fresh one from what the disk
kept after a crash: the synced records, stopping at the first torn one (its checksum would fail).
"""

from __future__ import annotations

from dataclasses import dataclass

from raftkv.core import Entry, HardState, Snapshot

from .disk import Disk, TornRecord

__all__ = ["Append", "Batch", "Compact", "DurableLog", "Install", "SetHardState", "StorageError", "recover"]


class StorageError(Exception):
    """Records that cannot describe a log (entries not contiguous with it): the driver or the core broke the
    persistence contract."""


@dataclass(frozen=True, slots=True)
class Install:
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class Compact:
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class Append:
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class SetHardState:
    hard_state: HardState


@dataclass(frozen=True, slots=True)
class Batch:
    records: tuple[Install | Append | SetHardState, ...]


class DurableLog:
    """Hard state, snapshot and the entries after it; ``entries[k]`` has index ``snapshot_index + 1 + k``."""

    __slots__ = ("hard_state", "snapshot", "entries", "snap_index", "snap_term")

    def __init__(self) -> None:
        self.hard_state = HardState()
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.snap_index = 0
        self.snap_term = 0

    @property
    def last_index(self) -> int:
        return self.snap_index + len(self.entries)

    def term_at(self, index: int) -> int | None:
        """The term of the entry at ``index`` (the snapshot's term at its index; 0 at index 0); None when the
        index is compacted away or beyond the log."""
        offset = index - self.snap_index
        if offset == 0:
            return self.snap_term
        if 0 < offset <= len(self.entries):
            return self.entries[offset - 1].term
        return None

    def snapshot_index(self) -> int:
        return self.snap_index

    def apply(self, record: object) -> None:
        """Change the state as the record says. `StorageError` when the record cannot follow this state."""
        if type(record) is Batch:
            for part in record.records:
                self.apply(part)
        elif type(record) is Append:
            entries = record.entries
            if not entries:
                return
            first = entries[0].index
            if first <= self.snap_index or first > self.last_index + 1:
                raise StorageError(f"entries from index {first} do not fit a log holding "
                                   f"{self.snap_index + 1}..{self.last_index}")
            del self.entries[first - self.snap_index - 1 :]
            self.entries.extend(entries)
        elif type(record) is SetHardState:
            self.hard_state = record.hard_state
        elif type(record) is Install:
            meta = record.snapshot.meta
            self.snapshot = record.snapshot
            self.snap_index, self.snap_term = meta.index, meta.term
            self.entries = []
        elif type(record) is Compact:
            meta = record.snapshot.meta
            if meta.index < self.snap_index:
                raise StorageError(f"compaction to {meta.index} below the snapshot at {self.snap_index}")
            if meta.index > self.last_index:
                raise StorageError(f"compaction to {meta.index} beyond the last entry {self.last_index}")
            term = self.term_at(meta.index)
            if term != meta.term:
                raise StorageError(f"compaction to {meta.index}@t{meta.term} but the log has term {term} there")
            del self.entries[: meta.index - self.snap_index]
            self.snapshot = record.snapshot
            self.snap_index, self.snap_term = meta.index, meta.term
        else:
            raise StorageError(f"unknown record {record!r}")

    def records(self) -> list[object]:
        """The fewest records that rebuild this state (what a compaction rewrites the disk to)."""
        out: list[object] = []
        if self.snapshot is not None:
            out.append(Install(self.snapshot))
        if self.entries:
            out.append(Append(tuple(self.entries)))
        out.append(SetHardState(self.hard_state))
        return out


def record_size(record: object) -> int:
    """Roughly what the record would take as a checksummed frame on a real disk."""
    if type(record) is Append:
        return 16 + sum(24 + len(e.data) for e in record.entries)
    if type(record) is SetHardState:
        return 40
    if type(record) is Install or type(record) is Compact:
        return 64 + len(record.snapshot.data)
    if type(record) is Batch:
        return sum(record_size(part) for part in record.records)
    return 16


def recover(disk: Disk) -> tuple[DurableLog, bool]:
    """Rebuild the durable state from what ``disk`` kept. Returns the state and whether a torn tail was found;
    the torn tail is cut off the disk (rewritten without it), as WAL recovery truncates a bad last frame."""
    log = DurableLog()
    kept: list[object] = []
    torn = False
    for record in disk.read():
        if type(record) is TornRecord:
            torn = True
            break
        log.apply(record)
        kept.append(record)
    if torn:
        disk.rewrite(kept)
    return log, torn
