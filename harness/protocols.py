"""The lab's roles, one small protocol each (after Jepsen's Remote, DB, Client, Nemesis, Checker).

harness/ knows only these. Concrete implementations (the raftkv DB adapter, workloads, nemeses) live in workloads/
and nemesis/ and are found through the registry (harness.registry), so the arrows of docs/architecture.md hold.

Every method that touches the outside world is async and must honour cancellation: the engine cancels them on
Ctrl-C, SIGTERM and time limits, then runs teardown.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from harness.seeds import child_rng

OpType = Literal["invoke", "ok", "fail", "info"]


@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class Op:
    """One history event (docs/history.md). `index` and `time` are filled in by the interpreter when recorded."""

    process: int | str
    type: OpType
    f: str
    key: str | int | None = None
    value: Any = None
    time: int = -1
    node: str | None = None
    error: str | None = None
    index: int = -1

    def __init__(self, *, process: int | str, type: OpType, f: str, key: str | int | None = None,
                 value: Any = None, time: int = -1, node: str | None = None, error: str | None = None,
                 index: int = -1) -> None:
        # The dataclass's own __init__, minus its cost: a frozen dataclass sets each field through
        # object.__setattr__, and the slot descriptors' own setters take half the time. About five Ops are built
        # per client operation, so this is a measurable share of the controller's work. Same fields, same order,
        # same defaults (tests/harness/test_harness_interpreter.py holds it to the field list).
        s = _OP_SETTERS
        s[0](self, process)
        s[1](self, type)
        s[2](self, f)
        s[3](self, key)
        s[4](self, value)
        s[5](self, time)
        s[6](self, node)
        s[7](self, error)
        s[8](self, index)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "process": self.process, "type": self.type, "f": self.f}
        if self.key is not None:
            out["key"] = self.key
        out["value"] = self.value
        out["time"] = self.time
        if self.node is not None:
            out["node"] = self.node
        if self.error is not None:
            out["error"] = self.error
        return out


_OP_SETTERS = tuple(Op.__dict__[f.name].__set__ for f in fields(Op))


@dataclass(frozen=True, slots=True)
class ExecResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class RemoteError(RuntimeError):
    """A command on a host failed (non-zero exit with check=True, or the host is unreachable)."""


@runtime_checkable
class Remote(Protocol):
    """How the controller reaches one host: run commands, move files, run and signal daemons."""

    name: str  # the host's name, e.g. "n1"
    address: str  # the address other hosts and the controller reach it at

    async def exec(self, argv: Sequence[str], *, check: bool = True, timeout: float | None = 30.0,
                   stdin: bytes | None = None) -> ExecResult: ...

    async def upload(self, local: Path, remote: str) -> None: ...

    async def download(self, remote: str, local: Path) -> None: ...

    async def spawn(self, argv: Sequence[str], *, log_path: str, env: Mapping[str, str] | None = None,
                    cwd: str | None = None) -> int:
        """Start a daemon on the host with stdout and stderr to log_path; return its pid on that host."""
        ...

    async def signal(self, pid: int, sig: signal.Signals) -> bool:
        """Send sig to pid; False when no such process (already gone)."""
        ...

    async def alive(self, pid: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class PythonRuntime:
    """How to run this project's Python modules on one host: the interpreter, what to add to a daemon's
    environment for them, and the directory to start them in (None: anywhere)."""

    python: str
    env: Mapping[str, str]
    cwd: str | None = None


@runtime_checkable
class HostPython(Protocol):
    """A capability of a Remote whose host runs the project from an install of its own (harness.install) rather
    than from the controller's checkout. Hosts without it share the controller's file system (netns, local):
    harness.install.runtime_for then gives the controller's own interpreter and checkout."""

    def python_runtime(self) -> PythonRuntime: ...


@runtime_checkable
class Backend(Protocol):
    """Brings up and tears down the hosts of a run (netns by default; ssh, docker elsewhere)."""

    name: str
    # Every name the run creates on the machine (namespaces, links, iptables chains, nft tables, cgroups) starts
    # with this prefix, so `harness clean` finds exactly what the lab made. Nemeses name their rules with it too.
    prefix: str

    async def setup(self, count: int) -> list[Remote]: ...

    async def teardown(self) -> None:
        """Remove everything setup created. Idempotent; safe after a partial setup."""
        ...

    def data_dir(self, host: str) -> str:
        """Where the DB keeps its data on that host."""
        ...

    def log_dir(self, host: str) -> str: ...


