"""The registry's view of this package: one `NemesisSpec` per fault family, found through the entry points of
pyproject.toml (group `raftkv_lab.nemeses`). Each factory gets the run's options and its own child rng.

Each spec also tells schedules what its faults do and how a start is aimed at the leader or at one node
(`traits`, harness.faults), within what the run's options allow, and what the hosts must offer (`needs`:
partitions and packet faults need a network of their own, so `--nemesis all` leaves them out on the local backend),
and what the DB must offer (`db_needs`: kill, pause and disk need a DB with Process; disk also DataDir). Leader-aimed
starts need Primaries, but only for that aim: against a DB without it they are skipped ("no leader capability").

Options they add to `harness run`:
- `--partition-shapes a,b,...`: the shapes a partition start picks from (nemesis.grudge.SHAPES; default
  halves,one,leader,ring,bridge);
- `--kill-targets` / `--pause-targets a,b,...`: the target specs a kill / pause start picks from
  (nemesis.targets.TARGET_SPECS; default all of them);
- `--packet-behaviours`, `--packet-targets`, `--packet-delay-ms`, `--packet-jitter-ms`, `--packet-loss`: what a
  packet start picks from and how hard it hits (nemesis.packet);
- `--clock-targets`, `--clock-max-skew-s`, `--clock-min-rate`, `--clock-max-rate`: whose clocks a clock or
  clock-rate start moves, by at most how much skew, and how slow a slowed monotonic clock runs (nemesis.clock);
- `--disk-faults a,b,...`, `--disk-targets`, `--disk-delay-ms`, `--disk-jitter-ms`: which disk faults are drawn
  (by the hunt with the others' kinds; under `--schedule cycle` by the disk nemesis's own start/stop cycle, every
  --nemesis-interval), whose disks, and how slow "slow" is (nemesis.disk); `--disk-unsynced keep|episodes`: whether every crash is a power loss (nemesis.disk).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness import generator as gen
from harness.faults import AIMS, Effect, FaultTraits
from harness.protocols import DataDir, Process
from harness.registry import NemesisSpec, Option
from nemesis.clock import DEFAULT_MAX_RATE, DEFAULT_MAX_SKEW_S, DEFAULT_MIN_RATE, ClockNemesis
from nemesis.clock import KINDS as CLOCK_KINDS
from nemesis.disk import DEFAULT_DELAY_MS as DISK_DELAY_MS
from nemesis.disk import DEFAULT_JITTER_MS as DISK_JITTER_MS
from nemesis.disk import FAULTS as DISK_FAULTS
from nemesis.disk import KINDS as DISK_KINDS
from nemesis.disk import DiskNemesis
from nemesis.grudge import SHAPES
from nemesis.packet import (
    BEHAVIOURS,
    DEFAULT_DELAY_MS,
    DEFAULT_JITTER_MS,
    DEFAULT_LOSS,
    PacketNemesis,
)
from nemesis.packet import DEFAULT_TARGETS as PACKET_TARGETS
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


def _number(options: Mapping[str, Any], name: str, default: float) -> float:
    """A numeric option, or its default when absent (0 is a value, not an absence)."""
    value = options.get(name)
    return default if value is None else float(value)


def _packet(options: Mapping[str, Any], rng: random.Random) -> PacketNemesis:
    return PacketNemesis(rng, behaviours=options.get("packet_behaviours") or BEHAVIOURS,
                         targets=options.get("packet_targets") or PACKET_TARGETS,
                         delay_ms=_number(options, "packet_delay_ms", DEFAULT_DELAY_MS),
                         jitter_ms=_number(options, "packet_jitter_ms", DEFAULT_JITTER_MS),
                         loss=_number(options, "packet_loss", DEFAULT_LOSS))


def _clock(options: Mapping[str, Any], rng: random.Random) -> ClockNemesis:
    return ClockNemesis(rng, targets=options.get("clock_targets") or DEFAULT_TARGETS,
                        max_skew_s=_number(options, "clock_max_skew_s", DEFAULT_MAX_SKEW_S),
                        min_rate=_number(options, "clock_min_rate", DEFAULT_MIN_RATE),
                        max_rate=_number(options, "clock_max_rate", DEFAULT_MAX_RATE))


def _clock_traits(options: Mapping[str, Any]) -> dict[str, FaultTraits]:
    """A skew does nothing a schedule can cast (OTHER); a slowed monotonic clock is a LAG (harness.faults). Each
    weighs half, so the family is drawn as often as a nemesis of one kind."""
    aims = _target_aims(options.get("clock_targets") or DEFAULT_TARGETS)
    return {"clock": FaultTraits(Effect.OTHER, aims, weight=0.5), "clock-rate": FaultTraits(Effect.LAG, aims, weight=0.5)}


def _aims(field: str, allowed: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The aims (harness.faults) a start can take: `{field: aim}` for each aim the run's options allow (a user who
    ruled out leader targets is not overridden by the schedule)."""
    return {aim: {field: aim} for aim in AIMS if aim in allowed}


