"""Failpoints on real nodes in real namespaces: `--raftkv-failpoints` reaches the nodes (listed in /status and in
the metrics), and a node given RAFTKV_FAILPOINTS without the explicit allow refuses to start."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from harness.backends.netns import NetnsBackend, NetnsRemote
from harness.protocols import TestContext as Ctx
from raftkv.failpoints import ENV
from workloads.raftkv_db import REPO_ROOT, RaftkvDB, RaftkvDBError

pytestmark = pytest.mark.netns


def _context(backend: NetnsBackend, hosts: list[NetnsRemote], db: RaftkvDB, tmp_path: Path) -> Ctx:
    return Ctx(name="failpoints", options={}, hosts=list(hosts), backend=backend, db=db, seed=5, store_dir=tmp_path)


async def _status_when_up(db: RaftkvDB, test: Ctx, node: str, deadline_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return await db.status(test, node)
        except RaftkvDBError:
            assert time.monotonic() < deadline, f"{node} never answered /status"
            assert await db.is_running(test, node), f"{node} exited: see {db.stdout_file(test, node)}"
            await asyncio.sleep(0.05)


async def test_a_node_started_with_failpoints_reports_them(netns_backend: NetnsBackend,
                                                           netns_hosts: list[NetnsRemote], tmp_path: Path) -> None:
    db = RaftkvDB({"raftkv_failpoints": "skip-fsync,forget-vote"})
    test = _context(netns_backend, netns_hosts, db, tmp_path)
    node = test.nodes[0]
    await db.setup(test, node)
    await db.start(test, node)
    try:
        status = await _status_when_up(db, test, node)
        assert status["failpoints"] == ["forget-vote", "skip-fsync"]
        metrics = await db.metrics(test, node)
        assert 'raftkv_failpoint_enabled{name="forget-vote"} 1.0' in metrics
        log = Path(db.log_file(test, node)).read_text()
        assert "FAILPOINT ENABLED: skip-fsync" in log
    finally:
        await db.teardown(test, node)


async def test_a_node_without_failpoints_lists_none(netns_backend: NetnsBackend, netns_hosts: list[NetnsRemote],
                                                    tmp_path: Path) -> None:
    db = RaftkvDB({})
    test = _context(netns_backend, netns_hosts, db, tmp_path)
    node = test.nodes[1]
    await db.setup(test, node)
    await db.start(test, node)
    try:
        assert (await _status_when_up(db, test, node))["failpoints"] == []
    finally:
        await db.teardown(test, node)


async def test_failpoints_without_the_allow_refuse_to_start(netns_backend: NetnsBackend,
                                                            netns_hosts: list[NetnsRemote], tmp_path: Path) -> None:
    db = RaftkvDB({})
    test = _context(netns_backend, netns_hosts, db, tmp_path)
    node = test.nodes[2]
    host = test.host(node)
    await db.setup(test, node)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": REPO_ROOT, ENV: "forget-vote"}
    pid = await host.spawn(db.command(test, node), log_path=db.stdout_file(test, node), env=env, cwd=REPO_ROOT)
    deadline = time.monotonic() + 30
    try:
        while await host.alive(pid):
            assert time.monotonic() < deadline, "a node with failpoints but no allow kept running"
            await asyncio.sleep(0.02)
    finally:
        if await host.alive(pid):
            await host.signal(pid, signal.SIGKILL)
    out = Path(db.stdout_file(test, node)).read_text()
    assert "RAFTKV_FAILPOINTS='forget-vote' is set but failpoints are not allowed" in out
    assert not Path(db.data_dir(test, node), "wal").exists(), "it refused only after touching its data"
