"""`python -m reports`: render a run, the index, or serve the store without the harness CLI.

    python -m reports render RUN_DIR [--inline-plotly]
    python -m reports index STORE
    python -m reports serve STORE [--port 8080] [--host 127.0.0.1]

Exit codes: 0 done, 254 bad arguments (the lab's convention).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports", description="HTML reports of the raftkv lab")
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="write RUN_DIR/report.html")
    r.add_argument("run_dir", type=Path)
    r.add_argument("--inline-plotly", action="store_true", help="inline plotly.js (a report that travels alone)")
    i = sub.add_parser("index", help="write STORE/index.html")
    i.add_argument("store", type=Path)
    s = sub.add_parser("serve", help="serve STORE on localhost")
    s.add_argument("store", type=Path)
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--host", default="127.0.0.1")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 254
    if args.cmd == "render":
        from reports.render import render_run
        from reports.rundir import RunDirError

        try:
            print(render_run(args.run_dir, inline_plotly=args.inline_plotly))
        except RunDirError as e:
            print(f"python -m reports render: {e}", file=sys.stderr)
            return 254
    elif args.cmd == "index":
        from reports.index import render_index

        print(render_index(args.store))
    else:
        from reports.serve import serve

        serve(args.store, port=args.port, host=args.host)
    return 0


if __name__ == "__main__":
    sys.exit(main())
