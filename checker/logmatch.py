"""The log-matching checker (grey-box, ours): replicas never disagree on an applied log prefix, and never rewrite one.

Raft's Log Matching and State Machine Safety properties say that two replicas that applied the entry at index i
applied the same entries 1..i, and that an applied (so committed) entry never changes. A bug that breaks them (a
commit rule that commits an entry of an old term, a follower that commits beyond what it matched, one that accepts
appends of a deposed leader) makes replicas apply different entries at one index, often long before a client
reads a key where it shows. Each node reports a commitment to its applied prefix: a hash chain over (index, term,
entry) (raftkv.kv.chain), at its applied index and at checkpoints. The lab polls it during the run and at its end,
and records ``chain`` observations (process "harness", f "chain", docs/history.md), value::

    {"final": bool, "nodes": {node: {"index", "term", "hash", "checkpoints": [[index, term, hash], ...]}}}

(a recorder leaves out what it recorded unchanged before, so a node may list only some checkpoints). This checker
gathers every (node, index) -> (term, hash) claim, in history order, and finds:

- ``diverged``: two nodes whose hashes differ at one index: their applied prefixes differ at or before it. One
  finding per pair of nodes, at the lowest such index, with the highest index below it at which the two were seen
  to agree (the divergence lies between); the terms of both at the index are named.
- ``rewritten``: a node whose hash at an index changed between two observations: it applied another entry there
  (or another prefix) than it had before.

Valid when neither is found (also without any observation: a DB without the capability gives no evidence).
Result: ``{"valid", "observations", "nodes", "indexes", "violations", "anomaly_time"?, "explanation"?}``; a violation has ``kind``,
``message`` and its data; ``anomaly_time`` is when the later of the two conflicting claims was recorded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .history import HARNESS

CHAIN = "chain"
MAX_VIOLATIONS = 50


def _claims(value: Mapping[str, Any]) -> Iterator[tuple[str, int, int, str]]:
    """(node, index, term, hash) for every well-formed claim in one observation's value (others are skipped)."""
    nodes = value.get("nodes")
    if not isinstance(nodes, Mapping):
        return
    for node, view in sorted(nodes.items()):
        if not isinstance(view, Mapping):
            continue
        points = list(view.get("checkpoints") or [])
        points.append([view.get("index"), view.get("term"), view.get("hash")])
        for point in points:
            if isinstance(point, list | tuple) and len(point) == 3:
                index, term, digest = point
                if type(index) is int and type(term) is int and isinstance(digest, str):
                    yield str(node), index, term, digest


class LogMatchingChecker:
    """The Checker protocol over the history's ``chain`` observations (see the module docstring)."""

    def check(self, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
        # node -> index -> (term, hash, time first claimed)
        seen: dict[str, dict[int, tuple[int, str, int]]] = {}
        violations: list[dict[str, Any]] = []
        observations = 0
        for event in history:
            if event.get("process") != HARNESS or event.get("f") != CHAIN or not isinstance(event.get("value"), dict):
                continue
            observations += 1
            at = int(event.get("time", 0))
            for node, index, term, digest in _claims(event["value"]):
                mine = seen.setdefault(node, {})
                before = mine.get(index)
                if before is None:
                    mine[index] = (term, digest, at)
                elif before[1] != digest and len(violations) < MAX_VIOLATIONS:
                    violations.append(_rewritten(node, index, before, (term, digest, at)))
                    mine[index] = (term, digest, at)  # report each later change once more, not every poll
        violations.extend(_divergences(seen))
        result: dict[str, Any] = {"valid": not violations, "observations": observations, "nodes": sorted(seen),
                                  "indexes": len({i for claims in seen.values() for i in claims}),
                                  "violations": violations}
        if violations:
            result["anomaly_time"] = min(v["time"] for v in violations)
            more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
            result["explanation"] = violations[0]["message"] + more
        return result


def _rewritten(node: str, index: int, before: tuple[int, str, int], after: tuple[int, str, int]) -> dict[str, Any]:
    return {"kind": "rewritten", "node": node, "index": index, "time": after[2],
            "before": {"term": before[0], "hash": before[1], "time": before[2]},
            "after": {"term": after[0], "hash": after[1], "time": after[2]},
            "message": f"{node} changed its applied entry (or prefix) at index {index}: term {before[0]} "
                       f"hash {before[1]} before, term {after[0]} hash {after[1]} later (an applied entry was "
                       "rewritten)"}


def _divergences(seen: Mapping[str, Mapping[int, tuple[int, str, int]]]) -> list[dict[str, Any]]:
    """The lowest index at which each pair of nodes disagrees (their first claims there), and where they last agreed."""
    out: list[dict[str, Any]] = []
    nodes = sorted(seen)
    for n, a in enumerate(nodes):
        for b in nodes[n + 1:]:
            common = sorted(seen[a].keys() & seen[b].keys())
            agreed = None
            for index in common:
                ca, cb = seen[a][index], seen[b][index]
                if ca[1] == cb[1]:
                    agreed = index
                    continue
                out.append({
                    "kind": "diverged", "nodes": [a, b], "index": index, "agreed_up_to": agreed,
                    "time": max(ca[2], cb[2]),
                    "claims": {a: {"term": ca[0], "hash": ca[1]}, b: {"term": cb[0], "hash": cb[1]}},
                    "message": f"{a} and {b} applied different log prefixes up to index {index} ({a}: entry of "
                               f"term {ca[0]}, {b}: entry of term {cb[0]}"
                               + (f"; they agreed at index {agreed}" if agreed is not None else "") + ")"})
                break
            if len(out) >= MAX_VIOLATIONS:
                return out
    return out
