"""The hunting schedule (harness.hunt) and its combinator (generator.spawn), on virtual time (generator.simulate):
density, overlap, one fault per kind at a time, every fault ended, leader aim weighted up, every move drawn, the
seed replays it, times scale with the election timeout."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from harness import generator as g
from harness.faults import Effect, FaultTraits
from harness.generator import Context, GeneratorError, Spawned, secs
from harness.hunt import MOVES, RANDOM, HuntConfig, hunt
from harness.protocols import Op

MS = 1_000_000


def aims(field: str, *names: str) -> dict[str, dict[str, Any]]:
    return {n: {field: n} for n in names}


TARGETED = ("leader", "one", "minority", "majority", "followers", "leader-and-majority")
# What nemesis/specs.py declares for the five nemeses with their default options, and one disk kind (weighed as one
# of the disk's six).
KINDS: dict[str, FaultTraits] = {
    "partition": FaultTraits(Effect.CUT, aims("shape", "leader", "one")),
    "kill": FaultTraits(Effect.CRASH, aims("target", *TARGETED)),
    "disk-slow": FaultTraits(Effect.SLOW, aims("target", *TARGETED), weight=1 / 6),
    "pause": FaultTraits(Effect.FREEZE, aims("target", "leader", "one")),
    "packet": FaultTraits(Effect.OTHER, aims("target", "leader", "one")),
    "clock": FaultTraits(Effect.OTHER, aims("target", "leader", "one")),
    "clock-rate": FaultTraits(Effect.LAG, aims("target", "leader", "one")),
}


@dataclass(frozen=True)
class Fault:
    kind: str
    move: str | None
    aim: Mapping[str, Any]
    start: int  # completion times, ns
    stop: int | None


def simulate(seed: int, *, kinds: Mapping[str, FaultTraits] = KINDS, et: float = 0.5, seconds: float = 60,
             until: bool = False, **kw: Any) -> list[Op]:
    """The completed nemesis ops of a hunt: cut at ``seconds`` (time_limit, as a run does), or with ``until`` no
    new episode after ``seconds`` and every running one finished. Each nemesis op takes 10 ms."""
    config = HuntConfig(kinds=kinds, election_timeout_s=et, until_s=seconds if until else None, **kw)
    schedule = hunt(config, seed=seed)
    gen = g.nemesis(schedule if until else g.time_limit(seconds, schedule))
    history = g.simulate(gen, Context.initial(1), complete=lambda op: ("info", 10 * MS))
    return [op for op in history if op.type == "info"]


def faults(ops: list[Op]) -> list[Fault]:
    """Start/stop pairs; asserts on the way that no kind ever has two faults at once."""
    open_: dict[str, Op] = {}
    out: list[Fault] = []
    for op in ops:
        kind = op.value["fault"]
        if op.f == "start":
            assert kind not in open_, f"two {kind} faults at once at {op.time / 1e9:.2f} s"
            open_[kind] = op
        else:
            start = open_.pop(kind)
            assert op.value.get("move") == start.value.get("move")
            out.append(Fault(kind, start.value.get("move"), _aim(start.value), start.time, op.time))
    out += [Fault(k, s.value.get("move"), _aim(s.value), s.time, None) for k, s in open_.items()]
    return sorted(out, key=lambda f: f.start)


def _aim(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in ("fault", "move")}


def aimed_at_leader(f: Fault) -> bool:
    return "leader" in f.aim.values()


def test_default_rate_holds_many_faults_a_minute_and_never_two_of_a_kind_at_once() -> None:
    for seed in range(10):
        fs = faults(simulate(seed))
        assert len(fs) >= 8, (seed, len(fs))
        assert all(f.start < secs(60) for f in fs)


def started_inside(fs: list[Fault]) -> list[tuple[Fault, list[Fault]]]:
    """Each fault with the faults of other kinds that were holding when it started."""
    return [(b, [a for a in fs if a.kind != b.kind and a.start < b.start and (a.stop is None or b.start < a.stop)])
            for b in fs]


def test_faults_of_different_kinds_overlap() -> None:
    pairs, starts, inside, by_chance = set(), 0, 0, 0
    for seed in range(10):
        for b, around in started_inside(faults(simulate(seed))):
            pairs |= {frozenset((a.kind, b.kind)) for a in around}
            starts, inside = starts + 1, inside + bool(around)
        plain = faults(simulate(seed, overlap_share=0.0))
        by_chance += sum(bool(around) for _, around in started_inside(plain))
    assert len(pairs) >= 5, pairs  # many combinations (partition with kill, pause with partition...), not one
    assert inside / starts >= 0.1, (inside, starts)
    assert by_chance < inside  # the overlaps come from the schedule's choice, not only from chance


def test_every_fault_ends_by_itself_within_a_bounded_hold() -> None:
    et = 0.5
    for seed in range(10):
        fs = faults(simulate(seed, et=et, until=True))
        assert fs and all(f.stop is not None for f in fs)
        # The longest hold is a lagging leader's clock: 24 timeouts of cut, then up to 2 more.
        assert max(f.stop - f.start for f in fs) <= secs(26 * et) + 40 * MS  # type: ignore[operator]
        assert max(f.stop - f.start for f in fs if f.move != "lagging-leader") <= secs(10 * et) + 20 * MS  # type: ignore[operator]
        assert min(f.stop - f.start for f in fs) >= secs(0.1 * et)  # type: ignore[operator]


def test_the_time_limit_cuts_the_schedule_and_leaves_the_rest_to_the_final_heal() -> None:
    ops = simulate(3, seconds=20)
    assert ops and all(op.time < secs(20) + 20 * MS for op in ops)


def test_leader_targeted_faults_are_weighted_up() -> None:
    fs = [f for seed in range(10) for f in faults(simulate(seed))]
    share = sum(aimed_at_leader(f) for f in fs) / len(fs)
    # A nemesis drawing its own target picks the leader 1 time in 5 (nemesis.targets.TARGET_SPECS).
    assert share > 0.4, share
    random_ones = [f for f in fs if f.move == RANDOM and f.aim]
    assert random_ones and all(aimed_at_leader(f) for f in random_ones)


def test_every_move_appears_over_a_few_seeds() -> None:
    moves = {f.move for seed in range(6) for f in faults(simulate(seed))}
    assert moves == {*MOVES, RANDOM}


def test_the_same_seed_gives_the_same_schedule() -> None:
    def schedule(seed: int) -> list[tuple[int, str, Any]]:
        return [(op.time, op.f, op.value) for op in simulate(seed)]

    assert schedule(5) == schedule(5)
    assert schedule(5) != schedule(6)


def test_times_scale_with_the_election_timeout() -> None:
    fast, slow = faults(simulate(2, et=0.25)), faults(simulate(2, et=1.0))
    first_fast, first_slow = fast[0], slow[0]
    assert (first_fast.kind, first_fast.move, first_fast.start) == (first_slow.kind, first_slow.move,
                                                                      first_slow.start)
    hold_fast = first_fast.stop - first_fast.start - 10 * MS  # type: ignore[operator]
    hold_slow = first_slow.stop - first_slow.start - 10 * MS  # type: ignore[operator]
    assert hold_slow == pytest.approx(4 * hold_fast, rel=1e-6)


def episodes(move: str, seeds: range, et: float = 0.5) -> list[list[Fault]]:
    """One episode of ``move`` per seed, whole: the first draw comes at 1 s, the next one not before 2 s, and with
    no new draw after 1.5 s the schedule holds exactly that episode."""
    out = []
    for seed in seeds:
        fs = faults(simulate(seed, et=et, seconds=1.5, until=True, moves=(move,), move_share=1.0))
        assert fs and {f.move for f in fs} == {move}, fs
        out.append(fs)
    return out


def hold(f: Fault) -> int:
    assert f.stop is not None
    return f.stop - f.start - 10 * MS  # the stop's own 10 ms


def test_the_moves_do_what_their_names_say() -> None:
    et = 0.5
    for ep in episodes("isolate-leader", range(5)):
        assert [(f.kind, f.aim) for f in ep] == [("partition", {"shape": "leader"})]
        assert secs(3 * et) <= hold(ep[0]) <= secs(10 * et)
    for ep in episodes("leader-pause", range(5)):
        assert [(f.kind, f.aim) for f in ep] == [("pause", {"target": "leader"})]
        assert secs(1.5 * et) <= hold(ep[0]) <= secs(4 * et)
    churns = episodes("leader-churn", range(8))
    assert {len(ep) for ep in churns} >= {2, 3} and all(2 <= len(ep) <= 4 for ep in churns)
    for ep in churns:
        assert all((f.kind, f.aim) == ("kill", {"target": "leader"}) for f in ep)
        assert all(secs(et) <= hold(f) <= secs(3 * et) for f in ep)  # long enough for a new leader
        assert all(b.start - a.stop <= secs(0.5 * et) + 20 * MS for a, b in zip(ep, ep[1:], strict=False))  # type: ignore[operator]
    for ep in episodes("flapping-partition", range(5)):
        assert 3 <= len(ep) <= 6 and {f.kind for f in ep} == {"partition"}
        assert all(hold(f) <= secs(1.5 * et) for f in ep)


def test_a_power_loss_slows_the_followers_disks_then_power_cuts_the_leader_and_a_majority_together() -> None:
    et = 0.5
    for ep in episodes("power-loss", range(8), et=et):
        slow, kill = ep
        assert (slow.kind, slow.aim) == ("disk-slow", {"target": "followers"})
        assert (kill.kind, kill.aim) == ("kill", {"target": "leader-and-majority"})
        # The crash comes while the disks are slow (their stop follows the kill's start), 0.2 to 1 timeout in.
        assert secs(0.2 * et) <= kill.start - slow.start - 10 * MS <= secs(et)
        assert slow.stop is not None and kill.start < slow.stop <= kill.start + 10 * MS
        assert secs(0.5 * et) <= kill.stop - slow.stop - 10 * MS <= secs(1.5 * et)  # type: ignore[operator]


def test_a_lagging_leader_is_cut_off_then_slowed_at_once_and_healed_before_its_clock() -> None:
    et = 0.5
    for ep in episodes("lagging-leader", range(8), et=et):
        cut, lag = ep
        assert (cut.kind, cut.aim) == ("partition", {"shape": "leader"})
        assert (lag.kind, lag.aim) == ("clock-rate", {"target": "leader"})
        assert lag.start == cut.start + 10 * MS  # no pause between: its CheckQuorum must not notice the cut first
        # The cut outlasts an op timeout's worth of election timeouts; the clock stays slow past the heal.
        assert secs(8 * et) <= cut.stop - lag.start - 10 * MS <= secs(24 * et)  # type: ignore[operator]
        assert secs(0.5 * et) <= lag.stop - cut.stop - 10 * MS <= secs(2 * et)  # type: ignore[operator]


def test_a_lagging_leader_needs_a_kind_that_slows_the_leaders_clock() -> None:
    without_lag = {k: t for k, t in KINDS.items() if t.effect is not Effect.LAG}
    drawn = {f.move for seed in range(4)
             for f in faults(simulate(seed, kinds=without_lag, seconds=10, moves=("lagging-leader",), move_share=1.0))}
    assert drawn == {RANDOM}


def test_a_power_loss_needs_a_slow_kind_and_a_crash_that_can_hit_the_leader_and_a_majority() -> None:
    def drawn(kinds: Mapping[str, FaultTraits]) -> set[str | None]:
        return {f.move for seed in range(4)
                for f in faults(simulate(seed, kinds=kinds, seconds=10, moves=("power-loss",), move_share=1.0))}

    without_slow = {k: t for k, t in KINDS.items() if t.effect is not Effect.SLOW}
    narrow_kill = {**KINDS, "kill": FaultTraits(Effect.CRASH, aims("target", "leader", "one"))}
    assert "power-loss" in drawn(KINDS)
    assert drawn(without_slow) == drawn(narrow_kill) == {RANDOM}


def test_kinds_are_drawn_by_weight() -> None:
    fs = [f for seed in range(10) for f in faults(simulate(seed, moves=()))]
    counts = {k: sum(f.kind == k for f in fs) for k in KINDS}
    # disk-slow weighs 1/6 of the others: drawn, but several times less often than any of them.
    assert 0 < counts["disk-slow"] * 3 < min(n for k, n in counts.items() if k != "disk-slow"), counts


def test_an_election_crash_kills_a_node_within_an_election_timeout_of_a_leader_kill_or_a_heal() -> None:
    et = 0.5
    seen = set()
    for first, second in episodes("election-crash", range(10)):
        assert (second.kind, second.aim) == ("kill", {"target": "one"})
        assert 0 <= second.start - first.stop <= secs(et) + 20 * MS  # type: ignore[operator]
        seen.add(first.kind)
        if first.kind == "kill":
            assert first.aim == {"target": "leader"} and hold(first) <= secs(0.5 * et)
    assert seen == {"kill", "partition"}  # both variants


def test_kinds_without_roles_or_aims_get_random_unaimed_faults_only() -> None:
    kinds = {"disk": FaultTraits(), "clock": FaultTraits(Effect.OTHER, aims("target", "one"))}
    fs = [f for seed in range(3) for f in faults(simulate(seed, kinds=kinds))]
    assert fs and {f.move for f in fs} == {RANDOM} and {f.kind for f in fs} == {"disk", "clock"}
    assert not any(f.aim for f in fs)  # no leader aim exists, and a random fault never asks for "one"


def test_a_move_is_drawn_only_when_its_roles_can_be_cast() -> None:
    # Only a crash that cannot aim at the leader: no churn, no leader kill; an election crash needs a cut too.
    kinds = {"kill": FaultTraits(Effect.CRASH, aims("target", "one"))}
    fs = [f for seed in range(5) for f in faults(simulate(seed, kinds=kinds, move_share=1.0))]
    assert fs and {f.move for f in fs} == {RANDOM}


def test_bad_configurations_are_refused() -> None:
    bad: list[dict[str, Any]] = [{"kinds": {}}, {"faults_per_minute": 0}, {"faults_per_minute": 1000},
                                 {"moves": ("dance",)}, {"election_timeout_s": 0}, {"move_share": 1.5}]
    for fields in bad:
        with pytest.raises(GeneratorError):
            HuntConfig(**{"kinds": KINDS, **fields})


def test_a_kind_weighs_more_than_nothing() -> None:
    for weight in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="weight"):
            FaultTraits(Effect.SLOW, weight=weight)


def test_a_denser_rate_draws_more_episodes() -> None:
    def count(rate: float) -> float:
        return statistics.mean(len(simulate(s, faults_per_minute=rate, moves=())) for s in range(5))

    assert count(30) > 1.8 * count(10)


# ------------------------------------------------------------------------------------------- spawn itself


def test_spawn_runs_each_drawn_generator_beside_the_others_and_passes_their_tags() -> None:
    seen_busy: list[frozenset[str]] = []

    def draw(rng: Any, ctx: Context, busy: frozenset[str]) -> Spawned | None:
        seen_busy.append(busy)
        if len(seen_busy) > 3:
            return None
        n = len(seen_busy)
        return Spawned(g.then({"f": "start", "value": n}, g.sleep(2.5), {"f": "stop", "value": n}),
                       frozenset({f"t{n}"}), secs(1))

    h = g.simulate(g.nemesis(g.spawn(draw, first_s=1)), Context.initial(1))
    inv = [(op.time // secs(0.5), op.f, op.value) for op in h if op.type == "invoke"]
    # Draws at 1, 2, 3 s (then none at 4 s): three overlapping start/stop pairs.
    assert inv == [(2, "start", 1), (4, "start", 2), (6, "start", 3), (7, "stop", 1), (9, "stop", 2),
                   (11, "stop", 3)]
    assert seen_busy == [frozenset(), {"t1"}, {"t1", "t2"}, {"t2", "t3"}]


def test_spawn_refuses_a_draw_that_would_never_advance() -> None:
    with pytest.raises(GeneratorError):
        Spawned(None, frozenset(), 0)
    with pytest.raises(GeneratorError):
        g.spawn(lambda rng, ctx, busy: None, first_s=-1)


def test_a_hunt_asked_the_same_question_gives_the_same_answer() -> None:
    gen = g.nemesis(hunt(HuntConfig(kinds=KINDS, election_timeout_s=0.5), seed=9))
    first = gen.op(Context.initial(1, time=secs(3)))
    assert first is not None and first[0] == g.Pending(secs(4)) and first[1] is not None  # a fifth of a 5 s gap
    due = Context.initial(1, time=secs(4))
    answer, again = first[1].op(due), first[1].op(due)
    assert answer is not None and answer == again
    x, nxt = answer
    assert isinstance(x, Op) and x.f == "start" and x.time == secs(4)
    assert nxt is not None and nxt.op(due) != answer  # the state it answered with has that draw behind it


# ------------------------------------------------------------------------------------- the engine's choice


class _LeaderDB:
    """A DB that names its leader (Primaries): the engine's schedule may aim at it."""

    async def leader(self, test: Any) -> str | None:
        return "n1"


