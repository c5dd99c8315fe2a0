"""The detection table: which planted bugs the lab catches, how soon, and under which faults.

A DB that can plant bugs in itself (raftkv's failpoints) offers them through the :class:`FailpointCatalog`
capability of its DBSpec. ``harness campaign --failpoints all`` then runs bug x fault mix x seeds, each run an
ordinary ``harness run`` with one failpoint switched on, and a bug's cell stops at its first detection. A clean
control cell (no failpoint) runs beside them: a control run that is not valid is a false alarm, and the table says
so louder than anything else.

What counts:
- **caught**: the run's verdict is exactly invalid (safety or liveness). Unknown is not a detection.
- **time to first anomaly**: seconds from the run's start to the earliest anomaly an invalid checker reports
  (``anomaly_time`` in its result, controller-monotonic ns); None when no checker names one.
- **faults at the anomaly**: the fault kinds (and schedule moves) active at that instant, from the nemesis events
  of the run's history; what was active is the best evidence of which fault exposed the bug.

Everything here reads run directories and writes files; it never runs anything (harness.campaign does).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from xml.sax.saxutils import escape, quoteattr

CONTROL = "(none)"  # the failpoint name of the clean control cell


@dataclass(frozen=True, slots=True, kw_only=True)
class PlantedBug:
    """One failpoint as the catalog describes it. ``shows_as``: "safety" or "liveness"; ``sim_seed``: the first
    simulator seed that finds it (None: the simulator cannot reach it, e.g. a server-side bug)."""

    name: str
    layer: str
    mimics: str
    shows_as: str = "safety"
    sim_seed: int | None = None
    sim_finding: str | None = None


@runtime_checkable
class FailpointCatalog(Protocol):
    """A DB's planted bugs: what exists, and the run options that switch some of them on."""

    def planted_bugs(self) -> Sequence[PlantedBug]: ...

    def options_for(self, names: Sequence[str]) -> Mapping[str, Any]: ...


class CatalogError(ValueError):
    """A failpoint name the catalog does not have, or a DB without a catalog (bad arguments)."""


def select(catalog: FailpointCatalog | None, spec: str | Sequence[str], db_name: str) -> list[PlantedBug]:
    """The bugs named by ``spec`` ("all", "a,b" or a sequence of names), in catalog order."""
    if catalog is None:
        raise CatalogError(f"DB {db_name} has no failpoints to plant")
    bugs = list(catalog.planted_bugs())
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    if names == ["all"]:
        return bugs
    known = {b.name: b for b in bugs}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise CatalogError(f"unknown failpoint(s) {', '.join(unknown) or '(none given)'} for DB {db_name} "
                           f"(known: {', '.join(known)})")
    return [known[n] for n in dict.fromkeys(names)]


# -- one run ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinding:
    """What one run of a cell found."""

    failpoint: str
    seed: int
    run_dir: str | None
    valid: bool | str
    caught_by: tuple[str, ...] = ()  # the checkers that said invalid
    anomaly_s: float | None = None
    faults_at_anomaly: tuple[str, ...] = ()
    wall_s: float = 0.0

    @property
    def caught(self) -> bool:
        return self.valid is False


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def anomaly_time(results: Mapping[str, Any]) -> tuple[tuple[str, ...], int | None]:
    """(the checkers whose verdict is false, the earliest ``anomaly_time`` any of them reports)."""
    checkers = results.get("checkers") or {}
    invalid = tuple(sorted(n for n, r in checkers.items() if isinstance(r, dict) and r.get("valid") is False))
    times = [checkers[n].get("anomaly_time") for n in invalid]
    ints = [t for t in times if isinstance(t, int) and not isinstance(t, bool)]
    return invalid, (min(ints) if ints else None)


def active_faults(history: Iterable[Mapping[str, Any]], at_ns: int) -> tuple[str, ...]:
    """The fault kinds (with their move, when the schedule named one: ``kill[leader-churn]``) active at ``at_ns``:
    a kind is active from the completion of its start to the completion of its next stop (docs/history.md)."""
    active: dict[str, str] = {}
    for ev in history:
        if ev.get("process") != "nemesis" or ev.get("type") == "invoke" or not isinstance(ev.get("time"), int):
            continue
        if ev["time"] > at_ns:
            break
        raw = ev.get("value")
        value: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        kind = str(value.get("fault") or "")
        if not kind:
            continue
        if ev.get("f") == "start" and not value.get("skipped"):
            move = value.get("move")
            active[kind] = f"{kind}[{move}]" if move else kind
        elif ev.get("f") == "stop":
            active.pop(kind, None)
    return tuple(sorted(active.values()))


