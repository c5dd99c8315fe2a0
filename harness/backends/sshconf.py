"""Where the SSH backend's hosts are and how to log in to them: ``--hosts``, ``--hosts-file``, ``--ssh-*``.

Pure: parsing and checking only (no connection). Each ``parse_*`` raises ValueError with a message naming the
option or the file and key at fault; harness.cli turns it into exit 254 when the arguments are parsed.

A hosts file (TOML; the Vagrantfile writes one)::

    [ssh]                       # optional defaults for every host; command-line options win over them
    user = "root"
    port = 22
    key = "~/.ssh/id_ed25519"
    known_hosts = "~/.ssh/known_hosts"
    dir = "/var/lib/raftkv-lab" # the one directory the lab owns on each host

    [hosts]
    n1 = "192.168.56.11"                              # name = address
    n2 = { address = "192.168.56.12", port = 2222 }   # or a table: address, port, user, dir

The address is also the one the other hosts reach a node at (as in Jepsen: one address per host).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_USER = "root"
DEFAULT_PORT = 22
DEFAULT_DIR = "/var/lib/raftkv-lab"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
MAX_HOSTS = 200

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_HOST_KEYS = frozenset({"address", "port", "user", "dir"})
_SSH_KEYS = frozenset({"user", "port", "key", "known_hosts", "dir"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SshHost:
    """One host: its node name in the run, the address it is reached at, and how to log in."""

    name: str
    address: str
    port: int = DEFAULT_PORT
    user: str = DEFAULT_USER
    dir: str = DEFAULT_DIR  # the lab-owned directory on the host (install cache and per-prefix run directories)

    @property
    def sudo(self) -> bool:
        """Commands go through ``sudo -n`` when the login is not root (iptables and signals need root)."""
        return self.user != "root"


@dataclass(frozen=True, slots=True, kw_only=True)
class SshConfig:
    """Everything the SSH backend needs to reach its hosts."""

    hosts: tuple[SshHost, ...]
    key: str | None = None  # private key file; None: the user's default keys and agent
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    accept_new_host_keys: bool = False  # pin a host's key on first contact (recorded in test.json)

    def describe(self) -> dict[str, Any]:
        return {"hosts": [{"name": h.name, "address": h.address, "port": h.port, "user": h.user, "dir": h.dir}
                          for h in self.hosts],
                "key": self.key, "known_hosts": self.known_hosts, "accept_new_host_keys": self.accept_new_host_keys}


def check_name(name: str, where: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(f"{where}: host name {name!r} must be a lowercase letter then up to 30 letters, digits "
                         "or dashes (it names the node and its directories)")
    return name


def check_address(address: str, where: str) -> str:
    try:
        ipaddress.ip_address(address)
        return address
    except ValueError:
        pass
    if not _HOSTNAME_RE.match(address):
        raise ValueError(f"{where}: {address!r} is neither an IP address nor a host name")
    return address


def check_port(port: Any, where: str) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"{where}: port {port!r} is not an integer in 1..65535")
    return port


def check_user(user: Any, where: str) -> str:
    if not isinstance(user, str) or not _USER_RE.match(user):
        raise ValueError(f"{where}: user {user!r} is not a valid login name")
    return user


def check_dir(path: Any, where: str) -> str:
    """The lab's directory on a host: absolute, normalised, and deep enough that removing it is never a disaster."""
    if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in "\n\0'\"$`\\"):
        raise ValueError(f"{where}: dir {path!r} must be an absolute path without quotes or $")
    norm = os.path.normpath(path)
    if norm.count("/") < 2:
        raise ValueError(f"{where}: dir {path!r} is too close to / for a directory the lab removes things from; "
                         "use something like /var/lib/raftkv-lab")
    return norm


