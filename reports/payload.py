"""The data a report's page draws, as one JSON-able dict (built from reports.prep's tables).

The operations go in as columns (parallel arrays) with strings interned in small dictionaries, which keeps a
100,000-operation report to a few MB and lets the page's own JavaScript filter and plot them without parsing
anything else. Times are integer microseconds since the run's origin; latency is integer microseconds, -1 for an
operation with no completion. Operation values are compact JSON strings cut to VALUE_CHARS characters.

Columns of `ops` (one entry per operation, in invoke order, nemesis events included as process "nemesis"):
  i invoke index, c completion index (-1), p process (index into P), f (into F), k key (into K, -1 none),
  y type (0 ok, 1 fail, 2 info, 3 pending), t call time, l latency, n node (into N, -1), e error (into E, -1),
  a the invoke's value, r the completion's value; `il` and `cl` (history.jsonl line numbers) only when a line
  number differs from index + 1 (a history with skipped lines).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports import logs, prep
from reports import metrics as metrics_mod
from reports.rundir import RunFiles
from reports.verdict import Summary

VALUE_CHARS = 160
TYPE_CODES = {"ok": 0, "fail": 1, "info": 2, "pending": 3}
EXCERPT_MARGIN_S = 3.0
EXCERPT_MAX_LINES = 600


def intern(values: Any) -> tuple[list[int], list[str]]:
    """(codes, strings): each value's index into the distinct values as strings, -1 for None/NaN."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    return codes.astype(np.int64).tolist(), [str(u) for u in uniques]


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def compact(value: Any, limit: int = VALUE_CHARS) -> str:
    """A value as compact JSON, cut to `limit` characters with the full length noted; "" for None."""
    if value is None:
        return ""
    try:
        s = _encode(value)
    except (TypeError, ValueError):
        s = repr(value)
    if len(s) > limit:
        s = f"{s[:limit]}… ({len(s)} chars)"
    return s


def _us(seconds: np.ndarray) -> list[int]:
    return np.rint(np.nan_to_num(seconds, nan=-1e-6) * 1e6).astype(np.int64).tolist()


def ops_columns(ops: pd.DataFrame, events: pd.DataFrame) -> dict[str, Any]:
    """The operations table (client ops and nemesis events) as interned columns, sorted by invoke index."""
    nem = events[events["proc"] == prep.NEMESIS]
    nem_rows = []
    # Each nemesis invoke pairs with the next nemesis event that is not an invoke.
    nem_list = list(zip(nem["index"], nem["line"], nem["type"], nem["t"], nem["value"], nem["node"], nem["error"],
                        nem["f"], strict=True))
    for pos, (index, line, typ, t, value, node, error, f) in enumerate(nem_list):
        if typ != "invoke":
            continue
        comp = next((e for e in nem_list[pos + 1:pos + 4] if e[2] != "invoke"), None)
        nem_rows.append({"inv_index": index, "inv_line": line, "comp_index": comp[0] if comp else -1,
                         "comp_line": comp[1] if comp else -1, "proc": prep.NEMESIS,
                         "f": f, "key": None,
                         "type": comp[2] if comp else "pending", "call": t,
                         "latency": (comp[3] - t) if comp else np.nan, "node": comp[5] if comp else node,
                         "error": comp[6] if comp else error, "arg": value, "result": None})
    table = ops[["inv_index", "inv_line", "comp_index", "comp_line", "proc", "f", "key", "type", "call", "latency",
                 "node", "error", "arg", "result"]]
    if nem_rows:
        table = pd.concat([table, pd.DataFrame(nem_rows)], ignore_index=True).sort_values("inv_index",
                                                                                          kind="stable")
    types = table["type"].to_numpy()
    args = table["arg"].to_numpy()
    out: dict[str, Any] = {
        "i": table["inv_index"].astype(np.int64).tolist(),
        "c": table["comp_index"].astype(np.int64).tolist(),
        "y": [TYPE_CODES.get(x, 2) for x in types.tolist()],
        "t": _us(table["call"].to_numpy(dtype=float)),
        "l": _us(table["latency"].to_numpy(dtype=float)),
        "a": [compact(x) for x in args.tolist()],
        # A fail or info completion usually repeats the invoke's value: keep only what adds something.
        "r": [compact(r) if y == "ok" or (r is not None and r != a) else ""
              for r, a, y in zip(table["result"].to_numpy().tolist(), args.tolist(), types.tolist(), strict=True)],
    }
    for col, name, table_name in (("p", "proc", "P"), ("f", "f", "F"), ("k", "key", "K"), ("n", "node", "N"),
                                  ("e", "error", "E")):
        out[col], out[table_name] = intern(table[name].to_numpy())
    il = table["inv_line"].to_numpy(dtype=np.int64)
    cl = table["comp_line"].to_numpy(dtype=np.int64)
    ii = table["inv_index"].to_numpy(dtype=np.int64)
    ci = table["comp_index"].to_numpy(dtype=np.int64)
    if (il != ii + 1).any() or ((cl != ci + 1) & (ci >= 0)).any():
        out["il"], out["cl"] = il.tolist(), cl.tolist()
    return out


