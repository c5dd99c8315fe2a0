"""Is the lab the bottleneck? Three figures, against whatever DB/workload/nemesis the registry holds.

    python bench/harness_overhead.py                       # all three parts (about 2.5 min)
    python bench/harness_overhead.py --parts hosts         # only bring-up/teardown
    python bench/harness_overhead.py --node-ops 950        # ratio against a known node-benchmark figure

0. engine: the interpreter alone against an in-memory client (no DB, no network): its ceiling in ops/s.
1. hosts: time to bring up 5 network-namespace hosts AND the DB on them (until every node answers its status and
   they agree on a leader), and to tear it all down (DB teardown + backend teardown). Median of --repeat runs.
2. throughput (--throughput-nodes, default 3; --reps rounds, back to back, each figure printed with the load
   average; then the medians and ratios): with --concurrency workers or clients and no rate limit,
   a. the node benchmark as it is (bench/kv_throughput.py, its own nodes on loopback): writes/s and reads/s;
   b. the node benchmark's own client (kv_throughput.py --client-mode) against a cluster the lab brought up as
      `harness run` does, then on that cluster the register workload's op mix straight through raftkv.client;
   c. the harness (a whole `harness run`, no faults) with the node benchmark's write load (workload `bench-puts`,
      registered here: each worker puts to a key of its own with versions 1, 2, 3, ...), its read load
      (`bench-gets`: linearizable gets of random keys) and --workload (register).
   Ratios: puts/writes and gets/reads (like for like: same nodes, concurrency and ops), and the register mix
   against the same mix without the harness. a vs b is the cost of the lab's network and node settings, b vs c
   the harness's own. Controller CPU per op (everything the run spent, bring-up and check included, over its
   ops) is printed with each run.
3. partition: a --partition-seconds run with the partition nemesis at --rate: ok operations/s and their p50/p99
   latency during the run phase (the final reads excluded), and the verdict.

Needs root (network namespaces). Runs under the prefix $RAFTKV_LAB_PREFIX or `rkb`, stores runs in a temporary
directory unless --store. Exit code 0 when every part ran (whatever the figures), 3 when one failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import registry  # noqa: E402
from harness.backends.netns import NetnsBackend  # noqa: E402
from harness.protocols import TestContext, process_of  # noqa: E402
from harness.readiness import wait_ready  # noqa: E402
from harness.run import RunConfig, run_test  # noqa: E402
from harness.store import read_jsonl  # noqa: E402


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def _options(workload: str, db: str, extra: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in (registry.workload(workload), registry.db(db)):
        out.update({o.name: o.default for o in spec.options})
    out.update(extra)
    return out


async def bench_hosts(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    ups, downs, hosts_only = [], [], []
    db_name = args.db or registry.workload(args.workload).db
    for i in range(args.repeat):
        work = Path(tempfile.mkdtemp(prefix="rkb-hosts-"))
        backend = NetnsBackend(work, prefix=prefix)
        options = _options(args.workload, db_name, {"nodes": args.nodes, "op_timeout": 5.0})
        db = registry.db(db_name).factory(options)
        test = TestContext(name="bench", options=options, hosts=[], backend=backend, db=db, seed=i,
                           store_dir=work)
        t0 = time.monotonic()
        try:
            test.hosts = await backend.setup(args.nodes)
            t_hosts = time.monotonic()
            await asyncio.gather(*(db.setup(test, n) for n in test.nodes))
            await asyncio.gather(*(process_of(test).start(test, n) for n in test.nodes))
            if not await wait_ready(test, 30, interval=0.05):  # raftkv: every node names one leader
                raise RuntimeError("the cluster did not agree on a leader within 30 s")
            t_up = time.monotonic()
        finally:
            t1 = time.monotonic()
            await asyncio.gather(*(db.teardown(test, n) for n in test.nodes), return_exceptions=True)
            await backend.teardown()
            t_down = time.monotonic()
        ups.append(t_up - t0)
        hosts_only.append(t_hosts - t0)
        downs.append(t_down - t1)
    return {"hosts_up_s": statistics.median(hosts_only), "hosts_and_db_up_s": statistics.median(ups),
            "teardown_s": statistics.median(downs), "repeat": args.repeat}


def _run_figures(run_dir: Path) -> dict[str, Any]:
    """ok ops/s and ok latency of the run phase (everything before the final heal's first event)."""
    test = json.loads((run_dir / "test.json").read_text())
    h = read_jsonl(run_dir / "history.jsonl")
    heal_at = next((e["time"] for e in h if e["process"] == "nemesis" and isinstance(e.get("value"), dict)
                    and e["value"].get("heal")), None)
    invokes: dict[Any, dict[str, Any]] = {}
    lat_ok: list[float] = []
    done = {"ok": 0, "fail": 0, "info": 0}
    first = last = None
    for e in h:
        if not isinstance(e["process"], int):  # nemesis events and the lab's own observations ("harness")
            continue
        if e["type"] == "invoke":
            invokes[e["process"]] = e
            first = e["time"] if first is None else first
            continue
        inv = invokes.pop(e["process"], None)
        if inv is None or (heal_at is not None and inv["time"] >= heal_at):
            continue
        if heal_at is None and inv["time"] - test["start_time"] > test["options"]["time_limit"] * 1e9 + 5e9:
            continue
        done[e["type"]] += 1
        last = e["time"]
        if e["type"] == "ok":
            lat_ok.append((e["time"] - inv["time"]) / 1e6)
    span = ((last or 0) - (first or 0)) / 1e9 or float("nan")
    # The engine's own share of a worker's cycle: from a completion to the same thread's next invoke.
    conc = int(test["options"]["concurrency"])
    last_done: dict[int, int] = {}
    gaps: list[float] = []
    for e in h:
        if not isinstance(e["process"], int) or (heal_at is not None and e["time"] >= heal_at):
            continue
        th = e["process"] % conc
        if e["type"] == "invoke":
            if th in last_done:
                gaps.append((e["time"] - last_done[th]) / 1e6)
        else:
            last_done[th] = e["time"]
    return {"ok_per_s": done["ok"] / span, "ops_per_s": sum(done.values()) / span, "span_s": span, **done,
            "ok_p50_ms": _pct(lat_ok, 50), "ok_p99_ms": _pct(lat_ok, 99), "gap_p50_ms": _pct(gaps, 50),
            "gap_mean_ms": statistics.mean(gaps) if gaps else float("nan")}


async def bench_engine(seconds: float, concurrency: int) -> float:
    """Completed ops/s of the interpreter with a client that answers at once (the engine's ceiling)."""
    from dataclasses import replace

    from harness import generator as gen
    from harness.interpreter import Interpreter, Tally
    from harness.store import HistoryWriter

    class Instant:
        async def open(self, test: Any, node: str) -> Instant:
            return self

        async def invoke(self, test: Any, op: Any) -> Any:
            await asyncio.sleep(0)  # one trip through the event loop, as a real reply would take
            return replace(op, type="ok")

        async def close(self, test: Any) -> None:
            return None

    class Host:
        name, address = "n1", "127.0.0.1"

    with tempfile.TemporaryDirectory() as d:
        test = TestContext(name="engine", options={}, hosts=[Host()], backend=None, db=None, seed=1,  # type: ignore[list-item,arg-type]
                           store_dir=Path(d))
        tally = Tally()
        interp = Interpreter(test, history=HistoryWriter(Path(d) / "h.jsonl"), origin_ns=time.monotonic_ns(),
                             concurrency=concurrency, client_factory=Instant, observers=[tally.observe])
        t0 = time.monotonic()
        await interp.run(gen.time_limit(seconds, gen.repeat({"f": "write", "key": "k", "value": 1})))
        return tally.ok / (time.monotonic() - t0)


async def bench_run(args: argparse.Namespace, prefix: str, store: Path, *, nemeses: tuple[str, ...],
                    seconds: float, rate: float, workload: str | None = None) -> dict[str, Any]:
    config = RunConfig(workload=workload or args.workload, nemeses=nemeses, db=args.db, nodes=args.nodes, time_limit=seconds,
                       concurrency=args.concurrency, rate=rate, seed=args.seed, schedule="cycle",
                       nemesis_interval=args.interval, final_time_limit=10.0, store=store, prefix=prefix,
                       render=False,
                       # Like for like: part b sends the register mix through raftkv.client, so the harness's
                       # register workload uses that library too (its default, node-bound clients, refuses writes
                       # at followers and would measure placement, not the harness).
                       extra={"client_mode": "smart"})
    t0 = time.monotonic()
    cpu0 = time.process_time()
    res = await run_test(config)
    wall = time.monotonic() - t0
    cpu1 = time.process_time()
    out: dict[str, Any] = {"valid": res.valid, "error": res.error, "wall_s": wall, "run_dir": str(res.run_dir),
                           "controller_cpu": (cpu1 - cpu0) / wall}
    if res.run_dir is not None and (res.run_dir / "history.jsonl").exists():
        out.update(_run_figures(res.run_dir))
    ops = out.get("ok", 0) + out.get("fail", 0) + out.get("info", 0)
    # Everything the controller spent (bring-up, run, check) over the operations: an upper bound per op.
    out["controller_cpu_us_per_op"] = (cpu1 - cpu0) / ops * 1e6 if ops else float("nan")
    return out


def register_bench_puts() -> None:
    """The node benchmark's write phase as a harness workload (raftkv only: it needs raftkv.client)."""
    from harness import generator as gen
    from harness.protocols import Op
    from raftkv.client import KVClient, RaftKVError
    from workloads.raftkv_db import client_address

    class PutClient:
        count = 0

        def __init__(self, options: Any = None) -> None:
            self.kv: Any = None
            self.key = ""
            self.version = 0

        async def open(self, test: Any, node: str) -> PutClient:
            c = PutClient()
            PutClient.count += 1
            c.key = f"bench-{node}-{PutClient.count}"
            c.kv = KVClient([client_address(test, n) for n in test.nodes], timeout=4.5)
            return c

        async def invoke(self, test: Any, op: Op) -> Op:
            try:
                r = await self.kv.put(self.key, "x" * 64, self.version)
            except RaftKVError as e:
                return Op(process=op.process, type="info", f=op.f, key=self.key, value=op.value, error=str(e))
            self.version = r.version
            return Op(process=op.process, type="ok", f=op.f, key=self.key, value={"version": r.version})

        async def close(self, test: Any) -> None:
            if self.kv is not None:
                await self.kv.close()

    class Counted:
        def check(self, test: Any, history: list[dict[str, Any]]) -> dict[str, Any]:
            return {"valid": True, "ok": sum(1 for e in history if e["type"] == "ok")}

    class GetClient:
        """The node benchmark's read phase: linearizable gets of one of --concurrency keys chosen at random."""

        def __init__(self, options: Any = None) -> None:
            self.kv: Any = None
            self.rng: Any = None
            self.keys = 1

        async def open(self, test: Any, node: str) -> GetClient:
            c = GetClient()
            c.rng = test.rng(f"bench-gets.{node}.{id(c)}")
            c.keys = int(test.options.get("concurrency") or 10)
            c.kv = KVClient([client_address(test, n) for n in test.nodes], timeout=4.5)
            return c

        async def invoke(self, test: Any, op: Op) -> Op:
            key = f"bench-{self.rng.randrange(self.keys)}"
            try:
                r = await self.kv.get(key)
            except RaftKVError as e:
                return Op(process=op.process, type="fail", f=op.f, key=key, error=str(e))
            return Op(process=op.process, type="ok", f=op.f, key=key, value={"version": r.version})

        async def close(self, test: Any) -> None:
            if self.kv is not None:
                await self.kv.close()

    registry.register_workload(registry.Workload(
        name="bench-puts", client=PutClient, generator=lambda o, r: gen.repeat({"f": "put"}),
        checker=lambda o: Counted(), db="raftkv", description="the node benchmark's write load"))
    registry.register_workload(registry.Workload(
        name="bench-gets", client=GetClient, generator=lambda o, r: gen.repeat({"f": "get"}),
        checker=lambda o: Counted(), db="raftkv", description="the node benchmark's read load"))


def _node_rates(stdout: str) -> tuple[float, float] | None:
    """(writes/s, reads/s) from bench/kv_throughput.py's printed lines or its --client-mode JSON."""
    rates = []
    for line in stdout.splitlines():
        words = line.split()
        if words and words[0] in ("writes:", "reads:"):
            rates.append(float(words[1].rstrip("/s")))
        elif line.startswith("{"):
            r = json.loads(line)
            rates = [r["writes"]["per_s"], r["reads"]["per_s"]]
    return (rates[0], rates[1]) if len(rates) == 2 else None


def node_benchmark(args: argparse.Namespace) -> tuple[float, float] | None:
    """The node benchmark as it stands (bench/kv_throughput.py: its own nodes on loopback) with as many clients as
    the harness has workers: (writes/s, reads/s)."""
    if args.node_ops:
        return float(args.node_ops), float(args.node_ops)
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "kv_throughput.py"), "--nodes", str(args.nodes),
                          "--clients", str(args.concurrency), "--seconds", str(args.node_seconds)],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    rates = _node_rates(res.stdout)
    if rates is None:
        print(f"(node benchmark gave no figure: {res.stdout[-300:]} {res.stderr[-300:]})", file=sys.stderr)
    return rates


