"""Fixtures of the lab's tests: hosts of the engine's own netns backend, under a prefix of this test session alone
(so that parallel sessions, the engine's tests and a user's lab never collide), for nemesis and DB-adapter tests
that drive the roles directly, without a whole run."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.backends.netns import NetnsBackend, NetnsRemote
from harness.clean import leftovers


def netns_unavailable() -> str | None:
    """Why namespace tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and iptables)"
    for tool in ("ip", "iptables", "iptables-restore"):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian: apt-get install iproute2 iptables)"
    return None


@pytest.fixture(scope="session")
def lab_prefix_for_tests() -> str:
    return f"rt{os.getpid() % 100000:05d}"


@pytest.fixture(scope="module")
def netns_backend(lab_prefix_for_tests: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsBackend]:
    """Three hosts n1..n3, up for the module; torn down and checked clean after it."""
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    backend = NetnsBackend(Path(tmp_path_factory.mktemp("netns")), prefix=lab_prefix_for_tests)
    try:
        asyncio.run(backend.setup(3))
        yield backend
    finally:
        asyncio.run(backend.teardown())
    assert leftovers(lab_prefix_for_tests) == [], "the test hosts left something behind"


@pytest.fixture(scope="module")
def netns_hosts(netns_backend: NetnsBackend) -> list[NetnsRemote]:
    return list(netns_backend.hosts)

