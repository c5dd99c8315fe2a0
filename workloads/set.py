"""The `set` workload (DB-neutral): unique adds to a few sets, reads of whole sets (Jepsen's set, per key).

Vocabulary (checker/sets.py): `add` (key = the set `s<i>`, value = a unique integer), `read` (key; ok value = the
set's elements). The run's DB supplies the client (harness.registry.client_for; raftkv's: workloads/raftkv_clients.py).
Mix: 90% adds, 10% reads of random sets during the run; then, after the heal, every set read through every node
until one read succeeds. Checked by checker.sets.KeyedSetChecker (lost, unexpected, failed-present and duplicated
elements in every ok read; recovered adds counted), op statistics, the convergence and election oracles and the
recovery checker (adds are the writes, reads the reads).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from checker import ConvergenceChecker, ElectionSafetyChecker, RecoveryChecker, Stats
from checker.sets import KeyedSetChecker
from harness import generator as gen
from harness.registry import Workload
from workloads.common import KEYS_OPTION, UniqueWritesGen, final_reads, option_keys

READ_FRACTION = 0.1
PREFIX = "s"


def generator(options: Mapping[str, Any], rng: random.Random) -> gen.Generator:
    return UniqueWritesGen("add", option_keys(options, PREFIX), READ_FRACTION, rng.getrandbits(64))


def final_generator(options: Mapping[str, Any], rng: random.Random) -> gen.Generator:
    return final_reads(option_keys(options, PREFIX), int(options.get("nodes") or 1))


def checker(options: Mapping[str, Any]) -> Mapping[str, Any]:
    bound = options.get("recovery_bound_s")
    return {"set": KeyedSetChecker(), "stats": Stats(), "convergence": ConvergenceChecker(),
            "election": ElectionSafetyChecker(),
            "recovery": RecoveryChecker(writes={"add"}, reads={"read"}, bound_s=None if bound is None else float(bound))}


SET = Workload(
    name="set", db="raftkv", generator=generator,
    final_generator=final_generator, checker=checker, options=(KEYS_OPTION,),
    description="unique adds to --keys sets and reads of whole sets: lost, unexpected and recovered elements")
