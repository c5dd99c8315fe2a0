"""The etcd DB adapter (`--db etcd`): one etcd member per lab host, Debian's etcd-server (v3.4, /usr/bin/etcd).

On each host (any backend, everything through Remote):
- data in `<backend data dir>/etcd`, the member's log (etcd logs to stderr, zap JSON lines) in
  `<backend log dir>/etcd.log`, its argv in `<backend data dir>/etcd.args` (collected with the log);
- it listens for peers on `<host address>:PEER_PORT` and for clients (gRPC and the v3 HTTP/JSON gateway) on
  `<host address>:CLIENT_PORT`;
- the cluster is static: every member is started with the whole `--initial-cluster` and a token fresh per run,
  `--initial-cluster-state new`; a killed member restarts on its data dir (etcd ignores the initial flags then).
Processes are spawned, SIGKILLed, SIGSTOPped and SIGCONTed through the backend exactly as raftkv's nodes are.

Inspection uses etcd's own API: `status` is GET /debug/vars' "raft.status" (the member's raft state, term, committed
and applied index and the ID of the leader it knows; see `status` for why not /v3/maintenance/status), the leader's
ID named through /v3/cluster/member/list;
`metrics` is GET /metrics. Readiness is the engine's: every member answers and all name one leader.

Election timing: `--etcd-election-ms` (default 1000, etcd's own) with a heartbeat a tenth of it. etcd randomizes a
follower's timeout in [e, 2e), so the worst case is 2e.

What etcd cannot be put through here is declared in ETCD.refuses (checked before any host exists, exit 254) with
the measured reason (docs/etcd.md): the clock nemesis (Go reads the clock through the vDSO, not libc's
clock_gettime, so the LD_PRELOAD shim never reaches it), the disk nemesis (bbolt mmaps its file, which the FUSE
layer cannot map) and the lab's local-read modes that are raftkv's.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Mapping
from typing import Any

import aiohttp

from harness.protocols import Remote, RemoteError, TestContext
from harness.registry import DBSpec, Option, int_in
from harness.scrape import MetricPanel
from workloads.etcd_api import Gateway, GatewayError, as_int
from workloads.etcd_clients import etcd_clients
from workloads.node_processes import SignalledNodes

ETCD = "/usr/bin/etcd"
ETCD_PACKAGE = "etcd-server"  # Debian's package of the etcd binary
PEER_PORT = 2380
CLIENT_PORT = 2379
DEFAULT_ELECTION_MS = 1000
STATUS_TIMEOUT_S = 1.0
RECOVERY_ELECTIONS = 4
RECONNECT_S = 2.0
RESTART_S = 3.0


# What a --monitor run's report plots (etcd 3.4's own metric names, from its /metrics).
METRIC_PANELS = (
    MetricPanel(title="Leader changes seen", metrics=("etcd_server_leader_changes_seen_total",)),
    MetricPanel(title="Proposals committed and applied", show="rate", unit="/s",
                metrics=("etcd_server_proposals_committed_total", "etcd_server_proposals_applied_total")),
    MetricPanel(title="Proposals failed", metrics=("etcd_server_proposals_failed_total",), show="rate", unit="/s"),
    MetricPanel(title="WAL fsync latency, p99 per scrape", metrics=("etcd_disk_wal_fsync_duration_seconds",),
                show="p99", unit="ms", scale=1000.0),
    MetricPanel(title="Backend commit latency, p99 per scrape",
                metrics=("etcd_disk_backend_commit_duration_seconds",), show="p99", unit="ms", scale=1000.0),
)


class EtcdDBError(RuntimeError):
    """A member could not be started or inspected (the message names the node and the cause)."""


def client_address(test: TestContext, node: str) -> str:
    """The HOST:PORT of a member's client URL (gRPC and the JSON gateway)."""
    return f"{test.host(node).address}:{CLIENT_PORT}"


def peer_url(test: TestContext, node: str) -> str:
    return f"http://{test.host(node).address}:{PEER_PORT}"


INSTALL_TIMEOUT_S = 600.0  # apt-get on a slow mirror; a host without any mirror fails at once


async def ensure_etcd(host: Remote, node: str) -> None:
    """etcd's binary on `host`: there already, or installed through the backend with Debian's package (the
    host's own apt sources: a host without a reachable mirror gets EtcdDBError with apt's last words)."""
    if (await host.exec(["test", "-x", ETCD], check=False)).returncode == 0:
        return
    install = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "--no-install-recommends",
               ETCD_PACKAGE]
    done = await host.exec(install, check=False, timeout=INSTALL_TIMEOUT_S)
    if done.returncode != 0 or (await host.exec(["test", "-x", ETCD], check=False)).returncode != 0:
        said = (done.stderr or done.stdout or "").strip().splitlines()[-3:]
        raise EtcdDBError(f"{node}: {ETCD} is missing and `apt-get install {ETCD_PACKAGE}` on the host failed "
                          f"(exit {done.returncode}): {' | '.join(said) or 'no output'}")


