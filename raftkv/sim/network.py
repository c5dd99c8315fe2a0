"""The simulated network: delay, loss, duplication, reordering, symmetric and one-way partitions.

Endpoints are small integers (the nodes, and the clients). Every message is handed over with its sender,
receiver, a short kind label (for the counters) and its size in bytes; the network decides, with its own seeded
generator, whether it is lost, duplicated, and when each copy arrives. Reordering is a consequence of the delays:
each copy draws its own delay, and with probability ``reorder`` it gets an extra long one.

Partitions are a set of blocked directed links ``(src, dst)``; a symmetric partition blocks both directions. A link
is checked when the message is sent AND when it would be delivered, so a partition also eats what was in flight,
as a real cut cable would. Only node-to-node links are ever blocked: clients reach every node (a client talking to
an isolated old leader is exactly the case worth testing).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .loop import EventLoop

__all__ = ["LinkFaults", "Network", "NetworkStats"]


@dataclass(frozen=True, kw_only=True)
class LinkFaults:
    """How bad the network is. Delays in virtual microseconds; probabilities in [0, 1].

    The defaults are a reliable LAN: every message arrives once, after 0.5 to 2 ms, order mostly kept.
    """

    min_delay: int = 500
    max_delay: int = 2_000
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    long_delay: int = 20_000

    def __post_init__(self) -> None:
        if not 0 <= self.min_delay <= self.max_delay:
            raise ValueError(f"need 0 <= min_delay <= max_delay, got {self.min_delay}..{self.max_delay}")
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        if self.long_delay < 0:
            raise ValueError(f"long_delay must be >= 0, got {self.long_delay}")

    @classmethod
    def unreliable(cls) -> LinkFaults:
        """The classic lab's unreliable network: about 10% loss, some duplicates, long delays and reordering."""
        return cls(min_delay=500, max_delay=10_000, loss=0.1, duplicate=0.05, reorder=0.1, long_delay=60_000)


@dataclass
class NetworkStats:
    """Counters since the last reset: per kind, messages handed to the network and their bytes."""

    sent: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0

    def total_sent(self, kinds: Iterable[str] | None = None) -> int:
        """Messages sent, over the given kinds (all when None)."""
        if kinds is None:
            return sum(self.sent.values())
        return sum(self.sent.get(k, 0) for k in kinds)

    def total_bytes(self, kinds: Iterable[str] | None = None) -> int:
        """Bytes sent, over the given kinds (all when None)."""
        if kinds is None:
            return sum(self.bytes.values())
        return sum(self.bytes.get(k, 0) for k in kinds)


class Network:
    """Carries opaque payloads between integer endpoints on the event loop.

    ``deliver(src, dst, payload)`` is called at the arrival time of each copy that survives. The receiver decides
    what a delivery to a crashed endpoint means (it drops it).
    """

    def __init__(
        self,
        loop: EventLoop,
        rng: random.Random,
        deliver: Callable[[int, int, Any], None],
        faults: LinkFaults | None = None,
    ) -> None:
        self._loop = loop
        self._rng = rng
        self._deliver = deliver
        self.faults = faults or LinkFaults()
        self._blocked: set[tuple[int, int]] = set()
        self.stats = NetworkStats()
        # Tests hook in here to count messages per link: observer(src, dst, payload) for every message sent.
        self.observers: list[Callable[[int, int, Any], None]] = []

    # --- partitions -------------------------------------------------------------------------------------------
    def blocked(self, src: int, dst: int) -> bool:
        """Whether messages from src to dst are dropped right now."""
        return (src, dst) in self._blocked

    def block(self, src: int, dst: int) -> None:
        """Cut the link one way: src's messages no longer reach dst."""
        if src != dst:
            self._blocked.add((src, dst))

    def unblock(self, src: int, dst: int) -> None:
        self._blocked.discard((src, dst))

    def cut(self, a: int, b: int) -> None:
        """Cut the link both ways."""
        self.block(a, b)
        self.block(b, a)

    def isolate(self, node: int, others: Iterable[int]) -> None:
        """Cut ``node`` from every one of ``others`` both ways."""
        for other in others:
            self.cut(node, other)

    def connect(self, node: int, others: Iterable[int]) -> None:
        """Restore ``node``'s links with every one of ``others`` both ways."""
        for other in others:
            self.unblock(node, other)
            self.unblock(other, node)

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Replace all cuts by a symmetric partition into ``groups``: links across groups are cut."""
        self._blocked.clear()
        sides = [sorted(g) for g in groups]
        for i, side in enumerate(sides):
            for other in sides[i + 1 :]:
                for a in side:
                    for b in other:
                        self.cut(a, b)

    def heal(self) -> None:
        """Remove every cut."""
        self._blocked.clear()

    def cuts(self) -> list[tuple[int, int]]:
        """The blocked directed links, sorted (for traces)."""
        return sorted(self._blocked)

    # --- traffic ----------------------------------------------------------------------------------------------
    def reset_stats(self) -> None:
        self.stats = NetworkStats()

    def send(self, src: int, dst: int, payload: Any, kind: str, size: int, faulty: bool = True,
             stream: bool = False) -> None:
        """Hand one message to the network. ``faulty=False`` exempts it from loss and duplication. ``stream=True``
        models a message on its own TCP connection (a client request or reply): it may be lost (the connection
        dropped) or delayed, but never duplicated."""
        stats = self.stats
        stats.sent[kind] = stats.sent.get(kind, 0) + 1
        stats.bytes[kind] = stats.bytes.get(kind, 0) + size
        if self.observers:
            for observer in self.observers:
                observer(src, dst, payload)
        if (src, dst) in self._blocked:
            stats.dropped += 1
            return
        f = self.faults
        rng = self._rng
        if faulty and f.loss and rng.random() < f.loss:
            stats.dropped += 1
            return
        copies = 1
        if faulty and not stream and f.duplicate and rng.random() < f.duplicate:
            copies = 2
            stats.duplicated += 1
        spread = f.max_delay - f.min_delay + 1
        for _ in range(copies):
            # int(random() * n) rather than randint: the same uniform choice at a third of the cost (hot path).
            delay = f.min_delay + int(rng.random() * spread)
            if f.reorder and rng.random() < f.reorder:
                delay += int(rng.random() * (f.long_delay + 1))
            self._loop.after(delay, self._arrive, (src, dst, payload))

    def _arrive(self, item: tuple[int, int, Any]) -> None:
        src, dst, payload = item
        if (src, dst) in self._blocked:
            self.stats.dropped += 1
            return
        self.stats.delivered += 1
        self._deliver(src, dst, payload)
