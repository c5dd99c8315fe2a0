"""The `local` backend: hosts are plain processes on loopback addresses, no namespaces, no root needed.

Host ``n<i>`` is ``127.77.X.(10+i)`` (X from the prefix, as the netns subnet), with the same work-directory layout,
process table, state file and prefix lock as the netns backend, so `harness clean` and teardown work the same way.
There is no network of its own: commands run in the controller's namespace, so ``exec`` refuses the network tools
(ip, iptables, nft, tc) rather than let a nemesis rewrite the machine's own firewall. Process faults (kill, pause)
work; partitions need ``--backend netns``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from harness.backends.netns import NetnsRemote, OwnedProcessesBackend, ProcessTable, subnet_for
from harness.clean import clean, leftovers
from harness.labstate import LabState, PrefixLock, check_prefix, default_prefix
from harness.procs import identify
from harness.protocols import ExecResult, Remote, RemoteError

log = logging.getLogger("harness.local")

NETWORK_TOOLS = frozenset({"ip", "iptables", "ip6tables", "iptables-save", "iptables-restore", "nft", "tc",
                           "sysctl"})


class LocalRemote(NetnsRemote):
    def __init__(self, backend: LocalBackend, index: int) -> None:
        self.backend = backend  # type: ignore[assignment]
        self.index = index
        self.name = f"n{index}"
        self.address = f"127.77.{backend.octet}.{10 + index}"
        self.namespace = ""
        self.veth = ""

    def __repr__(self) -> str:
        return f"LocalRemote({self.name} {self.address})"

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        return list(argv)

    async def exec(self, argv: Sequence[str], *, check: bool = True, timeout: float | None = 30.0,
                   stdin: bytes | None = None) -> ExecResult:
        if argv and os.path.basename(argv[0]) in NETWORK_TOOLS:
            raise RemoteError(f"{self.name}: the local backend has no network of its own; refusing to run "
                              f"{argv[0]} on the controller's (network faults need --backend netns)")
        return await super().exec(argv, check=check, timeout=timeout, stdin=stdin)


class LocalBackend(OwnedProcessesBackend):
    name = "local"

    def __init__(self, work_dir: Path, *, prefix: str | None = None) -> None:
        self.prefix = check_prefix(prefix or default_prefix())
        self.octet = int(subnet_for(self.prefix).rsplit(".", 1)[1])
        self.controller_address = "127.0.0.1"
        self.work_dir = Path(work_dir)
        self.hosts: list[LocalRemote] = []
        self._lock = PrefixLock(self.prefix)
        self._state = LabState(self.prefix)
        self._procs = ProcessTable(self._state)

    def data_dir(self, host: str) -> str:
        return str(self.work_dir / host / "data")

    def log_dir(self, host: str) -> str:
        return str(self.work_dir / host / "log")

    def describe(self) -> dict[str, object]:
        return {"backend": self.name, "prefix": self.prefix, "addresses": f"127.77.{self.octet}.0/24",
                "work_dir": str(self.work_dir)}

    async def setup(self, count: int) -> list[Remote]:
        if not 1 <= count <= 200:
            raise ValueError(f"node count must be 1..200, got {count}")
        self._lock.acquire()
        stale = await asyncio.to_thread(leftovers, self.prefix, holding_lock=True)
        if stale:
            log.warning("removing leftovers of an earlier run with prefix %s: %s", self.prefix, ", ".join(stale))
            await asyncio.to_thread(clean, self.prefix, lock=self._lock)
        self._state.controller = identify(os.getpid())
        self._state.work_dir = str(self.work_dir)
        self._state.save()
        self.hosts = [LocalRemote(self, i) for i in range(1, count + 1)]
        for h in self.hosts:
            Path(self.data_dir(h.name)).mkdir(parents=True, exist_ok=True)
            Path(self.log_dir(h.name)).mkdir(parents=True, exist_ok=True)
        return list(self.hosts)

