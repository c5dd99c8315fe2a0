"""The raftkv DB adapter: installs, starts, faults and inspects one raftkv node per host. It has every capability
of harness.protocols (DB, Process, LogFiles, Primaries, Ready, ClusterStatus, Metrics, StateDigest, Witness, Timing,
RecoveryBound, DataDir) and harness.scrape's (ScrapeTargets, MetricPanels).

On each host (any backend: everything goes through Remote):
- data in `<backend data dir>/raftkv`, logs in `<backend log dir>/` (`raftkv.log` written by the node,
  `stdout.log` its stdout and stderr);
- the node listens for peers on `<host address>:PEER_PORT` and for clients on `<host address>:CLIENT_PORT`;
- `setup` writes its configuration to `<backend data dir>/raftkv.json` (collected with the logs) and the run's
  cluster secret, fresh per run, to `<backend data dir>/peer-secret` (mode 600, never collected), so the nodes
  authenticate each other;
- it runs as `<python> -m raftkv serve --config <that file>`, the python of harness.install.runtime_for: on hosts
  that share the controller's file system (netns, local) the controller's own interpreter with this checkout on
  PYTHONPATH, so a node runs exactly the code under test; on hosts that share nothing (ssh) the venv the backend's
  install step made there from a wheel of this same checkout.

`--raftkv-failpoints a,b` plants those bugs (raftkv/failpoints.py, docs/failpoints.md) in every node: the names are
checked against the registry when the arguments are parsed (exit 254 on an unknown one), and each node is started
with RAFTKV_FAILPOINTS=a,b and the explicit allow RAFTKV_ALLOW_FAILPOINTS=1 in its environment (the option lands in
test.json with the run's other options).

Election settings default to fast ones (a 25 ms tick, elections after 10 to 20 ticks) so faults are felt and healed
within a second; `--raftkv-tick-ms` and `--raftkv-election-ticks` change them.

PIDs are the adapter's own state (one adapter per run): kill/pause/resume signal exactly the process `start` spawned,
and `kill` returns only once the process is gone, so a following `start` never races the old one for its ports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from harness.detection import PlantedBug
from harness.install import runtime_for
from harness.protocols import RemoteError, TestContext
from harness.readiness import one_leader_named
from harness.registry import DBSpec, Option, int_in
from harness.scrape import MetricPanel
from raftkv.client import KVClient, RaftKVError
from raftkv.failpoints import ALLOW_ENV, ENV, FAILPOINTS, FailpointError, parse_names
from workloads.node_processes import SignalledNodes
from workloads.raftkv_clients import array_clients

PEER_PORT = 7000
CLIENT_PORT = 8000
REPO_ROOT = str(Path(__file__).resolve().parent.parent)
DEFAULT_TICK_MS = 25
DEFAULT_ELECTION_TICKS = 10
# Snapshots are code paths too: with raftkv's default (10,000 entries) a 60 s run never takes one, so a bug in
# snapshotting, compaction or InstallSnapshot could never show. 200 entries is a few seconds of a run.
DEFAULT_SNAPSHOT_ENTRIES = 200
STATUS_TIMEOUT_S = 1.0
DIGEST_TIMEOUT_S = 5.0
# The recovery bound (recovery_bound_s): docs/lab.md gives the measured recovery times it is set against.
RECOVERY_ELECTIONS = 4
RECONNECT_S = 2.0
RESTART_S = 3.0


class RaftkvDBError(RuntimeError):
    """The node could not be started or inspected (the message names the node and the cause)."""


def client_address(test: TestContext, node: str) -> str:
    """The HOST:PORT of a node's client API."""
    return f"{test.host(node).address}:{CLIENT_PORT}"


def peer_address(test: TestContext, node: str) -> str:
    return f"{test.host(node).address}:{PEER_PORT}"


def failpoint_list(text: str) -> str:
    """The --raftkv-failpoints value, checked against raftkv's registry (argparse turns the error into exit 254);
    returned normalized (sorted, comma-separated) as it is recorded in test.json."""
    try:
        return ",".join(sorted(parse_names(text, where="--raftkv-failpoints")))
    except FailpointError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


METRIC_PANELS = (
    MetricPanel(title="Term", metrics=("raftkv_term",)),
    MetricPanel(title="Commit and applied index", metrics=("raftkv_commit_index", "raftkv_applied_index")),
    MetricPanel(title="WAL append latency (write + fsync), mean per scrape", metrics=("raftkv_wal_append_seconds",),
                show="mean", unit="ms", scale=1000.0),
    MetricPanel(title="WAL fsync latency, p99 per scrape", metrics=("raftkv_wal_fsync_seconds",), show="p99",
                unit="ms", scale=1000.0),
    MetricPanel(title="Client requests by outcome", metrics=("raftkv_requests_total",), show="rate",
                by=("outcome",), unit="req/s"),
)


