"""The relaxed search: a sound refutation for parts with many operations of unknown outcome.

Relaxation: an info op may take effect any number of times (still only after its call). Every linearization of
the real history is one of the relaxed history, so "no relaxed linearization" proves "not linearizable". Because
info ops are reusable, a node is just (regular ops linearized, state), and the info ops a node may apply depend
only on its state and on the window end (the first pending return). So instead of one search node per info op,
the states reachable from a state by info ops alone (its closure) are computed once per (state, window end) and a
step of the search is a macro step: reach a state of the closure, then linearize one regular op there.
`regular_guard(input, output)` (optional, model) narrows the closure states a regular op is tried in.

A relaxed linearization found is real when distinct info ops can be assigned to its info uses (search._assign).
Read-only ops applicable in the node's own state are taken first without siblings, as in the exact search.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from typing import Any

from .models import UNKNOWN
from .search import (
    CHECK_EVERY,
    CLOSURE,
    REUSED,
    PartOp,
    SearchResult,
    _assign,
    _keep_deepest,
    _layout,
    _no_guard,
    _prefixes,
    _relink,
    _unlink,
)

CLOSURE_LIMIT = 10_000


class _Unbounded(Exception):
    """The info-only closure of a state is too large for the relaxation to pay."""


def relaxed_search(model: Any, regular: list[PartOp], infos: list[PartOp], state: Any, deadline: float | None,
                   stop: Any, track: bool = True) -> SearchResult:
    """`regular` and `infos` are prepared ops (see Model.prepare); `state` the initial state.

    Gives up (ok None, reason CLOSURE) when a closure grows past CLOSURE_LIMIT states: with reusable info ops a
    model with an unbounded state (a counter) could climb forever; the caller falls back to the exact search."""
    try:
        return _relaxed(model, regular, infos, state, deadline, stop, track)
    except _Unbounded:
        return SearchResult(None, [], 0, CLOSURE)


def _relaxed(model: Any, regular: list[PartOp], infos: list[PartOp], state: Any, deadline: float | None,
             stop: Any, track: bool) -> SearchResult:
    step = model.step
    n = len(regular)
    info_pos, is_call, e_op, ret_pos, nxt, prv, head = _layout(regular, infos)
    inp = [op.input for op in regular]
    out = [op.output for op in regular]
    read_only = getattr(model, "read_only", None)  # the hints are optional (checker.models)
    state_guard = getattr(model, "state_guard", None)
    info_guard = getattr(model, "info_guard", None) if state_guard else None  # guards only make sense in pairs
    regular_guard = getattr(model, "regular_guard", None) if state_guard else None
    state_guard = state_guard or _no_guard
    ro = [bool(read_only(op.input, op.output)) if read_only else False for op in regular]
    guard_of = [regular_guard(op.input, op.output) if regular_guard else None for op in regular]
    bit = [1 << j for j in range(n)]
    by_input: dict[Any, int] = {}  # one representative (the earliest called) per distinct info input
    for k in sorted(range(len(infos)), key=info_pos.__getitem__):
        by_input.setdefault(infos[k].input, k)
    buckets: dict[Any, list[int]] = {}
    wild: list[int] = []
    for k in sorted(by_input.values(), key=info_pos.__getitem__):
        guard = info_guard(infos[k].input) if info_guard else None
        (wild if guard is None else buckets.setdefault(guard, [])).append(k)

    rep_positions = sorted(info_pos[k] for k in by_input.values())
    closures: dict[tuple[Any, int], tuple[dict[Any, tuple[Any, int] | None], dict[Any, list[Any]]]] = {}

    def closure(start: Any, end: int) -> tuple[dict[Any, tuple[Any, int] | None], dict[Any, list[Any]]]:
        """States reachable from `start` by info ops called before position `end`: (parent links, by guard)."""
        key = (start, bisect_right(rep_positions, end))  # what matters is which info ops are available
        found = closures.get(key)
        if found is not None:
            return found
        parents: dict[Any, tuple[Any, int] | None] = {start: None}
        frontier = [start]
        while frontier:
            x = frontier.pop()
            for bucket in (buckets.get(state_guard(x)), wild):
                if not bucket:
                    continue
                for k in bucket:
                    if info_pos[k] > end:
                        break
                    ok, y = step(x, infos[k].input, UNKNOWN)
                    if ok and y not in parents:
                        parents[y] = (x, k)
                        frontier.append(y)
                        if len(parents) > CLOSURE_LIMIT:  # reusable info ops may reach without end (a counter)
                            raise _Unbounded
        grouped: dict[Any, list[Any]] = {}
        for y in parents:
            grouped.setdefault(state_guard(y), []).append(y)
        closures[key] = found = (parents, grouped)
        return found

    def chain(parents: dict[Any, tuple[Any, int] | None], target: Any, end: int) -> list[Any]:
        items: list[Any] = []
        link = parents[target]
        while link is not None:
            x, k = link
            items.append((k, end))
            link = parents[x]
        items.reverse()
        return items

    lin = 0
    remaining = n
    seen: set[tuple[int, Any]] = set()
    stack: list[tuple[list[tuple[int, Any, Any, Any]], int, Any, int]] = []  # (children, next, state, pushed)
    path: list[Any] = []
    best_depth = -1
    best: list[list[Any]] = []
    nodes = 0
    monotonic = time.monotonic
    next_check = CHECK_EVERY
    children: list[tuple[int, Any, Any, Any]] | None = None
    index = 0
    while True:
        nodes += 1
        if nodes >= next_check:
            next_check = nodes + CHECK_EVERY
            if (stop is not None and stop.is_set()) or (deadline is not None and monotonic() > deadline):
                why = "stopped" if stop is not None and stop.is_set() else "time budget ran out"
                return SearchResult(None, _prefixes(best, infos, info_pos, regular), nodes, why)
        if children is None:  # a fresh node: list its children
            if remaining == 0:
                ids, complete = _assign(path, infos, info_pos, regular)
                return SearchResult(True if complete else None, [ids], nodes, "" if complete else REUSED)
            children = []
            e = nxt[head]
            forced = False
            while is_call[e]:
                j = e_op[e]
                if ro[j]:
                    ok, _ = step(state, inp[j], out[j])
                    if ok:
                        children = [(e, j, state, state)]
                        forced = True
                        break
                e = nxt[e]
            if not forced:
                while is_call[e]:
                    e = nxt[e]
                window_end = e
                parents, grouped = closure(state, window_end)
                e = nxt[head]
                while is_call[e]:
                    j = e_op[e]
                    guard = guard_of[j]
                    if guard is None:
                        candidates: Any = parents
                    else:
                        candidates = grouped.get(guard, ())
                    x_in, x_out = inp[j], out[j]
                    for via in candidates:
                        ok, new_state = step(via, x_in, x_out)
                        if ok:
                            children.append((e, j, via, new_state))
                    e = nxt[e]
            index = 0
        # try the next child
        pushed = False
        while index < len(children):
            e, j, via, new_state = children[index]
            index += 1
            key = (lin | bit[j], new_state)
            if key in seen:
                continue
            seen.add(key)
            if via is state:
                items: list[Any] = []
            else:
                end = _window_end(nxt, is_call, head)
                items = chain(closure(state, end)[0], via, end)
            stack.append((children, index, state, len(items) + 1))
            path.extend(items)
            path.append(j)
            state = new_state
            lin |= bit[j]
            _unlink(nxt, prv, e, ret_pos[j])
            remaining -= 1
            children = None
            pushed = True
            break
        if pushed:
            continue
        # exhausted: remember the deepest, backtrack
        if track:
            best_depth = _keep_deepest(best, best_depth, path, n - remaining)
        if not stack:
            return SearchResult(False, _prefixes(best, infos, info_pos, regular), nodes)
        children, index, state, count = stack.pop()
        del path[len(path) - count:]
        e, j = children[index - 1][0], children[index - 1][1]
        lin ^= bit[j]
        _relink(nxt, prv, e, ret_pos[j])
        remaining += 1


def _window_end(nxt: list[int], is_call: list[bool], head: int) -> int:
    e = nxt[head]
    while is_call[e]:
        e = nxt[e]
    return e
