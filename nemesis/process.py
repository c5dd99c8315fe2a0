"""Process faults through the DB's Process capability only: kill -9 then restart (`KillNemesis`), SIGSTOP then SIGCONT
(`PauseNemesis`). The DB adapter owns the PIDs and how to signal them; the nemesis only picks targets and keeps track
of what it did, so that `stop`, `heal` and `teardown` undo exactly that.

Nemesis ops (docs/history.md):
- invoke `start` value `{"fault": "kill" | "pause", "target": SPEC}` with SPEC one of nemesis.targets.TARGET_SPECS
  (a random one of the configured specs when absent), or `"targets": [nodes]` for an explicit choice. Completion
  value `{"fault", "target", "targets"}`; with spec "leader" and no leader known, `"targets": []` and
  `"skipped": "no leader"` (`"no leader capability"` for a DB without Primaries).
- invoke `stop`: restarts (kill) or resumes (pause) every node this nemesis took down, in any earlier start;
  completion `{"fault", "targets": [nodes brought back]}`.

`teardown` (after the heal, before the DB's nodes are stopped) restarts nothing: kill forgets what it held, pause
resumes what it still holds. `heal` brings back everything taken down and verifies: kill, that every node of the
cluster is running (`{"ok", "details": {"restarted", "not_running"}}`); pause, that every node it paused and that
still runs answers its status again (`{"ok", "details": {"resumed", "gone", "not_answering"}}`).
Targets already down are skipped by a later start, so two overlapping kills never restart a node twice.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

from harness.protocols import ClusterStatus, CrashListener, Op, StartListener, TestContext, process_of
from nemesis.leader import no_leader_reason
from nemesis.targets import LEADER_SPECS, TARGET_SPECS, choose_targets

DEFAULT_TARGETS = ("one", "leader", "minority", "majority", "all")
RUNNING_TIMEOUT_S = 20.0


class _ProcessNemesis:
    kind = ""

    def __init__(self, rng: random.Random, *, targets: Sequence[str] = DEFAULT_TARGETS) -> None:
        unknown = [t for t in targets if t not in TARGET_SPECS]
        if unknown or not targets:
            raise ValueError(f"{self.kind} targets {list(targets)!r}: unknown {unknown!r}; known: {TARGET_SPECS}")
        self.specs = tuple(targets)
        self._rng = rng  # the engine's child of the run's seed for this nemesis
        self._down: set[str] = set()  # nodes this nemesis took down and has not brought back yet

    def faults(self) -> set[str]:
        return {self.kind}

    async def setup(self, test: TestContext) -> None:
        return None

    async def _take_down(self, test: TestContext, node: str) -> None:
        raise NotImplementedError

    async def _bring_back(self, test: TestContext, node: str) -> None:
        raise NotImplementedError

    async def invoke(self, test: TestContext, op: Op) -> Op:
        value = dict(op.value or {})
        if op.f == "start":
            done = await self._start(test, value)
        elif op.f == "stop":
            done = {"fault": self.kind, "targets": await self._restore(test)}
        else:
            raise ValueError(f"{self.kind} nemesis: unknown f {op.f!r} (expected start or stop)")
        return Op(process=op.process, type="info", f=op.f, value=done, node=",".join(done["targets"]) or None)

    async def _start(self, test: TestContext, value: dict[str, Any]) -> dict[str, Any]:
        spec, chosen = await choose_targets(self.kind, test, value, self.specs, self._rng)
        if spec in LEADER_SPECS and not chosen:
            return {"fault": self.kind, "target": spec, "targets": [], "skipped": no_leader_reason(test)}
        fresh = [n for n in chosen if n not in self._down]
        self._down.update(fresh)  # before acting: a cancelled start must still be undone by heal
        async with asyncio.TaskGroup() as tg:
            for node in fresh:
                tg.create_task(self._take_down(test, node))
        return {"fault": self.kind, "target": spec, "targets": list(chosen)}

    async def _restore(self, test: TestContext) -> list[str]:
        back = sorted(self._down)
        async with asyncio.TaskGroup() as tg:
            for node in back:
                tg.create_task(self._bring_back(test, node))
        self._down.difference_update(back)
        return back

    async def _not_running(self, test: TestContext, nodes: Sequence[str]) -> list[str]:
        """The nodes among `nodes` that are still not running after RUNNING_TIMEOUT_S (polled, not slept)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RUNNING_TIMEOUT_S
        waiting = list(nodes)
        while waiting:
            waiting = [n for n in waiting if not await process_of(test).is_running(test, n)]
            if not waiting or loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)  # polling a process table: there is no event to await
        return waiting

    async def heal(self, test: TestContext) -> dict[str, Any]:
        raise NotImplementedError

    async def teardown(self, test: TestContext) -> None:
        """Forget what this nemesis holds, restarting nothing: the engine heals before it tears down, and stops the
        DB's nodes right after (a restart here would only be killed again). Subclasses release what would
        otherwise linger."""
        self._down.clear()


