"""Time and size of the report for synthetic runs of 1,000, 10,000 and 100,000 operations.

    python bench/report.py [--ops 1000,10000,100000] [--keep DIR]

Builds each run with reports.synthetic (an invalid run, so the timeline and log excerpts are included), then times
render_run (reading, pandas preparation, HTML: wall time, and the CPU time of this process, which a busy machine
does not inflate) and prints the report's size; plotly.js is shipped once in the store and not counted. Targets at 100,000 operations: under 10 s and under 20 MB.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reports.render import render_run  # noqa: E402
from reports.synthetic import make_run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", default="1000,10000,100000")
    parser.add_argument("--keep", type=Path, help="build the store here and keep it (default: a temporary dir)")
    args = parser.parse_args()
    sizes = [int(x) for x in args.ops.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        store = args.keep or Path(tmp)
        print(f"{'ops':>8} {'history':>10} {'render':>8} {'cpu':>7} {'report':>9}  target")
        for n in sizes:
            run = make_run(store / f"bench-{n}" / "run", n_ops=n, invalid=True, seed=n)
            history_mb = (run / "history.jsonl").stat().st_size / 1e6
            start, cpu = time.perf_counter(), time.process_time()
            report = render_run(run)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            size_mb = report.stat().st_size / 1e6
            ok = ""
            if n >= 100_000:
                ok = "ok" if elapsed < 10 and size_mb < 20 else "MISSED (<10 s, <20 MB)"
                if elapsed >= 10 and cpu < 10 and size_mb < 20:
                    ok += ": the CPU time is under 10 s, the machine is busy (see uptime)"
            print(f"{n:>8,} {history_mb:>8.1f}MB {elapsed:>7.2f}s {cpu:>6.2f}s {size_mb:>7.2f}MB  {ok}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
