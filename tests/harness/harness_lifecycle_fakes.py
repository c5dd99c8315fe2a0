"""In-memory stand-ins for a whole run without hosts (tests/harness/test_harness_lifecycle.py,
test_harness_capabilities.py): a backend whose hosts are plain objects, a DB, a nemesis and a workload that write
what they are asked to do into one shared list of events, and fail on request (``fail_at``: the event that raises).

The DB has Process, LogFiles, Primaries and Ready, and no ClusterStatus (so no status polling: the run's events are
exactly the calls made). The nemesis has PreparesHosts and stands in for the disk layer: ``prepare`` mounts,
``teardown`` releases (before the nodes are killed), ``unprepare`` unmounts (after the DB's teardown).
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import generator as gen
from harness import registry
from harness.protocols import ExecResult, Op, Remote, TestContext

DB_NAME = "lifedb"
WORKLOAD_NAME = "lifework"
NEMESIS_NAME = "lifenem"


class Injected(RuntimeError):
    """The failure a test asked for."""


@dataclass
class Script:
    """What happened (``events``), what must fail (``fail_at``: an event name), and a hook the client calls on its
    first invoke (a test awaiting it knows the main phase runs)."""

    events: list[str] = field(default_factory=list)
    fail_at: str | None = None
    invoked: asyncio.Event = field(default_factory=asyncio.Event)
    hang: bool = False  # the client's invokes never return (until cancelled or timed out)
    asked_ready: asyncio.Event = field(default_factory=asyncio.Event)
    hang_ready: bool = False  # the DB's readiness check never returns (until cancelled)

    def note(self, event: str) -> None:
        self.events.append(event)
        if event == self.fail_at:
            raise Injected(f"injected failure at {event}")


class FakeHost:
    def __init__(self, name: str, script: Script) -> None:
        self.name, self.address, self.script = name, f"10.0.0.{name[1:]}", script

    async def exec(self, argv: Sequence[str], *, check: bool = True, timeout: float | None = 30.0,
                   stdin: bytes | None = None) -> ExecResult:
        return ExecResult(tuple(argv), 0, "", "")

    async def upload(self, local: Path, remote: str) -> None:
        return None

    async def download(self, remote: str, local: Path) -> None:
        self.script.events.append(f"download {remote}")
        local.write_text(f"log of {remote}\n")

    async def spawn(self, argv: Sequence[str], *, log_path: str, env: Mapping[str, str] | None = None,
                    cwd: str | None = None) -> int:
        return 1

    async def signal(self, pid: int, sig: signal.Signals) -> bool:
        return True

    async def alive(self, pid: int) -> bool:
        return True


class FakeBackend:
    name = "fake"
    prefix = "renlc"

    def __init__(self, script: Script) -> None:
        self.script = script

    async def setup(self, count: int) -> list[Remote]:
        self.script.note("backend.setup")
        return [FakeHost(f"n{i + 1}", self.script) for i in range(count)]

    async def teardown(self) -> None:
        self.script.note("backend.teardown")

    def data_dir(self, host: str) -> str:
        return f"/fake/{host}/data"

    def log_dir(self, host: str) -> str:
        return f"/fake/{host}/log"


class FakeDB:
    """DB, Process, LogFiles, Primaries, Ready."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.running: set[str] = set()

    async def setup(self, test: TestContext, node: str) -> None:
        self.script.note(f"db.setup {node}")

    async def teardown(self, test: TestContext, node: str) -> None:
        self.running.discard(node)
        self.script.note(f"db.teardown {node}")

    async def start(self, test: TestContext, node: str) -> None:
        self.running.add(node)
        self.script.note(f"db.start {node}")

    async def kill(self, test: TestContext, node: str) -> None:
        self.running.discard(node)
        self.script.note(f"db.kill {node}")

    async def pause(self, test: TestContext, node: str) -> None:
        self.script.note(f"db.pause {node}")

    async def resume(self, test: TestContext, node: str) -> None:
        self.script.note(f"db.resume {node}")

    async def is_running(self, test: TestContext, node: str) -> bool:
        return node in self.running

    def log_files(self, test: TestContext, node: str) -> list[str]:
        return [f"/fake/{node}/log/db.log"]

    async def leader(self, test: TestContext) -> str | None:
        return "n1"

    async def ready(self, test: TestContext) -> bool:
        self.script.note("db.ready")
        self.script.asked_ready.set()
        if self.script.hang_ready:
            await asyncio.Event().wait()
        return True


class FakeNemesis:
    """Nemesis and PreparesHosts, in the disk layer's shape."""

    def __init__(self, script: Script) -> None:
        self.script = script

    def faults(self) -> set[str]:
        return {NEMESIS_NAME}

    async def prepare(self, test: TestContext) -> None:
        self.script.note("nemesis.prepare (mount)")

    async def unprepare(self, test: TestContext) -> None:
        self.script.note("nemesis.unprepare (unmount)")

    async def setup(self, test: TestContext) -> None:
        self.script.note("nemesis.setup")

    async def invoke(self, test: TestContext, op: Op) -> Op:
        self.script.note(f"nemesis.{op.f}")
        return replace(op, type="info")

    async def heal(self, test: TestContext) -> dict[str, Any]:
        self.script.note("nemesis.heal")
        return {"ok": True, "details": "healed"}

    async def teardown(self, test: TestContext) -> None:
        self.script.note("nemesis.teardown (release)")


class FakeClient:
    def __init__(self, script: Script) -> None:
        self.script = script

    async def open(self, test: TestContext, node: str) -> FakeClient:
        return self

    async def invoke(self, test: TestContext, op: Op) -> Op:
        self.script.invoked.set()
        if self.script.hang:
            await asyncio.Event().wait()
        return replace(op, type="ok")

    async def close(self, test: TestContext) -> None:
        return None


class AlwaysValid:
    def check(self, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
        return {"valid": True, "events": len(history)}


def _writes(script: Script) -> Any:
    def one(rng: random.Random, ctx: gen.Context) -> dict[str, Any]:
        script.note("workload.op")
        return {"f": "write", "value": 1}

    return lambda options, rng: gen.limit(3, gen.fn(one))


def register(script: Script) -> None:
    """Register the fake DB, workload and nemesis (with a start-then-stop schedule of its own) for ``script``."""
    registry.register_db(registry.DBSpec(name=DB_NAME, factory=lambda options: FakeDB(script)))
    registry.register_workload(registry.Workload(
        name=WORKLOAD_NAME, db=DB_NAME, client=lambda options: FakeClient(script), generator=_writes(script),
        checker=lambda options: AlwaysValid()))
    registry.register_nemesis(registry.NemesisSpec(
        name=NEMESIS_NAME, factory=lambda options, rng: FakeNemesis(script),
        generator=lambda options, rng: gen.then(gen.once({"f": "start", "value": {"fault": NEMESIS_NAME}}),
                                                gen.once({"f": "stop", "value": {"fault": NEMESIS_NAME}}))))


def unregister() -> None:
    registry.unregister(registry.Kind.DB, DB_NAME)
    registry.unregister(registry.Kind.WORKLOAD, WORKLOAD_NAME)
    registry.unregister(registry.Kind.NEMESIS, NEMESIS_NAME)
