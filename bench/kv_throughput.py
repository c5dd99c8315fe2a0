"""raftkv throughput: durable writes/s and linearizable reads/s through the real HTTP API and client library.

    python bench/kv_throughput.py --nodes 3 --clients 64 --seconds 20 --value-size 64

Starts `--nodes` real node processes on 127.0.0.x loopback (fsynced WAL in a temporary directory unless
--memory), waits for a leader, then runs the load in a SEPARATE client process (uvloop + raftkv.client):
1. write phase (--seconds): each of --clients workers owns a key and puts values of --value-size bytes with
   versions 1, 2, 3, ... (every acknowledged put is committed on a majority and fsynced);
2. read phase (--seconds): the same number of workers do linearizable gets (ReadIndex) of random written keys.
Prints writes/s, p50/p99 write latency, reads/s, p50/p99 read latency, and errors by kind. Exit code 0.

--profile DIR runs every node under cProfile and writes DIR/<id>.pstats at the end (SIGTERM) for analysis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _free_port(host: str) -> int:
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


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user+system) of each node process and of this client process."""
    out = {}
    for name, pid in pids.items():
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    t = os.times()
    out["client"] = t.user + t.system
    return out


def _per_op(c0: dict[str, float], c1: dict[str, float], n: int) -> dict[str, float]:
    return {k: (c1[k] - c0[k]) / max(n, 1) * 1e6 for k in c0}


async def _load(addrs: list[str], clients: int, seconds: float, value_size: int, pids: dict[str, int],
                sessions: bool = True) -> dict:
    from raftkv.client import KVClient, RaftKVError

    value = "x" * value_size
    results: dict = {}
    async with KVClient(addrs, timeout=5, pool_size=clients, sessions=sessions) as kv:
        # find the leader once so the measured phase does not include the redirect
        for _ in range(100):
            try:
                await kv.get("warmup")
                break
            except RaftKVError:
                await asyncio.sleep(0.1)
        lat_w: list[float] = []
        errors: dict[str, int] = {}
        versions = [0] * clients
        stop_at = time.monotonic() + seconds

        async def writer(i: int) -> None:
            key = f"bench-{i}"
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                try:
                    r = await kv.put(key, value, versions[i])
                    versions[i] = r.version
                    lat_w.append(time.perf_counter() - t0)
                except RaftKVError as e:
                    errors[e.code] = errors.get(e.code, 0) + 1
                    with contextlib.suppress(RaftKVError):
                        versions[i] = (await kv.get(key)).version

        results["leader"] = None
        for n, a in zip(pids, addrs, strict=True):
            if (await kv.status(a)).get("role") == "leader":
                results["leader"] = n
        t0 = time.monotonic()
        c0 = _cpu(pids)
        async with asyncio.TaskGroup() as tg:
            for i in range(clients):
                tg.create_task(writer(i))
        wt = time.monotonic() - t0
        results["write_cpu_us_per_op"] = _per_op(c0, _cpu(pids), len(lat_w))
        results["writes"] = {"count": len(lat_w), "seconds": wt, "per_s": len(lat_w) / wt,
                             "p50_ms": _pct(lat_w, 50) * 1e3, "p99_ms": _pct(lat_w, 99) * 1e3, "errors": errors}

        lat_r: list[float] = []
        rerrors: dict[str, int] = {}
        stop_at = time.monotonic() + seconds
        rng = random.Random(1)

        async def reader() -> None:
            while time.monotonic() < stop_at:
                key = f"bench-{rng.randrange(clients)}"
                t0 = time.perf_counter()
                try:
                    await kv.get(key)
                    lat_r.append(time.perf_counter() - t0)
                except RaftKVError as e:
                    rerrors[e.code] = rerrors.get(e.code, 0) + 1

        t0 = time.monotonic()
        c0 = _cpu(pids)
        async with asyncio.TaskGroup() as tg:
            for _ in range(clients):
                tg.create_task(reader())
        rt = time.monotonic() - t0
        results["read_cpu_us_per_op"] = _per_op(c0, _cpu(pids), len(lat_r))
        results["reads"] = {"count": len(lat_r), "seconds": rt, "per_s": len(lat_r) / rt,
                            "p50_ms": _pct(lat_r, 50) * 1e3, "p99_ms": _pct(lat_r, 99) * 1e3, "errors": rerrors}
    return results