class RaftkvDB(SignalledNodes):
    """One per run. `options` may carry raftkv_tick_ms, raftkv_election_ticks, raftkv_lease and
    raftkv_failpoints (a comma-separated list of failpoint names). Process: workloads.node_processes."""

    process_error = RaftkvDBError

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        options = options or {}
        self.tick_ms = int(options.get("raftkv_tick_ms") or DEFAULT_TICK_MS)
        self.election_ticks = int(options.get("raftkv_election_ticks") or DEFAULT_ELECTION_TICKS)
        if self.tick_ms < 1 or self.election_ticks < 2:
            raise ValueError(f"raftkv tick {self.tick_ms} ms / election ticks {self.election_ticks}: need >= 1 / >= 2")
        self.lease = bool(options.get("raftkv_lease"))
        self.snapshot_entries = int(options.get("raftkv_snapshot_entries") or DEFAULT_SNAPSHOT_ENTRIES)
        # The run's cluster secret: the nodes authenticate each other with it (raftkv --peer-secret-file). Fresh
        # from the OS per run, never from the seed: a seed is printed and stored, a secret is not.
        self.peer_secret = secrets.token_hex(32)
        self.failpoints = failpoint_list(str(options.get("raftkv_failpoints") or ""))
        self._start_locks: dict[str, asyncio.Lock] = {}
        # One keep-alive client per node for the status polls (the monitor asks every node twice a second): a new
        # HTTP session per poll cost more than the poll. Kept with the loop it was made on, which it is bound to.
        self._status_clients: dict[str, tuple[asyncio.AbstractEventLoop, KVClient]] = {}

    def election_timeout_s(self) -> float:
        """The worst-case election timeout (harness.protocols.Timing): a node waits a random 1x to 2x
        election_ticks ticks before it campaigns."""
        return self.tick_ms * self.election_ticks * 2 / 1000

    def recovery_bound_s(self) -> float:
        """How soon after a heal a correct cluster serves again (harness.protocols.RecoveryBound): a few election
        timeouts (a split vote or two), the peer transport's redial back-off plus TCP's retransmission back-off
        (each capped at 1 s), and the start of a killed node's process on a loaded machine."""
        return RECOVERY_ELECTIONS * self.election_timeout_s() + RECONNECT_S + RESTART_S

    # -- paths ------------------------------------------------------------------------------------------------

    def data_dir(self, test: TestContext, node: str) -> str:
        return f"{test.backend.data_dir(node)}/raftkv"

    def log_file(self, test: TestContext, node: str) -> str:
        return f"{test.backend.log_dir(node)}/raftkv.log"

    def stdout_file(self, test: TestContext, node: str) -> str:
        return f"{test.backend.log_dir(node)}/stdout.log"

    def config_file(self, test: TestContext, node: str) -> str:
        return f"{test.backend.data_dir(node)}/raftkv.json"

    def secret_file(self, test: TestContext, node: str) -> str:
        return f"{test.backend.data_dir(node)}/peer-secret"

    def config(self, test: TestContext, node: str) -> dict[str, Any]:
        """The node's configuration (`raftkv serve --config` keys): addresses, directories, election settings and
        a seed of its own for the election-timeout randomness (drawn from the run's seed)."""
        return {"id": node, "listen": peer_address(test, node), "client": client_address(test, node),
                "peers": {n: peer_address(test, n) for n in test.nodes},
                "data_dir": self.data_dir(test, node), "log_file": self.log_file(test, node),
                "tick_ms": self.tick_ms, "election_ticks": self.election_ticks, "heartbeat_ticks": 1,
                "lease": self.lease, "peer_secret_file": self.secret_file(test, node),
                "snapshot_entries": self.snapshot_entries,
                "seed": test.rng(f"db.raftkv.{node}").getrandbits(32)}

    def command(self, test: TestContext, node: str) -> list[str]:
        """The node's argv: the host's python for this project (harness.install.runtime_for)."""
        return [runtime_for(test.host(node)).python, "-m", "raftkv", "serve", "--config", self.config_file(test, node)]

    # -- lifecycle --------------------------------------------------------------------------------------------

    async def setup(self, test: TestContext, node: str) -> None:
        """Create the node's directories and write its configuration file (through Remote.exec: any backend)."""
        host = test.host(node)
        await host.exec(["mkdir", "-p", self.data_dir(test, node), test.backend.log_dir(node)])
        text = json.dumps(self.config(test, node), indent=2, sort_keys=True) + "\n"
        await host.exec(["sh", "-c", 'cat > "$1"', "sh", self.config_file(test, node)], stdin=text.encode())
        await host.exec(["sh", "-c", 'umask 077 && cat > "$1"', "sh", self.secret_file(test, node)],
                        stdin=self.peer_secret.encode())

    async def start(self, test: TestContext, node: str) -> None:
        # One start at a time per node: two nemeses healing at once (kill restarts every node down, disk restarts
        # the ones its faults stopped) must not both spawn it and race for its ports.
        async with self._start_locks.setdefault(node, asyncio.Lock()):
            await self._start(test, node)

    async def _start(self, test: TestContext, node: str) -> None:
        if await self.is_running(test, node):
            return
        runtime = runtime_for(test.host(node))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8",
               **runtime.env, **test.daemon_env.get(node, {})}  # what nemeses need (e.g. a clock shim)
        if self.failpoints:  # planted bugs: the node takes them only with the explicit allow
            env |= {ENV: self.failpoints, ALLOW_ENV: "1"}
        self.pids[node] = await test.host(node).spawn(self.command(test, node), log_path=self.stdout_file(test, node),
                                                      env=env, cwd=runtime.cwd)

    async def teardown(self, test: TestContext, node: str) -> None:
        held = self._status_clients.pop(node, None)
        if held is not None:
            await held[1].close()
        await self.stop_process(test, node)
        with contextlib.suppress(RemoteError):  # the host may already be gone; its data dir then went with it
            await test.host(node).exec(["rm", "-rf", self.data_dir(test, node)])

    def log_files(self, test: TestContext, node: str) -> list[str]:
        return [self.log_file(test, node), self.stdout_file(test, node), self.config_file(test, node)]

    # -- inspection -------------------------------------------------------------------------------------------

    async def _get(self, test: TestContext, node: str, path: str, timeout: float = STATUS_TIMEOUT_S) -> Any:
        url = f"http://{client_address(test, node)}{path}"
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        try:
            async with aiohttp.ClientSession(timeout=client_timeout) as session, session.get(url) as resp:
                if resp.status != 200:
                    raise RaftkvDBError(f"{node}: GET {path} answered {resp.status}")
                return await resp.text()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RaftkvDBError(f"{node}: GET {path} failed: {type(exc).__name__}: {exc}") from None

    async def status(self, test: TestContext, node: str) -> dict[str, Any]:
        """GET /status: {"id", "role", "term", "leader", "commit", "applied", ...}; RaftkvDBError when no answer."""
        loop = asyncio.get_running_loop()
        held = self._status_clients.get(node)
        if held is None or held[0] is not loop:
            held = self._status_clients[node] = (loop, KVClient([client_address(test, node)], pool_size=2,
                                                                timeout=STATUS_TIMEOUT_S))
        try:
            status = await held[1].status(timeout=STATUS_TIMEOUT_S)
        except RaftKVError as exc:
            raise RaftkvDBError(f"{node}: GET /status failed: {exc}") from None
        if not isinstance(status, dict):
            raise RaftkvDBError(f"{node}: /status is not a JSON object: {status!r}")
        return status

    async def state_digest(self, test: TestContext, node: str) -> dict[str, Any]:
        """GET /debug/state (harness.protocols.StateDigest): {"id", "term", "role", "commit", "applied",
        "last_index", "last_term", "digest"}; RaftkvDBError when no answer. Computing the digest takes a moment on
        a large state (docs/server.md), hence the longer timeout than a status poll."""
        text = await self._get(test, node, "/debug/state", timeout=DIGEST_TIMEOUT_S)
        try:
            state = json.loads(text)
        except ValueError as exc:
            raise RaftkvDBError(f"{node}: /debug/state is not JSON: {exc}") from None
        if not isinstance(state, dict):
            raise RaftkvDBError(f"{node}: /debug/state is not a JSON object: {state!r}")
        return state

    async def witness(self, test: TestContext, node: str) -> dict[str, Any]:
        """GET /debug/state?digest=0 (harness.protocols.Witness): the node's "leaderships" (every term it led,
        across restarts) and "chain" (its applied log prefix's commitment), without the state digest, which costs
        time on a large state; RaftkvDBError when no answer."""
        text = await self._get(test, node, "/debug/state?digest=0")
        try:
            state = json.loads(text)
        except ValueError as exc:
            raise RaftkvDBError(f"{node}: /debug/state is not JSON: {exc}") from None
        if not isinstance(state, dict):
            raise RaftkvDBError(f"{node}: /debug/state is not a JSON object: {state!r}")
        return state

    async def metrics(self, test: TestContext, node: str) -> str:
        return str(await self._get(test, node, "/metrics"))

    def metrics_target(self, test: TestContext, node: str) -> str:
        """harness.scrape.ScrapeTargets: a node serves /metrics on its client address."""
        return client_address(test, node)

    def metric_panels(self) -> Sequence[MetricPanel]:
        """harness.scrape.MetricPanels: what a --monitor run's report plots (raftkv/server/metrics.py's names)."""
        return METRIC_PANELS

    async def ready(self, test: TestContext) -> bool:
        """harness.protocols.Ready: every node answers its status and all name the same leader (the cluster has
        elected one and everyone knows it)."""
        async def ask(node: str) -> dict[str, Any]:
            try:
                return await self.status(test, node)
            except RaftkvDBError as exc:
                return {"error": str(exc)}

        statuses = await asyncio.gather(*(ask(n) for n in test.nodes))
        return one_leader_named(dict(zip(test.nodes, statuses, strict=True))) is not None

    async def leader(self, test: TestContext) -> str | None:
        """The node that says it leads in the highest term any node reports, or None (no answer names one)."""
        async def ask(node: str) -> dict[str, Any] | None:
            try:
                return await self.status(test, node)
            except RaftkvDBError:
                return None

        async with asyncio.TaskGroup() as tg:
            asks = {node: tg.create_task(ask(node)) for node in test.nodes}
        leaders = [(int(s.get("term", 0)), node) for node, task in asks.items()
                   if (s := task.result()) is not None and s.get("role") == "leader"]
        return max(leaders)[1] if leaders else None


