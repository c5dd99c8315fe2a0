"""The clock nemesis: skews the nodes' wall clocks and slows their monotonic clocks, without touching the machine's.

The hosts of this lab share one kernel clock, and libfaketime hangs Python 3.11 (FAULTS.md), so the faults live in
the DB's own processes: `prepare` (before the DB starts) builds nemesis/clock_shim.c with gcc, puts the library
and a 16-byte clock file on every host, and asks the DB adapter to start its daemons with
``LD_PRELOAD=<library> RAFTKV_CLOCK_FILE=<file>`` (TestContext.daemon_env). The file holds a wall-clock offset and a
monotonic rate (the shim's header); changing either is one in-place write of 8 bytes, seen at the node's next
clock read. Two fault kinds:

- ``clock`` (Jepsen's clock bump): the wall clock (clock_gettime REALTIME, gettimeofday, time) jumps by an
  offset; monotonic clocks, sleeps and timeouts run true, as a skewed NTP-less machine's would. It tests that
  nothing trusts wall-clock time for safety: raftkv's elections, leases and deadlines use the monotonic clock, so
  a skew shows only in its log timestamps.
- ``clock-rate``: the monotonic clock runs slow, at a rate drawn log-uniformly in ``--clock-min-rate`` to
  ``--clock-max-rate`` of true time (default 0.01 to 0.1), so every timer of the node fires late: its heartbeats,
  its election timeout, its CheckQuorum, its lease, its request deadlines. A leader on a slow clock that is cut off
  goes on believing it leads long after the majority elected another (its CheckQuorum is 10 to 100 times late), so
  whatever it answers alone shows: a lease longer than the election timeout, a read served without a quorum round.
  A correct leader answers nothing alone then. It is what a node with a drifting oscillator, a starved VM or a
  clock that NTP slews too far does. The stop returns the node to true time at once (a jump forward, as a process
  resuming from SIGSTOP sees). raftkv's optional lease reads (``--raftkv-lease``) rest on bounded drift, as every
  lease does; this fault breaks that bound on purpose, so a run with leases on is expected to be caught.

- start `{"fault": "clock"}` (optionally `"target"`, `"targets"`, `"offsets_s": {node: seconds}`): each target's
  clock jumps to a random offset of up to +-`--clock-max-skew-s` (default 60) seconds from true time (a bump: the
  same node may be moved forward or back). Completion `{"fault", "target", "targets", "offsets_s"}`.
- start `{"fault": "clock-rate"}` (optionally `"target"`, `"targets"`, `"rates": {node: rate}`): each target's
  monotonic clock runs at its drawn rate. Completion `{"fault", "target", "targets", "rates"}`.
- stop (of either kind): the nodes that kind moved back to true time; completion `{"fault", "targets",
  "verified": bool}`, verified by reading their clock files back.
"""

from __future__ import annotations

import asyncio
import math
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
DEFAULT_MIN_RATE = 0.01
DEFAULT_MAX_RATE = 0.1
KINDS = ("clock", "clock-rate")
_WORD = struct.Struct("=q")  # the shim reads native-endian int64s: nanoseconds of offset, then the rate in ppm
_PPM = 1_000_000
_OFFSET_SLOT, _RATE_SLOT = 0, 1  # 8-byte slots of the clock file


class ClockError(RuntimeError):
    """The shim could not be built or put in place, or a clock file could not be written (names host and cause)."""


def build_shim(out_dir: Path) -> Path:
    """Compile the shim into out_dir; ClockError (saying what to install) when gcc is missing or fails."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise ClockError("the clock nemesis needs gcc to build its shim (Debian: apt-get install gcc libc6-dev)")
    out = out_dir / "raftkv-clock.so"
    result = subprocess.run([gcc, "-O2", "-Wall", "-shared", "-fPIC", "-o", str(out), str(SHIM_SOURCE), "-ldl",
                            "-lpthread"],
                            capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise ClockError(f"building {SHIM_SOURCE.name} failed: {result.stderr.strip()[-500:]}")
    return out


def offset_bytes(seconds: float) -> bytes:
    return _WORD.pack(round(seconds * 1e9))


def offset_seconds(raw: bytes) -> float:
    """The offset 8 bytes hold, in seconds; ValueError when it is not 8 bytes."""
    if len(raw) != _WORD.size:
        raise ValueError(f"an offset is {_WORD.size} bytes, not {len(raw)}")
    return float(_WORD.unpack(raw)[0]) / 1e9


def rate_bytes(rate: float) -> bytes:
    """The shim's slot for a monotonic rate (1.0 = true time); ValueError outside (0, 1]."""
    if not 0 < rate <= 1:
        raise ValueError(f"a clock rate must be in (0, 1] (only slowing is offered), got {rate!r}")
    return _WORD.pack(max(1, round(rate * _PPM)))


