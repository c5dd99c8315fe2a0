"""Child seeds: one independent, stable random stream per component of a run, split from the run's seed.

Stable across processes and Python versions (sha256, not hash(), which PYTHONHASHSEED perturbs), so adding a
component does not shift the others' choices (STYLE.md: one child generator per component).
"""

from __future__ import annotations

import hashlib
import random


def child_seed(seed: int, name: str) -> int:
    """A 64-bit seed for the component ``name`` of a run seeded with ``seed``."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def child_rng(seed: int, name: str) -> random.Random:
    return random.Random(child_seed(seed, name))
