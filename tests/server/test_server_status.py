"""GET /status reports the role, term and leader from one source (the core, as it is now), never a mix.

Regression: a leader whose disk stalled (the ready loop waiting on a persist) saw a higher term from a new leader;
its core stepped down at once, but the server's copy of the role only follows the core after a Ready is persisted,
so /status said "leader" with the new term, and the lab's election-safety oracle read two leaders of one term in a
clean run."""

from __future__ import annotations

import logging
from pathlib import Path

from raftkv.core import Message, MessageType, Role
from raftkv.server.config import ServerConfig
from raftkv.server.node import Node

PEERS = {"n1": "127.0.0.1:7101", "n2": "127.0.0.1:7102", "n3": "127.0.0.1:7103"}


def _node(tmp_path: Path) -> Node:
    cfg = ServerConfig(id="n1", listen=PEERS["n1"], client="127.0.0.1:8101", peers=dict(PEERS), memory=True,
                       log_file=tmp_path / "n1.log", seed=1)
    node = Node(cfg, logging.getLogger("test-status"))
    node.recover()
    node.make_transport()
    return node


def _win(node: Node) -> None:
    """Make n1's core leader by stepping the votes it asks for, without running the ready loop (as when the loop is
    blocked persisting)."""
    assert node.raft is not None
    node.raft.campaign()
    for kind in (MessageType.PRE_VOTE_RESP, MessageType.VOTE_RESP):
        if node.raft.role is Role.LEADER:
            break
        term = node.raft.term + (1 if kind is MessageType.PRE_VOTE_RESP else 0)
        node.raft.step(Message(type=kind, src="n2", dst="n1", term=term))


def test_status_reports_the_cores_role_term_and_leader_together(tmp_path: Path) -> None:
    node = _node(tmp_path)
    assert node.raft is not None
    _win(node)
    assert node.raft.role is Role.LEADER
    st = node.status()
    assert (st["role"], st["term"], st["leader"]) == ("leader", node.raft.term, "n1")
    # A new leader's heartbeat of a higher term: the core steps down now; the ready loop has not run.
    term = node.raft.term + 1
    node.raft.step(Message(type=MessageType.HEARTBEAT, src="n2", dst="n1", term=term))
    st = node.status()
    assert (st["role"], st["term"], st["leader"]) == ("follower", term, "n2")
    node.close()
