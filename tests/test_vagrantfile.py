"""The Vagrantfile is valid Ruby and writes the hosts file the SSH backend reads (issue 12).

No VM provider runs here, so the file is not booted: it is checked with `ruby -c`, then its top level is run with a
stub `Vagrant` module (the VM definitions are left out) and the hosts file it writes is read by the SSH backend's
own parser. Skipped, saying why, where Debian's ruby is not installed (scripts/bootstrap --test installs it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.backends.sshconf import load_hosts_file, ssh_config

ROOT = Path(__file__).resolve().parents[1]
STUB = "module Vagrant; def self.configure(*); end; end; load ARGV[0]"

pytestmark = pytest.mark.skipif(shutil.which("ruby") is None,
                                reason="needs Debian's ruby for `ruby -c` (apt-get install ruby)")


def test_vagrantfile_is_valid_ruby() -> None:
    done = subprocess.run(["ruby", "-c", str(ROOT / "Vagrantfile")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Syntax OK" in done.stdout, done.stderr


@pytest.mark.parametrize(("nodes", "subnet"), [("5", None), ("3", "10.9.8")])
def test_vagrantfile_writes_the_hosts_file_the_ssh_backend_reads(tmp_path: Path, nodes: str,
                                                                 subnet: str | None) -> None:
    shutil.copy(ROOT / "Vagrantfile", tmp_path / "Vagrantfile")
    (tmp_path / "key").write_text("not a real key\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RAFTKV_LAB_NODES": nodes,
           "RAFTKV_LAB_SSH_KEY": str(tmp_path / "key"), **({"RAFTKV_LAB_SUBNET": subnet} if subnet else {})}
    done = subprocess.run(["ruby", "-e", STUB, str(tmp_path / "Vagrantfile")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    config = ssh_config(hosts=None, hosts_file=load_hosts_file(tmp_path / "vagrant-hosts.toml"))
    prefix = subnet or "192.168.56"
    assert [(h.name, h.address, h.user, h.port) for h in config.hosts] == \
        [(f"n{i}", f"{prefix}.{10 + i}", "root", 22) for i in range(1, int(nodes) + 1)]
    assert config.key == str(tmp_path / "key") and config.hosts[0].dir == "/var/lib/raftkv-lab"