def _r(xs: Any, nd: int = 4) -> list[Any]:
    return [None if x is None or (isinstance(x, float) and np.isnan(x)) else round(float(x), nd) for x in xs]


def build(run: RunFiles, summary: Summary) -> dict[str, Any]:
    """Everything the page's JavaScript draws. Pure apart from reading the run's log files for time indexes."""
    origin = run.start_time
    events = prep.events_frame(run.history, origin)
    ops, problems = prep.pair_ops(events)
    faults, fault_problems = prep.fault_intervals(events)
    cluster = prep.cluster_frame(run.cluster, origin)
    node_metrics, metric_problems = metrics_mod.build(run.run_dir, origin)
    ends = [0.0, node_metrics["end"] if node_metrics else 0.0]
    if len(events):
        ends.append(float(events["t"].max()))
    if len(cluster):
        ends.append(float(cluster["t"].max()))
    end = max(ends)
    width = prep.window_width(max(end, 1e-3))
    tp = prep.throughput(ops, width, end) if len(ops) else None
    # Every window present (empty ones as null), so that lines break where there is no data instead of joining
    # the windows either side of a gap.
    windows = (np.arange(int(end // width) + 1) * width).round(9)
    q = prep.latency_quantiles(ops, width)
    q.index = q.index.to_numpy(dtype=float).round(9)
    q = q.reindex(windows)
    av = prep.availability(ops, width)
    av.index = av.index.to_numpy(dtype=float).round(9)
    av = av.reindex(windows)
    rec = prep.recoveries(faults, ops)

    payload: dict[str, Any] = {
        "end": round(end, 6),
        "width": width,
        "ops": ops_columns(ops, events),
        "faults": [{"kind": f.kind, "start": round(f.start, 6), "stop": None if f.stop is None else round(f.stop, 6),
                    "label": f.label, "details": compact(f.details, 400) if f.details else "",
                    "si": f.start_index, "so": f.stop_index} for f in faults],
        "recoveries": [{"kind": r.fault.kind, "label": r.fault.label, "heal": round(r.heal, 6),
                        "first_ok": None if r.first_ok is None else round(r.first_ok, 6),
                        "seconds": None if r.seconds is None else round(r.seconds, 6), "op": r.op} for r in rec],
        "throughput": None if tp is None else {"t": _r(tp.index), "ok": _r(tp["ok"], 2),
                                               "fail": _r(tp["fail"], 2), "info": _r(tp["info"], 2)},
        "quantiles": {"t": _r(q.index), **{c: _r(q[c] * 1e3, 3) for c in ("p50", "p95", "p99", "max")}},
        "availability": {"t": _r(av.index), "ok": _r(av["ok"], 4),
                         "invoked": [0 if pd.isna(x) else int(x) for x in av["invoked"]]},
        "recovery": recovery_windows(summary),
        "cluster": None,
        "metrics": node_metrics,
        "invalid": None,
        "logs": [],
        "excerpts": None,
    }
    if len(cluster):
        payload["cluster"] = {
            "nodes": sorted(cluster["node"].map(str).unique().tolist()),
            "term": prep.step_series(cluster, "term"),
            "commit": prep.step_series(cluster, "commit"),
            "roles": [[n, r, round(a, 4), round(b, 4)] for n, r, a, b in prep.role_segments(cluster)],
            "leaders": [[round(t, 4), n, term] for t, n, term in prep.leader_changes(cluster)],
        }
    inv = summary.invalid
    if inv is not None:
        payload["invalid"] = {
            "checker": inv.checker, "part": inv.part, "explanation": inv.explanation,
            "prefixes": [list(p) for p in inv.prefixes],
            "stuck": [{"op": s.op, "description": s.description, "state_before": s.state_before} for s in inv.stuck],
            "prefix_states": [list(p) for p in inv.prefix_states], "initial_state": inv.initial_state,
            "descriptions": {str(o["id"]): str(o["description"]) for o in inv.ops
                             if isinstance(o.get("id"), int) and o.get("description")},
        }
    payload["logs"], payload["excerpts"] = _logs(run, ops, inv)
    payload["problems"] = list(run.problems) + problems + fault_problems + metric_problems
    return payload


def recovery_windows(summary: Summary) -> dict[str, Any] | None:
    """The recovery checker's heal windows for the availability plot: the bound, and per full heal the verdict of
    the write and the read (recovered | missed | unknown) with the time to the first ok. None without that checker."""
    rec = summary.checkers.get("recovery")
    if not isinstance(rec, dict) or not isinstance(rec.get("windows"), list):
        return None
    bound = rec.get("bound_s")
    windows = []
    for w in rec["windows"]:
        if not isinstance(w, dict) or not isinstance(w.get("heal_s"), int | float):
            continue
        row: dict[str, Any] = {"heal": w["heal_s"], "until": w.get("until_s"), "healed": str(w.get("healed", ""))}
        for kind in ("write", "read"):
            raw = w.get(kind)
            res: dict[str, Any] = raw if isinstance(raw, dict) else {}
            row[kind] = str(res.get("verdict", "unknown"))
            row[kind + "_s"] = res.get("first_ok_s") if isinstance(res.get("first_ok_s"), int | float) else None
            row[kind + "_clock"] = res.get("clock_s") if isinstance(res.get("clock_s"), int | float) else None
        windows.append(row)
    return {"bound_s": bound if isinstance(bound, int | float) else None, "windows": windows}


def _origin_epoch(run: RunFiles) -> float | None:
    start = logs.parse_wall((run.test or {}).get("start_wall"))
    return None if start is None else start.timestamp()


def _logs(run: RunFiles, ops: pd.DataFrame, inv: Any) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Time indexes of every collected log, and the lines around the first non-linearizable operation."""
    origin = _origin_epoch(run)
    indexed: list[logs.LogIndex] = []
    out = []
    for rel in run.files:
        if not logs.is_log(rel):
            continue
        try:
            idx = logs.index_log(run.run_dir, rel, origin)
        except OSError:
            continue
        indexed.append(idx)
        out.append({"path": rel.as_posix(), "lines": idx.lines, "size": idx.size,
                    "points": [[t, n] for t, n in idx.points], "truncated": idx.truncated})
    excerpts = None
    if inv is not None and origin is not None and inv.stuck and inv.stuck[0].op is not None and len(ops):
        row = ops[ops["inv_index"] == inv.stuck[0].op]
        if len(row):
            call = float(row["call"].iloc[0])
            ret = float(row["ret"].iloc[0]) if pd.notna(row["ret"].iloc[0]) else call
            a, b = call - EXCERPT_MARGIN_S, ret + EXCERPT_MARGIN_S
            files = {}
            for idx in indexed:
                if not idx.points or idx.path.as_posix() in ("history.jsonl", "cluster.jsonl"):
                    continue
                lines = logs.excerpt(run.run_dir, Path(idx.path), origin, a, b, EXCERPT_MAX_LINES)
                if lines:
                    files[idx.path.as_posix()] = lines
            excerpts = {"from": round(a, 4), "to": round(b, 4), "files": files}
    return out, excerpts
