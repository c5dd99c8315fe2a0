"""Snapshot files: `<dir>/<index:020d>-<term:020d>.snap`, each one checksummed record (records.py framing).

Writing (`save`, blocking: run it on a worker thread, never on the event loop): write `<name>.tmp`, fsync it,
rename it to `<name>`, fsync the directory. Only then is the snapshot durable, and only then may the caller drop
WAL segments it covers. A crash leaves at worst a `.tmp` file, which `SnapshotStore` deletes at start.

Reading (`load_latest`): the newest snapshot by index. A snapshot file whose checksum fails raises
`SnapshotCorrupt` naming the file: the node refuses to start rather than silently fall back to an older state.
Older snapshots beyond `keep` are deleted after a new one is durable.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from . import records
from .records import StopReason
from .wal import fsync_dir, io, make_dirs_durably

MAGIC = b"RKVSNAP1"
SNAP_RECORD = 1


class SnapshotCorrupt(RuntimeError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"snapshot corrupt: {path}: {reason}; refusing to start")
        self.path = path


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    index: int
    term: int
    path: Path
    size: int


class SnapshotStore:
    def __init__(self, directory: Path, *, keep: int = 2, log: logging.Logger | None = None,
                 rename_unsynced: bool = False) -> None:
        self.directory = directory
        # FAILPOINT snapshot-rename-unsynced (raftkv/failpoints.py; test labs only): the file is renamed into place
        # without its fsync, so a power cut can leave an empty or partial snapshot that the WAL no longer backs.
        self._fsync_file = _no_fsync if rename_unsynced else os.fsync
        self.keep = keep
        self._log = log or logging.getLogger("raftkv.snap")
        make_dirs_durably(directory)
        for tmp in directory.glob("*.tmp"):
            self._log.warning("recovery: removed unfinished snapshot file %s", tmp.name)
            tmp.unlink()

    def files(self) -> list[SnapshotFile]:
        out = []
        for p in self.directory.glob("*.snap"):
            try:
                index, term = (int(x) for x in p.stem.split("-"))
            except ValueError:
                continue
            out.append(SnapshotFile(index, term, p, p.stat().st_size))
        return sorted(out, key=lambda f: f.index)

    def save(self, index: int, term: int, payload: bytes) -> SnapshotFile:
        """Durably write a snapshot (tmp + fsync + rename + dir fsync) and prune old ones. Blocking."""
        name = f"{index:020d}-{term:020d}.snap"
        final = self.directory / name
        tmp = self.directory / (name + ".tmp")
        data = MAGIC + records.encode(SNAP_RECORD, payload)
        with io(tmp, "write and fsync"), open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            self._fsync_file(f.fileno())
        with io(final, "rename onto"):
            os.replace(tmp, final)
        fsync_dir(self.directory)
        for old in self.files()[: -self.keep]:
            old.path.unlink()
        return SnapshotFile(index, term, final, len(data))

    def load_latest(self) -> tuple[SnapshotFile, bytes] | None:
        files = self.files()
        if not files:
            return None
        latest = files[-1]
        data = latest.path.read_bytes()
        if not data.startswith(MAGIC):
            raise SnapshotCorrupt(latest.path, "bad magic")
        recs, stop = records.decode_all(data, len(MAGIC))
        if stop.reason is not StopReason.END or len(recs) != 1 or recs[0][0] != SNAP_RECORD:
            raise SnapshotCorrupt(latest.path, f"{stop.reason.value} at offset {stop.offset}")
        return latest, recs[0][1]


def _no_fsync(fd: int) -> None:
    """The snapshot-rename-unsynced failpoint's stand-in for os.fsync."""
