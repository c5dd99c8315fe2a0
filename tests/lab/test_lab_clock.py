"""The clock nemesis: its shim really moves a process's wall clock (and nothing else) and sees a new offset at once;
the nemesis puts it in place on real hosts (the local backend), skews a daemon started the DB's way, and heals."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.backends.local import LocalBackend
from harness.clean import leftovers
from harness.protocols import Op
from harness.protocols import TestContext as Ctx
from nemesis.clock import ClockNemesis, build_shim, offset_bytes, offset_seconds

# Prints its wall clock and how long a 0.2 s sleep took on the monotonic clock, then again after a line on stdin.
PROBE = r"""
import sys, time
for _ in range(2):
    m = time.monotonic(); time.sleep(0.2); slept = time.monotonic() - m
    print(time.time(), slept, flush=True)
    sys.stdin.readline()
"""


def test_offsets_are_eight_native_bytes_of_nanoseconds() -> None:
    assert offset_seconds(offset_bytes(-12.5)) == -12.5 and len(offset_bytes(3600)) == 8
    with pytest.raises(ValueError, match="8 bytes"):
        offset_seconds(b"\0" * 7)


@pytest.mark.parametrize("kwargs", [{"targets": ()}, {"targets": ("most",)}, {"max_skew_s": 0}])
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ClockNemesis(random.Random(1), **kwargs)


def test_the_shim_moves_only_the_wall_clock_and_sees_a_new_offset_at_once(tmp_path: Path) -> None:
    library = build_shim(tmp_path)
    offset_file = tmp_path / "offset"
    offset_file.write_bytes(offset_bytes(3600))
    env = {**os.environ, "LD_PRELOAD": str(library), "RAFTKV_CLOCK_FILE": str(offset_file)}
    with subprocess.Popen([sys.executable, "-c", PROBE], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as probe:
        assert probe.stdin is not None and probe.stdout is not None
        wall, slept = map(float, probe.stdout.readline().split())
        assert abs(wall - time.time() - 3600) < 2 and 0.19 < slept < 0.5
        with open(offset_file, "r+b") as f:  # in place, as the nemesis writes it
            f.write(offset_bytes(-120))
        probe.stdin.write("\n")
        probe.stdin.flush()
        wall, slept = map(float, probe.stdout.readline().split())
        assert abs(wall - time.time() + 120) < 2 and 0.19 < slept < 0.5
        probe.stdin.write("\n")
        probe.stdin.flush()
    assert probe.returncode == 0
    date = subprocess.run(["date", "+%s"], env=env, capture_output=True, text=True, check=True)
    assert abs(int(date.stdout) - time.time() + 120) < 3  # C programs too (time, gettimeofday, clock_gettime)


class NoLeaderDB:
    async def leader(self, test: Ctx) -> str | None:
        return None


async def test_the_nemesis_skews_a_daemon_started_the_dbs_way_and_heals(lab_prefix_for_tests: str,
                                                                         tmp_path: Path) -> None:
    prefix = lab_prefix_for_tests + "c"
    backend = LocalBackend(tmp_path / "work", prefix=prefix)
    try:
        hosts = await backend.setup(2)
        test = Ctx(name="clock", options={}, hosts=hosts, backend=backend, db=NoLeaderDB(),  # type: ignore[arg-type]
                   seed=1, store_dir=tmp_path)
        nem = ClockNemesis(random.Random(5), max_skew_s=30)
        await nem.prepare(test)
        await nem.setup(test)
        assert set(test.daemon_env) == {"n1", "n2"} and "LD_PRELOAD" in test.daemon_env["n1"]
        log = tmp_path / "probe.log"
        probe = "import time\nfor _ in range(300):\n    print(time.time(), flush=True); time.sleep(0.02)\n"
        pid = await hosts[0].spawn([sys.executable, "-c", probe], log_path=str(log), env=test.daemon_env["n1"])
        done = await nem.invoke(test, Op(process="nemesis", type="invoke", f="start",
                                         value={"fault": "clock", "offsets_s": {"n1": 25.0}}))
        assert done.value == {"fault": "clock", "target": "explicit", "targets": ["n1"], "offsets_s": {"n1": 25.0}}

        async def latest_skew() -> float:
            lines = log.read_text().split()
            return float(lines[-1]) - time.time() if lines else 0.0

        async with asyncio.timeout(5):
            while abs(await latest_skew() - 25) > 1:
                await asyncio.sleep(0.02)  # the probe prints every 20 ms: wait for a line after the write
        stopped = await nem.invoke(test, Op(process="nemesis", type="invoke", f="stop", value={"fault": "clock"}))
        assert stopped.value == {"fault": "clock", "targets": ["n1"], "verified": True}
        async with asyncio.timeout(5):
            while abs(await latest_skew()) > 1:
                await asyncio.sleep(0.02)
        await hosts[0].signal(pid, signal.SIGKILL)
        drawn = await nem.invoke(test, Op(process="nemesis", type="invoke", f="start",
                                          value={"fault": "clock", "target": "all"}))
        assert set(drawn.value["offsets_s"]) == {"n1", "n2"}
        assert all(abs(s) <= 30 for s in drawn.value["offsets_s"].values())
        healed = await nem.heal(test)
        assert healed == {"ok": True, "details": {"n1": 0.0, "n2": 0.0}}
    finally:
        await backend.teardown()
    assert leftovers(prefix) == []