class EtcdDB(SignalledNodes):
    """One per run; `options` may carry etcd_election_ms. Process (pids, kill, pause...): as raftkv's,
    workloads.node_processes."""

    process_error = EtcdDBError

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        options = options or {}
        self.election_ms = int(options.get("etcd_election_ms") or DEFAULT_ELECTION_MS)
        self.token = f"lab-{secrets.token_hex(8)}"  # a fresh cluster per run: members of another run never join
        self.member_names: dict[int, str] = {}  # member ID -> node name
        self._start_locks: dict[str, asyncio.Lock] = {}
        self._gateways: dict[str, tuple[asyncio.AbstractEventLoop, Gateway]] = {}

    def election_timeout_s(self) -> float:
        """harness.protocols.Timing: etcd waits up to twice its election timeout before it campaigns."""
        return 2 * self.election_ms / 1000

    def recovery_bound_s(self) -> float:
        """harness.protocols.RecoveryBound: a few elections, a reconnect and a restart (as raftkv's)."""
        return RECOVERY_ELECTIONS * self.election_timeout_s() + RECONNECT_S + RESTART_S

    def data_dir(self, test: TestContext, node: str) -> str:
        return f"{test.backend.data_dir(node)}/etcd"

    def log_file(self, test: TestContext, node: str) -> str:
        return f"{test.backend.log_dir(node)}/etcd.log"

    def args_file(self, test: TestContext, node: str) -> str:
        return f"{test.backend.data_dir(node)}/etcd.args"

    def command(self, test: TestContext, node: str) -> list[str]:
        """The member's argv: static cluster of every node, this run's token, the run's election timing."""
        client = f"http://{client_address(test, node)}"
        cluster = ",".join(f"{n}={peer_url(test, n)}" for n in test.nodes)
        return [ETCD, "--name", node, "--data-dir", self.data_dir(test, node),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer_url(test, node), "--initial-advertise-peer-urls", peer_url(test, node),
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", self.token, "--logger", "zap", "--log-outputs", "stderr",
                "--heartbeat-interval", str(max(10, self.election_ms // 10)),
                "--election-timeout", str(self.election_ms)]

    async def setup(self, test: TestContext, node: str) -> None:
        """Install etcd where it is missing, create the directories, record the argv (nothing starts)."""
        host = test.host(node)
        await ensure_etcd(host, node)
        await host.exec(["mkdir", "-p", self.data_dir(test, node), test.backend.log_dir(node)])
        text = " ".join(self.command(test, node)) + "\n"
        await host.exec(["sh", "-c", 'cat > "$1"', "sh", self.args_file(test, node)], stdin=text.encode())

    async def start(self, test: TestContext, node: str) -> None:
        """Spawn the member unless it runs (one start at a time per node: two heals must not both spawn it)."""
        async with self._start_locks.setdefault(node, asyncio.Lock()):
            if await self.is_running(test, node):
                return
            env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **test.daemon_env.get(node, {})}
            self.pids[node] = await test.host(node).spawn(self.command(test, node), env=env,
                                                          log_path=self.log_file(test, node))

    async def teardown(self, test: TestContext, node: str) -> None:
        """Close the status session, stop the member (a stopped one is continued first), remove its data."""
        held = self._gateways.pop(node, None)
        if held is not None:
            await held[1].close()
        await self.stop_process(test, node)
        with contextlib.suppress(RemoteError):  # the host may already be gone; its data dir went with it
            await test.host(node).exec(["rm", "-rf", self.data_dir(test, node)])

    def log_files(self, test: TestContext, node: str) -> list[str]:
        return [self.log_file(test, node), self.args_file(test, node)]

    def _gateway(self, test: TestContext, node: str) -> Gateway:
        """The node's keep-alive gateway for status polls (bound to the loop it was made on)."""
        loop = asyncio.get_running_loop()
        held = self._gateways.get(node)
        if held is None or held[0] is not loop:
            held = self._gateways[node] = (loop, Gateway(client_address(test, node), STATUS_TIMEOUT_S))
        return held[1]

    async def status(self, test: TestContext, node: str) -> dict[str, Any]:
        """The member's raft view: {"id", "role" ("leader", "follower", "candidate", ...), "term", "leader" (a node
        name or None), "commit", "applied"}; EtcdDBError when it does not answer.

        From GET /debug/vars' "raft.status", raft's own snapshot of one moment. Not /v3/maintenance/status: its
        raftTerm is the term of the last *applied* entry, read apart from its leader field, so a new leader that has
        not applied an entry of its term yet reports the old term as its own (measured: two "leaders" of one term
        in a set run, which the election-safety oracle rightly flagged)."""
        try:
            raft = (await self._gateway(test, node).call("/debug/vars", None)).get("raft.status")
            if not isinstance(raft, dict):
                raise GatewayError("bad-answer: no raft.status", definite=False)
            me, lead = _member_id(raft.get("id")), _member_id(raft.get("lead"))
            self.member_names[me] = node
            if lead and lead not in self.member_names:
                await self._learn_members(self._gateway(test, node))
            state = str(raft.get("raftState", ""))
            return {"id": node, "role": state.removeprefix("State").lower(), "term": as_int(raft.get("term"), "term"),
                    "leader": self.member_names.get(lead) if lead else None,
                    "commit": as_int(raft.get("commit"), "commit"), "applied": as_int(raft.get("applied"), "applied"),
                    "member_id": format(me, "x")}
        except GatewayError as exc:
            raise EtcdDBError(f"{node}: GET /debug/vars failed: {exc.code}") from None

    async def _learn_members(self, gw: Gateway) -> None:
        """Name every member ID from /v3/cluster/member/list (a member's name is its node's)."""
        members = (await gw.call("/v3/cluster/member/list", {})).get("members") or []
        for member in members:
            if isinstance(member, dict) and member.get("name"):
                self.member_names[as_int(member.get("ID"), "ID")] = str(member["name"])

    async def metrics(self, test: TestContext, node: str) -> str:
        """GET /metrics (etcd's Prometheus exposition); EtcdDBError when it does not answer."""
        url = f"http://{client_address(test, node)}/metrics"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0)) as session, \
                    session.get(url) as resp:
                if resp.status != 200:
                    raise EtcdDBError(f"{node}: GET /metrics answered {resp.status}")
                return await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EtcdDBError(f"{node}: GET /metrics failed: {type(exc).__name__}: {exc}") from None

    def metrics_target(self, test: TestContext, node: str) -> str:
        """harness.scrape.ScrapeTargets: a member serves /metrics on its client address."""
        return client_address(test, node)

    def metric_panels(self) -> tuple[MetricPanel, ...]:
        """harness.scrape.MetricPanels: what a --monitor run's report plots."""
        return METRIC_PANELS

    async def leader(self, test: TestContext) -> str | None:
        """The member that says it leads in the highest term any member reports, or None."""
        async def ask(node: str) -> dict[str, Any] | None:
            try:
                return await self.status(test, node)
            except EtcdDBError:
                return None

        statuses = await asyncio.gather(*(ask(n) for n in test.nodes))
        leaders = [(s["term"], n) for n, s in zip(test.nodes, statuses, strict=True)
                   if s is not None and s["role"] == "leader"]
        return max(leaders)[1] if leaders else None


