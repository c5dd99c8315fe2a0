"""Leader election, PreVote and CheckQuorum: sentences of the Raft paper (and thesis) as tests."""

from __future__ import annotations

import random

import pytest
from core_cluster import Cluster

from raftkv.core import HardState, Message, MessageType, Raft, RaftConfig, Role

PEERS = ("n1", "n2", "n3")


def node(node_id: str = "n1", **kw: object) -> Raft:
    return Raft(RaftConfig(id=node_id, peers=PEERS, rng=random.Random(7), **kw))  # type: ignore[arg-type]


def drain(raft: Raft) -> list[Message]:
    out: list[Message] = []
    while raft.has_ready():
        rd = raft.ready()
        out.extend(rd.messages + rd.messages_after_persist)
        raft.advance(rd)
    return out


def msg(kind: MessageType, src: str, dst: str = "n1", **kw: object) -> Message:
    return Message(type=kind, src=src, dst=dst, **kw)  # type: ignore[arg-type]


def test_a_single_leader_is_elected_and_stays() -> None:
    c = Cluster(3, seed=3)
    leader = c.wait_leader()
    term = c.raft(leader).term
    c.tick(100)
    assert c.leader() == leader and c.raft(leader).term == term  # heartbeats keep it: no new elections
    assert all(c.raft(i).leader == leader for i in c.ids)


def test_followers_time_out_in_the_randomized_range() -> None:
    """Election timeouts are chosen randomly from [election_tick, 2 * election_tick) (Raft 5.2)."""
    for seed in range(20):
        raft = Raft(RaftConfig(id="n1", peers=PEERS, rng=random.Random(seed), election_tick=10, pre_vote=False))
        elapsed = 0
        while raft.role is Role.FOLLOWER and elapsed < 25:
            raft.tick()
            elapsed += 1
        assert 10 <= elapsed < 20 and raft.role is Role.CANDIDATE


def test_the_same_seed_gives_the_same_timeouts() -> None:
    def timeline(seed: int) -> list[int]:
        raft = Raft(RaftConfig(id="n1", peers=PEERS, rng=random.Random(seed), pre_vote=False))
        terms = []
        for _ in range(100):
            raft.tick()
            drain(raft)
            terms.append(raft.term)
        return terms

    assert timeline(5) == timeline(5)


def test_a_candidate_votes_for_itself_and_requests_votes_after_persisting() -> None:
    raft = node(pre_vote=False)
    raft.campaign()
    rd = raft.ready()
    assert rd.hard_state == HardState(term=1, vote="n1", commit=0)
    assert not rd.messages  # the vote for itself must be durable before asking others
    assert sorted(m.dst for m in rd.messages_after_persist if m.type is MessageType.VOTE) == ["n2", "n3"]


def test_each_server_votes_for_at_most_one_candidate_per_term() -> None:
    raft = node("n3", pre_vote=False)
    raft.step(msg(MessageType.VOTE, "n1", "n3", term=2))
    raft.step(msg(MessageType.VOTE, "n2", "n3", term=2))
    out = drain(raft)
    assert [(m.dst, m.reject) for m in out] == [("n1", False), ("n2", True)]
    assert raft.vote == "n1"
    raft.step(msg(MessageType.VOTE, "n1", "n3", term=2))  # a repeated request from the same candidate
    assert [(m.dst, m.reject) for m in drain(raft)] == [("n1", False)]


def test_a_vote_grant_leaves_only_after_the_vote_is_durable() -> None:
    raft = node("n3", pre_vote=False)
    raft.step(msg(MessageType.VOTE, "n1", "n3", term=2))
    rd = raft.ready()
    assert rd.hard_state == HardState(term=2, vote="n1", commit=0)
    assert [m.type for m in rd.messages_after_persist] == [MessageType.VOTE_RESP] and not rd.messages


def test_votes_go_only_to_candidates_at_least_as_up_to_date() -> None:
    """Raft 5.4.1: the voter denies its vote if its own log is more up-to-date than the candidate's."""
    c = Cluster(3, seed=1, pre_vote=False, check_quorum=False)
    c.elect("n1")
    c.propose(b"x")
    c.crash("n1")
    c.raft("n3").step(msg(MessageType.VOTE, "n2", "n3", term=5, index=1, log_term=1))  # stale: lacks "x"
    c.process("n3")
    granted = [m for m in c.queue if m.type is MessageType.VOTE_RESP and m.dst == "n2"]
    assert granted and granted[-1].reject


