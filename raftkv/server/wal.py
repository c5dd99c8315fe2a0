"""A segmented, append-only write-ahead log of typed opaque records (records.py framing), with group commit.

Layout: `<dir>/<seq:020d>.wal`, sequence numbers increasing; only the last segment is ever appended to.

Contract
- `append_sync(data)` writes a batch of already-framed records with ONE write and ONE fdatasync. It is blocking and
  meant to run on the node's dedicated WAL thread (one thread: calls never overlap), so the event loop keeps
  accepting requests while the disk works and everything that arrived meanwhile goes into the next batch: that
  is the group commit. It returns only after the data is durable.
- `cut(header)` closes the current segment (already synced) and starts a new one whose first records are `header`
  (the caller writes the current hard state and snapshot marker there, so older segments can be dropped later).
  The directory is fsynced so the new file's name is durable.
- `remove_segments_before(seq)` deletes whole older segments (after a snapshot made them redundant).

Recovery (`WAL.open`) replays every segment in order. It truncates only a torn tail of the LAST segment: a short
header, a payload running past the end of the file, a tail of zeros, or a last record whose payload checksum fails
and which ends exactly at the end of the file (the write of the final batch was cut short); the log line says how
many bytes were dropped. Anything else (a bad checksum with more data after it, a damaged header, any damage in a
non-last segment) raises `WalCorrupt` naming the file and the offset: the node refuses to start and never drops
or rewrites data on its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import records
from .records import StopReason

SUFFIX = ".wal"


class WalCorrupt(RuntimeError):
    """The log is damaged somewhere other than a torn tail. Carries the file and the offset."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"WAL corrupt: {path} at offset {offset}: {reason}; refusing to start "
                         "(move the data directory aside or restore it; nothing was modified)")
        self.path = path
        self.offset = offset
        self.reason = reason


class DiskIOError(RuntimeError):
    """A write, fsync or file operation on the data directory failed. The node stops: it never retries (after a
    failed fsync the page cache's state is unknown, so a retry that succeeds proves nothing: the fsyncgate
    lesson) and never acknowledges what the failed operation was to make durable. Names the file and the
    operation, for the node's log."""

    def __init__(self, path: Path, op: str, cause: OSError) -> None:
        super().__init__(f"disk I/O failed: {op} {path}: {cause.strerror or cause} (errno {cause.errno}); stopping "
                         "without retrying it")
        self.path, self.op, self.errno = path, op, cause.errno


@contextlib.contextmanager
def io(path: Path, op: str) -> Iterator[None]:
    """Turn an OSError of the block into a DiskIOError naming `path` and `op`."""
    try:
        yield
    except OSError as e:
        raise DiskIOError(path, op, e) from e


@dataclass(frozen=True, slots=True)
class Replayed:
    segment: int  # sequence number of the segment the record came from
    rtype: int
    payload: bytes


