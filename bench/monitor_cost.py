"""What `harness run --monitor` costs a run: the harness's throughput benchmark (bench/harness_overhead.py part c,
the one docs/harness.md "What the lab costs" reads: a whole fault-free `harness run` with the node benchmark's
write load `bench-puts`, no rate limit) with and without the live metrics scrape, in rounds.

    python bench/monitor_cost.py                       # 3 rounds of 10 s runs, 3 nodes, 10 workers
    python bench/monitor_cost.py --rounds 5 --seconds 20 --workload bench-gets

Each round runs both, the order alternating (off then on, on then off, ...) so that a drift of the machine weighs on
both sides alike. Printed: each run's ok ops/s with the load average, and for a monitored run its scrapes (per node,
failed ones, mean duration); then the medians and the per-round ratios monitored / unmonitored. The aim (issue 12):
the scrape costs less than 5 % of the throughput, a median ratio of at least 95 %.

Needs root (network namespaces). Runs under $RAFTKV_LAB_PREFIX or `rkb`; stores its runs in a temporary directory
unless --store. Exit code 0 when every run finished (whatever the figures), 3 when one failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from harness_overhead import _load, _run_figures, register_bench_puts  # noqa: E402

from harness.run import RunConfig, run_test  # noqa: E402
from harness.scrape import MetricsLog, parse_scrape  # noqa: E402
from harness.store import JsonlWriter, read_jsonl  # noqa: E402

CPU_REPEAT = 300


def _scrape_figures(run_dir: Path) -> dict[str, Any]:
    """Scrapes per node, failed scrapes and their mean duration, from the run's metrics.jsonl."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return {}
    scrapes = [x for x in read_jsonl(path) if x.get("kind") == "scrape"]
    nodes = {x["node"] for x in scrapes}
    return {"scrapes_per_node": len(scrapes) / max(len(nodes), 1),
            "failed": sum(1 for x in scrapes if "error" in x),
            "took_ms": statistics.mean(x["took_ms"] for x in scrapes) if scrapes else float("nan")}


def scrape_cpu_ms(text: str) -> tuple[float, float]:
    """CPU ms of one scrape of ``text`` (a real node's final scrape): on the controller, parsing it and appending it
    to a metrics.jsonl (to /dev/null); on a raftkv node, rendering a registry holding the same series. HTTP is not
    counted (a request of about 15 KB on each side)."""
    writer = JsonlWriter(Path(os.devnull))
    log = MetricsLog(writer, nodes=["n1"], interval_s=1.0, timeout_s=1.0)
    t0 = time.process_time()
    for _ in range(CPU_REPEAT):
        log.samples("n1", 0, 1.0, parse_scrape(text))
    controller = (time.process_time() - t0) / CPU_REPEAT * 1e3
    writer.close()
    registry = _node_registry(text)
    t0 = time.process_time()
    for _ in range(CPU_REPEAT):
        registry.render()
    return controller, (time.process_time() - t0) / CPU_REPEAT * 1e3


def _node_registry(text: str) -> Any:
    """raftkv's Metrics with every series of ``text`` present (labels set as scraped), to time its render."""
    from prometheus_client.parser import text_string_to_metric_families

    from raftkv.server.metrics import Metrics

    m = Metrics("n1")
    collectors: dict[str, Any] = m.registry._names_to_collectors  # private, but the only map from a family name to its metric
    for fam in text_string_to_metric_families(text):
        c = collectors.get(fam.name)
        for s in fam.samples:
            labels = {k: v for k, v in s.labels.items() if k != "le"}
            child = c.labels(**labels) if c is not None and labels else c
            if child is None or s.name.endswith(("_created", "_sum", "_count")):
                continue
            if fam.type == "histogram":
                child.observe(0.001)
            elif fam.type == "counter":
                child.inc(s.value)
            elif fam.type == "gauge":
                child.set(s.value)
    return m


