"""Pure, composable generators of operations (after Jepsen's jepsen.generator).

A generator is an immutable value with two methods:

- ``op(ctx)`` returns ``None`` when the generator is exhausted, or ``(x, gen2)`` where ``x`` is either an invoke
  :class:`~harness.protocols.Op` (the next operation this generator wants performed) or a :class:`Pending` (it has
  nothing to offer yet), and ``gen2`` is the generator's state *if x is acted on* (``None`` = nothing after it).
- ``update(ctx, event)`` returns the generator's state after an event of the run: every dispatched invoke and
  every completion is passed to the top-level generator, which forwards it to the children it concerns.

Nothing here sleeps, reads a clock, spawns a thread or draws from a global random source: time comes in through
``ctx.time`` (nanoseconds since the start of the run) and randomness from a seed carried in the generator's own
state, so the same generator asked the same question gives the same answer. The interpreter (harness.interpreter)
does all waiting: an op whose ``time`` lies in the future is sent at that time, and a ``Pending(wake=T)`` is
re-asked at T or at the next event, whichever comes first.

The interpreter commits ``gen2`` whenever it gets an answer, op or pending. An op whose ``time`` lies in the
future is dispatched at once: its thread is busy from then on, and its worker waits until that time before it sends
the request. So the state returned with an op may count the op as dispatched (e.g. in flight), and deadlines a
generator sets when first asked stick.

Operations are written as templates: a mapping with ``f`` and optionally ``key``, ``value``, ``node``; a template
used as a generator emits itself once (see :func:`lift`). The generator fills in the process of the first free
thread and the current time.

Threads: client threads are ``0 .. concurrency-1``; the nemesis thread is ``"nemesis"``. Each thread runs one
process at a time; a client thread's process starts equal to the thread and grows by ``concurrency`` each time an
operation of it ends in ``info`` (Jepsen's convention), so ``thread = process % concurrency``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeAlias

from harness.protocols import Op

__all__ = [
    "NEMESIS", "PENDING", "Any_", "Context", "Generator", "GeneratorError", "OpResult", "Pending", "Thread",
    "any_of", "clients", "clients_and_nemesis", "concurrency_limit", "cycle", "delay", "fill_in", "fn", "lift",
    "limit", "map_ops", "mix", "nemesis", "nemesis_cycle", "node_index", "on_node", "on_threads", "once", "phases",
    "rate", "repeat", "secs", "simulate", "sleep", "spawn", "Spawned", "stagger", "stop_all", "synchronize", "then",
    "time_limit", "until_ok",
]

NEMESIS = "nemesis"
Thread: TypeAlias = int | str
NS_PER_S = 1_000_000_000


class GeneratorError(ValueError):
    """A generator was built or used wrongly (caller misuse): bad template, bad argument."""


def secs(seconds: float) -> int:
    """Seconds to the nanoseconds generators and contexts speak in."""
    return int(round(seconds * NS_PER_S))


@dataclass(frozen=True, slots=True)
class Pending:
    """Nothing to emit yet. ``wake`` (ns, context time) asks to be asked again then even if no event arrives;
    ``None`` means only an event (a completion) can change the answer."""

    wake: int | None = None


PENDING = Pending()


@dataclass(frozen=True, slots=True, init=False)
class Context:
    """What a generator may know: the time, the threads it may use, which are free, and their processes.

    ``threads`` is ordered (client threads ascending, then the nemesis); ``free`` is the subset that is idle.
    ``processes`` maps every thread of the run (not only the restricted ones) to its current process.
    ``idle`` lists the free threads least recently busy first (None = in ``threads`` order): taking the first of
    it spreads ops over the threads, hence over the nodes they talk to.
    """

    time: int
    threads: tuple[Thread, ...]
    free: frozenset[Thread]
    processes: Mapping[Thread, int | str]
    concurrency: int
    idle: tuple[Thread, ...] | None = None

    def __init__(self, time: int, threads: tuple[Thread, ...], free: frozenset[Thread],
                 processes: Mapping[Thread, int | str], concurrency: int,
                 idle: tuple[Thread, ...] | None = None) -> None:
        # The dataclass's __init__ with the slot setters instead of object.__setattr__ (a frozen dataclass's way):
        # the interpreter builds two contexts per operation. Same fields, order and defaults (a test holds it).
        s = _CONTEXT_SETTERS
        s[0](self, time)
        s[1](self, threads)
        s[2](self, free)
        s[3](self, processes)
        s[4](self, concurrency)
        s[5](self, idle)

    @classmethod
    def initial(cls, concurrency: int, *, nemesis: bool = True, time: int = 0) -> Context:
        """All threads free, each running its first process. Handy in tests."""
        threads: tuple[Thread, ...] = tuple(range(concurrency)) + ((NEMESIS,) if nemesis else ())
        return cls(time=time, threads=threads, free=frozenset(threads),
                   processes={t: t for t in threads}, concurrency=concurrency)

    def some_free_thread(self) -> Thread | None:
        """The least recently busy free thread (or the first in order), or None when all are busy."""
        if self.idle is not None:
            return self.idle[0] if self.idle else None
        for t in self.threads:
            if t in self.free:
                return t
        return None

    def free_threads(self) -> list[Thread]:
        if self.idle is not None:
            return list(self.idle)
        return [t for t in self.threads if t in self.free]

    def thread_of(self, process: int | str) -> Thread:
        """The thread that runs (or ran) a process."""
        if isinstance(process, int):
            return process % self.concurrency
        return process

    def restrict(self, threads: Iterable[Thread]) -> Context:
        keep = set(threads)
        if keep.issuperset(self.threads):  # nothing to take away (the common case: it runs for every op)
            return self
        return Context(self.time, tuple(t for t in self.threads if t in keep),
                       frozenset(t for t in self.free if t in keep), self.processes, self.concurrency,
                       None if self.idle is None else tuple(t for t in self.idle if t in keep))

    def without_nemesis(self) -> Context:
        """The client threads only (``self`` itself when the nemesis thread is not in it)."""
        if NEMESIS not in self.threads:
            return self
        return self.restrict(t for t in self.threads if t != NEMESIS)

    def at(self, time: int) -> Context:
        return replace(self, time=time)


_CONTEXT_SETTERS = tuple(Context.__dict__[f.name].__set__ for f in fields(Context))


OpResult: TypeAlias = "tuple[Op | Pending, Generator | None] | None"


class Generator:
    """Base of all generators. Subclasses are frozen dataclasses; see the module docstring for the contract."""

    def op(self, ctx: Context) -> OpResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, ctx: Context, event: Op) -> Generator:
        return self


GenLike: TypeAlias = Generator | Mapping[str, Any] | Sequence[Any] | None

_TEMPLATE_KEYS = frozenset({"f", "key", "value", "node"})


def _check_template(template: Mapping[str, Any]) -> None:
    if "f" not in template or not isinstance(template["f"], str):
        raise GeneratorError(f"an op template needs a string 'f': {dict(template)!r}")
    extra = set(template) - _TEMPLATE_KEYS
    if extra:
        raise GeneratorError(f"unknown keys {sorted(extra)} in op template {dict(template)!r}")


def fill_in(template: Mapping[str, Any], ctx: Context) -> Op | Pending:
    """The invoke op for a template on the first free thread at ctx.time, or PENDING if no thread is free."""
    thread = ctx.some_free_thread()
    if thread is None:
        return PENDING
    return Op(process=ctx.processes[thread], type="invoke", f=template["f"], key=template.get("key"),
              value=template.get("value"), node=template.get("node"), time=ctx.time)


def lift(g: GenLike) -> Generator | None:
    """Coerce: a Generator stays itself; a template mapping emits itself once; a sequence runs its items one
    after the other (Jepsen's vector semantics); None is the empty generator."""
    if g is None or isinstance(g, Generator):
        return g
    if isinstance(g, Mapping):
        _check_template(g)
        return Once(dict(g))
    if isinstance(g, Sequence) and not isinstance(g, str | bytes):
        return Seq(tuple(lift(x) for x in g))
    raise GeneratorError(f"not a generator, template or sequence: {g!r}")


def _mix64(x: int) -> int:
    """SplitMix64 finaliser: the pure step behind every random choice here."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def _unit(state: int) -> float:
    """A float in [0, 1) drawn from a state (pure)."""
    return (_mix64(state) >> 11) / float(1 << 53)


def _next_state(state: int) -> int:
    return (state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF


def draw(state: int) -> tuple[float, int]:
    """A float in [0, 1) drawn from ``state``, and the state to draw the next one from (pure: SplitMix64). For
    generators that carry their randomness in their own state: cheaper per op than a random.Random seeded anew."""
    return _unit(state), _next_state(state)


# ---------------------------------------------------------------------------------------------------- leaves


@dataclass(frozen=True, slots=True)
class Once(Generator):
    """Emits one op from a template, then is exhausted."""

    template: Mapping[str, Any]

    def op(self, ctx: Context) -> OpResult:
        x = fill_in(self.template, ctx)
        return (x, self) if isinstance(x, Pending) else (x, None)


@dataclass(frozen=True, slots=True)
class Fn(Generator):
    """Calls ``f(rng, ctx)`` for each op: it returns a template, or None to end. ``rng`` is a fresh
    ``random.Random`` seeded from this generator's state, so answers are reproducible; ``f`` must not keep it."""

    f: Callable[[random.Random, Context], Mapping[str, Any] | None]
    state: int = 0

    def op(self, ctx: Context) -> OpResult:
        if ctx.some_free_thread() is None:
            return PENDING, self
        template = self.f(random.Random(self.state), ctx)
        if template is None:
            return None
        _check_template(template)
        return fill_in(template, ctx), Fn(self.f, _next_state(self.state))


def once(template: Mapping[str, Any]) -> Once:
    """One op from a template (what a bare template means as a generator)."""
    _check_template(template)
    return Once(dict(template))


def fn(f: Callable[[random.Random, Context], Mapping[str, Any] | None], *, seed: int = 0) -> Fn:
    """An op stream from a function of a seeded rng and the context (infinite until f returns None)."""
    return Fn(f, seed & 0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True, slots=True)
class Sleep(Generator):
    """Emits nothing for ``duration`` ns from the first time it is asked, then is exhausted."""

    duration: int
    deadline: int | None = None

    def op(self, ctx: Context) -> OpResult:
        deadline = ctx.time + self.duration if self.deadline is None else self.deadline
        if ctx.time >= deadline:
            return None
        return Pending(deadline), Sleep(self.duration, deadline)


def sleep(seconds: float) -> Sleep:
    return Sleep(secs(seconds))


# ------------------------------------------------------------------------------------------------ sequencing


@dataclass(frozen=True, slots=True)
class Seq(Generator):
    """Runs each generator until exhausted, then the next (Jepsen's vector). Updates go to the current one."""

    gens: tuple[Generator | None, ...]

    def op(self, ctx: Context) -> OpResult:
        gens = self.gens
        while gens:
            head = gens[0]
            res = head.op(ctx) if head is not None else None
            if res is None:
                gens = gens[1:]
                continue
            x, nxt = res
            return x, Seq((nxt, *gens[1:]))
        return None

    def update(self, ctx: Context, event: Op) -> Generator:
        if not self.gens or self.gens[0] is None:
            return self
        return Seq((self.gens[0].update(ctx, event), *self.gens[1:]))


def then(*gens: GenLike) -> Seq:
    """a, then b, then c: each starts when the previous is exhausted (its ops may still be in flight)."""
    return Seq(tuple(lift(g) for g in gens))


@dataclass(frozen=True, slots=True)
class Synchronize(Generator):
    """Waits until every thread of the context is free, then behaves as its generator."""

    gen: Generator | None
    started: bool = False

    def op(self, ctx: Context) -> OpResult:
        if self.gen is None:
            return None
        if not self.started and len(ctx.free) < len(ctx.threads):
            return PENDING, self
        res = self.gen.op(ctx)
        if res is None:
            return None
        x, nxt = res
        return x, Synchronize(nxt, True)

    def update(self, ctx: Context, event: Op) -> Generator:
        if self.gen is None or not self.started:
            return self
        return Synchronize(self.gen.update(ctx, event), True)


def synchronize(gen: GenLike) -> Synchronize:
    return Synchronize(lift(gen))


def phases(*gens: GenLike) -> Seq:
    """Each phase starts once the previous is exhausted AND all its threads are idle (no op in flight)."""
    return Seq(tuple(Synchronize(lift(g)) for g in gens))


@dataclass(frozen=True, slots=True)
class Repeat(Generator):
    """Restarts ``original`` whenever it is exhausted. ``ops_left`` caps emitted ops; ``runs_left`` caps restarts
    (None = unbounded). A generator that is exhausted right after a restart ends the repetition (no busy loop).
    Note: a restart begins from the original state, so a seeded random generator repeats its choices; infinite
    random streams (fn, mix of fns) never need restarting."""

    original: Generator
    current: Generator | None
    ops_left: int | None
    runs_left: int | None
    fresh: bool = True  # current has emitted nothing since (re)start

    def op(self, ctx: Context) -> OpResult:
        if self.ops_left is not None and self.ops_left <= 0:
            return None
        current, runs_left, fresh = self.current, self.runs_left, self.fresh
        for _ in range(2):
            res = current.op(ctx) if current is not None else None
            if res is not None:
                x, nxt = res
                if isinstance(x, Pending):
                    return x, Repeat(self.original, nxt, self.ops_left, runs_left, fresh)
                if self.ops_left is None:
                    if nxt is self.current and runs_left == self.runs_left and not self.fresh:
                        return x, self  # the same state (e.g. a template repeated): no new object per op
                    return x, Repeat(self.original, nxt, None, runs_left, False)
                return x, Repeat(self.original, nxt, self.ops_left - 1, runs_left, False)
            if fresh or (runs_left is not None and runs_left <= 1):
                return None
            current, fresh = self.original, True
            runs_left = None if runs_left is None else runs_left - 1
        return None

    def update(self, ctx: Context, event: Op) -> Generator:
        if self.current is None:
            return self
        cur = self.current.update(ctx, event)
        if cur is self.current:  # generators are immutable: nothing changed, so neither did this one
            return self
        return Repeat(self.original, cur, self.ops_left, self.runs_left, self.fresh)


def repeat(gen: GenLike, n: int | None = None) -> Repeat:
    """Emit ops of ``gen`` forever (or n ops), restarting it when it is exhausted: ``repeat({"f": "read"})``."""
    g = lift(gen)
    if g is None:
        raise GeneratorError("repeat of an empty generator")
    if n is not None and n < 0:
        raise GeneratorError(f"repeat count must be >= 0, got {n}")
    return Repeat(g, g, n, None)


def cycle(gen: GenLike, times: int | None = None) -> Repeat:
    """Run ``gen`` to exhaustion, ``times`` times (None = forever)."""
    g = lift(gen)
    if g is None:
        raise GeneratorError("cycle of an empty generator")
    if times is not None and times < 1:
        raise GeneratorError(f"cycle times must be >= 1, got {times}")
    return Repeat(g, g, None, times)


# ------------------------------------------------------------------------------------------------- limiting


@dataclass(frozen=True, slots=True)
class Limit(Generator):
    """At most ``remaining`` ops of its generator."""

    remaining: int
    gen: Generator | None

    def op(self, ctx: Context) -> OpResult:
        if self.remaining <= 0 or self.gen is None:
            return None
        res = self.gen.op(ctx)
        if res is None:
            return None
        x, nxt = res
        return x, Limit(self.remaining if isinstance(x, Pending) else self.remaining - 1, nxt)

    def update(self, ctx: Context, event: Op) -> Generator:
        return self if self.gen is None else Limit(self.remaining, self.gen.update(ctx, event))


def limit(n: int, gen: GenLike) -> Limit:
    return Limit(n, lift(gen))


@dataclass(frozen=True, slots=True)
class TimeLimit(Generator):
    """Ops of its generator scheduled before ``duration`` ns after the first time it is asked; then exhausted."""

    duration: int
    gen: Generator | None
    deadline: int | None = None

    def op(self, ctx: Context) -> OpResult:
        if self.gen is None:
            return None
        deadline = ctx.time + self.duration if self.deadline is None else self.deadline
        if ctx.time >= deadline:
            return None
        res = self.gen.op(ctx)
        if res is None:
            return None
        x, nxt = res
        if isinstance(x, Pending):
            wake = deadline if x.wake is None else min(x.wake, deadline)
            return Pending(wake), TimeLimit(self.duration, nxt, deadline)
        if x.time >= deadline:
            return None
        if nxt is self.gen and deadline == self.deadline:
            return x, self
        return x, TimeLimit(self.duration, nxt, deadline)

    def update(self, ctx: Context, event: Op) -> Generator:
        if self.gen is None:
            return self
        g = self.gen.update(ctx, event)
        return self if g is self.gen else TimeLimit(self.duration, g, self.deadline)


def time_limit(seconds: float, gen: GenLike) -> TimeLimit:
    if seconds < 0:
        raise GeneratorError(f"time limit must be >= 0, got {seconds}")
    return TimeLimit(secs(seconds), lift(gen))


def _spaced_op(spacer: Delay | Stagger, ctx: Context) -> OpResult:
    """The shared step of Delay and Stagger: the wrapped generator's next op, moved no earlier than the spacer's
    ``next_time``. A Pending comes back with the spacer around the wrapped generator's successor; an op comes back
    with the bare successor, for the caller to wrap with its next gap."""
    if spacer.gen is None:
        return None
    res = spacer.gen.op(ctx)
    if res is None:
        return None
    x, nxt = res
    if isinstance(x, Pending):
        return x, replace(spacer, gen=nxt)
    if spacer.next_time is not None and spacer.next_time > x.time:
        x = replace(x, time=spacer.next_time)
    return x, nxt


@dataclass(frozen=True, slots=True)
class Delay(Generator):
    """Spaces ops ``interval`` ns apart (a total rate over all threads). An op is never scheduled before
    ``next_time``; after a stall (all threads busy) the schedule restarts from the op's time, with no burst."""

    interval: int
    gen: Generator | None
    next_time: int | None = None

    def op(self, ctx: Context) -> OpResult:
        spaced = _spaced_op(self, ctx)
        if spaced is None:
            return None
        x, nxt = spaced
        if isinstance(x, Pending):
            return spaced
        return x, Delay(self.interval, nxt, x.time + self.interval)

    def update(self, ctx: Context, event: Op) -> Generator:
        return self if self.gen is None else replace(self, gen=self.gen.update(ctx, event))


def rate(ops_per_s: float, gen: GenLike) -> Delay:
    """At most ``ops_per_s`` operations per second in total, evenly spaced."""
    if ops_per_s <= 0:
        raise GeneratorError(f"rate must be > 0 ops/s, got {ops_per_s}")
    return Delay(max(1, int(NS_PER_S / ops_per_s)), lift(gen))


def delay(seconds: float, gen: GenLike) -> Delay:
    """One op every ``seconds``."""
    return Delay(secs(seconds), lift(gen))


@dataclass(frozen=True, slots=True)
class Stagger(Generator):
    """Like Delay but each gap is uniform in [0, 2*mean) (Jepsen's stagger), drawn from ``state``."""

    mean: int
    gen: Generator | None
    state: int = 0
    next_time: int | None = None

    def op(self, ctx: Context) -> OpResult:
        spaced = _spaced_op(self, ctx)
        if spaced is None:
            return None
        x, nxt = spaced
        if isinstance(x, Pending):
            return spaced
        gap = int(_unit(self.state) * 2 * self.mean)
        return x, Stagger(self.mean, nxt, _next_state(self.state), x.time + gap)

    def update(self, ctx: Context, event: Op) -> Generator:
        return self if self.gen is None else replace(self, gen=self.gen.update(ctx, event))


def stagger(mean_seconds: float, gen: GenLike, *, seed: int = 0) -> Stagger:
    return Stagger(secs(mean_seconds), lift(gen), seed & 0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True, slots=True)
class ConcurrencyLimit(Generator):
    """At most ``n`` of its ops in flight at once. It books an op as in flight in the state returned with it (the
    interpreter commits that state only on dispatch) and frees it on the completion of that process."""

    n: int
    gen: Generator | None
    in_flight: frozenset[int | str] = frozenset()

    def op(self, ctx: Context) -> OpResult:
        if self.gen is None:
            return None
        if len(self.in_flight) >= self.n:
            return PENDING, self
        res = self.gen.op(ctx)
        if res is None:
            return None
        x, nxt = res
        if isinstance(x, Pending):
            return x, replace(self, gen=nxt)
        return x, ConcurrencyLimit(self.n, nxt, self.in_flight | {x.process})

    def update(self, ctx: Context, event: Op) -> Generator:
        in_flight = self.in_flight
        if event.type != "invoke" and event.process in in_flight:
            in_flight = in_flight - {event.process}
        gen = None if self.gen is None else self.gen.update(ctx, event)
        return ConcurrencyLimit(self.n, gen, in_flight)


def concurrency_limit(n: int, gen: GenLike) -> ConcurrencyLimit:
    if n < 1:
        raise GeneratorError(f"concurrency limit must be >= 1, got {n}")
    return ConcurrencyLimit(n, lift(gen))


@dataclass(frozen=True, slots=True)
class UntilOk(Generator):
    """Ops of its generator until one of them completes ok (Jepsen's until-ok). Ops already in flight then still
    complete; no new one is emitted."""

    gen: Generator | None
    in_flight: frozenset[int | str] = frozenset()
    done: bool = False

    def op(self, ctx: Context) -> OpResult:
        if self.done or self.gen is None:
            return None
        res = self.gen.op(ctx)
        if res is None:
            return None
        x, nxt = res
        if isinstance(x, Pending):
            return x, replace(self, gen=nxt)
        return x, UntilOk(nxt, self.in_flight | {x.process}, False)

    def update(self, ctx: Context, event: Op) -> Generator:
        if event.type == "invoke" or event.process not in self.in_flight:
            return self if self.gen is None else replace(self, gen=self.gen.update(ctx, event))
        gen = None if self.gen is None else self.gen.update(ctx, event)
        return UntilOk(gen, self.in_flight - {event.process}, self.done or event.type == "ok")


def until_ok(gen: GenLike) -> UntilOk:
    return UntilOk(lift(gen))


# ----------------------------------------------------------------------------------------------- combining


@dataclass(frozen=True, slots=True)
class Mix(Generator):
    """Each op comes from a randomly chosen generator (weighted); exhausted ones drop out; ends when all have.
    If the chosen one is pending, the mix is pending (so weights hold even when one generator is slow)."""

    gens: tuple[Generator, ...]
    weights: tuple[float, ...]
    state: int = 0

    def op(self, ctx: Context) -> OpResult:
        gens, weights = self.gens, self.weights
        for _ in range(len(self.gens) + 1):
            if not gens:
                return None
            u = _unit(self.state) * sum(weights)
            i, acc = 0, weights[0]
            while u >= acc and i < len(weights) - 1:
                i += 1
                acc += weights[i]
            res = gens[i].op(ctx)
            if res is None:
                gens = gens[:i] + gens[i + 1:]
                weights = weights[:i] + weights[i + 1:]
                continue
            x, nxt = res
            if isinstance(x, Pending):
                kept = gens[:i] + ((nxt if nxt is not None else gens[i]),) + gens[i + 1:]
                return x, Mix(kept, weights, self.state)
            new = gens[:i] + ((nxt,) if nxt is not None else ()) + gens[i + 1:]
            new_w = weights if nxt is not None else weights[:i] + weights[i + 1:]
            return x, Mix(new, new_w, _next_state(self.state))
        return None

    def update(self, ctx: Context, event: Op) -> Generator:
        return Mix(tuple(g.update(ctx, event) for g in self.gens), self.weights, self.state)


def mix(gens: Sequence[GenLike], *, weights: Sequence[float] | None = None, seed: int = 0) -> Mix:
    lifted = [lift(g) for g in gens]
    if weights is None:
        weights = [1.0] * len(lifted)
    if len(weights) != len(lifted):
        raise GeneratorError(f"mix: {len(lifted)} generators but {len(weights)} weights")
    if any(w < 0 for w in weights) or (weights and sum(weights) <= 0):
        raise GeneratorError(f"mix: weights must be >= 0 with a positive sum, got {list(weights)}")
    pairs = [(g, float(w)) for g, w in zip(lifted, weights, strict=True) if g is not None and w > 0]
    return Mix(tuple(g for g, _ in pairs), tuple(w for _, w in pairs), seed & 0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True, slots=True)
class Any_(Generator):
    """Several generators side by side: the op with the earliest time wins (ties: the first); pending if all are;
    exhausted when all are. Every update goes to all."""

    gens: tuple[Generator, ...]

    def op(self, ctx: Context) -> OpResult:
        best: tuple[int, Op, Generator | None] | None = None
        wake: int | None = None
        pend_states: dict[int, Generator | None] = {}
        alive: list[int] = []
        for i, g in enumerate(self.gens):
            res = g.op(ctx)
            if res is None:
                continue
            alive.append(i)
            x, nxt = res
            if isinstance(x, Pending):
                pend_states[i] = nxt
                if x.wake is not None:
                    wake = x.wake if wake is None else min(wake, x.wake)
            elif best is None or x.time < best[1].time:
                best = (i, x, nxt)
        if not alive:
            return None
        if best is None:
            # Commit the pending states (they may have set deadlines) of the generators still alive.
            pending = tuple(p for i in alive if (p := pend_states[i]) is not None)
            return Pending(wake), (Any_(pending) if pending else None)
        i, x, nxt = best
        # The chosen one advances; the pending ones keep the state they answered with (deadlines they set must
        # stick); those that offered an op that lost keep their old state (their op was not taken).
        out: list[Generator] = []
        for j in alive:
            if j == i:
                if nxt is not None:
                    out.append(nxt)
            elif j in pend_states:
                if (p := pend_states[j]) is not None:
                    out.append(p)
            else:
                out.append(self.gens[j])
        return x, (Any_(tuple(out)) if out else None)

    def update(self, ctx: Context, event: Op) -> Generator:
        return Any_(tuple(g.update(ctx, event) for g in self.gens))


def any_of(*gens: GenLike) -> Any_:
    return Any_(tuple(g for g in (lift(x) for x in gens) if g is not None))


@dataclass(frozen=True, slots=True)
class OnThreads(Generator):
    """Its generator sees only the given threads, and only the events of processes running on them. Restricted to
    no thread at all (none of the given threads exists in the context), it is exhausted."""

    threads: frozenset[Thread]
    gen: Generator | None

    def op(self, ctx: Context) -> OpResult:
        if self.gen is None:
            return None
        sub = ctx.restrict(self.threads)
        if not sub.threads:
            return None  # no thread can ever run it (e.g. nemesis ops inside clients(...)): exhausted, not a hang
        res = self.gen.op(sub)
        if res is None:
            return None
        x, nxt = res
        if nxt is self.gen:
            return x, self
        return x, (OnThreads(self.threads, nxt) if nxt is not None else None)

    def update(self, ctx: Context, event: Op) -> Generator:
        if self.gen is None or ctx.thread_of(event.process) not in self.threads:
            return self
        g = self.gen.update(ctx.restrict(self.threads), event)
        return self if g is self.gen else OnThreads(self.threads, g)


def _op_within(outer: Generator, gen: Generator | None, sub: Context,
               wrap: Callable[[Generator], Generator]) -> OpResult:
    """The op of ``gen`` seen through the restricted context ``sub`` (exhausted when ``sub`` has no thread), its
    successor wrapped again by ``wrap`` (``outer`` itself when ``gen`` is unchanged)."""
    if gen is None or not sub.threads:
        return None
    res = gen.op(sub)
    if res is None:
        return None
    x, nxt = res
    if nxt is gen:
        return x, outer
    return x, (wrap(nxt) if nxt is not None else None)


@dataclass(frozen=True, slots=True)
class _ClientThreads(Generator):
    """OnThreads for "every thread except the nemesis" (the client count is known only from the context)."""

    gen: Generator | None

    def op(self, ctx: Context) -> OpResult:
        return _op_within(self, self.gen, ctx.without_nemesis(), _ClientThreads)

    def update(self, ctx: Context, event: Op) -> Generator:
        if self.gen is None or event.process == NEMESIS:
            return self
        g = self.gen.update(ctx.without_nemesis(), event)
        return self if g is self.gen else _ClientThreads(g)


def node_index(thread: Thread, nodes: int) -> int | None:
    """The index (into the run's node list) of the node a client thread's worker is bound to: round-robin, thread
    t talks to node t mod nodes. The one statement of that rule: the interpreter opens each worker's client on
    this node, and :func:`on_node` routes ops by it. None for the nemesis thread or when there are no nodes."""
    if not isinstance(thread, int) or nodes < 1:
        return None
    return thread % nodes


@dataclass(frozen=True, slots=True)
class OnNode(Generator):
    """Its generator sees only the client threads bound to node ``index`` of ``nodes`` (:func:`node_index`), and
    only the events of processes running on them: Jepsen's on-threads with the threads chosen by node, since the
    thread count is known only from the context. With no such thread (fewer workers than nodes) it is exhausted."""

    index: int
    nodes: int
    gen: Generator | None

    def _threads(self, ctx: Context) -> list[Thread]:
        return [t for t in ctx.threads if node_index(t, self.nodes) == self.index]

    def op(self, ctx: Context) -> OpResult:
        return _op_within(self, self.gen, ctx.restrict(self._threads(ctx)),
                          lambda g: OnNode(self.index, self.nodes, g))

    def update(self, ctx: Context, event: Op) -> Generator:
        if self.gen is None or node_index(ctx.thread_of(event.process), self.nodes) != self.index:
            return self
        return OnNode(self.index, self.nodes, self.gen.update(ctx.restrict(self._threads(ctx)), event))


def on_node(index: int, nodes: int, gen: GenLike) -> OnNode:
    """Restrict a generator to the client threads whose workers are bound to node ``index`` of ``nodes``."""
    if nodes < 1 or not 0 <= index < nodes:
        raise GeneratorError(f"on_node: node index {index} out of range for {nodes} node(s)")
    return OnNode(index, nodes, lift(gen))


def on_threads(threads: Iterable[Thread], gen: GenLike) -> OnThreads:
    return OnThreads(frozenset(threads), lift(gen))


def clients(gen: GenLike) -> Generator:
    """Restrict a generator to the client threads."""
    return _ClientThreads(lift(gen))


def nemesis(gen: GenLike) -> OnThreads:
    """Restrict a generator to the nemesis thread."""
    return OnThreads(frozenset({NEMESIS}), lift(gen))


def clients_and_nemesis(client_gen: GenLike, nemesis_gen: GenLike) -> Any_:
    """The two streams of a run side by side: client ops on client threads, faults on the nemesis thread."""
    return any_of(clients(client_gen), nemesis(nemesis_gen))


@dataclass(frozen=True, slots=True)
class Map(Generator):
    """Ops of its generator transformed by a pure function ``f(op) -> op`` (process and time must be kept)."""

    f: Callable[[Op], Op]
    gen: Generator | None

    def op(self, ctx: Context) -> OpResult:
        if self.gen is None:
            return None
        res = self.gen.op(ctx)
        if res is None:
            return None
        x, nxt = res
        return (x if isinstance(x, Pending) else self.f(x)), Map(self.f, nxt)

    def update(self, ctx: Context, event: Op) -> Generator:
        return self if self.gen is None else Map(self.f, self.gen.update(ctx, event))


def map_ops(f: Callable[[Op], Op], gen: GenLike) -> Map:
    return Map(f, lift(gen))


@dataclass(frozen=True, slots=True)
class NemesisCycle(Generator):
    """The default fault rhythm: wait ``interval``, start a fault kind chosen at random among ``kinds``, wait
    ``interval``, stop that kind; again, forever (bound it with time_limit). Ops: f = "start" / "stop",
    value = {"fault": kind} (plus ``extra[kind]`` on start). Emits on whatever thread is free, so wrap it in
    :func:`nemesis`."""

    kinds: tuple[str, ...]
    interval: int
    state: int = 0
    stage: int = 0  # 0 wait before start, 1 start, 2 wait before stop, 3 stop
    deadline: int | None = None
    active: str | None = None
    extra: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def op(self, ctx: Context) -> OpResult:
        if not self.kinds:
            return None
        if self.stage in (0, 2):
            deadline = ctx.time + self.interval if self.deadline is None else self.deadline
            if ctx.time < deadline:
                return Pending(deadline), replace(self, deadline=deadline)
            return replace(self, stage=self.stage + 1, deadline=None).op(ctx)
        if self.stage == 1:
            kind = self.kinds[int(_unit(self.state) * len(self.kinds))]
            x = fill_in({"f": "start", "value": {"fault": kind, **self.extra.get(kind, {})}}, ctx)
            if isinstance(x, Pending):
                return x, self
            return x, replace(self, stage=2, active=kind, state=_next_state(self.state))
        x = fill_in({"f": "stop", "value": {"fault": self.active}}, ctx)
        if isinstance(x, Pending):
            return x, self
        return x, replace(self, stage=0, active=None)


def nemesis_cycle(kinds: Sequence[str], interval_s: float, *, seed: int = 0,
                  extra: Mapping[str, Mapping[str, Any]] | None = None) -> NemesisCycle:
    if interval_s <= 0:
        raise GeneratorError(f"nemesis interval must be > 0 s, got {interval_s}")
    return NemesisCycle(tuple(kinds), secs(interval_s), seed & 0xFFFFFFFFFFFFFFFF, extra=dict(extra or {}))


@dataclass(frozen=True, slots=True)
class Spawned:
    """What a :func:`spawn` draw returns: a generator to run from now on beside the others (None: nothing this
    time), the ``tags`` it holds while it runs (the next draws see the union of the running ones' tags, e.g. the
    fault kinds in use), and ``after``, the ns until the next draw (> 0)."""

    gen: Generator | None
    tags: frozenset[str] = frozenset()
    after: int = 1

    def __post_init__(self) -> None:
        if self.after <= 0:
            raise GeneratorError(f"spawn: the next draw must come later (after > 0 ns), got {self.after}")


Draw: TypeAlias = Callable[[random.Random, Context, frozenset[str]], Spawned | None]


@dataclass(frozen=True, slots=True)
class Spawn(Generator):
    """Draws a new generator every so often and runs it beside those still running (each as in :func:`any_of`:
    the earliest op wins). ``draw(rng, ctx, busy)`` is called at the draw times with an rng seeded from this
    generator's state and ``busy``, the union of the running generators' tags; it returns a :class:`Spawned`, or
    None to draw no more (the running ones still finish). A running generator drops out, and its tags with it, when
    it is exhausted. Exhausted when no more draws come and none runs."""

    draw: Draw
    state: int
    first: int  # ns from the first time asked to the first draw
    next_time: int | None = None  # None before the first ask; then the time of the next draw
    running: tuple[tuple[Generator, frozenset[str]], ...] = ()
    drawing: bool = True

    def _drawn(self, ctx: Context) -> Spawn:
        """This generator after the draws due at ctx.time (at most one: a draw sets the next one after now)."""
        next_time = ctx.time + self.first if self.next_time is None else self.next_time
        if not self.drawing or ctx.time < next_time:
            return self if next_time == self.next_time else replace(self, next_time=next_time)
        busy = frozenset().union(*(tags for _, tags in self.running))
        got = self.draw(random.Random(self.state), ctx, busy)
        if got is None:
            return replace(self, next_time=next_time, state=_next_state(self.state), drawing=False)
        running = self.running + (((got.gen, got.tags),) if got.gen is not None else ())
        return replace(self, next_time=ctx.time + got.after, state=_next_state(self.state), running=running)

    def op(self, ctx: Context) -> OpResult:
        me = self._drawn(ctx)
        assert me.next_time is not None
        best: tuple[int, Op, Generator | None] | None = None
        wake = me.next_time if me.drawing else None
        answered: dict[int, Generator | None] = {}  # index -> state kept (a pending one's: the state it answered with)
        for i, (g, _) in enumerate(me.running):
            res = g.op(ctx)
            if res is None:
                continue
            x, nxt = res
            if isinstance(x, Pending):
                answered[i] = nxt
                if x.wake is not None:
                    wake = x.wake if wake is None else min(wake, x.wake)
                continue
            answered[i] = g  # an op that loses is not taken: its generator keeps its old state
            if best is None or x.time < best[1].time:
                best = (i, x, nxt)
        kept: list[tuple[Generator, frozenset[str]]] = []
        for i, (_, tags) in enumerate(me.running):
            state = best[2] if best is not None and best[0] == i else answered.get(i)
            if state is not None:
                kept.append((state, tags))
        same = len(kept) == len(me.running) and all(a[0] is b[0] for a, b in zip(kept, me.running, strict=True))
        after = me if same else replace(me, running=tuple(kept))  # asked on every client op: no needless copies
        if best is not None:
            return best[1], after
        if not kept and not me.drawing:
            return None
        return Pending(wake), after

    def update(self, ctx: Context, event: Op) -> Generator:
        if not self.running:
            return self
        return replace(self, running=tuple((g.update(ctx, event), tags) for g, tags in self.running))


def spawn(draw: Draw, *, first_s: float, seed: int = 0) -> Spawn:
    """A new generator from ``draw`` at ``first_s`` after the first ask and then whenever the last draw said, run
    beside the others still running (see :class:`Spawn`). For schedules of overlapping episodes (harness.hunt)."""
    if first_s < 0:
        raise GeneratorError(f"spawn: the first draw must be at >= 0 s, got {first_s}")
    return Spawn(draw, seed & 0xFFFFFFFFFFFFFFFF, secs(first_s))


def stop_all(kinds: Sequence[str]) -> Seq:
    """One stop op per fault kind (a final heal expressed as ops, so it shows in the history)."""
    return then(*({"f": "stop", "value": {"fault": k}} for k in kinds))


def simulate(gen: GenLike, ctx: Context, *, complete: Callable[[Op], tuple[str, int]] | None = None,
             max_ops: int = 10_000) -> list[Op]:
    """Run a generator on virtual time, with no threads: the interpreter's rules without the waiting. Every op is
    dispatched when offered (its thread busy from then), sent at its own time, and completes
    ``complete(op) -> (type, latency_ns)`` later (default ok after 0 ns). Returns the history (invokes and
    completions, context times, in time order). For tests and for reasoning about schedules; at most ``max_ops``
    invokes."""
    import heapq

    g = lift(gen)
    complete = complete or (lambda op: ("ok", 0))
    history: list[Op] = []
    processes = dict(ctx.processes)
    idle: dict[Thread, None] = dict.fromkeys(ctx.free_threads())
    now = ctx.time
    heap: list[tuple[int, int, int, Op, str]] = []  # (time, seq, 0 invoke / 1 completion, op, completion type)
    seq = 0
    invokes = 0

    def context() -> Context:
        return Context(now, ctx.threads, frozenset(idle), dict(processes), ctx.concurrency, tuple(idle))

    def deliver_until(t: int) -> None:
        nonlocal g, seq
        while heap and heap[0][0] <= t:
            when, _, kind, op, typ = heapq.heappop(heap)
            if kind == 0:
                history.append(op)
                typ, latency = complete(op)
                heapq.heappush(heap, (when + max(0, latency), seq, 1, op, typ))
                seq += 1
                continue
            done = replace(op, type=typ, time=when)  # type: ignore[arg-type]
            history.append(done)
            thread = context().thread_of(op.process)
            idle[thread] = None
            if typ == "info" and isinstance(op.process, int):
                processes[thread] = op.process + ctx.concurrency
            if g is not None:
                g = g.update(context(), done)

    while g is not None and invokes < max_ops:
        res = g.op(context())
        if res is None:
            g = None
            break
        x, nxt = res
        if isinstance(x, Pending):
            g = nxt if nxt is not None else g
            nexts = [t for t in ((heap[0][0] if heap else None), x.wake) if t is not None]
            if not nexts:
                raise GeneratorError("generator is pending forever: nothing in flight and no wake time")
            if min(nexts) <= now and not (heap and heap[0][0] <= now):
                raise GeneratorError(f"generator is pending with a wake time in the past ({x}) at {now}")
            now = max(now, min(nexts))
            deliver_until(now)
            continue
        thread = context().thread_of(x.process)
        if thread not in idle or processes[thread] != x.process:
            raise GeneratorError(f"generator emitted {x} for a busy or unknown process")
        del idle[thread]
        x = replace(x, time=max(now, x.time))
        g = nxt.update(context(), x) if nxt is not None else None
        heapq.heappush(heap, (x.time, seq, 0, x, ""))
        seq += 1
        invokes += 1
    deliver_until(1 << 62)
    return history
