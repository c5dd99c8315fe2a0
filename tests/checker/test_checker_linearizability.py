"""Behaviour of the linearizability checker: verdicts, explanations, partitions, time budgets, parallel parts."""

from __future__ import annotations

from typing import Any

import pytest

from checker.generate import generate_kv
from checker.history import HistoryError
from checker.linearizability import check_linearizability
from checker.models import make_model


def history(*ops: tuple) -> list[dict[str, Any]]:
    """Events from (process, type, f, key, value, time[, error]) tuples, indexed in order."""
    events = []
    for i, op in enumerate(ops):
        process, kind, f, key, value, time, *error = op
        event = {"index": i, "process": process, "type": kind, "f": f, "value": value, "time": time}
        if key is not None:
            event["key"] = key
        if error:
            event["error"] = error[0]
        events.append(event)
    return events


KV = make_model("versioned-kv")


def test_a_sequential_kv_history_is_valid() -> None:
    events = history(
        (0, "invoke", "put", "x", {"value": "a", "version": 0}, 0), (0, "ok", "put", "x", {"version": 1}, 1),
        (0, "invoke", "get", "x", None, 2), (0, "ok", "get", "x", {"value": "a", "version": 1}, 3),
        (0, "invoke", "put", "x", {"value": "b", "version": 0}, 4),
        (0, "fail", "put", "x", None, 5, "version-mismatch"),
        (0, "invoke", "delete", "x", {"version": 1}, 6), (0, "ok", "delete", "x", {"version": 0}, 7),
        (0, "invoke", "delete", "x", {"version": 1}, 8), (0, "fail", "delete", "x", None, 9, "no-key"),
    )
    result = check_linearizability(events, KV)
    assert result["valid"] is True
    assert result["parts"] == {"total": 1, "valid": 1, "invalid": [], "unknown": [], "skipped": []}


def test_a_stale_read_names_the_key_and_the_read() -> None:
    events = history(
        (0, "invoke", "put", "y", {"value": "a", "version": 0}, 0), (0, "ok", "put", "y", {"version": 1}, 1),
        (1, "invoke", "put", "x", {"value": "a", "version": 0}, 2), (1, "ok", "put", "x", {"version": 1}, 3),
        (1, "invoke", "put", "x", {"value": "b", "version": 1}, 4), (1, "ok", "put", "x", {"version": 2}, 5),
        (2, "invoke", "get", "x", None, 6), (2, "ok", "get", "x", {"value": "a", "version": 1}, 7),
    )
    result = check_linearizability(events, KV, stop_early=False)
    assert result["valid"] is False
    assert result["parts"]["invalid"] == ["x"] and result["parts"]["valid"] == 1
    failure = result["failure"]
    assert failure["part"] == "x"
    assert failure["longest_prefixes"] == [[2, 4]]
    assert failure["longest_prefix_states"] == [["a@1", "b@2"]]
    assert failure["stuck"] == [{"op": 6, "description": "get x -> a@1", "state_before": "b@2"}]
    assert "key x" in failure["explanation"] and "op 6" in failure["explanation"]
    assert {op["id"] for op in failure["ops"]} == {2, 4, 6}
    op = next(op for op in failure["ops"] if op["id"] == 6)
    assert op == {"id": 6, "process": 2, "f": "get", "call": 6, "return": 7, "invoke_index": 6,
                  "complete_index": 7, "type": "ok", "description": "get x -> a@1"}
    assert result["anomaly_time"] == 7  # the stale read's completion: when the anomaly became visible


def test_a_refusal_is_checked_as_an_observation() -> None:
    # the key is absent, so a create cannot be refused with version-mismatch
    events = history((0, "invoke", "put", "k", {"value": "a", "version": 0}, 0),
                     (0, "fail", "put", "k", None, 1, "version-mismatch"))
    result = check_linearizability(events, KV)
    assert result["valid"] is False
    assert result["failure"]["stuck"][0]["op"] == 0
    assert result["failure"]["stuck"][0]["state_before"] == "absent"
    # a refusal for another reason means only "no effect": nothing to check
    events[1]["error"] = "not-leader"
    assert check_linearizability(events, KV)["valid"] is True


def test_an_info_write_may_land_late_or_never() -> None:
    events = history(
        (0, "invoke", "put", "k", {"value": "a", "version": 0}, 0), (0, "info", "put", "k", None, 1, "timeout"),
        (1, "invoke", "get", "k", None, 2), (1, "ok", "get", "k", {"value": None, "version": 0}, 3),
        (1, "invoke", "get", "k", None, 4), (1, "ok", "get", "k", {"value": "a", "version": 1}, 5),
    )
    assert check_linearizability(events, KV)["valid"] is True  # it landed after the first read
    assert check_linearizability(events[:4], KV)["valid"] is True  # or never
    events[5]["value"] = {"value": "a", "version": 2}
    result = check_linearizability(events, KV)
    assert result["valid"] is False and result["anomaly_time"] == 5
    assert "anomaly_time" not in check_linearizability(events[:4], KV)


