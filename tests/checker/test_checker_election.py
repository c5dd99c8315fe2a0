"""The election-safety checker: two leaders of one term, seen at any moments of a run, make it invalid."""

from __future__ import annotations

from typing import Any

from checker import ElectionSafetyChecker
from harness.monitor import LeaderWitness


def leader(term: Any, node: Any, t: int, source: str | None = None) -> dict[str, Any]:
    value = {"term": term, "node": node, **({"source": source} if source else {})}
    return {"process": "harness", "type": "info", "f": "leader", "value": value, "time": t}


def test_one_leader_per_term_is_valid_however_often_it_is_seen() -> None:
    history = [leader(1, "n1", 10), leader(2, "n2", 20), leader(3, "n2", 30), leader(3, "n2", 40),
               {"process": 0, "type": "invoke", "f": "get", "time": 5}]
    result = ElectionSafetyChecker().check({}, history)
    assert result["valid"] is True and result["terms"] == 3 and result["leaders"] == 3
    assert "anomaly_time" not in result


def test_two_leaders_of_one_term_are_a_safety_violation_named_with_when_each_was_seen() -> None:
    history = [leader(4, "n1", 100), leader(5, "n1", 200), leader(4, "n3", 900), leader(4, "n3", 950)]
    result = ElectionSafetyChecker().check({}, history)
    assert result["valid"] is False
    assert result["violations"] == [{"term": 4, "leaders": ["n1", "n3"], "seen_at": {"n1": 100, "n3": 900},
                                     "reported_by": {"n1": "a status poll", "n3": "a status poll"},
                                     "message": "term 4 had 2 leaders: n1, n3"}]
    assert result["anomaly_time"] == 900  # the second leader's sighting


def test_no_observations_is_no_evidence_and_malformed_ones_are_skipped() -> None:
    assert ElectionSafetyChecker().check({}, [])["valid"] is True
    bad = [leader("4", "n1", 1), leader(4, None, 2), {**leader(4, "n2", 3), "value": "n2"}]
    assert ElectionSafetyChecker().check({}, bad)["terms"] == 0


def test_the_witness_records_each_term_and_leader_once_from_the_polls() -> None:
    recorded: list[dict[str, Any]] = []
    witness = LeaderWitness(recorded.append)
    witness({"n1": {"role": "leader", "term": 2}, "n2": {"role": "follower", "term": 2},
             "n3": {"error": "timeout"}})
    witness({"n1": {"role": "leader", "term": 2}, "n2": {"role": "candidate", "term": 3}})
    witness({"n1": {"role": "follower", "term": 3}, "n2": {"role": "leader", "term": 3},
             "n3": {"role": "leader", "term": "x"}})
    assert recorded == [{"term": 2, "node": "n1"}, {"term": 3, "node": "n2"}]


def test_a_leadership_no_poll_saw_is_judged_from_the_nodes_own_record() -> None:
    """forget-vote's two leaders of a term: the second is deposed before any poll. The polls saw n1 lead term 7;
    n4's own record (harness.witness, source "node") says it led term 7 too: invalid, naming both and who told."""
    recorded: list[dict[str, Any]] = []
    witness = LeaderWitness(recorded.append)
    witness({"n1": {"role": "leader", "term": 7}, "n4": {"role": "follower", "term": 8}})
    witness.note(7, "n1", source="node")  # the same leadership from n1's record: not recorded twice
    witness.note(7, "n4", source="node")
    assert recorded == [{"term": 7, "node": "n1"}, {"term": 7, "node": "n4", "source": "node"}]
    history = [{"process": "harness", "type": "info", "f": "leader", "value": v, "time": 10 * (i + 1)}
               for i, v in enumerate(recorded)]
    result = ElectionSafetyChecker().check({}, history)
    assert result["valid"] is False and result["anomaly_time"] == 20
    (violation,) = result["violations"]
    assert violation["leaders"] == ["n1", "n4"]
    assert violation["reported_by"] == {"n1": "a status poll", "n4": "the node's own record"}
