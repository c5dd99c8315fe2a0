"""etcd's workload clients (workloads/etcd_clients.py) against a fake v3 JSON gateway on 127.0.0.1: the requests
they send (base64 keys, the txn's compare, the read's consistency) and the outcome each answer maps to by Jepsen's
rules (ok; fail only where etcd guarantees nothing applied; info otherwise; a read without an answer fails)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from harness.protocols import Op
from workloads.etcd_clients import EtcdListClient, EtcdRegisterClient, EtcdSetClient, serializable

Answer = Callable[[web.Request], Any]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def kv(key: str, value: str, version: int = 1, mod: int = 7) -> dict[str, Any]:
    return {"key": b64(key), "value": b64(value), "version": str(version), "mod_revision": str(mod)}


def reply(body: dict[str, Any], status: int = 200) -> Answer:
    return lambda request: web.json_response(body, status=status)


def hang(request: web.Request) -> Any:
    return asyncio.sleep(2)  # longer than any client timeout here (0.4 s)


async def drop(request: web.Request) -> Any:
    assert request.transport is not None
    request.transport.close()  # the request arrived; the connection breaks before an answer
    await asyncio.sleep(1)


class Gateway:
    """A scripted gateway: each POST takes the next answer; every request's path and JSON body is recorded."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.address = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, await request.json()))
        out = self.answers.pop(0)(request)
        if asyncio.iscoroutine(out):
            out = await out
        return out


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    fake = Gateway()
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.address = f"127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


async def invoke(cls: type, address: str, op: Op, **options: Any) -> Op:
    client = await cls({"op_timeout": 0.5, **options}, address=lambda test, node: address).open(None, "n1")
    try:
        return await client.invoke(None, op)
    finally:
        await client.close(None)


def get(key: str = "k0") -> Op:
    return Op(process=0, type="invoke", f="get", key=key)


def put(value: str, version: int, key: str = "k0") -> Op:
    return Op(process=0, type="invoke", f="put", key=key, value={"value": value, "version": version})


def outcome(op: Op) -> tuple[str, Any, str | None]:
    return op.type, op.value, op.error


@pytest.mark.parametrize(("answer", "expected"), [
    (reply({"header": {}}), ("ok", {"value": None, "version": 0}, None)),
    (reply({"kvs": [kv("k0", "v9", version=3)], "count": "1"}), ("ok", {"value": "v9", "version": 3}, None)),
    (reply({"code": 14, "message": "etcdserver: request timed out"}, 503),
     ("fail", None, "grpc-14: etcdserver: request timed out")),
    (hang, ("fail", None, "timeout")),
    (drop, ("fail", None, "connection-lost: ServerDisconnectedError")),
])
async def test_a_read_is_ok_with_its_answer_and_fails_without_one(gateway: Gateway, answer: Answer,
                                                                    expected: tuple[str, Any, str | None]) -> None:
    gateway.answers = [answer]
    assert outcome(await invoke(EtcdRegisterClient, gateway.address, get())) == expected
    assert gateway.requests == [("/v3/kv/range", {"key": b64("k0"), "serializable": False})]


async def test_serializable_reads_ask_etcd_for_its_local_range(gateway: Gateway) -> None:
    gateway.answers = [reply({})]
    await invoke(EtcdRegisterClient, gateway.address, get(), read_consistency="serializable")
    assert gateway.requests[0][1]["serializable"] is True
    with pytest.raises(ValueError, match="linearizable or serializable, not 'lease'"):
        serializable({"read_consistency": "lease"})


