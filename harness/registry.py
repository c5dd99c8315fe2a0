"""The registry: how the engine finds concrete DBs, workloads and nemeses without importing them.

Three entry-point groups (pyproject.toml, ``[project.entry-points."raftkv_lab.<group>"]``):

- ``raftkv_lab.dbs``: ``name = "module:attr"`` where attr is a :class:`DBSpec` (or a zero-argument callable
  returning one);
- ``raftkv_lab.workloads``: a :class:`Workload` (or a callable returning one);
- ``raftkv_lab.nemeses``: a :class:`NemesisSpec` (or a callable returning one).

The installed distribution's metadata is read first; then the ``pyproject.toml`` of the source tree that holds this
package, when there is one, so an entry added to pyproject.toml in a checkout works without re-installing (an
editable install freezes its entry points at install time). Tests register specs programmatically with
:func:`register_db`, :func:`register_workload`, :func:`register_nemesis` (these win over entry points of the same
name); :func:`unregister` removes one.

An entry point that fails to load is not fatal to the others: :func:`load_errors` lists what failed and why, and
asking for that name raises :class:`RegistryError` carrying the cause.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import random
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from harness.detection import FailpointCatalog
from harness.faults import UNDESCRIBED, FaultTraits
from harness.generator import Generator
from harness.protocols import DB, Checker, Client, Nemesis


class Kind(Enum):
    DB = "dbs"
    WORKLOAD = "workloads"
    NEMESIS = "nemeses"

    @property
    def group(self) -> str:
        return f"raftkv_lab.{self.value}"


class RegistryError(LookupError):
    """No such registered name, or its entry point failed to load, or it is not the right kind of spec."""


class NoClientError(RegistryError):
    """The run's DB supplies no client for the workload (the message names the DB, the workload, the offer)."""


