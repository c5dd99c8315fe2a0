"""One run of the lab, from nothing to a verdict and back to nothing: :func:`run_test`."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import importlib.metadata
import json
import logging
import os
import platform
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from harness import detection, registry
from harness import generator as gen
from harness.backends import FEATURES, make_backend
from harness.checking import run_checkers
from harness.composite import CompositeNemesis, NoopNemesis
from harness.converge import CONVERGE, HARNESS, observe_convergence
from harness.faults import without_leader_aims
from harness.hunt import DEFAULT_FAULT_RATE, MAX_FAULT_RATE, MOVES, HuntConfig, hunt
from harness.interpreter import Interpreter, Tally
from harness.labstate import default_prefix, work_root
from harness.monitor import STUCK_ELECTIONS, ClusterMonitor, LeaderWitness, StuckDetector
from harness.protocols import (
    DB,
    Backend,
    ClusterStatus,
    Describes,
    Metrics,
    Nemesis,
    Op,
    Primaries,
    Process,
    TestContext,
    Witness,
    election_timeout_s,
    log_files_of,
    prepare_hosts,
    recovery_bound_s,
    unprepare_hosts,
)
from harness.quiesce import quiesce
from harness.readiness import wait_ready
from harness.scrape import DEFAULT_INTERVAL_S, MetricsLog, MetricsScraper, file_sd_targets, panels_of
from harness.seeds import child_seed
from harness.store import HistoryWriter, JsonlWriter, RunDir
from harness.undo import UndoStack
from harness.witness import WitnessRecorder

log = logging.getLogger("harness.run")

PROMETHEUS_TARGETS = "prometheus-targets.json"  # file_sd target groups of a --monitor run (docs/lab.md)

SCHEDULES = ("hunt", "cycle")  # the engine's fault schedules: harness.hunt, or generator.nemesis_cycle
ALL_NEMESES = "all"


class ConfigError(ValueError):
    """The run was asked for something that does not exist or does not fit (bad arguments: exit code 254)."""


class HarnessError(RuntimeError):
    """The lab itself could not do its job (the DB not ready after start, a backend failure...): exit code 3."""


class ExitCode(enum.IntEnum):
    VALID = 0
    INVALID = 1
    UNKNOWN = 2
    HARNESS_FAILED = 3
    BAD_ARGUMENTS = 254


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """Everything a run needs. ``extra`` holds the options contributed by the workload, DB and nemeses."""

    workload: str
    nemeses: tuple[str, ...] = ()
    db: str | None = None
    backend: str = "netns"
    nodes: int = 5
    time_limit: float = 60.0
    concurrency: int = 10
    rate: float = 200.0
    seed: int = 0
    schedule: str = "hunt"
    nemesis_interval: float = 10.0
    fault_rate: float = DEFAULT_FAULT_RATE
    moves: tuple[str, ...] = MOVES
    op_timeout: float = 5.0
    final_time_limit: float = 30.0
    quiesce_timeout: float = 15.0
    setup_timeout: float = 30.0
    status_interval: float = 0.5
    monitor: bool = False  # scrape every node's metrics into metrics.jsonl during the run (harness.scrape)
    monitor_interval: float = DEFAULT_INTERVAL_S
    recovery_bound_s: float | None = None  # None: the DB's own (harness.protocols.recovery_bound_s)
    store: Path = Path("store")
    name: str | None = None
    prefix: str | None = None
    render: bool = True
    failpoints: tuple[str, ...] = ()  # bugs the DB plants in itself for this run (its FailpointCatalog)
    extra: Mapping[str, Any] = field(default_factory=dict)
    # the backend's own configuration (``ssh``: an SshConfig; docker: its host and base image); test.json records
    # it through Backend.describe
    backend_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = [(self.nodes >= 1, "--nodes must be >= 1"), (self.time_limit > 0, "--time-limit must be > 0"),
                  (self.concurrency >= 1, "--concurrency must be >= 1"), (self.rate >= 0, "--rate must be >= 0"),
                  (self.nemesis_interval > 0, "--nemesis-interval must be > 0"),
                  (self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}"),
                  (0 < self.fault_rate <= MAX_FAULT_RATE, f"--fault-rate must be in (0, {MAX_FAULT_RATE:g}]"),
                  (set(self.moves) <= set(MOVES), f"--moves must be among {', '.join(MOVES)}"),
                  (self.op_timeout > 0, "--op-timeout must be > 0"),
                  (self.final_time_limit >= 0, "--final-time-limit must be >= 0"),
                  (self.status_interval > 0, "--status-interval must be > 0"),
                  (self.monitor_interval > 0, "--monitor-interval must be > 0"),
                  (self.recovery_bound_s is None or self.recovery_bound_s > 0, "--recovery-bound-s must be > 0")]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    def options(self) -> dict[str, Any]:
        """The flat option mapping roles see (and test.json stores): the generic options plus ``extra``."""
        out = {k: v for k, v in asdict(self).items() if k not in ("extra", "backend_options")}
        out["nemeses"] = list(self.nemeses)
        out["failpoints"] = list(self.failpoints)
        out["moves"] = list(self.moves)
        out["store"] = str(self.store)
        out.update(self.extra)
        return out


@dataclass(slots=True)
class RunResult:
    exit_code: ExitCode
    valid: bool | str
    run_dir: Path | None
    results: dict[str, Any] | None
    tally: Tally
    error: str | None = None
    heal: dict[str, Any] | None = None


class ProgressSink(Protocol):
    """What the run tells a display: the phase, and (every half second) the running figures."""

    def phase(self, name: str) -> None: ...

    def update(self, *, elapsed: float, tally: Tally, leader: str | None) -> None: ...


class _NullProgress:
    def phase(self, name: str) -> None:
        return None

    def update(self, *, elapsed: float, tally: Tally, leader: str | None) -> None:
        return None


def resolve(config: RunConfig) -> tuple[registry.Workload, registry.DBSpec, list[registry.NemesisSpec]]:
    """Look the roles up in the registry; every unknown name, a DB that supplies no client for the workload
    (registry.client_for) or lacks a capability a nemesis needs (its ``db_needs``) is a ConfigError, raised before
    anything exists (the CLI calls this at argument time: exit 254)."""
    try:
        workload = registry.workload(config.workload)
        db_name = config.db or workload.db
        if db_name is None:
            dbs = registry.names(registry.Kind.DB)
            if len(dbs) != 1:
                raise ConfigError(f"workload {workload.name} names no DB and --db is not given "
                                  f"(available: {', '.join(dbs) or 'none'})")
            db_name = dbs[0]
        dbspec = registry.db(db_name)
        registry.client_for(dbspec, workload)  # a DB without a client for the workload: NoClientError, here
        nems = [registry.nemesis(n) for n in expand_nemeses(config.nemeses, config.backend)]
    except registry.RegistryError as e:
        raise ConfigError(str(e)) from None
    if config.failpoints:
        try:
            detection.select(dbspec.failpoints, config.failpoints, dbspec.name)
        except detection.CatalogError as e:
            raise ConfigError(str(e)) from None
    if ALL_NEMESES in config.nemeses:  # `all`: every nemesis this DB can be tested with
        nems = [spec for spec in nems if spec.name not in dbspec.refuses.get("nemesis", {})]
    refused = dbspec.refusal([spec.name for spec in nems], config.extra)
    if refused is not None:
        raise ConfigError(refused)
    have = FEATURES.get(config.backend, frozenset())
    for spec in nems:
        if not spec.needs <= have:
            raise ConfigError(f"nemesis {spec.name} needs {', '.join(sorted(spec.needs - have))}, which backend "
                              f"{config.backend} does not offer (it runs: {', '.join(runnable_nemeses(config.backend))})")
    _check_db_needs(dbspec, nems, config)
    seen: dict[str, str] = {}
    for spec in nems:
        for kind in spec.kinds:
            if kind in seen:
                raise ConfigError(f"fault kind {kind!r} is handled by both nemesis {seen[kind]} and {spec.name}")
            seen[kind] = spec.name
    return workload, dbspec, nems


def _check_db_needs(dbspec: registry.DBSpec, nems: list[registry.NemesisSpec], config: RunConfig) -> None:
    """ConfigError when a selected nemesis needs a capability (its ``db_needs``) the DB lacks: asked of a DB made
    with the run's options, which is then dropped (a DB's factory only builds an object; nothing exists yet)."""
    if not any(spec.db_needs for spec in nems):
        return
    db = dbspec.factory({**{o.name: o.default for o in dbspec.options}, **config.options()})
    for spec in nems:
        missing = registry.missing_capabilities(spec, db)
        if missing:
            raise ConfigError(f"nemesis {spec.name} needs a DB with {', '.join(missing)}, which db {dbspec.name} "
                              "does not offer")


def runnable_nemeses(backend: str) -> list[str]:
    """Every registered nemesis that can run on ``backend`` (its needs are among the backend's features), sorted.
    Entry points that fail to load are left out (harness run warns about them)."""
    have = FEATURES.get(backend, frozenset())
    return sorted(s.name for s in registry.all_specs(registry.Kind.NEMESIS) if s.needs <= have)


def expand_nemeses(names: tuple[str, ...], backend: str) -> list[str]:
    """The nemesis names a run selects: ``none`` dropped, ``all`` replaced by :func:`runnable_nemeses`, each once."""
    out: list[str] = []
    for name in names:
        if name == ALL_NEMESES:
            out += [n for n in runnable_nemeses(backend) if n not in out]
        elif name != "none" and name not in out:
            out.append(name)
    return out


def _versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": sys.version.split()[0], "kernel": platform.release()}
    try:
        out["raftkv-lab"] = importlib.metadata.version("raftkv-lab")
    except importlib.metadata.PackageNotFoundError:
        out["raftkv-lab"] = None
    try:
        root = Path(__file__).resolve().parent.parent
        out["git"] = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                    timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["git"] = None
    return out


def build_main_generator(config: RunConfig, workload: registry.Workload, nem_specs: list[registry.NemesisSpec],
                         options: Mapping[str, Any], test: TestContext) -> gen.Generator:
    """Client stream (workload generator, --rate, --time-limit) beside the nemesis stream: each nemesis's own
    schedule (``generator``; ``cycle`` too under ``--schedule cycle``), and for the others the engine's
    (``--schedule``): the hunting schedule (harness.hunt, ``--fault-rate`` episodes a minute, ``--moves``, times
    scaled to the DB's election timeout) or the cycle (a start every ``--nemesis-interval``, its stop one interval
    later)."""
    client_gen: gen.Generator = workload.generator(options, test.rng("workload"))
    if config.rate > 0:
        client_gen = gen.rate(config.rate, client_gen)
    client_gen = gen.time_limit(config.time_limit, client_gen)
    schedules: list[gen.Generator] = []
    engine_specs: list[registry.NemesisSpec] = []
    for spec in nem_specs:
        own = spec.generator or (spec.cycle if config.schedule == "cycle" else None)
        if own is not None:
            schedules.append(own(options, test.rng(f"nemesis.{spec.name}.schedule")))
        else:
            engine_specs.append(spec)
    if engine_specs:
        schedules.append(_engine_schedule(config, engine_specs, options, test))
    if not schedules:
        return gen.clients(client_gen)
    return gen.clients_and_nemesis(client_gen, gen.time_limit(config.time_limit, gen.any_of(*schedules)))


def _engine_schedule(config: RunConfig, specs: list[registry.NemesisSpec], options: Mapping[str, Any],
                     test: TestContext) -> gen.Generator:
    if config.schedule == "cycle":
        kinds = [k for spec in specs for k in spec.selected_kinds(options)]  # in the order given: a seed replays
        return gen.nemesis_cycle(kinds, config.nemesis_interval, seed=child_seed(config.seed, "nemesis.schedule"))
    traits = {kind: t for spec in specs for kind, t in spec.fault_traits(options).items()}
    if not isinstance(test.db, Primaries):
        traits = without_leader_aims(traits)  # its leader-aimed starts could only be skipped
    hunting = HuntConfig(kinds=traits, election_timeout_s=election_timeout_s(test.db),
                         faults_per_minute=config.fault_rate, moves=config.moves)
    log.info("hunting schedule: %g episodes a minute over %s, moves %s, election timeout %.3f s",
             hunting.faults_per_minute, ", ".join(sorted(traits)), ", ".join(hunting.moves) or "none",
             hunting.election_timeout_s)
    return hunt(hunting, seed=child_seed(config.seed, "nemesis.hunt"))


class _Run:
    """What one run has while :func:`run_test` drives it. Nothing here says what to undo: the run's UndoStack holds
    that (harness.undo), one step pushed per resource as it is acquired."""

    def __init__(self, config: RunConfig, progress: ProgressSink, defaults: Mapping[str, Any],
                 planted: Mapping[str, Any]) -> None:
        self.config = config
        self.progress = progress
        self.options = {**defaults, **config.options(), **planted}  # the failpoints' switches win
        self.tally = Tally()
        self.run_dir: RunDir | None = None
        self.backend: Backend | None = None
        self.test: TestContext | None = None
        self.nemesis: Nemesis = NoopNemesis()
        self.history: HistoryWriter | None = None
        self.monitor: ClusterMonitor | None = None
        self.stuck: StuckDetector | None = None
        self.leaders = LeaderWitness(record=lambda value: _record_observation(self, "leader", value))
        self.heal_result: dict[str, Any] | None = None
        self.origin = time.monotonic_ns()
        self.start_wall = datetime.now(UTC)
        self.log_handler: logging.Handler | None = None

    def phase(self, name: str) -> None:
        log.info("phase: %s", name)
        self.progress.phase(name)


async def run_test(config: RunConfig, *, progress: ProgressSink | None = None) -> RunResult:
    """Run one test and return its verdict. The phases, in order:

    1. resolve the workload, DB and nemeses in the registry, the workload's client from the DB, and the failpoints
       in the DB's catalog (a bad name fails here, before anything exists); the failpoints' options join the run's
       options; every nemesis's ``db_needs`` is checked against the DB's capabilities (ConfigError);
    2. create the run directory ``store/<test>/<timestamp>/`` and write test.json; harness.log starts;
    3. prepare hosts: the backend brings up ``nodes`` hosts (test.json is rewritten with their addresses);
    4. install and start the DB: the nemeses are made and those with PreparesHosts prepare (what the DB's daemons
       must start with, e.g. test.daemon_env, a disk layer under the data directory); DB.setup on every node, then
       Process.start; the cluster monitor starts polling ClusterStatus into cluster.jsonl (when the DB has it); then
       wait (``setup_timeout``) until the DB is ready (harness.readiness: its own Ready check, else its processes
       run);
    5. set up clients and nemesis: Nemesis.setup; with ``monitor``, the metrics scraper starts (harness.scrape:
       Metrics of every node each ``monitor_interval`` into metrics.jsonl, until the convergence observation);
    6. run the generator until the time limit: the workload's client stream (``--rate`` ops/s in total) beside the
       nemesis stream, every invoke and completion appended live to history.jsonl;
    7. heal every fault (on leaving phase 6, whichever way): Nemesis.heal (recorded as ``stop`` events of the active
       faults) and verify that every node runs;
    8. let the cluster quiesce (harness.quiesce; a DB without ClusterStatus: until it is ready again), the outcome
       recorded as a history event (process "harness", f "quiesce") for the recovery checker;
    9. run the final-read phase: the workload's final generator, bounded by ``final_time_limit``; then observe
       convergence (:func:`_observe_convergence`), recorded as one ``harness``/``converge`` event;
    10. tear down, by structure (harness.undo): every step was pushed when its resource was acquired, and they run
        in reverse on every path: the pollers stop, Nemesis.teardown, stop and collect (each node's metrics into
        ``<node>/metrics.txt``, Process.kill, its and the nemeses' LogFiles into ``<node>/``), DB.teardown,
        the nemeses' unprepare (a disk layer unmounts after the DB's teardown), the backend's teardown, and last
        the history is closed (flushed);
    11. check: the workload's checkers over history.jsonl as stored (the same path `harness analyze` takes);
    12. store results: results.json (the checker result plus ``heal``), and the ``latest`` links;
    13. render the report (reports.render.render_run) and the store's index.html when reports is importable.

    On an exception, Ctrl-C or SIGTERM (the caller cancels this task) the run leaves the phase it is in, which
    heals if faults may be active, and tears down (10); results.json then says ``"valid": "unknown"`` with the
    error, and the exit code is 3. Exit codes: 0 valid, 1 invalid, 2 unknown, 3 harness failed.
    """
    progress = progress or _NullProgress()
    workload, dbspec, nem_specs = resolve(config)  # 1
    specs: list[registry.Workload | registry.DBSpec | registry.NemesisSpec] = [workload, dbspec, *nem_specs]
    defaults = {o.name: o.default for spec in specs for o in spec.options}
    planted = dbspec.failpoints.options_for(config.failpoints) if config.failpoints and dbspec.failpoints else {}
    r = _Run(config, progress, defaults, planted)
    db = dbspec.factory(r.options)
    error: str | None = None
    interrupted = False
    result: RunResult | None = None
    try:
        await _run_phases(r, workload, dbspec, nem_specs, db)  # 2-10
        check_result = await _check(r, workload)  # 11
        result = _store_results(r, check_result, None, False)  # 12
        if config.render and r.run_dir is not None:
            r.phase("render the report")
            await _render(r.run_dir, config.store)  # 13
    except asyncio.CancelledError:
        interrupted = True
        error = "interrupted (Ctrl-C or SIGTERM)"
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        log.warning("run interrupted; healed and torn down")
    except Exception as e:  # noqa: BLE001 - any failure of the lab is reported, with its traceback in the log
        error = describe_error(e)
        log.exception("run failed")
    if error is not None or result is None:
        result = _store_results(r, None, error or "no check result", interrupted)
    if r.log_handler is not None:
        logging.getLogger("harness").removeHandler(r.log_handler)
        r.log_handler.close()
    return result


def _store_results(r: _Run, check_result: dict[str, Any] | None, error: str | None,
                   interrupted: bool) -> RunResult:
    """results.json (and the latest links) from a check result, or from the error that prevented one."""
    heal = r.heal_result
    if check_result is None:
        results: dict[str, Any] = {"valid": "unknown", "error": error, "heal": heal, "interrupted": interrupted}
        valid: bool | str = "unknown"
        code = ExitCode.HARNESS_FAILED
    else:
        results = {**check_result, "heal": heal}
        valid = check_result.get("valid", "unknown")
        code = exit_code_for(valid)
    results["run"] = {"ok": r.tally.ok, "fail": r.tally.fail, "info": r.tally.info, "by_f": r.tally.by_f,
                      "nemesis_events": r.tally.nemesis_events, "elapsed_s": (time.monotonic_ns() - r.origin) / 1e9}
    if r.run_dir is not None:
        r.run_dir.write_json("results.json", results)
        r.run_dir.link_latest()
    return RunResult(code, valid, r.run_dir.path if r.run_dir else None, results, r.tally, error, heal)


async def _run_phases(r: _Run, workload: registry.Workload, dbspec: registry.DBSpec,
                      nem_specs: list[registry.NemesisSpec], db: DB) -> None:
    """Phases 2-10 of :func:`run_test`: everything acquired here is released by the undo stack on leaving."""
    config = r.config
    async with UndoStack(on_unwind=lambda: r.phase("tear down")) as undo:
        test = _open_store(r, undo, workload, dbspec, nem_specs, db)  # 2
        await _prepare_hosts(r, undo, lambda: _write_test_json(r, workload, dbspec, nem_specs))  # 3
        await _start_db(r, undo, nem_specs)  # 4
        r.phase("set up clients and nemesis")  # 5
        undo.push("nemesis teardown", lambda: r.nemesis.teardown(test))
        await r.nemesis.setup(test)
        client = registry.client_for(dbspec, workload)
        assert r.history is not None
        interp = Interpreter(
            test, history=r.history, origin_ns=r.origin, concurrency=config.concurrency,
            client_factory=lambda: client(r.options), nemesis=r.nemesis if nem_specs else None,
            op_timeout=config.op_timeout, open_timeout=config.op_timeout, observers=[r.tally.observe])
        main_gen = build_main_generator(config, workload, nem_specs, r.options, test)
        final = workload.final_generator(r.options, test.rng("workload.final")) if workload.final_generator else None
        witness = _start_observers(r, undo)
        async with _healed_on_leaving(r):  # 7, whichever way 6 ends
            r.phase("run")  # 6
            await _with_stuck_detector(r, interp.run(main_gen))
        await _quiesce(r)  # 8
        if final is not None and config.final_time_limit > 0:  # 9
            r.phase("final reads")
            await interp.run(gen.time_limit(config.final_time_limit, gen.clients(final)), nemesis_thread=False)
        r.phase("convergence")
        await _observe_convergence(r)
        if witness is not None:
            # Every node runs again after the heal: what each kept (also from before a kill) is read once more.
            await witness.poll_once(final=True)
    # 10: the undo stack has run


def _open_store(r: _Run, undo: UndoStack, workload: registry.Workload, dbspec: registry.DBSpec,
                nem_specs: list[registry.NemesisSpec], db: DB) -> TestContext:
    """Phase 2: the run directory, harness.log, the history and cluster writers (closed last, when everything
    that records is done), the backend object (no hosts yet) and the TestContext; test.json."""
    config = r.config
    name = config.name or f"{workload.name}-{'+'.join(s.name for s in nem_specs) or 'none'}"
    r.run_dir = run = RunDir.create(config.store, name, r.start_wall)
    r.log_handler = logging.FileHandler(run.log_path)
    r.log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    r.log_handler.setLevel(logging.DEBUG)
    hlog = logging.getLogger("harness")
    hlog.addHandler(r.log_handler)
    if hlog.level == logging.NOTSET or hlog.level > logging.DEBUG:
        hlog.setLevel(logging.DEBUG)
    prefix = config.prefix or default_prefix()
    # Short: host paths under it must fit a unix socket's 107 bytes (the disk layer's control socket), and a test
    # named after every nemesis of `--nemesis all` does not. The store directory carries the name.
    work_dir = work_root(prefix) / f"{run.path.name}-{zlib.crc32(name.encode()) & 0xFFFF:04x}"
    r.backend = make_backend(config.backend, work_dir=work_dir, prefix=prefix, options=config.backend_options)
    # The bound the recovery checker holds the run to, in test.json's options so `harness analyze` uses it too.
    r.options["recovery_bound_s"] = recovery_bound_s(db, config.recovery_bound_s)
    r.test = test = TestContext(name=name, options=r.options, hosts=[], backend=r.backend, db=db, seed=config.seed,
                                store_dir=run.path)
    history = r.history = HistoryWriter(run.history_path)
    undo.push("close the history", _async(history.close))
    cluster = JsonlWriter(run.cluster_path)
    undo.push("close cluster.jsonl", _async(cluster.close))
    if isinstance(db, ClusterStatus):
        r.monitor = ClusterMonitor(test, cluster, interval=config.status_interval, on_poll=_poll_observers(r))
    _write_test_json(r, workload, dbspec, nem_specs)
    log.info("run %s seed %d -> %s", name, config.seed, run.path)
    return test


def _async(fn: Callable[[], object]) -> Callable[[], Awaitable[None]]:
    """A synchronous undo step as an async one."""
    async def step() -> None:
        fn()

    return step


async def _prepare_hosts(r: _Run, undo: UndoStack, rewrite_test_json: Callable[[], None]) -> None:
    """Phase 3: the hosts (their teardown pushed first: it is safe after a partial setup)."""
    assert r.backend is not None and r.test is not None
    r.phase("prepare hosts")
    undo.push("backend teardown", r.backend.teardown)
    t0 = time.monotonic()
    r.test.hosts = await r.backend.setup(r.config.nodes)
    log.info("%d hosts up in %.2f s", len(r.test.hosts), time.monotonic() - t0)
    rewrite_test_json()


async def _start_db(r: _Run, undo: UndoStack, nem_specs: list[registry.NemesisSpec]) -> None:
    """Phase 4: the nemeses prepare the hosts (undone after the DB's teardown: a disk layer outlives the data it
    holds), the DB is set up (torn down), started (stopped and collected: before its teardown), watched (the
    monitor, stopped before the collection) and waited for. HarnessError when it is not ready in time."""
    assert r.test is not None
    test, db = r.test, r.test.db
    r.phase("install and start the DB")
    nems = [(s.name, s.factory(r.options, test.rng(f"nemesis.{s.name}"))) for s in nem_specs]
    if nems:
        r.nemesis = CompositeNemesis(nems)
    undo.push("nemesis unprepare", lambda: unprepare_hosts(r.nemesis, test))
    await prepare_hosts(r.nemesis, test)
    undo.push("DB teardown", lambda: _each_node(test, db.teardown))
    await _each_node(test, db.setup)
    undo.push("stop and collect", lambda: _collect(r))
    if isinstance(db, Process):
        await _each_node(test, db.start)
    monitor = r.monitor
    if monitor is not None:
        _start_task(undo, "cluster monitor", monitor.run())
    if not await wait_ready(test, r.config.setup_timeout, interval=min(0.1, r.config.status_interval)):
        seen = f": {monitor.last}" if monitor is not None else ""
        raise HarnessError(f"the cluster did not come up within {r.config.setup_timeout} s{seen}")
    log.info("cluster up, leader %s", monitor.leader if monitor is not None else "(no cluster status)")


async def _each_node(test: TestContext, action: Callable[[TestContext, str], Awaitable[None]]) -> None:
    await asyncio.gather(*(action(test, n) for n in test.nodes))


def _start_task(undo: UndoStack, name: str, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Run ``work`` in a task until the undo stack cancels it (and awaits its end)."""
    task = asyncio.create_task(work, name=name)

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    undo.push(f"stop the {name}", stop)
    return task


def _poll_observers(r: _Run) -> Callable[[dict[str, dict[str, Any]]], None]:
    """What every round of status polls is shown to: the stuck detector (enabled during phase 6 only) and the
    leader witness."""
    assert r.test is not None
    r.stuck = stuck = StuckDetector(nodes=r.config.nodes,
                                    after_s=STUCK_ELECTIONS * election_timeout_s(r.test.db),
                                    activity=lambda: r.tally.invokes,
                                    record=lambda value: _record_observation(r, "stuck", value))
    stuck.enabled = False  # until the workload runs
    leaders = r.leaders

    def on_poll(polls: dict[str, dict[str, Any]]) -> None:
        stuck(polls)
        leaders(polls)

    return on_poll


def _start_observers(r: _Run, undo: UndoStack) -> WitnessRecorder | None:
    """Phase 5's watchers, each stopped by the undo stack: the progress ticker, the metrics scraper (with
    ``monitor``), the grey-box witness (a DB with Witness). Returns the witness, polled once more at the end."""
    assert r.test is not None
    test, config = r.test, r.config
    undo.push("last progress update", _async(lambda: _update_progress(r)))
    _start_task(undo, "progress", _tick(r))
    if config.monitor and isinstance(test.db, Metrics):
        _start_task(undo, "metrics scraper", _start_scraper(r, undo).run())
    elif config.monitor:
        log.warning("--monitor: %s has no Metrics capability; nothing to scrape", type(test.db).__name__)
    if not isinstance(test.db, Witness):
        return None
    witness = WitnessRecorder(test, test.db, leaders=r.leaders, interval=config.status_interval,
                              record=lambda f, value: _record_observation(r, f, value))
    _start_task(undo, "witness", witness.run())
    return witness


@contextlib.asynccontextmanager
async def _healed_on_leaving(r: _Run) -> AsyncIterator[None]:
    """Phase 7 on leaving phase 6, however it ends (a failure or a cancellation heals too, before the teardown)."""
    try:
        yield
    finally:
        r.phase("heal")
        await _heal(r)


async def _with_stuck_detector(r: _Run, work: Awaitable[None]) -> None:
    """Await ``work`` with the stuck detector on (it judges the workload's progress only while it runs)."""
    if r.stuck is not None:
        r.stuck.enabled = True
    try:
        await work
    finally:
        if r.stuck is not None:
            r.stuck.enabled = False


async def _quiesce(r: _Run) -> None:
    """Phase 8: harness.quiesce's observation, recorded for the recovery checker. A DB without ClusterStatus has
    no leader or commit index to agree on: the run waits (at most ``quiesce_timeout``) until it is ready again, and
    records nothing."""
    assert r.test is not None
    config = r.config
    r.phase("quiesce")
    if r.monitor is None:
        ready = await wait_ready(r.test, config.quiesce_timeout, interval=min(0.1, config.status_interval))
        log.info("quiesce: no cluster status to observe; ready again: %s", ready)
        return
    outcome = await quiesce(r.test, heal_time=time.monotonic_ns(), timeout=config.quiesce_timeout,
                            catch_up_s=r.options["recovery_bound_s"], interval=config.status_interval)
    _record_observation(r, "quiesce", outcome)  # evidence for the recovery checker, not a log line
    if not outcome["agreed"] or outcome["caught_up"] is False:
        log.warning("quiesce: agreed %s within %.1f s, caught up %s", outcome["agreed"], config.quiesce_timeout,
                    outcome["caught_up"])


async def _check(r: _Run, workload: registry.Workload) -> dict[str, Any]:
    """Phase 11: the workload's checkers over the history as stored (closed, so complete)."""
    assert r.run_dir is not None
    r.phase("check")
    test_json = r.run_dir.read_json("test.json")
    history = r.run_dir.history()
    checkers = workload.checker(r.options)
    t0 = time.monotonic()
    result = await in_daemon_thread(run_checkers, checkers, test_json, history)
    log.info("checked %d events in %.2f s: valid=%s", len(history), time.monotonic() - t0, result.get("valid"))
    return result


def _start_scraper(r: _Run, undo: UndoStack) -> MetricsScraper:
    """--monitor: metrics.jsonl with the DB's panels, and the Prometheus file_sd target lists (the run directory's
    record, and a live copy under ``<store>/_prometheus/`` that the teardown removes: docs/lab.md)."""
    assert r.run_dir is not None and r.test is not None
    config, test = r.config, r.test
    timeout = min(config.monitor_interval, 2.0)
    metrics = JsonlWriter(r.run_dir.metrics_path)
    undo.push("close metrics.jsonl", _async(metrics.close))
    metrics_log = MetricsLog(metrics, nodes=test.nodes, interval_s=config.monitor_interval, timeout_s=timeout,
                             panels=panels_of(test.db))
    targets = file_sd_targets(test, r.run_dir.path.name)
    if targets is not None:
        r.run_dir.write_json(PROMETHEUS_TARGETS, targets)
        live = Path(config.store) / "_prometheus"
        live.mkdir(parents=True, exist_ok=True)
        sd_file = live / f"{test.name}-{r.run_dir.path.name}.json"
        undo.push("live Prometheus targets", _async(lambda: sd_file.unlink(missing_ok=True)))
        sd_file.write_text(json.dumps(targets, indent=1) + "\n")
    log.info("monitor: scraping %d node(s) every %g s into %s", len(test.nodes), config.monitor_interval,
             r.run_dir.metrics_path.name)
    return MetricsScraper(test, metrics_log, interval=config.monitor_interval, timeout=timeout)


def _write_test_json(r: _Run, workload: registry.Workload, dbspec: registry.DBSpec,
                     nem_specs: list[registry.NemesisSpec]) -> None:
    assert r.run_dir is not None and r.test is not None
    backend_info: dict[str, Any] = {"name": r.config.backend}
    if isinstance(r.backend, Describes):
        backend_info.update(r.backend.describe())
    r.run_dir.write_json("test.json", {
        "name": r.test.name,
        "workload": workload.name,
        "db": dbspec.name,
        "nemeses": [s.name for s in nem_specs],
        "failpoints": list(r.config.failpoints),
        "seed": r.config.seed,
        "options": r.options,
        "hosts": [{"name": h.name, "address": h.address} for h in r.test.hosts],
        "nodes": r.test.nodes,
        "backend": backend_info,
        "versions": _versions(),
        "start_wall": r.start_wall.isoformat(),
        "start_time": r.origin,
        "argv": sys.argv,
    })


def _update_progress(r: _Run) -> None:
    leader = r.monitor.leader if r.monitor else None
    r.progress.update(elapsed=(time.monotonic_ns() - r.origin) / 1e9, tally=r.tally, leader=leader)


async def _tick(r: _Run) -> None:
    while True:
        _update_progress(r)
        await asyncio.sleep(0.5)


def _record_nemesis(r: _Run, f: str, typ: str, value: Any) -> None:
    assert r.history is not None
    op = r.history.record(Op(process="nemesis", type=typ, f=f, value=value,  # type: ignore[arg-type]
                             time=time.monotonic_ns()))
    r.tally.observe(op)


def _record_observation(r: _Run, f: str, value: dict[str, Any]) -> None:
    """One observation of the lab's own (docs/history.md: process "harness", a single info event)."""
    assert r.history is not None
    r.history.record(Op(process=HARNESS, type="info", f=f, value=value, time=time.monotonic_ns()))


async def _heal(r: _Run, timeout: float = 60.0) -> None:
    """End every fault and verify: the nemesis's heal, recorded as a stop of each active fault, then every node
    must run (a DB with Process). Sets r.heal_result = {"ok", "details": {"nemesis": ..., "running": {node:
    bool}}}."""
    assert r.test is not None and r.history is not None
    test = r.test
    active = sorted(r.tally.faults)
    for kind in active:
        _record_nemesis(r, "stop", "invoke", {"fault": kind, "heal": True})
        if kind != active[-1]:
            _record_nemesis(r, "stop", "info", {"fault": kind, "heal": True})
    try:
        async with asyncio.timeout(timeout):
            res = await r.nemesis.heal(test)
    except TimeoutError:
        res = {"ok": False, "details": f"heal did not finish within {timeout} s"}
    except Exception as e:  # noqa: BLE001 - recorded as a failed heal
        res = {"ok": False, "details": f"heal raised {type(e).__name__}: {e}"}
    if active:
        _record_nemesis(r, "stop", "info", {"fault": active[-1], "heal": True, "ok": bool(res.get("ok"))})
    running = await _running(test)
    ok = bool(res.get("ok")) and all(v is True for v in running.values())
    r.heal_result = {"ok": ok, "details": {"nemesis": res.get("details"), "running": running}}
    (log.info if ok else log.warning)("heal: %s", r.heal_result)


async def _running(test: TestContext) -> dict[str, Any]:
    """node -> whether its process runs (or the error asking it); {} for a DB without Process."""
    db = test.db
    if not isinstance(db, Process):
        return {}
    running: dict[str, Any] = {}
    for node in test.nodes:
        try:
            async with asyncio.timeout(10):
                running[node] = bool(await db.is_running(test, node))
        except Exception as e:  # noqa: BLE001
            running[node] = f"error: {type(e).__name__}: {e}"
    return running


async def _observe_convergence(r: _Run) -> None:
    """Phase 9, after the final reads: the convergence oracle's observation (harness.converge: poll every node's
    StateDigest until all running nodes report the same applied index, at most ``quiesce_timeout``), recorded as
    ONE history event of process "harness", f "converge" (a DB without the capability: the event says skipped).
    checker.ConvergenceChecker judges it, in the run and in `harness analyze`."""
    assert r.test is not None and r.history is not None
    value = await observe_convergence(r.test, timeout=r.config.quiesce_timeout, interval=r.config.status_interval)
    r.history.record(Op(process=HARNESS, type="info", f=CONVERGE, value=value, time=time.monotonic_ns()))
    log.info("convergence: %s", "skipped" if "skipped" in value else
             f"converged={value['converged']} after {value['polls']} poll(s)")


async def _collect(r: _Run) -> None:
    """Scrape metrics (Metrics), kill the nodes (Process), copy the DB's and the nemeses' LogFiles into <node>/.
    Best effort per node and file."""
    assert r.test is not None and r.run_dir is not None
    test, run, db = r.test, r.run_dir, r.test.db
    log.info("stop and collect")  # a step of the "tear down" phase

    async def one(node: str) -> None:
        d = run.node_dir(node)
        if isinstance(db, Metrics):
            try:
                async with asyncio.timeout(10):
                    (d / "metrics.txt").write_text(await db.metrics(test, node))
            except Exception as e:  # noqa: BLE001
                (d / "metrics.txt").write_text(f"# metrics scrape failed: {type(e).__name__}: {e}\n")
        if isinstance(db, Process):
            try:
                async with asyncio.timeout(10):
                    await db.kill(test, node)
            except Exception as e:  # noqa: BLE001
                log.warning("stopping %s failed: %s", node, e)
        host = test.host(node)
        for path in [*log_files_of(db, test, node), *log_files_of(r.nemesis, test, node)]:
            try:
                await host.download(path, d / Path(path).name)
            except Exception as e:  # noqa: BLE001
                log.warning("collecting %s:%s failed: %s", node, path, e)

    await asyncio.gather(*(one(n) for n in test.nodes))

async def _render(run_dir: RunDir, store: Path) -> None:
    """report.html of the run, then store/index.html (the report links to it as "all runs"). A failure of
    either is logged and never changes the verdict."""
    try:
        from reports.index import render_index
        from reports.render import render_run
    except ImportError:
        log.info("no report renderer (reports.render) yet; skipping report.html")
        return
    for what, fn, arg in (("report", render_run, run_dir.path), ("store index", render_index, store)):
        try:
            await in_daemon_thread(fn, arg)
        except Exception as e:  # noqa: BLE001 - a report failure never changes the verdict
            log.warning("%s rendering failed: %s: %s", what, type(e).__name__, e)


def analyze(run_path: Path) -> dict[str, Any]:
    """Re-check a stored run with its workload's checkers (registry lookup by test.json's workload and options);
    rewrites results.json, keeping the stored heal verification. Returns the new results."""
    run = RunDir.open(run_path)
    test_json = run.read_json("test.json")
    try:
        workload = registry.workload(test_json["workload"])
    except KeyError:
        raise ConfigError(f"{run.path}/test.json names no workload") from None
    except registry.RegistryError as e:
        raise ConfigError(str(e)) from None
    options = test_json.get("options", {})
    result = run_checkers(workload.checker(options), test_json, run.history())
    try:
        old = run.read_json("results.json")
    except Exception:  # noqa: BLE001 - a run killed before its results has none
        old = {}
    new = {**result, "heal": old.get("heal"), "run": old.get("run"), "analyzed_at": datetime.now(UTC).isoformat()}
    run.write_json("results.json", new)
    return new


async def in_daemon_thread(fn: Any, *args: Any) -> Any:
    """Run a CPU-bound function (a checker, the renderer) in a daemon thread and await it. Unlike
    asyncio.to_thread, a Ctrl-C/SIGTERM does not have to wait for it: the await is cancelled and the process may
    exit while the thread still runs (nothing it does needs cleaning up)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if not fut.done():
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def work() -> None:
        try:
            res: tuple[bool, Any] = (True, fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            res = (False, e)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(deliver, *res)

    threading.Thread(target=work, name=f"harness-{getattr(fn, '__name__', 'work')}", daemon=True).start()
    return await fut


def describe_error(e: BaseException) -> str:
    """One line for an error; a task group's wrapper is looked through to the failures inside it."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe_error(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def exit_code_for(valid: Any) -> ExitCode:
    """0 for exactly True, 1 for exactly False, 2 for anything else (unknown)."""
    if valid is True:
        return ExitCode.VALID
    if valid is False:
        return ExitCode.INVALID
    return ExitCode.UNKNOWN


def random_seed() -> int:
    return int.from_bytes(os.urandom(4), "big")
