"""The seam between DB-neutral workloads and the DBs that serve them (issue 14).

A DB-neutral workload (`set`, `list-append`) is a generator, a checker and an operation vocabulary (its module
docstring and checker/ name the ops and their values); it knows no DB. A DB supplies, for each such workload it
supports, a client speaking that vocabulary: its `harness.registry.DBSpec.clients` maps the workload's name to a
factory `(options) -> Client` (an unopened harness.protocols.Client; the engine opens one per worker on the
worker's node). The raftkv adapter's are in workloads/raftkv_clients.py; a second DB adds its own table to its
DBSpec and every neutral workload runs on it unchanged.

The workload's `client` entry is :func:`client_of`: at run time it looks up the run's DB (`--db`, else the
workload's default) and asks it for the client. A DB that has none for the workload raises
:class:`NoClientError` naming both and what the DB does offer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from harness import registry
from harness.protocols import Client


class NoClientError(LookupError):
    """The run's DB supplies no client for this workload (the message names the DB, the workload, the offer)."""


def dbspec_client(dbspec: registry.DBSpec, workload: str) -> Callable[[Mapping[str, Any]], Client]:
    """The DB's client factory for `workload`, or NoClientError."""
    factory = dbspec.clients.get(workload)
    if factory is None:
        offered = ", ".join(sorted(dbspec.clients)) or "none"
        raise NoClientError(f"db {dbspec.name} supplies no client for the {workload} workload "
                            f"(it supplies: {offered})")
    return factory


def client_of(workload: str, default_db: str) -> Callable[[Mapping[str, Any]], Client]:
    """The `client` entry of a DB-neutral Workload: `(options) -> Client` from the run's DB (options["db"], else
    `default_db`)."""

    def make(options: Mapping[str, Any]) -> Client:
        return dbspec_client(registry.db(str(options.get("db") or default_db)), workload)(options)

    make.__qualname__ = make.__name__ = f"client_of_{workload.replace('-', '_')}"
    return make
