"""`ServerConfig`: everything `raftkv serve` takes, from flags or a config file (TOML or JSON), validated.

Config file keys are the long flag names with '-' or '_' (e.g. `data_dir`, `tick-ms`); `peers` may be a table
`{n1 = "127.0.0.1:7001", ...}` or the flag's string form. Flags given on the command line override the file.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from raftkv.failpoints import FAILPOINTS

MIN_SECRET_BYTES = 16


class ConfigError(ValueError):
    """A bad option: names the option and what is wrong with it."""


def parse_addr(name: str, value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{name}: expected HOST:PORT, got {value!r}")
    return value


def parse_peers(value: str | dict[str, str]) -> dict[str, str]:
    if isinstance(value, dict):
        items = list(value.items())
    else:
        items = []
        for part in value.split(","):
            pid, sep, addr = part.strip().partition("=")
            if not sep or not pid:
                raise ConfigError(f"--peers: expected ID=HOST:PORT,..., got {part!r}")
            items.append((pid.strip(), addr.strip()))
    peers: dict[str, str] = {}
    for pid, addr in items:
        if pid in peers:
            raise ConfigError(f"--peers: {pid!r} appears twice")
        peers[pid] = parse_addr(f"--peers {pid}", str(addr))
    return peers


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    id: str
    listen: str  # peer (Raft) address to bind
    client: str  # HTTP client API address to bind
    peers: dict[str, str]  # every member id -> peer address (including this node)
    data_dir: Path | None = None
    memory: bool = False
    log_file: Path | None = None
    tick_ms: int = 100
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    snapshot_entries: int = 10_000  # make a snapshot after this many applied entries since the last one
    segment_bytes: int = 64 * 1024 * 1024
    lease: bool = False
    request_timeout_s: float = 5.0
    max_frame: int = 64 * 1024 * 1024
    cluster_id: int | None = None  # default: derived from the member ids
    client_url: str | None = None  # the URL other nodes redirect clients to (default http://<client>)
    seed: int | None = None  # seeds the election-timeout randomness (default: from the OS)
    peer_secret_file: Path | None = None  # the cluster's shared secret; peers prove they know it (transport.py)
    client_header_timeout_s: float = 10.0  # a request head must arrive within this of connecting / the last answer
    client_body_timeout_s: float = 10.0  # a request body must arrive within this once its head has
    max_client_connections: int = 4096  # beyond this (or the descriptor limit) new clients are refused
    # Planted bugs (raftkv/failpoints.py), test labs only: set by `raftkv serve` from RAFTKV_FAILPOINTS plus the
    # explicit allow, never from a config file.
    failpoints: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.id:
            raise ConfigError("--id is required")
        if self.id not in self.peers:
            raise ConfigError(f"--peers must include this node's id {self.id!r} (got {sorted(self.peers)})")
        parse_addr("--listen", self.listen)
        parse_addr("--client", self.client)
        if self.memory == (self.data_dir is not None):
            raise ConfigError("give exactly one of --data-dir DIR and --memory")
        for name in ("tick_ms", "election_ticks", "heartbeat_ticks", "snapshot_entries", "segment_bytes",
                     "max_frame", "max_client_connections"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
        for name in ("client_header_timeout_s", "client_body_timeout_s", "request_timeout_s"):
            if not 0 < getattr(self, name) <= 3600:
                raise ConfigError(f"--{name.replace('_', '-')} must be in (0, 3600]")
        if self.election_ticks <= self.heartbeat_ticks:
            raise ConfigError("--election-ticks must exceed --heartbeat-ticks")
        unknown = sorted(n for n in self.failpoints if n not in FAILPOINTS)
        if unknown:
            raise ConfigError(f"unknown failpoints: {', '.join(unknown)}")
        own = self.peers[self.id]
        host, _, port = self.listen.rpartition(":")
        if self.listen != own and not (host.strip("[]") in ("0.0.0.0", "::") and own.rpartition(":")[2] == port):
            raise ConfigError(f"--listen {self.listen} differs from this node's own --peers entry "
                              f"{self.id}={own}: the other members would dial the latter (only a wildcard "
                              f"address on the same port, e.g. 0.0.0.0:{own.rpartition(':')[2]}, may differ)")
        owners: dict[str, str] = {}
        for pid, addr in sorted(self.peers.items()):
            if addr in owners:
                raise ConfigError(f"--peers: {owners[addr]} and {pid} share the address {addr}")
            owners[addr] = pid

    def peer_secret(self) -> bytes | None:
        """The shared secret from --peer-secret-file (surrounding whitespace stripped), or None when there is
        none. ConfigError for a file that cannot be read or holds fewer than MIN_SECRET_BYTES."""
        if self.peer_secret_file is None:
            return None
        try:
            secret = Path(self.peer_secret_file).read_bytes().strip()
        except OSError as e:
            raise ConfigError(f"--peer-secret-file {self.peer_secret_file}: {e.strerror or e}") from None
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"--peer-secret-file {self.peer_secret_file}: the secret must be at least "
                              f"{MIN_SECRET_BYTES} bytes, got {len(secret)}")
        return secret

    @property
    def advertised_client_url(self) -> str:
        return self.client_url or f"http://{self.client}"


def load_file(path: Path) -> dict[str, Any]:
    """Read a TOML (.toml) or JSON config file into flag-name -> value (underscored)."""
    try:
        text = path.read_text()
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as e:
        raise ConfigError(f"--config {path}: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {path}: expected a table of options")
    known = {f.name for f in fields(ServerConfig)} - {"failpoints"}  # failpoints come only from the environment
    out = {}
    for k, v in raw.items():
        name = k.replace("-", "_")
        if name not in known:
            raise ConfigError(f"--config {path}: unknown option {k!r}")
        out[name] = v
    return out
