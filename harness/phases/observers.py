"""The run's watchers: what each round of status polls is shown to (the stuck detector, the leader witness), and
phase 5's pollers (the progress ticker, the metrics scraper with ``--monitor``, the grey-box witness), each
stopped by the undo stack."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.aio import start_task, sync_step
from harness.monitor import STUCK_ELECTIONS, StuckDetector
from harness.phases.state import RunState
from harness.protocols import Metrics, Witness, election_timeout_s
from harness.scrape import MetricsLog, MetricsScraper, file_sd_targets, panels_of
from harness.store import JsonlWriter
from harness.undo import UndoStack
from harness.witness import WitnessRecorder

log = logging.getLogger("harness.run")

PROMETHEUS_TARGETS = "prometheus-targets.json"  # file_sd target groups of a --monitor run (docs/lab.md)


def poll_observers(r: RunState) -> Callable[[dict[str, dict[str, Any]]], None]:
    """What every round of status polls is shown to: the stuck detector (enabled during phase 6 only) and the
    leader witness."""
    assert r.test is not None
    r.stuck = stuck = StuckDetector(nodes=r.config.nodes,
                                    after_s=STUCK_ELECTIONS * election_timeout_s(r.test.db),
                                    activity=lambda: r.tally.invokes,
                                    record=lambda value: r.record_observation("stuck", value))
    stuck.enabled = False  # until the workload runs
    leaders = r.leaders

    def on_poll(polls: dict[str, dict[str, Any]]) -> None:
        stuck(polls)
        leaders(polls)

    return on_poll


def start_observers(r: RunState, undo: UndoStack) -> WitnessRecorder | None:
    """Phase 5's watchers, each stopped by the undo stack: the progress ticker, the metrics scraper (with
    ``monitor``), the grey-box witness (a DB with Witness). Returns the witness, polled once more at the end."""
    assert r.test is not None
    test, config = r.test, r.config
    undo.push("last progress update", sync_step(r.update_progress))
    start_task(undo, "progress", _tick(r))
    if config.monitor and isinstance(test.db, Metrics):
        start_task(undo, "metrics scraper", _start_scraper(r, undo).run())
    elif config.monitor:
        log.warning("--monitor: %s has no Metrics capability; nothing to scrape", type(test.db).__name__)
    if not isinstance(test.db, Witness):
        return None
    witness = WitnessRecorder(test, test.db, leaders=r.leaders, interval=config.status_interval,
                              record=r.record_observation)
    start_task(undo, "witness", witness.run())
    return witness


async def _tick(r: RunState) -> None:
    while True:
        r.update_progress()
        await asyncio.sleep(0.5)


def _start_scraper(r: RunState, undo: UndoStack) -> MetricsScraper:
    """--monitor: metrics.jsonl with the DB's panels, and the Prometheus file_sd target lists (the run directory's
    record, and a live copy under ``<store>/_prometheus/`` that the teardown removes: docs/lab.md)."""
    assert r.run_dir is not None and r.test is not None
    config, test = r.config, r.test
    timeout = min(config.monitor_interval, 2.0)
    metrics = JsonlWriter(r.run_dir.metrics_path)
    undo.push("close metrics.jsonl", sync_step(metrics.close))
    metrics_log = MetricsLog(metrics, nodes=test.nodes, interval_s=config.monitor_interval, timeout_s=timeout,
                             panels=panels_of(test.db))
    targets = file_sd_targets(test, r.run_dir.path.name)
    if targets is not None:
        r.run_dir.write_json(PROMETHEUS_TARGETS, targets)
        live = Path(config.store) / "_prometheus"
        live.mkdir(parents=True, exist_ok=True)
        sd_file = live / f"{test.name}-{r.run_dir.path.name}.json"
        undo.push("live Prometheus targets", sync_step(lambda: sd_file.unlink(missing_ok=True)))
        sd_file.write_text(json.dumps(targets, indent=1) + "\n")
    log.info("monitor: scraping %d node(s) every %g s into %s", len(test.nodes), config.monitor_interval,
             r.run_dir.metrics_path.name)
    return MetricsScraper(test, metrics_log, interval=config.monitor_interval, timeout=timeout)
