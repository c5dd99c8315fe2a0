"""The teardown's "stop and collect" step (pushed when the DB starts, run before its teardown): each node's
metrics scraped (Metrics), its process killed (Process), the DB's and the nemeses' LogFiles copied into
``<node>/``. Best effort per node and file: a failure is logged and the next one is still tried."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from harness.phases.state import RunState
from harness.protocols import Metrics, Process, TestContext, log_files_of
from harness.store import RunDir

log = logging.getLogger("harness.run")


async def collect(r: RunState) -> None:
    """Scrape metrics, kill the nodes, copy the log files, on every node at once."""
    assert r.test is not None and r.run_dir is not None
    test, run = r.test, r.run_dir
    log.info("stop and collect")  # a step of the "tear down" phase
    await asyncio.gather(*(_one(r, test, run, node) for node in test.nodes))


async def _one(r: RunState, test: TestContext, run: RunDir, node: str) -> None:
    d = run.node_dir(node)
    db = test.db
    if isinstance(db, Metrics):
        try:
            async with asyncio.timeout(10):
                (d / "metrics.txt").write_text(await db.metrics(test, node))
        except Exception as e:  # noqa: BLE001
            (d / "metrics.txt").write_text(f"# metrics scrape failed: {type(e).__name__}: {e}\n")
    if isinstance(db, Process):
        try:
            async with asyncio.timeout(10):
                await db.kill(test, node)
        except Exception as e:  # noqa: BLE001
            log.warning("stopping %s failed: %s", node, e)
    host = test.host(node)
    for path in [*log_files_of(db, test, node), *log_files_of(r.nemesis, test, node)]:
        try:
            await host.download(path, d / Path(path).name)
        except Exception as e:  # noqa: BLE001
            log.warning("collecting %s:%s failed: %s", node, path, e)