async def crash_node(test: TestContext, node: str, listeners: Sequence[CrashListener]) -> None:
    """kill -9 of one node, announced to `listeners` before (they release what would hold the process) and after
    (the node is gone: they apply what a crash leaves behind)."""
    for listener in listeners:
        await listener.before_crash(test, node)
    await process_of(test).kill(test, node)
    for listener in listeners:
        await listener.after_crash(test, node)


async def start_node(test: TestContext, node: str, listeners: Sequence[StartListener]) -> None:
    """Start one node, announced first to `listeners` (a disk layer restores what it damaged under the node)."""
    for listener in listeners:
        await listener.before_start(test, node)
    await process_of(test).start(test, node)


class KillNemesis(_ProcessNemesis):
    """kill -9 of the targets; `stop` restarts them through the DB adapter. A CrashSource and a StartSource: the
    nemeses listening (e.g. the disk layer) act around each kill and before each restart."""

    kind = "kill"

    def __init__(self, rng: random.Random, *, targets: Sequence[str] = DEFAULT_TARGETS) -> None:
        super().__init__(rng, targets=targets)
        self._listeners: list[CrashListener] = []
        self._start_listeners: list[StartListener] = []

    def add_crash_listener(self, listener: CrashListener) -> None:
        self._listeners.append(listener)

    def add_start_listener(self, listener: StartListener) -> None:
        self._start_listeners.append(listener)

    async def _take_down(self, test: TestContext, node: str) -> None:
        await crash_node(test, node, self._listeners)

    async def _bring_back(self, test: TestContext, node: str) -> None:
        await start_node(test, node, self._start_listeners)

    async def heal(self, test: TestContext) -> dict[str, Any]:
        restarted = await self._restore(test)
        # Any node not running is started, not only ours: the final state the run promises is "every node running".
        for node in test.nodes:
            if not await process_of(test).is_running(test, node):
                await start_node(test, node, self._start_listeners)
                restarted.append(node)
        not_running = await self._not_running(test, test.nodes)
        return {"ok": not not_running, "details": {"restarted": sorted(set(restarted)), "not_running": not_running}}


class PauseNemesis(_ProcessNemesis):
    """SIGSTOP of the targets; `stop` sends SIGCONT through the DB adapter."""

    kind = "pause"

    async def _take_down(self, test: TestContext, node: str) -> None:
        await process_of(test).pause(test, node)

    async def _bring_back(self, test: TestContext, node: str) -> None:
        await process_of(test).resume(test, node)

    async def teardown(self, test: TestContext) -> None:
        """SIGCONT to every node still paused (a stopped process must not linger stopped), without waiting for
        answers."""
        await self._restore(test)

    async def heal(self, test: TestContext) -> dict[str, Any]:
        """SIGCONT to every node paused, then verify each one still running answers its status (a stopped process
        would not). A paused node that is no longer running was killed by another fault: restarting it is the kill
        nemesis's heal, so it is listed under "gone", not counted as a failure here."""
        resumed = await self._restore(test)
        running = [n for n in resumed if await process_of(test).is_running(test, n)]
        gone = sorted(set(resumed) - set(running))
        silent = await self._unanswered(test, running)
        return {"ok": not silent, "details": {"resumed": resumed, "gone": gone, "not_answering": silent}}

    async def _unanswered(self, test: TestContext, nodes: Sequence[str]) -> list[str]:
        """The nodes among `nodes` whose status still fails after RUNNING_TIMEOUT_S (none for a DB without
        ClusterStatus: a resumed process that runs is all it can tell)."""
        db = test.db
        if not isinstance(db, ClusterStatus):
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RUNNING_TIMEOUT_S
        waiting = list(nodes)
        while waiting:
            still = []
            for node in waiting:
                try:
                    async with asyncio.timeout(max(0.1, min(2.0, deadline - loop.time()))):
                        await db.status(test, node)
                except Exception:  # noqa: BLE001 - any failure to answer is "not yet"; the deadline bounds it
                    still.append(node)
            waiting = still
            if not waiting or loop.time() >= deadline:
                break
            await asyncio.sleep(0.1)  # the node is resuming; nothing to await but its answer
        return waiting
