"""The disk nemesis: a FUSE fault layer (nemesis.diskfs) under each node's data directory, steered per fault.

`prepare` (before the DB starts) spawns one layer daemon per host, mounted over the DB's data directory
(harness.protocols.DataDir) with its backing tree in ``<backend data dir>/disk-layer``. The daemon runs in the
controller's mount namespace (``nsenter --mount=/proc/<controller>/ns/mnt``): `ip netns exec` gives each command a
mount namespace of its own, so a mount made inside one would vanish with it; the nodes' namespaces are slaves of
the controller's, so they see the mount. The daemon is spawned through the host (the backend records its PID, so
`harness clean` finds it) and named ``<prefix>-disk-<node>`` in /proc/mounts (so clean finds the mount). The
control socket sits in the backing directory: like the raftkv adapter, this needs hosts that share the
controller's file system (the netns backend).

Fault kinds (one per `--disk-faults` name, ``{"fault": "disk-<name>"}``; targets as nemesis.targets):
- disk-pause: every operation on the targets' data blocks until stop.
- disk-slow: each write and fsync of the targets waits `--disk-delay-ms` +- `--disk-jitter-ms`.
- disk-eio / disk-full: the targets' writes and fsyncs fail with EIO / ENOSPC until stop; stop restarts a target
  that stopped itself meanwhile (that is how a node should react to a failed fsync).
- disk-lose-unsynced: the layer records what is not yet durable; stop is a power loss of the targets (kill -9, the
  layer drops every un-fsynced write and directory change, restart); the final heal only ends the recording. A
  kill by another nemesis while it is active drops them too (this nemesis is a CrashListener).

Power loss on every crash (`keep_unsynced`, on by default; `--disk-unsynced keep`): every layer records what is
not durable from its mount on, whatever fault (if any) is active, as Jepsen's LazyFS does: every kill -9 of a
node, by any nemesis, is then a power loss of that node, and a node that acknowledges before it fsyncs (or renames
a file into place before syncing it) is caught whenever a crash follows. disk-lose-unsynced then only adds its
stop's power loss of all its targets at once. `--disk-unsynced episodes` records only during disk-lose-unsynced.
- disk-corrupt: start kills the targets and damages one WAL segment or snapshot of each (nemesis.corrupt); stop
  restarts them. A target that refuses to start is recorded with its log's last words (file and offset), its file
  restored from the copy the layer kept, and started again. At most a minority of the cluster is damaged at once,
  counting every node whose files are damaged now (not only this start's targets): a start aimed at more damages
  fewer (the completion says "limited"). A majority that could not start would end any run invalid for liveness
  on a correct DB: no Raft cluster can serve without a majority of intact disks.
Before any crash (ours or another nemesis's) a paused layer is released: a process whose request the layer holds
cannot die, not even by kill -9. A slow layer instead fails the writes and fsyncs it holds (eio until the node is
gone, then slow again): the kill waits for them, and a slow fsync completing during a power cut would make durable
what the crash must drop. Before another nemesis starts a node (this nemesis is a StartListener) the
layer restores what it damaged under that node: only this nemesis starts a damaged node on purpose, and then it
waits to see it refuse or serve. The heal (which the composite nemesis runs before the other nemeses' heals) ends
every fault first, then restores the files of every damaged node that is down, then starts every node down that
no other nemesis holds, and waits for each, and for every damaged node someone else started, to serve or exit (an
exit: restore, start again). `teardown` (after the heal, before the nodes are stopped) releases every layer, so
no kill waits on a held request; `unprepare` (after the DB's teardown) unmounts them and waits for their daemons to
end. The engine's undo stack (harness.undo) puts them in that order on every path.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.protocols import (
    ClusterStatus,
    CrashListener,
    DataDir,
    Op,
    Remote,
    TestContext,
    log_files_of,
    process_of,
)
from nemesis.grudge import majority
from nemesis.leader import no_leader_reason
from nemesis.process import crash_node
from nemesis.targets import LEADER_SPECS, TARGET_SPECS, choose_targets

REPO_ROOT = str(Path(__file__).resolve().parent.parent)
FAULTS = ("pause", "slow", "lose-unsynced", "eio", "full", "corrupt")
KINDS = tuple(f"disk-{f}" for f in FAULTS)
MODES = {"disk-pause": "pause", "disk-slow": "slow", "disk-eio": "eio", "disk-full": "full"}
DEFAULT_TARGETS = TARGET_SPECS
DEFAULT_DELAY_MS = 50.0
DEFAULT_JITTER_MS = 25.0
CONTROL_TIMEOUT_S = 5.0
MOUNT_TIMEOUT_S = 15.0
START_TIMEOUT_S = 15.0
_SUN_PATH_MAX = 107


class DiskError(RuntimeError):
    """A layer could not be mounted, steered or removed (the message names the node and the cause)."""


@dataclass(slots=True)
class LayerHandle:
    """One node's layer: where it is, its daemon and its control socket."""

    node: str
    mount: str
    backing: str
    control: str
    log: str
    pid: int = -1
    mode: str = "pass"
    tracking: bool = False
    dropped: dict[str, int] | None = None  # what the last crash undid (directories, files)

    async def call(self, **request: Any) -> dict[str, Any]:
        """One control command; DiskError when the layer does not answer or refuses."""
        try:
            async with asyncio.timeout(CONTROL_TIMEOUT_S):
                reader, writer = await asyncio.open_unix_connection(self.control)
                try:
                    writer.write(json.dumps(request).encode() + b"\n")
                    await writer.drain()
                    answer = json.loads(await reader.readline())
                finally:
                    writer.close()
        except (OSError, TimeoutError, ValueError) as e:
            raise DiskError(f"{self.node}: disk layer control {request.get('op')}: {type(e).__name__}: {e}") from None
        if not answer.get("ok"):
            raise DiskError(f"{self.node}: disk layer refused {request}: {answer.get('error')}")
        return dict(answer)


