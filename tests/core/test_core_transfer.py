"""Leadership transfer (TimeoutNow)."""

from __future__ import annotations

import pytest
from core_cluster import Cluster

from raftkv.core import MessageType, NotLeader, ProposalDropped, Role, UsageError


def test_transfer_to_an_up_to_date_follower() -> None:
    c = Cluster(3, seed=1)
    c.elect("n1")
    c.propose(b"x")
    c.tick()
    c.raft("n1").transfer_leadership("n3")
    c.deliver()
    assert c.leader() == "n3" and c.raft("n1").role is Role.FOLLOWER
    assert c.count(MessageType.TIMEOUT_NOW) == 1


def test_transfer_to_a_lagging_follower_catches_it_up_first() -> None:
    c = Cluster(3, seed=1)
    c.elect("n1")
    c.crash("n3")
    for i in range(10):
        c.propose(f"v{i}".encode())
    c.restart("n3")
    c.raft("n1").transfer_leadership("n3")
    with pytest.raises(ProposalDropped):
        c.raft("n1").propose(b"during transfer")
    c.tick(3)
    assert c.leader() == "n3"
    assert c.raft("n3").last_index >= 11


def test_transfer_is_abandoned_after_an_election_timeout() -> None:
    c = Cluster(3, seed=1)
    c.elect("n1")
    c.crash("n3")
    c.raft("n1").transfer_leadership("n3")
    c.tick(11)
    assert c.raft("n1").role is Role.LEADER and c.raft("n1").lead_transferee is None
    c.propose(b"accepted again")


def test_transfer_misuse() -> None:
    c = Cluster(3, seed=1)
    c.elect("n1")
    with pytest.raises(UsageError):
        c.raft("n1").transfer_leadership("n9")
    with pytest.raises(NotLeader):
        c.raft("n2").transfer_leadership("n3")
    c.raft("n1").transfer_leadership("n1")  # already the leader: nothing to do
    assert c.raft("n1").lead_transferee is None
