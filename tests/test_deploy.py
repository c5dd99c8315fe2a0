"""The monitoring files in deploy/ stay in step with what a raftkv node exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from raftkv.server.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "monitoring" / "grafana-dashboard.json"


def _exported_samples() -> set[str]:
    metrics = Metrics("n1")
    # Histograms and labelled series only show samples once observed; touch one of each so names appear.
    metrics.request_latency.labels(op="put").observe(0.001)
    metrics.requests.labels(op="put", outcome="ok").inc()
    metrics.snapshots.labels(kind="made").inc()
    names: set[str] = set()
    for family in text_string_to_metric_families(metrics.render().decode()):
        names.update(sample.name for sample in family.samples)
        names.add(family.name)
    return names


def test_every_dashboard_query_names_an_exported_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs, "the dashboard has no queries"
    used = {name for e in exprs for name in re.findall(r"raftkv_[a-z_]+", e)}
    exported = _exported_samples()
    missing = sorted(used - exported)
    assert not missing, f"the dashboard queries metrics no node exports: {missing}"


def test_panels_do_not_overlap() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not (area & cells), f"panel {panel['title']!r} overlaps another"
        cells |= area


def test_every_lab_metric_panel_names_an_exported_metric() -> None:
    """What a --monitor run's report plots (the raftkv adapter's panels) exists in a node's scrape."""
    from workloads.raftkv_db import METRIC_PANELS

    exported = _exported_samples()
    named = {m for panel in METRIC_PANELS for m in panel.metrics}
    assert named and not sorted(named - exported), f"panels name metrics no node exports: {named - exported}"
    hist = {m for panel in METRIC_PANELS if panel.show in ("mean", "p99") for m in panel.metrics}
    assert {f"{m}_bucket" for m in hist} <= exported, "a mean/p99 panel names a family that is not a histogram"
