"""Run the deterministic simulator over many seeds once and print how many violated an invariant, and the time.

    python bench/sim_sweep.py [--seeds 1..5000] [--steps 10000] [--jobs N]

Each seed is one randomized run of `raftkv.sim.run_simulation` (5 nodes unless --nodes; faults, then the liveness
phase). Seeds are spread over ``--jobs`` worker processes; results do not depend on the split (each run is a pure
function of its seed). Every failing seed is printed with its reproduce line. Exit status 1 if any seed failed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raftkv.sim import run_simulation  # noqa: E402


def _run(job: tuple[int, int, int]) -> tuple[int, bool, str, int]:
    seed, nodes, steps = job
    result = run_simulation(seed, nodes, steps)
    text = "" if result.ok else f"{result.summary()}\n  reproduce: {result.reproduce()}"
    return seed, result.ok, text, result.events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1..5000", help="A..B inclusive (default 1..5000)")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    lo, _, hi = args.seeds.partition("..")
    seeds = range(int(lo), int(hi) + 1)
    jobs = [(seed, args.nodes, args.steps) for seed in seeds]
    started = time.perf_counter()
    failed: list[str] = []
    events = 0
    done = 0
    with multiprocessing.Pool(max(1, args.jobs)) as pool:
        for _seed, ok, text, n in pool.imap_unordered(_run, jobs, chunksize=8):
            done += 1
            events += n
            if not ok:
                failed.append(text)
                print(text, flush=True)
            if done % 500 == 0:
                print(f"  ... {done}/{len(jobs)} seeds, {len(failed)} violations, "
                      f"{time.perf_counter() - started:.0f}s", flush=True)
    elapsed = time.perf_counter() - started
    print(f"sim sweep: seeds {seeds.start}..{seeds.stop - 1} ({len(jobs)} runs, {args.nodes} nodes, "
          f"{args.steps} steps each): {len(failed)} violations; {events} events in {elapsed:.1f}s wall "
          f"({args.jobs} jobs, {len(jobs) / elapsed:.1f} seeds/s, {events / elapsed:,.0f} events/s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
