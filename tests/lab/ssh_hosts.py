"""SSH test hosts: network-namespace hosts (the netns backend's) each running a real sshd (Debian's
openssh-server), for the SSH backend's tests.

Each host's sshd runs in a mount namespace of its own in which /etc/passwd, /etc/group, /etc/shadow and
/etc/sudoers are test copies that add one login, ``rlab``, with a plain /bin/sh (root's shell start-up here runs
pyenv and costs ~145 ms a command, FAULTS.md) and password-less sudo, so the backend's sudo path is the one tested;
the machine's own files are never changed. Each host has its own host key, its own config and its own lab
directory (``/var/tmp/raftkv-ssh-*/hN/lab``: disjoint, and the backend is not told they share a disk). The
controller's key (generated here) is the one authorised. The hosts file the backend reads is written like the
Vagrantfile's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.backends.netns import NetnsBackend, NetnsRemote

USER, UID = "rlab", 47110
SSHD = "/usr/sbin/sshd"


def ssh_unavailable() -> str | None:
    for tool, package in ((SSHD, "openssh-server"), ("ssh-keygen", "openssh-client"), ("sudo", "sudo"),
                          ("unshare", "util-linux")):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian: apt-get install {package}; scripts/bootstrap --test)"
    return None


@dataclass
class SshHosts:
    backend: NetnsBackend  # the namespaces the sshds live in
    base: Path  # /var/tmp/raftkv-ssh-*: per host lab dirs and sshd files
    hosts_file: Path
    key: Path
    known_hosts: Path
    sshd_pids: dict[str, int]

    def lab_dir(self, host: str) -> Path:
        return self.base / host / "lab"


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def _etc_overlay(d: Path) -> dict[str, Path]:
    """Copies of the account files with the test login added (shell /bin/sh, no password, NOPASSWD sudo)."""
    home = d / "home"
    home.mkdir(mode=0o755)
    os.chown(home, UID, UID)
    passwd = Path("/etc/passwd").read_text() + f"{USER}:x:{UID}:{UID}:lab:{home}:/bin/sh\n"
    group = Path("/etc/group").read_text() + f"{USER}:x:{UID}:\n"
    shadow = Path("/etc/shadow").read_text() + f"{USER}:*:19000:0:99999:7:::\n"
    sudoers = f"Defaults !fqdn\nDefaults !syslog\nroot ALL=(ALL:ALL) ALL\n{USER} ALL=(ALL:ALL) NOPASSWD: ALL\n"
    return {"/etc/passwd": _write(d / "passwd", passwd), "/etc/group": _write(d / "group", group),
            "/etc/shadow": _write(d / "shadow", shadow, 0o640), "/etc/sudoers": _write(d / "sudoers", sudoers, 0o440)}


def _sshd_config(d: Path, host: NetnsRemote, authorized: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    return _write(d / "sshd_config", "\n".join([
        f"ListenAddress {host.address}", "Port 22", f"HostKey {d / 'host_key'}", "PidFile none", "UsePAM no",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
        f"AuthorizedKeysFile {authorized}", "StrictModes no", f"AllowUsers {USER}", "Subsystem sftp internal-sftp",
        "MaxSessions 64", "MaxStartups 64", "LogLevel ERROR", ""]))


async def start_ssh_hosts(backend: NetnsBackend, base: Path) -> SshHosts:
    """sshd on every host of an up netns backend; returns once each accepts TCP on port 22."""
    key = base / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    authorized = _write(base / "authorized_keys", (base / "id_ed25519.pub").read_text())
    overlay = _etc_overlay(base)
    pids, lines = {}, []
    for host in backend.hosts:
        d = base / host.name
        d.mkdir(mode=0o755)
        config = _sshd_config(d, host, authorized)
        binds = "; ".join(f"mount --bind {src} {dst}" for dst, src in overlay.items())
        # /run of this mount namespace is a tmpfs (sshd's privilege separation directory /run/sshd, sudo's and
        # iptables' lock files): nothing is made on the machine's own /run
        script = (f"set -e; mount -t tmpfs -o mode=755 tmpfs /run; mkdir -m 755 /run/sshd; {binds}; "
                  f"exec {SSHD} -D -e -f {config}")
        pids[host.name] = await host.spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                           log_path=str(d / "sshd.log"))
        lines.append(f'{host.name} = {{ address = "{host.address}", dir = "{d / "lab"}" }}')
    hosts_file = _write(base / "hosts.toml", f'[ssh]\nuser = "{USER}"\nkey = "{key}"\n'
                        f'known_hosts = "{base / "known_hosts"}"\n\n[hosts]\n' + "\n".join(lines) + "\n")
    for host in backend.hosts:
        await _await_port(host, 22)
    return SshHosts(backend, base, hosts_file, key, base / "known_hosts", pids)


async def _await_port(host: NetnsRemote, port: int, deadline_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        probe = await host.exec(["timeout", "2", "bash", "-c", f"echo > /dev/tcp/{host.address}/{port}"],
                                check=False)
        if probe.returncode == 0:
            return
        if loop.time() > end:
            raise AssertionError(f"sshd on {host.name} never listened: "
                                 f"{(Path(host.backend.work_dir) / host.name).as_posix()}")
        await asyncio.sleep(0.05)  # nothing to await but the listening socket


def make_base() -> Path:
    """A directory the test login can traverse (pytest's tmp dirs are root-only, mode 700)."""
    base = Path(tempfile.mkdtemp(prefix="raftkv-ssh-", dir="/var/tmp"))
    base.chmod(0o755)
    return base
