"""A node refuses options that do not fit together, before it binds anything (issue 13, item 6), and reads its
peer secret once, with a clear error for a bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftkv.cli import EXIT_USAGE, main
from raftkv.server.config import ConfigError, ServerConfig

PEERS = {"n1": "127.0.0.1:7001", "n2": "127.0.0.1:7002", "n3": "127.0.0.1:7003"}


def _cfg(**kw: object) -> ServerConfig:
    opts: dict[str, object] = {"id": "n1", "listen": "127.0.0.1:7001", "client": "127.0.0.1:8001",
                               "peers": dict(PEERS), "memory": True, **kw}
    return ServerConfig(**opts)  # type: ignore[arg-type]


def test_listen_must_be_the_nodes_own_peers_entry() -> None:
    with pytest.raises(ConfigError, match=r"--listen 127.0.0.1:9999 differs .* n1=127.0.0.1:7001"):
        _cfg(listen="127.0.0.1:9999")


def test_a_wildcard_listen_on_the_same_port_is_the_one_allowed_difference() -> None:
    assert _cfg(listen="0.0.0.0:7001").listen == "0.0.0.0:7001"  # a container binding every interface
    with pytest.raises(ConfigError, match="differs"):
        _cfg(listen="0.0.0.0:7009")


def test_two_members_on_one_address_are_refused() -> None:
    with pytest.raises(ConfigError, match="n2 and n3 share the address 127.0.0.1:7002"):
        _cfg(peers={**PEERS, "n3": "127.0.0.1:7002"})


def test_the_peer_secret_is_read_stripped_and_must_be_long_enough(tmp_path: Path) -> None:
    good = tmp_path / "secret"
    good.write_bytes(b"  0123456789abcdef0123\n")
    assert _cfg(peer_secret_file=good).peer_secret() == b"0123456789abcdef0123"
    assert _cfg().peer_secret() is None
    short = tmp_path / "short"
    short.write_bytes(b"tiny\n")
    with pytest.raises(ConfigError, match="at least 16 bytes, got 4"):
        _cfg(peer_secret_file=short).peer_secret()
    with pytest.raises(ConfigError, match="missing"):
        _cfg(peer_secret_file=tmp_path / "missing").peer_secret()


def test_the_command_line_refuses_before_starting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = tmp_path / "short"
    short.write_bytes(b"tiny")
    peers = ",".join(f"{k}={v}" for k, v in PEERS.items())
    base = ["serve", "--id", "n1", "--client", "127.0.0.1:8001", "--peers", peers, "--memory"]
    assert main([*base, "--listen", "127.0.0.1:7001", "--peer-secret-file", str(short)]) == EXIT_USAGE
    assert "at least 16 bytes" in capsys.readouterr().err
    assert main([*base, "--listen", "127.0.0.1:7005"]) == EXIT_USAGE
    assert "differs from this node's own --peers entry" in capsys.readouterr().err
