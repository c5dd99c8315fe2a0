"""`render_detection(detection_json)`: the detection table of a failpoint campaign as a page a person reads.

Reads the detection.json that harness/detection.py writes (its contract: `rows` with each bug's name, layer,
mimics, shows_as, sim_seed, caught and runs; `control` runs; `caught`, `bugs`, `median_anomaly_s`,
`false_alarms`, `command`) and writes detection.html beside it. Every run links to its report, so a reader goes
from "caught by linearizable at 12.4 s under partition[isolate-leader]" to the history in one click. A false alarm
(a clean control run that is not valid) is shown first and in red: it outranks every catch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reports.htmlsafe import esc, href
from reports.render import REPORT, atomic_write

DETECTION = "detection.html"


def _link(run: dict[str, Any], base: Path) -> str:
    run_dir = run.get("run_dir")
    if not isinstance(run_dir, str) or not run_dir:
        return "–"
    rel = os.path.relpath(Path(run_dir) / REPORT, base)
    verdict = run.get("valid")
    label = "valid" if verdict is True else "INVALID" if verdict is False else str(verdict)
    return f'<a href="{href(Path(rel).as_posix())}">seed {esc(run.get("seed"))}: {esc(label)}</a>'


def _row(row: dict[str, Any], base: Path) -> str:
    runs = [r for r in row.get("runs") or [] if isinstance(r, dict)]
    first = next((r for r in runs if r.get("caught")), None)
    anomaly = first.get("anomaly_s") if first else None
    cells = [
        f'<b>{esc(row.get("name"))}</b><br><span class="dim">{esc(row.get("mimics"))}</span>',
        esc(row.get("layer")), esc(row.get("shows_as")),
        '<span class="pill valid">caught</span>' if first else '<span class="pill invalid">missed</span>',
        "–" if anomaly is None else f"{float(anomaly):.1f} s",
        esc(", ".join(first.get("caught_by") or [])) if first else "–",
        esc(", ".join(first.get("faults_at_anomaly") or [])) if first else "–",
        "–" if row.get("sim_seed") is None else esc(row.get("sim_seed")),
        "<br>".join(_link(r, base) for r in runs) or "–",
    ]
    return f'<tr class="{"caught" if first else "missed"}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def render_detection(detection_json: Path) -> Path:
    """Write detection.html next to ``detection_json``; return its path."""
    data = json.loads(Path(detection_json).read_text())
    base = Path(detection_json).resolve().parent
    rows = "".join(_row(r, base) for r in data.get("rows") or [] if isinstance(r, dict))
    control = [r for r in data.get("control") or [] if isinstance(r, dict)]
    alarms = [r for r in control if r.get("valid") is not True]
    alarm_html = ("" if not alarms else
                  '<p class="alarm">FALSE ALARM: ' + f"{len(alarms)} of {len(control)} clean run(s) without any "
                  "failpoint were not valid: " + ", ".join(_link(r, base) for r in alarms) + "</p>")
    median = data.get("median_anomaly_s")
    page = _PAGE.format(
        css=_CSS, caught=esc(data.get("caught")), bugs=esc(data.get("bugs")), alarm=alarm_html,
        median="–" if median is None else f"{float(median):.1f} s", command=esc(data.get("command") or ""),
        control=", ".join(_link(r, base) for r in control) or "none", rows=rows)
    out = base / DETECTION
    atomic_write(out, page)
    return out


_CSS = """
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: #0f172a; background: #f8fafc; }
header { background: #0f172a; color: #e2e8f0; padding: 14px 20px; } header h1 { margin: 0; font-size: 20px; }
main { padding: 10px 20px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #e2e8f0; }
th { text-align: left; font-size: 12px; color: #64748b; font-weight: 500; padding: 6px 8px; }
td { padding: 6px 8px; border-top: 1px solid #e2e8f0; vertical-align: top; }
tr.missed { background: #fff7f7; }
.pill { display: inline-block; padding: 1px 9px; border-radius: 10px; color: #fff; font-size: 12px; }
.pill.valid { background: #15803d; } .pill.invalid { background: #b91c1c; }
.dim { color: #64748b; font-size: 12px; }
.alarm { background: #b91c1c; color: #fff; padding: 8px 12px; border-radius: 4px; font-weight: 600; }
.alarm a { color: #fff; text-decoration: underline; }
a { color: #1d4ed8; text-decoration: none; } a:hover { text-decoration: underline; }
code { background: #e2e8f0; padding: 1px 4px; border-radius: 3px; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>raftkv lab: detection table</title><style>{css}</style></head>
<body><header><h1>Detection table · caught {caught} of {bugs} planted bugs</h1>
<div>median time to first anomaly {median}</div></header>
<main>{alarm}
<p>Command: <code>{command}</code></p>
<table><thead><tr><th>failpoint</th><th>layer</th><th>shows as</th><th>verdict</th><th>first anomaly</th>
<th>caught by</th><th>faults active then</th><th>simulator seed</th><th>runs</th></tr></thead>
<tbody>{rows}</tbody></table>
<p>Control runs (no failpoint, each must be valid): {control}</p>
</main></body></html>
"""