class RaftkvFailpoints:
    """raftkv's planted bugs as the lab's FailpointCatalog (harness.detection): the registry of raftkv/failpoints.py,
    each with the simulator's recorded first failing seed (raftkv/sim/failpoint_seeds.json, written by
    bench/sim_failpoints.py --record), switched on through --raftkv-failpoints."""

    SEEDS = Path(__file__).resolve().parent.parent / "raftkv" / "sim" / "failpoint_seeds.json"

    def planted_bugs(self) -> tuple[PlantedBug, ...]:
        try:
            seeds = json.loads(self.SEEDS.read_text())
        except (OSError, ValueError):
            seeds = {}
        return tuple(PlantedBug(name=fp.name, layer=fp.layer, mimics=fp.mimics,
                                shows_as="liveness" if fp.shows.startswith("liveness") else "safety",
                                sim_seed=(seeds.get(fp.name) or {}).get("seed"),
                                sim_finding=(seeds.get(fp.name) or {}).get("invariant"))
                     for fp in FAILPOINTS.values())

    def options_for(self, names: Sequence[str]) -> dict[str, Any]:
        return {"raftkv_failpoints": failpoint_list(",".join(names))}


def register_client(options: Mapping[str, Any]) -> Any:
    """The register workload's raftkv client (workloads.raftkv_register), imported on use: that module imports
    this one for the client addresses."""
    from workloads.raftkv_register import RegisterClient

    return RegisterClient(options)


