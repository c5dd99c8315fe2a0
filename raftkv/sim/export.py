"""Write a simulated run's client operations as a history in the lab's format (docs/history.md).

So the lab's linearizability checker can judge simulator runs (from tests or by hand: the simulator itself never
imports the checker). Mapping of `OpRecord`s to events, model ``versioned-kv``:

- ``time``: virtual nanoseconds; events at the same virtual instant keep the order in which they happened.
- ``process``: ``client * 1000 + generation``: a client that got ``info`` continues under a new process id, as the
  format requires (a process with an indeterminate operation never issues another).
- get: invoke value null; ok value ``{"value": V, "version": N}`` (``null``/0 = no key); ``fail`` when every
  attempt was refused or timed out (a read has no effect).
- put: invoke value ``{"value": V, "version": E}``; ok value ``{"version": E+1}``; ``fail`` with error
  ``version-mismatch`` / ``no-key`` / ``unavailable``; ``info`` with error ``maybe`` / ``timeout``.
- delete: invoke value ``{"version": E}``; ok value ``{"version": 0}``; errors as for put.
- an operation still running when the run ended has its invoke and no completion (indeterminate).
- ``node``: the node its last attempt went to (``n3``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

from .client import OpRecord

__all__ = ["history_events", "write_history"]


def history_events(ops: Iterable[OpRecord]) -> list[dict[str, Any]]:
    """The history as a list of event dicts in time order, ``index`` 0, 1, 2, ..."""
    generation: dict[int, int] = {}
    staged: list[tuple[int, int, int, dict[str, Any]]] = []
    for op in sorted(ops, key=lambda o: (o.invoke, o.invoke_seq, o.client)):
        gen = generation.get(op.client, 0)
        process = op.client * 1000 + gen
        node = f"n{op.node}" if op.node else None
        invoke: dict[str, Any] = {"process": process, "type": "invoke", "f": op.f, "key": op.key,
                                  "value": _invoke_value(op),
                                  "time": op.invoke * 1000}
        staged.append((op.invoke, op.invoke_seq, 1, invoke))
        if op.type is None or op.complete is None:
            generation[op.client] = gen + 1  # never completed: indeterminate, the process is retired
            continue
        done: dict[str, Any] = {"process": process, "type": op.type, "f": op.f, "key": op.key,
                                "time": op.complete * 1000}
        if op.type == "ok":
            done["value"] = ({"value": op.result_value, "version": op.result_version} if op.f == "get"
                             else {"version": op.result_version})
        else:
            done["value"] = None
            done["error"] = op.error
        if node:
            done["node"] = node
        if op.type == "info":
            generation[op.client] = gen + 1
        staged.append((op.complete, op.complete_seq, 0, done))
    staged.sort(key=lambda item: (item[0], item[1], item[2]))
    events = []
    for index, (_, _, _, event) in enumerate(staged):
        events.append({"index": index, **event})
    return events


def _invoke_value(op: OpRecord) -> dict[str, Any] | None:
    if op.f == "put":
        return {"value": op.value, "version": op.expected}
    return {"version": op.expected} if op.f == "delete" else None


def write_history(ops: Iterable[OpRecord], out: TextIO) -> int:
    """Write the history as JSON lines to ``out``; returns the number of events."""
    events = history_events(ops)
    for event in events:
        out.write(json.dumps(event, sort_keys=True) + "\n")
    return len(events)
