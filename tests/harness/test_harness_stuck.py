"""The stuck-cluster detector on hand-made rounds of status polls (harness.monitor.StuckDetector), and the quiesce's
pure judgements (harness.quiesce)."""

from __future__ import annotations

from typing import Any

import pytest

from harness import monitor
from harness.monitor import StuckDetector
from harness.quiesce import agreed_leader, caught_up


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(monitor.time, "monotonic_ns", c)
    return c


def node(role: str, term: int = 3, commit: int = 10, leader: str | None = None) -> dict[str, Any]:
    return {"role": role, "term": term, "leader": leader, "commit": commit, "applied": commit}


def detector(invokes: list[int], recorded: list[dict[str, Any]]) -> StuckDetector:
    return StuckDetector(nodes=3, after_s=10.0, activity=lambda: invokes[0], record=recorded.append)


def test_a_majority_without_a_leader_for_the_threshold_is_recorded_once(clock: Clock) -> None:
    recorded: list[dict[str, Any]] = []
    invokes = [0]
    d = detector(invokes, recorded)
    leaderless = {"n1": node("candidate", 5), "n2": node("follower", 5), "n3": {"error": "timeout"}}
    for second in range(0, 25):  # 25 s of polls, one a second
        clock.now = second * 1_000_000_000
        d(leaderless)
    no_leader = [r for r in recorded if r["condition"] == "no-leader"]
    assert len(no_leader) == 1  # one per episode
    assert no_leader[0]["since"] == 0 and no_leader[0]["held_s"] == 10.0
    assert no_leader[0]["nodes"]["n3"] == {"error": "timeout"} and no_leader[0]["nodes"]["n1"]["role"] == "candidate"
    # no client invoked anything: no commit progress is expected, never recorded
    assert not [r for r in recorded if r["condition"] == "no-commit-progress"]


def test_a_stale_leader_of_an_old_term_does_not_count_and_a_minority_is_not_judged(clock: Clock) -> None:
    recorded: list[dict[str, Any]] = []
    d = detector([0], recorded)
    for second in range(0, 15):
        clock.now = second * 1_000_000_000
        d({"n1": node("leader", 2), "n2": node("candidate", 6), "n3": node("candidate", 7)})
    assert [r["condition"] for r in recorded] == ["no-leader"]
    recorded.clear()
    d2 = detector([0], recorded)
    for second in range(0, 15):  # only one node answers: nothing can be said about a majority
        clock.now = second * 1_000_000_000
        d2({"n1": node("candidate", 5), "n2": {"error": "refused"}, "n3": {"error": "refused"}})
    assert recorded == []


def test_no_commit_progress_while_clients_invoke_is_recorded_and_progress_resets_it(clock: Clock) -> None:
    recorded: list[dict[str, Any]] = []
    invokes = [0]
    d = detector(invokes, recorded)
    commit = 10
    for second in range(0, 30):
        clock.now = second * 1_000_000_000
        invokes[0] += 50
        if second < 5:
            commit += 1  # progress for 5 s, then stuck
        d({"n1": node("leader", 3, commit, "n1"), "n2": node("follower", 3, commit, "n1"),
           "n3": node("follower", 3, commit, "n1")})
    (event,) = recorded
    assert event["condition"] == "no-commit-progress" and event["since"] == 5_000_000_000
    assert event["invokes"] == 500 and event["after_s"] == 10.0


def test_the_detector_is_silent_while_disabled(clock: Clock) -> None:
    recorded: list[dict[str, Any]] = []
    d = detector([0], recorded)
    d.enabled = False
    for second in range(0, 30):
        clock.now = second * 1_000_000_000
        d({"n1": node("candidate"), "n2": node("candidate"), "n3": node("candidate")})
    assert recorded == []
    with pytest.raises(ValueError, match="stuck threshold"):
        StuckDetector(nodes=3, after_s=0, activity=lambda: 0, record=recorded.append)


def test_quiesce_agreement_counts_running_nodes_and_catch_up_needs_each_one() -> None:
    last = {"n1": node("leader", leader="n1"), "n2": node("follower", leader="n1"), "n3": {"error": "refused"}}
    assert agreed_leader(last, {"n1": True, "n2": True, "n3": True}) is None
    assert agreed_leader(last, {"n1": True, "n2": True, "n3": False}) == "n1"
    split = {"n1": node("leader", leader="n1"), "n2": node("follower", leader="n3")}
    assert agreed_leader(split, {"n1": True, "n2": True}) is None
    behind = {"n1": node("leader", commit=20), "n2": node("follower", commit=12)}
    assert caught_up(behind, {"n1": True, "n2": True}, 20) is False
    assert caught_up(behind, {"n1": True, "n2": False}, 20) is True
