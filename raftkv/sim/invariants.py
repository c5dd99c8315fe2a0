"""The safety invariants of Raft, checked incrementally after every step of the simulation.

The node drivers report what each node did (became leader, persisted entries, committed, applied, took or
installed a snapshot, restarted) and each report is checked at once against global records, so a violation is
caught at the step that caused it and the check costs O(new work), not O(log) per step:

- ``election-safety``: at most one leader per term (a leader per term is recorded the first time it shows up).
- ``log-matching``: two entries with the same index and term hold the same data and follow an entry of the same
  term. (By induction over the index this is the paper's Log Matching property: logs that agree on an entry agree
  on the whole prefix.) Every entry any node persists is checked against a registry keyed by (index, term).
- ``leader-completeness``: an entry committed in term T is in the log of every leader of a term > T. T is the term
  in which the entry BECAME committed, not the entry's own term: an entry of term 4 that a leader of term 8
  commits need not be in the log of a (stale) leader of term 5. The checker takes T as the term of the node that
  first reports the commit (exact when that is the committing leader, an upper bound otherwise, so the check
  may miss a violation but never invents one). Checked when a node becomes leader (its log against every entry
  committed in an earlier term) and when an entry gets committed (against the current leaders of later terms).
  Entries covered by a node's snapshot count as present.
- ``state-machine-safety``: no two nodes commit or apply different entries at one index (a global committed log
  keyed by index), entries are applied in order without gaps, and snapshots taken at one index hold the same bytes.
- ``monotonic-commit`` / ``monotonic-applied``: within one incarnation of a node (between restarts) its commit and
  applied indexes never go backwards. A restart may legitimately lower them: the commit index is persisted lazily.
- ``vote-safety``: a node grants its vote to at most one candidate per term, across restarts (the vote is
  durable state: Raft Figure 2). Checked on every granted VOTE_RESP a node sends.
- ``commit-rule``: a leader moves its commit index only onto an entry of its own term (Raft Figure 2 and Figure 8:
  counting replicas of an older term's entry is not enough). Checked when a node that led the same term at its
  previous Ready advances its commit index.
- ``acknowledged-write-lost``: an entry whose success a client saw is committed, and stays in every later leader's
  log (the final check of a run also requires the healed cluster's state to hold every acknowledged write).

The first violation raises ``InvariantViolation``; the simulation stops there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

__all__ = ["InvariantViolation", "Invariants", "LogView"]


_UNKNOWN_TERM = 1 << 62  # the commit term of an entry only known from a snapshot: no completeness check for it


class InvariantViolation(Exception):  # noqa: N818 - the name says what it is, a failed check, not an error of use
    """A safety invariant failed. ``invariant`` is its short name, ``detail`` says where and how."""

    def __init__(self, invariant: str, detail: str, time: int = 0) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail
        self.time = time


@dataclass(frozen=True)
class LogView:
    """What the checker needs to see of one node's log: the term at an index (None when the index is beyond the
    log), the snapshot's index (entries at or below it are compacted and count as present and committed)."""

    term_at: Callable[[int], int | None]
    snapshot_index: Callable[[], int]


class _NodeMarks:
    __slots__ = ("commit", "applied", "leader_term")

    def __init__(self) -> None:
        self.commit = 0
        self.applied = 0
        self.leader_term = 0  # the term this node currently leads, 0 when it is not leader


