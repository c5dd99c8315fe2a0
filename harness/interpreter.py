"""The interpreter: runs a pure generator against real clients and a nemesis, and records the history.

One asyncio worker per client thread (``0 .. concurrency-1``) plus one for the nemesis thread. The dispatcher asks
the generator for the next op (harness.generator), waits when told to (pending, or an op scheduled in the future),
hands each op to its thread's worker, and feeds every invoke and completion back to the generator. That dispatch
step is synchronous and also runs inline in a worker right after it records a completion, so a worker's next op
is in its inbox before it returns to the event loop: the engine adds no loop round trip between one op's reply and
the next op's request (the generator is called in the same order either way).

Recording (docs/history.md): the worker takes the monotonic time just before it sends the request and writes the
``invoke`` line, then takes the time just after the reply and writes the completion line (both appended live by
harness.store.HistoryWriter). A client exception or a per-op timeout is recorded as ``info`` (its outcome is
unknown); ``fail`` only comes from a client that says so. A thread whose op ended in ``info`` continues under a new
process id (process + concurrency), and its client is closed and re-opened, as in Jepsen. A client that cannot be
opened yields ``fail`` with error ``no-client: ...`` (nothing was sent, so nothing happened).

Nemesis ops are recorded as an ``invoke`` and an ``info`` completion on process ``"nemesis"``; the completion's value
is what the nemesis reports it did, plus the invoke value's ``fault`` and ``move`` (what the schedule said of the op)
when the nemesis's own value leaves them out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.generator import NEMESIS, Context, Generator, GeneratorError, Pending, Thread, node_index
from harness.protocols import Client, Nemesis, Op, TestContext, WorkerPlacement
from harness.store import HistoryWriter

log = logging.getLogger("harness.interpreter")

COMPLETION_TYPES = frozenset({"ok", "fail", "info"})
SCHEDULE_KEYS = ("fault", "move")  # kept from a nemesis invoke's value on its completion (see the module docstring)


def _at(op: Op, t: int, node: str | None) -> Op:
    """``op`` at time ``t`` on ``node``: dataclasses.replace spelled out, as it runs two or three times per op."""
    return Op(process=op.process, type=op.type, f=op.f, key=op.key, value=op.value, time=t, node=node,
              error=op.error, index=op.index)


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


@dataclass(slots=True)
class Tally:
    """Running counts for the progress display and the summary (updated on every recorded event)."""

    ok: int = 0
    fail: int = 0
    info: int = 0
    invokes: int = 0
    by_f: dict[str, dict[str, int]] = field(default_factory=dict)
    faults: dict[str, Any] = field(default_factory=dict)  # active fault kind -> its start completion's value
    nemesis_events: int = 0
    last_error: str | None = None

    def observe(self, op: Op) -> None:
        if op.process == NEMESIS:
            if op.type == "info":
                self.nemesis_events += 1
                kind = op.value.get("fault") if isinstance(op.value, dict) else None
                if kind is not None:
                    if op.f == "start":
                        self.faults[kind] = op.value
                    elif op.f == "stop":
                        self.faults.pop(kind, None)
            return
        if op.type == "invoke":
            self.invokes += 1
            return
        counts = self.by_f.setdefault(op.f, {"ok": 0, "fail": 0, "info": 0})
        counts[op.type] += 1
        if op.type == "ok":
            self.ok += 1
        elif op.type == "fail":
            self.fail += 1
        else:
            self.info += 1
        if op.error and op.type != "ok":
            self.last_error = op.error


@dataclass(slots=True)
class _Dispatch:
    """One :meth:`Interpreter.run`'s dispatch state: the generator, the threads (free ones in least recently busy
    order), each thread's inbox, and what the dispatcher task waits for."""

    gen: Generator | None
    threads: tuple[Thread, ...]
    free: dict[Thread, None]
    inboxes: dict[Thread, asyncio.Queue[Op | None]]
    processes: dict[Thread, int | str]  # a snapshot of Interpreter.processes, never changed once made
    finished: bool = False  # the generator is exhausted and nothing is in flight
    wake: int | None = None  # the generator asked to be asked again at this context time (None: on an event)
    waiting_for: int | None = None  # the wake time the dispatcher task is waiting for


