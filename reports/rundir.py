"""Read a run directory (docs/store.md) without ever failing on what a dead controller leaves behind.

`load_run(run_dir)` returns a `RunFiles`: whatever of test.json, history.jsonl, cluster.jsonl and results.json could
be read, the list of collected files, and `problems`: one sentence per thing that was missing or malformed (a file
absent, a line that is not JSON, an event without a required field, a torn last line). A report shows those
sentences instead of crashing. Only `run_dir` not being a directory is an error (`RunDirError`).

History events are returned as columns (lists of equal length, one entry per valid event, in file order), which is
what the pandas preparation (reports.prep) needs and avoids building 200,000 dicts twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HISTORY = "history.jsonl"
CLUSTER = "cluster.jsonl"
TEST = "test.json"
RESULTS = "results.json"
HARNESS_LOG = "harness.log"
# Files the report writes itself: never listed as collected files.
OWN_FILES = frozenset({"report.html", "summary.json"})
TYPES = frozenset({"invoke", "ok", "fail", "info"})
MAX_PROBLEMS_PER_FILE = 20


class RunDirError(ValueError):
    """The caller named something that is not a run directory."""


@dataclass(slots=True)
class HistoryColumns:
    """The valid events of history.jsonl as parallel lists. `line` is the 1-based line number in the file."""

    index: list[int] = field(default_factory=list)
    line: list[int] = field(default_factory=list)
    process: list[Any] = field(default_factory=list)
    type: list[str] = field(default_factory=list)
    f: list[str] = field(default_factory=list)
    key: list[Any] = field(default_factory=list)
    value: list[Any] = field(default_factory=list)
    time: list[int] = field(default_factory=list)
    node: list[Any] = field(default_factory=list)
    error: list[Any] = field(default_factory=list)
    # The lab's own observations (process "harness": quiesce outcome, convergence, stuck-cluster anomalies), whole
    # events in file order. They are neither client operations nor faults, so they stay out of the columns.
    observations: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.index)


@dataclass(frozen=True, slots=True)
class RunFiles:
    """What could be read of one run directory. Fields are None (or empty) when the file was missing or unusable;
    `problems` says which and why, in words a person reads."""

    run_dir: Path
    test: dict[str, Any] | None
    history: HistoryColumns
    history_present: bool
    cluster: list[dict[str, Any]]
    results: dict[str, Any] | None
    files: tuple[Path, ...]  # every collected file, relative to run_dir, sorted
    problems: tuple[str, ...]

    @property
    def start_time(self) -> int:
        """The monotonic ns origin: test.json's start_time, else the first event's or poll's time, else 0."""
        if self.test and isinstance(self.test.get("start_time"), int):
            return int(self.test["start_time"])
        candidates = [self.history.time[0]] if len(self.history) else []
        candidates += [c["time"] for c in self.cluster[:1]]
        return min(candidates) if candidates else 0


def _read_json_file(path: Path, problems: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        problems.append(f"{path.name} is missing.")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError as e:
        problems.append(f"{path.name} is not valid JSON ({e.msg} at line {e.lineno}).")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path.name} holds a {type(data).__name__}, not a JSON object.")
        return None
    return data


def _note(problems: list[str], counts: dict[str, int], name: str, text: str) -> None:
    counts[name] = counts.get(name, 0) + 1
    if counts[name] <= MAX_PROBLEMS_PER_FILE:
        problems.append(text)


