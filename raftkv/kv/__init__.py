"""raftkv.kv: the replicated key-value state machine with versioned keys, and its command encoding. Pure.

Semantics (what the system promises):
- Get(key) -> (value, version), or NO_KEY.
- Put(key, value, expected_version) succeeds only when the key's current version == expected_version, where 0
  means "create: the key must not exist"; the version then becomes expected_version + 1. Otherwise
  VERSION_MISMATCH (the key exists with another version, or exists when 0 was expected) or NO_KEY (expected > 0
  and the key is absent).
- Delete(key, expected_version) likewise (expected_version must be >= 1); a deleted key is gone: re-creating it
  (expected 0) starts again at version 1. Versions therefore repeat across a delete, so an expected version alone
  does not make a retried write safe: a write with a `ClientSession` applies at most once however often it is
  retried (the session table, raftkv/kv/sessions.py; docs/server.md "Exactly-once writes").
Keys and values are str; the size limits below are enforced when a `Command` is built (the server rejects
oversized requests before proposing them).
"""

from .command import (
    MAX_CLIENT_ID_BYTES,
    MAX_KEY_BYTES,
    MAX_REQUEST_ID_BYTES,
    MAX_VALUE_BYTES,
    ClientSession,
    Command,
    CommandError,
    Op,
    Outcome,
    Result,
    decode_command,
    encode_command,
)
from .store import FrozenState, KVStore, KVUsageError, SnapshotError

__all__ = [
    "MAX_CLIENT_ID_BYTES",
    "MAX_KEY_BYTES",
    "MAX_REQUEST_ID_BYTES",
    "MAX_VALUE_BYTES",
    "Command",
    "ClientSession",
    "CommandError",
    "FrozenState",
    "KVStore",
    "KVUsageError",
    "Op",
    "Outcome",
    "Result",
    "SnapshotError",
    "decode_command",
    "encode_command",
]
