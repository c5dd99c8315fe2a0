"""Realistic versioned-kv histories for tests, benchmarks and report demos (docs/history.md format).

`generate_kv(ops=..., keys=..., processes=..., info_rate=..., seed=..., invalid=...)` simulates a linearizable
versioned key-value store: `processes` concurrent clients each run one operation at a time with random think times
and latencies; every operation takes effect at a random instant inside its interval (an indeterminate one, with
probability `info_rate`, takes effect with probability 1/2 at an instant that may lie after its `info` completion,
and its client continues under a new process id, as Jepsen's do). Puts and deletes carry an expected version
that is usually right, so refusals (`fail` with `version-mismatch` / `no-key`) occur too.

With `invalid=True` one ok get is made to return a stale state: one written by a put P, after which some ok write X
(call after P's return) changed the key, before the get was called. Since every put writes a unique value, no
linearization exists; `Generated.anomaly` names the key and the get's op id (its invoke index).
Deterministic for a given seed (a `random.Random` of its own).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Generated:
    events: list[dict[str, Any]]
    anomaly: dict[str, Any] | None  # {"key", "op", "kind", "stale"} for an invalid history


@dataclass(slots=True)
class _Op:
    worker: int
    process: int
    key: str
    f: str
    call: int
    ret: int
    at: int  # the instant it takes effect
    info: bool
    effect: bool  # for info ops: whether it takes effect at all
    invoke_value: Any = None
    result: str = "ok"  # ok | fail | info
    value: Any = None
    error: str | None = None


def generate_kv(*, ops: int = 1000, keys: int = 1, processes: int = 10, info_rate: float = 0.1, seed: int = 0,
                invalid: bool = False, get_rate: float = 0.5, delete_rate: float = 0.05,
                wrong_version_rate: float = 0.2) -> Generated:
    """A history of `ops` operations (see the module docstring). Keys are "k0", "k1", ..."""
    if ops < 1 or keys < 1 or processes < 1:
        raise ValueError("ops, keys and processes must be positive")
    rng = random.Random(seed)
    key_names = [f"k{i}" for i in range(keys)]
    ready = [(rng.randrange(1_000_000), w) for w in range(processes)]
    heapq.heapify(ready)
    process_of = list(range(processes))
    planned: list[_Op] = []
    for _ in range(ops):
        now, worker = heapq.heappop(ready)
        call = now + rng.randrange(1, 200_000)
        latency = rng.randrange(50_000, 3_000_000)
        ret = call + latency
        info = rng.random() < info_rate
        at = call + rng.randrange(0, latency + 1)
        effect = True
        if info:
            effect = rng.random() < 0.5
            at = call + rng.randrange(0, 3 * latency)  # a timed-out request may still land later
        roll = rng.random()
        f = "get" if roll < get_rate else ("delete" if roll < get_rate + delete_rate else "put")
        planned.append(_Op(worker, process_of[worker], rng.choice(key_names), f, call, ret, at, info, effect))
        if info:
            process_of[worker] += processes
        heapq.heappush(ready, (ret, worker))

    states: dict[str, tuple[Any, int]] = {k: (None, 0) for k in key_names}
    counter = 0
    for op in sorted(planned, key=lambda o: o.at):
        value, version = states[op.key]
        if op.f == "get":
            op.invoke_value = None
            op.value = {"value": value, "version": version}
        else:
            if rng.random() < wrong_version_rate:
                expected = max(0 if op.f == "put" else 1, version + rng.choice((-1, 1, 2)))
            else:
                expected = version if (version or op.f == "put") else 1
            if op.f == "put":
                counter += 1
                op.invoke_value = {"value": f"v{counter}", "version": expected}
            else:
                op.invoke_value = {"version": expected}
            if version == 0 and expected > 0:
                op.result, op.error = "fail", "no-key"
            elif version != expected:
                op.result, op.error = "fail", "version-mismatch"
            elif op.f == "put":
                op.value = {"version": expected + 1}
                if not op.info or op.effect:
                    states[op.key] = (op.invoke_value["value"], expected + 1)
            else:
                op.value = {"version": 0}
                if not op.info or op.effect:
                    states[op.key] = (None, 0)
        if op.info:
            op.result, op.value, op.error = "info", None, "timeout"

    anomaly = _inject_stale_read(planned, rng) if invalid else None
    raw: list[tuple[int, int, int, dict[str, Any]]] = []
    for n, op in enumerate(planned):
        invoke: dict[str, Any] = {"process": op.process, "type": "invoke", "f": op.f, "key": op.key,
                                  "value": op.invoke_value, "time": op.call}
        done: dict[str, Any] = {"process": op.process, "type": op.result, "f": op.f, "key": op.key,
                                "value": op.value, "time": op.ret}
        if op.error:
            done["error"] = op.error
        raw.append((op.call, 0, n, invoke))
        raw.append((op.ret, 1, n, done))
    raw.sort(key=lambda r: (r[0], r[1], r[2]))
    events = []
    op_ids: dict[int, int] = {}
    for index, (_, kind, n, event) in enumerate(raw):
        events.append({"index": index, **event})
        if kind == 0:
            op_ids[n] = index
    if anomaly is not None:
        anomaly["op"] = op_ids[anomaly.pop("_n")]
    return Generated(events, anomaly)


def _inject_stale_read(planned: list[_Op], rng: random.Random) -> dict[str, Any]:
    """Make one ok get return a state that certainly cannot be read any more (see the module docstring)."""
    gets = [(n, op) for n, op in enumerate(planned) if op.f == "get" and op.result == "ok"]
    if not gets:
        raise ValueError("history too small to inject a stale read; generate more operations")
    middle = len(gets) // 2
    order = sorted(range(len(gets)), key=lambda i: abs(i - middle))  # prefer a get near the middle
    for i in order[:200]:
        n, get = gets[i]
        # P: an ok put that returned before an ok write X on the key that returned before the get was called
        writes = [op for op in planned if op.key == get.key and op.f != "get" and op.result == "ok"]
        xs = [x for x in writes if x.ret < get.call]
        if not xs:
            continue
        latest_x_call = max(x.call for x in xs)
        ps = [p for p in writes if p.f == "put" and p.ret < latest_x_call]
        if ps:
            key = get.key
            break
    else:
        raise ValueError("history too small to inject a stale read; generate more operations")
    stale = rng.choice(ps)
    get.value = {"value": stale.invoke_value["value"], "version": stale.invoke_value["version"] + 1}
    return {"key": key, "kind": "stale-read", "stale": get.value, "_n": n}
