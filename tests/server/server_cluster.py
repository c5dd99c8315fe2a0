"""Real raftkv node processes on loopback for the multi-process tests and the benchmark.

Each node gets its own 127.0.0.x address and free ports, runs as `python -m raftkv serve ...` (started by PID,
killed by PID: never by name), logs to <dir>/<id>.log (node log) and <id>.out (stdout/stderr).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port(host: str) -> int:
    """A free port below the ephemeral range (32768+), so that no outgoing connection's source port can take it
    between this check and the node's bind."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on {host}")


class Cluster:
    def __init__(self, workdir: Path, n: int, *, tick_ms: int = 20, election_ticks: int = 10,
                 memory: bool = False, extra: tuple[str, ...] = (), base_ip: int = 10) -> None:
        self.dir = workdir
        self.n = n
        self.ids = [f"n{i + 1}" for i in range(n)]
        self.hosts = {nid: f"127.0.0.{base_ip + i}" for i, nid in enumerate(self.ids)}
        self.peer = {nid: f"{h}:{free_port(h)}" for nid, h in self.hosts.items()}
        self.client = {nid: f"{h}:{free_port(h)}" for nid, h in self.hosts.items()}
        self.tick_ms = tick_ms
        self.election_ticks = election_ticks
        self.memory = memory
        self.extra = extra
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.secret = b"test cluster secret " + os.urandom(8).hex().encode()
        self.secret_file = workdir / "peer-secret"
        self.secret_file.write_bytes(self.secret + b"\n")

    @property
    def addrs(self) -> list[str]:
        return [self.client[i] for i in self.ids]

    def argv(self, nid: str) -> list[str]:
        peers = ",".join(f"{i}={self.peer[i]}" for i in self.ids)
        argv = [sys.executable, "-m", "raftkv", "serve", "--id", nid, "--listen", self.peer[nid], "--client",
                self.client[nid], "--peers", peers, "--log-file", str(self.dir / f"{nid}.log"),
                "--tick-ms", str(self.tick_ms), "--election-ticks", str(self.election_ticks),
                "--peer-secret-file", str(self.secret_file), *self.extra]
        argv += ["--memory"] if self.memory else ["--data-dir", str(self.dir / nid)]
        return argv

    def start(self, nid: str) -> subprocess.Popen[bytes]:
        assert nid not in self.procs or self.procs[nid].poll() is not None, f"{nid} is running"
        out = open(self.dir / f"{nid}.out", "ab")  # noqa: SIM115 - owned by the process
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        p = subprocess.Popen(self.argv(nid), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        out.close()
        self.procs[nid] = p
        return p

    def start_all(self) -> None:
        for nid in self.ids:
            self.start(nid)

    def kill(self, nid: str, sig: int = signal.SIGKILL, timeout: float = 10) -> int:
        p = self.procs[nid]
        if p.poll() is None:
            os.kill(p.pid, sig)
        return p.wait(timeout)

    def stop_all(self) -> None:
        for nid, p in self.procs.items():
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(10)
            del nid

    def log(self, nid: str) -> str:
        path = self.dir / f"{nid}.log"
        return path.read_text() if path.exists() else ""

    async def http(self, nid: str, method: str, path: str, body: bytes | None = None,
                   timeout: float = 2.0) -> tuple[int, Any]:
        host, _, port = self.client[nid].rpartition(":")
        async with asyncio.timeout(timeout):
            r, w = await asyncio.open_connection(host, int(port))
            try:
                w.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body or b'')}\r\n"
                        f"Connection: close\r\n\r\n".encode() + (body or b""))
                data = await r.read()
            finally:
                w.close()
        head, _, payload = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        try:
            return status, json.loads(payload)
        except ValueError:
            return status, payload.decode(errors="replace")

    async def status(self, nid: str) -> dict[str, Any] | None:
        try:
            code, body = await self.http(nid, "GET", "/status", timeout=1.0)
        except (OSError, TimeoutError):
            return None
        return body if code == 200 else None

    async def wait_leader(self, timeout: float = 15.0, among: list[str] | None = None) -> str:
        """Poll /status until one node of `among` is leader and every live one of them agrees on it."""
        among = among or [i for i in self.ids if self.procs.get(i) and self.procs[i].poll() is None]
        deadline = time.monotonic() + timeout
        last: list[Any] = []
        while time.monotonic() < deadline:
            last = [await self.status(i) for i in among]
            leaders = {s["leader"] for s in last if s}
            if all(last) and len(leaders) == 1 and None not in leaders:
                (leader,) = leaders
                if any(s["id"] == leader and s["role"] == "leader" for s in last if s):
                    return str(leader)
            await asyncio.sleep(0.05)
        raise AssertionError(f"no agreed leader within {timeout}s: {last}")

    async def wait_for(self, pred: Any, timeout: float = 15.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await pred():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")
