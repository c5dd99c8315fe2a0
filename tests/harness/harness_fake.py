"""A fake system under test for the harness's own tests: a DB (fake_server.py processes in the hosts), a client,
an "adder" workload with a real checker, and an "isolate" nemesis that uses real iptables rules.

The checker: each node keeps a running total of the adds it received. The final read of a node must lie between
the sum of its ok adds and that plus the sum of its indeterminate (info) adds; a node never read makes the
result unknown. A server started with --lie acknowledges adds it drops, which the checker must catch (invalid).

The isolate nemesis drops the controller's packets in one host's namespace (a chain ``<prefix>-iso``), so ops to
that node time out (info). To let tests see that teardown also removes root-namespace objects, its setup creates
an (unused, unreferenced) iptables chain ``<prefix>-fake`` and an nft table ``inet <prefix>_fake`` in the root
namespace, and its teardown removes them.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness import generator as gen
from harness import registry
from harness.detection import PlantedBug
from harness.protocols import Op, TestContext

SERVER = Path(__file__).with_name("fake_server.py")
PORT = 7311


async def _request(address: str, req: dict[str, Any], timeout: float = 2.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(address, PORT)
        try:
            writer.write((json.dumps(req) + "\n").encode())
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
    if not line:
        raise ConnectionError("server closed the connection")
    return json.loads(line)


class FakeDB:
    def __init__(self, options: Mapping[str, Any]) -> None:
        self.lie = int(options.get("fake_lie") or 0)
        self.pids: dict[str, int] = {}

    async def setup(self, test: TestContext, node: str) -> None:
        Path(test.backend.data_dir(node)).mkdir(parents=True, exist_ok=True)
        Path(test.backend.log_dir(node)).mkdir(parents=True, exist_ok=True)

    async def start(self, test: TestContext, node: str) -> None:
        if node in self.pids and await test.host(node).alive(self.pids[node]):
            return
        host = test.host(node)
        argv = [sys.executable, str(SERVER), "--bind", host.address, "--port", str(PORT), "--node", node]
        if self.lie:
            argv += ["--lie", str(self.lie)]
        self.pids[node] = await host.spawn(argv, log_path=self.log_files(test, node)[0])

    async def kill(self, test: TestContext, node: str) -> None:
        if node in self.pids:
            await test.host(node).signal(self.pids[node], signal.SIGKILL)

    async def pause(self, test: TestContext, node: str) -> None:
        await test.host(node).signal(self.pids[node], signal.SIGSTOP)

    async def resume(self, test: TestContext, node: str) -> None:
        await test.host(node).signal(self.pids[node], signal.SIGCONT)

    async def is_running(self, test: TestContext, node: str) -> bool:
        return node in self.pids and await test.host(node).alive(self.pids[node])

    async def teardown(self, test: TestContext, node: str) -> None:
        await self.kill(test, node)
        shutil.rmtree(test.backend.data_dir(node), ignore_errors=True)

    def log_files(self, test: TestContext, node: str) -> list[str]:
        return [str(Path(test.backend.log_dir(node)) / "server.log")]

    async def status(self, test: TestContext, node: str) -> dict[str, Any]:
        return await _request(test.host(node).address, {"op": "status"}, timeout=1.0)

    async def metrics(self, test: TestContext, node: str) -> str:
        return (await _request(test.host(node).address, {"op": "metrics"}))["text"]

    async def leader(self, test: TestContext) -> str | None:
        return "n1"


class FakeClient:
    def __init__(self) -> None:
        self.address: str | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self, test: TestContext, node: str) -> FakeClient:
        c = FakeClient()
        c.address = test.host(node).address
        c.reader, c.writer = await asyncio.open_connection(c.address, PORT)
        return c

    async def invoke(self, test: TestContext, op: Op) -> Op:
        assert self.reader is not None and self.writer is not None
        req = {"op": op.f, "key": op.key, "value": op.value}
        self.writer.write((json.dumps(req) + "\n").encode())
        await self.writer.drain()
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("connection closed mid-request")
        resp = json.loads(line)
        if not resp.get("ok"):
            return replace(op, type="fail", error=resp.get("error"))
        return replace(op, type="ok", value=resp["value"] if op.f == "read" else op.value)

    async def close(self, test: TestContext) -> None:
        if self.writer is not None:
            self.writer.close()


class AdderChecker:
    name = "adder"

    def check(self, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
        lower: dict[str, int] = {}
        upper: dict[str, int] = {}
        reads: dict[str, int] = {}
        for ev in history:
            if ev["process"] == "nemesis" or ev["type"] == "invoke":
                continue
            node = ev.get("node")
            if ev["f"] == "add" and ev["type"] in ("ok", "info"):
                upper[node] = upper.get(node, 0) + ev["value"]
                if ev["type"] == "ok":
                    lower[node] = lower.get(node, 0) + ev["value"]
            elif ev["f"] == "read" and ev["type"] == "ok":
                reads[node] = ev["value"]
        bad = {n: {"read": r, "lower": lower.get(n, 0), "upper": upper.get(n, 0)}
               for n, r in reads.items() if not lower.get(n, 0) <= r <= upper.get(n, 0)}
        unread = sorted(set(upper) - set(reads))
        valid: bool | str = False if bad else ("unknown" if unread else True)
        return {"valid": valid, "bad": bad, "unread": unread, "reads": reads}


def _adds(options: Mapping[str, Any], rng: random.Random) -> gen.Generator:
    return gen.fn(lambda r, ctx: {"f": "add", "value": r.randint(1, 5)}, seed=rng.getrandbits(64))


def _final(options: Mapping[str, Any], rng: random.Random) -> gen.Generator:
    return gen.limit(int(options.get("concurrency", 1)), gen.repeat({"f": "read"}))


WORKLOAD = registry.Workload(
    name="fakeadd", description="adds to per-node counters of the fake server",
    client=lambda options: FakeClient(), generator=_adds, final_generator=_final,
    checker=lambda options: {"adder": AdderChecker()}, db="fakedb",
    options=[registry.Option(flag="--fake-lie", type=int, default=0,
                             help="server acks but drops every N-th add (0 = honest)")])

class FakeFailpoints:
    """The fake's planted bugs: `lie` acknowledges adds it drops (the adder checker catches it); `harmless` changes
    nothing, so no lab can catch it (a detection table must say "missed", never guess)."""

    BUGS = (PlantedBug(name="lie", layer="server", mimics="acknowledges adds it drops", sim_seed=None),
            PlantedBug(name="harmless", layer="server", mimics="nothing at all"))

    def planted_bugs(self) -> tuple[PlantedBug, ...]:
        return self.BUGS

    def options_for(self, names: Any) -> dict[str, Any]:
        return {"fake_lie": 3} if "lie" in names else {}


DB_SPEC = registry.DBSpec(name="fakedb", factory=FakeDB, description="the harness tests' fake server",
                          failpoints=FakeFailpoints())


def _root(argv: list[str]) -> None:
    subprocess.run(argv, check=False, capture_output=True, timeout=10)


class IsolateNemesis:
    def __init__(self, options: Mapping[str, Any], rng: random.Random) -> None:
        self.rng = rng
        self.isolated: set[str] = set()

    def faults(self) -> set[str]:
        return {"isolate"}

    def _chain(self, test: TestContext) -> str:
        return f"{test.backend.prefix}-iso"

    async def setup(self, test: TestContext) -> None:
        p = test.backend.prefix
        _root(["iptables", "-w", "-N", f"{p}-fake"])
        _root(["nft", "add", "table", "inet", f"{p}_fake"])

    async def invoke(self, test: TestContext, op: Op) -> Op:
        controller = getattr(test.backend, "controller_address", None)
        if op.f == "start":
            node = self.rng.choice(test.nodes)
            host = test.host(node)
            c = self._chain(test)
            # Intent first: if this is cancelled half-way (SIGTERM), heal still knows where to look.
            self.isolated.add(node)
            await host.exec(["iptables", "-w", "-N", c])
            await host.exec(["iptables", "-w", "-A", c, "-s", str(controller), "-j", "DROP"])
            await host.exec(["iptables", "-w", "-I", "INPUT", "-j", c])
            return replace(op, type="info", value={"fault": "isolate", "targets": [node]})
        healed = await self._heal_all(test)
        return replace(op, type="info", value={"fault": "isolate", "targets": healed})

    async def _heal_all(self, test: TestContext) -> list[str]:
        healed = []
        for node in sorted(self.isolated):
            host = test.host(node)
            c = self._chain(test)
            await host.exec(["iptables", "-w", "-D", "INPUT", "-j", c], check=False)
            await host.exec(["iptables", "-w", "-F", c], check=False)
            await host.exec(["iptables", "-w", "-X", c], check=False)
            healed.append(node)
        self.isolated.clear()
        return healed

    async def heal(self, test: TestContext) -> dict[str, Any]:
        healed = await self._heal_all(test)
        left = []
        for node in test.nodes:
            res = await test.host(node).exec(["iptables", "-w", "-S"], check=False)
            if self._chain(test) in res.stdout:
                left.append(node)
        return {"ok": not left, "details": {"healed": healed, "rules_left_on": left}}

    async def teardown(self, test: TestContext) -> None:
        await self._heal_all(test)
        p = test.backend.prefix
        _root(["iptables", "-w", "-X", f"{p}-fake"])
        _root(["nft", "delete", "table", "inet", f"{p}_fake"])


NEMESIS_SPEC = registry.NemesisSpec(name="isolate", factory=IsolateNemesis,
                                    description="drop the controller's packets at one host")


def register() -> None:
    registry.register_db(DB_SPEC)
    registry.register_workload(WORKLOAD)
    registry.register_nemesis(NEMESIS_SPEC)


def unregister() -> None:
    registry.unregister(registry.Kind.DB, "fakedb")
    registry.unregister(registry.Kind.WORKLOAD, "fakeadd")
    registry.unregister(registry.Kind.NEMESIS, "isolate")


def main(argv: list[str]) -> int:
    """`python harness_fake.py run ...`: the harness CLI with the fakes registered (for subprocess tests)."""
    register()
    from harness.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