def fsync_dir(path: Path) -> None:
    with io(path, "fsync of directory"):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def make_dirs_durably(path: Path) -> None:
    """`mkdir -p path` whose new directories survive a power loss: each one created is fsynced into its parent,
    top down. Without it, a power cut soon after the first start may take back the WAL directory's own entry (its
    parent was never synced) and with it every vote and entry, fsynced or not."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        with io(directory, "mkdir"):
            directory.mkdir(exist_ok=True)
        fsync_dir(directory.parent)


def _seq_of(path: Path) -> int:
    return int(path.name[: -len(SUFFIX)])


class WAL:
    """See the module docstring. Not thread-safe: one thread (the WAL executor) calls the mutating methods."""

    def __init__(self, directory: Path, segment_bytes: int, log: logging.Logger, skip_fsync: bool = False) -> None:
        self.directory = directory
        # FAILPOINT skip-fsync (raftkv/failpoints.py; test labs only): records are written but never fdatasync'ed.
        self._fdatasync = _skip_fsync if skip_fsync else os.fdatasync
        self.segment_bytes = segment_bytes
        self._log = log
        self._fd = -1
        self.seq = 0
        self.size = 0  # bytes in the current segment
        self.bytes_written = 0  # since open, for metrics

    # -- recovery ---------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path, *, segment_bytes: int = 64 * 1024 * 1024,
             log: logging.Logger | None = None, skip_fsync: bool = False) -> tuple[WAL, list[Replayed]]:
        """Open (creating if needed) and replay the log. Raises WalCorrupt; truncates only a torn tail.
        `skip_fsync` is the skip-fsync failpoint (never in production: raftkv/failpoints.py)."""
        log = log or logging.getLogger("raftkv.wal")
        make_dirs_durably(directory)
        wal = cls(directory, segment_bytes, log, skip_fsync)
        segments = wal.segments()
        replayed: list[Replayed] = []
        for i, path in enumerate(segments):
            last = i == len(segments) - 1
            data = path.read_bytes()
            recs, stop = records.decode_all(data)
            seq = _seq_of(path)
            replayed.extend(Replayed(seq, t, p) for t, p, _ in recs)
            if stop.reason is StopReason.END:
                continue
            torn = stop.reason in (StopReason.SHORT_HEADER, StopReason.SHORT_PAYLOAD, StopReason.ZEROS) or (
                stop.reason is StopReason.BAD_PAYLOAD and stop.record_end == len(data))
            if not (last and torn):
                raise WalCorrupt(path, stop.offset, stop.reason.value)
            dropped = len(data) - stop.offset
            log.warning("recovery: truncated torn tail of %s at offset %d: dropped %d bytes (%s)",
                        path.name, stop.offset, dropped, stop.reason.value)
            with open(path, "r+b") as f:
                f.truncate(stop.offset)
                f.flush()
                os.fsync(f.fileno())
        if segments:
            wal.seq = _seq_of(segments[-1])
            wal._fd = os.open(segments[-1], os.O_WRONLY | os.O_APPEND)
            wal.size = os.fstat(wal._fd).st_size
        else:
            wal._new_segment(1)
        return wal, replayed

    def segments(self) -> list[Path]:
        return sorted((p for p in self.directory.iterdir() if p.name.endswith(SUFFIX) and p.name[:-4].isdigit()),
                      key=_seq_of)

    # -- writing ----------------------------------------------------------------------------------------------

    def _new_segment(self, seq: int) -> None:
        path = self.directory / f"{seq:020d}{SUFFIX}"
        with io(path, "create"):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        fsync_dir(self.directory)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self.seq = seq
        self.size = 0

    def append_sync(self, data: bytes, sync: bool = True) -> None:
        """Write already-framed records and make them durable (one write, one fdatasync). `sync=False` skips the
        fdatasync, for records whose loss is harmless (a commit-index-only hard state)."""
        if not data:
            return
        view = memoryview(data)
        path = self.directory / f"{self.seq:020d}{SUFFIX}"
        with io(path, "write"):
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        if sync:
            with io(path, "fdatasync"):
                self._fdatasync(self._fd)
        self.size += len(data)
        self.bytes_written += len(data)

    def cut(self, header: bytes) -> int:
        """Start a new segment beginning with `header` (framed records), durable on return. Returns its seq."""
        self._new_segment(self.seq + 1)
        self.append_sync(header)
        return self.seq

    def remove_segments_before(self, seq: int) -> list[Path]:
        """Delete segments older than `seq` (never the current one). Returns what was removed."""
        removed = []
        for path in self.segments():
            s = _seq_of(path)
            if s < seq and s != self.seq:
                path.unlink()
                removed.append(path)
        if removed:
            fsync_dir(self.directory)
        return removed

    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.segments())

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _skip_fsync(fd: int) -> None:
    """The skip-fsync failpoint's stand-in for os.fdatasync: nothing reaches the disk until the OS writes back."""


def frame_all(items: Iterable[tuple[int, bytes]]) -> bytes:
    """Frame (type, payload) pairs into one buffer for append_sync."""
    return b"".join(records.encode(t, p) for t, p in items)
