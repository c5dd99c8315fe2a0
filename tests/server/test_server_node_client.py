"""raftkv.client.NodeClient: one request to one node, its answer as it came, with certainty from raftkv.api.ERRORS.

Against a scripted HTTP server on loopback (each test says what it answers, or that it hangs up or never
answers), and against a real 3-node cluster for what a follower answers. Plus GET /debug/state on real nodes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from server_cluster import Cluster, free_port

from raftkv.api import ERRORS
from raftkv.client import KVClient, NodeClient, classify

pytestmark = pytest.mark.timeout(120)

Script = Callable[[bytes], tuple[int, bytes] | None]  # request head -> (status, body), or None: hang up


class FakeNode:
    """An HTTP/1.1 server on 127.0.0.1 that answers every request by its script and records the request lines.
    A script answer of None closes the connection without answering; `hang=True` never answers."""

    def __init__(self, script: Script | None = None, *, hang: bool = False) -> None:
        self.script = script or (lambda head: (200, b"{}"))
        self.hang = hang
        self.requests: list[str] = []
        self.port = free_port("127.0.0.1")
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeNode:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                self.requests.append(head.split(b"\r\n")[0].decode())
                if self.hang:
                    await self._release.wait()
                    return
                answer = self.script(head)
                if answer is None:
                    return
                status, body = answer
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
                             f"Content-Type: application/json\r\n\r\n".encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def answer(status: int, body: dict[str, Any]) -> Script:
    return lambda head: (status, json.dumps(body).encode())


async def test_an_ok_answer_is_ok_and_the_node_is_told_a_shorter_deadline() -> None:
    async with FakeNode(answer(200, {"version": 3})) as fake:
        client = NodeClient(fake.address, timeout=2.0)
        reply = await client.put("k/1", "v", 2)
        await client.close()
    assert (reply.ok, reply.code, reply.definite, reply.status, reply.body) == (True, "ok", True, 200, {"version": 3})
    assert reply.node == fake.address
    (line,) = fake.requests
    assert line.startswith("PUT /kv/k%2F1?timeout_ms=")
    timeout_ms = int(line.split("timeout_ms=")[1].split()[0])
    assert 1000 < timeout_ms < 2000  # the node answers maybe/unavailable before the client gives up


@pytest.mark.parametrize("code", sorted(ERRORS))
async def test_every_documented_error_keeps_the_tables_certainty(code: str) -> None:
    kind = ERRORS[code]
    async with FakeNode(answer(kind.http_status, {"error": code, "message": "m", "leader_url": "http://x:1"})) as fake:
        client = NodeClient(fake.address, timeout=2.0)
        reply = await client.delete("k", 1)
        await client.close()
    assert (reply.code, reply.definite, reply.status, reply.message) == (code, kind.definite, kind.http_status, "m")
    assert len(fake.requests) == 1, "one request: no redirect followed, no retry"


@pytest.mark.parametrize(("status", "body", "code"), [
    (500, b"internal error", "http-500"),  # not the API's answer at all
    (500, b'{"error": "unavailable"}', "unavailable"),  # a known code with another status than the table's
    (503, b'["unavailable"]', "http-503"),  # not a JSON object
    (418, b'{"error": "teapot"}', "teapot"),  # a code outside the table
])
async def test_an_answer_outside_the_table_is_not_certain(status: int, body: bytes, code: str) -> None:
    async with FakeNode(lambda head: (status, body)) as fake:
        client = NodeClient(fake.address, timeout=2.0)
        reply = await client.put("k", "v", 0)
        await client.close()
    assert (reply.ok, reply.code, reply.definite) == (False, code, False)


async def test_a_connection_lost_after_sending_is_uncertain() -> None:
    async with FakeNode(lambda head: None) as fake:
        client = NodeClient(fake.address, timeout=2.0)
        reply = await client.put("k", "v", 0)
        await client.close()
    assert (reply.code, reply.definite, reply.status) == ("connection-lost", False, None)
    assert len(fake.requests) == 1


async def test_no_answer_before_the_deadline_is_a_timeout() -> None:
    async with FakeNode(hang=True) as fake:
        client = NodeClient(fake.address, timeout=0.5)
        t0 = time.monotonic()
        reply = await client.get("k")
        elapsed = time.monotonic() - t0
        await client.close()
    assert (reply.code, reply.definite) == ("timeout", False)
    assert 0.5 <= elapsed < 5.0
    assert len(fake.requests) == 1


async def test_a_refused_connection_was_never_sent_so_it_is_certain() -> None:
    client = NodeClient(f"127.0.0.1:{free_port('127.0.0.1')}", timeout=1.0)  # nobody listens there
    reply = await client.put("k", "v", 0)
    await client.close()
    assert (reply.code, reply.definite, reply.status) == ("unreachable", True, None)


def test_classify_reads_the_table() -> None:
    assert classify(200, {}) == ("ok", True)
    for code, kind in ERRORS.items():
        assert classify(kind.http_status, {"error": code}) == (code, kind.definite)
    assert classify(504, {"error": "maybe"}) == ("maybe", False)
    assert classify(502, {}) == ("http-502", False)


# -- real nodes ---------------------------------------------------------------------------------------------------


@pytest.fixture
async def c3(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, 3, base_ip=70)
    c.start_all()
    try:
        yield c
    finally:
        c.stop_all()


async def test_a_follower_redirects_a_write_which_is_certain_and_serves_a_read(c3: Cluster) -> None:
    leader = await c3.wait_leader()
    follower = next(i for i in c3.ids if i != leader)
    at_follower = NodeClient(c3.client[follower], timeout=3.0)
    at_leader = NodeClient(c3.client[leader], timeout=3.0)
    try:
        refused = await at_follower.put("a", "1", 0)
        assert (refused.code, refused.definite, refused.status) == ("not-leader", True, 307)
        assert refused.body["leader"] == leader
        assert (await at_leader.put("a", "2", 0)).body == {"version": 1}  # so the refused write did not apply
        read = await at_follower.get("a")  # a follower serves linearizable reads itself (ReadIndex)
        assert (read.ok, read.body["value"], read.body["version"]) == (True, "2", 1)
        absent = await at_follower.get("nothing")
        assert (absent.code, absent.definite) == ("no-key", True)
        mismatch = await at_leader.put("a", "3", 0)
        assert (mismatch.code, mismatch.definite) == ("version-mismatch", True)
    finally:
        await at_follower.close()
        await at_leader.close()


async def _states(c3: Cluster) -> dict[str, dict[str, Any]]:
    out = {}
    for nid in c3.ids:
        code, body = await c3.http(nid, "GET", "/debug/state", timeout=10)
        assert code == 200, body
        out[nid] = body
    return out


async def test_debug_state_digests_change_with_the_state_and_agree_across_replicas(c3: Cluster) -> None:
    await c3.wait_leader()

    async def caught_up() -> bool:
        states = await _states(c3)
        return len({(s["applied"], s["digest"]) for s in states.values()}) == 1

    await c3.wait_for(caught_up, what="every node at one applied index")
    before = await _states(c3)
    assert set(next(iter(before.values()))) == {"id", "term", "role", "commit", "applied", "last_index",
                                                "last_term", "digest", "leaderships", "chain"}
    async with KVClient(c3.addrs, timeout=5) as kv:
        await kv.put("x", "1", 0)
        await c3.wait_for(caught_up, what="every node applies the write")
        after = await _states(c3)
        assert {s["digest"] for s in after.values()} != {s["digest"] for s in before.values()}
        assert all(s["applied"] > before[n]["applied"] for n, s in after.items())
        assert sorted(s["role"] for s in after.values()) == ["follower", "follower", "leader"]
        # Same content, reached by another history: the digest is of the content, not of the way there.
        await kv.put("y", "1", 0)
        await kv.delete("y", 1)
        await c3.wait_for(caught_up, what="every node applies the put and delete")
        again = await _states(c3)
        assert {s["digest"] for s in again.values()} == {s["digest"] for s in after.values()}


def test_the_digest_is_of_canonical_content() -> None:
    """FrozenState.digest: equal content gives equal digests whatever the order of writes; any difference in a
    key, value or version changes it."""
    from raftkv.kv.store import FrozenState

    a = FrozenState(5, {"a": ("1", 1), "b": ("2", 3)}, [])
    b = FrozenState(9, {"b": ("2", 3), "a": ("1", 1)}, [["client", 3, []]])  # sessions are not content
    assert a.digest() == b.digest() and len(a.digest()) == 64
    assert a.digest() != FrozenState(5, {"a": ("1", 1), "b": ("2", 4)}, []).digest()
    assert a.digest() != FrozenState(5, {"a": ("1", 1), "c": ("2", 3)}, []).digest()
    assert a.digest() != FrozenState(5, {"a": ("1", 1)}, []).digest()
