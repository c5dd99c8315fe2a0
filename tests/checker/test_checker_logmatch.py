"""The log-matching checker on hand-built `chain` observations: replicas that disagree at a common index, and a
replica whose applied entry at an index changes over time, make a run invalid, naming nodes, index and terms."""

from __future__ import annotations

from typing import Any

from checker import LogMatchingChecker


def chain(t: int, nodes: dict[str, Any], final: bool = False) -> dict[str, Any]:
    return {"process": "harness", "type": "info", "f": "chain", "time": t, "value": {"final": final, "nodes": nodes}}


def view(index: int, term: int, digest: str, *checkpoints: tuple[int, int, str]) -> dict[str, Any]:
    return {"index": index, "term": term, "hash": digest, "checkpoints": [list(p) for p in checkpoints]}


def test_replicas_that_agree_wherever_they_meet_are_valid() -> None:
    history = [chain(10, {"n1": view(20, 2, "h20", (16, 2, "h16")), "n2": view(17, 2, "h17", (16, 2, "h16"))}),
               chain(20, {"n2": view(20, 2, "h20")}),
               {"process": 1, "type": "invoke", "f": "put", "time": 15}]
    result = LogMatchingChecker().check({}, history)
    assert result == {"valid": True, "observations": 2, "nodes": ["n1", "n2"], "indexes": 3, "violations": []}


def test_two_replicas_that_disagree_at_a_common_index_are_named_with_where_they_last_agreed() -> None:
    history = [chain(10, {"n1": view(40, 5, "a40", (16, 2, "x16"), (32, 4, "a32")),
                          "n2": view(35, 5, "b35", (16, 2, "x16"), (32, 3, "b32")),
                          "n3": view(16, 2, "x16")}),
               chain(30, {"n3": view(40, 5, "b40")})]
    result = LogMatchingChecker().check({}, history)
    assert result["valid"] is False and result["anomaly_time"] == 10
    by_pair = {tuple(v["nodes"]): v for v in result["violations"]}
    assert set(by_pair) == {("n1", "n2"), ("n1", "n3")}
    first = by_pair["n1", "n2"]
    assert (first["kind"], first["index"], first["agreed_up_to"]) == ("diverged", 32, 16)
    assert first["claims"] == {"n1": {"term": 4, "hash": "a32"}, "n2": {"term": 3, "hash": "b32"}}
    assert "n1 and n2" in first["message"] and "index 32" in first["message"] and "term 3" in first["message"]
    later = by_pair["n1", "n3"]
    assert (later["index"], later["agreed_up_to"], later["time"]) == (40, 16, 30)
    assert result["explanation"].startswith("n1 and n2 applied different log prefixes up to index 32")
    assert result["explanation"].endswith("(and 1 more)")  # what results.json's failures list shows


def test_a_replica_that_rewrites_an_applied_entry_is_named_even_alone() -> None:
    history = [chain(10, {"n2": view(48, 6, "old48", (48, 6, "old48"))}),
               chain(20, {"n2": view(50, 7, "h50")}),
               chain(30, {"n2": view(48, 7, "new48")}),
               chain(40, {"n2": view(48, 7, "new48")})]
    result = LogMatchingChecker().check({}, history)
    assert result["valid"] is False and result["anomaly_time"] == 30
    (violation,) = result["violations"]
    assert violation["kind"] == "rewritten" and (violation["node"], violation["index"]) == ("n2", 48)
    assert violation["before"] == {"term": 6, "hash": "old48", "time": 10}
    assert violation["after"] == {"term": 7, "hash": "new48", "time": 30}


def test_no_observation_is_no_evidence_and_malformed_claims_are_skipped() -> None:
    assert LogMatchingChecker().check({}, [])["valid"] is True
    junk = [chain(1, {"n1": None, "n2": {"index": "3", "term": 1, "hash": "h"},
                      "n3": {"index": 3, "term": 1, "hash": "h", "checkpoints": [[1, 2], "x", [2, 1, 5]]}}),
            {"process": "harness", "type": "info", "f": "chain", "time": 2, "value": "garbage"},
            chain(3, {"n4": view(3, 1, "other")}), {"process": "harness", "f": "chain", "time": 4, "value": {}}]
    result = LogMatchingChecker().check({}, junk)
    assert result["valid"] is False and result["nodes"] == ["n3", "n4"]  # n3's one good claim vs n4's
