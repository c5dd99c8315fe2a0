"""Fixtures of the lab's tests: a real network-namespace lab with stand-in daemons (for nemesis tests that do not
need the engine or raftkv)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from lab_netns import NetnsLab, NsRemote


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
    """A prefix of this test session alone, so that parallel sessions (and the engine's own tests) never collide."""
    return f"rt{os.getpid() % 100000:05d}"


@pytest.fixture(scope="module")
def netns_hosts(lab_prefix_for_tests: str) -> Iterator[list[NsRemote]]:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    lab = NetnsLab(lab_prefix_for_tests, net=200 + os.getpid() % 50, count=3)
    try:
        yield lab.open()
    finally:
        lab.close()
    assert lab.leftovers() == [], "the test lab left namespaces or links behind"
