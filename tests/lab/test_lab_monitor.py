"""`harness run --monitor` on the netns backend against the real raftkv (a subprocess, as a user runs it): samples of
every node in metrics.jsonl, a paused node's gap, the Prometheus target list, and the report's node-metric plots.
Nothing sleeps: the run is awaited as a process; its deadline is generous but bounded."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_net import run_prefix

from harness.clean import leftovers
from harness.store import read_jsonl

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.netns
TIME_LIMIT = 12


@pytest.fixture(scope="module")
def monitor_prefix() -> Iterator[str]:
    yield from run_prefix("rmo")


def _report_data(page: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert m, "the report embeds its data"
    return json.loads(m.group(1))


def test_a_monitored_run_samples_every_node_and_the_report_plots_them(monitor_prefix: str, tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAFTKV_LAB_PREFIX": monitor_prefix}
    argv = [sys.executable, "-m", "harness.cli", "run", "--workload", "register", "--nodes", "3",
            "--time-limit", str(TIME_LIMIT), "--concurrency", "6", "--rate", "100", "--keys", "4",
            "--nemesis", "pause", "--pause-targets", "minority", "--schedule", "cycle", "--nemesis-interval", "3",
            "--op-timeout", "1", "--final-time-limit", "5", "--seed", "12", "--store", str(store), "--monitor"]
    proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIME_LIMIT + 240)
    output = (proc.stdout + proc.stderr)[-3000:]
    assert leftovers(monitor_prefix) == [], "the run left something of the lab behind"
    assert proc.returncode == 0, output
    run = next(p for p in store.glob("*/2*") if p.is_dir())
    test = json.loads((run / "test.json").read_text())
    lines = read_jsonl(run / "metrics.jsonl")
    scrapes = [x for x in lines if x["kind"] == "scrape"]
    ok = {n: [x for x in scrapes if x["node"] == n and "values" in x] for n in ("n1", "n2", "n3")}
    assert all(len(v) >= TIME_LIMIT // 2 for v in ok.values()), {n: len(v) for n, v in ok.items()}
    names = {x["name"] for x in lines if x["kind"] == "series"}
    assert {"raftkv_term", "raftkv_commit_index", "raftkv_wal_fsync_seconds_bucket", "raftkv_requests_total"} <= names

    # A paused node answers no scrape: its notes fall inside a pause of that node, and the others went on.
    history = read_jsonl(run / "history.jsonl")
    pauses = [(e["time"], e["value"]["targets"]) for e in history
              if e["process"] == "nemesis" and e["type"] == "info" and e["f"] == "start"]
    assert pauses, "the pause nemesis paused nobody"
    failed = [x for x in scrapes if "error" in x]
    assert failed, "no scrape of a paused node failed"
    paused_at, targets = pauses[0]
    after = [x for x in scrapes if paused_at < x["time"] < paused_at + 2_000_000_000]
    assert any(x["node"] in targets and "error" in x for x in after), after
    assert any(x["node"] not in targets and "values" in x for x in after), after

    # The file_sd targets name every node's metrics address; the live copy is gone with the run.
    targets_file = json.loads((run / "prometheus-targets.json").read_text())
    assert {g["labels"]["node"]: g["targets"][0].rsplit(":", 1)[0] for g in targets_file} == {
        h["name"]: h["address"] for h in test["hosts"]}
    assert list((store / "_prometheus").iterdir()) == []

    data = _report_data((run / "report.html").read_text())
    panels = {p["title"]: p for p in data["metrics"]["panels"]}
    assert {"Term", "Commit and applied index", "Client requests by outcome"} <= set(panels)
    for title in ("Term", "Commit and applied index"):
        assert {t["node"] for t in panels[title]["traces"]} == {"n1", "n2", "n3"}
        assert all(any(y is not None for y in t["y"]) for t in panels[title]["traces"])
    commits = [y for t in panels["Commit and applied index"]["traces"] for y in t["y"] if y is not None]
    assert max(commits) > 10, "the commit index grew while the clients wrote"
