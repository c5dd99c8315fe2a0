"""The embedded default backend: N hosts as network namespaces on one Linux bridge (FAULTS.md, measured here).

Layout for prefix P and subnet 10.77.X.0/24:

- bridge ``P-br`` in the root namespace with address 10.77.X.1: the controller's address on the lab network;
- host i (``n<i>``, i = 1..N) is namespace ``P-n<i>`` whose ``eth0`` (10.77.X.(10+i)/24) is the peer of the
  root-side veth ``P-v<i>``, enslaved to the bridge;
- no default route in any namespace: a host reaches only loopback and the other hosts (and the controller);
- per namespace, TCP tuned so that partitions heal fast (``tcp_rto_max_ms`` = 1000 where the kernel has it);
- each host has ``<work_dir>/n<i>/{data,log}``; processes are started with ``ip netns exec`` (which execs in place,
  so the PID returned is the program's own) in a session of their own (Ctrl-C on the controller's terminal must
  not reach them: the engine decides when they stop).

Every spawned process is recorded in ``/run/raftkv-lab/P/state.json`` as (pid, start time); teardown is
harness.clean.clean(P) under the run's own lock, the same code `harness clean` runs after a killed controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.clean import clean, leftovers
from harness.labstate import LabState, PrefixLock, check_prefix, default_prefix
from harness.procs import identify
from harness.protocols import ExecResult, Remote, RemoteError

log = logging.getLogger("harness.netns")

SUBNET_ENV = "RAFTKV_LAB_SUBNET"
# sysctl (under /proc/sys/) -> value, applied in every host namespace when this kernel has it.
HOST_SYSCTLS: dict[str, str] = {
    "net/ipv4/tcp_rto_max_ms": "1000",  # cap the retransmission back-off: traffic resumes <1 s after a heal
    "net/ipv4/tcp_syn_retries": "3",  # a connect into a partition gives up in seconds, not minutes
}

INSTALL_HINTS = {
    "ip": "iproute2",
    "iptables": "iptables",
    "nft": "nftables",
}


class PrerequisiteError(RuntimeError):
    """The machine lacks something the backend needs; the message says what and how to install it."""


def check_prerequisites(tools: Sequence[str] = ("ip", "iptables")) -> None:
    problems = []
    if os.geteuid() != 0:
        problems.append("it must run as root (network namespaces and iptables need CAP_NET_ADMIN): "
                        "run it with sudo, or use --backend local for runs without network faults")
    for tool in tools:
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` is not installed: apt-get install -y {INSTALL_HINTS.get(tool, tool)}")
    if not Path("/proc/self/ns/net").exists():
        problems.append("this kernel has no network namespaces")
    if problems:
        raise PrerequisiteError("the netns backend cannot start: " + "; ".join(problems))


def subnet_for(prefix: str) -> str:
    """The first three octets of the prefix's preferred /24: $RAFTKV_LAB_SUBNET if set, 10.77.0 for the default
    prefix, else 10.77.<1..254> from a hash of the prefix (so concurrent runs under different prefixes rarely
    collide; setup moves on to the next free /24 when it is taken, unless $RAFTKV_LAB_SUBNET pins it)."""
    env = os.environ.get(SUBNET_ENV)
    if env:
        octets = env.split(".")
        if len(octets) != 3 or not all(o.isdigit() and 0 <= int(o) <= 255 for o in octets):
            raise ValueError(f"{SUBNET_ENV} must be three octets like 10.77.5, got {env!r}")
        return env
    if prefix == "rkl":
        return "10.77.0"
    return f"10.77.{1 + zlib.crc32(prefix.encode()) % 254}"


def _candidates(prefix: str) -> list[str]:
    first = subnet_for(prefix)
    if os.environ.get(SUBNET_ENV):
        return [first]
    base = int(first.rsplit(".", 1)[1])
    return [f"10.77.{(base + k) % 255}" for k in range(32)]


def _addresses_in_use(subnet: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=10).stdout
    found = []
    for line in out.splitlines():
        words = line.split()
        if "inet" in words:
            addr = words[words.index("inet") + 1].split("/")[0]
            if addr.startswith(subnet + "."):
                found.append(f"{addr} on {words[1]}")
    return found


class NetnsRemote:
    """One host: a network namespace. Commands and daemons run inside it; files are shared with the controller
    (same filesystem), so upload and download are copies."""

    def __init__(self, backend: NetnsBackend, index: int) -> None:
        self.backend = backend
        self.index = index
        self.name = f"n{index}"
        self.address = f"{backend.subnet}.{10 + index}"
        self.namespace = f"{backend.prefix}-n{index}"
        self.veth = f"{backend.prefix}-v{index}"  # the root-side end (central nft rules can match on it)

    def __repr__(self) -> str:
        return f"NetnsRemote({self.name} {self.address} ns={self.namespace})"

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *argv]

    async def exec(self, argv: Sequence[str], *, check: bool = True, timeout: float | None = 30.0,
                   stdin: bytes | None = None) -> ExecResult:
        if not argv:
            raise ValueError("exec: empty argv")
        proc = await asyncio.create_subprocess_exec(
            *self._wrap(argv), stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate(stdin)
        except BaseException as e:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if isinstance(e, TimeoutError):
                raise RemoteError(f"{self.name}: {' '.join(argv)} timed out after {timeout} s") from None
            raise
        res = ExecResult(tuple(argv), proc.returncode or 0, out.decode(errors="replace"),
                         err.decode(errors="replace"))
        if check and res.returncode != 0:
            raise RemoteError(f"{self.name}: {' '.join(argv)} exited {res.returncode}: {res.stderr.strip()[:500]}")
        return res

    async def upload(self, local: Path, remote: str) -> None:
        await asyncio.to_thread(_copy, Path(local), Path(remote))

    async def download(self, remote: str, local: Path) -> None:
        try:
            await asyncio.to_thread(_copy, Path(remote), Path(local))
        except FileNotFoundError as e:
            raise RemoteError(f"{self.name}: no such file {remote}") from e

    async def spawn(self, argv: Sequence[str], *, log_path: str, env: Mapping[str, str] | None = None,
                    cwd: str | None = None) -> int:
        return self.backend._spawn(self._wrap(argv), log_path=log_path, env=env, cwd=cwd)

    async def signal(self, pid: int, sig: signal.Signals) -> bool:
        """Signal a daemon this backend started. After SIGKILL it returns once the process is reaped (ms), so
        alive() is false at once and a restart may reuse its port."""
        sent = self.backend._signal(pid, sig)
        if sent and sig == signal.SIGKILL and not await self.backend._procs.reaped(pid):
            log.warning("%s: pid %d still not gone 2 s after SIGKILL (state D?)", self.name, pid)
        return sent

    async def alive(self, pid: int) -> bool:
        return self.backend._alive(pid)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dst)


class ProcessTable:
    """The daemons a backend spawned: Popen objects (so exits are reaped) and the state file (so clean finds them)."""

    def __init__(self, state: LabState) -> None:
        self.state = state
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(self, argv: list[str], *, log_path: str, env: Mapping[str, str] | None, cwd: str | None) -> int:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        with open(log_path, "ab") as logf:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                 env=full_env, cwd=cwd, start_new_session=True, close_fds=True)
        self.procs[p.pid] = p
        self.state.add_pid(p.pid)
        return p.pid

    def signal(self, pid: int, sig: signal.Signals) -> bool:
        p = self.procs.get(pid)
        if p is None:
            raise RemoteError(f"pid {pid} was not started by this backend; refusing to signal it")
        if p.poll() is not None:
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        return True

    async def reaped(self, pid: int, timeout: float = 2.0) -> bool:
        """Wait (polling, bounded) until a signalled child has exited and is reaped; False at the deadline."""
        p = self.procs.get(pid)
        if p is None:
            return True
        deadline = time.monotonic() + timeout
        while p.poll() is None:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.001)
        return True

    def alive(self, pid: int) -> bool:
        p = self.procs.get(pid)
        if p is not None:
            return p.poll() is None
        return identify(pid) is not None

    def kill_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
        for p in self.procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.warning("pid %d did not die within 5 s of SIGKILL (state D?)", p.pid)


class OwnedProcessesBackend:
    """What every backend of this machine shares: the processes it starts are recorded in a ProcessTable (so
    `harness clean` can kill exactly them), and teardown removes everything of the prefix, then releases it."""

    prefix: str
    hosts: Sequence[NetnsRemote]
    _lock: PrefixLock
    _procs: ProcessTable

    def _spawn(self, argv: list[str], *, log_path: str, env: Mapping[str, str] | None, cwd: str | None) -> int:
        return self._procs.spawn(argv, log_path=log_path, env=env, cwd=cwd)

    def _signal(self, pid: int, sig: signal.Signals) -> bool:
        return self._procs.signal(pid, sig)

    def _alive(self, pid: int) -> bool:
        return self._procs.alive(pid)

    async def teardown(self) -> None:
        """Kill every process this backend started, then remove everything named with the prefix (harness.clean),
        then release the prefix. Idempotent."""
        try:
            await asyncio.to_thread(self._procs.kill_all)
            if self._lock.held:
                removed = await asyncio.to_thread(clean, self.prefix, lock=self._lock)
                log.debug("teardown removed: %s", removed)
        finally:
            self._lock.release(remove=True)
        self.hosts = []


class NetnsBackend(OwnedProcessesBackend):
    """See the module docstring. ``setup`` then ``teardown``; teardown is idempotent and safe after a partial
    setup (it removes by name, not by what setup remembers)."""

    name = "netns"

    def __init__(self, work_dir: Path, *, prefix: str | None = None) -> None:
        self.prefix = check_prefix(prefix or default_prefix())
        self.subnet = subnet_for(self.prefix)
        self.controller_address = f"{self.subnet}.1"
        self.bridge = f"{self.prefix}-br"
        self.work_dir = Path(work_dir)
        self.hosts: list[NetnsRemote] = []
        self._lock = PrefixLock(self.prefix)
        self._state = LabState(self.prefix)
        self._procs = ProcessTable(self._state)
        self.sysctls_applied: dict[str, str] = {}

    def _pick_subnet(self) -> None:
        """The first candidate /24 no interface uses yet (another prefix's run may hold the preferred one)."""
        taken = []
        for subnet in _candidates(self.prefix):
            in_use = _addresses_in_use(subnet)
            if not in_use:
                self.subnet = subnet
                self.controller_address = f"{subnet}.1"
                return
            taken.append(f"{subnet}.0/24 ({', '.join(in_use[:2])})")
        raise PrerequisiteError(f"no free /24 for the lab: {'; '.join(taken[:3])}...; "
                                f"set {SUBNET_ENV}=10.77.N to a free one")

    def data_dir(self, host: str) -> str:
        return str(self.work_dir / host / "data")

    def log_dir(self, host: str) -> str:
        return str(self.work_dir / host / "log")

    def describe(self) -> dict[str, object]:
        return {"backend": self.name, "prefix": self.prefix, "subnet": f"{self.subnet}.0/24",
                "controller": self.controller_address, "bridge": self.bridge, "sysctls": self.sysctls_applied,
                "work_dir": str(self.work_dir)}

    async def setup(self, count: int) -> list[Remote]:
        if not 1 <= count <= 200:
            raise ValueError(f"node count must be 1..200, got {count}")
        check_prerequisites()
        self._lock.acquire()
        stale = await asyncio.to_thread(leftovers, self.prefix, holding_lock=True)
        if stale:
            log.warning("removing leftovers of an earlier run with prefix %s: %s", self.prefix, ", ".join(stale))
            await asyncio.to_thread(clean, self.prefix, lock=self._lock)
        await asyncio.to_thread(self._pick_subnet)
        me = identify(os.getpid())
        self._state.controller = me
        self._state.work_dir = str(self.work_dir)
        self._state.save()
        self.hosts = [NetnsRemote(self, i) for i in range(1, count + 1)]
        for h in self.hosts:
            Path(self.data_dir(h.name)).mkdir(parents=True, exist_ok=True)
            Path(self.log_dir(h.name)).mkdir(parents=True, exist_ok=True)
        batch = [f"link add {self.bridge} type bridge", f"link set {self.bridge} up",
                 f"addr add {self.controller_address}/24 dev {self.bridge}"]
        for h in self.hosts:
            batch += [f"netns add {h.namespace}",
                      f"link add {h.veth} type veth peer name eth0 netns {h.namespace}",
                      f"link set {h.veth} master {self.bridge}", f"link set {h.veth} up"]
        await self._ip_batch(batch)
        self.sysctls_applied = {k: v for k, v in HOST_SYSCTLS.items() if Path("/proc/sys", k).exists()}
        missing = sorted(set(HOST_SYSCTLS) - set(self.sysctls_applied))
        if missing:
            log.info("this kernel lacks %s; partitions will heal more slowly", ", ".join(missing))
        await asyncio.gather(*(self._configure_host(h) for h in self.hosts))
        others = [a for a in await asyncio.to_thread(_addresses_in_use, self.subnet) if not a.endswith(self.bridge)]
        if others:  # another prefix's run picked the same free /24 at the same instant
            raise PrerequisiteError(f"subnet {self.subnet}.0/24 was taken meanwhile ({', '.join(others)}); retry")
        return list(self.hosts)

    async def _ip_batch(self, lines: list[str]) -> None:
        proc = await asyncio.create_subprocess_exec("ip", "-batch", "-", stdin=subprocess.PIPE,
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate(("\n".join(lines) + "\n").encode())
        if proc.returncode != 0:
            raise RemoteError(f"ip -batch failed: {err.decode(errors='replace').strip()}")

    async def _configure_host(self, h: NetnsRemote) -> None:
        script = ["ip link set lo up", f"ip addr add {h.address}/24 dev eth0", "ip link set eth0 up"]
        script += [f"echo {v} > /proc/sys/{k}" for k, v in self.sysctls_applied.items()]
        await h.exec(["sh", "-ec", "; ".join(script)], timeout=30)

