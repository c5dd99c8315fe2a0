"""The event trace: one line per notable event, stamped with virtual time.

Lines are built only when tracing is on (callers test ``tracer.on`` before formatting, which keeps the untraced
simulator fast). Nothing in a line may depend on the wall clock, on object ids or on the iteration order of sets
or dicts of strings, so the same seed and arguments give a byte-identical trace on every run and machine.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Tracer"]


class Tracer:
    """Collects trace lines (``on``), optionally also handing each line to ``sink`` as it is made."""

    __slots__ = ("on", "lines", "_now", "_sink")

    def __init__(self, now: Callable[[], int], on: bool = False, sink: Callable[[str], None] | None = None) -> None:
        self.on = on
        self.lines: list[str] = []
        self._now = now
        self._sink = sink

    def __call__(self, text: str) -> None:
        """Record ``text`` at the current virtual time (seconds.microseconds)."""
        if not self.on:
            return
        now = self._now()
        line = f"{now // 1_000_000:4d}.{now % 1_000_000:06d} {text}"
        if self._sink is not None:
            self._sink(line)
        else:
            self.lines.append(line)
