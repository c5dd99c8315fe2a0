"""Stand-in daemons on the lab's test hosts, and reachability probes between them (for the network nemeses'
tests). The `daemons` fixture (tests/lab/conftest.py) starts one on every test host."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

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


def run_prefix(letters: str) -> Iterator[str]:
    """For a module fixture of whole runs (`yield from run_prefix("rle")`): a lab prefix of this test process (the
    letters, then the PID), skipped without netns; afterwards nothing of it may remain: what a failed test left is
    cleaned (never leave a dirty machine), then reported."""
    import pytest

    from harness.clean import clean, leftovers

    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    prefix = f"{letters}{os.getpid() % 100000:05d}"
    yield prefix
    left = leftovers(prefix)
    if left:
        clean(prefix, force=True)
    assert left == []


def command_lines(*needles: str) -> list[str]:
    """Command lines (arguments joined by spaces) of the live processes whose command line holds every needle."""
    from pathlib import Path

    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        if all(n in text for n in needles):
            found.append(text)
    return found
