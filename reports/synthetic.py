"""Realistic synthetic run directories (docs/store.md) for the report's tests and benchmark.

`make_run(run_dir, ...)` writes test.json, history.jsonl, cluster.jsonl, results.json, harness.log and per-node logs
and metrics, as the harness would after a `versioned-kv` run on a five-node cluster with partitions, kills and
pauses. The history is produced by a seeded simulation: every worker runs one operation at a time, an operation
takes effect at one instant inside its interval, faults make operations fail (certainly no effect) or time out
(`info`, effect unknown; the worker then continues under a new process id), and the results are computed by
applying the effects in the order of those instants, so the history is linearizable unless `invalid=True`
injects one stale read (with a matching checker failure record in results.json).

Options for the edge cases a report must survive: `evil=True` puts HTML and script in keys, values, errors, node
names of logs and options; `partial=True` leaves the directory as a controller that died mid-run would (no
results.json, a torn last history line, no node directories).

Deterministic for a given seed. No I/O outside `run_dir`. Not used by the real harness.
"""

from __future__ import annotations

import heapq
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

NODES = ("n1", "n2", "n3", "n4", "n5")
START_TIME_NS = 1_000_000_000_000  # an arbitrary monotonic origin: reports must subtract test.json's start_time
START_WALL = datetime(2026, 11, 27, 3, 0, 0, tzinfo=UTC)
EVIL = '<script>alert("x")</script><!--'


@dataclass(slots=True)
class _Op:
    worker: int
    process: int
    f: str
    key: str
    call: int  # ns, run-relative
    lin: int  # the instant it takes effect (if it does)
    ret: int
    outcome: str  # ok | fail | info | pending
    takes_effect: bool
    invoke_value: Any = None
    value: Any = None
    error: str | None = None
    node: str = "n1"
    invoke_index: int = -1
    stale: bool = False


@dataclass(slots=True)
class _Fault:
    kind: str
    start: int
    stop: int | None
    targets: list[Any]
    details: dict[str, Any] = field(default_factory=dict)


def _faults(rng: random.Random, duration: int, scale: float) -> list[_Fault]:
    """A schedule like the harness's: a fault every ~12 s lasting ~5 s (times `scale`), kinds in turn."""
    kinds = ["partition", "kill", "pause", "partition", "clock"]
    faults: list[_Fault] = []
    t = int(3_000_000_000 * scale)
    i = 0
    while t < duration:
        kind = kinds[i % len(kinds)]
        length = int(rng.randint(3_000, 6_000) * 1_000_000 * scale)
        if kind == "partition":
            nodes = list(NODES)
            rng.shuffle(nodes)
            minority = sorted(nodes[:2])
            majority = sorted(nodes[2:])
            targets: list[Any] = [minority, majority]
            details: dict[str, Any] = {"grudge": {n: majority for n in minority} | {n: minority for n in majority}}
        elif kind == "clock":
            targets = [rng.choice(NODES)]
            details = {"offset_ms": rng.choice([-2000, 1500, 30000])}
        else:
            targets = [rng.choice(NODES)]
            details = {}
        faults.append(_Fault(kind, t, t + length, targets, details))
        t += length + int(rng.randint(5_000, 9_000) * 1_000_000 * scale)
        i += 1
    return faults


def _active(faults: list[_Fault], t: int) -> list[_Fault]:
    return [f for f in faults if f.start <= t and (f.stop is None or t < f.stop)]


def _fmt_state(state: tuple[Any, int]) -> str:
    value, version = state
    return "absent" if version == 0 else f"{value}@{version}"


