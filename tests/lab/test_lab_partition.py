"""The partition nemesis against real namespaces and real iptables, with a stand-in daemon on every host."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from lab_net import await_reachable, reachable

from harness.backends.netns import NetnsRemote as NsRemote
from harness.protocols import ExecResult, Op, RemoteError
from harness.protocols import TestContext as Ctx
from nemesis.iptables import rules_of
from nemesis.partition import (
    PartitionError,
    PartitionNemesis,
    describe_targets,
    restore_script,
    split_groups,
)

pytestmark = pytest.mark.netns


class LeaderOnlyDB:
    """A stand-in DB that only answers leader discovery (the partition nemesis needs nothing else)."""

    def __init__(self, leader: str | None) -> None:
        self.current = leader

    async def leader(self, test: Ctx) -> str | None:
        return self.current


def make_test(hosts: list[NsRemote], tmp_path: Path, *, leader: str | None = "n2", seed: int = 1) -> Ctx:
    return Ctx(name="partition", options={}, hosts=list(hosts), backend=None,  # type: ignore[arg-type]
                       db=LeaderOnlyDB(leader), seed=seed, store_dir=tmp_path)  # type: ignore[arg-type]


async def our_rules(host: NsRemote, chain: str) -> list[str]:
    return rules_of(chain, (await host.exec(["iptables", "-S"])).stdout)


def test_restore_script_is_exact() -> None:
    assert restore_script("rkl-partition", ["10.0.0.2", "10.0.0.3"], add_jump=True) == (
        "*filter\n:rkl-partition - [0:0]\n-I INPUT 1 -j rkl-partition\n"
        "-A rkl-partition -s 10.0.0.2/32 -j DROP\n-A rkl-partition -s 10.0.0.3/32 -j DROP\nCOMMIT\n")
    assert rules_of("rkl-partition", "-P INPUT ACCEPT\n-A INPUT -j rkl-partition\n-A INPUT -j rkl-partitions\n") == [
        "-A INPUT -j rkl-partition"]


async def test_isolating_the_leader_cuts_it_off_and_heal_restores(daemons: list[NsRemote], tmp_path: Path,
                                                                    lab_prefix_for_tests: str) -> None:
    n1, n2, n3 = daemons
    test = make_test(daemons, tmp_path, leader="n2")
    nemesis = PartitionNemesis(random.Random(1), prefix=lab_prefix_for_tests)
    await nemesis.setup(test)
    done = await nemesis.invoke(test, Op(process="nemesis", type="invoke", f="start",
                                         value={"fault": "partition", "shape": "leader"}))
    assert done.type == "info" and done.value["targets"] == ["n2"]
    assert done.value["grudge"] == {"n1": ["n2"], "n2": ["n1", "n3"], "n3": ["n2"]}
    assert not await reachable(n1, n2, within=1.0)
    assert not await reachable(n2, n3, within=1.0)
    await await_reachable(n1, n3)
    assert sorted(await our_rules(n2, nemesis.chain)) == sorted([
        f"-N {nemesis.chain}", f"-A INPUT -j {nemesis.chain}",
        f"-A {nemesis.chain} -s {n1.address}/32 -j DROP", f"-A {nemesis.chain} -s {n3.address}/32 -j DROP"])

    stopped = await nemesis.invoke(test, Op(process="nemesis", type="invoke", f="stop",
                                            value={"fault": "partition"}))
    assert stopped.value == {"fault": "partition", "targets": ["n1", "n2", "n3"], "verified": True}
    for host in daemons:
        assert await our_rules(host, nemesis.chain) == []
    await await_reachable(n1, n2)
    await await_reachable(n2, n3)


async def test_a_new_grudge_replaces_the_old_one_atomically(daemons: list[NsRemote], tmp_path: Path,
                                                            lab_prefix_for_tests: str) -> None:
    n1, n2, n3 = daemons
    test = make_test(daemons, tmp_path)
    nemesis = PartitionNemesis(random.Random(1), prefix=lab_prefix_for_tests)
    await nemesis.setup(test)
    start = Op(process="nemesis", type="invoke", f="start", value={"fault": "partition", "grudge": {"n3": ["n1"]}})
    first = await nemesis.invoke(test, start)
    assert first.value["targets"] == ["n3"] and first.value["shape"] == "explicit"
    second = await nemesis.invoke(test, Op(process="nemesis", type="invoke", f="start",
                                           value={"fault": "partition", "grudge": {"n1": ["n2"], "n2": ["n1"]}}))
    assert second.value["grudge"] == {"n1": ["n2"], "n2": ["n1"]}
    # One jump per host however often the grudge changes; n3's old rule is gone.
    assert (await our_rules(n3, nemesis.chain)).count(f"-A INPUT -j {nemesis.chain}") == 1
    assert [r for r in await our_rules(n3, nemesis.chain) if "DROP" in r] == []
    assert not await reachable(n1, n2, within=1.0)
    await await_reachable(n3, n1)
    result = await nemesis.heal(test)
    assert result["ok"], result
    assert result["details"]["hosts"] == {"n1": [], "n2": [], "n3": []}


async def test_heal_leaves_other_rules_alone_and_is_idempotent(daemons: list[NsRemote], tmp_path: Path,
                                                               lab_prefix_for_tests: str) -> None:
    n1 = daemons[0]
    foreign = ["iptables", "-A", "INPUT", "-s", "192.0.2.7/32", "-j", "ACCEPT"]
    await n1.exec(foreign)
    try:
        test = make_test(daemons, tmp_path)
        nemesis = PartitionNemesis(random.Random(1), prefix=lab_prefix_for_tests)
        await nemesis.setup(test)
        await nemesis.invoke(test, Op(process="nemesis", type="invoke", f="start",
                                      value={"fault": "partition", "shape": "halves"}))
        await nemesis.teardown(test)
        await nemesis.teardown(test)
        assert (await nemesis.heal(test))["ok"]
        listing = (await n1.exec(["iptables", "-S"])).stdout
        assert "-A INPUT -s 192.0.2.7/32 -j ACCEPT" in listing
    finally:
        await n1.exec(["iptables", "-D", *foreign[2:]])


async def test_heal_reports_rules_it_could_not_remove(daemons: list[NsRemote], tmp_path: Path,
                                                      lab_prefix_for_tests: str) -> None:
    """Verification is real: a rule naming our chain that removal cannot touch makes heal report not ok."""
    n1 = daemons[0]
    nemesis = PartitionNemesis(random.Random(1), prefix=lab_prefix_for_tests)
    test = make_test(daemons, tmp_path)
    # A jump from OUTPUT is nothing heal removes (it only undoes what start does), so it must be reported.
    await n1.exec(["iptables", "-N", nemesis.chain])
    await n1.exec(["iptables", "-A", "OUTPUT", "-j", nemesis.chain])
    try:
        result: dict[str, Any] = await nemesis.heal(test)
        assert not result["ok"]
        assert result["details"]["hosts"]["n1"] == [f"-N {nemesis.chain}", f"-A OUTPUT -j {nemesis.chain}"]
    finally:
        await n1.exec(["iptables", "-D", "OUTPUT", "-j", nemesis.chain])
        await n1.exec(["iptables", "-X", nemesis.chain])


async def test_leader_shape_without_a_leader_is_skipped(daemons: list[NsRemote], tmp_path: Path,
                                                        lab_prefix_for_tests: str) -> None:
    test = make_test(daemons, tmp_path, leader=None)
    nemesis = PartitionNemesis(random.Random(1), prefix=lab_prefix_for_tests)
    await nemesis.setup(test)
    done = await nemesis.invoke(test, Op(process="nemesis", type="invoke", f="start",
                                         value={"fault": "partition", "shape": "leader"}))
    assert done.value == {"fault": "partition", "shape": "leader", "targets": [], "skipped": "no leader"}
    for host in daemons:
        assert await our_rules(host, nemesis.chain) == []


def test_targets_name_the_cut_off_side_or_the_droppers() -> None:
    nodes = ["n1", "n2", "n3", "n4", "n5"]
    split = {"n1": {"n4", "n5"}, "n2": {"n4", "n5"}, "n3": {"n4", "n5"}, "n4": {"n1", "n2", "n3"},
             "n5": {"n1", "n2", "n3"}}
    assert split_groups(split, nodes) == [["n1", "n2", "n3"], ["n4", "n5"]]
    assert describe_targets(split, nodes) == ["n4", "n5"]
    bridge = {"n1": {"n4", "n5"}, "n2": {"n4", "n5"}, "n4": {"n1", "n2"}, "n5": {"n1", "n2"}}  # n3 bridges
    assert split_groups(bridge, nodes) is None
    assert describe_targets(bridge, nodes) == ["n1", "n2", "n4", "n5"]
    assert split_groups({"n2": {"n1"}}, nodes) is None  # one-way
    assert describe_targets({"n2": {"n1"}}, nodes) == ["n2"]


class BrokenHost:
    """A host whose iptables refuses everything, or that cannot be reached at all."""

    def __init__(self, name: str, *, reachable: bool) -> None:
        self.name, self.address, self.reachable = name, f"192.0.2.{name[1:]}", reachable

    async def exec(self, argv: Any, *, check: bool = True, timeout: float | None = 30.0,
                   stdin: bytes | None = None) -> ExecResult:
        if not self.reachable:
            raise RemoteError(f"{self.name}: unreachable")
        result = ExecResult(tuple(argv), 1, "", "iptables: permission denied")
        if check:
            raise RemoteError(f"{self.name}: {result.stderr}")
        return result


async def test_failures_name_the_host(tmp_path: Path) -> None:
    hosts = [BrokenHost("n1", reachable=True), BrokenHost("n2", reachable=False)]
    test = make_test(hosts, tmp_path)  # type: ignore[arg-type]
    nemesis = PartitionNemesis(random.Random(1), prefix="rkx")
    with pytest.raises(PartitionError, match=r"iptables is missing on n1 .*; n2 cannot be reached"):
        await nemesis.setup(test)
    nemesis.chain = "rkx-partition"
    with pytest.raises(ExceptionGroup) as raised:
        await nemesis.apply(test, {"n1": frozenset({"n2"})})
    assert "n1: iptables-restore (filter/rkx-partition) failed: iptables: permission denied" in str(
        raised.value.exceptions[0])
    healed = await nemesis.heal(test)
    assert healed["ok"] is False
    assert healed["details"]["hosts"]["n2"] == "error: n2: unreachable"
    assert healed["details"]["hosts"]["n1"].startswith("error: n1:")
