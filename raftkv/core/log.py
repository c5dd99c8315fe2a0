"""The in-memory Raft log of one core, pure: entries after the last snapshot, and the cursors over them.

    snap_index  <  applied  <=  committed  <=  last_index           (applied >= snap_index too)
    snap_index  <=  persisted  <=  last_index

- `snap_index`/`snap_term`: the last entry folded into the snapshot; entries up to it are gone (compacted).
- `persisted`: entries up to it are durable (handed out in a Ready that was advanced); the next Ready writes
  entries from `persisted + 1` on.
- `committed`: known committed. `applied`: handed out to the application (in a Ready) for applying.

Terms in a log never decrease with the index, which makes "first index of a term" a binary search.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from operator import attrgetter

from .types import Entry

__all__ = ["LogConflict", "RaftLog"]


def _term_of(entry: Entry) -> int:
    return entry.term


_data_of = attrgetter("data")


class LogConflict(Exception):
    """Raised when an operation would contradict the log's committed prefix or its order (the core turns it into
    a ProtocolError for a peer's message, or treats it as a bug otherwise). The log is unchanged."""


class RaftLog:
    __slots__ = ("_entries", "snap_index", "snap_term", "committed", "applied", "persisted")

    def __init__(self, *, snap_index: int = 0, snap_term: int = 0, entries: list[Entry] | None = None,
                 committed: int = 0, applied: int = 0) -> None:
        self._entries: list[Entry] = entries if entries is not None else []
        self.snap_index = snap_index
        self.snap_term = snap_term
        for offset, entry in enumerate(self._entries):
            if entry.index != snap_index + 1 + offset:
                raise LogConflict(f"entry {offset} has index {entry.index}, expected {snap_index + 1 + offset}")
            previous = self._entries[offset - 1].term if offset else snap_term
            if entry.term < previous:
                raise LogConflict(f"entry {entry.index} has term {entry.term} below the previous term {previous}")
        last = snap_index + len(self._entries)
        if not snap_index <= committed <= last:
            raise LogConflict(f"commit index {committed} outside [{snap_index}, {last}]")
        if not snap_index <= applied <= committed:
            raise LogConflict(f"applied index {applied} outside [{snap_index}, commit {committed}]")
        self.committed = committed
        self.applied = applied
        self.persisted = last

    # --- reading ------------------------------------------------------------------------------------------

    @property
    def first_index(self) -> int:
        return self.snap_index + 1

    @property
    def last_index(self) -> int:
        return self.snap_index + len(self._entries)

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self.snap_term

    def term(self, index: int) -> int | None:
        """The term of the entry at `index`; None when compacted away (below the snapshot) or beyond the end."""
        offset = index - self.snap_index
        if offset == 0:
            return self.snap_term
        if 0 < offset <= len(self._entries):
            return self._entries[offset - 1].term
        return None

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def entry(self, index: int) -> Entry:
        return self._entries[index - self.snap_index - 1]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries lo <= index < hi; the caller keeps lo > snap_index and hi <= last_index + 1."""
        base = self.snap_index + 1
        return self._entries[lo - base:hi - base]

    def slice_limited(self, lo: int, max_count: int, max_bytes: int) -> list[Entry]:
        """Up to `max_count` entries from `lo`, stopping before `max_bytes` of data (at least one entry)."""
        base = self.snap_index + 1
        batch = self._entries[lo - base:lo - base + max_count]
        if sum(map(len, map(_data_of, batch))) <= max_bytes:  # the common case, at C speed
            return batch
        total = 0
        for n, entry in enumerate(batch):
            total += len(entry.data)
            if total > max_bytes and n:
                return batch[:n]
        return batch

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft 5.4.1: a candidate's log (ending at last_index/last_term) is at least as up to date as ours."""
        mine = self.last_term
        return last_term > mine or (last_term == mine and last_index >= self.last_index)

    def first_index_of_term(self, index: int) -> int:
        """The first index still stored (>= first_index, and <= index) whose term equals the term at `index`
        (which must be stored or be the snapshot point)."""
        term = self.term(index)
        assert term is not None
        pos = bisect_left(self._entries, term, key=_term_of)
        return min(index, self.snap_index + 1 + pos)

    def last_index_of_term(self, term: int, at_most: int) -> int | None:
        """The last stored index <= at_most whose term is `term`, or None if no such entry is stored."""
        at_most = min(at_most, self.last_index)
        if at_most <= self.snap_index:
            return self.snap_index if at_most == self.snap_index and self.snap_term == term else None
        pos = bisect_right(self._entries, term, hi=at_most - self.snap_index, key=_term_of)
        if pos and self._entries[pos - 1].term == term:
            return self.snap_index + pos
        if pos == 0 and self.snap_term == term:
            return self.snap_index
        return None

    def unstable(self) -> list[Entry]:
        """Entries not yet handed out for persisting (from persisted + 1)."""
        return self._entries[self.persisted - self.snap_index:]

    def to_apply(self, upto: int | None = None) -> list[Entry]:
        """Committed entries not yet handed out for applying (up to `upto` instead of the commit index when given:
        only the apply-uncommitted failpoint does that)."""
        base = self.snap_index + 1
        hi = self.committed if upto is None else upto
        return self._entries[self.applied + 1 - base:hi + 1 - base]

    # --- writing ------------------------------------------------------------------------------------------

    def append(self, entries: list[Entry]) -> None:
        """Append entries continuing the log (the leader's own proposals)."""
        if entries and entries[0].index != self.last_index + 1:
            raise LogConflict(f"append at {entries[0].index} does not continue the log (last {self.last_index})")
        self._entries.extend(entries)

    def maybe_append(self, prev_index: int, prev_term: int, commit: int, entries: tuple[Entry, ...]) -> int | None:
        """A leader's APPEND: if our log has `prev_term` at `prev_index`, merge `entries` (truncating only at a
        real term conflict, never on a duplicate or stale append), advance commit to min(commit, last new
        index) and return that last new index. None when the log does not match at prev_index.
        `LogConflict` (log unchanged) when the merge would overwrite a committed entry."""
        if self.term(prev_index) != prev_term:
            return None
        last_new = prev_index + len(entries)
        if entries:
            entries_list = self._entries
            base = self.snap_index + 1
            last = self.last_index
            # Find the first entry that is new or conflicts (a term mismatch at the same index).
            start = 0
            if prev_index < last:
                for n, entry in enumerate(entries):
                    index = entry.index
                    if index > last:
                        start = n
                        break
                    if entries_list[index - base].term != entry.term:
                        if index <= self.committed:
                            raise LogConflict(f"entry {index} of term {entry.term} conflicts with committed "
                                              f"entry of term {entries_list[index - base].term}")
                        del entries_list[index - base:]
                        if self.persisted >= index:
                            self.persisted = index - 1
                        start = n
                        break
                else:
                    start = len(entries)
            if start < len(entries):
                entries_list.extend(entries[start:] if start else entries)
        new_commit = min(commit, last_new)
        if new_commit > self.committed:  # never backwards, even for a stale append below our commit index
            self.committed = new_commit
        return last_new

    def commit_to(self, index: int) -> None:
        """Raise the commit index to `index` (never lowers it). `LogConflict` if beyond the last index."""
        if index > self.committed:
            if index > self.last_index:
                raise LogConflict(f"commit index {index} beyond the last index {self.last_index}")
            self.committed = index

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to `index` (whose term was `term` when handed out) are durable, unless the log was
        overwritten or replaced meanwhile (then nothing is concluded: they are written again)."""
        if index > self.persisted and self.term(index) == term:
            self.persisted = index

    def restore(self, index: int, term: int) -> None:
        """Replace the whole log by a snapshot ending at (index, term): nothing is stored after it."""
        self._entries = []
        self.snap_index = index
        self.snap_term = term
        self.committed = index
        self.applied = index
        self.persisted = index

    def compact(self, index: int) -> None:
        """Drop the entries up to `index` (which must be applied and >= snap_index)."""
        if not self.snap_index <= index <= self.applied:
            raise LogConflict(f"compact index {index} outside [snapshot {self.snap_index}, "
                              f"applied {self.applied}]")
        term = self.term(index)
        assert term is not None
        del self._entries[:index - self.snap_index]
        self.snap_index = index
        self.snap_term = term
        if self.persisted < index:
            self.persisted = index