def test_a_leader_appends_a_noop_at_the_start_of_its_term() -> None:
    c = Cluster(3, seed=1)
    c.elect("n2")
    entry = c.raft("n2").entries(1, 2)[0]
    assert entry.kind.name == "NOOP" and entry.term == c.raft("n2").term


def test_a_node_that_sees_a_higher_term_steps_down() -> None:
    c = Cluster(3, seed=1)
    c.elect("n1")
    leader = c.raft("n1")
    leader.step(msg(MessageType.APPEND_RESP, "n2", term=leader.term + 3))
    assert leader.role is Role.FOLLOWER and leader.term == 4 and leader.leader is None


def test_a_stale_leader_learns_the_new_term_from_a_follower() -> None:
    c = Cluster(3, seed=1, check_quorum=False)  # without CheckQuorum the cut-off leader keeps believing
    c.elect("n1")
    c.isolate("n1")
    c.elect("n2")
    c.heal()
    # The old leader still thinks it leads term 1; its next heartbeat is answered with the new term.
    assert c.raft("n1").role is Role.LEADER
    c.tick()
    assert c.raft("n1").role is Role.FOLLOWER and c.raft("n1").term == c.raft("n2").term


def test_prevote_keeps_a_partitioned_node_from_raising_its_term() -> None:
    """Thesis 9.6: a node that cannot win does not increment its term, so it disrupts nobody on rejoining."""
    c = Cluster(3, seed=2)
    leader = c.wait_leader()
    term = c.raft(leader).term
    follower = next(i for i in c.ids if i != leader)
    c.isolate(follower)
    c.tick(100)
    assert c.raft(follower).term == term and c.raft(follower).role is Role.PRE_CANDIDATE
    c.heal()
    c.tick(5)
    assert c.leader() == leader and c.raft(leader).term == term


def test_without_prevote_a_partitioned_node_disrupts_on_return() -> None:
    c = Cluster(3, seed=2, pre_vote=False, check_quorum=False)
    leader = c.wait_leader()
    term = c.raft(leader).term
    follower = next(i for i in c.ids if i != leader)
    c.isolate(follower)
    c.tick(100)
    assert c.raft(follower).term > term
    c.heal()
    c.tick(50)
    assert c.raft(c.wait_leader()).term > term


def test_no_leader_without_a_quorum() -> None:
    c = Cluster(5, seed=4)
    for node_id in ("n1", "n2", "n3"):
        c.isolate(node_id)
    c.tick(200)
    assert c.leader() is None


def test_check_quorum_makes_a_cut_off_leader_step_down() -> None:
    c = Cluster(3, seed=1)
    c.elect("n1")
    c.isolate("n1")
    for _ in range(2 * 10 + 1):
        c.tick()
    assert c.raft("n1").role is Role.FOLLOWER


def test_a_follower_that_hears_a_leader_ignores_vote_requests() -> None:
    """Thesis 4.2.3: within the minimum election timeout of hearing a leader, a vote request is ignored."""
    c = Cluster(3, seed=1)
    c.elect("n1")
    n3 = c.raft("n3")
    n3.step(msg(MessageType.VOTE, "n2", "n3", term=9, index=99, log_term=9))
    assert n3.term == 1 and n3.leader == "n1" and not n3.has_ready()
    # ... unless the request comes from a leadership transfer (TIMEOUT_NOW), which overrides the lease.
    n3.step(msg(MessageType.VOTE, "n2", "n3", term=9, index=99, log_term=9, transfer=True))
    assert n3.term == 9 and n3.vote == "n2"


def test_reelection_after_the_leader_is_cut_off_and_old_leader_rejoins_as_follower() -> None:
    c = Cluster(3, seed=5)
    first = c.wait_leader()
    c.isolate(first)
    c.tick(60)
    second = c.leader()
    assert second is not None and second != first
    c.heal()
    c.tick(30)
    assert c.leader() == second and c.raft(first).role is Role.FOLLOWER


@pytest.mark.parametrize("seed", range(6))
def test_many_elections_with_seven_nodes(seed: int) -> None:
    rng = random.Random(seed)
    c = Cluster(7, seed=seed)
    terms_seen: dict[int, str] = {}
    for _round in range(8):
        c.heal()
        for node_id in rng.sample(c.ids, 3):
            c.isolate(node_id)
        c.tick(60)
        for node_id in c.ids:
            raft = c.raft(node_id)
            if raft.role is Role.LEADER:
                assert terms_seen.setdefault(raft.term, node_id) == node_id
        # a majority (4 of 7) is connected: somebody among them leads
        assert c.leader() is not None
    c.heal()
    c.tick(60)
    assert c.leader() is not None