class Invariants:
    """Global records of a run and the checks against them. ``now`` gives the virtual time for messages."""

    def __init__(self, now: Callable[[], int] = lambda: 0) -> None:
        self._now = now
        self.leaders: dict[int, int] = {}  # term -> the node that led it
        self.committed: dict[int, int] = {}  # index -> term of the committed entry
        self.committed_in: dict[int, int] = {}  # index -> the term it became committed in (an upper bound)
        self.max_committed = 0
        self._entries: dict[tuple[int, int], tuple[int, bytes]] = {}  # (index, term) -> (prev term, data)
        self._snapshots: dict[int, tuple[int, bytes]] = {}  # index -> (term, state machine bytes)
        self._marks: dict[int, _NodeMarks] = {}
        self._logs: dict[int, LogView] = {}
        self.acknowledged: list[tuple[int, int]] = []  # (index, term) of writes a client saw succeed
        self.votes: dict[tuple[int, int], int] = {}  # (voter, term) -> the candidate it granted its vote to
        self.checks = 0

    def _fail(self, invariant: str, detail: str) -> NoReturn:
        raise InvariantViolation(invariant, detail, self._now())

    def register(self, node: int, log: LogView) -> None:
        """A node (re)starts: its per-incarnation marks reset; its log is read through ``log``."""
        self._marks[node] = _NodeMarks()
        self._logs[node] = log

    # --- reports from the node drivers ------------------------------------------------------------------------
    def on_persist(self, node: int, index: int, term: int, prev_term: int, data: bytes) -> None:
        """``node`` made the entry (index, term) durable after an entry of ``prev_term``."""
        self.checks += 1
        key = (index, term)
        known = self._entries.get(key)
        if known is None:
            self._entries[key] = (prev_term, data)
            return
        if known[0] != prev_term:
            self._fail("log-matching", f"n{node} entry {index}@t{term} follows term {prev_term}, another node's "
                       f"copy follows term {known[0]}")
        if known[1] != data:
            self._fail("log-matching", f"n{node} entry {index}@t{term} holds different data from another node's")

    def on_leader(self, node: int, term: int) -> None:
        """``node`` reports it is leader of ``term`` (with its log already up to date in its LogView)."""
        self.checks += 1
        marks = self._marks[node]
        if marks.leader_term == term:
            return
        other = self.leaders.get(term)
        if other is not None and other != node:
            self._fail("election-safety", f"n{node} and n{other} are both leaders of term {term}")
        self.leaders[term] = node
        marks.leader_term = term
        log = self._logs[node]
        snap = log.snapshot_index()
        term_at = log.term_at
        committed = self.committed
        committed_in = self.committed_in
        for index in range(snap + 1, self.max_committed + 1):
            want = committed.get(index)
            if want is not None and committed_in[index] < term and term_at(index) != want:
                self._fail("leader-completeness", f"n{node} leads term {term} without the committed entry "
                           f"{index}@t{want} (its log has term {term_at(index)} there)")

    def on_vote(self, node: int, term: int, candidate: int) -> None:
        """``node`` grants its vote in ``term`` to ``candidate`` (a VOTE_RESP leaves it)."""
        self.checks += 1
        granted = self.votes.setdefault((node, term), candidate)
        if granted != candidate:
            self._fail("vote-safety", f"n{node} voted for n{granted} and then for n{candidate} in term {term}")

    def on_leader_commit(self, node: int, commit: int, term: int, entry_term: int | None) -> None:
        """``node``, leader of ``term``, advanced its commit index to ``commit``, whose entry has ``entry_term``."""
        self.checks += 1
        if entry_term != term:
            self._fail("commit-rule", f"n{node}, leader of term {term}, committed up to {commit}, an entry of term "
                       f"{entry_term}: only an entry of its own term may be committed by counting replicas")

    def on_follower(self, node: int) -> None:
        """``node`` is no longer leader."""
        self._marks[node].leader_term = 0

    def on_commit(self, node: int, commit: int, term: int) -> None:
        """``node``, in ``term``, has commit index ``commit`` (its log holds the entries up to it, or a snapshot
        does)."""
        self.checks += 1
        marks = self._marks[node]
        old = marks.commit
        if commit < old:
            self._fail("monotonic-commit", f"n{node} commit index went back from {old} to {commit}")
        if commit == old:
            return
        marks.commit = commit
        log = self._logs[node]
        snap = log.snapshot_index()
        committed = self.committed
        for index in range(max(old, snap) + 1, commit + 1):
            entry_term = log.term_at(index)
            if entry_term is None:
                self._fail("state-machine-safety", f"n{node} commits index {index} that is not in its log")
            known = committed.get(index)
            if known is None:
                committed[index] = entry_term
                self.committed_in[index] = term
                self._new_committed(index, entry_term, term)
            elif known != entry_term:
                self._fail("state-machine-safety", f"n{node} commits {index}@t{entry_term} where "
                           f"{index}@t{known} was committed before")
        if commit > self.max_committed:
            self.max_committed = commit

    def _new_committed(self, index: int, entry_term: int, commit_term: int) -> None:
        for other, marks in sorted(self._marks.items()):
            if marks.leader_term > commit_term:
                log = self._logs[other]
                if index > log.snapshot_index() and log.term_at(index) != entry_term:
                    self._fail("leader-completeness", f"{index}@t{entry_term} got committed in term "
                               f"{commit_term} but n{other}, leader of term {marks.leader_term}, has term "
                               f"{log.term_at(index)} there")

    def on_apply(self, node: int, index: int, term: int) -> None:
        """``node`` applied the entry (index, term) to its state machine."""
        self.checks += 1
        marks = self._marks[node]
        if index != marks.applied + 1:
            kind = "monotonic-applied" if index <= marks.applied else "state-machine-safety"
            self._fail(kind, f"n{node} applied index {index} right after {marks.applied}")
        known = self.committed.get(index)
        if known is None:
            self._fail("state-machine-safety", f"n{node} applied {index}@t{term} before anyone committed it")
        if known != term:
            self._fail("state-machine-safety", f"n{node} applied {index}@t{term}, the committed entry is "
                       f"{index}@t{known}")
        marks.applied = index

    def on_snapshot(self, node: int, index: int, term: int, data: bytes, *, restore: bool) -> None:
        """``node`` took (``restore`` False) or installed / restarted from (``restore`` True) a snapshot of the
        state machine at (index, term)."""
        self.checks += 1
        marks = self._marks[node]
        known = self.committed.get(index)
        if known is not None and known != term:
            self._fail("state-machine-safety", f"n{node} snapshot at {index}@t{term}, committed is {index}@t{known}")
        if known is None and index > 0:
            if index <= self.max_committed:
                self._fail("state-machine-safety", f"n{node} snapshot at {index}@t{term}, an index that "
                           "is below the commit point but missing from the committed log")
            self.committed[index] = term
            self.committed_in[index] = _UNKNOWN_TERM
            self.max_committed = index
        seen = self._snapshots.get(index)
        if seen is None:
            self._snapshots[index] = (term, data)
        elif seen != (term, data):
            self._fail("state-machine-safety", f"n{node} snapshot at index {index} differs from another "
                       "snapshot at the same index")
        if restore:
            if index < marks.applied:
                self._fail("monotonic-applied", f"n{node} restored a snapshot at {index} below applied "
                           f"{marks.applied}")
            marks.applied = index
            marks.commit = max(marks.commit, index)
        elif index > marks.applied:
            self._fail("state-machine-safety", f"n{node} took a snapshot at {index} beyond applied {marks.applied}")

    def on_ack(self, node: int, index: int, term: int) -> None:
        """A client saw the write at (index, term) succeed (``node`` answered it)."""
        self.checks += 1
        if self.committed.get(index) != term:
            self._fail("acknowledged-write-lost", f"n{node} acknowledged {index}@t{term}, which is not committed")
        self.acknowledged.append((index, term))

    def check_acknowledged_in(self, node: int, upto: int | None = None) -> None:
        """Every acknowledged write (up to index ``upto``, all when None) is in ``node``'s log or under its
        snapshot (the end-of-run check: all of them must be in the leader's log)."""
        log = self._logs[node]
        snap = log.snapshot_index()
        for index, term in self.acknowledged:
            if upto is not None and index > upto:
                continue
            if index > snap and log.term_at(index) != term:
                self._fail("acknowledged-write-lost", f"the acknowledged write {index}@t{term} is missing "
                           f"from n{node}'s log (term there: {log.term_at(index)})")
