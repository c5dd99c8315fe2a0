"""The simulator finds the failpoints it can plant (raftkv/failpoints.py): each recorded seed of
raftkv/sim/failpoint_seeds.json (written by `python bench/sim_failpoints.py --record`) still finds its failpoint,
the same seed is clean without it, and server failpoints are refused with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raftkv.failpoints import FAILPOINTS
from raftkv.sim import run_simulation
from raftkv.sim.__main__ import main

RECORDED = json.loads((Path(__file__).resolve().parents[2] / "raftkv" / "sim" / "failpoint_seeds.json").read_text())
SEEDS = {name: case for name, case in RECORDED.items() if case["seed"] is not None}
REACHABLE = sorted(n for n, f in FAILPOINTS.items() if f.in_simulator)
# Not found within 1,000 seeds (docs/failpoints.md says why): a change here is news either way.
NOT_FOUND: set[str] = set()


def test_every_failpoint_the_simulator_can_plant_has_a_recorded_sweep() -> None:
    assert sorted(RECORDED) == REACHABLE, "run python bench/sim_failpoints.py --record"
    assert {n for n, case in RECORDED.items() if case["seed"] is None} == NOT_FOUND


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_the_recorded_seed_finds_the_failpoint(name: str) -> None:
    case = SEEDS[name]
    deletes = case.get("deletes", 0.0)  # the clients' mix the failpoint needs (no-dedup: deletes)
    planted = run_simulation(case["seed"], case["nodes"], case["steps"], failpoints=frozenset({name}),
                             deletes=deletes)
    assert planted.violation is not None, f"{name}: seed {case['seed']} no longer finds it"
    assert planted.violation.invariant == case["invariant"], planted.summary()
    assert f"--failpoint {name}" in planted.reproduce()
    clean = run_simulation(case["seed"], case["nodes"], case["steps"], deletes=deletes)
    assert clean.ok, f"the same seed without {name} fails: {clean.summary()}"


def test_a_server_failpoint_is_refused_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--seed", "1", "--failpoint", "definite-on-ambiguous"])
    assert exit_.value.code == 254
    assert "server failpoint, out of the simulator's reach" in capsys.readouterr().err
    with pytest.raises(ValueError, match="server failpoints live in the HTTP server"):
        run_simulation(1, 3, 100, failpoints=frozenset({"definite-on-ambiguous"}))


def test_an_unknown_failpoint_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--seed", "1", "--failpoint", "forget-votes"])
    assert exit_.value.code == 254
    assert "unknown failpoint 'forget-votes'" in capsys.readouterr().err


def test_a_sweep_stops_at_the_first_finding_and_prints_the_replay(capsys: pytest.CaptureFixture[str]) -> None:
    name = "cas-ignores-version"
    seed = SEEDS[name]["seed"]
    assert main(["--seeds", f"{seed}..{seed + 50}", "--failpoint", name, "--first"]) == 1
    out = capsys.readouterr().out
    assert f"reproduce: python -m raftkv.sim --seed {seed} " in out and f"--failpoint {name}" in out
    assert "1 runs, 1 with violations" in out


def test_a_crash_inside_a_run_is_a_finding_of_its_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception escaping a node (here the state machine) ends that run with a `sim-crash` finding naming
    where it was raised, instead of ending the sweep."""
    from raftkv.kv import KVStore

    def broken(self: KVStore, *args: object) -> None:
        raise RuntimeError("planted crash")

    monkeypatch.setattr(KVStore, "apply", broken)
    result = run_simulation(3, 3, 2_000)
    assert result.violation is not None and result.violation.invariant == "sim-crash"
    assert "RuntimeError: planted crash" in result.violation.detail and "in broken" in result.violation.detail


def test_the_failpoint_doc_lists_every_failpoint_with_its_layer() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "failpoints.md").read_text()
    for name, fp in FAILPOINTS.items():
        assert f"| `{name}` | {fp.layer} | {fp.mimics} |" in doc, name
