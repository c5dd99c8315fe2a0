"""What one run has while :func:`harness.run.run_test` drives it (:class:`RunState`), and the display it reports
to (:class:`ProgressSink`). Nothing here says what to undo: the run's UndoStack holds that (harness.undo), one step
pushed per resource as it is acquired."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from harness.composite import NoopNemesis
from harness.converge import HARNESS
from harness.interpreter import Tally
from harness.monitor import ClusterMonitor, LeaderWitness, StuckDetector
from harness.protocols import Backend, Nemesis, Op, TestContext
from harness.runconfig import RunConfig
from harness.store import HistoryWriter, RunDir

# One logger for every phase module: harness.log reads as one story ("harness.run: phase: ...").
log = logging.getLogger("harness.run")


class ProgressSink(Protocol):
    """What the run tells a display: the phase, and (every half second) the running figures."""

    def phase(self, name: str) -> None: ...

    def update(self, *, elapsed: float, tally: Tally, leader: str | None) -> None: ...


class NullProgress:
    def phase(self, name: str) -> None:
        return None

    def update(self, *, elapsed: float, tally: Tally, leader: str | None) -> None:
        return None


class RunState:
    """The run's parts as the phases make them (None until then), its tally and its clock origin."""

    def __init__(self, config: RunConfig, progress: ProgressSink, defaults: Mapping[str, Any],
                 planted: Mapping[str, Any]) -> None:
        self.config = config
        self.progress = progress
        self.options = {**defaults, **config.options(), **planted}  # the failpoints' switches win
        self.tally = Tally()
        self.run_dir: RunDir | None = None
        self.backend: Backend | None = None
        self.test: TestContext | None = None
        self.nemesis: Nemesis = NoopNemesis()
        self.history: HistoryWriter | None = None
        self.monitor: ClusterMonitor | None = None
        self.stuck: StuckDetector | None = None
        self.leaders = LeaderWitness(record=lambda value: self.record_observation("leader", value))
        self.heal_result: dict[str, Any] | None = None
        self.origin = time.monotonic_ns()
        self.start_wall = datetime.now(UTC)
        self.log_handler: logging.Handler | None = None

    def phase(self, name: str) -> None:
        log.info("phase: %s", name)
        self.progress.phase(name)

    def record_nemesis(self, f: str, typ: str, value: Any) -> None:
        """A nemesis event of the engine's own (the heal's stops), counted in the tally like the nemesis's."""
        assert self.history is not None
        op = self.history.record(Op(process="nemesis", type=typ, f=f, value=value,  # type: ignore[arg-type]
                                    time=time.monotonic_ns()))
        self.tally.observe(op)

    def record_observation(self, f: str, value: dict[str, Any]) -> None:
        """One observation of the lab's own (docs/history.md: process "harness", a single info event)."""
        assert self.history is not None
        self.history.record(Op(process=HARNESS, type="info", f=f, value=value, time=time.monotonic_ns()))

    def update_progress(self) -> None:
        leader = self.monitor.leader if self.monitor else None
        self.progress.update(elapsed=(time.monotonic_ns() - self.origin) / 1e9, tally=self.tally, leader=leader)
