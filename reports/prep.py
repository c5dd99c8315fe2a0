"""Data preparation for the report, with pandas: pure functions from what `reports.rundir` read to tables.

Times are seconds since the run's origin (test.json's `start_time`), as floats; latencies are seconds. Semantics
(docs/history.md): an `invoke` and the next event of the same process form one operation; an invoke with no
completion is `pending` (indeterminate, like `info`). Nemesis events are not operations: they become fault intervals,
a fault of kind K being active from the completion of its `start` to the completion of the next `stop` of kind K.

Window statistics use one width for the whole run (`window_width`: a round number giving at most ~300 windows):
- throughput: completions per second in each window, by outcome, binned by completion time;
- latency quantiles: p50, p95, p99 and max of the latency of the `ok` operations, binned by invoke time (the same
  x as the latency scatter);
- availability: of the operations invoked in a window, the fraction that completed `ok` (pending counts as not ok).
Recovery after a heal: the time from the heal (the completion of a `stop`) to the first `ok` completion after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from reports.rundir import HistoryColumns

NEMESIS = "nemesis"
OUTCOMES = ("ok", "fail", "info", "pending")
NICE_WIDTHS = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


def events_frame(h: HistoryColumns, origin_ns: int) -> pd.DataFrame:
    """All valid events as a DataFrame, `t` in seconds since origin_ns, `proc` the process as a string label."""
    df = pd.DataFrame({
        "index": np.asarray(h.index, dtype=np.int64),
        "line": np.asarray(h.line, dtype=np.int64),
        "process": pd.Series(h.process, dtype=object),
        "type": pd.Series(h.type, dtype=object),
        "f": pd.Series(h.f, dtype=object),
        "key": pd.Series(h.key, dtype=object),
        "value": pd.Series(h.value, dtype=object),
        "t": (np.asarray(h.time, dtype=np.int64) - origin_ns) / 1e9,
        "node": pd.Series(h.node, dtype=object),
        "error": pd.Series(h.error, dtype=object),
    })
    df["proc"] = df["process"].map(str)
    return df


def pair_ops(events: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Client operations: one row per invoke with its completion (the next event of the same process).

    Returns (ops, problems). Columns: inv_index, comp_index (-1 if none), inv_line, comp_line (-1), process, proc,
    f, key, type (ok | fail | info | pending), call, ret (NaN if pending), latency (NaN if pending), node, error,
    arg (the invoke's value), result (the completion's value). Rows are in invoke order.
    Problems: completions with no invoke before them, invokes followed by another invoke of the same process.
    """
    problems: list[str] = []
    c = events[events["proc"] != NEMESIS]
    if c.empty:
        return _empty_ops(), problems
    c = c.sort_values(["proc", "line"], kind="stable")
    proc = c["proc"].to_numpy()
    typ = c["type"].to_numpy()
    same_next = np.zeros(len(c), dtype=bool)
    same_next[:-1] = proc[:-1] == proc[1:]
    is_inv = typ == "invoke"
    next_is_completion = np.zeros(len(c), dtype=bool)
    next_is_completion[:-1] = typ[1:] != "invoke"
    has_comp = is_inv & same_next & next_is_completion
    double = is_inv & same_next & ~next_is_completion
    prev_is_inv = np.zeros(len(c), dtype=bool)
    prev_is_inv[1:] = is_inv[:-1] & (proc[1:] == proc[:-1])
    orphan = ~is_inv & ~prev_is_inv
    if double.any():
        first = c["index"].to_numpy()[double][:5].tolist()
        problems.append(f"history: {int(double.sum())} invoke(s) followed by another invoke of the same process "
                        f"(e.g. events {first}); treated as pending.")
    if orphan.any():
        first = c["index"].to_numpy()[orphan][:5].tolist()
        problems.append(f"history: {int(orphan.sum())} completion(s) without an invoke before them "
                        f"(e.g. events {first}); ignored.")
    nxt = c.shift(-1)
    inv = c[is_inv]
    comp = nxt[is_inv]
    hc = has_comp[is_inv]
    ops = pd.DataFrame({
        "inv_index": inv["index"].to_numpy(),
        "comp_index": np.where(hc, comp["index"].fillna(-1).to_numpy(), -1).astype(np.int64),
        "inv_line": inv["line"].to_numpy(),
        "comp_line": np.where(hc, comp["line"].fillna(-1).to_numpy(), -1).astype(np.int64),
        "process": inv["process"].to_numpy(),
        "proc": inv["proc"].to_numpy(),
        "f": inv["f"].to_numpy(),
        "key": inv["key"].to_numpy(),
        "type": np.where(hc, comp["type"].to_numpy(), "pending"),
        "call": inv["t"].to_numpy(),
        "ret": np.where(hc, comp["t"].to_numpy(), np.nan),
        "node": np.where(hc & pd.notna(comp["node"]).to_numpy(), comp["node"].to_numpy(), inv["node"].to_numpy()),
        "error": np.where(hc, comp["error"].to_numpy(), None),
        "arg": inv["value"].to_numpy(),
        "result": np.where(hc, comp["value"].to_numpy(), None),
    })
    ops["latency"] = ops["ret"] - ops["call"]
    ops = ops.sort_values("inv_index", kind="stable").reset_index(drop=True)
    return ops, problems


