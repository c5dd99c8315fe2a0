"""The client library's retry rules against scripted fake nodes (aiohttp servers on 127.0.0.1, free ports):
leader hints are followed, a retried put keeps its expected version, an ambiguous attempt followed by a refusal is
Maybe (never a false failure), connection refusals are definite."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from server_cluster import free_port as cluster_free_port

from raftkv.api import SESSION_WINDOW
from raftkv.client import (
    Attempt,
    KVClient,
    Maybe,
    NoKey,
    SessionExpired,
    SyncKVClient,
    Timeout,
    Unavailable,
    VersionMismatch,
)


def free_port() -> int:
    return cluster_free_port("127.0.0.1")


class Fake:
    """A node whose answers come from a script: a list of callables (request, body) -> Response | 'drop'."""

    def __init__(self) -> None:
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.script: list[Callable[[web.Request, Any], Any]] = []
        self.seen: list[tuple[str, str, Any]] = []
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.seen.append((request.method, request.path_qs, body))
        step = self.script.pop(0)
        out = step(request, body)
        if asyncio.iscoroutine(out):
            out = await out
        if out == "drop":  # the request arrived; the connection dies before any answer
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        return out

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()


def j(status: int, **body: Any) -> Callable[[web.Request, Any], web.Response]:
    return lambda req, b: web.json_response(body, status=status)


@pytest.fixture
async def fakes() -> AsyncIterator[list[Fake]]:
    fs = [Fake(), Fake()]
    for f in fs:
        await f.start()
    yield fs
    for f in fs:
        assert f.runner is not None
        await f.runner.cleanup()


async def test_follows_redirect_and_remembers_leader(fakes: list[Fake]) -> None:
    a, b = fakes
    a.script = [j(307, error="not-leader", leader="n2", leader_url=f"http://{b.addr}")]
    b.script = [j(200, version=1), j(200, value="v", version=1)]
    async with KVClient([a.addr, b.addr], timeout=2) as kv:
        assert (await kv.put("k", "v", 0)).version == 1
        assert kv.leader == b.addr
        g = await kv.get("k", consistency="lease")  # lease reads go to the remembered leader
        assert (g.value, g.version, g.node) == ("v", 1, b.addr)
    assert b.seen[0][2] == {"value": "v", "version": 0, "client_id": kv.client_id, "seq": 1, "min_seq": 1}


async def test_ambiguous_then_mismatch_is_maybe_without_a_session(fakes: list[Fake]) -> None:
    a, b = fakes
    a.script = [lambda r, body: "drop"]
    b.script = [j(409, error="version-mismatch", current_version=4)]
    async with KVClient([a.addr, b.addr], timeout=2, sessions=False) as kv:
        with pytest.raises(Maybe, match="may have"):
            await kv.put("k", "v", 3, node=a.addr)
    assert b.seen[0][2] == {"value": "v", "version": 3}  # the retry kept the expected version


async def test_a_retry_reuses_the_session_identity_and_its_answer_is_certain(fakes: list[Fake]) -> None:
    a, b = fakes
    a.script = [lambda r, body: "drop", lambda r, body: "drop"]
    b.script = [j(409, error="version-mismatch", current_version=4), j(404, error="no-key")]
    attempts: list[Attempt] = []
    async with KVClient([a.addr, b.addr], timeout=2) as kv:
        with pytest.raises(VersionMismatch):  # the session table answers for the write itself: no guess
            await kv.put("k", "v", 3, node=a.addr, attempts=attempts)
        with pytest.raises(NoKey):
            await kv.delete("k", 2, node=a.addr)
    assert a.seen[0][2] == b.seen[0][2] == {"value": "v", "version": 3, "client_id": kv.client_id, "seq": 1,
                                            "min_seq": 1}
    assert [(x.node, x.answer) for x in attempts] == [(a.addr, "connection-lost"), (b.addr, "version-mismatch")]
    assert a.seen[1][1].split("&timeout_ms")[0] == b.seen[1][1].split("&timeout_ms")[0]  # the same identity
    assert f"client_id={kv.client_id}&seq=2&min_seq=2" in b.seen[1][1]


async def test_session_expired_after_a_lost_attempt_is_maybe_and_starts_a_new_session(fakes: list[Fake]) -> None:
    a, b = fakes
    a.script = [lambda r, body: "drop"]
    b.script = [j(410, error="session-expired", message="evicted"), j(410, error="session-expired"),
                j(200, version=1)]
    async with KVClient([a.addr, b.addr], timeout=2) as kv:
        first = kv.client_id
        with pytest.raises(Maybe, match="may have applied"):
            await kv.put("k", "v", 0, node=a.addr)
        assert kv.client_id != first
        with pytest.raises(SessionExpired):
            await kv.put("k", "v", 0, node=b.addr)
        assert (await kv.put("k", "v", 0, node=b.addr)).version == 1


async def test_ambiguous_then_success_is_success(fakes: list[Fake]) -> None:
    a, b = fakes
    a.script = [lambda r, body: "drop"]
    b.script = [j(200, version=4)]
    async with KVClient([a.addr, b.addr], timeout=2) as kv:
        assert (await kv.put("k", "v", 3, node=a.addr)).version == 4


async def test_server_maybe_then_no_key_on_delete_is_maybe(fakes: list[Fake]) -> None:
    a, b = fakes
    a.script = [j(504, error="maybe", message="leadership lost")]
    b.script = [j(404, error="no-key")]
    async with KVClient([a.addr, b.addr], timeout=2, sessions=False) as kv:
        with pytest.raises(Maybe):
            await kv.delete("k", 3, node=a.addr)
    assert b.seen[0][1].startswith("/kv/k?version=3")


async def test_plain_refusals_are_definite(fakes: list[Fake]) -> None:
    a, _ = fakes
    a.script = [j(409, error="version-mismatch", current_version=7), j(404, error="no-key"),
                j(404, error="no-key")]
    async with KVClient([a.addr], timeout=2) as kv:
        with pytest.raises(VersionMismatch) as e:
            await kv.put("k", "v", 3)
        assert e.value.current_version == 7 and e.value.definite
        with pytest.raises(NoKey):
            await kv.delete("k", 1)
        g = await kv.get("k/with space")
        assert (g.value, g.version, g.found) == (None, 0, False)
    assert a.seen[2][1].startswith("/kv/k%2Fwith%20space?consistency=linearizable")


async def test_connection_refused_everywhere_is_unavailable() -> None:
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    async with KVClient(dead, timeout=0.3) as kv:
        with pytest.raises(Unavailable) as e:
            await kv.put("k", "v", 0)
        assert e.value.definite


async def test_unanswered_write_times_out_as_indeterminate(fakes: list[Fake]) -> None:
    a, _ = fakes

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.json_response({})

    a.script = [lambda r, body: hang(r)]
    async with KVClient([a.addr], timeout=0.3) as kv:
        with pytest.raises(Timeout) as e:
            await kv.put("k", "v", 0)
        assert not e.value.definite
    a.script = [lambda r, body: hang(r)]
    async with KVClient([a.addr], timeout=0.3) as kv:
        with pytest.raises(Timeout):
            await kv.get("k")


async def test_unavailable_retries_next_node(fakes: list[Fake]) -> None:
    a, b = fakes
    a.script = [j(503, error="unavailable", message="no leader")]
    b.script = [j(200, version=1)]
    async with KVClient([a.addr, b.addr], timeout=2) as kv:
        assert (await kv.put("k", "v", 0, node=a.addr)).version == 1


def test_sync_client_refused() -> None:
    with SyncKVClient([f"127.0.0.1:{free_port()}"], timeout=0.2) as kv, pytest.raises(Unavailable):
        kv.get("k")


async def test_a_pooled_connection_closed_by_the_server_is_not_reused(fakes: list[Fake]) -> None:
    """After the server closes idle keep-alive connections (a restart), the next write opens a new connection
    and is not counted as possibly applied: a refusal stays definite."""
    a, _ = fakes
    a.script = [j(200, version=1), j(409, error="version-mismatch", current_version=1)]
    async with KVClient([a.addr], timeout=2) as kv:
        assert (await kv.put("k", "v", 0)).version == 1
        assert a.runner is not None
        for conn in a.runner.server.connections if a.runner.server else []:  # type: ignore[union-attr]
            conn.force_close()
        await asyncio.sleep(0.1)  # the client's loop sees the EOF
        with pytest.raises(VersionMismatch):
            await kv.put("k", "v", 0)


async def test_an_unexplained_server_error_on_a_write_is_ambiguous(fakes: list[Fake]) -> None:
    a, b = fakes
    a.script = [lambda r, body: web.Response(status=500, text="boom")]
    b.script = [j(409, error="version-mismatch", current_version=1)]
    async with KVClient([a.addr, b.addr], timeout=2, sessions=False) as kv:  # with one, the refusal is certain
        with pytest.raises(Maybe):
            await kv.put("k", "v", 0, node=a.addr)


async def test_more_writes_in_flight_than_the_session_window_open_another_session(fakes: list[Fake]) -> None:
    a, _ = fakes
    release, all_arrived = asyncio.Event(), asyncio.Event()

    async def held(request: web.Request, body: Any) -> web.Response:
        if len(a.seen) == SESSION_WINDOW + 1:
            all_arrived.set()
        await release.wait()
        return web.json_response({"version": 1})

    a.script = [held] * (SESSION_WINDOW + 1)
    async with KVClient([a.addr], timeout=5) as kv:
        calls = [asyncio.create_task(kv.put(f"k{i}", "v", 0)) for i in range(SESSION_WINDOW + 1)]
        async with asyncio.timeout(5):
            await all_arrived.wait()
        release.set()
        await asyncio.gather(*calls)
    sessions = [(b["client_id"], b["seq"], b["min_seq"]) for _, _, b in a.seen]
    assert len({cid for cid, _, _ in sessions}) == 2
    assert all(seq - min_seq < SESSION_WINDOW for _, seq, min_seq in sessions)

