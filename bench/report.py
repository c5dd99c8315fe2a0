"""Time and size of the report for synthetic runs of 1,000, 10,000 and 100,000 operations.

    python bench/report.py [--ops 1000,10000,100000] [--keep DIR]

Builds each run with reports.synthetic (an invalid run, so the timeline and log excerpts are included), then times
render_run (reading, pandas preparation, HTML: wall time, and the CPU time of this process, which a busy machine
does not inflate) and prints the report's size; plotly.js is shipped once in the store and not counted. Then,
when chromium is installed, the time until the page is drawn (headless, software rendering: a browser with a GPU
is faster) with the page's own timings per part. Targets at 100,000 operations: under 10 s and under 20 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reports.browser import find_chromium, launch  # noqa: E402
from reports.render import render_run  # noqa: E402
from reports.synthetic import make_run  # noqa: E402


async def _open_in_chromium(report: Path) -> tuple[float, str]:
    """Seconds from navigation to the page's ready flag in headless Chromium (software rendering), and the
    page's own per-part timings."""
    async with launch() as browser:
        page = await browser.page()
        start = time.perf_counter()
        await page.goto(report.resolve().as_uri(), width=1400, height=1000, timeout=180)
        await page.wait_for("document.body.dataset.ready === '1'", timeout=180)
        elapsed = time.perf_counter() - start
        timings = await page.evaluate("JSON.stringify(window.reportTimings)")
        errors = page.errors()
        return elapsed, timings + (f" ERRORS: {errors}" if errors else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", default="1000,10000,100000")
    parser.add_argument("--keep", type=Path, help="build the store here and keep it (default: a temporary dir)")
    parser.add_argument("--no-browser", action="store_true", help="do not time opening the reports in chromium")
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
            if not args.no_browser and find_chromium():
                seconds, timings = asyncio.run(_open_in_chromium(report))
                print(f"{'':>8} opened in headless chromium in {seconds:.2f} s; page parts (ms): {timings}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
