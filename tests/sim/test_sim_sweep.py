"""Randomized runs: a sweep of 200 seeds, the regression list, and a self-test that the checks catch bugs."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from sim_bugs import serve_reads_locally

from raftkv.core import Raft, Ready
from raftkv.sim import run_simulation

REGRESSIONS = Path(__file__).with_name("regression_seeds.txt")
SWEEP_SEEDS = range(1000, 1200)
SWEEP_STEPS = 6_000


def _regressions() -> list[tuple[int, int, int, str]]:
    cases = []
    for number, line in enumerate(REGRESSIONS.read_text().splitlines(), 1):
        text, _, comment = line.partition("#")
        if not text.strip():
            continue
        fields = text.split()
        if len(fields) != 3:
            raise ValueError(f"{REGRESSIONS.name}:{number}: expected 'seed nodes steps  # why', got {line!r}")
        seed, nodes, steps = (int(f) for f in fields)
        cases.append((seed, nodes, steps, comment.strip()))
    return cases


def test_sweep_of_200_seeds_has_no_violation() -> None:
    failures = []
    for seed in SWEEP_SEEDS:
        nodes = 3 + 2 * (seed % 3)  # 3, 5 and 7 nodes
        result = run_simulation(seed, nodes, SWEEP_STEPS)
        if not result.ok:
            failures.append(f"{result.summary()}\n  reproduce: {result.reproduce()}")
    assert not failures, "\n".join(failures)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RAFTKV_SLOW") != "1", reason="slow: set RAFTKV_SLOW=1")
def test_torture_sweep_of_1000_deeper_seeds() -> None:
    """1,000 seeds of 20,000 events on 3 to 9 nodes (a couple of minutes)."""
    failures = []
    for seed in range(100_000, 101_000):
        result = run_simulation(seed, 3 + seed % 7, 20_000)
        if not result.ok:
            failures.append(f"{result.summary()}\n  reproduce: {result.reproduce()}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(("seed", "nodes", "steps", "why"), _regressions() or [pytest.param(0, 0, 0, "", marks=
                         pytest.mark.skip(reason="the regression list is empty"))])
def test_regression_seed_passes(seed: int, nodes: int, steps: int, why: str) -> None:
    result = run_simulation(seed, nodes, steps)
    assert result.ok, f"{result.summary()}\n  reproduce: {result.reproduce()}\n  (listed because: {why})"


def test_the_checks_catch_a_node_that_loses_fsynced_state() -> None:
    """With fsync broken, crashes lose votes and acknowledged entries: most seeds must report a violation. A
    checker that let this pass would make every green sweep meaningless."""
    violated = []
    for seed in range(1, 21):
        result = run_simulation(seed, 5, 10_000, broken_sync=True)
        if not result.ok:
            violated.append(result)
            if len(violated) == 3:
                break
    assert len(violated) == 3, [r.summary() for r in violated]
    kinds = {r.violation.invariant for r in violated if r.violation}
    assert kinds <= {"election-safety", "leader-completeness", "state-machine-safety", "log-matching",
                     "acknowledged-write-lost", "read-consistency", "failed-write-applied", "liveness",
                     "monotonic-commit", "monotonic-applied", "duplicate-apply", "vote-safety"}, kinds


def test_the_checks_catch_reads_served_without_read_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node that answers Gets from its local state machine, skipping ReadIndex, serves stale reads (a follower
    or a deposed leader lags behind): the history check must notice in some of a few runs."""
    serve_reads_locally(monkeypatch)
    results = [run_simulation(seed, 5, 6_000) for seed in range(1, 9)]
    stale = [r for r in results if not r.ok and r.violation and r.violation.invariant == "read-consistency"]
    assert len(stale) >= 2, [r.summary() for r in results]


def test_the_checks_catch_a_driver_that_sends_promises_before_the_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Votes and acknowledgements sent before the fsync completes are broken by a crash in that window (the
    nemesis sets exactly that trap): some of a few dozen seeds must report it."""
    originals: dict[int, Ready] = {}
    real_ready, real_advance = Raft.ready, Raft.advance

    def early_ready(self: Raft) -> Ready:
        rd = real_ready(self)
        fake = dataclasses.replace(rd, messages=rd.messages + rd.messages_after_persist, messages_after_persist=())
        originals[id(fake)] = rd
        return fake

    def advance(self: Raft, rd: Ready) -> None:
        real_advance(self, originals.pop(id(rd), rd))

    monkeypatch.setattr(Raft, "ready", early_ready)
    monkeypatch.setattr(Raft, "advance", advance)
    caught = next((seed for seed in range(1, 61) if not run_simulation(seed, 5, 10_000).ok), None)
    assert caught is not None, "no seed caught promises sent before the fsync"