RAFTKV = DBSpec(
    name="raftkv", factory=RaftkvDB, failpoints=RaftkvFailpoints(),
    clients={**array_clients(client_address), "register": register_client},
    refuses={"read_consistency": {"serializable": "raftkv's local read is --read-consistency stale"}},
    description="raftkv nodes started as `python -m raftkv serve` on each host",
    options=(Option(flag="--raftkv-tick-ms", type=int_in(1, 10_000), default=DEFAULT_TICK_MS,
                    help=f"raftkv tick length in ms (default {DEFAULT_TICK_MS})"),
             Option(flag="--raftkv-election-ticks", type=int_in(2, 10_000), default=DEFAULT_ELECTION_TICKS,
                    help=f"raftkv election timeout in ticks (default {DEFAULT_ELECTION_TICKS}; randomized up to 2x)"),
             Option(flag="--raftkv-snapshot-entries", type=int_in(1, 10_000_000), default=DEFAULT_SNAPSHOT_ENTRIES,
                    help="a node snapshots and compacts its log after this many applied entries (default "
                         f"{DEFAULT_SNAPSHOT_ENTRIES}: every few seconds of a run, so snapshots, compaction and "
                         "InstallSnapshot to a lagging node happen in every run; raftkv's own default is 10000)"),
             Option(flag="--raftkv-lease", action="store_true", type=None, default=False,
                    help="start the nodes with leader leases (for --read-consistency lease)"),
             Option(flag="--raftkv-failpoints", type=failpoint_list, default="",
                    help="plant these bugs in every node (comma-separated failpoint names, docs/failpoints.md; "
                         "test labs only)")),
)
