"""After the heal: phase 8, the quiesce observation (do the running nodes agree and catch up?), and phase 9's
convergence observation after the final reads. Both are recorded as history events of process "harness" for the
checkers, so `harness analyze` judges them again from the history alone."""

from __future__ import annotations

import logging
import time

from harness.converge import CONVERGE, HARNESS, observe_convergence
from harness.phases.state import RunState
from harness.protocols import Op
from harness.quiesce import quiesce
from harness.readiness import wait_ready

log = logging.getLogger("harness.run")


async def quiesce_phase(r: RunState) -> None:
    """Phase 8: harness.quiesce's observation, recorded for the recovery checker. A DB without ClusterStatus has
    no leader or commit index to agree on: the run waits (at most ``quiesce_timeout``) until it is ready again, and
    records nothing."""
    assert r.test is not None
    config = r.config
    r.phase("quiesce")
    if r.monitor is None:
        ready = await wait_ready(r.test, config.quiesce_timeout, interval=min(0.1, config.status_interval))
        log.info("quiesce: no cluster status to observe; ready again: %s", ready)
        return
    outcome = await quiesce(r.test, heal_time=time.monotonic_ns(), timeout=config.quiesce_timeout,
                            catch_up_s=r.options["recovery_bound_s"], interval=config.status_interval)
    r.record_observation("quiesce", outcome)  # evidence for the recovery checker, not a log line
    if not outcome["agreed"] or outcome["caught_up"] is False:
        log.warning("quiesce: agreed %s within %.1f s, caught up %s", outcome["agreed"], config.quiesce_timeout,
                    outcome["caught_up"])


async def convergence_phase(r: RunState) -> None:
    """Phase 9, after the final reads: the convergence oracle's observation (harness.converge: poll every node's
    StateDigest until all running nodes report the same applied index, at most ``quiesce_timeout``), recorded as
    ONE history event of process "harness", f "converge" (a DB without the capability: the event says skipped).
    checker.ConvergenceChecker judges it, in the run and in `harness analyze`."""
    assert r.test is not None and r.history is not None
    r.phase("convergence")
    value = await observe_convergence(r.test, timeout=r.config.quiesce_timeout, interval=r.config.status_interval)
    r.history.record(Op(process=HARNESS, type="info", f=CONVERGE, value=value, time=time.monotonic_ns()))
    log.info("convergence: %s", "skipped" if "skipped" in value else
             f"converged={value['converged']} after {value['polls']} poll(s)")
