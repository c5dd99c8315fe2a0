"""The linearizability checker: split a history into parts (P-compositionality), search each, explain a failure.

`check_linearizability(events, model, timeout=...)` returns the `linearizable` result of docs/history.md. Parts
are searched in key order in this process, or across worker processes (concurrent.futures) for large histories on
multi-core machines, where starting processes pays off. The first invalid part stops the others (they are listed
under `parts.skipped`). When the time budget runs out the verdict is `unknown`, naming the unchecked parts: a
timeout is never a pass.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from .history import HistoryError, Operation, pair, validate
from .models import UNKNOWN, Model, ModelError
from .search import PartOp, SearchResult, search

PARALLEL_MIN_OPS = 20_000  # below this, starting worker processes costs more than it saves
MAX_LISTED = 50  # unchecked parts named in the unknown reason


@dataclass(slots=True)
class Part:
    key: Hashable
    ops: list[PartOp]


def split(model: Model, operations: Sequence[Operation]) -> tuple[list[Part], dict[int, Operation]]:
    """Encode operations for the model and group them by part, in a deterministic (sorted) part order.

    Raises HistoryError naming the invoke's line when the model cannot read an operation.
    """
    groups: dict[Hashable, list[PartOp]] = {}
    by_id: dict[int, Operation] = {}
    encode = model.encode
    partition_key = model.partition_key
    for op in operations:
        try:
            key = partition_key(op)
            encoded = encode(op)
        except ModelError as exc:
            raise HistoryError(op.invoke_line, f"{model.name}: {exc}") from None
        if encoded is None:
            continue
        by_id[op.id] = op
        groups.setdefault(key, []).append(
            PartOp(op.id, encoded[0], encoded[1], op.call_time, op.return_time, op.id))
    keys = sorted(groups, key=lambda k: (k is not None, type(k).__name__, k if k is not None else 0))
    return [Part(k, groups[k]) for k in keys], by_id


_STOP: Any = None


def _init_worker(stop: Any) -> None:
    global _STOP
    _STOP = stop


def _check_batch(model: Model, batch: list[Part], deadline: float | None) -> list[tuple[Hashable, SearchResult]]:
    results = []
    for part in batch:
        if deadline is not None and time.monotonic() > deadline:
            results.append((part.key, SearchResult(None, reason="time budget ran out")))
            continue
        if _STOP is not None and _STOP.is_set():
            results.append((part.key, SearchResult(None, reason="stopped")))
            continue
        results.append((part.key, search(model, part.ops, deadline, _STOP)))
    return results


def _batches(parts: list[Part], count: int) -> list[list[Part]]:
    """Greedy balance by size, largest parts first, into at most `count` batches."""
    batches: list[list[Part]] = [[] for _ in range(count)]
    loads = [0] * count
    for part in sorted(parts, key=lambda p: -len(p.ops)):
        i = loads.index(min(loads))
        batches[i].append(part)
        loads[i] += len(part.ops)
    return [b for b in batches if b]


def _run_parallel(model: Model, parts: list[Part], deadline: float | None, workers: int,
                  stop_early: bool) -> dict[Hashable, SearchResult]:
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    results: dict[Hashable, SearchResult] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(stop,)) as pool:
        pending: set[Future[list[tuple[Hashable, SearchResult]]]] = {
            pool.submit(_check_batch, model, batch, deadline) for batch in _batches(parts, workers * 8)
        }
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                for key, result in future.result():
                    results[key] = result
                    if result.ok is False and stop_early:
                        stop.set()
    return results


def check_parts(model: Model, parts: list[Part], *, deadline: float | None = None, parallel: bool | None = None,
                stop_early: bool = True) -> dict[Hashable, SearchResult]:
    """Search every part; returns key -> result (ok None for parts stopped or out of time)."""
    total = sum(len(p.ops) for p in parts)
    workers = min(2, os.cpu_count() or 1)
    if parallel is None:
        parallel = total >= PARALLEL_MIN_OPS and len(parts) > 1 and workers > 1
    if parallel and len(parts) > 1:
        return _run_parallel(model, parts, deadline, max(workers, 2), stop_early)
    results: dict[Hashable, SearchResult] = {}
    failed = False
    for part in parts:
        if failed and stop_early:
            results[part.key] = SearchResult(None, reason="stopped")
        elif deadline is not None and time.monotonic() > deadline:
            results[part.key] = SearchResult(None, reason="time budget ran out")
        else:
            results[part.key] = result = search(model, part.ops, deadline)
            failed = failed or result.ok is False
    return results


def _json_key(key: Hashable) -> Any:
    return key if key is None or isinstance(key, str | int) else str(key)


def explain_failure(model: Model, part: Part, result: SearchResult, by_id: Mapping[int, Operation]) -> dict[str, Any]:
    """The evidence for an invalid part: longest prefixes, the ops stuck after the first one, their states."""
    ops_by_id = {op.id: op for op in part.ops}
    prefixes = result.longest or [[]]
    prefix_states: list[list[str]] = []
    final_states = []
    for prefix in prefixes:
        state = model.init()
        states = []
        for op_id in prefix:
            op = ops_by_id[op_id]
            _, state = model.step(state, op.input, op.output)
            states.append(model.describe_state(state))
        prefix_states.append(states)
        final_states.append(state)
    done = set(prefixes[0])
    state = final_states[0]
    waiting = [op for op in part.ops if op.ret is not None and op.id not in done]
    first_return = min(((op.ret, 1, op.seq) for op in waiting), default=None)
    window = [op for op in waiting if first_return is None or (op.call, 0, op.seq) < first_return]
    stuck_ops = [op for op in window if not model.step(state, op.input, op.output)[0]] or window
    before = model.describe_state(state)
    stuck: list[dict[str, Any]] = [{"op": op.id, "description": describe(model, op, by_id), "state_before": before}
                                   for op in stuck_ops]
    key_text = "" if part.key is None else f"key {part.key}: "
    names = "; ".join(f"{s['description']} (op {s['op']}, process {by_id[s['op']].process})"
                      for s in stuck[:4])
    more = f" and {len(stuck) - 4} more" if len(stuck) > 4 else ""
    explanation = (
        f"{key_text}no linearization of its {len(part.ops)} operations exists. The longest linearizable prefix has "
        f"{len(prefixes[0])} operations and ends in state {before}; from there {names}{more} cannot take effect."
    )
    ops_json = []
    for op in sorted(part.ops, key=lambda o: o.id):
        source = by_id[op.id]
        ops_json.append({
            "id": op.id, "process": source.process, "f": source.f, "call": op.call, "return": op.ret,
            "invoke_index": source.invoke_index, "complete_index": source.complete_index,
            "type": source.complete_type, "description": describe(model, op, by_id),
        })
    return {
        "part": _json_key(part.key),
        "explanation": explanation,
        "longest_prefixes": prefixes,
        "longest_prefix_states": prefix_states,
        "initial_state": model.describe_state(model.init()),
        "stuck": stuck,
        "ops": ops_json,
    }


def describe(model: Model, op: PartOp, by_id: Mapping[int, Operation]) -> str:
    text = model.describe_operation(op.input, op.output)
    key = by_id[op.id].key
    if key is None:
        return text
    first, _, rest = text.partition(" ")
    return f"{first} {key} {rest}".rstrip()


def check_linearizability(events: Sequence[Mapping[str, Any]], model: Model, *, timeout: float | None = None,
                          parallel: bool | None = None, stop_early: bool = True,
                          validated: bool = False) -> dict[str, Any]:
    """Check a history (event dicts) against `model`; the `linearizable` result of docs/history.md.

    Raises HistoryError for an invalid history (unless `validated`, then the caller vouches for it).
    """
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    if not validated:
        validate(events)
    operations = pair(events)
    parts, by_id = split(model, operations)
    results = check_parts(model, parts, deadline=deadline, parallel=parallel, stop_early=stop_early)
    invalid = [p for p in parts if results[p.key].ok is False]
    unknown = [p for p in parts if results[p.key].ok is None and results[p.key].reason != "stopped"]
    skipped = [p for p in parts if results[p.key].ok is None and results[p.key].reason == "stopped"]
    valid: bool | str = False if invalid else ("unknown" if unknown else True)
    out: dict[str, Any] = {
        "valid": valid,
        "model": model.name,
        "ops": sum(len(p.ops) for p in parts),
        "parts": {
            "total": len(parts),
            "valid": sum(1 for p in parts if results[p.key].ok is True),
            "invalid": [_json_key(p.key) for p in invalid],
            "unknown": [_json_key(p.key) for p in unknown],
            "skipped": [_json_key(p.key) for p in skipped],
        },
        "info_ops": sum(1 for p in parts for op in p.ops if op.output is UNKNOWN),
        "nodes": sum(r.nodes for r in results.values()),
    }
    if invalid:
        out["failure"] = failure = explain_failure(model, invalid[0], results[invalid[0].key], by_id)
        # When the reported anomaly became visible: the earliest completion (or, for an indeterminate op, call)
        # among the operations that cannot take effect. Campaigns measure "time to first anomaly" with it.
        stuck = {s["op"] for s in failure["stuck"]}
        out["anomaly_time"] = min(o["return"] if o["return"] is not None else o["call"]
                                  for o in failure["ops"] if o["id"] in stuck)
    if unknown:
        names = ", ".join(str(_json_key(p.key)) for p in unknown[:MAX_LISTED])
        more = f" and {len(unknown) - MAX_LISTED} more" if len(unknown) > MAX_LISTED else ""
        budget = f"time budget of {timeout:g} s ran out" if timeout is not None else "the search was stopped"
        out["unknown_reason"] = f"{budget}; unchecked parts: {names}{more}"
    out["elapsed_s"] = round(time.monotonic() - started, 4)
    return out


class LinearizabilityChecker:
    """The Checker protocol (harness.protocols.Checker) over check_linearizability."""

    def __init__(self, model: Model, *, timeout: float | None = None, parallel: bool | None = None) -> None:
        self.model = model
        self.timeout = timeout
        self.parallel = parallel

    def check(self, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
        return check_linearizability(history, self.model, timeout=self.timeout, parallel=self.parallel)
