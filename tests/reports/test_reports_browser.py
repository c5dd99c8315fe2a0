"""The report and the index in headless Chromium, served by `harness serve`'s app on localhost.

Checks what a person would see: no JavaScript errors, the verdict, the plots, the invalid-key timeline with its
stuck operation, a working history filter and jump-to-operation, the operation drawer; hostile strings shown as
text with no script run. Screenshots go to test-output/reports/ (git-ignored).

A real run is always included: tests/reports/data/real-stale/ (a 15 s register run on three netns hosts with
partitions and stale reads, which the checker found invalid). Set RAFTKV_REPORT_RUN=/path/to/store/<test>/<run> to
open another real run as well (copied to a temporary store first, so the real store is not written to).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from reports.browser import Page, find_chromium, launch
from reports.render import render_run
from reports.serve import make_app
from reports.synthetic import EVIL

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(find_chromium() is None, reason="needs Debian's chromium (scripts/bootstrap --test)")]

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
SHOTS = ROOT / "test-output" / "reports"
READY = "document.body && document.body.dataset.ready === '1'"


@pytest.fixture()
def store(runs: dict[str, Path], tmp_path: Path) -> Path:
    store = tmp_path / "store"
    for name in ("invalid", "valid", "evil", "partial"):
        shutil.copytree(runs[name], store / runs[name].parent.name / runs[name].name)
    for run in (DATA / "real-stale").iterdir():
        shutil.copytree(run, store / "real-stale" / run.name)
    real = os.environ.get("RAFTKV_REPORT_RUN")
    if real:
        src = Path(real).resolve()
        shutil.copytree(src, store / "real" / src.name)
    return store


def _url(server: TestServer, store: Path, test: str) -> str:
    run = next((store / test).iterdir())
    return str(server.make_url(f"/{test}/{run.name}/report.html"))


async def _open(page: Page, url: str) -> None:
    await page.goto(url, width=1400, height=1000)
    await page.wait_for(READY, timeout=60)


async def test_report_and_index_in_chromium(store: Path) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    server = TestServer(make_app(store), host="127.0.0.1")
    await server.start_server()
    try:
        async with launch() as browser:
            page = await browser.page()

            # The index.
            await _open(page, str(server.make_url("/")))
            rows = await page.evaluate("document.querySelectorAll('tr.run').length")
            assert rows == len(list(store.glob("*/*")))
            await page.evaluate("(() => { const s = document.getElementById('f-verdict'); s.value = 'invalid';"
                                " s.dispatchEvent(new Event('change')); })()")
            shown = await page.evaluate("[...document.querySelectorAll('tr.run')].filter(r => !r.hidden)"
                                        ".map(r => r.dataset.verdict)")
            assert shown and set(shown) == {"invalid"}
            await page.evaluate("(() => { const s = document.getElementById('f-verdict'); s.value = '';"
                                " s.dispatchEvent(new Event('change')); })()")
            await page.evaluate("(() => { const s = document.getElementById('f-nemesis'); s.value = 'kill';"
                                " s.dispatchEvent(new Event('change')); })()")
            shown = await page.evaluate("[...document.querySelectorAll('tr.run')].filter(r => !r.hidden).length")
            assert 0 < shown < rows  # the real run had partitions only
            await page.evaluate("(() => { const s = document.getElementById('f-nemesis'); s.value = '';"
                                " s.dispatchEvent(new Event('change')); })()")
            assert await page.evaluate("getComputedStyle(document.querySelector('a.served-only')).display") != "none"
            await page.screenshot(SHOTS / "index.png")
            assert page.errors() == []

            # The invalid report.
            await _open(page, _url(server, store, "raftkv-invalid"))
            await page.screenshot(SHOTS / "report-invalid.png")
            assert page.errors() == [], page.errors()
            banner = await page.evaluate("document.getElementById('verdict').innerText")
            assert banner.startswith("Invalid") and "not linearizable" in banner
            plots = await page.evaluate(
                "['plot-latency','plot-faults','plot-throughput','plot-quantiles','plot-availability','plot-roles',"
                "'plot-term','plot-commit'].filter(id => document.querySelector('#' + id + ' .main-svg'))")
            assert len(plots) == 8, plots
            points = await page.evaluate("document.getElementById('plot-latency').data"
                                         ".reduce((n, t) => n + t.x.length, 0)")
            assert points == 3000
            stuck = await page.evaluate("document.querySelectorAll('#timeline .tl-op.stuck').length")
            lin = await page.evaluate("document.querySelectorAll('#timeline .tl-op.lin').length")
            assert stuck == 1 and lin > 0
            assert await page.evaluate("!!document.querySelector('#timeline svg polyline')")
            await page.screenshot_element("#invalid", SHOTS / "timeline.png")

            # Clicking the stuck op opens its details with the history lines and node logs around it.
            await page.evaluate("document.querySelector('#timeline .tl-op.stuck').click()")
            drawer = await page.wait_for("!document.getElementById('drawer').hidden && "
                                         "document.getElementById('drawer-body').innerText")
            assert "history.jsonl line" in drawer and "node logs around" in drawer and "raftkv.log" in drawer
            # Served, the log links open the preview at the right line.
            link = await page.evaluate("[...document.querySelectorAll('#drawer-body a')].map(a => a.href)"
                                       ".find(h => h.includes('raftkv.log?line='))")
            assert link and "/preview/" in link
            preview = await page.evaluate(f"fetch({json.dumps(link)}).then(r => r.text())")
            assert 'class="hit"' in preview
            zip_href = await page.evaluate("document.querySelector('a[href^=\"/zip/\"]').href")
            assert await page.evaluate(f"fetch({json.dumps(zip_href)}).then(r => r.headers.get('content-type'))") \
                == "application/zip"
            await page.screenshot_element("#drawer", SHOTS / "drawer.png")

            # The history table: filter by key, then jump to an op by its anchor.
            results = json.loads((next((store / "raftkv-invalid").iterdir()) / "results.json").read_text())
            failure = results["checkers"]["linearizable"]["failure"]
            before = await page.evaluate("document.querySelector('.filters .count').textContent")
            await page.evaluate(f"(() => {{ const i = document.getElementById('flt-key'); i.value = "
                                f"{json.dumps(failure['part'])}; i.dispatchEvent(new Event('input')); }})()")
            count = await page.wait_for(f"(t => t !== {json.dumps(before)} && t)(document.querySelector("
                                        "'.filters .count').textContent)")
            keyed = int(count.split(" of ")[0].replace(",", ""))
            assert 0 < keyed < 3000
            cells = await page.evaluate("[...document.querySelectorAll('.vt-row span:nth-child(5)')]"
                                        ".map(s => s.textContent)")
            assert cells and set(cells) == {failure["part"]}
            op = failure["stuck"][0]["op"]
            await page.evaluate(f"location.hash = '#h{op}'")
            await page.wait_for(f"!!document.querySelector('#row-{op}.sel')")
            await page.screenshot_element("#history", SHOTS / "history.png")
            assert page.errors() == [], page.errors()

            # A hostile run: its strings are shown as text and no script of theirs runs.
            await _open(page, _url(server, store, "raftkv-evil"))
            assert page.errors() == [], page.errors()
            assert not [e for e in page.events if e.get("method") == "Page.javascriptDialogOpening"]
            text = await page.evaluate("document.body.innerText")
            assert EVIL in text
            assert await page.evaluate("document.querySelectorAll('script').length") == 3
            assert await page.evaluate("document.querySelectorAll('img').length") == 0
            assert not await page.evaluate("[...document.querySelectorAll('b')].some(b => b.textContent === 'bold')")
            assert "<b>bold</b>" in text

            # A partial run (the controller died): it renders and says what is missing.
            await _open(page, _url(server, store, "raftkv-partial"))
            assert page.errors() == [], page.errors()
            banner = await page.evaluate("document.getElementById('verdict').innerText")
            assert banner.startswith("Not checked") and "results.json is missing" in banner
            await page.screenshot(SHOTS / "report-partial.png")

            # The real invalid run: the checker's own failure record drawn on the timeline.
            await _open(page, _url(server, store, "real-stale"))
            await page.screenshot(SHOTS / "report-real-stale.png")
            assert page.errors() == [], page.errors()
            banner = await page.evaluate("document.getElementById('verdict').innerText")
            assert banner.startswith("Invalid") and "key k0 not linearizable" in banner and "op 114" in banner
            assert await page.evaluate("document.querySelectorAll('#timeline .tl-op.stuck').length") == 1
            assert await page.evaluate("document.querySelectorAll('.plot .main-svg').length") >= 8
            await page.screenshot_element("#invalid", SHOTS / "timeline-real-stale.png")

            if (store / "real").is_dir():
                await _open(page, _url(server, store, "real"))
                await page.screenshot(SHOTS / "report-real.png")
                assert page.errors() == [], page.errors()
                assert await page.evaluate("!!document.querySelector('#plot-latency .main-svg')")
    finally:
        await server.close()


async def test_report_opens_offline_from_the_file_system(runs: dict[str, Path], tmp_path: Path) -> None:
    """file:// with no server: plotly from the store's _static directory, the data from the page itself."""
    run = tmp_path / "store" / "t" / runs["invalid"].name
    shutil.copytree(runs["invalid"], run)
    report = render_run(run)
    async with launch() as browser:
        page = await browser.page()
        await _open(page, report.as_uri())
        assert page.errors() == [], page.errors()
        assert await page.evaluate("!!window.Plotly && !!document.querySelector('#plot-latency .main-svg')")
        assert await page.evaluate("document.getElementById('plotly-missing').hidden")
        # Without plotly.js the rest still works and the page says why the plots are missing.
        shutil.rmtree(tmp_path / "store" / "_static")
        await _open(page, report.as_uri() + "?again")
        await asyncio.sleep(0)
        assert not await page.evaluate("document.getElementById('plotly-missing').hidden")
        assert await page.evaluate("document.querySelectorAll('#timeline .tl-op.stuck').length") == 1
        assert [e for e in page.errors() if "plotly" not in e.lower()] == []
