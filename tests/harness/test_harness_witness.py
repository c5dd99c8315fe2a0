"""harness.witness: what the recorder writes from the nodes' Witness answers (fake DB, no network)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from checker import LogMatchingChecker
from harness.monitor import LeaderWitness
from harness.protocols import TestContext, Witness
from harness.witness import WitnessRecorder


class Host:
    def __init__(self, name: str) -> None:
        self.name, self.address = name, name


class FakeDB:
    def __init__(self) -> None:
        self.answers: dict[str, Mapping[str, Any] | Exception] = {}

    async def witness(self, test: Any, node: str) -> Mapping[str, Any]:
        answer = self.answers[node]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _recorder(db: FakeDB) -> tuple[WitnessRecorder, list[tuple[str, dict[str, Any]]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    test = TestContext(name="t", options={}, hosts=[Host("n1"), Host("n2")],  # type: ignore[list-item]
                       backend=None, db=db, seed=1, store_dir=None)  # type: ignore[arg-type]
    assert isinstance(db, Witness)
    leaders = LeaderWitness(lambda v: events.append(("leader", v)))
    return WitnessRecorder(test, db, leaders=leaders, record=lambda f, v: events.append((f, v)),
                           interval=0.1), events


def test_records_new_leaderships_once_and_only_new_checkpoints() -> None:
    db = FakeDB()
    rec, events = _recorder(db)
    db.answers = {"n1": {"leaderships": [2, 5], "chain": {"index": 17, "term": 5, "hash": "h17",
                                                          "checkpoints": [[16, 5, "h16"]]}},
                  "n2": OSError("refused")}
    asyncio.run(rec.poll_once())
    db.answers["n2"] = {"leaderships": [3], "chain": None}
    asyncio.run(rec.poll_once())  # n1 unchanged: nothing new of it
    db.answers["n1"] = {"leaderships": [2, 5], "chain": {"index": 33, "term": 5, "hash": "h33",
                                                         "checkpoints": [[16, 5, "h16"], [32, 5, "h32"]]}}
    asyncio.run(rec.poll_once(final=True))
    assert events == [
        ("leader", {"term": 2, "node": "n1", "source": "node"}),
        ("leader", {"term": 5, "node": "n1", "source": "node"}),
        ("chain", {"final": False, "nodes": {"n1": {"index": 17, "term": 5, "hash": "h17",
                                                    "checkpoints": [[16, 5, "h16"]]}}}),
        ("leader", {"term": 3, "node": "n2", "source": "node"}),
        ("chain", {"final": True, "nodes": {"n1": {"index": 33, "term": 5, "hash": "h33",
                                                   "checkpoints": [[32, 5, "h32"]]}}}),
    ]


def test_a_changed_checkpoint_is_recorded_again_so_the_checker_sees_the_rewrite() -> None:
    db = FakeDB()
    rec, events = _recorder(db)
    db.answers = {"n1": {"chain": {"index": 16, "term": 5, "hash": "a", "checkpoints": [[16, 5, "a"]]}},
                  "n2": {"chain": {"index": 10, "term": 5, "hash": "c", "checkpoints": []}}}
    asyncio.run(rec.poll_once())
    db.answers["n1"] = {"chain": {"index": 20, "term": 6, "hash": "b20", "checkpoints": [[16, 6, "b"]]}}
    asyncio.run(rec.poll_once())
    history = [{"process": "harness", "type": "info", "f": f, "value": v, "time": i} for i, (f, v) in
               enumerate(events)]
    (violation,) = LogMatchingChecker().check({}, history)["violations"]
    assert (violation["kind"], violation["node"], violation["index"]) == ("rewritten", "n1", 16)