def read_history(path: Path, problems: list[str]) -> HistoryColumns:
    """Parse history.jsonl into columns, skipping (and noting) lines that break docs/history.md."""
    cols = HistoryColumns()
    counts: dict[str, int] = {}
    text = path.read_bytes().decode("utf-8", errors="replace")
    raw_lines = text.split("\n")
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()
    last = len(raw_lines)
    # Fast path: one parse of all lines as a JSON array (one C call instead of 200,000); line by line only when
    # some line is broken, to say which.
    parsed: list[Any] | None = None
    if all(raw_lines):
        try:
            parsed = json.loads("[" + ",".join(raw_lines) + "]")
        except json.JSONDecodeError:
            parsed = None
        if parsed is not None and len(parsed) != last:  # a line holding two values: go line by line
            parsed = None
    for lineno, raw in enumerate(raw_lines, start=1):
        if parsed is not None:
            ev = parsed[lineno - 1]
        else:
            if not raw.strip():
                continue
            try:
                ev = json.loads(raw)
            except json.JSONDecodeError:
                if lineno == last:
                    problems.append(f"history.jsonl: the last line ({lineno}) is cut short; the controller "
                                    "probably died while writing it.")
                else:
                    _note(problems, counts, "json", f"history.jsonl line {lineno}: not JSON; skipped.")
                continue
        if not isinstance(ev, dict):
            _note(problems, counts, "obj", f"history.jsonl line {lineno}: not a JSON object; skipped.")
            continue
        index, typ, f, t = ev.get("index"), ev.get("type"), ev.get("f"), ev.get("time")
        proc = ev.get("process")
        if (not isinstance(index, int) or typ not in TYPES or not isinstance(f, str) or not isinstance(t, int)
                or not (isinstance(proc, int) or proc in ("nemesis", "harness")) or isinstance(proc, bool)):
            _note(problems, counts, "fields", f"history.jsonl line {lineno}: missing or malformed index, process, "
                                              "type, f or time; skipped.")
            continue
        if proc == "harness":
            cols.observations.append(ev)
            continue
        cols.index.append(index)
        cols.line.append(lineno)
        cols.process.append(proc)
        cols.type.append(typ)
        cols.f.append(f)
        cols.key.append(ev.get("key"))
        cols.value.append(ev.get("value"))
        cols.time.append(t)
        cols.node.append(ev.get("node"))
        cols.error.append(ev.get("error"))
    skipped = sum(counts.values())
    if skipped > MAX_PROBLEMS_PER_FILE:
        problems.append(f"history.jsonl: {skipped} malformed lines in all (only the first "
                        f"{MAX_PROBLEMS_PER_FILE} are listed).")
    return cols


def read_cluster(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    """The node state polls of cluster.jsonl that carry an int time and a node name."""
    out: list[dict[str, Any]] = []
    bad = 0
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            try:
                poll = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                bad += 1
                continue
            if isinstance(poll, dict) and isinstance(poll.get("time"), int) and isinstance(poll.get("node"), str):
                out.append(poll)
            else:
                bad += 1
    if bad:
        problems.append(f"cluster.jsonl: {bad} unreadable poll line(s) skipped.")
    return out


def _collected_files(run_dir: Path) -> tuple[Path, ...]:
    found = []
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if path.is_file() and not path.is_symlink() and str(rel) not in OWN_FILES:
            found.append(rel)
    return tuple(found)


def load_run(run_dir: Path) -> RunFiles:
    """Read everything a report needs from run_dir. Never raises on missing or malformed files."""
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is not a directory")
    problems: list[str] = []
    test = _read_json_file(run_dir / TEST, problems)
    history_path = run_dir / HISTORY
    history_present = history_path.is_file()
    if history_present:
        history = read_history(history_path, problems)
    else:
        problems.append("history.jsonl is missing: the run recorded no operations.")
        history = HistoryColumns()
    cluster_path = run_dir / CLUSTER
    cluster = read_cluster(cluster_path, problems) if cluster_path.is_file() else []
    if not cluster_path.is_file():
        problems.append("cluster.jsonl is missing: no cluster state over time.")
    results = None
    if (run_dir / RESULTS).is_file():
        results = _read_json_file(run_dir / RESULTS, problems)
    else:
        problems.append("results.json is missing: the history was never checked (the controller probably died "
                        "before the check; `harness analyze` re-checks a stored run).")
    return RunFiles(run_dir=run_dir, test=test, history=history, history_present=history_present,
                    cluster=cluster, results=results, files=_collected_files(run_dir), problems=tuple(problems))
