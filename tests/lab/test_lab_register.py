"""The register workload without a cluster: its generator as a pure function (harness.generator.simulate, no
threads, no sleeps), and its client's outcome mapping against a stub of raftkv's client library."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness import generator as gen
from harness.protocols import Op
from harness.protocols import TestContext as Ctx
from raftkv.api import ERRORS
from raftkv.client import (
    Attempt,
    GetResult,
    Maybe,
    NoKey,
    PutResult,
    Reply,
    Timeout,
    Unavailable,
    VersionMismatch,
)
from workloads import common, raftkv_register, register
from workloads.raftkv_register import NodeBoundClient, RegisterClient
from workloads.register import RegisterGen, final_generator, generator

OPTIONS = {"keys": 3}


def invokes(history: list[Op]) -> list[Op]:
    return [op for op in history if op.type == "invoke"]


def test_the_generator_is_seeded_and_pure() -> None:
    ctx = gen.Context.initial(4, nemesis=False)
    a = gen.simulate(gen.limit(200, generator(OPTIONS, random.Random(9))), ctx)
    b = gen.simulate(gen.limit(200, generator(OPTIONS, random.Random(9))), ctx)
    c = gen.simulate(gen.limit(200, generator(OPTIONS, random.Random(10))), ctx)
    assert [(o.f, o.key, o.value) for o in a] == [(o.f, o.key, o.value) for o in b]
    assert [(o.f, o.key, o.value) for o in a] != [(o.f, o.key, o.value) for o in c]
    ops = invokes(a)
    assert {o.key for o in ops} == {"k0", "k1", "k2"}
    counts = Counter(o.f for o in ops)
    assert counts["get"] > 60 and counts["put"] > 60, counts


def test_the_op_kinds_follow_the_mix_weights() -> None:
    """Every kind is drawn with its MIX weight (deletes only of keys known to exist: all of them here, as every
    completion is ok and teaches a version)."""
    from workloads.register import MIX

    ctx = gen.Context.initial(1, nemesis=False)
    history = gen.simulate(gen.limit(8000, RegisterGen(("k0", "k1"), (0, 0), state=11)), ctx,
                           complete=lambda op: ("ok", 1000))
    ops = invokes(history)
    share = Counter(o.f for o in ops)
    cas_like = sum(1 for o in ops if o.f == "put" and o.value["version"] not in (0,))
    weights = dict(MIX)
    assert abs(share["get"] / len(ops) - weights["get"]) < 0.03, share
    assert abs(share["delete"] / len(ops) - weights["delete"]) < 0.02, share
    assert abs(share["put"] / len(ops) - weights["write"] - weights["cas"]) < 0.03, share
    assert cas_like > 0


def test_writes_carry_the_last_observed_version_and_unique_values() -> None:
    g: gen.Generator = RegisterGen(("k0",), (0,), state=1)
    ctx = gen.Context.initial(1, nemesis=False)
    g = g.update(ctx, Op(process=0, type="ok", f="get", key="k0", value={"value": "7", "version": 5}))
    seen_values = set()
    for _ in range(300):
        op, nxt = g.op(ctx)  # type: ignore[misc]
        assert isinstance(op, Op) and nxt is not None
        if op.f == "put":
            assert op.value["version"] in (5, 6)  # the write's 5, or a cas betting on 6
            assert op.value["value"] not in seen_values
            seen_values.add(op.value["value"])
        elif op.f == "delete":
            assert op.value == {"version": 5}
        g = nxt
    assert len(seen_values) > 100
    # Only completions that say ok teach a version; a refused put teaches nothing.
    same = g.update(ctx, Op(process=0, type="fail", f="put", key="k0", value={"version": 9}, error="version-mismatch"))
    assert same is g
    deleted = g.update(ctx, Op(process=0, type="ok", f="delete", key="k0", value={"version": 0}))
    assert isinstance(deleted, RegisterGen) and deleted.versions == (0,)


def test_no_delete_of_a_key_not_known_to_exist() -> None:
    ctx = gen.Context.initial(2, nemesis=False)
    history = gen.simulate(gen.limit(300, RegisterGen(("k0", "k1"), (0, 0), state=3)), ctx,
                           complete=lambda op: ("fail", 1000))
    assert not [o for o in invokes(history) if o.f == "delete"]
    assert all(o.value["version"] in (0, 1) for o in invokes(history) if o.f == "put")


def test_final_reads_read_every_key_until_one_succeeds() -> None:
    ctx = gen.Context.initial(4, nemesis=False)
    attempts: Counter[str] = Counter()

    def complete(op: Op) -> tuple[str, int]:
        attempts[str(op.key)] += 1
        return ("ok" if attempts[str(op.key)] >= 3 else "fail"), 1_000_000

    history = gen.simulate(final_generator({**OPTIONS, "client_mode": "smart"}, random.Random(1)), ctx,
                           complete=complete)
    assert all(o.f == "get" for o in history)
    assert attempts == {"k0": 3, "k1": 3, "k2": 3}, "one reader per key, until the first ok"


class StubKV:
    """Stands in for raftkv.client.KVClient: answers or raises what the test scripts."""

    def __init__(self, outcome: Any, attempts: tuple[Attempt, ...] = ()) -> None:
        self.outcome = outcome
        self.attempts = attempts  # what the library would have collected, as it happened
        self.calls: list[tuple[Any, ...]] = []

    async def _answer(self, *call: Any, attempts: list[Attempt] | None = None) -> Any:
        self.calls.append(call)
        if attempts is not None:
            attempts.extend(self.attempts)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome

    async def get(self, key: str, consistency: str = "linearizable", node: str | None = None,
                  timeout: float | None = None, *, attempts: list[Attempt] | None = None) -> Any:
        return await self._answer("get", key, consistency, node, attempts=attempts)

    async def put(self, key: str, value: str, version: int, *, timeout: float | None = None,
                  attempts: list[Attempt] | None = None) -> Any:
        return await self._answer("put", key, value, version, attempts=attempts)

    async def delete(self, key: str, version: int, *, timeout: float | None = None,
                     attempts: list[Attempt] | None = None) -> Any:
        return await self._answer("delete", key, version, attempts=attempts)

    async def close(self) -> None:
        return None


class Host:
    def __init__(self, name: str, address: str) -> None:
        self.name, self.address = name, address


async def opened(tmp_path: Path, outcome: Any, **options: Any) -> tuple[RegisterClient, StubKV]:
    hosts = [Host("n1", "10.0.0.11"), Host("n2", "10.0.0.12"), Host("n3", "10.0.0.13")]
    test = Ctx(name="t", options={}, hosts=hosts, backend=None, db=None, seed=1,  # type: ignore[arg-type]
               store_dir=tmp_path)
    client = await RegisterClient({"client_mode": "smart", **options}).open(test, "n2")
    assert isinstance(client, RegisterClient)
    assert client._addresses[0] == "10.0.0.12:8000"  # a worker talks to its own node first
    stub = StubKV(outcome)
    client._kv = stub  # type: ignore[assignment]
    return client, stub


PUT = Op(process=4, type="invoke", f="put", key="k1", value={"value": "17", "version": 2})
GET = Op(process=4, type="invoke", f="get", key="k1")
DELETE = Op(process=4, type="invoke", f="delete", key="k1", value={"version": 3})


@pytest.mark.parametrize(("op", "outcome", "expected"), [
    (PUT, PutResult(3, "10.0.0.11:8000"), ("ok", {"version": 3}, None, "n1")),
    (DELETE, PutResult(0, "10.0.0.11:8000"), ("ok", {"version": 0}, None, "n1")),
    (GET, GetResult("17", 3, "10.0.0.13:8000"), ("ok", {"value": "17", "version": 3}, None, "n3")),
    (GET, GetResult(None, 0, "10.0.0.13:8000"), ("ok", {"value": None, "version": 0}, None, "n3")),
    (PUT, VersionMismatch("v4", node="10.0.0.11:8000", current_version=4), ("fail", None, "version-mismatch", "n1")),
    (DELETE, NoKey("gone"), ("fail", None, "no-key", None)),
    (PUT, Unavailable("nobody took it"), ("fail", None, "unavailable", None)),
    (PUT, Maybe("commit unconfirmed"), ("info", None, "maybe", None)),
    (PUT, Timeout("no answer"), ("info", None, "timeout", None)),
    (DELETE, Timeout("no answer"), ("info", None, "timeout", None)),
    (GET, Timeout("no answer"), ("fail", None, "timeout", None)),  # a read without an answer changed nothing
])
async def test_outcomes_follow_jepsen(tmp_path: Path, op: Op, outcome: Any,
                                      expected: tuple[str, Any, str | None, str | None]) -> None:
    client, stub = await opened(tmp_path, outcome)
    done = await client.invoke(None, op)  # type: ignore[arg-type]
    assert (done.type, done.value, done.error, done.node) == expected
    assert (done.process, done.f, done.key) == (op.process, op.f, op.key)
    if op.f == "put":
        assert stub.calls == [("put", "k1", "17", 2)]


async def test_the_librarys_retries_are_recorded_in_the_completion(tmp_path: Path) -> None:
    tried = (Attempt("10.0.0.12:8000", "connection-lost"), Attempt("10.0.0.11:8000", "ok"))
    client, stub = await opened(tmp_path, PutResult(3, "10.0.0.11:8000", replayed=True))
    stub.attempts = tried
    done = await client.invoke(None, PUT)  # type: ignore[arg-type]
    assert (done.type, done.value) == ("ok", {"version": 3, "replayed": True,
                                              "attempts": [["n2", "connection-lost"], ["n1", "ok"]]})
    stub.outcome, stub.attempts = Maybe("unknown"), tried[:1] + (Attempt("10.0.0.13:8000", "maybe"),)
    done = await client.invoke(None, DELETE)  # type: ignore[arg-type]
    assert (done.type, done.value, done.error) == ("info", {"attempts": [["n2", "connection-lost"], ["n3", "maybe"]]},
                                                   "maybe")
    stub.outcome, stub.attempts = PutResult(4, "10.0.0.11:8000"), tried[1:]
    done = await client.invoke(None, PUT)  # type: ignore[arg-type]
    assert done.value == {"version": 4}  # one attempt: nothing to add


def test_the_churn_mix_deletes_as_often_as_it_reads_and_bad_mixes_are_refused() -> None:
    """`--mix churn` (issue 15): the churn weights, drawn from the same seed stream; every delete makes the key's
    next write a create."""
    ctx = gen.Context.initial(1, nemesis=False)
    churn = generator({"keys": 2, "mix": "churn"}, random.Random(11))
    history = gen.simulate(gen.limit(8000, churn), ctx, complete=lambda op: ("ok", 1000))
    ops = invokes(history)
    share = Counter(o.f for o in ops)
    weights = dict(register.MIXES["churn"])
    assert abs(share["delete"] / len(ops) - weights["delete"]) < 0.03, share
    assert abs(share["get"] / len(ops) - weights["get"]) < 0.03, share
    assert register.mix_name({}) == "default" and register.mix_name({"mix": "churn"}) == "churn"
    with pytest.raises(ValueError, match="--mix must be one of"):
        generator({"mix": "chaos"}, random.Random(1))


async def test_stale_reads_go_to_a_random_node(tmp_path: Path) -> None:
    client, stub = await opened(tmp_path, GetResult("1", 1, "10.0.0.11:8000"), read_consistency="stale")
    for _ in range(30):
        await client.invoke(None, GET)  # type: ignore[arg-type]
    assert {c[2] for c in stub.calls} == {"stale"}
    assert {c[3] for c in stub.calls} == {"10.0.0.11:8000", "10.0.0.12:8000", "10.0.0.13:8000"}
    linear, stub2 = await opened(tmp_path, GetResult("1", 1, None))
    await linear.invoke(None, GET)  # type: ignore[arg-type]
    assert stub2.calls == [("get", "k1", "linearizable", None)]


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="read-consistency"):
        RegisterClient({"read_consistency": "eventual"})
    with pytest.raises(ValueError, match="client-mode"):
        RegisterClient({"client_mode": "leader"})
    with pytest.raises(ValueError, match="--keys must be >= 1"):
        register.key_names(0)


def test_checked_per_key_with_the_versioned_kv_model_plus_stats_and_the_grey_box_and_liveness_checkers() -> None:
    checkers = register.checker({"checker_timeout": 30, "recovery_bound_s": 7.0})
    assert set(checkers) == {"linearizable", "stats", "convergence", "election", "log-matching", "recovery"}
    assert checkers["linearizable"].model.name == "versioned-kv" and checkers["linearizable"].timeout == 30.0


def _events(*rows: tuple[Any, ...]) -> list[dict[str, Any]]:
    out = []
    for i, (process, type_, f, value, time_, *error) in enumerate(rows):
        event = {"index": i, "process": process, "type": type_, "f": f, "key": "k0", "value": value, "time": time_}
        if error:
            event["error"] = error[0]
        out.append(event)
    return out


def test_the_checker_accepts_a_linearizable_history_and_names_a_stale_read() -> None:
    checkers = register.checker({})
    good = _events(
        (0, "invoke", "put", {"value": "a", "version": 0}, 1), (0, "ok", "put", {"version": 1}, 2),
        (1, "invoke", "put", {"value": "b", "version": 0}, 3), (1, "fail", "put", None, 4, "version-mismatch"),
        (1, "invoke", "get", None, 5), (1, "ok", "get", {"value": "a", "version": 1}, 6),
    )
    assert checkers["linearizable"].check({}, good)["valid"] is True
    stale = good + _events(
        (0, "invoke", "put", {"value": "c", "version": 1}, 7), (0, "ok", "put", {"version": 2}, 8),
        (2, "invoke", "get", None, 9), (2, "ok", "get", {"value": "a", "version": 1}, 10),  # after c: stale
    )
    for i, event in enumerate(stale):
        event["index"] = i
    result = checkers["linearizable"].check({}, stale)
    assert result["valid"] is False and result["parts"]["invalid"] == ["k0"]
    assert result["failure"]["part"] == "k0"


async def test_a_read_without_an_answer_moves_on_to_the_next_node(tmp_path: Path, monkeypatch: Any) -> None:
    made: list[tuple[list[str], dict[str, Any]]] = []

    class RecordingKV(StubKV):
        def __init__(self, addresses: list[str], **kwargs: Any) -> None:
            super().__init__(Timeout("no answer"))
            made.append((list(addresses), kwargs))

    monkeypatch.setattr(raftkv_register, "KVClient", RecordingKV)
    client, _ = await opened(tmp_path, Timeout("no answer"), client_sessions="off")
    await client.invoke(None, GET)  # type: ignore[arg-type]
    assert made[-1][0] == ["10.0.0.13:8000", "10.0.0.11:8000", "10.0.0.12:8000"]
    # the library as configured: a quarter of the deadline per attempt, and --client-sessions off honoured
    assert made[-1][1] == {"timeout": client.timeout, "attempt_timeout": client.timeout / 4, "sessions": False}


def test_the_client_answers_before_the_engine_gives_up() -> None:
    assert raftkv_register.client_timeout({"op_timeout": 5.0}) == 4.5
    assert raftkv_register.client_timeout({"op_timeout": 1.0}) == 0.8
    assert raftkv_register.client_timeout({}) == 4.5
    assert 0 < raftkv_register.client_timeout({"op_timeout": 0.01}) <= 0.05


async def test_lease_reads_ask_the_leader_under_its_lease(tmp_path: Path) -> None:
    client, stub = await opened(tmp_path, GetResult("1", 1, None), read_consistency="lease")
    await client.invoke(None, GET)  # type: ignore[arg-type]
    assert stub.calls == [("get", "k1", "lease", None)]


# -- node mode: each worker bound to one node, recording what that node answered ----------------------------------


def _reply(code: str, status: int | None = None, definite: bool | None = None, **body: Any) -> Reply:
    kind = ERRORS.get(code)
    if status is None:
        status = 200 if code == "ok" else (kind.http_status if kind else None)
    if definite is None:
        definite = code == "ok" or (kind.definite if kind else code == "unreachable")
    return Reply("10.0.0.12:8000", status, code, definite, body)


@pytest.mark.parametrize(("f", "reply", "expected"), [
    ("put", _reply("ok", version=3), ("ok", {"version": 3}, None)),
    ("delete", _reply("ok", version=0), ("ok", {"version": 0}, None)),
    ("get", _reply("ok", value="7", version=2), ("ok", {"value": "7", "version": 2}, None)),
    ("get", _reply("no-key"), ("ok", {"value": None, "version": 0}, None)),  # the read's answer: absent
    ("put", _reply("not-leader", leader="n1"), ("fail", None, "not-leader")),  # redirected: nothing proposed
    ("get", _reply("not-leader"), ("fail", None, "not-leader")),  # a lease read at a follower
    ("put", _reply("unavailable"), ("fail", None, "unavailable")),
    ("put", _reply("version-mismatch", current_version=4), ("fail", None, "version-mismatch")),
    ("delete", _reply("no-key"), ("fail", None, "no-key")),
    ("put", _reply("bad-request"), ("fail", None, "bad-request")),
    ("put", _reply("maybe"), ("info", None, "maybe")),
    ("delete", _reply("maybe"), ("info", None, "maybe")),
    ("get", _reply("maybe"), ("fail", None, "maybe")),  # a read changes nothing
    ("put", _reply("timeout", None, False), ("info", None, "timeout")),
    ("get", _reply("timeout", None, False), ("fail", None, "timeout")),
    ("put", _reply("connection-lost", None, False), ("info", None, "connection-lost")),
    ("put", _reply("unreachable", None, True), ("fail", None, "unreachable")),  # never sent
    ("put", _reply("http-500", 500, False), ("info", None, "http-500")),  # not an answer the API documents
    ("put", _reply("ok"), ("info", None, "bad-answer")),  # ok without the version the API promises
    ("get", _reply("ok", value=None, version=1), ("fail", None, "bad-answer")),
])
def test_node_mode_records_the_nodes_answer_with_jepsens_certainty(f: str, reply: Reply,
                                                                   expected: tuple[str, Any, str | None]) -> None:
    assert raftkv_register.completion(f, reply) == expected


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_a_writes_refusal_is_fail_exactly_when_the_error_table_says_definite(code: str) -> None:
    for f in ("put", "delete"):
        type_, _, error = raftkv_register.completion(f, _reply(code))
        assert (type_, error) == ("fail" if ERRORS[code].definite else "info", code)


class StubNodeClient:
    """Stands in for raftkv.client.NodeClient: answers each call with the scripted reply and records it."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.calls: list[tuple[Any, ...]] = []

    async def get(self, key: str, consistency: str = "linearizable", timeout: float | None = None) -> Reply:
        self.calls.append(("get", key, consistency))
        return self.reply

    async def put(self, key: str, value: str, version: int, timeout: float | None = None) -> Reply:
        self.calls.append(("put", key, value, version))
        return self.reply

    async def delete(self, key: str, version: int, timeout: float | None = None) -> Reply:
        self.calls.append(("delete", key, version))
        return self.reply

    async def close(self) -> None:
        return None


