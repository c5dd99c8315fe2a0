"""Benchmark of the list-append checker (checker/listappend.py, issue 14): it must be linear, not a search.

Generates (untimed) a linearizable history of N operations (default 1,000,000) the way the `list-append` workload
makes them: 20 processes, half appends and half reads, 8 active keys each retired after 32 appends (as the
workload's --max-appends-per-key does), every operation taking effect at its completion, 5% of appends `info`
(half of those applied). Then times `ListAppendChecker().check` on it, and on a copy where one read lacks one of its
values (which must come out invalid: `lost` when the read stays a prefix, else `incompatible-order`). Prints one line per case.

    python bench/listappend.py            # 1M operations
    python bench/listappend.py 200000     # fewer, e.g. to see how the time scales
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checker.listappend import ListAppendChecker  # noqa: E402

PROCESSES = 20
ACTIVE_KEYS = 8
APPENDS_PER_KEY = 32
INFO_RATE = 0.05


def generate(ops: int, seed: int = 1) -> list[dict[str, Any]]:
    """A valid history of `ops` operations (each an invoke and, unless info, a completion)."""
    rng = random.Random(seed)
    lists: dict[str, list[int]] = {}
    keys = [f"k{i}" for i in range(ACTIVE_KEYS)]
    next_key = ACTIVE_KEYS
    counts = dict.fromkeys(keys, 0)
    events: list[dict[str, Any]] = []
    inflight: dict[int, dict[str, Any]] = {}  # process -> its invoke
    free = list(range(PROCESSES))
    next_process = PROCESSES
    value = 0
    started = 0

    def emit(process: int, kind: str, f: str, key: str, v: Any) -> None:
        events.append({"index": len(events), "process": process, "type": kind, "f": f, "key": key, "value": v,
                       "time": len(events)})

    while started < ops or inflight:
        if free and started < ops and (not inflight or rng.random() < 0.5):
            process = free.pop(rng.randrange(len(free)))
            slot = rng.randrange(ACTIVE_KEYS)
            key = keys[slot]
            if rng.random() < 0.5:
                value += 1
                emit(process, "invoke", "append", key, value)
                counts[key] += 1
                if counts[key] >= APPENDS_PER_KEY:  # retire the key: later ops go to a fresh one
                    keys[slot] = f"k{next_key}"
                    counts[keys[slot]] = 0
                    next_key += 1
            else:
                emit(process, "invoke", "read", key, None)
            inflight[process] = events[-1]
            started += 1
            continue
        process = rng.choice(list(inflight))
        invoke = inflight.pop(process)
        key = invoke["key"]
        if invoke["f"] == "read":
            emit(process, "ok", "read", key, list(lists.get(key, ())))
            free.append(process)
        elif rng.random() < INFO_RATE:
            if rng.random() < 0.5:
                lists.setdefault(key, []).append(invoke["value"])
            emit(process, "info", "append", key, invoke["value"])
            free.append(next_process)  # the process is retired: its worker goes on as a new one
            next_process += 1
        else:
            lists.setdefault(key, []).append(invoke["value"])
            emit(process, "ok", "append", key, invoke["value"])
            free.append(process)
    return events


def drop_one_value(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy where the last read of more than one value lacks its first value."""
    out = [dict(e) for e in events]
    for e in reversed(out):
        if e["f"] == "read" and e["type"] == "ok" and len(e["value"]) > 1:
            e["value"] = e["value"][1:]
            return out
    raise RuntimeError("no read to damage")


def timed(name: str, events: list[dict[str, Any]]) -> None:
    ops = sum(1 for e in events if e["type"] == "invoke")
    start, cpu = time.perf_counter(), time.process_time()
    result = ListAppendChecker().check({}, events)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"case={name} ops={ops} events={len(events)} wall_s={wall:.2f} cpu_s={cpu:.2f} "
          f"us_per_op={wall / ops * 1e6:.2f} valid={result['valid']} anomalies={result['anomalies']}", flush=True)


def main() -> None:
    ops = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    events = generate(ops)
    timed("valid", events)
    timed("damaged-read", drop_one_value(events))


if __name__ == "__main__":
    main()