class _TimedDB(_LeaderDB):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def election_timeout_s(self) -> float:
        return self.seconds


def _engine_faults(db: object, nemeses: tuple[str, ...] = ("kill", "pause"), **config: Any) -> list[Fault]:
    """The nemesis faults run.build_main_generator schedules for the fake workload with these nemeses' specs."""
    from pathlib import Path

    import harness_fake

    from harness import registry
    from harness.protocols import TestContext
    from harness.run import RunConfig, build_main_generator

    run = RunConfig(workload="fakeadd", nemeses=nemeses, time_limit=60, rate=10, **{"seed": 4, **config})
    test = TestContext(name="t", options=run.options(), hosts=[], backend=None, db=db, seed=4,  # type: ignore[arg-type]
                       store_dir=Path("."))
    specs = [registry.nemesis(n) for n in nemeses]
    workload = registry.Workload(name="w", client=harness_fake.WORKLOAD.client,
                                 generator=lambda options, rng: g.repeat({"f": "add", "value": 1}),
                                 checker=harness_fake.WORKLOAD.checker)
    gen = build_main_generator(run, workload, specs, run.options(), test)
    history = g.simulate(gen, Context.initial(2), complete=lambda op: ("info", 10 * MS), max_ops=100_000)
    return faults([op for op in history if op.process == g.NEMESIS and op.type == "info"])


