"""Phases 2-4 of a run: the run directory with its writers and test.json, the hosts, the nemeses' preparation and
the DB set up, started and ready. Each step's undo is pushed on the run's UndoStack as it is acquired."""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from harness import registry
from harness.aio import each_node, start_task, sync_step
from harness.backends import make_backend
from harness.composite import CompositeNemesis
from harness.labstate import default_prefix, work_root
from harness.monitor import ClusterMonitor
from harness.phases.collect import collect
from harness.phases.observers import poll_observers
from harness.phases.state import RunState
from harness.protocols import (
    DB,
    ClusterStatus,
    Describes,
    Process,
    TestContext,
    prepare_hosts,
    recovery_bound_s,
    unprepare_hosts,
)
from harness.readiness import wait_ready
from harness.runconfig import HarnessError
from harness.store import HistoryWriter, JsonlWriter, RunDir
from harness.undo import UndoStack

log = logging.getLogger("harness.run")


def open_store(r: RunState, undo: UndoStack, workload: registry.Workload, dbspec: registry.DBSpec,
               nem_specs: list[registry.NemesisSpec], db: DB) -> TestContext:
    """Phase 2: the run directory, harness.log, the history and cluster writers (closed last, when everything
    that records is done), the backend object (no hosts yet) and the TestContext; test.json."""
    config = r.config
    name = config.name or f"{workload.name}-{'+'.join(s.name for s in nem_specs) or 'none'}"
    r.run_dir = run = RunDir.create(config.store, name, r.start_wall)
    _log_to(r, run)
    prefix = config.prefix or default_prefix()
    # Short: host paths under it must fit a unix socket's 107 bytes (the disk layer's control socket), and a test
    # named after every nemesis of `--nemesis all` does not. The store directory carries the name.
    work_dir = work_root(prefix) / f"{run.path.name}-{zlib.crc32(name.encode()) & 0xFFFF:04x}"
    r.backend = make_backend(config.backend, work_dir=work_dir, prefix=prefix, options=config.backend_options)
    # The bound the recovery checker holds the run to, in test.json's options so `harness analyze` uses it too.
    r.options["recovery_bound_s"] = recovery_bound_s(db, config.recovery_bound_s)
    r.test = test = TestContext(name=name, options=r.options, hosts=[], backend=r.backend, db=db, seed=config.seed,
                                store_dir=run.path)
    history = r.history = HistoryWriter(run.history_path)
    undo.push("close the history", sync_step(history.close))
    cluster = JsonlWriter(run.cluster_path)
    undo.push("close cluster.jsonl", sync_step(cluster.close))
    if isinstance(db, ClusterStatus):
        r.monitor = ClusterMonitor(test, cluster, interval=config.status_interval, on_poll=poll_observers(r))
    write_test_json(r, workload, dbspec, nem_specs)
    log.info("run %s seed %d -> %s", name, config.seed, run.path)
    return test


def _log_to(r: RunState, run: RunDir) -> None:
    """harness.log of the run directory gets every "harness" record at DEBUG (run_test removes the handler)."""
    r.log_handler = logging.FileHandler(run.log_path)
    r.log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    r.log_handler.setLevel(logging.DEBUG)
    hlog = logging.getLogger("harness")
    hlog.addHandler(r.log_handler)
    if hlog.level == logging.NOTSET or hlog.level > logging.DEBUG:
        hlog.setLevel(logging.DEBUG)


def write_test_json(r: RunState, workload: registry.Workload, dbspec: registry.DBSpec,
                    nem_specs: list[registry.NemesisSpec]) -> None:
    """test.json: the roles, seed, options, hosts and versions of the run (rewritten once the hosts exist)."""
    assert r.run_dir is not None and r.test is not None
    backend_info: dict[str, Any] = {"name": r.config.backend}
    if isinstance(r.backend, Describes):
        backend_info.update(r.backend.describe())
    r.run_dir.write_json("test.json", {
        "name": r.test.name,
        "workload": workload.name,
        "db": dbspec.name,
        "nemeses": [s.name for s in nem_specs],
        "failpoints": list(r.config.failpoints),
        "seed": r.config.seed,
        "options": r.options,
        "hosts": [{"name": h.name, "address": h.address} for h in r.test.hosts],
        "nodes": r.test.nodes,
        "backend": backend_info,
        "versions": _versions(),
        "start_wall": r.start_wall.isoformat(),
        "start_time": r.origin,
        "argv": sys.argv,
    })


def _versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": sys.version.split()[0], "kernel": platform.release()}
    try:
        out["raftkv-lab"] = importlib.metadata.version("raftkv-lab")
    except importlib.metadata.PackageNotFoundError:
        out["raftkv-lab"] = None
    try:
        root = Path(__file__).resolve().parents[2]
        out["git"] = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                    timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["git"] = None
    return out


async def prepare_run_hosts(r: RunState, undo: UndoStack, workload: registry.Workload, dbspec: registry.DBSpec,
                            nem_specs: list[registry.NemesisSpec]) -> None:
    """Phase 3: the hosts (their teardown pushed first: it is safe after a partial setup); test.json rewritten
    with their addresses."""
    assert r.backend is not None and r.test is not None
    r.phase("prepare hosts")
    undo.push("backend teardown", r.backend.teardown)
    t0 = time.monotonic()
    r.test.hosts = await r.backend.setup(r.config.nodes)
    log.info("%d hosts up in %.2f s", len(r.test.hosts), time.monotonic() - t0)
    write_test_json(r, workload, dbspec, nem_specs)


async def start_db(r: RunState, undo: UndoStack, nem_specs: list[registry.NemesisSpec]) -> None:
    """Phase 4: the nemeses prepare the hosts (undone after the DB's teardown: a disk layer outlives the data it
    holds), the DB is set up (torn down), started (stopped and collected: before its teardown), watched (the
    monitor, stopped before the collection) and waited for. HarnessError when it is not ready in time."""
    assert r.test is not None
    test, db = r.test, r.test.db
    r.phase("install and start the DB")
    nems = [(s.name, s.factory(r.options, test.rng(f"nemesis.{s.name}"))) for s in nem_specs]
    if nems:
        r.nemesis = CompositeNemesis(nems)
    undo.push("nemesis unprepare", lambda: unprepare_hosts(r.nemesis, test))
    await prepare_hosts(r.nemesis, test)
    undo.push("DB teardown", lambda: each_node(test, db.teardown))
    await each_node(test, db.setup)
    undo.push("stop and collect", lambda: collect(r))
    if isinstance(db, Process):
        await each_node(test, db.start)
    monitor = r.monitor
    if monitor is not None:
        start_task(undo, "cluster monitor", monitor.run())
    if not await wait_ready(test, r.config.setup_timeout, interval=min(0.1, r.config.status_interval)):
        seen = f": {monitor.last}" if monitor is not None else ""
        raise HarnessError(f"the cluster did not come up within {r.config.setup_timeout} s{seen}")
    log.info("cluster up, leader %s", monitor.leader if monitor is not None else "(no cluster status)")
