"""`raftkv serve`: run one node until SIGTERM/SIGINT.

Start-up: set up the node log (one line per notable event, timestamped, with the node id; to --log-file and
stderr), recover durable state (refusing to start on corruption: exit code 2 with the error naming file and offset),
bind the peer and client ports, then run the ticker, the ready loop, the peer senders and the snapshotter under one
TaskGroup.

Graceful stop (SIGTERM/SIGINT): new requests get `unavailable`; in-flight requests get up to `grace` seconds to
finish, then writes still in flight are answered `maybe` (proposed; outcome unknown) and queued ones
`unavailable`; the HTTP server and peer listener close; the WAL thread finishes its current batch; files close.
On SIGKILL nothing acknowledged is lost: a write is acknowledged only after its entry is durable on a majority.

Failure stop (a loop fails; in practice a write, fsync or file operation on the data directory: a full disk, an
I/O error, raftkv.server.wal.DiskIOError naming the file and the operation): the node never retries it. Before it
stops it answers everyone waiting, so no client sees a dropped connection: writes proposed and not yet answered
get `maybe` (they may commit on the other nodes without this one), writes still queued here (never proposed) and
reads still waiting get `unavailable` (definite: they did nothing), new requests get `unavailable`; then the HTTP
server closes after their answers went out, the error is logged (CRITICAL, `fatal: disk I/O failed: <operation>
<file>: ...`) and `raftkv serve` exits with code 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
from typing import Any

from aiohttp import web

from .config import ServerConfig
from .http_api import Api
from .node import Node


def setup_log(cfg: ServerConfig) -> logging.Logger:
    log = logging.getLogger(f"raftkv.node.{cfg.id}")
    log.setLevel(logging.INFO)
    log.propagate = False
    fmt = logging.Formatter(f"%(asctime)s.%(msecs)03dZ {cfg.id} %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    fmt.converter = time.gmtime
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if cfg.log_file is not None:
        cfg.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(cfg.log_file))
    for h in handlers:
        h.setFormatter(fmt)
        log.addHandler(h)
    return log


async def serve(cfg: ServerConfig, log: logging.Logger, *, grace: float = 2.0) -> None:
    node = Node(cfg, log)
    node.recover()
    gc.freeze()  # what recovery loaded lives long: keep it out of every later collection
    transport = node.make_transport()
    await transport.start_server(cfg.listen)
    runner = web.ServerRunner(Api(node).server(), handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    host, _, port = cfg.client.rpartition(":")
    site = web.TCPSite(runner, host.strip("[]"), int(port), reuse_address=True, backlog=1024)
    await site.start()
    log.info("serving: peers on %s, clients on %s (%s), members %s", cfg.listen, cfg.client,
             cfg.advertised_client_url, ",".join(f"{k}={v}" for k, v in sorted(cfg.peers.items())))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(node.run_ticker(), name="ticker"),
                     tg.create_task(node.run_ready_loop(), name="ready"),
                     tg.create_task(node.run_snapshotter(), name="snapshotter"),
                     tg.create_task(transport.run_senders(), name="senders")]
            await stop.wait()
            log.info("stop requested: finishing in-flight requests (up to %.1fs)", grace)
            node.stopping = True
            deadline = time.monotonic() + grace
            while not node.idle() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            node.fail_all_pending("the node is shutting down")
            await runner.cleanup()
            for t in tasks:
                t.cancel()
    except Exception as failed:
        await _answer_everyone(node, runner, log, failed)
        raise
    finally:
        with contextlib.suppress(Exception):
            await transport.close()
        node.close()
        log.info("stopped")


async def _answer_everyone(node: Node, runner: web.ServerRunner, log: logging.Logger, failed: Exception) -> None:
    """A loop failed (see the module docstring, "Failure stop"): answer every waiting request, then close the HTTP
    server once the answers went out. The caller logs the failure itself as fatal."""
    causes = list(failed.exceptions) if isinstance(failed, ExceptionGroup) else [failed]
    why = "; ".join(str(c) for c in causes)
    log.error("stopping on a failure: %d write(s) in flight answered maybe, %d queued write(s) and %d read(s) "
              "unavailable: %s", *node.waiting(), why)
    node.stopping = True
    node.fail_all_pending(f"the node stopped on a failure: {why}")
    with contextlib.suppress(Exception):  # closing after a failure: nothing more to save
        await runner.cleanup()


def run(cfg: ServerConfig) -> int:
    log = setup_log(cfg)
    # The WAL thread needs the GIL twice per batch (to start, and to hand the result back). With the default 5 ms
    # switch interval it can wait that long behind a busy event loop each time; 0.5 ms halved the p99 write
    # latency under load in bench/kv_throughput.py at the same CPU per write.
    sys.setswitchinterval(0.0005)
    uvloop: Any
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        uvloop = None
    try:
        if uvloop is not None:
            uvloop.run(serve(cfg, log))
        else:
            asyncio.run(serve(cfg, log))
    except KeyboardInterrupt:
        return 0
    except Exception as e:  # refusing to start (corruption, bind failure) or a crash: say why in the node log
        causes = list(e.exceptions) if isinstance(e, BaseExceptionGroup) else [e]
        for cause in causes:
            log.critical("fatal: %s", cause, exc_info=not isinstance(cause, OSError | RuntimeError))
        return 2
    return 0