class Interpreter:
    """Runs generators for one test. Keeps each thread's process across :meth:`run` calls (the main phase and the
    final-read phase share process numbering, so a process retired by ``info`` stays retired)."""

    def __init__(self, test: TestContext, *, history: HistoryWriter, origin_ns: int, concurrency: int,
                 client_factory: Callable[[], Client] | None, nemesis: Nemesis | None = None,
                 op_timeout: float = 5.0, nemesis_timeout: float = 60.0, open_timeout: float = 5.0,
                 observers: Sequence[Callable[[Op], None]] = ()) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.test = test
        self.history = history
        self.origin = origin_ns
        self.concurrency = concurrency
        self.client_factory = client_factory
        self.nemesis = nemesis
        self.op_timeout = op_timeout
        self.nemesis_timeout = nemesis_timeout
        self.open_timeout = open_timeout
        self.observers = list(observers)
        self.processes: dict[Thread, int | str] = {t: t for t in range(concurrency)}
        self.processes[NEMESIS] = NEMESIS
        self._done: deque[Op] = deque()
        self._wake = asyncio.Event()
        # Per-op timeouts (see _watchdog): the loop-time deadline of each worker's op while it is in
        # client.invoke, each worker's task, and the workers the watchdog cancelled for their deadline.
        self._deadlines: dict[Thread, float] = {}
        self._tasks: dict[Thread, asyncio.Task[Any]] = {}
        self._expired: set[Thread] = set()

    # ------------------------------------------------------------------------------------------ dispatcher

    def now(self) -> int:
        """Context time: ns since the run's origin."""
        return time.monotonic_ns() - self.origin

    def _record(self, op: Op) -> Op:
        op = self.history.record(op)
        for obs in self.observers:
            obs(op)
        return op

    def _event(self, process: int | str, type: Any, f: str, key: Any, value: Any, time: int, node: str | None,
               error: str | None = None) -> Op:
        """:meth:`_record` of a new event, built once (the client path records two per op)."""
        op = self.history.event(process, type, f, key, value, time, node, error)
        for obs in self.observers:
            obs(op)
        return op

    async def run(self, gen: Generator | None, *, nemesis_thread: bool | None = None) -> None:
        """Run ``gen`` until it is exhausted and every op it started has completed. Cancellation (Ctrl-C, SIGTERM,
        an outer timeout) stops the workers at once; ops in flight then stay without completion, which the history
        format reads as indeterminate."""
        use_nemesis = (self.nemesis is not None) if nemesis_thread is None else nemesis_thread
        if use_nemesis and self.nemesis is None:
            raise ValueError("nemesis_thread=True without a nemesis")
        if self.client_factory is None and gen is not None:
            raise ValueError("a generator needs a client factory")
        threads: tuple[Thread, ...] = tuple(range(self.concurrency)) + ((NEMESIS,) if use_nemesis else ())
        self._done.clear()
        self._deadlines.clear()
        self._tasks.clear()
        self._expired.clear()
        st = _Dispatch(gen, threads, dict.fromkeys(threads), {t: asyncio.Queue() for t in threads},
                       dict(self.processes))
        try:
            await self._dispatch(st)
        except BaseExceptionGroup as eg:
            # One failure (a generator error, a worker bug) is re-raised as itself, not wrapped in a group.
            if len(eg.exceptions) == 1:
                raise eg.exceptions[0] from eg
            raise
        finally:
            self.history.flush()  # whoever reads the file after a run sees all of it

    def _context(self, st: _Dispatch, now: int) -> Context:
        return Context(now, st.threads, frozenset(st.free), st.processes, self.concurrency, tuple(st.free))

    def _step(self, st: _Dispatch) -> None:
        """Feed the generator every completion so far and dispatch every op it has for now, until it is pending
        or exhausted; leaves in ``st`` what the dispatcher must wait for. Synchronous, so it runs both in the
        dispatcher task and inline in a worker right after its completion: the worker then finds its next op in
        its inbox without a trip through the event loop (the generator sees exactly the same sequence of calls
        either way)."""
        c = self.concurrency
        g, free = st.gen, st.free
        ctx: Context | None = None  # the context of the last update, reused for op() while nothing changed
        try:
            while True:
                while self._done:
                    comp = self._done.popleft()
                    th = comp.process % c if isinstance(comp.process, int) else comp.process
                    free[th] = None
                    if comp.type == "info" and isinstance(comp.process, int):
                        self.processes[th] = comp.process + c
                        st.processes = dict(self.processes)  # a new snapshot: contexts already given keep theirs
                    if g is not None:
                        ctx = self._context(st, self.now())
                        g = g.update(ctx, _at(comp, comp.time - self.origin, comp.node))
                if not free and g is not None:
                    # Every thread is busy: a generator can only answer Pending (an op needs a free thread) or
                    # exhausted, and either answer waits for the next completion anyway, which asks again. Not
                    # asking saves a walk down the generator tree after each dispatch at full concurrency.
                    st.wake = None
                    return
                # The generator is asked for its next op in the state it was just told about (same free threads,
                # same processes, same instant), so the update's context serves; it is built anew otherwise.
                if ctx is None:
                    ctx = self._context(st, self.now())
                now = ctx.time
                res = g.op(ctx) if g is not None else None
                ctx = None
                if res is None:
                    g = None
                    st.finished = len(free) == len(st.threads)
                    st.wake = None
                    return
                x, nxt = res
                if isinstance(x, Pending):
                    g = nxt if nxt is not None else g
                    if x.wake is None and len(free) == len(st.threads):
                        raise GeneratorError("generator is pending with nothing in flight and no wake time")
                    st.wake = x.wake
                    return
                # An op for later is dispatched now (its thread is busy from now on); the worker sends it at
                # x.time. The generator's state is committed either way, so deadlines it set stick.
                th = x.process % c if isinstance(x.process, int) else x.process
                if th not in free or self.processes.get(th) != x.process:
                    raise GeneratorError(f"generator emitted {x} for a busy or unknown process "
                                         f"(free threads: {sorted(map(str, free))})")
                del free[th]
                g = nxt.update(self._context(st, now), x) if nxt is not None else None
                st.inboxes[th].put_nowait(x)
        finally:
            st.gen = g

    async def _dispatch(self, st: _Dispatch) -> None:
        async with asyncio.TaskGroup() as tg:
            for t in st.threads:
                self._tasks[t] = tg.create_task(self._worker(t, st.inboxes[t], st), name=f"worker-{t}")
            watchdog = tg.create_task(self._watchdog(), name="op-timeouts")
            try:
                while True:
                    self._step(st)
                    if st.finished:
                        break
                    st.waiting_for = st.wake
                    await self._wait(None if st.wake is None else max(1, st.wake - self.now()))
            finally:
                for q in st.inboxes.values():
                    q.put_nowait(None)
                watchdog.cancel()

    async def _watchdog(self) -> None:
        """Enforces ``op_timeout`` on client ops with one timer for all workers instead of an asyncio.timeout
        (a timer armed and disarmed) per op: it sleeps until the earliest deadline of the ops in flight, and
        cancels a worker whose op is still in ``client.invoke`` at its deadline (the worker then records the op
        as ``info``/timeout, as asyncio.timeout would have made it). No deadline is missed while it sleeps: an
        op that starts later has a deadline at least ``op_timeout`` from the time the sleep began, and the sleep
        is never longer than that. Runs until the dispatcher cancels it."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            wake = now + self.op_timeout
            for th, deadline in list(self._deadlines.items()):
                if deadline <= now:
                    del self._deadlines[th]
                    self._expired.add(th)
                    self._tasks[th].cancel()
                elif deadline < wake:
                    wake = deadline
            await asyncio.sleep(wake - now)

    async def _wait(self, timeout_ns: int | None) -> None:
        """Until a worker's step asks for the dispatcher or timeout_ns passes (None = no timeout)."""
        self._wake.clear()
        if timeout_ns is None:
            await self._wake.wait()
            return
        if timeout_ns <= 0:
            return
        try:
            async with asyncio.timeout(timeout_ns / 1e9):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _until(self, when: int) -> None:
        """Wait until context time ``when`` (the op's scheduled send time)."""
        delay = when - self.now()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)

    def _complete(self, op: Op, st: _Dispatch) -> None:
        """Hand a completion to the generator and dispatch what follows at once (see :meth:`_step`); wake the
        dispatcher task only when its wait changed: the run is over, or the generator wants to be asked again at
        another time than the one the dispatcher waits for. A generator error raised here fails this worker,
        which fails the run as it would in the dispatcher."""
        self._done.append(op)
        self._step(st)
        if st.finished or st.wake != st.waiting_for:
            self._wake.set()

    # --------------------------------------------------------------------------------------------- workers

    async def _worker(self, thread: Thread, inbox: asyncio.Queue[Op | None], st: _Dispatch) -> None:
        if thread == NEMESIS:
            while (op := await inbox.get()) is not None:
                await self._until(op.time)
                self._complete(await self._nemesis_op(op), st)
            return
        nodes = self.test.nodes
        i = node_index(thread, len(nodes))
        node = nodes[i] if i is not None else None
        client: Client | None = None
        try:
            while (op := await inbox.get()) is not None:
                await self._until(op.time)
                if client is None:
                    client, why = await self._open(node, thread)
                    if client is None:
                        inv = self._event(op.process, op.type, op.f, op.key, op.value, time.monotonic_ns(), node,
                                          op.error)
                        self._complete(self._event(inv.process, "fail", inv.f, inv.key, inv.value,
                                                   time.monotonic_ns(), node, f"no-client: {why}"), st)
                        continue
                comp = await self._client_op(client, op, node, thread)
                if comp.type == "info":
                    await self._close(client)
                    client = None
                self._complete(comp, st)
        finally:
            if client is not None:
                await self._close(client)

    async def _open(self, node: str | None, thread: Thread) -> tuple[Client | None, str]:
        assert self.client_factory is not None
        factory = self.client_factory()
        try:
            async with asyncio.timeout(self.open_timeout):
                if isinstance(factory, WorkerPlacement) and isinstance(thread, int):
                    client = await factory.open_worker(self.test, node or "", thread)
                else:
                    client = await factory.open(self.test, node or "")
            return client, ""
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            return None, f"open timed out after {self.open_timeout} s"
        except Exception as e:  # noqa: BLE001 - any failure to open is reported as no-client
            return None, _describe(e)

    async def _close(self, client: Client) -> None:
        try:
            async with asyncio.timeout(self.open_timeout):
                await client.close(self.test)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a client that fails to close is dropped
            log.debug("client close failed: %s", _describe(e))

    async def _client_op(self, client: Client, op: Op, node: str | None, thread: Thread) -> Op:
        inv = self._event(op.process, op.type, op.f, op.key, op.value, time.monotonic_ns(), node, op.error)
        res: Any
        # The deadline is armed just after the invoke is recorded and disarmed, with no await in between, just
        # after client.invoke ends: the watchdog can only cancel this task while it awaits the client.
        self._deadlines[thread] = asyncio.get_running_loop().time() + self.op_timeout
        try:
            res = await client.invoke(self.test, inv)
            t1 = time.monotonic_ns()
            if thread in self._expired:  # the client swallowed the watchdog's cancellation: its answer stands
                self._expired.discard(thread)
                self._tasks[thread].uncancel()
        except asyncio.CancelledError:
            if thread not in self._expired:
                raise
            self._expired.discard(thread)
            if self._tasks[thread].uncancel() > 0:
                raise  # cancelled from outside as well (Ctrl-C, the run's end): that wins, as in asyncio.timeout
            t1 = time.monotonic_ns()
            res = replace(inv, type="info", error="timeout")
        except Exception as e:  # noqa: BLE001 - Jepsen's rule: an exception means the outcome is unknown
            t1 = time.monotonic_ns()
            res = replace(inv, type="info", error=_describe(e))
        finally:
            self._deadlines.pop(thread, None)
        if not isinstance(res, Op) or res.type not in COMPLETION_TYPES:
            res = replace(inv, type="info", error=f"client returned {res!r}, not a completion op")
        return self._event(inv.process, res.type, inv.f, inv.key, res.value, t1, res.node or node, res.error)

    async def _nemesis_op(self, op: Op) -> Op:
        assert self.nemesis is not None
        inv = self._record(replace(op, time=time.monotonic_ns()))
        value, error, node = inv.value, None, None
        try:
            async with asyncio.timeout(self.nemesis_timeout):
                res = await self.nemesis.invoke(self.test, inv)
            if isinstance(res, Op):
                value, error, node = res.value, res.error, res.node
            else:
                error = f"nemesis returned {res!r}, not an op"
        except TimeoutError:
            error = f"timeout after {self.nemesis_timeout} s"
        except asyncio.CancelledError:
            # Close the nemesis's interval in the history (the heal that follows is a new nemesis op); what the
            # interrupted op did is unknown, and the heal undoes it either way.
            self._record(Op(process=NEMESIS, type="info", f=inv.f, value=inv.value, time=time.monotonic_ns(),
                            error="interrupted"))
            raise
        except Exception as e:  # noqa: BLE001 - recorded; the final heal still runs
            error = _describe(e)
            log.warning("nemesis %s %s failed: %s", inv.f, inv.value, error)
        if isinstance(inv.value, dict) and isinstance(value, dict):
            # What the schedule said of the op (its kind, the move it belongs to) stays on the completion, which
            # the nemesis builds afresh: the report and the checkers read completions.
            carried = {k: inv.value[k] for k in SCHEDULE_KEYS if k in inv.value and k not in value}
            if carried:
                value = {**carried, **value}
        return self._record(Op(process=NEMESIS, type="info", f=inv.f, value=value, time=time.monotonic_ns(),
                               node=node, error=error))