def make_run(
    run_dir: Path,
    *,
    n_ops: int = 2_000,
    seed: int = 1,
    concurrency: int = 10,
    keys: int = 8,
    invalid: bool = False,
    evil: bool = False,
    partial: bool = False,
    test_name: str = "raftkv-partition",
    real_checker: bool | None = None,
) -> Path:
    """Write a synthetic run directory with about `n_ops` client operations; return `run_dir`.

    The throughput is about 1,000 operations per second (10 workers, ~8 ms per operation), so 100,000 operations
    span ~100 s of run time, with a fault schedule over all of it.

    results.json comes from the project's own linearizability checker (checker.linearizability) when
    `real_checker` is true (default: for runs of at most 20,000 operations), so its failure record is the real
    thing; otherwise from the generator's knowledge of the stale read it injected (same shape, instant).
    """
    rng = random.Random(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    key_names = [f"k{i}" for i in range(keys)]
    if evil:
        key_names[0] = EVIL
        key_names[1] = "k&amp;<b>bold</b>"
    est_duration = int(n_ops / (concurrency / 0.009) * 1e9)
    # A schedule over a generous horizon; faults that start after the last operation are dropped below.
    scale = min(1.0, est_duration / 40e9)
    timeout = int(min(1e9, max(50e6, est_duration / 10)))  # a client's request timeout
    faults = _faults(rng, 10 * est_duration, scale=scale)

    # 1. Timings: each worker runs one op at a time; faults slow ops down, fail them, or time them out.
    ops: list[_Op] = []
    next_process = concurrency
    clocks = [rng.randint(0, 5_000_000) for _ in range(concurrency)]
    processes = list(range(concurrency))
    heap = [(clocks[w], w) for w in range(concurrency)]
    heapq.heapify(heap)
    while len(ops) < n_ops:
        call, w = heapq.heappop(heap)
        active = _active(faults, call)
        f = rng.choices(["get", "put", "delete"], weights=[5, 4, 1])[0]
        key = rng.choice(key_names)
        node = rng.choice(NODES)
        latency = int(rng.lognormvariate(15.6, 0.5))  # median ~6 ms
        outcome, takes_effect, error = "ok", True, None
        if active:
            r = rng.random()
            if r < 0.30:
                outcome, takes_effect, error = "info", rng.random() < 0.5, "timeout"
                latency = timeout + rng.randint(0, 5_000_000)
            elif r < 0.45:
                outcome, takes_effect, error = "fail", False, "not-leader"
                latency = rng.randint(200_000, 2_000_000)
            else:
                latency = int(latency * rng.uniform(2, 20))
        op = _Op(w, processes[w], f, key, call, call + rng.randint(0, latency), call + latency, outcome,
                 takes_effect, error=error, node=node)
        ops.append(op)
        if outcome == "info":
            processes[w] = next_process
            next_process += 1
        heapq.heappush(heap, (op.ret + rng.randint(500_000, 3_000_000), w))
    last_call = max(op.call for op in ops)
    faults = [f for f in faults if f.start < last_call]
    if faults and partial:
        faults[-1].stop = None
    elif faults and faults[-1].stop is not None and faults[-1].stop > last_call:
        faults[-1].stop = last_call
    if partial:
        # The controller died: ops still in flight at the end never completed, the last fault is never healed.
        end = last_call
        for op in ops:
            if op.ret > end:
                op.outcome, op.takes_effect, op.error = "pending", rng.random() < 0.5, None

    # 2. Effects in the order of their instants, so every result is one the model allows.
    state: dict[str, tuple[Any, int]] = {k: (None, 0) for k in key_names}
    # Per key, the acknowledged puts in effect order: (op, state before it).
    writes: dict[str, list[tuple[_Op, tuple[Any, int]]]] = {k: [] for k in key_names}
    stale_done = False
    stale_op: _Op | None = None
    stale_state: tuple[Any, int] | None = None
    counter = 0
    for op in sorted(ops, key=lambda o: o.lin):
        value, version = state[op.key]
        if op.f == "get":
            op.invoke_value = None
            # A read of the state before a put that was acknowledged before this read was even invoked: no
            # linearization can explain it (versions only grow between deletes, so that state cannot recur).
            done = [(w, before) for w, before in writes[op.key] if w.ret < op.call]
            if (invalid and not stale_done and op.outcome == "ok" and op.call > last_call // 3 and done
                    and done[-1][1][1] > 0 and version > done[-1][1][1]):
                old = done[-1][1]
                op.value = {"value": old[0], "version": old[1]}
                op.stale = True
                stale_done = True
                stale_op, stale_state = op, (value, version)
            else:
                op.value = {"value": value, "version": version}
            continue
        expected = version if rng.random() < 0.8 else max(0, version + rng.choice([-1, 1]))
        if op.f == "delete" and expected == 0:
            expected = 1
        counter += 1
        new_value: Any = f"v{counter}"
        if evil and counter % 7 == 0:
            new_value = EVIL + str(counter)
        op.invoke_value = ({"value": new_value, "version": expected} if op.f == "put" else {"version": expected})
        if expected != version:
            # A definite refusal, whatever the faults.
            if op.outcome != "pending":
                op.outcome, op.error = "fail", ("no-key" if version == 0 else "version-mismatch")
            op.takes_effect = False
            op.value = None
            continue
        if op.outcome == "fail":
            continue
        if op.takes_effect:
            if op.f == "put" and op.outcome == "ok":
                writes[op.key].append((op, (value, version)))
            elif op.f == "delete":
                writes[op.key].clear()
            state[op.key] = (new_value, version + 1) if op.f == "put" else (None, 0)
        if op.outcome == "ok":
            op.value = {"version": version + 1} if op.f == "put" else {"version": 0}

    # 3. The history: nemesis events and client events in time order.
    events: list[tuple[int, int, dict[str, Any]]] = []
    seq = 0
    for op in ops:
        inv: dict[str, Any] = {"process": op.process, "type": "invoke", "f": op.f, "key": op.key,
                               "value": op.invoke_value, "time": START_TIME_NS + op.call, "node": op.node}
        events.append((op.call, seq, inv))
        seq += 1
        if op.outcome != "pending":
            comp: dict[str, Any] = {"process": op.process, "type": op.outcome, "f": op.f, "key": op.key,
                                    "value": op.value if op.outcome == "ok" else op.invoke_value,
                                    "time": START_TIME_NS + op.ret, "node": op.node}
            if op.error:
                comp["error"] = op.error + (EVIL if evil and op.error == "timeout" and seq % 5 == 0 else "")
            events.append((op.ret, seq, comp))
            seq += 1
        op.invoke_value = inv  # keep the event to learn its index below
    for fault in faults:
        for phase, t in (("start", fault.start), ("stop", fault.stop)):
            if t is None:
                continue
            value = {"fault": fault.kind, "targets": fault.targets, **fault.details}
            events.append((t, seq, {"process": "nemesis", "type": "invoke", "f": phase, "value": value,
                                    "time": START_TIME_NS + t}))
            events.append((t + 2_000_000, seq + 1, {"process": "nemesis", "type": "info", "f": phase,
                                                    "value": value, "time": START_TIME_NS + t + 2_000_000,
                                                    "node": ",".join(_flat(fault.targets))}))
            seq += 2
    events.sort(key=lambda e: (e[0], e[1]))
    lines = []
    for index, (_, _, event) in enumerate(events):
        event["index"] = index
        lines.append(json.dumps({"index": index, **{k: v for k, v in event.items() if k != "index"}}))
    for op in ops:
        op.invoke_index = op.invoke_value["index"]
    if partial:
        lines[-1] = lines[-1][: len(lines[-1]) // 2]  # the controller died writing its last line
    text = "\n".join(lines) + ("" if partial else "\n")
    (run_dir / "history.jsonl").write_text(text)
    end_ns = events[-1][0]

    _write_test(run_dir, rng, seed=seed, concurrency=concurrency, evil=evil, test_name=test_name,
                n_ops=n_ops, end_ns=end_ns)
    _write_cluster(run_dir, rng, faults, end_ns)
    _write_harness_log(run_dir, faults, end_ns, partial)
    if partial:
        return run_dir
    _write_nodes(run_dir, rng, faults, end_ns, evil)
    if real_checker is None:
        real_checker = n_ops <= 20_000
    _write_results(run_dir, ops, key_names, stale_op, stale_state, faults,
                   [json.loads(line) for line in lines] if real_checker else None)
    return run_dir


def _flat(targets: list[Any]) -> list[str]:
    out: list[str] = []
    for t in targets:
        out.extend(_flat(t) if isinstance(t, list) else [str(t)])
    return out


def _wall(t: int) -> datetime:
    return START_WALL + timedelta(microseconds=t // 1000)


def _write_test(run_dir: Path, rng: random.Random, *, seed: int, concurrency: int, evil: bool, test_name: str,
                n_ops: int, end_ns: int) -> None:
    test = {
        "name": test_name,
        "workload": "versioned-kv",
        "nemesis": ["partition", "kill", "pause", "clock"],
        "seed": seed,
        "start_wall": START_WALL.isoformat(),
        "start_time": START_TIME_NS,
        "options": {"concurrency": concurrency, "time_limit_s": round(end_ns / 1e9), "rate": 1000,
                    "nemesis_interval_s": 12, "ops": n_ops, "note": EVIL if evil else "synthetic run"},
        "versions": {"python": "3.11.2", "raftkv": "0.1.0", "harness": "0.1.0"},
        "hosts": [{"name": n, "address": f"10.77.0.{i + 1}"} for i, n in enumerate(NODES)],
        "backend": "netns",
    }
    (run_dir / "test.json").write_text(json.dumps(test, indent=2))


def _write_cluster(run_dir: Path, rng: random.Random, faults: list[_Fault], end_ns: int) -> None:
    """Polls every 250 ms of each node: a leader change at every fault, the minority's terms climbing while cut
    off, a killed or paused node's polls failing."""
    leader, term, commit = "n1", 1, 0
    lines = []
    t = 0
    last_faults: tuple[int, ...] = ()
    minority_terms: dict[str, int] = {}
    while t <= end_ns:
        active = _active(faults, t)
        ids = tuple(id(f) for f in active)
        if ids != last_faults:
            term += 1
            down = set().union(*(_flat(f.targets[:1]) for f in active)) if active else set()
            leader = rng.choice([n for n in NODES if n not in down] or list(NODES))
            last_faults = ids
        commit += rng.randint(50, 300) if not active else rng.randint(0, 40)
        cut: set[str] = set()
        dead: set[str] = set()
        for f in active:
            if f.kind == "partition":
                cut.update(_flat(f.targets[0]))
            elif f.kind in ("kill", "pause"):
                dead.update(_flat(f.targets))
        for n in NODES:
            if n in dead:
                lines.append({"time": START_TIME_NS + t, "node": n,
                              "error": "connection refused" if any(f.kind == "kill" for f in active)
                              else "timeout"})
                continue
            if n in cut:
                minority_terms[n] = minority_terms.get(n, term) + (1 if rng.random() < 0.2 else 0)
                lines.append({"time": START_TIME_NS + t, "node": n, "role": "candidate",
                              "term": minority_terms[n], "leader": None, "commit": commit - 500,
                              "applied": commit - 500})
                continue
            minority_terms.pop(n, None)
            lines.append({"time": START_TIME_NS + t, "node": n, "role": "leader" if n == leader else "follower",
                          "term": term, "leader": leader, "commit": commit, "applied": commit})
        t += 250_000_000
    (run_dir / "cluster.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def _write_harness_log(run_dir: Path, faults: list[_Fault], end_ns: int, partial: bool) -> None:
    out = [f"{_wall(0).isoformat()} INFO harness: run starts; nodes {', '.join(NODES)}"]
    for f in faults:
        out.append(f"{_wall(f.start).isoformat()} INFO nemesis: start {f.kind} targets={f.targets}")
        if f.stop is not None:
            out.append(f"{_wall(f.stop).isoformat()} INFO nemesis: stop {f.kind}")
    if partial:
        out.append(f"{_wall(end_ns).isoformat()} ERROR harness: controller killed")
    else:
        out.append(f"{_wall(end_ns).isoformat()} INFO harness: run ends; checking")
    (run_dir / "harness.log").write_text("\n".join(out) + "\n")


def _write_nodes(run_dir: Path, rng: random.Random, faults: list[_Fault], end_ns: int, evil: bool) -> None:
    for i, n in enumerate(NODES):
        d = run_dir / n
        d.mkdir(exist_ok=True)
        lines = []
        t = 0
        while t < end_ns:
            msg = rng.choice(["raft: append entries from leader", "kv: applied batch", "raft: heartbeat ok",
                              "server: client request served"])
            lines.append(f"{_wall(t).isoformat()} INFO {n} {msg} idx={t // 1_000_000}")
            t += rng.randint(50, 400) * 1_000_000
        for f in faults:
            if n in _flat(f.targets):
                lines.append(f"{_wall(f.start + 1_000_000).isoformat()} WARN {n} raft: lost contact; "
                             f"{f.kind} {'<img src=x onerror=alert(1)>' if evil else ''}")
        lines.sort()
        lines.insert(3, "Traceback (most recent call last):\n  File \"server.py\", line 1\nValueError: a line "
                        "without a timestamp inherits the previous one")
        (d / "raftkv.log").write_text("\n".join(lines) + "\n")
        (d / "metrics.txt").write_text(
            "# HELP raft_term Current term\n# TYPE raft_term gauge\n"
            f"raft_term {5 + i}\nraft_commit_index {1000 + i}\nraft_is_leader {1 if i == 0 else 0}\n")
    if evil:
        (run_dir / "n1" / "<script>alert(1)<script>.log").write_text("<b>not bold</b>\n")


def _write_results(run_dir: Path, ops: list[_Op], key_names: list[str], stale_op: _Op | None,
                   stale_state: tuple[Any, int] | None, faults: list[_Fault],
                   events: list[dict[str, Any]] | None) -> None:
    by_f: dict[str, dict[str, int]] = {}
    for op in ops:
        by_f.setdefault(op.f, {"ok": 0, "fail": 0, "info": 0})
        if op.outcome in ("ok", "fail", "info"):
            by_f[op.f][op.outcome] += 1
    lin: dict[str, Any] = {"valid": True, "model": "versioned-kv", "elapsed_s": 0.41,
                           "parts": {"total": len(key_names), "valid": len(key_names), "invalid": [],
                                     "unknown": []}}
    if stale_op is not None and stale_state is not None:
        key = stale_op.key
        key_ops = sorted((o for o in ops if o.key == key), key=lambda o: o.lin)
        prefix = [o.invoke_index for o in key_ops if o.lin < stale_op.lin and o.outcome in ("ok", "fail")]
        got = stale_op.value
        desc = f"get {key} -> {_fmt_state((got['value'], got['version']))}"
        lin.update({
            "valid": False,
            "parts": {"total": len(key_names), "valid": len(key_names) - 1, "invalid": [key], "unknown": []},
            "failure": {
                "part": key,
                "explanation": (f"No order of the operations on key {key} explains op {stale_op.invoke_index}: "
                                f"it read version {got['version']} after version {stale_state[1]} had been "
                                "written and acknowledged (a stale read)."),
                "longest_prefixes": [prefix],
                "stuck": [{"op": stale_op.invoke_index, "description": desc,
                           "state_before": _fmt_state(stale_state)}],
                "ops": [{"id": o.invoke_index, "process": o.process, "f": o.f, "call": o.call,
                         "return": o.ret if o.outcome != "pending" else None, "invoke_index": o.invoke_index,
                         "type": o.outcome, "description": f"{o.f} {key}"} for o in key_ops],
            },
        })
    if events is not None:
        from checker.linearizability import check_linearizability
        from checker.models import make_model

        lin = check_linearizability(events, make_model("versioned-kv"), timeout=120)
    results = {
        "valid": lin["valid"],
        "checkers": {"linearizable": lin, "stats": {"valid": True, "by_f": by_f}},
        "heal": {"ok": True, "details": {"healed": [f.kind for f in faults]}},
    }
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
