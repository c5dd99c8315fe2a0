"""raftkv.core: Raft as a pure state machine (sans-I/O), after etcd-io/raft.

Drive a `Raft` with `tick()`, `step(message)`, `propose(data)`, `read_index(context)`; take its work with
`ready()` (persist -> send -> apply, see `Ready`) and acknowledge it with `advance(ready)`. Encode messages and
log records for the wire and the disk with `raftkv.core.codec`.
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
