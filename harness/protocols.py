"""The lab's roles, one small protocol each (after Jepsen's Remote, DB, Client, Nemesis, Checker).

harness/ knows only these. Concrete implementations (the raftkv DB adapter, workloads, nemeses) live in workloads/
and nemesis/ and are found through the registry (harness.registry), so the arrows of ARCHITECTURE.md hold.

Every method that touches the outside world is async and must honour cancellation: the engine cancels them on
Ctrl-C, SIGTERM and time limits, then runs teardown.
"""

from __future__ import annotations

import random
import signal
import sys
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
    """The system under test on one host, and what the nemeses may do to it."""

    async def setup(self, test: TestContext, node: str) -> None:
        """Install and configure on the host (write config, create directories); does not start."""
        ...

    async def start(self, test: TestContext, node: str) -> None:
        """Start the node process (no-op if it runs). Returns once the process is spawned."""
        ...

    async def kill(self, test: TestContext, node: str) -> None:
        """SIGKILL the node's process, if running."""
        ...

    async def pause(self, test: TestContext, node: str) -> None: ...

    async def resume(self, test: TestContext, node: str) -> None: ...

    async def is_running(self, test: TestContext, node: str) -> bool: ...

    async def teardown(self, test: TestContext, node: str) -> None:
        """Stop the process and remove its data. Idempotent."""
        ...

    def log_files(self, test: TestContext, node: str) -> list[str]:
        """Paths on the host worth collecting into store/<run>/<node>/."""
        ...

    async def status(self, test: TestContext, node: str) -> dict[str, Any]:
        """The node's view: {"role", "term", "leader", "commit", "applied"}; raises on failure."""
        ...

    async def metrics(self, test: TestContext, node: str) -> str:
        """A Prometheus text scrape of the node."""
        ...

    async def leader(self, test: TestContext) -> str | None:
        """The current leader as the nodes report it, or None."""
        ...


@runtime_checkable
class StateDigest(Protocol):
    """Capability of a DB whose nodes can report what they applied and a digest of it (the convergence oracle,
    harness.converge). ``state_digest`` returns at least ``{"applied": int, "digest": str}``, ideally also
    ``"last_index"`` and ``"last_term"`` (and whatever else the DB reports: kept as evidence); it raises when the
    node does not answer. Replicas at the same ``applied`` must report the same ``digest``."""

    async def state_digest(self, test: TestContext, node: str) -> Mapping[str, Any]: ...


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
class Nemesis(Protocol):
    """Faults. invoke() takes a nemesis invoke op (f = "start"/"stop", value = {"fault": ..., ...}) and returns its
    info completion whose value says what was actually done (targets, rules). teardown() heals everything it ever
    did and is idempotent; the engine calls it on every exit path.

    Optional: ``log_files(test, node) -> list[str]``, paths on that host of logs the nemesis's own processes wrote
    (e.g. a packet-delay daemon's), collected into the run's ``<node>/`` with the DB's after the heal
    (:func:`nemesis_log_files`). Optional: ``async prepare(test)``, called once the hosts are up and before the DB
    is set up and started, for what must be in place when the DB's daemons start (e.g. a library they must
    preload: it adds to ``test.daemon_env``) (:func:`prepare_hosts`)."""

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


async def prepare_hosts(nemesis: Any, test: TestContext) -> None:
    """A nemesis's optional ``prepare`` (nothing when it has none)."""
    prepare = getattr(nemesis, "prepare", None)
    if callable(prepare):
        await prepare(test)


def nemesis_log_files(nemesis: Any, test: TestContext, node: str) -> list[str]:
    """A nemesis's optional ``log_files`` for one node (none when it has no such method)."""
    files = getattr(nemesis, "log_files", None)
    return list(files(test, node)) if callable(files) else []


@runtime_checkable
class Checker(Protocol):
    """Pure: a history (list of op dicts, docs/history.md) in, a result dict out ({"valid": True|False|"unknown"})."""

    def check(self, test: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]: ...


@runtime_checkable
class InstalledProject(Protocol):
    """A capability of a Remote whose host runs the project from an installation of its own (a container image, a
    venv the install step made), not from the controller's checkout. ``python`` is the interpreter there that
    imports the project's packages (raftkv, nemesis, ...). A host without it shares the controller's file system
    (netns, local): the project's daemons run with the controller's own interpreter and the checkout on
    PYTHONPATH (:func:`project_python`)."""

    python: str


CHECKOUT_ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True, slots=True)
class ProjectPython:
    """How to start ``python -m <one of the project's modules>`` on one host: the interpreter, the environment it
    needs (added to the daemon's own) and a working directory (None: the host's default)."""

    executable: str
    env: Mapping[str, str]
    cwd: str | None


def project_python(host: object) -> ProjectPython:
    """The project's interpreter on ``host``: its own installation (:class:`InstalledProject`), else the
    controller's interpreter with this checkout on PYTHONPATH (hosts that share the controller's file system)."""
    if isinstance(host, InstalledProject):
        return ProjectPython(host.python, {}, None)
    return ProjectPython(sys.executable, {"PYTHONPATH": CHECKOUT_ROOT}, CHECKOUT_ROOT)
