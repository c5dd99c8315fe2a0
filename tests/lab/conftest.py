"""Fixtures of the lab's tests: hosts of the engine's own netns backend, under a prefix of this test session alone
(so that parallel sessions, the engine's tests and a user's lab never collide), for nemesis and DB-adapter tests
that drive the roles directly, without a whole run."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_net import PORT, await_reachable, netns_unavailable

from harness.backends.netns import NetnsBackend, NetnsRemote
from harness.clean import leftovers


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


@pytest.fixture(scope="module")
def daemons(netns_hosts: list[NetnsRemote], tmp_path_factory: pytest.TempPathFactory) -> list[NetnsRemote]:
    """A stand-in daemon (http.server on PORT) on every test host, each reachable from every other."""
    logs = tmp_path_factory.mktemp("daemons")

    async def start() -> None:
        for host in netns_hosts:
            await host.spawn([sys.executable, "-m", "http.server", "--bind", host.address, str(PORT)],
                             log_path=str(logs / f"{host.name}.log"))
        for src in netns_hosts:
            for dst in netns_hosts:
                if src is not dst:
                    await await_reachable(src, dst)

    asyncio.run(start())
    return netns_hosts


