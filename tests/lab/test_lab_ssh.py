"""Issue 12, proven against real servers: `harness run --backend ssh` (a subprocess, as a user runs it) on three
hosts that each run a real sshd (tests/lab/ssh_hosts.py: network namespaces, a login with sudo, disjoint lab
directories the backend is not told about). The project is installed on the hosts by the install step, the nodes
run from that install, and every nemesis acts through SSH. After each run nothing of it is left on the hosts (no
process, no chain, no run directory: only the reusable install) or on the controller; `harness clean --backend
ssh --purge-install` removes everything after a controller killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_net import command_lines, netns_unavailable
from ssh_hosts import SshHosts, make_base, ssh_unavailable, start_ssh_hosts

from harness.backends.netns import NetnsBackend
from harness.clean import clean, leftovers

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def hosts() -> Iterator[SshHosts]:
    reason = netns_unavailable() or ssh_unavailable()
    if reason:
        pytest.skip(reason)
    base = make_base()
    backend = NetnsBackend(base / "ns", prefix=f"rsh{os.getpid() % 100000:05d}")
    try:
        asyncio.run(backend.setup(3))
        yield asyncio.run(start_ssh_hosts(backend, base))
    finally:
        asyncio.run(backend.teardown())
        shutil.rmtree(base, ignore_errors=True)
    assert leftovers(backend.prefix) == []


@pytest.fixture(scope="module")
def prefix(hosts: SshHosts) -> Iterator[str]:
    run_prefix = f"rss{os.getpid() % 100000:05d}"
    yield run_prefix
    left = leftovers(run_prefix)
    if left:
        clean(run_prefix, force=True)
    assert left == []


def _argv(hosts: SshHosts, store: Path, *args: str, time_limit: int) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "run", "--backend", "ssh", "--hosts-file", str(hosts.hosts_file),
            "--ssh-accept-new-host-keys", "--workload", "register", "--time-limit", str(time_limit),
            "--concurrency", "6", "--rate", "100", "--keys", "4", "--store", str(store), *args]


def _env(prefix: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "RAFTKV_LAB_PREFIX": prefix}


def _run_dir(store: Path) -> Path:
    dirs = sorted(p for p in store.glob("*/2*") if p.is_dir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def _ssh_run(hosts: SshHosts, prefix: str, store: Path, *args: str, time_limit: int) -> tuple[int, str, Path]:
    proc = subprocess.run(_argv(hosts, store, *args, time_limit=time_limit), env=_env(prefix), cwd=ROOT,
                          capture_output=True, text=True, timeout=time_limit + 240)
    return proc.returncode, proc.stdout + proc.stderr, _run_dir(store)


def host_leftovers(hosts: SshHosts, prefix: str) -> list[str]:
    """What of the run prefix is on the hosts, looked at from outside (the namespaces and the lab directories)."""
    found = [f"process {line}" for line in command_lines(str(hosts.base), "/lab/")]
    for h in hosts.backend.hosts:
        for table in ("filter", "mangle"):
            rules = subprocess.run(["ip", "netns", "exec", h.namespace, "iptables", "-t", table, "-S"],
                                   capture_output=True, text=True, check=True).stdout
            found += [f"{h.name} chain {line}" for line in rules.splitlines() if f"{prefix}-" in line]
        lab = hosts.lab_dir(h.name)
        if lab.exists():
            found += [f"{h.name} {p.name}" for p in lab.iterdir() if p.name != "install"]
    return found


def test_partition_and_kill_run_over_ssh_is_valid_and_leaves_nothing(hosts: SshHosts, prefix: str,
                                                                      tmp_path: Path) -> None:
    code, output, run = _ssh_run(hosts, prefix, tmp_path / "store", "--nemesis", "partition,kill",
                                 "--schedule", "cycle", "--nemesis-interval", "3", "--seed", "12", time_limit=20)
    assert code == 0, output[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert results["valid"] is True and results["heal"]["ok"] is True
    assert results["heal"]["details"]["running"] == {"n1": True, "n2": True, "n3": True}
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    faults = {e["value"].get("fault") for e in history if e["process"] == "nemesis" and e["f"] == "start"}
    assert faults == {"partition", "kill"}, faults
    assert sum(e["type"] == "ok" for e in history if e["process"] != "nemesis") > 100
    # the report is complete: rendered, and every node's logs came back over SFTP
    assert (run / "report.html").stat().st_size > 0
    for node in ("n1", "n2", "n3"):
        assert (run / node / "raftkv.log").stat().st_size > 0 and (run / node / "raftkv.json").exists()
    test = json.loads((run / "test.json").read_text())
    backend = test["backend"]
    assert backend["name"] == "ssh" and [h["user"] for h in backend["hosts"]] == ["rlab"] * 3
    assert {k["host"] for k in backend["host_keys"]} == {"n1", "n2", "n3"}
    assert all(k["fingerprint"].startswith("SHA256:") for k in backend["host_keys"])
    # the nodes ran from the hosts' own install (a venv under each host's lab dir), not from this checkout
    config = json.loads((run / "n1" / "raftkv.json").read_text())
    assert config["data_dir"].startswith(str(hosts.lab_dir("n1")) + "/runs/")
    assert set(backend["install"]["installed"]) == {"n1", "n2", "n3"}
    for node in ("n1", "n2", "n3"):
        assert (hosts.lab_dir(node) / "install" / backend["install"]["key"] / "ok").exists()
    assert host_leftovers(hosts, prefix) == []
    assert leftovers(prefix) == []


def test_stale_reads_over_ssh_are_caught_and_the_install_is_reused(hosts: SshHosts, prefix: str,
                                                                  tmp_path: Path) -> None:
    code, output, run = _ssh_run(hosts, prefix, tmp_path / "store", "--nemesis", "partition", "--schedule", "cycle",
                                 "--nemesis-interval", "3", "--partition-shapes", "leader,one",
                                 "--read-consistency", "stale", "--seed", "8", "--no-report", time_limit=14)
    assert code == 1, output[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert results["valid"] is False and results["checkers"]["linearizable"]["valid"] is False
    backend = json.loads((run / "test.json").read_text())["backend"]
    assert backend["install"]["installed"] == {"n1": False, "n2": False, "n3": False}  # same key: reused
    assert not any(k["pinned"] for k in backend["host_keys"])  # the first run pinned them: now they are known
    assert host_leftovers(hosts, prefix) == []


def _await_ops(store: Path, proc: subprocess.Popen[Any], count: int, deadline_s: float = 120.0) -> None:
    """Until the run's history holds ``count`` ok operations (the nodes are up and serving)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and proc.poll() is None:
        for history in store.glob("*/2*/history.jsonl"):
            if history.read_text().count('"type": "ok"') + history.read_text().count('"type":"ok"') >= count:
                return
        time.sleep(0.2)  # the run is another process: its history file is all there is to watch
    pytest.fail(f"no {count} ok operations in time (exit {proc.poll()})")


