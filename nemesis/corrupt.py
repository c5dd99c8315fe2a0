"""File corruption for the disk nemesis: damage one of a stopped node's durable files, and undo it.

`corrupt_one(root, rng)` picks among the WAL segments (``*.wal``) and snapshots (``*.snap``) under `root` and
either flips one byte (XOR with a random non-zero mask) or truncates the file. It keeps the original bytes so
`Corruption.undo()` can put the file back (the lab's stand-in for an operator restoring from a backup, so one
refused restart does not end the run). It also keeps what the damaged file looked like (inode, size, mtime): a
file the node has changed since (it started on it and, say, cut a torn tail) is not written to, since the old
bytes would now damage what the node wrote; a file it deleted is gone with its damage.

Where it strikes, deliberately: never the last record of the last WAL segment. Damage there is indistinguishable
from a write torn by a crash, which a WAL must accept by dropping the tail (raftkv does), so the node would lose
a durable record without any means to tell; that is a limit of every single-copy log, recorded in docs/lab.md,
not something a restart can be expected to refuse. So a flip lands in the first half of a file (in the newest WAL
segment, only in its first quarter and only once it holds at least NEWEST_WAL_MIN bytes: the file holds many
records then, and the last one starts well after the flip), and a truncation only hits a snapshot or a WAL segment
that is not the newest.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NEWEST_WAL_MIN = 4 * 1024


def _identity(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


@dataclass(frozen=True, slots=True)
class Corruption:
    path: Path
    how: str  # "flip" or "truncate"
    offset: int
    original: bytes  # the bytes from `offset` that were changed or cut off
    damaged: tuple[int, int, int] = (0, 0, 0)  # the file's (inode, size, mtime_ns) right after the damage

    def describe(self) -> dict[str, Any]:
        return {"file": str(self.path), "how": self.how, "offset": self.offset, "bytes": len(self.original)}

    def undo(self) -> str:
        """Put the original bytes back: "restored"; or "gone" (the file no longer exists) or "changed" (it was
        written since the damage: left as it is, see the module docstring)."""
        try:
            if _identity(self.path) != self.damaged:
                return "changed"
            with open(self.path, "r+b") as f:
                f.seek(self.offset)
                f.write(self.original)
                f.flush()
                os.fsync(f.fileno())
        except FileNotFoundError:
            return "gone"
        return "restored"


def _candidates(root: Path) -> tuple[list[Path], list[Path]]:
    """(WAL segments sorted by name, i.e. by sequence number; snapshots), non-empty ones only."""
    files = [p for p in root.rglob("*") if p.is_file() and p.stat().st_size > 1]
    wals = sorted((p for p in files if p.suffix == ".wal"), key=lambda p: p.name)
    snaps = sorted(p for p in files if p.suffix == ".snap")
    return wals, snaps


def corrupt_one(root: Path, rng: random.Random) -> Corruption | None:
    """Damage one file under `root` (see the module docstring); None when there is no WAL segment or snapshot."""
    wals, snaps = _candidates(root)
    truncatable = wals[:-1] + snaps
    flippable = wals[:-1] + snaps + [p for p in wals[-1:] if p.stat().st_size >= NEWEST_WAL_MIN]
    if not flippable:
        return None
    if truncatable and rng.random() < 0.5:
        path = rng.choice(truncatable)
        size = path.stat().st_size
        offset = rng.randrange(size // 2, size)
        with open(path, "r+b") as f:
            f.seek(offset)
            original = f.read()
            f.truncate(offset)
            os.fsync(f.fileno())
        return Corruption(path, "truncate", offset, original, _identity(path))
    path = rng.choice(flippable)
    reach = path.stat().st_size // (4 if wals and path == wals[-1] else 2)
    offset = rng.randrange(0, max(1, reach))
    with open(path, "r+b") as f:
        f.seek(offset)
        original = f.read(1)
        f.seek(offset)
        f.write(bytes([original[0] ^ rng.randrange(1, 256)]))
        os.fsync(f.fileno())
    return Corruption(path, "flip", offset, original, _identity(path))
