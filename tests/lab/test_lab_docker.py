"""Issue 12's Docker backend against a real Docker daemon (the lab's own, started by scripts/docker-setup; CI runs
these in .ci/docker after it): Remote through exec inside containers, then whole `harness run --backend docker`
runs, valid and invalid, and that nothing of a run is left on the Docker host after success and after SIGTERM.

Skipped when no Docker daemon answers or the base image is missing (run scripts/docker-setup first, as root), unless
RAFTKV_REQUIRE_DOCKER=1 (.ci/docker), which makes that a failure."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_lab_e2e import ROOT, Run, assert_final_reads, assert_valid, harness_run

from harness.backends.dockerhost import (
    DockerBackend,
    DockerBackendError,
    check_docker,
    connect,
    default_docker_host,
    labelled,
)
from harness.backends.dockerimage import IMAGE_REPO, ensure_image
from harness.protocols import RemoteError

pytestmark = pytest.mark.docker


def docker_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the docker backend's tests run as root"
    try:
        check_docker({})
    except DockerBackendError as e:
        return str(e)
    return None


@pytest.fixture(scope="module")
def image() -> str:
    """The node image of this checkout, built once for the module (a first build takes a minute or two)."""
    reason = docker_unavailable()
    if reason and os.environ.get("RAFTKV_REQUIRE_DOCKER") == "1":  # .ci/docker: set up, so absence is a failure
        pytest.fail(f"RAFTKV_REQUIRE_DOCKER=1 but {reason}")
    if reason:
        pytest.skip(reason)
    client = connect(default_docker_host())
    try:
        return str(ensure_image(client, "raftkv-lab-base:bookworm"))
    finally:
        client.close()


def _images() -> set[str]:
    client = connect(default_docker_host())
    try:
        return {tag for image in client.images.list() for tag in image.tags}
    finally:
        client.close()


def _labelled(prefix: str) -> list[str]:
    client = connect(default_docker_host())
    try:
        return labelled(client, prefix)
    finally:
        client.close()


@pytest.fixture
def prefix(image: str) -> Iterator[str]:
    """A lab prefix of this test alone; afterwards nothing labelled with it may remain on the Docker host, and
    no image beyond the ones there before (the base and this checkout's node image)."""
    p = f"rdt{os.getpid() % 100000:05d}"
    before = _images()
    yield p
    left = _labelled(p)
    if left:
        subprocess.run([sys.executable, "-m", "harness.cli", "clean", "--backend", "docker", "--prefix", p,
                        "--force"], cwd=ROOT, capture_output=True, timeout=120)
    assert left == [], "the run left containers or networks behind"
    assert _images() <= before, "the run left images behind"


@pytest.fixture
def hosts(prefix: str, tmp_path: Path) -> Iterator[tuple[DockerBackend, list[Any]]]:
    backend = DockerBackend(tmp_path, prefix=prefix)
    try:
        remotes = asyncio.run(backend.setup(2))
        yield backend, remotes
    finally:
        asyncio.run(backend.teardown())


def test_remote_exec_files_and_daemons_inside_the_containers(hosts: tuple[DockerBackend, list[Any]],
                                                             tmp_path: Path) -> None:
    backend, (n1, n2) = hosts

    async def scenario() -> None:
        res = await n1.exec(["sh", "-c", "cat; echo err >&2; exit 3"], stdin=b"in", check=False)
        assert (res.returncode, res.stdout, res.stderr) == (3, "in", "err\n")
        with pytest.raises(RemoteError, match="exited 3"):
            await n1.exec(["sh", "-c", "exit 3"])
        with pytest.raises(RemoteError, match="timed out"):
            await n1.exec(["sleep", "5"], timeout=0.5)
        assert (await n1.exec(["hostname"])).stdout.strip() == "n1"
        assert "default" not in (await n1.exec(["ip", "route"])).stdout  # no route out of the lab's network
        # Files both ways, parents made on the way in.
        (tmp_path / "up.txt").write_text("payload")
        await n1.upload(tmp_path / "up.txt", "/var/lib/raftkv-lab/x/y/up.txt")
        await n1.download("/var/lib/raftkv-lab/x/y/up.txt", tmp_path / "down.txt")
        assert (tmp_path / "down.txt").read_text() == "payload"
        with pytest.raises(RemoteError, match="no such file"):
            await n1.download("/nonexistent", tmp_path / "none")
        # A daemon: reachable from the other container and from the controller; kill -9 ends it, not the container.
        py1, py2 = n1.python_runtime().python, n2.python_runtime().python  # harness.protocols.HostPython
        pid = await n1.spawn([py1, "-m", "http.server", "--bind", n1.address, "9100"],
                             log_path="/var/lib/raftkv-lab/log/http.log")
        assert await n1.alive(pid)
        probe = f"import urllib.request as u; u.urlopen('http://{n1.address}:9100/', timeout=2)"
        await _await_ok(n2, [py2, "-c", probe])
        assert await n1.signal(pid, signal.SIGKILL)
        assert not await n1.alive(pid)  # reaped: PID 1 of the container reaps, no zombie is left
        assert (await n1.exec(["true"])).returncode == 0  # the container lives on
        assert not await n1.signal(pid, signal.SIGTERM)
        # iptables in the container's own namespace (what the partition nemesis does).
        await n2.exec(["iptables", "-I", "INPUT", "-s", n1.address, "-j", "DROP"])
        pid = await n2.spawn([py2, "-m", "http.server", "--bind", n2.address, "9100"],
                             log_path="/var/lib/raftkv-lab/log/http.log")
        cut = await n1.exec([py1, "-c", probe.replace(n1.address, n2.address).replace("2)", "1)")],
                            check=False)
        assert cut.returncode != 0
        await n2.exec(["iptables", "-D", "INPUT", "-s", n1.address, "-j", "DROP"])
        await _await_ok(n1, [py1, "-c", probe.replace(n1.address, n2.address)])
        assert await n2.signal(pid, signal.SIGKILL)

    asyncio.run(scenario())
    assert str(backend.describe()["image"]).startswith(IMAGE_REPO + ":")


async def _await_ok(host: Any, argv: list[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (res := await host.exec(argv, check=False)).returncode != 0:
        assert time.monotonic() < deadline, res.stderr
        await asyncio.sleep(0.2)


def _docker_run(prefix: str, tmp_path: Path, *args: str, time_limit: int) -> Run:
    return harness_run(prefix, tmp_path / "store", "--backend", "docker", *args, time_limit=time_limit)


def test_partition_and_kill_run_is_valid_with_a_complete_report(prefix: str, tmp_path: Path) -> None:
    run = _docker_run(prefix, tmp_path, "--nemesis", "partition,kill", "--schedule", "cycle",
                      "--nemesis-interval", "4", "--seed", "7", time_limit=20)  # seed 7: a partition, then a kill
    assert_valid(run)
    assert run.fault_windows("partition") and run.fault_windows("kill"), run.nemesis_events()
    assert_final_reads(run)
    backend = run.test["backend"]
    assert backend["name"] == "docker" and backend["image"].startswith(IMAGE_REPO + ":")
    # The nodes' logs were copied out of the containers before they were removed.
    for node in ("n1", "n2", "n3"):
        assert f"{node} INFO serving: peers on 10.78." in (run.dir / node / "raftkv.log").read_text()
    rendered = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(run.dir)], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
    assert rendered.returncode == 0, rendered.stderr
    html = (run.dir / "report.html").read_text()
    assert "partition" in html and "kill" in html


def test_stale_reads_run_is_invalid(prefix: str, tmp_path: Path) -> None:
    run = _docker_run(prefix, tmp_path, "--nemesis", "partition", "--schedule", "cycle", "--nemesis-interval", "3",
                      "--partition-shapes", "leader,one", "--read-consistency", "stale", "--seed", "8",
                      time_limit=14)
    assert run.code == 1, f"exit code {run.code}\n{run.output[-3000:]}"
    assert run.results["valid"] is False
    assert run.results["checkers"]["linearizable"]["failure"]["part"] in {"k0", "k1", "k2", "k3"}


def test_sigterm_mid_run_leaves_nothing_on_the_docker_host(prefix: str, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "harness.cli", "run", "--workload", "register", "--nodes", "3", "--backend",
            "docker", "--nemesis", "partition,kill", "--time-limit", "120", "--store", str(tmp_path / "store"),
            "--no-report"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAFTKV_LAB_PREFIX": prefix}
    with subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as p:
        assert p.stdout is not None
        deadline = time.monotonic() + 300
        for line in p.stdout:  # the run phase: containers up, nodes started, faults under way
            if "phase run" in line or time.monotonic() > deadline:
                break
        assert _labelled(prefix), "the run made no containers"
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=180)
    assert p.returncode != 0, out[-2000:]
    assert _labelled(prefix) == []
