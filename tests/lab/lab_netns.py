"""A minimal network-namespace lab for nemesis tests that must not depend on the engine: N namespaces on a bridge,
named with a prefix unique to the test session, and a Remote over `ip netns exec`. Everything it makes is removed by
`close()`; `leftovers()` lists whatever of it still exists (the tests assert it is nothing).

It is test scaffolding, not the product's backend (harness/ has that): it exists so that nemeses can be tested
against real namespaces and real iptables with a tiny stand-in daemon in place of raftkv.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.protocols import ExecResult, RemoteError


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=30)


@dataclass
class NsRemote:
    name: str
    address: str
    ns: str
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    async def exec(self, argv: Sequence[str], *, check: bool = True, timeout: float | None = 30.0,
                   stdin: bytes | None = None) -> ExecResult:
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.ns, *argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate(stdin)
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        result = ExecResult(tuple(argv), proc.returncode or 0, out.decode(), err.decode())
        if check and result.returncode != 0:
            raise RemoteError(f"{self.name}: {' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    async def upload(self, local: Path, remote: str) -> None:
        Path(remote).write_bytes(local.read_bytes())

    async def download(self, remote: str, local: Path) -> None:
        local.write_bytes(Path(remote).read_bytes())

    async def spawn(self, argv: Sequence[str], *, log_path: str, env: Mapping[str, str] | None = None,
                    cwd: str | None = None) -> int:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(["ip", "netns", "exec", self.ns, *argv], stdout=log, stderr=log,
                                    stdin=subprocess.DEVNULL, env=dict(env) if env is not None else None, cwd=cwd,
                                    start_new_session=True)
        self.procs[proc.pid] = proc
        return proc.pid

    async def signal(self, pid: int, sig: signal.Signals) -> bool:
        if not await self.alive(pid):
            return False
        os.kill(pid, sig)
        return True

    async def alive(self, pid: int) -> bool:
        proc = self.procs.get(pid)
        if proc is not None:
            return proc.poll() is None  # poll() reaps a dead child, so a zombie is not "alive"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


class NetnsLab:
    """`count` hosts 10.<net>.0.11.. on bridge `<prefix>br` (controller at .1), namespaces `<prefix>n1`..."""

    def __init__(self, prefix: str, net: int, count: int) -> None:
        self.prefix, self.net, self.count = prefix, net, count
        self.bridge = f"{prefix}br"
        self.hosts: list[NsRemote] = []

    def open(self) -> list[NsRemote]:
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"10.{self.net}.0.1/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        for i in range(1, self.count + 1):
            ns, veth, address = f"{self.prefix}n{i}", f"{self.prefix}v{i}", f"10.{self.net}.0.{10 + i}"
            _run("ip", "netns", "add", ns)
            _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _run("ip", "link", "set", veth, "master", self.bridge, "up")
            _run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            self.hosts.append(NsRemote(name=f"n{i}", address=address, ns=ns))
        return self.hosts

    def close(self) -> None:
        for host in self.hosts:
            for proc in host.procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)
        for i in range(1, self.count + 1):
            _run("ip", "link", "del", f"{self.prefix}v{i}", check=False)  # synchronous, unlike netns del
            _run("ip", "netns", "del", f"{self.prefix}n{i}", check=False)
        _run("ip", "link", "del", self.bridge, check=False)

    def leftovers(self) -> list[str]:
        found = [ns for ns in _run("ip", "netns", "list").stdout.split() if ns.startswith(self.prefix)]
        found += [line for line in _run("ip", "-o", "link").stdout.splitlines()
                  if line.split(":")[1].strip().split("@")[0].startswith(self.prefix)]
        return found
