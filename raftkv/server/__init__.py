"""raftkv.server: the node process, the only part of raftkv with asyncio, sockets, threads and files.

- `main`: `raftkv serve` (logging, start-up, graceful stop); `config`: options and config files.
- `node`: asyncio around the sans-I/O core (the ready loop: send -> persist -> send-after-persist -> apply).
- `storage` over `wal` (segmented, checksummed records: `records`) and `snapfiles` (snapshot files).
- `transport` over `frames`: peer connections. `http_api`: the client API. `metrics`: Prometheus.
See docs/server.md.
"""
