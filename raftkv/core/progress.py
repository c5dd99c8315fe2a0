"""A leader's view of one follower's replication (after etcd's tracker.Progress), pure and small.

States:
- PROBE: the leader does not know where the follower's log matches; it sends one APPEND at a time (then pauses
  until a response or a heartbeat response) and backs `next` up on rejections.
- REPLICATE: the follower's match is known; the leader streams APPENDs optimistically (`next` jumps past what was
  sent) up to `max_inflight` unacknowledged messages.
- SNAPSHOT: the follower needs entries the leader compacted; an InstallSnapshot transfer is under way and
  nothing else is sent until it finishes.
"""

from __future__ import annotations

import enum
from collections import deque

__all__ = ["Progress", "ProgressState"]


class ProgressState(enum.Enum):
    """How a leader replicates to one follower (see the module docstring)."""

    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Progress:
    """Replication progress of one follower. `match`: highest index known to be in the follower's log (and
    equal to the leader's); `next`: the next index to send. Invariant: match < next."""

    __slots__ = ("match", "next", "state", "inflight", "max_inflight", "probe_sent", "recent_active",
                 "pending_snapshot", "snap_offset", "snap_wait", "acked_seq")

    def __init__(self, *, next_index: int, max_inflight: int, match: int = 0) -> None:
        self.match = match
        self.next = next_index
        self.state = ProgressState.PROBE
        self.inflight: deque[int] = deque()  # last index of each unacknowledged APPEND, ascending
        self.max_inflight = max_inflight
        self.probe_sent = False
        self.recent_active = False
        self.pending_snapshot = 0  # index of the snapshot being installed (SNAPSHOT state)
        self.snap_offset = 0  # bytes of it the follower has acknowledged
        self.snap_wait = 0  # ticks since the last chunk was sent (resend when it gets too long)
        self.acked_seq = 0  # highest heartbeat round the follower answered (ReadIndex, lease)

    def __repr__(self) -> str:
        return (f"Progress(match={self.match}, next={self.next}, state={self.state.name}, "
                f"inflight={len(self.inflight)}, probe_sent={self.probe_sent})")

    def become_probe(self) -> None:
        """Back to probing from just after what is known to match (or after the snapshot just installed)."""
        if self.state is ProgressState.SNAPSHOT:
            self.next = max(self.match, self.pending_snapshot) + 1
            self.pending_snapshot = 0
        else:
            self.next = self.match + 1
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.inflight.clear()

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.inflight.clear()

    def become_snapshot(self, index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.pending_snapshot = index
        self.snap_offset = 0
        self.snap_wait = 0
        self.inflight.clear()

    def maybe_update(self, index: int) -> bool:
        """The follower acknowledged its log matches up to `index`. Returns True if that is news."""
        if index > self.match:
            self.match = index
            self.probe_sent = False
            if self.next <= index:
                self.next = index + 1
            return True
        if self.next <= index:  # cannot happen while match < next holds; kept for safety
            self.next = index + 1
        return False

    def sent_append(self, last_index: int, n_entries: int) -> None:
        """An APPEND ending at `last_index` (holding `n_entries` entries) went out."""
        if self.state is ProgressState.REPLICATE:
            if n_entries:
                self.next = last_index + 1
                self.inflight.append(last_index)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def free_up_to(self, index: int) -> None:
        """Acknowledged up to `index`: those in-flight messages are done."""
        inflight = self.inflight
        while inflight and inflight[0] <= index:
            inflight.popleft()

    def maybe_decrease_to(self, rejected: int, next_hint: int) -> bool:
        """The follower rejected an APPEND whose previous index was `rejected`; `next_hint` is where the leader
        computed the follower's log may match from. Returns False for a stale rejection (ignore it)."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.become_probe()
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, next_hint), self.match + 1)
        self.probe_sent = False
        return True

    @property
    def paused(self) -> bool:
        """True when no APPEND may be sent now (window full, probe outstanding, or snapshot in progress)."""
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return len(self.inflight) >= self.max_inflight
        return True
