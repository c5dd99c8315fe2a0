"""`render_run(run_dir)`: the HTML report of one run (store/<test>/<timestamp>/report.html).

The page is one HTML file: the parts that need no interaction (verdict, configuration, checker results, files,
problems) are written here, escaped; the plots, the invalid-key timeline and the history table are drawn in the
browser by reports/assets/report.js from one JSON payload (reports.payload) embedded in the page. Plots use
plotly.js from the store's _static directory (reports.static explains why not inline); everything but the plots
works without it, and the page says so if it is missing.

Never fails on a partial run directory: what is missing is listed in the banner and under "Problems". Even an
unexpected error while preparing the data yields a report that shows the error instead of the data.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tempfile
import time
import traceback
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from checker.logmatch import CHAIN
from reports import payload as payload_mod
from reports import static
from reports.htmlsafe import esc, href, json_script
from reports.rundir import RunFiles, load_run
from reports.verdict import Summary, Verdict, summarize

REPORT = "report.html"
SUMMARY = "summary.json"
CONFIG_VALUE_CHARS = 300
RESULTS_CHARS = 200_000


def _asset(name: str) -> str:
    return resources.files("reports").joinpath("assets", name).read_text(encoding="utf-8")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write(path: Path, text: str) -> None:
    """Write text to path via a temporary file and a rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a report is as readable as the rest of the run
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store_of(run_dir: Path) -> Path:
    """The store a run directory belongs to: store/<test>/<timestamp> -> store (after resolving `latest`)."""
    return run_dir.resolve().parent.parent


def render_run(run_dir: Path, *, inline_plotly: bool = False) -> Path:
    """Write run_dir/report.html (and run_dir/summary.json for the campaign index); return the report's path.

    plotly.js is copied once to <store>/_static/ (the store being run_dir's grandparent) unless inline_plotly.
    Raises RunDirError only when run_dir is not a directory.
    """
    run_dir = Path(run_dir)
    started = time.perf_counter()
    run = load_run(run_dir)
    summary = summarize(run.results, run.problems)
    try:
        data = payload_mod.build(run, summary)
    except Exception:  # a bug here must not cost the user the rest of the report
        data = {"end": 0, "width": 1, "ops": None, "faults": [], "recoveries": [], "throughput": None,
                "quantiles": None, "availability": None, "cluster": None, "metrics": None, "invalid": None, "logs": [],
                "excerpts": None, "problems": list(run.problems) + [
                    "Preparing the report's data failed (a bug in reports/, please file it):\n"
                    + traceback.format_exc()]}
    if inline_plotly:
        plotly_tag = f"<script>{static.plotly_js()}</script>"
        plotly_rel = ""
    else:
        target = static.ensure_plotly(store_of(run_dir))
        plotly_rel = os.path.relpath(target, run_dir.resolve()).replace(os.sep, "/")
        plotly_tag = f'<script src="{href(plotly_rel)}"></script>'
    data["plotly_path"] = plotly_rel
    data["render_s"] = round(time.perf_counter() - started, 3)
    page = _page(run, summary, data, plotly_tag)
    out = run_dir / REPORT
    atomic_write(out, page)
    atomic_write(run_dir / SUMMARY, json.dumps(run_summary(run, summary, data), indent=1))
    return out


