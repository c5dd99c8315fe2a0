"""The raftkv DB adapter against real raftkv nodes in real namespaces: start, leader discovery, status, metrics,
kill -9 and restart, pause and resume, teardown."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from harness.backends.netns import NetnsBackend, NetnsRemote
from harness.protocols import TestContext as Ctx
from raftkv.client import KVClient, RaftKVError
from workloads.raftkv_db import RaftkvDB, RaftkvDBError, client_address

pytestmark = pytest.mark.netns


async def await_leader(db: RaftkvDB, test: Ctx, deadline_s: float = 30.0, *, not_: str | None = None) -> str:
    deadline = time.monotonic() + deadline_s
    while True:
        leader = await db.leader(test)
        if leader is not None and leader != not_:
            return leader
        assert time.monotonic() < deadline, "no leader elected"
        await asyncio.sleep(0.05)


@pytest.fixture()
async def cluster(netns_backend: NetnsBackend, netns_hosts: list[NetnsRemote], tmp_path: Path) -> Any:
    db = RaftkvDB({})
    test = Ctx(name="db", options={}, hosts=list(netns_hosts), backend=netns_backend, db=db, seed=11,
               store_dir=tmp_path)
    for node in test.nodes:
        await db.setup(test, node)
    for node in test.nodes:
        await db.start(test, node)
    try:
        yield test, db
    finally:
        for node in test.nodes:
            await db.teardown(test, node)
        assert not [n for n in test.nodes if await db.is_running(test, n)]


async def test_start_elect_write_kill_restart_teardown(cluster: Any) -> None:
    test, db = cluster
    leader = await await_leader(db, test)
    status = await db.status(test, leader)
    assert status["role"] == "leader" and status["id"] == leader
    assert "raftkv" in await db.metrics(test, leader)
    async with KVClient([client_address(test, n) for n in test.nodes], timeout=10) as kv:
        assert (await kv.put("k", "v1", 0)).version == 1
        await db.kill(test, leader)
        assert not await db.is_running(test, leader)
        with pytest.raises(RaftkvDBError):
            await db.status(test, leader)
        await await_leader(db, test, not_=leader)
        assert (await kv.put("k", "v2", 1)).version == 2
        await db.start(test, leader)
        await db.start(test, leader)  # a second start of a running node is a no-op
        deadline = time.monotonic() + 30
        while True:  # the restarted node recovers from its WAL and catches up from the leader
            try:
                got = await kv.get("k", consistency="stale", node=client_address(test, leader), timeout=1)
                if (got.value, got.version) == ("v2", 2):
                    break
            except RaftKVError:
                pass  # not listening yet
            assert time.monotonic() < deadline, "restarted node never caught up"
            await asyncio.sleep(0.05)
        assert await db.is_running(test, leader)
    logs = db.log_files(test, leader)
    assert all(Path(p).exists() for p in logs)


async def test_pause_and_resume(cluster: Any) -> None:
    test, db = cluster
    leader = await await_leader(db, test)
    await db.pause(test, leader)
    assert await db.is_running(test, leader)  # stopped, not dead
    with pytest.raises(RaftkvDBError):
        await db.status(test, leader)
    await await_leader(db, test, not_=leader)
    await db.resume(test, leader)
    deadline = time.monotonic() + 30
    while True:
        try:
            await db.status(test, leader)
            break
        except RaftkvDBError:
            assert time.monotonic() < deadline, "resumed node never answered"
            await asyncio.sleep(0.05)


async def test_setup_writes_the_config_the_node_runs_with(cluster: Any) -> None:
    test, db = cluster
    written = json.loads(Path(db.config_file(test, "n2")).read_text())
    assert written["id"] == "n2" and written["peers"] == {n: f"{test.host(n).address}:7000" for n in test.nodes}
    assert written["client"] == client_address(test, "n2") and written["tick_ms"] == 25
    assert db.config_file(test, "n2") in db.log_files(test, "n2")
    assert db.command(test, "n2")[-2:] == ["--config", db.config_file(test, "n2")]
    assert written["seed"] == db.config(test, "n2")["seed"], "the election seed derives from the run's seed"
    assert written["lease"] is False and RaftkvDB({"raftkv_lease": True}).config(test, "n2")["lease"] is True
    assert written["snapshot_entries"] == 200  # every run reaches snapshots, compaction and InstallSnapshot
    # The nodes authenticate each other with a secret fresh for this run, readable by root alone, never collected.
    secret = Path(written["peer_secret_file"])
    assert secret.read_text() == db.peer_secret and len(db.peer_secret) == 64
    assert secret.stat().st_mode & 0o077 == 0 and str(secret) not in db.log_files(test, "n2")
    assert RaftkvDB({}).peer_secret != db.peer_secret
    assert "PEERS ARE NOT AUTHENTICATED" not in Path(db.log_file(test, "n2")).read_text()


async def test_a_node_starts_with_the_environment_nemeses_asked_for(netns_backend: NetnsBackend,
                                                                    netns_hosts: list[NetnsRemote],
                                                                    tmp_path: Path) -> None:
    """TestContext.daemon_env (set by a nemesis's prepare, e.g. the clock shim's LD_PRELOAD) reaches the node."""
    db = RaftkvDB({})
    test = Ctx(name="db", options={}, hosts=list(netns_hosts), backend=netns_backend, db=db, seed=12,
               store_dir=tmp_path)
    test.daemon_env["n1"] = {"RAFTKV_LAB_TEST_MARK": "from-a-nemesis"}
    await db.setup(test, "n1")
    await db.start(test, "n1")
    try:
        async with asyncio.timeout(20):
            while True:  # until the node serves: then its process is the node itself, with its environment
                try:
                    await db.status(test, "n1")
                    break
                except RaftkvDBError:
                    await asyncio.sleep(0.05)
        environ = Path(f"/proc/{db.pids['n1']}/environ").read_bytes().split(b"\0")
        assert b"RAFTKV_LAB_TEST_MARK=from-a-nemesis" in environ and b"PYTHONUNBUFFERED=1" in environ, environ
    finally:
        await db.teardown(test, "n1")


async def test_the_adapter_offers_state_digests_and_the_engine_sees_the_replicas_converge(cluster: Any) -> None:
    """StateDigest through the adapter (GET /debug/state on each host's address), and the engine's convergence
    observation over it: after a write every replica reaches one applied index with one digest; a stopped node
    is 'not running' and holds nothing up."""
    from harness.converge import observe_convergence
    from harness.protocols import StateDigest

    test, db = cluster
    assert isinstance(db, StateDigest)
    leader = await await_leader(db, test)
    async with KVClient([client_address(test, n) for n in test.nodes], timeout=10) as kv:
        await kv.put("k", "v1", 0)
    seen = await observe_convergence(test, timeout=20, interval=0.05)
    assert seen["converged"] is True, seen
    states = seen["nodes"]
    assert len({(s["applied"], s["digest"]) for s in states.values()}) == 1, states
    assert states[leader]["role"] == "leader" and states[leader]["id"] == leader
    follower = next(n for n in test.nodes if n != leader)
    await db.kill(test, follower)
    with pytest.raises(RaftkvDBError):
        await db.state_digest(test, follower)
    seen = await observe_convergence(test, timeout=20, interval=0.05)
    assert seen["converged"] is True and seen["nodes"][follower] == {"error": "not running"}