async def test_node_mode_binds_a_worker_to_its_node_and_names_it(tmp_path: Path) -> None:
    hosts = [Host("n1", "10.0.0.11"), Host("n2", "10.0.0.12"), Host("n3", "10.0.0.13")]
    test = Ctx(name="t", options={}, hosts=hosts, backend=None, db=None, seed=1,  # type: ignore[arg-type]
               store_dir=tmp_path)
    client = await RegisterClient({"read_consistency": "stale"}).open(test, "n2")
    assert isinstance(client, NodeBoundClient) and client._client.node == "10.0.0.12:8000"
    stub = StubNodeClient(_reply("not-leader", leader="n1"))
    client._client = stub  # type: ignore[assignment]
    done = await client.invoke(None, PUT)  # type: ignore[arg-type]
    assert (done.type, done.node, done.error, done.process, done.key) == ("fail", "n2", "not-leader", 4, "k1")
    assert stub.calls == [("put", "k1", "17", 2)], "one request, to its own node: no redirect followed"
    await client.invoke(None, GET)  # type: ignore[arg-type]
    assert stub.calls[-1] == ("get", "k1", "stale")


def test_node_mode_final_reads_read_every_key_through_every_node() -> None:
    """Six workers on three nodes (thread t on node t mod 3): every key is read until ok through each node's
    workers; a node whose reads keep failing (n3 here, its first four) is asked again, the others are not."""
    ctx = gen.Context.initial(6, nemesis=False)
    tries: Counter[tuple[int, str]] = Counter()

    def complete(op: Op) -> tuple[str, int]:
        node = gen.node_index(ctx.thread_of(op.process), 3)
        assert node is not None
        tries[(node, str(op.key))] += 1
        return ("fail" if node == 2 and tries[(node, str(op.key))] <= 4 else "ok"), 1_000_000

    history = gen.simulate(final_generator({"keys": 2, "nodes": 3, "client_mode": "node"}, random.Random(1)), ctx, complete=complete)
    assert all(o.f == "get" for o in history)
    assert tries == {(0, "k0"): 1, (0, "k1"): 1, (1, "k0"): 1, (1, "k1"): 1, (2, "k0"): 5, (2, "k1"): 5}
    # A node's retries of one key are spaced FINAL_RETRY_S apart: a refusing node is not asked in a tight loop.
    n3_k0 = [o.time for o in history if o.type == "invoke" and o.key == "k0"
             and gen.node_index(ctx.thread_of(o.process), 3) == 2]
    assert all(b - a >= gen.secs(common.FINAL_RETRY_S) for a, b in zip(n3_k0, n3_k0[1:], strict=False))