def test_the_engine_hunts_by_default_timed_to_the_dbs_election_timeout() -> None:
    fast, slow, unknown = (_engine_faults(db) for db in (_TimedDB(0.25), _TimedDB(1.0), _LeaderDB()))
    assert len(fast) >= 8 and {f.kind for f in fast} == {"kill", "pause"}
    assert (fast[0].kind, fast[0].start) == (slow[0].kind, slow[0].start)
    assert slow[0].stop - slow[0].start - 10 * MS == pytest.approx(4 * (fast[0].stop - fast[0].start - 10 * MS))  # type: ignore[operator]
    assert [(f.kind, f.start, f.stop) for f in unknown] == [(f.kind, f.start, f.stop) for f in slow]  # 1 s
    cycle = _engine_faults(_TimedDB(0.25), schedule="cycle", nemesis_interval=10.0)
    assert [(f.start // secs(1), f.move) for f in cycle][:2] == [(10, None), (30, None)]


def test_the_hunt_draws_the_disk_faults_with_aims_and_the_cycle_keeps_its_own_disk_cycle() -> None:
    hunted = [f for seed in range(3) for f in _engine_faults(_TimedDB(0.5), ("kill", "disk"), seed=seed)]
    disk = [f for f in hunted if f.kind.startswith("disk-")]
    assert {f.kind for f in disk} >= {"disk-slow", "disk-pause", "disk-corrupt"}
    assert any(f.aim == {"target": "leader"} for f in disk)  # aimed like the other kinds
    assert all(f.aim.get("target") in (None, "leader", "one", "minority") for f in disk if f.kind == "disk-corrupt")
    assert len(disk) < 2 * sum(f.kind == "kill" for f in hunted)  # six kinds, weighed as about one
    cycle = _engine_faults(_TimedDB(0.5), ("kill", "disk"), schedule="cycle", nemesis_interval=10.0)
    assert sorted((f.start // secs(1), f.kind.startswith("disk-"), f.move) for f in cycle)[:4] == [
        (10, False, None), (10, True, None), (30, False, None), (30, True, None)]  # two cycles side by side


def test_the_hunt_draws_only_the_disk_faults_selected_and_aims_them_within_the_disk_targets() -> None:
    hunted = [f for seed in range(3) for f in _engine_faults(
        _TimedDB(0.5), ("kill", "disk"), seed=seed,
        extra={"disk_faults": ("slow", "eio"), "disk_targets": ("one", "minority")})]
    assert {f.kind for f in hunted} == {"kill", "disk-slow", "disk-eio"}
    assert all(f.aim.get("target") in (None, "one", "minority") for f in hunted if f.kind != "kill")
    assert "power-loss" not in {f.move for f in hunted}  # the slow disks cannot be aimed at the followers