def test_an_idle_cluster_sends_few_messages() -> None:
    c = Cluster(3, seed=1)
    c.wait_leader()
    c.tick(5)
    before = len(c.sent)
    c.tick(10)  # ten heartbeat intervals: one heartbeat and one answer per follower each
    assert len(c.sent) - before == 10 * 2 * 2


def test_an_election_costs_few_messages() -> None:
    c = Cluster(5, seed=1)
    c.raft("n1").campaign()
    c.deliver()
    # pre-vote + vote: 4 requests and 4 answers each, then the leader's first appends and their acks (+commit)
    assert c.raft("n1").role is Role.LEADER
    assert len(c.sent) <= 4 * 2 * 2 + 4 * 4


def test_a_won_prevote_leads_to_an_ordinary_election_not_a_transfer() -> None:
    raft = node()
    raft.campaign()
    pre = drain(raft)
    assert {m.type for m in pre} == {MessageType.PRE_VOTE} and raft.term == 0
    assert all(m.term == 1 and not m.transfer for m in pre)
    raft.step(msg(MessageType.PRE_VOTE_RESP, "n2", term=1))
    votes = drain(raft)
    assert raft.role is Role.CANDIDATE and raft.term == 1
    assert {m.type for m in votes} == {MessageType.VOTE} and not any(m.transfer for m in votes)


def test_timeout_now_starts_a_transfer_election_without_prevote() -> None:
    raft = node("n2")
    raft.step(msg(MessageType.HEARTBEAT, "n1", "n2", term=1))
    drain(raft)
    raft.step(msg(MessageType.TIMEOUT_NOW, "n1", "n2", term=1))
    votes = drain(raft)
    assert raft.role is Role.CANDIDATE and raft.term == 2
    assert {m.type for m in votes} == {MessageType.VOTE} and all(m.transfer for m in votes)


def test_a_candidate_that_hears_from_a_leader_of_its_term_becomes_follower() -> None:
    """Raft Figure 2: if AppendEntries RPC received from new leader: convert to follower."""
    raft = node(pre_vote=False)
    raft.campaign()
    drain(raft)
    assert raft.role is Role.CANDIDATE and raft.term == 1
    raft.step(msg(MessageType.APPEND, "n2", term=1))
    assert raft.role is Role.FOLLOWER and raft.leader == "n2" and raft.term == 1


def test_a_vote_request_of_an_older_term_is_not_granted() -> None:
    """Raft Figure 2: RequestVote: reply false if term < currentTerm."""
    raft = node("n3", pre_vote=False)
    raft.step(msg(MessageType.HEARTBEAT, "n1", "n3", term=4))
    drain(raft)
    raft.step(msg(MessageType.VOTE, "n2", "n3", term=3, index=50, log_term=3))
    assert raft.vote is None and not any(m.type is MessageType.VOTE_RESP and not m.reject for m in drain(raft))


def test_a_candidate_that_loses_returns_to_follower() -> None:
    raft = node(pre_vote=False)
    raft.campaign()
    drain(raft)
    raft.step(msg(MessageType.VOTE_RESP, "n2", term=1, reject=True))
    raft.step(msg(MessageType.VOTE_RESP, "n3", term=1, reject=True))
    assert raft.role is Role.FOLLOWER and raft.term == 1 and raft.vote == "n1"


def test_a_core_remembers_each_term_it_led_even_after_it_was_deposed() -> None:
    """Raft.leaderships: the evidence the lab's election-safety oracle reads (a leader deposed before any status
    poll is still in it); bounded, with an unbounded count to tell new ones apart."""
    from raftkv.core.raft import MAX_LEADERSHIPS

    c = Cluster(3, pre_vote=False, check_quorum=False)  # elections on demand, whoever leads
    c.elect("n1")
    c.elect("n2")  # n1 is deposed at once
    c.elect("n1")
    assert c.raft("n1").role is Role.LEADER
    assert c.raft("n1").leaderships == (1, 3) and c.raft("n1").leadership_count == 2
    assert c.raft("n2").leaderships == (2,) and c.raft("n3").leaderships == ()
    assert MAX_LEADERSHIPS == 1000
