"""Differential test: the search agrees with a brute-force checker on many small random histories.

Histories are built the way real ones arise: up to 5 concurrent processes, each running operations one after
another with small integer times (so equal times occur); every operation takes effect at a random instant of its
interval (info ones: at any instant after the call, or never) and its result is computed from that order; then,
half of the time, one result is perturbed, which makes many of them non-linearizable. 5 models x (150 drawn +
2,000 seeded) histories.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from checker_bruteforce import brute_force
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.history import pair, validate
from checker.linearizability import split
from checker.models import make_model
from checker.search import search

HYPOTHESIS_EXAMPLES = 150  # per model, every choice drawn from Hypothesis (it shrinks these well)
BATCHES, BATCH = 100, 20  # per model, histories from Hypothesis-seeded generators: 5 x 2,000 = 10,000 more
MODELS = ("register", "cas-register", "versioned-kv", "set", "mutex")


Ints = Callable[[int, int], int]  # draws an int in [lo, hi]: from Hypothesis, or from a seeded random.Random


def _pick(ints: Ints, options: Sequence[Any]) -> Any:
    return options[ints(0, len(options) - 1)]


def _invoke_value(model: str, f: str, ints: Ints) -> Any:
    if model in ("register", "cas-register"):
        if f == "write":
            return ints(0, 2)
        if f == "cas":
            return [ints(0, 2), ints(0, 2)]
        return None
    if model == "versioned-kv":
        if f == "put":
            return {"value": _pick(ints, "ab"), "version": ints(0, 2)}
        if f == "delete":
            return {"version": ints(1, 2)}
        return None
    if model == "set":
        return ints(0, 2) if f == "add" else None
    return None


FS = {
    "register": ("read", "write"),
    "cas-register": ("read", "write", "cas"),
    "versioned-kv": ("get", "put", "delete"),
    "set": ("read", "add"),
    "mutex": ("acquire", "release"),
}


def _apply(model: str, f: str, value: Any, state: Any) -> tuple[str, Any, Any, str | None]:
    """(type, result, new state, error) of an op taking effect in `state` (the simulated system)."""
    if model in ("register", "cas-register"):
        if f == "read":
            return "ok", state, state, None
        if f == "write":
            return "ok", None, value, None
        return ("ok", None, value[1], None) if state == value[0] else ("fail", None, state, None)
    if model == "versioned-kv":
        current, version = state
        if f == "get":
            return "ok", {"value": current, "version": version}, state, None
        expected = value["version"]
        if version == 0 and expected > 0:
            return "fail", None, state, "no-key"
        if version != expected:
            return "fail", None, state, "version-mismatch"
        if f == "put":
            return "ok", {"version": expected + 1}, (value["value"], expected + 1), None
        return "ok", {"version": 0}, (None, 0), None
    if model == "set":
        if f == "add":
            return "ok", None, state | {value}, None
        return "ok", sorted(state), state, None
    if f == "acquire":
        return ("fail", None, state, None) if state else ("ok", None, True, None)
    return ("ok", None, False, None) if state else ("fail", None, state, None)


INITIAL = {"register": 0, "cas-register": 0, "versioned-kv": (None, 0), "set": frozenset(), "mutex": False}


def build_history(model: str, ints: Ints, info_one_in: int = 5) -> list[dict[str, Any]]:
    """One random small history of `model` (see the module docstring), every choice made by `ints`."""
    concurrency = ints(1, 5)
    count = ints(1, 7)
    clocks = [0] * concurrency
    process_ids = list(range(concurrency))
    ops = []
    for _ in range(count):
        worker = ints(0, concurrency - 1)
        call = clocks[worker] + ints(0, 2)
        ret = call + ints(0, 4)
        clocks[worker] = ret + 1
        f = _pick(ints, FS[model])
        info = ints(0, info_one_in - 1) == 0
        # the instant it takes effect: inside [call, ret], or for an info op anywhere after its call (or never)
        at = call + ints(0, 16 if info else 2 * (ret - call)) / 2
        lands = not info or ints(0, 1) == 1
        ops.append({"process": process_ids[worker], "f": f, "value": _invoke_value(model, f, ints), "call": call,
                    "ret": ret, "at": at, "info": info, "lands": lands})
        if info:
            process_ids[worker] += concurrency
    state = INITIAL[model]
    for op in sorted(ops, key=lambda o: o["at"]):
        kind, result, new_state, error = _apply(model, op["f"], op["value"], state)
        op["type"], op["result"], op["error"] = kind, result, error
        if op["info"]:
            op["type"], op["result"], op["error"] = "info", None, None
            if not op["lands"]:
                continue
        state = new_state
    if ints(0, 1) == 1:
        victim = _pick(ints, ops)
        if victim["type"] == "ok" and victim["result"] is not None:
            if model == "versioned-kv" and victim["f"] == "get":
                victim["result"] = {"value": _pick(ints, ["a", "b", None]),
                                    "version": ints(0, 3)}
            elif model == "set":
                victim["result"] = [v for v in range(3) if ints(0, 1)]
            elif model != "versioned-kv":
                victim["result"] = ints(0, 2)
        elif victim["type"] in ("ok", "fail") and model in ("versioned-kv", "mutex", "cas-register"):
            victim["type"] = "fail" if victim["type"] == "ok" else "ok"
            if model == "versioned-kv":
                victim["error"] = _pick(ints, ["version-mismatch", "no-key"]) if victim["type"] == "fail" \
                    else None
                victim["result"] = None if victim["type"] == "fail" else {"version": ints(0, 3)}
    raw = []
    for n, op in enumerate(ops):
        key = {"key": "k"} if model == "versioned-kv" else {}
        raw.append((op["call"], 0, n, {"process": op["process"], "type": "invoke", "f": op["f"], **key,
                                        "value": op["value"], "time": op["call"]}))
        if op["info"] and ints(0, 1) == 1:
            continue  # no completion at all: indeterminate as well
        done = {"process": op["process"], "type": op["type"], "f": op["f"], **key, "value": op["result"],
                "time": op["ret"]}
        if op["error"]:
            done["error"] = op["error"]
        raw.append((op["ret"], 1, n, done))
    raw.sort(key=lambda r: (r[0], r[1], r[2]))
    return [{"index": i, **event} for i, (_, _, _, event) in enumerate(raw)]


def check_both(model_name: str, events: list[dict[str, Any]]) -> bool:
    """The brute-force verdict, after asserting that the search agrees, both as it runs by default and when
    forced through its later passes (the relaxed search, the info-op assignment and the exact fallback)."""
    validate(events)
    model = make_model(model_name, INITIAL[model_name] if model_name in ("register", "cas-register") else None)
    parts, _ = split(model, pair(events))
    slow = all(brute_force(model, part.ops) for part in parts)
    fast = all(search(model, part.ops).ok for part in parts)
    forced = all(search(model, part.ops, first_budget=0).ok for part in parts)
    assert fast == slow, f"search says {fast}, brute force says {slow} for {events}"
    assert forced == slow, f"search (later passes) says {forced}, brute force says {slow} for {events}"
    return slow


def _make_tests(model_name: str) -> tuple[Any, Any]:
    @settings(max_examples=HYPOTHESIS_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def drawn(data: Any) -> None:
        check_both(model_name, build_history(model_name, lambda lo, hi: data.draw(st.integers(lo, hi))))

    @settings(max_examples=BATCHES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.randoms(use_true_random=False))
    def batched(rng: random.Random) -> None:
        for _ in range(BATCH):
            check_both(model_name, build_history(model_name, rng.randint))

    return drawn, batched


test_drawn_register, test_batched_register = _make_tests("register")
test_drawn_cas_register, test_batched_cas_register = _make_tests("cas-register")
test_drawn_versioned_kv, test_batched_versioned_kv = _make_tests("versioned-kv")
test_drawn_set, test_batched_set = _make_tests("set")
test_drawn_mutex, test_batched_mutex = _make_tests("mutex")


@pytest.mark.parametrize("model_name", ["cas-register", "versioned-kv", "mutex"])
def test_info_heavy_histories(model_name: str) -> None:
    """Half the ops indeterminate: exercises the relaxed pass, the assignment and the exact fallback more often."""
    rng = random.Random(f"info-heavy {model_name}")
    for _ in range(600):
        check_both(model_name, build_history(model_name, rng.randint, info_one_in=2))


@pytest.mark.parametrize("model_name", MODELS)
def test_the_generated_histories_are_a_real_mix(model_name: str) -> None:
    """Guards the differential test against vacuity: both verdicts occur often, and info ops occur."""
    rng = random.Random(7)
    histories = [build_history(model_name, rng.randint) for _ in range(400)]
    verdicts = [check_both(model_name, events) for events in histories]
    assert 0.2 < sum(verdicts) / len(verdicts) < 0.9
    with_info = sum(1 for events in histories if any(e["type"] == "info" for e in events)
                    or len(events) % 2)
    assert with_info > 100
