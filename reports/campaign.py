"""The campaign page: a campaign's runs side by side per DB (`harness campaign --db raftkv,etcd`), written as
campaign.md and campaign.html beside its campaign.json.

For every cell (its nemeses) one row per DB: runs, verdicts, ok rate, ok rate of ops invoked during faults, time
from each heal to the first ok (median and worst over the cell's heals), and latency quantiles of ok ops (the
median over the runs of each run's quantile). The figures come from each run's history (checker.availability);
a run without one (it failed before it stored one) counts in the verdicts only.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from checker.availability import availability
from checker.history import read_history
from reports.htmlsafe import esc

COLUMNS = ("cell", "db", "runs", "verdicts", "ok rate", "ok rate in faults", "first ok after heal (median / max)",
           "latency p50 / p99 (ms)")


def _figures(run: dict[str, Any]) -> dict[str, Any] | None:
    """checker.availability of the run's stored history, or None when it has none."""
    path = Path(str(run.get("run_dir") or "")) / "history.jsonl"
    if not run.get("run_dir") or not path.is_file():
        return None
    return availability(read_history(str(path)))


def _mean(values: Iterable[float | None]) -> str:
    have = [v for v in values if v is not None]
    return f"{statistics.fmean(have):.1%}" if have else "-"


def _verdicts(runs: Sequence[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for run in runs:
        name = {True: "valid", False: "invalid"}.get(run["valid"], "unknown") if type(run.get("valid")) is bool \
            else "unknown"
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def row(cell: str, db: str, runs: Sequence[dict[str, Any]]) -> list[str]:
    """The table row of one DB in one cell (COLUMNS)."""
    figures = [f for f in (_figures(r) for r in runs) if f is not None]
    firsts = [h["first_ok_s"] for f in figures for h in f["heals"]]
    served = [s for s in firsts if s is not None]
    heal = (f"{statistics.median(served):.2f} s / {max(served):.2f} s" if served else "-") + \
        (f" ({len(firsts) - len(served)} of {len(firsts)} none)" if len(served) < len(firsts) else "")
    lat = [f["latency_ms"] for f in figures if f["latency_ms"]]
    latency = (f"{statistics.median(q['p50'] for q in lat):g} / {statistics.median(q['p99'] for q in lat):g}"
               if lat else "-")
    return [cell, db, str(len(runs)), _verdicts(runs), _mean(f["ok_rate"] for f in figures),
            _mean(f["faulted_ok_rate"] for f in figures), heal, latency]


def rows(campaign: dict[str, Any]) -> list[list[str]]:
    """One row per (cell, DB), cells in their first-run order, DBs side by side within a cell."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in campaign.get("runs", []):
        groups.setdefault((str(run["cell"]), str(run.get("db") or "-")), []).append(run)
    return [row(cell, db, runs) for (cell, db), runs in groups.items()]


RUN_COLUMNS = ("cell", "db", "seed", "verdict", "ok rate", "ok rate in faults", "first ok after each heal (s)",
               "latency p50 / p99 (ms)", "run")


def run_rows(campaign: dict[str, Any]) -> list[list[str]]:
    """One row per run (RUN_COLUMNS): the figures behind the summary, each heal's time to first ok in order."""
    out = []
    for run in sorted(campaign.get("runs", []), key=lambda r: (str(r["cell"]), str(r.get("seed")), str(r.get("db")))):
        f = _figures(run)
        heals = " ".join("-" if h["first_ok_s"] is None else f"{h['first_ok_s']:g}" for h in f["heals"]) if f else "-"
        lat = f["latency_ms"] if f else None
        out.append([str(run["cell"]), str(run.get("db") or "-"), str(run.get("seed")), _verdicts([run]),
                    _mean([f["ok_rate"]] if f else []), _mean([f["faulted_ok_rate"]] if f else []), heals or "-",
                    f"{lat['p50']:g} / {lat['p99']:g}" if lat else "-", str(run.get("run_dir") or run.get("error"))])
    return out


def markdown(columns: Sequence[str], table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in table]) + "\n"


def html_table(columns: Sequence[str], table: list[list[str]]) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in r) + "</tr>" for r in table)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_campaign(record: Path) -> tuple[Path, Path]:
    """Write campaign.md and campaign.html beside the campaign.json at `record` (the per-cell summary, then every
    run); their paths."""
    campaign = json.loads(record.read_text())
    summary, runs = rows(campaign), run_rows(campaign)
    title = f"campaign {record.parent.name} (seed {campaign.get('seed')})"
    md, page = record.with_name("campaign.md"), record.with_name("campaign.html")
    md.write_text(f"# {title}\n\n{markdown(COLUMNS, summary)}\n## Runs\n\n{markdown(RUN_COLUMNS, runs)}")
    page.write_text(f"<!doctype html><meta charset=utf-8><title>{esc(title)}</title>"
                    "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px 8px}"
                    f"table{{border-collapse:collapse}}</style><h1>{esc(title)}</h1>{html_table(COLUMNS, summary)}"
                    f"<h2>Runs</h2>{html_table(RUN_COLUMNS, runs)}\n")
    return md, page
