"""`render_index(store)`: store/index.html, the campaign index: every run, newest first, coloured by verdict, with
its workload, nemeses, duration, operation counts and links; filters by verdict, nemesis and free text.

A run directory is any store/<test>/<name>/ (not a symlink such as `latest`, not `_static`) holding test.json,
history.jsonl or results.json. What the index shows of a run comes from its summary.json (written by render_run)
when that is still fresh (history.jsonl unchanged since); otherwise from a quick scan that reads test.json and
results.json and counts the history's event types without parsing every line, so an index over hundreds of runs
stays fast. A run that cannot be read at all is still listed, with what went wrong.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from reports.htmlsafe import esc, href, json_script
from reports.render import REPORT, SUMMARY, atomic_write
from reports.rundir import HISTORY, RESULTS, TEST
from reports.static import STATIC_DIR
from reports.verdict import summarize

INDEX = "index.html"
_TYPE = re.compile(rb'"type"\s*:\s*"(invoke|ok|fail|info)"')
_NEMESIS = re.compile(rb'"process"\s*:\s*"nemesis"')
_HARNESS = re.compile(rb'"process"\s*:\s*"harness"')
_TIME = re.compile(rb'"time"\s*:\s*(\d+)')


def find_runs(store: Path) -> list[Path]:
    """Every run directory of the store (see the module doc), in no particular order."""
    runs: list[Path] = []
    if not store.is_dir():
        return runs
    for test_dir in store.iterdir():
        if test_dir.name.startswith((".", "_")) or test_dir.is_symlink() or not test_dir.is_dir():
            continue
        for run_dir in test_dir.iterdir():
            if run_dir.is_symlink() or not run_dir.is_dir() or run_dir.name.startswith("."):
                continue
            if any((run_dir / f).is_file() for f in (TEST, HISTORY, RESULTS)):
                runs.append(run_dir)
    return runs


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def quick_summary(run_dir: Path) -> dict[str, Any]:
    """What the index needs of a run, without the full data preparation of a report."""
    test = _json(run_dir / TEST) or {}
    results = _json(run_dir / RESULTS) if (run_dir / RESULTS).is_file() else None
    summary = summarize(results)
    counts = {"ok": 0, "fail": 0, "info": 0, "pending": 0}
    duration = None
    faults = 0
    history = run_dir / HISTORY
    st = history.stat() if history.is_file() else None
    if st is not None:
        invokes = 0
        first = last = None
        with history.open("rb") as fh:
            for line in fh:
                m = _TYPE.search(line)
                if not m:
                    continue
                if _HARNESS.search(line):
                    continue  # the lab's own observations: neither an operation nor a fault
                if _NEMESIS.search(line):
                    if m.group(1) == b"invoke" and b'"start"' in line:
                        faults += 1
                    continue
                kind = m.group(1).decode()
                if kind == "invoke":
                    invokes += 1
                else:
                    counts[kind] += 1
                t = _TIME.search(line)
                if t:
                    last = int(t.group(1))
                    first = last if first is None else first
        counts["pending"] = max(0, invokes - counts["ok"] - counts["fail"] - counts["info"])
        origin = test.get("start_time") if isinstance(test.get("start_time"), int) else first
        if last is not None and origin is not None:
            duration = round((last - origin) / 1e9, 3)
    nem = test.get("nemesis", test.get("nemeses"))
    nemeses = [str(x) for x in nem] if isinstance(nem, list) else (str(nem).replace(",", " ").split() if nem else [])
    return {"verdict": summary.verdict.value, "headline": summary.headline, "why": " ".join(summary.sentences[:2]),
            "name": test.get("name"), "workload": test.get("workload"), "nemeses": nemeses,
            "start_wall": test.get("start_wall"), "duration_s": duration, "ops": counts, "faults": faults,
            "invalid_key": summary.invalid.part if summary.invalid else None,
            "history_size": st.st_size if st else None, "history_mtime_ns": st.st_mtime_ns if st else None}


def run_info(run_dir: Path) -> dict[str, Any]:
    """summary.json if it is fresh, else quick_summary."""
    cached = _json(run_dir / SUMMARY)
    history = run_dir / HISTORY
    st = history.stat() if history.is_file() else None
    results_newer = (run_dir / RESULTS).is_file() and (run_dir / SUMMARY).is_file() and \
        (run_dir / RESULTS).stat().st_mtime_ns > (run_dir / SUMMARY).stat().st_mtime_ns
    if cached and not results_newer and cached.get("history_size") == (st.st_size if st else None) \
            and cached.get("history_mtime_ns") == (st.st_mtime_ns if st else None):
        return cached
    try:
        return quick_summary(run_dir)
    except OSError as e:
        return {"verdict": "unchecked", "headline": "Unreadable", "why": f"could not read the run: {e}"}


def _fmt_duration(s: Any) -> str:
    if not isinstance(s, int | float):
        return "–"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def render_index(store: Path) -> Path:
    """Write store/index.html over every run of the store; return its path. An empty store gives an empty list."""
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    runs = []
    for run_dir in find_runs(store):
        info = run_info(run_dir)
        rel = run_dir.relative_to(store).as_posix()
        runs.append((str(info.get("start_wall") or ""), run_dir.name, rel, run_dir, info))
    runs.sort(key=lambda r: (r[0], r[1]), reverse=True)
    nemeses = sorted({n for *_, info in runs for n in info.get("nemeses") or []})
    rows = [_row(rel, run_dir, info) for _, _, rel, run_dir, info in runs]
    counts = {v: sum(1 for *_, i in runs if i.get("verdict") == v) for v in ("valid", "invalid", "unknown",
                                                                              "unchecked")}
    page = _PAGE.format(
        css=_CSS, n=len(runs),
        counts=" · ".join(f'<span class="pill {v}">{c} {v}</span>' for v, c in counts.items() if c),
        nemesis_options="".join(f'<option value="{esc(n)}">{esc(n)}</option>' for n in nemeses),
        rows="".join(rows) or '<tr><td colspan="9" class="empty">No runs in this store yet.</td></tr>',
        js=_JS, data=json_script({"runs": len(runs)}), detections=_detections(store))
    out = store / INDEX
    atomic_write(out, page)
    return out


def _detections(store: Path) -> str:
    """Links to the detection tables of the store's failpoint campaigns (newest first), with their counts."""
    items = []
    for path in sorted(store.glob("campaigns/*/detection.json"), reverse=True):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        alarms = data.get("false_alarms") or 0
        rel = path.parent.relative_to(store).as_posix() + "/detection.html"
        text = f"{path.parent.name}: caught {data.get('caught')} of {data.get('bugs')} planted bugs"
        alarm = f' <span class="pill invalid">{esc(alarms)} false alarm(s)</span>' if alarms else ""
        items.append(f'<li><a href="{href(rel)}">{esc(text)}</a>{alarm}</li>')
    return f'<section class="detections"><b>Detection tables</b><ul>{"".join(items)}</ul></section>' if items else ""


