"""harness.scrape: parsing a node's Prometheus text, the metrics.jsonl store, and a scraper that no answer of a node
can crash or stall; plus a whole --monitor run on the local backend with the fake DB."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness_fake
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from harness.protocols import TestContext
from harness.run import ExitCode, RunConfig, run_test
from harness.scrape import (
    MetricPanel,
    MetricsLog,
    MetricsScraper,
    ScrapeError,
    by_node,
    file_sd_targets,
    panels_of,
    parse_scrape,
)
from harness.store import JsonlWriter, read_jsonl
from reports import metrics as report_metrics


def _exposition(term: int, puts_ok: int, fsyncs: list[float]) -> str:
    """Real Prometheus text, as prometheus-client writes it for a node."""
    r = CollectorRegistry()
    Gauge("db_term", "term", registry=r).set(term)
    c = Counter("db_requests", "requests", ["op", "outcome"], registry=r)
    c.labels(op="put", outcome="ok").inc(puts_ok)
    c.labels(op="put", outcome="timeout").inc(1)
    h = Histogram("db_fsync_seconds", "fsync", buckets=(0.001, 0.01, 0.1), registry=r)
    for x in fsyncs:
        h.observe(x)
    return generate_latest(r).decode()


def test_parse_keeps_every_sample_but_the_created_timestamps() -> None:
    samples = parse_scrape(_exposition(3, 5, [0.005]))
    names = {(name, labels) for name, _, labels, _ in samples}
    assert ("db_term", ()) in names
    assert ("db_requests_total", (("op", "put"), ("outcome", "ok"))) in names
    assert ("db_fsync_seconds_bucket", (("le", "0.01"),)) in names
    assert not any(name.endswith("_created") for name, _ in names)
    values = {(n, lb): v for n, _, lb, v in samples}
    assert values[("db_requests_total", (("op", "put"), ("outcome", "ok")))] == 5.0
    assert values[("db_fsync_seconds_count", ())] == 1.0
    assert {t for n, t, _, _ in samples if n.startswith("db_fsync")} == {"histogram"}


@pytest.mark.parametrize("answer", ["<html>502 Bad Gateway</html>", "term is three", 'x{a="1" 2', "", None, b"x 1"])
def test_parse_refuses_what_is_not_prometheus_text(answer: Any) -> None:
    with pytest.raises(ScrapeError):
        parse_scrape(answer)


class _Nodes:
    """A DB whose nodes answer their scrapes in the ways a lab meets: n1 well, n2 garbage, n3 raises, n4 never
    (until cancelled), n5 only once n1 has been scraped three times (a scraper that waits for one node before
    the next would never get there and time n5 out; n5's wait overruns its ticks, which are skipped, not queued)."""

    def __init__(self) -> None:
        self.n1_scrapes = 0
        self.n1_thrice = asyncio.Event()

    async def metrics(self, test: Any, node: str) -> Any:
        if node == "n1":
            self.n1_scrapes += 1
            if self.n1_scrapes == 3:
                self.n1_thrice.set()
            return _exposition(self.n1_scrapes, 10 * self.n1_scrapes, [0.002] * self.n1_scrapes)
        if node == "n2":
            return "<html>internal error</html>"
        if node == "n3":
            raise ConnectionRefusedError(111, "Connection refused")
        if node == "n4":
            await asyncio.Event().wait()
        await self.n1_thrice.wait()
        return _exposition(1, 1, [])


class _Host:
    def __init__(self, name: str) -> None:
        self.name = name
        self.address = f"10.0.0.{name[1:]}"


def _context(db: Any, tmp_path: Path, nodes: int = 5) -> TestContext:
    return TestContext(name="t", options={}, hosts=[_Host(f"n{i}") for i in range(1, nodes + 1)],  # type: ignore[misc]
                       backend=None, db=db, seed=0, store_dir=tmp_path)  # type: ignore[arg-type]


async def test_no_answer_of_a_node_crashes_or_stalls_the_scraper(tmp_path: Path) -> None:
    db = _Nodes()
    test = _context(db, tmp_path)
    writer = JsonlWriter(tmp_path / "metrics.jsonl")
    # An interval and a timeout far above a scrape's cost, so that on a loaded machine no hiccup skips one of n1's
    # three ticks (n5 would then wait for a third scrape that never comes) and only n4, which never answers,
    # times out.
    log = MetricsLog(writer, nodes=test.nodes, interval_s=0.2, timeout_s=1.0)
    scraper = MetricsScraper(test, log, interval=0.2, timeout=1.0)
    async with asyncio.timeout(30):
        await scraper.run(rounds=3)
    writer.close()
    lines = read_jsonl(tmp_path / "metrics.jsonl")
    assert lines[0]["kind"] == "meta" and lines[0]["nodes"] == ["n1", "n2", "n3", "n4", "n5"]
    scrapes = [x for x in lines if x["kind"] == "scrape"]
    errors = {x["node"]: x["error"] for x in scrapes if "error" in x}
    counts = by_node(lines)
    assert counts["n1"] == 3 and counts["n5"] >= 1 and set(counts) == {"n1", "n5"}  # n5 answered once n1 was thrice
    assert "n5" not in errors
    assert "not Prometheus text format" in errors["n2"] and "internal error" in errors["n2"]
    assert errors["n3"].startswith("ConnectionRefusedError")
    assert errors["n4"] == "TimeoutError: no answer within 1 s"
    assert sum(1 for x in scrapes if x["node"] in ("n2", "n3")) == 6  # a note at every tick
    assert (scraper.scrapes, scraper.failures) == (sum(counts.values()), len(scrapes) - sum(counts.values()))
    series = {x["id"]: x for x in lines if x["kind"] == "series"}
    assert len({(s["name"], json.dumps(s["labels"], sort_keys=True)) for s in series.values()}) == len(series)
    last_n1 = [x for x in scrapes if x["node"] == "n1"][-1]
    term = next(i for i, s in series.items() if s["name"] == "db_term")
    assert dict(map(tuple, last_n1["values"]))[term] == 3.0


async def test_the_store_reads_back_into_the_reports_plots(tmp_path: Path) -> None:
    """What MetricsLog writes is what reports.metrics plots: gauges as they were, counters as rates, histogram
    means and p99 between scrapes, and a failed scrape as a gap."""
    writer = JsonlWriter(tmp_path / "metrics.jsonl")
    panels = [MetricPanel(title="term", metrics=("db_term",)),
              MetricPanel(title="requests", metrics=("db_requests_total",), show="rate", by=("outcome",)),
              MetricPanel(title="fsync mean", metrics=("db_fsync_seconds",), show="mean", unit="ms", scale=1000),
              MetricPanel(title="fsync p99", metrics=("db_fsync_seconds",), show="p99", unit="ms", scale=1000)]
    log = MetricsLog(writer, nodes=["n1"], interval_s=1.0, timeout_s=1.0, panels=panels)
    s = 1_000_000_000
    log.samples("n1", 1 * s, 1.0, parse_scrape(_exposition(1, 10, [0.002])))
    log.samples("n1", 2 * s, 1.0, parse_scrape(_exposition(2, 30, [0.002, 0.004, 0.004])))
    log.failure("n1", 3 * s, 1000.0, "TimeoutError: no answer within 1 s")
    log.samples("n1", 4 * s, 1.0, parse_scrape(_exposition(2, 40, [0.002, 0.004, 0.004, 0.05])))
    log.samples("n1", 5 * s, 1.0, parse_scrape(_exposition(2, 45, [0.002, 0.004, 0.004, 0.05, 0.05])))
    writer.close()
    data, problems = report_metrics.build(tmp_path, origin_ns=0)
    assert problems == [] and data is not None
    term, requests, mean, p99 = data["panels"]
    assert term["traces"] == [{"node": "n1", "name": "", "x": [1.0, 2.0, 3.0, 4.0, 5.0],
                               "y": [1.0, 2.0, None, 2.0, 2.0]}]
    ok = next(t for t in requests["traces"] if t["name"] == "outcome=ok")
    assert ok["x"] == [2.0, 3.0, 4.0, 5.0] and ok["y"] == [20.0, None, None, 5.0]
    assert mean["traces"][0]["y"] == [pytest.approx(4.0), None, None, pytest.approx(50.0)]
    # 2 new observations in (0.001, 0.01]: p99's rank 1.98 of 2 lies 98 % into that bucket
    assert p99["traces"][0]["y"][0] == pytest.approx(1 + 9 * 0.99)
    assert data["scrapes"] == {"n1": {"ok": 4, "failed": 1}}
    assert data["failures"] == {"n1": [[3.0, "TimeoutError: no answer within 1 s"]]}


def test_panels_and_targets_come_from_the_db_capabilities(tmp_path: Path) -> None:
    class Plain:
        pass

    class Rich:
        def metric_panels(self) -> list[MetricPanel]:
            return [MetricPanel(title="t", metrics=("x",))]

        def metrics_target(self, test: Any, node: str) -> str:
            return f"{test.host(node).address}:9000"

    assert panels_of(Plain()) == [] and file_sd_targets(_context(Plain(), tmp_path, 2), "r") is None
    assert [p.title for p in panels_of(Rich())] == ["t"]
    assert file_sd_targets(_context(Rich(), tmp_path, 2), "run1") == [
        {"targets": ["10.0.0.1:9000"], "labels": {"node": "n1", "lab_run": "run1"}},
        {"targets": ["10.0.0.2:9000"], "labels": {"node": "n2", "lab_run": "run1"}}]


@pytest.mark.parametrize("bad", [{"show": "median"}, {"metrics": ()}, {"scale": 0.0}, {"title": ""}])
def test_a_bad_panel_is_refused_when_made(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MetricPanel(**{"title": "t", "metrics": ("x",), **bad})


@pytest.fixture
def fakes() -> Iterator[None]:
    harness_fake.register()
    yield
    harness_fake.unregister()


async def test_a_monitored_local_run_stores_samples_of_every_node(fakes: None, prefix: str, tmp_path: Path) -> None:
    res = await run_test(RunConfig(workload="fakeadd", backend="local", nodes=3, time_limit=2.5, concurrency=3,
                                   rate=100, seed=2, op_timeout=1.0, final_time_limit=2, status_interval=0.2,
                                   monitor=True, monitor_interval=0.25, store=tmp_path / "store", prefix=prefix,
                                   render=False))
    assert res.error is None, res.error
    assert res.exit_code == ExitCode.VALID
    assert res.run_dir is not None
    lines = read_jsonl(res.run_dir / "metrics.jsonl")
    counts = by_node(lines)
    assert set(counts) == {"n1", "n2", "n3"} and min(counts.values()) >= 5, counts
    assert json.loads((res.run_dir / "test.json").read_text())["options"]["monitor"] is True
    assert not (res.run_dir / "prometheus-targets.json").exists()  # the fake DB names no scrape targets
