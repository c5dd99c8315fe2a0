"""The recovery checker on hand-made histories: each case is a sentence of checker/recovery.py's contract."""

from __future__ import annotations

from typing import Any

import pytest

from checker.history import validate
from checker.recovery import RecoveryChecker, fault_timeline

S = 1_000_000_000  # ns per second


class H:
    """A history under construction; times in seconds, written in ns."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.next_process = 0

    def add(self, process: Any, type_: str, f: str, t: float, **extra: Any) -> None:
        self.events.append({"index": len(self.events), "process": process, "type": type_, "f": f,
                            "time": int(t * S), **extra})

    def op(self, f: str, call: float, ret: float | None, outcome: str = "ok", node: str = "n1",
           error: str | None = None) -> None:
        """One whole client op (events are sorted by time when the history is taken)."""
        p = self.next_process
        self.next_process += 1
        self.add(p, "invoke", f, call, key="k0")
        if ret is not None:
            self.add(p, outcome, f, ret, key="k0", node=node, **({"error": error} if error else {}))

    def fault(self, f: str, kind: str, t: float, targets: tuple[str, ...] = ("n1",)) -> None:
        value = {"fault": kind, "targets": list(targets)}
        self.add("nemesis", "invoke", f, t, value=value)
        self.add("nemesis", "info", f, t, value=value)

    def observe(self, f: str, t: float, value: dict[str, Any]) -> None:
        self.add("harness", "info", f, t, value=value)

    def history(self) -> list[dict[str, Any]]:
        events = sorted(self.events, key=lambda e: (e["time"], e["index"]))
        for i, e in enumerate(events):
            e["index"] = i
        validate(events)
        return events


TEST = {"start_time": 0, "options": {"recovery_bound_s": 2.0}}


def check(h: H, test: dict[str, Any] = TEST) -> dict[str, Any]:
    return RecoveryChecker(writes={"put", "delete"}, reads={"get"}).check(test, h.history())


def traffic(h: H, a: float, b: float, *, ok_after: float | None = None, step: float = 0.1) -> None:
    """A write and a read every `step` s in [a, b): ok from `ok_after` on (never when None), else not-leader."""
    t = a
    while t < b:
        good = ok_after is not None and t >= ok_after
        h.op("put", t, t + 0.01, "ok" if good else "fail", node="n1" if good else "n2",
             error=None if good else "not-leader")
        h.op("get", t + 0.02, t + 0.03, "ok" if good else "fail", node="n1" if good else "n3",
             error=None if good else "not-leader")
        t = round(t + step, 6)


def test_recovered_in_time_is_valid_and_says_how_fast() -> None:
    h = H()
    traffic(h, 0.0, 1.0, ok_after=0.0)
    h.fault("start", "partition", 1.0)
    traffic(h, 1.0, 3.0, ok_after=None)
    h.fault("stop", "partition", 3.0)
    traffic(h, 3.0, 6.0, ok_after=3.5)
    result = check(h)
    assert result["valid"] is True and result["failures"] == []
    (window,) = result["windows"]
    assert window["final"] is True and window["heal_s"] == 3.0
    assert window["write"]["verdict"] == "recovered" and window["write"]["first_ok_s"] == pytest.approx(0.51)
    assert window["read"]["verdict"] == "recovered" and window["read"]["first_ok_s"] == pytest.approx(0.53)


def test_missing_the_bound_is_a_liveness_failure_naming_the_nodes_and_the_time() -> None:
    h = H()
    h.fault("start", "kill", 1.0, ("n1", "n2"))
    traffic(h, 1.0, 3.0)
    h.fault("stop", "kill", 3.0, ("n1", "n2"))
    traffic(h, 3.0, 8.0, ok_after=6.0)  # 3 s after the heal: over the 2 s bound
    result = check(h)
    assert result["valid"] is False and result["failure_kind"] == "liveness"
    kinds = {f["what"]: f for f in result["failures"]}
    assert set(kinds) == {"write", "read"}
    assert kinds["write"]["since_s"] == 3.0 and kinds["write"]["nodes"] == ["n2"]
    assert kinds["write"]["at_s"] == 5.0 and result["anomaly_time"] == 5 * S  # the bound ran out at 3 s + 2 s
    assert "kill of n1 n2" in kinds["write"]["message"] and "not-leader" in kinds["write"]["message"]
    assert result["windows"][0]["write"]["first_ok_s"] == pytest.approx(3.01)  # late, but recorded


def test_a_stop_while_another_fault_is_active_is_not_a_heal() -> None:
    h = H()
    h.fault("start", "partition", 1.0)
    h.fault("start", "pause", 2.0)
    traffic(h, 1.0, 9.0)  # nothing succeeds while any fault is active
    h.fault("stop", "partition", 3.0)  # pause still active: no window here, no false alarm
    h.fault("stop", "pause", 9.0)
    traffic(h, 9.0, 11.0, ok_after=9.2)
    windows, intervals = fault_timeline(h.history())
    assert [w.heal / S for w in windows] == [9.0]
    assert [(i.start / S, (i.stop or 0) / S) for i in intervals] == [(1.0, 9.0)]
    result = check(h)
    assert result["valid"] is True and len(result["windows"]) == 1


def test_a_window_cut_by_the_next_fault_before_the_bound_is_unknown_not_invalid() -> None:
    h = H()
    h.fault("start", "partition", 1.0)
    traffic(h, 1.0, 4.0)
    h.fault("stop", "partition", 3.0)
    h.fault("start", "partition", 4.0)  # 1 s after the heal, bound 2 s
    h.fault("stop", "partition", 6.0)
    traffic(h, 6.0, 7.0, ok_after=6.0)
    result = check(h)
    assert result["valid"] is True
    first = result["windows"][0]
    assert first["write"]["verdict"] == "unknown" and "next fault" in first["write"]["reason"]
    h2 = H()
    h2.fault("start", "kill", 1.0)
    h2.fault("stop", "kill", 3.0)
    h2.fault("start", "kill", 3.005)  # hunting: 5 ms later, before anyone could ask
    h2.fault("stop", "kill", 5.0)
    traffic(h2, 5.0, 6.0, ok_after=5.0)
    cut = check(h2)["windows"][0]["write"]
    assert cut == {"verdict": "unknown", "reason": "no write was sent before the next fault began 0.01 s after "
                                                   "the heal"}
    assert result["windows"][1]["write"]["verdict"] == "recovered"


def test_no_writes_after_a_heal_cannot_be_judged() -> None:
    h = H()
    h.op("put", 0.5, 0.6, "info", error="timeout")  # its client gave up at 0.6 s: not in flight at the heal
    h.fault("start", "kill", 1.0)
    traffic(h, 0.0, 3.0)
    h.fault("stop", "kill", 3.0)
    for i in range(30):  # only reads after the heal (the final-read phase), all ok
        h.op("get", 3.5 + i * 0.1, 3.51 + i * 0.1)
    result = check(h)
    assert result["valid"] is True
    window = result["windows"][0]
    assert window["write"] == {"verdict": "unknown", "reason": "no write was sent after the heal"}
    assert window["read"]["verdict"] == "recovered"
    assert result["unknown"] == ["write after the heal at 3.0 s: no write was sent after the heal"]


def test_the_final_reads_start_the_clock_when_they_are_first_sent() -> None:
    """The quiesce holds the final reads back: the bound counts from the first read sent after the heal."""
    h = H()
    h.fault("start", "kill", 1.0)
    h.fault("stop", "kill", 2.0)
    h.op("get", 5.0, 5.5)  # 3 s after the heal, but 0.5 s after it was asked
    assert check(h)["windows"][0]["read"]["verdict"] == "recovered"
    h.op("put", 1.5, None)  # never completed: in flight across the heal, so the write clock starts at the heal
    write = check(h)["windows"][0]["write"]
    assert write["verdict"] == "missed" and write["clock_s"] == 2.0 and "no completion x1" in write["reason"]
    h2 = H()
    h2.fault("start", "kill", 1.0)
    h2.fault("stop", "kill", 2.0)
    for i in range(40):
        h2.op("get", 5.0 + i * 0.1, 5.05 + i * 0.1, "fail", node="n2", error="unavailable")
    result = check(h2)
    assert result["valid"] is False and result["failures"][0]["what"] == "read"


def quiesce(agreed: bool, nodes: dict[str, Any], commit: int = 100) -> dict[str, Any]:
    return {"agreed": agreed, "leader": "n1" if agreed else None, "waited_s": 15.0, "timeout_s": 15.0,
            "heal_time": 3 * S, "agreed_time": 4 * S if agreed else None, "commit": commit, "catch_up_s": 2.0,
            "caught_up": None, "nodes": nodes}


def st(role: str, leader: str | None, applied: int = 100, **extra: Any) -> dict[str, Any]:
    return {"role": role, "term": 3, "leader": leader, "commit": applied, "applied": applied, "running": True,
            **extra}


def test_a_quiesce_without_leader_agreement_is_a_liveness_failure_with_each_nodes_state() -> None:
    h = H()
    h.fault("start", "partition", 1.0)
    h.fault("stop", "partition", 3.0)
    h.observe("quiesce", 18.0, quiesce(False, {"n1": st("candidate", None), "n2": st("follower", None),
                                                "n3": {"error": "timeout", "running": True}}))
    result = check(h)
    assert result["valid"] is False
    (failure,) = result["failures"]
    assert failure["what"] == "leader" and failure["nodes"] == ["n1", "n2", "n3"] and failure["since_s"] == 3.0
    assert "n1 candidate" in failure["message"] and "n3 unreachable (timeout)" in failure["message"]
    assert result["quiesce"]["agreed"] is False


def test_a_node_that_is_not_running_does_not_count_against_the_agreement() -> None:
    """A node the heal could not restart is the heal's failure (results.json heal), not the system's."""
    h = H()
    h.observe("quiesce", 5.0, quiesce(True, {"n1": st("leader", "n1"), "n2": st("follower", "n1"),
                                              "n3": {"error": "connection refused", "running": False}}))
    assert check(h)["valid"] is True


def test_a_running_node_that_did_not_catch_up_is_named() -> None:
    h = H()
    h.observe("quiesce", 5.0, quiesce(True, {"n1": st("leader", "n1"), "n2": st("follower", "n1"),
                                              "n3": st("follower", "n1", applied=40)}))
    result = check(h)
    assert result["valid"] is False
    (failure,) = result["failures"]
    assert failure["what"] == "catch-up" and failure["nodes"] == ["n3"]
    assert "applied 40" in failure["message"] and "commit index 100" in failure["message"]


def stuck(since: float, condition: str) -> dict[str, Any]:
    return {"since": int(since * S), "condition": condition, "held_s": 10.0,
            "nodes": {"n1": st("follower", None), "n2": st("candidate", None), "n3": {"error": "timeout"}}}


def test_a_stuck_cluster_with_no_fault_active_is_invalid() -> None:
    h = H()
    traffic(h, 0.0, 12.0)
    h.observe("stuck", 11.0, stuck(1.0, "no-leader"))
    result = check(h)
    assert result["valid"] is False
    (failure,) = result["failures"]
    assert failure["what"] == "stuck" and failure["since_s"] == 1.0 and failure["at_s"] == 11.0
    assert "no node led for 10.0 s" in failure["message"] and failure["nodes"] == ["n1", "n2", "n3"]


def test_a_stuck_cluster_during_a_fault_is_reported_only() -> None:
    h = H()
    h.fault("start", "partition", 0.5, ("n1", "n2"))
    traffic(h, 0.0, 12.0)
    h.observe("stuck", 11.0, stuck(1.0, "no-leader"))
    h.fault("stop", "partition", 11.5)
    traffic(h, 11.5, 13.0, ok_after=11.6)
    result = check(h)
    assert result["valid"] is True
    assert result["stuck"][0]["judged"].startswith("reported only: a fault was active")


def test_no_commit_progress_without_writes_is_reported_only() -> None:
    h = H()
    for i in range(100):
        h.op("get", i * 0.1, i * 0.1 + 0.01)
    h.observe("stuck", 11.0, stuck(1.0, "no-commit-progress"))
    result = check(h)
    assert result["valid"] is True and "no write was sent" in result["stuck"][0]["judged"]


def test_the_bound_of_test_json_wins_and_a_bad_bound_is_refused() -> None:
    h = H()
    h.fault("start", "kill", 1.0)
    h.fault("stop", "kill", 2.0)
    traffic(h, 2.0, 6.0, ok_after=5.0)  # 3 s after the heal
    loose = RecoveryChecker(writes={"put"}, reads={"get"}, bound_s=1.0).check(
        {"start_time": 0, "options": {"recovery_bound_s": 4.0}}, h.history())
    assert loose["valid"] is True and loose["bound_s"] == 4.0 and loose["bound_source"] == "test.json"
    tight = RecoveryChecker(writes={"put"}, reads={"get"}, bound_s=1.0).check({"start_time": 0}, h.history())
    assert tight["valid"] is False and tight["bound_source"] == "checker"
    with pytest.raises(ValueError, match="recovery bound"):
        RecoveryChecker(writes={"put"}, reads={"get"}, bound_s=0)