class DiskNemesis:
    """See the module docstring. One instance per run; a CrashListener for the kill nemesis."""

    def __init__(self, rng: random.Random, *, targets: Sequence[str] = DEFAULT_TARGETS,
                 delay_ms: float = DEFAULT_DELAY_MS, jitter_ms: float = DEFAULT_JITTER_MS,
                 keep_unsynced: bool = True) -> None:
        unknown = [t for t in targets if t not in TARGET_SPECS]
        if unknown or not targets:
            raise ValueError(f"disk targets {list(targets)!r}: unknown {unknown!r}; known: {TARGET_SPECS}")
        if delay_ms < 0 or jitter_ms < 0:
            raise ValueError(f"disk delay {delay_ms} ms / jitter {jitter_ms} ms: must be >= 0")
        self.specs = tuple(targets)
        self.delay_ms, self.jitter_ms = delay_ms, jitter_ms
        self.keep_unsynced = keep_unsynced  # every crash a power loss (see the module docstring)
        self._rng = rng
        self.layers: dict[str, LayerHandle] = {}
        self._active: dict[str, set[str]] = {}  # fault kind -> nodes it is on
        self._listeners: list[CrashListener] = [self]
        # Nodes another nemesis killed (we heard its before_crash): bringing them back is that nemesis's business,
        # so a disk fault's stop does not restart them early; forgotten once seen running again.
        self._down_elsewhere: set[str] = set()
        self._released: set[str] = set()  # paused nodes let go early because they were about to be killed
        self._cut: set[str] = set()  # slow nodes being killed: their in-flight writes and fsyncs fail (a power cut)
        # Nodes whose files a disk-corrupt damaged and the layer has not restored yet (running ones included: a
        # node may start on damage it does not read, and refuse at a later start).
        self._damaged: set[str] = set()
        self._node_locks: dict[str, asyncio.Lock] = {}  # one repair-or-start at a time per node

    def faults(self) -> set[str]:
        return set(KINDS)

    def add_crash_listener(self, listener: CrashListener) -> None:
        """Crashes this nemesis causes are announced to the other listeners too (none today besides itself)."""
        self._listeners.append(listener)

    def log_files(self, test: TestContext, node: str) -> list[str]:
        return [self.layers[node].log] if node in self.layers else []

    # -- mounting ------------------------------------------------------------------------------------------

    def _handle(self, test: TestContext, node: str) -> LayerHandle:
        if not isinstance(test.db, DataDir):
            raise DiskError(f"the disk nemesis needs a DB with one data directory per node; {type(test.db).__name__}"
                            " has no data_dir(test, node)")
        backing = f"{test.backend.data_dir(node)}/disk-layer"
        control = f"{backing}/control.sock"
        if len(control) > _SUN_PATH_MAX:
            raise DiskError(f"{node}: the control socket path {control} is longer than a unix socket allows")
        return LayerHandle(node, test.db.data_dir(test, node), backing, control,
                           f"{test.backend.log_dir(node)}/diskfs.log")

    async def prepare(self, test: TestContext) -> None:
        """Mount a layer under every node's data directory, before the DB is set up and started."""
        async with asyncio.TaskGroup() as tg:
            for host in test.hosts:
                tg.create_task(self._mount(test, host))

    async def _mount(self, test: TestContext, host: Remote) -> None:
        layer = self._handle(test, host.name)
        self.layers[host.name] = layer  # before spawning: unprepare must find a half-made layer
        await host.exec(["mkdir", "-p", layer.backing, layer.mount])
        argv = ["nsenter", f"--mount=/proc/{os.getpid()}/ns/mnt", "--", sys.executable, "-m", "nemesis.diskfs",
                "--backing", layer.backing, "--mount", layer.mount, "--control", layer.control,
                "--name", f"{test.backend.prefix}-disk-{host.name}", "--seed", str(self._rng.getrandbits(32))]
        layer.pid = await host.spawn(argv, log_path=layer.log, cwd=REPO_ROOT,
                                     env={"PYTHONPATH": REPO_ROOT, "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MOUNT_TIMEOUT_S
        while True:
            mounted = (await host.exec(["mountpoint", "-q", layer.mount], check=False)).returncode == 0
            if mounted and os.path.exists(layer.control):
                await layer.call(op="status")
                if self.keep_unsynced:
                    await layer.call(op="track")
                    layer.tracking = True
                return
            if not await host.alive(layer.pid) or loop.time() >= deadline:
                tail = (await host.exec(["tail", "-n", "5", layer.log], check=False)).stdout.strip()
                raise DiskError(f"{host.name}: the disk layer did not mount on {layer.mount}: {tail}")
            await asyncio.sleep(0.05)  # mounting takes ~130 ms; nothing to await but the mount table

    async def setup(self, test: TestContext) -> None:
        missing = [n for n in test.nodes if n not in self.layers]
        if missing:
            raise DiskError(f"no disk layer on {', '.join(missing)} (prepare did not run)")

    # -- faults --------------------------------------------------------------------------------------------

    async def _set_mode(self, node: str, mode: str) -> None:
        layer = self.layers[node]
        await layer.call(op="mode", mode=mode, delay_ms=self.delay_ms, jitter_ms=self.jitter_ms)
        layer.mode = mode

    async def invoke(self, test: TestContext, op: Op) -> Op:
        value = dict(op.value or {})
        kind = value.get("fault")
        if kind not in KINDS:
            raise ValueError(f"disk nemesis: unknown fault {kind!r} (known: {', '.join(KINDS)})")
        if op.f == "start":
            done = await self._start(test, kind, value)
        elif op.f == "stop":
            done = await self._stop(test, kind)
        else:
            raise ValueError(f"disk nemesis: unknown f {op.f!r} (expected start or stop)")
        return Op(process=op.process, type="info", f=op.f, value=done, node=",".join(done["targets"]) or None)

    async def _start(self, test: TestContext, kind: str, value: Mapping[str, Any]) -> dict[str, Any]:
        spec, chosen = await choose_targets(kind, test, value, self.specs, self._rng)
        done: dict[str, Any] = {"fault": kind, "target": spec, "targets": list(chosen)}
        if spec in LEADER_SPECS and not chosen:
            return {**done, "skipped": no_leader_reason(test)}
        if kind == "disk-corrupt":
            allowed = self._within_minority(test, chosen)
            if allowed != chosen:
                done |= {"targets": list(allowed), "limited": {"asked": list(chosen),
                                                               "damaged_before": sorted(self._damaged)}}
            chosen = allowed
        self._active.setdefault(kind, set()).update(chosen)  # before acting: a cancelled start is still healed
        if kind in MODES:
            await asyncio.gather(*(self._set_mode(n, MODES[kind]) for n in chosen))
        elif kind == "disk-lose-unsynced":
            for node in chosen:
                if not self.layers[node].tracking:  # a second "track" would count the unsynced as durable
                    await self.layers[node].call(op="track")
                    self.layers[node].tracking = True
        elif chosen:  # disk-corrupt: the files are damaged while their node is down
            await self._crash(test, chosen)
            done["corrupted"] = {n: await self._corrupt(n) for n in chosen}
        return done

    def _within_minority(self, test: TestContext, chosen: Sequence[str]) -> tuple[str, ...]:
        """The targets among `chosen` a corruption may damage: all the damaged ones (no new damaged node), and of
        the others (drawn) as many as keep the damaged nodes a minority of the cluster."""
        room = majority(len(test.nodes)) - 1 - len(self._damaged)
        fresh = [n for n in sorted(chosen) if n not in self._damaged]
        self._rng.shuffle(fresh)
        return tuple(sorted([n for n in chosen if n in self._damaged] + fresh[:max(0, room)]))

    async def _crash(self, test: TestContext, nodes: Sequence[str]) -> None:
        """Our own kill -9 of `nodes`, announced like any other (we listen to ourselves); ours to restart, except
        those another nemesis already held down (still its to bring back)."""
        held = self._down_elsewhere.intersection(nodes)
        await asyncio.gather(*(crash_node(test, n, self._listeners) for n in nodes))
        self._down_elsewhere.difference_update(set(nodes) - held)

    async def _corrupt(self, node: str) -> dict[str, Any]:
        """Damage one file of the (stopped) node, after restoring any earlier damage (one at a time per node);
        the answer names the file as the node sees it, under the mount."""
        layer = self.layers[node]
        async with self._lock(node):
            await self._repair_locked(node)
            self._damaged.add(node)  # before the call: a cancelled corruption may still have damaged a file
            answer = await layer.call(op="corrupt", seed=self._rng.getrandbits(32))
        answer.pop("ok", None)
        if "skipped" in answer:
            self._damaged.discard(node)
        if "file" in answer:
            answer["file"] = f"{layer.mount}/{answer['file']}"
        return answer

    def _lock(self, node: str) -> asyncio.Lock:
        return self._node_locks.setdefault(node, asyncio.Lock())

    async def _repair_locked(self, node: str) -> list[dict[str, Any]] | None:
        """Restore the node's damaged files (the caller holds its lock and knows it is down); what was done."""
        if node not in self._damaged:
            return None
        repaired = (await self.layers[node].call(op="repair")).get("repaired")
        self._damaged.discard(node)
        return list(repaired) if repaired else None

    async def _stop(self, test: TestContext, kind: str) -> dict[str, Any]:
        """End a fault on every node it is on, then bring back the nodes it stopped."""
        done = await self._end(test, kind, healing=False)
        return {**done, **await self._restart(test, done["targets"])}

    async def _end(self, test: TestContext, kind: str, *, healing: bool) -> dict[str, Any]:
        """End a fault (nothing restarted). `healing` (the final heal): lose-unsynced ends without a power loss,
        since the heal ends faults and must not start one."""
        nodes = sorted(self._active.pop(kind, set()))
        done: dict[str, Any] = {"fault": kind, "targets": nodes}
        if kind == "disk-lose-unsynced" and healing:
            if not self.keep_unsynced:
                await self._untrack(nodes)
                done["flushed"] = nodes
        elif kind in MODES:
            await asyncio.gather(*(self._set_mode(n, "pass") for n in nodes))
            if kind == "disk-pause" and self._released:
                done["released_for_kill"] = sorted(self._released)
                self._released.clear()
        elif kind == "disk-lose-unsynced":
            # A power loss of every target at once: all are down before any layer drops its unsynced state.
            for node in nodes:
                self.layers[node].dropped = None
            await self._crash(test, nodes)
            done["dropped"] = {n: self.layers[n].dropped for n in nodes}
            if not self.keep_unsynced:
                await self._untrack(nodes)
        return done

    async def _untrack(self, nodes: Sequence[str]) -> None:
        """End recording on `nodes` without a crash: what they hold counts as written back."""
        for node in nodes:
            await self.layers[node].call(op="flush")
            self.layers[node].tracking = False

    async def _restart(self, test: TestContext, nodes: Sequence[str], *, repair_first: bool = False
                       ) -> dict[str, Any]:
        """Bring back what our faults stopped among `nodes`, all at once, and wait for each: every node down that
        no other nemesis holds (it restarts those; the DB adapter serializes starts of one node) is started; every
        damaged node someone else started is watched. A node that exits instead refused to start: its log's last
        critical line is recorded, its damaged files (if any) restored and it is started again. `repair_first`
        (the heal): damaged files are restored before any start, so nothing is left to refuse."""
        down = [n for n in nodes if not await process_of(test).is_running(test, n)]
        self._down_elsewhere.difference_update(set(nodes) - set(down))  # seen running again: theirs no more
        started = [n for n in down if n not in self._down_elsewhere]
        watched = [n for n in nodes if n not in down and n in self._damaged]
        both = started + watched
        outcomes = await asyncio.gather(*(self._bring_up(test, n, start=n in started, repair_first=repair_first)
                                          for n in both))
        out: dict[str, Any] = {"restarted": started}
        refused = {n: why for n, (why, _) in zip(both, outcomes, strict=True) if why is not None}
        if refused:
            out["refused"] = refused
        down_still = [n for n, (_, serving) in zip(both, outcomes, strict=True) if not serving]
        if down_still:
            out["not_serving"] = down_still
        return out

    async def _bring_up(self, test: TestContext, node: str, *, start: bool, repair_first: bool
                        ) -> tuple[str | None, bool]:
        """Start `node` (or only wait, when someone else started it) until it serves. Returns the last words of
        the first life if it exited (it refused; its damage, if any, is then restored and it starts again), and
        whether the node serves (or at least runs) in the end."""
        async with self._lock(node):
            if repair_first and not await process_of(test).is_running(test, node):
                await self._repair_locked(node)
            why = await self._start_and_wait(test, node) if start else await self._await_serving(test, node)
            if why is None:
                return None, True
            if await self._repair_locked(node) is None:
                return why, False  # nothing of ours to restore: it refuses its own state
            return why, await self._start_and_wait(test, node) is None

    async def _start_and_wait(self, test: TestContext, node: str) -> str | None:
        """Start the node; None once it answers its status, else (it exited) the last lines of its logs."""
        await process_of(test).start(test, node)
        return await self._await_serving(test, node)

    async def _await_serving(self, test: TestContext, node: str) -> str | None:
        """None once the node answers its status (or still runs START_TIMEOUT_S later: not a refusal, the checker
        judges what it then does); the last words of its log if it exits first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while loop.time() < deadline:
            if not await process_of(test).is_running(test, node):
                return await self._last_words(test, node)
            try:
                if isinstance(test.db, ClusterStatus):  # else a running process is all it can tell
                    async with asyncio.timeout(1.0):
                        await test.db.status(test, node)
                return None
            except Exception:  # noqa: BLE001 - not answering yet; the deadline bounds the wait
                await asyncio.sleep(0.1)
        return None

    async def _last_words(self, test: TestContext, node: str) -> str:
        """The last critical line of the node's own log (its reason to stop), else its last line."""
        files = log_files_of(test.db, test, node)[:1]
        lines = (await test.host(node).exec(["tail", "-n", "20", *files], check=False)).stdout.strip().splitlines()
        critical = [ln for ln in lines if "CRITICAL" in ln]
        return (critical or lines or ["exited without a word"])[-1][-1000:]

    # -- crashes (CrashListener) ---------------------------------------------------------------------------

    async def before_start(self, test: TestContext, node: str) -> None:
        """Another nemesis starts the node: it is no longer held elsewhere, and its damaged files are restored
        first (only this nemesis starts a damaged node, when it can watch it refuse)."""
        self._down_elsewhere.discard(node)
        if node not in self._damaged:
            return
        async with self._lock(node):
            if not await process_of(test).is_running(test, node):
                await self._repair_locked(node)

    async def before_crash(self, test: TestContext, node: str) -> None:
        """A paused layer lets go, or the node's kill -9 would wait in state D until the pause ends. A slow layer
        fails what it holds (eio until the node is gone): a kill -9 waits for the node's in-flight writes and
        fsyncs, and a slow fsync that then completed would make durable what a power cut must drop."""
        self._down_elsewhere.add(node)
        layer = self.layers.get(node)
        if layer is not None and layer.mode == "pause":
            await self._set_mode(node, "pass")
            self._active.get("disk-pause", set()).discard(node)
            self._released.add(node)
        elif layer is not None and layer.mode == "slow" and layer.tracking:
            self._cut.add(node)
            await self._set_mode(node, "eio")

    async def after_crash(self, test: TestContext, node: str) -> None:
        """The node is gone: drop what it had not made durable, and go on recording for its next life (a cut slow
        layer back to slow while its fault lasts)."""
        layer = self.layers.get(node)
        if layer is not None and layer.tracking:
            layer.dropped = (await layer.call(op="crash"))["undone"]
            await layer.call(op="track")
        if node in self._cut:
            self._cut.discard(node)
            await self._set_mode(node, "slow" if node in self._active.get("disk-slow", set()) else "pass")

    # -- healing and removal -------------------------------------------------------------------------------

    async def heal(self, test: TestContext) -> dict[str, Any]:
        """End every active fault, restore every damaged node that is down, start what our faults stopped (every
        node down that no other nemesis holds) and watch the damaged ones someone else started; then verify
        every layer passes I/O through. Runs before the other nemeses' heals (harness.composite): a node they
        restart finds its layer passing I/O and its files intact."""
        details: dict[str, Any] = {}
        for kind in sorted(self._active):
            details[kind] = await self._end(test, kind, healing=True)
        for node in sorted(self._cut):  # a kill that never came back to after_crash: the faults are over
            await self._set_mode(node, "pass")
        self._cut.clear()
        restored = {}
        for node in sorted(self._damaged):  # down, whoever holds it: restored before any heal can start it
            async with self._lock(node):
                if not await process_of(test).is_running(test, node):
                    restored[node] = await self._repair_locked(node)
        if restored:
            details["restored"] = restored
        final = await self._restart(test, sorted(self.layers), repair_first=True)
        if final["restarted"] or len(final) > 1:
            details["restarted"] = final
        modes = {}
        for node, layer in self.layers.items():
            try:
                modes[node] = (await layer.call(op="status"))["mode"]
            except DiskError as e:
                modes[node] = f"error: {e}"
        details["modes"] = modes
        return {"ok": all(m == "pass" for m in modes.values()) and "not_serving" not in final, "details": details}

    async def release(self) -> list[str]:
        """Every layer back to pass-through with nothing held and no tracking; the errors, if any."""
        errors = []
        for layer in self.layers.values():
            if layer.pid <= 0:
                continue  # never spawned (a prepare cut short): nothing to release
            try:
                await layer.call(op="mode", mode="pass")
                await layer.call(op="flush")
            except DiskError as e:
                errors.append(str(e))
            layer.mode, layer.tracking = "pass", False
        return errors

    async def _unmount(self, host: Remote, layer: LayerHandle) -> None:
        if (await host.exec(["mountpoint", "-q", layer.mount], check=False)).returncode == 0:
            await layer.call(op="unmount")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MOUNT_TIMEOUT_S
        while layer.pid > 0 and await host.alive(layer.pid):
            if loop.time() >= deadline:
                raise DiskError(f"{host.name}: the disk layer daemon (pid {layer.pid}) still runs after its unmount")
            await asyncio.sleep(0.05)  # the daemon ends once the kernel lets go of the mount

    async def teardown(self, test: TestContext) -> None:
        """Release every layer (pass-through, nothing held, no tracking): the engine calls it after the heal and
        before it stops the nodes, so no kill waits on a held request. The layers stay mounted under the nodes'
        data until :meth:`unprepare`, after the DB's teardown."""
        errors = await self.release()
        self._active.clear()
        if errors:
            raise DiskError("disk layer release: " + "; ".join(errors))

    async def unprepare(self, test: TestContext) -> None:
        """Release what is still held, then unmount every layer and wait for its daemon to end (the engine calls it
        after the DB's teardown; idempotent). A daemon that will not end is left to the backend's teardown, which
        kills it (killing a FUSE daemon also fails every request it held)."""
        errors = await self.release()
        for node, layer in self.layers.items():
            try:
                await self._unmount(test.host(node), layer)
            except DiskError as e:
                errors.append(str(e))
        self._active.clear()
        if errors:
            raise DiskError("disk layer teardown: " + "; ".join(errors))
