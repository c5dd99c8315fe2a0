"""Reading and validating histories: every rule of docs/history.md gives an error naming the line."""

from __future__ import annotations

import json

import pytest

from checker.history import HistoryError, pair, parse_jsonl


def _lines(*events: dict) -> str:
    return "\n".join(json.dumps({"index": i, **e}) for i, e in enumerate(events))


def inv(p, f="read", v=None, t=0, **kw):
    return {"process": p, "type": "invoke", "f": f, "value": v, "time": t, **kw}


def done(p, kind="ok", f="read", v=None, t=1, **kw):
    return {"process": p, "type": kind, "f": f, "value": v, "time": t, **kw}


def _error(text: str) -> HistoryError:
    with pytest.raises(HistoryError) as caught:
        parse_jsonl(text)
    return caught.value


def test_a_valid_history_pairs_into_operations() -> None:
    events = parse_jsonl(_lines(inv(0, "write", 1, 0), inv(1, t=1), done(0, f="write", t=2), done(1, "info", t=3),
                                inv(2, t=4), {"process": "nemesis", "type": "info", "f": "start", "time": 5}))
    ops = pair(events)
    assert [(op.id, op.complete_type, op.return_time) for op in ops] == [(0, "ok", 2), (1, "info", None),
                                                                        (4, "info", None)]
    assert ops[0].complete_index == 2 and ops[2].complete_index is None


def test_the_labs_own_observations_are_read_but_never_paired() -> None:
    obs = {"process": "harness", "type": "info", "f": "converge", "value": {"n1": "abc"}, "time": 3}
    events = parse_jsonl(_lines(inv(0, t=0), obs, done(0, t=4)))
    assert len(events) == 3 and events[1]["value"] == {"n1": "abc"}
    assert [(op.id, op.complete_index) for op in pair(events)] == [(0, 2)]
    err = _error(_lines({**obs, "process": "observer"}))
    assert err.line == 1 and '"harness"' in err.message


def test_malformed_json_names_the_line() -> None:
    err = _error(_lines(inv(0)) + "\n{not json")
    assert err.line == 2 and "malformed" in str(err)


def test_a_line_that_is_not_an_object() -> None:
    err = _error(_lines(inv(0)) + "\n[1, 2]")
    assert err.line == 2 and "object" in str(err)


@pytest.mark.parametrize("field", ["index", "process", "type", "f", "time"])
def test_a_missing_field(field: str) -> None:
    event = {"index": 0, **inv(0)}
    del event[field]
    err = _error(json.dumps(event))
    assert err.line == 1 and field in str(err)


@pytest.mark.parametrize(("field", "value"), [("time", "soon"), ("process", 1.5), ("f", 3), ("key", [1]),
                                              ("error", 5), ("index", "0")])
def test_a_field_of_the_wrong_type(field: str, value: object) -> None:
    event = {"index": 0, **inv(0), field: value}
    err = _error(json.dumps(event))
    assert err.line == 1 and field in str(err)


def test_an_unknown_type() -> None:
    err = _error(_lines(inv(0), done(0, "maybe")))
    assert err.line == 2 and "unknown type 'maybe'" in str(err)


def test_an_unmatched_completion() -> None:
    err = _error(_lines(inv(0), done(0), done(0, t=2)))
    assert err.line == 3 and "unmatched completion" in str(err)


def test_a_second_invoke_on_a_busy_process() -> None:
    err = _error(_lines(inv(0), inv(0, t=1)))
    assert err.line == 2 and "busy process 0" in str(err) and "line 1" in str(err)


def test_process_reuse_after_info() -> None:
    err = _error(_lines(inv(0), done(0, "info"), inv(0, t=2)))
    assert err.line == 3 and "reused after its info" in str(err)


def test_index_out_of_order() -> None:
    text = json.dumps({"index": 5, **inv(0)})
    err = _error(text)
    assert err.line == 1 and "index 5" in str(err)


def test_completion_must_match_its_invoke() -> None:
    assert "does not match" in str(_error(_lines(inv(0, "read"), done(0, f="write"))))
    assert "before its invoke" in str(_error(_lines(inv(0, t=5), done(0, t=4))))
    assert "key" in str(_error(_lines(inv(0, key="a"), done(0, key="b"))))


def test_blank_lines_are_skipped_but_counted() -> None:
    text = json.dumps({"index": 0, **inv(0)}) + "\n\n" + json.dumps({"index": 1, **done(0, "maybe")})
    assert _error(text).line == 3
