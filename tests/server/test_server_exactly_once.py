"""Issue 15 on a real 3-node cluster: a write's reply is lost (a proxy forwards the request to the leader, lets it
apply, then drops the answer), other clients delete and re-create the key, and the client library retries.
With client sessions the retry gets the first application's answer and applies nothing; without one (the old
library) it applies a second time. Also the HTTP API's validation of the session fields."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from server_cluster import Cluster, free_port

from raftkv.client import Attempt, KVClient, PutResult


class ReplyDropper:
    """A one-shot TCP proxy to `upstream`: it forwards the first request, reads the whole answer, runs
    `meanwhile` (the answer is held), then closes the client's connection without sending it."""

    def __init__(self, upstream: str, meanwhile: Callable[[], Awaitable[None]]) -> None:
        self.upstream = upstream
        self.meanwhile = meanwhile
        self.addr = f"127.0.0.1:{free_port('127.0.0.1')}"
        self.dropped: bytes = b""
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        host, _, port = self.addr.rpartition(":")
        self.server = await asyncio.start_server(self._serve, host, int(port))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _http_message(reader)
            host, _, port = self.upstream.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            up_writer.write(request)
            self.dropped = await _http_message(up_reader)
            up_writer.close()
            await self.meanwhile()
        finally:
            writer.transport.abort()  # the answer is lost: the client sees the connection die after sending

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def _http_message(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return head + (await reader.readexactly(length) if length else b"")


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, 3, memory=True, base_ip=60)
    c.start_all()
    try:
        await c.wait_leader()
        yield c
    finally:
        c.stop_all()


async def lost_reply_across_delete_and_create(cluster: Cluster, sessions: bool) -> tuple[PutResult, list[Attempt]]:
    """Issue 15's example: k at version 1; A puts expecting 1 (k -> 2), its answer is lost; B deletes k, C
    re-creates it (version 1 again); A's library retries. Returns (A's result, A's attempts)."""
    leader = await cluster.wait_leader()
    others = KVClient(cluster.addrs, timeout=5)
    await others.put("k", "v0", 0)

    async def delete_and_recreate() -> None:
        await others.delete("k", 2)
        await others.put("k", "c", 0)

    proxy = ReplyDropper(cluster.client[leader], delete_and_recreate)
    await proxy.start()
    attempts: list[Attempt] = []
    try:
        async with KVClient([proxy.addr, *cluster.addrs], timeout=5, sessions=sessions) as a:
            result = await a.put("k", "a", 1, node=proxy.addr, attempts=attempts)
    finally:
        await proxy.close()
        await others.close()
    assert b"200 OK" in proxy.dropped, "the first attempt must have applied (its answer was dropped)"
    return result, attempts


async def test_a_retry_after_a_lost_reply_does_not_apply_twice_across_a_delete(cluster: Cluster) -> None:
    result, attempts = await lost_reply_across_delete_and_create(cluster, sessions=True)
    assert attempts[0].answer == "connection-lost" and attempts[-1].answer == "ok"
    assert (result.version, result.replayed) == (2, True)  # the first answer, replayed
    async with KVClient(cluster.addrs, timeout=5) as kv:
        got = await kv.get("k")
    assert (got.value, got.version) == ("c", 1)  # C's create is the last word: "a" applied once, long ago


async def test_without_a_session_the_same_retry_applies_twice(cluster: Cluster) -> None:
    """The old library's behaviour (and every client without a session): the bug the lab must catch."""
    result, _ = await lost_reply_across_delete_and_create(cluster, sessions=False)
    assert result.version == 2
    async with KVClient(cluster.addrs, timeout=5) as kv:
        got = await kv.get("k")
    assert (got.value, got.version) == ("a", 2)  # applied a second time on top of C's re-creation


