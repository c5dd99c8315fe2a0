"""Phase 6 and the final reads of phase 9: the workload's generators (the client stream beside the nemesis
schedules), the interpreter that runs them through the DB's clients, the main run with the stuck detector on, and
the final-read generator bounded by ``final_time_limit``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from harness import generator as gen
from harness import registry
from harness.faults import without_leader_aims
from harness.hunt import HuntConfig, hunt
from harness.interpreter import Interpreter
from harness.phases.state import RunState
from harness.protocols import Primaries, TestContext, election_timeout_s
from harness.runconfig import RunConfig
from harness.seeds import child_seed

log = logging.getLogger("harness.run")


def build_main_generator(config: RunConfig, workload: registry.Workload, nem_specs: list[registry.NemesisSpec],
                         options: Mapping[str, Any], test: TestContext) -> gen.Generator:
    """Client stream (workload generator, --rate, --time-limit) beside the nemesis stream: each nemesis's own
    schedule (``generator``; ``cycle`` too under ``--schedule cycle``), and for the others the engine's
    (``--schedule``): the hunting schedule (harness.hunt, ``--fault-rate`` episodes a minute, ``--moves``, times
    scaled to the DB's election timeout) or the cycle (a start every ``--nemesis-interval``, its stop one interval
    later)."""
    client_gen: gen.Generator = workload.generator(options, test.rng("workload"))
    if config.rate > 0:
        client_gen = gen.rate(config.rate, client_gen)
    client_gen = gen.time_limit(config.time_limit, client_gen)
    schedules: list[gen.Generator] = []
    engine_specs: list[registry.NemesisSpec] = []
    for spec in nem_specs:
        own = spec.generator or (spec.cycle if config.schedule == "cycle" else None)
        if own is not None:
            schedules.append(own(options, test.rng(f"nemesis.{spec.name}.schedule")))
        else:
            engine_specs.append(spec)
    if engine_specs:
        schedules.append(_engine_schedule(config, engine_specs, options, test))
    if not schedules:
        return gen.clients(client_gen)
    return gen.clients_and_nemesis(client_gen, gen.time_limit(config.time_limit, gen.any_of(*schedules)))


def _engine_schedule(config: RunConfig, specs: list[registry.NemesisSpec], options: Mapping[str, Any],
                     test: TestContext) -> gen.Generator:
    if config.schedule == "cycle":
        kinds = [k for spec in specs for k in spec.selected_kinds(options)]  # in the order given: a seed replays
        return gen.nemesis_cycle(kinds, config.nemesis_interval, seed=child_seed(config.seed, "nemesis.schedule"))
    traits = {kind: t for spec in specs for kind, t in spec.fault_traits(options).items()}
    if not isinstance(test.db, Primaries):
        traits = without_leader_aims(traits)  # its leader-aimed starts could only be skipped
    hunting = HuntConfig(kinds=traits, election_timeout_s=election_timeout_s(test.db),
                         faults_per_minute=config.fault_rate, moves=config.moves)
    log.info("hunting schedule: %g episodes a minute over %s, moves %s, election timeout %.3f s",
             hunting.faults_per_minute, ", ".join(sorted(traits)), ", ".join(hunting.moves) or "none",
             hunting.election_timeout_s)
    return hunt(hunting, seed=child_seed(config.seed, "nemesis.hunt"))


def interpreter(r: RunState, workload: registry.Workload, dbspec: registry.DBSpec,
                nem_specs: list[registry.NemesisSpec]) -> Interpreter:
    """The interpreter of phases 6 and 9: the DB's client for the workload, the composite nemesis (when any is
    selected), every op appended live to the history and counted in the tally."""
    assert r.test is not None and r.history is not None
    client = registry.client_for(dbspec, workload)
    config = r.config
    return Interpreter(
        r.test, history=r.history, origin_ns=r.origin, concurrency=config.concurrency,
        client_factory=lambda: client(r.options), nemesis=r.nemesis if nem_specs else None,
        op_timeout=config.op_timeout, open_timeout=config.op_timeout, observers=[r.tally.observe])


async def run_main(r: RunState, interp: Interpreter, main_gen: gen.Generator) -> None:
    """Phase 6: the main generator until its time limit, with the stuck detector on (it judges the workload's
    progress only while it runs)."""
    r.phase("run")
    if r.stuck is not None:
        r.stuck.enabled = True
    try:
        await interp.run(main_gen)
    finally:
        if r.stuck is not None:
            r.stuck.enabled = False


async def final_reads(r: RunState, interp: Interpreter, final: gen.Generator | None) -> None:
    """Phase 9's reads: the workload's final generator, clients only, at most ``final_time_limit`` (none: skipped)."""
    if final is None or r.config.final_time_limit <= 0:
        return
    r.phase("final reads")
    await interp.run(gen.time_limit(r.config.final_time_limit, gen.clients(final)), nemesis_thread=False)
