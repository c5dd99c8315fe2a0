"""The data preparation (reports.rundir, reports.prep, reports.logs, reports.verdict, reports.payload) on small
hand-made run directories whose right answers can be worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reports import logs, payload, prep
from reports.rundir import RunDirError, load_run
from reports.verdict import Verdict, summarize

T0 = 5_000_000_000  # the run's monotonic origin (ns)


def _s(seconds: float) -> int:
    return T0 + int(round(seconds * 1e9))


def write_run(d: Path, events: list[dict], *, results: dict | None = None, cluster: list[dict] | None = None,
              test: dict | None = None, raw_tail: str = "") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "test.json").write_text(json.dumps(test if test is not None else {
        "name": "t", "start_time": T0, "start_wall": "2026-11-27T03:00:00+00:00", "nemesis": ["partition"]}))
    lines = [json.dumps({"index": i, **e}) for i, e in enumerate(events)]
    (d / "history.jsonl").write_text("\n".join(lines) + "\n" + raw_tail)
    if results is not None:
        (d / "results.json").write_text(json.dumps(results))
    if cluster is not None:
        (d / "cluster.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cluster))
    return d


def ev(process, type_, f, t, **kw) -> dict:
    return {"process": process, "type": type_, "f": f, "time": _s(t), **kw}


# A small history: p0 ok, p1 info (then retired), p2 never completes, p3 fails, nemesis partitions [1, 3] s.
SMALL = [
    ev(0, "invoke", "put", 0.10, key="a", value={"value": 1, "version": 0}),      # 0
    ev(1, "invoke", "get", 0.20, key="a"),                                         # 1
    ev(0, "ok", "put", 0.30, key="a", value={"version": 1}, node="n1"),            # 2
    ev("nemesis", "invoke", "start", 1.00, value={"fault": "partition", "targets": [["n1"], ["n2", "n3"]]}),  # 3
    ev("nemesis", "info", "start", 1.01, value={"fault": "partition", "targets": [["n1"], ["n2", "n3"]]}),    # 4
    ev(1, "info", "get", 1.20, key="a", error="timeout"),                          # 5
    ev(2, "invoke", "put", 1.50, key="b", value={"value": 2, "version": 0}),       # 6
    ev(3, "invoke", "get", 2.00, key="b"),                                         # 7
    ev(3, "fail", "get", 2.05, key="b", error="not-leader"),                       # 8
    ev("nemesis", "invoke", "stop", 3.00, value={"fault": "partition"}),           # 9
    ev("nemesis", "info", "stop", 3.02, value={"fault": "partition"}),             # 10
    ev(0, "invoke", "get", 3.50, key="a"),                                         # 11
    ev(0, "ok", "get", 3.60, key="a", value={"value": 1, "version": 1}),           # 12
]


@pytest.fixture()
def small(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run", SMALL, cluster=[
        {"time": _s(0.0), "node": "n1", "role": "leader", "term": 1, "leader": "n1", "commit": 1, "applied": 1},
        {"time": _s(0.0), "node": "n2", "role": "follower", "term": 1, "leader": "n1", "commit": 1, "applied": 1},
        {"time": _s(1.5), "node": "n1", "error": "timeout"},
        {"time": _s(1.5), "node": "n2", "role": "leader", "term": 2, "leader": "n2", "commit": 1, "applied": 1},
        {"time": _s(3.5), "node": "n1", "role": "follower", "term": 2, "leader": "n2", "commit": 4, "applied": 4},
        {"time": _s(3.5), "node": "n2", "role": "leader", "term": 2, "leader": "n2", "commit": 4, "applied": 4},
    ])


def _ops(run_dir: Path):
    run = load_run(run_dir)
    events = prep.events_frame(run.history, run.start_time)
    return run, events, *prep.pair_ops(events)


def test_pairs_each_invoke_with_the_next_event_of_its_process(small: Path) -> None:
    _, _, ops, problems = _ops(small)
    assert problems == []
    assert ops["inv_index"].tolist() == [0, 1, 6, 7, 11]
    assert ops["comp_index"].tolist() == [2, 5, -1, 8, 12]
    assert ops["type"].tolist() == ["ok", "info", "pending", "fail", "ok"]
    assert ops["latency"].round(6).tolist()[:2] == [0.2, 1.0]
    assert np.isnan(ops["latency"].iloc[2])
    assert ops["call"].round(6).tolist() == [0.1, 0.2, 1.5, 2.0, 3.5]
    assert ops.loc[0, "result"] == {"version": 1} and ops.loc[0, "node"] == "n1"
    assert ops.loc[1, "error"] == "timeout"


def test_orphan_completions_and_double_invokes_are_reported_not_fatal(tmp_path: Path) -> None:
    d = write_run(tmp_path / "r", [ev(0, "ok", "get", 0.1), ev(1, "invoke", "get", 0.2),
                                   ev(1, "invoke", "get", 0.3), ev(1, "ok", "get", 0.4)])
    _, _, ops, problems = _ops(d)
    assert ops["type"].tolist() == ["pending", "ok"]
    assert any("without an invoke" in p for p in problems)
    assert any("followed by another invoke" in p for p in problems)


def test_the_labs_observations_are_kept_apart_from_operations_and_faults(tmp_path: Path) -> None:
    quiesce = ev("harness", "info", "quiesce", 3.4, value={"agreed": False, "waited_s": 15.0})
    d = write_run(tmp_path / "r", [*SMALL[:11], quiesce, *SMALL[11:]])
    run, events, ops, problems = _ops(d)
    assert problems == [] and not any("history.jsonl" in p for p in run.problems)
    assert run.history.observations == [{"index": 11, **quiesce}]
    assert ops["inv_index"].tolist() == [0, 1, 6, 7, 12]
    assert [f.kind for f in prep.fault_intervals(events)[0]] == ["partition"]


def test_fault_intervals_run_from_start_completion_to_stop_completion(small: Path) -> None:
    _, events, _, _ = _ops(small)
    faults, problems = prep.fault_intervals(events)
    assert problems == []
    (f,) = faults
    assert (f.kind, round(f.start, 6), round(f.stop, 6)) == ("partition", 1.01, 3.02)
    assert f.label == "n1 | n2 n3" and f.targets == ("n1", "n2", "n3")
    assert (f.start_index, f.stop_index) == (4, 10)


def test_fault_never_healed_and_stop_without_start(tmp_path: Path) -> None:
    kill = {"fault": "kill", "targets": ["n2"]}
    d = write_run(tmp_path / "r", [
        ev("nemesis", "invoke", "stop", 0.1, value={"fault": "pause"}), ev("nemesis", "info", "stop", 0.2,
                                                                           value={"fault": "pause"}),
        ev("nemesis", "invoke", "start", 1.0, value=kill), ev("nemesis", "info", "start", 1.1, value=kill)])
    _, events, _, _ = _ops(d)
    faults, problems = prep.fault_intervals(events)
    assert [(f.kind, f.stop, f.label) for f in faults] == [("kill", None, "n2")]
    assert any("stop of pause" in p for p in problems)


def test_overlapping_faults_of_different_kinds_each_keep_their_interval_and_move(tmp_path: Path) -> None:
    """The hunting schedule overlaps kinds (a partition with a kill inside it); each interval is its kind's own."""
    cut = {"fault": "partition", "targets": ["n1"], "move": "election-crash"}
    kill = {"fault": "kill", "target": "one", "targets": ["n2"], "move": "election-crash"}
    d = write_run(tmp_path / "r", [
        ev("nemesis", "invoke", "start", 1.0, value={"fault": "partition"}), ev("nemesis", "info", "start", 1.1, value=cut),
        ev("nemesis", "invoke", "start", 2.0, value={"fault": "kill"}), ev("nemesis", "info", "start", 2.1, value=kill),
        ev("nemesis", "invoke", "stop", 3.0, value={"fault": "partition"}),
        ev("nemesis", "info", "stop", 3.1, value={"fault": "partition", "move": "election-crash"}),
        ev("nemesis", "invoke", "stop", 4.0, value={"fault": "kill"}),
        ev("nemesis", "info", "stop", 4.1, value={"fault": "kill", "move": "election-crash"})])
    _, events, _, _ = _ops(d)
    faults, problems = prep.fault_intervals(events)
    assert problems == []
    assert [(f.kind, round(f.start, 3), round(f.stop or 0, 3), f.label) for f in faults] == [
        ("partition", 1.1, 3.1, "n1"), ("kill", 2.1, 4.1, "n2")]
    assert all(f.details["move"] == "election-crash" for f in faults)


