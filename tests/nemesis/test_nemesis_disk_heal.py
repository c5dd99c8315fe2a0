"""The disk nemesis composed with the kill nemesis, on simulated nodes and layers (no FUSE, no namespaces): the
interleavings that used to end a clean run invalid for liveness (docs/status.md, session 3, open end 0).

A simulated node refuses to start, some time after its start, when its layer says its files are damaged or its
layer fails writes (eio, full): exactly what raftkv does, a few hundred milliseconds after its start, once
recovery reaches the damage or the first fsync fails. The tests then check the cluster's final state: every node
running and serving, no file left damaged, never a majority damaged at once.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.composite import CompositeNemesis
from harness.protocols import Op, StartListener, StartSource
from nemesis.disk import DiskNemesis, LayerHandle
from nemesis.process import KillNemesis

NODES = ("n1", "n2", "n3", "n4", "n5")
REFUSE_AFTER_S = 0.3  # a doomed start runs this long before it exits (recovery reads the files first)
CONTROL_RTT_S = 0.005  # a layer's control socket answers after this (another process, a loaded machine)


class SimLayer(LayerHandle):
    """A layer's control socket, simulated: a mode, and the files damaged (and not restored) on it."""

    def __init__(self, node: str) -> None:
        super().__init__(node, f"/sim/{node}/data", f"/sim/{node}/layer", f"/sim/{node}/control.sock",
                         f"/sim/{node}/diskfs.log", pid=1)
        self.damage: list[str] = []
        self.layer_mode = "pass"
        self.ops: list[str] = []

    async def call(self, **request: Any) -> dict[str, Any]:
        await asyncio.sleep(CONTROL_RTT_S)  # a round trip to another process: other tasks run meanwhile
        op = request["op"]
        self.ops.append(op)
        if op == "mode":
            self.layer_mode = request["mode"]
        elif op == "corrupt":
            self.damage.append(f"wal/{len(self.damage)}.wal")
            return {"ok": True, "file": self.damage[-1], "how": "flip", "offset": 3, "bytes": 1}
        elif op == "repair":
            repaired, self.damage = self.damage, []
            return {"ok": True, "repaired": [{"file": f, "outcome": "restored"} for f in repaired] or None}
        elif op == "crash":
            return {"ok": True, "undone": {"dirs": 0, "files": 0}}
        return {"ok": True, "mode": self.layer_mode}


@dataclass
class SimHost:
    name: str

    async def exec(self, argv: Any, **kw: Any) -> Any:
        return type("R", (), {"stdout": f"CRITICAL fatal: WAL corrupt on {self.name}", "returncode": 0})()


