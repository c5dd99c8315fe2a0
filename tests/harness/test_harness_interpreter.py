"""The interpreter against in-memory clients and nemesis (no hosts, no network): recording, info/fail rules,
process renumbering, timeouts, nemesis events, rate, cancellation."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from harness import generator as g
from harness.interpreter import Interpreter, Tally
from harness.protocols import Op, TestContext
from harness.store import HistoryWriter, read_jsonl


@dataclass
class Host:
    name: str
    address: str


class MemClient:
    """Behaviour per op value: "ok", "fail", "raise", "hang", ("sleep", s); counts opens and closes."""

    opens = 0
    closes = 0

    async def open(self, test: TestContext, node: str) -> MemClient:
        type(self).opens += 1
        c = MemClient()
        c.node = node  # type: ignore[attr-defined]
        return c

    async def invoke(self, test: TestContext, op: Op) -> Op:
        v = op.value
        if isinstance(v, list) and v[0] == "sleep":
            await asyncio.sleep(v[1])
            return replace(op, type="ok")
        if v == "fail":
            return replace(op, type="fail", error="refused")
        if v == "raise":
            raise ConnectionResetError("peer went away")
        if v == "hang":
            await asyncio.sleep(3600)
        if v == "bogus":
            return "not an op"  # type: ignore[return-value]
        return replace(op, type="ok", value={"echo": v})

    async def close(self, test: TestContext) -> None:
        type(self).closes += 1


class FailingOpen:
    async def open(self, test: TestContext, node: str) -> Any:
        raise OSError("connection refused")


class MemNemesis:
    def __init__(self) -> None:
        self.calls: list[Op] = []

    def faults(self) -> set[str]:
        return {"x"}

    async def setup(self, test: TestContext) -> None: ...

    async def invoke(self, test: TestContext, op: Op) -> Op:
        self.calls.append(op)
        if op.value.get("boom"):
            raise RuntimeError("iptables exploded")
        return replace(op, type="info", value={**op.value, "targets": ["n2"]})

    async def heal(self, test: TestContext) -> dict[str, Any]:
        return {"ok": True}

    async def teardown(self, test: TestContext) -> None: ...


def make(tmp_path: Path, *, concurrency: int = 2, client: Any = MemClient, nemesis: Any = None,
         op_timeout: float = 1.0) -> tuple[Interpreter, HistoryWriter, Tally]:
    test = TestContext(name="t", options={}, hosts=[Host("n1", "a1"), Host("n2", "a2")], backend=None,  # type: ignore[arg-type]
                       db=None, seed=1, store_dir=tmp_path)  # type: ignore[arg-type]
    hist = HistoryWriter(tmp_path / "history.jsonl")
    tally = Tally()
    interp = Interpreter(test, history=hist, origin_ns=__import__("time").monotonic_ns(), concurrency=concurrency,
                         client_factory=client, nemesis=nemesis, op_timeout=op_timeout, open_timeout=1.0,
                         observers=[tally.observe])
    return interp, hist, tally


def load(tmp_path: Path) -> list[dict[str, Any]]:
    return read_jsonl(tmp_path / "history.jsonl")


def check_well_formed(h: list[dict[str, Any]]) -> None:
    assert [e["index"] for e in h] == list(range(len(h)))
    open_: dict[Any, dict[str, Any]] = {}
    for e in h:
        if e["type"] == "invoke":
            assert e["process"] not in open_, f"process {e['process']} invoked twice: {e}"
            open_[e["process"]] = e
        else:
            inv = open_.pop(e["process"])
            assert inv["f"] == e["f"]
            assert inv["time"] <= e["time"]


async def test_ops_are_recorded_live_with_times_around_the_request(tmp_path: Path) -> None:
    interp, hist, tally = make(tmp_path)
    await interp.run(g.then({"f": "w", "value": ["sleep", 0.03]}, {"f": "w", "value": 7}))
    h = load(tmp_path)
    check_well_formed(h)
    assert [e["type"] for e in h if e["process"] == 0][:2] == ["invoke", "ok"]
    slow_inv, slow_ok = h[0], next(e for e in h if e["type"] == "ok" and e["f"] == "w" and e["process"] == 0)
    assert slow_ok["time"] - slow_inv["time"] >= 30_000_000
    assert {e["node"] for e in h} <= {"n1", "n2"}
    assert tally.ok == 2


async def test_fail_is_kept_exception_and_bogus_reply_become_info(tmp_path: Path) -> None:
    interp, _, tally = make(tmp_path, concurrency=1)
    await interp.run(g.then({"f": "w", "value": "fail"}, {"f": "w", "value": "raise"}, {"f": "w", "value": "bogus"},
                            {"f": "w", "value": 1}))
    h = load(tmp_path)
    check_well_formed(h)
    done = [e for e in h if e["type"] != "invoke"]
    assert [(e["type"], e["process"]) for e in done] == [("fail", 0), ("info", 0), ("info", 1), ("ok", 2)]
    assert done[0]["error"] == "refused"
    assert done[1]["error"] == "ConnectionResetError: peer went away"
    assert "not a completion op" in done[2]["error"]
    assert done[1]["value"] == "raise"  # an info keeps the invoke's value: the write may have happened
    assert (tally.ok, tally.fail, tally.info) == (1, 1, 2)


async def test_timeout_is_info_and_the_client_is_reopened_under_a_new_process(tmp_path: Path) -> None:
    MemClient.opens = MemClient.closes = 0
    interp, _, _ = make(tmp_path, concurrency=1, op_timeout=0.05)
    await interp.run(g.then({"f": "w", "value": "hang"}, {"f": "w", "value": 2}))
    h = load(tmp_path)
    assert [(e["type"], e["process"], e.get("error")) for e in h] == [
        ("invoke", 0, None), ("info", 0, "timeout"), ("invoke", 1, None), ("ok", 1, None)]
    assert MemClient.opens == 2 and MemClient.closes == 2
    assert interp.processes[0] == 1  # kept for the next phase


async def test_a_client_that_cannot_open_yields_fail_no_client(tmp_path: Path) -> None:
    interp, _, _ = make(tmp_path, concurrency=1, client=FailingOpen)
    await interp.run(g.lift({"f": "w", "value": 1}))
    h = load(tmp_path)
    assert [e["type"] for e in h] == ["invoke", "fail"]
    assert h[1]["error"].startswith("no-client: OSError: connection refused")


async def test_nemesis_ops_are_invoke_then_info_with_what_was_done(tmp_path: Path) -> None:
    nem = MemNemesis()
    interp, _, tally = make(tmp_path, nemesis=nem)
    gen = g.clients_and_nemesis(g.repeat({"f": "w", "value": 1}, 3),
                                [{"f": "start", "value": {"fault": "x"}}, {"f": "stop", "value": {"fault": "x", "boom": 1}}])
    await interp.run(gen)
    h = load(tmp_path)
    check_well_formed(h)
    nemesis = [e for e in h if e["process"] == "nemesis"]
    assert [(e["type"], e["f"]) for e in nemesis] == [("invoke", "start"), ("info", "start"), ("invoke", "stop"),
                                                      ("info", "stop")]
    assert nemesis[1]["value"] == {"fault": "x", "targets": ["n2"]}
    assert nemesis[3]["error"] == "RuntimeError: iptables exploded"
    assert tally.faults == {} and tally.nemesis_events == 2


class FreshValueNemesis(MemNemesis):
    """Answers with a value of its own making, as the real nemeses do (it knows nothing of schedules)."""

    async def invoke(self, test: TestContext, op: Op) -> Op:
        self.calls.append(op)
        return replace(op, type="info", value={"targets": ["n1"]} if op.f == "start" else {"fault": "x"})


async def test_the_schedules_fault_and_move_stay_on_the_nemesis_completion(tmp_path: Path) -> None:
    interp, _, _ = make(tmp_path, nemesis=FreshValueNemesis())
    gen = g.nemesis([{"f": "start", "value": {"fault": "x", "target": "leader", "move": "leader-churn"}},
                     {"f": "stop", "value": {"fault": "x", "move": "leader-churn"}}])
    await interp.run(gen)
    done = [e["value"] for e in load(tmp_path) if e["process"] == "nemesis" and e["type"] == "info"]
    # The nemesis's own fields win; what the schedule said of the op is added, nothing else of the invoke.
    assert done == [{"fault": "x", "move": "leader-churn", "targets": ["n1"]}, {"fault": "x", "move": "leader-churn"}]


async def test_rate_is_honoured_in_real_time(tmp_path: Path) -> None:
    interp, _, tally = make(tmp_path, concurrency=4)
    await interp.run(g.time_limit(0.5, g.rate(200, g.repeat({"f": "w", "value": 1}))))
    assert 90 <= tally.ok <= 101


async def test_throughput_without_rate_limit(tmp_path: Path) -> None:
    interp, _, tally = make(tmp_path, concurrency=10)
    t0 = asyncio.get_running_loop().time()
    await interp.run(g.time_limit(1.0, g.repeat({"f": "w", "value": 1})))
    rate = tally.ok / (asyncio.get_running_loop().time() - t0)
    assert rate > 1500, f"only {rate:.0f} ops/s"  # measured ~8000/s on an idle core; the machine is shared


async def test_cancellation_leaves_a_well_formed_prefix(tmp_path: Path) -> None:
    interp, hist, _ = make(tmp_path, concurrency=3)
    task = asyncio.create_task(interp.run(g.repeat({"f": "w", "value": ["sleep", 0.01]})))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    h = load(tmp_path)
    assert len(h) > 10
    assert [e["index"] for e in h] == list(range(len(h)))
    # every line is complete JSON (the file is appended one whole line per write)
    for line in (tmp_path / "history.jsonl").read_text().splitlines():
        json.loads(line)


async def test_generator_misuse_is_reported(tmp_path: Path) -> None:
    class Liar(g.Generator):
        def op(self, ctx: g.Context) -> g.OpResult:
            return Op(process=99, type="invoke", f="w", time=ctx.time), self

    interp, _, _ = make(tmp_path)
    with pytest.raises(g.GeneratorError, match="busy or unknown process"):
        await interp.run(Liar())


async def test_misuse_found_while_a_worker_dispatches_inline_is_reported(tmp_path: Path) -> None:
    """After a completion the worker runs the dispatch step itself: a generator error raised there still ends
    the run with that error (not a hang, not an exception group)."""

    @dataclass(frozen=True)
    class SecondLies(g.Generator):
        sent: int = 0

        def op(self, ctx: g.Context) -> g.OpResult:
            if self.sent == 0:
                return Op(process=0, type="invoke", f="w", value=1, time=ctx.time), SecondLies(1)
            if 0 in ctx.free:  # the first op completed: now name a process that does not exist
                return Op(process=99, type="invoke", f="w", time=ctx.time), self
            return g.PENDING, self

    interp, _, _ = make(tmp_path)
    async with asyncio.timeout(5):
        with pytest.raises(g.GeneratorError, match="busy or unknown process"):
            await interp.run(SecondLies())


async def test_a_wait_asked_for_after_a_completion_is_honoured(tmp_path: Path) -> None:
    """A completion handled inline that makes the generator wait for a time (a sleep) wakes the dispatcher to
    wait for it: the next op goes out after the sleep, and the run ends."""
    interp, _, _ = make(tmp_path, concurrency=1)
    async with asyncio.timeout(5):
        await interp.run(g.then({"f": "a", "value": 1}, g.sleep(0.05), {"f": "b", "value": 1}))
    h = load(tmp_path)
    check_well_formed(h)
    assert [(e["f"], e["type"]) for e in h] == [("a", "invoke"), ("a", "ok"), ("b", "invoke"), ("b", "ok")]
    assert h[2]["time"] - h[1]["time"] >= 0.045e9


def test_the_spelled_out_op_copies_keep_every_field(tmp_path: Path) -> None:
    """The interpreter and the history writer copy ops field by field (faster than dataclasses.replace): a field
    added to Op must be added there too, or it would be dropped silently."""
    from dataclasses import fields

    from harness.interpreter import _at

    op = Op(process=3, type="ok", f="put", key="k", value={"v": 1}, time=5, node="n1", error="e", index=7)
    assert {f.name for f in fields(Op)} == {"process", "type", "f", "key", "value", "time", "node", "error", "index"}
    assert _at(op, 9, "n2") == replace(op, time=9, node="n2")
    assert HistoryWriter(tmp_path / "h.jsonl").record(op) == replace(op, index=0)
    hist = HistoryWriter(tmp_path / "h2.jsonl")
    assert hist.event(3, "ok", "put", "k", {"v": 1}, 5, "n1", "e") == replace(op, index=0)


def test_the_hand_written_op_init_takes_every_field_with_its_default_and_stays_frozen() -> None:
    """Op.__init__ is written out for speed: it must take exactly the fields, keyword-only, with their defaults,
    set each one, and leave the op immutable."""
    import dataclasses
    import inspect

    params = inspect.signature(Op.__init__).parameters
    declared = dataclasses.fields(Op)
    assert [n for n in params if n != "self"] == [f.name for f in declared]
    for f in declared:
        assert params[f.name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[f.name].default == (inspect.Parameter.empty if f.default is dataclasses.MISSING
                                          else f.default), f.name
    values = {"process": 3, "type": "ok", "f": "put", "key": "k", "value": {"v": 1}, "time": 5, "node": "n1",
              "error": "e", "index": 7}
    op = Op(**values)  # type: ignore[arg-type]
    assert {f.name: getattr(op, f.name) for f in declared} == values
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.time = 6  # type: ignore[misc]


async def test_every_op_is_bounded_by_its_own_timeout_when_ops_start_at_different_times(tmp_path: Path) -> None:
    """One watchdog serves all workers: ops that hang, started at different times, each end as info/timeout
    about op_timeout after their own invoke (not sooner, not much later), while quick ops go on around them."""
    # Starts 0.25 s apart with a 0.5 s timeout: a watchdog that ended them all at one deadline would make the first
    # last about 1 s; the 0.3 s of slack above the timeout is for a loaded machine.
    interp, _, _ = make(tmp_path, concurrency=3, op_timeout=0.5)
    async with asyncio.timeout(10):
        await interp.run(g.then({"f": "w", "value": "hang"}, {"f": "w", "value": ["sleep", 0.25]},
                                {"f": "w", "value": "hang"}, g.sleep(0.25), {"f": "w", "value": "hang"},
                                g.repeat({"f": "r", "value": 1}, 20)))
    h = load(tmp_path)
    check_well_formed(h)
    timeouts = [e for e in h if e.get("error") == "timeout"]
    assert len(timeouts) == 3
    for e in timeouts:
        inv = [i for i in h if i["type"] == "invoke" and i["process"] == e["process"] and i["index"] < e["index"]][-1]
        assert 0.5e9 <= e["time"] - inv["time"] < 0.8e9, (inv, e)
    assert sum(1 for e in h if e["f"] == "r" and e["type"] == "ok") == 20


class Swallower(MemClient):
    """Catches the cancellation of a timed-out op and answers anyway."""

    async def open(self, test: TestContext, node: str) -> Swallower:
        return Swallower()

    async def invoke(self, test: TestContext, op: Op) -> Op:
        if op.value == "hang":
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                return replace(op, type="ok", value="late")
        return await super().invoke(test, op)


async def test_a_client_that_swallows_the_timeout_keeps_its_answer_and_the_worker_goes_on(tmp_path: Path) -> None:
    interp, _, _ = make(tmp_path, concurrency=1, client=Swallower, op_timeout=0.05)
    async with asyncio.timeout(5):
        await interp.run(g.then({"f": "w", "value": "hang"}, {"f": "w", "value": ["sleep", 0.02]}))
    h = load(tmp_path)
    check_well_formed(h)
    # The late answer stands (as under asyncio.timeout), and no cancellation is left over to hit the next op.
    assert [(e["type"], e["process"], e["value"]) for e in h] == [
        ("invoke", 0, "hang"), ("ok", 0, "late"), ("invoke", 0, ["sleep", 0.02]), ("ok", 0, ["sleep", 0.02])]


async def test_cancelling_the_run_during_a_timed_out_op_still_cancels_it(tmp_path: Path) -> None:
    """An outer cancellation that lands as the watchdog expires an op is not mistaken for the op's timeout."""
    interp, _, _ = make(tmp_path, concurrency=1, op_timeout=0.1)
    task = asyncio.create_task(interp.run(g.repeat({"f": "w", "value": "hang"})))
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    # Cancel the run in the same loop iteration as the op's deadline (the watchdog's timer is due then too).
    loop.call_at(interp._deadlines[0], task.cancel)
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await task


class PlacedClient(MemClient):
    """A factory with the WorkerPlacement capability: it is told which worker each client is for."""

    placed: list[tuple[str, int]] = []

    async def open_worker(self, test: TestContext, node: str, worker: int) -> MemClient:
        type(self).placed.append((node, worker))
        return await self.open(test, node)


async def test_a_factory_with_worker_placement_is_told_each_workers_thread(tmp_path: Path) -> None:
    PlacedClient.placed = []
    interp, _, _ = make(tmp_path, concurrency=3, client=PlacedClient)
    # Worker 1's first op is info (its client is closed and opened again): the re-open names the same worker.
    await interp.run(g.then(g.on_threads({1}, g.then({"f": "w", "value": "raise"}, {"f": "w", "value": 2})),
                            g.on_threads({0, 2}, g.then({"f": "w", "value": ["sleep", 0.2]},  # both in flight at once
                                                         {"f": "w", "value": ["sleep", 0.2]}))))
    assert sorted(PlacedClient.placed) == [("n1", 0), ("n1", 2), ("n2", 1), ("n2", 1)]
