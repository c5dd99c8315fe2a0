"""Argument time: the roles of a run looked up in the registry and checked against each other (the DB's client
for the workload, the failpoints, refusals, backend features, each nemesis's ``db_needs``, fault kinds handled
twice), before anything exists. Every problem is a :class:`~harness.runconfig.ConfigError` (exit 254)."""

from __future__ import annotations

from harness import detection, registry
from harness.backends import FEATURES
from harness.runconfig import ALL_NEMESES, ConfigError, RunConfig


def resolve(config: RunConfig) -> tuple[registry.Workload, registry.DBSpec, list[registry.NemesisSpec]]:
    """Look the roles up in the registry; every unknown name, a DB that supplies no client for the workload
    (registry.client_for) or lacks a capability a nemesis needs (its ``db_needs``) is a ConfigError, raised before
    anything exists (the CLI calls this at argument time: exit 254)."""
    try:
        workload = registry.workload(config.workload)
        dbspec = registry.db(_db_name(config, workload))
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
    _check_backend_features(nems, config.backend)
    _check_db_needs(dbspec, nems, config)
    _check_kinds_once(nems)
    return workload, dbspec, nems


def _db_name(config: RunConfig, workload: registry.Workload) -> str:
    """--db, else the workload's own DB, else the only registered one (ConfigError when that is ambiguous)."""
    db_name = config.db or workload.db
    if db_name is not None:
        return db_name
    dbs = registry.names(registry.Kind.DB)
    if len(dbs) != 1:
        raise ConfigError(f"workload {workload.name} names no DB and --db is not given "
                          f"(available: {', '.join(dbs) or 'none'})")
    return dbs[0]


def _check_backend_features(nems: list[registry.NemesisSpec], backend: str) -> None:
    have = FEATURES.get(backend, frozenset())
    for spec in nems:
        if not spec.needs <= have:
            raise ConfigError(f"nemesis {spec.name} needs {', '.join(sorted(spec.needs - have))}, which backend "
                              f"{backend} does not offer (it runs: {', '.join(runnable_nemeses(backend))})")


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


def _check_kinds_once(nems: list[registry.NemesisSpec]) -> None:
    """ConfigError when two selected nemeses handle one fault kind: the composite nemesis routes a kind to one."""
    seen: dict[str, str] = {}
    for spec in nems:
        for kind in spec.kinds:
            if kind in seen:
                raise ConfigError(f"fault kind {kind!r} is handled by both nemesis {seen[kind]} and {spec.name}")
            seen[kind] = spec.name


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
