"""etcd's v3 HTTP/JSON gateway (the grpc-gateway every etcd member serves on its client URL), as the lab uses it.

One :class:`Gateway` per node: a keep-alive aiohttp session that POSTs JSON bodies to `/v3/...` paths and returns
the decoded answer, or raises :class:`GatewayError` saying whether the outcome is *definite* (etcd guarantees
nothing happened) or not. The rules, Jepsen's:

- the connection could not be made (refused, no route, unreachable): nothing was sent, so definite;
- an HTTP error whose gRPC status says the request was refused before it was proposed (invalid argument, too
  many requests, auth): definite;
- everything else (a timeout, a connection lost after sending, any other error status such as "request timed out"
  or "leader changed", an answer that is not a JSON object): not definite. A write with that outcome may have
  applied or may apply later.

The gateway encodes keys and values as base64 and 64-bit integers as JSON strings, and omits fields that are
zero or false (a failed txn has no "succeeded"); the helpers here read it that way.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import aiohttp

# gRPC status codes under which etcd refused a request before proposing it (nothing applied): InvalidArgument,
# PermissionDenied, ResourceExhausted ("too many requests"), Unauthenticated. Anything else may have applied.
DEFINITE_GRPC_CODES = frozenset({3, 7, 8, 16})


class GatewayError(RuntimeError):
    """A gateway call without an answer. `code` is a short reason (recorded as the op's error), `definite` is True
    only when etcd guarantees the request had no effect."""

    def __init__(self, code: str, *, definite: bool) -> None:
        super().__init__(code)
        self.code = code
        self.definite = definite


def b64(text: str) -> str:
    """A key or value as the gateway wants it (base64 of its UTF-8)."""
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    """The inverse of :func:`b64`; GatewayError (not definite: an answer the API does not document) on garbage."""
    try:
        return base64.b64decode(text, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise GatewayError(f"bad-answer: not base64 {text[:40]!r}", definite=False) from None


def prefix_end(prefix: str) -> str:
    """The range_end (base64) covering every key that starts with `prefix` (its last byte plus one)."""
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


def as_int(value: Any, what: str) -> int:
    """A gateway int64 (a JSON string, or absent for zero); GatewayError (not definite) when it is neither."""
    if value is None:
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        raise GatewayError(f"bad-answer: {what} {value!r}", definite=False) from None


def first_kv(answer: Mapping[str, Any]) -> dict[str, Any] | None:
    """The first key-value of a range answer (`kvs[0]`), or None when the key is absent."""
    kvs = answer.get("kvs") or []
    if not isinstance(kvs, list) or (kvs and not isinstance(kvs[0], dict)):
        raise GatewayError(f"bad-answer: kvs {kvs!r:.80}", definite=False)
    return kvs[0] if kvs else None


def _json_object(text: str) -> dict[str, Any] | None:
    """`text` decoded when it is a JSON object; None for anything else (not JSON, or another JSON value)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def http_error(status: int, text: str) -> GatewayError:
    """The GatewayError of a non-200 answer: definite only for the gRPC codes of DEFINITE_GRPC_CODES."""
    body = _json_object(text)
    if body is None:
        return GatewayError(f"http-{status}", definite=False)
    grpc = body.get("code")
    message = str(body.get("message") or body.get("error") or "")[:120]
    return GatewayError(f"grpc-{grpc}: {message}" if message else f"grpc-{grpc}",
                        definite=isinstance(grpc, int) and grpc in DEFINITE_GRPC_CODES)


class Gateway:
    """The gateway of one node at `address` (HOST:PORT). `call` POSTs; `close` ends the session. Not shared between
    event loops (the session belongs to the loop it was made on)."""

    def __init__(self, address: str, timeout: float) -> None:
        self.base = f"http://{address}"
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def call(self, path: str, body: Mapping[str, Any] | None, *, timeout: float | None = None) -> dict[str, Any]:
        """POST body to path (e.g. "/v3/kv/range"), or GET path when body is None; the decoded JSON object, or
        GatewayError (module docstring)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4))
        limit = aiohttp.ClientTimeout(total=self.timeout if timeout is None else timeout)
        request = (self._session.get(self.base + path, timeout=limit) if body is None else
                   self._session.post(self.base + path, json=body, timeout=limit))
        try:
            async with request as resp:
                text = await resp.text()
                status = resp.status
        except aiohttp.ClientConnectorError as exc:  # no connection: nothing was sent
            raise GatewayError(f"connect: {exc.os_error or exc}", definite=True) from None
        except TimeoutError:
            raise GatewayError("timeout", definite=False) from None
        except aiohttp.ClientError as exc:  # sent, then the connection broke: it may have applied
            raise GatewayError(f"connection-lost: {type(exc).__name__}", definite=False) from None
        if status != 200:
            raise http_error(status, text)
        answer = _json_object(text)
        if answer is None:
            raise GatewayError(f"bad-answer: {text[:80]!r}", definite=False)
        return answer

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
