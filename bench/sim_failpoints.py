"""Sweep the simulator over every failpoint it can plant and print the first seed that finds each one.

    python bench/sim_failpoints.py [--seeds 1..1000] [--steps 20000] [--jobs 2] [--only NAME,...] [--record]

For each failpoint of raftkv/failpoints.py that the simulator can reach (core, kv, storage), seeds are run in
order on ``--jobs`` worker processes until the first one reports a finding (a violated invariant, a liveness
failure or a crash inside the run); the table gives the failpoint, that first failing seed, what was found, how
many seeds were tried and the time. Server failpoints are listed as out of reach. ``--record`` writes the found
seeds to raftkv/sim/failpoint_seeds.json, which the tests replay (tests/sim/test_sim_failpoints.py); a failpoint
not found is recorded with "seed": null and the number of seeds tried.
Exit status 1 if a reachable failpoint was not found within the seeds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from raftkv.failpoints import FAILPOINTS  # noqa: E402
from raftkv.sim import run_simulation  # noqa: E402

SEEDS_FILE = ROOT / "raftkv" / "sim" / "failpoint_seeds.json"


# The clients' mix a failpoint needs to show at all (recorded with its seed): no-dedup only matters when a retried
# write can match again, which takes deletes (versions repeat only across a delete).
DELETES = {"no-dedup": 0.5}


def _run(job: tuple[str, int, int, int]) -> tuple[int, str, str]:
    name, seed, nodes, steps = job
    result = run_simulation(seed, nodes, steps, failpoints=frozenset({name}), deletes=DELETES.get(name, 0.0))
    if result.violation is None:
        return seed, "", ""
    return seed, result.violation.invariant, result.violation.detail


def _hunt(pool: multiprocessing.pool.Pool, name: str, seeds: range, nodes: int,
          steps: int) -> tuple[int | None, str, str, int]:
    """The first seed (in order) with a finding; (None, ...) when none of `seeds` found it."""
    tried = 0
    for seed, invariant, detail in pool.imap(_run, [(name, s, nodes, steps) for s in seeds], chunksize=1):
        tried += 1
        if invariant:
            return seed, invariant, detail, tried
    return None, "", "", tried


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1..1000", help="A..B inclusive (default 1..1000)")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated failpoints (default: all)")
    parser.add_argument("--record", action="store_true", help=f"write the found seeds to {SEEDS_FILE.name}")
    args = parser.parse_args()
    lo, _, hi = args.seeds.partition("..")
    seeds = range(int(lo), int(hi) + 1)
    names = [n for n in args.only.split(",") if n] or sorted(FAILPOINTS)
    unknown = [n for n in names if n not in FAILPOINTS]
    if unknown:
        parser.error(f"unknown failpoints: {', '.join(unknown)}")
    recorded = json.loads(SEEDS_FILE.read_text()) if SEEDS_FILE.exists() else {}
    missed = []
    print("| failpoint | layer | first failing seed | found | seeds tried | time |")
    print("|---|---|---|---|---|---|")
    # maxtasksperchild: a pool abandoned at a finding must not keep stale work; a fresh pool per failpoint.
    for name in names:
        fp = FAILPOINTS[name]
        if not fp.in_simulator:
            print(f"| {name} | {fp.layer} | out of reach | a server failpoint: the simulator runs no HTTP "
                  f"server (the lab tests it) | 0 | - |", flush=True)
            continue
        started = time.perf_counter()
        with multiprocessing.Pool(max(1, args.jobs)) as pool:
            seed, invariant, detail, tried = _hunt(pool, name, seeds, args.nodes, args.steps)
        took = time.perf_counter() - started
        if seed is None:
            missed.append(name)
            print(f"| {name} | {fp.layer} | NOT FOUND | - | {tried} | {took:.1f}s |", flush=True)
            recorded[name] = {"seed": None, "nodes": args.nodes, "steps": args.steps, "seeds_tried": tried}
            continue
        short = detail if len(detail) <= 90 else detail[:87] + "..."
        print(f"| {name} | {fp.layer} | {seed} | {invariant}: {short} | {tried} | {took:.1f}s |", flush=True)
        recorded[name] = {"seed": seed, "nodes": args.nodes, "steps": args.steps, "invariant": invariant}
        if name in DELETES:
            recorded[name]["deletes"] = DELETES[name]
    if args.record:
        SEEDS_FILE.write_text(json.dumps(dict(sorted(recorded.items())), indent=1) + "\n")
        print(f"recorded in {SEEDS_FILE.relative_to(ROOT)}")
    if missed:
        print(f"not found within {len(seeds)} seeds: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
