"""Availability of a run, from its history alone (no verdict: figures for the campaign page, reports/campaign.py).

:func:`availability` takes a history (docs/history.md: the dicts of history.jsonl) and returns:

- ``ops``, ``ok``, ``ok_rate``: the client completions (ok, fail, info) and the share that were ok;
- ``faulted``: the same over completions whose op was invoked while some fault was active (the nemesis timeline of
  checker.recovery.fault_timeline), ``faulted_ok_rate`` its ok share (None when no op ran during a fault);
- ``heals``: one entry per heal, ``{"healed", "first_ok_s"}``: seconds from the heal to the first ok completion of
  an op invoked at or after it (None when none came before the next fault or the end of the history);
- ``latency_ms``: ``{"p50", "p90", "p99", "max"}`` of the ok ops' invoke-to-completion times (None without oks).

Client ops are those whose process is an integer (the workers); nemesis and harness events only shape the fault
timeline. Linear in the history's size apart from sorting the latencies.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

from checker.recovery import Interval, fault_timeline

QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))


def _faulted(time: int, starts: Sequence[int], intervals: Sequence[Interval]) -> bool:
    """Whether some fault was active at `time` (intervals sorted by start, disjoint)."""
    i = bisect.bisect_right(starts, time) - 1
    if i < 0:
        return False
    stop = intervals[i].stop
    return stop is None or time < stop


def quantiles(values: list[float]) -> dict[str, float] | None:
    """Nearest-rank quantiles and the maximum of `values` (rounded to 0.1), or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    out = {name: round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 1) for name, q in QUANTILES}
    return out | {"max": round(ordered[-1], 1)}


def availability(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of the module docstring for one history."""
    windows, intervals = fault_timeline(history)
    starts = [iv.start for iv in intervals]
    invoked: dict[Any, int] = {}
    ops = oks = faulted = faulted_oks = 0
    latencies: list[float] = []
    ok_calls: list[tuple[int, int]] = []  # (invoke time, completion time) of ok ops
    for event in history:
        if type(event.get("process")) is not int:
            continue
        if event["type"] == "invoke":
            invoked[event["process"]] = event["time"]
            continue
        call = invoked.pop(event["process"], None)
        if call is None:
            continue
        ops += 1
        during = _faulted(call, starts, intervals)
        faulted += during
        if event["type"] == "ok":
            oks += 1
            faulted_oks += during
            latencies.append((event["time"] - call) / 1e6)
            ok_calls.append((call, event["time"]))
    ok_calls.sort()
    heals = []
    for window in windows:
        first = min((done for call, done in ok_calls[bisect.bisect_left(ok_calls, (window.heal, -1)):]
                     if window.end is None or call < window.end), default=None)
        heals.append({"healed": window.healed,
                      "first_ok_s": None if first is None else round((first - window.heal) / 1e9, 3)})
    return {"ops": ops, "ok": oks, "ok_rate": round(oks / ops, 4) if ops else None,
            "faulted": faulted, "faulted_ok_rate": round(faulted_oks / faulted, 4) if faulted else None,
            "heals": heals, "latency_ms": quantiles(latencies)}
