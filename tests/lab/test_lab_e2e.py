"""Issue 5 end to end: the real `harness run` (a subprocess, as a user runs it) on the netns backend against the
real raftkv, with the register workload and each nemesis. Each run has a prefix of this test session's own, so
nothing here collides with another session or with a user's lab, and each ends by checking that nothing of it remains.

Deadlines are generous but bounded (a loaded 2-core machine); nothing sleeps: the runs are awaited as processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_net import command_lines, run_prefix

from harness.clean import leftovers

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def e2e_prefix() -> Iterator[str]:
    yield from run_prefix("rle")


class Run:
    """One finished `harness run`: its exit code, output and stored files."""

    def __init__(self, proc: subprocess.CompletedProcess[str], store: Path) -> None:
        self.code, self.output = proc.returncode, proc.stdout + proc.stderr
        dirs = sorted(p for p in store.glob("*/2*") if p.is_dir())
        assert len(dirs) == 1, f"expected one run directory in {store}: {dirs}\n{self.output}"
        self.dir = dirs[0]
        self.test = json.loads((self.dir / "test.json").read_text())
        self.results = json.loads((self.dir / "results.json").read_text())
        self.history = [json.loads(line) for line in (self.dir / "history.jsonl").read_text().splitlines()]
        self._invoked_at: dict[int, int] = {}  # completion index -> its invoke's time
        pending: dict[Any, int] = {}
        for e in self.history:
            if e["type"] == "invoke":
                pending[e["process"]] = e["time"]
            elif e["process"] in pending:
                self._invoked_at[e["index"]] = pending.pop(e["process"])

    def invoked_at(self, completion: dict[str, Any]) -> int:
        return self._invoked_at[completion["index"]]

    def latency_ms(self, completion: dict[str, Any]) -> float:
        return (completion["time"] - self.invoked_at(completion)) / 1e6

    def nemesis_events(self, f: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.history if e["process"] == "nemesis" and e["type"] == "info"
                and (f is None or e["f"] == f)]

    def fault_windows(self, kind: str) -> list[tuple[int, int, dict[str, Any]]]:
        """(start completion time, stop completion time, start value) of every fault of a kind."""
        windows, opened = [], None
        for e in self.nemesis_events():
            if e["value"].get("fault") != kind:
                continue
            if e["f"] == "start":
                opened = e
            elif opened is not None:
                windows.append((opened["time"], e["time"], opened["value"]))
                opened = None
        return windows

    def oks(self) -> list[dict[str, Any]]:
        return [e for e in self.history if e["process"] != "nemesis" and e["type"] == "ok"]


def harness_run(prefix: str, store: Path, *args: str, time_limit: int) -> Run:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAFTKV_LAB_PREFIX": prefix}
    argv = [sys.executable, "-m", "harness.cli", "run", "--workload", "register", "--nodes", "3",
            "--time-limit", str(time_limit), "--concurrency", "6", "--rate", "100", "--keys", "4",
            "--store", str(store), "--no-report", *args]
    with subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        try:
            out, err = p.communicate(timeout=time_limit + 240)
        except subprocess.TimeoutExpired:
            p.terminate()  # SIGTERM: the harness heals and tears down before it exits
            out, err = p.communicate(timeout=120)
            pytest.fail(f"harness run did not finish within {time_limit + 240} s\n{(out + err)[-3000:]}")
    run = Run(subprocess.CompletedProcess(argv, p.returncode, out, err), store)
    assert leftovers(prefix) == [], "the run left namespaces, links, chains or processes of the lab behind"
    assert not _lab_processes(run), "a raftkv node of the run is still alive"
    return run


def _lab_processes(run: Run) -> list[str]:
    """Command lines of live processes that are nodes of this run (by their data directory)."""
    work_dir = str(run.test.get("backend", {}).get("work_dir", ""))
    return command_lines(work_dir, "raftkv") if work_dir else []


def assert_valid(run: Run) -> None:
    assert run.code == 0, f"exit code {run.code}\n{run.output[-3000:]}"
    assert run.results["valid"] is True
    heal = run.results["heal"]
    assert heal["ok"] is True, heal
    assert heal["details"]["running"] == {"n1": True, "n2": True, "n3": True}


def assert_final_reads(run: Run) -> None:
    """After the last fault: every key read ok (the final-read phase)."""
    last_stop = max(e["time"] for e in run.nemesis_events("stop"))
    read_after = {e["key"] for e in run.oks() if e["f"] == "get" and e["time"] > last_stop}
    assert read_after == {"k0", "k1", "k2", "k3"}


def test_partition_run_against_correct_raftkv_is_valid(e2e_prefix: str, tmp_path: Path) -> None:
    run = harness_run(e2e_prefix, tmp_path / "store", "--nemesis", "partition", "--schedule", "cycle", "--nemesis-interval", "4",
                      "--partition-shapes", "leader,halves", "--seed", "7", time_limit=20)
    assert_valid(run)
    windows = run.fault_windows("partition")
    assert len(windows) >= 2, run.nemesis_events()
    for _, _, value in windows:
        assert value["shape"] in ("leader", "halves") and value["targets"], value
        assert sorted(n for group in value["groups"] for n in group) == ["n1", "n2", "n3"]
    # Clients made progress while the majority side was cut from the rest, and after the faults.
    during = [e for e in run.oks() if any(start < e["time"] < stop for start, stop, _ in windows)]
    assert len({e["f"] for e in during}) >= 2 and len(during) > 20, f"{len(during)} ok ops during faults"
    assert_final_reads(run)
    heal_partition = run.results["heal"]["details"]["nemesis"]["partition"]
    assert heal_partition["ok"] and heal_partition["details"]["hosts"] == {"n1": [], "n2": [], "n3": []}
    linear = run.results["checkers"]["linearizable"]
    assert linear["valid"] is True and linear["parts"]["total"] == 4


def test_stale_reads_under_partitions_are_caught(e2e_prefix: str, tmp_path: Path) -> None:
    run = harness_run(e2e_prefix, tmp_path / "store", "--nemesis", "partition", "--schedule", "cycle", "--nemesis-interval", "3",
                      "--partition-shapes", "leader,one", "--read-consistency", "stale", "--seed", "8",
                      time_limit=14)
    assert run.code == 1, f"exit code {run.code}\n{run.output[-3000:]}"
    assert run.results["valid"] is False
    linear = run.results["checkers"]["linearizable"]
    failure = linear["failure"]
    assert failure["part"] in {"k0", "k1", "k2", "k3"} and failure["part"] in linear["parts"]["invalid"]
    assert failure["part"] in failure["explanation"]
    # The offending operation is a read of that key, and it points at its invoke line in history.jsonl.
    stuck = failure["stuck"][0]
    invoke = run.history[stuck["op"]]
    assert (invoke["type"], invoke["f"], invoke["key"]) == ("invoke", "get", failure["part"])
    assert stuck["description"].startswith("get")
    assert run.results["heal"]["ok"] is True
    # The stored run re-checks to the same verdict (the workload's checker rebuilt from test.json's options).
    again = subprocess.run([sys.executable, "-m", "harness.cli", "analyze", str(run.dir), "--json"], cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1, again.stdout + again.stderr
    assert json.loads((run.dir / "results.json").read_text())["checkers"]["linearizable"]["failure"]["part"] == \
        failure["part"]


def test_kill_all_nodes_loses_no_acknowledged_write(e2e_prefix: str, tmp_path: Path) -> None:
    run = harness_run(e2e_prefix, tmp_path / "store", "--nemesis", "kill", "--kill-targets", "all",
                      "--schedule", "cycle", "--nemesis-interval", "3", "--seed", "9", time_limit=15)
    assert_valid(run)
    windows = run.fault_windows("kill")
    assert windows and all(value["targets"] == ["n1", "n2", "n3"] for _, _, value in windows)
    first_kill = windows[0][0]
    acked = [e for e in run.oks() if e["f"] == "put" and e["time"] < first_kill]
    assert acked, "writes were acknowledged before every node was killed"
    assert any(e["time"] > windows[0][1] for e in run.oks() if e["f"] == "put"), "writes resumed after restart"
    assert_final_reads(run)
    # The final reads name values that some write put there (never invented), and the checker found every
    # acknowledged write in a linearizable order: a write lost by the kill -9 would make some read impossible.
    written = {e["value"]["value"] for e in run.history if e["type"] == "invoke" and e["f"] == "put"}
    last_stop = max(e["time"] for e in run.nemesis_events("stop"))
    final = [e for e in run.oks() if e["f"] == "get" and e["time"] > last_stop]
    assert all(e["value"]["value"] is None or e["value"]["value"] in written for e in final)
    assert run.results["checkers"]["linearizable"]["valid"] is True


def test_pause_run_is_valid(e2e_prefix: str, tmp_path: Path) -> None:
    # A stopped node accepts connections and never answers: a short --op-timeout lets workers give up on it.
    run = harness_run(e2e_prefix, tmp_path / "store", "--nemesis", "pause", "--pause-targets", "leader,minority",
                      "--schedule", "cycle", "--nemesis-interval", "3", "--op-timeout", "1", "--seed", "10", time_limit=12)
    assert_valid(run)
    windows = run.fault_windows("pause")
    assert windows and all(len(value["targets"]) == 1 for _, _, value in windows)
    during = [e for e in run.oks() if any(start < e["time"] < stop for start, stop, _ in windows)]
    assert during, "the majority kept serving while one node was stopped"
    assert_final_reads(run)


def test_packet_delay_and_loss_run_is_valid_and_slows_but_does_not_stop_the_clients(e2e_prefix: str,
                                                                                   tmp_path: Path) -> None:
    run = harness_run(e2e_prefix, tmp_path / "store", "--nemesis", "packet", "--schedule", "cycle", "--nemesis-interval", "3",
                      "--packet-behaviours", "delay+loss", "--packet-targets", "all", "--packet-delay-ms", "40",
                      "--packet-jitter-ms", "10", "--packet-loss", "0.1", "--seed", "5", time_limit=12)
    assert_valid(run)
    windows = run.fault_windows("packet")
    assert windows, run.nemesis_events()
    for _, _, value in windows:
        assert value["behaviour"] == "delay+loss" and value["targets"] == ["n1", "n2", "n3"], value
    # From the start's completion (rules in place) to the stop's invoke (the stop removes the rules first).
    stop_invokes = [e["time"] for e in run.history if e["process"] == "nemesis" and e["type"] == "invoke"
                    and e["f"] == "stop"]
    degraded = [(start, min(t for t in stop_invokes if t > start)) for start, _, _ in windows]
    during = [e for e in run.oks() if any(start < run.invoked_at(e) and e["time"] < stop for start, stop in degraded)]
    assert len(during) > 10, f"{len(during)} ok ops during the faults"
    # Every write sent during a fault crosses the degraded network twice (append, ack): none commits faster than
    # the delay.
    writes = [e for e in during if e["f"] == "put"]
    assert writes and all(run.latency_ms(e) >= 30 for e in writes), sorted(run.latency_ms(e) for e in writes)[:5]
    assert_final_reads(run)
    heal = run.results["heal"]["details"]["nemesis"]["packet"]
    assert heal["ok"], heal
    assert all((run.dir / n / "nfqueue.log").exists() for n in ("n1", "n2", "n3"))


def test_clock_skew_run_is_valid_and_the_nodes_ran_under_the_shim(e2e_prefix: str, tmp_path: Path) -> None:
    """raftkv trusts no clock for safety: skewing clocks by up to a minute either way, and slowing them to a tenth of
    true time or less, leaves the run valid. The cycle takes the clock nemesis's two kinds in turn."""
    run = harness_run(e2e_prefix, tmp_path / "store", "--nemesis", "clock", "--schedule", "cycle", "--nemesis-interval", "2",
                      "--clock-targets", "all,majority", "--seed", "7", time_limit=10)  # seed 7: clock, then clock-rate
    assert_valid(run)
    skews = [v for _, _, v in run.fault_windows("clock")]
    rates = [v for _, _, v in run.fault_windows("clock-rate")]
    assert skews and all(v["offsets_s"] and all(abs(s) <= 60 for s in v["offsets_s"].values()) for v in skews)
    assert rates and all(v["rates"] and all(0.01 <= r <= 0.1 for r in v["rates"].values()) for v in rates)
    assert run.results["heal"]["details"]["nemesis"]["clock"]["ok"] is True
    assert_final_reads(run)


