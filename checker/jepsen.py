"""Jepsen EDN histories to and from our format (docs/history.md), so either side's tools can check the other's runs.

Import (`from_jepsen`, `read_edn_history`): a history is either one EDN vector/list of op maps (Knossos's files) or
one op map per line (Jepsen's history.edn). Keywords become strings (`:read` -> "read", `:nemesis` -> "nemesis"),
map keys too; `index` is renumbered 0, 1, 2, ... in history order. Jepsen's history order is its real-time order
(Knossos ignores `:time`), so `time` is taken from `:time` only when every op has an integer one and they never go
backwards; otherwise it is the op's position. Knossos convention, kept by the models' `jepsen` flag: a register read
of nil observes nothing.

Export (`to_jepsen`, `dumps_history`): our events as EDN maps with keyword `:type`, `:f`, `:error` and keyword map
keys, one op per line inside a vector.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from . import edn
from .history import HistoryError, validate


def _plain(value: Any) -> Any:
    """EDN data to JSON-like data: keywords and symbols to strings, tuples and sets to lists."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted((_plain(v) for v in value), key=repr)
    if isinstance(value, dict):
        return {(str.__str__(k) if isinstance(k, str) else edn.dumps(k)): _plain(v) for k, v in value.items()}
    return value


def from_jepsen(ops: Sequence[Any]) -> list[dict[str, Any]]:
    """Jepsen op maps to our events (validated). Raises HistoryError naming the op (1-based) when malformed."""
    events: list[dict[str, Any]] = []
    times: list[Any] = [op.get("time") if isinstance(op, dict) else None for op in ops]
    use_time = all(isinstance(t, int) and not isinstance(t, bool) for t in times) and all(
        a <= b for a, b in zip(times, times[1:], strict=False))
    for position, op in enumerate(ops):
        line = position + 1
        if not isinstance(op, dict):
            raise HistoryError(line, f"malformed op, expected an EDN map, got {edn.dumps(op)[:80]}")
        for name in ("process", "type", "f"):
            if name not in op:
                raise HistoryError(line, f"malformed op, missing :{name}")
        process = op["process"]
        if isinstance(process, str):
            process = str.__str__(process)
        event: dict[str, Any] = {
            "index": position,
            "process": process,
            "type": _plain(op["type"]),
            "f": _plain(op["f"]) if isinstance(op["f"], str) else edn.dumps(op["f"]),
        }
        if op.get("key") is not None:
            event["key"] = _plain(op["key"])
        event["value"] = _plain(op.get("value"))
        event["time"] = times[position] if use_time else position
        if op.get("node") is not None:
            event["node"] = _plain(op["node"]) if isinstance(op["node"], str) else edn.dumps(op["node"])
        if op.get("error") is not None:
            error = op["error"]
            event["error"] = str.__str__(error) if isinstance(error, str) else edn.dumps(error)
        events.append(event)
    validate(events)
    return events


def loads_history(text: str) -> list[dict[str, Any]]:
    """Parse EDN text (a vector of op maps, or op maps one after another) into validated events."""
    try:
        forms = edn.loads_all(text)
    except edn.EDNError as exc:
        raise HistoryError(None, f"malformed EDN: {exc}") from None
    except RecursionError:
        raise HistoryError(None, "malformed EDN: nested too deeply") from None
    if len(forms) == 1 and isinstance(forms[0], list):
        forms = forms[0]
    return from_jepsen(forms)


def read_edn_history(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return loads_history(handle.read())


def _edn_data(value: Any) -> Any:
    """JSON-like data to EDN data: object keys become keywords."""
    if isinstance(value, dict):
        return {_kw(k) if isinstance(k, str) else k: _edn_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_edn_data(v) for v in value]
    return value


_KEYWORD_SAFE = re.compile(r"[A-Za-z*+!_?<>=-][A-Za-z0-9*+!_?<>=./-]*$")


def _kw(text: str) -> Any:
    """A keyword when the text can be one, else the string itself (an error message with spaces stays a string)."""
    return edn.Keyword(text) if _KEYWORD_SAFE.match(text) else text


def to_jepsen(events: Sequence[Mapping[str, Any]]) -> list[dict[Any, Any]]:
    """Our events as Jepsen op maps (EDN data, keyword keys)."""
    out = []
    kw = _kw
    for event in events:
        process = event["process"]
        op: dict[Any, Any] = {
            kw("index"): event["index"],
            kw("process"): kw(process) if isinstance(process, str) else process,
            kw("type"): kw(event["type"]),
            kw("f"): kw(event["f"]),
        }
        if event.get("key") is not None:
            op[kw("key")] = event["key"]
        op[kw("value")] = _edn_data(event.get("value"))
        op[kw("time")] = event["time"]
        if event.get("node") is not None:
            op[kw("node")] = event["node"]
        if event.get("error") is not None:
            op[kw("error")] = kw(event["error"])
        out.append(op)
    return out


def dumps_history(events: Sequence[Mapping[str, Any]]) -> str:
    """EDN text of a history: a vector, one op map per line."""
    ops = to_jepsen(events)
    return "[" + "\n ".join(edn.dumps(op) for op in ops) + "]\n"
