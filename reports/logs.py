"""The collected logs of a run: which files, when each line was written, and excerpts around an instant.

A log line's time is read from an ISO 8601 timestamp near its start (`2026-11-27T03:00:01.250+00:00`, or Python
logging's `2026-11-27 03:00:01,250`; a timestamp without a zone is taken as UTC), or from a JSON line's `time`/`ts`
field holding epoch seconds, milliseconds or nanoseconds. It is placed on the run's clock by subtracting test.json's
`start_wall`. A line without a timestamp (a traceback, a continuation) inherits the time of the line before it.
Files with no timestamp at all are still listed and linked, just not time-indexed.

Bounds: files larger than MAX_BYTES are indexed on their first MAX_BYTES only (and say so); an excerpt holds at
most `max_lines` lines per file, each cut to MAX_LINE_CHARS.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MAX_BYTES = 64 * 1024 * 1024
MAX_LINE_CHARS = 400
TEXT_SUFFIXES = frozenset({".log", ".txt", ".out", ".err", ".jsonl", ""})
NOT_LOGS = frozenset({"history.jsonl", "cluster.jsonl"})
ISO = re.compile(rb"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?")
INDEX_STEP_S = 0.05  # a time index point at least every 50 ms of log time...
INDEX_STEP_LINES = 500  # ...or every 500 lines


def parse_wall(text: str | None) -> datetime | None:
    """An ISO 8601 time as an aware datetime (naive means UTC); None if absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _line_epoch(raw: bytes) -> float | None:
    """Epoch seconds of a log line, or None when it carries no timestamp we know."""
    m = ISO.search(raw, 0, 80)
    if m:
        y, mo, d, h, mi, s, frac, tz = m.groups()
        try:
            dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=UTC)
        except ValueError:
            return None
        epoch = dt.timestamp()
        if frac:
            epoch += int(frac) / 10 ** len(frac)
        if tz and tz != b"Z":
            sign = 1 if tz[:1] == b"+" else -1
            digits = tz[1:].replace(b":", b"")
            epoch -= sign * (int(digits[:2]) * 3600 + int(digits[2:4]) * 60)
        return epoch
    if raw[:1] == b"{":
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        if isinstance(obj, dict):
            for name in ("time", "ts", "timestamp"):
                v = obj.get(name)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    if v > 1e17:
                        return v / 1e9
                    if v > 1e11:
                        return v / 1e3
                    if v > 1e8:
                        return float(v)
                if isinstance(v, str) and (wall := parse_wall(v)) is not None:
                    return wall.timestamp()
    return None


@dataclass(frozen=True, slots=True)
class LogIndex:
    """One log file's time index: `points` are (t, line) pairs, t in run seconds, line 1-based, increasing."""

    path: Path  # relative to the run directory
    size: int
    lines: int
    points: tuple[tuple[float, int], ...]
    truncated: bool

    def line_at(self, t: float) -> int | None:
        """The first line written at or after t (the last indexed line if t is past the end); None if unindexed."""
        if not self.points:
            return None
        lo, hi = 0, len(self.points)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.points[mid][0] < t:
                lo = mid + 1
            else:
                hi = mid
        return self.points[min(lo, len(self.points) - 1)][1]


def is_log(rel: Path) -> bool:
    """Whether a collected file is a text log worth indexing."""
    return rel.name not in NOT_LOGS and (rel.suffix in TEXT_SUFFIXES or "log" in rel.name)


def index_log(run_dir: Path, rel: Path, origin_epoch: float | None) -> LogIndex:
    """Time-index one log file. With no origin (no test.json start_wall) nothing can be placed in run time."""
    path = run_dir / rel
    size = path.stat().st_size
    points: list[tuple[float, int]] = []
    lines = 0
    with path.open("rb") as fh:
        data = fh.read(MAX_BYTES)
    last_t = -1e18
    last_line = -INDEX_STEP_LINES
    for lines, raw in enumerate(data.splitlines(), start=1):  # noqa: B007 (lines is the count after the loop)
        if origin_epoch is None:
            continue
        epoch = _line_epoch(raw)
        if epoch is None:
            continue
        t = epoch - origin_epoch
        if t >= last_t + INDEX_STEP_S or lines >= last_line + INDEX_STEP_LINES:
            # Keep the index monotonic even if a log's clock steps back (a clock nemesis).
            t = max(t, last_t) if points else t
            points.append((round(t, 4), lines))
            last_t, last_line = t, lines
    return LogIndex(path=rel, size=size, lines=lines, points=tuple(points), truncated=size > MAX_BYTES)


def excerpt(run_dir: Path, rel: Path, origin_epoch: float, start: float, end: float,
            max_lines: int = 400) -> list[tuple[int, float, str]]:
    """The lines of a log written in [start, end] (run seconds): (line number, t, text), at most max_lines."""
    out: list[tuple[int, float, str]] = []
    with (run_dir / rel).open("rb") as fh:
        data = fh.read(MAX_BYTES)
    t: float | None = None
    for n, raw in enumerate(data.splitlines(), start=1):
        epoch = _line_epoch(raw)
        if epoch is not None:
            t = epoch - origin_epoch  # no early exit: a clock fault can step a node's log back in time
        if t is not None and start <= t <= end:
            out.append((n, round(t, 4), raw[:MAX_LINE_CHARS].decode("utf-8", errors="replace")))
            if len(out) >= max_lines:
                break
    return out