async def one_run(args: argparse.Namespace, prefix: str, store: Path, monitor: bool) -> dict[str, Any]:
    config = RunConfig(workload=args.workload, nodes=args.nodes, time_limit=args.seconds,
                       concurrency=args.concurrency, rate=0, seed=args.seed, final_time_limit=5.0, store=store,
                       prefix=prefix, render=False, monitor=monitor, monitor_interval=args.interval,
                       name=f"monitor-cost-{'on' if monitor else 'off'}")
    cpu0 = time.process_time()
    t0 = time.monotonic()
    res = await run_test(config)
    out: dict[str, Any] = {"error": res.error, "valid": res.valid,
                           "controller_cpu": (time.process_time() - cpu0) / (time.monotonic() - t0)}
    if res.run_dir is not None and (res.run_dir / "history.jsonl").exists():
        out.update(_run_figures(res.run_dir))
        out.update(_scrape_figures(res.run_dir))
    return out


def _line(i: int, monitor: bool, r: dict[str, Any]) -> str:
    text = (f"[{i}] {'--monitor' if monitor else 'no monitor'}: {r.get('ok_per_s', float('nan')):.0f} ok/s, "
            f"ok p50 {r.get('ok_p50_ms', float('nan')):.1f} ms p99 {r.get('ok_p99_ms', float('nan')):.1f} ms, "
            f"controller {r['controller_cpu']:.0%} of a core")
    if monitor and "scrapes_per_node" in r:
        text += (f"; {r['scrapes_per_node']:.0f} scrapes per node, {r['failed']} failed, "
                 f"{r['took_ms']:.1f} ms each on average")
    if r["error"]:
        text += f" ERROR {r['error']}"
    return f"{text} ({_load()})"


async def main_async(args: argparse.Namespace) -> int:
    prefix = os.environ.get("RAFTKV_LAB_PREFIX", "rkb")
    store = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="rkb-monitor-"))
    if args.workload.startswith("bench-"):
        register_bench_puts()
    off: list[float] = []
    on: list[float] = []
    failed = False
    for i in range(args.rounds):
        for monitor in ((False, True) if i % 2 == 0 else (True, False)):
            r = await one_run(args, prefix, store, monitor)
            failed |= r["error"] is not None
            (on if monitor else off).append(r.get("ok_per_s", float("nan")))
            print(_line(i, monitor, r), flush=True)
    ratios = [a / b for a, b in zip(on, off, strict=True) if b]
    texts = sorted(store.glob("monitor-cost-on/*/n1/metrics.txt"))
    cpu = scrape_cpu_ms(texts[-1].read_text()) if texts else None
    print(f"summary, {args.rounds} rounds of {args.seconds:g} s {args.workload} runs, {args.nodes} nodes, "
          f"{args.concurrency} workers, no rate limit, scrape every {args.interval:g} s:")
    print(f"  median ok/s: without --monitor {statistics.median(off):.0f}, with {statistics.median(on):.0f}")
    if ratios:
        print(f"  with / without: median {statistics.median(ratios):.1%} (rounds "
              f"{', '.join(f'{r:.1%}' for r in ratios)}); aim >= 95 %")
    if cpu is not None:
        per_s = args.nodes * (cpu[0] + cpu[1]) / args.interval
        print(f"  CPU per scrape (a real node's final scrape, {CPU_REPEAT} repeats, HTTP not counted): controller "
              f"{cpu[0]:.2f} ms (parse + store), node {cpu[1]:.2f} ms (render); {args.nodes} nodes every "
              f"{args.interval:g} s: {per_s:.1f} ms of CPU a second, {per_s / 10 / (os.cpu_count() or 1):.2f} % of "
              f"this machine's {os.cpu_count()} cores")
    print(f"store: {store}")
    return 3 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds, each one run without and one with (default 3)")
    p.add_argument("--seconds", type=float, default=10.0, help="time limit of each run (default 10)")
    p.add_argument("--workload", default="bench-puts", help="bench-puts (default), bench-gets or a registered one")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--interval", type=float, default=1.0, help="--monitor-interval (default 1)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--store", default=None, help="store the runs here (default: a temporary directory)")
    args = p.parse_args()
    if args.rounds < 1 or args.seconds <= 0:
        p.error("--rounds must be >= 1 and --seconds > 0")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