async def node_benchmark_in_lab(args: argparse.Namespace, prefix: str) -> tuple[float, float, float] | None:
    """The node benchmark's own load generator (kv_throughput.py --client-mode, a separate process) against a
    cluster the lab brought up exactly as `harness run` does (network namespaces, the DB adapter's settings):
    the same nodes and network the harness drives, so harness/node is the lab's own overhead and nothing else.
    Then, on the same cluster, the register workload's op mix driven straight through raftkv.client (no harness).
    Returns (writes/s, reads/s, register-mix ops/s)."""
    work = Path(tempfile.mkdtemp(prefix="rkb-node-"))
    backend = NetnsBackend(work, prefix=prefix)
    db_name = args.db or registry.workload(args.workload).db
    options = _options(args.workload, db_name, {"nodes": args.nodes, "op_timeout": 5.0})
    db = registry.db(db_name).factory(options)
    test = TestContext(name="bench", options=options, hosts=[], backend=backend, db=db, seed=args.seed,
                       store_dir=work)
    from workloads.raftkv_db import client_address

    try:
        test.hosts = await backend.setup(args.nodes)
        await asyncio.gather(*(db.setup(test, n) for n in test.nodes))
        await asyncio.gather(*(process_of(test).start(test, n) for n in test.nodes))
        if not await wait_ready(test, 30, interval=0.05):  # raftkv: every node names one leader
            raise RuntimeError("the cluster did not agree on a leader within 30 s")
        argv = [sys.executable, str(ROOT / "bench" / "kv_throughput.py"), "--client-mode",
                "--addrs", ",".join(client_address(test, n) for n in test.nodes),
                "--pids", ",".join(f"{n}:{db.pids[n]}" for n in test.nodes),  # type: ignore[attr-defined]
                "--clients", str(args.concurrency), "--seconds", str(args.node_seconds), "--value-size", "64"]
        proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
        out, err = await proc.communicate()
        rates = _node_rates(out.decode())
        if rates is None:
            print(f"(node benchmark in the lab gave no figure: {out[-300:]!r} {err[-300:]!r})", file=sys.stderr)
            return None
        mix = await _direct_register_mix([client_address(test, n) for n in test.nodes], args.concurrency,
                                         args.node_seconds)
        return rates[0], rates[1], mix
    finally:
        await asyncio.gather(*(db.teardown(test, n) for n in test.nodes), return_exceptions=True)
        await backend.teardown()


