"""The nemesis rhythm beside a rate-limited client stream, under the interpreter's commit rule.

harness.generator.simulate dispatches a future op at once (jumping the clock), so it commits every state; the real
interpreter instead holds a future op and re-asks the generator's *old* state at its time. This test drives the
generators the way the interpreter does, and checks that faults start and stop every --nemesis-interval while the
clients keep offering rate-limited ops. (Before the fix in Any_, the nemesis cycle re-fixed its deadline on every
ask and fired only once the clients' time limit had passed.)"""

from __future__ import annotations

import random
from dataclasses import replace

from harness import generator as gen
from harness.protocols import Op
from workloads.register import generator as register_generator

S = gen.NS_PER_S


def drive(g: gen.Generator | None, ctx: gen.Context, *, until_ns: int, latency_ns: int) -> list[Op]:
    """The interpreter's loop, with virtual time and ops that complete after a fixed latency."""
    history: list[Op] = []
    now = 0
    free = set(ctx.threads)
    in_flight: list[tuple[int, Op]] = []
    for _ in range(200_000):
        if g is None or now > until_ns:
            break
        for done_at, inv in sorted(in_flight, key=lambda p: p[0]):
            if done_at <= now:
                in_flight.remove((done_at, inv))
                free.add(inv.process if inv.process == gen.NEMESIS else inv.process % ctx.concurrency)
                comp = replace(inv, type="info" if inv.process == gen.NEMESIS else "ok", time=done_at)
                history.append(comp)
                g = g.update(replace(ctx, time=now, free=frozenset(free)), comp)
        c = replace(ctx, time=now, free=frozenset(free))
        res = g.op(c)
        if res is None:
            break
        x, nxt = res
        soonest = min((d for d, _ in in_flight), default=None)
        if isinstance(x, gen.Pending):
            g = nxt if nxt is not None else g
            now = min(t for t in (x.wake, soonest, until_ns + 1) if t is not None)
            continue
        if x.time > now:  # hold the op, keep the OLD state, re-ask at its time (or at a completion)
            now = min(t for t in (x.time, soonest) if t is not None)
            continue
        free.discard(x.process if x.process == gen.NEMESIS else x.process % ctx.concurrency)
        history.append(x)
        in_flight.append((now + latency_ns, x))
        g = nxt.update(c, x) if nxt is not None else None
    return history


def test_faults_follow_the_interval_beside_rate_limited_clients() -> None:
    clients = gen.time_limit(20, gen.rate(100, register_generator({"keys": 4}, random.Random(1))))
    nemesis = gen.time_limit(20, gen.nemesis_cycle(["partition"], 4.0, seed=3))
    history = drive(gen.clients_and_nemesis(clients, nemesis), gen.Context.initial(5), until_ns=25 * S,
                    latency_ns=5_000_000)
    starts = [op.time / S for op in history if op.process == gen.NEMESIS and op.type == "invoke"]
    assert [round(t) for t in starts] == [4, 8, 12, 16], starts
    client_ops = [op for op in history if op.process != gen.NEMESIS and op.type == "invoke"]
    assert 1800 <= len(client_ops) <= 2001, "the clients keep their rate meanwhile"
    assert any(4 < op.time / S < 8 for op in client_ops), "client ops run during the first fault"
