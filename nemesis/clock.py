"""The clock nemesis: skews the nodes' wall clocks (Jepsen's clock nemesis, without touching the machine's clock).

The hosts of this lab share one kernel clock, and libfaketime hangs Python 3.11 (FAULTS.md), so the skew lives in
the DB's own processes: `prepare` (before the DB starts) builds nemesis/clock_shim.c with gcc, puts the library
and an 8-byte offset file on every host, and asks the DB adapter to start its daemons with
``LD_PRELOAD=<library> RAFTKV_CLOCK_FILE=<file>`` (TestContext.daemon_env). The shim adds the file's offset to the
wall clock (clock_gettime REALTIME, gettimeofday, time) and to nothing else: monotonic clocks, sleeps and timeouts
run true, as a skewed NTP-less machine's would. Changing a node's offset is one in-place write of those 8 bytes;
the node sees it at its next clock read.

What it tests: that nothing in the system under test trusts wall-clock time for safety. raftkv's elections,
leases and deadlines use the monotonic clock, so a skew shows only in its log timestamps; a DB that times leases or
orders writes by wall clock would be caught by the checker.

- start `{"fault": "clock"}` (optionally `"target"`, `"targets"`, `"offsets_s": {node: seconds}`): each target's
  clock jumps to a random offset of up to +-`--clock-max-skew-s` (default 60) seconds from true time (a bump: the
  same node may be moved forward or back). Completion `{"fault", "target", "targets", "offsets_s"}`.
- stop: every node back to true time; completion `{"fault": "clock", "targets": [...], "verified": bool}`, verified
  by reading every offset file back.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.protocols import Op, Remote, RemoteError, TestContext
from nemesis.leader import no_leader_reason
from nemesis.targets import LEADER_SPECS, TARGET_SPECS, choose_targets

SHIM_SOURCE = Path(__file__).with_name("clock_shim.c")
DEFAULT_TARGETS = TARGET_SPECS
DEFAULT_MAX_SKEW_S = 60.0
_OFFSET = struct.Struct("=q")  # the shim reads a native-endian int64 of nanoseconds


class ClockError(RuntimeError):
    """The shim could not be built or put in place, or an offset could not be written (names host and cause)."""


def build_shim(out_dir: Path) -> Path:
    """Compile the shim into out_dir; ClockError (saying what to install) when gcc is missing or fails."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise ClockError("the clock nemesis needs gcc to build its shim (Debian: apt-get install gcc libc6-dev)")
    out = out_dir / "raftkv-clock.so"
    result = subprocess.run([gcc, "-O2", "-Wall", "-shared", "-fPIC", "-o", str(out), str(SHIM_SOURCE), "-ldl"],
                            capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise ClockError(f"building {SHIM_SOURCE.name} failed: {result.stderr.strip()[-500:]}")
    return out


def offset_bytes(seconds: float) -> bytes:
    return _OFFSET.pack(round(seconds * 1e9))


def offset_seconds(raw: bytes) -> float:
    """The offset an 8-byte file holds, in seconds; ValueError when it is not 8 bytes."""
    if len(raw) != _OFFSET.size:
        raise ValueError(f"an offset file holds {_OFFSET.size} bytes, not {len(raw)}")
    return float(_OFFSET.unpack(raw)[0]) / 1e9


class ClockNemesis:
    """Wall-clock skew of the DB's daemons. One instance per run."""

    def __init__(self, rng: random.Random, *, targets: Sequence[str] = DEFAULT_TARGETS,
                 max_skew_s: float = DEFAULT_MAX_SKEW_S) -> None:
        unknown = [t for t in targets if t not in TARGET_SPECS]
        if unknown or not targets:
            raise ValueError(f"clock targets {list(targets)!r}: unknown {unknown!r}; known: {TARGET_SPECS}")
        if not max_skew_s > 0:
            raise ValueError(f"--clock-max-skew-s must be > 0, got {max_skew_s}")
        self.specs = tuple(targets)
        self.max_skew_s = max_skew_s
        self._rng = rng
        self._files: dict[str, str] = {}  # node -> its offset file on the host
        self._skewed: set[str] = set()

    def faults(self) -> set[str]:
        return {"clock"}

    def paths(self, test: TestContext, node: str) -> tuple[str, str]:
        """(library, offset file) on that host: in the backend's data directory for the node."""
        base = test.backend.data_dir(node)
        return f"{base}/raftkv-clock.so", f"{base}/clock-offset"

    async def prepare(self, test: TestContext) -> None:
        """Build the shim once, put it and a zero offset file on every host, and ask the DB to preload it."""
        with tempfile.TemporaryDirectory(prefix="raftkv-clock-") as tmp:
            library = await asyncio.to_thread(build_shim, Path(tmp))

            async def place(host: Remote) -> None:
                remote_lib, offset_file = self.paths(test, host.name)
                await host.exec(["mkdir", "-p", test.backend.data_dir(host.name)])
                await host.upload(library, remote_lib)
                await self._write(host, offset_file, 0.0)
                self._files[host.name] = offset_file
                test.daemon_env.setdefault(host.name, {}).update(
                    {"LD_PRELOAD": remote_lib, "RAFTKV_CLOCK_FILE": offset_file})

            async with asyncio.TaskGroup() as tg:
                for host in test.hosts:
                    tg.create_task(place(host))

    async def unprepare(self, test: TestContext) -> None:
        """Nothing to take away: the shim and its offset files live in the hosts' data directories, which the
        backend's teardown removes (and the daemons preloading them are gone by then)."""
        return None

    async def setup(self, test: TestContext) -> None:
        missing = [n for n in test.nodes if n not in self._files]
        if missing:
            raise ClockError(f"the clock shim is not in place on {', '.join(missing)} (prepare did not run)")

    async def _write(self, host: Remote, path: str, seconds: float) -> None:
        """Overwrite the 8 bytes in place (never truncate: the daemons have the file mapped)."""
        result = await host.exec(["dd", f"of={path}", "bs=8", "count=1", "conv=notrunc,fsync", "status=none"],
                                 check=False, stdin=offset_bytes(seconds))
        if result.returncode != 0:
            raise ClockError(f"{host.name}: writing the clock offset failed: {result.stderr.strip()}")

    async def _read(self, host: Remote, path: str) -> float:
        result = await host.exec(["od", "-An", "-v", "-tx1", path])
        return offset_seconds(bytes.fromhex("".join(result.stdout.split())))

    async def invoke(self, test: TestContext, op: Op) -> Op:
        value = dict(op.value or {})
        if op.f == "start":
            done = await self._start(test, value)
        elif op.f == "stop":
            healed = sorted(self._skewed)
            result = await self.heal(test)
            done = {"fault": "clock", "targets": healed, "verified": result["ok"]}
            if not result["ok"]:
                done["details"] = result["details"]
        else:
            raise ValueError(f"clock nemesis: unknown f {op.f!r} (expected start or stop)")
        return Op(process=op.process, type="info", f=op.f, value=done, node=",".join(done.get("targets", [])) or None)

    async def _start(self, test: TestContext, value: Mapping[str, Any]) -> dict[str, Any]:
        if "offsets_s" in value:
            spec = "explicit"
            offsets = {str(n): float(s) for n, s in dict(value["offsets_s"]).items()}
            unknown = set(offsets) - set(test.nodes)
            if unknown:
                raise ValueError(f"clock nemesis: unknown targets {sorted(unknown)!r}")
        else:
            spec, chosen = await choose_targets("clock", test, value, self.specs, self._rng)
            if spec in LEADER_SPECS and not chosen:
                return {"fault": "clock", "target": spec, "targets": [], "skipped": no_leader_reason(test)}
            offsets = {n: round(self._rng.uniform(-self.max_skew_s, self.max_skew_s), 3) for n in chosen}
        self._skewed.update(offsets)  # before writing: a cancelled start must still be healed
        async with asyncio.TaskGroup() as tg:
            for node, seconds in offsets.items():
                tg.create_task(self._write(test.host(node), self._files[node], seconds))
        return {"fault": "clock", "target": spec, "targets": sorted(offsets), "offsets_s": offsets}

    async def heal(self, test: TestContext) -> dict[str, Any]:
        """Every node back to true time, verified by reading each offset file back: {"ok", "details": {node:
        offset in seconds after the reset, or the error}}."""
        details: dict[str, Any] = {}

        async def one(node: str, path: str) -> None:
            host = test.host(node)
            try:
                await self._write(host, path, 0.0)
                details[node] = await self._read(host, path)
            except (RemoteError, ClockError, OSError, ValueError) as exc:
                details[node] = f"error: {exc}"

        async with asyncio.TaskGroup() as tg:
            for node, path in self._files.items():
                tg.create_task(one(node, path))
        ok = all(v == 0.0 for v in details.values())
        if ok:
            self._skewed.clear()
        return {"ok": ok, "details": details}

    async def teardown(self, test: TestContext) -> None:
        await self.heal(test)