def _member_id(text: Any) -> int:
    """A member ID as raft.status writes it (hex), 0 for none; GatewayError when it is not hex."""
    try:
        return int(str(text or "0"), 16)
    except ValueError:
        raise GatewayError(f"bad-answer: member id {text!r}", definite=False) from None


# Measured here (docs/etcd.md): under the shim with a +3600 s offset, `date` read 07:30 while etcd 3.4.23's own
# log timestamps stayed at true time (06:30): Go's runtime reads the clock through the vDSO, never libc's
# clock_gettime, so the clock nemesis would skew nothing and a run would pass for the wrong reason.
CLOCK_REASON = ("the clock nemesis skews a daemon's clock through an LD_PRELOAD shim of libc's clock_gettime; etcd "
                "(Go) reads the clock through the vDSO and bypasses it (measured: etcd's log timestamps stayed at "
                "true time under a +3600 s offset, docs/etcd.md)")

# Measured here: with the disk nemesis' FUSE layer mounted over the data dir, every member panicked at start with
# "failed to open database ... member/snap/db: no such device" (bbolt mmaps its file; the layer cannot map it).
DISK_REASON = ("etcd's storage (bbolt) mmaps its database file, which the disk nemesis' FUSE layer cannot map (measured: "
               "every member panicked at start, 'failed to open database: no such device', docs/etcd.md)")

ETCD_SPEC = DBSpec(
    name="etcd", factory=EtcdDB, clients=etcd_clients(client_address),
    description="etcd members (Debian's etcd-server, v3.4) started on each host, clients over the v3 JSON gateway",
    refuses={"nemesis": {"clock": CLOCK_REASON, "disk": DISK_REASON},
             "read_consistency": {"lease": "etcd has no lease reads to ask for (its reads are linearizable or "
                                           "serializable)",
                                  "stale": "etcd's local read is --read-consistency serializable"}},
    options=(Option(flag="--etcd-election-ms", type=int_in(10, 60_000), default=DEFAULT_ELECTION_MS,
                    help=f"etcd --election-timeout in ms (default {DEFAULT_ELECTION_MS}; heartbeat a tenth)"),),
)
