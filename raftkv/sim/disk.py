"""The simulated disk: what was written and what was synced are kept apart.

A node appends records (opaque objects with a size) to its disk. ``write`` puts a record in the page cache;
``sync`` makes everything written so far durable. A crash keeps the synced records and, drawn from the disk's
generator, possibly more: the OS may have flushed a prefix of the unsynced writes on its own, and the first record
it did not finish is left *torn* (a ``TornRecord`` holding a prefix of its bytes). Recovery must treat a torn tail
as a frame whose checksum fails: stop there and drop it. Nothing written after a torn record survives.

``rewrite`` replaces the durable content atomically (a compaction that writes a new file and renames it). With
``fragile`` (the snapshot-rename-unsynced failpoint: the new file was renamed into place without its fsync), that
one record of the new content may vanish in a crash (half the time), until the next rewrite: a file written
without fsync is not made durable by the fsync of another file.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

__all__ = ["Disk", "DiskFaults", "TornRecord"]


@dataclass(frozen=True, kw_only=True)
class DiskFaults:
    """Crash behaviour. ``flush_some``: chance that the OS had written back a random prefix of the unsynced records
    before the crash; ``tear``: chance that the first lost record is left half-written on disk."""

    flush_some: float = 0.3
    tear: float = 0.3

    def __post_init__(self) -> None:
        for name in ("flush_some", "tear"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")


@dataclass(frozen=True)
class TornRecord:
    """The remains of a record a crash interrupted: ``kept`` of its ``size`` bytes. Never valid data."""

    record: Any
    kept: int
    size: int


class Disk:
    """One node's disk. Records are kept as objects; ``size`` is what a real encoding would take (for stats)."""

    def __init__(self, rng: random.Random, faults: DiskFaults | None = None) -> None:
        self._rng = rng
        self.faults = faults or DiskFaults()
        self._synced: list[Any] = []
        self._written: list[tuple[Any, int]] = []
        self.bytes_written = 0
        self.syncs = 0
        self.torn_writes = 0
        self._fragile: Any = None  # a record of the last rewrite that a crash may lose (see the module docstring)

    def write(self, record: Any, size: int) -> None:
        """Append a record to the page cache; it is durable only after the next ``sync``."""
        self._written.append((record, size))
        self.bytes_written += size

    def sync(self) -> None:
        """Make every written record durable (fsync)."""
        self.syncs += 1
        if self._written:
            self._synced.extend(r for r, _ in self._written)
            self._written.clear()

    def unsynced(self) -> int:
        """How many records a crash now could lose."""
        return len(self._written)

    def rewrite(self, records: list[Any], fragile: Any = None) -> None:
        """Replace everything, durably and atomically (write a new file, fsync, rename). Pending writes are kept
        durable first: a rewrite is preceded by a sync. ``fragile``: one of ``records`` that was NOT synced before
        its rename (a failpoint): a crash before the next rewrite may lose it."""
        self.sync()
        self._synced = list(records)
        self._fragile = fragile

    def crash(self) -> None:
        """Lose what a power cut loses: unsynced records, except a random flushed prefix; maybe tear the next one."""
        pending = self._written
        self._written = []
        fragile, self._fragile = self._fragile, None
        if fragile is not None and self._rng.random() < 0.5:
            self._synced = [r for r in self._synced if r is not fragile]
        if not pending:
            return
        rng = self._rng
        survivors = 0
        if self.faults.flush_some and rng.random() < self.faults.flush_some:
            survivors = rng.randint(0, len(pending))
        self._synced.extend(r for r, _ in pending[:survivors])
        if survivors < len(pending) and self.faults.tear and rng.random() < self.faults.tear:
            record, size = pending[survivors]
            kept = rng.randint(0, max(0, size - 1))
            self._synced.append(TornRecord(record, kept, size))
            self.torn_writes += 1

    def read(self) -> list[Any]:
        """The durable records, in write order, as recovery sees them after a crash (torn tail included)."""
        return list(self._synced)
