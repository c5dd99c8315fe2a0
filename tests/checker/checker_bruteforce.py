"""A brute-force linearizability checker for the differential test: tries every admissible order.

Deliberately naive and independent of checker.search: no linked list, no read-only or info-op reductions, no
`prepare`, no guards. Op i must come before op j when i returned strictly before j was called (at equal times the
closed intervals overlap); info ops (ret None) may be placed anywhere after their call, or left out.
"""

from __future__ import annotations

from typing import Any

from checker.search import PartOp


def brute_force(model: Any, ops: list[PartOp]) -> bool:
    n = len(ops)
    required = frozenset(i for i, op in enumerate(ops) if op.ret is not None)
    before = [[i for i in range(n) if ops[i].ret is not None and ops[i].ret < ops[j].call] for j in range(n)]
    memo: dict[tuple[frozenset[int], Any], bool] = {}

    def extend(done: frozenset[int], state: Any) -> bool:
        if required <= done:
            return True
        key = (done, state)
        if key in memo:
            return memo[key]
        result = False
        for j in range(n):
            if j in done or any(i not in done for i in before[j]):
                continue
            ok, new_state = model.step(state, ops[j].input, ops[j].output)
            if ok and extend(done | {j}, new_state):
                result = True
                break
        memo[key] = result
        return result

    return extend(frozenset(), model.init())
