"""One run of the lab, from nothing to a verdict and back to nothing: :func:`run_test`, the orchestration only.
The phases live in harness/phases/ (one module per group), argument-time checks in harness/resolve.py, the
configuration and exit codes in harness/runconfig.py; their public names are re-exported here.

The phases, in order:

1. resolve the workload, DB and nemeses in the registry, the workload's client from the DB, and the failpoints in
   the DB's catalog (a bad name fails here, before anything exists); the failpoints' options join the run's
   options; every nemesis's ``db_needs`` is checked against the DB's capabilities (ConfigError; harness.resolve);
2. create the run directory ``store/<test>/<timestamp>/`` and write test.json; harness.log starts;
3. prepare hosts: the backend brings up ``nodes`` hosts (test.json is rewritten with their addresses);
4. install and start the DB: the nemeses are made and those with PreparesHosts prepare (what the DB's daemons must
   start with, e.g. test.daemon_env, a disk layer under the data directory); DB.setup on every node, then
   Process.start; the cluster monitor starts polling ClusterStatus into cluster.jsonl (when the DB has it); then
   wait (``setup_timeout``) until the DB is ready (harness.readiness: its own Ready check, else its processes run)
   (2-4: harness.phases.setup);
5. set up clients and nemesis: Nemesis.setup; with ``monitor``, the metrics scraper starts (harness.scrape: Metrics
   of every node each ``monitor_interval`` into metrics.jsonl, until the convergence observation)
   (harness.phases.observers);
6. run the generator until the time limit: the workload's client stream (``--rate`` ops/s in total) beside the
   nemesis stream, every invoke and completion appended live to history.jsonl (harness.phases.workload);
7. heal every fault (on leaving phase 6, whichever way): Nemesis.heal (recorded as ``stop`` events of the active
   faults) and verify that every node runs (harness.phases.heal);
8. let the cluster quiesce (harness.quiesce; a DB without ClusterStatus: until it is ready again), the outcome
   recorded as a history event (process "harness", f "quiesce") for the recovery checker (harness.phases.settle);
9. run the final-read phase: the workload's final generator, bounded by ``final_time_limit``; then observe
   convergence, recorded as one ``harness``/``converge`` event (harness.phases.workload, harness.phases.settle);
10. tear down, by structure (harness.undo): every step was pushed when its resource was acquired, and they run in
    reverse on every path: the pollers stop, Nemesis.teardown, stop and collect (each node's metrics into
    ``<node>/metrics.txt``, Process.kill, its and the nemeses' LogFiles into ``<node>/``: harness.phases.collect),
    DB.teardown, the nemeses' unprepare (a disk layer unmounts after the DB's teardown), the backend's teardown,
    and last the history is closed (flushed);
11. check: the workload's checkers over history.jsonl as stored (the same path `harness analyze` takes);
12. store results: results.json (the checker result plus ``heal``), and the ``latest`` links;
13. render the report (reports.render.render_run) and the store's index.html when reports is importable
    (11-13: harness.phases.results).

On an exception, Ctrl-C or SIGTERM (the caller cancels this task) the run leaves the phase it is in, which heals if
faults may be active, and tears down (10); results.json then says ``"valid": "unknown"`` with the error, and the
exit code is 3. Exit codes: 0 valid, 1 invalid, 2 unknown, 3 harness failed.
"""

from __future__ import annotations

import asyncio
import logging

from harness import registry
from harness.aio import in_daemon_thread
from harness.phases.heal import healed_on_leaving
from harness.phases.observers import start_observers
from harness.phases.results import analyze, check, describe_error, render, store_results
from harness.phases.settle import convergence_phase, quiesce_phase
from harness.phases.setup import open_store, prepare_run_hosts, start_db
from harness.phases.state import NullProgress, ProgressSink, RunState
from harness.phases.workload import build_main_generator, final_reads, interpreter, run_main
from harness.protocols import DB
from harness.resolve import expand_nemeses, resolve, runnable_nemeses
from harness.runconfig import (
    ALL_NEMESES,
    SCHEDULES,
    ConfigError,
    ExitCode,
    HarnessError,
    RunConfig,
    RunResult,
    exit_code_for,
    random_seed,
)
from harness.undo import UndoStack

