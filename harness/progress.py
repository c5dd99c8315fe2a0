"""The live progress display of `harness run`, and its closing summary.

On a terminal: a rich live panel (elapsed, phase, ops ok/fail/info, current faults, leader), redrawn in place.
Elsewhere (CI logs, pipes): plain lines, one per phase and one every ``plain_every`` seconds, to stderr.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from harness.interpreter import Tally


def _faults(tally: Tally) -> str:
    if not tally.faults:
        return "none"
    parts = []
    for kind, value in sorted(tally.faults.items()):
        targets = value.get("targets") if isinstance(value, dict) else None
        parts.append(f"{kind}{' ' + ','.join(map(str, targets)) if targets else ''}")
    return "; ".join(parts)


class ConsoleProgress:
    def __init__(self, *, stream: TextIO | None = None, live: bool | None = None, plain_every: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.live_mode = self.stream.isatty() if live is None else live
        self.plain_every = plain_every
        self._phase = "starting"
        self._last_plain = 0.0
        self._live: Any = None
        self._snapshot: tuple[float, Tally | None, str | None] = (0.0, None, None)
        if self.live_mode:
            from rich.console import Console
            from rich.live import Live

            self.console = Console(file=self.stream)
            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True)
            self._live.start()

    def _render(self) -> Any:
        from rich.table import Table

        elapsed, tally, leader = self._snapshot
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        t.add_row("phase", self._phase)
        t.add_row("elapsed", f"{elapsed:7.1f} s")
        if tally is not None:
            t.add_row("ops", f"[green]ok {tally.ok}[/]  [red]fail {tally.fail}[/]  [yellow]info {tally.info}[/]"
                             f"  (invoked {tally.invokes})")
            t.add_row("faults", _faults(tally))
            if tally.last_error:
                t.add_row("last error", tally.last_error[:100])
        t.add_row("leader", leader or "-")
        return t

    def note(self, text: str) -> None:
        if self._live is not None:
            self.console.print(text)
        else:
            print(f"harness: {text}", file=self.stream, flush=True)

    def phase(self, name: str) -> None:
        self._phase = name
        if self._live is not None:
            self.console.print(f"[bold]»[/] {name}")
            self._live.update(self._render())
        else:
            print(f"harness: phase {name}", file=self.stream, flush=True)

    def update(self, *, elapsed: float, tally: Tally, leader: str | None) -> None:
        self._snapshot = (elapsed, tally, leader)
        if self._live is not None:
            self._live.update(self._render())
            return
        now = time.monotonic()
        if now - self._last_plain >= self.plain_every:
            self._last_plain = now
            print(f"harness: {elapsed:6.1f}s ok={tally.ok} fail={tally.fail} info={tally.info} "
                  f"faults={_faults(tally)} leader={leader or '-'}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


VERDICT = {True: "VALID", False: "INVALID", "unknown": "UNKNOWN"}


def summary_lines(*, valid: Any, error: str | None, tally: Tally, heal: dict[str, Any] | None,
                  run_dir: Any, exit_code: int, seed: int, failures: Any = None) -> list[str]:
    """The lines printed when a run ends; `failures` is results.json's {"safety": [...], "liveness": [...]}: the
    first liveness failures are printed, since the report is not where a terminal user looks first."""
    verdict = "HARNESS FAILED" if error else VERDICT.get(valid, "UNKNOWN")
    found = failures if isinstance(failures, dict) else {}
    kinds = [k for k in ("safety", "liveness") if found.get(k)]
    lines = [f"verdict: {verdict}" + (f" ({error})" if error else f" ({' and '.join(kinds)})" if kinds else "")]
    for failure in (found.get("liveness") or [])[:3]:
        if isinstance(failure, dict) and failure.get("message"):
            lines.append(f"  liveness: {failure['message']}")
    lines.append(f"ops: ok {tally.ok}, fail {tally.fail}, info {tally.info}; nemesis events {tally.nemesis_events}")
    if heal is not None:
        lines.append(f"heal: {'ok' if heal.get('ok') else 'NOT OK'}")
    lines.append(f"seed: {seed}")
    if run_dir is not None:
        lines.append(f"store: {run_dir}")
    lines.append(f"exit code: {exit_code}")
    return lines