def int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An option type: an integer in lo..hi, else a message naming the range (a typo such as ``--nodes 500`` is
    refused at argument time, exit 254, not after hundreds of hosts exist)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer in {lo}..{hi}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(lo: float, hi: float, *, low_open: bool = False) -> Callable[[str], float]:
    """An option type: a finite number in [lo, hi] (or (lo, hi] with ``low_open``), else a message naming it."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (lo < value <= hi if low_open else lo <= value <= hi):
            raise argparse.ArgumentTypeError(f"must be in {'(' if low_open else '['}{lo:g}, {hi:g}], got {text}")
        return value

    parse.__name__ = "number"
    return parse


@dataclass(frozen=True, slots=True, kw_only=True)
class Option:
    """A command-line option a workload, nemesis or DB adds to ``harness run``.

    ``flag`` is the long option (``"--keys"``); its value lands in the run's options under ``dest`` (default: the
    flag without dashes, ``-`` -> ``_``). ``type`` converts the string; ``choices`` restricts it; ``action`` may be
    ``"store_true"``. Two providers may declare the same flag only with the same dest, type and default.
    """

    flag: str
    help: str
    type: Callable[[str], Any] | None = str
    default: Any = None
    choices: Sequence[Any] | None = None
    action: str | None = None
    dest: str | None = None

    def __post_init__(self) -> None:
        if not self.flag.startswith("--") or len(self.flag) < 3:
            raise ValueError(f"option flag must look like --name, got {self.flag!r}")

    @property
    def name(self) -> str:
        return self.dest or self.flag[2:].replace("-", "_")


@dataclass(frozen=True, slots=True, kw_only=True)
class DBSpec:
    """A system under test. ``factory(options)`` returns a fresh DB for one run; ``failpoints``, when the DB has
    them, lists the bugs it can plant in itself and the options that switch them on; ``clients``, the clients it
    supplies to DB-neutral workloads (by workload name)."""

    name: str
    factory: Callable[[Mapping[str, Any]], DB]
    description: str = ""
    options: Sequence[Option] = ()
    # The bugs this DB can plant in itself (``harness run --failpoints``, the detection campaign); None: none.
    failpoints: FailpointCatalog | None = None
    # The clients this DB offers, by workload name: ``clients["set"](options)`` -> a fresh, unopened Client that
    # speaks that workload's operation vocabulary (a DB-neutral workload finds its client here: client_for).
    clients: Mapping[str, Callable[[Mapping[str, Any]], Client]] = field(default_factory=dict)
    # What this DB cannot be tested with, and why (a measured reason): option name -> value -> reason, where the
    # option "nemesis" means a selected nemesis. harness.run.resolve refuses such a run before any host exists.
    refuses: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def refusal(self, nemeses: Iterable[str], options: Mapping[str, Any]) -> str | None:
        """Why this DB refuses a run with these nemeses and options (``refuses``), or None."""
        chosen = {"nemesis": list(nemeses), **{k: [v] for k, v in options.items() if isinstance(v, str)}}
        for option, values in self.refuses.items():
            for value in chosen.get(option, []):
                if value in values:
                    what = f"nemesis {value}" if option == "nemesis" else f"--{option.replace('_', '-')} {value}"
                    return f"db {self.name} refuses {what}: {values[value]}"
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """What the clients do and how the result is judged.

    - ``client(options)`` -> a fresh, unopened Client of the workload's own, for its ``db`` only (any DB when
      ``db`` is None); None for a DB-neutral workload, whose clients the DBs supply (``DBSpec.clients``, found by
      :func:`client_for`). The engine makes one per worker and calls ``open`` with the node the worker talks to
      (worker i talks to node i mod N) and re-opens after an ``info``.
    - ``generator(options, rng)`` -> the client op stream (usually infinite). The engine bounds it with the time
      limit and ``--rate`` and runs it on the client threads; ``rng`` is this workload's child of the run's seed
      (use it for build-time choices and to seed fn/mix generators).
    - ``final_generator(options, rng)`` -> the ops run after the heal and quiesce (e.g. read every key until ok),
      or None. The engine bounds it with ``--final-time-limit``.
    - ``checker(options)`` -> a Checker, or a mapping name -> Checker (composed; combined validity ranks false over
      unknown over true, a crashing checker counts as unknown).
    - ``db``: the name of the DB it tests by default (``--db`` overrides).
    - ``options``: flags it adds to ``harness run`` (e.g. ``--keys``, ``--read-consistency``).
    """

    name: str
    generator: Callable[[Mapping[str, Any], random.Random], Generator]
    checker: Callable[[Mapping[str, Any]], Checker | Mapping[str, Checker]]
    final_generator: Callable[[Mapping[str, Any], random.Random], Generator | None] | None = None
    db: str | None = None
    description: str = ""
    options: Sequence[Option] = ()
    client: Callable[[Mapping[str, Any]], Client] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NemesisSpec:
    """A family of faults. ``factory(options, rng)`` returns a fresh Nemesis for one run; ``rng`` is its child of
    the run's seed (draw every target choice from it for reproducible runs).

    ``faults``: the fault kinds it handles (the ``value["fault"]`` of its ops); default ``{name}``.
    ``generator(options, rng)``: its own schedule of start/stop ops (runs on the nemesis thread). When None, the
    engine's schedule applies (``--schedule``): the hunting schedule (harness.hunt) or the old cycle (every
    ``--nemesis-interval`` seconds start a kind chosen at random, stop it one interval later). When several nemeses
    are selected, those with their own schedule run side by side with the engine's schedule of the others.
    ``traits(options)``: kind -> :class:`~harness.faults.FaultTraits` (what each kind does and how a start is aimed
    at the leader or one node, given the run's options); kinds it leaves out, or all when None, are drawn at random
    only, never aimed.
    ``cycle(options, rng)``: like ``generator``, but only under ``--schedule cycle``; under the hunt the spec's
    selected kinds join the hunting schedule with their traits (the disk nemesis: its own 10 s cycle, or hunted).
    ``selected(options)``: the kinds the run's options leave to the engine's schedule (default: all of them; e.g.
    ``--disk-faults``).
    ``needs``: what the hosts must offer for it to run (e.g. ``"network"``: a network of their own to cut); ``--nemesis
    all`` leaves out the nemeses whose needs the run's backend lacks (harness.backends.FEATURES).
    ``db_needs``: the DB capabilities (harness.protocols, e.g. ``Process``) it cannot work without; a run whose DB
    lacks one is refused before anything exists (:func:`missing_capabilities`). What it can do without (e.g.
    ``Primaries``: its leader-aimed starts are then skipped, "no leader capability") is not listed.
    """

    name: str
    factory: Callable[[Mapping[str, Any], random.Random], Nemesis]
    faults: frozenset[str] = field(default_factory=frozenset)
    generator: Callable[[Mapping[str, Any], random.Random], Generator] | None = None
    description: str = ""
    options: Sequence[Option] = ()
    traits: Callable[[Mapping[str, Any]], Mapping[str, FaultTraits]] | None = None
    needs: frozenset[str] = frozenset()
    cycle: Callable[[Mapping[str, Any], random.Random], Generator] | None = None
    selected: Callable[[Mapping[str, Any]], Iterable[str]] | None = None
    db_needs: frozenset[type] = frozenset()

    @property
    def kinds(self) -> frozenset[str]:
        return self.faults or frozenset({self.name})

    def fault_traits(self, options: Mapping[str, Any]) -> dict[str, FaultTraits]:
        """Every selected kind of this spec -> its traits under these options (UNDESCRIBED for kinds it does not
        describe)."""
        described = self.traits(options) if self.traits is not None else {}
        return {kind: described.get(kind, UNDESCRIBED) for kind in self.selected_kinds(options)}

    def selected_kinds(self, options: Mapping[str, Any]) -> list[str]:
        """The kinds the engine's schedule may draw under these options (``selected``), sorted; ValueError when
        ``selected`` names a kind the spec does not handle."""
        if self.selected is None:
            return sorted(self.kinds)
        chosen = set(self.selected(options))
        if not chosen <= self.kinds:
            raise ValueError(f"nemesis {self.name}: selected kinds {sorted(chosen - self.kinds)} it does not handle")
        return sorted(chosen)


def missing_capabilities(spec: NemesisSpec, db: object) -> list[str]:
    """The names of the capabilities in ``spec.db_needs`` that ``db`` lacks (isinstance), sorted."""
    return sorted(cap.__name__ for cap in spec.db_needs if not isinstance(db, cap))


def client_for(dbspec: DBSpec, workload: Workload) -> Callable[[Mapping[str, Any]], Client]:
    """The client factory a run of ``workload`` on ``dbspec`` uses: the DB's own for that workload
    (``dbspec.clients``), else the workload's own when it serves that DB (``workload.db`` is it, or None).
    NoClientError naming the DB, the workload and what the DB offers otherwise: the CLI calls this (through
    harness.run.resolve) at argument time, so a missing client is exit 254, before any host exists."""
    factory = dbspec.clients.get(workload.name)
    if factory is not None:
        return factory
    if workload.client is not None and workload.db in (None, dbspec.name):
        return workload.client
    offered = ", ".join(sorted(dbspec.clients)) or "none"
    raise NoClientError(f"db {dbspec.name} supplies no client for the {workload.name} workload "
                        f"(it supplies: {offered})")


Spec = DBSpec | Workload | NemesisSpec
_SPEC_TYPE: dict[Kind, type[Any]] = {Kind.DB: DBSpec, Kind.WORKLOAD: Workload, Kind.NEMESIS: NemesisSpec}

_programmatic: dict[Kind, dict[str, Spec]] = {k: {} for k in Kind}
_loaded: dict[Kind, dict[str, Spec]] | None = None
_errors: dict[tuple[Kind, str], str] = {}


def register_db(spec: DBSpec) -> DBSpec:
    return _register(Kind.DB, spec)


def register_workload(spec: Workload) -> Workload:
    return _register(Kind.WORKLOAD, spec)


def register_nemesis(spec: NemesisSpec) -> NemesisSpec:
    return _register(Kind.NEMESIS, spec)


def unregister(kind: Kind, name: str) -> None:
    """Forget a programmatic registration (entry points are unaffected). No error when absent."""
    _programmatic[kind].pop(name, None)


def _register(kind: Kind, spec: Any) -> Any:  # spec: DBSpec | Workload | NemesisSpec by kind
    if not isinstance(spec, _SPEC_TYPE[kind]):
        raise TypeError(f"register_{kind.name.lower()} wants a {_SPEC_TYPE[kind].__name__}, got {type(spec).__name__}")
    _programmatic[kind][spec.name] = spec
    return spec


def _source_entry_points(group: str) -> dict[str, str]:
    """Entry points of the pyproject.toml beside this package (a source checkout), or {}."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        data = tomllib.loads(pyproject.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    table = data.get("project", {}).get("entry-points", {}).get(group, {})
    return {str(k): str(v) for k, v in table.items()} if isinstance(table, dict) else {}


def _load_target(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module.strip())
    for part in filter(None, attr.strip().split(".")):
        obj = getattr(obj, part)
    return obj


def _load_all() -> dict[Kind, dict[str, Spec]]:
    global _loaded
    if _loaded is not None:
        return _loaded
    loaded: dict[Kind, dict[str, Spec]] = {k: {} for k in Kind}
    for kind in Kind:
        targets: dict[str, str] = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=kind.group)}
        targets.update(_source_entry_points(kind.group))  # the checkout wins over stale installed metadata
        for name, target in sorted(targets.items()):
            try:
                obj: Any = _load_target(target)
                if not isinstance(obj, _SPEC_TYPE[kind]) and callable(obj):
                    obj = obj()
                if not isinstance(obj, _SPEC_TYPE[kind]):
                    raise TypeError(f"{target} is a {type(obj).__name__}, not a {_SPEC_TYPE[kind].__name__}")
                if obj.name != name:
                    raise ValueError(f"entry point {name!r} names a spec called {obj.name!r}")
                loaded[kind][name] = obj
            except Exception as e:  # noqa: BLE001 - one broken plugin must not hide the others
                _errors[(kind, name)] = f"{kind.group} entry point {name} = {target!r} failed to load: {e!r}"
    _loaded = loaded
    return loaded


