"""The packet nemesis: a slow or lossy network between the nodes, without cutting it (Jepsen's packet nemesis).

There is no netem on these machines (FAULTS.md), so each behaviour is built from what works here:
- `delay`: every packet a target host receives from a peer is held `--packet-delay-ms` (default 50) plus or minus
  a uniform `--packet-jitter-ms` (default 10; jitter reorders packets) before it is let through. An NFQUEUE rule
  (with `--queue-bypass`) hands the packets to a `nemesis.nfqueue` daemon started on that host for the fault.
- `loss`: each such packet is dropped with probability `--packet-loss` (default 0.2): an iptables `statistic` rule.
- `delay+loss`: both (a dropped packet is not delayed).
Each start picks one of `--packet-behaviours` (default all three) and one target spec of `--packet-targets`
(nemesis.targets: one, leader, minority, majority, all; default all of them): the hosts whose inbound traffic from
the other nodes is degraded. The controller's own traffic is never touched, as with partitions: clients see the
cluster slow down, not their own requests.

Rules live in the mangle table, in one chain of the lab's own per host, `<prefix>-packet`, jumped to from the top of
PREROUTING (nemesis.iptables). That runs before the partition chain (filter/INPUT), and an ACCEPT verdict of the
queue only ends the mangle table's say, so a delayed packet still meets the partition rules: the two compose.

Life of a fault on one host: start the daemon (if delaying) and wait until it has bound its queue, then replace the
chain's rules atomically. Stop: remove the chain (verified by reading the rules back), then SIGTERM the daemon,
which lets through every packet it still holds before it exits (SIGKILL after DAEMON_STOP_TIMEOUT_S). The daemons
are spawned through the backend, so its teardown and `harness clean` kill any that a killed run left behind.

Nemesis ops (docs/history.md):
- invoke `start` value `{"fault": "packet"}`, optionally with `"behaviour"` and `"target"` (else drawn), or
  `"targets": [nodes]`. Completion `{"fault", "behaviour", "target", "targets"}` plus `"delay_ms"`, `"jitter_ms"`
  and/or `"loss"`; a start while a packet fault is active first ends it (one fault of this kind at a time); spec
  "leader" with no leader known completes with `"skipped": "no leader"` (`"no leader capability"` for a DB
  without Primaries).
- invoke `stop`: completion `{"fault": "packet", "targets": [hosts healed], "verified": bool}`.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.install import runtime_for
from harness.protocols import Op, Remote, RemoteError, TestContext
from nemesis.iptables import ChainError, OwnedChain
from nemesis.leader import no_leader_reason
from nemesis.targets import LEADER_SPECS, TARGET_SPECS, choose_targets

BEHAVIOURS = ("delay", "loss", "delay+loss")
DEFAULT_TARGETS = TARGET_SPECS
DEFAULT_DELAY_MS = 50.0
DEFAULT_JITTER_MS = 10.0
DEFAULT_LOSS = 0.2
DEFAULT_QUEUE = 7777
REPO_ROOT = str(Path(__file__).resolve().parent.parent)
DAEMON_READY_TIMEOUT_S = 10.0
DAEMON_STOP_TIMEOUT_S = 5.0
# A daemon exits by itself after this long even if nobody stops it (every fault loop is bounded).
DAEMON_MAX_SECONDS = 6 * 3600


class PacketError(RuntimeError):
    """A host could not be degraded or restored (the message names the host and the cause)."""


def packet_chain(prefix: str) -> OwnedChain:
    """The packet rules' chain: mangle table, jumped to from the top of PREROUTING."""
    return OwnedChain("mangle", "PREROUTING", f"{prefix}-packet")


def rules_for(peers: Sequence[str], behaviour: str, *, loss: float, queue: int) -> list[str]:
    """The chain's rules on one host for its peers' addresses: per peer, the loss rule, then the queue rule."""
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"packet behaviour {behaviour!r}; known: {', '.join(BEHAVIOURS)}")
    rules = []
    for address in peers:
        if "loss" in behaviour:
            rules.append(f"-s {address}/32 -m statistic --mode random --probability {loss:.6f} -j DROP")
        if "delay" in behaviour:
            rules.append(f"-s {address}/32 -j NFQUEUE --queue-num {queue} --queue-bypass")
    return rules


