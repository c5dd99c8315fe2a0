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
from nemesis.clock import ClockNemesis, build_shim, offset_bytes, offset_seconds, rate_bytes, rate_value

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


def test_rates_are_parts_per_million_and_only_slow() -> None:
    assert rate_value(rate_bytes(0.05)) == 0.05 and rate_value(rate_bytes(1.0)) == 1.0
    assert rate_value(b"\0" * 8) == 1.0  # what the shim reads as true time
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="only slowing"):
            rate_bytes(bad)


# Prints, per line on stdin, how long a 0.1 s asyncio sleep took on its own monotonic clock and in wall time, and
# whether its monotonic clock ever went back.
SLOW_PROBE = r"""
import asyncio, sys, time
async def main():
    last = time.monotonic()
    for _ in range(3):
        m, w = time.monotonic(), time.time()
        await asyncio.sleep(0.1)
        now = time.monotonic()
        print(now - m, time.time() - w, now >= last, flush=True)
        last = now
        sys.stdin.readline()
asyncio.run(main())
"""


def test_the_shim_slows_the_monotonic_clock_at_the_rate_and_returns_it_to_true_time_at_once(tmp_path: Path) -> None:
    library = build_shim(tmp_path)
    clock_file = tmp_path / "clock"
    clock_file.write_bytes(offset_bytes(0) + rate_bytes(0.1))
    env = {**os.environ, "LD_PRELOAD": str(library), "RAFTKV_CLOCK_FILE": str(clock_file)}
    with subprocess.Popen([sys.executable, "-c", SLOW_PROBE], env=env, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as probe:
        assert probe.stdin is not None and probe.stdout is not None

        def step() -> tuple[float, float, bool]:
            mono, wall, forward = probe.stdout.readline().split()  # type: ignore[union-attr]
            return float(mono), float(wall), forward == "True"

        mono, wall, forward = step()  # at a tenth of true time, 0.1 s of its own takes 1 s of ours
        assert 0.099 <= mono < 0.2 and 0.9 < wall < 2.5 and forward
        with open(clock_file, "r+b") as f:  # true time again, written in place as the nemesis does
            f.seek(8)
            f.write(rate_bytes(1.0))
        probe.stdin.write("\n")
        probe.stdin.flush()
        mono, wall, forward = step()
        assert 0.099 <= mono < 0.5 and wall < 0.5 and forward
        probe.stdin.write("\n")
        probe.stdin.flush()
        step()
        probe.stdin.write("\n")
        probe.stdin.flush()
    assert probe.returncode == 0


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
        slowed = await nem.invoke(test, Op(process="nemesis", type="invoke", f="start",
                                           value={"fault": "clock-rate", "rates": {"n2": 0.05}}))
        assert slowed.value == {"fault": "clock-rate", "target": "explicit", "targets": ["n2"], "rates": {"n2": 0.05}}
        assert await nem._read(hosts[1], nem.paths(test, "n2")[1]) == (drawn.value["offsets_s"]["n2"], 0.05)
        resumed = await nem.invoke(test, Op(process="nemesis", type="invoke", f="stop", value={"fault": "clock-rate"}))
        assert resumed.value == {"fault": "clock-rate", "targets": ["n2"], "verified": True}
        with pytest.raises(ValueError, match="only slowing"):  # refused before anything is written
            await nem.invoke(test, Op(process="nemesis", type="invoke", f="start",
                                      value={"fault": "clock-rate", "rates": {"n1": 2.0}}))
        healed = await nem.heal(test)
        assert healed == {"ok": True, "details": {"n1": {"offset_s": 0.0, "rate": 1.0},
                                                  "n2": {"offset_s": 0.0, "rate": 1.0}}}
    finally:
        await backend.teardown()
    assert leftovers(prefix) == []
