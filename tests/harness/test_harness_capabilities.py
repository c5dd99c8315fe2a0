"""The DB's capabilities (harness.protocols): what raftkv's adapter offers, what the engine does for a DB that
lacks one (leader-aimed faults skipped and said so, readiness by its processes, a nemesis that needs what the DB
lacks refused before anything exists), and a DB without a client for the workload refused at argument time (exit
254). In-memory fakes (tests/harness/harness_lifecycle_fakes.py); no hosts."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness_lifecycle_fakes as fakes
import pytest

from harness import cli, registry
from harness import generator as gen
from harness import run as run_mod
from harness.composite import CompositeNemesis
from harness.faults import LEADER_AIMS, without_leader_aims
from harness.hunt import HuntConfig, hunt
from harness.phases import setup as setup_mod
from harness.protocols import (
    DB,
    ClusterStatus,
    DataDir,
    LogFiles,
    Metrics,
    Op,
    PreparesHosts,
    Primaries,
    Process,
    Ready,
    RecoveryBound,
    StateDigest,
    TestContext,
    Timing,
    Witness,
    log_files_of,
)
from harness.readiness import check_ready, one_leader_named
from harness.run import ConfigError, ExitCode, RunConfig, run_test
from harness.scrape import MetricPanels, ScrapeTargets
from nemesis.clock import ClockNemesis
from nemesis.disk import DiskNemesis
from nemesis.packet import PacketNemesis
from nemesis.partition import PartitionNemesis
from nemesis.process import KillNemesis
from workloads.raftkv_db import RaftkvDB


class Leaderless(fakes.FakeDB):
    """Process, LogFiles, Ready: everything the fake has but Primaries (``leader`` is not an attribute at all)."""

    leader = None  # type: ignore[assignment]  # hides the base class's method: no Primaries


class ProcessesOnly(Leaderless):
    """Process and LogFiles: no Ready either."""

    ready = None  # type: ignore[assignment]


class Bare:
    """Only the DB protocol: setup and teardown."""

    async def setup(self, test: TestContext, node: str) -> None:
        return None

    async def teardown(self, test: TestContext, node: str) -> None:
        return None


def ctx(tmp_path: Path, db: Any) -> TestContext:
    script = getattr(db, "script", fakes.Script())
    hosts = [fakes.FakeHost(f"n{i}", script) for i in (1, 2, 3)]
    return TestContext(name="t", options={}, hosts=hosts, backend=fakes.FakeBackend(script),  # type: ignore[arg-type]
                       db=db, seed=1, store_dir=tmp_path)


def start(kind: str, **value: Any) -> Op:
    return Op(process="nemesis", type="invoke", f="start", value={"fault": kind, **value})


# -- raftkv's adapter ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("capability", [DB, Process, LogFiles, Primaries, Ready, ClusterStatus, Metrics, StateDigest,
                                        Witness, Timing, RecoveryBound, DataDir, ScrapeTargets, MetricPanels],
                         ids=lambda c: c.__name__)
def test_raftkvs_adapter_has_every_capability(capability: type) -> None:
    assert isinstance(RaftkvDB(), capability)


def test_the_capabilities_are_separate() -> None:
    assert isinstance(Bare(), DB)
    assert not any(isinstance(Bare(), c) for c in (Process, LogFiles, Primaries, Ready, ClusterStatus, Metrics))
    assert not isinstance(Leaderless(fakes.Script()), Primaries) and isinstance(Leaderless(fakes.Script()), Process)


def test_the_nemeses_optional_hooks_are_capabilities_too() -> None:
    rng = random.Random(1)
    assert isinstance(DiskNemesis(rng), PreparesHosts) and isinstance(DiskNemesis(rng), LogFiles)
    assert isinstance(ClockNemesis(rng), PreparesHosts)
    assert isinstance(PacketNemesis(rng), LogFiles) and not isinstance(PacketNemesis(rng), PreparesHosts)
    assert not isinstance(KillNemesis(rng), PreparesHosts) and not isinstance(KillNemesis(rng), LogFiles)


async def test_the_composite_passes_prepare_and_unprepare_to_those_that_have_them(tmp_path: Path) -> None:
    script = fakes.Script()
    composite = CompositeNemesis([("fake", fakes.FakeNemesis(script)), ("kill", KillNemesis(random.Random(1)))])
    test = ctx(tmp_path, fakes.FakeDB(script))
    await composite.prepare(test)
    await composite.unprepare(test)
    assert script.events == ["nemesis.prepare (mount)", "nemesis.unprepare (unmount)"]
    assert log_files_of(composite, test, "n1") == [] and log_files_of(KillNemesis(random.Random(1)), test, "n1") == []


# -- leader-aimed faults against a DB without Primaries -------------------------------------------------------


@pytest.mark.parametrize(("nemesis", "op"), [
    (lambda: KillNemesis(random.Random(1)), start("kill", target="leader")),
    (lambda: KillNemesis(random.Random(1)), start("kill", target="followers")),
    (lambda: PartitionNemesis(random.Random(1)), start("partition", shape="leader")),
], ids=["kill-leader", "kill-followers", "partition-leader"])
async def test_a_leader_aimed_fault_without_primaries_is_skipped_and_says_why(tmp_path: Path, nemesis: Any,
                                                                              op: Op) -> None:
    db = Leaderless(fakes.Script())
    test = ctx(tmp_path, db)
    db.running = set(test.nodes)
    done = await nemesis().invoke(test, op)
    assert done.value["skipped"] == "no leader capability" and done.value["targets"] == []
    assert db.running == set(test.nodes) and not any(e.startswith("db.kill") for e in db.script.events)


async def test_a_db_with_primaries_that_names_no_leader_is_skipped_as_no_leader(tmp_path: Path) -> None:
    class NoLeaderNow(fakes.FakeDB):
        async def leader(self, test: TestContext) -> str | None:
            return None

    done = await KillNemesis(random.Random(1)).invoke(ctx(tmp_path, NoLeaderNow(fakes.Script())),
                                                     start("kill", target="leader"))
    assert done.value["skipped"] == "no leader"


async def test_a_run_on_a_db_without_primaries_records_the_skip_and_stays_valid(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    script = fakes.Script()
    fakes.register(script)
    registry.register_db(registry.DBSpec(name=fakes.DB_NAME, factory=lambda options: Leaderless(script)))
    monkeypatch.setattr(setup_mod, "make_backend", lambda name, **kw: fakes.FakeBackend(script))
    registry.register_nemesis(registry.NemesisSpec(
        name="kill", factory=lambda options, rng: KillNemesis(rng),
        generator=lambda options, rng: gen.once({"f": "start", "value": {"fault": "kill", "target": "leader"}}),
        db_needs=frozenset({Process})))
    try:
        res = await run_test(RunConfig(workload=fakes.WORKLOAD_NAME, nemeses=("kill",), nodes=3, concurrency=1, rate=0,
                                       final_time_limit=0, quiesce_timeout=1, setup_timeout=1, store=tmp_path / "s",
                                       prefix="renlc", render=False))
    finally:
        registry.unregister(registry.Kind.NEMESIS, "kill")
        fakes.unregister()
    assert res.exit_code == ExitCode.VALID, res.error
    assert res.run_dir is not None
    history = [json.loads(line) for line in (res.run_dir / "history.jsonl").read_text().splitlines()]
    kills = [e["value"] for e in history if e["process"] == "nemesis" and e["f"] == "start" and e["type"] == "info"]
    assert kills == [{"fault": "kill", "target": "leader", "targets": [], "skipped": "no leader capability"}]
    # Nothing was killed but by the collection at the end, nothing restarted: one start and one kill per node.
    assert sorted(e for e in script.events if e.startswith(("db.start", "db.kill"))) == [
        "db.kill n1", "db.kill n2", "db.kill n3", "db.start n1", "db.start n2", "db.start n3"]


# -- readiness ------------------------------------------------------------------------------------------------


async def test_readiness_is_the_dbs_own_check_else_its_processes_else_at_once(tmp_path: Path) -> None:
    class NotReady(fakes.FakeDB):
        async def ready(self, test: TestContext) -> bool:
            return False

    running = fakes.FakeDB(fakes.Script())
    test = ctx(tmp_path, running)
    running.running = set(test.nodes)
    assert await check_ready(test) is True  # its own Ready says yes
    assert await check_ready(ctx(tmp_path, NotReady(fakes.Script()))) is False
    processes_only = ProcessesOnly(fakes.Script())  # no Ready: its processes decide
    assert not isinstance(processes_only, Ready)
    test = ctx(tmp_path, processes_only)
    assert await check_ready(test) is False
    processes_only.running = set(test.nodes)
    assert await check_ready(test) is True
    assert await check_ready(ctx(tmp_path, Bare())) is True


def test_one_leader_named_needs_every_node_and_one_name() -> None:
    assert one_leader_named({"n1": {"leader": "n2"}, "n2": {"leader": "n2"}}) == "n2"
    assert one_leader_named({"n1": {"leader": "n2"}, "n2": {"leader": "n1"}}) is None
    assert one_leader_named({"n1": {"leader": "n2"}, "n2": {"error": "refused"}}) is None
    assert one_leader_named({"n1": {"leader": ""}}) is None and one_leader_named({}) is None


# -- argument time --------------------------------------------------------------------------------------------


@pytest.fixture
def clientless() -> Iterator[None]:
    registry.register_db(registry.DBSpec(name="clientless", factory=lambda options: Bare()))
    yield
    registry.unregister(registry.Kind.DB, "clientless")


def test_a_db_without_a_client_for_the_workload_is_exit_254_before_anything_exists(
        clientless: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    code = cli.main(["run", "--workload", "register", "--db", "clientless", "--nemesis", "none",
                     "--store", str(store), "--prefix", "renlc", "--time-limit", "1"])
    assert code == ExitCode.BAD_ARGUMENTS == 254
    err = capsys.readouterr().err
    assert "db clientless supplies no client for the register workload (it supplies: none)" in err
    assert not store.exists()


def test_a_dbs_own_client_is_found_and_a_workload_bound_to_another_db_is_not(clientless: None) -> None:
    raftkv = registry.db("raftkv")
    for name in ("register", "set", "list-append"):  # DB-neutral workloads: the DB's own table supplies them
        assert registry.workload(name).client is None
        assert registry.client_for(raftkv, registry.workload(name)) is raftkv.clients[name]
    assert registry.client_for(registry.db("etcd"), registry.workload("register")) is registry.db("etcd").clients[
        "register"]
    with pytest.raises(registry.NoClientError, match="db clientless supplies no client for the set workload"):
        registry.client_for(registry.db("clientless"), registry.workload("set"))


def test_a_nemesis_needing_a_capability_the_db_lacks_is_exit_254_before_anything_exists(
        clientless: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = fakes.Script()
    registry.register_workload(registry.Workload(  # db None: its client serves any DB
        name="anyclient", client=lambda o: fakes.FakeClient(script), generator=lambda o, r: gen.once({"f": "write"}),
        checker=lambda o: fakes.AlwaysValid()))
    store = tmp_path / "store"
    try:
        with pytest.raises(ConfigError, match="nemesis kill needs a DB with Process, which db clientless does not"):
            run_mod.resolve(RunConfig(workload="anyclient", db="clientless", nemeses=("kill",), store=store))
        code = cli.main(["run", "--workload", "anyclient", "--db", "clientless", "--nemesis", "partition,kill",
                         "--store", str(store), "--prefix", "renlc", "--time-limit", "1"])
    finally:
        registry.unregister(registry.Kind.WORKLOAD, "anyclient")
    assert code == ExitCode.BAD_ARGUMENTS
    assert "nemesis kill needs a DB with Process, which db clientless does not offer" in capsys.readouterr().err
    assert not store.exists()  # partition needs nothing of the DB: it is not named


def test_the_hunt_asks_a_db_without_primaries_for_no_leader_aimed_start() -> None:
    """harness.run drops the leader-relative aims of a DB without Primaries (harness.faults.without_leader_aims): the
    hunting schedule then casts no leader move and aims no start at the leader, but still hunts."""
    specs = [registry.nemesis(n) for n in ("kill", "partition", "pause")]
    traits = {kind: t for spec in specs for kind, t in spec.fault_traits({}).items()}
    assert any(t.aim("leader") is not None for t in traits.values())  # raftkv's schedule does aim at leaders
    config = HuntConfig(kinds=without_leader_aims(traits), election_timeout_s=0.5, until_s=120)
    ops = gen.simulate(hunt(config, seed=3), gen.Context.initial(1), complete=lambda op: ("info", 10_000_000))
    starts = [op.value for op in ops if op.f == "start"]
    assert len(starts) >= 8
    assert not [v for v in starts if set(v.values()) & LEADER_AIMS], starts


async def test_a_db_with_only_setup_and_teardown_runs_to_a_verdict(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    """No Process, LogFiles, Ready, ClusterStatus, Metrics: ready at once, nothing killed or collected, no status
    polled, the heal has no processes to check; the run still checks its history and tears down."""
    script = fakes.Script()
    setups: list[str] = []

    class Recording(Bare):
        async def setup(self, test: TestContext, node: str) -> None:
            setups.append(node)

    registry.register_db(registry.DBSpec(name="bare", factory=lambda options: Recording()))
    registry.register_workload(registry.Workload(
        name="anyclient", client=lambda o: fakes.FakeClient(script), checker=lambda o: fakes.AlwaysValid(),
        generator=lambda o, r: gen.limit(3, gen.repeat({"f": "write"}))))
    monkeypatch.setattr(setup_mod, "make_backend", lambda name, **kw: fakes.FakeBackend(script))
    try:
        res = await run_test(RunConfig(workload="anyclient", db="bare", nodes=2, concurrency=1, rate=0,
                                       final_time_limit=0, quiesce_timeout=1, setup_timeout=1, store=tmp_path / "s",
                                       prefix="renlc", render=False))
    finally:
        registry.unregister(registry.Kind.WORKLOAD, "anyclient")
        registry.unregister(registry.Kind.DB, "bare")
    assert res.exit_code == ExitCode.VALID, res.error
    assert res.results is not None and res.results["heal"] == {"ok": True, "details": {
        "nemesis": "no faults", "running": {}}}
    assert setups == ["n1", "n2"] and script.events == ["backend.setup", "backend.teardown"]
    assert res.run_dir is not None and (res.run_dir / "cluster.jsonl").read_text() == ""
