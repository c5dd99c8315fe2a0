"""Liveness through the command line, without hosts: `harness analyze` re-checks a stored run with the recovery
checker and the run's own bound (exit code 1 for a liveness failure), and --recovery-bound-s is validated when the
arguments are read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.run import ExitCode

S = 1_000_000_000


def _run_dir(tmp_path: Path, bound: float) -> Path:
    """A stored register run: a kill healed at 2 s, then 5 s of writes and reads that all fail, then an ok read."""
    events: list[dict[str, Any]] = []

    def add(process: Any, type_: str, f: str, t: float, **extra: Any) -> None:
        events.append({"index": len(events), "process": process, "type": type_, "f": f, "time": int(t * S), **extra})

    add(0, "invoke", "put", 0.1, key="k0", value={"value": "a", "version": 0})
    add(0, "ok", "put", 0.2, key="k0", value={"version": 1}, node="n1")
    add("nemesis", "invoke", "start", 1.0, value={"fault": "kill"})
    add("nemesis", "info", "start", 1.0, value={"fault": "kill", "targets": ["n1", "n2"]})
    add("nemesis", "invoke", "stop", 2.0, value={"fault": "kill"})
    add("nemesis", "info", "stop", 2.0, value={"fault": "kill", "targets": ["n1", "n2"]})
    p = 1
    for i in range(50):
        t = 2.1 + i * 0.1
        add(p, "invoke", "put", t, key="k0", value={"value": str(i), "version": 1})
        add(p, "fail", "put", t + 0.01, key="k0", node="n3", error="not-leader")
        add(p + 1, "invoke", "get", t + 0.02, key="k0")
        add(p + 1, "fail", "get", t + 0.03, key="k0", node="n3", error="not-leader")
        p += 2
    add(p, "invoke", "get", 7.5, key="k0")
    add(p, "ok", "get", 7.6, key="k0", value={"value": "a", "version": 1}, node="n1")
    run = tmp_path / "register-kill" / "20261204T120000"
    run.mkdir(parents=True)
    (run / "test.json").write_text(json.dumps({"name": "register-kill", "workload": "register", "start_time": 0,
                                               "options": {"recovery_bound_s": bound}}))
    (run / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return run


def test_analyze_finds_the_liveness_failure_with_the_runs_own_bound(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    tight = _run_dir(tmp_path / "tight", 2.0)  # first ok 5.6 s after the heal
    assert main(["analyze", str(tight)]) == ExitCode.INVALID
    results = json.loads((tight / "results.json").read_text())
    assert results["valid"] is False and results["failures"]["safety"] == []
    assert [f["what"] for f in results["failures"]["liveness"]] == ["write", "read"]
    assert results["failures"]["liveness"][0]["nodes"] == ["n3"]
    assert "recovery: False" in capsys.readouterr().out
    loose = _run_dir(tmp_path / "loose", 6.0)
    assert main(["analyze", str(loose)]) == ExitCode.VALID
    rec = json.loads((loose / "results.json").read_text())["checkers"]["recovery"]
    assert rec["windows"][0]["read"]["first_ok_s"] == pytest.approx(5.6)
    assert rec["windows"][0]["write"]["verdict"] == "unknown"  # the history ends before the bound runs out


@pytest.mark.parametrize("bad", ["0", "-1", "soon"])
def test_a_bad_recovery_bound_is_refused_with_254(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--backend", "local", "--recovery-bound-s", bad]) == ExitCode.BAD_ARGUMENTS
    assert "--recovery-bound-s" in capsys.readouterr().err


def test_the_end_of_run_summary_says_liveness_and_prints_what_did_not_recover() -> None:
    from harness.interpreter import Tally
    from harness.progress import summary_lines

    failures = {"safety": [], "liveness": [{"checker": "recovery", "what": "leader", "message": "no leader: n1 ..."}]}
    lines = summary_lines(valid=False, error=None, tally=Tally(), heal={"ok": True}, run_dir=None, exit_code=1,
                          seed=3, failures=failures)
    assert lines[0] == "verdict: INVALID (liveness)"
    assert lines[1] == "  liveness: no leader: n1 ..."
    assert summary_lines(valid=True, error=None, tally=Tally(), heal=None, run_dir=None, exit_code=0, seed=3,
                         failures={"safety": [], "liveness": []})[0] == "verdict: VALID"
