"""The SSH backend's pure parts: hosts and options checked at argument time (exit 254 naming what is wrong), the
command lines it sends, and the install step's wheel. The backend against real sshd hosts: tests/lab/test_lab_ssh.py."""

from __future__ import annotations

import base64
import hashlib
import shlex
import zipfile
from pathlib import Path

import pytest

from harness.backends.sshconf import load_hosts_file, parse_hosts, ssh_config
from harness.backends.sshremote import spawn_script, wrap
from harness.cli import main
from harness.install import build_project_wheel, host_requirements, source_files


def test_hosts_option_parses_names_and_addresses_in_order() -> None:
    assert parse_hosts("n1=10.0.0.11, n2=vm2.example.org,n3=fd00::3") == (
        ("n1", "10.0.0.11"), ("n2", "vm2.example.org"), ("n3", "fd00::3"))


@pytest.mark.parametrize(("text", "says"), [("n1", "NAME=ADDRESS"), ("n1=10.0.0.1,n1=10.0.0.2", "given twice"),
                                            ("N1=10.0.0.1", "host name"), ("n1=bad address", "neither"), ("", "no hosts")])
def test_bad_hosts_option_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_hosts(text)


def test_hosts_file_defaults_per_host_values_and_command_line_precedence(tmp_path: Path) -> None:
    f = tmp_path / "hosts.toml"
    f.write_text('[ssh]\nuser = "lab"\nport = 2200\ndir = "/srv/lab"\n\n[hosts]\nn1 = "10.0.0.11"\n'
                 'n2 = { address = "10.0.0.12", port = 22, dir = "/srv/other" }\n')
    config = ssh_config(hosts=None, hosts_file=load_hosts_file(f))
    assert [(h.name, h.user, h.port, h.dir, h.sudo) for h in config.hosts] == [
        ("n1", "lab", 2200, "/srv/lab", True), ("n2", "lab", 22, "/srv/other", True)]
    forced = ssh_config(hosts=None, hosts_file=load_hosts_file(f), user="root", port=23)
    assert {(h.user, h.port, h.sudo) for h in forced.hosts} == {("root", 23, False)}


@pytest.mark.parametrize(("text", "says"), [("[hosts]\n", "no \\[hosts\\]"), ("[hosts]\nn1 = 3\n", "expected"),
                                            ('[hosts]\nn1 = "a"\n[extra]\n', "unknown section"),
                                            ('[ssh]\ndir = "/"\n[hosts]\nn1 = "a"\n', "too close to /"),
                                            ('[ssh]\nport = 0\n[hosts]\nn1 = "a"\n', "port"), ("x = [", "TOML")])
def test_bad_hosts_file_names_file_and_fault(tmp_path: Path, text: str, says: str) -> None:
    f = tmp_path / "hosts.toml"
    f.write_text(text)
    with pytest.raises(ValueError, match=says):
        load_hosts_file(f)


@pytest.mark.parametrize("argv", [
    ["run", "--backend", "ssh"],  # no hosts
    ["run", "--backend", "ssh", "--hosts", "n1=10.0.0.1", "--hosts-file", "/nonexistent"],
    ["run", "--backend", "ssh", "--hosts", "n1=10.0.0.1", "--ssh-port", "70000"],
    ["run", "--backend", "ssh", "--hosts", "n1=10.0.0.1", "--ssh-key", "/nonexistent/key"],
    ["run", "--backend", "ssh", "--hosts", "n1=10.0.0.1,n2=10.0.0.2", "--nodes", "3"],
    ["run", "--hosts", "n1=10.0.0.1"],  # an SSH option without --backend ssh
    ["clean", "--backend", "ssh", "--hosts", "n1=bad address"],
])
def test_bad_ssh_arguments_exit_254(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--prefix", "rtzz"]) == 254
    assert capsys.readouterr().err.strip()


def test_commands_go_through_sudo_and_a_host_side_timeout() -> None:
    assert shlex.split(wrap(["iptables", "-S"], sudo=False, timeout=2.5)) == \
        ["timeout", "-k", "2", "3", "iptables", "-S"]
    words = shlex.split(wrap(["echo", "a b"], sudo=True, timeout=None))
    assert words[:3] == ["sudo", "-n", "--"] and words[-2:] == ["echo", "a b"]


def test_spawn_script_detaches_records_pid_and_quotes() -> None:
    script = spawn_script(["python", "-m", "x y"], log_path="/l/a b.log", pid_dir="/r/pids", env={"K": "v w"},
                          cwd=None)
    assert "setsid env 'K=v w' python -m 'x y' >>'/l/a b.log' 2>&1 </dev/null &" in script
    assert '>/r/pids/$pid' in script and script.startswith("mkdir -p /r/pids /l &&")


def test_project_wheel_holds_every_source_file_with_a_true_record(tmp_path: Path) -> None:
    wheel = build_project_wheel(tmp_path)
    root = Path(__file__).resolve().parents[2]
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert {f.relative_to(root).as_posix() for f in source_files()} <= names
        assert "nemesis/clock_shim.c" in names and "raftkv/__main__.py" in names
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD"))
        for line in z.read(f"{info}/RECORD").decode().splitlines():
            name, digest, size = line.split(",")
            if digest:
                data = z.read(name)
                want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                assert digest == f"sha256={want}" and int(size) == len(data)
        assert "raftkv = raftkv.cli:main" in z.read(f"{info}/entry_points.txt").decode()


def test_host_requirements_come_from_pyproject() -> None:
    assert {r.split(">")[0] for r in host_requirements()} == {"aiohttp", "msgpack", "prometheus-client", "uvloop"}