def run_summary(run: RunFiles, summary: Summary, data: dict[str, Any]) -> dict[str, Any]:
    """What the campaign index shows of a run (also computed by reports.index when summary.json is stale)."""
    test = run.test or {}
    ops = data.get("ops") or {}
    counts = {"ok": 0, "fail": 0, "info": 0, "pending": 0}
    names = ("ok", "fail", "info", "pending")
    nem = set()
    if ops:
        P = ops["P"]
        for p, y in zip(ops["p"], ops["y"], strict=True):
            if P[p] == "nemesis":
                nem.add(p)
                continue
            counts[names[y]] += 1
    history = run.run_dir / "history.jsonl"
    st = history.stat() if history.is_file() else None
    return {
        "verdict": summary.verdict.value,
        "headline": summary.headline,
        "why": " ".join(summary.sentences[:2]),
        "name": test.get("name"),
        "workload": test.get("workload") or (test.get("options") or {}).get("workload"),
        "nemeses": _nemeses(test, data),
        "start_wall": test.get("start_wall"),
        "duration_s": data.get("end"),
        "ops": counts,
        "faults": len(data.get("faults") or []),
        "invalid_key": summary.invalid.part if summary.invalid else None,
        "history_size": st.st_size if st else None,
        "history_mtime_ns": st.st_mtime_ns if st else None,
        "rendered_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _nemeses(test: dict[str, Any], data: dict[str, Any]) -> list[str]:
    raw = test.get("nemesis", test.get("nemeses", (test.get("options") or {}).get("nemesis")))
    if isinstance(raw, str):
        names = [x for x in raw.replace(",", " ").split() if x]
    elif isinstance(raw, list):
        names = [str(x) for x in raw]
    else:
        names = []
    return names or sorted({f["kind"] for f in data.get("faults") or []})


# ---------------------------------------------------------------------------------------------------------- page

def _page(run: RunFiles, summary: Summary, data: dict[str, Any], plotly_tag: str) -> str:
    test = run.test or {}
    title = f"{test.get('name') or run.run_dir.parent.name} · {run.run_dir.name}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{esc(summary.headline)} — {esc(title)}</title>
<style>{_asset("report.css")}</style>
</head><body class="verdict-{summary.verdict.value}">
<header class="top"><div class="wrap">
<a class="crumb" href="../../index.html">all runs</a>
<h1>{esc(title)}</h1>
<nav>{_nav(data)}</nav>
</div></header>
<main class="wrap">
{_banner(run, summary, data)}
<section id="summary" class="tiles" aria-label="summary"></section>
<section id="plots"><h2>Over time</h2>
<p class="note" id="plotly-missing" hidden>The plots need plotly.js at <code>{esc(data.get("plotly_path"))}</code>
(relative to this report), which could not be loaded. Everything else on this page works without it.</p>
<div class="legend-faults" id="fault-legend"></div>
<div class="plot" id="plot-latency"></div>
<p class="caption">Every operation at its invoke time and latency (log scale), by outcome; operations with no
completion are drawn at the end of the history. Click a point to see the operation. Drag to zoom: every time plot
follows; double-click to reset.</p>
<div class="plot" id="plot-faults"></div>
<div class="plot" id="plot-throughput"></div>
<p class="caption">Completions per second by outcome, in windows of <span class="width"></span>.</p>
<div class="plot" id="plot-quantiles"></div>
<p class="caption">Latency quantiles of the <em>ok</em> operations invoked in each window.</p>
<div class="plot" id="plot-availability"></div>
<p class="caption">Availability: of the operations invoked in each window, the fraction that succeeded. Dashed
lines: heals; each is labelled with the time to the first successful operation after it (red: later than the
recovery bound). The band at the bottom after each full heal (no fault active) is the recovery bound: green when a
write and a read were served within it, red when one missed it, grey when it could not be judged.</p>
<div id="cluster-plots"><div class="plot" id="plot-roles"></div><div class="plot" id="plot-term"></div>
<div class="plot" id="plot-commit"></div>
<p class="caption">Cluster state from cluster.jsonl (the lab's polls of every node): role, term and commit index
per node. Grey: the poll failed.</p></div>
<div id="node-metrics"></div>
<p class="caption" id="node-metrics-caption">Node metrics from metrics.jsonl (<code>harness run --monitor</code>: every
node's /metrics scraped each interval), one line per node; rates, means and quantiles are taken between two
consecutive scrapes of a node. A gap: the node's scrape failed (down, paused, or an unreadable answer).</p>
</section>
<section id="recovery"><h2>Faults and recovery</h2>{_recovery(summary)}{_observations(run, summary)}
<div id="fault-table"></div></section>
<section id="invalid" hidden><h2>Why it is not linearizable</h2><div id="timeline-root"></div></section>
<section id="history"><h2>History</h2><div id="history-root"></div></section>
<section id="config"><h2>Configuration and environment</h2>{_config(test)}</section>
<section id="checkers"><h2>Checker results</h2>{_checkers(summary, run)}</section>
<section id="metrics"><h2>Final metrics per node</h2>{_metrics(run)}</section>
<section id="files"><h2>Collected files</h2>{_files(run, data)}</section>
<section id="problems"><h2>Problems</h2>{_problems(data)}</section>
<footer>Rendered by reports/ in {data.get("render_s")} s from {esc(run.run_dir.name)}.</footer>
</main>
<div id="drawer" hidden><div class="drawer-head"><strong id="drawer-title"></strong>
<button type="button" id="drawer-close" aria-label="close">×</button></div><div id="drawer-body"></div></div>
<script type="application/json" id="report-data">{json_script(data)}</script>
{plotly_tag}
<script>{_asset("report.js")}</script>
</body></html>
"""


def _nav(data: dict[str, Any]) -> str:
    items = [("plots", "Over time"), ("recovery", "Faults"), ("history", "History"), ("config", "Configuration"),
             ("checkers", "Checkers"), ("metrics", "Metrics"), ("files", "Logs & files"), ("problems", "Problems")]
    if data.get("invalid"):
        items.insert(1, ("invalid", "Invalid key"))
    return "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in items)


def _banner(run: RunFiles, summary: Summary, data: dict[str, Any]) -> str:
    missing = [p for p in run.problems if "missing" in p or "cut short" in p]
    extra = ""
    if missing:
        extra = '<ul class="missing">' + "".join(f"<li>{esc(m)}</li>" for m in missing) + "</ul>"
    links = ""
    if summary.invalid:
        links = f'<p class="banner-links"><a href="#invalid">see the timeline of {esc(summary.invalid.label)}</a>'
        if summary.invalid.stuck and summary.invalid.stuck[0].op is not None:
            op = summary.invalid.stuck[0].op
            links += f' · <a href="#h{op}">op {op} in the history</a>'
        links += "</p>"
    listed = {x.message for x in summary.liveness}
    sentences = [s for s in summary.sentences if s not in listed]
    live = ""
    if summary.liveness:
        items = "".join(
            f'<li><b>{esc(x.what)}</b>'
            + (f' since {x.since_s:.2f} s' if x.since_s is not None else "")
            + (f' · nodes {esc(", ".join(x.nodes))}' if x.nodes else "")
            + f'<br>{esc(x.message)}</li>' for x in summary.liveness[:MAX_LIVENESS])
        more = len(summary.liveness) - MAX_LIVENESS
        live = (f'<ul class="liveness">{items}</ul>' + (f"<p>{more} more in results.json.</p>" if more > 0 else "")
                + '<p class="banner-links"><a href="#recovery">see faults and recovery</a></p>')
    return f"""<section id="verdict" class="banner {summary.verdict.value}">
<div class="verdict-word">{esc(summary.headline)}</div>
<div class="verdict-why">{"".join(f"<p>{esc(s)}</p>" for s in sentences)}{live}{links}{extra}</div>
</section>"""


MAX_LIVENESS = 8


def _verdict_cell(res: Any) -> str:
    if not isinstance(res, dict):
        return "<td>–</td>"
    verdict = str(res.get("verdict", "unknown"))
    pill = {"recovered": "valid", "missed": "invalid"}.get(verdict, "unknown")
    first = res.get("first_ok_s")
    when = f" after {first:.3f} s" if isinstance(first, int | float) else ""
    why = f'<br><span class="dim">{esc(res["reason"])}</span>' if res.get("reason") else ""
    return f'<td><span class="pill {pill}">{esc(verdict)}</span>{esc(when)}{why}</td>'


def _recovery(summary: Summary) -> str:
    """The recovery checker's heal windows: for each full heal, the write and the read against the bound."""
    rec = summary.checkers.get("recovery")
    if not isinstance(rec, dict) or not isinstance(rec.get("windows"), list):
        return ""
    bound = rec.get("bound_s")
    rows = []
    for w in rec["windows"]:
        if not isinstance(w, dict):
            continue
        heal = w.get("heal_s")
        rows.append(f"<tr><td>{esc(f'{heal:.2f} s' if isinstance(heal, int | float) else '?')}"
                    f"{' (final)' if w.get('final') else ''}</td><td>{esc(w.get('healed', ''))}</td>"
                    f"{_verdict_cell(w.get('write'))}{_verdict_cell(w.get('read'))}</tr>")
    table = ('<table class="grid"><tr><th>heal (no fault active)</th><th>healed</th><th>first ok write</th>'
             f'<th>first ok read</th></tr>{"".join(rows)}</table>') if rows else \
        '<p class="note">No full heal in this run: no fault was started, or one was never healed.</p>'
    return (f'<h3>Recovery after each heal (bound {esc(bound)} s, {esc(rec.get("bound_source", ""))})</h3>'
            f'{table}')


def _status_line(node: str, st: Any) -> str:
    if not isinstance(st, dict):
        return f"{node}: ?"
    if st.get("error"):
        return f"{node}: no answer ({st['error']})" + (" · not running" if st.get("running") is False else "")
    return (f"{node}: {st.get('role', '?')}, term {st.get('term', '?')}, leader {st.get('leader') or 'none'}, "
            f"commit {st.get('commit', '?')}, applied {st.get('applied', '?')}"
            + (" · not running" if st.get("running") is False else ""))


def _observation(event: dict[str, Any], origin: int, stuck_judged: dict[float, str]) -> str:
    raw = event.get("value")
    value: dict[str, Any] = raw if isinstance(raw, dict) else {}
    at = (event.get("time", origin) - origin) / 1e9
    f = str(event.get("f"))
    if f == "quiesce":
        if value.get("agreed"):
            what = (f"the running nodes agreed on leader {value.get('leader')} after {value.get('waited_s')} s; "
                    + ("every running node caught up to commit " + str(value.get("commit"))
                       if value.get("caught_up") else f"not every node caught up to commit {value.get('commit')} "
                       f"within {value.get('catch_up_s')} s"))
        else:
            what = f"no leader agreement within {value.get('timeout_s')} s of the final heal"
    elif f == "stuck":
        since = value.get("since")
        start = f"{(since - origin) / 1e9:.2f} s" if isinstance(since, int) else "?"
        what = (f"{value.get('condition')} from {start} for {value.get('held_s')} s "
                f"({value.get('invokes')} client ops invoked); {stuck_judged.get(round(at, 3), 'not judged')}")
    else:
        what = _short(value)
    listed = value.get("nodes")
    nodes: dict[str, Any] = listed if isinstance(listed, dict) else {}
    states = "".join(f"<li>{esc(_status_line(str(n), st))}</li>" for n, st in sorted(nodes.items()))
    return (f'<tr><td>{at:.2f} s</td><td>{esc(f)}</td><td>{esc(what)}'
            f'{f"<ul class=mono>{states}</ul>" if states else ""}</td></tr>')


def _observations(run: RunFiles, summary: Summary) -> str:
    """The lab's own observations (history events of process "harness": the quiesce outcome, stuck anomalies). The
    log-matching oracle's ``chain`` observations (one every status interval) are counted, not listed: the
    log-matching checker's result names what matters in them."""
    chains = sum(1 for e in run.history.observations if isinstance(e, dict) and e.get("f") == CHAIN)
    events = [e for e in run.history.observations if not (isinstance(e, dict) and e.get("f") == CHAIN)]
    if not events:
        return f"<p>{chains} chain observations (the log-matching checker judges them)</p>" if chains else ""
    rec = summary.checkers.get("recovery") if isinstance(summary.checkers.get("recovery"), dict) else {}
    judged = {float(a["at_s"]): str(a.get("judged", "")) for a in (rec or {}).get("stuck") or []
              if isinstance(a, dict) and isinstance(a.get("at_s"), int | float)}
    rows = "".join(_observation(e, run.start_time, judged) for e in events if isinstance(e, dict))
    note = f"<p>and {chains} chain observations (the log-matching checker judges them)</p>" if chains else ""
    return (f'<h3>What the lab observed</h3><table class="grid observations"><tr><th>at</th><th>observation</th>'
            f'<th>outcome and each node\'s last status</th></tr>{rows}</table>{note}')


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        out.append((prefix, obj))
    return out


def _short(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
    return s if len(s) <= CONFIG_VALUE_CHARS else s[:CONFIG_VALUE_CHARS] + f"… ({len(s)} chars)"


def _config(test: dict[str, Any]) -> str:
    if not test:
        return '<p class="note">No readable test.json: the options, seed, versions and hosts are unknown.</p>'
    hosts = test.get("hosts")
    rest = {k: v for k, v in test.items() if k != "hosts"}
    if isinstance(rest.get("argv"), list):  # as the command line it was
        rest["argv"] = shlex.join(str(a) for a in rest["argv"])
    first = ["name", "workload", "db", "nemesis", "nemeses", "seed", "start_wall", "nodes", "backend", "versions"]
    rows = sorted(_flatten(rest), key=lambda kv: (first.index(kv[0].split(".")[0]) if kv[0].split(".")[0] in first
                                                  else len(first), kv[0]))
    cells = [f"<tr><th>{esc(k)}</th><td>{esc(_short(v))}</td></tr>" for k, v in rows]
    half = (len(cells) + 1) // 2  # two tables side by side: half the height
    out = (f'<div class="kv2"><table class="kv">{"".join(cells[:half])}</table>'
           f'<table class="kv">{"".join(cells[half:])}</table></div>')
    if isinstance(hosts, list) and hosts:
        cols: list[str] = []
        for h in hosts:
            if isinstance(h, dict):
                cols.extend(c for c in h if c not in cols)
        head = "".join(f"<th>{esc(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{esc(_short(h.get(c, '')))}</td>" for c in cols) + "</tr>"
                       for h in hosts if isinstance(h, dict))
        out += f'<h3>Hosts</h3><table class="grid"><tr>{head}</tr>{body}</table>'
    return out


def _checkers(summary: Summary, run: RunFiles) -> str:
    if run.results is None:
        return '<p class="note">No results.json.</p>'
    rows = []
    for name, r in summary.checkers.items():
        v = r.get("valid")
        word = "valid" if v is True else "invalid" if v is False else "unknown"
        facts = []
        for k in ("model", "elapsed_s", "parts", "anomalies", "examples", "unknown_reason", "error"):
            if k in r:
                facts.append(f"<span><b>{esc(k)}</b> {esc(_short(r[k]))}</span>")
        rows.append(f'<tr><th>{esc(name)}</th><td><span class="pill {word}">{word}</span></td>'
                    f'<td class="facts">{"".join(facts)}</td></tr>')
    # The file's own text (pretty-printing a large failure record in Python would cost seconds), cut.
    try:
        with (run.run_dir / "results.json").open(encoding="utf-8", errors="replace") as fh:
            text = fh.read(RESULTS_CHARS + 1)
    except OSError:
        text = ""
    if len(text) > RESULTS_CHARS:
        text = text[:RESULTS_CHARS] + "\n… cut here: open results.json for the rest"
    heal = run.results.get("heal")
    heal_html = ""
    if isinstance(heal, dict):
        word = "ok" if heal.get("ok") is True else "failed" if heal.get("ok") is False else "unknown"
        heal_html = f'<p>Final heal: <span class="pill {"valid" if word == "ok" else "invalid"}">{word}</span> ' \
                    f'{esc(_short(heal.get("details", "")))}</p>'
    return (f'<table class="grid checkers">{"".join(rows)}</table>{heal_html}'
            f'<details><summary>results.json</summary><pre>{esc(text)}</pre></details>')


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _files(run: RunFiles, data: dict[str, Any]) -> str:
    if not run.files:
        return '<p class="note">No files were collected.</p>'
    lines = {lg["path"]: lg["lines"] for lg in data.get("logs") or []}
    groups: dict[str, list[Path]] = {}
    for rel in run.files:
        groups.setdefault(rel.parts[0] if len(rel.parts) > 1 else "run", []).append(rel)
    out = []
    for group in sorted(groups, key=lambda g: (g != "run", g)):
        items = []
        for rel in groups[group]:
            p = rel.as_posix()
            try:
                size = _size((run.run_dir / rel).stat().st_size)
            except OSError:
                size = "?"
            n = f" · {lines[p]} lines" if p in lines else ""
            items.append(f'<li><a class="file" href="{href(p)}" data-path="{esc(p)}">{esc(p)}</a>'
                         f' <span class="dim">{size}{n}</span></li>')
        out.append(f'<div class="filegroup"><h3>{esc(group)}</h3><ul>{"".join(items)}</ul></div>')
    return f'<div class="filegroups">{"".join(out)}</div>'


MAX_METRICS = 120
_SAMPLE = re.compile(r"([a-zA-Z_:][\w:]*(?:\{.*\})?)\s+([-+]?(?:[\d.]+(?:[eE][-+]?\d+)?|NaN|Inf))(?:\s+-?\d+)?$")


def parse_metrics(text: str) -> dict[str, str]:
    """Prometheus text exposition -> {"name{labels}": "value"}, without comments and histogram buckets."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _SAMPLE.fullmatch(line.strip())
        if m and "_bucket{" not in m.group(1) and not m.group(1).endswith("_created"):
            out[m.group(1)] = m.group(2)
    return out


def _metrics(run: RunFiles) -> str:
    per_node: dict[str, dict[str, str]] = {}
    for rel in run.files:
        if rel.name == "metrics.txt" and len(rel.parts) >= 2:
            try:
                per_node[rel.parts[0]] = parse_metrics((run.run_dir / rel).read_text(errors="replace"))
            except OSError:
                continue
    if not per_node:
        return '<p class="note">No node metrics were collected (no &lt;node&gt;/metrics.txt).</p>'
    nodes = sorted(per_node)
    names: list[str] = []
    for n in nodes:
        names.extend(m for m in per_node[n] if m not in names)
    cut = len(names) > MAX_METRICS
    head = "".join(f"<th>{esc(n)}</th>" for n in nodes)
    body = "".join(f"<tr><th>{esc(m)}</th>" + "".join(f"<td>{esc(per_node[n].get(m, ''))}</td>" for n in nodes)
                   + "</tr>" for m in names[:MAX_METRICS])
    note = f'<p class="note">{len(names) - MAX_METRICS} more metrics in the files.</p>' if cut else ""
    return (f'<details><summary>{len(names)} metrics from the final scrape of {len(nodes)} nodes</summary>'
            f'<table class="grid metrics"><tr><th>metric</th>{head}</tr>{body}</table>{note}</details>')


def _problems(data: dict[str, Any]) -> str:
    problems = data.get("problems") or []
    if not problems:
        return '<p class="note">None: every file was present and well formed.</p>'
    return '<ul class="problems">' + "".join(f"<li><pre>{esc(p)}</pre></li>" for p in problems) + "</ul>"


__all__ = ["render_run", "run_summary", "store_of", "REPORT", "SUMMARY", "Verdict"]
