"""`harness check HISTORY --model MODEL [--timeout S] [--json] [--initial V]`: check a history file on its own.

`--to-edn` prints the history as Jepsen EDN instead of checking it (exit 0, or 254 for a bad history).

HISTORY is our JSON lines (docs/history.md) or a Jepsen EDN history (by the `.edn` suffix; Knossos conventions).
Prints the verdict and a short explanation (or, with --json, the result object of docs/history.md).
Exit codes: 0 valid, 1 invalid, 2 unknown, 254 bad input or bad arguments (with the error on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, NoReturn

from . import edn
from .checkers import SetChecker, Stats, merge_valid
from .history import LAB_PROCESSES, HistoryError, read_history
from .linearizability import check_linearizability
from .models import MODELS, ModelError, make_model

EXIT = {True: 0, False: 1, "unknown": 2}
BAD_INPUT = 254


class UsageError(Exception):
    """Bad command-line arguments."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would exit 2, which means "unknown" here
        raise UsageError(message)


def _parser() -> _Parser:
    parser = _Parser(prog="harness check", description="Check a history for linearizability (and stats).")
    parser.add_argument("history", help="history.jsonl (docs/history.md) or a Jepsen .edn history")
    parser.add_argument("--model", default="versioned-kv", choices=sorted(MODELS),
                        help="the model to check against (default versioned-kv)")
    parser.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="time budget in seconds; when it runs out the verdict is unknown")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--initial", default=None, metavar="VALUE",
                        help="initial value of register models (JSON, else EDN, else the text itself)")
    parser.add_argument("--sequential", action="store_true", help="never use worker processes")
    parser.add_argument("--to-edn", action="store_true",
                        help="do not check: print the (validated) history as Jepsen EDN, for Jepsen's tools")
    return parser


def parse_initial(text: str | None) -> Any:
    """`--initial` as JSON (0, "a", null, {"x": 0}), else EDN ({x 0 y 0}, nil), else the text as a string."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        value = edn.loads(text)
    except (edn.EDNError, ValueError):
        return text
    from .jepsen import _plain

    return _plain(value)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Read, check, compose. Raises HistoryError / ModelError / OSError for bad input, and HistoryError for a
    history without a single client operation (there is nothing to judge: neither valid nor invalid)."""
    torn: list[int] = []
    events = read_history(args.history, torn=torn)
    if torn:
        print(f"harness check: {args.history}: dropped the torn last line {torn[0]} (the writer died mid-write)",
              file=sys.stderr)
    if not any(e["process"] not in LAB_PROCESSES for e in events):
        raise HistoryError(None, "the history holds no client operations: nothing to check")
    model = make_model(args.model, parse_initial(args.initial), jepsen=str(args.history).endswith(".edn"))
    checkers: dict[str, Any] = {}
    try:
        checkers["linearizable"] = check_linearizability(
            events, model, timeout=args.timeout, parallel=False if args.sequential else None, validated=True)
    except (HistoryError, ModelError):
        raise  # bad input: exit 254
    except Exception as exc:  # noqa: BLE001 - a crashing checker yields unknown with its error
        checkers["linearizable"] = {"valid": "unknown", "model": model.name,
                                    "error": f"{type(exc).__name__}: {exc}"}
    others: dict[str, Any] = {"stats": Stats()}
    if args.model == "set":
        others["set"] = SetChecker()
    for name, checker in others.items():
        try:
            checkers[name] = checker.check({}, events)
        except Exception as exc:  # noqa: BLE001 - a crashing checker yields unknown, not a crash
            checkers[name] = {"valid": "unknown", "error": f"{type(exc).__name__}: {exc}"}
    return {"valid": merge_valid([c["valid"] for c in checkers.values()]), "checkers": checkers}


def _word(valid: Any) -> str:
    return {True: "VALID", False: "INVALID"}.get(valid, "UNKNOWN")


def render(result: dict[str, Any], path: str) -> str:
    """A short human explanation of a result."""
    lin = result["checkers"]["linearizable"]
    if "error" in lin:
        return f"{_word(result['valid'])}: {path}\nlinearizable ({lin['model']}): the checker failed: {lin['error']}"
    parts = lin["parts"]
    lines = [f"{_word(result['valid'])}: {path}",
             f"linearizable ({lin['model']}): {_word(lin['valid']).lower()}; {lin['ops']} ops in "
             f"{parts['total']} part(s), {lin['info_ops']} with unknown outcome; {lin['elapsed_s']:.3f} s"]
    if "failure" in lin:
        failure = lin["failure"]
        lines.append(f"  {failure['explanation']}")
        prefix = failure["longest_prefixes"][0]
        if prefix:
            tail = ", ".join(str(i) for i in prefix[-8:])
            lines.append(f"  longest linearizable prefix ({len(prefix)} ops) ends with ops {tail}")
        for stuck in failure["stuck"][:6]:
            lines.append(f"  stuck: op {stuck['op']} {stuck['description']} (state before: {stuck['state_before']})")
    if "unknown_reason" in lin:
        lines.append(f"  {lin['unknown_reason']}")
    for name, checker in result["checkers"].items():
        if name == "linearizable":
            continue
        if "error" in checker:
            lines.append(f"{name}: {_word(checker['valid']).lower()}: {checker['error']}")
        elif name == "stats":
            counts = "; ".join(f"{f} ok {c['ok']} fail {c['fail']} info {c['info']}" for f, c in checker["by_f"].items())
            lines.append(f"stats: {_word(checker['valid']).lower()}: {counts or 'no operations'}")
        elif name == "set":
            lines.append(f"set: {_word(checker['valid']).lower()}: lost {len(checker['lost'])}, unexpected "
                         f"{len(checker['unexpected'])}, duplicated {len(checker['duplicated'])}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Run `harness check`; returns the exit code (never raises for bad input)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(parser.format_usage().rstrip(), file=sys.stderr)
        print(f"harness check: error: {exc}", file=sys.stderr)
        return BAD_INPUT
    except SystemExit as exc:  # --help
        return 0 if exc.code in (0, None) else BAD_INPUT
    if args.timeout is not None and args.timeout <= 0:
        print(f"harness check: error: --timeout must be positive, got {args.timeout:g}", file=sys.stderr)
        return BAD_INPUT
    try:
        if args.to_edn:
            from .jepsen import dumps_history

            print(dumps_history(read_history(args.history)), end="")
            return 0
        result = run(args)
    except HistoryError as exc:
        print(f"harness check: bad input: {args.history}: {exc}", file=sys.stderr)
        return BAD_INPUT
    except (OSError, UnicodeDecodeError) as exc:
        print(f"harness check: cannot read {args.history}: {exc}", file=sys.stderr)
        return BAD_INPUT
    except ModelError as exc:
        print(f"harness check: bad input: {exc}", file=sys.stderr)
        return BAD_INPUT
    text = json.dumps(result, indent=1, default=str) if args.json else render(result, args.history)
    try:
        print(text, flush=True)
    except BrokenPipeError:  # e.g. piped into head: the verdict is still the exit code
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
    return EXIT[result["valid"]]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
