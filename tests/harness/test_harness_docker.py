"""The Docker backend's parts that need no Docker daemon: its options, what it refuses, the image's content key, and
how a DB finds the project's interpreter on a host (tests/lab/test_lab_docker.py runs it against a real daemon)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

from harness.backends import make_backend
from harness.backends.dockerhost import DockerBackend, DockerBackendError
from harness.backends.dockerimage import ROOT, dependencies, source_files, sources_hash
from harness.cli import main
from harness.install import REPO_ROOT, runtime_for


@pytest.mark.parametrize("value", ["bogus", "http://x", "unix://", "/run/docker.sock"])
def test_a_bad_docker_host_is_refused_at_argument_time(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--workload", "register", "--backend", "docker", "--docker-host", value]) == 254
    assert "not a Docker daemon address" in capsys.readouterr().err


def test_the_disk_nemesis_is_refused_on_the_docker_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--workload", "register", "--backend", "docker", "--nemesis", "disk"]) == 254
    err = capsys.readouterr().err
    assert "nemesis disk needs controller-fs" in err and "backend docker" in err


def test_a_docker_backend_gets_its_options() -> None:
    backend = make_backend("docker", work_dir=Path("/nonexistent"), prefix="rdu",
                           options={"docker_host": "tcp://10.0.0.1:2375", "docker_base_image": "debian:x"})
    assert isinstance(backend, DockerBackend)
    assert (backend.docker_host, backend.base_image) == ("tcp://10.0.0.1:2375", "debian:x")


def test_setup_without_a_daemon_says_how_to_start_one(tmp_path: Path) -> None:
    # A prefix of this test's own: setup takes the prefix's lock, which a lab run of a fixed name would hold.
    backend = DockerBackend(tmp_path, prefix=f"rd{os.getpid() % 1_000_000}", docker_host=f"unix://{tmp_path}/no.sock")
    with pytest.raises(DockerBackendError, match="scripts/docker-setup"):
        asyncio.run(backend.setup(3))
    asyncio.run(backend.teardown())  # the run's cleanup path: idempotent after a failed setup
    asyncio.run(backend.teardown())


def _copy_sources(dst: Path) -> None:
    for rel in source_files():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dst / rel)


def test_the_image_key_follows_the_wheel_sources_only(tmp_path: Path) -> None:
    _copy_sources(tmp_path)
    first = sources_hash(tmp_path)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("x = 1\n")  # not in the wheel: same image
    (tmp_path / "raftkv" / "__pycache__").mkdir(exist_ok=True)
    (tmp_path / "raftkv" / "__pycache__" / "x.py").write_text("stale\n")
    assert sources_hash(tmp_path) == first
    with open(tmp_path / "README.md", "a") as f:  # the docs changed: same image
        f.write("more docs\n")
    assert sources_hash(tmp_path) == first
    with open(tmp_path / "raftkv" / "__init__.py", "a") as f:  # the code under test changed: a new image
        f.write("# changed\n")
    assert sources_hash(tmp_path) != first
    assert "pyproject.toml" in {str(p) for p in source_files(tmp_path)}
    assert any(d.startswith("docker") for d in dependencies(tmp_path))


def test_the_project_python_of_a_container_and_of_a_shared_host() -> None:
    from harness.backends.dockerhost import DockerRemote

    container = runtime_for(DockerRemote.__new__(DockerRemote))  # the image carries the project in /opt/venv
    assert (container.python, dict(container.env), container.cwd) == ("/opt/venv/bin/python", {}, None)
    shared = runtime_for(object())  # type: ignore[arg-type]
    assert shared.python == sys.executable
    assert shared.env == {"PYTHONPATH": str(REPO_ROOT)} and shared.cwd == str(REPO_ROOT)
    assert (Path(REPO_ROOT) / "raftkv" / "__init__.py").is_file()
