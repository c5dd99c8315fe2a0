"""checker.availability on hand-built histories: ok rates overall and during faults, time to first ok after each
heal, latency quantiles; and the campaign page's rows (reports.campaign) from a campaign record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from checker.availability import availability, quantiles
from reports.campaign import render_campaign

MS = 1_000_000


def ev(process: Any, type_: str, f: str, t_ms: int, value: Any = None) -> dict[str, Any]:
    return {"process": process, "type": type_, "f": f, "time": t_ms * MS, "value": value}


def history() -> list[dict[str, Any]]:
    part = {"fault": "partition"}
    events = [ev(0, "invoke", "get", 0), ev(0, "ok", "get", 10),                      # before: ok, 10 ms
            ev("nemesis", "invoke", "start", 20, part), ev("nemesis", "info", "start", 21, part),
            ev(0, "invoke", "put", 30), ev(0, "info", "put", 530),                   # during: info
            ev(1, "invoke", "get", 40), ev(1, "fail", "get", 60),                    # during: fail
            ev("nemesis", "invoke", "stop", 600, part), ev("nemesis", "info", "stop", 601, part),
            ev(2, "invoke", "put", 650), ev(2, "ok", "put", 681)]                    # after the heal: ok, 31 ms
    return [{**e, "index": i} for i, e in enumerate(events)]


def test_rates_heals_and_latencies_come_from_the_history() -> None:
    got = availability(history())
    assert (got["ops"], got["ok"], got["ok_rate"]) == (4, 2, 0.5)
    assert (got["faulted"], got["faulted_ok_rate"]) == (2, 0.0)
    assert got["heals"] == [{"healed": "partition", "first_ok_s": 0.08}]  # 601 ms heal -> 681 ms first ok
    assert got["latency_ms"] == {"p50": 10.0, "p90": 31.0, "p99": 31.0, "max": 31.0}


def test_a_heal_with_no_ok_before_the_next_fault_has_none() -> None:
    events = history()[:10]  # no op after the heal
    assert availability(events)["heals"] == [{"healed": "partition", "first_ok_s": None}]
    assert quantiles([]) is None and availability([])["ok_rate"] is None


def test_the_campaign_page_puts_each_db_of_a_cell_side_by_side(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in history()))
    record = tmp_path / "campaign.json"
    record.write_text(json.dumps({"seed": 7, "runs": [
        {"cell": "partition", "db": "raftkv", "valid": True, "run_dir": str(run)},
        {"cell": "partition", "db": "etcd", "valid": False, "run_dir": None}]}))
    md, html = render_campaign(record)
    summary, runs = md.read_text().split("## Runs")
    lines = summary.strip().splitlines()
    assert lines[-2] == "| partition | raftkv | 1 | 1 valid | 50.0% | 0.0% | 0.08 s / 0.08 s | 10 / 31 |"
    assert lines[-1] == "| partition | etcd | 1 | 1 invalid | - | - | - | - |"
    assert f"| partition | raftkv | None | 1 valid | 50.0% | 0.0% | 0.08 | 10 / 31 | {run} |" in runs
    assert "<td>raftkv</td>" in html.read_text()
