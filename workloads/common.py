"""What the workloads share, DB-neutral: the `--keys` option, key names, the unique-writes generator of the
collection workloads (`set`, `list-append`) and their final reads.

Generators here are pure (harness/generator.py's contract): every choice is drawn from the seed carried in the
generator's state, nothing sleeps, nothing talks to a DB.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness import generator as gen
from harness.registry import Option, int_in

DEFAULT_KEYS = 8
MAX_KEYS = 100_000
FINAL_RETRY_S = 0.1  # between the final reads of one key through one node that did not succeed

# One declaration, shared by every workload that takes it: the CLI keeps the first declaration of a flag and
# warns when another provider declares it with another type object.
KEYS_OPTION = Option(flag="--keys", type=int_in(1, MAX_KEYS), default=DEFAULT_KEYS,
                     help=f"number of keys (registers, sets or lists), 1..{MAX_KEYS} (default {DEFAULT_KEYS})")


def key_names(count: int, prefix: str = "k") -> tuple[str, ...]:
    """`<prefix>0` .. `<prefix><count-1>`; ValueError for a count below 1."""
    if count < 1:
        raise ValueError(f"--keys must be >= 1, got {count}")
    return tuple(f"{prefix}{i}" for i in range(count))


def option_keys(options: Mapping[str, Any], prefix: str) -> tuple[str, ...]:
    return key_names(int(options.get("keys") or DEFAULT_KEYS), prefix)


@dataclass(frozen=True, slots=True)
class UniqueWritesGen(gen.Generator):
    """An infinite stream over `keys`: with probability `read_fraction` a `read` of a random key, else the write
    `f` (`add`, `append`) of the next unique integer (`counter`) to a random key. `state` is the SplitMix64 state
    every choice is drawn from (gen.draw)."""

    f: str
    keys: tuple[str, ...]
    read_fraction: float
    state: int
    counter: int = 0

    def op(self, ctx: gen.Context) -> gen.OpResult:
        if ctx.some_free_thread() is None:
            return gen.PENDING, self
        u, state = gen.draw(self.state)
        key = self.keys[int(u * len(self.keys))]
        u, state = gen.draw(state)
        if u < self.read_fraction:
            return (gen.fill_in({"f": "read", "key": key}, ctx),
                    UniqueWritesGen(self.f, self.keys, self.read_fraction, state, self.counter))
        return (gen.fill_in({"f": self.f, "key": key, "value": self.counter}, ctx),
                UniqueWritesGen(self.f, self.keys, self.read_fraction, state, self.counter + 1))


def read_until_ok(key: str, f: str = "read") -> gen.Generator:
    """Read one key (op `f`) until a read succeeds, one read at a time, FINAL_RETRY_S apart (a node that keeps
    refusing is asked about ten times a second, not in a tight loop)."""
    return gen.concurrency_limit(1, gen.until_ok(gen.delay(FINAL_RETRY_S, gen.repeat({"f": f, "key": key}))))


def final_reads(keys: tuple[str, ...], nodes: int, f: str = "read") -> gen.Generator:
    """Every key read through every node separately (gen.on_node: the workers bound to that node), side by side,
    each until one read succeeds; the engine bounds the phase by --final-time-limit. Every node answers for its
    own state, so one that lost or invented elements shows in the history."""
    return gen.any_of(*(gen.on_node(i, nodes, gen.any_of(*(read_until_ok(k, f) for k in keys)))
                        for i in range(nodes)))
