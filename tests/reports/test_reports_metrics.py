"""The "Node metrics" plots of a --monitor run: drawn from metrics.jsonl alone (hand-written here, to the format of
docs/store.md), per node on the run's time axis, with a gap where a scrape failed; a run without metrics.jsonl or
with a damaged one still renders."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from reports.browser import find_chromium, launch
from reports.render import render_run
from reports.synthetic import NODES, START_TIME_NS

PANELS = [{"title": "Term", "metrics": ["raftkv_term"], "show": "value", "by": [], "unit": "", "scale": 1.0},
          {"title": "Requests by outcome", "metrics": ["raftkv_requests_total"], "show": "rate", "by": ["outcome"],
           "unit": "req/s", "scale": 1.0}]
SERIES = [{"kind": "series", "id": 0, "name": "raftkv_term", "type": "gauge", "labels": {}},
          {"kind": "series", "id": 1, "name": "raftkv_requests_total", "type": "counter",
           "labels": {"op": "put", "outcome": "ok"}},
          {"kind": "series", "id": 2, "name": "raftkv_requests_total", "type": "counter",
           "labels": {"op": "get", "outcome": "ok"}}]
DOWN = ("n2", 3)  # n2's scrape at second 3 failed: a gap in its lines


def _lines() -> list[dict[str, Any]]:
    """Five nodes scraped at 1..6 s: node i (1-based) at term 1 + (t >= 4), i*10 puts and i gets a second."""
    out: list[dict[str, Any]] = [{"kind": "meta", "version": 1, "interval_s": 1.0, "timeout_s": 1.0,
                                  "nodes": list(NODES), "panels": PANELS}, *SERIES]
    for t in range(1, 7):
        for i, node in enumerate(NODES, start=1):
            time = START_TIME_NS + t * 1_000_000_000
            if (node, t) == DOWN:
                out.append({"kind": "scrape", "time": time, "node": node, "took_ms": 1000.0,
                            "error": "TimeoutError: no answer within 1 s"})
                continue
            out.append({"kind": "scrape", "time": time, "node": node, "took_ms": 2.5,
                        "values": [[0, 1 + (t >= 4)], [1, i * 10 * t], [2, i * t]]})
    return out


def _write(run: Path, lines: list[Any], extra: bytes = b"") -> None:
    (run / "metrics.jsonl").write_bytes(b"".join(json.dumps(x).encode() + b"\n" for x in lines) + extra)


def _data(page: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert m, "the report embeds its data"
    return json.loads(m.group(1))


@pytest.fixture
def monitored(runs: dict[str, Path], tmp_path: Path) -> Path:
    run = tmp_path / "store" / "t" / runs["valid"].name
    shutil.copytree(runs["valid"], run)
    _write(run, _lines())
    return run


def test_the_report_plots_every_node_from_the_stored_samples(monitored: Path) -> None:
    page = render_run(monitored).read_text()
    assert 'id="node-metrics"' in page
    m = _data(page)["metrics"]
    assert m["nodes"] == list(NODES) and m["scrapes"]["n2"] == {"ok": 5, "failed": 1}
    assert m["failures"] == {"n2": [[3.0, "TimeoutError: no answer within 1 s"]]}
    term, requests = m["panels"]
    assert [t["node"] for t in term["traces"]] == list(NODES)
    n2 = next(t for t in term["traces"] if t["node"] == "n2")
    assert n2["x"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0] and n2["y"] == [1, 1, None, 2, 2, 2]
    # the rate sums put and get ok (by outcome only): node i does 11 * i a second; none across n2's gap
    n4 = next(t for t in requests["traces"] if t["node"] == "n4")
    assert n4["name"] == "outcome=ok" and n4["y"] == [44.0] * 5
    n2 = next(t for t in requests["traces"] if t["node"] == "n2")
    assert n2["y"] == [22.0, None, None, 22.0, 22.0]
    # the same store renders the same plots again (what `harness report` after `harness analyze` does)
    assert _data(render_run(monitored).read_text())["metrics"] == m


def test_a_damaged_or_missing_store_is_a_note_not_a_crash(monitored: Path) -> None:
    _write(monitored, _lines()[:20] + ["not an object", {"kind": "scrape", "node": "n1"}], b'{"kind": "scr')
    data = _data(render_run(monitored).read_text())
    assert any("metrics.jsonl: 3 unreadable line(s)" in p for p in data["problems"]), data["problems"]
    assert data["metrics"]["panels"][0]["traces"]
    (monitored / "metrics.jsonl").unlink()
    assert _data(render_run(monitored).read_text())["metrics"] is None


@pytest.mark.browser
@pytest.mark.skipif(find_chromium() is None, reason="needs Debian's chromium (scripts/bootstrap --test)")
async def test_the_metric_plots_are_drawn_in_chromium(monitored: Path) -> None:
    report = render_run(monitored)
    async with launch() as browser:
        page = await browser.page()
        await page.goto(report.as_uri(), width=1400, height=1000)
        await page.wait_for("document.body && document.body.dataset.ready === '1'", timeout=60)
        assert page.errors() == [], page.errors()
        drawn = await page.evaluate("[0, 1].map(k => !!document.querySelector('#plot-metric-' + k + ' .main-svg'))")
        assert drawn == [True, True]
        traces = await page.evaluate("document.getElementById('plot-metric-0').data.map(t => [t.name, t.y])")
        assert ["n2", [1, 1, None, 2, 2, 2]] in traces and len(traces) == len(NODES)
        # drawn on the faults' time axis: the same fault bands as the latency plot
        shapes = await page.evaluate("[document.getElementById('plot-metric-0').layout.shapes.length, "
                                     "document.getElementById('plot-latency').layout.shapes.length]")
        assert shapes[0] == shapes[1] > 0
