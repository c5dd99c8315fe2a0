"""The live metrics of a ``--monitor`` run (metrics.jsonl, docs/store.md) as the report's "Node metrics" plots.

The report is made from the stored samples alone, so a re-render (`harness report`, `harness analyze` then a
render) draws the same plots. What is drawn is what metrics.jsonl's meta line names (``panels``: the DB's choice,
reports know no DB's metric names); each panel becomes one plot with a line per node (and per series or group),
on the run's time axis (seconds since test.json's start_time). A failed scrape (node down, paused, or answering
garbage) is a gap in every line of that node: a null point, never an interpolation across it. Rates, means and
quantiles are taken between two consecutive successful scrapes of a node only.

``build(run_dir, origin_ns)`` -> ``(payload or None, problems)``; payload::

    {"interval_s", "nodes", "panels": [{"title", "unit", "show", "traces": [{"node", "name", "x", "y"}]}],
     "scrapes": {node: {"ok": n, "failed": n}}, "failures": {node: [[t, error], ...]}, "series": n, "end": t}
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METRICS = "metrics.jsonl"
MAX_FAILURES_LISTED = 20
QUANTILE = 0.99
Row = tuple[float, dict[int, float | None] | None]  # (seconds, series id -> value) or (seconds, None): failed


@dataclass(slots=True)
class Store:
    """What could be read of metrics.jsonl."""

    meta: dict[str, Any] = field(default_factory=dict)
    series: dict[int, tuple[str, dict[str, str]]] = field(default_factory=dict)  # id -> (sample name, labels)
    rows: dict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))  # node -> rows in time order
    failures: dict[str, list[list[Any]]] = field(default_factory=lambda: defaultdict(list))


def read_store(path: Path, origin_ns: int, problems: list[str]) -> Store:
    """Parse metrics.jsonl; every line that breaks the format is skipped and counted in ``problems``."""
    store = Store()
    bad = 0
    for raw in path.read_bytes().splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            _take(store, line, origin_ns)
        except (ValueError, TypeError, KeyError, AttributeError):
            bad += 1
    if bad:
        problems.append(f"metrics.jsonl: {bad} unreadable line(s) skipped.")
    if not store.meta:
        problems.append("metrics.jsonl has no meta line: no panels to plot.")
    for rows in store.rows.values():
        rows.sort(key=lambda r: r[0])
    return store


def _take(store: Store, line: Any, origin_ns: int) -> None:
    kind = line["kind"]
    if kind == "meta":
        store.meta = dict(line)
    elif kind == "series":
        store.series[int(line["id"])] = (str(line["name"]), {str(k): str(v) for k, v in line["labels"].items()})
    elif kind == "scrape":
        t = (int(line["time"]) - origin_ns) / 1e9
        node = str(line["node"])
        if "values" in line:
            values = {int(sid): (None if v is None else float(v)) for sid, v in line["values"]}
            store.rows[node].append((t, values))
        else:
            store.rows[node].append((t, None))
            store.failures[node].append([round(t, 4), str(line.get("error", "failed"))])
    else:
        raise ValueError(kind)


def _label(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _groups(store: Store, names: Sequence[str], by: Sequence[str], skip: Sequence[str] = ()) -> dict[str, list[int]]:
    """Series ids of the given sample names, grouped by the name and the ``by`` labels (other labels summed)."""
    out: dict[str, list[int]] = defaultdict(list)
    for sid, (name, labels) in sorted(store.series.items()):
        if name not in names:
            continue
        kept = {k: v for k, v in labels.items() if k in by and k not in skip}
        key = " ".join(x for x in ((name if len(names) > 1 else ""), _label(kept)) if x)
        out[key].append(sid)
    return out


def _total(values: Mapping[int, float | None], sids: Sequence[int]) -> float | None:
    got = [values.get(s) for s in sids]
    if all(v is None for v in got):
        return None
    return sum(v for v in got if v is not None)


def _value_series(rows: list[Row], sids: list[int], scale: float) -> tuple[list[float], list[float | None]]:
    xs, ys = [], []
    for t, values in rows:
        v = None if values is None else _total(values, sids)
        xs.append(round(t, 4))
        ys.append(None if v is None else v * scale)
    return xs, ys


def _pairwise(rows: list[Row], fn: Callable[[float, dict[int, float | None], dict[int, float | None]], float | None]
              ) -> tuple[list[float], list[float | None]]:
    """fn(seconds between, previous values, values) at every row whose previous row also succeeded; else a gap."""
    xs: list[float] = []
    ys: list[float | None] = []
    prev: Row | None = None
    for row in rows:
        t, values = row
        y = None
        if values is not None and prev is not None and prev[1] is not None and t > prev[0]:
            y = fn(t - prev[0], prev[1], values)
        if prev is not None or values is None:
            xs.append(round(t, 4))
            ys.append(y)
        prev = row
    return xs, ys


def counter_rate(sids: list[int], scale: float) -> Callable[[float, Any, Any], float | None]:
    """Per-second increase of the summed counters; a counter that went down was restarted (its new value is all
    increase, as Prometheus's rate() takes it)."""
    def fn(dt: float, before: Mapping[int, float | None], now: Mapping[int, float | None]) -> float | None:
        a, b = _total(before, sids), _total(now, sids)
        if a is None or b is None:
            return None
        return (b - a if b >= a else b) / dt * scale
    return fn


def histogram_mean(sums: list[int], counts: list[int], scale: float) -> Callable[[float, Any, Any], float | None]:
    """Mean of the observations made between two scrapes (None when there were none, or the node restarted)."""
    def fn(dt: float, before: Mapping[int, float | None], now: Mapping[int, float | None]) -> float | None:
        s0, s1, c0, c1 = _total(before, sums), _total(now, sums), _total(before, counts), _total(now, counts)
        if None in (s0, s1, c0, c1):
            return None
        assert s0 is not None and s1 is not None and c0 is not None and c1 is not None
        return (s1 - s0) / (c1 - c0) * scale if c1 > c0 else None
    return fn


def quantile_from_buckets(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus's histogram_quantile over (upper bound, cumulative count) pairs sorted by bound, +Inf last:
    linear interpolation within the bucket holding the rank; the highest finite bound when the rank falls in the
    +Inf bucket; None when there is no observation."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = upper, count
    return lower


def histogram_quantile(store: Store, bucket_sids: list[int], scale: float,
                       q: float = QUANTILE) -> Callable[[float, Any, Any], float | None]:
    """The q-quantile of the observations made between two scrapes, from the bucket counts' increase."""
    by_le: dict[float, list[int]] = defaultdict(list)
    for sid in bucket_sids:
        by_le[float(store.series[sid][1].get("le", "nan"))].append(sid)
    bounds = sorted(b for b in by_le if not math.isnan(b))

    def fn(dt: float, before: Mapping[int, float | None], now: Mapping[int, float | None]) -> float | None:
        cum = []
        for le in bounds:
            a, b = _total(before, by_le[le]), _total(now, by_le[le])
            if a is None or b is None or b < a:
                return None  # a missing bucket or a restart: no honest quantile for this interval
            cum.append((le, b - a))
        v = quantile_from_buckets(q, cum)
        return None if v is None else v * scale
    return fn


def _panel_traces(store: Store, panel: Mapping[str, Any], nodes: list[str]) -> list[dict[str, Any]]:
    show, scale = panel.get("show", "value"), float(panel.get("scale") or 1.0)
    metrics = [str(m) for m in panel.get("metrics", [])]
    by = [str(b) for b in panel.get("by", [])]
    traces = []
    for node in nodes:
        rows = store.rows.get(node, [])
        if show in ("mean", "p99"):
            groups = {}
            for fam in metrics:
                buckets = _groups(store, [fam + "_bucket"], by, skip=["le"])
                sums, counts = _groups(store, [fam + "_sum"], by), _groups(store, [fam + "_count"], by)
                for key in sorted(counts):
                    name = " ".join(x for x in (fam if len(metrics) > 1 else "", key) if x)
                    groups[name] = (histogram_mean(sums.get(key, []), counts[key], scale) if show == "mean"
                                    else histogram_quantile(store, buckets.get(key, []), scale))
            series = [(name, _pairwise(rows, fn)) for name, fn in groups.items()]
        elif show == "rate":
            series = [(key, _pairwise(rows, counter_rate(sids, scale)))
                      for key, sids in _groups(store, metrics, by).items()]
        else:
            all_labels = sorted({k for _, (name, labels) in store.series.items() if name in metrics for k in labels})
            series = [(key, _value_series(rows, sids, scale))
                      for key, sids in _groups(store, metrics, by or all_labels).items()]
        traces += [{"node": node, "name": name, "x": xs, "y": ys} for name, (xs, ys) in series]
    return traces


def build(run_dir: Path, origin_ns: int) -> tuple[dict[str, Any] | None, list[str]]:
    """The "Node metrics" payload of a run directory, or None when the run was not monitored."""
    path = run_dir / METRICS
    if not path.is_file():
        return None, []
    problems: list[str] = []
    store = read_store(path, origin_ns, problems)
    meta_nodes = store.meta.get("nodes")
    nodes = [str(n) for n in meta_nodes] if isinstance(meta_nodes, list) else sorted(store.rows)
    nodes += sorted(n for n in store.rows if n not in nodes)
    panels = []
    for panel in store.meta.get("panels") or []:
        try:
            panels.append({"title": str(panel["title"]), "unit": str(panel.get("unit", "")),
                           "show": str(panel.get("show", "value")), "traces": _panel_traces(store, panel, nodes)})
        except (KeyError, TypeError, ValueError) as e:
            problems.append(f"metrics.jsonl: panel {panel!r} could not be drawn: {type(e).__name__}: {e}")
    ends = [rows[-1][0] for rows in store.rows.values() if rows]
    return {
        "interval_s": store.meta.get("interval_s"),
        "nodes": nodes,
        "panels": panels,
        "scrapes": {n: {"ok": sum(1 for _, v in store.rows.get(n, []) if v is not None),
                        "failed": sum(1 for _, v in store.rows.get(n, []) if v is None)} for n in nodes},
        "failures": {n: store.failures[n][:MAX_FAILURES_LISTED] for n in nodes if store.failures.get(n)},
        "series": len(store.series),
        "end": round(max(ends), 4) if ends else 0.0,
    }, problems
