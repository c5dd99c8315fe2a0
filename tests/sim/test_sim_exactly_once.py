"""Issue 15 in the simulator: with deletes in the clients' mix, clients without sessions have a retried put
applied twice (found with a recorded seed); with client sessions the same seed, and a sweep, replay clean."""

from __future__ import annotations

from raftkv.sim import run_simulation

# Found by `python -m raftkv.sim --seeds 1..10 --nodes 3 --deletes 0.5 --no-sessions` (seeds 4, 5 and 9 failed).
SEED, NODES, STEPS, DELETES = 4, 3, 20_000, 0.5


def test_the_recorded_seed_finds_a_retried_put_applied_twice_without_sessions() -> None:
    result = run_simulation(SEED, NODES, STEPS, deletes=DELETES, sessions=False)
    assert result.violation is not None and result.violation.invariant == "duplicate-apply", result.summary()
    assert "--deletes 0.5 --no-sessions" in result.reproduce()


def test_with_sessions_the_seed_and_its_neighbours_replay_clean() -> None:
    for seed in range(1, 13):
        result = run_simulation(seed, NODES, STEPS, deletes=DELETES)
        assert result.ok, result.summary()
        assert result.stats.get("ops_ok", 0) > 100
        deleted = [op for op in result.history if op.f == "delete" and op.type == "ok"]
        assert len(deleted) > 10, "the mix must delete (and so re-create) keys"
