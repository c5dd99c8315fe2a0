"""Grudges and process-fault targets as plain data: pure functions, no network, no sleeps."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nemesis import grudge as g
from nemesis.targets import AIMED_SPECS, TARGET_SPECS, TargetError, select_targets

FIVE = ["n1", "n2", "n3", "n4", "n5"]
node_lists = st.integers(min_value=3, max_value=9).map(lambda n: [f"n{i}" for i in range(1, n + 1)])
seeds = st.integers(min_value=0, max_value=2**32)


def test_complete_grudge_cuts_between_components_only() -> None:
    assert g.complete_grudge([["a"], ["b", "c"]]) == {
        "a": frozenset({"b", "c"}), "b": frozenset({"a"}), "c": frozenset({"a"})}
    assert g.complete_grudge([["a", "b"]]) == {}
    with pytest.raises(g.GrudgeError, match="overlap"):
        g.complete_grudge([["a", "b"], ["b"]])


def test_isolate_the_leader() -> None:
    grudge = g.build("leader", FIVE, random.Random(1), leader="n3")
    assert grudge["n3"] == frozenset({"n1", "n2", "n4", "n5"})
    assert all(grudge[n] == frozenset({"n3"}) for n in FIVE if n != "n3")
    assert g.components(grudge, FIVE) == [["n1", "n2", "n4", "n5"], ["n3"]]
    with pytest.raises(g.GrudgeError, match="needs the current leader"):
        g.build("leader", FIVE, random.Random(1), leader=None)
    with pytest.raises(g.GrudgeError, match="not one of"):
        g.isolate(FIVE, "n9")


@given(node_lists, seeds)
def test_halves_is_a_clean_minority_majority_split(nodes: list[str], seed: int) -> None:
    grudge = g.random_halves(nodes, random.Random(seed))
    parts = g.components(grudge, nodes)
    assert sorted(len(p) for p in parts) == [len(nodes) // 2, len(nodes) - len(nodes) // 2]
    assert g.is_symmetric(grudge)


@given(node_lists, seeds)
def test_one_isolates_exactly_one_node(nodes: list[str], seed: int) -> None:
    parts = g.components(g.isolate_one(nodes, random.Random(seed)), nodes)
    assert sorted(len(p) for p in parts) == [1, len(nodes) - 1]


@given(node_lists.filter(lambda ns: len(ns) >= 4), seeds)
def test_ring_every_node_sees_a_distinct_majority(nodes: list[str], seed: int) -> None:
    grudge = g.majorities_ring(nodes, random.Random(seed))
    m = g.majority(len(nodes))
    views = {n: frozenset(nodes) - grudge.get(n, frozenset()) for n in nodes}
    assert all(n in view and len(view) == m for n, view in views.items())
    assert len(set(views.values())) == len(nodes), "no two nodes see the same majority"
    # A window of odd size is centred on its node, so the cuts pair up; an even one is off-centre.
    assert g.is_symmetric(grudge) == (m % 2 == 1)


def test_ring_of_three_is_one_directional() -> None:
    grudge = g.majorities_ring(["a", "b", "c"], random.Random(0))
    assert sorted(len(v) for v in grudge.values()) == [1, 1, 1]
    assert not g.is_symmetric(grudge)


@given(node_lists, seeds)
def test_bridge_node_sees_both_sides_which_do_not_see_each_other(nodes: list[str], seed: int) -> None:
    grudge = g.bridge(nodes, random.Random(seed))
    bridges = [n for n in nodes if n not in grudge]
    assert len(bridges) == 1
    assert all(bridges[0] not in dropped for dropped in grudge.values())
    left = [n for n in nodes if n in grudge]
    assert len(g.components(grudge, left)) == 2
    assert g.is_symmetric(grudge)


@given(node_lists, seeds)
def test_one_way_drops_a_single_direction(nodes: list[str], seed: int) -> None:
    grudge = g.one_way(nodes, random.Random(seed))
    assert len(grudge) == 1
    (receiver, dropped), = grudge.items()
    (sender,) = dropped
    assert sender != receiver and receiver not in grudge.get(sender, ())
    assert not g.is_symmetric(grudge)


@given(st.sampled_from([s for s in g.SHAPES if s != "leader"]), node_lists, seeds)
def test_shapes_are_seeded_and_independent_of_input_order(shape: str, nodes: list[str], seed: int) -> None:
    first = g.build(shape, nodes, random.Random(seed))
    again = g.build(shape, list(reversed(nodes)), random.Random(seed))
    assert first == again
    assert g.validate(first, nodes) == first
    assert all(n not in dropped for n, dropped in first.items())


def test_bad_requests_are_caller_errors() -> None:
    with pytest.raises(g.GrudgeError, match="at least two"):
        g.random_halves(["a"], random.Random(0))
    with pytest.raises(g.GrudgeError, match="duplicate"):
        g.random_halves(["a", "a", "b"], random.Random(0))
    with pytest.raises(g.GrudgeError, match="at least three"):
        g.majorities_ring(["a", "b"], random.Random(0))
    with pytest.raises(g.GrudgeError, match="unknown partition shape 'diagonal'"):
        g.build("diagonal", FIVE, random.Random(0))
    with pytest.raises(g.GrudgeError, match="unknown node 'x'"):
        g.validate({"x": {"n1"}}, FIVE)
    with pytest.raises(g.GrudgeError, match="drops its own"):
        g.validate({"n1": {"n1"}}, FIVE)


def test_to_json_is_sorted_plain_data() -> None:
    assert g.to_json({"b": frozenset({"c", "a"}), "a": frozenset(), "c": frozenset({"b"})}) == {
        "b": ["a", "c"], "c": ["b"]}


@given(st.sampled_from(TARGET_SPECS), node_lists, seeds)
def test_target_sizes(spec: str, nodes: list[str], seed: int) -> None:
    targets = select_targets(spec, nodes, random.Random(seed), leader=nodes[-1])
    expected = {"one": 1, "leader": 1, "minority": g.majority(len(nodes)) - 1,
                "majority": g.majority(len(nodes)), "all": len(nodes)}[spec]
    assert len(targets) == len(set(targets)) == expected
    assert set(targets) <= set(nodes) and list(targets) == sorted(targets)
    assert targets == select_targets(spec, list(reversed(nodes)), random.Random(seed), leader=nodes[-1])


@given(node_lists, seeds)
def test_leader_relative_targets_are_the_followers_or_the_leader_and_a_majority_besides(nodes: list[str],
                                                                                       seed: int) -> None:
    leader = nodes[0]
    followers = select_targets("followers", nodes, random.Random(seed), leader=leader)
    assert followers == tuple(sorted(set(nodes) - {leader}))
    cut = select_targets("leader-and-majority", nodes, random.Random(seed), leader=leader)
    assert leader in cut and list(cut) == sorted(set(cut)) and set(cut) <= set(nodes)
    assert len(cut) - 1 == min(len(nodes) - 1, g.majority(len(nodes)))  # the others hit are a majority alone


def test_leader_targets_without_a_leader_are_empty() -> None:
    for spec in AIMED_SPECS:
        assert select_targets(spec, FIVE, random.Random(0), leader=None) == ()
        assert select_targets(spec, FIVE, random.Random(0), leader="gone") == ()
    assert select_targets("leader", FIVE, random.Random(0), leader=None) == ()
    assert select_targets("leader", FIVE, random.Random(0), leader="gone") == ()
    assert select_targets("leader", FIVE, random.Random(0), leader="n2") == ("n2",)


def test_minority_keeps_a_quorum_and_majority_breaks_it() -> None:
    rng = random.Random(7)
    assert len(select_targets("minority", FIVE, rng)) == 2
    assert len(select_targets("majority", FIVE, rng)) == 3
    with pytest.raises(TargetError, match="unknown target spec 'half'"):
        select_targets("half", FIVE, rng)
    with pytest.raises(TargetError, match="no nodes"):
        select_targets("one", [], rng)
