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
                     "max_frame"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
        if self.election_ticks <= self.heartbeat_ticks:
            raise ConfigError("--election-ticks must exceed --heartbeat-ticks")
        unknown = sorted(n for n in self.failpoints if n not in FAILPOINTS)
        if unknown:
            raise ConfigError(f"unknown failpoints: {', '.join(unknown)}")

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
