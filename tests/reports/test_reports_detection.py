"""The detection page (reports/detection.py) and its link from store/index.html."""

from __future__ import annotations

from pathlib import Path

from harness import detection as det
from reports.detection import render_detection
from reports.index import render_index

BUGS = (det.PlantedBug(name="stale-read", layer="server", mimics="a follower answers <from> its own state"),
        det.PlantedBug(name="lost-vote", layer="storage", mimics="the vote is not fsynced", sim_seed=17))


def _write(store: Path, control_valid: bool) -> Path:
    run = store / "fp-stale-read" / "20261204T000000"
    run.mkdir(parents=True)
    findings = [det.RunFinding(failpoint="stale-read", seed=2, run_dir=str(run), valid=False,
                               caught_by=("linearizable",), anomaly_s=12.25, faults_at_anomaly=("partition",)),
                det.RunFinding(failpoint="lost-vote", seed=3, run_dir=None, valid=True),
                det.RunFinding(failpoint=det.CONTROL, seed=5, run_dir=str(run), valid=control_valid)]
    table = det.build(BUGS, findings, command="harness campaign --failpoints all")
    return det.write(table, store / "campaigns" / "20261204T000000")["json"]


def test_the_page_shows_caught_and_missed_bugs_with_links_to_their_runs(tmp_path: Path) -> None:
    page = render_detection(_write(tmp_path, control_valid=True)).read_text()
    assert "caught 1 of 2 planted bugs" in page and "12.2 s" in page
    assert "&lt;from&gt;" in page and "<from>" not in page  # the catalog's text is escaped
    assert 'href="../../fp-stale-read/20261204T000000/report.html"' in page
    assert page.count("missed") >= 1 and "FALSE ALARM" not in page


def test_a_false_alarm_is_shown_first_and_the_index_links_the_table(tmp_path: Path) -> None:
    page = render_detection(_write(tmp_path, control_valid=False)).read_text()
    assert page.index("FALSE ALARM") < page.index("<table>")
    index = render_index(tmp_path).read_text()
    assert 'href="campaigns/20261204T000000/detection.html"' in index
    assert "caught 1 of 2 planted bugs" in index and "1 false alarm(s)" in index
