"""The registry's view of this package: one `NemesisSpec` per fault family, found through the entry points of
pyproject.toml (group `raftkv_lab.nemeses`). Each factory gets the run's options and its own child rng.

Options they add to `harness run`:
- `--partition-shapes a,b,...`: the shapes a partition start picks from (nemesis.grudge.SHAPES; default
  halves,one,leader,ring,bridge);
- `--kill-targets` / `--pause-targets a,b,...`: the target specs a kill / pause start picks from
  (nemesis.targets.TARGET_SPECS; default all of them).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.registry import NemesisSpec, Option
from nemesis.grudge import SHAPES
from nemesis.partition import DEFAULT_SHAPES, PartitionNemesis
from nemesis.process import DEFAULT_TARGETS, KillNemesis, PauseNemesis
from nemesis.targets import TARGET_SPECS


def comma_list(known: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    """An option type: "a,b" -> ("a", "b"), each checked against `known` (argparse reports the ValueError)."""

    def parse(text: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
        unknown = [i for i in items if i not in known]
        if unknown or not items:
            raise ValueError(f"{text!r}: expected a comma-separated list of {', '.join(known)}")
        return items

    parse.__name__ = "list"  # argparse names the type in its error message
    return parse


def _partition(options: Mapping[str, Any], rng: random.Random) -> PartitionNemesis:
    return PartitionNemesis(rng, shapes=options.get("partition_shapes") or DEFAULT_SHAPES)


def _kill(options: Mapping[str, Any], rng: random.Random) -> KillNemesis:
    return KillNemesis(rng, targets=options.get("kill_targets") or DEFAULT_TARGETS)


def _pause(options: Mapping[str, Any], rng: random.Random) -> PauseNemesis:
    return PauseNemesis(rng, targets=options.get("pause_targets") or DEFAULT_TARGETS)


PARTITION = NemesisSpec(
    name="partition", factory=_partition,
    description="network partitions (random halves, one node, the leader, majorities ring, bridge) as iptables "
                "rules in a chain of the lab's own on each host",
    options=(Option(flag="--partition-shapes", type=comma_list(SHAPES), default=DEFAULT_SHAPES,
                    help=f"partition shapes to pick from ({', '.join(SHAPES)}); default {','.join(DEFAULT_SHAPES)}"),),
)

KILL = NemesisSpec(
    name="kill", factory=_kill,
    description="kill -9 of one node, the leader, a minority, a majority or all, restarted when the fault stops",
    options=(Option(flag="--kill-targets", type=comma_list(TARGET_SPECS), default=DEFAULT_TARGETS,
                    help=f"kill targets to pick from ({', '.join(TARGET_SPECS)}); default all"),),
)

PAUSE = NemesisSpec(
    name="pause", factory=_pause,
    description="SIGSTOP of one node, the leader, a minority, a majority or all, SIGCONT when the fault stops",
    options=(Option(flag="--pause-targets", type=comma_list(TARGET_SPECS), default=DEFAULT_TARGETS,
                    help=f"pause targets to pick from ({', '.join(TARGET_SPECS)}); default all"),),
)
