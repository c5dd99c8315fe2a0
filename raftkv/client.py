"""The raftkv client library: async `KVClient` and blocking `SyncKVClient` over the HTTP/JSON API.

    async with KVClient(["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"], timeout=5.0) as kv:
        r = await kv.put("k", "v1", version=0)         # PutResult(version=1): create (0 = must not exist)
        g = await kv.get("k")                          # GetResult(value="v1", version=1); linearizable
        g = await kv.get("k", consistency="stale", node="127.0.0.1:7002")
        await kv.delete("k", version=1)                # PutResult(version=0)
        g = await kv.get("k")                          # GetResult(value=None, version=0): absent (found=False)

Results: `GetResult(value, version, node)` (`value is None and version == 0` = absent, `found` says which),
`PutResult(version, node)` for put and delete (delete's version is 0).

Errors (all subclasses of `RaftKVError`, with `.code`, `.definite`, `.node`, `.message`):
- `Definite` (the operation certainly did not take effect): `VersionMismatch` (`.current_version`),
  `NoKey`, `Unavailable` (until the deadline, no node took it: refused connections, "unavailable" answers;
  a write was never proposed), `BadRequest` (bad key/value/args, too large).
- `Indeterminate` (it may have taken effect, now or later): `Maybe` (the server could not confirm the commit
  before its deadline, or an attempt had an unknown outcome and a retry was refused: the first attempt may have
  applied), `Timeout` (the call's deadline passed while waiting for an answer).
  For reads an indeterminate error only means "no answer": reads never change state.

Behaviour
- Each call has a deadline (`timeout=` per call, else the client's default); the remaining time (or at most
  `attempt_timeout`, when set, so that one call can try again after a leader failure) is sent to the server as
  its deadline, so it answers "maybe" before the client gives up.
- Writes and linearizable/lease reads go to the leader: a follower's 307 names it (and a follower that served a
  read names it in its answer), and it is remembered for later calls. Stale reads are spread round-robin. `node=` sends a call to that node first (a follower serves
  linearizable reads itself by ReadIndex through the leader, see raftkv/api.py; writes are redirected).
- Retries connection errors, "unavailable" and leader changes on the next node until the deadline, with a short
  capped back-off.
- Exactly-once writes (`sessions=True`, the default; docs/server.md "Exactly-once writes"): the client opens a
  session (a random 128-bit `client_id`) and numbers its writes (`seq`); every attempt of one put/delete carries
  the SAME (client_id, seq), so the state machine applies it at most once and answers a retry with the first
  application's answer (`PutResult.replayed`). Every answer is then authoritative: a version-mismatch after a lost
  attempt is the write's real outcome. `min_seq` tells the servers which answers the client no longer needs; with
  more than `SESSION_WINDOW` (64) writes in flight the client opens another session.
  A `session-expired` answer (the servers forgot the session: evicted) ends the call with `SessionExpired`, or
  `Maybe` when an earlier attempt had an unknown outcome; the client then starts a new session.
- Without a session (`sessions=False`, the behaviour before issue 15) a retried put/delete keeps only the same
  expected version. That is NOT safe across a delete: versions repeat (a re-created key starts at 1 again), so a
  retry can apply a second time. Such a client is at-most-once only when it does not retry. If an earlier
  attempt's outcome was unknown and a retry is refused (version-mismatch / no-key), the call raises `Maybe`.
- `attempts=` (a list) on get/put/delete receives one `Attempt(node, answer)` per request sent, as it happens:
  "ok", the error code the node gave, or the transport outcome ("unreachable", "connection-lost", "timeout").
- HTTP/1.1 keep-alive connections are pooled per node (bounded; idle connections beyond `pool_size` are closed).
  The HTTP client is a small purpose-built one (the server always sends Content-Length).

`SyncKVClient` has the same methods, blocking, on a private event loop (do not use it inside a running loop).

`NodeClient(node)` is the opposite of `KVClient`, for testing: ONE request to ONE node per call, and that node's
answer as it came (`Reply`): no retry, no redirect followed, no leader remembered, no ambiguity hidden. Whether a
refusal is certain (nothing happened) is derived from `raftkv.api.ERRORS`, the one table.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from .api import DEFAULT_TIMEOUT_S, ERRORS, SESSION_WINDOW

__all__ = [
    "Attempt", "BadRequest", "Definite", "GetResult", "Indeterminate", "KVClient", "Maybe", "NoKey", "NodeClient",
    "PutResult", "RaftKVError", "Reply", "SessionExpired", "SyncKVClient", "Timeout", "Unavailable",
    "VersionMismatch",
]


class RaftKVError(Exception):
    code = "error"
    definite = True

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.node = node


class Definite(RaftKVError):
    """The operation certainly did not take effect."""


class Indeterminate(RaftKVError):
    """The operation may have taken effect (or may still)."""

    definite = False


class VersionMismatch(Definite):
    code = "version-mismatch"

    def __init__(self, message: str, *, node: str | None = None, current_version: int | None = None) -> None:
        super().__init__(message, node=node)
        self.current_version = current_version


class NoKey(Definite):
    code = "no-key"


class Unavailable(Definite):
    code = "unavailable"


class BadRequest(Definite):
    code = "bad-request"


class SessionExpired(Definite):
    """The servers no longer remember this client's session: this attempt was not applied (and no earlier one had
    an unknown outcome, else the call raises Maybe). The client has started a new session for later calls."""

    code = "session-expired"


class Maybe(Indeterminate):
    code = "maybe"


class Timeout(Indeterminate):
    code = "timeout"


@dataclass(frozen=True, slots=True)
class GetResult:
    value: str | None
    version: int
    node: str | None = None

    @property
    def found(self) -> bool:
        return self.version > 0


@dataclass(frozen=True, slots=True)
class PutResult:
    """`replayed`: the servers answered from the session table (an earlier attempt of this call had applied)."""

    version: int
    node: str | None = None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request a call sent: the node and its answer ("ok", an error code, or a transport outcome)."""

    node: str
    answer: str


