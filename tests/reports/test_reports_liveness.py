"""A liveness failure in the report: the banner names what did not recover, since when and which nodes; the
availability plot gets the bound; the lab's observations (quiesce, stuck) are shown readably."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from checker.recovery import RecoveryChecker
from harness.checking import run_checkers
from reports.render import render_run
from reports.rundir import load_run
from reports.verdict import Verdict, summarize

S = 1_000_000_000
ORIGIN = 50 * S


def _history() -> list[dict[str, Any]]:
    """A kill of n1 n2 healed at 3 s after which nothing succeeds, a quiesce that found no leader, and a stuck
    observation during the fault (reported only)."""
    events: list[dict[str, Any]] = []

    def add(process: Any, type_: str, f: str, t: float, **extra: Any) -> None:
        events.append({"index": len(events), "process": process, "type": type_, "f": f,
                       "time": ORIGIN + int(t * S), **extra})

    add(0, "invoke", "put", 0.1, key="k0", value={"value": "0", "version": 0})
    add(0, "ok", "put", 0.2, key="k0", value={"version": 1}, node="n1")
    add("nemesis", "invoke", "start", 1.0, value={"fault": "kill"})
    add("nemesis", "info", "start", 1.0, value={"fault": "kill", "targets": ["n1", "n2"]})
    add("harness", "info", "stuck", 2.5, value={"since": ORIGIN + int(1.2 * S), "condition": "no-leader",
                                               "held_s": 1.3, "invokes": 4,
                                               "nodes": {"n3": {"role": "candidate", "term": 4}}})
    add("nemesis", "invoke", "stop", 3.0, value={"fault": "kill"})
    add("nemesis", "info", "stop", 3.0, value={"fault": "kill", "targets": ["n1", "n2"]})
    p = 1
    for i in range(40):  # writes and reads after the heal, all refused by n3
        t = 3.1 + i * 0.1
        for f, value in (("put", {"value": str(i + 1), "version": 1}), ("get", None)):
            add(p, "invoke", f, t, key="k0", value=value)
            add(p, "fail", f, t + 0.01, key="k0", node="n3", error="not-leader")
            p += 1
    add("harness", "info", "quiesce", 8.0, value={
        "agreed": False, "leader": None, "waited_s": 4.0, "timeout_s": 4.0, "heal_time": ORIGIN + 3 * S,
        "agreed_time": None, "commit": None, "caught_up": None, "catch_up_s": 2.0,
        "nodes": {"n1": {"error": "timeout", "running": True}, "n2": {"error": "timeout", "running": True},
                  "n3": {"role": "candidate", "term": 9, "leader": None, "commit": 1, "applied": 1,
                         "running": True}}})
    return events


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "store" / "register-kill" / "20261204T120000"
    run.mkdir(parents=True)
    test = {"name": "register-kill", "workload": "register", "start_time": ORIGIN,
            "start_wall": "2026-12-04T12:00:00+00:00", "options": {"recovery_bound_s": 2.0}}
    history = _history()
    results = run_checkers({"recovery": RecoveryChecker(writes={"put"}, reads={"get"})}, test, history)
    (run / "test.json").write_text(json.dumps(test))
    (run / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in history))
    (run / "results.json").write_text(json.dumps(results))
    return run


def test_the_verdict_names_the_liveness_failure_with_its_nodes_and_times(tmp_path: Path) -> None:
    run = load_run(_run_dir(tmp_path))
    assert run.results is not None
    assert {f["what"] for f in run.results["failures"]["liveness"]} == {"write", "read", "leader"}
    summary = summarize(run.results)
    assert summary.verdict is Verdict.INVALID and summary.headline == "Invalid (liveness)"
    whats = {x.what: x for x in summary.liveness}
    assert whats["write"].since_s == 3.0 and whats["write"].nodes == ("n3",)
    assert whats["leader"].nodes == ("n1", "n2", "n3")
    assert summary.sentences[0].startswith("Liveness: the recovery checker found that the system did not recover")


def test_the_report_shows_the_banner_the_bound_and_the_observations(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path)
    page = render_run(run_dir, inline_plotly=False).read_text()
    banner = page[page.index('id="verdict"'):page.index('id="summary"')]
    assert 'class="banner invalid"' in banner and "Invalid (liveness)" in banner
    assert "<b>write</b> since 3.00 s · nodes n3" in banner
    assert "n1 unreachable (timeout)" in banner and "did not agree on a leader within 4.0 s" in banner
    recovery = page[page.index('id="recovery"'):page.index('id="invalid"')]
    assert "bound 2.0 s" in recovery and 'class="pill invalid">missed' in recovery
    assert "no leader agreement within 4.0 s of the final heal" in recovery
    assert "n3: candidate, term 9" in recovery
    assert "no-leader from 1.20 s for 1.3 s" in recovery and "reported only: a fault was active" in recovery
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    assert data["recovery"]["bound_s"] == 2.0
    assert data["recovery"]["windows"] == [{"heal": 3.0, "until": None, "healed": "kill of n1 n2",
                                            "write": "missed", "write_s": None, "write_clock": 3.1,
                                            "read": "missed", "read_s": None, "read_clock": 3.1}]