def test_combined_nemeses_take_turns_and_heal(e2e_prefix: str, tmp_path: Path) -> None:
    # Seed 13 makes the engine's fault rhythm start partition, then pause, then kill (the kinds are drawn from the
    # seed alone, never from timing), so each kind's start and stop is exercised in one short run.
    run = harness_run(e2e_prefix, tmp_path / "store", "--nemesis", "partition,kill,pause", "--schedule", "cycle", "--nemesis-interval", "2",
                      "--op-timeout", "1", "--seed", "13", time_limit=13)
    assert_valid(run)
    starts = [e["value"] for e in run.nemesis_events("start")]
    assert [v["fault"] for v in starts][:3] == ["partition", "pause", "kill"], starts
    assert all(v["targets"] or v.get("skipped") for v in starts)
    heal = run.results["heal"]["details"]["nemesis"]
    assert set(heal) == {"partition", "kill", "pause"} and all(h["ok"] for h in heal.values()), heal
    assert_final_reads(run)


def test_hunting_with_every_nemesis_is_valid_heals_and_leaves_nothing(e2e_prefix: str, tmp_path: Path) -> None:
    """`--nemesis all` under the hunting schedule (the default), dense: overlapping faults of several kinds, each
    event naming its move, and afterwards every fault healed, every node running and answering, nothing left."""
    run = harness_run(e2e_prefix, tmp_path / "store", "--nemesis", "all", "--fault-rate", "40", "--op-timeout", "1",
                      "--seed", "31", time_limit=15)
    assert_valid(run)
    assert {"partition", "kill", "pause", "packet", "clock"} <= set(run.test["nemeses"])
    assert run.test["options"]["schedule"] == "hunt" and run.test["options"]["nemeses"] == ["all"]
    scheduled = [e for e in run.nemesis_events() if not e["value"].get("heal")]
    starts = [e["value"] for e in scheduled if e["f"] == "start"]
    assert len(starts) >= 4 and len({v["fault"] for v in starts}) >= 2, starts
    hunted = [e for e in scheduled if not str(e["value"].get("fault")).startswith("disk-")]  # disk: its own cycle
    assert all(e["value"].get("move") for e in hunted), hunted  # every hunted fault says which move it belongs to
    heal = run.results["heal"]["details"]["nemesis"]
    assert set(heal) == set(run.test["nemeses"]) and all(h["ok"] for h in heal.values()), heal
    assert_final_reads(run)