@dataclass(slots=True, kw_only=True)
class TestContext:
    """What every role sees of the run. Built by the engine; roles must not mutate it except `shared`."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    options: Mapping[str, Any]
    hosts: list[Remote]
    backend: Backend
    db: DB
    seed: int
    store_dir: Path
    shared: dict[str, Any] = field(default_factory=dict)  # scratch space roles may use to talk (e.g. pids)
    # node -> extra environment variables for the DB's daemons on that node, set by nemeses in prepare() (e.g.
    # LD_PRELOAD of the clock shim); a DB adapter adds them to the environment it starts its daemons with.
    daemon_env: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def nodes(self) -> list[str]:
        return [h.name for h in self.hosts]

    def rng(self, component: str) -> random.Random:
        """A random stream of its own for one component ("workload", "nemesis.partition", ...), split from the
        run's seed (harness.seeds), so runs replay and adding a component does not shift the others."""
        return child_rng(self.seed, component)

    def host(self, name: str) -> Remote:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)


@runtime_checkable
class DB(Protocol):
    """The system under test on one host: what every DB must do. Everything else a DB may offer is a capability
    below (Process, LogFiles, Primaries, Ready, ClusterStatus, Metrics, StateDigest, Witness, Timing, ...), which the
    engine and the nemeses ask for with isinstance and do without where a DB lacks it (docs/architecture.md)."""

    async def setup(self, test: TestContext, node: str) -> None:
        """Install and configure on the host (write config, create directories); starts the node when the DB has
        no :class:`Process` capability (nobody else would)."""
        ...

    async def teardown(self, test: TestContext, node: str) -> None:
        """Stop the process and remove its data. Idempotent; safe after a partial setup."""
        ...


@runtime_checkable
class Process(Protocol):
    """Capability of a DB whose nodes are processes the lab starts and signals (kill, pause nemeses; the engine
    starts them after setup, kills them before collecting their logs, and checks that the heal left them running)."""

    async def start(self, test: TestContext, node: str) -> None:
        """Start the node process (no-op if it runs). Returns once the process is spawned."""
        ...

    async def kill(self, test: TestContext, node: str) -> None:
        """SIGKILL the node's process, if running; returns once it is gone."""
        ...

    async def pause(self, test: TestContext, node: str) -> None: ...

    async def resume(self, test: TestContext, node: str) -> None: ...

    async def is_running(self, test: TestContext, node: str) -> bool: ...


def process_of(test: TestContext) -> Process:
    """``test.db`` as a :class:`Process`; TypeError naming the DB when it lacks the capability (a nemesis that
    declares it in its ``db_needs`` never sees that: the run is refused first)."""
    db = test.db
    if not isinstance(db, Process):
        raise TypeError(f"{type(db).__name__} has no Process capability (start, kill, pause, resume, is_running)")
    return db


@runtime_checkable
class LogFiles(Protocol):
    """Capability of a DB or a nemesis: paths on a host of logs worth collecting into store/<run>/<node>/ (a
    nemesis's own processes' logs, e.g. a packet-delay daemon's, are collected with the DB's)."""

    def log_files(self, test: TestContext, node: str) -> list[str]: ...


@runtime_checkable
class Primaries(Protocol):
    """Capability of a DB with a leader (Jepsen's primaries): faults aimed at the leader ask it. A DB without it
    gets those faults skipped, recorded as ``"skipped": "no leader capability"`` (nemesis.leader)."""

    async def leader(self, test: TestContext) -> str | None:
        """The current leader as the nodes report it, or None."""
        ...


@runtime_checkable
class Ready(Protocol):
    """Capability of a DB that knows when it can serve (raftkv: every node answers and names one leader). The
    engine waits, after start, until ``ready`` says so; a DB without it is ready once its processes run and answer
    their ClusterStatus, where it has those (harness.readiness)."""

    async def ready(self, test: TestContext) -> bool:
        """One check, no waiting: True when the cluster can serve clients. May raise (counted as not ready)."""
        ...


@runtime_checkable
class ClusterStatus(Protocol):
    """Capability of a DB whose nodes report their view of the cluster, polled into cluster.jsonl for the report,
    the stuck detector, the leader witness and the quiesce observation. Raft vocabulary lives here, not in DB."""

    async def status(self, test: TestContext, node: str) -> dict[str, Any]:
        """The node's view: {"role", "term", "leader", "commit", "applied"}; raises on failure."""
        ...


@runtime_checkable
class Metrics(Protocol):
    """Capability of a DB whose nodes serve Prometheus metrics (collected into <node>/metrics.txt; --monitor)."""

    async def metrics(self, test: TestContext, node: str) -> str:
        """A Prometheus text scrape of the node."""
        ...


