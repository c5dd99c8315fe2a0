"""Command line of the simulator.

    python -m raftkv.sim --seed S [--nodes N] [--steps K] [--trace] [--history FILE]
    python -m raftkv.sim --seeds A..B [--nodes N] [--steps K]
    python -m raftkv.sim --failpoint NAME[,NAME] --seeds 1..1000 [--first]
    (--broken-sync: a self-test of the checks with nodes whose fsync does nothing; violations are expected)

``--failpoint`` plants bugs of raftkv/failpoints.py in every node (core, kv and storage failpoints; server ones
live in the HTTP server, which the simulator does not run: asking for one exits 254 and says so). ``--first``
ends a sweep at the first seed with a finding and prints the line that replays it. A crash inside a run (an
exception in a node) is a finding of that seed (``sim-crash``), never the end of a sweep.

One seed: prints the run's summary; exits 0 when every invariant held, 1 otherwise, printing the first violated
invariant (after the last trace lines that led to it, from a deterministic replay) and a ``reproduce:`` line. ``--trace`` prints the event trace first (byte-identical for the same seed
and arguments). A sweep runs seeds A to B inclusive, prints one line per seed and a summary line, and exits 1 if
any seed failed. Bad arguments exit 254.
"""

from __future__ import annotations

import argparse
import sys
from collections import deque

from raftkv.failpoints import FAILPOINTS, FailpointError, parse_names

from .export import write_history
from .simulation import DEFAULT_STEPS, SimResult, run_simulation

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_USAGE = 254
TRACE_TAIL = 30


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _seed_range(text: str) -> range:
    lo, sep, hi = text.partition("..")
    try:
        if not sep:
            raise ValueError
        a, b = int(lo), int(hi)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A..B (two integers), got {text!r}") from None
    if b < a:
        raise argparse.ArgumentTypeError(f"empty seed range {text!r}: B must be >= A")
    return range(a, b + 1)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m raftkv.sim", description="Deterministic simulation of a raftkv cluster.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="run one seed")
    which.add_argument("--seeds", type=_seed_range, metavar="A..B", help="sweep the seeds A to B inclusive")
    p.add_argument("--nodes", type=_positive, default=5, help="cluster size (default 5)")
    p.add_argument("--steps", type=_positive, default=DEFAULT_STEPS,
                   help=f"events of the fault phase (default {DEFAULT_STEPS})")
    p.add_argument("--trace", action="store_true", help="print the event trace (one seed only)")
    p.add_argument("--history", metavar="FILE",
                   help="write the clients' operations as a history.jsonl (docs/history.md, model versioned-kv)")
    p.add_argument("--deletes", type=_ratio, default=0.0, metavar="RATIO",
                   help="share of Deletes among the clients' non-Put operations on an existing key (default 0: "
                        "none, every seed as before); deleted keys are re-created, so versions repeat")
    p.add_argument("--no-sessions", dest="sessions", action="store_false",
                   help="clients without client sessions (before issue 15): a retried write can apply twice "
                        "across a delete (with --deletes the checks must find it)")
    p.add_argument("--broken-sync", action="store_true",
                   help="self-test of the checks: run nodes whose fsync does nothing (violations expected)")
    p.add_argument("--failpoint", type=_failpoints, default=frozenset(), metavar="NAME[,NAME]",
                   help="plant these bugs (raftkv/failpoints.py) in every node: "
                        + ", ".join(sorted(n for n, f in FAILPOINTS.items() if f.in_simulator)))
    p.add_argument("--first", action="store_true", help="end a sweep at the first seed with a finding")
    return p


def _failpoints(text: str) -> frozenset[str]:
    try:
        names = parse_names(text, where="--failpoint")
    except FailpointError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    server = sorted(n for n in names if not FAILPOINTS[n].in_simulator)
    if server:
        raise argparse.ArgumentTypeError(
            f"{', '.join(server)}: a server failpoint, out of the simulator's reach (it runs the real core, state "
            "machine and a simulated disk, not the HTTP server); test it with the lab: harness run "
            "--raftkv-failpoints NAME")
    return names


def _reproduce(result: SimResult) -> str:
    return f"reproduce: {result.reproduce()}"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.seeds is not None and (args.trace or args.history):
        _parser().error("--trace and --history need a single --seed")
    out = sys.stdout
    if args.seed is not None:
        def sink(line: str) -> None:
            out.write(line + "\n")

        result = run_simulation(args.seed, args.nodes, args.steps, trace=args.trace,
                                trace_sink=sink if args.trace else None,
                                broken_sync=args.broken_sync, failpoints=args.failpoint, deletes=args.deletes,
                                sessions=args.sessions)
        print(result.summary())
        if args.history:
            try:
                with open(args.history, "w", encoding="utf-8") as out:
                    count = write_history(result.history, out)
            except OSError as exc:
                print(f"cannot write the history to {args.history}: {exc}", file=sys.stderr)
                return EXIT_USAGE
            print(f"history: {count} events written to {args.history}")
        if result.ok:
            return EXIT_OK
        if not args.trace:
            # The run is deterministic: replay it with tracing on to show what led up to the violation.
            tail: deque[str] = deque(maxlen=TRACE_TAIL)
            run_simulation(args.seed, args.nodes, args.steps, trace=True, trace_sink=tail.append,
                           broken_sync=args.broken_sync, failpoints=args.failpoint, deletes=args.deletes,
                           sessions=args.sessions)
            print(f"the last {len(tail)} trace lines before the violation:")
            for line in tail:
                print(f"  {line}")
        print(f"first violated invariant: {result.violation.invariant}")  # type: ignore[union-attr]
        print(_reproduce(result))
        return EXIT_VIOLATION
    failed: list[SimResult] = []
    totals = {"events": 0, "committed": 0, "ops": 0, "crashes": 0}
    ran = 0
    for seed in args.seeds:
        result = run_simulation(seed, args.nodes, args.steps, broken_sync=args.broken_sync,
                                failpoints=args.failpoint, deletes=args.deletes, sessions=args.sessions)
        ran += 1
        print(result.line(), flush=True)
        if not result.ok:
            failed.append(result)
            print(_reproduce(result), flush=True)
        totals["events"] += result.events
        totals["committed"] += result.stats.get("committed", 0)
        totals["ops"] += sum(result.stats.get(k, 0) for k in ("ops_ok", "ops_fail", "ops_info"))
        totals["crashes"] += result.stats.get("crashes", 0)
        if failed and args.first:
            break
    seeds = args.seeds
    planted = f" with failpoint {','.join(sorted(args.failpoint))}" if args.failpoint else ""
    print(f"sweep{planted} seeds {seeds.start}..{seeds.start + ran - 1}: {ran} runs, {len(failed)} with violations, "
          f"{totals['events']} events, {totals['committed']} entries committed, {totals['ops']} client ops, "
          f"{totals['crashes']} crashes"
          + (f"; failing seeds: {' '.join(str(r.seed) for r in failed)}" if failed else ""))
    return EXIT_VIOLATION if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
