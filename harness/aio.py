"""The asyncio plumbing of a run: a background task the undo stack stops, a synchronous undo step, an action on
every node at once, and a CPU-bound function (a checker, the renderer) awaited in a daemon thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from harness.protocols import TestContext
from harness.undo import UndoStack


def sync_step(fn: Callable[[], object]) -> Callable[[], Awaitable[None]]:
    """A synchronous undo step as an async one."""
    async def step() -> None:
        fn()

    return step


def start_task(undo: UndoStack, name: str, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Run ``work`` in a task until the undo stack cancels it (and awaits its end)."""
    task = asyncio.create_task(work, name=name)

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    undo.push(f"stop the {name}", stop)
    return task


async def each_node(test: TestContext, action: Callable[[TestContext, str], Awaitable[None]]) -> None:
    """``action`` on every node of the test, concurrently; the first failure is raised."""
    await asyncio.gather(*(action(test, n) for n in test.nodes))


async def in_daemon_thread(fn: Any, *args: Any) -> Any:
    """Run a CPU-bound function (a checker, the renderer) in a daemon thread and await it. Unlike
    asyncio.to_thread, a Ctrl-C/SIGTERM does not have to wait for it: the await is cancelled and the process may
    exit while the thread still runs (nothing it does needs cleaning up)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if not fut.done():
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def work() -> None:
        try:
            res: tuple[bool, Any] = (True, fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            res = (False, e)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(deliver, *res)

    threading.Thread(target=work, name=f"harness-{getattr(fn, '__name__', 'work')}", daemon=True).start()
    return await fut
