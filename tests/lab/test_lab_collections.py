"""The `set` and `list-append` workloads (issue 14): the pure generator, the DB-neutral client seam, raftkv's
read-modify-write client against scripted node answers, and real runs on netns hosts (valid under partitions and
kills; a planted lost-update bug caught)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_net import run_prefix
from test_lab_e2e import Run, harness_run

from harness import generator as gen
from harness import registry
from harness.protocols import Op
from raftkv.client import Reply
from workloads import list_append
from workloads import set as set_workload
from workloads.raftkv_clients import RaftkvArrayClient


def invokes(history: list[Op]) -> list[Op]:
    return [op for op in history if op.type == "invoke"]


def test_writes_carry_unique_values_and_reads_follow_the_fraction() -> None:
    ctx = gen.Context.initial(4, nemesis=False)
    ops = invokes(gen.simulate(gen.limit(2000, set_workload.generator({"keys": 3}, random.Random(1))), ctx))
    adds = [op for op in ops if op.f == "add"]
    reads = [op for op in ops if op.f == "read"]
    assert len({op.value for op in adds}) == len(adds) and {op.key for op in ops} == {"s0", "s1", "s2"}
    assert 0.05 < len(reads) / len(ops) < 0.15, len(reads)
    again = invokes(gen.simulate(gen.limit(2000, set_workload.generator({"keys": 3}, random.Random(1))), ctx))
    assert [(o.f, o.key, o.value) for o in again] == [(o.f, o.key, o.value) for o in ops]


def test_final_reads_read_every_list_through_every_node() -> None:
    ctx = gen.Context.initial(6, nemesis=False)
    history = invokes(gen.simulate(list_append.final_generator({"keys": 2, "nodes": 3}, random.Random(0)), ctx))
    assert sorted((o.f, str(o.key), gen.node_index(ctx.thread_of(o.process), 3)) for o in history) == sorted(
        ("read", k, n) for k in ("l0", "l1") for n in range(3))


def test_a_db_without_a_client_for_the_workload_says_so() -> None:
    clientless = registry.DBSpec(name="clientless", factory=lambda options: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(registry.NoClientError, match="db clientless supplies no client for the set workload"):
        registry.client_for(clientless, registry.workload("set"))
    make = registry.client_for(registry.db("raftkv"), registry.workload("list-append"))
    assert isinstance(make({}), RaftkvArrayClient)


class Node:
    """A stand-in NodeClient answering from a script; it records every call."""

    def __init__(self, *answers: Reply) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[Any, ...]] = []

    async def get(self, key: str, consistency: str = "linearizable", timeout: float | None = None) -> Reply:
        self.calls.append(("get", key, consistency))
        return self.answers.pop(0)

    async def put(self, key: str, value: str, version: int, timeout: float | None = None) -> Reply:
        self.calls.append(("put", key, value, version))
        return self.answers.pop(0)

    async def close(self) -> None:
        return None


def got(array: list[int], version: int) -> Reply:
    return Reply("n1", 200, "ok", True, {"value": json.dumps(array), "version": version})


NO_KEY = Reply("n1", 404, "no-key", True, {"code": "no-key"})
MISMATCH = Reply("n1", 409, "version-mismatch", True, {"code": "version-mismatch"})
MAYBE = Reply("n1", 504, "maybe", False, {"code": "maybe"})
REDIRECT = Reply("n1", 307, "not-leader", True, {"code": "not-leader"})
PUT_OK = Reply("n1", 200, "ok", True, {"version": 3})
APPEND = Op(process=2, type="invoke", f="append", key="l0", value=9)


def client(node: Node, **options: Any) -> RaftkvArrayClient:
    return RaftkvArrayClient(options, write="append", address=lambda t, n: "", node="n1", client=node)  # type: ignore


@pytest.mark.parametrize(("answers", "expected", "puts"), [
    ((got([1], 2), PUT_OK), ("ok", 9, None), [("put", "l0", "[1,9]", 2)]),
    ((NO_KEY, PUT_OK), ("ok", 9, None), [("put", "l0", "[9]", 0)]),
    ((got([1], 2), MISMATCH, got([1, 5], 3), PUT_OK), ("ok", 9, None),
     [("put", "l0", "[1,9]", 2), ("put", "l0", "[1,5,9]", 3)]),
    ((got([1], 2), MAYBE), ("info", 9, "maybe"), [("put", "l0", "[1,9]", 2)]),
    ((got([1], 2), REDIRECT), ("fail", 9, "not-leader"), [("put", "l0", "[1,9]", 2)]),
    ((MAYBE,), ("fail", 9, "maybe"), []),  # the read of the round: nothing was written yet
    ((Reply("n1", 200, "ok", True, {"value": "{}", "version": 1}),), ("fail", 9, None), []),
])
async def test_an_append_is_a_compare_and_set_retried_only_after_a_definite_refusal(
        answers: tuple[Reply, ...], expected: tuple[str, Any, str | None], puts: list[tuple[Any, ...]]) -> None:
    node = Node(*answers)
    done = await client(node).invoke(None, APPEND)  # type: ignore[arg-type]
    if expected[2] is None and expected[0] == "fail":
        assert (done.type, done.value) == expected[:2] and str(done.error).startswith("bad-value")
    else:
        assert (done.type, done.value, done.error) == expected
    assert [c for c in node.calls if c[0] == "put"] == puts and not node.answers
    assert all(c[2] == "linearizable" for c in node.calls if c[0] == "get")


async def test_a_read_answers_the_array_and_honours_the_read_consistency() -> None:
    node = Node(got([3, 1], 2), NO_KEY, MAYBE)
    c = client(node, read_consistency="stale")
    read = Op(process=1, type="invoke", f="read", key="l1")
    assert [(d.type, d.value) for d in [await c.invoke(None, read) for _ in range(3)]] == [  # type: ignore[arg-type]
        ("ok", [3, 1]), ("ok", []), ("fail", None)]
    assert {call[2] for call in node.calls} == {"stale"}


@pytest.fixture(scope="module")
def collections_prefix() -> Iterator[str]:
    yield from run_prefix("rwc")


def collection_run(prefix: str, store: Path, workload: str, *args: str, time_limit: int = 15) -> Run:
    return harness_run(prefix, store, "--workload", workload, *args, time_limit=time_limit)


@pytest.mark.netns
@pytest.mark.parametrize("workload", ["set", "list-append"])
def test_a_run_under_partitions_and_kills_is_valid(collections_prefix: str, tmp_path: Path, workload: str) -> None:
    run = collection_run(collections_prefix, tmp_path / "store", workload, "--nemesis", "partition,kill",
                         "--schedule", "cycle", "--nemesis-interval", "3", "--seed", "11")
    assert run.code == 0, f"exit code {run.code}\n{run.output[-3000:]}"
    result = run.results["checkers"][workload]
    assert result["valid"] is True and result["anomalies"] == {} and result["acknowledged_count"] > 20, result
    assert run.nemesis_events("start"), "no fault was injected"
    write = "add" if workload == "set" else "append"
    assert {e["f"] for e in run.oks()} == {write, "read"}


@pytest.mark.netns
def test_a_lost_update_bug_is_caught_as_lost_adds(collections_prefix: str, tmp_path: Path) -> None:
    # Several workers at the leader at a high rate, so read-modify-writes of the one key overlap (at the default
    # 100 ops/s over 6 workers the leader's two rarely did: 247 adds in 8 s, none lost).
    run = collection_run(collections_prefix, tmp_path / "store", "set", "--raftkv-failpoints", "cas-ignores-version",
                         "--keys", "1", "--seed", "4", "--concurrency", "12", "--rate", "1000", time_limit=8)
    assert run.code == 1, run.output[-3000:]
    result = run.results["checkers"]["set"]
    assert result["valid"] is False and result["anomalies"].get("lost", 0) > 0, result
    assert "lost" in result["explanation"]