def _target_aims(allowed: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A targeted nemesis's aims (nemesis.targets): the allowed specs, and the leader-relative ones a schedule asks
    for: "followers" when "leader" is allowed, "leader-and-majority" when "leader" and "majority" both are."""
    granted = set(allowed)
    granted |= {"followers"} if "leader" in granted else set()
    granted |= {"leader-and-majority"} if {"leader", "majority"} <= granted else set()
    return _aims("target", sorted(granted))


def _targeted_traits(kind: str, effect: Effect, option: str) -> Callable[[Mapping[str, Any]], dict[str, FaultTraits]]:
    def traits(options: Mapping[str, Any]) -> dict[str, FaultTraits]:
        return {kind: FaultTraits(effect, _target_aims(options.get(option) or DEFAULT_TARGETS))}

    return traits


def _partition_traits(options: Mapping[str, Any]) -> dict[str, FaultTraits]:
    # The partition nemesis aims through its shapes: "leader" cuts the leader off, "one" a random node.
    return {"partition": FaultTraits(Effect.CUT, _aims("shape", options.get("partition_shapes") or DEFAULT_SHAPES))}
def _disk(options: Mapping[str, Any], rng: random.Random) -> DiskNemesis:
    return DiskNemesis(rng, targets=options.get("disk_targets") or DEFAULT_TARGETS,
                       delay_ms=_number(options, "disk_delay_ms", DISK_DELAY_MS),
                       jitter_ms=_number(options, "disk_jitter_ms", DISK_JITTER_MS),
                       keep_unsynced=(options.get("disk_unsynced") or "keep") == "keep")


def _disk_kinds(options: Mapping[str, Any]) -> list[str]:
    """The kinds --disk-faults selected (the spec declares all of them, for routing)."""
    return [f"disk-{f}" for f in options.get("disk_faults") or DISK_FAULTS]


def _disk_schedule(options: Mapping[str, Any], rng: random.Random) -> gen.Generator:
    """Under --schedule cycle: its own cycle beside the engine's, over the selected kinds."""
    return gen.nemesis_cycle(_disk_kinds(options), float(options.get("nemesis_interval") or 10.0),
                             seed=rng.getrandbits(64))


# What each disk fault does to its node, told to the hunt: a paused disk blocks the node at its next write (it
# stops making progress and resumes at the stop); a slow one lets it run on, slower (a follower that acknowledges
# before its fsync then does so a whole delay early); eio and full make the node stop itself at its next write,
# restarted at the stop (not a kill at an instant the schedule chooses: FAIL, drawn at random only); corrupt kills
# its targets at the start and restarts them at the stop (a crash, with damage); lose-unsynced's power loss comes
# at its stop, which no move can aim (OTHER).
_DISK_EFFECTS = {"disk-pause": Effect.FREEZE, "disk-slow": Effect.SLOW, "disk-eio": Effect.FAIL,
                 "disk-full": Effect.FAIL, "disk-corrupt": Effect.CRASH, "disk-lose-unsynced": Effect.OTHER}
_MINORITY_AIMS = ("leader", "one", "minority")  # corrupt damages at most a minority: no larger aim is offered


def _disk_traits(options: Mapping[str, Any]) -> dict[str, FaultTraits]:
    """Each selected disk kind with its effect and aims within --disk-targets; each weighs 1/len(selected), so the
    disk family is drawn about as often as a nemesis of one kind (six kinds would otherwise crowd out the rest)."""
    kinds = _disk_kinds(options)
    aims = _target_aims(options.get("disk_targets") or DEFAULT_TARGETS)
    return {kind: FaultTraits(_DISK_EFFECTS[kind], {a: f for a, f in aims.items()
                                                     if kind != "disk-corrupt" or a in _MINORITY_AIMS},
                              weight=1.0 / len(kinds))
            for kind in kinds}


def number_in(name: str, accept: Callable[[float], bool], what: str) -> Callable[[str], float]:
    """An option type: a float that `accept` takes, else a ValueError saying `what` it must be (argparse names
    the type `name` in its error message)."""

    def parse(text: str) -> float:
        value = float(text)
        if not accept(value):
            raise ValueError(f"{text!r}: {what}")
        return value

    parse.__name__ = name
    return parse


_positive = number_in("seconds", lambda v: v > 0, "a number > 0")
_probability = number_in("probability", lambda v: 0 < v <= 1, "a probability in (0, 1]")
_non_negative = number_in("milliseconds", lambda v: v >= 0, "a number >= 0")
_rate = number_in("rate", lambda v: 0 < v < 1, "a share of true time in (0, 1)")


PARTITION = NemesisSpec(
    name="partition", factory=_partition, traits=_partition_traits, needs=frozenset({"network"}),
    description="network partitions (random halves, one node, the leader, majorities ring, bridge) as iptables "
                "rules in a chain of the lab's own on each host",
    options=(Option(flag="--partition-shapes", type=comma_list(SHAPES), default=DEFAULT_SHAPES,
                    help=f"partition shapes to pick from ({', '.join(SHAPES)}); default {','.join(DEFAULT_SHAPES)}"),),
)

KILL = NemesisSpec(
    name="kill", factory=_kill, traits=_targeted_traits("kill", Effect.CRASH, "kill_targets"),
    db_needs=frozenset({Process}),
    description="kill -9 of one node, the leader, a minority, a majority or all, restarted when the fault stops",
    options=(Option(flag="--kill-targets", type=comma_list(TARGET_SPECS), default=DEFAULT_TARGETS,
                    help=f"kill targets to pick from ({', '.join(TARGET_SPECS)}); default all"),),
)

PAUSE = NemesisSpec(
    name="pause", factory=_pause, traits=_targeted_traits("pause", Effect.FREEZE, "pause_targets"),
    db_needs=frozenset({Process}),
    description="SIGSTOP of one node, the leader, a minority, a majority or all, SIGCONT when the fault stops",
    options=(Option(flag="--pause-targets", type=comma_list(TARGET_SPECS), default=DEFAULT_TARGETS,
                    help=f"pause targets to pick from ({', '.join(TARGET_SPECS)}); default all"),),
)

PACKET = NemesisSpec(
    name="packet", factory=_packet, traits=_targeted_traits("packet", Effect.OTHER, "packet_targets"),
    needs=frozenset({"network"}),
    description="a slow or lossy network between the nodes: delay with jitter (an NFQUEUE daemon per host) and/or "
                "random loss (iptables statistic) of the targets' inbound peer traffic",
    options=(Option(flag="--packet-behaviours", type=comma_list(BEHAVIOURS), default=BEHAVIOURS,
                    help=f"what a packet fault does, picked per start ({', '.join(BEHAVIOURS)}); default all"),
             Option(flag="--packet-targets", type=comma_list(TARGET_SPECS), default=PACKET_TARGETS,
                    help=f"whose inbound peer traffic is degraded ({', '.join(TARGET_SPECS)}); default all"),
             Option(flag="--packet-delay-ms", type=_non_negative, default=DEFAULT_DELAY_MS,
                    help=f"delay of each packet in ms (default {DEFAULT_DELAY_MS:g})"),
             Option(flag="--packet-jitter-ms", type=_non_negative, default=DEFAULT_JITTER_MS,
                    help=f"uniform +/- jitter on the delay in ms; reorders packets (default {DEFAULT_JITTER_MS:g})"),
             Option(flag="--packet-loss", type=_probability, default=DEFAULT_LOSS,
                    help=f"probability that a packet is dropped (default {DEFAULT_LOSS:g})")),
)

CLOCK = NemesisSpec(
    name="clock", factory=_clock, faults=frozenset(CLOCK_KINDS), traits=_clock_traits,
    description="clock faults of the DB's daemons through an LD_PRELOAD shim built with gcc: clock, a wall-clock "
                "skew of up to +-max skew (monotonic clocks untouched); clock-rate, a monotonic clock running at a "
                "small fraction of true time, so the targets' timers (heartbeats, CheckQuorum, leases) fire late",
    options=(Option(flag="--clock-targets", type=comma_list(TARGET_SPECS), default=DEFAULT_TARGETS,
                    help=f"whose clock a start skews ({', '.join(TARGET_SPECS)}); default all"),
             Option(flag="--clock-max-skew-s", type=_positive, default=DEFAULT_MAX_SKEW_S,
                    help=f"largest skew in seconds, either way (default {DEFAULT_MAX_SKEW_S:g})"),
             Option(flag="--clock-min-rate", type=_rate, default=DEFAULT_MIN_RATE,
                    help=f"slowest monotonic rate a clock-rate start draws, as a share of true time "
                         f"(default {DEFAULT_MIN_RATE:g})"),
             Option(flag="--clock-max-rate", type=_rate, default=DEFAULT_MAX_RATE,
                    help=f"fastest such rate, below 1 (default {DEFAULT_MAX_RATE:g}; drawn log-uniformly between)")),
)

DISK = NemesisSpec(
    name="disk", factory=_disk, faults=frozenset(DISK_KINDS), cycle=_disk_schedule, selected=_disk_kinds,
    traits=_disk_traits,
    needs=frozenset({"controller-fs"}),  # its FUSE daemon runs in the controller's mount namespace (nemesis.disk)
    db_needs=frozenset({Process, DataDir}),  # it stops and restarts nodes, under one data directory each
    description="disk faults through a FUSE layer under each node's data directory: pause, slow, lose-unsynced "
                "(a power loss drops what was not fsynced), eio, full (ENOSPC), corrupt (a WAL segment or snapshot "
                "damaged while the node is down)",
    options=(Option(flag="--disk-faults", type=comma_list(DISK_FAULTS), default=DISK_FAULTS,
                    help=f"disk faults to draw from ({', '.join(DISK_FAULTS)}); default all"),
             Option(flag="--disk-targets", type=comma_list(TARGET_SPECS), default=DEFAULT_TARGETS,
                    help=f"whose disk a start hits ({', '.join(TARGET_SPECS)}); default all"),
             Option(flag="--disk-delay-ms", type=_non_negative, default=DISK_DELAY_MS,
                    help=f"slow: extra delay of each write and fsync in ms (default {DISK_DELAY_MS:g})"),
             Option(flag="--disk-jitter-ms", type=_non_negative, default=DISK_JITTER_MS,
                    help=f"slow: uniform +/- jitter on that delay in ms (default {DISK_JITTER_MS:g})"),
             Option(flag="--disk-unsynced", choices=("keep", "episodes"), default="keep",
                    help="keep (default): the layer always keeps what was not fsynced, so every kill -9 of a node, "
                         "by any nemesis, is a power loss (as LazyFS); episodes: only during lose-unsynced faults")),
)
