"""What a run is asked for and what it answers: :class:`RunConfig` (checked when made), :class:`RunResult`, the
exit codes and the two errors that map onto them (a bad argument, a failure of the lab itself)."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.hunt import DEFAULT_FAULT_RATE, MAX_FAULT_RATE, MOVES
from harness.interpreter import Tally
from harness.scrape import DEFAULT_INTERVAL_S

SCHEDULES = ("hunt", "cycle")  # the engine's fault schedules: harness.hunt, or generator.nemesis_cycle
ALL_NEMESES = "all"


class ConfigError(ValueError):
    """The run was asked for something that does not exist or does not fit (bad arguments: exit code 254)."""


class HarnessError(RuntimeError):
    """The lab itself could not do its job (the DB not ready after start, a backend failure...): exit code 3."""


class ExitCode(enum.IntEnum):
    VALID = 0
    INVALID = 1
    UNKNOWN = 2
    HARNESS_FAILED = 3
    BAD_ARGUMENTS = 254


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """Everything a run needs. ``extra`` holds the options contributed by the workload, DB and nemeses."""

    workload: str
    nemeses: tuple[str, ...] = ()
    db: str | None = None
    backend: str = "netns"
    nodes: int = 5
    time_limit: float = 60.0
    concurrency: int = 10
    rate: float = 200.0
    seed: int = 0
    schedule: str = "hunt"
    nemesis_interval: float = 10.0
    fault_rate: float = DEFAULT_FAULT_RATE
    moves: tuple[str, ...] = MOVES
    op_timeout: float = 5.0
    final_time_limit: float = 30.0
    quiesce_timeout: float = 15.0
    setup_timeout: float = 30.0
    status_interval: float = 0.5
    monitor: bool = False  # scrape every node's metrics into metrics.jsonl during the run (harness.scrape)
    monitor_interval: float = DEFAULT_INTERVAL_S
    recovery_bound_s: float | None = None  # None: the DB's own (harness.protocols.recovery_bound_s)
    store: Path = Path("store")
    name: str | None = None
    prefix: str | None = None
    render: bool = True
    failpoints: tuple[str, ...] = ()  # bugs the DB plants in itself for this run (its FailpointCatalog)
    extra: Mapping[str, Any] = field(default_factory=dict)
    # the backend's own configuration (``ssh``: an SshConfig; docker: its host and base image); test.json records
    # it through Backend.describe
    backend_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = [(self.nodes >= 1, "--nodes must be >= 1"), (self.time_limit > 0, "--time-limit must be > 0"),
                  (self.concurrency >= 1, "--concurrency must be >= 1"), (self.rate >= 0, "--rate must be >= 0"),
                  (self.nemesis_interval > 0, "--nemesis-interval must be > 0"),
                  (self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}"),
                  (0 < self.fault_rate <= MAX_FAULT_RATE, f"--fault-rate must be in (0, {MAX_FAULT_RATE:g}]"),
                  (set(self.moves) <= set(MOVES), f"--moves must be among {', '.join(MOVES)}"),
                  (self.op_timeout > 0, "--op-timeout must be > 0"),
                  (self.final_time_limit >= 0, "--final-time-limit must be >= 0"),
                  (self.status_interval > 0, "--status-interval must be > 0"),
                  (self.monitor_interval > 0, "--monitor-interval must be > 0"),
                  (self.recovery_bound_s is None or self.recovery_bound_s > 0, "--recovery-bound-s must be > 0")]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    def options(self) -> dict[str, Any]:
        """The flat option mapping roles see (and test.json stores): the generic options plus ``extra``."""
        out = {k: v for k, v in asdict(self).items() if k not in ("extra", "backend_options")}
        out["nemeses"] = list(self.nemeses)
        out["failpoints"] = list(self.failpoints)
        out["moves"] = list(self.moves)
        out["store"] = str(self.store)
        out.update(self.extra)
        return out


@dataclass(slots=True)
class RunResult:
    exit_code: ExitCode
    valid: bool | str
    run_dir: Path | None
    results: dict[str, Any] | None
    tally: Tally
    error: str | None = None
    heal: dict[str, Any] | None = None


def exit_code_for(valid: Any) -> ExitCode:
    """0 for exactly True, 1 for exactly False, 2 for anything else (unknown)."""
    if valid is True:
        return ExitCode.VALID
    if valid is False:
        return ExitCode.INVALID
    return ExitCode.UNKNOWN


def random_seed() -> int:
    return int.from_bytes(os.urandom(4), "big")
