"""Which nodes a process fault (kill, pause) hits: pure functions of the node names, a seeded rng and the leader.

Target specs (the names used in nemesis op values, `TARGET_SPECS`):
- `one`: one random node.
- `leader`: the current leader; no target when no leader is known (the fault is then recorded as skipped).
- `minority`: a random set of majority(n) - 1 nodes (the largest minority: the cluster must stay available).
- `majority`: a random set of majority(n) nodes (the cluster must become unavailable, never unsafe).
- `all`: every node.

Results are tuples sorted by name so a history reads the same on every run; random choices draw from the nodes
sorted by name, so a seeded `random.Random` gives the same targets regardless of set ordering.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from nemesis.grudge import majority

TARGET_SPECS = ("one", "leader", "minority", "majority", "all")


class TargetError(ValueError):
    """The caller named an unknown target spec or gave no nodes."""


def select_targets(spec: str, nodes: Iterable[str], rng: random.Random, *, leader: str | None = None
                   ) -> tuple[str, ...]:
    """The nodes a fault of target spec `spec` hits (see the module docstring). Empty only for "leader" when no
    leader is known, or when `leader` is not one of `nodes` (a stale report)."""
    ordered = sorted(set(nodes))
    if not ordered:
        raise TargetError("no nodes to choose targets from")
    if spec == "one":
        return (rng.choice(ordered),)
    if spec == "leader":
        return (leader,) if leader in ordered else ()
    if spec == "minority":
        return tuple(sorted(rng.sample(ordered, majority(len(ordered)) - 1)))
    if spec == "majority":
        return tuple(sorted(rng.sample(ordered, majority(len(ordered)))))
    if spec == "all":
        return tuple(ordered)
    raise TargetError(f"unknown target spec {spec!r}; known: {', '.join(TARGET_SPECS)}")