class _ConnError(Exception):
    """Transport failure. `sent` = the request may have reached the server."""

    def __init__(self, msg: str, sent: bool) -> None:
        super().__init__(msg)
        self.sent = sent


def _norm(addr: str) -> str:
    """'host:port' or 'http://host:port[/]' -> 'host:port'."""
    if "://" in addr:
        parts = urlsplit(addr)
        return parts.netloc
    return addr.rstrip("/")


class _Pool:
    """Keep-alive HTTP/1.1 connections to one node."""

    def __init__(self, addr: str, size: int, connect_timeout: float) -> None:
        self.addr = addr
        host, _, port = addr.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.size = size
        self.connect_timeout = connect_timeout
        self.idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()

    async def request(self, method: str, path: str, body: bytes | None) -> tuple[int, dict[str, str], bytes]:
        conn = None
        while self.idle:
            reader, writer = self.idle.pop()
            # A connection the server closed while idle (e.g. the node restarted) is discarded before use:
            # a request on it would fail after sending and so be counted as possibly applied.
            if reader.at_eof() or reader.exception() is not None or writer.transport.is_closing():
                writer.close()
                continue
            conn = reader, writer
            break
        if conn is not None:
            reader, writer = conn
        else:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    reader, writer = await asyncio.open_connection(self.host, self.port)
            except (OSError, TimeoutError) as e:
                raise _ConnError(f"connect to {self.addr}: {e!r}", sent=False) from None
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.addr}\r\n"
                f"Content-Length: {len(body) if body else 0}\r\n")
        if body:
            head += "Content-Type: application/json\r\n"
        reuse = False
        try:
            writer.write(head.encode() + b"\r\n" + (body or b""))
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if line:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
            if "content-length" not in headers:
                raise _ConnError(f"{self.addr}: response without Content-Length", sent=True)
            data = await reader.readexactly(int(headers["content-length"]))
            reuse = headers.get("connection", "").lower() != "close"
            return status, headers, data
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as e:
            raise _ConnError(f"{self.addr}: {e!r}", sent=True) from None
        finally:
            if reuse and len(self.idle) < self.size:
                self.idle.append((reader, writer))
            else:
                writer.close()

    def close(self) -> None:
        while self.idle:
            self.idle.pop()[1].close()