@pytest.mark.parametrize(("body", "message"), [
    ({"value": "v", "version": 0, "client_id": "c"}, "client_id and seq go together"),
    ({"value": "v", "version": 0, "seq": 1}, "client_id and seq go together"),
    ({"value": "v", "version": 0, "client_id": "", "seq": 1}, "client_id must be a non-empty string"),
    ({"value": "v", "version": 0, "client_id": 7, "seq": 1}, "client_id must be a non-empty string"),
    ({"value": "v", "version": 0, "client_id": "c" * 65, "seq": 1}, "client_id is over 64 bytes"),
    ({"value": "v", "version": 0, "client_id": "c", "seq": 0}, "seq must be an integer in 1.."),
    ({"value": "v", "version": 0, "client_id": "c", "seq": "1"}, "seq must be an integer in 1.."),
    ({"value": "v", "version": 0, "client_id": "c", "seq": 2, "min_seq": 3}, "min_seq must be an integer in 1..seq"),
    ({"value": "v", "version": 0, "client_id": "c", "seq": 2, "session": 3}, "body must be"),
])
async def test_bad_session_fields_are_400s_that_say_what(cluster: Cluster, body: dict[str, object],
                                                         message: str) -> None:
    leader = await cluster.wait_leader()
    status, answer = await cluster.http(leader, "PUT", "/kv/k", json.dumps(body).encode())
    assert (status, answer["error"]) == (400, "bad-request") and message in answer["message"], answer


async def test_delete_session_fields_in_the_query_are_validated_and_deduplicated(cluster: Cluster) -> None:
    leader = await cluster.wait_leader()
    status, answer = await cluster.http(leader, "DELETE", "/kv/k?version=1&seq=1")
    assert status == 400 and "client_id and seq go together" in answer["message"]
    status, answer = await cluster.http(leader, "DELETE", "/kv/k?version=1&client_id=c&seq=x")
    assert status == 400 and "seq must be an integer" in answer["message"]
    put = json.dumps({"value": "v", "version": 0}).encode()
    assert (await cluster.http(leader, "PUT", "/kv/k", put))[0] == 200
    first = await cluster.http(leader, "DELETE", "/kv/k?version=1&client_id=c&seq=1")
    assert (await cluster.http(leader, "PUT", "/kv/k", put))[0] == 200  # re-created at version 1
    again = await cluster.http(leader, "DELETE", "/kv/k?version=1&client_id=c&seq=1")
    assert first == (200, {"version": 0}) and again == (200, {"version": 0, "replayed": True})
    assert (await cluster.http(leader, "GET", "/kv/k"))[1]["version"] == 1  # not deleted a second time
    status, answer = await cluster.http(leader, "DELETE", "/kv/k?version=1&client_id=new&seq=3&min_seq=2")
    assert (status, answer["error"]) == (410, "session-expired")


async def test_the_session_table_survives_a_restart_of_every_node_from_wal_and_snapshot(tmp_path: Path) -> None:
    """The table is rebuilt from the log on restart (the session rides in each entry) and from snapshots (format
    /2): after every node is killed and restarted, a retry of a session write is still answered, not applied."""
    c = Cluster(tmp_path, 3, base_ip=70, extra=("--snapshot-entries", "5"))
    c.start_all()
    try:
        leader = await c.wait_leader()
        create = json.dumps({"value": "a", "version": 0, "client_id": "s1", "seq": 1}).encode()
        assert await c.http(leader, "PUT", "/kv/k", create) == (200, {"version": 1})
        assert (await c.http(leader, "DELETE", "/kv/k?version=1"))[0] == 200
        for i in range(12):  # past two snapshots
            put = json.dumps({"value": "x", "version": i, "client_id": "s2", "seq": i + 1, "min_seq": i + 1})
            assert (await c.http(leader, "PUT", "/kv/j", put.encode()))[0] == 200
        for nid in c.ids:
            c.kill(nid)
        c.start_all()
        leader = await c.wait_leader()
        assert await c.http(leader, "PUT", "/kv/k", create) == (200, {"version": 1, "replayed": True})
        assert (await c.http(leader, "GET", "/kv/k"))[0] == 404  # the retried create did not apply again
        restarts = [[line for line in c.log(nid).splitlines() if "started: term" in line][-1] for nid in c.ids]
        assert all("snapshot index 0" not in line for line in restarts), restarts  # each restored a snapshot
    finally:
        c.stop_all()
