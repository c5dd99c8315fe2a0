"""Partitions as plain data: a grudge maps a node to the set of nodes whose traffic it drops (after Jepsen).

`{"n1": {"n2", "n3"}}` means n1 drops every packet that comes from n2 and from n3. A node absent from the mapping drops
nothing. Every function here is pure: it takes the node names (and, where a choice is random, a `random.Random`) and
returns a new grudge; nothing here touches the network. `nemesis.partition` turns a grudge into firewall rules.

Shapes (the names used in nemesis op values, `SHAPES`):
- `halves`: a random split into a minority of floor(n/2) nodes and a majority of the rest.
- `one`: one random node cut off from all others.
- `leader`: the current leader cut off (needs the leader's name; built with `isolate`).
- `ring`: majorities ring: every node sees a majority (itself and its ring neighbours) but no two nodes see the same
  majority. When majority(n) is odd (n = 4, 5, 8, 9, ...) the window is centred and the grudge
  symmetric; otherwise (n = 3, 6, 7, ...) the window is off-centre and some cuts are one-way;
  for n = 3 each node drops one neighbour. Over TCP a one-way drop breaks the connection both ways, so there the ring
  isolates more than its name says (n = 3: three isolated nodes).
- `bridge`: two halves that both see one bridge node in the middle; nobody else crosses.
- `one-way`: one random node drops the traffic of one other (the reverse direction still flows).

Edge cases: fewer than two nodes cannot be partitioned and is a caller error (`GrudgeError`); duplicate node names are
a caller error too. Iteration order never depends on set ordering: inputs are sorted before any random choice, so a
seeded `random.Random` gives the same grudge on every run regardless of PYTHONHASHSEED.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping, Sequence

Grudge = dict[str, frozenset[str]]

SHAPES = ("halves", "one", "leader", "ring", "bridge", "one-way")


class GrudgeError(ValueError):
    """The caller asked for a partition that cannot exist (unknown node, too few nodes, a node cut from itself)."""


def _nodes(nodes: Iterable[str]) -> list[str]:
    """The nodes sorted, after checking there are at least two distinct ones."""
    listed = list(nodes)
    ordered = sorted(set(listed))
    if len(ordered) != len(listed):
        raise GrudgeError(f"duplicate node names in {listed!r}")
    if len(ordered) < 2:
        raise GrudgeError(f"a partition needs at least two nodes, got {ordered!r}")
    return ordered


def majority(n: int) -> int:
    """The smallest number of nodes that is more than half of n."""
    return n // 2 + 1


def complete_grudge(components: Sequence[Collection[str]]) -> Grudge:
    """Every node drops traffic from every node outside its own component (a clean cut between components).

    Components must be disjoint; an empty component is ignored. Nodes in no component are not part of the grudge.
    """
    seen: set[str] = set()
    for component in components:
        overlap = seen & set(component)
        if overlap:
            raise GrudgeError(f"components overlap on {sorted(overlap)!r}")
        seen |= set(component)
    grudge: Grudge = {}
    for component in components:
        others = frozenset(seen - set(component))
        for node in component:
            if others:
                grudge[node] = others
    return grudge


def isolate(nodes: Iterable[str], node: str) -> Grudge:
    """`node` cut off from every other node (both directions)."""
    ordered = _nodes(nodes)
    if node not in ordered:
        raise GrudgeError(f"cannot isolate {node!r}: not one of {ordered!r}")
    return complete_grudge([[node], [n for n in ordered if n != node]])


def isolate_one(nodes: Iterable[str], rng: random.Random) -> Grudge:
    """A random node cut off from every other node."""
    ordered = _nodes(nodes)
    return isolate(ordered, rng.choice(ordered))


def random_halves(nodes: Iterable[str], rng: random.Random) -> Grudge:
    """A random split: floor(n/2) nodes on one side, the majority on the other (for n = 2: one and one)."""
    ordered = _nodes(nodes)
    rng.shuffle(ordered)
    cut = len(ordered) // 2
    return complete_grudge([ordered[:cut], ordered[cut:]])


def majorities_ring(nodes: Iterable[str], rng: random.Random) -> Grudge:
    """Jepsen's majorities ring: nodes in a random ring; each sees the majority-sized window centred on itself.

    Needs at least three nodes (with two, a "majority" is both nodes and nothing would be cut).
    """
    ordered = _nodes(nodes)
    if len(ordered) < 3:
        raise GrudgeError(f"a majorities ring needs at least three nodes, got {ordered!r}")
    rng.shuffle(ordered)
    n, m = len(ordered), majority(len(ordered))
    universe = frozenset(ordered)
    grudge: Grudge = {}
    for start in range(n):
        window = [ordered[(start + i) % n] for i in range(m)]
        centre = window[m // 2]
        grudge[centre] = universe - frozenset(window)
    return {node: dropped for node, dropped in grudge.items() if dropped}


def bridge(nodes: Iterable[str], rng: random.Random) -> Grudge:
    """Two halves that cannot reach each other but both reach one bridge node. Needs at least three nodes."""
    ordered = _nodes(nodes)
    if len(ordered) < 3:
        raise GrudgeError(f"a bridge needs at least three nodes, got {ordered!r}")
    rng.shuffle(ordered)
    cut = len(ordered) // 2
    # ordered[cut] is the bridge: it belongs to no component, so nobody drops its traffic and it drops nobody's.
    return complete_grudge([ordered[:cut], ordered[cut + 1:]])


def one_way(nodes: Iterable[str], rng: random.Random) -> Grudge:
    """One random node drops the traffic of one other random node; the other direction is untouched."""
    ordered = _nodes(nodes)
    receiver, sender = rng.sample(ordered, 2)
    return {receiver: frozenset([sender])}


def build(shape: str, nodes: Iterable[str], rng: random.Random, *, leader: str | None = None) -> Grudge:
    """The grudge of a named shape (see `SHAPES`). `leader` is required for "leader"; a `GrudgeError` without one."""
    if shape == "halves":
        return random_halves(nodes, rng)
    if shape == "one":
        return isolate_one(nodes, rng)
    if shape == "leader":
        if leader is None:
            raise GrudgeError("shape 'leader' needs the current leader, and none is known")
        return isolate(nodes, leader)
    if shape == "ring":
        return majorities_ring(nodes, rng)
    if shape == "bridge":
        return bridge(nodes, rng)
    if shape == "one-way":
        return one_way(nodes, rng)
    raise GrudgeError(f"unknown partition shape {shape!r}; known: {', '.join(SHAPES)}")


def validate(grudge: Mapping[str, Collection[str]], nodes: Iterable[str]) -> Grudge:
    """Check a grudge against the cluster's nodes and return it normalised (frozensets, no empty entries).

    Raises `GrudgeError` naming the offending entry when a node is unknown or drops its own traffic.
    """
    known = set(nodes)
    out: Grudge = {}
    for node, dropped in grudge.items():
        if node not in known:
            raise GrudgeError(f"grudge names unknown node {node!r}; nodes are {sorted(known)!r}")
        unknown = set(dropped) - known
        if unknown:
            raise GrudgeError(f"grudge of {node!r} names unknown nodes {sorted(unknown)!r}")
        if node in dropped:
            raise GrudgeError(f"grudge of {node!r} drops its own traffic")
        if dropped:
            out[node] = frozenset(dropped)
    return out


def is_symmetric(grudge: Mapping[str, Collection[str]]) -> bool:
    """True when every cut is two-way: a drops b's traffic exactly when b drops a's."""
    return all(a in grudge.get(b, ()) for a, dropped in grudge.items() for b in dropped)


def components(grudge: Mapping[str, Collection[str]], nodes: Iterable[str]) -> list[list[str]]:
    """The groups of nodes that can still talk both ways (connected components of the two-way links), sorted."""
    ordered = sorted(set(nodes))
    links = {n: {m for m in ordered if m != n and m not in grudge.get(n, ()) and n not in grudge.get(m, ())}
             for n in ordered}
    seen: set[str] = set()
    out: list[list[str]] = []
    for start in ordered:
        if start in seen:
            continue
        group, frontier = {start}, [start]
        while frontier:
            for nxt in links[frontier.pop()]:
                if nxt not in group:
                    group.add(nxt)
                    frontier.append(nxt)
        seen |= group
        out.append(sorted(group))
    return out


def to_json(grudge: Mapping[str, Collection[str]]) -> dict[str, list[str]]:
    """A JSON-ready form with sorted keys and lists (what nemesis events record)."""
    return {node: sorted(grudge[node]) for node in sorted(grudge) if grudge[node]}
