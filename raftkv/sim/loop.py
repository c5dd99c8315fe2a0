"""Virtual time and the event queue of the simulator.

Time is an integer count of virtual microseconds that starts at 0 and only moves when an event is taken from the
queue; nothing here reads a clock. Events are ``(time, seq, callback, argument)``: ``seq`` is a global counter, so
two events due at the same instant run in the order they were scheduled, and the run is a pure function of the
seeds that fed the callbacks. There is no cancellation: a callback whose target went away (a crashed node's tick)
checks an incarnation number it captured and returns without effect.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

__all__ = ["EventLoop"]


class EventLoop:
    """A deterministic discrete-event queue on virtual time (microseconds)."""

    __slots__ = ("now", "_queue", "_seq", "events_run")

    def __init__(self) -> None:
        self.now = 0
        self._queue: list[tuple[int, int, Callable[[Any], None], Any]] = []
        self._seq = 0
        self.events_run = 0

    def at(self, time: int, callback: Callable[[Any], None], arg: Any = None) -> None:
        """Run ``callback(arg)`` at virtual ``time``; a time in the past is a bug in the caller."""
        if time < self.now:
            raise ValueError(f"cannot schedule an event at {time}us, before now ({self.now}us)")
        self._seq += 1
        heapq.heappush(self._queue, (time, self._seq, callback, arg))

    def after(self, delay: int, callback: Callable[[Any], None], arg: Any = None) -> None:
        """Run ``callback(arg)`` ``delay`` microseconds from now (``delay`` >= 0)."""
        if delay < 0:
            raise ValueError(f"negative delay {delay}us")
        self._seq += 1
        heapq.heappush(self._queue, (self.now + delay, self._seq, callback, arg))

    def pending(self) -> int:
        """How many events are queued."""
        return len(self._queue)

    def next_time(self) -> int | None:
        """The time of the next event, or None when the queue is empty."""
        return self._queue[0][0] if self._queue else None

    def step(self) -> bool:
        """Run the next event; False (and nothing happens) when the queue is empty."""
        if not self._queue:
            return False
        time, _, callback, arg = heapq.heappop(self._queue)
        self.now = time
        self.events_run += 1
        callback(arg)
        return True

    def run_until(self, time: int) -> None:
        """Run every event due at or before ``time``, then set the clock to ``time``."""
        queue = self._queue
        while queue and queue[0][0] <= time:
            self.step()
        if time > self.now:
            self.now = time
