"""render_run and render_index on synthetic run directories: complete, partial, empty, malformed, hostile."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from reports.index import quick_summary, render_index, run_info
from reports.render import render_run
from reports.static import STATIC_DIR, plotly_name


def _data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert m, "the report embeds its data"
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def rendered(synthetic_store: Path, runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("rendered")
    for run in runs.values():
        shutil.copytree(run, store / run.parent.name / run.name)
        render_run(store / run.parent.name / run.name)
    return store


def _run(store: Path, name: str) -> Path:
    return next((store / f"raftkv-{name}").iterdir())


def test_invalid_report_names_checker_key_and_op(rendered: Path) -> None:
    run = _run(rendered, "invalid")
    page = (run / "report.html").read_text()
    results = json.loads((run / "results.json").read_text())
    failure = results["checkers"]["linearizable"]["failure"]
    stuck = failure["stuck"][0]
    assert 'class="banner invalid"' in page
    assert f"key {failure['part']} not linearizable" in page
    assert f"op {stuck['op']}" in page and stuck["state_before"] in page
    data = _data(page)
    assert data["invalid"]["part"] == failure["part"]
    assert data["invalid"]["prefixes"] == failure["longest_prefixes"]
    assert len(data["ops"]["i"]) > 3000  # client ops plus nemesis rows
    assert data["faults"] and data["cluster"]["nodes"] == ["n1", "n2", "n3", "n4", "n5"]
    assert data["excerpts"]["files"], "node log lines around the failure are embedded"
    assert f'href="#h{stuck["op"]}"' in page


def test_plotly_is_shipped_once_in_the_store_and_referenced_relatively(rendered: Path) -> None:
    static = rendered / STATIC_DIR / plotly_name()
    assert static.is_file() and static.stat().st_size > 1_000_000
    page = (_run(rendered, "valid") / "report.html").read_text()
    assert f'<script src="../../{STATIC_DIR}/{plotly_name()}"></script>' in page
    assert len(page) < 1_000_000


def test_valid_report(rendered: Path) -> None:
    page = (_run(rendered, "valid") / "report.html").read_text()
    assert 'class="banner valid"' in page and "All checkers passed" in page
    assert _data(page)["invalid"] is None


def test_partial_run_renders_and_says_what_is_missing(rendered: Path) -> None:
    run = _run(rendered, "partial")
    page = (run / "report.html").read_text()
    assert 'class="banner unchecked"' in page
    assert "results.json is missing" in page and "cut short" in page
    data = _data(page)
    assert 3 in data["ops"]["y"], "operations without completion are kept as pending"
    assert any(f["stop"] is None for f in data["faults"]), "the fault that was never healed runs to the end"
    assert json.loads((run / "summary.json").read_text())["verdict"] == "unchecked"


def test_empty_and_garbage_run_dirs_render(tmp_path: Path) -> None:
    empty = tmp_path / "store" / "t" / "empty"
    empty.mkdir(parents=True)
    page = render_run(empty).read_text()
    assert "history.jsonl is missing" in page and "No readable test.json" in page
    junk = tmp_path / "store" / "t" / "junk"
    junk.mkdir()
    (junk / "test.json").write_text("[1, 2")
    (junk / "results.json").write_text('"a string"')
    (junk / "history.jsonl").write_text("\x00\x01garbage\n{}\n")
    (junk / "cluster.jsonl").write_text("{\n")
    page = render_run(junk).read_text()
    assert "test.json is not valid JSON" in page and "not a JSON object" in page
    assert 'class="banner unchecked"' in page


def test_index_lists_every_run_newest_first_with_verdicts(rendered: Path) -> None:
    page = render_index(rendered).read_text()
    rows = re.findall(r'<tr class="run (\w+)" data-verdict="(\w+)"', page)
    assert sorted(v for v, _ in rows) == ["invalid", "invalid", "unchecked", "valid"]
    names = re.findall(r"<b>(raftkv-\w+)</b>", page)
    # Same start_wall in these synthetic runs: newest first by the run's timestamp name.
    assert names == ["raftkv-partial", "raftkv-evil", "raftkv-valid", "raftkv-invalid"]
    assert '<option value="partition">' in page
    assert "raftkv-evil" in page and "&lt;script&gt;" not in page.split("<tbody>")[0]


def test_index_summary_falls_back_to_a_quick_scan_when_stale(rendered: Path) -> None:
    run = _run(rendered, "valid")
    fresh = run_info(run)
    assert fresh.get("rendered_at"), "summary.json of render_run is used while fresh"
    quick = quick_summary(run)
    assert quick["ops"] == fresh["ops"]
    assert quick["duration_s"] == pytest.approx(fresh["duration_s"], abs=0.01)
    assert quick["faults"] == fresh["faults"]
    assert quick["verdict"] == fresh["verdict"] == "valid"


def test_index_of_an_empty_store(tmp_path: Path) -> None:
    assert "No runs in this store yet" in render_index(tmp_path / "new").read_text()


def test_report_files_are_readable_like_the_rest_of_the_run(rendered: Path) -> None:
    run = _run(rendered, "valid")
    for path in (run / "report.html", run / "summary.json", rendered / STATIC_DIR / plotly_name()):
        assert path.stat().st_mode & 0o044 == 0o044, path


def test_a_real_invalid_run(tmp_path: Path) -> None:
    """tests/reports/data/real-stale: a real 15 s run (netns hosts, partitions, stale reads) found invalid."""
    src = next((Path(__file__).resolve().parent / "data" / "real-stale").iterdir())
    run = tmp_path / "store" / "real-stale" / src.name
    shutil.copytree(src, run)
    page = render_run(run).read_text()
    assert 'class="banner invalid"' in page and "key k0 not linearizable" in page
    assert "op 114 (get k0 -&gt; absent), from the model state 33@1" in page
    data = _data(page)
    assert data["invalid"]["stuck"][0]["op"] == 114
    assert data["faults"] and all(f["kind"] == "partition" for f in data["faults"])
    assert data["cluster"]["nodes"] == ["n1", "n2", "n3"]
    assert {lg["path"] for lg in data["logs"] if lg["points"]} >= {"harness.log", "n1/raftkv.log"}
    assert data["problems"] == []
    assert "raftkv_term" in page  # the final metrics table


def test_unknown_verdict_says_what_ran_out(runs: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "store" / "t" / "unknown"
    shutil.copytree(runs["valid"], run)
    (run / "results.json").write_text(json.dumps({"valid": "unknown", "checkers": {
        "linearizable": {"valid": "unknown", "unknown_reason": "time budget of 60 s ran out; unchecked parts: k5"},
        "stats": {"valid": "unknown", "error": "ZeroDivisionError: division by zero"}}}))
    page = render_run(run).read_text()
    assert 'class="banner unknown"' in page
    assert "The linearizable checker could not decide: time budget of 60 s ran out; unchecked parts: k5." in page
    assert "ZeroDivisionError" in page


def test_keyless_history_failure(tmp_path: Path) -> None:
    """A register history whose ops carry no key: the checker's failure names part null."""
    run = tmp_path / "store" / "t" / "keyless"
    run.mkdir(parents=True)
    events = [{"process": 0, "type": "invoke", "f": "write", "value": 1, "time": 10},
              {"process": 0, "type": "ok", "f": "write", "value": 1, "time": 20},
              {"process": 1, "type": "invoke", "f": "read", "value": None, "time": 30},
              {"process": 1, "type": "ok", "f": "read", "value": 2, "time": 40}]
    (run / "history.jsonl").write_text("".join(json.dumps({"index": i, **e}) + "\n" for i, e in enumerate(events)))
    (run / "results.json").write_text(json.dumps({"valid": False, "checkers": {"linearizable": {
        "valid": False, "model": "register", "failure": {
            "part": None, "explanation": "no linearization", "longest_prefixes": [[0]],
            "stuck": [{"op": 2, "description": "read -> 2", "state_before": "1"}]}}}}))
    page = render_run(run).read_text()
    assert "found the history not linearizable" in page and "op 2 (read -&gt; 2)" in page
    assert _data(page)["invalid"]["part"] is None
