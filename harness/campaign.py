"""Campaigns: many whole runs, one after another, and one verdict over all of them (`harness campaign`).

A campaign is a list of cells (each a combination of nemeses, e.g. ``("partition",)`` or
``("partition", "kill")``) times ``runs_per_cell`` seeds. Every run is an ordinary ``harness run`` (run_test: its
own hosts, its own store directory, its own report), so a campaign's findings are read like any run's; the
campaign adds ``store/campaigns/<time>/campaign.json`` (rewritten after every run, so an interrupted campaign keeps
what it found) and re-renders the store's index (store/index.html) at the end.

Seeds: run ``i`` of a cell gets ``child_seed(seed, "campaign/<cell>/<i>")``: a campaign seed replays every run.

The campaign's exit code ranks what matters most to whoever reads it first: 1 if any run was invalid (a finding),
else 3 if any run failed as a harness (or the campaign was interrupted), else 2 if any verdict was unknown, else 0.
It stops early on ``stop_on_invalid`` after the first invalid run, and starts no new run once ``budget_s`` has
passed (every run itself is bounded by its time limit and timeouts).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.run import ExitCode, RunConfig, RunResult, run_test
from harness.seeds import child_seed

log = logging.getLogger("harness.campaign")

Cell = tuple[str, ...]


def cell_name(cell: Cell) -> str:
    return ",".join(cell) if cell else "none"


def plan(base: RunConfig, cells: Sequence[Cell], runs_per_cell: int, seed: int) -> list[RunConfig]:
    """Every run of the campaign, cell by cell: the base configuration with the cell's nemeses and a seed of its
    own (31 bits, so it reads well in a report)."""
    if not cells:
        raise ValueError("a campaign needs at least one cell")
    if runs_per_cell < 1:
        raise ValueError(f"runs per cell must be >= 1, got {runs_per_cell}")
    return [replace(base, nemeses=tuple(cell), seed=child_seed(seed, f"campaign/{cell_name(cell)}/{i}") >> 33)
            for cell in cells for i in range(runs_per_cell)]


def exit_code_of(codes: Sequence[int], *, interrupted: bool = False) -> ExitCode:
    """The campaign's exit code from its runs' (see the module docstring)."""
    if ExitCode.INVALID in codes:
        return ExitCode.INVALID
    if interrupted or ExitCode.HARNESS_FAILED in codes:
        return ExitCode.HARNESS_FAILED
    if ExitCode.UNKNOWN in codes:
        return ExitCode.UNKNOWN
    return ExitCode.VALID


@dataclass(frozen=True, slots=True)
class CampaignRun:
    """One finished run, as campaign.json lists it."""

    cell: str
    seed: int
    exit_code: int
    valid: bool | str
    run_dir: str | None
    ok: int
    fail: int
    info: int
    wall_s: float
    error: str | None = None
    # Of an invalid run: how many findings were of safety and how many of liveness (results.json "failures").
    safety: int = 0
    liveness: int = 0


@dataclass
class Campaign:
    """The campaign's record; :meth:`save` writes it to ``path``."""

    path: Path
    seed: int
    planned: int
    started_at: str
    runs: list[CampaignRun] = field(default_factory=list)
    stopped: str | None = None  # why it ended before the last planned run
    interrupted: bool = False

    @property
    def exit_code(self) -> ExitCode:
        return exit_code_of([r.exit_code for r in self.runs], interrupted=self.interrupted)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"seed": self.seed, "planned": self.planned, "started_at": self.started_at, "stopped": self.stopped,
                "interrupted": self.interrupted, "exit_code": int(self.exit_code),
                "runs": [asdict(r) for r in self.runs]}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body, indent=1) + "\n")
        tmp.replace(self.path)


def _record(config: RunConfig, result: RunResult, wall_s: float) -> CampaignRun:
    found = (result.results or {}).get("failures")
    found = found if isinstance(found, dict) else {}
    return CampaignRun(cell=cell_name(config.nemeses), seed=config.seed, exit_code=int(result.exit_code),
                       valid=result.valid, run_dir=str(result.run_dir) if result.run_dir else None, ok=result.tally.ok,
                       fail=result.tally.fail, info=result.tally.info, wall_s=round(wall_s, 1), error=result.error,
                       safety=len(found.get("safety") or []), liveness=len(found.get("liveness") or []))


async def run_campaign(configs: Sequence[RunConfig], *, store: Path, seed: int, stop_on_invalid: bool = False,
                       budget_s: float | None = None, on_run: Callable[[int, CampaignRun], None] | None = None,
                       progress: Callable[[], Any] | None = None) -> Campaign:
    """Run ``configs`` one after another (see the module docstring); ``on_run(i, run)`` after each, ``progress()``
    makes each run's progress display. Cancellation (Ctrl-C, SIGTERM) ends the current run the way it ends any run
    (heal, tear down) and the campaign with ``interrupted``."""
    started = datetime.now(UTC)
    campaign = Campaign(path=store / "campaigns" / started.strftime("%Y%m%dT%H%M%S") / "campaign.json", seed=seed,
                        planned=len(configs), started_at=started.isoformat(timespec="seconds"))
    campaign.save()
    t0 = time.monotonic()
    for i, config in enumerate(configs):
        if budget_s is not None and time.monotonic() - t0 >= budget_s:
            campaign.stopped = f"time budget of {budget_s:g} s spent after {i} of {len(configs)} runs"
            break
        began = time.monotonic()
        result = await run_test(config, progress=progress() if progress else None)
        run = _record(config, result, time.monotonic() - began)
        campaign.runs.append(run)
        interrupted = bool(result.results and result.results.get("interrupted"))
        campaign.interrupted = interrupted
        campaign.save()
        if on_run is not None:
            on_run(i, run)
        if interrupted:
            campaign.stopped = f"interrupted during run {i + 1} of {len(configs)}"
            break
        if stop_on_invalid and result.exit_code == ExitCode.INVALID:
            campaign.stopped = f"stopped at the first invalid run ({i + 1} of {len(configs)})"
            break
    campaign.save()
    _render_index(store)
    return campaign


def _render_index(store: Path) -> None:
    try:
        from reports.index import render_index
    except ImportError:
        return
    try:
        render_index(store)
    except Exception as e:  # noqa: BLE001 - an index failure never changes the campaign's verdict
        log.warning("rendering %s/index.html failed: %s: %s", store, type(e).__name__, e)
