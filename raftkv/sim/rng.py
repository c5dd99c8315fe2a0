"""Seeded child generators: one root seed, one independent ``random.Random`` per component.

Each component (the network, the disk, the fault schedule, each node's Raft core, each client) draws from its own
generator derived from ``(root seed, component name)`` by a hash, never from a shared stream. So adding a fault type,
a client or a node does not shift the numbers any other component sees, and a seed keeps meaning the same run for
the parts that did not change. The derivation uses SHA-256 of the text ``"<seed>/<name>"``: it does not depend on
``PYTHONHASHSEED`` or the platform.
"""

from __future__ import annotations

import hashlib
import random

__all__ = ["child_seed", "child_rng"]


def child_seed(seed: int, name: str) -> int:
    """Return a 64-bit seed for the component ``name`` under the root ``seed`` (stable across runs and machines)."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not name:
        raise ValueError("a child generator needs a non-empty component name")
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def child_rng(seed: int, name: str) -> random.Random:
    """Return a fresh generator for the component ``name``; the same (seed, name) always gives the same stream."""
    return random.Random(child_seed(seed, name))