@runtime_checkable
class Describes(Protocol):
    """Capability of a backend (or any role) that describes its configuration for test.json and the report."""

    def describe(self) -> Mapping[str, Any]: ...


@runtime_checkable
class StateDigest(Protocol):
    """Capability of a DB whose nodes can report what they applied and a digest of it (the convergence oracle,
    harness.converge). ``state_digest`` returns at least ``{"applied": int, "digest": str}``, ideally also
    ``"last_index"`` and ``"last_term"`` (and whatever else the DB reports: kept as evidence); it raises when the
    node does not answer. Replicas at the same ``applied`` must report the same ``digest``."""

    async def state_digest(self, test: TestContext, node: str) -> Mapping[str, Any]: ...


@runtime_checkable
class Witness(Protocol):
    """Capability of a DB whose nodes keep grey-box evidence of their own history, cheap enough to poll during the run
    (harness.witness records it for the oracles in checker/). ``witness`` returns a mapping with any of:

    - ``"leaderships"``: every term the node became leader in (also those of earlier incarnations, where the DB
      keeps them across restarts), for the election-safety oracle (checker.election);
    - ``"chain"``: a commitment to the node's applied log prefix, ``{"index", "term", "hash", "checkpoints":
      [[index, term, hash], ...]}`` (null when unknown), for the log-matching oracle (checker.logmatch): replicas
      must agree on the hash at every index both report, and a node with itself over time.

    It raises when the node does not answer."""

    async def witness(self, test: TestContext, node: str) -> Mapping[str, Any]: ...


@runtime_checkable
class Timing(Protocol):
    """A capability of a DB: how long its elections can take. Fault schedules scale their holds and gaps to it (a
    pause "longer than a lease", a partition "a few elections long"); bounds may use it too. A DB without it is
    taken to need ``DEFAULT_ELECTION_TIMEOUT_S`` (:func:`election_timeout_s`)."""

    def election_timeout_s(self) -> float:
        """The worst-case election timeout in seconds (the longest a follower waits before it campaigns)."""
        ...


DEFAULT_ELECTION_TIMEOUT_S = 1.0


def election_timeout_s(db: object) -> float:
    """The DB's worst-case election timeout when it has the :class:`Timing` capability, else 1.0 s. A DB that
    answers with something other than a positive finite number is a bug in that DB: ValueError naming it."""
    if not isinstance(db, Timing):
        return DEFAULT_ELECTION_TIMEOUT_S
    value = db.election_timeout_s()
    if not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ValueError(f"{type(db).__name__}.election_timeout_s() returned {value!r}, not a positive number")
    return float(value)


@runtime_checkable
class RecoveryBound(Protocol):
    """A capability of a DB: how soon after every fault heals it must serve a write and a read again, and every
    running node must have caught up (the recovery checker's bound, checker/recovery.py). A DB without it gets
    ``DEFAULT_RECOVERY_ELECTIONS`` election timeouts plus ``DEFAULT_RECONNECT_S`` (:func:`recovery_bound_s`)."""

    def recovery_bound_s(self) -> float:
        """Seconds from a heal to the first served write and read that a correct DB never exceeds."""
        ...


DEFAULT_RECOVERY_ELECTIONS = 4
DEFAULT_RECONNECT_S = 2.0  # a TCP connection's retransmission back-off (capped at 1 s on netns hosts) and a redial


def recovery_bound_s(db: object, override: float | None = None) -> float:
    """The recovery bound of a run: ``override`` (``--recovery-bound-s``) when given, else the DB's own
    (:class:`RecoveryBound`), else a few of its election timeouts plus a reconnect. ValueError for a DB that
    answers something other than a positive finite number."""
    if override is not None:
        return float(override)
    if not isinstance(db, RecoveryBound):
        return DEFAULT_RECOVERY_ELECTIONS * election_timeout_s(db) + DEFAULT_RECONNECT_S
    value = db.recovery_bound_s()
    if not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ValueError(f"{type(db).__name__}.recovery_bound_s() returned {value!r}, not a positive number")
    return float(value)


@runtime_checkable
class Client(Protocol):
    """A connection of one worker to the system. `invoke` returns the completion of an invoke op.

    Semantics (Jepsen's): return type ok when it took effect, fail only when it certainly did not, info otherwise.
    An exception raised from invoke is recorded as info with the exception as the error.
    """

    async def open(self, test: TestContext, node: str) -> Client: ...

    async def invoke(self, test: TestContext, op: Op) -> Op: ...

    async def close(self, test: TestContext) -> None: ...