def test_window_width_is_round_and_bounded() -> None:
    assert prep.window_width(3.0) == 0.05  # 60 windows
    assert prep.window_width(100.0) == 0.5
    assert prep.window_width(3600.0) == 15.0
    assert 1e6 / prep.window_width(1e6) <= 300


def test_throughput_quantiles_and_availability(small: Path) -> None:
    _, _, ops, _ = _ops(small)
    tp = prep.throughput(ops, 1.0, 3.6)
    assert tp.loc[0.0].tolist() == [1.0, 0.0, 0.0]  # the put completed at 0.3 s
    assert tp.loc[1.0].tolist() == [0.0, 0.0, 1.0]  # the info at 1.2 s
    assert tp.loc[2.0].tolist() == [0.0, 1.0, 0.0]
    assert tp.loc[3.0].tolist() == [1.0, 0.0, 0.0]
    q = prep.latency_quantiles(ops, 1.0)
    assert q.index.tolist() == [0.0, 3.0]  # ok ops only, by invoke time
    assert q.loc[0.0, "max"] == pytest.approx(0.2)
    av = prep.availability(ops, 1.0)
    assert av.loc[0.0, "ok"] == pytest.approx(0.5)  # put ok, get info
    assert av.loc[1.0, "ok"] == 0.0  # the pending put counts as not ok
    assert av.loc[2.0, "ok"] == 0.0 and av.loc[3.0, "ok"] == 1.0


