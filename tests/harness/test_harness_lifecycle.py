"""Teardown by structure (harness.undo, harness.run): the undo stack's order on every path, a whole run's order of
acquisition and release with in-memory fakes (tests/harness/harness_lifecycle_fakes.py) on success, on a failure
in each phase and on cancellation, and the process nemeses' teardown, which must not restart what the DB's
teardown stops next. No hosts, no sleeps."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness_lifecycle_fakes as fakes
import pytest

from harness.phases import setup as setup_mod
from harness.protocols import Op, TestContext
from harness.run import ExitCode, RunConfig, run_test
from harness.undo import UndoStack
from nemesis.process import KillNemesis, PauseNemesis

# -- the undo stack --------------------------------------------------------------------------------------------


def _recorder(done: list[str], name: str, fail: bool = False) -> Any:
    async def step() -> None:
        done.append(name)
        if fail:
            raise RuntimeError(f"{name} failed")

    return step


async def test_steps_run_last_pushed_first_and_a_failing_step_does_not_stop_the_others() -> None:
    done: list[str] = []
    announced: list[str] = []
    async with UndoStack(on_unwind=lambda: announced.append("tear down")) as undo:
        for name in ("hosts", "db", "nemesis"):
            undo.push(name, _recorder(done, name, fail=name == "db"))
        assert done == [] and announced == []
    assert done == ["nemesis", "db", "hosts"] and announced == ["tear down"]
    assert undo.done == done and undo.failed == ["db"]


async def test_an_exception_unwinds_what_was_pushed_and_propagates() -> None:
    done: list[str] = []
    with pytest.raises(KeyError):
        async with UndoStack() as undo:
            undo.push("hosts", _recorder(done, "hosts"))
            raise KeyError("boom")
            undo.push("db", _recorder(done, "db"))  # never reached: nothing to undo for it
    assert done == ["hosts"]


async def test_cancellation_unwinds_everything_and_still_cancels() -> None:
    done: list[str] = []
    entered = asyncio.Event()

    async def work() -> None:
        async with UndoStack() as undo:
            undo.push("hosts", _recorder(done, "hosts"))
            undo.push("db", _recorder(done, "db"))
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(work())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert done == ["db", "hosts"]


async def test_a_step_that_hangs_is_bounded() -> None:
    done: list[str] = []

    async def hang() -> None:
        await asyncio.Event().wait()

    async with UndoStack(timeout=0.01) as undo:
        undo.push("hosts", _recorder(done, "hosts"))
        undo.push("stuck", hang)
    assert undo.failed == ["stuck"] and done == ["hosts"]


# -- a whole run -----------------------------------------------------------------------------------------------

ACQUIRE = ["backend.setup", "nemesis.prepare (mount)", "db.setup n1", "db.start n1", "nemesis.setup"]
# What the run does after the main phase, in order: the heal, then the undo steps in reverse order of acquisition
# (the collection's log downloads are left out of these lists: see _lifecycle).
RELEASE = ["nemesis.heal", "nemesis.teardown (release)", "db.kill n1", "db.teardown n1",
           "nemesis.unprepare (unmount)", "backend.teardown"]
LIFECYCLE = {
    None: ACQUIRE + RELEASE,
    "backend.setup": ["backend.setup", "backend.teardown"],
    "nemesis.prepare (mount)": ["backend.setup", "nemesis.prepare (mount)", "nemesis.unprepare (unmount)",
                                "backend.teardown"],
    "db.setup n1": ["backend.setup", "nemesis.prepare (mount)", "db.setup n1", "db.teardown n1",
                    "nemesis.unprepare (unmount)", "backend.teardown"],
    "db.start n1": ["backend.setup", "nemesis.prepare (mount)", "db.setup n1", "db.start n1", "db.kill n1",
                    "db.teardown n1", "nemesis.unprepare (unmount)", "backend.teardown"],
    "nemesis.setup": ACQUIRE + RELEASE[1:],  # no heal: no fault can have started
    "workload.op": ACQUIRE + RELEASE,  # the main phase fails: healed, then torn down
}


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Iterator[fakes.Script]:
    s = fakes.Script()
    fakes.register(s)
    monkeypatch.setattr(setup_mod, "make_backend", lambda name, **kw: fakes.FakeBackend(s))
    yield s
    fakes.unregister()


def config(store: Path, **kw: Any) -> RunConfig:
    base: dict[str, Any] = dict(workload=fakes.WORKLOAD_NAME, nemeses=(fakes.NEMESIS_NAME,), nodes=1, time_limit=5.0,
                                concurrency=1, rate=0.0, op_timeout=1.0, final_time_limit=0.0, quiesce_timeout=1.0,
                                setup_timeout=1.0, store=store, prefix="renlc", render=False)
    base.update(kw)
    return RunConfig(**base)


def _lifecycle(events: list[str]) -> list[str]:
    """The acquisitions and releases among the events (not the ops, readiness checks, nemesis ops, downloads)."""
    noise = ("workload.op", "db.ready", "nemesis.start", "nemesis.stop", "download ")
    return [e for e in events if not e.startswith(noise)]


@pytest.mark.parametrize("fail_at", list(LIFECYCLE), ids=lambda f: f"fail-at-{f}" if f else "success")
async def test_undo_order_on_success_and_on_a_failure_in_each_phase(script: fakes.Script, tmp_path: Path,
                                                                    fail_at: str | None) -> None:
    script.fail_at = fail_at
    res = await run_test(config(tmp_path / "store"))
    assert _lifecycle(script.events) == LIFECYCLE[fail_at]
    assert res.run_dir is not None
    results = json.loads((res.run_dir / "results.json").read_text())
    if fail_at is None:
        assert res.exit_code == ExitCode.VALID and results["heal"]["ok"] is True, results
    else:
        assert res.exit_code == ExitCode.HARNESS_FAILED and f"injected failure at {fail_at}" in results["error"]
    # The history is complete and closed: every line parses, indexed without a gap; the heal is in results.json
    # exactly when there was one.
    lines = [json.loads(line) for line in (res.run_dir / "history.jsonl").read_text().splitlines()]
    assert [e["index"] for e in lines] == list(range(len(lines)))
    assert ("nemesis.heal" in script.events) == (results["heal"] is not None)


async def test_the_nodes_logs_are_collected_after_the_kill_and_before_the_db_teardown(script: fakes.Script,
                                                                                     tmp_path: Path) -> None:
    res = await run_test(config(tmp_path / "store"))
    events = script.events
    assert events.index("db.kill n1") < events.index("download /fake/n1/log/db.log") < events.index("db.teardown n1")
    assert res.run_dir is not None and (res.run_dir / "n1" / "db.log").read_text() == "log of /fake/n1/log/db.log\n"


async def test_cancellation_in_the_main_phase_heals_then_tears_down_in_order(script: fakes.Script,
                                                                            tmp_path: Path) -> None:
    script.hang = True
    task = asyncio.create_task(run_test(config(tmp_path / "store", op_timeout=30.0)))
    await script.invoked.wait()
    task.cancel()
    res = await task  # the run absorbs the cancellation and reports it
    assert _lifecycle(script.events) == ACQUIRE + RELEASE
    assert res.exit_code == ExitCode.HARNESS_FAILED and res.results is not None and res.results["interrupted"] is True
    assert res.run_dir is not None
    assert all(json.loads(line) for line in (res.run_dir / "history.jsonl").read_text().splitlines())


async def test_cancellation_while_waiting_for_the_db_undoes_what_exists_and_heals_nothing(
        script: fakes.Script, tmp_path: Path) -> None:
    script.hang_ready = True
    task = asyncio.create_task(run_test(config(tmp_path / "store", setup_timeout=60.0)))
    await script.asked_ready.wait()
    task.cancel()
    res = await task
    assert _lifecycle(script.events) == ["backend.setup", "nemesis.prepare (mount)", "db.setup n1", "db.start n1",
                                         "db.kill n1", "db.teardown n1", "nemesis.unprepare (unmount)",
                                         "backend.teardown"]
    assert res.results is not None and res.results["interrupted"] is True and res.results["heal"] is None


async def test_a_layer_is_released_before_the_kill_and_unmounted_after_the_db_teardown(script: fakes.Script,
                                                                                      tmp_path: Path) -> None:
    await run_test(config(tmp_path / "store"))
    order = [script.events.index(e) for e in ("nemesis.heal", "nemesis.teardown (release)", "db.kill n1",
                                              "db.teardown n1", "nemesis.unprepare (unmount)", "backend.teardown")]
    assert order == sorted(order)


# -- the process nemeses' teardown -----------------------------------------------------------------------------


class Ctx:
    """A TestContext over the fake DB, with three nodes."""

    def __init__(self, tmp_path: Path) -> None:
        self.script = fakes.Script()
        self.db = fakes.FakeDB(self.script)
        hosts = [fakes.FakeHost(f"n{i}", self.script) for i in (1, 2, 3)]
        self.test = TestContext(name="t", options={}, backend=fakes.FakeBackend(self.script), db=self.db, seed=1,
                                hosts=hosts, store_dir=tmp_path)  # type: ignore[arg-type]
        self.db.running = set(self.test.nodes)


def start(kind: str, target: str) -> Op:
    return Op(process="nemesis", type="invoke", f="start", value={"fault": kind, "target": target})


async def test_kill_teardown_after_the_heal_and_the_kill_restarts_nothing(tmp_path: Path) -> None:
    c = Ctx(tmp_path)
    kill = KillNemesis(random.Random(1))
    await kill.invoke(c.test, start("kill", "all"))
    assert c.db.running == set()
    await kill.heal(c.test)
    assert c.db.running == {"n1", "n2", "n3"}
    for node in c.test.nodes:  # the engine's collection stops the nodes
        await c.db.kill(c.test, node)
    c.script.events.clear()
    await kill.teardown(c.test)
    assert c.script.events == [] and c.db.running == set()


async def test_kill_teardown_with_nodes_still_held_restarts_nothing(tmp_path: Path) -> None:
    c = Ctx(tmp_path)
    kill = KillNemesis(random.Random(1))
    await kill.invoke(c.test, start("kill", "leader"))
    c.script.events.clear()
    await kill.teardown(c.test)
    assert c.script.events == []


async def test_pause_teardown_resumes_what_it_still_holds_and_only_that(tmp_path: Path) -> None:
    c = Ctx(tmp_path)
    pause = PauseNemesis(random.Random(1))
    await pause.invoke(c.test, start("pause", "leader"))
    c.script.events.clear()
    await pause.teardown(c.test)
    assert c.script.events == ["db.resume n1"]
    c.script.events.clear()
    await pause.teardown(c.test)  # idempotent
    assert c.script.events == []
