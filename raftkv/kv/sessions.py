"""`SessionTable`: the replicated deduplication table of client sessions (Raft dissertation, section 6.3). Pure.

Why: a client retries a write whose answer it did not get. An expected version alone cannot make that safe,
because versions repeat across a delete (a re-created key starts at version 1 again), so the retry may match
again and apply a second time. The table remembers, per client session, the outcome of each write it applied,
and a retry of the same (client_id, seq) gets that outcome back instead of applying again.

Contract (identical on every replica: everything is decided by the log alone, never by a clock):
- `check(index, session)` before applying a session write at log `index`: a remembered answer (a *hit*: the
  caller returns it, applies nothing), SESSION_EXPIRED (the caller applies nothing), or None (apply it, then
  `record` its outcome).
- A session unknown to the table is accepted as new only while its `min_seq` is 1 (the client has no answer
  yet). An unknown session with `min_seq > 1` was evicted: SESSION_EXPIRED. A seq below the session's
  `min_seq` whose answer is no longer kept: SESSION_EXPIRED.
- Per session at most MAX_RESULTS_PER_SESSION answers are kept: answers below the client's `min_seq` are dropped
  first; beyond the cap the lowest seq is dropped and `min_seq` raised past it (its retry then gets
  SESSION_EXPIRED, never a second application). A client that keeps seq - min_seq below the cap (the API's
  SESSION_WINDOW; raftkv.client does) never has the answer of a write it still waits for dropped.
- At most MAX_SESSIONS sessions: the least recently used one is evicted, "used" meaning the log index of the
  session's last write (hit or not). Log indexes are unique, so the order is total and the same everywhere.
- Known hole, documented in docs/server.md: a brand-new session (every `min_seq` still 1) evicted while one of
  its first writes is being retried cannot be told from a new session, so that retry may apply again. It takes
  MAX_SESSIONS other sessions writing within one retry window.

Only outcomes and versions are kept (never values): about 100 bytes per answer, so the table's worst case is a
few tens of MB and its usual size a few hundred KB.
"""

from __future__ import annotations

from typing import Any

from raftkv.api import SESSION_WINDOW

from .command import MAX_CLIENT_ID_BYTES, ClientSession, Outcome, Result

__all__ = ["MAX_RESULTS_PER_SESSION", "MAX_SESSIONS", "SessionTable", "SessionTableError"]

MAX_SESSIONS = 4096
MAX_RESULTS_PER_SESSION = SESSION_WINDOW  # a client keeps seq - min_seq below it, so none in flight is dropped
_OUTCOMES = {o.value: o for o in Outcome}


class SessionTableError(ValueError):
    """Encoded session-table data that is not valid (restore leaves nothing changed)."""


class _Session:
    __slots__ = ("last_index", "min_seq", "results")

    def __init__(self, last_index: int, min_seq: int, results: dict[int, tuple[Outcome, int]]) -> None:
        self.last_index = last_index
        self.min_seq = min_seq
        self.results = results


class SessionTable:
    """See the module docstring. Sessions are kept in a dict ordered from least to most recently used."""

    __slots__ = ("_sessions",)

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def check(self, index: int, rid: str, session: ClientSession) -> Result | None:
        """The answer for a session write at log `index` that must NOT be applied, or None to apply it. Either
        way the session becomes the most recently used (a hit or a refusal is a use too)."""
        s = self._sessions.pop(session.client_id, None)
        if s is None:
            if session.min_seq > 1:
                return Result(request_id=rid, outcome=Outcome.SESSION_EXPIRED,
                              detail=f"session {session.client_id!r} is not in the session table (evicted)")
            return None
        s.last_index = index
        self._sessions[session.client_id] = s
        hit = s.results.get(session.seq)
        if hit is not None:
            return Result(request_id=rid, outcome=hit[0], version=hit[1], replayed=True)
        if session.seq < s.min_seq:
            return Result(request_id=rid, outcome=Outcome.SESSION_EXPIRED,
                          detail=f"the answer to seq {session.seq} of session {session.client_id!r} is forgotten")
        return None

    def record(self, index: int, session: ClientSession, outcome: Outcome, version: int) -> None:
        """Remember the outcome of a session write just applied at log `index` (after `check` said None)."""
        s = self._sessions.pop(session.client_id, None)
        if s is None:
            s = _Session(index, 1, {})
        s.last_index = index
        s.results[session.seq] = (outcome, version)
        if session.min_seq > s.min_seq:
            s.min_seq = session.min_seq
            for seq in [q for q in s.results if q < s.min_seq]:
                del s.results[seq]
        while len(s.results) > MAX_RESULTS_PER_SESSION:
            lowest = min(s.results)
            del s.results[lowest]
            s.min_seq = max(s.min_seq, lowest + 1)
        self._sessions[session.client_id] = s
        while len(self._sessions) > MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]  # the least recently used

    def encode(self) -> list[Any]:
        """Plain data for a snapshot: [[client_id, last_index, min_seq, [[seq, outcome, version], ...]], ...] from
        least to most recently used, answers by seq: equal tables give equal data."""
        return [[cid, s.last_index, s.min_seq, [[q, o.value, v] for q, (o, v) in sorted(s.results.items())]]
                for cid, s in self._sessions.items()]

    @classmethod
    def decode(cls, data: object) -> SessionTable:
        """The inverse of `encode`; SessionTableError for anything else."""
        if type(data) is not list:
            raise SessionTableError("sessions must be an array")
        table = cls()
        last = 0
        for n, item in enumerate(data):
            if type(item) is not list or len(item) != 4:
                raise SessionTableError(f"session {n} is not [client_id, last_index, min_seq, results]")
            cid, last_index, min_seq, results = item
            if type(cid) is not str or not cid or len(cid.encode("utf-8", "surrogatepass")) > MAX_CLIENT_ID_BYTES:
                raise SessionTableError(f"session {n}: bad client id")
            if cid in table._sessions:
                raise SessionTableError(f"session {n}: duplicate client id {cid!r}")
            if type(last_index) is not int or last_index <= last:
                raise SessionTableError(f"session {n}: last_index {last_index!r} not above the previous {last}")
            if type(min_seq) is not int or min_seq < 1 or type(results) is not list:
                raise SessionTableError(f"session {n}: bad min_seq or results")
            table._sessions[cid] = _Session(last_index, min_seq, _decode_results(n, min_seq, results))
            last = last_index
        return table


def _decode_results(n: int, min_seq: int, results: list[Any]) -> dict[int, tuple[Outcome, int]]:
    out: dict[int, tuple[Outcome, int]] = {}
    for entry in results:
        if type(entry) is not list or len(entry) != 3:
            raise SessionTableError(f"session {n}: an answer is not [seq, outcome, version]")
        seq, outcome, version = entry
        if type(seq) is not int or seq < min_seq or seq in out:
            raise SessionTableError(f"session {n}: bad or repeated seq {seq!r}")
        if outcome not in _OUTCOMES or type(version) is not int or version < 0:
            raise SessionTableError(f"session {n}: bad answer {entry!r}")
        out[seq] = (_OUTCOMES[outcome], version)
    return out