def parse_hosts(text: str) -> tuple[tuple[str, str], ...]:
    """``--hosts n1=ADDR,n2=ADDR`` -> ((name, address), ...) in the given order."""
    out: list[tuple[str, str]] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, sep, address = item.partition("=")
        if not sep:
            raise ValueError(f"--hosts: {item!r} is not NAME=ADDRESS (e.g. n1=192.168.56.11)")
        out.append((check_name(name.strip(), "--hosts"), check_address(address.strip(), "--hosts")))
    _check_unique([n for n, _ in out], "--hosts")
    if not out:
        raise ValueError("--hosts: no hosts given (e.g. n1=192.168.56.11,n2=192.168.56.12)")
    return tuple(out)


def _check_unique(names: list[str], where: str) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{where}: host name(s) {', '.join(dup)} given twice")
    if len(names) > MAX_HOSTS:
        raise ValueError(f"{where}: {len(names)} hosts, at most {MAX_HOSTS}")


def load_hosts_file(path: str | Path) -> dict[str, Any]:
    """Read and check a hosts file; returns {"ssh": {...defaults}, "hosts": [{name, address, ...}, ...]}."""
    where = str(path)
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as e:
        raise ValueError(f"--hosts-file {where}: cannot read it: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"--hosts-file {where}: not valid TOML: {e}") from None
    unknown = sorted(set(data) - {"ssh", "hosts"})
    if unknown:
        raise ValueError(f"{where}: unknown section(s) {', '.join(unknown)} (expected [ssh] and [hosts])")
    ssh = data.get("ssh", {})
    if not isinstance(ssh, dict) or set(ssh) - _SSH_KEYS:
        raise ValueError(f"{where}: [ssh] may hold only {', '.join(sorted(_SSH_KEYS))}")
    _check_defaults(ssh, f"{where} [ssh]")
    table = data.get("hosts")
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{where}: no [hosts] table (name = \"address\" lines)")
    hosts = [_file_host(name, value, f"{where} [hosts] {name}") for name, value in table.items()]
    _check_unique([h["name"] for h in hosts], where)
    return {"ssh": ssh, "hosts": hosts}


def _check_defaults(ssh: Mapping[str, Any], where: str) -> None:
    if "user" in ssh:
        check_user(ssh["user"], where)
    if "port" in ssh:
        check_port(ssh["port"], where)
    if "dir" in ssh:
        check_dir(ssh["dir"], where)
    for key in ("key", "known_hosts"):
        if key in ssh and not isinstance(ssh[key], str):
            raise ValueError(f"{where}: {key} must be a path string")


def _file_host(name: str, value: Any, where: str) -> dict[str, Any]:
    check_name(name, where)
    if isinstance(value, str):
        return {"name": name, "address": check_address(value, where)}
    if not isinstance(value, dict) or "address" not in value or set(value) - _HOST_KEYS:
        raise ValueError(f"{where}: expected \"ADDRESS\" or {{ address = ..., port/user/dir optional }}")
    out: dict[str, Any] = {"name": name, "address": check_address(str(value["address"]), where)}
    if "port" in value:
        out["port"] = check_port(value["port"], where)
    if "user" in value:
        out["user"] = check_user(value["user"], where)
    if "dir" in value:
        out["dir"] = check_dir(value["dir"], where)
    return out


def ssh_config(*, hosts: tuple[tuple[str, str], ...] | None, hosts_file: Mapping[str, Any] | None,
               user: str | None = None, port: int | None = None, key: str | None = None,
               known_hosts: str | None = None, accept_new_host_keys: bool = False,
               dir: str | None = None) -> SshConfig:
    """The backend's configuration: hosts from ``--hosts`` or a loaded hosts file (exactly one of them), options
    from the command line, else the file's [ssh] section, else the defaults. ValueError naming what is wrong."""
    if (hosts is None) == (hosts_file is None):
        raise ValueError("--backend ssh needs exactly one of --hosts NAME=ADDR,... or --hosts-file FILE")
    defaults = dict(hosts_file["ssh"]) if hosts_file else {}
    entries = list(hosts_file["hosts"]) if hosts_file else [{"name": n, "address": a} for n, a in hosts or ()]

    def pick(flag: Any, entry: Mapping[str, Any], name: str, default: Any) -> Any:
        # a per-host value of the file beats its [ssh] default; the command line beats both
        return flag if flag is not None else entry.get(name, defaults.get(name, default))

    built = tuple(SshHost(name=e["name"], address=e["address"], port=pick(port, e, "port", DEFAULT_PORT),
                          user=pick(user, e, "user", DEFAULT_USER), dir=pick(dir, e, "dir", DEFAULT_DIR))
                  for e in entries)
    key_path = key if key is not None else defaults.get("key")
    if key_path is not None and not Path(os.path.expanduser(key_path)).is_file():
        raise ValueError(f"--ssh-key: no such file {key_path}")
    return SshConfig(hosts=built, key=os.path.expanduser(key_path) if key_path else None,
                     known_hosts=os.path.expanduser(known_hosts or defaults.get("known_hosts") or DEFAULT_KNOWN_HOSTS),
                     accept_new_host_keys=accept_new_host_keys)


def _arg(check: Any) -> Any:
    """An argparse type from a checker: its ValueError becomes the error argparse prints (exit 254)."""
    def parse(text: str) -> Any:
        try:
            return check(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = getattr(check, "__name__", "value")
    return parse


def _port(text: str) -> int:
    try:
        return check_port(int(text), "--ssh-port")
    except ValueError:
        raise ValueError(f"--ssh-port: {text!r} is not an integer in 1..65535") from None


def add_ssh_options(p: argparse.ArgumentParser) -> None:
    """The SSH backend's options (``harness run``, ``campaign`` and ``clean``), checked when parsed."""
    g = p.add_argument_group("ssh backend (--backend ssh)")
    g.add_argument("--hosts", type=_arg(parse_hosts), default=None, metavar="N1=ADDR,...",
                   help="the hosts: node name = address (the address the other nodes reach it at too)")
    g.add_argument("--hosts-file", type=_arg(load_hosts_file), default=None, metavar="FILE",
                   help="a TOML hosts file ([hosts] name = \"address\"; optional [ssh] defaults; the Vagrantfile "
                        "writes one; docs/lab.md)")
    g.add_argument("--ssh-user", type=_arg(lambda s: check_user(s, "--ssh-user")), default=None,
                   help=f"login (default {DEFAULT_USER}; another user needs password-less sudo)")
    g.add_argument("--ssh-key", default=None, help="private key file (default: your ssh keys and agent)")
    g.add_argument("--ssh-port", type=_arg(_port), default=None, help=f"port (default {DEFAULT_PORT})")
    g.add_argument("--ssh-known-hosts", default=None,
                   help=f"the known_hosts file host keys are checked against (default {DEFAULT_KNOWN_HOSTS})")
    g.add_argument("--ssh-accept-new-host-keys", action="store_true",
                   help="accept a host with no known_hosts entry and pin its key into the file (recorded in "
                        "test.json); a key that differs from its entry is always refused")
    g.add_argument("--ssh-dir", type=_arg(lambda s: check_dir(s, "--ssh-dir")), default=None,
                   help=f"the directory the lab owns on each host (default {DEFAULT_DIR})")


SSH_DESTS = ("hosts", "hosts_file", "ssh_user", "ssh_key", "ssh_port", "ssh_known_hosts", "ssh_dir")


def ssh_config_from_args(args: argparse.Namespace) -> SshConfig | None:
    """The SshConfig for ``--backend ssh`` (ValueError when its hosts are missing or the key file is not there);
    None for another backend, which must then have none of the SSH options (ValueError naming them)."""
    if args.backend != "ssh":
        given = [f"--{d.replace('_', '-')}" for d in SSH_DESTS if getattr(args, d, None) is not None]
        if getattr(args, "ssh_accept_new_host_keys", False):
            given.append("--ssh-accept-new-host-keys")
        if given:
            raise ValueError(f"{', '.join(given)} apply to --backend ssh only (this is --backend {args.backend})")
        return None
    return ssh_config(hosts=args.hosts, hosts_file=args.hosts_file, user=args.ssh_user, port=args.ssh_port,
                      key=args.ssh_key, known_hosts=args.ssh_known_hosts,
                      accept_new_host_keys=args.ssh_accept_new_host_keys, dir=args.ssh_dir)