async def _direct_register_mix(addrs: list[str], workers: int, seconds: float) -> float:
    """Completed ops/s of the register workload's mix (workloads/register.py MIX: get/write/cas/delete on 8 keys,
    each worker with its own client that tries its own node first) with raftkv.client alone: the node's rate for
    that mix, without the harness."""
    import random

    from raftkv.client import KVClient, RaftKVError
    from workloads.register import MIX

    keys = [f"k{i}" for i in range(8)]
    versions = dict.fromkeys(keys, 0)
    kinds, weights = [k for k, _ in MIX], [w for _, w in MIX]
    done = 0
    stop_at = time.monotonic() + seconds

    async def worker(i: int) -> None:
        nonlocal done
        rng = random.Random(i)
        async with KVClient(addrs[i % len(addrs):] + addrs[:i % len(addrs)], timeout=4.5) as kv:
            while time.monotonic() < stop_at:
                key = rng.choice(keys)
                kind = rng.choices(kinds, weights)[0]
                try:
                    if kind == "get":
                        versions[key] = (await kv.get(key)).version
                    elif kind == "delete" and versions[key] > 0:
                        versions[key] = (await kv.delete(key, versions[key])).version
                    else:
                        expected = versions[key] + (kind == "cas" and rng.random() < 0.5)
                        versions[key] = (await kv.put(key, str(done), expected)).version
                except RaftKVError:
                    pass
                done += 1

    t0 = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        for i in range(workers):
            tg.create_task(worker(i))
    return done / (time.monotonic() - t0)


