"""The HTTP/JSON client API (aiohttp), documented in docs/openapi.yaml; error codes in raftkv/api.py.

Every error answer is JSON `{"error": CODE, "message": TEXT, ...}` with the status of the table in raftkv/api.py,
including unknown paths (404 not-found), bad methods (405) and oversized bodies (413). A request that fails
validation never reaches the log. Followers redirect (307) what they cannot serve; see raftkv/api.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from raftkv.api import ERRORS, MAX_BODY_BYTES, MAX_KEY_BYTES, MAX_TIMEOUT_S, MAX_VALUE_BYTES, MAX_VERSION
from raftkv.kv import MAX_CLIENT_ID_BYTES, ClientSession, CommandError, Op, Outcome

from .debug import StateView
from .http_server import connection_cap, make_server, raise_fd_limit
from .node import MaybeError, Node, NodeError, NotLeaderError, UnavailableError

_JSON = "application/json"


def _resp(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type=_JSON, headers=headers)


def _err(code: str, message: str, **extra: Any) -> web.Response:
    return _resp(ERRORS[code].http_status, {"error": code, "message": message, **extra})


def _code(e: NodeError) -> str:
    """The error code of the table in raftkv/api.py that a node error is answered with."""
    if isinstance(e, NotLeaderError):
        return "not-leader"
    return "maybe" if isinstance(e, MaybeError) else "unavailable"


class _Bad(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _key(request: web.BaseRequest) -> str:
    """The key: the raw path after "/kv/", percent-decoded to bytes and read as strict UTF-8 (so "%ff" is refused
    instead of being kept as the three characters "%ff", which "%25ff" also names; a key may hold "/")."""
    raw = unquote_to_bytes(request.raw_path.partition("?")[0][4:])
    try:
        key = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Bad("bad-request", f"key is not valid UTF-8 once percent-decoded (byte {e.start + 1})") from None
    n = len(raw)
    if n > MAX_KEY_BYTES:
        raise _Bad("too-large", f"key is {n} bytes, over the limit of {MAX_KEY_BYTES}")
    if not key:
        raise _Bad("bad-request", "empty key")
    return key


def _int_param(request: web.BaseRequest, name: str, default: int | None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        v = int(raw)
    except ValueError:
        raise _Bad("bad-request", f"query parameter {name} must be an integer, got {raw!r}") from None
    if not 0 <= v <= MAX_VERSION:
        raise _Bad("bad-request", f"query parameter {name} must be in 0..{MAX_VERSION}")
    return v


def _session(client_id: object, seq: object, min_seq: object, where: str) -> ClientSession | None:
    """The write's client session (docs/server.md "Exactly-once writes") from its three fields as given in
    `where` ("body" or "query"): all absent = none; `client_id` and `seq` go together; `min_seq` defaults to 1."""
    if client_id is None and seq is None and min_seq is None:
        return None
    if client_id is None or seq is None:
        raise _Bad("bad-request", f"{where}: client_id and seq go together (a session write needs both)")
    if type(client_id) is not str or not client_id:
        raise _Bad("bad-request", f"{where}: client_id must be a non-empty string")
    if len(client_id.encode("utf-8", "surrogatepass")) > MAX_CLIENT_ID_BYTES:
        raise _Bad("bad-request", f"{where}: client_id is over {MAX_CLIENT_ID_BYTES} bytes")
    if type(seq) is not int or not 1 <= seq <= MAX_VERSION:
        raise _Bad("bad-request", f"{where}: seq must be an integer in 1..{MAX_VERSION}, got {seq!r}")
    min_seq = 1 if min_seq is None else min_seq
    if type(min_seq) is not int or not 1 <= min_seq <= seq:
        raise _Bad("bad-request", f"{where}: min_seq must be an integer in 1..seq ({seq}), got {min_seq!r}")
    try:
        return ClientSession(client_id=client_id, seq=seq, min_seq=min_seq)
    except CommandError as e:  # e.g. a client_id that is not valid UTF-8
        raise _Bad("bad-request", f"{where}: {e}") from None


_SESSION_FIELDS = {"client_id", "seq", "min_seq"}


class Api:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.m = node.metrics
        self.default_timeout = node.cfg.request_timeout_s
        self.body_timeout = node.cfg.client_body_timeout_s
        self._kv_methods = {"GET": self.get, "PUT": self.put, "DELETE": self.delete}
        self._plain = {"/status": self.status, "/healthz": self.healthz, "/metrics": self.metrics,
                       "/debug/state": self.debug_state}
        self._state_view = StateView(node)
        self._latency = {op: self.m.request_latency.labels(op=op) for op in ("get", "put", "delete")}
        self._counters: dict[tuple[str, str], Any] = {}

    def _count(self, op: str, outcome: str) -> None:
        c = self._counters.get((op, outcome))
        if c is None:
            c = self._counters[(op, outcome)] = self.m.requests.labels(op=op, outcome=outcome)
        c.inc()

    def server(self) -> web.Server:
        """aiohttp's low-level server with our own dispatch: the Application/router/middleware layers cost about
        a fifth of a request's CPU on the leader, and four routes need no router."""
        loop = asyncio.get_running_loop()

        def factory(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
            return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=MAX_BODY_BYTES)

        cfg = self.node.cfg
        cap = connection_cap(cfg.max_client_connections, raise_fd_limit())
        return make_server(self.dispatch, factory, header_timeout=cfg.client_header_timeout_s, max_connections=cap,
                           log=self.node.log, on_refused=self.m.client_refused.inc)

    async def dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        path, method = request.path, request.method
        try:
            if path.startswith("/kv/"):
                handler = self._kv_methods.get(method)
                if handler is None:
                    return _err("method-not-allowed", f"{method} is not allowed on /kv/{{key}}")
                return await handler(request)
            handler = self._plain.get(path)
            if handler is None:
                return _err("not-found", f"no such path: {path}")
            if method != "GET":
                return _err("method-not-allowed", f"{method} is not allowed on {path}")
            return await handler(request)
        except _Bad as e:
            return _err(e.code, str(e))
        except web.HTTPRequestEntityTooLarge as e:
            return _err("too-large", e.text or "request body too large")

    def _timeout(self, request: web.BaseRequest) -> float:
        ms = _int_param(request, "timeout_ms", None)
        t = self.default_timeout if ms is None else ms / 1000
        return max(0.001, min(t, MAX_TIMEOUT_S))

    def _redirect(self, request: web.BaseRequest, e: NotLeaderError) -> web.Response:
        loc = f"{e.leader_url}{request.path_qs}"
        return _resp(307, {"error": "not-leader", "message": str(e), "leader": e.leader,
                           "leader_url": e.leader_url}, headers={"Location": loc})

    def _node_error(self, request: web.BaseRequest, e: NodeError) -> web.Response:
        if isinstance(e, NotLeaderError):
            return self._redirect(request, e)
        if isinstance(e, MaybeError):
            return _err("maybe", str(e), leader_url=self.node.leader_url)
        assert isinstance(e, UnavailableError)
        return _err("unavailable", str(e), leader_url=self.node.leader_url)

    async def get(self, request: web.BaseRequest) -> web.Response:
        t0 = time.perf_counter()
        key = _key(request)
        consistency = request.query.get("consistency", "linearizable")
        timeout = self._timeout(request)
        try:
            if consistency == "stale":
                found = self.node.read_stale(key)
            elif consistency == "linearizable":
                found = await self.node.read(key, timeout)
            elif consistency == "lease" and self.node.cfg.lease:
                found = await self.node.read(key, timeout, lease=True)
            elif consistency == "lease":  # a request this node never serves: the client's to change (4xx, not 503)
                raise _Bad("bad-request", "lease reads are disabled on this node (start it with --lease)")
            else:
                raise _Bad("bad-request", f"consistency must be linearizable, lease or stale, not {consistency!r}")
        except NodeError as e:
            self._count("get", _code(e))
            return self._node_error(request, e)
        self._latency["get"].observe(time.perf_counter() - t0)
        # A follower that served a leader-confirmed read names the leader, so that a client sends its next reads
        # there (one ReadIndex round at the leader confirms a whole batch; a follower adds a forwarded round).
        hint = ({"leader_url": self.node.leader_url}
                if consistency != "stale" and not self.node.is_leader and self.node.leader_url else {})
        if found is None:
            self._count("get", "no-key")
            return _err("no-key", f"no key {key!r}", **hint)
        self._count("get", "ok")
        return _resp(200, {"value": found[0], "version": found[1], **hint})

    async def put(self, request: web.BaseRequest) -> web.Response:
        key = _key(request)
        try:
            async with asyncio.timeout(self.body_timeout):
                raw = await request.read()
        except TimeoutError:
            request.protocol.force_close()  # the rest of a late body must not be read as the next request
            raise _Bad("bad-request", f"the body did not arrive within {self.body_timeout:g} s") from None
        try:
            body = json.loads(raw)
        except ValueError as e:
            raise _Bad("bad-request", f"body is not JSON: {e}") from None
        except RecursionError:
            raise _Bad("bad-request", "body is not JSON this node reads: nested too deeply") from None
        if not isinstance(body, dict) or set(body) - {"value", "version"} - _SESSION_FIELDS:
            raise _Bad("bad-request", 'body must be {"value": STRING, "version": INT} with, for an exactly-once '
                                      'write, "client_id": STRING, "seq": INT and optionally "min_seq": INT')
        value, version = body.get("value"), body.get("version")
        if type(value) is not str:
            raise _Bad("bad-request", "value must be a string")
        if type(version) is not int or not 0 <= version <= MAX_VERSION:
            raise _Bad("bad-request", f"version must be an integer in 0..{MAX_VERSION} (0 = create)")
        try:
            n = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise _Bad("bad-request", "value is not valid UTF-8 (a lone surrogate escape?)") from None
        if n > MAX_VALUE_BYTES:
            raise _Bad("too-large", f"value is {n} bytes, over the limit of {MAX_VALUE_BYTES}")
        session = _session(body.get("client_id"), body.get("seq"), body.get("min_seq"), "body")
        return await self._write(request, "put", Op.PUT, key, value, version, session)

    async def delete(self, request: web.BaseRequest) -> web.Response:
        key = _key(request)
        version = _int_param(request, "version", None)
        if version is None or version < 1:
            raise _Bad("bad-request", "query parameter version (>= 1) is required")
        session = _session(request.query.get("client_id"), _int_param(request, "seq", None),
                           _int_param(request, "min_seq", None), "query")
        return await self._write(request, "delete", Op.DELETE, key, None, version, session)

    async def _write(self, request: web.BaseRequest, op_name: str, op: Op, key: str, value: str | None,
                     version: int, session: ClientSession | None) -> web.Response:
        t0 = time.perf_counter()
        try:
            res = await self.node.write(op, key, value, version, self._timeout(request), session)
        except CommandError as e:  # the state machine's own validation: nothing was proposed
            raise _Bad("bad-request", str(e)) from None
        except NodeError as e:
            self._count(op_name, _code(e))
            return self._node_error(request, e)
        self._latency[op_name].observe(time.perf_counter() - t0)
        self._count(op_name, res.outcome.value)
        if res.replayed:
            self.m.replayed_writes.inc()
        if res.outcome is Outcome.OK:
            return _resp(200, {"version": res.version if op is Op.PUT else 0, **({"replayed": True}
                                                                                 if res.replayed else {})})
        if res.outcome is Outcome.VERSION_MISMATCH:
            return _err("version-mismatch", f"key {key!r} is at version {res.version}, not {version}",
                        current_version=res.version)
        if res.outcome is Outcome.NO_KEY:
            return _err("no-key", f"no key {key!r}")
        if res.outcome is Outcome.SESSION_EXPIRED:
            return _err("session-expired", f"not applied: {res.detail}; start a new session (an earlier attempt "
                                           "of this write may have applied)")
        return _err("bad-request", f"the state machine refused the command: {res.detail}")

    async def status(self, request: web.BaseRequest) -> web.Response:
        return _resp(200, self.node.status())

    async def debug_state(self, request: web.BaseRequest) -> web.Response:
        """The grey-box oracles' view of this node (raftkv.server.debug); ``?digest=0`` leaves the digest out."""
        flag = request.query.get("digest", "1")
        if flag not in ("0", "1"):
            return _err("bad-request", f"query parameter digest must be 0 or 1, got {flag!r}")
        return _resp(200, await self._state_view.state(with_digest=flag == "1"))

    async def healthz(self, request: web.BaseRequest) -> web.Response:
        if self.node.stopping:
            return _err("unavailable", "shutting down")
        return _resp(200, {"ok": True, "id": self.node.cfg.id})

    async def metrics(self, request: web.BaseRequest) -> web.Response:
        return web.Response(body=self.node.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