def _row(rel: str, run_dir: Path, info: dict[str, Any]) -> str:
    verdict = str(info.get("verdict") or "unchecked")
    raw_ops = info.get("ops")
    ops: dict[str, Any] = raw_ops if isinstance(raw_ops, dict) else {}
    total = sum(v for v in ops.values() if isinstance(v, int) and not isinstance(v, bool))
    nem = [str(n) for n in info.get("nemeses") or []]
    report = (run_dir / REPORT).is_file()
    links = [f'<a href="{href(rel + "/" + REPORT)}">report</a>' if report else
             f'<a class="missing" href="{href(rel + "/" + REPORT)}" title="not rendered yet (harness serve renders it on '
             f'demand; or run harness report DIR)">report?</a>']
    for name, text in (("history.jsonl", "history"), ("results.json", "results"), ("harness.log", "log")):
        if (run_dir / name).is_file():
            links.append(f'<a href="{href(rel + "/" + name)}">{text}</a>')
    links.append(f'<a class="served-only" href="/zip/{href(rel)}">zip</a>')
    search = " ".join(str(x) for x in (rel, info.get("name"), info.get("workload"), " ".join(nem),
                                       info.get("why"), info.get("invalid_key")) if x)
    started = str(info.get("start_wall") or "")
    return (f'<tr class="run {esc(verdict)}" data-verdict="{esc(verdict)}" data-nemeses="{esc(json.dumps(nem))}" '
            f'data-search="{esc(search.lower())}">'
            f'<td><span class="pill {esc(verdict)}">{esc(info.get("headline") or verdict)}</span></td>'
            f'<td><a href="{href(rel + "/" + REPORT)}"><b>{esc(info.get("name") or run_dir.parent.name)}</b><br>'
            f'<span class="dim">{esc(run_dir.name)}</span></a></td>'
            f'<td class="dim">{esc(started.replace("T", " ")[:19])}</td>'
            f'<td>{esc(info.get("workload") or "–")}</td>'
            f'<td>{"".join(f"<span class=tag>{esc(n)}</span>" for n in nem) or "–"}</td>'
            f'<td class="num">{_fmt_duration(info.get("duration_s"))}</td>'
            f'<td class="num">{total:,}<br><span class="dim">{ops.get("ok", 0):,} ok · {ops.get("fail", 0):,} fail · '
            f'{ops.get("info", 0) + ops.get("pending", 0):,} info</span></td>'
            f'<td class="why">{esc(info.get("why") or "")}</td>'
            f'<td class="links">{" ".join(links)}</td></tr>')


