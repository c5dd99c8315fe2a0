"""The `list-append` workload (DB-neutral): appends of unique values to a few lists, reads of whole lists.

Vocabulary (checker/listappend.py): `append` (key = the list `l<i>`, value = a unique integer), `read` (key; ok
value = the whole list, in order). The run's DB supplies the client (harness.registry.client_for; raftkv's:
workloads/raftkv_clients.py). Mix: half appends, half reads of random lists; then, after the heal, every list
read through every node until one read succeeds. Checked by checker.listappend.ListAppendChecker (every read a
prefix of one order per key; nothing lost, duplicated, invented or read from a failed append; reads and appends
in real-time order; linear in the history's size), op statistics, the convergence and election oracles and the
recovery checker (appends are the writes, reads the reads).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from checker import ConvergenceChecker, ElectionSafetyChecker, RecoveryChecker, Stats
from checker.listappend import ListAppendChecker
from harness import generator as gen
from harness.registry import Workload
from workloads.common import KEYS_OPTION, UniqueWritesGen, final_reads, option_keys

READ_FRACTION = 0.5
PREFIX = "l"


def generator(options: Mapping[str, Any], rng: random.Random) -> gen.Generator:
    return UniqueWritesGen("append", option_keys(options, PREFIX), READ_FRACTION, rng.getrandbits(64))


def final_generator(options: Mapping[str, Any], rng: random.Random) -> gen.Generator:
    return final_reads(option_keys(options, PREFIX), int(options.get("nodes") or 1))


def checker(options: Mapping[str, Any]) -> Mapping[str, Any]:
    bound = options.get("recovery_bound_s")
    return {"list-append": ListAppendChecker(), "stats": Stats(), "convergence": ConvergenceChecker(),
            "election": ElectionSafetyChecker(),
            "recovery": RecoveryChecker(writes={"append"}, reads={"read"},
                                        bound_s=None if bound is None else float(bound))}


LIST_APPEND = Workload(
    name="list-append", db="raftkv", generator=generator,
    final_generator=final_generator, checker=checker, options=(KEYS_OPTION,),
    description="appends of unique values to --keys lists and reads of whole lists, checked for one order per key")
