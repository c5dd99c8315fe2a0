"""Live metrics of a run (``harness run --monitor``): every node's Prometheus text, scraped through its ``Metrics``
once a second, parsed by prometheus-client's own parser and appended to ``metrics.jsonl`` in the run directory.

The format (docs/store.md, "metrics.jsonl") is a stream of JSON lines, each with a ``kind``:

- ``meta`` (the first line): ``{"kind": "meta", "version": 1, "interval_s", "timeout_s", "nodes", "panels"}``;
  ``panels`` are the DB's :class:`MetricPanel` choices (what the report plots), ``[]`` when it names none.
- ``series``: ``{"kind": "series", "id", "name", "type", "labels"}``, written once, before the first scrape that
  carries that series (a sample name such as ``raftkv_requests_total`` with its labels; ``type`` is the family's).
- ``scrape``: ``{"kind": "scrape", "time", "node", "took_ms", "values": [[id, value], ...]}`` for a scrape that
  parsed, or ``{"kind": "scrape", "time", "node", "took_ms", "error": "..."}`` for one that did not (no answer within
  the timeout, an error, text that is not Prometheus's format, no samples at all). ``time`` is the controller's
  monotonic clock (ns), the same as history.jsonl's; a value that is not finite is written as null.

``*_created`` samples (prometheus-client's creation timestamps of counters and histograms) are left out: they never
change and would double a scrape's size. A scrape never raises into the run: whatever a node answers, the outcome
is one line.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from prometheus_client.parser import text_string_to_metric_families

from harness.protocols import Metrics, TestContext
from harness.store import JsonlWriter

FORMAT_VERSION = 1
DEFAULT_INTERVAL_S = 1.0
Show = Literal["value", "rate", "mean", "p99"]
SHOWS: tuple[str, ...] = ("value", "rate", "mean", "p99")


class ScrapeError(ValueError):
    """A node's answer to a scrape is not usable Prometheus text (the node's fault, recorded as a note)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricPanel:
    """One plot of the report's "Node metrics": ``metrics`` drawn per node on the run's time axis.

    ``show``: ``value`` plots each series as scraped (gauges: term, commit index); ``rate`` the per-second increase
    of counters between two scrapes (a counter that went down restarted: its new value is the increase), summed per
    node over every label not in ``by``; ``mean`` and ``p99`` read histograms (``metrics`` names the family, without
    ``_bucket``/``_sum``/``_count``): the mean, or the 99th percentile interpolated within the buckets as
    Prometheus's histogram_quantile does, of the observations made between two scrapes. ``scale`` multiplies every
    plotted value (1000 for seconds shown as ms)."""

    title: str
    metrics: tuple[str, ...]
    show: Show = "value"
    by: tuple[str, ...] = ()
    unit: str = ""
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.title or not self.metrics or not all(isinstance(m, str) and m for m in self.metrics):
            raise ValueError(f"a metric panel needs a title and metric names: {self!r}")
        if self.show not in SHOWS:
            raise ValueError(f"metric panel {self.title!r}: show must be one of {', '.join(SHOWS)}, not {self.show!r}")
        if not math.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"metric panel {self.title!r}: scale must be a positive number, not {self.scale!r}")

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "metrics": list(self.metrics), "show": self.show, "by": list(self.by),
                "unit": self.unit, "scale": self.scale}


@runtime_checkable
class MetricPanels(Protocol):
    """A capability of a DB: which of its metrics the report plots for a ``--monitor`` run (the DB's vocabulary
    stays in its adapter; the report draws whatever panels metrics.jsonl names)."""

    def metric_panels(self) -> Sequence[MetricPanel]: ...


@runtime_checkable
class ScrapeTargets(Protocol):
    """A capability of a DB: the ``host:port`` where a node serves ``/metrics`` to a Prometheus outside the lab
    (the run's file_sd target list, :func:`file_sd_targets`)."""

    def metrics_target(self, test: TestContext, node: str) -> str: ...


Sample = tuple[str, str, tuple[tuple[str, str], ...], float]  # sample name, family type, sorted labels, value


def parse_scrape(text: object) -> list[Sample]:
    """The samples of one Prometheus text scrape, ``_created`` ones left out. ScrapeError when ``text`` is not a
    string, not in the text format, or holds no sample at all (an empty answer is as useless as a broken one)."""
    if not isinstance(text, str):
        raise ScrapeError(f"the scrape is a {type(text).__name__}, not text")
    try:
        samples = [(s.name, fam.type, tuple(sorted(s.labels.items())), float(s.value))
                   for fam in text_string_to_metric_families(text) for s in fam.samples
                   if not s.name.endswith("_created")]
    except (ValueError, TypeError, IndexError, KeyError) as e:  # the parser's ways of saying "not the format"
        raise ScrapeError(f"not Prometheus text format: {type(e).__name__}: {e} "
                          f"(answer starts {text[:60]!r})") from None
    if not samples:
        raise ScrapeError(f"no samples in the scrape ({len(text)} bytes)")
    return samples


