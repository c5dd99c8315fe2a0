"""What the disk fault layer (nemesis.diskfs) costs with no fault active: durable writes with it and without.

    sudo .venv/bin/python bench/disk_layer.py --seconds 10 --clients 32

Two measurements, each run directly on a temporary directory and then through a layer mounted over one:
1. raw: one process appends 64-byte records, each followed by fdatasync (what raftkv's WAL does per batch), for
   --seconds; prints appends/s and p50/p99 latency;
2. raftkv: three real nodes (data directories on the disk, or each under a layer of its own), --clients workers
   putting 64-byte values for --seconds through bench/kv_throughput.py's client; prints writes/s and p50/p99.
Each runs three ways: direct, through a layer passing I/O through ("layer"), and through a layer that keeps what
is not fsynced ("unsynced", what every lab run with the disk nemesis does by default: every crash a power loss).
Then the ratio to direct for each (the aim: at most 1.5x slower). Needs root (FUSE mounts) and fuse3.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from kv_throughput import _free_port, _pct, _wait_leader, stop_nodes  # noqa: E402


def control(sock: Path, **request: object) -> dict[str, object]:
    """One command on a layer's control socket (nemesis.diskfs)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall(json.dumps(request).encode() + b"\n")
        answer: dict[str, object] = json.loads(s.makefile("rb").readline())
    if not answer.get("ok"):
        raise SystemExit(f"the layer refused {request}: {answer}")
    return answer


@contextlib.contextmanager
def layer(base: Path, name: str, *, track: bool = False) -> Iterator[Path]:
    """A layer mounted on base/mnt (backing base/backing), recording what is not fsynced when `track`; yields the
    mount point, unmounts on exit."""
    mount, control_sock = base / "mnt", base / "control.sock"
    log = open(base / "diskfs.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "nemesis.diskfs", "--backing", str(base / "backing"), "--mount",
                             str(mount), "--control", str(control_sock), "--name", f"bench-disk-{name}"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=log)
    try:
        for _ in range(300):  # bounded: a mount takes ~130 ms
            if os.path.ismount(mount) and control_sock.exists():
                break
            if proc.poll() is not None:
                raise SystemExit(f"the layer did not mount: {(base / 'diskfs.log').read_text()[-1000:]}")
            time.sleep(0.05)
        if track:
            control(control_sock, op="track")
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def raw_appends(directory: Path, seconds: float) -> dict[str, float]:
    lat = []
    fd = os.open(directory / "bench.wal", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        end = time.perf_counter() + seconds
        while (t0 := time.perf_counter()) < end:
            os.write(fd, b"x" * 64)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
    return {"per_s": len(lat) / seconds, "p50_ms": _pct(lat, 50) * 1e3, "p99_ms": _pct(lat, 99) * 1e3}


def raftkv_writes(data_dirs: dict[str, Path], tmp: Path, seconds: float, clients: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ids = sorted(data_dirs)
    hosts = {n: f"127.0.0.{150 + i}" for i, n in enumerate(ids)}
    peer = {n: f"{h}:{_free_port(h)}" for n, h in hosts.items()}
    client = {n: f"{h}:{_free_port(h)}" for n, h in hosts.items()}
    peers = ",".join(f"{n}={peer[n]}" for n in ids)
    procs = []
    try:
        for n in ids:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "raftkv", "serve", "--id", n, "--listen", peer[n], "--client", client[n],
                 "--peers", peers, "--log-file", str(tmp / f"{n}.log"), "--tick-ms", "50", "--election-ticks", "10",
                 "--data-dir", str(data_dirs[n])], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        addrs = [client[n] for n in ids]
        asyncio.run(_wait_leader(addrs))
        pids = ",".join(f"{n}:{p.pid}" for n, p in zip(ids, procs, strict=True))
        out = subprocess.run([sys.executable, str(ROOT / "bench" / "kv_throughput.py"), "--client-mode", "--addrs",
                              ",".join(addrs), "--pids", pids, "--clients", str(clients), "--seconds", str(seconds),
                              "--value-size", "64"], env=env, capture_output=True, text=True, check=True)
        writes: dict[str, float] = json.loads(out.stdout)["writes"]
        return writes
    finally:
        stop_nodes(procs)


def measure(through_layer: bool, seconds: float, clients: int, *, track: bool = False
            ) -> tuple[dict[str, float], dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="raftkv-disk-bench-") as tmp_s, contextlib.ExitStack() as stack:
        tmp = Path(tmp_s)
        dirs = {}
        for n in ("n1", "n2", "n3", "raw"):
            base = tmp / n
            base.mkdir()
            dirs[n] = stack.enter_context(layer(base, n, track=track)) if through_layer else base
        raw = raw_appends(dirs.pop("raw"), seconds)
        kv = raftkv_writes({n: d / "data" for n, d in dirs.items()}, tmp, seconds, clients)
        return raw, kv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=32)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/disk_layer.py mounts FUSE file systems: run it as root")
    ways = (("direct", False, False), ("layer", True, False), ("unsynced", True, True))
    results = {name: measure(through, args.seconds, args.clients, track=track) for name, through, track in ways}
    for i, what in enumerate(("append+fdatasync, 1 writer", f"raftkv 3 nodes, {args.clients} clients, puts")):
        for name, _, _ in ways:
            r = results[name][i]
            print(f"{what:34s} {name:8s}: {r['per_s']:8.0f}/s   p50 {r['p50_ms']:6.2f} ms   p99 {r['p99_ms']:6.2f} ms")
        d = results["direct"][i]
        for name, _, _ in ways[1:]:
            lay = results[name][i]
            print(f"{'':34s} {name}/direct: {d['per_s'] / lay['per_s']:.2f}x fewer per s, p50 "
                  f"{lay['p50_ms'] / d['p50_ms']:.2f}x, p99 {lay['p99_ms'] / d['p99_ms']:.2f}x")
    print(f"machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
