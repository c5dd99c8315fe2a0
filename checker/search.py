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
from collections.abc import Callable
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
    """One exact depth-first search (see the module docstring), bounded by `max_nodes` when given."""
    return _Search(model, ops, track).run(deadline, stop, max_nodes)


Step = Callable[[], "Step | None"]
"""A state of the search: a method that does the work of one node and returns the state of the next node, or None
when the search is decided (`_Search.result`). Within one node a state may hand over to another directly (a
scan that finds nothing to linearize goes on to the info candidates, then to backtracking): only the returned
state counts as a new node, exactly as the node budget and the cache expect."""


class _Search:
    """The state of one exact search: the event list, the path (stack), the cache. The states of the walk:

    - `_fresh`: a new node: done if nothing remains; a read-only op that fits now is linearized first, without
      siblings (its branch failing fails the node); else `_scan` from the start of the window;
    - `_scan`: linearize the next op of the window (from `e`) that the model accepts and the cache has not seen;
      none left: `_infos` (when the part has info ops) or `_exhausted`;
    - `_infos`: the info ops worth trying here (module docstring), newest call first, then `_next_info`;
    - `_next_info`: take the next of them that the cache does not dominate, else `_exhausted`;
    - `_exhausted`: remember the path if it is the deepest, then undo the last step and resume its node where it
      left off (the next sibling of a regular op, the next info candidate, or, for a forced read, backtrack on).
    """

    __slots__ = ("step", "regular", "infos", "n", "info_pos", "is_call", "e_op", "ret_pos", "nxt", "prv", "head",
                 "inp", "out", "ro", "bit", "i_inp", "i_bit", "buckets", "wild", "state_guard", "has_info", "track",
                 "state", "lin", "ibits", "remaining", "stack", "path", "seen_plain", "seen_info", "best_depth",
                 "best", "e", "cands", "ci", "result")

    def __init__(self, model: Any, ops: list[PartOp], track: bool) -> None:
        self.step = model.step
        prepare = getattr(model, "prepare", None)
        if prepare is not None:
            ops, self.state = prepare(list(ops), model.init())
        else:
            self.state = model.init()
        regular = self.regular = [op for op in ops if op.ret is not None]
        infos = self.infos = [op for op in ops if op.ret is None]
        self.n = len(regular)
        self.info_pos, self.is_call, self.e_op, self.ret_pos, self.nxt, self.prv, self.head = _layout(regular, infos)
        self.inp = [op.input for op in regular]
        self.out = [op.output for op in regular]
        read_only = getattr(model, "read_only", None)  # the hints are optional (checker.models)
        self.ro = [bool(read_only(op.input, op.output)) if read_only else False for op in regular]
        self.bit = [1 << j for j in range(self.n)]
        self.i_inp = [op.input for op in infos]
        self.i_bit = [1 << k for k in range(len(infos))]
        self._bucket_infos(model)
        self.has_info = bool(infos)
        self.track = track
        self.lin = self.ibits = 0
        self.remaining = self.n
        self.stack: list[tuple[int, int, Any, Any, int]] = []
        self.path: list[Any] = []  # along the stack: regular index j, or (info index k, window end) for the prefixes
        self.seen_plain: set[tuple[int, Any]] = set()
        self.seen_info: dict[tuple[int, Any], list[int]] = {}
        self.best_depth = -1
        self.best: list[list[int]] = []
        self.e = self.head
        self.cands: list[tuple[int, Any]] = []
        self.ci = 0
        self.result: SearchResult | None = None

    def _bucket_infos(self, model: Any) -> None:
        """Info ops by the model's guard of their input (`buckets`; `wild`: no guard), each in call order."""
        state_guard = getattr(model, "state_guard", None)
        info_guard = getattr(model, "info_guard", None) if state_guard else None  # guards only make sense in pairs
        self.state_guard = state_guard or _no_guard
        self.buckets: dict[Any, list[int]] = {}
        self.wild: list[int] = []
        for k in sorted(range(len(self.infos)), key=self.info_pos.__getitem__):
            guard = info_guard(self.i_inp[k]) if info_guard else None
            if guard is None:
                self.wild.append(k)
            else:
                self.buckets.setdefault(guard, []).append(k)

    def run(self, deadline: float | None, stop: Any, max_nodes: int | None) -> SearchResult:
        """Walk the states, one node per step, checking the budget, `stop` and the deadline every CHECK_EVERY
        nodes (and exactly at the node budget)."""
        monotonic = time.monotonic
        nodes = 0
        next_check = CHECK_EVERY if max_nodes is None else min(CHECK_EVERY, max_nodes + 1)
        step: Step | None = self._fresh
        while step is not None:
            nodes += 1
            if nodes >= next_check:
                next_check = nodes + CHECK_EVERY if max_nodes is None else min(nodes + CHECK_EVERY, max_nodes + 1)
                if (max_nodes is not None and nodes > max_nodes) or (stop is not None and stop.is_set()) or (
                        deadline is not None and monotonic() > deadline):
                    why = "stopped" if stop is not None and stop.is_set() else (
                        BUDGET if max_nodes is not None and nodes > max_nodes else "time budget ran out")
                    return SearchResult(None, self._prefixes(), nodes, why)
            step = step()
        assert self.result is not None
        self.result.nodes = nodes
        return self.result

    def _prefixes(self) -> list[list[int]]:
        return _prefixes(self.best, self.infos, self.info_pos, self.regular)

    def _unseen(self, lin: int, state: Any, ibits: int) -> bool:
        """The cache: True (and remembered) when no node explored so far had these linearized regular ops, this
        state and a subset of these info ops; False when one did (this node has no option that one lacked)."""
        key = (lin, state)
        if not self.has_info:
            if key in self.seen_plain:
                return False
            self.seen_plain.add(key)
            return True
        masks = self.seen_info.get(key)
        if masks is None:
            self.seen_info[key] = [ibits]
            return True
        for mask in masks:
            if mask & ~ibits == 0:
                return False
        masks.append(ibits)
        return True

    def _take(self, kind: int, e: int, j: int, new_state: Any) -> None:
        """Linearize the regular op j (its call entry e) into `new_state`: push the step (kind 0 scanned, 1 forced)."""
        self.stack.append((kind, e, self.state, None, 0))
        self.path.append(j)
        self.state = new_state
        self.lin |= self.bit[j]
        _unlink(self.nxt, self.prv, e, self.ret_pos[j])
        self.remaining -= 1

    def _fresh(self) -> Step | None:
        if self.remaining == 0:
            self.result = SearchResult(True, [])
            return None
        is_call, e_op, ro, nxt = self.is_call, self.e_op, self.ro, self.nxt
        e = nxt[self.head]
        while is_call[e]:  # a read-only op that fits now is taken first, without siblings
            j = e_op[e]
            if ro[j]:
                ok, new_state = self.step(self.state, self.inp[j], self.out[j])
                if ok:
                    if not self._unseen(self.lin | self.bit[j], new_state, self.ibits):
                        return self._exhausted
                    self._take(1, e, j, new_state)
                    return self._fresh
            e = nxt[e]
        self.e = nxt[self.head]
        return self._scan()

    def _scan(self) -> Step | None:
        is_call, e_op, ro, nxt, step, inp, out = self.is_call, self.e_op, self.ro, self.nxt, self.step, self.inp, self.out
        state, lin, bit, ibits = self.state, self.lin, self.bit, self.ibits
        e = self.e
        while is_call[e]:
            j = e_op[e]
            if not ro[j]:
                ok, new_state = step(state, inp[j], out[j])
                if ok and self._unseen(lin | bit[j], new_state, ibits):
                    self._take(0, e, j, new_state)
                    return self._fresh
            e = nxt[e]
        self.e = e
        return self._infos() if self.has_info else self._exhausted()

    def _infos(self) -> Step | None:
        """`e` is the first remaining return: the info ops called before it are available."""
        state, step, info_pos, i_inp, i_bit, ibits, e = (self.state, self.step, self.info_pos, self.i_inp,
                                                         self.i_bit, self.ibits, self.e)
        cands: list[tuple[int, Any]] = []
        tried: set[Any] = set()
        for bucket in (self.buckets.get(self.state_guard(state)), self.wild):
            if not bucket:
                continue
            for k in bucket:
                if info_pos[k] > e:
                    break
                x = i_inp[k]
                if ibits & i_bit[k] or x in tried:  # used on this path, or one of identical input tried
                    continue
                tried.add(x)
                ok, new_state = step(state, x, UNKNOWN)
                if ok and new_state != state:
                    cands.append((k, new_state))
        if len(cands) > 1:  # most recent call first: an old info op is the least likely to land now
            cands.sort(key=lambda c: -info_pos[c[0]])
        self.cands, self.ci = cands, 0
        return self._next_info()

    def _next_info(self) -> Step | None:
        cands = self.cands
        while self.ci < len(cands):
            k, new_state = cands[self.ci]
            self.ci += 1
            used = self.ibits | self.i_bit[k]
            if self._unseen(self.lin, new_state, used):
                self.stack.append((2, k, self.state, cands, self.ci))
                self.path.append((k, self.e))
                self.state = new_state
                self.ibits = used
                return self._fresh
        return self._exhausted()

    def _exhausted(self) -> Step | None:
        if self.track:
            self.best_depth = _keep_deepest(self.best, self.best_depth, self.path, self.n - self.remaining)
        if not self.stack:
            self.result = SearchResult(False, self._prefixes())
            return None
        kind, x, self.state, saved, saved_ci = self.stack.pop()
        taken = self.path.pop()
        if kind == 2:
            self.ibits ^= self.i_bit[x]
            self.cands, self.ci = saved, saved_ci
            self.e = taken[1]  # the node's window end, for the next candidate's place on the path
            return self._next_info
        j = self.e_op[x]
        self.lin ^= self.bit[j]
        _relink(self.nxt, self.prv, x, self.ret_pos[j])
        self.remaining += 1
        if kind == 1:
            return self._exhausted  # a forced read failed: so does the node it was taken at
        self.e = self.nxt[x]
        return self._scan


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