__all__ = [
    "ALL_NEMESES", "SCHEDULES", "ConfigError", "ExitCode", "HarnessError", "ProgressSink", "RunConfig", "RunResult",
    "analyze", "build_main_generator", "describe_error", "exit_code_for", "expand_nemeses", "in_daemon_thread",
    "random_seed", "resolve", "run_test", "runnable_nemeses",
]

log = logging.getLogger("harness.run")


async def run_test(config: RunConfig, *, progress: ProgressSink | None = None) -> RunResult:
    """Run one test and return its verdict: the phases of this module's docstring, in order. Bad arguments raise
    ConfigError before anything exists; every later failure, Ctrl-C or SIGTERM is a result with exit code 3, after
    the heal and the teardown."""
    workload, dbspec, nem_specs = resolve(config)  # 1
    specs: list[registry.Workload | registry.DBSpec | registry.NemesisSpec] = [workload, dbspec, *nem_specs]
    defaults = {o.name: o.default for spec in specs for o in spec.options}
    planted = dbspec.failpoints.options_for(config.failpoints) if config.failpoints and dbspec.failpoints else {}
    r = RunState(config, progress or NullProgress(), defaults, planted)
    db = dbspec.factory(r.options)
    error: str | None = None
    interrupted = False
    result: RunResult | None = None
    try:
        await _run_phases(r, workload, dbspec, nem_specs, db)  # 2-10
        result = store_results(r, await check(r, workload), None, False)  # 11, 12
        if config.render and r.run_dir is not None:
            r.phase("render the report")
            await render(r.run_dir, config.store)  # 13
    except asyncio.CancelledError:
        interrupted = True
        error = "interrupted (Ctrl-C or SIGTERM)"
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        log.warning("run interrupted; healed and torn down")
    except Exception as e:  # noqa: BLE001 - any failure of the lab is reported, with its traceback in the log
        error = describe_error(e)
        log.exception("run failed")
    if error is not None or result is None:
        result = store_results(r, None, error or "no check result", interrupted)
    if r.log_handler is not None:
        logging.getLogger("harness").removeHandler(r.log_handler)
        r.log_handler.close()
    return result


async def _run_phases(r: RunState, workload: registry.Workload, dbspec: registry.DBSpec,
                      nem_specs: list[registry.NemesisSpec], db: DB) -> None:
    """Phases 2-10: everything acquired here is released by the undo stack on leaving, in reverse."""
    async with UndoStack(on_unwind=lambda: r.phase("tear down")) as undo:
        test = open_store(r, undo, workload, dbspec, nem_specs, db)  # 2
        await prepare_run_hosts(r, undo, workload, dbspec, nem_specs)  # 3
        await start_db(r, undo, nem_specs)  # 4
        r.phase("set up clients and nemesis")  # 5
        undo.push("nemesis teardown", lambda: r.nemesis.teardown(test))
        await r.nemesis.setup(test)
        interp = interpreter(r, workload, dbspec, nem_specs)
        main_gen = build_main_generator(r.config, workload, nem_specs, r.options, test)
        final = workload.final_generator(r.options, test.rng("workload.final")) if workload.final_generator else None
        witness = start_observers(r, undo)
        async with healed_on_leaving(r):  # 7, whichever way 6 ends
            await run_main(r, interp, main_gen)  # 6
        await quiesce_phase(r)  # 8
        await final_reads(r, interp, final)  # 9
        await convergence_phase(r)
        if witness is not None:
            # Every node runs again after the heal: what each kept (also from before a kill) is read once more.
            await witness.poll_once(final=True)
    # 10: the undo stack has run