def _load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


async def bench_throughput(args: argparse.Namespace, prefix: str, store: Path) -> bool:
    """--reps rounds of, back to back (so each round sees the same machine): the node benchmark on loopback, the
    node benchmark's client against a lab cluster, and the harness with the node benchmark's write load
    (bench-puts), its read load (bench-gets) and the register workload; every run with --concurrency workers or
    clients and no rate limit. Prints each figure with the load average, then the medians and the ratios."""
    args = argparse.Namespace(**{**vars(args), "nodes": args.throughput_nodes})
    try:
        register_bench_puts()
        like_for_like = True
    except ImportError as e:
        print(f"(no like-for-like runs: {e})")
        like_for_like = False
    failed = False
    fig: dict[str, list[float]] = {k: [] for k in ("node_w", "node_r", "lab_w", "lab_r", "lab_mix", "puts", "gets", "reg",
                                                     "cpu_puts", "cpu_gets", "cpu_reg")}
    for rep in range(args.reps):
        if not args.no_node_bench:
            node = node_benchmark(args)
            if node:
                fig["node_w"].append(node[0])
                fig["node_r"].append(node[1])
                print(f"[{rep}] node benchmark (kv_throughput.py, loopback, {args.concurrency} clients): writes "
                      f"{node[0]:.0f}/s, reads {node[1]:.0f}/s ({_load()})", flush=True)
            if like_for_like:
                lab = await node_benchmark_in_lab(args, prefix)
                if lab:
                    fig["lab_w"].append(lab[0])
                    fig["lab_r"].append(lab[1])
                    fig["lab_mix"].append(lab[2])
                    print(f"[{rep}] node benchmark's client against a lab cluster: writes {lab[0]:.0f}/s, reads "
                          f"{lab[1]:.0f}/s; the register mix through raftkv.client alone {lab[2]:.0f} ops/s "
                          f"({_load()})", flush=True)
        runs = [("puts", "bench-puts"), ("gets", "bench-gets")] if like_for_like else []
        for key, workload in [*runs, ("reg", args.workload)]:
            t = await bench_run(args, prefix, store, nemeses=(), seconds=args.seconds, rate=0, workload=workload)
            failed |= t["error"] is not None
            rate = t.get("ok_per_s" if key != "reg" else "ops_per_s", float("nan"))
            fig[key].append(rate)
            fig["cpu_" + key].append(t["controller_cpu_us_per_op"])
            print(f"[{rep}] harness {workload}: {rate:.0f} {'ok' if key != 'reg' else 'completed'} ops/s "
                  f"({t.get('ok_per_s', float('nan')):.0f} ok/s), ok p50 {t.get('ok_p50_ms', float('nan')):.1f} ms "
                  f"p99 {t.get('ok_p99_ms', float('nan')):.1f} ms, verdict {t['valid']}, controller "
                  f"{t['controller_cpu_us_per_op']:.0f} us CPU per op, engine gap p50 "
                  f"{t.get('gap_p50_ms', float('nan')):.2f} ms ({_load()})"
                  + (f" ERROR {t['error']}" if t["error"] else ""), flush=True)

    def med(k: str) -> float:
        return statistics.median(fig[k]) if fig[k] else float("nan")

    def ratio(h: str, n: str) -> str:
        """Median and range of the per-round ratios (each round's two figures saw the same machine)."""
        rs = [a / b for a, b in zip(fig[h], fig[n], strict=False) if b]
        if not rs:
            return "n/a"
        return f"{statistics.median(rs):.0%} (rounds {', '.join(f'{r:.0%}' for r in rs)})"

    print(f"throughput summary, medians of {args.reps} rounds, {args.nodes} nodes, {args.concurrency} "
          f"workers/clients, {args.seconds:g} s harness runs, {args.node_seconds:g} s node phases:")
    if like_for_like:
        for what, h, n, nl in (("writes", "puts", "node_w", "lab_w"), ("reads", "gets", "node_r", "lab_r")):
            print(f"  {what}: harness {med(h):.0f}/s; node benchmark (loopback) {med(n):.0f}/s -> {ratio(h, n)}; "
                  f"node benchmark's client on a lab cluster {med(nl):.0f}/s -> {ratio(h, nl)}")
    if fig["lab_mix"]:
        print(f"  register mix: harness {med('reg'):.0f}/s; the same mix through raftkv.client alone on a lab "
              f"cluster {med('lab_mix'):.0f}/s -> {ratio('reg', 'lab_mix')}")
    # For reference only: the mix is half reads, half writes, so with no contention the node could do it at the
    # harmonic combination of its write and read rates; the register's 8 keys make it slower (version conflicts,
    # reads queued behind writes of the same keys), which the line above measures without the harness.
    if fig["node_w"] and fig["node_r"]:
        mix = 1 / (0.5 / med("node_w") + 0.5 / med("node_r"))
        print(f"  (uncontended 50/50 bound from the loopback node benchmark: {mix:.0f} ops/s; the register mix "
              f"reaches {med('reg') / mix:.0%} of it)")
    return failed