_CSS = """
:root { --valid: #15803d; --invalid: #b91c1c; --unknown: #b45309; --unchecked: #4b5563; --line: #e2e8f0; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: #0f172a; background: #f8fafc; }
header { background: #0f172a; color: #e2e8f0; padding: 14px 20px; }
header h1 { margin: 0; font-size: 20px; }
main { padding: 10px 20px; }
.filters { display: flex; gap: 12px; align-items: end; flex-wrap: wrap; margin: 8px 0 12px; }
.filters label { display: flex; flex-direction: column; font-size: 12px; color: #64748b; }
.filters select, .filters input { font: inherit; padding: 3px 6px; border: 1px solid #cbd5e1; border-radius: 4px; }
.count { margin-left: auto; color: #64748b; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th { text-align: left; font-size: 12px; color: #64748b; font-weight: 500; padding: 6px 8px; border-bottom: 1px solid var(--line); }
td { padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
tr.run { border-left: 5px solid var(--unchecked); }
tr.run.valid { border-left-color: var(--valid); } tr.run.invalid { border-left-color: var(--invalid); background: #fff7f7; }
tr.run.unknown { border-left-color: var(--unknown); background: #fffbeb; }
.pill { display: inline-block; white-space: nowrap; padding: 1px 9px; border-radius: 10px; color: #fff; font-size: 12px; background: var(--unchecked); }
.pill.valid { background: var(--valid); } .pill.invalid { background: var(--invalid); } .pill.unknown { background: var(--unknown); }
.dim { color: #64748b; font-size: 12px; }
.num { text-align: right; white-space: nowrap; }
.why { font-size: 12px; max-width: 460px; }
.tag { display: inline-block; background: #e0e7ff; color: #3730a3; border-radius: 3px; padding: 0 6px; margin: 1px 3px 1px 0; font-size: 12px; }
.links a { margin-right: 6px; white-space: nowrap; }
a { color: #1d4ed8; text-decoration: none; } a:hover { text-decoration: underline; }
a.missing { color: #94a3b8; }
.empty { text-align: center; color: #64748b; padding: 30px; }
body:not(.served) .served-only { display: none; }
"""

_JS = """
(function () {
  'use strict';
  if (location.protocol === 'http:' || location.protocol === 'https:') {
    document.body.classList.add('served');
    // harness serve renders a missing report when it is asked for.
    document.querySelectorAll('a.missing').forEach((a) => { a.classList.remove('missing'); a.textContent = 'report'; });
  }
  const v = document.getElementById('f-verdict'), n = document.getElementById('f-nemesis'), q = document.getElementById('f-text');
  const rows = Array.from(document.querySelectorAll('tr.run'));
  const count = document.getElementById('count');
  function apply() {
    let shown = 0; const text = q.value.trim().toLowerCase();
    for (const r of rows) {
      const ok = (!v.value || r.dataset.verdict === v.value) &&
        (!n.value || JSON.parse(r.dataset.nemeses).includes(n.value)) &&
        (!text || r.dataset.search.includes(text));
      r.hidden = !ok; if (ok) shown++;
    }
    count.textContent = shown + ' of ' + rows.length + ' runs';
  }
  const params = new URLSearchParams(location.search);
  if (params.get('verdict')) v.value = params.get('verdict');
  if (params.get('nemesis')) n.value = params.get('nemesis');
  v.addEventListener('change', apply); n.addEventListener('change', apply); q.addEventListener('input', apply);
  apply();
  document.body.dataset.ready = '1';
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>raftkv lab: {n} runs</title><style>{css}</style></head>
<body><header><h1>raftkv lab · {n} runs</h1><div>{counts}</div></header>
<main>{detections}
<div class="filters">
<label>verdict<select id="f-verdict"><option value="">any</option><option value="invalid">invalid</option>
<option value="unknown">unknown</option><option value="valid">valid</option><option value="unchecked">not checked</option>
</select></label>
<label>nemesis<select id="f-nemesis"><option value="">any</option>{nemesis_options}</select></label>
<label>search<input id="f-text" type="search" placeholder="test, workload, key, reason"></label>
<span class="count" id="count"></span>
</div>
<table><thead><tr><th>verdict</th><th>test · run</th><th>started (UTC)</th><th>workload</th><th>nemeses</th>
<th class="num">duration</th><th class="num">operations</th><th>why</th><th>files</th></tr></thead>
<tbody>{rows}</tbody></table>
</main>
<script type="application/json" id="index-data">{data}</script>
<script>{js}</script>
</body></html>
"""

__all__ = ["render_index", "find_runs", "run_info", "quick_summary", "INDEX", "STATIC_DIR"]
