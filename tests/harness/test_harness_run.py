"""Whole runs on real network namespaces with the fake DB (tests/harness/harness_fake.py): verdicts, the store,
healing, SIGTERM mid-run, SIGKILL then `harness clean`, `harness analyze`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness_fake
import pytest
from harness_testutil import HERE, netns_available, subprocess_env

from harness.clean import leftovers
from harness.labstate import LabState
from harness.procs import is_same_alive
from harness.run import ExitCode, RunConfig, run_test

pytestmark = [pytest.mark.netns, pytest.mark.skipif(not netns_available(), reason="needs root, ip and iptables")]


@pytest.fixture(autouse=True)
def fakes() -> Iterator[None]:
    harness_fake.register()
    yield
    harness_fake.unregister()


def config(prefix: str, store: Path, **kw: Any) -> RunConfig:
    base: dict[str, Any] = dict(workload="fakeadd", nodes=3, time_limit=3.0, concurrency=6, rate=150.0, seed=11,
                                schedule="cycle", nemesis_interval=0.8, op_timeout=0.4, final_time_limit=5.0, quiesce_timeout=5.0,
                                status_interval=0.2, store=store, prefix=prefix, render=False)
    base.update(kw)
    return RunConfig(**base)


def history(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


async def test_a_run_with_faults_is_valid_stored_healed_and_leaves_nothing(prefix: str, tmp_path: Path) -> None:
    res = await run_test(config(prefix, tmp_path / "store", nemeses=("isolate",)))
    assert res.error is None, res.error
    assert res.exit_code == ExitCode.VALID and res.valid is True
    run = res.run_dir
    assert run is not None and run.parent.name == "fakeadd-isolate"
    test = json.loads((run / "test.json").read_text())
    assert test["seed"] == 11 and test["workload"] == "fakeadd" and test["nemeses"] == ["isolate"]
    assert [h["name"] for h in test["hosts"]] == ["n1", "n2", "n3"]
    assert test["options"]["fake_lie"] == 0 and test["options"]["time_limit"] == 3.0
    assert isinstance(test["start_time"], int) and test["start_wall"]
    h = history(run)
    assert [e["index"] for e in h] == list(range(len(h)))
    assert all(e["time"] >= test["start_time"] for e in h)
    starts = [e for e in h if e["process"] == "nemesis" and e["type"] == "info" and e["f"] == "start"]
    assert starts and all(e["value"]["fault"] == "isolate" and len(e["value"]["targets"]) == 1 for e in starts)
    # ops to the isolated host time out: info, and that thread goes on under a new process
    infos = [e for e in h if e["type"] == "info" and e["process"] not in ("nemesis", "harness")]
    assert infos and all(e["error"] == "timeout" for e in infos)
    for e in infos:
        assert not any(x["process"] == e["process"] and x["index"] > e["index"] for x in h)
    oks_after_heal = [e for e in h if e["f"] == "read" and e["type"] == "ok"]
    assert len(oks_after_heal) >= 3  # final reads of every node
    # the quiesce is recorded as evidence; a DB without Timing/RecoveryBound gets 4 x 1 s + 2 s
    (quiet,) = [e for e in h if e["process"] == "harness" and e["f"] == "quiesce"]
    assert quiet["value"]["agreed"] is True and quiet["value"]["leader"] == "n1"
    assert test["options"]["recovery_bound_s"] == 6.0
    results = json.loads((run / "results.json").read_text())
    assert results["valid"] is True and results["heal"]["ok"] is True
    assert results["failures"] == {"safety": [], "liveness": []}
    assert results["heal"]["details"]["running"] == {"n1": True, "n2": True, "n3": True}
    cluster = [json.loads(line) for line in (run / "cluster.jsonl").read_text().splitlines()]
    assert {c["node"] for c in cluster} == {"n1", "n2", "n3"} and any(c.get("role") == "leader" for c in cluster)
    for node in ("n1", "n2", "n3"):
        assert "fake_requests_total" in (run / node / "metrics.txt").read_text()
        assert "listening" in (run / node / "server.log").read_text()
    assert "phase: final reads" in (run / "harness.log").read_text()
    # The fake DB has no StateDigest: the convergence phase says so in the history, and the checker after it.
    (converge,) = [e for e in h if e["process"] == "harness" and e["f"] == "converge"]
    assert converge["type"] == "info" and "no StateDigest capability" in converge["value"]["skipped"]
    assert converge["index"] > max(e["index"] for e in h if e["process"] not in ("nemesis", "harness"))
    assert (tmp_path / "store" / "latest").resolve() == run.resolve()
    assert leftovers(prefix) == []

    # harness analyze re-checks it from the store alone
    from harness.cli import main

    assert main(["analyze", str(run)]) == 0
    assert "analyzed_at" in json.loads((run / "results.json").read_text())


async def test_a_lying_server_is_caught_invalid(prefix: str, tmp_path: Path) -> None:
    res = await run_test(config(prefix, tmp_path / "store", time_limit=1.5, extra={"fake_lie": 5}))
    assert res.error is None, res.error
    assert res.exit_code == ExitCode.INVALID and res.valid is False
    bad = res.results["checkers"]["adder"]["bad"]  # type: ignore[index]
    assert bad and all(v["read"] < v["lower"] for v in bad.values())
    assert leftovers(prefix) == []


async def test_a_failing_setup_is_a_harness_failure_and_still_tears_down(prefix: str, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken_start(self: Any, test: Any, node: str) -> None:
        raise RuntimeError("binary not found")

    monkeypatch.setattr(harness_fake.FakeDB, "start", broken_start)
    res = await run_test(config(prefix, tmp_path / "store"))
    assert res.exit_code == ExitCode.HARNESS_FAILED
    assert "binary not found" in (res.error or "")
    assert json.loads((res.run_dir / "results.json").read_text())["valid"] == "unknown"  # type: ignore[operator]
    assert leftovers(prefix) == []


def _cli(prefix: str, store: Path, time_limit: int) -> subprocess.Popen[str]:
    argv = [sys.executable, os.path.join(HERE, "harness_fake.py"), "run", "--workload", "fakeadd", "--nemesis",
            "isolate", "--nodes", "3", "--time-limit", str(time_limit), "--concurrency", "4", "--rate", "100",
            "--schedule", "cycle", "--nemesis-interval", "0.5", "--op-timeout", "0.3", "--prefix", prefix, "--store", str(store),
            "--no-report", "--seed", "3"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())


def _wait_for_history(store: Path, lines: int, proc: subprocess.Popen[str], timeout: float = 30) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        runs = list(store.glob("*/*/history.jsonl"))
        if runs and len(runs[0].read_text().splitlines()) >= lines:
            return runs[0].parent
        time.sleep(0.05)
    raise AssertionError("the run never got going")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_run_heals_and_tears_everything_down(prefix: str, tmp_path: Path, sig: signal.Signals) -> None:
    store = tmp_path / "store"
    proc = _cli(prefix, store, time_limit=60)
    run_dir = _wait_for_history(store, 100, proc)
    state = LabState.load(prefix)
    assert state is not None and len(state.pids) == 3
    assert f"iptables chain filter/{prefix}-fake" in leftovers(prefix)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.HARNESS_FAILED, (out, err)
    assert sig.name in err and "interrupted" in out
    assert leftovers(prefix) == []
    assert not any(is_same_alive(p) for p in state.pids)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["interrupted"] is True and results["heal"]["ok"] is True
    assert all((run_dir / n / "server.log").exists() for n in ("n1", "n2", "n3"))
    # the history stays well formed: the nemesis's events alternate invoke / completion
    nem = [e["type"] for e in history(run_dir) if e["process"] == "nemesis"]
    assert nem == ["invoke", "info"] * (len(nem) // 2)


def test_clean_after_sigkill_mid_run(prefix: str, tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc = _cli(prefix, store, time_limit=60)
    run_dir = _wait_for_history(store, 100, proc)
    state = LabState.load(prefix)
    assert state is not None
    proc.kill()
    proc.communicate()
    left = leftovers(prefix)
    assert f"namespace {prefix}-n1" in left and f"nft table inet {prefix}_fake" in left
    res = subprocess.run([sys.executable, "-m", "harness.cli", "clean", "--prefix", prefix], capture_output=True,
                         text=True, env=subprocess_env(), timeout=60)
    assert res.returncode == 0, res.stderr
    assert leftovers(prefix) == []
    assert not any(is_same_alive(p) for p in state.pids)
    # what happened before the kill is on disk, whole lines, and can be analyzed without a results.json
    h = history(run_dir)
    assert len(h) >= 100 and [e["index"] for e in h] == list(range(len(h)))
    assert not (run_dir / "results.json").exists()
    res = subprocess.run([sys.executable, os.path.join(HERE, "harness_fake.py"), "analyze", str(run_dir)],
                         capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert res.returncode == ExitCode.UNKNOWN, res.stderr  # no final reads: the fake checker cannot tell
    assert json.loads((run_dir / "results.json").read_text())["valid"] == "unknown"


async def test_the_report_is_rendered_when_reports_is_there(prefix: str, tmp_path: Path) -> None:
    pytest.importorskip("reports.render")
    res = await run_test(config(prefix, tmp_path / "store", time_limit=1.0, render=True))
    assert res.exit_code == ExitCode.VALID, res.error
    run = res.run_dir
    assert run is not None and (run / "report.html").stat().st_size > 1000
    index = (tmp_path / "store" / "index.html").read_text()  # the report's "all runs" link has a target
    assert run.relative_to(tmp_path / "store").as_posix() in index
    (run / "report.html").unlink()
    from harness.cli import main

    assert main(["report", str(run)]) == 0
    assert (run / "report.html").exists()


async def test_the_seed_replays_the_generator_and_the_nemesis_choices(prefix: str, tmp_path: Path) -> None:
    def choices(run: Path) -> tuple[list[Any], list[Any]]:
        h = history(run)
        values = [e["value"] for e in h if e["type"] == "invoke" and e["f"] == "add"][:40]
        targets = [e["value"]["targets"] for e in h if e["process"] == "nemesis" and e["type"] == "info"
                   and e["f"] == "start"]
        return values, targets

    runs = []
    for seed in (21, 21, 22):
        res = await run_test(config(prefix, tmp_path / "store", seed=seed, time_limit=2.0, nemesis_interval=0.3,
                                    rate=100.0, nemeses=("isolate",), final_time_limit=2.0))
        assert res.error is None, res.error
        runs.append(choices(res.run_dir))  # type: ignore[arg-type]
    assert runs[0] == runs[1]
    assert runs[0][1] and len(runs[0][0]) == 40
    assert runs[0] != runs[2]
