"""`RaftConfig`: everything a core needs to know about itself and its peers, validated when built."""

from __future__ import annotations

import random
from dataclasses import dataclass

from raftkv.failpoints import FailpointError, check_layer

from .errors import ConfigError

__all__ = ["RaftConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftConfig:
    """Configuration of one Raft core. Time is counted in ticks (the caller decides how long a tick is).

    - `id`: this node's id; `peers`: every voter's id INCLUDING this node's (fixed membership), no duplicates.
    - `rng`: the only source of randomness (randomized election timeouts); seed it for reproducibility.
    - `election_tick`: a follower that hears from no leader for a randomized timeout in
      [election_tick, 2 * election_tick) ticks campaigns; must exceed `heartbeat_tick`.
    - `heartbeat_tick`: the leader sends heartbeats every `heartbeat_tick` ticks.
    - `max_inflight_msgs`: per follower, at most this many APPEND messages unacknowledged (the window).
    - `max_entries_per_msg`, `max_bytes_per_msg`: limits of one APPEND (an APPEND always carries at least one
      entry if one is due, even a larger one than `max_bytes_per_msg`).
    - `snapshot_chunk_bytes`: size of one InstallSnapshot chunk; `max_snapshot_bytes`: the largest snapshot a
      follower accepts (bounds its receive buffer).
    - `max_uncommitted_entries`: a leader drops proposals (`ProposalDropped`) while this many are uncommitted.
    - `max_pending_reads`: a bound on queued ReadIndex requests (`ProposalDropped` beyond it).
    - `pre_vote`: PreVote phase before a real election (a partitioned node does not disrupt the cluster).
    - `check_quorum`: a leader steps down when it has not heard from a majority within an election timeout, and a
      follower that heard from a leader within the election timeout ignores vote requests (unless the request is
      a leadership transfer).
    - `lease_reads`: serve ReadIndex requests from the leader lease instead of a heartbeat round. Requires
      `check_quorum`. How it works: a follower that heard from the leader ignores vote requests for
      `election_tick` of ITS ticks (CheckQuorum); so once a majority answered a heartbeat round the leader sent at
      its tick t, no other leader can be elected before the leader's tick t + election_tick - lease_margin_ticks,
      and reads at the commit index are safe until then without a message. The lease rests on a clock
      assumption: the nodes' tick rates drift by a bounded ratio, small enough that `election_tick` ticks of
      any follower always last longer than `election_tick - lease_margin_ticks` ticks of the leader (so the
      lease is always shorter than the election timeout). A paused or slow-ticking leader, or a fast-ticking
      follower, breaks it: that is why it is off by default. Also: a (re)started node refuses votes for its
      first `election_tick` ticks (it may have acknowledged the lease before crashing), and a leader that sent
      TIMEOUT_NOW (leadership transfer) never trusts its lease again in that term.
    - `lease_margin_ticks`: the safety margin subtracted from the lease (must be < election_tick).
    - `failpoints`: names of core failpoints (raftkv/failpoints.py) that plant a bug on purpose, for test labs
      only; default none. Decided at construction: the core binds the buggy branch then, no per-call check.
    """

    id: str
    peers: tuple[str, ...]
    rng: random.Random
    election_tick: int = 10
    heartbeat_tick: int = 1
    max_inflight_msgs: int = 256
    max_entries_per_msg: int = 1024
    max_bytes_per_msg: int = 1 << 20
    snapshot_chunk_bytes: int = 1 << 20
    max_snapshot_bytes: int = 1 << 30
    max_uncommitted_entries: int = 1 << 16
    max_pending_reads: int = 1 << 14
    pre_vote: bool = True
    check_quorum: bool = True
    lease_reads: bool = False
    lease_margin_ticks: int = 2
    failpoints: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if type(self.id) is not str or not self.id:
            raise ConfigError(f"RaftConfig.id must be a non-empty str, got {self.id!r}")
        if type(self.peers) is not tuple or not all(type(p) is str and p for p in self.peers):
            raise ConfigError(f"RaftConfig.peers must be a tuple of non-empty str, got {self.peers!r}")
        if len(set(self.peers)) != len(self.peers):
            raise ConfigError(f"RaftConfig.peers has duplicates: {self.peers!r}")
        if self.id not in self.peers:
            raise ConfigError(f"RaftConfig.peers {self.peers!r} must include this node's id {self.id!r}")
        if not isinstance(self.rng, random.Random):
            raise ConfigError("RaftConfig.rng must be a random.Random (seed it; the core has no other randomness)")
        for name in ("election_tick", "heartbeat_tick", "max_inflight_msgs", "max_entries_per_msg",
                     "max_bytes_per_msg", "snapshot_chunk_bytes", "max_snapshot_bytes",
                     "max_uncommitted_entries", "max_pending_reads"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ConfigError(f"RaftConfig.{name} must be an int >= 1, got {value!r}")
        if self.election_tick <= self.heartbeat_tick:
            raise ConfigError(f"RaftConfig.election_tick ({self.election_tick}) must exceed heartbeat_tick "
                              f"({self.heartbeat_tick})")
        for name in ("pre_vote", "check_quorum", "lease_reads"):
            if type(getattr(self, name)) is not bool:
                raise ConfigError(f"RaftConfig.{name} must be a bool")
        if type(self.lease_margin_ticks) is not int or not 0 <= self.lease_margin_ticks < self.election_tick:
            raise ConfigError(f"RaftConfig.lease_margin_ticks must be an int in [0, election_tick), "
                              f"got {self.lease_margin_ticks!r}")
        if type(self.failpoints) is not frozenset:
            raise ConfigError(f"RaftConfig.failpoints must be a frozenset of names, got {self.failpoints!r}")
        try:
            check_layer(self.failpoints, "core", where="RaftConfig.failpoints")
        except FailpointError as exc:
            raise ConfigError(str(exc)) from None
        if self.lease_reads and not self.check_quorum:
            raise ConfigError("RaftConfig.lease_reads requires check_quorum (the lease rests on it)")

    @property
    def quorum(self) -> int:
        """The size of a majority of the voters."""
        return len(self.peers) // 2 + 1
