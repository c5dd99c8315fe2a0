"""Campaigns: many whole runs, one after another, and one verdict over all of them (`harness campaign`).

A campaign is a list of cells (each a combination of nemeses, e.g. ``("all",)``, ``("partition",)`` or
``("partition", "kill")``) times ``runs_per_cell`` seeds (``main_runs`` for the first cell, the main one). Every run is an ordinary ``harness run`` (run_test: its
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

from harness import detection
from harness.detection import PlantedBug
from harness.run import ExitCode, RunConfig, RunResult, run_test
from harness.seeds import child_seed

log = logging.getLogger("harness.campaign")

Cell = tuple[str, ...]


def cell_name(cell: Cell) -> str:
    return ",".join(cell) if cell else "none"


def cell_of(config: RunConfig) -> str:
    """The cell a run belongs to: its nemeses, and the failpoints it plants (``partition,kill @ skip-fsync``)."""
    name = cell_name(config.nemeses)
    return f"{name} @ {'+'.join(config.failpoints)}" if config.failpoints else name


def plan_failpoints(base: RunConfig, bugs: Sequence[PlantedBug], cells: Sequence[Cell], runs_per_cell: int,
                    seed: int, control_runs: int) -> list[RunConfig]:
    """The detection campaign: for every bug, every fault cell, ``runs_per_cell`` seeds with that one failpoint
    on; then ``control_runs`` clean runs of each cell (no failpoint), whose every verdict must be valid. A bug's
    seeds are its own (``campaign/<cell>/<bug>/<i>``), so adding a bug does not change another's runs."""
    if not cells or runs_per_cell < 1 or control_runs < 0:
        raise ValueError("a failpoint campaign needs cells, runs per cell >= 1 and control runs >= 0")
    out = []
    for bug in bugs:
        for cell in cells:
            out += [replace(base, nemeses=tuple(cell), failpoints=(bug.name,), name=f"fp-{bug.name}",
                            seed=child_seed(seed, f"campaign/{cell_name(cell)}/{bug.name}/{i}") >> 33)
                    for i in range(runs_per_cell)]
    for cell in cells:
        out += [replace(base, nemeses=tuple(cell), failpoints=(), name="fp-control",
                        seed=child_seed(seed, f"campaign/{cell_name(cell)}/control/{i}") >> 33)
                for i in range(control_runs)]
    return out


def plan(base: RunConfig, cells: Sequence[Cell], runs_per_cell: int, seed: int, *,
         main_runs: int | None = None) -> list[RunConfig]:
    """Every run of the campaign, cell by cell: the base configuration with the cell's nemeses and a seed of its
    own (31 bits, so it reads well in a report). The first cell is the main one: ``main_runs`` runs of it (default
    ``runs_per_cell``), so a campaign can spend most of its budget on one mix (the nightly's ``all``)."""
    if not cells:
        raise ValueError("a campaign needs at least one cell")
    if runs_per_cell < 1 or (main_runs is not None and main_runs < 1):
        raise ValueError(f"runs per cell must be >= 1, got {runs_per_cell} (main cell: {main_runs})")
    counts = [main_runs or runs_per_cell] + [runs_per_cell] * (len(cells) - 1)
    return [replace(base, nemeses=tuple(cell), seed=child_seed(seed, f"campaign/{cell_name(cell)}/{i}") >> 33)
            for cell, n in zip(cells, counts, strict=True) for i in range(n)]


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
    failpoint: str | None = None  # the bug it planted (detection campaigns), None for a clean run
    # Of an invalid run: how many findings were of safety and how many of liveness (results.json "failures").
    safety: int = 0
    liveness: int = 0
    db: str | None = None  # the DB it tested (--db; None: the workload's default)


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
    return CampaignRun(cell=cell_of(config), seed=config.seed, exit_code=int(result.exit_code), valid=result.valid,
                       run_dir=str(result.run_dir) if result.run_dir else None, ok=result.tally.ok,
                       fail=result.tally.fail, info=result.tally.info, wall_s=round(wall_s, 1), error=result.error,
                       failpoint="+".join(config.failpoints) or None,
                       safety=len(found.get("safety") or []), liveness=len(found.get("liveness") or []),
                       db=config.db)


async def run_campaign(configs: Sequence[RunConfig], *, store: Path, seed: int, stop_on_invalid: bool = False,
                       stop_cell_on_invalid: bool = False, budget_s: float | None = None,
                       on_run: Callable[[int, CampaignRun], None] | None = None,
                       progress: Callable[[], Any] | None = None) -> Campaign:
    """Run ``configs`` one after another (see the module docstring); ``on_run(i, run)`` after each, ``progress()``
    makes each run's progress display. With ``stop_cell_on_invalid`` the remaining runs of a cell are skipped once
    one of its runs is invalid (a failpoint's cell stops at its first detection). Cancellation (Ctrl-C, SIGTERM)
    ends the current run the way it ends any run (heal, tear down) and the campaign with ``interrupted``."""
    started = datetime.now(UTC)
    campaign = Campaign(path=store / "campaigns" / started.strftime("%Y%m%dT%H%M%S") / "campaign.json", seed=seed,
                        planned=len(configs), started_at=started.isoformat(timespec="seconds"))
    campaign.save()
    t0 = time.monotonic()
    caught: set[str] = set()
    for i, config in enumerate(configs):
        if budget_s is not None and time.monotonic() - t0 >= budget_s:
            campaign.stopped = f"time budget of {budget_s:g} s spent after {i} of {len(configs)} runs"
            break
        if stop_cell_on_invalid and cell_of(config) in caught:
            continue
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
        if result.exit_code == ExitCode.INVALID:
            caught.add(run.cell)
        if stop_on_invalid and result.exit_code == ExitCode.INVALID:
            campaign.stopped = f"stopped at the first invalid run ({i + 1} of {len(configs)})"
            break
    campaign.save()
    _render_index(store)
    _render_page(campaign.path)
    return campaign


def write_detection(campaign: Campaign, bugs: Sequence[PlantedBug], command: str) -> dict[str, Path]:
    """The detection table of a failpoint campaign next to its campaign.json: detection.json, .md, .xml (JUnit)
    and, when the reports package is there, detection.html. Returns the paths by kind."""
    findings = [detection.finding_of(run.failpoint or detection.CONTROL, run.seed,
                                     Path(run.run_dir) if run.run_dir else None, run.valid, run.wall_s)
                for run in campaign.runs]
    table = detection.build(bugs, findings, command)
    paths = detection.write(table, campaign.path.parent)
    try:
        from reports.detection import render_detection
    except ImportError:
        return paths
    try:
        paths["html"] = render_detection(paths["json"])
    except Exception as e:  # noqa: BLE001 - a page failure never changes the campaign's verdict
        log.warning("rendering the detection page failed: %s: %s", type(e).__name__, e)
    _render_index(campaign.path.parent.parent.parent)  # store/campaigns/<time>/campaign.json: the index links it
    return paths


def _render_page(record: Path) -> None:
    """The campaign page (reports.campaign) beside campaign.json; a failure to render is logged, not fatal."""
    try:
        from reports.campaign import render_campaign

        render_campaign(record)
    except Exception:  # noqa: BLE001 - the campaign's record stands without its page
        log.exception("rendering the campaign page of %s failed", record)


def _render_index(store: Path) -> None:
    try:
        from reports.index import render_index
    except ImportError:
        return
    try:
        render_index(store)
    except Exception as e:  # noqa: BLE001 - an index failure never changes the campaign's verdict
        log.warning("rendering %s/index.html failed: %s: %s", store, type(e).__name__, e)
