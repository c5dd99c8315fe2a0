"""Workloads and the system-under-test adapter (registered through entry points in pyproject.toml).

- `workloads.raftkv_db`: the raftkv DB adapter (`raftkv`): config, start, kill, pause, status, metrics, leader;
- `workloads.register`: the `register` workload: independent versioned keys through raftkv.client, checked with
  the checker's versioned-kv model per key.

Workloads talk to raftkv only through its client library (raftkv.client), never its internals.
"""
