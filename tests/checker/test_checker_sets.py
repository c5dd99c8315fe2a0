"""The keyed set checker against hand-built histories: each anomaly kind is found, a correct history passes."""

from __future__ import annotations

from typing import Any

from checker.sets import KeyedSetChecker


class H:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def ev(self, process: Any, kind: str, f: str, key: str = "s0", value: Any = None) -> H:
        i = len(self.events)
        self.events.append({"index": i, "process": process, "type": kind, "f": f, "key": key, "value": value,
                            "time": i})
        return self

    def add(self, p: int, e: int, outcome: str = "ok", key: str = "s0") -> H:
        return self.ev(p, "invoke", "add", key, e).ev(p, outcome, "add", key, e)

    def read(self, p: int, elements: list[int] | None, key: str = "s0", outcome: str = "ok") -> H:
        return self.ev(p, "invoke", "read", key).ev(p, outcome, "read", key, elements)

    def check(self) -> dict[str, Any]:
        return KeyedSetChecker().check({}, self.events)


def test_a_correct_history_passes_and_counts_recovered_adds() -> None:
    h = (H().add(0, 1).add(1, 2, "info").add(2, 3, "fail").add(3, 4, key="s1").add(4, 5, "info")
         .read(0, [2, 1]).read(0, [4], key="s1"))
    result = h.check()
    assert result["valid"] is True, result
    assert result["recovered_count"] == 1 and result["acknowledged_count"] == 2 and result["attempt_count"] == 5
    assert result["anomalies"] == {} and result["unread_count"] == 0 and result["keys"] == 2


def test_lost_add() -> None:
    result = H().add(0, 1).add(0, 2).read(1, [2]).check()
    assert result["valid"] is False and result["anomalies"] == {"lost": 1}
    assert result["examples"]["lost"] == [{"key": "s0", "element": 1, "acknowledged_at": 1, "read": 4}]
    assert "1 lost" in result["explanation"]


def test_an_add_concurrent_with_the_read_may_be_missing() -> None:
    h = H().ev(0, "invoke", "add", value=1).read(1, []).ev(0, "ok", "add", value=1)
    result = h.check()
    assert result["valid"] is True and result["unread_count"] == 1


def test_unexpected_element_and_element_of_another_set() -> None:
    result = H().add(0, 1, key="s1").read(1, [1, 7]).read(1, [1], key="s1").check()
    assert result["anomalies"] == {"unexpected": 2}


def test_failed_add_present() -> None:
    result = H().add(0, 1, "fail").read(1, [1]).check()
    assert result["anomalies"] == {"failed-present": 1}


def test_duplicated_element() -> None:
    result = H().add(0, 1).read(1, [1, 1]).check()
    assert result["anomalies"] == {"duplicated": 1}


def test_no_ok_read_is_unknown() -> None:
    result = H().add(0, 1).read(1, None, outcome="fail").check()
    assert result["valid"] == "unknown" and result["unknown_reason"]


def test_lab_events_are_ignored() -> None:
    h = H().add(0, 1).ev("nemesis", "info", "start").ev("harness", "info", "quiesce").read(1, [1])
    assert h.check()["valid"] is True


def test_an_element_lost_by_several_reads_counts_once() -> None:
    result = H().add(0, 1).add(0, 2).read(1, [2]).read(1, [2]).check()
    assert result["anomalies"] == {"lost": 1} and len(result["examples"]["lost"]) == 1
