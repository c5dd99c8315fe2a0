"""Processes by PID, safely: identify one by (pid, start time) so a recycled PID is never mistaken for ours."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProcId:
    """A process as the kernel knows it: its PID and its start time (clock ticks since boot, /proc/PID/stat
    field 22). Two different processes never share both."""

    pid: int
    start: int

    def to_json(self) -> list[int]:
        return [self.pid, self.start]

    @classmethod
    def from_json(cls, data: object) -> ProcId:
        if not (isinstance(data, list) and len(data) == 2 and all(isinstance(x, int) for x in data)):
            raise ValueError(f"not a [pid, start] pair: {data!r}")
        return cls(data[0], data[1])


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(")") + 2:].split()


def start_time(pid: int) -> int | None:
    """The start time of a running (or zombie) process, or None when there is no such PID."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def state(pid: int) -> str | None:
    """The one-letter state (R, S, D, T, Z, ...) or None."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def identify(pid: int) -> ProcId | None:
    st = start_time(pid)
    return None if st is None else ProcId(pid, st)


def is_same_alive(p: ProcId) -> bool:
    """True when that very process still exists and is not a zombie."""
    fields = _stat_fields(p.pid)
    return fields is not None and len(fields) > 19 and int(fields[19]) == p.start and fields[0] != "Z"


def kill_exact(p: ProcId, sig: signal.Signals = signal.SIGKILL) -> bool:
    """Signal p only if that very process still runs. False when it is gone (or its PID was recycled)."""
    if not is_same_alive(p):
        return False
    try:
        # A stopped process still dies of SIGKILL; SIGCONT first so a stopped one sees any other signal too.
        if sig != signal.SIGKILL:
            os.kill(p.pid, signal.SIGCONT)
        os.kill(p.pid, sig)
        return True
    except ProcessLookupError:
        return False


def wait_gone(procs: list[ProcId], timeout: float) -> list[ProcId]:
    """Poll until every process has exited (or is a zombie); return those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    left = [p for p in procs if is_same_alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.005)
        left = [p for p in left if is_same_alive(p)]
    return left