def reload() -> None:
    """Forget loaded entry points (they are read again on next use). For tests."""
    global _loaded
    _loaded = None
    _errors.clear()


def names(kind: Kind) -> list[str]:
    """Every name available for a kind (loaded entry points and programmatic ones), sorted."""
    return sorted(set(_load_all()[kind]) | set(_programmatic[kind]))


def load_errors() -> list[str]:
    _load_all()
    return [msg for _, msg in sorted(_errors.items(), key=lambda kv: (kv[0][0].value, kv[0][1]))]


def _get(kind: Kind, name: str) -> Any:
    if name in _programmatic[kind]:
        return _programmatic[kind][name]
    loaded = _load_all()[kind]
    if name in loaded:
        return loaded[name]
    if (kind, name) in _errors:
        raise RegistryError(_errors[(kind, name)])
    have = ", ".join(names(kind)) or "none registered"
    raise RegistryError(f"no {kind.name.lower()} named {name!r} (available: {have})")


def db(name: str) -> DBSpec:
    return _get(Kind.DB, name)


def workload(name: str) -> Workload:
    return _get(Kind.WORKLOAD, name)


def nemesis(name: str) -> NemesisSpec:
    return _get(Kind.NEMESIS, name)


def all_specs(kind: Kind) -> list[Any]:
    """Every spec of a kind that loads (broken entry points are skipped; see load_errors)."""
    out = []
    for n in names(kind):
        try:
            out.append(_get(kind, n))
        except RegistryError:
            continue
    return out
