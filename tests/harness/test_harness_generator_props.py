"""Properties of arbitrary generator compositions (Hypothesis): whatever the tree, simulation is deterministic,
never puts two ops on one process at once, keeps time monotonic, and every process alternates invoke/completion."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness import generator as g
from harness.generator import Context, Generator
from harness.protocols import Op

templates = st.sampled_from([{"f": "read"}, {"f": "write", "value": 1}, {"f": "cas", "value": [1, 2]}])

leaves = st.one_of(
    st.builds(lambda t, n: g.repeat(t, n), templates, st.integers(0, 5)),
    st.builds(lambda s, n: g.limit(n, g.fn(lambda rng, ctx: {"f": "w", "value": rng.randint(0, 9)}, seed=s)),
              st.integers(0, 2**32), st.integers(0, 6)),
    st.builds(lambda ms: g.sleep(ms / 1000), st.integers(0, 50)),
    templates.map(g.lift),
)


def extend(children: st.SearchStrategy[Generator]) -> st.SearchStrategy[Generator]:
    two = st.lists(children, min_size=1, max_size=3)
    return st.one_of(
        st.builds(lambda gs, s: g.mix(gs, seed=s), two, st.integers(0, 2**32)),
        two.map(lambda gs: g.then(*gs)),
        two.map(lambda gs: g.phases(*gs)),
        st.builds(lambda n, c: g.limit(n, c), st.integers(0, 8), children),
        st.builds(lambda ms, c: g.time_limit(ms / 1000, c), st.integers(0, 200), children),
        st.builds(lambda r, c: g.rate(r, c), st.integers(1, 500), children),
        st.builds(lambda ms, c, s: g.stagger(ms / 1000, c, seed=s), st.integers(1, 20), children,
                  st.integers(0, 2**32)),
        st.builds(lambda n, c: g.concurrency_limit(n, c), st.integers(1, 3), children),
        children.map(g.until_ok),
        two.map(lambda gs: g.any_of(*gs)),
        st.builds(lambda c, n: g.clients_and_nemesis(c, n), children, children),
    )


trees = st.recursive(leaves, extend, max_leaves=8)
outcome = st.lists(st.tuples(st.sampled_from(["ok", "fail", "info"]), st.integers(0, 20_000_000)),
                   min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(trees, st.integers(1, 4), outcome)
def test_any_composition_simulates_sanely(tree: Generator, concurrency: int,
                                          outcomes: list[tuple[str, int]]) -> None:
    def complete(op: Op) -> tuple[str, int]:
        # deterministic in the op, so both simulations see the same outcomes
        return outcomes[hash((op.process, op.f, op.time)) % len(outcomes)]

    ctx = Context.initial(concurrency)
    h1 = g.simulate(tree, ctx, complete=complete, max_ops=300)
    h2 = g.simulate(tree, ctx, complete=complete, max_ops=300)
    assert h1 == h2
    times = [op.time for op in h1]
    assert times == sorted(times)
    open_: dict[object, Op] = {}
    retired: set[object] = set()
    for op in h1:
        if op.type == "invoke":
            assert op.process not in open_
            assert op.process not in retired
            open_[op.process] = op
        else:
            inv = open_.pop(op.process)
            assert inv.f == op.f
            if op.type == "info" and op.process != "nemesis":
                retired.add(op.process)
    assert not open_
