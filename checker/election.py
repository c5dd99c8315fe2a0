"""The election-safety checker (grey-box): at most one leader per term, ever.

Raft's Election Safety property (Figure 3 of the paper) says at most one leader can be elected in a given term. A
node that votes twice in one term (a vote not made durable before it is sent, or forgotten across a restart), or that
counts votes wrongly, can elect two; their logs then diverge, but a black-box history may never show it (the two
leaders' writes may not meet on one key before one of them is deposed). The lab sees the leaders directly: its
monitor polls every node's status during the run and records each (term, leader) pair the first time it sees it,
as a history event of process "harness", f "leader", value `{"term": T, "node": N}` (docs/history.md). A status
poll every half second misses a leader deposed sooner, so where the DB keeps the terms each node led (the Witness
capability: raftkv keeps them across restarts too), harness.witness records those as well, with `"source": "node"`
(first sighting wins: a pair seen by a poll is not recorded again). Two
different nodes reported as leader of one term, at any two moments of the run, break the property: the run is
invalid (safety), naming the term, the nodes and when each was seen. There is no false alarm to fear from timing:
the property holds across all time, not per instant, and a node only reports itself leader of the term it won.

Result: `{"valid", "terms", "leaders", "violations", "anomaly_time"}`; `valid` is true when no term has two leaders
(also when nothing was recorded: a DB whose status names no leader gives no evidence either way).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .history import HARNESS

LEADER = "leader"


class ElectionSafetyChecker:
    """The Checker protocol over the history's `leader` observations (see the module docstring)."""

    def check(self, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
        seen: dict[int, dict[str, int]] = {}  # term -> node -> time first seen leading it
        sources: dict[tuple[int, str], str] = {}  # who saw it first
        for event in history:
            if event.get("process") != HARNESS or event.get("f") != LEADER:
                continue
            value = event.get("value")
            if not isinstance(value, dict):
                continue
            term, node = value.get("term"), value.get("node")
            if isinstance(term, int) and isinstance(node, str) and node not in seen.get(term, {}):
                seen.setdefault(term, {})[node] = int(event["time"])
                sources[term, node] = "the node's own record" if value.get("source") == "node" else "a status poll"
        bad = {term: nodes for term, nodes in sorted(seen.items()) if len(nodes) > 1}
        violations = [{"term": term, "leaders": sorted(nodes), "seen_at": dict(sorted(nodes.items())),
                       "reported_by": {n: sources[term, n] for n in sorted(nodes)},
                       "message": f"term {term} had {len(nodes)} leaders: {', '.join(sorted(nodes))}"}
                      for term, nodes in bad.items()]
        result: dict[str, Any] = {"valid": not violations, "terms": len(seen),
                                  "leaders": sum(len(n) for n in seen.values()), "violations": violations}
        if bad:
            # Visible once the second leader of a bad term was seen.
            result["anomaly_time"] = min(sorted(nodes.values())[1] for nodes in bad.values())
            result["explanation"] = "; ".join(str(v["message"]) for v in violations)
        return result
