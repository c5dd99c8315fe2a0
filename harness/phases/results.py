"""Phases 11-13 of a run, and `harness analyze`: the workload's checkers over the stored history, results.json
(the verdict, the heal, the run's figures) with the ``latest`` links, and the HTML report."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import registry
from harness.aio import in_daemon_thread
from harness.checking import run_checkers
from harness.phases.state import RunState
from harness.runconfig import ConfigError, ExitCode, RunResult, exit_code_for
from harness.store import RunDir

log = logging.getLogger("harness.run")


async def check(r: RunState, workload: registry.Workload) -> dict[str, Any]:
    """Phase 11: the workload's checkers over the history as stored (closed, so complete)."""
    assert r.run_dir is not None
    r.phase("check")
    test_json = r.run_dir.read_json("test.json")
    history = r.run_dir.history()
    checkers = workload.checker(r.options)
    t0 = time.monotonic()
    result = await in_daemon_thread(run_checkers, checkers, test_json, history)
    log.info("checked %d events in %.2f s: valid=%s", len(history), time.monotonic() - t0, result.get("valid"))
    return result


def store_results(r: RunState, check_result: dict[str, Any] | None, error: str | None,
                  interrupted: bool) -> RunResult:
    """Phase 12: results.json (and the latest links) from a check result, or from the error that prevented one
    (then ``"valid": "unknown"`` and exit code 3)."""
    heal = r.heal_result
    if check_result is None:
        results: dict[str, Any] = {"valid": "unknown", "error": error, "heal": heal, "interrupted": interrupted}
        valid: bool | str = "unknown"
        code = ExitCode.HARNESS_FAILED
    else:
        results = {**check_result, "heal": heal}
        valid = check_result.get("valid", "unknown")
        code = exit_code_for(valid)
    results["run"] = {"ok": r.tally.ok, "fail": r.tally.fail, "info": r.tally.info, "by_f": r.tally.by_f,
                      "nemesis_events": r.tally.nemesis_events, "elapsed_s": (time.monotonic_ns() - r.origin) / 1e9}
    if r.run_dir is not None:
        r.run_dir.write_json("results.json", results)
        r.run_dir.link_latest()
    return RunResult(code, valid, r.run_dir.path if r.run_dir else None, results, r.tally, error, heal)


async def render(run_dir: RunDir, store: Path) -> None:
    """Phase 13: report.html of the run, then store/index.html (the report links to it as "all runs"). A failure
    of either is logged and never changes the verdict."""
    try:
        from reports.index import render_index
        from reports.render import render_run
    except ImportError:
        log.info("no report renderer (reports.render) yet; skipping report.html")
        return
    for what, fn, arg in (("report", render_run, run_dir.path), ("store index", render_index, store)):
        try:
            await in_daemon_thread(fn, arg)
        except Exception as e:  # noqa: BLE001 - a report failure never changes the verdict
            log.warning("%s rendering failed: %s: %s", what, type(e).__name__, e)


def analyze(run_path: Path) -> dict[str, Any]:
    """Re-check a stored run with its workload's checkers (registry lookup by test.json's workload and options);
    rewrites results.json, keeping the stored heal verification. Returns the new results."""
    run = RunDir.open(run_path)
    test_json = run.read_json("test.json")
    try:
        workload = registry.workload(test_json["workload"])
    except KeyError:
        raise ConfigError(f"{run.path}/test.json names no workload") from None
    except registry.RegistryError as e:
        raise ConfigError(str(e)) from None
    options = test_json.get("options", {})
    result = run_checkers(workload.checker(options), test_json, run.history())
    try:
        old = run.read_json("results.json")
    except Exception:  # noqa: BLE001 - a run killed before its results has none
        old = {}
    new = {**result, "heal": old.get("heal"), "run": old.get("run"), "analyzed_at": datetime.now(UTC).isoformat()}
    run.write_json("results.json", new)
    return new


def describe_error(e: BaseException) -> str:
    """One line for an error; a task group's wrapper is looked through to the failures inside it."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe_error(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