def rate_value(raw: bytes) -> float:
    """The rate 8 bytes hold, as the shim reads them (anything outside (0, 1e6] ppm is true time)."""
    ppm = _WORD.unpack(raw)[0]
    return ppm / _PPM if 0 < ppm < _PPM else 1.0


class ClockNemesis:
    """Wall-clock skew and monotonic slowing of the DB's daemons (the module docstring). One instance per run."""

    def __init__(self, rng: random.Random, *, targets: Sequence[str] = DEFAULT_TARGETS,
                 max_skew_s: float = DEFAULT_MAX_SKEW_S, min_rate: float = DEFAULT_MIN_RATE,
                 max_rate: float = DEFAULT_MAX_RATE) -> None:
        unknown = [t for t in targets if t not in TARGET_SPECS]
        if unknown or not targets:
            raise ValueError(f"clock targets {list(targets)!r}: unknown {unknown!r}; known: {TARGET_SPECS}")
        if not max_skew_s > 0:
            raise ValueError(f"--clock-max-skew-s must be > 0, got {max_skew_s}")
        if not 0 < min_rate <= max_rate < 1:
            raise ValueError(f"--clock-min-rate {min_rate} and --clock-max-rate {max_rate}: need 0 < min <= max < 1 "
                             f"(a rate is the share of true time the slowed clock advances)")
        self.specs = tuple(targets)
        self.max_skew_s = max_skew_s
        self.rates = (min_rate, max_rate)
        self._rng = rng
        self._files: dict[str, str] = {}  # node -> its clock file on the host
        self._moved: dict[str, set[str]] = {kind: set() for kind in KINDS}  # kind -> nodes off true time

    def faults(self) -> set[str]:
        return set(KINDS)

    def paths(self, test: TestContext, node: str) -> tuple[str, str]:
        """(library, clock file) on that host: in the backend's data directory for the node."""
        base = test.backend.data_dir(node)
        return f"{base}/raftkv-clock.so", f"{base}/clock-offset"

    async def prepare(self, test: TestContext) -> None:
        """Build the shim once, put it and a true-time clock file on every host, and ask the DB to preload it."""
        with tempfile.TemporaryDirectory(prefix="raftkv-clock-") as tmp:
            library = await asyncio.to_thread(build_shim, Path(tmp))

            async def place(host: Remote) -> None:
                remote_lib, clock_file = self.paths(test, host.name)
                await host.exec(["mkdir", "-p", test.backend.data_dir(host.name)])
                await host.upload(library, remote_lib)
                await self._write(host, clock_file, _OFFSET_SLOT, offset_bytes(0.0) + rate_bytes(1.0))
                self._files[host.name] = clock_file
                test.daemon_env.setdefault(host.name, {}).update(
                    {"LD_PRELOAD": remote_lib, "RAFTKV_CLOCK_FILE": clock_file})

            async with asyncio.TaskGroup() as tg:
                for host in test.hosts:
                    tg.create_task(place(host))

    async def unprepare(self, test: TestContext) -> None:
        """Nothing to take away: the shim and its clock files live in the hosts' data directories, which the
        backend's teardown removes (and the daemons preloading them are gone by then)."""
        return None

    async def setup(self, test: TestContext) -> None:
        missing = [n for n in test.nodes if n not in self._files]
        if missing:
            raise ClockError(f"the clock shim is not in place on {', '.join(missing)} (prepare did not run)")

    async def _write(self, host: Remote, path: str, slot: int, data: bytes) -> None:
        """Overwrite 8-byte slots from ``slot`` in place (never truncate: the daemons have the file mapped)."""
        result = await host.exec(["dd", f"of={path}", "bs=8", f"seek={slot}", "conv=notrunc,fsync", "status=none"],
                                 check=False, stdin=data)
        if result.returncode != 0:
            raise ClockError(f"{host.name}: writing the clock file failed: {result.stderr.strip()}")

    async def _read(self, host: Remote, path: str) -> tuple[float, float]:
        """(offset in seconds, rate) as the file holds them."""
        result = await host.exec(["od", "-An", "-v", "-tx1", path])
        raw = bytes.fromhex("".join(result.stdout.split()))
        if len(raw) != 2 * _WORD.size:
            raise ValueError(f"{host.name}: {path} holds {len(raw)} bytes, not {2 * _WORD.size}")
        return offset_seconds(raw[:8]), rate_value(raw[8:])

    async def invoke(self, test: TestContext, op: Op) -> Op:
        value = dict(op.value or {})
        kind = value.get("fault", "clock")
        if kind not in KINDS:
            raise ValueError(f"clock nemesis: unknown fault {kind!r} (expected one of {', '.join(KINDS)})")
        if op.f == "start":
            done = await self._start(test, kind, value)
        elif op.f == "stop":
            healed = sorted(self._moved[kind])
            result = await self._restore(test, kind)
            done = {"fault": kind, "targets": healed, "verified": result["ok"]}
            if not result["ok"]:
                done["details"] = result["details"]
        else:
            raise ValueError(f"clock nemesis: unknown f {op.f!r} (expected start or stop)")
        return Op(process=op.process, type="info", f=op.f, value=done, node=",".join(done.get("targets", [])) or None)

    async def _start(self, test: TestContext, kind: str, value: Mapping[str, Any]) -> dict[str, Any]:
        explicit = "offsets_s" if kind == "clock" else "rates"
        if explicit in value:
            spec = "explicit"
            chosen = {str(n): float(s) for n, s in dict(value[explicit]).items()}
            unknown = set(chosen) - set(test.nodes)
            if unknown:
                raise ValueError(f"clock nemesis: unknown targets {sorted(unknown)!r}")
        else:
            spec, nodes = await choose_targets(kind, test, value, self.specs, self._rng)
            if spec in LEADER_SPECS and not nodes:
                return {"fault": kind, "target": spec, "targets": [], "skipped": no_leader_reason(test)}
            chosen = {n: self._draw(kind) for n in nodes}
        slot, encode = (_OFFSET_SLOT, offset_bytes) if kind == "clock" else (_RATE_SLOT, rate_bytes)
        data = {n: encode(v) for n, v in chosen.items()}  # before any write: a bad explicit value moves nothing
        self._moved[kind].update(chosen)  # before writing: a cancelled start must still be healed
        async with asyncio.TaskGroup() as tg:
            for node, raw in data.items():
                tg.create_task(self._write(test.host(node), self._files[node], slot, raw))
        return {"fault": kind, "target": spec, "targets": sorted(chosen), explicit: chosen}

    def _draw(self, kind: str) -> float:
        """A skew (uniform in +-max) or a rate (log-uniform in the range), rounded for the history."""
        if kind == "clock":
            return round(self._rng.uniform(-self.max_skew_s, self.max_skew_s), 3)
        low, high = self.rates
        return round(math.exp(self._rng.uniform(math.log(low), math.log(high))), 4)

    async def _restore(self, test: TestContext, kind: str) -> dict[str, Any]:
        """The nodes ``kind`` moved back to true time, verified by reading their files back."""
        details: dict[str, Any] = {}
        slot, true_time = (_OFFSET_SLOT, offset_bytes(0.0)) if kind == "clock" else (_RATE_SLOT, rate_bytes(1.0))

        async def one(node: str) -> None:
            host, path = test.host(node), self._files[node]
            try:
                await self._write(host, path, slot, true_time)
                offset, rate = await self._read(host, path)
                details[node] = offset if kind == "clock" else rate
            except (RemoteError, ClockError, OSError, ValueError) as exc:
                details[node] = f"error: {exc}"

        async with asyncio.TaskGroup() as tg:
            for node in sorted(self._moved[kind]):
                tg.create_task(one(node))
        ok = all(v == (0.0 if kind == "clock" else 1.0) for v in details.values())
        if ok:
            self._moved[kind].clear()
        return {"ok": ok, "details": details}

    async def heal(self, test: TestContext) -> dict[str, Any]:
        """Every node back to true time, both clocks, verified by reading each clock file back: {"ok", "details":
        {node: {"offset_s", "rate"} after the reset (either may be the error instead)}}."""
        for kind in KINDS:
            self._moved[kind].update(self._files)  # heal restores every node, not only those a start moved
        skew, rate = [await self._restore(test, kind) for kind in KINDS]
        details = {node: {"offset_s": skew["details"].get(node), "rate": rate["details"].get(node)}
                   for node in sorted(self._files)}
        return {"ok": skew["ok"] and rate["ok"], "details": details}

    async def teardown(self, test: TestContext) -> None:
        await self.heal(test)
