"""The convergence checker: judges the lab's `converge` observation (docs/history.md), a grey-box check of ours.

The engine records, after the final reads, one event of process "harness" with f "converge" whose value holds
every node's applied index and a digest of its state machine at that index (harness.converge). Replicas of a
correct Raft that applied the same log prefix hold the same state, so:

- nodes at the same applied index with different digests: the run is INVALID; the result names the nodes and
  the index (`mismatches`). This is the safety property (State Machine Safety) seen directly.
- nodes at the same last log index with different last terms are reported (`last_term_differences`), not judged:
  uncommitted tails may legitimately differ for a while.
- nodes that never reached the same applied index within the engine's wait are reported (`converged: false`,
  `applied`), not judged: that is liveness, for another checker. Nodes that share an index are still compared.
- no observation in the history (an older run), or one that says `skipped` (the DB lacks the capability): valid,
  with `skipped` saying why. Several observations: the last one is judged.

Pure: reads the history it is handed, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .history import HARNESS

CONVERGE = "converge"


def _observation(history: list[dict[str, Any]]) -> tuple[dict[str, Any], int] | None:
    """The last converge observation's value and time."""
    for event in reversed(history):
        if event.get("process") == HARNESS and event.get("f") == CONVERGE:
            value = event.get("value")
            if not isinstance(value, dict):
                value = {"skipped": f"converge event value is {value!r}"}
            return value, int(event.get("time", 0))
    return None


def _groups(states: Mapping[str, Mapping[str, Any]], field: str) -> dict[int, list[str]]:
    """Node names by the value of an integer field (sorted), among nodes that report it."""
    out: dict[int, list[str]] = {}
    for node in sorted(states):
        value = states[node].get(field)
        if type(value) is int:
            out.setdefault(value, []).append(node)
    return out


def _differing(states: Mapping[str, Mapping[str, Any]], nodes: list[str], field: str) -> dict[str, list[str]] | None:
    """{value: nodes} when the nodes disagree on `field`, else None."""
    by_value: dict[str, list[str]] = {}
    for node in nodes:
        by_value.setdefault(str(states[node].get(field)), []).append(node)
    return by_value if len(by_value) > 1 else None


class ConvergenceChecker:
    """See the module docstring. Result: {"valid", "converged", "applied": {node: index}, "unreachable":
    {node: error}, "mismatches": [{"applied", "digests": {digest: [nodes]}}], "last_term_differences":
    [{"last_index", "last_terms": {term: [nodes]}}], "explanation"}, plus "anomaly_time" (the observation's time)
    when invalid; or {"valid": true, "skipped": why}."""

    def check(self, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
        found = _observation(history)
        if found is None:
            return {"valid": True, "skipped": "no converge observation in the history"}
        obs, observed_at = found
        if "skipped" in obs:
            return {"valid": True, "skipped": str(obs["skipped"])}
        nodes = obs.get("nodes")
        if not isinstance(nodes, dict):
            return {"valid": "unknown", "error": f"converge observation without nodes: {obs!r}"}
        states = {n: s for n, s in nodes.items() if isinstance(s, dict) and "error" not in s}
        unreachable = {n: (s.get("error") if isinstance(s, dict) else repr(s)) for n, s in nodes.items()
                       if n not in states}
        mismatches = [{"applied": index, "digests": diff}
                      for index, group in sorted(_groups(states, "applied").items())
                      if (diff := _differing(states, group, "digest")) is not None]
        terms = [{"last_index": index, "last_terms": diff}
                 for index, group in sorted(_groups(states, "last_index").items())
                 if (diff := _differing(states, group, "last_term")) is not None]
        # A mismatch is seen when the observation is made: its time is when the anomaly was found (an upper bound
        # of when the replicas diverged), as harness.detection reads `anomaly_time`.
        timing = {"anomaly_time": observed_at} if mismatches else {}
        return {
            "valid": not mismatches,
            **timing,
            "converged": bool(obs.get("converged")),
            "applied": {n: states[n].get("applied") for n in sorted(states)},
            "unreachable": unreachable,
            "mismatches": mismatches,
            "last_term_differences": terms,
            "explanation": _explain(mismatches, bool(obs.get("converged")), states, unreachable),
        }


def _explain(mismatches: list[dict[str, Any]], converged: bool, states: Mapping[str, Any],
             unreachable: Mapping[str, Any]) -> str:
    missing = (f"; no state from {', '.join(f'{n} ({why})' for n, why in sorted(unreachable.items()))}"
               if unreachable else "")
    if mismatches:
        parts = [f"at applied index {m['applied']}: " + " vs ".join(
            f"{'+'.join(nodes)} digest {digest[:12]}" for digest, nodes in m["digests"].items()) for m in mismatches]
        return "replicas that applied the same log prefix hold different states: " + "; ".join(parts) + missing
    if not converged:
        return ("the nodes did not reach one applied index within the engine's wait (nodes at equal indexes "
                "agree): " + ", ".join(f"{n}@{s.get('applied')}" for n, s in sorted(states.items())) + missing)
    return f"{len(states)} node(s) at one applied index hold the same state{missing}"
