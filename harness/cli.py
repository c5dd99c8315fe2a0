"""`harness`: the lab's command line.

    harness run      run a test: hosts up, DB up, workload + faults, heal, final reads, check, store, report
    harness campaign many runs (cells of nemeses x seeds) and one verdict over all of them
    harness clean    remove whatever a killed run left behind (namespaces, links, rules, processes of the prefix)
    harness analyze  re-check a stored run
    harness check    check a history file (the checker's own command line)
    harness report   render a stored run to report.html
    harness serve    serve the store's reports over HTTP

Exit codes: 0 valid, 1 invalid, 2 unknown, 3 the harness itself failed, 254 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from harness import detection, registry
from harness.backends import BACKENDS
from harness.backends.sshconf import add_ssh_options, ssh_config_from_args
from harness.detection import PlantedBug
from harness.hunt import DEFAULT_FAULT_RATE, MAX_FAULT_RATE, MOVES
from harness.registry import float_in, int_in
from harness.run import (
    ALL_NEMESES,
    SCHEDULES,
    ConfigError,
    ExitCode,
    RunConfig,
    random_seed,
    runnable_nemeses,
)

log = logging.getLogger("harness")

EPILOG = """exit codes: 0 valid, 1 invalid, 2 unknown, 3 the harness itself failed, 254 bad arguments.
environment: RAFTKV_LAB_PREFIX (default rkl) names everything a run creates (namespaces <prefix>-n1..,
bridge <prefix>-br, veths <prefix>-v1.., state in /run/raftkv-lab/<prefix>/), so concurrent runs use different
prefixes; RAFTKV_LAB_SUBNET (e.g. 10.77.5) overrides the hosts' /24."""


MAX_NODES = 64  # one lab on one machine; more is a typo, refused before any host exists
HOUR_S, WEEK_S = 3600.0, 7 * 24 * 3600.0
# Ctrl-C, kill, and a closed terminal all mean: stop, heal, tear down.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Parser(argparse.ArgumentParser):
    """argparse with exit code 254 on bad arguments (the lab's contract), instead of 2 (which means unknown)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(ExitCode.BAD_ARGUMENTS)


def _fault_rate(s: str) -> float:
    v = float(s)
    if not 0 < v <= MAX_FAULT_RATE:
        raise argparse.ArgumentTypeError(f"must be in (0, {MAX_FAULT_RATE:g}] faults a minute, got {s}")
    return v


def _moves(s: str) -> tuple[str, ...]:
    if s.strip() == "none":
        return ()
    names = tuple(dict.fromkeys(n.strip() for n in s.split(",") if n.strip()))
    unknown = [n for n in names if n not in MOVES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{s!r}: expected none or a comma-separated list of {', '.join(MOVES)}")
    return names


def _schedule_options(args: argparse.Namespace) -> dict[str, Any]:
    """The schedule's fields of a RunConfig; a knob of the other schedule is a mistake said out loud (ConfigError)."""
    wrong = [f"{flag} applies to --schedule {owner}, not {args.schedule}"
             for flag, value, owner in (("--nemesis-interval", args.nemesis_interval, "cycle"),
                                        ("--fault-rate", args.fault_rate, "hunt"), ("--moves", args.moves, "hunt"))
             if value is not None and owner != args.schedule]
    if wrong:
        raise ConfigError("; ".join(wrong))
    out: dict[str, Any] = {"schedule": args.schedule}
    for name in ("nemesis_interval", "fault_rate", "moves"):
        if getattr(args, name) is not None:
            out[name] = getattr(args, name)
    return out


