"""Nemeses combined: route each op to the nemesis that handles its fault kind; heal and tear down all of them.

Heal order follows from capabilities, not from timing: the nemeses that sit under the nodes (StartListeners, e.g. a
disk layer, which must end its faults and restore what it damaged before a node may start) heal first, together;
then every other nemesis (a kill nemesis restarting what it holds) heals, together. Healing them all at once let a
restart win the race against the layer's heal: a node started on a disk still failing or still damaged, refused
seconds later, and nobody started it again.

Also the no-op nemesis (``--nemesis none``), which handles no fault and heals trivially.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from harness.protocols import (
    CrashListener,
    CrashSource,
    Nemesis,
    Op,
    StartListener,
    StartSource,
    TestContext,
    log_files_of,
    prepare_hosts,
    unprepare_hosts,
)


class NemesisError(ValueError):
    """An op for a fault kind no selected nemesis handles, or two nemeses claiming one kind (caller misuse)."""


class NoopNemesis:
    def faults(self) -> set[str]:
        return set()

    async def setup(self, test: TestContext) -> None:
        return None

    async def invoke(self, test: TestContext, op: Op) -> Op:
        return replace(op, type="info")

    async def heal(self, test: TestContext) -> dict[str, Any]:
        return {"ok": True, "details": "no faults"}

    async def teardown(self, test: TestContext) -> None:
        return None


class CompositeNemesis:
    """The selected nemeses as one. It has every optional capability (PreparesHosts, LogFiles) and passes each
    call on to the nemeses that have it."""

    def __init__(self, named: Sequence[tuple[str, Nemesis]]) -> None:
        self.named = list(named)
        self.route: dict[str, Nemesis] = {}
        for name, nem in self.named:
            for kind in nem.faults():
                if kind in self.route:
                    raise NemesisError(f"fault kind {kind!r} is handled by two selected nemeses (one is {name})")
                self.route[kind] = nem
        # Crashes caused by one nemesis are announced to the others that care (a disk layer under a killed node).
        # Starts likewise (a disk layer restores damaged files before another nemesis restarts their node).
        for _, source in self.named:
            for _, listener in self.named:
                if listener is source:
                    continue
                if isinstance(source, CrashSource) and isinstance(listener, CrashListener):
                    source.add_crash_listener(listener)
                if isinstance(source, StartSource) and isinstance(listener, StartListener):
                    source.add_start_listener(listener)

    def faults(self) -> set[str]:
        return set(self.route)

    async def prepare(self, test: TestContext) -> None:
        for _, nem in self.named:
            await prepare_hosts(nem, test)

    async def unprepare(self, test: TestContext) -> None:
        """Every nemesis's unprepare, in reverse order, each one attempted; RuntimeError naming the failures."""
        await self._each(reversed(self.named), unprepare_hosts, test, "unprepare")

    async def setup(self, test: TestContext) -> None:
        for _, nem in self.named:
            await nem.setup(test)

    async def invoke(self, test: TestContext, op: Op) -> Op:
        kind = op.value.get("fault") if isinstance(op.value, dict) else None
        nem = self.route.get(kind) if isinstance(kind, str) else None
        if nem is None:
            raise NemesisError(f"no selected nemesis handles fault {kind!r} (have: {sorted(self.route)})")
        return await nem.invoke(test, op)

    def heal_waves(self) -> list[list[tuple[str, Nemesis]]]:
        """The heal order (see the module docstring): the StartListeners, then the others; empty waves left out."""
        under: list[tuple[str, Nemesis]] = [(n, nem) for n, nem in self.named if isinstance(nem, StartListener)]
        rest: list[tuple[str, Nemesis]] = [(n, nem) for n, nem in self.named if not isinstance(nem, StartListener)]
        return [wave for wave in (under, rest) if wave]

    async def heal(self, test: TestContext) -> dict[str, Any]:
        """Heal all, wave after wave (:meth:`heal_waves`), each wave concurrently; ok only if every one says ok. A
        nemesis whose heal raises is not ok (and the next wave still heals)."""
        async def one(nem: Nemesis) -> dict[str, Any]:
            try:
                res = await nem.heal(test)
                return res if isinstance(res, dict) else {"ok": False, "details": f"heal returned {res!r}"}
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - reported in results.json
                return {"ok": False, "details": f"heal raised {type(e).__name__}: {e}"}

        details: dict[str, dict[str, Any]] = {}
        for wave in self.heal_waves():
            results = await asyncio.gather(*(one(n) for _, n in wave))
            details.update({name: r for (name, _), r in zip(wave, results, strict=True)})
        details = {name: details[name] for name, _ in self.named}  # in the order the run named them
        return {"ok": all(bool(r.get("ok")) for r in details.values()), "details": details}

    def log_files(self, test: TestContext, node: str) -> list[str]:
        return [path for _, nem in self.named for path in log_files_of(nem, test, node)]

    async def teardown(self, test: TestContext) -> None:
        """Every nemesis's teardown, in order, each one attempted; RuntimeError naming the failures."""
        async def teardown(nem: Nemesis, test: TestContext) -> None:
            await nem.teardown(test)

        await self._each(self.named, teardown, test, "teardown")

    @staticmethod
    async def _each(named: Iterable[tuple[str, Nemesis]], action: Callable[[Nemesis, TestContext], Awaitable[None]],
                    test: TestContext, what: str) -> None:
        errors = []
        for name, nem in named:
            try:
                await action(nem, test)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the others regardless
                errors.append(f"{name}: {type(e).__name__}: {e}")
        if errors:
            raise RuntimeError(f"nemesis {what} failed: " + "; ".join(errors))
