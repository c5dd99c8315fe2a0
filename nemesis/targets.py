"""Which nodes a process fault (kill, pause) hits: pure functions of the node names, a seeded rng and the leader.

Target specs (the names used in nemesis op values, `TARGET_SPECS`):
- `one`: one random node.
- `leader`: the current leader; no target when no leader is known (the fault is then recorded as skipped).
- `minority`: a random set of majority(n) - 1 nodes (the largest minority: the cluster must stay available).
- `majority`: a random set of majority(n) nodes (the cluster must become unavailable, never unsafe).
- `all`: every node.

Two more, leader-relative, that a schedule asks for (harness.faults aims) and a random draw never picks
(`AIMED_SPECS`; no leader known: no target, as for `leader`):
- `followers`: every node but the leader.
- `leader-and-majority`: the leader and a random majority(n) of the other nodes (5 nodes: four; 3 nodes: all), so
  the nodes hit besides the leader are a majority of the cluster by themselves (a power cut of these can lose
  what only they and the leader held).

Results are tuples sorted by name so a history reads the same on every run; random choices draw from the nodes
sorted by name, so a seeded `random.Random` gives the same targets regardless of set ordering.

`choose_targets` is what a nemesis's start does with its op value: explicit targets, else a spec (given or drawn),
asking the DB for the leader when the spec needs it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.protocols import TestContext
from nemesis.grudge import majority
from nemesis.leader import current_leader

TARGET_SPECS = ("one", "leader", "minority", "majority", "all")
AIMED_SPECS = ("followers", "leader-and-majority")
LEADER_SPECS = frozenset({"leader", *AIMED_SPECS})  # specs that need the current leader (none known: no target)


class TargetError(ValueError):
    """The caller named an unknown target spec or gave no nodes."""


def select_targets(spec: str, nodes: Iterable[str], rng: random.Random, *, leader: str | None = None
                   ) -> tuple[str, ...]:
    """The nodes a fault of target spec `spec` hits (see the module docstring). Empty only for the LEADER_SPECS when
    no leader is known, or when `leader` is not one of `nodes` (a stale report)."""
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
    if spec in AIMED_SPECS:
        if leader is None or leader not in ordered:
            return ()
        others = [n for n in ordered if n != leader]
        if spec == "followers":
            return tuple(others)
        return tuple(sorted([leader, *rng.sample(others, min(len(others), majority(len(ordered))))]))
    raise TargetError(f"unknown target spec {spec!r}; known: {', '.join(TARGET_SPECS + AIMED_SPECS)}")


async def choose_targets(kind: str, test: TestContext, value: Mapping[str, Any], specs: Sequence[str],
                         rng: random.Random) -> tuple[str, tuple[str, ...]]:
    """(spec, targets) of a `kind` fault's start: the value's explicit `"targets"` (spec "explicit"; ValueError
    naming any unknown node), else its `"target"` spec or one drawn from `specs`. Targets are empty only for spec
    in LEADER_SPECS when no leader is known: the caller records the start as skipped."""
    if "targets" in value:
        chosen = tuple(sorted(set(value["targets"])))
        unknown = set(chosen) - set(test.nodes)
        if unknown:
            raise ValueError(f"{kind} nemesis: unknown targets {sorted(unknown)!r}")
        return "explicit", chosen
    spec = value.get("target") or rng.choice(list(specs))
    leader = await current_leader(test) if spec in LEADER_SPECS else None
    return spec, select_targets(spec, test.nodes, rng, leader=leader)
