"""`KVStore`: the versioned key-value state machine (apply committed commands in log order)."""

from __future__ import annotations

from .command import Result

__all__ = ["KVStore", "KVUsageError", "SnapshotError"]


class KVUsageError(Exception):
    """The caller misused the store (e.g. applied an index not above the applied index)."""


class SnapshotError(ValueError):
    """Snapshot bytes that are not a valid KV snapshot (restore leaves the store unchanged)."""


class KVStore:
    """The state machine. `apply(index, data)` must be called with strictly increasing indexes (gaps are fine:
    NOOP entries carry no command). `snapshot()` is deterministic: equal states give equal bytes."""

    def __init__(self) -> None:
        raise NotImplementedError

    @property
    def applied_index(self) -> int:
        raise NotImplementedError

    def get(self, key: str) -> tuple[str, int] | None:
        """The current (value, version) of `key`, or None (a local read: serve it only under a ReadState)."""
        raise NotImplementedError

    def apply(self, index: int, data: bytes) -> Result:
        """Apply the command encoded in `data` (an entry at log `index`) and return its result. Undecodable data
        gives an INVALID result (deterministically), not an exception."""
        raise NotImplementedError

    def note_applied(self, index: int) -> None:
        """Record that `index` (a NOOP entry, or one with no command) is applied."""
        raise NotImplementedError

    def snapshot(self) -> bytes:
        raise NotImplementedError

    def restore(self, data: bytes) -> None:
        """Replace the whole state by a `snapshot()`; `SnapshotError` (and no change) if `data` is not one."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError
