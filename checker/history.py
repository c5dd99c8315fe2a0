"""Reading, validating and pairing histories (the format of docs/history.md).

A history is a list of events (dicts), one per line of `history.jsonl`. `parse_jsonl` turns text into events and
`validate` checks the rules of the format; both raise `HistoryError` naming the line (1-based, as an editor shows
it) and what is wrong. `pair` turns a valid history into `Operation`s: one per client invoke, with its completion.

Semantics (the contract the search relies on):
- an invoke and its completion (the next event of the same process) form a closed interval;
- `ok`: took effect with the completion's value as result; `fail`: certainly did not take effect;
- `info`, or an invoke with no completion: indeterminate, it may take effect once at any instant after its invoke,
  or never. Such an operation has `complete_type` "info" and `return_time` None.
Nemesis events (process "nemesis") and the lab's own observations (process "harness") are checked for their fields
only (Jepsen writes nemesis events as two :info events) and never paired.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import orjson

NEMESIS = "nemesis"
HARNESS = "harness"
# Processes that are not clients: the nemesis's fault events and the lab's own observations (the quiesce outcome,
# the convergence oracle's digests, a stuck-cluster anomaly). Checked for their fields only, never paired.
LAB_PROCESSES = frozenset({NEMESIS, HARNESS})
TYPES = frozenset({"invoke", "ok", "fail", "info"})
REQUIRED = ("index", "process", "type", "f", "time")


class HistoryError(ValueError):
    """The history breaks the format. `line` is 1-based (None when not about one line)."""

    def __init__(self, line: int | None, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}" if line is not None else message)


class Operation(NamedTuple):
    """One client operation: an invoke and its completion (if any).

    `id` is the `index` of the invoke event (what results and reports use to name the operation). `complete_type`
    is "ok", "fail" or "info"; an invoke without completion counts as "info" with `complete_index` None. For info
    operations `output` is None and `return_time` is None (the operation may take effect at any later instant).
    """

    id: int
    process: int | str
    f: str
    key: Any
    input: Any
    complete_type: str
    output: Any
    error: str | None
    call_time: int
    return_time: int | None
    invoke_index: int
    complete_index: int | None
    invoke_line: int

    @property
    def is_info(self) -> bool:
        return self.complete_type == "info"


def parse_jsonl(text: str | Iterable[str]) -> list[dict[str, Any]]:
    """Parse JSON lines into event dicts and validate them (see `validate`). Blank lines are ignored but counted."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    numbered = [(number, raw) for number, raw in enumerate(lines, start=1) if raw.strip()]
    try:  # one call of orjson for the whole file; on any error, go line by line to name the line
        events = orjson.loads("[" + ",".join(raw for _, raw in numbered) + "]")
        if len(events) != len(numbered):
            raise ValueError("a line holds more than one value")
    except (ValueError, RecursionError):  # orjson.JSONDecodeError is a ValueError
        events = []
        for number, raw in numbered:
            try:
                events.append(json.loads(raw))
            except (ValueError, RecursionError) as exc:
                raise HistoryError(number, f"malformed line, not JSON: {exc}") from None
            if not isinstance(events[-1], dict):
                raise HistoryError(number, "malformed line, expected a JSON object, got "
                                           f"{type(events[-1]).__name__}") from None
    validate(events, [number for number, _ in numbered])
    return events


