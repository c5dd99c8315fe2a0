"""etcd as the system under test (`--db etcd`, issue 14): whole runs on netns hosts (valid under partitions and
kills; serializable reads under partitions caught, the key and the read named) and the refusal at argument time
of what the DB cannot be tested with (exit 254, the measured reason)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_net import command_lines, run_prefix
from test_lab_e2e import Run, harness_run

from harness.cli import main

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed (scripts/bootstrap)")


@pytest.fixture(scope="module")
def etcd_prefix() -> Iterator[str]:
    yield from run_prefix("ret")


def etcd_run(prefix: str, store: Path, *args: str, time_limit: int = 15) -> Run:
    run = harness_run(prefix, store, "--db", "etcd", "--etcd-election-ms", "500", *args, time_limit=time_limit)
    work_dir = str(run.test.get("backend", {}).get("work_dir", ""))
    assert work_dir and not command_lines(work_dir, "etcd"), "an etcd member of the run is still alive"
    return run


@pytest.mark.netns
def test_a_register_run_under_partitions_and_kills_is_valid(etcd_prefix: str, tmp_path: Path) -> None:
    run = etcd_run(etcd_prefix, tmp_path / "store", "--nemesis", "partition,kill", "--schedule", "cycle",
                   "--nemesis-interval", "3", "--seed", "3")
    assert run.code == 0, f"exit code {run.code}\n{run.output[-3000:]}"
    assert run.results["checkers"]["linearizable"]["valid"] is True
    assert run.nemesis_events("start"), "no fault was injected"
    oks = {e["f"] for e in run.oks()}
    assert oks >= {"get", "put"}, oks
    cluster = (run.dir / "cluster.jsonl").read_text()
    assert '"role":"leader"' in cluster and '"applied"' in cluster, "no etcd status in the store"
    assert (run.dir / "n1" / "etcd.log").stat().st_size > 0, "the member's log was not collected"


@pytest.mark.netns
@pytest.mark.parametrize("workload", ["set", "list-append"])
def test_collections_under_partitions_and_kills_are_valid(etcd_prefix: str, tmp_path: Path, workload: str) -> None:
    run = etcd_run(etcd_prefix, tmp_path / "store", "--workload", workload, "--nemesis", "partition,kill",
                   "--schedule", "cycle", "--nemesis-interval", "3", "--seed", "11")
    assert run.code == 0, f"exit code {run.code}\n{run.output[-3000:]}"
    result = run.results["checkers"][workload]
    assert result["valid"] is True and result["anomalies"] == {} and result["acknowledged_count"] > 20, result
    write = "add" if workload == "set" else "append"
    assert {e["f"] for e in run.oks()} == {write, "read"}


@pytest.mark.netns
def test_serializable_reads_under_partitions_are_caught(etcd_prefix: str, tmp_path: Path) -> None:
    # Isolating the leader (or one node) leaves a member serving its local state while the majority writes on.
    # A short op timeout, so the isolated member's workers are not held by writes that cannot commit and keep
    # reading (at the default 5 s, 2 seeds of 4 were caught; at 1 s, 4 of 4: docs/etcd.md).
    run = etcd_run(etcd_prefix, tmp_path / "store", "--nemesis", "partition", "--partition-shapes", "leader,one",
                   "--schedule", "cycle", "--nemesis-interval", "2", "--read-consistency", "serializable",
                   "--keys", "2", "--op-timeout", "1", "--rate", "200", "--seed", "5", time_limit=20)
    assert run.code == 1, f"exit code {run.code}\n{run.output[-3000:]}"
    failure = run.results["checkers"]["linearizable"]["failure"]
    assert failure["part"] in {"k0", "k1"} and f"key {failure['part']}" in failure["explanation"]
    assert "get " + failure["part"] in failure["explanation"], failure["explanation"]


@pytest.mark.parametrize(("args", "reason"), [
    (["--nemesis", "clock"], "db etcd refuses nemesis clock: .*vDSO"),
    (["--nemesis", "kill,disk"], "db etcd refuses nemesis disk: .*no such device"),
    (["--read-consistency", "stale"], "db etcd refuses --read-consistency stale"),
])
def test_what_etcd_cannot_be_tested_with_is_refused_before_any_host(
        args: list[str], reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--db", "etcd", "--workload", "register", "--prefix", "ret", *args]) == 254
    assert re.search(reason, capsys.readouterr().err)