def test_a_failed_op_certainly_had_no_effect() -> None:
    events = history(
        (0, "invoke", "write", None, 1, 0), (0, "fail", "write", None, None, 1),
        (1, "invoke", "read", None, None, 2), (1, "ok", "read", None, 1, 3),
    )
    result = check_linearizability(events, make_model("register", 0))
    assert result["valid"] is False and result["failure"]["part"] is None
    assert "read -> 1" in result["failure"]["stuck"][0]["description"]


def test_initial_value_matters() -> None:
    events = history((0, "invoke", "read", None, None, 0), (0, "ok", "read", None, 3, 1))
    assert check_linearizability(events, make_model("register", 3))["valid"] is True
    assert check_linearizability(events, make_model("register"))["valid"] is False


def test_registers_partition_by_key() -> None:
    events = history(
        (0, "invoke", "write", "a", 1, 0), (1, "invoke", "write", "b", 2, 1),
        (0, "ok", "write", "a", None, 2), (1, "ok", "write", "b", None, 3),
        (0, "invoke", "read", "a", None, 4), (0, "ok", "read", "a", 1, 5),
        (1, "invoke", "read", "b", None, 6), (1, "ok", "read", "b", 1, 7),
    )
    result = check_linearizability(events, make_model("cas-register", 0))
    assert result["parts"]["total"] == 2 and result["parts"]["invalid"] == ["b"]


def test_partitions_are_independent() -> None:
    """Each key's verdict is the verdict of its ops alone, however the keys interleave."""
    mixed = generate_kv(ops=600, keys=6, processes=8, info_rate=0.1, seed=3, invalid=True)
    bad = mixed.anomaly["key"]
    result = check_linearizability(mixed.events, KV, stop_early=False)
    assert result["parts"]["invalid"] == [bad]
    assert result["parts"]["valid"] == 5 and result["parts"]["skipped"] == []
    for key in ("k0", "k1", "k2", "k3", "k4", "k5"):
        alone = [e for e in mixed.events if e.get("key") == key]
        renumbered = [{**e, "index": i} for i, e in enumerate(alone)]
        assert check_linearizability(renumbered, KV)["valid"] is (key != bad)


def test_the_first_invalid_part_stops_the_others() -> None:
    mixed = generate_kv(ops=600, keys=6, processes=8, info_rate=0.1, seed=3, invalid=True)
    result = check_linearizability(mixed.events, KV)
    assert result["valid"] is False
    parts = result["parts"]
    assert parts["valid"] + len(parts["invalid"]) + len(parts["skipped"]) == 6
    assert parts["skipped"] == sorted(parts["skipped"]) and parts["unknown"] == []


@pytest.mark.parametrize("invalid", [False, True])
def test_generated_histories_get_the_right_verdict_and_evidence(invalid: bool) -> None:
    generated = generate_kv(ops=3000, keys=1, processes=10, info_rate=0.1, seed=11, invalid=invalid)
    result = check_linearizability(generated.events, KV, timeout=120)
    assert result["valid"] is (not invalid)
    if invalid:
        assert result["failure"]["part"] == generated.anomaly["key"]
        assert generated.anomaly["op"] in [s["op"] for s in result["failure"]["stuck"]]


def test_a_time_budget_gives_unknown_naming_the_unchecked_parts() -> None:
    hard = generate_kv(ops=10_000, keys=1, processes=10, info_rate=0.1, seed=0, invalid=True)
    result = check_linearizability(hard.events, KV, timeout=0.3)
    assert result["valid"] == "unknown"
    assert result["parts"]["unknown"] == ["k0"]
    assert result["unknown_reason"] == "time budget of 0.3 s ran out; unchecked parts: k0"


def test_parallel_parts_agree_with_sequential() -> None:
    generated = generate_kv(ops=4000, keys=20, processes=10, info_rate=0.1, seed=5, invalid=True)
    sequential = check_linearizability(generated.events, KV, parallel=False, stop_early=False)
    parallel = check_linearizability(generated.events, KV, parallel=True, stop_early=False)
    assert sequential["valid"] is False and parallel["valid"] is False
    assert parallel["parts"] == sequential["parts"]
    assert parallel["failure"]["part"] == generated.anomaly["key"]
    valid = generate_kv(ops=4000, keys=20, processes=10, info_rate=0.1, seed=5)
    assert check_linearizability(valid.events, KV, parallel=True)["valid"] is True