@runtime_checkable
class WorkerPlacement(Protocol):
    """A client factory that wants to know WHICH worker it opens a client for, not only its node: a workload that
    places different kinds of client on different workers (the register's mixed mode: the first worker of each node
    bound to it, the others the library with retries). The interpreter calls `open_worker` instead of `open` when
    the factory has it; `worker` is the worker's thread (0 .. concurrency-1), stable across re-opens."""

    async def open_worker(self, test: TestContext, node: str, worker: int) -> Client: ...


@runtime_checkable
class Nemesis(Protocol):
    """Faults. invoke() takes a nemesis invoke op (f = "start"/"stop", value = {"fault": ..., ...}) and returns its
    info completion whose value says what was actually done (targets, rules). teardown() undoes setup and whatever
    the heal left (on every exit path once setup was called: after the heal, when faults may have started, and
    before the DB's nodes are stopped); it must not restart nodes (the DB is stopped next) and is idempotent.

    Optional capabilities: :class:`LogFiles` (its own processes' logs, collected with the DB's) and
    :class:`PreparesHosts` (what must be in place before the DB's daemons start, taken away after the DB's
    teardown)."""

    def faults(self) -> set[str]:
        """The fault kinds this nemesis handles (e.g. {"partition"})."""
        ...

    async def setup(self, test: TestContext) -> None: ...

    async def invoke(self, test: TestContext, op: Op) -> Op: ...

    async def heal(self, test: TestContext) -> dict[str, Any]:
        """End every active fault and verify: {"ok": bool, "details": ...}."""
        ...

    async def teardown(self, test: TestContext) -> None: ...


@runtime_checkable
class DataDir(Protocol):
    """A DB whose durable state lives in one directory per node (what a disk fault layer mounts over)."""

    def data_dir(self, test: TestContext, node: str) -> str: ...


@runtime_checkable
class CrashListener(Protocol):
    """A nemesis that must act when another one crashes a node (kill -9): a disk layer holding the node's I/O
    lets go first (a process whose request a paused file system holds cannot die), and one that keeps un-fsynced
    writes drops them after the node is gone and before it restarts, as a power loss would."""

    async def before_crash(self, test: TestContext, node: str) -> None: ...

    async def after_crash(self, test: TestContext, node: str) -> None: ...


@runtime_checkable
class CrashSource(Protocol):
    """A nemesis that crashes nodes and tells its listeners around each crash (the composite nemesis wires every
    selected CrashListener to every selected CrashSource)."""

    def add_crash_listener(self, listener: CrashListener) -> None: ...


@runtime_checkable
class StartListener(Protocol):
    """A nemesis whose state sits under a node and must be made right before the node starts again (a disk layer
    restores files it damaged): whoever starts a node tells it first (:class:`StartSource`). The composite nemesis
    also heals every StartListener before the other nemeses, so no heal restarts a node on a layer still faulty."""

    async def before_start(self, test: TestContext, node: str) -> None: ...


@runtime_checkable
class StartSource(Protocol):
    """A nemesis that starts nodes (a kill nemesis restarting what it killed) and tells its listeners before each
    start (the composite nemesis wires every selected StartListener to every selected StartSource)."""

    def add_start_listener(self, listener: StartListener) -> None: ...


@runtime_checkable
class PreparesHosts(Protocol):
    """Capability of a nemesis that must put something in place on the hosts before the DB is set up and started
    (a library the DB's daemons preload: it adds to ``test.daemon_env``; a file system layer under the data
    directory), and take it away after the DB's teardown (the engine pushes ``unprepare`` when it calls
    ``prepare``, so it runs on every path, also after a partial prepare: it must be idempotent)."""

    async def prepare(self, test: TestContext) -> None: ...

    async def unprepare(self, test: TestContext) -> None: ...


async def prepare_hosts(nemesis: object, test: TestContext) -> None:
    """A nemesis's :class:`PreparesHosts` prepare (nothing when it lacks the capability)."""
    if isinstance(nemesis, PreparesHosts):
        await nemesis.prepare(test)


async def unprepare_hosts(nemesis: object, test: TestContext) -> None:
    """A nemesis's :class:`PreparesHosts` unprepare (nothing when it lacks the capability)."""
    if isinstance(nemesis, PreparesHosts):
        await nemesis.unprepare(test)


def log_files_of(role: object, test: TestContext, node: str) -> list[str]:
    """A DB's or nemesis's :class:`LogFiles` for one node (none when it lacks the capability)."""
    return list(role.log_files(test, node)) if isinstance(role, LogFiles) else []


@runtime_checkable
class Checker(Protocol):
    """Pure: a history (list of op dicts, docs/history.md) in, a result dict out ({"valid": True|False|"unknown"})."""

    def check(self, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]: ...