def _empty_ops() -> pd.DataFrame:
    cols = ["inv_index", "comp_index", "inv_line", "comp_line", "process", "proc", "f", "key", "type", "call",
            "ret", "node", "error", "arg", "result", "latency"]
    return pd.DataFrame({c: pd.Series(dtype=float if c in ("call", "ret", "latency") else object) for c in cols})


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault interval. `stop` is None when it was never healed in the history (active to the end)."""

    kind: str
    start: float
    stop: float | None
    targets: tuple[str, ...]
    label: str  # the targets as a person reads them, e.g. "n1 n2 | n3 n4 n5"
    details: dict[str, Any]
    start_index: int
    stop_index: int | None


def _targets(value: Any) -> tuple[tuple[str, ...], str]:
    targets = value.get("targets") if isinstance(value, dict) else None
    if targets is None and isinstance(value, dict):
        targets = value.get("target") or value.get("nodes")
    if targets is None:
        return (), ""
    if isinstance(targets, list) and targets and all(isinstance(t, list) for t in targets):
        groups = [[str(x) for x in t] for t in targets]
        return tuple(x for g in groups for x in g), " | ".join(" ".join(g) for g in groups)
    if isinstance(targets, list):
        flat = tuple(str(t) for t in targets)
        return flat, " ".join(flat)
    return (str(targets),), str(targets)


def fault_intervals(events: pd.DataFrame) -> tuple[list[Fault], list[str]]:
    """Fault intervals from the nemesis events, in start order, plus problems (a stop with no start).

    A nemesis event whose f is neither `start` nor `stop` becomes an instant (start == stop)."""
    problems: list[str] = []
    nem = events[events["proc"] == NEMESIS]
    open_: dict[str, tuple[float, Any, int]] = {}
    out: list[Fault] = []
    for t, typ, f, value, index in zip(nem["t"], nem["type"], nem["f"], nem["value"], nem["index"], strict=True):
        if typ == "invoke":
            continue
        kind = str(value.get("fault")) if isinstance(value, dict) and value.get("fault") is not None else str(f)
        if f == "start":
            if kind in open_:  # a second start without a stop: close the first one here
                s, v, si = open_.pop(kind)
                out.append(_fault(kind, s, float(t), v, si, int(index)))
            open_[kind] = (float(t), value, int(index))
        elif f == "stop":
            if kind not in open_:
                problems.append(f"history: nemesis stop of {kind} at event {index} with no start before it.")
                continue
            s, v, si = open_.pop(kind)
            out.append(_fault(kind, s, float(t), v, si, int(index)))
        else:
            out.append(_fault(kind, float(t), float(t), value, int(index), int(index)))
    for kind, (s, v, si) in open_.items():
        out.append(_fault(kind, s, None, v, si, None))
    out.sort(key=lambda x: (x.start, x.kind))
    return out, problems


def _fault(kind: str, start: float, stop: float | None, value: Any, si: int, so: int | None) -> Fault:
    targets, label = _targets(value)
    details = {k: v for k, v in value.items() if k not in ("fault", "targets")} if isinstance(value, dict) else {}
    return Fault(kind=kind, start=start, stop=stop, targets=targets, label=label, details=details,
                 start_index=si, stop_index=so)


def window_width(duration: float, max_windows: int = 300) -> float:
    """The smallest round width (s) that cuts `duration` into at most `max_windows` windows."""
    for w in NICE_WIDTHS:
        if duration / w <= max_windows:
            return w
    return NICE_WIDTHS[-1] * math.ceil(duration / NICE_WIDTHS[-1] / max_windows)


def _bins(t: pd.Series, width: float) -> pd.Series:
    return np.floor(t / width).astype(np.int64)


def throughput(ops: pd.DataFrame, width: float, end: float) -> pd.DataFrame:
    """Completions per second by outcome (ok, fail, info) per window of `width` s, windows 0..end; index `t` is
    the window's start. Pending operations have no completion and are not counted."""
    n = int(end // width) + 1
    done = ops[ops["type"].isin(("ok", "fail", "info"))]
    table = (done.groupby([_bins(done["ret"], width), "type"]).size().unstack(fill_value=0)
             .reindex(index=range(n), columns=["ok", "fail", "info"], fill_value=0))
    table = table / width
    table.index = table.index * width
    table.index.name = "t"
    return table


def latency_quantiles(ops: pd.DataFrame, width: float) -> pd.DataFrame:
    """p50, p95, p99 and max latency (s) of the ok operations per window of invoke time; windows without an ok
    operation are absent. Index `t` is the window's start."""
    ok = ops[ops["type"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=["p50", "p95", "p99", "max"], index=pd.Index([], name="t", dtype=float))
    g = ok.groupby(_bins(ok["call"], width))["latency"]
    table = pd.DataFrame({"p50": g.quantile(0.5), "p95": g.quantile(0.95), "p99": g.quantile(0.99),
                          "max": g.max()})
    table.index = table.index * width
    table.index.name = "t"
    return table


def availability(ops: pd.DataFrame, width: float) -> pd.DataFrame:
    """Per window of invoke time: `invoked` operations and the fraction `ok` of them that completed ok. Windows
    in which nothing was invoked are absent (no data, not 0 %)."""
    if ops.empty:
        return pd.DataFrame(columns=["invoked", "ok"], index=pd.Index([], name="t", dtype=float))
    b = _bins(ops["call"], width)
    g = (ops["type"] == "ok").groupby(b)
    table = pd.DataFrame({"invoked": g.size(), "ok": g.mean()})
    table.index = table.index * width
    table.index.name = "t"
    return table


@dataclass(frozen=True, slots=True)
class Recovery:
    """After the heal of `fault` at `heal`: the first ok completion at `first_ok` (op `op`), None if none."""

    fault: Fault
    heal: float
    first_ok: float | None
    op: int | None

    @property
    def seconds(self) -> float | None:
        return None if self.first_ok is None else self.first_ok - self.heal


def recoveries(faults: list[Fault], ops: pd.DataFrame) -> list[Recovery]:
    """For each healed fault (instants excluded), the time from its heal to the first ok completion after it."""
    ok = ops[ops["type"] == "ok"].sort_values("ret")
    rets = ok["ret"].to_numpy()
    idx = ok["inv_index"].to_numpy()
    out = []
    for fault in faults:
        if fault.stop is None or fault.stop == fault.start:
            continue
        i = int(np.searchsorted(rets, fault.stop, side="left"))
        if i < len(rets):
            out.append(Recovery(fault, fault.stop, float(rets[i]), int(idx[i])))
        else:
            out.append(Recovery(fault, fault.stop, None, None))
    return out


def cluster_frame(polls: list[dict[str, Any]], origin_ns: int) -> pd.DataFrame:
    """Node state polls as a DataFrame: t (s), node, role (`unreachable` for a failed poll), term, leader, commit,
    applied (NaN where absent), sorted by node then time."""
    if not polls:
        return pd.DataFrame(columns=["t", "node", "role", "term", "leader", "commit", "applied", "error"])
    df = pd.DataFrame.from_records(polls)
    for col in ("role", "term", "leader", "commit", "applied", "error"):
        if col not in df:
            df[col] = None
    df["t"] = (df["time"].astype(np.int64) - origin_ns) / 1e9
    df["role"] = df["role"].where(df["error"].isna(), "unreachable").fillna("unknown").map(str)
    for col in ("term", "commit", "applied"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df = df.sort_values(["node", "t"], kind="stable").reset_index(drop=True)
    return df[["t", "node", "role", "term", "leader", "commit", "applied", "error"]]


def step_series(cluster: pd.DataFrame, column: str, max_points: int = 3000) -> dict[str, tuple[list[float], list]]:
    """Per node, the points of `column` where its value changes (lossless for a step plot), thinned evenly to at
    most max_points per node, plus the node's last poll so the line reaches the end."""
    out: dict[str, tuple[list[float], list]] = {}
    for node, g in cluster.groupby("node", sort=True):
        g = g[g[column].notna()]
        if g.empty:
            continue
        v = g[column].to_numpy()
        keep = np.ones(len(g), dtype=bool)
        keep[1:] = v[1:] != v[:-1]
        keep[-1] = True
        sel = g[keep]
        if len(sel) > max_points:
            sel = sel.iloc[np.linspace(0, len(sel) - 1, max_points).astype(int)]
        out[str(node)] = (sel["t"].round(4).tolist(), [_num(x) for x in sel[column]])
    return out


def _num(x: Any) -> Any:
    if isinstance(x, float | np.floating) and float(x).is_integer():
        return int(x)
    return x.item() if isinstance(x, np.generic) else x


def role_segments(cluster: pd.DataFrame) -> list[tuple[str, str, float, float]]:
    """Runs of one role per node: (node, role, from, to), `to` being the next poll's time (or the last poll)."""
    out: list[tuple[str, str, float, float]] = []
    for node, g in cluster.groupby("node", sort=True):
        t = g["t"].to_numpy()
        r = g["role"].to_numpy()
        start = 0
        for i in range(1, len(g) + 1):
            if i == len(g) or r[i] != r[start]:
                end = t[i] if i < len(g) else t[-1]
                out.append((str(node), str(r[start]), float(t[start]), float(end)))
                start = i
    return out


def leader_changes(cluster: pd.DataFrame) -> list[tuple[float, str, int | None]]:
    """(time, node, term) at each poll where a node first reports itself leader of a term."""
    lead = cluster[cluster["role"] == "leader"].sort_values("t")
    seen: set[tuple[str, Any]] = set()
    out = []
    for t, node, term in zip(lead["t"], lead["node"], lead["term"], strict=True):
        k = (str(node), term)
        if k not in seen:
            seen.add(k)
            out.append((float(t), str(node), None if pd.isna(term) else int(term)))
    return out
