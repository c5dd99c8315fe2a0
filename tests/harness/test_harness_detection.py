"""The detection table (harness/detection.py): from run directories to caught / time to first anomaly / faults."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness import detection as det

T0 = 1_000_000_000_000


def _s(seconds: float) -> int:
    return T0 + int(seconds * 1e9)


BUGS = (det.PlantedBug(name="stale-read", layer="server", mimics="a follower answers from its own state"),
        det.PlantedBug(name="lost-vote", layer="storage", mimics="the vote is not fsynced", sim_seed=17),
        det.PlantedBug(name="stuck", layer="core", mimics="never campaigns again", shows_as="liveness"))


class Catalog:
    def planted_bugs(self) -> tuple[det.PlantedBug, ...]:
        return BUGS

    def options_for(self, names: Any) -> dict[str, Any]:
        return {"db_failpoints": tuple(names)}


def nem(f: str, t: float, fault: str, **value: Any) -> list[dict[str, Any]]:
    v = {"fault": fault, **value}
    return [{"process": "nemesis", "type": "invoke", "f": f, "time": _s(t) - 1000, "value": v},
            {"process": "nemesis", "type": "info", "f": f, "time": _s(t), "value": v}]


def write_run(d: Path, results: dict[str, Any], history: list[dict[str, Any]]) -> Path:
    d.mkdir(parents=True)
    (d / "test.json").write_text(json.dumps({"start_time": T0}))
    (d / "results.json").write_text(json.dumps(results))
    lines = [json.dumps({"index": i, **e}) for i, e in enumerate(history)]
    (d / "history.jsonl").write_text("\n".join(lines) + '\n{"index": 99, "torn')
    return d


def test_the_catalog_is_a_capability_and_names_are_checked() -> None:
    assert isinstance(Catalog(), det.FailpointCatalog)
    assert [b.name for b in det.select(Catalog(), "all", "db")] == ["stale-read", "lost-vote", "stuck"]
    assert [b.name for b in det.select(Catalog(), "stuck,stale-read,stuck", "db")] == ["stuck", "stale-read"]
    with pytest.raises(det.CatalogError, match="unknown failpoint.*nope.*known: stale-read"):
        det.select(Catalog(), "nope", "db")
    with pytest.raises(det.CatalogError, match="DB etcd has no failpoints"):
        det.select(None, "all", "etcd")


def test_the_earliest_anomaly_of_the_invalid_checkers_counts() -> None:
    results = {"checkers": {"linearizable": {"valid": False, "anomaly_time": 50},
                            "convergence": {"valid": False, "anomaly_time": 40},
                            "stats": {"valid": True, "anomaly_time": 1},
                            "recovery": {"valid": "unknown", "anomaly_time": 2}}}
    assert det.anomaly_time(results) == (("convergence", "linearizable"), 40)
    assert det.anomaly_time({"checkers": {"x": {"valid": False}}}) == (("x",), None)
    assert det.anomaly_time({}) == ((), None)


def test_faults_active_at_an_instant_follow_start_and_stop_completions() -> None:
    history = [*nem("start", 1, "partition", move="isolate-leader"), *nem("start", 2, "kill"),
               *nem("stop", 3, "kill"), *nem("start", 4, "pause", skipped="no leader"), *nem("stop", 6, "partition")]
    assert det.active_faults(history, _s(0.5)) == ()
    assert det.active_faults(history, _s(2.5)) == ("kill", "partition[isolate-leader]")
    assert det.active_faults(history, _s(5)) == ("partition[isolate-leader]",)  # a skipped start is no fault
    assert det.active_faults(history, _s(7)) == ()
    # at the start's invoke the fault is not active yet: only its completion starts it
    assert det.active_faults(history, _s(1) - 500) == ()


def test_a_finding_reads_the_run_directory(tmp_path: Path) -> None:
    history = [*nem("start", 1, "partition"), {"process": 0, "type": "invoke", "f": "get", "time": _s(2)}]
    run = write_run(tmp_path / "r", {"valid": False, "checkers": {
        "linearizable": {"valid": False, "anomaly_time": _s(2.5)}}}, history)
    f = det.finding_of("stale-read", 7, run, False, 61.0)
    assert f.caught and f.caught_by == ("linearizable",) and f.anomaly_s == 2.5
    assert f.faults_at_anomaly == ("partition",)
    missing = det.finding_of("stale-read", 8, tmp_path / "absent", "unknown", 3.0)
    assert not missing.caught and missing.anomaly_s is None and missing.caught_by == ()


def _table() -> det.Table:
    findings = [
        det.RunFinding(failpoint="stale-read", seed=1, run_dir="a", valid=True, wall_s=60),
        det.RunFinding(failpoint="stale-read", seed=2, run_dir="b", valid=False, caught_by=("linearizable",),
                       anomaly_s=12.0, faults_at_anomaly=("partition[isolate-leader]",), wall_s=60),
        det.RunFinding(failpoint="lost-vote", seed=3, run_dir="c", valid="unknown", wall_s=60),
        det.RunFinding(failpoint="stuck", seed=4, run_dir="d", valid=False, caught_by=("recovery",),
                       anomaly_s=30.0, wall_s=60),
        det.RunFinding(failpoint=det.CONTROL, seed=5, run_dir="e", valid=True, wall_s=60),
        det.RunFinding(failpoint=det.CONTROL, seed=6, run_dir="f", valid=False, wall_s=60),
    ]
    return det.build(BUGS, findings, command="harness campaign --failpoints all")


def test_the_table_counts_caught_bugs_false_alarms_and_the_median() -> None:
    table = _table()
    assert [r.caught for r in table.rows] == [True, False, True]  # unknown is not a detection
    assert table.rows[0].first is not None and table.rows[0].first.seed == 2
    assert table.caught == 2 and table.median_anomaly_s() == 21.0
    assert [f.seed for f in table.false_alarms] == [6]
    body = det.to_json(table)
    assert body["caught"] == 2 and body["false_alarms"] == 1 and body["rows"][1]["sim_seed"] == 17


def test_markdown_and_junit_say_what_was_missed(tmp_path: Path) -> None:
    table = _table()
    paths = det.write(table, tmp_path)
    md = paths["md"].read_text()
    assert "| stale-read | server | safety | yes | 2/2 | 12.0 | linearizable | partition[isolate-leader] | – |" in md
    assert "| lost-vote | storage | safety | **no** | 0/1 | – | – | – | 17 |" in md
    assert "Caught 2 of 3" in md and "1 not valid" in md and "`harness campaign --failpoints all`" in md
    suite = ET.parse(paths["junit"]).getroot()
    assert suite.get("tests") == "5" and suite.get("failures") == "2"
    failed = [c.get("name") for c in suite if c.find("failure") is not None]
    assert failed == ["lost-vote", "clean-2-seed-6"]
    assert json.loads(paths["json"].read_text())["median_anomaly_s"] == 21.0
