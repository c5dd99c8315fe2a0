"""Named errors of the Raft core: who is at fault decides the class.

- `UsageError` and its children: the *caller* (the node server, the simulator, a test) misused the API
  (bad argument, calling `ready()` twice without `advance()`, compacting beyond the applied index, ...).
- `NotLeader`, `ProposalDropped`: an expected, retryable refusal of a client request; not a bug anywhere.
- `ProtocolError`: a *peer* sent a message that breaks the protocol (wrong destination, impossible indexes).
  `Raft.step` never raises anything else for a message from a peer.
- `RaftHalted`: an internal invariant broke earlier (a bug); the object refuses all further use.
Any other exception escaping the core is a bug in the core.
"""

from __future__ import annotations


class RaftError(Exception):
    """Base class of every error the core raises on purpose."""


class UsageError(RaftError):
    """The caller misused the API (wrong argument, wrong call order). Fix the caller."""


class ConfigError(UsageError):
    """A `RaftConfig` (or the durable state handed to `Raft`) is invalid; says which field and why."""


class NotLeader(RaftError):
    """This node is not the leader; `leader_hint` is the leader it knows of (None if unknown)."""

    def __init__(self, leader_hint: str | None) -> None:
        super().__init__(f"not the leader (leader hint: {leader_hint!r})")
        self.leader_hint = leader_hint


class ProposalDropped(RaftError):
    """The leader refused the proposal for now (`reason` says why: transfer in progress, too many in flight...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"proposal dropped: {reason}")
        self.reason = reason


class ProtocolError(RaftError):
    """A peer's message violates the protocol; the message was ignored and the node's state is unchanged."""


class RaftHalted(RaftError):
    """The core hit an internal error earlier and refuses further use; `cause` is that error."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"raft core halted after an internal error: {cause!r}")
        self.cause = cause
