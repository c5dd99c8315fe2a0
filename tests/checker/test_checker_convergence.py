"""checker.ConvergenceChecker over synthetic histories: the converge observation (docs/history.md) judged."""

from __future__ import annotations

from typing import Any

from checker import ConvergenceChecker, parse_jsonl

D1, D2 = "a" * 64, "b" * 64


def node(applied: int, digest: str, last_index: int | None = None, last_term: int = 2) -> dict[str, Any]:
    return {"applied": applied, "digest": digest, "last_index": applied if last_index is None else last_index,
            "last_term": last_term, "commit": applied, "term": 2, "role": "follower"}


def history(value: Any, *, extra: int = 0) -> list[dict[str, Any]]:
    """Two client ops, then the converge observation (after `extra` earlier observations, all skipped)."""
    events: list[dict[str, Any]] = [
        {"process": 0, "type": "invoke", "f": "get", "key": "k0", "value": None, "time": 1},
        {"process": 0, "type": "ok", "f": "get", "key": "k0", "value": {"value": None, "version": 0}, "time": 2},
    ]
    for i in range(extra):
        events.append({"process": "harness", "type": "info", "f": "converge", "value": {"skipped": f"old {i}"},
                       "time": 3})
    events.append({"process": "harness", "type": "info", "f": "converge", "value": value, "time": 4})
    for i, e in enumerate(events):
        e["index"] = i
    return events


def check(value: Any, **kw: Any) -> dict[str, Any]:
    return ConvergenceChecker().check({}, history(value, **kw))


def test_replicas_at_one_index_with_one_digest_are_valid() -> None:
    res = check({"converged": True, "polls": 1, "elapsed_s": 0.0,
                 "nodes": {"n1": node(40, D1), "n2": node(40, D1), "n3": node(40, D1)}})
    assert res["valid"] is True and res["converged"] is True and res["mismatches"] == []
    assert "anomaly_time" not in res
    assert res["applied"] == {"n1": 40, "n2": 40, "n3": 40}


def test_a_digest_mismatch_at_one_applied_index_is_invalid_and_names_the_nodes() -> None:
    res = check({"converged": True, "polls": 1, "elapsed_s": 0.0,
                 "nodes": {"n1": node(40, D1), "n2": node(40, D2), "n3": node(40, D1)}})
    assert res["valid"] is False and res["anomaly_time"] == 4  # the observation's time (harness.detection)
    assert res["mismatches"] == [{"applied": 40, "digests": {D1: ["n1", "n3"], D2: ["n2"]}}]
    assert "n2" in res["explanation"] and "n1+n3" in res["explanation"] and "40" in res["explanation"]


def test_nodes_that_never_converged_are_reported_not_judged_but_equal_indexes_still_compared() -> None:
    agreeing: dict[str, Any] = {"converged": False, "polls": 30, "elapsed_s": 15.0,
                "nodes": {"n1": node(40, D1), "n2": node(40, D1), "n3": node(12, D2),
                          "n4": {"error": "not running"}, "n5": {"error": "TimeoutError"}}}
    res = check(agreeing)
    assert res["valid"] is True and res["converged"] is False
    assert res["applied"] == {"n1": 40, "n2": 40, "n3": 12}
    assert res["unreachable"] == {"n4": "not running", "n5": "TimeoutError"}
    assert "did not reach one applied index" in res["explanation"] and "n5 (TimeoutError)" in res["explanation"]
    disagreeing = {**agreeing, "nodes": {**agreeing["nodes"], "n2": node(40, D2)}}
    assert check(disagreeing)["valid"] is False


def test_different_last_terms_at_one_last_index_are_reported_only() -> None:
    res = check({"converged": True, "polls": 1, "elapsed_s": 0.0,
                 "nodes": {"n1": node(40, D1, 44, 3), "n2": node(40, D1, 44, 2), "n3": node(40, D1, 41, 3)}})
    assert res["valid"] is True
    assert res["last_term_differences"] == [{"last_index": 44, "last_terms": {"3": ["n1"], "2": ["n2"]}}]


def test_no_observation_or_a_skipped_one_is_valid_and_says_so() -> None:
    events = history({"skipped": "the DB (X) has no StateDigest capability"})
    assert ConvergenceChecker().check({}, events) == {"valid": True,
                                                      "skipped": "the DB (X) has no StateDigest capability"}
    assert ConvergenceChecker().check({}, events[:2])["skipped"] == "no converge observation in the history"


def test_the_last_observation_is_judged_and_a_malformed_one_is_unknown() -> None:
    bad = {"converged": True, "nodes": {"n1": node(7, D1), "n2": node(7, D2)}}
    assert check(bad, extra=2)["valid"] is False
    assert check({"converged": True})["valid"] == "unknown"


def test_the_observation_passes_the_history_reader() -> None:
    """A history holding the event is a valid history (process "harness" is a lab process) and re-checks alike."""
    import json

    events = history({"converged": True, "nodes": {"n1": node(7, D1), "n2": node(7, D2)}})
    parsed = parse_jsonl("\n".join(json.dumps(e) for e in events))
    assert ConvergenceChecker().check({}, parsed)["valid"] is False
