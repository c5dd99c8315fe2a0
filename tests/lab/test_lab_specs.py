"""The lab's plugins as the engine finds them: entry points in pyproject.toml -> specs -> working instances."""

from __future__ import annotations

import random

import pytest

from harness import registry
from nemesis.partition import PartitionNemesis
from nemesis.process import KillNemesis, PauseNemesis
from nemesis.specs import comma_list
from workloads.raftkv_db import RaftkvDB
from workloads.register import RegisterClient


def test_the_registry_finds_every_plugin_of_the_lab() -> None:
    assert not [e for e in registry.load_errors() if "nemesis." in e or "workloads." in e]
    assert {"partition", "kill", "pause"} <= set(registry.names(registry.Kind.NEMESIS))
    assert "raftkv" in registry.names(registry.Kind.DB)
    workload = registry.workload("register")
    assert workload.db == "raftkv"
    assert {o.flag for o in workload.options} == {"--keys", "--read-consistency"}
    assert isinstance(workload.client({"read_consistency": "stale"}), RegisterClient)
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
