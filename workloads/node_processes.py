"""The Process capability (harness.protocols.Process) for DBs whose node is one OS process on its host, signalled
through the backend's Remote: kill -9 that returns once the process is gone, pause and resume by SIGSTOP and
SIGCONT, and the stop a teardown needs. raftkv's and etcd's adapters share it; each spawns its own command.
"""

from __future__ import annotations

import asyncio
import signal

from harness.protocols import TestContext

GONE_TIMEOUT_S = 10.0  # a SIGKILLed process the kernel has not reaped by then is a broken host, not a slow one


class SignalledNodes:
    """Mixin: `pids` (node -> pid of its running process, set by the DB's own `start`) and the Process methods
    over them. `process_error` is the DB's error type, raised naming the node when a killed process outlives
    GONE_TIMEOUT_S. A node without a pid is not running: kill, pause and resume do nothing to it."""

    process_error: type[Exception] = RuntimeError

    def __init__(self) -> None:
        self.pids: dict[str, int] = {}

    async def kill(self, test: TestContext, node: str) -> None:
        """SIGKILL the node's process and return once it is gone (so a restart never races it for its ports)."""
        pid = self.pids.get(node)
        if pid is None:
            return
        host = test.host(node)
        await host.signal(pid, signal.SIGKILL)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GONE_TIMEOUT_S
        while await host.alive(pid):
            if loop.time() >= deadline:
                raise self.process_error(f"{node}: pid {pid} still alive {GONE_TIMEOUT_S:g} s after SIGKILL")
            await asyncio.sleep(0.005)  # the kernel reaps in ~2 ms; nothing to await but the process table
        self.pids.pop(node, None)

    async def pause(self, test: TestContext, node: str) -> None:
        if node in self.pids:
            await test.host(node).signal(self.pids[node], signal.SIGSTOP)

    async def resume(self, test: TestContext, node: str) -> None:
        if node in self.pids:
            await test.host(node).signal(self.pids[node], signal.SIGCONT)

    async def is_running(self, test: TestContext, node: str) -> bool:
        pid = self.pids.get(node)
        return pid is not None and await test.host(node).alive(pid)

    async def stop_process(self, test: TestContext, node: str) -> None:
        """A teardown's stop: a paused process is continued first (it must not linger stopped), then killed."""
        pid = self.pids.get(node)
        if pid is not None:
            await test.host(node).signal(pid, signal.SIGCONT)
            await self.kill(test, node)
