"""Generators as pure functions: no threads, no sleeps, no clocks (harness.generator.simulate is virtual time)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness import generator as g
from harness.generator import NEMESIS, Context, GeneratorError, Pending, secs
from harness.protocols import Op

MS = 1_000_000


def invokes(history: list[Op]) -> list[Op]:
    return [op for op in history if op.type == "invoke"]


def test_a_template_emits_itself_once_on_the_first_free_thread() -> None:
    ctx = Context.initial(3, nemesis=False, time=5)
    x, nxt = g.lift({"f": "read", "key": 1}).op(ctx)
    assert x == Op(process=0, type="invoke", f="read", key=1, time=5)
    assert nxt is None


def test_once_is_a_template_as_a_generator() -> None:
    h = g.simulate(g.once({"f": "w", "value": 3}), Context.initial(2, nemesis=False))
    assert [(op.type, op.f, op.value) for op in h] == [("invoke", "w", 3), ("ok", "w", 3)]
    with pytest.raises(GeneratorError):
        g.once({"value": 1})


def test_no_free_thread_means_pending_and_the_same_state() -> None:
    ctx = Context(0, (0, 1), frozenset(), {0: 0, 1: 1}, 2)
    once = g.lift({"f": "read"})
    assert once.op(ctx) == (g.PENDING, once)


def test_op_is_pure_same_question_same_answer() -> None:
    gen = g.mix([g.repeat({"f": "read"}), g.repeat({"f": "write", "value": 1})], seed=42)
    ctx = Context.initial(2)
    assert gen.op(ctx) == gen.op(ctx)


def test_bad_templates_are_refused_with_the_culprit_named() -> None:
    with pytest.raises(GeneratorError, match="'f'"):
        g.lift({"value": 1})
    with pytest.raises(GeneratorError, match="unknown keys"):
        g.lift({"f": "read", "proces": 1})
    with pytest.raises(GeneratorError):
        g.lift(42)  # type: ignore[arg-type]


def test_sequence_runs_items_in_order() -> None:
    h = g.simulate([{"f": "a"}, {"f": "b"}, {"f": "c"}], Context.initial(1, nemesis=False))
    assert [op.f for op in invokes(h)] == ["a", "b", "c"]


def test_repeat_n_and_forever_with_limit() -> None:
    ctx = Context.initial(2, nemesis=False)
    assert len(invokes(g.simulate(g.repeat({"f": "r"}, 7), ctx))) == 7
    assert len(invokes(g.simulate(g.limit(5, g.repeat({"f": "r"})), ctx))) == 5


def test_cycle_restarts_a_finite_generator() -> None:
    h = g.simulate(g.cycle([{"f": "a"}, {"f": "b"}], times=3), Context.initial(1, nemesis=False))
    assert [op.f for op in invokes(h)] == ["a", "b"] * 3


def test_repeat_of_an_empty_sequence_ends_instead_of_spinning() -> None:
    assert g.simulate(g.repeat([]), Context.initial(1, nemesis=False)) == []


def test_mix_is_reproducible_from_its_seed_and_respects_weights() -> None:
    def fs(seed: int) -> list[str]:
        gen = g.limit(400, g.mix([g.repeat({"f": "read"}), g.repeat({"f": "write"})], weights=[3, 1], seed=seed))
        return [op.f for op in invokes(g.simulate(gen, Context.initial(4, nemesis=False)))]

    a, b, c = fs(1), fs(1), fs(2)
    assert a == b
    assert a != c
    reads = a.count("read")
    assert 250 < reads < 350, reads  # expectation 300 of 400


def test_mix_drops_exhausted_generators_and_ends_when_all_are() -> None:
    gen = g.mix([g.repeat({"f": "a"}, 3), g.repeat({"f": "b"}, 2)], seed=9)
    fs = sorted(op.f for op in invokes(g.simulate(gen, Context.initial(1, nemesis=False))))
    assert fs == ["a", "a", "a", "b", "b"]


def test_fn_draws_from_a_seeded_rng_reproducibly() -> None:
    def run(seed: int) -> list[int]:
        gen = g.limit(20, g.fn(lambda rng, ctx: {"f": "w", "value": rng.randint(0, 10**9)}, seed=seed))
        return [op.value for op in invokes(g.simulate(gen, Context.initial(2, nemesis=False)))]

    assert run(5) == run(5)
    assert run(5) != run(6)
    assert len(set(run(5))) == 20  # a fresh draw each op, not the same value repeated


def test_fn_returning_none_ends_the_stream() -> None:
    gen = g.fn(lambda rng, ctx: {"f": "x"} if ctx.time < 3 * MS else None)
    h = g.simulate(g.delay(0.001, gen), Context.initial(1, nemesis=False))
    # fn sees the time it is asked at (the previous op's dispatch), the delay pushes each op 1 ms later.
    assert [op.time for op in invokes(h)] == [0, MS, 2 * MS, 3 * MS]


def test_rate_spaces_ops_evenly_over_all_threads() -> None:
    gen = g.time_limit(1.0, g.rate(100, g.repeat({"f": "r"})))
    h = invokes(g.simulate(gen, Context.initial(8, nemesis=False), complete=lambda op: ("ok", 3 * MS)))
    assert len(h) == 100
    gaps = {b.time - a.time for a, b in zip(h, h[1:], strict=False)}
    assert gaps == {10 * MS}
    assert len({op.process for op in h}) > 1  # spread over threads


def test_rate_does_not_burst_after_a_stall() -> None:
    # One thread, 100 ms latency, rate 100/s: the thread is the bottleneck; ops go back to back, never two at once.
    gen = g.time_limit(1.0, g.rate(100, g.repeat({"f": "r"})))
    h = invokes(g.simulate(gen, Context.initial(1, nemesis=False), complete=lambda op: ("ok", 100 * MS)))
    times = [op.time for op in h]
    assert times == [i * 100 * MS for i in range(10)]


def test_time_limit_counts_from_its_first_ask_and_cuts_ops_at_the_deadline() -> None:
    gen = g.time_limit(0.05, g.delay(0.01, g.repeat({"f": "r"})))
    h = invokes(g.simulate(gen, Context.initial(1, nemesis=False, time=secs(7))))
    assert [op.time - secs(7) for op in h] == [0, 10 * MS, 20 * MS, 30 * MS, 40 * MS]


def test_stagger_mean_gap_is_about_the_mean_and_reproducible() -> None:
    def times(seed: int) -> list[int]:
        gen = g.limit(200, g.stagger(0.01, g.repeat({"f": "r"}), seed=seed))
        return [op.time for op in invokes(g.simulate(gen, Context.initial(4, nemesis=False)))]

    t = times(3)
    assert t == times(3)
    mean_gap = (t[-1] - t[0]) / (len(t) - 1)
    assert 7 * MS < mean_gap < 13 * MS
    assert len({b - a for a, b in zip(t, t[1:], strict=False)}) > 50  # random gaps, not a fixed delay


def test_sleep_then_ops() -> None:
    h = invokes(g.simulate(g.then(g.sleep(2), {"f": "late"}), Context.initial(1, nemesis=False)))
    assert [(op.f, op.time) for op in h] == [("late", secs(2))]


def test_phases_wait_for_in_flight_ops_then_continues() -> None:
    gen = g.phases(g.repeat({"f": "slow"}, 2), {"f": "after"})
    h = g.simulate(gen, Context.initial(2, nemesis=False),
                   complete=lambda op: ("ok", 50 * MS if op.f == "slow" else 0))
    after = next(op for op in h if op.f == "after")
    slow_done = [op.time for op in h if op.f == "slow" and op.type == "ok"]
    assert after.time >= max(slow_done) == 50 * MS


def test_then_does_not_wait_for_in_flight_ops() -> None:
    gen = g.then(g.repeat({"f": "slow"}, 1), {"f": "next"})
    h = g.simulate(gen, Context.initial(2, nemesis=False),
                   complete=lambda op: ("ok", 50 * MS if op.f == "slow" else 0))
    assert next(op for op in h if op.f == "next").time == 0


def test_concurrency_limit_caps_ops_in_flight() -> None:
    gen = g.limit(20, g.concurrency_limit(2, g.repeat({"f": "r"})))
    h = g.simulate(gen, Context.initial(6, nemesis=False), complete=lambda op: ("ok", 10 * MS))
    in_flight = peak = 0
    for op in h:
        in_flight += 1 if op.type == "invoke" else -1
        peak = max(peak, in_flight)
    assert peak == 2
    assert len(invokes(h)) == 20


def test_until_ok_stops_after_the_first_ok_and_lets_in_flight_ones_finish() -> None:
    calls = {"n": 0}

    def complete(op: Op) -> tuple[str, int]:
        calls["n"] += 1
        return ("ok", 5 * MS) if calls["n"] >= 4 else ("fail", 5 * MS)

    gen = g.until_ok(g.repeat({"f": "read"}))
    h = g.simulate(gen, Context.initial(1, nemesis=False), complete=complete)
    types = [op.type for op in h if op.type != "invoke"]
    assert types == ["fail", "fail", "fail", "ok"]


def test_an_info_retires_the_process_and_the_thread_continues_under_process_plus_concurrency() -> None:
    outcomes = iter(["ok", "info", "ok", "info", "ok"])
    gen = g.on_threads([1], g.repeat({"f": "w"}, 5))
    h = g.simulate(gen, Context.initial(3, nemesis=False), complete=lambda op: (next(outcomes), 1))
    assert [op.process for op in invokes(h)] == [1, 1, 4, 4, 7]
    assert [op.type for op in h if op.type != "invoke"] == ["ok", "info", "ok", "info", "ok"]


def test_clients_and_nemesis_streams_use_their_own_threads() -> None:
    gen = g.clients_and_nemesis(g.time_limit(1, g.rate(50, g.repeat({"f": "r"}))),
                                g.time_limit(1, g.nemesis_cycle(["partition"], 0.3, seed=1)))
    h = invokes(g.simulate(gen, Context.initial(2), complete=lambda op: ("ok", MS)))
    nem = [op for op in h if op.process == NEMESIS]
    cli = [op for op in h if op.process != NEMESIS]
    assert [(op.f, op.time) for op in nem] == [("start", secs(0.3)), ("stop", secs(0.6)), ("start", secs(0.9))]
    assert all(op.value == {"fault": "partition"} for op in nem)
    assert len(cli) == 50 and all(op.f == "r" for op in cli)


def test_nemesis_cycle_reproducible_kinds_and_stop_matches_start() -> None:
    def kinds(seed: int) -> list[tuple[str, str]]:
        gen = g.nemesis(g.time_limit(10, g.nemesis_cycle(["partition", "kill", "pause"], 0.5, seed=seed)))
        h = invokes(g.simulate(gen, Context.initial(1)))
        return [(op.f, op.value["fault"]) for op in h]

    a = kinds(11)
    assert a == kinds(11)
    assert a != kinds(12)
    assert len({k for _, k in a}) > 1
    for start, stop in zip(a[::2], a[1::2], strict=False):
        assert start[0] == "start" and stop == ("stop", start[1])


def test_any_of_takes_the_earliest_op_and_keeps_both_deadlines() -> None:
    # A busy client stream must not push the nemesis's sleep deadline forward (regression: it once did).
    gen = g.any_of(g.clients(g.time_limit(2, g.delay(0.001, g.repeat({"f": "r"})))),
                   g.nemesis(g.then(g.sleep(1), {"f": "start", "value": {"fault": "x"}})))
    h = invokes(g.simulate(gen, Context.initial(1), complete=lambda op: ("ok", 0)))
    start = next(op for op in h if op.f == "start")
    assert start.time == secs(1)


def test_on_threads_restricts_threads_and_events() -> None:
    gen = g.on_threads([1], g.repeat({"f": "r"}, 3))
    h = invokes(g.simulate(gen, Context.initial(3, nemesis=False)))
    assert {op.process for op in h} == {1}


def test_map_ops_transforms_and_stop_all_emits_one_stop_per_kind() -> None:
    gen = g.map_ops(lambda op: Op(**{**{s: getattr(op, s) for s in op.__slots__}, "key": "k"}),
                    g.repeat({"f": "r"}, 2))
    assert [op.key for op in invokes(g.simulate(gen, Context.initial(1, nemesis=False)))] == ["k", "k"]
    h = invokes(g.simulate(g.stop_all(["a", "b"]), Context.initial(0)))
    assert [(op.f, op.value) for op in h] == [("stop", {"fault": "a"}), ("stop", {"fault": "b"})]


def test_idle_order_spreads_ops_over_threads() -> None:
    ctx = Context(0, (0, 1, 2), frozenset({0, 1, 2}), {0: 0, 1: 1, 2: 2}, 3, idle=(2, 0, 1))
    x, _ = g.lift({"f": "r"}).op(ctx)
    assert isinstance(x, Op) and x.process == 2


def test_pending_forever_is_reported_not_hung() -> None:
    class Never(g.Generator):
        def op(self, ctx: Context) -> g.OpResult:
            return Pending(), self

    with pytest.raises(GeneratorError, match="pending forever"):
        g.simulate(Never(), Context.initial(1, nemesis=False))


def test_argument_errors() -> None:
    with pytest.raises(GeneratorError):
        g.rate(0, {"f": "r"})
    with pytest.raises(GeneratorError):
        g.mix([{"f": "a"}], weights=[1, 2])
    with pytest.raises(GeneratorError):
        g.concurrency_limit(0, {"f": "a"})
    with pytest.raises(GeneratorError):
        g.nemesis_cycle(["p"], 0)


def test_the_hand_written_context_init_takes_every_field_in_order_with_its_default() -> None:
    """Context.__init__ is written out for speed: same fields, same order, same defaults; still frozen."""
    import dataclasses
    import inspect

    params = inspect.signature(Context.__init__).parameters
    declared = dataclasses.fields(Context)
    assert [n for n in params if n != "self"] == [f.name for f in declared]
    for f in declared:
        assert params[f.name].default == (inspect.Parameter.empty if f.default is dataclasses.MISSING
                                          else f.default), f.name
    ctx = Context(7, (0, 1), frozenset({1}), {0: 0, 1: 3}, 2, (1,))
    assert (ctx.time, ctx.threads, ctx.free, ctx.processes, ctx.concurrency, ctx.idle) == (
        7, (0, 1), frozenset({1}), {0: 0, 1: 3}, 2, (1,))
    assert ctx.at(9) == Context(9, (0, 1), frozenset({1}), {0: 0, 1: 3}, 2, idle=(1,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.time = 8  # type: ignore[misc]


def test_on_node_routes_ops_to_the_workers_bound_to_that_node() -> None:
    """Seven workers on three nodes: node 1's workers are threads 1 and 4 (g.node_index, the interpreter's rule);
    an op stream restricted to node 1 runs on them alone, and is told only of their events."""
    assert [g.node_index(t, 3) for t in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert g.node_index(g.NEMESIS, 3) is None and g.node_index(0, 0) is None
    ctx = g.Context.initial(7)
    history = g.simulate(g.on_node(1, 3, g.repeat({"f": "read"}, 10)), ctx,
                           complete=lambda op: ("info" if op.process == 1 else "ok", 1000))
    threads = {ctx.thread_of(o.process) for o in history}
    assert threads == {1, 4}
    assert 8 in {o.process for o in history}, "thread 1 continues under a new process after its info"
    seen: list[Op] = []

    @dataclass(frozen=True)
    class Spy(g.Generator):
        def op(self, ctx: g.Context) -> g.OpResult:
            return g.fill_in({"f": "read"}, ctx), self

        def update(self, ctx: g.Context, event: Op) -> g.Generator:
            seen.append(event)
            return self

    spy = g.on_node(2, 3, Spy())
    spy.update(ctx, Op(process=0, type="ok", f="read"))
    spy.update(ctx, Op(process=5, type="ok", f="read"))
    assert [e.process for e in seen] == [5]
    with pytest.raises(g.GeneratorError, match="out of range"):
        g.on_node(3, 3, {"f": "read"})
    # No worker bound to the node (fewer workers than nodes): exhausted, not pending forever.
    assert g.on_node(2, 3, g.repeat({"f": "read"})).op(g.Context.initial(2)) is None
