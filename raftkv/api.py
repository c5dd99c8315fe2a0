"""The client API's shared vocabulary: error codes (the one table), limits, and the wire shapes. Pure.

Both the server (raftkv.server.http_api) and the client library (raftkv.client) use this module, and
docs/openapi.yaml documents the same table. A *definite* error means the operation certainly did not take effect
(nothing was proposed, or the state machine refused it); an *indefinite* one means it may have taken effect, or may
still take effect later: a client must not guess.

| code              | HTTP | definite | when |
|-------------------|------|----------|------|
| version-mismatch  | 409  | yes      | the key exists with another version than the expected one (body: current_version) |
| no-key            | 404  | yes      | put/delete with version > 0 on an absent key; a get of an absent key |
| not-leader        | 307  | yes      | this node is a follower: nothing was proposed; `leader`/`leader_url` say where to go |
| unavailable       | 503  | yes      | no known leader, shutting down, overloaded, lease reads disabled, a write still queued (never proposed) at its deadline, or a read not confirmed within its deadline or two election timeouts (reads never take effect) |
| bad-request       | 400  | yes      | malformed HTTP or JSON, wrong types, a key that is not UTF-8 once percent-decoded, bad consistency, a version outside 0..2^63-1, a body not received within the body timeout |
| too-large         | 413  | yes      | a key over MAX_KEY_BYTES, a value over MAX_VALUE_BYTES, a body over MAX_BODY_BYTES, a request line or header over the HTTP parser's limit (8190 bytes) |
| not-found         | 404  | yes      | an unknown path |
| method-not-allowed| 405  | yes      | an unknown method on a known path |
| session-expired   | 410  | yes      | a session write (client_id, seq) the session table no longer remembers: not applied now; an earlier attempt may have been (docs/server.md "Exactly-once writes") |
| maybe             | 504  | no       | the write was proposed but its commit could not be confirmed before its deadline (timeout, leadership lost, shutdown): it may apply later or never |
| internal          | 500  | no       | the node failed while answering (a bug, logged with its traceback): a write may have been proposed |

Follower behaviour: a follower REDIRECTS writes and lease reads (307 with `Location` and a JSON body naming the
leader and its client URL); it never forwards a client's request. It SERVES linearizable reads itself: the core
forwards its ReadIndex request to the leader, which confirms its leadership with a heartbeat round and returns its
commit index; the follower answers once it has applied that index (linearizable, and the HTTP work of reads is
spread over every node). It answers `?consistency=stale` reads from its own state at once. A redirect costs the
client one round trip once: the library remembers the leader. A follower that knows no leader answers
`unavailable` (and the library tries the next node).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 1024 * 1024
MAX_BODY_BYTES = MAX_VALUE_BYTES * 2 + 4096  # JSON-escaped value plus envelope
DEFAULT_TIMEOUT_S = 5.0
SESSION_WINDOW = 64
"""Client sessions (docs/server.md "Exactly-once writes"): the state machine keeps at most this many answers per
session, so a client keeps seq - min_seq below it (at most this many writes of one session in flight); a client
with more in flight opens another session."""
MAX_TIMEOUT_S = 60.0
MAX_VERSION = 2**63 - 1  # versions and query integers above this are refused (bad-request), never overflow


class Consistency(enum.Enum):
    LINEARIZABLE = "linearizable"  # ReadIndex: leadership confirmed by a quorum after the read arrived
    LEASE = "lease"  # leader lease (only when the server runs with --lease); relies on bounded clock drift
    STALE = "stale"  # any node's applied state, possibly old: explicitly NOT linearizable


@dataclass(frozen=True, slots=True)
class ErrorKind:
    code: str
    http_status: int
    definite: bool


ERRORS: dict[str, ErrorKind] = {
    k.code: k
    for k in (
        ErrorKind("version-mismatch", 409, True),
        ErrorKind("no-key", 404, True),
        ErrorKind("not-leader", 307, True),
        ErrorKind("unavailable", 503, True),
        ErrorKind("bad-request", 400, True),
        ErrorKind("too-large", 413, True),
        ErrorKind("not-found", 404, True),
        ErrorKind("method-not-allowed", 405, True),
        ErrorKind("session-expired", 410, True),
        ErrorKind("maybe", 504, False),
        ErrorKind("internal", 500, False),
    )
}