class KVClient:
    """See the module docstring. Not thread-safe; one instance per event loop."""

    def __init__(self, cluster: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT_S, pool_size: int = 64,
                 connect_timeout: float = 1.0, max_backoff: float = 0.2,
                 attempt_timeout: float | None = None, sessions: bool = True) -> None:
        if not cluster:
            raise ValueError("cluster must name at least one node address")
        self.cluster = [_norm(a) for a in cluster]
        self.timeout = timeout
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.max_backoff = max_backoff
        self.attempt_timeout = attempt_timeout
        self.leader: str | None = None
        self._rr = 0
        self._pools: dict[str, _Pool] = {}
        self.sessions = sessions
        self._new_session()

    def _new_session(self) -> None:
        """A fresh client id (128 random bits: unique without asking anyone) and its write numbering."""
        self.client_id = secrets.token_hex(16)
        self._seq = 0
        self._outstanding: set[int] = set()  # seqs of writes still running: min_seq stays at or below them
        # Until a write of this session was answered by the state machine, the servers may not know the session,
        # and they take an unknown session with min_seq > 1 for an evicted one: min_seq stays 1 until then.
        self._known_to_servers = False

    def _session_fields(self) -> dict[str, Any]:
        """The next write's (client_id, seq, min_seq), registered as outstanding until its call ends
        (`_write`). More than SESSION_WINDOW writes in flight: the write starts a new session."""
        seq = self._seq + 1
        min_seq = min(self._outstanding, default=seq) if self._known_to_servers else 1
        if seq - min_seq >= SESSION_WINDOW:  # the servers keep SESSION_WINDOW answers a session: use another
            self._new_session()
            seq = min_seq = 1
        self._seq = seq
        self._outstanding.add(seq)
        return {"client_id": self.client_id, "seq": seq, "min_seq": min_seq}

    async def __aenter__(self) -> KVClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for p in self._pools.values():
            p.close()
        self._pools.clear()

    def _pool(self, addr: str) -> _Pool:
        p = self._pools.get(addr)
        if p is None:
            p = self._pools[addr] = _Pool(addr, self.pool_size, self.connect_timeout)
        return p

    def _next_node(self, avoid: str | None) -> str:
        for _ in range(len(self.cluster)):
            self._rr = (self._rr + 1) % len(self.cluster)
            if self.cluster[self._rr] != avoid or len(self.cluster) == 1:
                return self.cluster[self._rr]
        return self.cluster[0]

    # -- public API -------------------------------------------------------------------------------------------

    async def get(self, key: str, consistency: str = "linearizable", node: str | None = None,
                  timeout: float | None = None, *, attempts: list[Attempt] | None = None) -> GetResult:
        if consistency not in ("linearizable", "stale", "lease"):
            raise ValueError(f"consistency must be linearizable, stale or lease, not {consistency!r}")
        # Linearizable and lease reads go to the leader: one heartbeat round there confirms a whole batch of reads,
        # which costs less CPU in total than follower reads (each of those adds a forwarded round); stale reads
        # are spread round-robin. `node=` sends a read to a given node (a follower serves it by ReadIndex).
        status, body, addr = await self._call("GET", key, f"?consistency={consistency}", None,
                                              node, timeout, write=False, follow=consistency != "stale",
                                              attempts=attempts)
        if status == 200:
            return GetResult(body["value"], body["version"], addr)
        if body.get("error") == "no-key":
            return GetResult(None, 0, addr)
        raise self._error(status, body, addr, ambiguous=False)

    async def put(self, key: str, value: str, version: int, *, node: str | None = None,
                  timeout: float | None = None, attempts: list[Attempt] | None = None) -> PutResult:
        """Set key to value if its current version is `version` (0: the key must not exist)."""
        session = self._session_fields() if self.sessions else {}
        payload = json.dumps({"value": value, "version": version, **session}).encode()
        return await self._write("PUT", key, "", payload, node, timeout, session, attempts)

    async def delete(self, key: str, version: int, *, node: str | None = None,
                     timeout: float | None = None, attempts: list[Attempt] | None = None) -> PutResult:
        """Delete key if its current version is `version` (> 0)."""
        session = self._session_fields() if self.sessions else {}
        query = f"?version={version}" + "".join(f"&{k}={quote(str(v), safe='')}" for k, v in session.items())
        return await self._write("DELETE", key, query, None, node, timeout, session, attempts)

    async def status(self, node: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        addr = _norm(node) if node else self.cluster[0]
        try:
            async with asyncio.timeout(timeout or self.timeout):
                status, _, data = await self._pool(addr).request("GET", "/status", None)
        except _ConnError as e:
            raise Unavailable(str(e), node=addr) from None
        except TimeoutError:
            raise Timeout(f"status of {addr}: no answer", node=addr) from None
        if status != 200:
            raise Unavailable(f"status of {addr}: HTTP {status}: {data[:200].decode(errors='replace')}", node=addr)
        try:
            return json.loads(data)
        except ValueError as e:
            raise Unavailable(f"status of {addr}: not JSON: {e}", node=addr) from None

    # -- machinery --------------------------------------------------------------------------------------------

    async def _write(self, method: str, key: str, query: str, payload: bytes | None, node: str | None,
                     timeout: float | None, session: dict[str, Any], attempts: list[Attempt] | None) -> PutResult:
        """One put/delete, every attempt with the same request (and so the same session identity, if any)."""
        try:
            status, body, addr = await self._call(method, key, query, payload, node, timeout, write=True,
                                                  follow=True, attempts=attempts)
        finally:
            if session and session["client_id"] == self.client_id:
                self._outstanding.discard(session["seq"])
        if session and session["client_id"] == self.client_id and (
                status == 200 or body.get("error") in ("version-mismatch", "no-key")):
            self._known_to_servers = True  # the state machine recorded this session
        if status == 200:
            return PutResult(body["version"], addr, body.get("replayed") is True)
        ambiguous = bool(body.get("_ambiguous"))
        if body.get("error") == "session-expired" and session.get("client_id") == self.client_id:
            self._new_session()
        # With a session every answer of the state machine is this write's own (a retry gets the first
        # application's answer), so a refusal is certain even after a lost attempt; without one it is not.
        raise self._error(status, body, addr, ambiguous=ambiguous, authoritative=bool(session))

    def _error(self, status: int, body: dict[str, Any], addr: str | None, ambiguous: bool,
               authoritative: bool = False) -> RaftKVError:
        code = body.get("error", f"http-{status}")
        msg = body.get("message", code)
        if ambiguous and code == "session-expired":
            return Maybe(f"an earlier attempt had an unknown outcome and the servers no longer remember the "
                         f"session: the write may have applied ({msg})", node=addr)
        if code == "session-expired":
            return SessionExpired(msg, node=addr)
        if ambiguous and not authoritative and code in ("version-mismatch", "no-key"):
            return Maybe(f"an earlier attempt had an unknown outcome and a retry got {code}: the write may have "
                         f"applied ({msg})", node=addr)
        if code == "version-mismatch":
            return VersionMismatch(msg, node=addr, current_version=body.get("current_version"))
        if code == "no-key":
            return NoKey(msg, node=addr)
        if code in ("bad-request", "too-large", "not-found", "method-not-allowed"):
            return BadRequest(f"{code}: {msg}", node=addr)
        if code == "maybe":
            return Maybe(msg, node=addr)
        return Unavailable(f"{code}: {msg}", node=addr)

    async def _call(self, method: str, key: str, query: str, payload: bytes | None, node: str | None,
                    timeout: float | None, *, write: bool, follow: bool, attempts: list[Attempt] | None = None
                    ) -> tuple[int, dict[str, Any], str | None]:
        """Send until a definite answer or the deadline. Returns (status, body, node); body['_ambiguous'] marks
        that an earlier attempt of this call may have reached a server without a definite answer. Each request
        sent is appended to `attempts` (when given) with its answer."""
        log = attempts.append if attempts is not None else _no_log
        total = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + total
        if node:
            target = _norm(node)
        elif follow and self.leader:
            target = self.leader
        else:
            target = self._next_node(None) if not follow else self.cluster[self._rr]
        path = "/kv/" + quote(key, safe="")
        ambiguous = False  # some attempt may have reached a server and we do not know what happened
        timed_out = False  # the deadline passed while waiting for an answer
        last_error = "no attempt made"
        backoff = 0.01
        redirects = 0
        for _attempt in range(10_000):  # bounded; the deadline ends it long before
            remaining = deadline - time.monotonic()
            if remaining <= 0.001:
                break
            server_wait = remaining - 0.02 if self.attempt_timeout is None else min(remaining - 0.02,
                                                                                  self.attempt_timeout)
            q = query + ("&" if query else "?") + f"timeout_ms={max(1, int(server_wait * 1000))}"
            try:
                async with asyncio.timeout(remaining):
                    status, headers, data = await self._pool(target).request(method, path + q, payload)
            except TimeoutError:
                ambiguous = ambiguous or write
                timed_out = True
                last_error = f"no answer from {target} before the deadline"
                log(Attempt(target, TIMEOUT))
                break
            except _ConnError as e:
                if e.sent:
                    ambiguous = ambiguous or write
                last_error = str(e)
                log(Attempt(target, CONNECTION_LOST if e.sent else UNREACHABLE))
                if target == self.leader:
                    self.leader = None
                target = self._next_node(target)
                await asyncio.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, self.max_backoff)
                continue
            try:
                body = json.loads(data) if data else {}
            except ValueError:
                body = {"error": f"http-{status}", "message": data[:200].decode(errors="replace")}
            if not isinstance(body, dict):
                body = {"error": f"http-{status}"}
            err = body.get("error")
            log(Attempt(target, "ok" if status == 200 else str(err or f"http-{status}")))
            if err != "not-leader":
                redirects = 0
            if status == 200 or err in ("version-mismatch", "no-key", "bad-request", "too-large", "not-found",
                                        "method-not-allowed", "session-expired"):
                if follow and not node and (status == 200 or err == "no-key"):
                    # The node that answered leads, unless it says who does (a follower that served a read).
                    hint = body.get("leader_url")
                    self.leader = _norm(hint) if isinstance(hint, str) and hint else target
                body["_ambiguous"] = ambiguous
                return status, body, target
            if err == "not-leader":
                hint = body.get("leader_url") or headers.get("location")
                last_error = f"{target} is not the leader"
                redirects += 1
                if hint and redirects <= 2:  # follow a fresh hint at once; a loop of hints backs off
                    self.leader = target = _norm(hint)
                    continue
                target = _norm(hint) if hint else self._next_node(target)
            elif err == "maybe":
                ambiguous = ambiguous or write
                last_error = body.get("message", "maybe")
                if target == self.leader:
                    self.leader = None
                target = self._next_node(target) if not body.get("leader_url") else _norm(body["leader_url"])
            else:  # unavailable, or anything unexpected: try elsewhere
                if err != "unavailable" and write:  # an unexplained answer (e.g. a 500): it may have applied
                    ambiguous = True
                last_error = f"{target}: {err or status}: {body.get('message', '')}"
                if target == self.leader:
                    self.leader = None
                target = _norm(body["leader_url"]) if body.get("leader_url") else self._next_node(target)
            await asyncio.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
            backoff = min(backoff * 2, self.max_backoff)
        if timed_out:  # for a write, `ambiguous` is then set too: it may have applied
            raise Timeout(f"no answer within {total:.3g}s ({last_error}); outcome unknown", node=target)
        if ambiguous:
            raise Maybe(f"outcome unknown after {total:.3g}s: {last_error}", node=target)
        raise Unavailable(f"not accepted by any node within {total:.3g}s: {last_error}", node=target)


