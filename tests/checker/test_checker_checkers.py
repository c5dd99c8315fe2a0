"""Stats, the set checker, and composition (false over unknown over true; a crash is unknown)."""

from __future__ import annotations

from typing import Any

from checker.checkers import Compose, SetChecker, Stats, merge_valid


def ev(i: int, p: Any, kind: str, f: str, value: Any = None, t: int | None = None) -> dict[str, Any]:
    return {"index": i, "process": p, "type": kind, "f": f, "value": value, "time": i if t is None else t}


def test_merge_ranks_false_over_unknown_over_true() -> None:
    assert merge_valid([True, True]) is True
    assert merge_valid([True, "unknown"]) == "unknown"
    assert merge_valid(["unknown", False, True]) is False
    assert merge_valid([]) is True


def test_stats_count_by_f_and_type_and_notice_no_ok_at_all() -> None:
    history = [ev(0, 0, "invoke", "get"), ev(1, 0, "ok", "get"), ev(2, 1, "invoke", "put"), ev(3, 1, "info", "put"),
               ev(4, 2, "invoke", "put"), ev(5, "nemesis", "info", "start"), ev(6, 3, "invoke", "delete"),
               ev(7, 3, "fail", "delete")]
    result = Stats().check({}, history)
    assert result["valid"] is True
    assert result["by_f"] == {"delete": {"ok": 0, "fail": 1, "info": 0}, "get": {"ok": 1, "fail": 0, "info": 0},
                              "put": {"ok": 0, "fail": 0, "info": 2}}
    assert result["no_ok"] == ["delete", "put"]
    assert result["ok_count"] == 1 and result["info_count"] == 2 and result["count"] == 4
    nothing = Stats().check({}, [ev(0, 0, "invoke", "get"), ev(1, 0, "fail", "get")])
    assert nothing["valid"] is False


def test_set_checker_finds_lost_unexpected_duplicated() -> None:
    history = [
        ev(0, 0, "invoke", "add", 1), ev(1, 0, "ok", "add", 1),
        ev(2, 1, "invoke", "add", 2), ev(3, 1, "ok", "add", 2),
        ev(4, 2, "invoke", "add", 3), ev(5, 2, "info", "add", 3),
        ev(6, 3, "invoke", "read"), ev(7, 3, "ok", "read", [1, 2], 70),
        ev(8, 3, "invoke", "read"), ev(9, 3, "ok", "read", [1, 3, 9, 9], 90),
    ]
    result = SetChecker().check({}, history)
    assert result["valid"] is False
    assert result["lost"] == [{"element": 2, "acknowledged_at": 3, "last_seen": 70}]
    assert result["unexpected"] == [{"element": 9, "last_seen": 90}]
    assert result["duplicated"] == [{"element": 9, "max_copies": 2}]
    assert result["recovered_count"] == 1 and result["ok_count"] == 1


def test_set_checker_without_a_read_is_unknown() -> None:
    assert SetChecker().check({}, [ev(0, 0, "invoke", "add", 1), ev(1, 0, "ok", "add", 1)])["valid"] == "unknown"


def test_set_checker_accepts_a_good_run() -> None:
    history = [ev(0, 0, "invoke", "add", 1), ev(1, 0, "ok", "add", 1), ev(2, 0, "invoke", "read"),
               ev(3, 0, "ok", "read", [1])]
    assert SetChecker().check({}, history)["valid"] is True


class _Crash:
    def check(self, test: Any, history: Any) -> dict[str, Any]:
        raise RuntimeError("boom")


class _Fixed:
    def __init__(self, valid: Any) -> None:
        self.valid = valid

    def check(self, test: Any, history: Any) -> dict[str, Any]:
        return {"valid": self.valid}


def test_compose_a_crash_is_unknown_with_its_error() -> None:
    result = Compose({"ok": _Fixed(True), "crash": _Crash()}).check({}, [])
    assert result["valid"] == "unknown"
    assert result["checkers"]["crash"]["valid"] == "unknown"
    assert "RuntimeError: boom" in result["checkers"]["crash"]["error"]
    assert Compose({"crash": _Crash(), "bad": _Fixed(False)}).check({}, [])["valid"] is False
    assert Compose({"a": _Fixed(True), "b": _Fixed(True)}).check({}, [])["valid"] is True
    assert Compose({"odd": _Fixed("yes")}).check({}, [])["valid"] == "unknown"


def test_the_standard_checker_composes_linearizable_and_stats() -> None:
    from checker import generate_kv, standard_checker

    events = generate_kv(ops=200, keys=2, seed=4).events
    result = standard_checker("versioned-kv", timeout=30).check({}, events)
    assert result["valid"] is True and set(result["checkers"]) == {"linearizable", "stats"}
    broken = standard_checker("versioned-kv").check({}, [{"index": 0, "process": 0, "type": "ok", "f": "get",
                                                          "key": "k", "time": 0}])
    assert broken["valid"] == "unknown" and "unmatched completion" in broken["checkers"]["linearizable"]["error"]
    assert set(standard_checker("set").checkers) == {"linearizable", "stats", "set"}
