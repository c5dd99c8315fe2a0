"""Issue 16 on real hosts: liveness is a verdict. Whole runs (run_test, in process, so that a test-only nemesis can be
registered) on the netns backend against the real raftkv with the register workload.

- A cluster left without a quorum after the heal (a test-only nemesis, `freeze`, SIGSTOPs a majority and never
  resumes it: every process still runs, none of the frozen ones answers) makes the run invalid (liveness), exit
  code 1, with the cause named in results.json, in `harness analyze` and in the report's banner.
- A correct short run with partitions, kills and pauses stays valid with the recovery checker on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from lab_net import run_prefix

from harness import registry
from harness.clean import leftovers
from harness.protocols import Op, TestContext
from harness.run import ExitCode, RunConfig, run_test

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def prefix() -> Iterator[str]:
    yield from run_prefix("rlv")


class FreezeMajority:
    """Test-only nemesis: its start SIGSTOPs a majority of the nodes (the first ones) through the DB adapter, and
    neither its stop nor its heal resumes them, so the cluster has no quorum after every heal while every process
    runs. Its teardown resumes them (the DB's teardown would too)."""

    def __init__(self) -> None:
        self.frozen: list[str] = []

    def faults(self) -> set[str]:
        return {"freeze"}

    async def setup(self, test: TestContext) -> None:
        return None

    async def invoke(self, test: TestContext, op: Op) -> Op:
        if op.f == "start":
            majority = test.nodes[:len(test.nodes) // 2 + 1]
            for node in majority:
                await test.db.pause(test, node)
            self.frozen = sorted(set(self.frozen) | set(majority))
        return Op(process=op.process, type="info", f=op.f, value={"fault": "freeze", "targets": list(self.frozen)},
                  node=",".join(self.frozen) or None)

    async def heal(self, test: TestContext) -> dict[str, Any]:
        return {"ok": True, "details": f"left {self.frozen} frozen on purpose"}

    async def teardown(self, test: TestContext) -> None:
        for node in self.frozen:
            await test.db.resume(test, node)


def _freeze(options: Mapping[str, Any], rng: Any) -> FreezeMajority:
    return FreezeMajority()


FREEZE = registry.NemesisSpec(name="freeze", factory=_freeze, description="test-only: a majority never comes back")


@pytest.fixture
def freeze_registered() -> Iterator[None]:
    registry.register_nemesis(FREEZE)
    yield
    registry.unregister(registry.Kind.NEMESIS, "freeze")


def config(prefix: str, store: Path, **kw: Any) -> RunConfig:
    base: dict[str, Any] = dict(workload="register", nodes=3, time_limit=8.0, concurrency=6, rate=100.0, seed=5,
                                nemesis_interval=2.5, op_timeout=1.0, final_time_limit=4.0, quiesce_timeout=4.0,
                                store=store, prefix=prefix, render=True)
    base.update(kw)
    return RunConfig(**base)


def observations(run_dir: Path, f: str) -> list[dict[str, Any]]:
    lines = (run_dir / "history.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["process"] == "harness" and e["f"] == f]


async def test_a_cluster_left_without_quorum_after_the_heal_is_invalid_for_liveness(
        prefix: str, tmp_path: Path, freeze_registered: None) -> None:
    # The cycle schedule (start, stop one interval later, ...): the freeze needs no traits for the hunting schedule.
    res = await run_test(config(prefix, tmp_path / "store", nemeses=("freeze",), recovery_bound_s=2.0,
                                schedule="cycle"))
    assert res.error is None, res.error
    assert res.exit_code == ExitCode.INVALID and res.valid is False
    assert res.results is not None and res.run_dir is not None
    assert res.results["heal"]["ok"] is True  # the heal "worked": every process runs; the system did not recover
    failures = res.results["failures"]
    assert failures["safety"] == []
    by_what = {f["what"]: f for f in failures["liveness"]}
    assert "leader" in by_what and "read" in by_what, failures
    (quiet,) = observations(res.run_dir, "quiesce")
    assert quiet["value"]["agreed"] is False
    frozen = [n for n, st in quiet["value"]["nodes"].items() if "error" in st]
    assert frozen == ["n1", "n2"]  # the majority the nemesis froze: running, but silent
    leader = by_what["leader"]
    assert leader["nodes"] == ["n1", "n2", "n3"] and leader["checker"] == "recovery"
    assert all(f"{n} unreachable" in leader["message"] for n in frozen)
    assert isinstance(leader["since_s"], float) and leader["since_s"] > 0
    assert by_what["read"]["message"].startswith("After the final heal")

    # harness analyze re-checks it from the store alone, with the same bound: still invalid, exit code 1
    from harness.cli import main

    assert main(["analyze", str(res.run_dir)]) == ExitCode.INVALID
    again = json.loads((res.run_dir / "results.json").read_text())
    assert again["checkers"]["recovery"]["bound_s"] == 2.0
    assert {f["what"] for f in again["failures"]["liveness"]} == set(by_what)

    page = (res.run_dir / "report.html").read_text()
    assert 'class="banner invalid"' in page and "Invalid (liveness)" in page
    assert "did not agree on a leader" in page and "n1 unreachable" in page
    assert "What the lab observed" in page and "no leader agreement within 4.0 s" in page
    assert leftovers(prefix) == []


async def test_a_correct_short_run_with_faults_stays_valid_with_the_recovery_checker_on(prefix: str,
                                                                                      tmp_path: Path) -> None:
    res = await run_test(config(prefix, tmp_path / "store", nemeses=("partition", "kill", "pause"),
                                time_limit=12.0, render=False))  # the default, hunting schedule
    assert res.error is None, res.error
    assert res.results is not None and res.run_dir is not None
    assert res.exit_code == ExitCode.VALID, res.results["failures"]
    recovery = res.results["checkers"]["recovery"]
    assert recovery["valid"] is True and recovery["bound_s"] == 7.0 and recovery["bound_source"] == "test.json"
    judged = [w[k] for w in recovery["windows"] for k in ("write", "read") if w[k]["verdict"] == "recovered"]
    assert judged and all(r["first_ok_s"] <= 7.0 for r in judged)
    assert recovery["quiesce"]["agreed"] is True and recovery["quiesce"]["caught_up"] is True
    (quiet,) = observations(res.run_dir, "quiesce")
    commit = quiet["value"]["commit"]
    assert commit > 0 and all(st["applied"] >= commit for st in quiet["value"]["nodes"].values())
    assert res.results["failures"] == {"safety": [], "liveness": []}
    assert leftovers(prefix) == []
