"""The `raftkv` command: `serve` runs a node; `get`, `put`, `delete`, `status` talk to a cluster.

    raftkv serve --id n1 --listen 127.0.0.1:7001 --client 127.0.0.1:8001 \\
        --peers n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003 --data-dir /var/lib/raftkv/n1
    raftkv serve --config n1.toml            (same keys as the flags; flags override the file)
    raftkv serve ... --memory                (no disk at all: state is lost on restart)
    raftkv get KEY [--consistency linearizable|lease|stale] --cluster 127.0.0.1:8001,127.0.0.1:8002
    raftkv put KEY VALUE --version N --cluster ...
    raftkv delete KEY --version N --cluster ...
    raftkv status --cluster ...              (every node's /status)

`put` and `delete` open a client session of their own (docs/server.md "Exactly-once writes"): the library's
retries within one command apply the write at most once.

Exit codes of the client commands: 0 done; 1 definite refusal (version-mismatch, no-key, session-expired, bad
request); 2 indeterminate (maybe, timeout: the write may have applied); 3 unavailable (nothing took effect);
254 bad arguments. `serve` exits 0 after a graceful stop and 2 when it refuses to start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .client import (
    Indeterminate,
    KVClient,
    NoKey,
    RaftKVError,
    Unavailable,
    VersionMismatch,
)

EXIT_OK, EXIT_REFUSED, EXIT_MAYBE, EXIT_UNAVAILABLE, EXIT_USAGE = 0, 1, 2, 3, 254


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's default exit code 2 would read as "maybe"
        self.print_usage(sys.stderr)
        print(f"raftkv: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="raftkv", description="raftkv: a replicated key-value store on Raft")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    s = sub.add_parser("serve", help="run a node")
    s.add_argument("--config", type=Path, help="TOML or JSON file with the same options")
    s.add_argument("--id")
    s.add_argument("--listen", help="HOST:PORT for Raft peer traffic")
    s.add_argument("--client", help="HOST:PORT for the HTTP client API")
    s.add_argument("--peers", help="ID=HOST:PORT,... of every member, this node included")
    s.add_argument("--data-dir", type=Path)
    s.add_argument("--memory", action="store_true", default=None, help="no disk at all (state lost on restart)")
    s.add_argument("--log-file", type=Path, help="node event log (also written to stderr)")
    s.add_argument("--tick-ms", type=int, help="length of one Raft tick (default 100)")
    s.add_argument("--election-ticks", type=int, help="election timeout in ticks (randomized up to 2x; default 10)")
    s.add_argument("--heartbeat-ticks", type=int, help="heartbeat interval in ticks (default 1)")
    s.add_argument("--snapshot-entries", type=int, help="snapshot after this many applied entries (default 10000)")
    s.add_argument("--segment-bytes", type=int, help="WAL segment size (default 64 MiB)")
    s.add_argument("--lease", action="store_true", default=None, help="serve reads from the leader lease")
    s.add_argument("--request-timeout-s", type=float, help="default request deadline (default 5)")
    s.add_argument("--max-frame", type=int, help="largest peer frame accepted (default 64 MiB)")
    s.add_argument("--cluster-id", type=int, help="default: a CRC32 of the member ids")
    s.add_argument("--client-url", help="URL followers redirect clients to (default http://<--client>)")
    s.add_argument("--seed", type=int, help="seed of the election-timeout randomness")
    s.add_argument("--client-header-timeout-s", type=float,
                   help="a client's request head must arrive within this many seconds (default 10)")
    s.add_argument("--client-body-timeout-s", type=float,
                   help="a client's request body must arrive within this many seconds (default 10)")
    s.add_argument("--max-client-connections", type=int,
                   help="open client connections beyond this are refused (default 4096, and never more than the "
                        "descriptor limit allows)")
    s.add_argument("--peer-secret-file", type=Path,
                   help="file holding the cluster's shared secret (>= 16 bytes): peers must prove they know it "
                        "(without one, anyone who reaches the peer port can speak as a member)")
    s.add_argument("--allow-failpoints", action="store_true",
                   help="TEST LABS ONLY: let RAFTKV_FAILPOINTS=a,b plant those bugs (docs/failpoints.md); "
                        "without this flag (or RAFTKV_ALLOW_FAILPOINTS=1) a node with RAFTKV_FAILPOINTS set "
                        "refuses to start")

    def client_args(c: argparse.ArgumentParser) -> None:
        c.add_argument("--cluster", required=True, help="client addresses HOST:PORT,... of the nodes")
        c.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
        c.add_argument("--json", action="store_true", help="print the raw result as JSON")

    g = sub.add_parser("get", help="read a key")
    g.add_argument("key")
    g.add_argument("--consistency", choices=("linearizable", "lease", "stale"), default="linearizable")
    g.add_argument("--node", help="ask this node first (for stale reads: only this node)")
    client_args(g)
    u = sub.add_parser("put", help="write a key if its version matches (0 = create)")
    u.add_argument("key")
    u.add_argument("value")
    u.add_argument("--version", type=int, required=True)
    client_args(u)
    d = sub.add_parser("delete", help="delete a key if its version matches")
    d.add_argument("key")
    d.add_argument("--version", type=int, required=True)
    client_args(d)
    st = sub.add_parser("status", help="show every node's status")
    client_args(st)
    return p


def _serve(args: argparse.Namespace) -> int:
    from .failpoints import FailpointError, enabled_from
    from .server.config import ConfigError, ServerConfig, load_file, parse_peers
    from .server.main import run

    try:
        opts: dict[str, Any] = load_file(args.config) if args.config else {}
        for name in ("id", "listen", "client", "peers", "data_dir", "memory", "log_file", "tick_ms",
                     "election_ticks", "heartbeat_ticks", "snapshot_entries", "segment_bytes", "lease",
                     "request_timeout_s", "max_frame", "cluster_id", "client_url", "seed", "peer_secret_file",
                     "client_header_timeout_s", "client_body_timeout_s", "max_client_connections"):
            v = getattr(args, name)
            if v is not None:
                opts[name] = v
        for req in ("id", "listen", "client", "peers"):
            if req not in opts:
                raise ConfigError(f"--{req} is required (on the command line or in --config)")
        opts["peers"] = parse_peers(opts["peers"])
        for name in ("data_dir", "log_file", "peer_secret_file"):
            if opts.get(name) is not None:
                opts[name] = Path(opts[name])
        opts["failpoints"] = enabled_from(os.environ, args.allow_failpoints)
        cfg = ServerConfig(**opts)
        cfg.peer_secret()  # an unreadable or short secret is a usage error, before anything starts
    except (ConfigError, FailpointError, TypeError) as e:
        print(f"raftkv serve: {e}", file=sys.stderr)
        return EXIT_USAGE
    return run(cfg)


async def _client_cmd(args: argparse.Namespace) -> int:
    cluster = [a for a in args.cluster.split(",") if a]
    async with KVClient(cluster, timeout=args.timeout) as kv:
        try:
            if args.cmd == "get":
                r = await kv.get(args.key, consistency=args.consistency, node=args.node)
                if args.json:
                    print(json.dumps({"value": r.value, "version": r.version, "node": r.node}))
                elif not r.found:
                    print(f"{args.key}: no such key")
                    return EXIT_REFUSED
                else:
                    print(f"{r.value}\t(version {r.version})")
                return EXIT_OK
            if args.cmd in ("put", "delete"):
                if args.cmd == "put":
                    w = await kv.put(args.key, args.value, args.version)
                else:
                    w = await kv.delete(args.key, args.version)
                print(json.dumps({"version": w.version}) if args.json else f"ok: {args.key} now at version "
                      f"{w.version}")
                return EXIT_OK
            rows: list[dict[str, Any]] = []
            for node in cluster:
                try:
                    rows.append(await kv.status(node))
                except RaftKVError as e:
                    rows.append({"node": node, "error": str(e)})
            if args.json:
                print(json.dumps(rows, indent=1))
            else:
                for row in rows:
                    if "error" in row:
                        print(f"{row['node']}: unreachable ({row['error']})")
                    else:
                        print(f"{row['id']}: {row['role']:<13} term {row['term']:<5} "
                              f"leader {row['leader'] or '-':<6} commit {row['commit']:<8} "
                              f"applied {row['applied']:<8} snapshot {row['last_snapshot']['index']}")
            return EXIT_OK if any("error" not in row for row in rows) else EXIT_UNAVAILABLE
        except (VersionMismatch, NoKey) as e:
            print(f"refused: {e.code}: {e}", file=sys.stderr)
            return EXIT_REFUSED
        except Indeterminate as e:
            print(f"MAYBE: {e.code}: {e} (the write may or may not have applied)", file=sys.stderr)
            return EXIT_MAYBE
        except Unavailable as e:
            print(f"unavailable: {e}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        except RaftKVError as e:
            print(f"error: {e.code}: {e}", file=sys.stderr)
            return EXIT_REFUSED


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "serve":
        return _serve(args)
    return asyncio.run(_client_cmd(args))


if __name__ == "__main__":
    sys.exit(main())
