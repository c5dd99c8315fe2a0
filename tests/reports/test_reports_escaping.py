"""A history whose keys, values, errors, options and file names carry HTML and script shows them as text."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reports.htmlsafe import json_script
from reports.render import render_run
from reports.synthetic import EVIL


def test_json_script_cannot_close_the_script_tag() -> None:
    text = json_script({"k": "</script><!-- <script>alert(1)</script> ]]> &amp; \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text)["k"].startswith("</script><!--")


def test_evil_report_shows_script_as_text(runs: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "store" / "t" / "evil"
    shutil.copytree(runs["evil"], run)
    page = render_run(run).read_text()
    # The only script elements are the report's own three: its data, plotly and its code.
    assert len(re.findall(r"<script", page, re.I)) == 3
    assert EVIL not in page and "<b>bold</b>" not in page and "<img src=x" not in page
    # The hostile strings are there, escaped: in the options, the file list and the embedded data.
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;!--" in page
    assert "&lt;script&gt;alert(1)&lt;script&gt;.log" in page
    data = re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1)
    assert EVIL in json.loads(data)["ops"]["K"]
    assert "\\u003cscript\\u003e" in data


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(min_size=1, max_size=30), value=st.text(max_size=40), error=st.text(min_size=1, max_size=20),
       name=st.text(min_size=1, max_size=20))
def test_any_text_in_a_run_stays_text(tmp_path_factory, key: str, value: str, error: str, name: str) -> None:
    """Whatever characters a key, value, error or test name holds, the page gains no element and the embedded
    data round-trips exactly."""
    # One store for all examples (plotly.js is copied once), a fresh run directory for each.
    run = Path(tempfile.mkdtemp(dir=_store(tmp_path_factory)))
    events = [{"process": 0, "type": "invoke", "f": "put", "key": key, "value": {"value": value, "version": 0},
               "time": 10},
              {"process": 0, "type": "fail", "f": "put", "key": key, "value": None, "time": 20, "error": error},
              {"process": 1, "type": "invoke", "f": "get", "key": key, "time": 30},
              {"process": 1, "type": "ok", "f": "get", "key": key, "value": {"value": value, "version": 1},
               "time": 40}]
    (run / "history.jsonl").write_text("".join(json.dumps({"index": i, **e}) + "\n" for i, e in enumerate(events)))
    (run / "test.json").write_text(json.dumps({"name": name, "start_time": 0, "options": {value: key}}))
    (run / "results.json").write_text(json.dumps({"valid": False, "checkers": {"linearizable": {
        "valid": False, "failure": {"part": key, "explanation": value, "longest_prefixes": [[0]],
                                    "stuck": [{"op": 2, "description": f"get {key}", "state_before": value}]}}}}))
    page = render_run(run).read_text()
    tags = _Tags()
    tags.feed(page)
    assert tags.count["script"] == 3
    assert tags.count["img"] == tags.count["iframe"] == tags.count["svg"] == 0
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))
    assert data["ops"]["K"] == [key]
    assert data["invalid"]["part"] == key and data["invalid"]["stuck"][0]["state_before"] == value
    assert data["ops"]["E"] == [error]


def _store(factory) -> Path:
    t = factory.getbasetemp() / "escaping-store" / "t"
    t.mkdir(parents=True, exist_ok=True)
    return t


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.count: Counter[str] = Counter()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.count[tag] += 1
