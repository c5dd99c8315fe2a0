"""The linearizability search for one part of a history (Wing & Gong / Lowe, as Porcupine does it).

Entries (calls and returns) sit in a doubly linked list sorted by time, calls before returns at equal times (the
intervals are closed, so ops whose call and return share an instant overlap). A depth-first search walks the list:
an op whose call comes before the first remaining return may be linearized next; linearizing it lifts its call and
return out of the list; reaching a return entry means the node is exhausted and the search backtracks. A cache of
(linearized set as a bitset, model state) prunes nodes already explored. The search is iterative (no recursion
limit) and keeps its stack as tuples.

Operations with unknown outcome (info) are first-class rather than "returns at infinity":
- they are not in the list, so they never have to be linearized and never slow down the scan of the window; an
  info op is available once its call precedes the first remaining return;
- one is tried only when the regular ops of a node are exhausted, only when the model says it can change the state
  there (`info_guard` = `state_guard`), only if it does change the state (an info op that would leave the state as
  it is can always be dropped from a linearization), and only the earliest unused one of identical inputs (they are
  interchangeable);
- the cache keeps, per (regular bitset, state), the sets of info ops used; a node is pruned when an explored node
  with the same regular ops and state used a subset of its info ops (it had every option this one has).
A further reduction: a read-only op (the model's `read_only`) that can be linearized now is linearized without
trying siblings first, since any linearization can be reordered to start with it.
The models' `prepare` renames written values no op observes to one placeholder first (see checker.models).

Parts with info ops go through up to three passes (see `search`): a bounded exact dive, the relaxed search of
checker.relaxed (a sound refutation where info ops may be reused), and the exact search without bound.
The differential test (tests/checker) holds all of this against a brute-force search over all admissible orders,
with every pass forced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .models import UNKNOWN


class PartOp(NamedTuple):
    """An operation as the search sees it. `ret` is None for info ops (then `output` is UNKNOWN)."""

    id: int  # the index of the invoke event
    input: Any
    output: Any
    call: int
    ret: int | None
    seq: int  # tie-break among equal times (the invoke index)


@dataclass(slots=True)
class SearchResult:
    """`ok` True (linearizable), False (not), None (unknown: budget ran out or stopped)."""

    ok: bool | None
    longest: list[list[int]] = field(default_factory=list)  # op ids of the longest linearizable prefixes
    nodes: int = 0
    reason: str = ""


CHECK_EVERY = 4096
BUDGET = "node budget of the first pass spent"
REUSED = "relaxed linearization reuses an info op"
CLOSURE = "info-only closure too large for the relaxed search"


def search(model: Any, ops: list[PartOp], deadline: float | None = None, stop: Any = None,
           track: bool = True, first_budget: int | None = None) -> SearchResult:
    """Decide whether `ops` (one part) is linearizable from `model.init()`.

    `deadline` is a time.monotonic() instant; `stop` an object with is_set() (checked every few thousand nodes).
    With `track`, the longest linearizable prefixes are kept for the failure report (up to 3 of maximal length).

    A part without info ops is one exact search. With info ops, up to three passes: (1) the exact search with a
    node budget (`first_budget`, default 30 per op): a valid history usually finishes within it, and on an invalid
    one its dive finds the longest prefixes the report shows; (2) the relaxed search (checker.relaxed), where an
    info op may take effect more than once: if even that finds no linearization, none exists; if it finds one in
    which distinct info ops can be assigned to the uses (`_assign`), that is a real linearization; (3) otherwise
    (or when the relaxation does not pay, see relaxed.CLOSURE_LIMIT) the exact search without node budget.
    The time budget (`deadline`) covers all passes.
    """
    if not any(op.ret is None for op in ops):
        return _search(model, ops, deadline, stop, track)
    budget = 30 * len(ops) + 10_000 if first_budget is None else first_budget
    first = _search(model, ops, deadline, stop, track, max_nodes=budget)
    if first.reason != BUDGET:
        return first
    from .relaxed import relaxed_search  # (late: relaxed builds on this module's helpers)

    prepare = getattr(model, "prepare", None)
    prepared, init = prepare(list(ops), model.init()) if prepare is not None else (ops, model.init())
    relaxed = relaxed_search(model, [op for op in prepared if op.ret is not None],
                             [op for op in prepared if op.ret is None], init, deadline, stop, track)
    nodes = first.nodes + relaxed.nodes
    if relaxed.ok is False:
        # the exact search's dive usually got further than the relaxed prefixes (cut at a reused info op)
        longest = max(first.longest[:1] + relaxed.longest[:1], key=len, default=[])
        others = [p for p in first.longest + relaxed.longest if len(p) == len(longest) and p != longest]
        return SearchResult(False, [longest] + others[:2], nodes)
    if relaxed.ok is True or relaxed.reason not in (REUSED, CLOSURE):
        relaxed.nodes = nodes
        return relaxed
    last = _search(model, ops, deadline, stop, track)
    last.nodes += nodes
    return last


def _search(model: Any, ops: list[PartOp], deadline: float | None, stop: Any, track: bool,
            max_nodes: int | None = None) -> SearchResult:
    step = model.step
    prepare = getattr(model, "prepare", None)
    if prepare is not None:
        ops, state = prepare(list(ops), model.init())
    else:
        state = model.init()
    regular = [op for op in ops if op.ret is not None]
    infos = [op for op in ops if op.ret is None]
    n = len(regular)
    info_pos, is_call, e_op, ret_pos, nxt, prv, head = _layout(regular, infos)

    inp = [op.input for op in regular]
    out = [op.output for op in regular]
    read_only = getattr(model, "read_only", None)  # the hints are optional (checker.models)
    state_guard = getattr(model, "state_guard", None)
    info_guard = getattr(model, "info_guard", None) if state_guard else None  # guards only make sense in pairs
    state_guard = state_guard or _no_guard
    ro = [bool(read_only(op.input, op.output)) if read_only else False for op in regular]
    bit = [1 << j for j in range(n)]
    i_inp = [op.input for op in infos]
    i_bit = [1 << k for k in range(len(infos))]
    buckets: dict[Any, list[int]] = {}
    wild: list[int] = []
    for k in sorted(range(len(infos)), key=info_pos.__getitem__):
        guard = info_guard(i_inp[k]) if info_guard else None
        if guard is None:
            wild.append(k)
        else:
            buckets.setdefault(guard, []).append(k)
    has_info = bool(infos)

    lin = 0
    ibits = 0
    remaining = n
    stack: list[tuple[int, int, Any, Any, int]] = []
    path: list[Any] = []  # along the stack: regular index j, or (info index k, window end) for the prefixes
    seen_plain: set[tuple[int, Any]] = set()
    seen_info: dict[tuple[int, Any], list[int]] = {}
    best_depth = -1
    best: list[list[int]] = []
    nodes = 0
    e = head
    cands: list[tuple[int, Any]] = []
    ci = 0
    mode = 0  # 0 fresh node, 1 scan the window, 2 info candidates, 3 next info candidate, 4 backtrack
    monotonic = time.monotonic
    next_check = CHECK_EVERY if max_nodes is None else min(CHECK_EVERY, max_nodes + 1)

    def dominated(key: tuple[int, Any], used: int) -> bool:
        masks = seen_info.get(key)
        if masks is None:
            seen_info[key] = [used]
            return False
        for mask in masks:
            if mask & ~used == 0:
                return True
        masks.append(used)
        return False

    while True:
        nodes += 1
        if nodes >= next_check:  # every CHECK_EVERY nodes, or exactly at the node budget
            next_check = nodes + CHECK_EVERY if max_nodes is None else min(nodes + CHECK_EVERY, max_nodes + 1)
            if (max_nodes is not None and nodes > max_nodes) or (stop is not None and stop.is_set()) or (
                    deadline is not None and monotonic() > deadline):
                why = "stopped" if stop is not None and stop.is_set() else (
                    BUDGET if max_nodes is not None and nodes > max_nodes else "time budget ran out")
                return SearchResult(None, _prefixes(best, infos, info_pos, regular), nodes, why)
        if mode == 0:
            if remaining == 0:
                return SearchResult(True, [], nodes)
            e = nxt[head]
            mode = 1
            while is_call[e]:  # a read-only op that fits now is taken first, without siblings
                j = e_op[e]
                if ro[j]:
                    ok, new_state = step(state, inp[j], out[j])
                    if ok:
                        new_lin = lin | bit[j]
                        if has_info:
                            known = dominated((new_lin, new_state), ibits)
                        else:
                            key = (new_lin, new_state)
                            known = key in seen_plain
                            if not known:
                                seen_plain.add(key)
                        if known:
                            mode = 4
                        else:
                            stack.append((1, e, state, None, 0))
                            path.append(j)
                            state = new_state
                            lin = new_lin
                            _unlink(nxt, prv, e, ret_pos[j])
                            remaining -= 1
                            mode = 0
                        break
                e = nxt[e]
            if mode != 1:
                continue
            e = nxt[head]
        if mode == 1:
            while is_call[e]:
                j = e_op[e]
                if not ro[j]:
                    ok, new_state = step(state, inp[j], out[j])
                    if ok:
                        new_lin = lin | bit[j]
                        if has_info:
                            known = dominated((new_lin, new_state), ibits)
                        else:
                            key = (new_lin, new_state)
                            known = key in seen_plain
                            if not known:
                                seen_plain.add(key)
                        if not known:
                            stack.append((0, e, state, None, 0))
                            path.append(j)
                            state = new_state
                            lin = new_lin
                            _unlink(nxt, prv, e, ret_pos[j])
                            remaining -= 1
                            mode = 0
                            break
                e = nxt[e]
            if mode == 0:
                continue
            mode = 2 if infos else 4
        if mode == 2:
            # e is the first remaining return: info ops called before it are available.
            cands = []
            tried: set[Any] = set()
            group = buckets.get(state_guard(state))
            for bucket in (group, wild):
                if not bucket:
                    continue
                for k in bucket:
                    if info_pos[k] > e:
                        break
                    x = i_inp[k]
                    if ibits & i_bit[k]:  # used on this path
                        continue
                    if x in tried:
                        continue
                    tried.add(x)
                    ok, new_state = step(state, x, UNKNOWN)
                    if ok and new_state != state:
                        cands.append((k, new_state))
            if len(cands) > 1:  # most recent call first: an old info op is the least likely to land now
                cands.sort(key=lambda c: -info_pos[c[0]])
            ci = 0
            mode = 3
        if mode == 3:
            while ci < len(cands):
                k, new_state = cands[ci]
                ci += 1
                used = ibits | i_bit[k]
                if not dominated((lin, new_state), used):
                    stack.append((2, k, state, cands, ci))
                    path.append((k, e))
                    state = new_state
                    ibits = used
                    mode = 0
                    break
            if mode == 0:
                continue
            mode = 4
        # mode 4: this node is exhausted; remember it if it is the deepest, then backtrack.
        if track:
            best_depth = _keep_deepest(best, best_depth, path, n - remaining)
        if not stack:
            return SearchResult(False, _prefixes(best, infos, info_pos, regular), nodes)
        kind, x, state, saved, saved_ci = stack.pop()
        path.pop()
        if kind == 2:
            ibits ^= i_bit[x]
            cands = saved
            ci = saved_ci
            mode = 3
            continue
        j = e_op[x]
        lin ^= bit[j]
        _relink(nxt, prv, x, ret_pos[j])
        remaining += 1
        if kind == 1:
            mode = 4  # a forced read failed: so does the node it was taken at
        else:
            e = nxt[x]
            mode = 1


def _assign(path: list[Any], infos: list[PartOp], info_pos: list[int],
            regular: list[PartOp]) -> tuple[list[int], bool]:
    """Op ids of a (relaxed) path, giving each info use its own info op of identical input, called before the
    window end of the use. Greedy earliest-called assignment is optimal: along a path the window end never moves
    back, so each use can take any op an earlier use could. Returns (ids, True), or the ids of the longest prefix
    that can be assigned and False."""
    groups: dict[Any, list[int]] = {}
    for k in sorted(range(len(infos)), key=info_pos.__getitem__):
        groups.setdefault(infos[k].input, []).append(k)
    taken: dict[Any, int] = {}
    ids: list[int] = []
    for item in path:
        if item.__class__ is int:
            ids.append(regular[item].id)
            continue
        k, window_end = item
        x = infos[k].input
        group = groups[x]
        i = taken.get(x, 0)
        if i >= len(group) or info_pos[group[i]] > window_end:
            return ids, False
        taken[x] = i + 1
        ids.append(infos[group[i]].id)
    return ids, True


def _prefixes(best: list[list[Any]], infos: list[PartOp], info_pos: list[int],
              regular: list[PartOp]) -> list[list[int]]:
    out: list[list[int]] = []
    for path in best:
        ids = _assign(path, infos, info_pos, regular)[0]
        if ids not in out:
            out.append(ids)
    return out


def _layout(regular: list[PartOp], infos: list[PartOp]) -> tuple[list[int], list[bool], list[int], list[int],
                                                                 list[int], list[int], int]:
    """The linked list of call and return entries of the regular ops, in time order (calls first at equal times).

    Positions index the time order of all entries, info calls included (those are not linked, but `info_pos`
    says where they fall). Returns (info_pos, is_call, e_op, ret_pos, nxt, prv, head); the list ends at
    head + 1, an entry that is not a call."""
    entries: list[tuple[int, int, int, int, int]] = []  # (time, 0 call/1 return, seq, kind, index)
    for j, op in enumerate(regular):
        entries.append((op.call, 0, op.seq, 0, j))
        entries.append((op.ret, 1, op.seq, 1, j))  # type: ignore[arg-type]
    for k, op in enumerate(infos):
        entries.append((op.call, 0, op.seq, 2, k))
    entries.sort()
    size = len(entries)
    head, end = size, size + 1
    is_call = [False] * (size + 2)
    e_op = [0] * (size + 2)
    info_pos = [0] * len(infos)
    order: list[int] = []  # positions of regular entries, in time order
    for pos, (_, _, _, kind, idx) in enumerate(entries):
        if kind == 2:
            info_pos[idx] = pos
        else:
            e_op[pos] = idx
            is_call[pos] = kind == 0
            order.append(pos)
    ret_pos = [0] * len(regular)
    for pos in order:
        if not is_call[pos]:
            ret_pos[e_op[pos]] = pos
    nxt = [end] * (size + 2)
    prv = [head] * (size + 2)
    last = head
    for pos in order:
        nxt[last] = pos
        prv[pos] = last
        last = pos
    nxt[last] = end
    prv[end] = last
    return info_pos, is_call, e_op, ret_pos, nxt, prv, head


def _unlink(nxt: list[int], prv: list[int], call: int, ret: int) -> None:
    """Take an op's call and return entries out of the doubly linked event list (it is linearized)."""
    p, q = prv[call], nxt[call]
    nxt[p] = q
    prv[q] = p
    p, q = prv[ret], nxt[ret]
    nxt[p] = q
    prv[q] = p


def _relink(nxt: list[int], prv: list[int], call: int, ret: int) -> None:
    """Undo `_unlink` (backtracking): the entries kept their own links, so they go back where they were."""
    nxt[prv[ret]] = ret
    prv[nxt[ret]] = ret
    nxt[prv[call]] = call
    prv[nxt[call]] = call


def _keep_deepest(best: list[list[Any]], best_depth: int, path: list[Any], depth: int) -> int:
    """Remember `path` (copied) in `best` if it is the deepest yet, or one of at most 3 equally deep ones (the
    counterexample prefixes); returns the new best depth."""
    if depth > best_depth:
        best[:] = [path.copy()]
        return depth
    if depth == best_depth and len(best) < 3 and path not in best:
        best.append(path.copy())
    return best_depth


def _no_guard(state: Any) -> None:
    return None
