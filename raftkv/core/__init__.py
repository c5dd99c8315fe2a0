"""raftkv.core: Raft as a pure state machine (sans-I/O), after etcd-io/raft.

Drive a `Raft` with `tick()`, `step(message)`, `propose(data)`, `read_index(context)`; take its work with
`ready()` (persist -> send -> apply, see `Ready`) and acknowledge it with `advance(ready)`. Encode messages and
log records for the wire and the disk with `raftkv.core.codec`.

Design, module by module (each small and pure, each with its own tests under tests/core/):
- `types`: the frozen values (Entry, HardState, Snapshot, Message, Ready, ...), validated when built.
- `config`: RaftConfig (validated; the only randomness is its `rng`).
- `errors`: who is at fault: UsageError (caller), NotLeader/ProposalDropped (refusals), ProtocolError (peer),
  RaftHalted (an internal bug happened earlier; the object refuses further use).
- `quorum`: majority maths (commit index of a set of match indexes, vote outcomes).
- `progress`: a leader's per-follower replication state (PROBE / REPLICATE with a bounded in-flight window /
  SNAPSHOT), after etcd's tracker.Progress.
- `log`: the in-memory log after the last snapshot, with the persisted / committed / applied cursors; it
  truncates only on a real term conflict and never below the commit index.
- `raft`: the protocol. Role behaviour is swapped as a whole (`_step`/`_tick` point at the follower, candidate
  or leader functions). Leader work is batched: proposals only mark followers as due, and the APPENDs are built
  when the caller asks for the next Ready, so a burst of proposals leaves as one message per follower.
  Followers learn the commit index from the next APPEND or HEARTBEAT.
  Elections: randomized timeouts in [election_tick, 2 * election_tick), PreVote, CheckQuorum (and the
  follower side of it: a node that heard from a leader within the election timeout ignores vote requests,
  unless the request comes from a leadership transfer). Commit counts replicas of current-term entries only;
  a new leader appends a no-op. Rejections carry the follower's term at the probed index and that term's first
  index, so the leader backs up a term per round trip. Snapshots go out in chunks of snapshot_chunk_bytes,
  one chunk in flight, resent after an election timeout without an answer. ReadIndex batches all reads
  waiting for a heartbeat round (rounds are numbered; a read is confirmed when a majority echoed a round sent
  after it) and waits for a committed entry of the current term. The optional lease (see RaftConfig) answers
  reads without a round while a majority acknowledged a round less than election_tick - margin ticks ago.
- `codec`: msgpack encodings for the wire and the WAL, and DecodeError for anything else.
"""

from .config import RaftConfig
from .errors import (
    ConfigError,
    NotLeader,
    ProposalDropped,
    ProtocolError,
    RaftError,
    RaftHalted,
    UsageError,
)
from .raft import PeerStatus, ProgressState, Raft, Status
from .types import (
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
    SoftState,
)

__all__ = [
    "ConfigError",
    "Entry",
    "EntryKind",
    "HardState",
    "Message",
    "MessageType",
    "NotLeader",
    "PeerStatus",
    "ProgressState",
    "ProposalDropped",
    "ProtocolError",
    "Raft",
    "RaftConfig",
    "RaftError",
    "RaftHalted",
    "ReadState",
    "Ready",
    "Role",
    "Snapshot",
    "SnapshotMeta",
    "SoftState",
    "Status",
    "UsageError",
]
