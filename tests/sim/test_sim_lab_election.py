"""Leader election scenarios of the classic Raft lab, on the simulator (virtual time: the sleeps cost nothing)."""

from __future__ import annotations

import random

from simlab import ELECTION, lab_cluster

REQUESTS = ("VOTE", "PRE_VOTE", "APPEND", "HEARTBEAT", "SNAPSHOT", "TIMEOUT_NOW", "READ_INDEX")


def test_initial_election_one_stable_leader_and_term() -> None:
    c = lab_cluster(3)
    leader = c.check_one_leader()
    c.run_for(50_000)
    terms = c.terms()
    assert len(set(terms)) == 1 and terms[0] >= 1, f"servers disagree on the term: {terms}"
    c.run_for(2 * ELECTION)
    assert c.terms() == terms, "the term changed although there was no failure"
    assert c.check_one_leader() == leader, "the leader changed although there was no failure"


def test_re_election_after_the_leader_is_cut_off_and_none_without_quorum() -> None:
    c = lab_cluster(3)
    leader1 = c.check_one_leader()
    c.disconnect(leader1)  # the others elect a new leader
    leader2 = c.check_one_leader()
    assert leader2 != leader1
    c.connect(leader1)  # the old leader rejoins: it must not disturb the new one
    leader2 = c.check_one_leader()
    other = leader2 % 3 + 1
    c.disconnect(leader2)
    c.disconnect(other)
    c.run_for(2 * ELECTION)
    c.check_no_leader()  # no quorum: no leader among the connected (the one remaining node)
    c.connect(other)  # a quorum again
    c.check_one_leader()
    c.connect(leader2)
    c.check_one_leader()


def test_many_elections_seven_nodes_three_cut_off() -> None:
    c = lab_cluster(7, seed=3)
    rng = random.Random(3)
    c.check_one_leader()
    for _ in range(10):
        cut = rng.sample(range(1, 8), 3)
        for i in cut:
            c.disconnect(i)
        c.check_one_leader()  # four of seven still elect (or keep) a leader
        for i in cut:
            c.connect(i)
    c.check_one_leader()


def test_an_isolated_leader_steps_down_by_check_quorum() -> None:
    c = lab_cluster(3)
    leader = c.check_one_leader()
    c.disconnect(leader)
    c.run_for(2 * ELECTION)
    assert c.node(leader).role.name != "LEADER", "a leader cut from its majority kept leading"


def test_message_budget_of_an_election_and_of_an_idle_second() -> None:
    c = lab_cluster(3)
    c.check_one_leader()
    elect = c.net.stats.total_sent(REQUESTS)
    assert 1 <= elect <= 30, f"{elect} requests to elect the first leader"
    c.run_for(ELECTION)
    c.net.reset_stats()
    c.run_for(ELECTION)
    idle = c.net.stats.total_sent(REQUESTS)
    assert idle <= 3 * 20, f"{idle} requests in one idle second"


def test_a_paused_leader_is_replaced_and_steps_down_when_it_resumes() -> None:
    c = lab_cluster(3)
    old = c.check_one_leader()
    c.one(b"before", 3)
    c.node(old).pause()  # frozen: no ticks, messages wait
    assert c.run_until(lambda: any(n.id != old and n.role.name == "LEADER" for n in c.nodes), 5 * ELECTION)
    index = c.one(b"during", 2)
    c.node(old).resume()  # it handles the held messages and learns of the higher term
    assert c.run_until(lambda: c.node(old).role.name != "LEADER", ELECTION)
    c.wait_committed(index, 3)
    c.one(b"after", 3)


def test_leadership_transfer_moves_the_leader_to_the_chosen_node() -> None:
    c = lab_cluster(5, seed=6)
    for target_offset in (1, 2, 3):
        leader = c.check_one_leader()
        c.one(b"before %d" % target_offset, 5)
        target = (leader - 1 + target_offset) % 5 + 1
        c.node(leader).transfer_leadership(target)
        assert c.run_until(lambda t=target: c.node(t).role.name == "LEADER", ELECTION), (
            f"leadership did not move from n{leader} to n{target} ({c.describe()})")
        assert c.check_one_leader() == target
        c.one(b"after %d" % target_offset, 5)