class MetricsLog:
    """Writes metrics.jsonl (the module's format): the meta line at construction, then one line per scrape, with
    each new series declared before its first value."""

    def __init__(self, writer: JsonlWriter, *, nodes: Sequence[str], interval_s: float, timeout_s: float,
                 panels: Iterable[MetricPanel] = ()) -> None:
        self.writer = writer
        self._ids: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        writer.append({"kind": "meta", "version": FORMAT_VERSION, "interval_s": interval_s, "timeout_s": timeout_s,
                       "nodes": list(nodes), "panels": [p.to_json() for p in panels]})

    def samples(self, node: str, at_ns: int, took_ms: float, samples: Sequence[Sample]) -> None:
        values: list[list[Any]] = []
        for name, typ, labels, value in samples:
            sid = self._ids.get((name, labels))
            if sid is None:
                sid = self._ids[(name, labels)] = len(self._ids)
                self.writer.append({"kind": "series", "id": sid, "name": name, "type": typ, "labels": dict(labels)})
            values.append([sid, value if math.isfinite(value) else None])
        self.writer.append({"kind": "scrape", "time": at_ns, "node": node, "took_ms": round(took_ms, 3),
                            "values": values})

    def failure(self, node: str, at_ns: int, took_ms: float, error: str) -> None:
        self.writer.append({"kind": "scrape", "time": at_ns, "node": node, "took_ms": round(took_ms, 3),
                            "error": error})


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class MetricsScraper:
    """Scrapes every node of ``test`` through its DB's :class:`~harness.protocols.Metrics` (TypeError naming the DB
    when it lacks them) each ``interval`` seconds into a
    :class:`MetricsLog`. Each node has its own loop, so a paused or dead node (whose scrape waits out
    ``timeout``) delays only its own samples: it leaves a gap of error lines, never a stall of the others. The
    ticks are fixed (start + k * interval); a scrape that overruns its tick skips the ticks it missed. The nodes'
    ticks are spread over the interval (node i of n starts i/n of it late), so the cluster never answers all its
    scrapes at one instant: a scrape costs each node a moment of its event loop (rendering the text)."""

    def __init__(self, test: TestContext, log: MetricsLog, *, interval: float = DEFAULT_INTERVAL_S,
                 timeout: float | None = None) -> None:
        if not interval > 0:
            raise ValueError(f"scrape interval must be > 0 s, got {interval}")
        if not isinstance(test.db, Metrics):
            raise TypeError(f"{type(test.db).__name__} has no Metrics capability: nothing to scrape")
        self.db: Metrics = test.db
        self.test = test
        self.log = log
        self.interval = interval
        self.timeout = min(interval, 2.0) if timeout is None else timeout
        self.scrapes = 0
        self.failures = 0

    async def scrape(self, node: str) -> bool:
        """Scrape one node once and record the outcome; True when it yielded samples. Never raises but for
        cancellation."""
        start = time.monotonic_ns()
        try:
            async with asyncio.timeout(self.timeout):
                text = await self.db.metrics(self.test, node)
            samples = parse_scrape(text)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            error = f"TimeoutError: no answer within {self.timeout:g} s"
        except Exception as e:  # noqa: BLE001 - whatever a node answers is a note in the samples, not a crash
            error = _describe(e)
        else:
            self.scrapes += 1
            self.log.samples(node, start, (time.monotonic_ns() - start) / 1e6, samples)
            return True
        self.failures += 1
        self.log.failure(node, start, (time.monotonic_ns() - start) / 1e6, error)
        return False

    async def _node_loop(self, node: str, rounds: int | None, offset: float) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time() + offset
        await asyncio.sleep(offset)  # this node's place in the interval
        k = 0
        while rounds is None or k < rounds:
            await self.scrape(node)
            k = max(k + 1, math.ceil((loop.time() - start) / self.interval))  # skip the ticks an overrun missed
            await asyncio.sleep(max(0.0, start + k * self.interval - loop.time()))  # the scrape period

    async def run(self, rounds: int | None = None) -> None:
        """Scrape every node each interval: forever (cancel to stop) or ``rounds`` ticks of each node."""
        async with asyncio.TaskGroup() as tg:
            nodes = self.test.nodes
            for i, node in enumerate(nodes):
                tg.create_task(self._node_loop(node, rounds, i * self.interval / len(nodes)), name=f"scrape-{node}")


def file_sd_targets(test: TestContext, run_name: str) -> list[dict[str, Any]] | None:
    """Prometheus file_sd target groups for the run's nodes (one group per node, labelled with the node and the
    run), or None when the DB has no :class:`ScrapeTargets` capability."""
    db = test.db
    if not isinstance(db, ScrapeTargets):
        return None
    return [{"targets": [db.metrics_target(test, node)], "labels": {"node": node, "lab_run": run_name}}
            for node in test.nodes]


def panels_of(db: object) -> list[MetricPanel]:
    """The DB's panels (:class:`MetricPanels`), or none. TypeError naming the DB when it answers something else."""
    if not isinstance(db, MetricPanels):
        return []
    panels = list(db.metric_panels())
    bad = [p for p in panels if not isinstance(p, MetricPanel)]
    if bad:
        raise TypeError(f"{type(db).__name__}.metric_panels() returned {bad[0]!r}, not a MetricPanel")
    return panels


def by_node(lines: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Successful scrapes per node in metrics.jsonl's lines (a summary for logs and tests)."""
    out: dict[str, int] = {}
    for line in lines:
        if line.get("kind") == "scrape" and "values" in line:
            out[str(line.get("node"))] = out.get(str(line.get("node")), 0) + 1
    return out
