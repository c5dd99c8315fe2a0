"""The convergence oracle's engine side (harness.converge) with a scripted DB, and `harness analyze` re-judging a
stored converge observation from the history alone."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.converge import agreed, observe_convergence
from harness.protocols import StateDigest
from harness.protocols import TestContext as Ctx
from harness.run import analyze


class Host:
    def __init__(self, name: str) -> None:
        self.name, self.address = name, name


class ScriptedDB:
    """Answers state_digest from a script: node -> list of states, one per poll (the last one repeats); a state
    that is an Exception is raised. `running` says which nodes run."""

    def __init__(self, script: Mapping[str, list[Any]], running: set[str] | None = None) -> None:
        self.script = script
        self.running = set(script) if running is None else running
        self.asked: dict[str, int] = dict.fromkeys(script, 0)

    async def is_running(self, test: Any, node: str) -> bool:
        return node in self.running

    # The rest of the Process capability (harness.converge asks is_running of a DB that has it); never called.
    async def start(self, test: Any, node: str) -> None: ...

    async def kill(self, test: Any, node: str) -> None: ...

    async def pause(self, test: Any, node: str) -> None: ...

    async def resume(self, test: Any, node: str) -> None: ...

    async def state_digest(self, test: Any, node: str) -> Mapping[str, Any]:
        states = self.script[node]
        state = states[min(self.asked[node], len(states) - 1)]
        self.asked[node] += 1
        if isinstance(state, Exception):
            raise state
        return state


def ctx(tmp_path: Path, db: Any, nodes: int = 3) -> Ctx:
    return Ctx(name="t", options={}, hosts=[Host(f"n{i + 1}") for i in range(nodes)],  # type: ignore[misc]
               backend=None, db=db, seed=1, store_dir=tmp_path)  # type: ignore[arg-type]


def st(applied: int, digest: str = "d") -> dict[str, Any]:
    return {"applied": applied, "digest": digest, "last_index": applied, "last_term": 1}


async def test_polls_until_every_running_node_reports_one_applied_index(tmp_path: Path) -> None:
    db = ScriptedDB({"n1": [st(9)], "n2": [st(5), st(7), st(9)], "n3": [TimeoutError("slow"), st(9)]})
    assert isinstance(db, StateDigest)
    value = await observe_convergence(ctx(tmp_path, db), timeout=10, interval=0.01)
    assert value["converged"] is True and value["polls"] == 3
    assert value["nodes"] == {"n1": st(9), "n2": st(9), "n3": st(9)}


async def test_a_cluster_that_never_converges_is_recorded_within_the_bound(tmp_path: Path) -> None:
    db = ScriptedDB({"n1": [st(9)], "n2": [st(4)], "n3": [st(9)]})
    value = await observe_convergence(ctx(tmp_path, db), timeout=0.2, interval=0.02)
    assert value["converged"] is False and 2 <= value["polls"] <= 11
    assert value["nodes"]["n2"] == st(4) and value["elapsed_s"] < 5


async def test_a_stopped_node_does_not_hold_up_convergence_and_bad_answers_are_errors(tmp_path: Path) -> None:
    db = ScriptedDB({"n1": [st(9)], "n2": [st(3)], "n3": [st(9)]}, running={"n1", "n3"})
    value = await observe_convergence(ctx(tmp_path, db), timeout=5, interval=0.01)
    assert value["converged"] is True and value["nodes"]["n2"] == {"error": "not running"}
    assert not agreed({"n1": st(9), "n2": {"error": "no applied index and digest in {}"}})


async def test_a_db_without_the_capability_is_skipped(tmp_path: Path) -> None:
    class Plain:
        async def is_running(self, test: Any, node: str) -> bool:
            return True

    value = await observe_convergence(ctx(tmp_path, Plain()), timeout=1, interval=0.01)
    assert value == {"skipped": "the DB (Plain) has no StateDigest capability"}


def test_analyze_rejudges_a_stored_divergence(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "test.json").write_text(json.dumps({"workload": "register", "options": {"keys": 1}}))
    events = [
        {"process": 0, "type": "invoke", "f": "put", "key": "k0", "value": {"value": "1", "version": 0}, "time": 1},
        {"process": 0, "type": "ok", "f": "put", "key": "k0", "value": {"version": 1}, "time": 2},
        {"process": "harness", "type": "info", "f": "converge", "time": 3,
         "value": {"converged": True, "polls": 1, "elapsed_s": 0.1,
                   "nodes": {"n1": st(3, "x"), "n2": st(3, "y"), "n3": st(3, "x")}}},
    ]
    (run / "history.jsonl").write_text("".join(json.dumps({"index": i, **e}) + "\n" for i, e in enumerate(events)))
    (run / "results.json").write_text(json.dumps({"valid": True, "heal": {"ok": True}}))
    result = analyze(run)
    assert result["valid"] is False
    conv = result["checkers"]["convergence"]
    assert conv["mismatches"] == [{"applied": 3, "digests": {"x": ["n1", "n3"], "y": ["n2"]}}]
    assert result["checkers"]["linearizable"]["valid"] is True
    assert json.loads((run / "results.json").read_text())["valid"] is False
    assert result["heal"] == {"ok": True}


@pytest.mark.parametrize("missing", ["applied", "digest"])
async def test_an_answer_without_applied_or_digest_is_an_error(tmp_path: Path, missing: str) -> None:
    state = st(9)
    del state[missing]
    db = ScriptedDB({"n1": [state], "n2": [st(9)], "n3": [st(9)]})
    value = await observe_convergence(ctx(tmp_path, db), timeout=0.05, interval=0.01)
    assert value["converged"] is False and "error" in value["nodes"]["n1"]
