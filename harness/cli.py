"""`harness`: the lab's command line. Subcommands are added by their issues; `check` works on its own."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "check":
        from checker.cli import main as check_main

        return check_main(args[1:])
    print("usage: harness check HISTORY --model MODEL [--timeout S] [--json]", file=sys.stderr)
    return 254


if __name__ == "__main__":
    sys.exit(main())
