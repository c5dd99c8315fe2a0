"""Stand-in daemons on the lab's test hosts, and reachability probes between them (for the network nemeses'
tests). The `daemons` fixture (tests/lab/conftest.py) starts one on every test host."""

from __future__ import annotations

import os
import shutil
import time

from harness.backends.netns import NetnsRemote as NsRemote

PORT = 7999


def netns_unavailable() -> str | None:
    """Why namespace tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and iptables)"
    for tool in ("ip", "iptables", "iptables-restore"):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian: apt-get install iproute2 iptables)"
    return None


async def reachable(src: NsRemote, dst: NsRemote, *, within: float) -> bool:
    """Whether a TCP connection from src's namespace to dst's stand-in daemon succeeds within `within` seconds."""
    result = await src.exec(["timeout", str(within), "bash", "-c", f"echo > /dev/tcp/{dst.address}/{PORT}"],
                             check=False)
    return result.returncode == 0


async def await_reachable(src: NsRemote, dst: NsRemote, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not await reachable(src, dst, within=2.0):
        assert time.monotonic() < deadline, f"{src.name} never reached {dst.name}"
