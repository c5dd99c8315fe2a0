"""The client API under hostile input (issue 13, items 3 and 4): every answer is JSON with a code of the error table,
never a 5xx or aiohttp's plain text; keys are strict UTF-8; slow clients are reaped and a flood of them is capped
while normal clients are still served."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import string
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_cluster import Cluster

from raftkv.api import ERRORS


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("hostile"), 1, base_ip=120, memory=True,
                extra=("--client-header-timeout-s", "1.5", "--client-body-timeout-s", "1.5",
                       "--max-client-connections", "150"))
    c.start_all()
    asyncio.run(c.wait_leader())
    try:
        yield c
    finally:
        c.stop_all()


def _exchange(c: Cluster, request: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    host, _, port = c.client["n1"].rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _request(method: bytes, target: bytes, body: bytes = b"", headers: bytes = b"") -> bytes:
    return (method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def _json_error(status: int, body: bytes) -> dict[str, object]:
    doc = json.loads(body)
    assert isinstance(doc, dict) and doc["error"] in ERRORS, body[:200]
    assert ERRORS[str(doc["error"])].http_status == status, (status, body[:200])
    return doc


@pytest.mark.parametrize(("request_bytes", "status", "code"), [
    (_request(b"PUT", b"/kv/a", b'{"value": "x", "version": 18446744073709551616}'), 400, "bad-request"),
    (_request(b"PUT", b"/kv/a", b"[" * 100_000 + b"]" * 100_000), 400, "bad-request"),
    (_request(b"GET", b"/kv/" + b"k" * 10_000), 413, "too-large"),
    (_request(b"GET", b"/kv/a", headers=b"X-Big: " + b"v" * 20_000 + b"\r\n"), 413, "too-large"),
    (_request(b"DELETE", b"/kv/a?version=99999999999999999999999"), 400, "bad-request"),
    (_request(b"GET", b"/kv/a?timeout_ms=99999999999999999999999"), 400, "bad-request"),
    (_request(b"PUT", b"/kv/%ff%fe", b'{"value": "x", "version": 0}'), 400, "bad-request"),
    (b"GET /kv/a HTTP/1.1\r\nHost x\r\n\r\n", 400, "bad-request"),
    (b"FOO /kv/a HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad-request"),
])
def test_each_bad_request_gets_the_tables_json_error(node: Cluster, request_bytes: bytes, status: int,
                                                     code: str) -> None:
    got, body = _exchange(node, request_bytes)
    assert got == status and _json_error(got, body)["error"] == code


def test_percent_escapes_name_bytes_so_two_spellings_are_two_keys(node: Cluster) -> None:
    status, _ = _exchange(node, _request(b"PUT", b"/kv/%25ff%25fe", b'{"value": "literal", "version": 0}'))
    assert status == 200  # the key is the six characters "%ff%fe"
    status, body = _exchange(node, _request(b"GET", b"/kv/%ff%fe"))
    assert status == 400 and "not valid UTF-8" in str(_json_error(status, body)["message"])
    status, body = _exchange(node, _request(b"GET", b"/kv/%C3%A9t%C3%A9"))
    assert status == 404 and _json_error(status, body)["error"] == "no-key"


_TOKENS = st.sampled_from([b"GET", b"PUT", b"DELETE", b"POST", b"HEAD", b"PATCH", b"OPTIONS", b"get"])
_PATHS = st.one_of(
    st.builds(lambda k: b"/kv/" + k, st.binary(max_size=40).map(lambda b: "".join(f"%{x:02x}" for x in b).encode())),
    st.builds(lambda k: b"/kv/" + k.encode(), st.text(string.ascii_letters + "%/?=&.~-", max_size=40)),
    st.sampled_from([b"/status", b"/healthz", b"/metrics", b"/", b"/kv/", b"/kv", b"/debug/state", b"//kv/a"]),
)
_QUERIES = st.one_of(st.just(b""), st.builds(lambda k, v: b"?" + k + b"=" + v,
                                             st.sampled_from([b"version", b"timeout_ms", b"consistency", b"x"]),
                                             st.sampled_from([b"1", b"-1", b"0", b"1e3", b"9" * 30, b"stale",
                                                              b"lease", b"%ff", b""])))
_JSONS = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                     max_size=3), max_leaves=8)
_BODIES = st.one_of(st.binary(max_size=64), _JSONS.map(lambda v: json.dumps(v).encode()),
                    st.builds(lambda v, n: json.dumps({"value": v, "version": n}).encode(),
                              st.text(max_size=8) | st.integers(), st.integers(-(2**70), 2**70)))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=_TOKENS, path=_PATHS, query=_QUERIES, body=_BODIES)
def test_no_request_ever_gets_a_5xx_or_a_non_json_error(node: Cluster, method: bytes, path: bytes, query: bytes,
                                                        body: bytes) -> None:
    status, payload = _exchange(node, _request(method, path + query, body))
    assert status < 500, (method, path, query, body, payload[:300])
    if status >= 300 and method != b"HEAD":
        _json_error(status, payload)


async def _slow_client(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /kv/slow HTTP/1.1\r\nHost: x\r\n")  # half a request head, then nothing
    await writer.drain()
    return reader, writer


async def _closed(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within) is not None
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def test_slow_clients_are_reaped_and_capped_while_normal_clients_are_served(tmp_path: Path) -> None:
    c = Cluster(tmp_path, 1, base_ip=125, memory=True,
                extra=("--client-header-timeout-s", "2", "--max-client-connections", "150"))
    c.start_all()
    try:
        await c.wait_leader()
        host, _, port = c.client["n1"].rpartition(":")
        slow = [await _slow_client(host, int(port)) for _ in range(120)]
        t0 = time.monotonic()
        assert (await c.http("n1", "GET", "/healthz"))[0] == 200  # under the cap: served at once
        flood = [await _slow_client(host, int(port)) for _ in range(60)]  # 180 > 150: the last ones refused
        refused = sum(await asyncio.gather(*(_closed(r, 1.0) for r, _ in flood[-25:])))
        assert refused == 25
        assert "client connection refused" in c.log("n1")
        assert all(await asyncio.gather(*(_closed(r, 5.0) for r, _ in slow)))  # reaped: no whole head in time
        assert time.monotonic() - t0 < 6
        _, metrics = await c.http("n1", "GET", "/metrics")
        found = re.search(r"^raftkv_client_connections_refused_total (\S+)$", metrics, re.M)
        assert found is not None and float(found.group(1)) >= 25
        for _, w in slow + flood:
            w.close()
        assert (await c.http("n1", "PUT", "/kv/after", b'{"value": "v", "version": 0}'))[0] == 200
    finally:
        c.stop_all()