def test_recovery_is_time_from_heal_to_first_ok_completion(small: Path) -> None:
    _, events, ops, _ = _ops(small)
    faults, _ = prep.fault_intervals(events)
    (r,) = prep.recoveries(faults, ops)
    assert r.heal == pytest.approx(3.02) and r.first_ok == pytest.approx(3.6) and r.op == 11
    assert r.seconds == pytest.approx(0.58)


def test_cluster_state_series(small: Path) -> None:
    run = load_run(small)
    cl = prep.cluster_frame(run.cluster, run.start_time)
    assert cl[cl["node"] == "n1"]["role"].tolist() == ["leader", "unreachable", "follower"]
    terms = prep.step_series(cl, "term")
    assert terms["n1"] == ([0.0, 3.5], [1, 2])  # the failed poll has no term: skipped, not a drop to 0
    assert terms["n2"] == ([0.0, 1.5, 3.5], [1, 2, 2])
    segs = prep.role_segments(cl)
    assert ("n1", "unreachable", 1.5, 3.5) in segs and ("n2", "leader", 1.5, 3.5) in segs
    assert prep.leader_changes(cl) == [(0.0, "n1", 1), (1.5, "n2", 2)]


def test_partial_run_dir_is_read_with_problems(tmp_path: Path) -> None:
    d = write_run(tmp_path / "r", SMALL[:3], raw_tail='{"index": 3, "process": 1, "ty')
    run = load_run(d)
    assert len(run.history) == 3
    assert run.results is None
    text = " ".join(run.problems)
    assert "cut short" in text and "results.json is missing" in text and "cluster.jsonl is missing" in text


def test_malformed_lines_are_skipped_and_named(tmp_path: Path) -> None:
    d = write_run(tmp_path / "r", SMALL[:3], raw_tail='not json\n{"index": 9}\n' + json.dumps(
        {"index": 10, **ev(5, "invoke", "get", 4.0)}) + "\n")
    run = load_run(d)
    assert len(run.history) == 4
    assert any("line 4: not JSON" in p for p in run.problems)
    assert any("line 5: missing or malformed" in p for p in run.problems)


def test_empty_and_missing_everything(tmp_path: Path) -> None:
    run = load_run(tmp_path)
    assert run.test is None and len(run.history) == 0 and run.results is None and run.files == ()
    with pytest.raises(RunDirError):
        load_run(tmp_path / "nope")


def test_log_timestamps_in_the_usual_formats() -> None:
    base = 1795748400.0  # 2026-11-27T03:00:00Z
    assert logs._line_epoch(b"2026-11-27T03:00:01.250+00:00 INFO x") == pytest.approx(base + 1.25)
    assert logs._line_epoch(b"2026-11-27 03:00:01,250 INFO x") == pytest.approx(base + 1.25)
    assert logs._line_epoch(b"2026-11-27T05:00:01Z x") == pytest.approx(base + 7201)
    assert logs._line_epoch(b"2026-11-27T04:00:01+01:00 x") == pytest.approx(base + 1)
    assert logs._line_epoch(b'{"ts": 1795748401.5, "msg": "x"}') == pytest.approx(base + 1.5)
    assert logs._line_epoch(b'{"time": 1795748401500000000}') == pytest.approx(base + 1.5)
    assert logs._line_epoch(b"  File 'x.py', line 3") is None


