"""The list-append checker against hand-built histories: each anomaly kind is found, a correct history passes."""

from __future__ import annotations

from typing import Any

from checker.listappend import ListAppendChecker


class H:
    """A history under construction: each call appends one event with the next index."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def ev(self, process: Any, kind: str, f: str, key: str = "x", value: Any = None) -> H:
        i = len(self.events)
        self.events.append({"index": i, "process": process, "type": kind, "f": f, "key": key, "value": value,
                            "time": i})
        return self

    def append(self, p: int, v: int, outcome: str = "ok", key: str = "x") -> H:
        return self.ev(p, "invoke", "append", key, v).ev(p, outcome, "append", key, v)

    def read(self, p: int, values: list[int] | None, key: str = "x", outcome: str = "ok") -> H:
        return self.ev(p, "invoke", "read", key).ev(p, outcome, "read", key, values)

    def check(self) -> dict[str, Any]:
        return ListAppendChecker().check({}, self.events)


def test_a_correct_history_passes_with_info_appends_either_way() -> None:
    h = (H().append(0, 1).append(1, 2, "info").append(2, 3).read(0, [1, 3]).append(0, 4, "fail").append(3, 5, "info")
         .append(4, 6).read(5, [1, 3, 5, 6]).append(0, 7, key="y").read(1, [7], key="y"))
    result = h.check()
    assert result["valid"] is True, result
    assert result["anomalies"] == {} and result["acknowledged_count"] == 4 and result["keys"] == 2


def test_concurrent_appends_and_reads_may_order_either_way() -> None:
    h = (H().ev(0, "invoke", "append", value=1).ev(1, "invoke", "append", value=2).ev(2, "invoke", "read")
         .ev(1, "ok", "append", value=2).ev(2, "ok", "read", value=[2]).ev(0, "ok", "append", value=1)
         .read(3, [2, 1]))
    assert h.check()["valid"] is True


def test_incompatible_orders() -> None:
    result = H().append(0, 1).append(0, 2).read(1, [1, 2]).read(2, [2, 1]).check()
    assert result["valid"] is False and result["anomalies"]["incompatible-order"] == 1
    assert result["examples"]["incompatible-order"][0]["value"] == 2


def test_duplicate() -> None:
    result = H().append(0, 1).append(0, 2).read(1, [1, 2, 1]).check()
    assert result["anomalies"] == {"duplicate": 1}
    assert result["examples"]["duplicate"][0]["value"] == 1 and result["valid"] is False


def test_a_duplicate_in_the_longest_read_is_found_too() -> None:
    result = H().append(0, 1).append(0, 2).read(1, [1, 1, 2]).check()
    assert result["anomalies"] == {"duplicate": 1} and result["valid"] is False


def test_unexpected_value_and_value_of_another_key() -> None:
    result = H().append(0, 1).append(0, 2, key="y").read(1, [1, 9, 2]).check()
    assert result["anomalies"]["unexpected"] == 2
    assert [e["value"] for e in result["examples"]["unexpected"]] == [9, 2]


def test_failed_append_read() -> None:
    result = H().append(0, 1).append(0, 2, "fail").read(1, [1, 2]).check()
    assert result["anomalies"] == {"failed-append-read": 1}


def test_lost_append() -> None:
    result = H().append(0, 1).append(0, 2).read(1, [1]).check()
    assert result["anomalies"] == {"lost": 1}
    assert result["examples"]["lost"][0] == {"key": "x", "value": 2, "acknowledged_at": 3, "read": 4}


def test_lost_from_one_read_though_a_later_read_has_it() -> None:
    result = H().append(0, 1).append(0, 2).read(1, [1]).read(1, [1, 2]).check()
    assert result["anomalies"] == {"lost": 1} and result["examples"]["lost"][0]["read"] == 4


def test_an_append_in_no_read_at_all_is_lost() -> None:
    result = H().append(0, 1).append(0, 2).read(1, [2]).check()
    assert result["anomalies"] == {"lost": 1}
    assert result["examples"]["lost"][0]["value"] == 1


def test_stale_read() -> None:
    # 3 is not acknowledged (info), so only the order of reads shows the second one stale
    result = H().append(0, 1).append(2, 3, "info").read(1, [1, 3]).read(1, [1]).check()
    assert result["anomalies"] == {"stale-read": 1}
    assert result["examples"]["stale-read"][0]["earlier_length"] == 2


def test_future_read() -> None:
    h = H().ev(1, "invoke", "read").ev(1, "ok", "read", value=[5]).append(0, 5)
    assert h.check()["anomalies"] == {"future-read": 1}


def test_realtime_order() -> None:
    result = H().append(0, 1).append(0, 2).read(1, [2, 1]).check()
    assert result["anomalies"] == {"realtime-order": 1}
    assert result["examples"]["realtime-order"][0]["value"] == 1


def test_no_read_is_unknown_and_unread_acks_are_counted() -> None:
    result = H().append(0, 1).read(1, None, outcome="fail").check()
    assert result["valid"] == "unknown" and "unknown_reason" in result
    later = H().read(1, []).append(0, 1).check()
    assert later["valid"] is True and later["unconfirmed_count"] == 1


def test_lab_events_and_unfinished_ops_are_ignored() -> None:
    h = H().append(0, 1).ev("nemesis", "info", "start").ev("harness", "info", "quiesce").ev(2, "invoke", "append",
                                                                                           value=2)
    assert h.read(1, [1, 2]).check()["valid"] is True
