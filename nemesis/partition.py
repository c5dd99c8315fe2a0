"""The partition nemesis: turns a grudge (nemesis.grudge) into iptables rules on the hosts, and removes them.

Rules live in one chain of the lab's own in each host's filter table, `<prefix>-partition`, jumped to from the top
of INPUT: a host that holds a grudge against a peer drops every packet whose source is the peer's address. The
controller's address is never a peer's, so the controller keeps reaching every node (as a Jepsen control node does).
Everything goes through `Remote.exec`, so it works on any backend whose hosts have iptables.

Life of the rules on one host:
- start: one `iptables-restore --noflush` call declares the chain (which empties it if it exists), adds the jump
  the first time, and adds the DROP rules: the host's new grudge replaces its old one atomically.
- stop / heal / teardown: the jump, the rules and the chain are removed, then `iptables -S` is read back to verify
  that no rule naming the chain remains. Only our chain is ever flushed; nobody else's rules are touched.

Nemesis ops (docs/history.md):
- invoke `start` value `{"fault": "partition", "shape": S}` with S one of nemesis.grudge.SHAPES (a random one of
  the configured shapes when absent), or `{"fault": "partition", "grudge": {node: [nodes]}}` for an explicit cut.
  Completion value: `{"fault", "targets", "shape", "grudge"}` plus `"groups"` when the cut is a clean split; targets
  are the nodes cut off from the largest group of a clean split, or else the nodes that drop traffic. Shape "leader" with no leader known completes with
  `"skipped": "no leader"` (`"no leader capability"` for a DB without Primaries) and changes nothing.
- invoke `stop`: completion `{"fault": "partition", "targets": [hosts healed], "verified": bool}`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from harness.protocols import Op, Remote, RemoteError, TestContext
from nemesis import grudge as grudges
from nemesis.iptables import ChainError, OwnedChain
from nemesis.leader import current_leader, no_leader_reason

DEFAULT_SHAPES = ("halves", "one", "leader", "ring", "bridge")


def partition_chain(prefix: str) -> str:
    """The iptables chain (in each host's filter table) that holds the partition rules of a lab with this prefix."""
    return f"{prefix}-partition"


class PartitionError(ChainError):
    """Rules could not be applied or removed on a host (the message names the host and iptables' complaint)."""


def owned_chain(chain: str) -> OwnedChain:
    """The partition rules' chain: in the filter table, jumped to from the top of INPUT."""
    return OwnedChain("filter", "INPUT", chain)


def restore_script(chain: str, sources: Sequence[str], *, add_jump: bool) -> str:
    """The iptables-restore input that makes `chain` hold exactly one DROP rule per source address."""
    return owned_chain(chain).script([f"-s {address}/32 -j DROP" for address in sources], add_jump=add_jump)


def describe_targets(grudge: Mapping[str, Collection[str]], nodes: Sequence[str]) -> list[str]:
    """The nodes a cut isolates. For a clean split into groups (every node drops exactly the nodes outside its group):
    the nodes outside the largest group. For any other shape (bridge, ring, one-way): the nodes that drop traffic."""
    parts = split_groups(grudge, nodes)
    if parts is None:
        return sorted(n for n, dropped in grudge.items() if dropped)
    largest = max(parts, key=len)  # the first of equal size: parts are sorted, so the choice is stable
    return sorted(n for part in parts if part is not largest for n in part)


def split_groups(grudge: Mapping[str, Collection[str]], nodes: Sequence[str]) -> list[list[str]] | None:
    """The groups of a clean split (sorted), or None when the grudge is not one (some node still talks to a node
    that another member of its group cannot reach, as in a bridge or a ring)."""
    parts = grudges.components(grudge, nodes)
    clean = grudges.complete_grudge(parts)
    normalised = {n: frozenset(d) for n, d in grudge.items() if d}
    return parts if clean == normalised else None


class PartitionNemesis:
    """Partitions via per-host iptables chains. One instance per run.

    `rng` draws every shape and every random split (the engine hands each nemesis its own child of the run's seed).
    The chain is named after `prefix`, by default the backend's (`Backend.prefix`), known at `setup`.
    """

    def __init__(self, rng: random.Random, *, shapes: Sequence[str] = DEFAULT_SHAPES, prefix: str | None = None
                 ) -> None:
        unknown = [s for s in shapes if s not in grudges.SHAPES]
        if unknown or not shapes:
            raise ValueError(f"partition shapes {list(shapes)!r}: unknown {unknown!r}; known: {grudges.SHAPES}")
        self.shapes = tuple(shapes)
        self._prefix = prefix
        self.chain = partition_chain(prefix) if prefix else ""
        self._rng = rng
        self._installed: set[str] = set()  # hosts whose INPUT jumps to our chain

    def faults(self) -> set[str]:
        return {"partition"}

    async def setup(self, test: TestContext) -> None:
        self.chain = partition_chain(self._prefix or test.backend.prefix)
        problems = []
        for host in test.hosts:
            try:
                result = await host.exec(["iptables", "--version"], check=False)
            except RemoteError as exc:
                problems.append(f"{host.name} cannot be reached ({exc})")
                continue
            if result.returncode != 0:
                problems.append(f"iptables is missing on {host.name} (Debian: apt-get install iptables)")
        if problems:
            raise PartitionError("; ".join(problems))

    async def invoke(self, test: TestContext, op: Op) -> Op:
        value = dict(op.value or {})
        if op.f == "start":
            done = await self._start(test, value)
        elif op.f == "stop":
            healed = sorted(self._installed)
            result = await self.heal(test)
            done = {"fault": "partition", "targets": healed, "verified": result["ok"]}
            if not result["ok"]:
                done["details"] = result["details"]
        else:
            raise ValueError(f"partition nemesis: unknown f {op.f!r} (expected start or stop)")
        return Op(process=op.process, type="info", f=op.f, value=done, node=",".join(done.get("targets", [])) or None)

    async def _start(self, test: TestContext, value: dict[str, Any]) -> dict[str, Any]:
        nodes = test.nodes
        if "grudge" in value:
            shape = "explicit"
            grudge = grudges.validate(value["grudge"], nodes)
        else:
            shape = value.get("shape") or self._rng.choice(self.shapes)
            leader = None
            if shape == "leader":
                leader = await current_leader(test)
                if leader is None:
                    return {"fault": "partition", "shape": shape, "targets": [], "skipped": no_leader_reason(test)}
            grudge = grudges.build(shape, nodes, self._rng, leader=leader)
        await self.apply(test, grudge)
        done: dict[str, Any] = {"fault": "partition", "shape": shape, "targets": describe_targets(grudge, nodes),
                                "grudge": grudges.to_json(grudge)}
        groups = split_groups(grudge, nodes)
        if groups is not None:
            done["groups"] = groups
        return done

    async def apply(self, test: TestContext, grudge: grudges.Grudge) -> None:
        """Make every host's chain hold exactly its grudge (hosts with no grudge get an empty chain)."""
        addresses = {h.name: h.address for h in test.hosts}
        async with asyncio.TaskGroup() as tg:
            for host in test.hosts:
                dropped = sorted(grudge.get(host.name, ()))
                if dropped or host.name in self._installed:
                    tg.create_task(self._apply_host(host, [addresses[n] for n in dropped]))

    async def _apply_host(self, host: Remote, sources: list[str]) -> None:
        add_jump = host.name not in self._installed
        # Mark before the call: if it is cancelled half-way, heal must still look at this host.
        self._installed.add(host.name)
        try:
            await owned_chain(self.chain).apply(host, [f"-s {a}/32 -j DROP" for a in sources], add_jump=add_jump)
        except ChainError as exc:
            raise PartitionError(str(exc)) from None

    async def heal(self, test: TestContext) -> dict[str, Any]:
        """Remove our chain and its jump on every host, then verify by reading the rules back.

        Returns {"ok": True, "details": {"hosts": {...}}} when no host lists a rule naming our chain; each host's entry
        is the list of leftover rules (empty when clean) or the error that prevented the check."""
        details: dict[str, Any] = {}

        async def one(host: Remote) -> None:
            try:
                details[host.name] = await self._remove_host(host)
            except (RemoteError, OSError, TimeoutError) as exc:
                details[host.name] = f"error: {exc}"

        async with asyncio.TaskGroup() as tg:
            for host in test.hosts:
                tg.create_task(one(host))
        ok = all(isinstance(v, list) and not v for v in details.values())
        if ok:
            self._installed.clear()
        return {"ok": ok, "details": {"chain": self.chain, "hosts": details}}

    async def _remove_host(self, host: Remote) -> list[str]:
        """Remove the jump(s), the rules and the chain on one host; return the rules still naming it (none if ok)."""
        return await owned_chain(self.chain).remove(host)

    async def teardown(self, test: TestContext) -> None:
        await self.heal(test)
