"""A disk that fails under a serving node (issue 13 item 5): a full disk (ENOSPC) or an I/O error (EIO) on a write or
an fsync of the WAL. The node stops without retrying, and before it stops it answers every client waiting: writes
in flight `maybe`, writes never proposed and reads `unavailable`; no client sees a dropped connection, and the
error names the file and the operation.

Two levels: the node in this process with `os.fdatasync` failing on demand (either errno, the exact moment under
control), and a real `raftkv serve` process on a tmpfs that fills up (a real ENOSPC from a real write, the exit
code and the log line).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from server_cluster import ROOT, free_port

from raftkv.api import ERRORS
from raftkv.server.config import ServerConfig
from raftkv.server.main import serve
from raftkv.server.wal import DiskIOError

HOST = "127.0.0.61"


def one_node(data_dir: Path, log_file: Path | None = None) -> ServerConfig:
    peer = f"{HOST}:{free_port(HOST)}"
    return ServerConfig(id="n1", listen=peer, client=f"{HOST}:{free_port(HOST)}", peers={"n1": peer},
                        data_dir=data_dir, log_file=log_file, tick_ms=10, election_ticks=10)


async def until_leader(session: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{base}/status") as r:
                if (await r.json()).get("role") == "leader":
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.02)  # the single node elects itself within one election timeout
    raise AssertionError("no leader within 10 s")


async def put(session: aiohttp.ClientSession, base: str, key: str, value: str) -> tuple[int, Any]:
    """(status, JSON body); a dropped connection or a body that is not JSON fails the test."""
    async with session.put(f"{base}/kv/{key}", json={"value": value, "version": 0}) as r:
        return r.status, await r.json()


def expect_answers(answers: list[tuple[int, Any]]) -> dict[str, int]:
    """Each answer is ok or a documented JSON error of the table; count them by code."""
    counts: dict[str, int] = {}
    for status, body in answers:
        code = "ok" if status == 200 else body["error"]
        assert code == "ok" or ERRORS[code].http_status == status, (status, body)
        counts[code] = counts.get(code, 0) + 1
    return counts


class FailingSync:
    """`os.fdatasync` that, once armed, waits a moment (so more requests queue up behind the batch) and fails."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.armed = threading.Event()
        self.real = os.fdatasync

    def __call__(self, fd: int) -> None:
        if self.armed.is_set():
            time.sleep(0.2)
            raise OSError(self.code, os.strerror(self.code))
        self.real(fd)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
async def test_a_failing_fsync_answers_every_waiting_client_then_stops_naming_file_and_operation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    failing = FailingSync(code)
    monkeypatch.setattr(os, "fdatasync", failing)  # the WAL takes os.fdatasync when it opens
    cfg = one_node(tmp_path / "data")
    node = asyncio.create_task(serve(cfg, logging.getLogger("test.disk-failure")))
    base = f"http://{cfg.client}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            await until_leader(session, base)
            assert (await put(session, base, "before", "x"))[0] == 200  # the disk works until armed
            failing.armed.set()
            first = asyncio.create_task(put(session, base, "k0", "v"))  # its batch meets the failing fsync
            await asyncio.sleep(0.05)
            rest = [asyncio.create_task(put(session, base, f"k{i}", "v")) for i in range(1, 20)]
            answers = [await first] + [await t for t in rest]
        counts = expect_answers(answers)
        assert counts.get("maybe", 0) >= 1, counts  # the batch in the failing fsync: proposed, fate unknown
        assert set(counts) <= {"maybe", "unavailable"}, counts  # nothing acknowledged after the failure
        with pytest.raises(ExceptionGroup) as stopped:
            await asyncio.wait_for(node, 10)
        (cause,) = stopped.value.exceptions
        assert isinstance(cause, DiskIOError) and cause.errno == code
        assert str(cause).startswith(f"disk I/O failed: fdatasync {cfg.data_dir}/wal/") and ".wal:" in str(cause)
    finally:
        node.cancel()
        await asyncio.gather(node, return_exceptions=True)


# -- a real full disk, a real process ------------------------------------------------------------------------------

@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "raftkv-test-full", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_real_full_disk_answers_writes_maybe_or_unavailable_and_the_log_names_file_and_operation(
        tmp_path: Path, small_tmpfs: Path) -> None:
    cfg = one_node(small_tmpfs / "data")
    log = tmp_path / "n1.log"
    proc = subprocess.Popen([sys.executable, "-m", "raftkv", "serve", "--id", "n1", "--listen", cfg.listen, "--client",
                             cfg.client, "--peers", f"n1={cfg.listen}", "--data-dir", str(cfg.data_dir), "--log-file",
                             str(log), "--tick-ms", "10", "--election-ticks", "10"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://{cfg.client}"
    value = "v" * 60_000  # about 35 of these fill the 2 MiB disk
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            await until_leader(session, base)
            answers: list[tuple[int, Any]] = []
            for wave in range(10):  # bounded: the disk is full long before
                answers += await asyncio.gather(*(put(session, base, f"w{wave}-{i}", value) for i in range(8)))
                if any(status != 200 for status, _ in answers):
                    break
        counts = expect_answers(answers)
        assert counts.get("ok", 0) >= 1 and counts.get("maybe", 0) >= 1, counts
        assert proc.wait(15) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    fatal = [line for line in log.read_text().splitlines() if "CRITICAL" in line]
    assert fatal and f"disk I/O failed: write {cfg.data_dir}/wal/" in fatal[-1], fatal
    assert "No space left on device (errno 28)" in fatal[-1]
    assert any("answered maybe" in line for line in log.read_text().splitlines())
