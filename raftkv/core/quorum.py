"""Majority maths, pure: the commit index a set of match indexes supports, and the outcome of a vote."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

__all__ = ["VoteResult", "committed_index", "majority", "vote_result"]


def majority(voters: int) -> int:
    """The smallest number of voters that is more than half of `voters` (>= 1)."""
    if voters < 1:
        raise ValueError(f"a quorum needs at least one voter, got {voters}")
    return voters // 2 + 1


def committed_index(matches: Iterable[int], voters: int) -> int:
    """The largest index that at least a majority of `voters` have (each voter's match index; missing voters count
    as 0). E.g. matches (5, 3, 9) of 3 voters -> 5."""
    ordered = sorted(matches, reverse=True)
    need = majority(voters)
    if len(ordered) > voters:
        raise ValueError(f"{len(ordered)} match indexes for {voters} voters")
    return ordered[need - 1] if len(ordered) >= need else 0


class VoteResult(enum.Enum):
    WON = "won"
    LOST = "lost"
    PENDING = "pending"


def vote_result(votes: Mapping[str, bool], voters: Iterable[str]) -> VoteResult:
    """WON when a majority of `voters` granted, LOST when a majority can no longer be reached, else PENDING.
    Votes from ids that are not voters are ignored."""
    granted = rejected = missing = 0
    total = 0
    for voter in voters:
        total += 1
        vote = votes.get(voter)
        if vote is None:
            missing += 1
        elif vote:
            granted += 1
        else:
            rejected += 1
    need = majority(total)
    if granted >= need:
        return VoteResult.WON
    if granted + missing >= need:
        return VoteResult.PENDING
    return VoteResult.LOST
