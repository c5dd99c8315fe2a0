"""raftkv.core.quorum: majority maths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftkv.core.quorum import VoteResult, committed_index, majority, vote_result


@pytest.mark.parametrize(("voters", "need"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4)])
def test_majority(voters: int, need: int) -> None:
    assert majority(voters) == need


def test_majority_of_nobody_is_an_error() -> None:
    with pytest.raises(ValueError):
        majority(0)


@pytest.mark.parametrize(("matches", "voters", "expected"), [
    ((5, 3, 9), 3, 5), ((1,), 1, 1), ((4, 4), 2, 4), ((4, 2), 2, 2), ((9, 9), 3, 9), ((9,), 3, 0),
    ((1, 2, 3, 4, 5), 5, 3), ((7, 7, 1, 1, 1), 5, 1),
])
def test_committed_index(matches: tuple[int, ...], voters: int, expected: int) -> None:
    assert committed_index(matches, voters) == expected


@given(st.lists(st.integers(0, 50), min_size=1, max_size=9))
def test_committed_index_is_held_by_a_majority_and_is_the_largest_such(matches: list[int]) -> None:
    voters = len(matches)
    index = committed_index(matches, voters)
    assert sum(m >= index for m in matches) >= majority(voters)
    assert sum(m >= index + 1 for m in matches) < majority(voters)


def test_more_matches_than_voters_is_an_error() -> None:
    with pytest.raises(ValueError):
        committed_index([1, 2, 3], 2)


@pytest.mark.parametrize(("votes", "expected"), [
    ({}, VoteResult.PENDING),
    ({"a": True}, VoteResult.PENDING),
    ({"a": True, "b": True}, VoteResult.WON),
    ({"a": True, "b": False}, VoteResult.PENDING),
    ({"a": True, "b": False, "c": False}, VoteResult.LOST),
    ({"a": False, "b": False}, VoteResult.LOST),
    ({"a": True, "x": True, "y": True}, VoteResult.PENDING),  # non-voters do not count
])
def test_vote_result_of_three(votes: dict[str, bool], expected: VoteResult) -> None:
    assert vote_result(votes, ("a", "b", "c")) is expected


def test_single_voter_wins_alone() -> None:
    assert vote_result({"a": True}, ("a",)) is VoteResult.WON