def _history(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        with path.open("rb") as fh:
            for raw in fh:
                try:
                    ev = json.loads(raw)
                except ValueError:
                    continue  # a torn last line (docs/history.md)
                if isinstance(ev, dict):
                    out.append(ev)
    except OSError:
        pass
    return out


def finding_of(failpoint: str, seed: int, run_dir: Path | None, valid: bool | str, wall_s: float) -> RunFinding:
    """Read a finished run's directory into a RunFinding (missing files leave the fields empty)."""
    if run_dir is None:
        return RunFinding(failpoint=failpoint, seed=seed, run_dir=None, valid=valid, wall_s=wall_s)
    results = _read_json(run_dir / "results.json")
    start = _read_json(run_dir / "test.json").get("start_time")
    caught_by, at = anomaly_time(results)
    anomaly_s = faults = None
    if at is not None and isinstance(start, int):
        anomaly_s = round((at - start) / 1e9, 3)
        faults = active_faults(_history(run_dir / "history.jsonl"), at)
    return RunFinding(failpoint=failpoint, seed=seed, run_dir=str(run_dir), valid=valid, caught_by=caught_by,
                      anomaly_s=anomaly_s, faults_at_anomaly=faults or (), wall_s=wall_s)


# -- the table ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    bug: PlantedBug
    runs: tuple[RunFinding, ...] = field(default_factory=tuple)

    @property
    def first(self) -> RunFinding | None:
        return next((r for r in self.runs if r.caught), None)

    @property
    def caught(self) -> bool:
        return self.first is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    rows: tuple[Row, ...]
    control: tuple[RunFinding, ...]
    command: str = ""

    @property
    def caught(self) -> int:
        return sum(r.caught for r in self.rows)

    @property
    def false_alarms(self) -> tuple[RunFinding, ...]:
        return tuple(r for r in self.control if r.valid is not True)

    def median_anomaly_s(self) -> float | None:
        times = [r.first.anomaly_s for r in self.rows if r.first and r.first.anomaly_s is not None]
        return statistics.median(times) if times else None


def build(bugs: Sequence[PlantedBug], findings: Sequence[RunFinding], command: str = "") -> Table:
    """Group run findings by failpoint, in the catalog's order; the control cell apart."""
    rows = tuple(Row(bug=b, runs=tuple(f for f in findings if f.failpoint == b.name)) for b in bugs)
    return Table(rows=rows, control=tuple(f for f in findings if f.failpoint == CONTROL), command=command)


def to_json(table: Table) -> dict[str, Any]:
    return {
        "command": table.command,
        "caught": table.caught, "bugs": len(table.rows), "median_anomaly_s": table.median_anomaly_s(),
        "false_alarms": len(table.false_alarms), "control_runs": len(table.control),
        "rows": [{**asdict(r.bug), "caught": r.caught, "runs": [_finding_json(f) for f in r.runs]}
                 for r in table.rows],
        "control": [_finding_json(f) for f in table.control],
    }


def _finding_json(f: RunFinding) -> dict[str, Any]:
    return {**asdict(f), "caught": f.caught}


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table) -> str:
    """The table a README shows: one row per bug, then the totals and the control runs."""
    lines = ["| failpoint | layer | shows as | caught | runs | first anomaly (s) | by | faults active | sim seed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in table.rows:
        first = row.first
        lines.append("| " + " | ".join(_cell(c) for c in (
            row.bug.name, row.bug.layer, row.bug.shows_as, "yes" if first else "**no**",
            f"{row.runs.index(first) + 1}/{len(row.runs)}" if first else f"0/{len(row.runs)}",
            "–" if first is None or first.anomaly_s is None else f"{first.anomaly_s:.1f}",
            ", ".join(first.caught_by) if first else "–",
            ", ".join(first.faults_at_anomaly) if first and first.faults_at_anomaly else "–",
            "–" if row.bug.sim_seed is None else row.bug.sim_seed)) + " |")
    median = table.median_anomaly_s()
    lines += ["", f"Caught {table.caught} of {len(table.rows)}; median time to first anomaly "
                  f"{'–' if median is None else f'{median:.1f} s'}. Control (no failpoint): "
                  f"{len(table.control)} run(s), {len(table.false_alarms)} not valid."]
    if table.command:
        lines += ["", f"Measured with `{table.command}`."]
    return "\n".join(lines) + "\n"


def to_junit(table: Table) -> str:
    """JUnit XML for CI: one test case per bug (failing when the lab missed it) and one per control run (failing
    on a false alarm)."""
    cases = []
    for row in table.rows:
        first = row.first
        seconds = sum(r.wall_s for r in row.runs)
        body = "" if first else (f"<failure message={quoteattr(f'{row.bug.name} not caught in {len(row.runs)} run(s)')}>"
                                 f"{escape(row.bug.mimics)}</failure>")
        cases.append(f'<testcase classname="detection" name={quoteattr(row.bug.name)} time="{seconds:.1f}">'
                     f"{body}</testcase>")
    for i, run in enumerate(table.control):
        body = "" if run.valid is True else (
            f"<failure message={quoteattr(f'false alarm: a run without a failpoint is {run.valid}')}>"
            f"{escape(run.run_dir or '')}</failure>")
        cases.append(f'<testcase classname="control" name="clean-{i + 1}-seed-{run.seed}" time="{run.wall_s:.1f}">'
                     f"{body}</testcase>")
    failures = (len(table.rows) - table.caught) + len(table.false_alarms)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuite name="failpoint-detection" tests="{len(cases)}" failures="{failures}">'
            + "".join(cases) + "</testsuite>\n")


def write(table: Table, directory: Path) -> dict[str, Path]:
    """detection.json, detection.md and detection.xml in ``directory``; returns their paths by kind."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / "detection.json", "md": directory / "detection.md",
             "junit": directory / "detection.xml"}
    paths["json"].write_text(json.dumps(to_json(table), indent=1) + "\n")
    paths["md"].write_text(to_markdown(table))
    paths["junit"].write_text(to_junit(table))
    return paths