def _names(s: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in s.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("empty list")
    return names


def _prefix(s: str) -> str:
    """--prefix, checked at argument time: a bad one would otherwise fail every run of a campaign one by one."""
    from harness.labstate import PrefixError, check_prefix

    try:
        return check_prefix(s)
    except PrefixError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _docker_host(s: str) -> str:
    if not s.startswith(("unix:///", "tcp://", "ssh://")) or s.endswith("://"):
        raise argparse.ArgumentTypeError(f"{s!r} is not a Docker daemon address (unix:///PATH, tcp://HOST:PORT or "
                                         "ssh://USER@HOST)")
    return s


def _image_name(s: str) -> str:
    if not s or any(c.isspace() for c in s) or s.startswith(("-", ":")):
        raise argparse.ArgumentTypeError(f"{s!r} is not an image name (NAME[:TAG])")
    return s


GENERIC_DESTS = {"workload", "nemesis", "failpoints", "db", "backend", "nodes", "time_limit", "concurrency", "rate",
                 "seed", "schedule", "nemesis_interval", "fault_rate", "moves", "op_timeout", "final_time_limit",
                 "quiesce_timeout", "setup_timeout", "status_interval", "monitor", "monitor_interval",
                 "recovery_bound_s", "store", "name", "prefix", "docker_host", "docker_base_image", "no_report",
                 "verbose", "cmd"}


def _add_plugin_options(p: argparse.ArgumentParser) -> list[str]:
    """Add every registered workload's, DB's and nemesis's options; return their dests."""
    dests: dict[str, registry.Option] = {}
    for kind, label in ((registry.Kind.WORKLOAD, "workload"), (registry.Kind.DB, "db"),
                        (registry.Kind.NEMESIS, "nemesis")):
        for spec in registry.all_specs(kind):
            opts = [o for o in spec.options if o.name not in dests]
            clash = [o for o in spec.options if o.name in dests and
                     (dests[o.name].type, dests[o.name].default) != (o.type, o.default)]
            for o in clash:
                log.warning("%s %s redeclares %s differently; the first declaration wins", label, spec.name, o.flag)
            if not opts:
                continue
            group = p.add_argument_group(f"{label} {spec.name}", spec.description or None)
            for o in opts:
                if o.name in GENERIC_DESTS:
                    log.warning("%s %s declares %s, which the harness owns; ignored", label, spec.name, o.flag)
                    continue
                kwargs: dict[str, Any] = {"dest": o.name, "default": o.default, "help": o.help}
                if o.action:
                    kwargs["action"] = o.action
                else:
                    kwargs["type"] = o.type
                    if o.choices is not None:
                        kwargs["choices"] = list(o.choices)
                group.add_argument(o.flag, **kwargs)
                dests[o.name] = o
    return list(dests)


def _add_run_options(p: argparse.ArgumentParser, *, campaign: bool) -> None:
    """The options of a run (``harness run``), shared by ``harness campaign``, whose --nemesis names cells."""
    workloads = registry.names(registry.Kind.WORKLOAD)
    nemeses = registry.names(registry.Kind.NEMESIS)
    p.add_argument("--workload", "-w", default="register" if "register" in workloads or not workloads
                     else workloads[0], help=f"the workload (registered: {', '.join(workloads) or 'none'})")
    if campaign:
        p.add_argument("--nemesis", "-n", type=_names, action="append", default=None, dest="nemesis",
                       help="a cell: comma-separated faults run together, all (every nemesis that can run on the "
                            "backend) or none; repeat for more cells (default: all first, then each nemesis that "
                            f"can run alone; registered: {', '.join(nemeses) or 'none'})")
    else:
        p.add_argument("--nemesis", "-n", type=_names, default=("none",),
                       help="comma-separated faults to inject, all (every registered nemesis that can run on the "
                            f"backend), or none (registered: {', '.join(nemeses) or 'none'})")
    p.add_argument("--failpoints", type=_names, default=(),
                   help=("planted bugs: 'all' or a comma-separated list of the DB's failpoints; each one's cell runs "
                         "--runs-per-cell seeds and stops at its first detection, beside --control-runs clean runs, "
                         "and the campaign writes its detection table" if campaign else
                         "switch on the DB's planted bugs (comma-separated failpoint names) for this run"))
    p.add_argument("--db", default=None, help=("the systems under test, comma-separated: every cell runs against "
                                               "each, with the same seeds, side by side on the campaign page "
                                               if campaign else "the system under test ") +
                   f"(default: the workload's; registered: {', '.join(registry.names(registry.Kind.DB)) or 'none'})")
    p.add_argument("--backend", choices=BACKENDS, default="netns", help="how hosts are made: netns (default; network namespaces on a bridge, needs root), local "
                          "(processes on 127.77.x.y loopback addresses: no root, no network faults), ssh "
                          "(machines reached over SSH: --hosts or --hosts-file; README) or docker (one container per "
                          "node: needs a Docker daemon, scripts/docker-setup starts the lab's own)")
    p.add_argument("--docker-host", type=_docker_host, default=None,
                   help="with --backend docker: the daemon's address, unix:///PATH or tcp://HOST:PORT (default "
                        "$DOCKER_HOST, else the lab's own socket /run/raftkv-lab-docker/docker.sock if it exists)")
    p.add_argument("--docker-base-image", type=_image_name, default=None,
                   help="with --backend docker: the base image the node image is built on (default "
                        "raftkv-lab-base:bookworm, made by scripts/docker-setup; any Debian-like image with python3 "
                        "or apt)")
    p.add_argument("--nodes", type=int_in(1, MAX_NODES), default=None,
                   help="number of hosts/nodes (default 5; with --backend ssh, the number of hosts given)")
    p.add_argument("--time-limit", type=float_in(0, WEEK_S, low_open=True), default=60.0, help="seconds of workload (default 60)")
    p.add_argument("--concurrency", "-c", type=int_in(1, 4096), default=10,
                     help="client workers, one op in flight each (default 10)")
    p.add_argument("--rate", type=float_in(0, 1e6), default=200.0,
                     help="total client ops/s over all workers; 0 = as fast as they go (default 200)")
    p.add_argument("--seed", type=int, default=None,
                   help=("the campaign's seed: every run's seed derives from it (default: random, printed)" if campaign
                         else "seed of the generator's and nemeses' choices (default: random, printed and stored)"))
    p.add_argument("--schedule", choices=SCHEDULES, default="hunt",
                   help="how faults are scheduled: hunt (default: several overlapping faults a minute, aimed at the "
                        "leader more often than not, and named moves, timed to the DB's election timeout; "
                        "docs/lab.md) or cycle (one fault at a time: start, --nemesis-interval, stop, repeat)")
    p.add_argument("--nemesis-interval", type=float_in(0, HOUR_S, low_open=True), default=None,
                   help="cycle only: seconds between a fault's start and stop, and its stop and the next start "
                        "(default 10)")
    p.add_argument("--fault-rate", type=_fault_rate, default=None,
                   help=f"hunt only: episodes (a random fault or a move) per minute, on average (default "
                        f"{DEFAULT_FAULT_RATE:g}; at most {MAX_FAULT_RATE:g})")
    p.add_argument("--moves", type=_moves, default=None,
                   help=f"hunt only: the named moves it may draw, comma-separated, or none (default all: "
                        f"{','.join(MOVES)})")
    p.add_argument("--op-timeout", type=float_in(0, HOUR_S, low_open=True), default=5.0,
                     help="seconds before a client op is recorded as info/timeout (default 5)")
    p.add_argument("--final-time-limit", type=float_in(0, HOUR_S), default=30.0,
                     help="bound on the final-read phase, seconds (default 30)")
    p.add_argument("--quiesce-timeout", type=float_in(0, HOUR_S), default=15.0,
                     help="after healing, wait at most this long for the nodes to agree on a leader (default 15)")
    p.add_argument("--recovery-bound-s", type=float_in(0, HOUR_S, low_open=True), default=None,
                   help="after every heal the cluster must serve a write and a read, and every running node catch "
                        "up, within this many seconds, else the run is invalid (liveness) (default: the DB's own, "
                        "a few election timeouts plus reconnects; test.json records the one used)")
    p.add_argument("--setup-timeout", type=float_in(0, HOUR_S, low_open=True), default=30.0,
                     help="wait at most this long for the started cluster to agree on a leader (default 30)")
    p.add_argument("--status-interval", type=float_in(0, 60, low_open=True), default=0.5,
                     help="seconds between node status polls into cluster.jsonl (default 0.5)")
    p.add_argument("--monitor", action="store_true",
                   help="scrape every node's metrics during the run into metrics.jsonl (the report plots them on "
                        "the faults' time axis; docs/lab.md: watching a run live with Prometheus)")
    p.add_argument("--monitor-interval", type=float_in(0, 60, low_open=True), default=1.0,
                   help="with --monitor: seconds between two scrapes of a node (default 1)")
    p.add_argument("--store", type=Path, default=Path("store"), help="store directory (default ./store)")
    p.add_argument("--name", default=None, help="test name in the store (default <workload>-<nemeses>)")
    p.add_argument("--prefix", type=_prefix, default=None, help="lab prefix (default $RAFTKV_LAB_PREFIX or rkl)")
    p.add_argument("--no-report", action="store_true", help="do not render report.html")
    p.add_argument("--verbose", "-v", action="store_true", help="log the controller's INFO lines to stderr")
    add_ssh_options(p)


def build_parser() -> tuple[Parser, list[str]]:
    parser = Parser(prog="harness", description="The raftkv lab: Jepsen-style fault injection on a local cluster.",
                    epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=Parser)

    run = sub.add_parser("run", help="run a test end to end and print its verdict",
                         description="Bring up the hosts, start the DB, run the workload while the nemeses inject "
                                     "faults, heal, run final reads, check the history, store the run, render "
                                     "its report, tear everything down.",
                         epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_run_options(run, campaign=False)
    plugin_dests = _add_plugin_options(run)

    campaign = sub.add_parser(
        "campaign", help="many runs, one after another: cells of nemeses x seeds, one verdict over all",
        description="Run every cell (--nemesis, repeatable) --runs-per-cell times, each run a whole `harness run` "
                    "with its own seed derived from --seed, stored and reported as usual; write "
                    "store/campaigns/<time>/campaign.json and re-render store/index.html. Exit code: 1 if any run "
                    "was invalid, else 3 if any run failed as a harness (or the campaign was interrupted), else 2 "
                    "if any verdict was unknown, else 0.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_run_options(campaign, campaign=True)
    campaign.add_argument("--runs-per-cell", type=int_in(1, 100_000), default=1, help="seeds per cell (default 1)")
    campaign.add_argument("--main-runs", type=int_in(1, 100_000), default=None,
                          help="seeds of the first cell, the main one (default --runs-per-cell)")
    campaign.add_argument("--stop-on-invalid", action="store_true", help="stop after the first invalid run")
    campaign.add_argument("--control-runs", type=int_in(0, 100_000), default=1,
                          help="with --failpoints: clean runs per cell that must all be valid (default 1)")
    campaign.add_argument("--budget-minutes", type=float_in(0, WEEK_S / 60, low_open=True), default=None,
                          help="start no new run after this many minutes (default: run them all)")
    _add_plugin_options(campaign)

    clean = sub.add_parser("clean", help="remove what a killed run left behind (only things of the prefix)",
                           description="Kill the processes a run started (recorded PIDs and anything inside the "
                                       "prefix's namespaces), delete its veths, bridge and namespaces, its "
                                       "iptables chains, nft tables and cgroups named <prefix>-* or <prefix>_*, "
                                       "and its work directories. Touches nothing else.")
    clean.add_argument("--prefix", type=_prefix, default=None,
                       help="lab prefix (default $RAFTKV_LAB_PREFIX or rkl)")
    clean.add_argument("--force", action="store_true", help="clean even while a live controller holds the prefix")
    clean.add_argument("--docker-host", type=_docker_host, default=None,
                       help="with --backend docker: the daemon's address (default as for harness run)")
    clean.add_argument("--all", action="store_true",
                       help="every prefix a run has used here (state in /run/raftkv-lab/), skipping live ones")
    clean.add_argument("--backend", choices=BACKENDS, default="netns",
                       help="ssh: clean the prefix's things on the hosts given (--hosts/--hosts-file) as well; docker: "
                            "remove the prefix's containers and network (labelled org.raftkv-lab.prefix) on the "
                            "Docker host instead (default netns, which covers local too)")
    clean.add_argument("--purge-install", action="store_true",
                       help="ssh: also remove the installed project (<dir>/install) from the hosts")
    add_ssh_options(clean)

    analyze = sub.add_parser("analyze", help="re-check a stored run (rewrites its results.json)")
    analyze.add_argument("run_dir", type=Path, metavar="DIR", help="a run directory (store/<test>/<time>)")
    analyze.add_argument("--json", action="store_true", help="print the result as JSON")

    sub.add_parser("check", help="check a history file: harness check HISTORY --model MODEL [--timeout S] [--json]",
                   add_help=False)

    report = sub.add_parser("report", help="render a stored run to report.html")
    report.add_argument("run_dir", type=Path, metavar="DIR")

    serve = sub.add_parser("serve", help="serve the store's reports over HTTP (127.0.0.1)")
    serve.add_argument("--port", type=int_in(1, 65535), default=8080)
    serve.add_argument("--store", type=Path, default=Path("store"))
    return parser, plugin_dests


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "check":
        from checker.cli import main as check_main

        return check_main(args_list[1:])
    parser, plugin_dests = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as e:  # --help exits 0; errors exit 254 (Parser.error)
        return int(e.code) if isinstance(e.code, int) else ExitCode.BAD_ARGUMENTS
    if args.cmd is None:
        parser.print_help(sys.stderr)
        return ExitCode.BAD_ARGUMENTS
    if args.cmd == "run":
        return _cmd_run(args, plugin_dests)
    if args.cmd == "campaign":
        return _cmd_campaign(args, plugin_dests)
    if args.cmd == "clean":
        return _cmd_clean(args)
    if args.cmd == "analyze":
        return _cmd_analyze(args)
    if args.cmd == "report":
        return _cmd_report(args)
    if args.cmd == "serve":
        return _cmd_serve(args)
    return ExitCode.BAD_ARGUMENTS  # pragma: no cover - argparse restricts cmd


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at each record, so lines go above rich's live display (which swaps
    sys.stderr while it runs) instead of through it."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


@contextlib.contextmanager
def _console_logging(verbose: bool) -> Iterator[None]:
    """The controller's warnings (and with --verbose its INFO lines) on stderr while the block runs."""
    h = _CurrentStderr()
    h.setFormatter(logging.Formatter("harness: %(levelname)s %(message)s"))
    h.setLevel(logging.INFO if verbose else logging.WARNING)
    log.addHandler(h)
    log.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        log.removeHandler(h)


def _backend_options(args: argparse.Namespace, ssh: Any) -> dict[str, Any]:
    """The chosen backend's own configuration (harness.backends.make_backend's ``options``)."""
    if ssh is not None:
        return {"ssh": ssh}
    if args.backend == "docker":
        return {"docker_host": args.docker_host, "docker_base_image": args.docker_base_image}
    return {}


def _config(args: argparse.Namespace, plugin_dests: list[str], nemeses: Sequence[str], seed: int) -> RunConfig:
    """A run's configuration from the parsed options (ConfigError on a bad one)."""
    from harness.run import resolve

    try:
        ssh = ssh_config_from_args(args)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    nodes = args.nodes or (len(ssh.hosts) if ssh else 5)
    config = RunConfig(
        workload=args.workload, nemeses=tuple(n for n in nemeses if n != "none"), db=args.db,
        backend=args.backend, nodes=nodes, time_limit=args.time_limit, concurrency=args.concurrency,
        rate=args.rate, seed=seed, **_schedule_options(args), op_timeout=args.op_timeout,
        final_time_limit=args.final_time_limit, quiesce_timeout=args.quiesce_timeout,
        setup_timeout=args.setup_timeout, status_interval=args.status_interval,
        monitor=args.monitor, monitor_interval=args.monitor_interval,
        recovery_bound_s=args.recovery_bound_s, store=args.store,
        name=args.name, prefix=args.prefix, render=not args.no_report,
        failpoints=() if args.cmd == "campaign" else tuple(args.failpoints),
        extra={d: getattr(args, d) for d in plugin_dests}, backend_options=_backend_options(args, ssh))
    if ssh and nodes != len(ssh.hosts):
        raise ConfigError(f"--nodes {nodes} but {len(ssh.hosts)} hosts were given (--hosts/--hosts-file)")
    resolve(config)  # unknown workload/DB/nemesis names fail here, before anything is created
    if config.prefix is None:  # $RAFTKV_LAB_PREFIX, checked as --prefix is
        from harness.labstate import PrefixError, default_prefix

        try:
            default_prefix()
        except PrefixError as e:
            raise ConfigError(str(e)) from None
    return config


def _prerequisites(config: RunConfig, cmd: str) -> int | None:
    """None when the backend's prerequisites are there; else the exit code, after saying what is missing."""
    if config.backend == "netns":
        from harness.backends.netns import PrerequisiteError, check_prerequisites

        try:
            check_prerequisites()
        except PrerequisiteError as e:
            print(f"harness {cmd}: {e}", file=sys.stderr)
            return ExitCode.HARNESS_FAILED
    if config.backend == "docker":
        from harness.backends.dockerhost import DockerBackendError, check_docker

        try:
            check_docker(config.backend_options)
        except DockerBackendError as e:
            print(f"harness {cmd}: {e}", file=sys.stderr)
            return ExitCode.HARNESS_FAILED
    return None


def _cmd_run(args: argparse.Namespace, plugin_dests: list[str]) -> int:
    seed = args.seed if args.seed is not None else random_seed()
    try:
        config = _config(args, plugin_dests, args.nemesis, seed)
    except ConfigError as e:
        print(f"harness run: error: {e}", file=sys.stderr)
        return ExitCode.BAD_ARGUMENTS
    missing = _prerequisites(config, "run")
    if missing is not None:
        return missing
    with _console_logging(args.verbose):
        return _run_with_progress(config, seed)


def campaign_cells(args: argparse.Namespace) -> list[tuple[str, ...]]:
    """The cells a campaign runs: its --nemesis options, else ``all`` (the main cell) then each nemesis that can
    run on the backend alone."""
    if args.nemesis:
        return [tuple(c) for c in args.nemesis]
    return [(ALL_NEMESES,), *[(n,) for n in runnable_nemeses(args.backend)]]


def _cmd_campaign(args: argparse.Namespace, plugin_dests: list[str]) -> int:
    from harness.campaign import plan, plan_failpoints

    seed = args.seed if args.seed is not None else random_seed()
    cells = campaign_cells(args)
    bugs: list[PlantedBug] = []
    dbs = [d for d in (args.db or "").split(",") if d] or [None]  # --db a,b: the same cells against each
    try:
        configs = []
        for db in dbs:
            per_db = argparse.Namespace(**{**vars(args), "db": db})
            base = _config(per_db, plugin_dests, (), seed)
            if args.failpoints:
                bugs = _planted(base, args.failpoints)
                configs += plan_failpoints(base, bugs, cells, args.runs_per_cell, seed, args.control_runs)
            else:
                configs += plan(base, cells, args.runs_per_cell, seed, main_runs=args.main_runs)
            for cell in cells:
                _config(per_db, plugin_dests, cell, seed)  # every cell's nemeses exist and the DB takes them
    except (ConfigError, ValueError) as e:
        print(f"harness campaign: error: {e}", file=sys.stderr)
        return ExitCode.BAD_ARGUMENTS
    missing = _prerequisites(base, "campaign")
    if missing is not None:
        return missing
    with _console_logging(args.verbose):
        return _campaign_with_progress(configs, args, seed, bugs)


def _planted(base: RunConfig, spec: Sequence[str]) -> list[PlantedBug]:
    """The bugs ``--failpoints`` names in the DB's catalog (ConfigError for a DB without one or an unknown name)."""
    from harness.run import resolve

    _, dbspec, _ = resolve(base)
    try:
        return detection.select(dbspec.failpoints, list(spec), dbspec.name)
    except detection.CatalogError as e:
        raise ConfigError(str(e)) from None


def _campaign_with_progress(configs: list[RunConfig], args: argparse.Namespace, seed: int,
                            bugs: Sequence[PlantedBug]) -> int:
    """Each run with its live display and a line when it ends; SIGINT/SIGTERM end the current run (healed and torn
    down) and the campaign."""
    from harness.campaign import CampaignRun, run_campaign
    from harness.progress import ConsoleProgress

    print(f"campaign: {len(configs)} runs, seed {seed}", file=sys.stderr)
    displays: list[ConsoleProgress] = []

    def progress() -> ConsoleProgress:
        while displays:
            displays.pop().close()
        displays.append(ConsoleProgress())
        return displays[-1]

    def on_run(i: int, run: CampaignRun) -> None:
        while displays:
            displays.pop().close()
        verdict = "VALID" if run.valid is True else "INVALID" if run.valid is False else "UNKNOWN"
        if run.valid is False:
            verdict += " (" + ", ".join(f"{k} {n}" for k, n in (("safety", run.safety), ("liveness", run.liveness))
                                        if n) + ")"
        print(f"[{i + 1}/{len(configs)}] {f'{run.db}: ' if run.db else ''}{run.cell} seed {run.seed}: {verdict} (exit {run.exit_code}); ok {run.ok}, "
              f"fail {run.fail}, info {run.info}; {run.wall_s:.0f} s; {run.run_dir or run.error}", flush=True)

    def say(text: str) -> None:
        print(f"campaign: {text}", file=sys.stderr, flush=True)

    async def main_async() -> Any:
        return await _stopped_by_signals(
            run_campaign(configs, store=args.store, seed=seed, stop_on_invalid=args.stop_on_invalid,
                         stop_cell_on_invalid=bool(bugs),
                         budget_s=args.budget_minutes * 60 if args.budget_minutes else None, on_run=on_run,
                         progress=progress),
            say, "ending the current run (healing and tearing down), then stopping")

    try:
        campaign = _event_loop_runner()(main_async())
    except (asyncio.CancelledError, KeyboardInterrupt):
        print("harness campaign: interrupted between runs", file=sys.stderr)
        return ExitCode.HARNESS_FAILED
    finally:
        while displays:
            displays.pop().close()
    counts = {v: sum(1 for r in campaign.runs if r.exit_code == v) for v in ExitCode}
    safety = sum(1 for r in campaign.runs if r.safety)
    liveness = sum(1 for r in campaign.runs if r.liveness)
    print(f"campaign: {len(campaign.runs)} of {campaign.planned} runs: {counts[ExitCode.VALID]} valid, "
          f"{counts[ExitCode.INVALID]} invalid"
          + (f" ({safety} with safety, {liveness} with liveness failures)" if counts[ExitCode.INVALID] else "")
          + f", {counts[ExitCode.UNKNOWN]} unknown, "
          f"{counts[ExitCode.HARNESS_FAILED]} failed" + (f"; {campaign.stopped}" if campaign.stopped else ""))
    print(f"record: {campaign.path}")
    if bugs:
        return _detection_exit(campaign, bugs)
    print(f"exit code: {int(campaign.exit_code)}")
    return int(campaign.exit_code)


def _detection_exit(campaign: Any, bugs: Sequence[PlantedBug]) -> int:
    """Write and print the detection table. A failpoint campaign succeeds (0) when every run planted a bug or was
    a valid control run: invalid runs are its catches, not its failures. A false alarm exits 1, a harness
    failure 3, an interruption 3."""
    from harness.campaign import write_detection

    paths = write_detection(campaign, bugs, "harness " + " ".join(sys.argv[1:]))
    print(paths["md"].read_text(), end="")
    print("detection table: " + ", ".join(str(p) for p in paths.values()))
    control = [r for r in campaign.runs if r.failpoint is None]
    if any(r.exit_code == ExitCode.INVALID for r in control):
        code = ExitCode.INVALID
    elif campaign.interrupted or any(r.exit_code == ExitCode.HARNESS_FAILED for r in campaign.runs):
        code = ExitCode.HARNESS_FAILED
    else:
        code = ExitCode.VALID
    print(f"exit code: {int(code)}")
    return int(code)


def _run_with_progress(config: RunConfig, seed: int) -> int:
    """Run with the live display; SIGINT/SIGTERM cancel the run (which heals and tears down), once."""
    from harness.progress import ConsoleProgress, summary_lines
    from harness.run import run_test

    for err in registry.load_errors():
        log.warning("%s", err)
    progress = ConsoleProgress()
    progress.note(f"seed {seed}")

    async def main_async() -> Any:
        return await _stopped_by_signals(run_test(config, progress=progress), progress.note,
                                         "stopping; healing and tearing down")

    try:
        result = _event_loop_runner()(main_async())
    except ConfigError as e:
        progress.close()
        print(f"harness run: error: {e}", file=sys.stderr)
        return ExitCode.BAD_ARGUMENTS
    except (asyncio.CancelledError, KeyboardInterrupt):
        progress.close()
        print("harness run: interrupted before the run started", file=sys.stderr)
        return ExitCode.HARNESS_FAILED
    progress.close()
    lines = summary_lines(valid=result.valid, error=result.error, tally=result.tally, heal=result.heal,
                          run_dir=result.run_dir, exit_code=int(result.exit_code), seed=seed,
                          failures=(result.results or {}).get("failures"))
    print("\n".join(lines))
    return int(result.exit_code)


async def _stopped_by_signals(work: Coroutine[Any, Any, Any], say: Callable[[str], None], doing: str) -> Any:
    """Await ``work``; the first SIGINT, SIGTERM or SIGHUP cancels it (a run then heals and tears down, and returns
    its result), and later ones only say that it is under way: a second Ctrl-C must not interrupt a teardown."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        if received:
            say(f"{sig.name} again: already healing and tearing down, please wait "
                "(if it hangs, `harness clean` removes what is left)")
            return
        received.append(sig)
        say(f"{sig.name}: {doing}")
        task.cancel()

    for s in STOP_SIGNALS:
        loop.add_signal_handler(s, on_signal, s)
    try:
        return await work
    finally:
        for s in STOP_SIGNALS:
            loop.remove_signal_handler(s)


def _event_loop_runner() -> Any:
    """asyncio.run on uvloop when it is installed (a project dependency on Linux: the clients' HTTP goes faster),
    unless RAFTKV_LAB_NO_UVLOOP=1; the plain asyncio loop otherwise."""
    if os.environ.get("RAFTKV_LAB_NO_UVLOOP") != "1":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run
    return asyncio.run


def _cmd_clean(args: argparse.Namespace) -> int:
    from harness.labstate import PrefixError, default_prefix, known_prefixes

    if args.all:
        worst = 0
        for prefix in sorted(set(known_prefixes()) | {default_prefix()}):
            worst = max(worst, _clean_one(prefix, args.force, quiet=True))
        return worst
    try:
        prefix = args.prefix or default_prefix()
        ssh = ssh_config_from_args(args)
    except (PrefixError, ValueError) as e:
        print(f"harness clean: {e}", file=sys.stderr)
        return ExitCode.BAD_ARGUMENTS
    if args.backend == "docker":
        return _clean_docker(prefix, args.docker_host, args.force)
    if ssh is not None:
        worst = _clean_ssh(ssh, prefix, args.purge_install)
        return max(worst, _clean_one(prefix, args.force, quiet=True))
    return _clean_one(prefix, args.force)


def _clean_ssh(ssh: Any, prefix: str, purge_install: bool) -> int:
    """The prefix's things on the SSH hosts (processes, firewall objects, run directories; the install cache with
    --purge-install)."""
    from harness.backends.ssh import SshBackendError, clean_hosts
    from harness.protocols import RemoteError

    try:
        done, left = asyncio.run(clean_hosts(ssh, prefix, purge_install=purge_install))
    except (SshBackendError, RemoteError, TimeoutError) as e:
        print(f"harness clean: {e}", file=sys.stderr)
        return ExitCode.HARNESS_FAILED
    for line in done:
        print(line)
    if left:
        print(f"harness clean: could not remove: {', '.join(left)}", file=sys.stderr)
        return ExitCode.HARNESS_FAILED
    return 0


def _clean_docker(prefix: str, docker_host: str | None, force: bool) -> int:
    from harness.backends.dockerhost import DockerBackendError, clean_docker
    from harness.labstate import PrefixBusy

    try:
        done, left = clean_docker(prefix, docker_host, force=force)
    except (PrefixBusy, DockerBackendError) as e:
        print(f"harness clean: {e}", file=sys.stderr)
        return ExitCode.HARNESS_FAILED
    for line in done:
        print(f"removed {line}")
    if left:
        print(f"harness clean: could not remove: {', '.join(left)}", file=sys.stderr)
        return ExitCode.HARNESS_FAILED
    if not done:
        print(f"nothing to clean for prefix {prefix} on the Docker host")
    return 0


def _clean_one(prefix: str, force: bool, *, quiet: bool = False) -> int:
    """Clean one prefix. quiet (for --all): say nothing when there is nothing, and skip a live run's prefix
    without calling it a failure."""
    from harness.clean import clean, leftovers
    from harness.labstate import PrefixBusy, PrefixError

    try:
        done = clean(prefix, force=force)
    except PrefixBusy as e:
        if quiet:
            print(f"prefix {prefix}: skipped, {e}".split(";")[0])
            return 0
        print(f"harness clean: {e}", file=sys.stderr)
        return ExitCode.HARNESS_FAILED
    except PrefixError as e:
        print(f"harness clean: {e}", file=sys.stderr)
        return ExitCode.BAD_ARGUMENTS
    except PermissionError as e:
        print(f"harness clean: must run as root: {e}", file=sys.stderr)
        return ExitCode.HARNESS_FAILED
    for line in done:
        print(f"{prefix}: {line}" if quiet else line)
    left = leftovers(prefix)
    if left:
        print(f"harness clean: could not remove: {', '.join(left)}", file=sys.stderr)
        return ExitCode.HARNESS_FAILED
    if not done and not quiet:
        print(f"nothing to clean for prefix {prefix}")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from harness.run import analyze, exit_code_for
    from harness.store import StoreError

    try:
        result = analyze(args.run_dir)
    except (StoreError, ConfigError) as e:
        print(f"harness analyze: {e}", file=sys.stderr)
        return ExitCode.BAD_ARGUMENTS
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(f"verdict: {result.get('valid')}")
        for name, res in (result.get("checkers") or {}).items():
            print(f"  {name}: {res.get('valid') if isinstance(res, dict) else res}")
    return int(exit_code_for(result.get("valid")))


def _reports_missing(what: str) -> int:
    print(f"harness {what}: the reports package is not available yet (reports.render / reports.serve); "
          "nothing to do", file=sys.stderr)
    return ExitCode.HARNESS_FAILED


def _cmd_report(args: argparse.Namespace) -> int:
    try:
        from reports.render import render_run
    except ImportError:
        return _reports_missing("report")
    if not (args.run_dir / "test.json").is_file():
        print(f"harness report: {args.run_dir} is not a run directory (no test.json)", file=sys.stderr)
        return ExitCode.BAD_ARGUMENTS
    out = render_run(args.run_dir)
    print(out if out is not None else args.run_dir / "report.html")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from reports.serve import serve
    except ImportError:
        return _reports_missing("serve")
    serve(store=args.store, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