def test_sigterm_tears_down_the_hosts(hosts: SshHosts, prefix: str, tmp_path: Path) -> None:
    store = tmp_path / "store"
    with subprocess.Popen(_argv(hosts, store, "--nemesis", "partition,kill", "--no-report", time_limit=120),
                          env=_env(prefix), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        _await_ops(store, proc, 20)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, out[-2000:]
    assert host_leftovers(hosts, prefix) == [], out[-2000:]
    assert leftovers(prefix) == []


def test_harness_clean_over_ssh_removes_a_killed_runs_leftovers(hosts: SshHosts, prefix: str,
                                                                tmp_path: Path) -> None:
    store = tmp_path / "store"
    with subprocess.Popen(_argv(hosts, store, "--nemesis", "partition", "--no-report", time_limit=120),
                          env=_env(prefix), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        _await_ops(store, proc, 20)
        proc.kill()  # SIGKILL: no teardown at all
        proc.wait(timeout=30)
    left = host_leftovers(hosts, prefix)
    assert any(line.startswith("process") for line in left), left  # the nodes outlived their controller
    clean_argv = [sys.executable, "-m", "harness.cli", "clean", "--backend", "ssh", "--hosts-file",
                  str(hosts.hosts_file), "--purge-install"]
    done = subprocess.run(clean_argv, env=_env(prefix), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "killed process" in done.stdout and "removed" in done.stdout
    assert host_leftovers(hosts, prefix) == []
    assert not any(hosts.lab_dir(h.name).exists() for h in hosts.backend.hosts)  # --purge-install: all gone
    again = subprocess.run(clean_argv, env=_env(prefix), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "killed" not in again.stdout, again.stdout + again.stderr