@dataclass
class SimDB:
    """Node processes: a start is at once running; a doomed one (damaged files, failing disk) exits later."""

    layers: dict[str, SimLayer]
    running: dict[str, asyncio.Task[None] | None] = field(default_factory=dict)
    starts: list[str] = field(default_factory=list)
    refusing: set[str] = field(default_factory=set)  # running, but about to exit

    def doomed(self, node: str) -> bool:
        layer = self.layers[node]
        return bool(layer.damage) or layer.layer_mode in ("eio", "full")

    async def start(self, test: Any, node: str) -> None:
        await asyncio.sleep(0)
        if self.running.get(node) is not None:
            return
        self.starts.append(node)
        # Its fate is sealed at once: recovery reads the damaged file, the first write meets the failing disk.
        if self.doomed(node):
            self.refusing.add(node)
        self.running[node] = asyncio.get_running_loop().create_task(self._life(node, self.doomed(node)))

    async def _life(self, node: str, doomed: bool) -> None:
        if doomed:
            await asyncio.sleep(REFUSE_AFTER_S)
            self.running[node] = None
            self.refusing.discard(node)
            return
        await asyncio.Event().wait()  # serves until killed

    async def kill(self, test: Any, node: str) -> None:
        task = self.running.pop(node, None)
        self.refusing.discard(node)
        if task is not None:
            task.cancel()

    async def is_running(self, test: Any, node: str) -> bool:
        await asyncio.sleep(0)
        return self.running.get(node) is not None

    # The rest of the Process capability the nemeses reach the DB through; no test here pauses a node.
    async def pause(self, test: Any, node: str) -> None:
        raise NotImplementedError

    async def resume(self, test: Any, node: str) -> None:
        raise NotImplementedError

    async def status(self, test: Any, node: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        if self.running.get(node) is None or node in self.refusing:
            raise ConnectionRefusedError(node)  # a refusing node never binds its client port
        return {"id": node}

    def log_files(self, test: Any, node: str) -> list[str]:
        return [f"/sim/{node}/raftkv.log"]

    def stop_all(self) -> None:
        for task in self.running.values():
            if task is not None:
                task.cancel()


class Sim:
    def __init__(self, seed: int = 7) -> None:
        self.layers = {n: SimLayer(n) for n in NODES}
        self.db = SimDB(self.layers)
        self.hosts = [SimHost(n) for n in NODES]
        self.kill = KillNemesis(random.Random(seed))
        self.disk = DiskNemesis(random.Random(seed))
        self.disk.layers = dict(self.layers)
        self.composite = CompositeNemesis([("kill", self.kill), ("disk", self.disk)])

    # the slice of TestContext the nemeses use
    @property
    def nodes(self) -> list[str]:
        return list(NODES)

    def host(self, name: str) -> SimHost:
        return next(h for h in self.hosts if h.name == name)

    async def op(self, f: str, fault: str, targets: list[str] | None = None) -> dict[str, Any]:
        value: dict[str, Any] = {"fault": fault} if targets is None else {"fault": fault, "targets": targets}
        done = await self.composite.invoke(self, Op(process="nemesis", type="invoke", f=f, value=value))  # type: ignore[arg-type]
        assert isinstance(done.value, dict)
        return done.value

    async def heal(self) -> dict[str, Any]:
        return await self.composite.heal(self)  # type: ignore[arg-type]

    async def settled(self) -> dict[str, bool]:
        """Who runs once every doomed start had the time to exit."""
        await asyncio.sleep(REFUSE_AFTER_S * 2)
        return {n: await self.db.is_running(self, n) for n in NODES}


@pytest.fixture
async def sim() -> Any:
    s = Sim()
    await asyncio.gather(*(s.db.start(s, n) for n in NODES))
    yield s
    s.db.stop_all()


def damaged(sim: Sim) -> list[str]:
    return [n for n in NODES if sim.layers[n].damage]


def test_the_disk_nemesis_listens_to_starts_and_heals_first() -> None:
    s = Sim()
    assert isinstance(s.disk, StartListener) and isinstance(s.kill, StartSource)
    assert s.kill._start_listeners == [s.disk]
    assert [[name for name, _ in wave] for wave in s.composite.heal_waves()] == [["disk"], ["kill"]]


async def test_corrupting_the_nodes_the_kill_nemesis_holds_then_the_final_heal_leaves_every_node_serving(
        sim: Sim) -> None:
    """The false alarm of the third campaign: kill holds a majority, disk-corrupt damages them, the final heal."""
    await sim.op("start", "kill", ["n1", "n2", "n3"])
    corrupted = await sim.op("start", "disk-corrupt", ["n1", "n2", "n3"])
    assert len(damaged(sim)) == 2 and corrupted["limited"]["asked"] == ["n1", "n2", "n3"], \
        "never a majority damaged"
    heal = await sim.heal()
    assert heal["ok"], heal
    assert await sim.settled() == dict.fromkeys(NODES, True)
    assert damaged(sim) == []


async def test_a_minority_damaged_while_killed_is_restored_before_the_kill_heal_restarts_it(sim: Sim) -> None:
    """No cap involved (a minority): before, the kill heal (run at the same time) won the race to start them."""
    await sim.op("start", "kill", ["n1", "n2"])
    await sim.op("start", "disk-corrupt", ["n1", "n2"])
    assert damaged(sim) == ["n1", "n2"]
    heal = await sim.heal()
    assert heal["ok"], heal
    assert await sim.settled() == dict.fromkeys(NODES, True)
    assert damaged(sim) == []


async def test_damage_counts_until_restored_not_only_this_starts_targets(sim: Sim) -> None:
    await sim.op("start", "kill", ["n1"])  # n1 stays down (held), so its damage stays
    await sim.op("start", "disk-corrupt", ["n1", "n2"])
    stop = await sim.op("stop", "disk-corrupt")
    assert stop["refused"].keys() == {"n2"} and "not_serving" not in stop, "n2 refused, was restored, serves"
    assert damaged(sim) == ["n1"]
    again = await sim.op("start", "disk-corrupt", ["n3", "n4", "n5"])
    assert len(again["targets"]) == 1 and len(damaged(sim)) == 2, again
    await sim.op("stop", "disk-corrupt")
    await sim.op("stop", "kill")  # restarts n1: restored first, so it does not refuse
    assert await sim.settled() == dict.fromkeys(NODES, True)
    assert damaged(sim) == []


async def test_a_damaged_node_another_nemesis_started_and_that_refused_is_restored_and_started_by_the_heal(
        sim: Sim) -> None:
    await sim.op("start", "disk-corrupt", ["n1", "n2"])
    await sim.db.start(sim, "n1")  # a start nobody announced (no StartSource): n1 refuses a moment later
    heal = await sim.heal()
    assert heal["ok"], heal
    assert await sim.settled() == dict.fromkeys(NODES, True)
    assert damaged(sim) == []


@pytest.mark.parametrize("mode", ["eio", "full"])
async def test_a_majority_stopped_by_a_failing_disk_is_restarted_by_the_heal_on_a_healed_disk(sim: Sim,
                                                                                              mode: str) -> None:
    """The kill heal starts every node that is down; run at the same time as the disk heal it started them on
    disks still failing, and the disk heal then saw them running."""
    await sim.op("start", f"disk-{mode}", ["n1", "n2", "n3"])
    await sim.db.kill(sim, "n1")  # the failing fsync stops them (the simulation: their processes end)
    await sim.db.kill(sim, "n2")
    await sim.db.kill(sim, "n3")
    heal = await sim.heal()
    assert heal["ok"], heal
    assert await sim.settled() == dict.fromkeys(NODES, True)


async def test_with_unsynced_data_kept_every_kill_is_a_power_loss_and_an_episode_does_not_reset_it(
        sim: Sim) -> None:
    for layer in sim.layers.values():
        layer.tracking = True  # what the mount does when keep_unsynced (the default)
    assert sim.disk.keep_unsynced
    await sim.op("start", "disk-lose-unsynced", ["n1", "n2"])
    assert "track" not in sim.layers["n1"].ops, "a second track would count the unsynced as durable"
    await sim.op("start", "kill", ["n3"])
    assert sim.layers["n3"].ops[-2:] == ["crash", "track"], "a kill by another nemesis drops the unsynced"
    stop = await sim.op("stop", "disk-lose-unsynced")
    assert set(stop["dropped"]) == {"n1", "n2"} and "flush" not in sim.layers["n1"].ops
    assert sim.layers["n1"].tracking, "still recording for the next crash"
    heal = await sim.heal()
    assert heal["ok"] and all(layer.tracking for layer in sim.layers.values())


async def test_a_disk_stop_does_not_take_over_a_node_another_nemesis_holds_outside_its_targets(sim: Sim) -> None:
    await sim.op("start", "kill", ["n1"])
    await sim.op("start", "disk-eio", ["n2"])
    stop = await sim.op("stop", "disk-eio")
    assert stop["restarted"] == [] and not await sim.db.is_running(sim, "n1"), "n1 is the kill nemesis's"
    await sim.op("start", "disk-slow", ["n1", "n3"])
    stop = await sim.op("stop", "disk-slow")
    assert stop["restarted"] == [] and not await sim.db.is_running(sim, "n1"), "still the kill nemesis's"


async def test_a_kill_of_a_slow_node_fails_its_held_io_then_its_disk_is_slow_again_while_the_fault_lasts(
        sim: Sim) -> None:
    """A power cut does not wait for a slow fsync to land: the layer fails what it holds (eio) while the node dies,
    then its disk is slow again (the fault goes on), or passes I/O through once the fault has ended."""
    for layer in sim.layers.values():
        layer.tracking = True  # every crash a power loss (--disk-unsynced keep)
    modes_at_kill: dict[str, str] = {}
    kill = sim.db.kill

    async def recording_kill(test: Any, node: str) -> None:
        modes_at_kill[node] = sim.layers[node].layer_mode
        await kill(test, node)

    sim.db.kill = recording_kill  # type: ignore[method-assign]
    await sim.op("start", "disk-slow", ["n1", "n2"])
    await sim.op("start", "kill", ["n1", "n3"])
    assert modes_at_kill == {"n1": "eio", "n3": "pass"}
    assert sim.layers["n1"].layer_mode == "slow" and "crash" in sim.layers["n1"].ops
    await sim.op("stop", "disk-slow")
    assert {n: sim.layers[n].layer_mode for n in NODES} == dict.fromkeys(NODES, "pass")
    heal = await sim.heal()
    assert heal["ok"], heal
    assert await sim.settled() == dict.fromkeys(NODES, True)