def client_main(args: argparse.Namespace) -> int:
    import uvloop

    pids = {k: int(v) for k, v in (p.split(":") for p in args.pids.split(","))}
    res = uvloop.run(_load(args.addrs.split(","), args.clients, args.seconds, args.value_size, pids,
                           sessions=not args.no_sessions))
    print(json.dumps(res))
    return 0


async def _wait_leader(addrs: list[str], timeout: float = 30) -> None:
    from raftkv.client import KVClient, RaftKVError

    deadline = time.monotonic() + timeout
    async with KVClient(addrs, timeout=1) as kv:
        while time.monotonic() < deadline:
            for a in addrs:
                try:
                    if (await kv.status(a))["role"] == "leader":
                        return
                except RaftKVError:
                    pass
            await asyncio.sleep(0.1)
    raise SystemExit("no leader elected")


def stop_nodes(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every node this benchmark started (a graceful stop), SIGKILL one still running 15 s later."""
    for pr in procs:
        if pr.poll() is None:
            os.kill(pr.pid, signal.SIGTERM)
    for pr in procs:
        try:
            pr.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(pr.pid, signal.SIGKILL)
            pr.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--value-size", type=int, default=64)
    p.add_argument("--memory", action="store_true", help="nodes without disk (to see the cost of fsync)")
    p.add_argument("--profile", type=Path, help="directory for per-node cProfile output")
    p.add_argument("--no-sessions", action="store_true",
                   help="writes without client sessions (to see what exactly-once costs)")
    p.add_argument("--client-mode", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--addrs", help=argparse.SUPPRESS)
    p.add_argument("--pids", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.client_mode:
        return client_main(args)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="raftkv-bench-") as tmp:
        ids = [f"n{i + 1}" for i in range(args.nodes)]
        hosts = {n: f"127.0.0.{100 + i}" for i, n in enumerate(ids)}
        peer = {n: f"{h}:{_free_port(h)}" for n, h in hosts.items()}
        client = {n: f"{h}:{_free_port(h)}" for n, h in hosts.items()}
        peers = ",".join(f"{n}={peer[n]}" for n in ids)
        procs = []
        try:
            for n in ids:
                argv = [sys.executable]
                if args.profile:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    argv += ["-m", "cProfile", "-o", str(args.profile / f"{n}.pstats")]
                argv += ["-m", "raftkv"]
                argv += ["serve", "--id", n, "--listen", peer[n], "--client", client[n], "--peers", peers,
                         "--log-file", f"{tmp}/{n}.log", "--tick-ms", "50", "--election-ticks", "10"]
                argv += ["--memory"] if args.memory else ["--data-dir", f"{tmp}/{n}"]
                procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                              stderr=open(f"{tmp}/{n}.err", "w")))  # noqa: SIM115
            addrs = [client[n] for n in ids]
            asyncio.run(_wait_leader(addrs))
            pids = ",".join(f"{n}:{pr.pid}" for n, pr in zip(ids, procs, strict=True))
            out = subprocess.run([sys.executable, __file__, "--client-mode", "--addrs", ",".join(addrs), "--pids", pids,
                                  "--clients", str(args.clients), "--seconds", str(args.seconds),
                                  "--value-size", str(args.value_size)]
                                 + (["--no-sessions"] if args.no_sessions else []), env=env, capture_output=True,
                                 text=True, check=False)
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                return 1
            res = json.loads(out.stdout)
        finally:
            stop_nodes(procs)
    w, r = res["writes"], res["reads"]
    mode = "memory (no fsync)" if args.memory else "durable (fsync per batch)"
    mode += ", writes without client sessions" if args.no_sessions else ", writes with client sessions"
    print(f"raftkv {args.nodes} nodes, {args.clients} clients, {args.seconds:g}s per phase, "
          f"{args.value_size}-byte values, {mode}")
    print(f"writes: {w['per_s']:8.0f}/s   p50 {w['p50_ms']:6.1f} ms   p99 {w['p99_ms']:6.1f} ms   "
          f"({w['count']} ok, errors {w['errors'] or 'none'})")
    print(f"reads:  {r['per_s']:8.0f}/s   p50 {r['p50_ms']:6.1f} ms   p99 {r['p99_ms']:6.1f} ms   "
          f"({r['count']} ok, linearizable, errors {r['errors'] or 'none'})")
    for phase in ("write", "read"):
        cpu = res[f"{phase}_cpu_us_per_op"]
        parts = "  ".join(f"{k}{' (leader)' if k == res['leader'] else ''} {v:.0f}" for k, v in cpu.items())
        print(f"CPU per {phase} (us): {parts}  total {sum(cpu.values()):.0f}")
    print(f"machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
