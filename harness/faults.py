"""What a fault kind does, told to schedules: the small vocabulary between a nemesis and the hunting schedule.

A schedule (harness.hunt) knows nothing of iptables or signals; a nemesis knows nothing of schedules. A nemesis spec
(harness.registry.NemesisSpec.traits) describes each of its fault kinds with :class:`FaultTraits`:

- ``effect``: what the fault does to its targets, so a schedule can build named moves ("isolate the leader" needs a
  ``CUT``, "leader churn" a ``CRASH``, "pause the leader past its lease" a ``FREEZE``, "power loss" a ``SLOW``
  and a ``CRASH``, "a cut-off leader on a slow clock" a ``CUT`` and a ``LAG``); ``FAIL`` and ``OTHER`` faults are
  drawn at random only.
- ``aims``: how to aim a start, as the fields to put in the start op's value, in the nemesis's own vocabulary:
  ``aims["leader"]`` aims at the current leader (e.g. ``{"target": "leader"}`` or ``{"shape": "leader"}``),
  ``aims["one"]`` at one node chosen at random, ``"minority"`` / ``"majority"`` at that many random nodes,
  ``"followers"`` at every node but the leader, ``"leader-and-majority"`` at the leader and a majority of the
  cluster among the others (with 5 nodes: four; with 3: all). An aim that is absent cannot be asked for (the
  nemesis lacks it, or the run's options ruled it out); a start with no aim fields lets the nemesis draw as it
  always does.
- ``weight``: how often the kind is drawn relative to the others (1 by default), both as a random fault and when a
  move casts its roles: a family of many kinds (the disk's six) weighs each kind down so that the family as a whole
  is drawn about as often as a nemesis of one kind.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

AIMS = ("leader", "one", "minority", "majority", "followers", "leader-and-majority")
LEADER_AIMS = frozenset({"leader", "followers", "leader-and-majority"})  # aims that need the DB to name its leader


class Effect(enum.Enum):
    CRASH = "crash"  # the targets' processes die, and restart when the fault stops (kill -9)
    FREEZE = "freeze"  # the targets stop running and resume where they were (SIGSTOP)
    CUT = "cut"  # the targets lose their network to some peers (a partition)
    SLOW = "slow"  # the targets run on, slower (a slow disk: each write and fsync waits)
    LAG = "lag"  # the targets' monotonic clocks run slow: every timer of theirs fires late (heartbeats, leases)
    FAIL = "fail"  # the targets' storage fails; a node stops itself at its next write, restarted at the stop
    OTHER = "other"  # anything else (slow links, clock skew, a power loss at the stop): drawn at random, in no move


@dataclass(frozen=True, slots=True)
class FaultTraits:
    """One fault kind as a schedule sees it (see the module docstring). Built once, read-only."""

    effect: Effect = Effect.OTHER
    aims: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.weight < float("inf"):
            raise ValueError(f"fault traits: weight {self.weight!r} (must be a finite number > 0)")
        unknown = set(self.aims) - set(AIMS)
        if unknown:
            raise ValueError(f"fault traits: unknown aims {sorted(unknown)} (known: {', '.join(AIMS)})")
        if any("fault" in fields for fields in self.aims.values()):
            raise ValueError("fault traits: an aim may not set the op value's 'fault'")
        object.__setattr__(self, "aims", MappingProxyType({k: MappingProxyType(dict(v)) for k, v in self.aims.items()}))

    def aim(self, name: str) -> dict[str, Any] | None:
        """The start value fields that aim at ``name`` (one of AIMS), or None when this kind cannot."""
        fields = self.aims.get(name)
        return None if fields is None else dict(fields)


UNDESCRIBED = FaultTraits()


def without_leader_aims(traits: Mapping[str, FaultTraits]) -> dict[str, FaultTraits]:
    """The same kinds with every LEADER_AIMS aim removed: what a schedule may ask of a DB that names no leader
    (no Primaries capability), so it spends no episode on starts the nemesis could only skip."""
    return {kind: replace(t, aims={a: f for a, f in t.aims.items() if a not in LEADER_AIMS})
            for kind, t in traits.items()}
