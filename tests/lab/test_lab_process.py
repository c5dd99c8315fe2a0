"""Kill and pause nemeses against real processes in real namespaces, through a stand-in DB (http.server daemons).

The nemeses reach processes only through the DB protocol, so a small stand-in DB shows they take down exactly the
targets and bring back exactly what they took down."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness.backends.netns import NetnsRemote as NsRemote
from harness.protocols import Op
from harness.protocols import TestContext as Ctx
from nemesis.process import KillNemesis, PauseNemesis

pytestmark = pytest.mark.netns
PORT = 7998


class StandInDB:
    """Just enough of the DB protocol for process faults: one http.server per host, tracked by PID."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.pids: dict[str, int] = {}

    async def start(self, test: Ctx, node: str) -> None:
        host = test.host(node)
        if node in self.pids and await host.alive(self.pids[node]):
            return
        self.pids[node] = await host.spawn([sys.executable, "-m", "http.server", "--bind", host.address, str(PORT)],
                                           log_path=str(self.log_dir / f"{node}.log"))

    async def kill(self, test: Ctx, node: str) -> None:
        if node in self.pids:
            await test.host(node).signal(self.pids[node], signal.SIGKILL)  # the backend reaps it

    async def pause(self, test: Ctx, node: str) -> None:
        await test.host(node).signal(self.pids[node], signal.SIGSTOP)

    async def resume(self, test: Ctx, node: str) -> None:
        await test.host(node).signal(self.pids[node], signal.SIGCONT)

    async def is_running(self, test: Ctx, node: str) -> bool:
        return node in self.pids and await test.host(node).alive(self.pids[node])

    async def status(self, test: Ctx, node: str) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.get(
                f"http://{test.host(node).address}:{PORT}/", timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return {"http": resp.status}

    async def leader(self, test: Ctx) -> str | None:
        return "n3"


async def wait_for(condition: Any, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def state_of(pid: int) -> str:
    """The process state letter from /proc (T = stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.fixture()
async def cluster(netns_hosts: list[NsRemote], tmp_path: Path) -> Any:
    db = StandInDB(tmp_path)
    test = Ctx(name="process", options={}, hosts=list(netns_hosts), backend=None,  # type: ignore[arg-type]
               db=db, seed=3, store_dir=tmp_path)  # type: ignore[arg-type]
    for node in test.nodes:
        await db.start(test, node)
    for node in test.nodes:  # up means answering
        deadline = time.monotonic() + 20
        while True:
            try:
                await db.status(test, node)
                break
            except (aiohttp.ClientError, TimeoutError):
                assert time.monotonic() < deadline, f"stand-in on {node} never answered"
                await asyncio.sleep(0.05)
    yield test, db
    for node, pid in db.pids.items():  # leave nothing stopped or running for the next test
        host = test.host(node)
        await host.signal(pid, signal.SIGCONT)
        await host.signal(pid, signal.SIGKILL)


def start(fault: str, **value: Any) -> Op:
    return Op(process="nemesis", type="invoke", f="start", value={"fault": fault, **value})


def stop(fault: str) -> Op:
    return Op(process="nemesis", type="invoke", f="stop", value={"fault": fault})


async def test_kill_takes_down_exactly_the_targets_and_stop_restarts_them(cluster: Any) -> None:
    test, db = cluster
    nemesis = KillNemesis(random.Random(5), targets=("minority",))
    await nemesis.setup(test)
    before = dict(db.pids)
    done = await nemesis.invoke(test, start("kill"))
    assert done.type == "info" and done.value["target"] == "minority"
    (victim,) = done.value["targets"]
    assert done.node == victim
    assert [n for n in test.nodes if not await db.is_running(test, n)] == [victim]
    stopped = await nemesis.invoke(test, stop("kill"))
    assert stopped.value == {"fault": "kill", "targets": [victim]}
    assert db.pids[victim] != before[victim]
    assert all(db.pids[n] == before[n] for n in test.nodes if n != victim)
    assert all([await db.is_running(test, n) for n in test.nodes])


async def test_kill_all_then_heal_verifies_every_node_runs(cluster: Any) -> None:
    test, db = cluster
    nemesis = KillNemesis(random.Random(5))
    await nemesis.setup(test)
    done = await nemesis.invoke(test, start("kill", target="all"))
    assert done.value["targets"] == ["n1", "n2", "n3"]
    assert not any([await db.is_running(test, n) for n in test.nodes])
    again = await nemesis.invoke(test, start("kill", target="leader"))
    assert again.value["targets"] == ["n3"]  # already down: not killed twice, restarted once
    healed = await nemesis.heal(test)
    assert healed == {"ok": True, "details": {"restarted": ["n1", "n2", "n3"], "not_running": []}}
    assert (await nemesis.heal(test))["details"]["restarted"] == []


async def test_pause_stops_the_leader_and_stop_resumes_it(cluster: Any) -> None:
    test, db = cluster
    nemesis = PauseNemesis(random.Random(5))
    await nemesis.setup(test)
    done = await nemesis.invoke(test, start("pause", target="leader"))
    assert done.value == {"fault": "pause", "target": "leader", "targets": ["n3"]}
    await wait_for(lambda: state_of(db.pids["n3"]) == "T")
    assert all(state_of(db.pids[n]) != "T" for n in ("n1", "n2"))
    with pytest.raises((aiohttp.ClientError, TimeoutError)):
        await db.status(test, "n3")  # a stopped server accepts the connection but never answers
    await nemesis.invoke(test, stop("pause"))
    await wait_for(lambda: state_of(db.pids["n3"]) != "T")
    assert (await db.status(test, "n3"))["http"] == 200
    assert await db.is_running(test, "n3")


async def test_overlapping_pause_and_kill_heal_in_either_order(cluster: Any) -> None:
    test, db = cluster
    pause, kill = PauseNemesis(random.Random(1)), KillNemesis(random.Random(2))
    await pause.invoke(test, start("pause", targets=["n1", "n2"]))
    await kill.invoke(test, start("kill", targets=["n2"]))
    paused = await pause.heal(test)  # n2 was killed while stopped: pause cannot bring it back, kill's heal does
    assert paused == {"ok": True, "details": {"resumed": ["n1", "n2"], "gone": ["n2"], "not_answering": []}}
    killed = await kill.heal(test)
    assert killed["ok"] and killed["details"]["restarted"] == ["n2"]
    assert all(state_of(db.pids[n]) != "T" for n in test.nodes)


async def test_bad_targets_are_refused(cluster: Any) -> None:
    test, _ = cluster
    with pytest.raises(ValueError, match="unknown targets"):
        await KillNemesis(random.Random(1)).invoke(test, start("kill", targets=["n9"]))
    with pytest.raises(ValueError, match="unknown"):
        PauseNemesis(random.Random(1), targets=("half",))
    with pytest.raises(ValueError, match="unknown f 'restart'"):
        await KillNemesis(random.Random(1)).invoke(test, Op(process="nemesis", type="invoke", f="restart"))


async def test_kill_heal_restarts_a_node_that_died_on_its_own(cluster: Any) -> None:
    """The final state the run promises is every node running, whoever took a node down."""
    test, db = cluster
    nemesis = KillNemesis(random.Random(5))
    await db.kill(test, "n2")  # a crash, not the nemesis's doing
    healed = await nemesis.heal(test)
    assert healed == {"ok": True, "details": {"restarted": ["n2"], "not_running": []}}
    assert await db.is_running(test, "n2")


async def test_a_failed_kill_is_still_undone_by_heal(cluster: Any) -> None:
    """A start that fails half-way (here: the DB refuses one node) must not leave the others down after heal."""
    test, db = cluster
    real_kill = db.kill

    async def flaky_kill(t: Ctx, node: str) -> None:
        if node == "n3":
            raise RuntimeError("n3: pid in state D")
        await real_kill(t, node)

    db.kill = flaky_kill
    nemesis = KillNemesis(random.Random(5))
    with pytest.raises(ExceptionGroup):
        await nemesis.invoke(test, start("kill", targets=["n1", "n3"]))
    db.kill = real_kill
    healed = await nemesis.heal(test)  # n1 may or may not have died before n3's failure cancelled the rest
    assert healed["ok"] and {"n1", "n3"} <= set(healed["details"]["restarted"])
    assert all([await db.is_running(test, n) for n in test.nodes])
