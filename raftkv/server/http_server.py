"""The client API's connections: aiohttp's low-level server with the node's own rules at the connection level.

- Every answer is JSON with a code of the table in raftkv/api.py, also for requests aiohttp rejects itself before
  any handler runs (a request line or header over its limit, a malformed header, an unknown method token): those
  become `too-large` (413, for a line over the limit) or `bad-request` (400), never aiohttp's plain text. An
  exception that escapes a handler (a bug) is answered `internal` (500, indefinite: a write may have been proposed).
- Slow clients are bounded in time: a connection must deliver a whole request head within `header_timeout` seconds
  of connecting or of its previous answer (aiohttp's idle close, which also reaps idle keep-alive connections); a
  body must arrive within `body_timeout` (the handler's read is bounded: api.py).
- Connections are bounded in number: beyond `max_connections` a new connection is closed at once, logged (at most
  once a second) and counted, so a flood of half-open requests cannot use up the descriptors normal clients need.
  :func:`raise_fd_limit` lifts the soft descriptor limit to the hard one at start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong

from raftkv.api import ERRORS

FD_RESERVE = 256  # descriptors kept for the WAL, snapshots, peers and the node's own needs


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (where allowed); return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def connection_cap(requested: int, fd_limit: int) -> int:
    """The connection cap in force: what was asked, but never so many that the node runs out of descriptors."""
    return max(1, min(requested, fd_limit - FD_RESERVE))


def json_error(code: str, message: str) -> web.Response:
    kind = ERRORS[code]
    return web.Response(status=kind.http_status, body=json.dumps({"error": code, "message": message}).encode(),
                        content_type="application/json")


class _Handler(web.RequestHandler):
    """aiohttp's per-connection protocol, with the cap and JSON errors (see the module docstring)."""

    def __init__(self, manager: _Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._owner = manager

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if len(self._owner.connections) > self._owner.max_connections:
            self._owner.refused(transport)

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status == 500:
            self.logger.error("request %s %s failed", request.method, request.path, exc_info=exc)
            resp = json_error("internal", "the node failed to answer this request (a bug; see its log)")
        elif isinstance(exc, LineTooLong):
            resp = json_error("too-large", f"request line or header too long: {exc.message}")
        else:
            detail = exc.message if exc is not None and hasattr(exc, "message") else (message or "bad request")
            resp = json_error("bad-request", f"malformed HTTP request: {detail}"[:500])
        resp.force_close()
        return resp


class _Server(web.Server):
    """web.Server whose connections are :class:`_Handler`s, with the cap and a counter of refused connections."""

    def __init__(self, handler: Callable[..., Any], *, max_connections: int, log: logging.Logger,
                 on_refused: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.max_connections = max_connections
        self._log = log
        self._on_refused = on_refused
        self._last_log = 0.0
        self.refused_count = 0

    def __call__(self) -> _Handler:
        return _Handler(self, loop=self._loop, **self._kwargs)

    def refused(self, transport: asyncio.BaseTransport) -> None:
        """Close a connection over the cap at once (abort: no lingering, the descriptor is free again)."""
        self.refused_count += 1
        self._on_refused()
        now = time.monotonic()
        if now - self._last_log >= 1.0:
            self._last_log = now
            self._log.warning("client connection refused: %d open, the cap is %d (%d refused so far)",
                              len(self.connections), self.max_connections, self.refused_count)
        transport.abort()  # type: ignore[attr-defined]  # a TCP transport


def make_server(handler: Callable[..., Any], request_factory: Callable[..., Any], *, header_timeout: float,
                max_connections: int, log: logging.Logger, on_refused: Callable[[], None]) -> web.Server:
    """The client API's server (see the module docstring)."""
    return _Server(handler, request_factory=request_factory, access_log=None, keepalive_timeout=header_timeout,
                   max_connections=max_connections, log=log, on_refused=on_refused)