def _no_log(attempt: Attempt) -> None:
    """Where attempts go when the caller does not collect them."""


# Transport outcomes of NodeClient and of Attempt (not in ERRORS: no answer came).
UNREACHABLE = "unreachable"  # the connection could not be made: the request was never sent (certain)
CONNECTION_LOST = "connection-lost"  # the connection failed after the request was written (uncertain)
TIMEOUT = "timeout"  # no answer before the deadline (uncertain)


@dataclass(frozen=True, slots=True)
class Reply:
    """One node's answer to one request, as it came.

    `status` is the HTTP status (None when no answer came); `code` is "ok" (200), an error code of
    raftkv.api.ERRORS, "http-<status>" for an answer outside that table, or a transport outcome: "unreachable"
    (never sent), "connection-lost" or "timeout" (sent, no answer). `definite` is True when the request
    certainly had no effect (`ok` answers too: they say what happened); False when it may have had one.
    `body` is the decoded JSON object ({} when none)."""

    node: str
    status: int | None
    code: str
    definite: bool
    body: dict[str, Any]
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.code == "ok"


def classify(status: int, body: dict[str, Any]) -> tuple[str, bool]:
    """(code, definite) of an HTTP answer, from raftkv.api.ERRORS: a code counts as definite only with the status
    the table gives it. Anything else (a 500, a body that is not the API's, a known code with another status) is
    an answer the API does not document: not definite."""
    if status == 200:
        return "ok", True
    code = body.get("error")
    kind = ERRORS.get(code) if isinstance(code, str) else None
    if kind is None or kind.http_status != status:
        return (code if isinstance(code, str) else f"http-{status}"), False
    return kind.code, kind.definite