@pytest.mark.parametrize(("answer", "expected"), [
    (reply({"succeeded": True}), ("ok", {"version": 3}, None)),
    (reply({"responses": [{"response_range": {"kvs": [kv("k0", "", version=5)]}}]}),
     ("fail", None, "version-mismatch")),
    (reply({"responses": [{"response_range": {"header": {}}}]}), ("fail", None, "no-key")),
    (reply({"code": 3, "message": "etcdserver: key is not provided"}, 400),
     ("fail", None, "grpc-3: etcdserver: key is not provided")),
    (reply({"code": 14, "message": "etcdserver: leader changed"}, 503),
     ("info", None, "grpc-14: etcdserver: leader changed")),
    (reply({"error": "oops"}, 502), ("info", None, "grpc-None: oops")),
    (lambda request: web.Response(text="<html>", status=500), ("info", None, "http-500")),
    (hang, ("info", None, "timeout")),
    (drop, ("info", None, "connection-lost: ServerDisconnectedError")),
    (reply({"header": {}}), ("info", None, "bad-answer: a failed txn without its range")),
])
async def test_a_write_fails_only_when_etcd_guarantees_nothing_applied(
        gateway: Gateway, answer: Answer, expected: tuple[str, Any, str | None]) -> None:
    gateway.answers = [answer]
    assert outcome(await invoke(EtcdRegisterClient, gateway.address, put("v1", 2))) == expected
    path, body = gateway.requests[0]
    assert path == "/v3/kv/txn"
    assert body["compare"] == [{"key": b64("k0"), "target": "VERSION", "result": "EQUAL", "version": "2"}]
    assert body["success"] == [{"request_put": {"key": b64("k0"), "value": b64("v1")}}]


async def test_a_write_to_a_node_that_refuses_connections_fails() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # nothing listens there now: the connection is refused, nothing was sent
    op = await invoke(EtcdRegisterClient, f"127.0.0.1:{port}", put("v1", 0))
    assert op.type == "fail" and op.error is not None and op.error.startswith("connect:")


async def test_a_delete_is_a_txn_on_the_version(gateway: Gateway) -> None:
    gateway.answers = [reply({"succeeded": True})]
    op = Op(process=0, type="invoke", f="delete", key="k1", value={"version": 4})
    assert outcome(await invoke(EtcdRegisterClient, gateway.address, op)) == ("ok", {"version": 0}, None)
    assert gateway.requests[0][1]["success"] == [{"request_delete_range": {"key": b64("k1")}}]


async def test_a_set_add_is_a_key_per_element_and_a_read_a_prefix_range(gateway: Gateway) -> None:
    gateway.answers = [reply({}), reply({"kvs": [{"key": b64("s0/12")}, {"key": b64("s0/3")}]}), hang]
    add = Op(process=0, type="invoke", f="add", key="s0", value=12)
    assert outcome(await invoke(EtcdSetClient, gateway.address, add)) == ("ok", 12, None)
    read = Op(process=0, type="invoke", f="read", key="s0")
    assert outcome(await invoke(EtcdSetClient, gateway.address, read)) == ("ok", [3, 12], None)
    assert outcome(await invoke(EtcdSetClient, gateway.address, add)) == ("info", 12, "timeout")
    assert gateway.requests[0] == ("/v3/kv/put", {"key": b64("s0/12"), "value": b64("1")})
    assert gateway.requests[1][1] == {"key": b64("s0/"), "range_end": b64("s00"), "keys_only": True,
                                      "serializable": False}


async def test_an_append_retries_a_failed_compare_and_stops_at_an_unknown_outcome(gateway: Gateway) -> None:
    lost = reply({"responses": [{"response_range": {}}]})
    gateway.answers = [reply({"kvs": [kv("l0", "[1]", mod=7)]}), lost,
                       reply({"kvs": [kv("l0", "[1,2]", mod=9)]}), reply({"succeeded": True})]
    append = Op(process=0, type="invoke", f="append", key="l0", value=5)
    assert outcome(await invoke(EtcdListClient, gateway.address, append)) == ("ok", 5, None)
    txns = [body for path, body in gateway.requests if path == "/v3/kv/txn"]
    assert [t["compare"][0]["mod_revision"] for t in txns] == ["7", "9"]
    assert json.loads(base64.b64decode(txns[1]["success"][0]["request_put"]["value"])) == [1, 2, 5]
    gateway.answers = [reply({}), hang]
    assert outcome(await invoke(EtcdListClient, gateway.address, append)) == ("info", 5, "timeout")
