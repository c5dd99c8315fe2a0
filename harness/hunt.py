"""The hunting schedule: dense, overlapping, leader-aimed faults and named moves, as pure generators.

Why: one fault per ten seconds, aimed wherever, finds the bugs a cluster shows in its first fault and misses those
that hide in narrow windows: a leader cut off while it still takes writes, a pause longer than a lease, a crash in
the middle of an election, several elections in a row. This schedule draws an *episode* every few seconds
(``faults_per_minute`` on average; gaps uniform in 0.2x to 1.8x the mean) and runs it beside the episodes still
running, so faults of different kinds overlap. An episode is either a random fault or a named move:

- ``random``: a kind drawn among the free ones, aimed at the leader with probability ``leader_share`` when the kind
  can be (else the nemesis draws its own target), held for log-uniform 0.25 to 8 election timeouts; with
  probability ``overlap_share`` a second free kind, drawn the same way, starts while the first still holds;
- ``isolate-leader``: cut the leader off for 3 to 10 election timeouts (it may keep taking writes it cannot commit
  while the majority elects another);
- ``leader-churn``: kill the leader, restart it after 1 to 3 election timeouts (a new leader is elected meanwhile),
  then at once kill the new one; 2 to 4 times;
- ``leader-pause``: pause the leader for 1.5 to 4 election timeouts (longer than any lease), then resume it;
- ``election-crash``: crash a node while an election runs: kill the leader briefly (0.1 to 0.5 timeouts), or cut
  the network for 2 to 6 timeouts and heal it; then within one timeout kill one node for 0.5 to 3 timeouts;
- ``flapping-partition``: cut and heal 3 to 6 times, each cut 0.2 to 1.5 timeouts, each heal 0.2 to 1 timeout;
- ``power-loss``: slow the followers' disks (a ``SLOW`` aimed at "followers": a follower that acknowledges before
  its fsync then does so a whole delay early) for 0.2 to 1 timeout while writes flow, then crash the leader and a
  majority of the cluster besides it at once (a ``CRASH`` aimed at "leader-and-majority": with the disk layer
  keeping what was not fsynced, one power cut), end the slowness while they are down, and restart them after 0.5
  to 1.5 timeouts. A write the crashed followers acknowledged but had not persisted is then missing from a majority,
  which may elect a leader without it.
- ``lagging-leader``: cut the leader off, and at once slow its monotonic clock (a ``LAG`` aimed at the leader,
  started before its CheckQuorum can notice the cut), for 8 to 24 election timeouts; heal the cut while its clock
  is still slow, and give it true time back 0.5 to 2 timeouts later. The old leader believes it leads 10 to 100
  times longer than it should: everything it answers alone meanwhile is tested (reads served from a lease or
  without a quorum round go stale once the majority's new leader writes; the hold outlasts an op timeout, so the
  node-bound workers stuck in its writes come back and read), and when the cut heals it still sends APPENDs of
  its old term with the entries it took alone (a follower that does not check the term takes them).

Times scale with the DB's worst-case election timeout (harness.protocols.Timing; 1 s when the DB does not say).
Moves need fault kinds that play a role (harness.faults: a ``CUT``, a ``CRASH``, a ``FREEZE``, a ``SLOW``, with
the aims the move asks for); a move whose roles no free kind can play is not drawn. Kinds are drawn by their
traits' ``weight``, both as random faults and when a move casts its roles. Never two faults of one kind at once: an
episode holds its kinds from its first op to its last, and the next draws choose among the others (when none is
free, nothing starts until the next draw).

Every fault ends by itself (its stop is part of its episode); what the run's time limit cuts off, the run's final
heal ends. Start and stop ops carry ``"move"`` (the episode's name) in their value; the interpreter keeps it in the
completion, so the history says which move each fault belongs to. Everything is drawn from the seed: the same seed
and configuration give the same schedule (on virtual time; a real run's ops drift with the nemesis's latency).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from harness.faults import Effect, FaultTraits
from harness.generator import (
    Context,
    GeneratorError,
    GenLike,
    Spawn,
    Spawned,
    any_of,
    lift,
    secs,
    sleep,
    spawn,
    synchronize,
    then,
)

RANDOM = "random"
MOVES = ("isolate-leader", "leader-churn", "leader-pause", "election-crash", "flapping-partition", "power-loss",
         "lagging-leader")
DEFAULT_FAULT_RATE = 12.0  # episodes per minute: a start every 5 s on average, several overlapping
MAX_FAULT_RATE = 120.0  # an episode every half second: denser would queue on the single nemesis thread
DEFAULT_MOVE_SHARE = 0.4
DEFAULT_LEADER_SHARE = 0.5
DEFAULT_OVERLAP_SHARE = 0.35
RANDOM_HOLD = (0.25, 8.0)  # election timeouts, log-uniform

Steps = list[GenLike]


@dataclass(frozen=True, slots=True, kw_only=True)
class HuntConfig:
    """What the schedule may use and how hard it hunts. ``kinds``: every selected fault kind -> its traits.
    ``until_s``: no new episode after this many seconds (running ones finish); None = draw forever."""

    kinds: Mapping[str, FaultTraits]
    election_timeout_s: float = 1.0
    faults_per_minute: float = DEFAULT_FAULT_RATE
    moves: tuple[str, ...] = MOVES
    move_share: float = DEFAULT_MOVE_SHARE
    leader_share: float = DEFAULT_LEADER_SHARE
    overlap_share: float = DEFAULT_OVERLAP_SHARE
    until_s: float | None = None
    _sorted: tuple[tuple[str, FaultTraits], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = [msg for bad, msg in (
            (not self.kinds, "no fault kinds to draw from"),
            (not 0 < self.election_timeout_s < math.inf, f"election timeout {self.election_timeout_s!r} s"),
            (not 0 < self.faults_per_minute <= MAX_FAULT_RATE,
             f"fault rate {self.faults_per_minute!r}/min (must be in (0, {MAX_FAULT_RATE:g}])"),
            (bool(set(self.moves) - set(MOVES)), f"unknown moves {sorted(set(self.moves) - set(MOVES))}"),
            (not 0 <= self.move_share <= 1, f"move share {self.move_share!r}"),
            (not 0 <= self.leader_share <= 1, f"leader share {self.leader_share!r}"),
            (not 0 <= self.overlap_share <= 1, f"overlap share {self.overlap_share!r}"),
        ) if bad]
        if problems:
            raise GeneratorError("hunting schedule: " + "; ".join(problems))
        object.__setattr__(self, "_sorted", tuple(sorted(self.kinds.items())))

    @property
    def mean_gap_s(self) -> float:
        return 60.0 / self.faults_per_minute


def hunt(config: HuntConfig, *, seed: int) -> Spawn:
    """The hunting schedule (see the module docstring): nemesis start/stop ops, forever (bound it with time_limit,
    or ``until_s``). The first episode comes a fifth of a mean gap after the first ask."""
    return spawn(partial(_draw, config), first_s=0.2 * config.mean_gap_s, seed=seed)


# ------------------------------------------------------------------------------------------------ episodes


def fault(kind: str, aim: Mapping[str, Any], hold_s: float, move: str) -> Steps:
    """One fault: start (aimed by ``aim``'s value fields), hold ``hold_s`` from the start's completion, stop."""
    return [{"f": "start", "value": {"fault": kind, **aim, "move": move}}, synchronize(sleep(hold_s)),
            {"f": "stop", "value": {"fault": kind, "move": move}}]


Build = Callable[[random.Random, Sequence[str], Mapping[str, FaultTraits], float], Steps]


@dataclass(frozen=True, slots=True)
class Move:
    """A named move: ``roles`` are (effect, aims it needs) pairs, each played by a distinct free kind; ``build``
    gets the rng, the kinds chosen (one per role), their traits and the election timeout, and returns the steps."""

    name: str
    roles: tuple[tuple[Effect, tuple[str, ...]], ...]
    build: Build

    def casting(self, free: Sequence[tuple[str, FaultTraits]]) -> list[list[str]]:
        """Per role, the free kinds that can play it (sorted); an empty list somewhere = the move cannot run."""
        return [[k for k, t in free if t.effect is effect and all(t.aim(a) is not None for a in aims)]
                for effect, aims in self.roles]


def _aim(traits: FaultTraits, name: str) -> dict[str, Any]:
    fields = traits.aim(name)
    assert fields is not None, f"a move was cast with a kind that cannot aim at {name}"
    return fields


def _isolate_leader(rng: random.Random, kinds: Sequence[str], traits: Mapping[str, FaultTraits], e: float) -> Steps:
    (cut,) = kinds
    return fault(cut, _aim(traits[cut], "leader"), rng.uniform(3, 10) * e, "isolate-leader")


def _leader_churn(rng: random.Random, kinds: Sequence[str], traits: Mapping[str, FaultTraits], e: float) -> Steps:
    (crash,) = kinds
    steps: Steps = []
    for i in range(rng.randint(2, 4)):
        if i:
            steps.append(sleep(rng.uniform(0, 0.5) * e))
        steps += fault(crash, _aim(traits[crash], "leader"), rng.uniform(1, 3) * e, "leader-churn")
    return steps


def _leader_pause(rng: random.Random, kinds: Sequence[str], traits: Mapping[str, FaultTraits], e: float) -> Steps:
    (freeze,) = kinds
    return fault(freeze, _aim(traits[freeze], "leader"), rng.uniform(1.5, 4) * e, "leader-pause")


def _crash_after_leader_kill(rng: random.Random, kinds: Sequence[str], traits: Mapping[str, FaultTraits],
                             e: float) -> Steps:
    (crash,) = kinds
    t = traits[crash]
    return [*fault(crash, _aim(t, "leader"), rng.uniform(0.1, 0.5) * e, "election-crash"),
            sleep(rng.uniform(0, 1) * e), *fault(crash, _aim(t, "one"), rng.uniform(0.5, 3) * e, "election-crash")]


def _crash_after_heal(rng: random.Random, kinds: Sequence[str], traits: Mapping[str, FaultTraits], e: float) -> Steps:
    cut, crash = kinds
    aim = traits[cut].aim("leader") if rng.random() < 0.5 else None
    return [*fault(cut, aim or {}, rng.uniform(2, 6) * e, "election-crash"), sleep(rng.uniform(0, 1) * e),
            *fault(crash, _aim(traits[crash], "one"), rng.uniform(0.5, 3) * e, "election-crash")]


def _flapping_partition(rng: random.Random, kinds: Sequence[str], traits: Mapping[str, FaultTraits],
                        e: float) -> Steps:
    (cut,) = kinds
    steps: Steps = []
    for i in range(rng.randint(3, 6)):
        if i:
            steps.append(sleep(rng.uniform(0.2, 1) * e))
        steps += fault(cut, {}, rng.uniform(0.2, 1.5) * e, "flapping-partition")
    return steps


def _power_loss(rng: random.Random, kinds: Sequence[str], traits: Mapping[str, FaultTraits], e: float) -> Steps:
    slow, crash = kinds
    move = "power-loss"
    return [{"f": "start", "value": {"fault": slow, **_aim(traits[slow], "followers"), "move": move}},
            synchronize(sleep(rng.uniform(0.2, 1) * e)),
            {"f": "start", "value": {"fault": crash, **_aim(traits[crash], "leader-and-majority"), "move": move}},
            {"f": "stop", "value": {"fault": slow, "move": move}},  # the disks recover while their nodes are down
            synchronize(sleep(rng.uniform(0.5, 1.5) * e)),
            {"f": "stop", "value": {"fault": crash, "move": move}}]


def _lagging_leader(rng: random.Random, kinds: Sequence[str], traits: Mapping[str, FaultTraits],
                    e: float) -> Steps:
    cut, lag = kinds
    move = "lagging-leader"
    # The lag right after the cut, with no pause between: the leader is still the one the DB names, and its
    # CheckQuorum (an election timeout on its own clock) has not run out. The clock stays slow past the heal.
    return [{"f": "start", "value": {"fault": cut, **_aim(traits[cut], "leader"), "move": move}},
            {"f": "start", "value": {"fault": lag, **_aim(traits[lag], "leader"), "move": move}},
            synchronize(sleep(rng.uniform(8, 24) * e)),
            {"f": "stop", "value": {"fault": cut, "move": move}},
            synchronize(sleep(rng.uniform(0.5, 2) * e)),
            {"f": "stop", "value": {"fault": lag, "move": move}}]


# Each name with its variants (an election-crash follows a leader kill or a partition heal, whichever fits).
MOVE_TABLE: dict[str, tuple[Move, ...]] = {
    "isolate-leader": (Move("isolate-leader", ((Effect.CUT, ("leader",)),), _isolate_leader),),
    "leader-churn": (Move("leader-churn", ((Effect.CRASH, ("leader",)),), _leader_churn),),
    "leader-pause": (Move("leader-pause", ((Effect.FREEZE, ("leader",)),), _leader_pause),),
    "election-crash": (Move("election-crash", ((Effect.CRASH, ("leader", "one")),), _crash_after_leader_kill),
                       Move("election-crash", ((Effect.CUT, ()), (Effect.CRASH, ("one",))), _crash_after_heal)),
    "flapping-partition": (Move("flapping-partition", ((Effect.CUT, ()),), _flapping_partition),),
    "power-loss": (Move("power-loss", ((Effect.SLOW, ("followers",)), (Effect.CRASH, ("leader-and-majority",))),
                        _power_loss),),
    "lagging-leader": (Move("lagging-leader", ((Effect.CUT, ("leader",)), (Effect.LAG, ("leader",))),
                            _lagging_leader),),
}
assert tuple(MOVE_TABLE) == MOVES
assert all(len({e for e, _ in m.roles}) == len(m.roles) for ms in MOVE_TABLE.values() for m in ms)


def _cast(move: Move, free: Sequence[tuple[str, FaultTraits]], rng: random.Random | None) -> list[str] | None:
    """Kinds for the move's roles, each drawn by weight (the first, without an rng) among the free kinds that can
    play it; None when some role has none. Roles of one move have distinct effects, so no kind can play two."""
    chosen: list[str] = []
    weights = dict(free)
    for candidates in move.casting(free):
        if not candidates:
            return None
        chosen.append(_weighted(rng, candidates, [weights[k].weight for k in candidates]) if rng is not None
                      else candidates[0])
    return chosen


def _weighted(rng: random.Random, items: Sequence[str], weights: Sequence[float]) -> str:
    """One of ``items`` drawn by ``weights`` (with equal weights, the same draw as ``rng.choice``)."""
    if len(set(weights)) <= 1:
        return items[rng.randrange(len(items))]
    return rng.choices(items, weights=weights)[0]


def _random_fault(config: HuntConfig, rng: random.Random, free: Sequence[tuple[str, FaultTraits]]
                  ) -> tuple[GenLike, list[str]]:
    """A random fault; with probability ``overlap_share`` (and two kinds free) a second kind starts while the first
    still holds, so kinds overlap (a kill inside a partition, a pause inside a slow network)."""
    first = _one_random(config, rng, free)
    if len(free) < 2 or rng.random() >= config.overlap_share:
        return then(*first[0]), [first[1]]
    second = _one_random(config, rng, [(k, t) for k, t in free if k != first[1]])
    hold = first[2]
    return any_of(then(*first[0]), then(sleep(rng.uniform(0, hold)), *second[0])), [first[1], second[1]]


def _one_random(config: HuntConfig, rng: random.Random, free: Sequence[tuple[str, FaultTraits]]
                ) -> tuple[Steps, str, float]:
    kind = _weighted(rng, [k for k, _ in free], [t.weight for _, t in free])
    traits = dict(free)[kind]
    leader = traits.aim("leader")
    aim = leader if leader is not None and rng.random() < config.leader_share else {}
    lo, hi = RANDOM_HOLD
    hold = math.exp(rng.uniform(math.log(lo), math.log(hi))) * config.election_timeout_s
    return fault(kind, aim, hold, RANDOM), kind, hold


def _draw(config: HuntConfig, rng: random.Random, ctx: Context, busy: frozenset[str]) -> Spawned | None:
    """One episode (a move with probability ``move_share`` when one can be cast, else a random fault) among the
    kinds not in ``busy``, and the gap to the next draw."""
    if config.until_s is not None and ctx.time >= secs(config.until_s):
        return None
    after = max(1, secs(rng.uniform(0.2, 1.8) * config.mean_gap_s))
    free = [(k, t) for k, t in config._sorted if k not in busy]
    if not free:
        return Spawned(None, frozenset(), after)
    if config.moves and rng.random() < config.move_share:
        names = [n for n in config.moves if any(_cast(m, free, None) for m in MOVE_TABLE[n])]
        if names:
            variants = [m for m in MOVE_TABLE[rng.choice(names)] if _cast(m, free, None)]
            move = variants[rng.randrange(len(variants))]
            kinds = _cast(move, free, rng)
            assert kinds is not None
            steps = move.build(rng, kinds, config.kinds, config.election_timeout_s)
            return Spawned(then(*steps), frozenset(kinds), after)
    gen, kinds = _random_fault(config, rng, free)
    return Spawned(lift(gen), frozenset(kinds), after)
