"""Workloads and the system-under-test adapter (registered through entry points in pyproject.toml).

- `workloads.raftkv_db`: the raftkv DB adapter (`raftkv`): config, start, kill, pause, status, metrics, leader;
- `workloads.register`: the `register` workload: independent versioned keys through raftkv.client, checked with
  the checker's versioned-kv model per key;
- `workloads.set`, `workloads.list_append`: DB-neutral workloads (generator + checker + operation vocabulary); the
  run's DB supplies their client through its DBSpec.clients (the seam: `harness.registry.client_for`), raftkv's in
  `workloads.raftkv_clients` (an optimistic read-modify-write of a JSON array through the versioned put);
- `workloads.common`: the shared `--keys` option, key names, the unique-writes generator and final reads.

Workloads talk to raftkv only through its client library (raftkv.client), never its internals.
"""