async def main_async(args: argparse.Namespace) -> int:
    prefix = os.environ.get("RAFTKV_LAB_PREFIX", "rkb")
    store = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="rkb-store-"))
    failed = False
    parts = set(args.parts.split(","))
    if "engine" in parts:
        rate = await bench_engine(5.0, args.concurrency)
        print(f"engine: {rate:.0f} ops/s with an instant in-memory client ({args.concurrency} workers, every event "
              "appended to history.jsonl)")
    if "hosts" in parts:
        h = await bench_hosts(args, prefix)
        print(f"hosts: {args.nodes} namespaces up in {h['hosts_up_s']:.3f} s; with the DB running and a leader "
              f"agreed {h['hosts_and_db_up_s']:.2f} s; teardown {h['teardown_s']:.2f} s "
              f"(median of {h['repeat']})")
    if "throughput" in parts:
        failed |= await bench_throughput(args, prefix, store)
    if "partition" in parts:
        p = await bench_run(args, prefix, store, nemeses=("partition",), seconds=args.partition_seconds,
                            rate=args.rate)
        failed |= p["error"] is not None
        print(f"partition run ({args.partition_seconds:g} s, rate {args.rate:g}/s, interval {args.interval:g} s): "
              f"{p.get('ok_per_s', float('nan')):.0f} ok/s of {p.get('ops_per_s', float('nan')):.0f} ops/s, "
              f"ok p50 {p.get('ok_p50_ms', float('nan')):.1f} ms p99 {p.get('ok_p99_ms', float('nan')):.1f} ms, "
              f"fail {p.get('fail')}, info {p.get('info')}, verdict {p['valid']}, "
              f"controller CPU {p['controller_cpu']:.0%}"
              + (f" ERROR {p['error']}" if p["error"] else ""))
    print(f"(runs stored under {store})")
    return 3 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", default="engine,hosts,throughput,partition")
    p.add_argument("--workload", default="register")
    p.add_argument("--db", default=None)
    p.add_argument("--nodes", type=int, default=5)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--partition-seconds", type=float, default=60)
    p.add_argument("--rate", type=float, default=200)
    p.add_argument("--interval", type=float, default=10)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--store", default=None)
    p.add_argument("--node-ops", type=float, default=None, help="the node benchmark's ops/s, if known")
    p.add_argument("--node-seconds", type=float, default=10)
    p.add_argument("--no-node-bench", action="store_true")
    p.add_argument("--throughput-nodes", type=int, default=3, help="nodes for the throughput comparison")
    p.add_argument("--reps", type=int, default=3, help="rounds of the throughput comparison")
    p.add_argument("--no-uvloop", action="store_true", help="plain asyncio loop (harness run uses uvloop)")
    args = p.parse_args()
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main_async(args))
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
