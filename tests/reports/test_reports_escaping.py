"""A history whose keys, values, errors, options and file names carry HTML and script shows them as text."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

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