def test_node_mode_final_reads_skip_a_node_without_a_worker() -> None:
    ctx = gen.Context.initial(2, nemesis=False)  # two workers, three nodes: nobody is bound to n3
    history = gen.simulate(final_generator({"keys": 1, "nodes": 3, "client_mode": "node"}, random.Random(1)), ctx)
    assert sorted(o.process for o in history if o.type == "invoke") == [0, 1]


async def test_mixed_mode_binds_the_first_worker_of_each_node_and_gives_the_others_the_library(
        tmp_path: Path) -> None:
    hosts = [Host("n1", "10.0.0.11"), Host("n2", "10.0.0.12"), Host("n3", "10.0.0.13")]
    test = Ctx(name="t", options={}, hosts=hosts, backend=None, db=None, seed=1,  # type: ignore[arg-type]
               store_dir=tmp_path)
    factory = RegisterClient({"client_mode": "mixed"})
    kinds = {}
    for worker in range(7):
        node = hosts[gen.node_index(worker, 3) or 0].name
        client = await factory.open_worker(test, node, worker)
        kinds[worker] = type(client).__name__
        if isinstance(client, RegisterClient):
            assert client._addresses[0] == f"10.0.0.1{worker % 3 + 1}:8000"  # the library starts at its node
        await client.close(test)
    assert kinds == {0: "NodeBoundClient", 1: "NodeBoundClient", 2: "NodeBoundClient",
                     3: "RegisterClient", 4: "RegisterClient", 5: "RegisterClient", 6: "RegisterClient"}
    # The other modes place one kind of client on every worker, whichever way they are opened.
    assert isinstance(await RegisterClient({"client_mode": "node"}).open_worker(test, "n1", 5), NodeBoundClient)
    assert isinstance(await RegisterClient({"client_mode": "smart"}).open_worker(test, "n1", 0), RegisterClient)


def test_mixed_mode_final_reads_go_through_the_node_bound_workers_only() -> None:
    ctx = gen.Context.initial(7, nemesis=False)  # threads 0..2 bound to n1..n3; 3..6 run the library
    history = gen.simulate(final_generator({"keys": 2, "nodes": 3, "client_mode": "mixed"}, random.Random(1)), ctx)
    readers = {(o.process, o.key) for o in history if o.type == "invoke"}
    assert readers == {(t, k) for t in range(3) for k in ("k0", "k1")}
