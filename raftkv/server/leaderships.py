"""The terms this node led, kept across restarts: evidence for the lab's election-safety oracle (GET /debug/state).

The core remembers the terms it became leader in (Raft.leaderships) for its own lifetime; a kill loses that, and a
leadership deposed within milliseconds is exactly the one a status poll misses. So the node appends each new term
to ``<data dir>/leaderships``, one line ``<term> <crc32 of the term's digits, 8 hex>`` per leadership, and reads the
file back at start-up. It is evidence, not state: the file is written on the WAL thread (never on the event loop,
which must not block on a stalled disk) and not fsynced; a power loss may drop its tail, which only loses evidence.
A line that is torn or damaged (no newline, bad checksum) is skipped with a warning and never stops the node; the
checksum keeps a damaged line from reading as a term this node never led.
"""

from __future__ import annotations

import logging
import zlib
from collections import deque
from collections.abc import Iterable
from pathlib import Path

__all__ = ["MAX_KEPT", "LeadershipJournal"]

MAX_KEPT = 1000  # terms kept in memory and reported (the newest)
FILE_NAME = "leaderships"


def _line(term: int) -> str:
    digits = str(term)
    return f"{digits} {zlib.crc32(digits.encode()):08x}\n"


def parse(text: str) -> tuple[list[int], int]:
    """The terms in a journal's text, in order, and how many lines were skipped as damaged or torn."""
    terms: list[int] = []
    bad = 0
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        lines.pop()  # no final newline: the last write was torn
        bad += 1
    for raw in lines:
        digits, _, crc = raw.partition(" ")
        if digits.isdigit() and digits.isascii() and f"{zlib.crc32(digits.encode()):08x}" == crc:
            terms.append(int(digits))
        else:
            bad += 1
    return terms, bad


class LeadershipJournal:
    """Append-only record of leaderships (see the module docstring). ``terms`` holds the newest MAX_KEPT."""

    def __init__(self, path: Path | None, log: logging.Logger, terms: Iterable[int] = ()) -> None:
        self.path = path
        self.log = log
        self.terms: deque[int] = deque(terms, maxlen=MAX_KEPT)

    @classmethod
    def open(cls, data_dir: Path | None, log: logging.Logger) -> LeadershipJournal:
        """Read the journal under `data_dir` (None: in memory only, for --memory); never raises for its content."""
        if data_dir is None:
            return cls(None, log)
        path = data_dir / FILE_NAME
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            log.warning("leadership journal %s unreadable (%s): earlier leaderships are not reported", path, exc)
            text = ""
        terms, bad = parse(text)
        if bad:
            log.warning("leadership journal %s: %d damaged or torn line(s) skipped", path, bad)
        return cls(path, log, terms)

    def note(self, terms: Iterable[int]) -> list[int]:
        """Add new leaderships in memory; returns them (for :meth:`append_sync`)."""
        new = list(terms)
        self.terms.extend(new)
        return new

    def append_sync(self, terms: list[int]) -> None:
        """Append `terms` to the file (blocking: run on the WAL thread). A failure is logged, never raised."""
        if self.path is None or not terms:
            return
        try:
            with self.path.open("a", encoding="ascii") as f:
                f.write("".join(map(_line, terms)))
        except OSError as exc:
            self.log.warning("leadership journal %s: could not record term(s) %s: %s", self.path, terms, exc)