class PacketNemesis:
    """Delay and loss of the nodes' inbound peer traffic. One instance per run; `rng` draws behaviours, targets
    and the daemons' jitter seeds."""

    def __init__(self, rng: random.Random, *, behaviours: Sequence[str] = BEHAVIOURS,
                 targets: Sequence[str] = DEFAULT_TARGETS, delay_ms: float = DEFAULT_DELAY_MS,
                 jitter_ms: float = DEFAULT_JITTER_MS, loss: float = DEFAULT_LOSS, queue: int = DEFAULT_QUEUE,
                 prefix: str | None = None) -> None:
        bad_b = [b for b in behaviours if b not in BEHAVIOURS]
        bad_t = [t for t in targets if t not in TARGET_SPECS]
        if bad_b or not behaviours or bad_t or not targets:
            raise ValueError(f"packet behaviours {list(behaviours)!r} (known {BEHAVIOURS}), targets {list(targets)!r} "
                             f"(known {TARGET_SPECS})")
        if delay_ms < 0 or jitter_ms < 0 or not 0 < loss <= 1 or not 0 <= queue <= 65535:
            raise ValueError(f"packet delay {delay_ms} ms, jitter {jitter_ms} ms, loss {loss}, queue {queue}: need "
                             f"delay >= 0, jitter >= 0, 0 < loss <= 1, queue 0..65535")
        self.behaviours = tuple(behaviours)
        self.specs = tuple(targets)
        self.delay_ms, self.jitter_ms, self.loss, self.queue = delay_ms, jitter_ms, loss, queue
        self._rng = rng
        self._prefix = prefix
        self.chain = packet_chain(prefix) if prefix else packet_chain("unset")
        self._installed: set[str] = set()  # hosts whose PREROUTING may jump to our chain
        self._daemons: dict[str, int] = {}  # host -> pid of its nfqueue daemon
        self._logged: set[str] = set()  # hosts where a daemon wrote a log this run

    def faults(self) -> set[str]:
        return {"packet"}

    async def setup(self, test: TestContext) -> None:
        self.chain = packet_chain(self._prefix or test.backend.prefix)
        problems = []
        for host in test.hosts:
            try:
                result = await host.exec(["iptables", "-t", "mangle", "-L", "PREROUTING", "-n"], check=False)
            except RemoteError as exc:
                problems.append(f"{host.name} cannot be reached ({exc})")
                continue
            if result.returncode != 0:
                problems.append(f"iptables (mangle table) is not usable on {host.name}: {result.stderr.strip()} "
                                f"(Debian: apt-get install iptables)")
        if problems:
            raise PacketError("; ".join(problems))

    async def invoke(self, test: TestContext, op: Op) -> Op:
        value = dict(op.value or {})
        if op.f == "start":
            if self._installed or self._daemons:
                await self._restore(test)
            done = await self._start(test, value)
        elif op.f == "stop":
            healed = sorted(self._installed | set(self._daemons))
            result = await self.heal(test)
            done = {"fault": "packet", "targets": healed, "verified": result["ok"]}
            if not result["ok"]:
                done["details"] = result["details"]
        else:
            raise ValueError(f"packet nemesis: unknown f {op.f!r} (expected start or stop)")
        return Op(process=op.process, type="info", f=op.f, value=done, node=",".join(done.get("targets", [])) or None)

    async def _start(self, test: TestContext, value: dict[str, Any]) -> dict[str, Any]:
        behaviour = value.get("behaviour") or self._rng.choice(self.behaviours)
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"packet nemesis: unknown behaviour {behaviour!r}; known: {', '.join(BEHAVIOURS)}")
        spec, chosen = await choose_targets("packet", test, value, self.specs, self._rng)
        if spec in LEADER_SPECS and not chosen:
            return {"fault": "packet", "behaviour": behaviour, "target": spec, "targets": [],
                    "skipped": no_leader_reason(test)}
        addresses = {h.name: h.address for h in test.hosts}
        seeds = {node: self._rng.getrandbits(32) for node in chosen}
        async with asyncio.TaskGroup() as tg:
            for node in chosen:
                peers = [addresses[n] for n in test.nodes if n != node]
                tg.create_task(self._degrade(test, test.host(node), peers, behaviour, seeds[node]))
        done: dict[str, Any] = {"fault": "packet", "behaviour": behaviour, "target": spec, "targets": list(chosen)}
        if "delay" in behaviour:
            done.update(delay_ms=self.delay_ms, jitter_ms=self.jitter_ms)
        if "loss" in behaviour:
            done["loss"] = self.loss
        return done

    async def _degrade(self, test: TestContext, host: Remote, peers: list[str], behaviour: str, seed: int) -> None:
        if "delay" in behaviour:
            await self._start_daemon(test, host, seed)
        add_jump = host.name not in self._installed
        self._installed.add(host.name)  # before the call: a cancelled start must still be healed
        try:
            await self.chain.apply(host, rules_for(peers, behaviour, loss=self.loss, queue=self.queue),
                                   add_jump=add_jump)
        except ChainError as exc:
            raise PacketError(str(exc)) from None

    def _log_path(self, test: TestContext, host: str) -> str:
        return f"{test.backend.log_dir(host)}/nfqueue.log"

    def log_files(self, test: TestContext, node: str) -> list[str]:
        """The packet-delay daemons' log on that host (every daemon of the run appends to it)."""
        return [self._log_path(test, node)] if node in self._logged else []

    async def _start_daemon(self, test: TestContext, host: Remote, seed: int) -> None:
        log_path = self._log_path(test, host.name)
        runtime = runtime_for(host)  # the controller's checkout on netns hosts, the host's own install over ssh
        argv = [runtime.python, "-m", "nemesis.nfqueue", "--queue", str(self.queue),
                "--delay-ms", f"{self.delay_ms:g}", "--jitter-ms", f"{self.jitter_ms:g}", "--seed", str(seed),
                "--max-seconds", str(DAEMON_MAX_SECONDS)]
        await host.exec(["mkdir", "-p", test.backend.log_dir(host.name)])
        pid = await host.spawn(argv, log_path=log_path, env={**runtime.env, "PYTHONUNBUFFERED": "1"},
                               cwd=runtime.cwd)
        self._daemons[host.name] = pid
        self._logged.add(host.name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DAEMON_READY_TIMEOUT_S
        while True:  # the daemon says when its queue is bound; its log is the only channel there is
            text = (await host.exec(["cat", log_path], check=False)).stdout
            if f"ready queue {self.queue} seed {seed} " in text:  # this daemon's line (the log is appended to)
                return
            if not await host.alive(pid) or loop.time() >= deadline:
                raise PacketError(f"{host.name}: the packet-delay daemon did not start: {text.strip()[-300:]!r}")
            await asyncio.sleep(0.02)

    async def _stop_daemon(self, host: Remote, pid: int) -> bool:
        """SIGTERM (the daemon lets its held packets through), SIGKILL if it lingers; True when it is gone."""
        if not await host.signal(pid, signal.SIGTERM):
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DAEMON_STOP_TIMEOUT_S
        while await host.alive(pid):
            if loop.time() >= deadline:
                await host.signal(pid, signal.SIGKILL)
                return not await host.alive(pid)
            await asyncio.sleep(0.02)  # polling the process table: there is no event to await
        return True

    async def _restore(self, test: TestContext) -> dict[str, Any]:
        """Remove the chain on every host we touched, then stop every daemon; per-host details."""
        details: dict[str, Any] = {}
        hosts = {h.name: h for h in test.hosts}

        async def one(name: str) -> None:
            host = hosts.get(name)
            if host is None:
                details[name] = "error: no such host"
                return
            entry: dict[str, Any] = {}
            try:
                entry["rules"] = await self.chain.remove(host)
            except (RemoteError, OSError, TimeoutError) as exc:
                entry["rules"] = f"error: {exc}"
            pid = self._daemons.get(name)
            if pid is not None:
                try:
                    gone = await self._stop_daemon(host, pid)
                except (RemoteError, OSError) as exc:
                    gone = False
                    entry["daemon_error"] = str(exc)
                entry["daemon_stopped"] = gone
                if gone:
                    self._daemons.pop(name, None)
            details[name] = entry

        async with asyncio.TaskGroup() as tg:
            for name in sorted(self._installed | set(self._daemons) | set(hosts)):
                tg.create_task(one(name))
        return details

    async def heal(self, test: TestContext) -> dict[str, Any]:
        """Remove the rules on every host and stop every daemon, verified: {"ok", "details": {"chain", "hosts"}}
        with, per host, the rules still naming our chain (empty when clean) and whether its daemon stopped."""
        details = await self._restore(test)
        ok = all(isinstance(e, dict) and e.get("rules") == [] and e.get("daemon_stopped", True)
                 for e in details.values())
        if ok:
            self._installed.clear()
        return {"ok": ok, "details": {"chain": f"{self.chain.table}/{self.chain.chain}", "hosts": details}}

    async def teardown(self, test: TestContext) -> None:
        await self.heal(test)
