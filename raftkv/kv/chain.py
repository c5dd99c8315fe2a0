"""`CommitChain`: a compact commitment to the log prefix a state machine applied (for the lab's log-matching oracle).

    head(0) = 32 zero bytes
    head(i) = sha256(head(i-1) || index i (8 bytes, big-endian) || term of entry i (8 bytes) || data of entry i)

folded once per applied entry, in log order (one sha256 of ~100 bytes: about a microsecond). Two replicas whose
chains at one index differ applied different log prefixes up to that index: Raft's Log Matching and State Machine
Safety say that never happens. A replica whose chain at one index changes over time had an applied (so committed)
entry rewritten. The chain sits beside the state in the KV snapshot (raftkv.kv.store, format /3), so it survives
compaction, restarts and InstallSnapshot; a store restored from an older snapshot (/1, /2) does not know the chain
of its prefix and reports none (``anchored`` False) until it installs a newer snapshot.

Checkpoints: the chain at each of the last ``RECENT`` applied indexes, and at every index that is a multiple of
``EVERY`` (the last ``KEEP`` of those), so two replicas at different applied indexes still share indexes to compare
at: a replica stuck at any index (one that committed a stale entry and now refuses the leader's appends) is
compared with the others as they pass through it, since a poll every half second sees every index of a lab run's
rate in the dense part (docs/failpoints.md, the oracles).
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from typing import Any

__all__ = ["EVERY", "KEEP", "CommitChain", "ChainError"]

EVERY = 16  # a checkpoint at every index that is a multiple of this
KEEP = 64  # checkpoints kept (EVERY * KEEP = 1024 entries back)
RECENT = 64  # the chain at each of the last RECENT applied indexes
GENESIS = bytes(32)
SHORT = 16  # hex digits of a hash as reported (64 bits: a chance collision is not a concern)
_PACK = struct.Struct(">QQ").pack
_sha256 = hashlib.sha256


class ChainError(ValueError):
    """An encoded chain that is not one (from a snapshot: the snapshot is refused)."""


class CommitChain:
    """The chain at ``index`` (term ``term``) is ``head``. ``add`` must be given every applied entry in order; it
    does not check the index (a skipped entry changes every later head, which is what the oracle should see)."""

    __slots__ = ("index", "term", "head", "anchored", "_ring", "_recent")

    def __init__(self, index: int = 0, term: int = 0, head: bytes = GENESIS, *, anchored: bool = True) -> None:
        self.index = index
        self.term = term
        self.head = head
        self.anchored = anchored
        self._ring: deque[tuple[int, int, bytes]] = deque(maxlen=KEEP)
        self._recent: deque[tuple[int, int, bytes]] = deque(maxlen=RECENT)

    def add(self, index: int, term: int, data: bytes) -> None:
        """Fold the applied entry (index, term, data) into the chain."""
        self.head = head = _sha256(self.head + _PACK(index, term) + data).digest()
        self.index = index
        self.term = term
        self._recent.append((index, term, head))
        if not index % EVERY:
            self._ring.append((index, term, head))

    def copy(self) -> CommitChain:
        """A detached copy (for a frozen state: the snapshot thread encodes it while this one keeps folding)."""
        out = CommitChain(self.index, self.term, self.head, anchored=self.anchored)
        out._ring.extend(self._ring)
        out._recent.extend(self._recent)
        return out

    def view(self) -> dict[str, Any] | None:
        """What a node reports: ``{"index", "term", "hash", "checkpoints": [[index, term, hash], ...]}`` (hashes as
        SHORT hex digits, checkpoints oldest first: the sparse ones, then every recent index), or None when the
        chain is not anchored."""
        if not self.anchored:
            return None
        first_recent = self._recent[0][0] if self._recent else self.index + 1
        points = [p for p in self._ring if p[0] < first_recent] + list(self._recent)
        return {"index": self.index, "term": self.term, "hash": self.head.hex()[:SHORT],
                "checkpoints": [[i, t, h.hex()[:SHORT]] for i, t, h in points]}

    def encode(self) -> list[Any] | None:
        """For a snapshot: ``[index, term, head]``, or None when not anchored."""
        return [self.index, self.term, self.head] if self.anchored else None

    @classmethod
    def decode(cls, value: Any, applied: int) -> CommitChain:
        """The chain of a snapshot at ``applied`` from :meth:`encode`'s value; `ChainError` if it is not one."""
        if value is None:
            return cls(applied, 0, GENESIS, anchored=False)
        if type(value) is not list or len(value) != 3:
            raise ChainError(f"chain must be [index, term, head] or nil, got {value!r}")
        index, term, head = value
        if index != applied or type(index) is not int:
            raise ChainError(f"chain index {index!r} is not the snapshot's applied index {applied}")
        if type(term) is not int or term < 0:
            raise ChainError(f"bad chain term {term!r}")
        if type(head) is not bytes or len(head) != len(GENESIS):
            raise ChainError("chain head must be 32 bytes")
        return cls(index, term, head)