def test_log_index_and_excerpt(tmp_path: Path) -> None:
    (tmp_path / "n1").mkdir()
    lines = [f"2026-11-27T03:00:{s:02d}.000Z INFO line {s}" for s in range(0, 50)]
    lines.insert(10, "Traceback: no timestamp, inherits 9 s")
    (tmp_path / "n1" / "node.log").write_text("\n".join(lines) + "\n")
    origin = logs.parse_wall("2026-11-27T03:00:00+00:00").timestamp()
    idx = logs.index_log(tmp_path, Path("n1/node.log"), origin)
    assert idx.lines == 51
    assert idx.line_at(20.0) == 22  # line 21 is "20 s" shifted by the inserted line... 1-based: 22
    assert idx.line_at(1e9) == 51
    ex = logs.excerpt(tmp_path, Path("n1/node.log"), origin, 9.0, 10.0)
    assert [n for n, _, _ in ex] == [10, 11, 12]
    assert ex[1][2].startswith("Traceback")


def test_verdict_sentences() -> None:
    valid = summarize({"valid": True, "checkers": {"linearizable": {"valid": True, "parts": {"total": 8},
                                                                    "elapsed_s": 0.5}}})
    assert valid.verdict is Verdict.VALID and "8 keys" in valid.sentences[0]
    invalid = summarize({"valid": False, "checkers": {"linearizable": {
        "valid": False, "model": "versioned-kv", "parts": {"invalid": ["k3"]},
        "failure": {"part": "k3", "explanation": "a stale read.", "longest_prefixes": [[1, 2]],
                    "stuck": [{"op": 88, "description": "get k3 -> v7@4", "state_before": "v6@3"}]}}}})
    assert invalid.verdict is Verdict.INVALID
    text = " ".join(invalid.sentences)
    assert "key k3" in text and "op 88" in text and "v6@3" in text and "get k3 -> v7@4" in text
    assert invalid.invalid is not None and invalid.invalid.prefixes == ((1, 2),)
    unknown = summarize({"valid": "unknown", "checkers": {"linearizable": {
        "valid": "unknown", "unknown_reason": "time budget of 60 s ran out"}}})
    assert unknown.verdict is Verdict.UNKNOWN and "60 s ran out" in unknown.sentences[0]
    crashed = summarize({"valid": "unknown", "checkers": {"stats": {"valid": "unknown", "error": "boom"}}})
    assert "boom" in crashed.sentences[0]
    assert summarize(None).verdict is Verdict.UNCHECKED
    junk = summarize({"valid": False, "checkers": "nonsense"})
    assert junk.verdict is Verdict.INVALID and junk.sentences


def test_payload_columns_intern_strings_and_include_nemesis_rows(small: Path) -> None:
    run = load_run(small)
    data = payload.build(run, summarize(run.results))
    o = data["ops"]
    assert o["i"] == [0, 1, 3, 6, 7, 9, 11]  # client ops and the two nemesis invokes, in invoke order
    assert [o["P"][p] for p in o["p"]] == ["0", "1", "nemesis", "2", "3", "nemesis", "0"]
    assert [o["y"][j] for j in range(7)] == [0, 2, 2, 3, 1, 2, 0]
    assert o["t"][0] == 100_000 and o["l"][0] == 200_000 and o["l"][3] == -1
    assert o["K"][o["k"][0]] == "a" and o["k"][2] == -1
    assert o["a"][0] == '{"value":1,"version":0}' and o["r"][0] == '{"version":1}'
    assert "il" not in o  # line numbers are index + 1 here
    assert data["faults"][0]["label"] == "n1 | n2 n3"
    assert data["recoveries"][0]["op"] == 11
    assert data["cluster"]["nodes"] == ["n1", "n2"]


def test_payload_values_are_cut(tmp_path: Path) -> None:
    big = list(range(1000))
    d = write_run(tmp_path / "r", [ev(0, "invoke", "read", 0.1), ev(0, "ok", "read", 0.2, value=big)])
    run = load_run(d)
    r = payload.build(run, summarize(None))["ops"]["r"][0]
    assert len(r) < payload.VALUE_CHARS + 40 and r.endswith("chars)")


def test_prometheus_text_is_read_without_comments_and_buckets() -> None:
    from reports.render import parse_metrics

    text = ('# HELP raftkv_term t\n# TYPE raftkv_term gauge\nraftkv_term 5\nraftkv_role{role="leader"} 1.0\n'
            'raftkv_request_seconds_bucket{op="get",le="0.1"} 3\nraftkv_request_seconds_sum{op="get"} 0.5\n'
            'raftkv_requests_total{op="get",outcome="ok"} 12 1700000000\nnot a sample\n')
    assert parse_metrics(text) == {"raftkv_term": "5", 'raftkv_role{role="leader"}': "1.0",
                                   'raftkv_request_seconds_sum{op="get"}': "0.5",
                                   'raftkv_requests_total{op="get",outcome="ok"}': "12"}
