"""The lab's plugins as the engine finds them: entry points in pyproject.toml -> specs -> working instances."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harness import registry
from nemesis.partition import PartitionNemesis
from nemesis.process import KillNemesis, PauseNemesis
from nemesis.specs import comma_list
from workloads.raftkv_db import RaftkvDB
from workloads.raftkv_register import RegisterClient


def test_the_registry_finds_every_plugin_of_the_lab() -> None:
    assert not [e for e in registry.load_errors() if "nemesis." in e or "workloads." in e]
    assert {"partition", "kill", "pause"} <= set(registry.names(registry.Kind.NEMESIS))
    assert "raftkv" in registry.names(registry.Kind.DB)
    workload = registry.workload("register")
    assert workload.db == "raftkv"
    assert {o.flag for o in workload.options} == {"--keys", "--read-consistency", "--client-mode", "--client-sessions",
                                                  "--mix"}
    raftkv_client = registry.client_for(registry.db("raftkv"), workload)
    assert isinstance(raftkv_client({"read_consistency": "stale"}), RegisterClient)
    assert isinstance(registry.db("raftkv").factory({"raftkv_tick_ms": 30}), RaftkvDB)


def test_nemesis_factories_take_the_options_and_the_rng() -> None:
    rng = random.Random(4)
    partition = registry.nemesis("partition").factory({"partition_shapes": ("one", "ring")}, rng)
    assert isinstance(partition, PartitionNemesis) and partition.shapes == ("one", "ring")
    kill = registry.nemesis("kill").factory({"kill_targets": ("all",)}, rng)
    assert isinstance(kill, KillNemesis) and kill.specs == ("all",) and kill.faults() == {"kill"}
    pause = registry.nemesis("pause").factory({}, rng)
    assert isinstance(pause, PauseNemesis) and pause.faults() == {"pause"}
    assert registry.nemesis("pause").generator is None  # the engine's default cycle drives it


def test_comma_lists_are_checked() -> None:
    parse = comma_list(("halves", "one"))
    assert parse("one, halves,one") == ("one", "halves")
    with pytest.raises(ValueError, match="comma-separated list of halves, one"):
        parse("halves,diagonal")
    with pytest.raises(ValueError):
        parse(" , ")


def test_each_nemesis_tells_schedules_what_it_does_and_how_to_aim_it_within_the_options() -> None:
    from harness.faults import Effect
    from harness.hunt import MOVES, HuntConfig

    traits = {k: t for name in ("partition", "kill", "pause", "packet", "clock")
              for k, t in registry.nemesis(name).fault_traits({}).items()}
    assert {k: t.effect for k, t in traits.items()} == {"partition": Effect.CUT, "kill": Effect.CRASH,
                                                        "pause": Effect.FREEZE, "packet": Effect.OTHER,
                                                        "clock": Effect.OTHER, "clock-rate": Effect.LAG}
    assert traits["clock"].weight == traits["clock-rate"].weight == 0.5  # the family weighs as one kind
    assert traits["partition"].aim("leader") == {"shape": "leader"} and traits["kill"].aim("one") == {"target": "one"}
    # Every move can be cast from the five (the schedule draws them all), and a user's restriction is respected:
    HuntConfig(kinds=traits, moves=MOVES)
    assert registry.nemesis("kill").fault_traits({"kill_targets": ("one", "all")})["kill"].aim("leader") is None
    assert registry.nemesis("partition").fault_traits({"partition_shapes": ("halves",)})["partition"].aims == {}


def test_the_disk_faults_tell_the_hunt_their_effects_aims_and_weights() -> None:
    from harness.faults import Effect
    from harness.hunt import MOVES, HuntConfig

    disk = registry.nemesis("disk").fault_traits({})
    assert {k: t.effect for k, t in disk.items()} == {
        "disk-pause": Effect.FREEZE, "disk-slow": Effect.SLOW, "disk-eio": Effect.FAIL, "disk-full": Effect.FAIL,
        "disk-corrupt": Effect.CRASH, "disk-lose-unsynced": Effect.OTHER}
    assert all(t.weight == pytest.approx(1 / 6) for t in disk.values())
    assert disk["disk-slow"].aim("followers") == {"target": "followers"}
    assert set(disk["disk-corrupt"].aims) == {"leader", "one", "minority"}  # at most a minority damaged
    kill = registry.nemesis("kill").fault_traits({})["kill"]
    assert kill.aim("leader-and-majority") == {"target": "leader-and-majority"}
    HuntConfig(kinds={**disk, "kill": kill}, moves=MOVES)
    # --disk-faults selects the kinds drawn (each then weighs 1/2); a user's --disk-targets bounds the aims.
    two = registry.nemesis("disk").fault_traits({"disk_faults": ("slow", "pause"), "disk_targets": ("one",)})
    assert set(two) == {"disk-slow", "disk-pause"} and two["disk-slow"].weight == pytest.approx(0.5)
    assert set(two["disk-slow"].aims) == {"one"}
    no_leader = registry.nemesis("kill").fault_traits({"kill_targets": ("majority", "all")})["kill"]
    assert set(no_leader.aims) == {"majority"}  # no leader-relative aim when the leader is ruled out


def test_the_raftkv_adapter_states_its_worst_case_election_timeout() -> None:
    from harness.protocols import Timing, election_timeout_s

    db = registry.db("raftkv").factory({"raftkv_tick_ms": 30, "raftkv_election_ticks": 12})
    assert isinstance(db, Timing) and db.election_timeout_s() == pytest.approx(0.72)
    assert election_timeout_s(registry.db("raftkv").factory({})) == pytest.approx(0.5)
    assert election_timeout_s(object()) == 1.0  # a DB that does not say


def test_nemesis_all_is_every_registered_nemesis_that_can_run_on_the_backend() -> None:
    from harness.registry import NemesisSpec
    from harness.run import expand_nemeses

    assert set(expand_nemeses(("all",), "netns")) >= {"partition", "kill", "pause", "packet", "clock"}
    local = expand_nemeses(("all",), "local")
    assert {"kill", "pause", "clock"} <= set(local) and not {"partition", "packet"} & set(local)
    assert expand_nemeses(("kill", "all", "none"), "local")[0] == "kill" and len(set(local)) == len(local)
    assert expand_nemeses(("none",), "netns") == []
    # A nemesis registered later (the disk one) joins `all` with nothing else to change.
    registry.register_nemesis(NemesisSpec(name="fakedisk", factory=lambda options, rng: None))  # type: ignore[arg-type,return-value]
    try:
        assert "fakedisk" in expand_nemeses(("all",), "netns") and "fakedisk" in expand_nemeses(("all",), "local")
    finally:
        registry.unregister(registry.Kind.NEMESIS, "fakedisk")


@pytest.mark.parametrize(("argv", "says"), [
    (["--keys", "0"], "--keys: must be an integer in 1..100000, got 0"),
    (["--keys", "-1"], "--keys: must be an integer in 1..100000, got -1"),
    (["--nodes", "500"], "--nodes: must be an integer in 1..64, got 500"),
    (["--raftkv-tick-ms", "0"], "--raftkv-tick-ms: must be an integer in 1..10000"),
    (["--raftkv-election-ticks", "1"], "--raftkv-election-ticks: must be an integer in 2..10000"),
    (["--time-limit", "nan"], "--time-limit: must be in (0, 604800]"),
    (["--concurrency", "many"], "--concurrency/-c: 'many' is not an integer"),
])
def test_numeric_options_are_checked_at_argument_time(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      argv: list[str], says: str) -> None:
    """Issue 13 item 7: `--keys 0` used to mean 8 keys, `--keys -1` failed once the cluster was up."""
    from harness.cli import main

    store = tmp_path / "store"
    assert main(["run", "--store", str(store), *argv]) == 254
    assert says in capsys.readouterr().err
    assert not store.exists()  # refused before anything was made
