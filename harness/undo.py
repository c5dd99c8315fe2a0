"""Teardown by structure: an :class:`UndoStack` holds one undo step per resource a run acquired, pushed when the
resource is acquired (before the call that acquires it, when a partial acquisition leaves something behind), and
runs them in reverse on every exit path: success, an exception, cancellation (Ctrl-C, SIGTERM).

Built on :class:`contextlib.AsyncExitStack`. Each step is bounded (``timeout``) and a step's failure is logged and
does not stop the steps after it: a teardown that stopped at its first failure would leave the rest behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

log = logging.getLogger("harness.undo")

STEP_TIMEOUT_S = 60.0

Step = Callable[[], Awaitable[object]]


class UndoStack:
    """``async with UndoStack() as undo: ...; undo.push(name, step)``. On exit the pushed steps run, last pushed
    first; ``on_unwind`` (e.g. announcing the "tear down" phase) is called once before the first of them.
    ``done`` lists the names of the steps that ran, in order (for logs and tests); ``failed`` those that failed."""

    def __init__(self, *, on_unwind: Callable[[], None] | None = None, timeout: float = STEP_TIMEOUT_S) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._on_unwind = on_unwind
        self._timeout = timeout
        self._unwinding = False
        self.done: list[str] = []
        self.failed: list[str] = []

    async def __aenter__(self) -> UndoStack:
        await self._stack.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool:
        return bool(await self._stack.__aexit__(exc_type, exc, tb))

    def push(self, name: str, step: Step) -> None:
        """Undo ``step`` (an async callable) on exit, before every step pushed earlier."""
        self._stack.push_async_callback(self._run, name, step)

    async def _run(self, name: str, step: Step) -> None:
        if not self._unwinding:
            self._unwinding = True
            if self._on_unwind is not None:
                self._on_unwind()
        self.done.append(name)
        try:
            async with asyncio.timeout(self._timeout):
                await step()
        except Exception as e:  # noqa: BLE001 - keep undoing: the next step still runs
            self.failed.append(name)
            log.error("%s failed: %s: %s", name, type(e).__name__, e)