@pytest.mark.slow
def test_torture_five_nodes_every_fault_every_shape(e2e_prefix: str, tmp_path: Path) -> None:
    """A minute of every nemesis and every partition shape on five nodes (about 70 s; RAFTKV_SLOW=1)."""
    run = harness_run(e2e_prefix, tmp_path / "store", "--nodes", "5", "--nemesis", "partition,kill,pause,packet,clock",
                      "--schedule", "cycle", "--nemesis-interval", "4", "--op-timeout", "2", "--concurrency", "10", "--rate", "200",
                      "--keys", "8", "--partition-shapes", "halves,one,leader,ring,bridge,one-way", "--seed", "21",
                      time_limit=60)
    assert run.code == 0, f"exit code {run.code}\n{run.output[-3000:]}"
    assert run.results["valid"] is True and run.results["heal"]["ok"] is True
    assert len(run.nemesis_events("start")) >= 6


def test_node_bound_clients_read_through_every_node_and_the_replicas_converge(e2e_prefix: str,
                                                                                tmp_path: Path) -> None:
    """Jepsen's placement (--client-mode node): each worker asks its own node only, so reads are answered by
    every node, writes at followers are refused (not-leader, a certain fail), the final reads go through every
    node, and the convergence oracle finds every replica at one applied index with one digest."""
    run = harness_run(e2e_prefix, tmp_path / "store", "--client-mode", "node", "--seed", "5", time_limit=8)
    assert run.code == 0, f"exit code {run.code}\n{run.output[-3000:]}"
    assert run.test["options"]["client_mode"] == "node"
    clients = [e for e in run.history if e["process"] not in ("nemesis", "harness")]
    reads_by_node = {e["node"] for e in clients if e["f"] == "get" and e["type"] == "ok"}
    assert reads_by_node == {"n1", "n2", "n3"}
    writes = [e for e in clients if e["f"] in ("put", "delete") and e["type"] != "invoke"]
    refused = [e for e in writes if e.get("error") == "not-leader"]
    assert refused and all(e["type"] == "fail" for e in refused)
    assert any(e["type"] == "ok" for e in writes)
    # Final reads: after the last write, every key was read ok through every node.
    last_write = max(e["index"] for e in writes)
    final = {(e["node"], e["key"]) for e in clients if e["f"] == "get" and e["type"] == "ok" and e["index"] > last_write}
    assert final >= {(n, k) for n in ("n1", "n2", "n3") for k in ("k0", "k1", "k2", "k3")}
    # The convergence oracle: one observation after every client op (only the harness's other end-of-run
    # observations, such as the log-matching witness's chains, follow it), every replica at one index and digest.
    (converge,) = [e for e in run.history if e["process"] == "harness" and e["f"] == "converge"]
    after = run.history[run.history.index(converge) + 1:]
    assert after and all(e["process"] == "harness" and e["f"] == "chain" for e in after), after[:3]
    states = converge["value"]["nodes"]
    assert converge["value"]["converged"] is True
    assert len({(s["applied"], s["digest"]) for s in states.values()}) == 1, states
    result = run.results["checkers"]["convergence"]
    assert result["valid"] is True and result["mismatches"] == [] and set(result["applied"]) == {"n1", "n2", "n3"}