def read_history(path: str, *, torn: list[int] | None = None) -> list[dict[str, Any]]:
    """Read and validate a `history.jsonl` file (or an EDN file, by its `.edn` suffix; see checker.edn).

    As docs/history.md says readers do, a torn last line (the file does not end in a newline and its last line is
    not JSON: the writer died mid-write) is dropped; its line number is appended to `torn` when given. A line that
    is not UTF-8 is a HistoryError naming it."""
    if str(path).endswith(".edn"):
        from .jepsen import read_edn_history

        return read_edn_history(path)
    with open(path, "rb") as handle:
        raw = handle.read().split(b"\n")
    lines = []
    for number, data in enumerate(raw, start=1):
        try:
            lines.append(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise HistoryError(number, f"malformed line, not UTF-8 (byte {exc.start + 1} of the line)") from None
    if lines and not lines[-1]:
        lines.pop()  # the file ends in a newline: no torn line
    elif lines and not _is_json(lines[-1]):
        if torn is not None:
            torn.append(len(lines))
        lines[-1] = ""
    return parse_jsonl(lines)


def _is_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except ValueError:
        return False
    return True


def _check_fields(event: Any, line: int) -> None:
    if not isinstance(event, dict):
        raise HistoryError(line, f"malformed line, expected a JSON object, got {type(event).__name__}")
    missing = [name for name in REQUIRED if name not in event]
    if missing:
        raise HistoryError(line, f"malformed line, missing field(s) {', '.join(missing)}")
    kind = event["type"]
    if kind not in TYPES:
        raise HistoryError(line, f"unknown type {kind!r} (expected invoke, ok, fail or info)")
    index = event["index"]
    if not isinstance(index, int) or isinstance(index, bool):
        raise HistoryError(line, f"malformed line, index must be an integer, got {index!r}")
    process = event["process"]
    if not ((isinstance(process, int) and not isinstance(process, bool)) or process in LAB_PROCESSES):
        raise HistoryError(line, f"malformed line, process must be an integer, \"nemesis\" or \"harness\", "
                                 f"got {process!r}")
    if not isinstance(event["f"], str):
        raise HistoryError(line, f"malformed line, f must be a string, got {event['f']!r}")
    time = event["time"]
    if not isinstance(time, int) or isinstance(time, bool):
        raise HistoryError(line, f"malformed line, time must be an integer (ns), got {time!r}")
    key = event.get("key")
    if key is not None and (not isinstance(key, (str, int)) or isinstance(key, bool)):
        raise HistoryError(line, f"malformed line, key must be a string or an integer, got {key!r}")
    error = event.get("error")
    if error is not None and not isinstance(error, str):
        raise HistoryError(line, f"malformed line, error must be a string, got {error!r}")


def validate(events: Sequence[Mapping[str, Any]], line_numbers: Sequence[int] | None = None) -> None:
    """Check every rule of docs/history.md; raise HistoryError naming the first offending line.

    Rules: every event is an object with the required fields of the right types; `index` counts 0, 1, 2, ... in
    order; `type` is known; a completion matches a pending invoke of its process with the same `f` and is not
    earlier than it; a process does not invoke while busy; a process that got `info` never invokes again.
    Nemesis events are checked for their fields only.
    """
    pending: dict[Any, tuple[int, Mapping[str, Any]]] = {}
    retired: dict[Any, int] = {}
    for position, event in enumerate(events):
        line = line_numbers[position] if line_numbers is not None else position + 1
        if not (event.__class__ is dict and event.get("type") in TYPES and event.get("index").__class__ is int
                and event.get("time").__class__ is int and event.get("f").__class__ is str
                and (event.get("process").__class__ is int or event.get("process") in LAB_PROCESSES)
                and (event.get("key") is None or event["key"].__class__ in (str, int))
                and (event.get("error") is None or event["error"].__class__ is str)):
            _check_fields(event, line)  # the slow path says what is wrong (or accepts e.g. a str subclass)
        if event["index"] != position:
            raise HistoryError(line, f"index {event['index']} out of order, expected {position}")
        process = event["process"]
        if process in LAB_PROCESSES:
            continue  # checkers ignore nemesis and harness events; Jepsen writes them as bare :info pairs
        kind = event["type"]
        if kind == "invoke":
            if process in pending:
                other = pending[process][0]
                raise HistoryError(line, f"second invoke on busy process {process!r} (its invoke on line "
                                         f"{other} has no completion yet)")
            if process in retired:
                raise HistoryError(line, f"process {process!r} reused after its info completion on line "
                                         f"{retired[process]}")
            pending[process] = (line, event)
            continue
        if process not in pending:
            raise HistoryError(line, f"unmatched completion ({kind} {event['f']}): process {process!r} has no "
                                     f"pending invoke")
        invoke_line, invoke = pending.pop(process)
        if invoke["f"] != event["f"]:
            raise HistoryError(line, f"completion f {event['f']!r} does not match its invoke's f "
                                     f"{invoke['f']!r} (line {invoke_line})")
        if event["time"] < invoke["time"]:
            raise HistoryError(line, f"completion time {event['time']} is before its invoke's time "
                                     f"{invoke['time']} (line {invoke_line})")
        ckey = event.get("key")
        if ckey is not None and ckey != invoke.get("key"):
            raise HistoryError(line, f"completion key {ckey!r} differs from its invoke's key "
                                     f"{invoke.get('key')!r} (line {invoke_line})")
        if kind == "info":
            retired[process] = line


def pair(events: Sequence[Mapping[str, Any]]) -> list[Operation]:
    """The client operations of a valid history, in invoke order. Nemesis events are skipped.

    The history must have passed `validate` (pairing trusts it).
    """
    open_ops: dict[Any, tuple[int, Mapping[str, Any]]] = {}
    done: dict[int, Operation] = {}
    order: list[int] = []
    for position, event in enumerate(events):
        process = event["process"]
        if process in LAB_PROCESSES:
            continue
        if event["type"] == "invoke":
            open_ops[process] = (position, event)
            order.append(position)
            continue
        start, invoke = open_ops.pop(process)
        kind = event["type"]
        done[start] = Operation(
            id=invoke["index"], process=process, f=invoke["f"], key=invoke.get("key"),
            input=invoke.get("value"), complete_type=kind,
            output=None if kind == "info" else event.get("value"), error=event.get("error"),
            call_time=invoke["time"], return_time=None if kind == "info" else event["time"],
            invoke_index=invoke["index"], complete_index=event["index"], invoke_line=start + 1,
        )
    for start, invoke in open_ops.values():
        done[start] = Operation(
            id=invoke["index"], process=invoke["process"], f=invoke["f"], key=invoke.get("key"),
            input=invoke.get("value"), complete_type="info", output=None, error=None,
            call_time=invoke["time"], return_time=None, invoke_index=invoke["index"], complete_index=None,
            invoke_line=start + 1,
        )
    return [done[start] for start in order]
