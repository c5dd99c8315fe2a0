"""The convergence oracle catches a real divergence between real raftkv replicas.

No test path in raftkv: the test itself plays a storage bug. A follower is stopped, one value in its latest
snapshot file is changed (re-framed with raftkv's own snapshot writer, so the node accepts it), and the follower
restarts from it. It then holds the same applied index as the others with another state. The engine's polling
(harness.converge, through GET /debug/state) records the observation and checker.ConvergenceChecker must judge the
run invalid, naming that follower; before the tampering the same path finds every replica equal."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
import pytest
from server_cluster import Cluster

from checker import ConvergenceChecker
from harness.converge import observe_convergence
from harness.protocols import StateDigest
from harness.protocols import TestContext as Ctx
from raftkv.client import KVClient
from raftkv.core import codec
from raftkv.core.types import Snapshot
from raftkv.server.snapfiles import SnapshotStore

pytestmark = pytest.mark.timeout(120)


class Host:
    def __init__(self, name: str) -> None:
        self.name, self.address = name, name


class ClusterDB:
    """The StateDigest capability over a test cluster's real HTTP endpoint."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    async def is_running(self, test: Any, node: str) -> bool:
        return self.cluster.procs[node].poll() is None

    async def state_digest(self, test: Any, node: str) -> Mapping[str, Any]:
        code, body = await self.cluster.http(node, "GET", "/debug/state", timeout=5)
        assert code == 200, body
        return dict(body)


def tamper_latest_snapshot(data_dir: Path) -> str:
    """Change the value of the first key in the node's newest snapshot; returns that key."""
    store = SnapshotStore(data_dir / "snap")
    latest = store.load_latest()
    assert latest is not None, "the node made no snapshot"
    snap = codec.decode_snapshot(latest[1])
    tag, applied, items, *rest = msgpack.unpackb(snap.data, raw=False)  # rest: the session table (format /2)
    key, value, version = items[0]
    items[0] = [key, value + "-diverged", version]
    tampered = Snapshot(meta=snap.meta, data=msgpack.packb([tag, applied, items, *rest]))
    store.save(snap.meta.index, snap.meta.term, codec.encode_snapshot(tampered))
    return str(key)


def judge(value: dict[str, Any]) -> dict[str, Any]:
    history = [{"index": 0, "process": "harness", "type": "info", "f": "converge", "value": value, "time": 1}]
    return ConvergenceChecker().check({}, history)


async def test_a_replica_restarted_from_a_tampered_snapshot_is_named(tmp_path: Path) -> None:
    c3 = Cluster(tmp_path, 3, base_ip=80, extra=("--snapshot-entries", "20"))
    c3.start_all()
    try:
        leader = await c3.wait_leader()
        db = ClusterDB(c3)
        assert isinstance(db, StateDigest)
        test = Ctx(name="t", options={}, hosts=[Host(n) for n in c3.ids],  # type: ignore[misc]
                   backend=None, db=db, seed=1, store_dir=tmp_path)  # type: ignore[arg-type]
        async with KVClient(c3.addrs, timeout=5) as kv:
            for i in range(40):
                await kv.put(f"k{i:02d}", f"v{i}", 0)
        equal = await observe_convergence(test, timeout=20, interval=0.1)
        assert equal["converged"] is True and judge(equal)["valid"] is True

        follower = next(n for n in c3.ids if n != leader)
        c3.kill(follower)
        key = tamper_latest_snapshot(tmp_path / follower)
        c3.start(follower)
        # The engine's own wait: errors while the follower starts, then polls until every node is at one index.
        diverged = await observe_convergence(test, timeout=30, interval=0.1)
        result = judge(diverged)
    finally:
        c3.stop_all()
    assert diverged["converged"] is True, diverged
    assert result["valid"] is False, result
    (mismatch,) = result["mismatches"]
    assert follower in [n for nodes in mismatch["digests"].values() if len(nodes) == 1 for n in nodes]
    assert sorted(n for nodes in mismatch["digests"].values() for n in nodes) == sorted(c3.ids)
    assert follower in result["explanation"] and key.startswith("k")

