"""The CLI (serve from a config file with --memory; get/put/delete/status with exit codes), `python -m raftkv`,
and the documented error table staying in step with the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from server_cluster import ROOT, free_port

from raftkv.api import ERRORS
from raftkv.client import SyncKVClient, VersionMismatch

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def raftkv(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "raftkv", *args], env=ENV, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_openapi_and_api_module_document_the_same_error_table() -> None:
    text = (ROOT / "docs" / "openapi.yaml").read_text()
    rows = dict(re.findall(r"^\s*\| ([a-z-]+)\s*\| (\d{3})\s*\|", text, re.M))
    assert rows == {code: str(k.http_status) for code, k in ERRORS.items()}
    definite = dict(re.findall(r"^\s*\| ([a-z-]+)\s*\| \d{3}\s*\| (yes|NO)", text, re.M))
    assert {c: v == "yes" for c, v in definite.items()} == {c: k.definite for c, k in ERRORS.items()}
    enum = re.search(r"error: \{type: string, enum: \[([^\]]+)\]", text)
    assert enum and {e.strip() for e in enum.group(1).split(",")} == set(ERRORS)


def test_bad_arguments_exit_254_with_a_message() -> None:
    r = raftkv("serve", "--id", "n1")
    assert r.returncode == 254 and "--listen is required" in r.stderr
    r = raftkv("serve", "--id", "n1", "--listen", "127.0.0.1:1", "--client", "127.0.0.1:2", "--peers", "n1",
               "--memory")
    assert r.returncode == 254 and "--peers" in r.stderr
    r = raftkv("put", "k", "v", "--cluster", "127.0.0.1:1")
    assert r.returncode == 254 and "--version" in r.stderr
    assert raftkv("--help").returncode == 0


def test_serve_from_config_file_in_memory_and_the_client_commands(tmp_path: Path) -> None:
    host = "127.0.0.90"
    peer, client = f"{host}:{free_port(host)}", f"{host}:{free_port(host)}"
    cfg = tmp_path / "n1.toml"
    cfg.write_text(f'id = "n1"\nlisten = "{peer}"\nclient = "{client}"\nmemory = true\nlease = true\ntick-ms = 20\n'
                   f'log_file = "{tmp_path / "n1.log"}"\n[peers]\nn1 = "{peer}"\n')
    p = subprocess.Popen([sys.executable, "-m", "raftkv", "serve", "--config", str(cfg)], env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            r = raftkv("status", "--cluster", client, "--json", timeout=10)
            if r.returncode == 0 and '"role": "leader"' in r.stdout:
                break
            assert time.monotonic() < deadline, r
            time.sleep(0.1)
        log = (tmp_path / "n1.log").read_text()
        assert "NOTHING IS WRITTEN TO DISK" in log
        assert raftkv("put", "k", "hello", "--version", "0", "--cluster", client).returncode == 0
        r = raftkv("put", "k", "x", "--version", "0", "--cluster", client)
        assert r.returncode == 1 and "version-mismatch" in r.stderr
        r = raftkv("get", "k", "--cluster", client)
        assert r.returncode == 0 and r.stdout.startswith("hello\t(version 1)")
        r = raftkv("get", "k", "--consistency", "lease", "--cluster", client)
        assert r.returncode == 0 and r.stdout.startswith("hello\t(version 1)")
        r = raftkv("status", "--cluster", client)
        assert r.returncode == 0 and "n1: leader" in r.stdout
        with SyncKVClient([client], timeout=5) as kv:  # the blocking client against the same node
            assert kv.put("s", "sync", 0).version == 1
            assert (kv.get("s").value, kv.get("s", consistency="stale").version) == ("sync", 1)
            with pytest.raises(VersionMismatch):
                kv.put("s", "again", 0)
            assert kv.delete("s", 1).version == 0 and not kv.get("s").found
            assert kv.status()["role"] == "leader"
        assert raftkv("delete", "k", "--version", "1", "--cluster", client).returncode == 0
        r = raftkv("get", "k", "--cluster", client)
        assert r.returncode == 1 and "no such key" in r.stdout
        r = raftkv("delete", "k", "--version", "1", "--cluster", client)
        assert r.returncode == 1 and "no-key" in r.stderr
    finally:
        p.terminate()
        assert p.wait(20) == 0
    r = raftkv("get", "k", "--cluster", client, "--timeout", "0.5")
    assert r.returncode == 3, r


@pytest.mark.parametrize("peers", ["n1=127.0.0.1:1,n1=127.0.0.1:2", "n1=nohost"])
def test_bad_peer_lists_are_named(peers: str) -> None:
    r = raftkv("serve", "--id", "n1", "--listen", "127.0.0.1:1", "--client", "127.0.0.1:2", "--peers", peers,
               "--memory")
    assert r.returncode == 254 and "--peers" in r.stderr


def test_json_config_as_the_lab_writes_it(tmp_path: Path) -> None:
    import json

    from raftkv.server.config import ConfigError, ServerConfig, load_file, parse_peers

    cfg = tmp_path / "raftkv.json"
    cfg.write_text(json.dumps({"id": "n2", "listen": "10.0.0.2:7000", "client": "10.0.0.2:8000",
                               "peers": {"n1": "10.0.0.1:7000", "n2": "10.0.0.2:7000", "n3": "10.0.0.3:7000"},
                               "data_dir": str(tmp_path / "d"), "log_file": str(tmp_path / "l.log"),
                               "tick_ms": 10, "election_ticks": 20, "heartbeat_ticks": 1, "seed": 7}))
    opts = load_file(cfg)
    opts["peers"] = parse_peers(opts["peers"])
    opts["data_dir"], opts["log_file"] = Path(opts["data_dir"]), Path(opts["log_file"])
    c = ServerConfig(**opts)
    assert (c.id, c.tick_ms, c.election_ticks, c.seed, len(c.peers)) == ("n2", 10, 20, 7, 3)
    assert c.advertised_client_url == "http://10.0.0.2:8000"
    cfg.write_text('{"id": "n2", "bogus": 1}')
    with pytest.raises(ConfigError, match="unknown option 'bogus'"):
        load_file(cfg)


def test_a_port_in_use_refuses_to_start_with_exit_2(tmp_path: Path) -> None:
    import socket

    host = "127.0.0.91"
    with socket.socket() as busy:
        busy.bind((host, free_port(host)))
        busy.listen()
        taken = f"{host}:{busy.getsockname()[1]}"
        peer = f"{host}:{free_port(host)}"
        r = raftkv("serve", "--id", "n1", "--listen", peer, "--client", taken, "--peers", f"n1={peer}",
                   "--memory", "--log-file", str(tmp_path / "n1.log"))
    assert r.returncode == 2
    assert "fatal" in (tmp_path / "n1.log").read_text() and "address already in use" in r.stderr.lower()
