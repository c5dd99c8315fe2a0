"""A snapshot in the making does not hold up writes: the node serializes a copy of the KV state on its snapshot
thread while the event loop goes on applying. In process, one node, the snapshot's encoding held on a gate."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from pathlib import Path

from server_cluster import free_port

from raftkv.client import KVClient
from raftkv.kv import FrozenState, KVStore
from raftkv.server.config import ServerConfig
from raftkv.server.main import serve


def test_a_frozen_state_is_detached_from_later_applies() -> None:
    from raftkv.kv import Command, Op, encode_command

    kv = KVStore()
    kv.apply(1, encode_command(Command(op=Op.PUT, key="a", value="1", expected_version=0, request_id="r1")))
    before = kv.snapshot()
    frozen = kv.frozen()
    kv.apply(2, encode_command(Command(op=Op.PUT, key="a", value="2", expected_version=1, request_id="r2")))
    kv.apply(3, encode_command(Command(op=Op.PUT, key="b", value="3", expected_version=0, request_id="r3")))
    assert frozen.applied == 1 and frozen.encode() == before != kv.snapshot()
    restored = KVStore()
    restored.restore(frozen.encode())
    assert restored.applied_index == 1 and restored.get("a") == ("1", 1) and restored.get("b") is None


async def test_writes_commit_while_the_snapshot_is_being_serialized(tmp_path: Path, monkeypatch: object) -> None:
    entered, gate = threading.Event(), threading.Event()
    encode = FrozenState.encode

    def held_encode(self: FrozenState) -> bytes:
        entered.set()
        gate.wait(20)  # the snapshot thread is busy for as long as the test says
        return encode(self)

    monkeypatch.setattr(FrozenState, "encode", held_encode)  # type: ignore[attr-defined]
    peer, client = free_port("127.0.0.1"), free_port("127.0.0.1")
    cfg = ServerConfig(id="n1", listen=f"127.0.0.1:{peer}", client=f"127.0.0.1:{client}",
                       peers={"n1": f"127.0.0.1:{peer}"}, memory=True, snapshot_entries=40, tick_ms=10,
                       election_ticks=5, log_file=tmp_path / "n1.log")
    node = asyncio.create_task(serve(cfg, logging.getLogger("test-snapshot-node"), grace=0.5))
    loop = asyncio.get_running_loop()
    try:
        async with KVClient([f"127.0.0.1:{client}"], timeout=5) as kv:
            async with asyncio.timeout(10):
                while True:  # a one-node cluster elects itself within a few ticks
                    try:
                        if (await kv.status()).get("role") == "leader":
                            break
                    except Exception:  # noqa: BLE001 - not listening yet
                        pass
                    await asyncio.sleep(0.02)
            for i in range(50):  # past snapshot_entries: the snapshot starts and its encoding waits on the gate
                await kv.put(f"k{i}", "v", 0)
            assert await loop.run_in_executor(None, entered.wait, 10), "no snapshot started"
            t0 = time.monotonic()
            for i in range(30):
                assert (await kv.put(f"during{i}", "v", 0)).version == 1
            assert (await kv.get("during29")).version == 1
            assert time.monotonic() - t0 < 3.0  # the held snapshot held up none of them
            assert (await kv.status())["last_snapshot"]["index"] == 0  # and it really was still in the making
            gate.set()
            async with asyncio.timeout(10):
                while not (await kv.status())["last_snapshot"]["index"] >= 40:
                    await asyncio.sleep(0.02)
    finally:
        gate.set()
        os.kill(os.getpid(), signal.SIGTERM)  # serve() stops on SIGTERM, through the loop's own handler
        await asyncio.wait_for(node, 10)