class NodeClient:
    """One request to one node per call; see `Reply` and the module docstring. Not thread-safe.

    The deadline of a call (`timeout=`, else the client's) covers connecting, sending and the answer; the node
    is told a slightly shorter one (`timeout_ms`), so it answers `maybe` or `unavailable` itself before the
    client gives up. Connecting may take at most half the deadline, so a connection that cannot be made is known
    to be unsent (`unreachable`), never mistaken for a timeout after sending."""

    def __init__(self, node: str, *, timeout: float = DEFAULT_TIMEOUT_S, connect_timeout: float = 1.0,
                 pool_size: int = 4) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        self.node = _norm(node)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.pool_size = pool_size
        self._pool: _Pool | None = None

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def get(self, key: str, consistency: str = "linearizable", timeout: float | None = None) -> Reply:
        return await self._one("GET", key, f"?consistency={quote(consistency)}", None, timeout)

    async def put(self, key: str, value: str, version: int, timeout: float | None = None) -> Reply:
        payload = json.dumps({"value": value, "version": version}).encode()
        return await self._one("PUT", key, "", payload, timeout)

    async def delete(self, key: str, version: int, timeout: float | None = None) -> Reply:
        return await self._one("DELETE", key, f"?version={version}", None, timeout)

    async def _one(self, method: str, key: str, query: str, payload: bytes | None,
                   timeout: float | None) -> Reply:
        total = self.timeout if timeout is None else timeout
        if self._pool is None:
            self._pool = _Pool(self.node, self.pool_size, self.connect_timeout)
        self._pool.connect_timeout = min(self.connect_timeout, total / 2)  # read when it connects
        server_wait = total - min(0.2, total * 0.2)  # the node answers first, a tick late at most
        path = f"/kv/{quote(key, safe='')}{query}{'&' if query else '?'}timeout_ms={max(1, int(server_wait * 1000))}"
        try:
            async with asyncio.timeout(total):
                status, _, data = await self._pool.request(method, path, payload)
        except TimeoutError:  # connecting is bounded by half the deadline: this one was sent
            return Reply(self.node, None, TIMEOUT, False, {}, f"no answer within {total:.3g} s")
        except _ConnError as e:
            return Reply(self.node, None, CONNECTION_LOST if e.sent else UNREACHABLE, not e.sent, {}, str(e))
        try:
            body = json.loads(data) if data else {}
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        code, definite = classify(status, body)
        return Reply(self.node, status, code, definite, body, str(body.get("message", "")))


class SyncKVClient:
    """Blocking twin of KVClient (same arguments and methods) on a private event loop."""

    def __init__(self, cluster: Sequence[str], **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = KVClient(cluster, **kwargs)

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def get(self, key: str, consistency: str = "linearizable", node: str | None = None,
            timeout: float | None = None) -> GetResult:
        return self._run(self._client.get(key, consistency, node, timeout))

    def put(self, key: str, value: str, version: int, *, node: str | None = None,
            timeout: float | None = None) -> PutResult:
        return self._run(self._client.put(key, value, version, node=node, timeout=timeout))

    def delete(self, key: str, version: int, *, node: str | None = None,
               timeout: float | None = None) -> PutResult:
        return self._run(self._client.delete(key, version, node=node, timeout=timeout))

    def status(self, node: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        return self._run(self._client.status(node, timeout))

    def close(self) -> None:
        self._run(self._client.close())
        self._loop.close()

    def __enter__(self) -> SyncKVClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