def test_a_model_that_cannot_read_an_op_names_its_line() -> None:
    events = history((0, "invoke", "put", "k", "oops", 0), (0, "ok", "put", "k", {"version": 1}, 1))
    with pytest.raises(HistoryError) as caught:
        check_linearizability(events, KV)
    assert caught.value.line == 1 and "put" in str(caught.value)
    events = history((0, "invoke", "frob", "k", None, 0), (0, "ok", "frob", "k", None, 1))
    with pytest.raises(HistoryError, match="no operation 'frob'"):
        check_linearizability(events, KV)


def test_every_pass_of_the_search_sees_all_info_outcomes() -> None:
    """Two concurrent unknown creates of a key: a later read of either value is fine, of a third is not.
    Checked with every pass of the search forced (the relaxed search tries each state of the closure)."""
    from checker.history import pair
    from checker.linearizability import split
    from checker.search import search

    for read, expected in (("a", True), ("b", True), ("c", False)):
        events = history(
            (0, "invoke", "put", "k", {"value": "a", "version": 0}, 0),
            (1, "invoke", "put", "k", {"value": "b", "version": 0}, 1),
            (0, "info", "put", "k", None, 2, "timeout"), (1, "info", "put", "k", None, 3, "timeout"),
            (2, "invoke", "get", "k", None, 4), (2, "ok", "get", "k", {"value": read, "version": 1}, 5),
            (2, "invoke", "get", "k", None, 6), (2, "ok", "get", "k", {"value": "a", "version": 1}, 7),
        )
        if read == "b":
            events[7]["value"] = {"value": "b", "version": 1}
        (part,), _ = split(KV, pair(events))
        for budget in (None, 0):
            assert search(KV, part.ops, first_budget=budget).ok is expected, (read, budget)


def test_an_info_op_takes_effect_at_most_once() -> None:
    """The relaxed pass may use the unknown write twice; the assignment notices and the exact pass decides."""
    from checker.history import pair
    from checker.linearizability import split
    from checker.relaxed import relaxed_search
    from checker.search import REUSED, search

    register = make_model("register", 0)
    events = history(
        (0, "invoke", "write", None, 1, 0), (0, "info", "write", None, None, 1),
        (1, "invoke", "read", None, None, 2), (1, "ok", "read", None, 1, 3),
        (1, "invoke", "write", None, 2, 4), (1, "ok", "write", None, None, 5),
        (1, "invoke", "read", None, None, 6), (1, "ok", "read", None, 1, 7),
    )
    (part,), _ = split(register, pair(events))
    regular = [op for op in part.ops if op.ret is not None]
    infos = [op for op in part.ops if op.ret is None]
    relaxed = relaxed_search(register, regular, infos, 0, None, None)
    assert relaxed.ok is None and relaxed.reason == REUSED
    assert search(register, part.ops, first_budget=0).ok is False
    assert search(register, part.ops).ok is False
    # with a second unknown write of 1, the history is fine
    two = events[:2] + history((2, "invoke", "write", None, 1, 0), (2, "info", "write", None, None, 1))
    two = [{**e, "index": i} for i, e in enumerate(two + events[2:])]
    (part,), _ = split(register, pair(two))
    assert search(register, part.ops, first_budget=0).ok is True


def test_users_can_register_their_own_model() -> None:
    """A counter: `add` (invoke value = amount), `read` (ok value = the total); without the optional hints."""
    from checker.models import MODELS, UNKNOWN, register_model

    class Counter:
        name = "counter"

        def init(self) -> int:
            return 0

        def partition_key(self, op: Any) -> Any:
            return op.key

        def encode(self, op: Any) -> Any:
            if op.complete_type == "fail" or (op.f == "read" and op.is_info):
                return None
            if op.f == "add":
                return ("add", op.input), (UNKNOWN if op.is_info else None)
            return ("read",), op.output

        def step(self, state: int, input: Any, output: Any) -> tuple[bool, int]:
            if input[0] == "add":
                return True, state + input[1]
            return state == output, state

        def describe_operation(self, input: Any, output: Any) -> str:
            return f"add {input[1]}" if input[0] == "add" else f"read -> {output}"

        def describe_state(self, state: int) -> str:
            return str(state)

    register_model("counter", lambda initial=None, jepsen=False: Counter())
    try:
        events = history(
            (0, "invoke", "add", None, 2, 0), (1, "invoke", "add", None, 3, 1), (0, "ok", "add", None, None, 2),
            (1, "info", "add", None, None, 3), (2, "invoke", "read", None, None, 4), (2, "ok", "read", None, 5, 5),
        )
        assert check_linearizability(events, make_model("counter"))["valid"] is True
        from checker.history import pair
        from checker.linearizability import split
        from checker.search import search

        (part,), _ = split(make_model("counter"), pair(events))
        assert search(make_model("counter"), part.ops, first_budget=0).ok is True
        events[5]["value"] = 4
        result = check_linearizability(events, make_model("counter"))
        assert result["valid"] is False and result["failure"]["stuck"][0]["description"] == "read -> 4"
    finally:
        del MODELS["counter"]
