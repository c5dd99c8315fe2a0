"""The SSH backend: the hosts of a run are machines (VMs, servers) reached over SSH, sharing nothing with the
controller (asyncssh; one connection per host, harness.backends.sshremote).

On each host, everything the lab makes lives under the one directory the hosts file names (``dir``, default
/var/lib/raftkv-lab):

- ``<dir>/install/<key>/``: the project's venv (harness.install), kept across runs and reused while its key (a hash
  of the sources, requirements and Python) matches; ``harness clean --backend ssh --purge-install`` removes it;
- ``<dir>/runs/<prefix>/<host>/``: one run's ``data/``, ``log/``, ``pids/`` (``pid start-time`` of every daemon the
  lab started) and ``staging/`` (sudo uploads);
- firewall objects named ``<prefix>-*`` / ``<prefix>_*`` (the nemeses' iptables chains, nft tables).

Teardown and `harness clean --backend ssh --hosts ...` run :data:`CLEAN_SH` on every host: it kills the recorded
daemons that are still those very processes, deletes the prefix's chains (and the jumps to them) and tables, and
removes the run directory, then the lab's empty parents. Nothing else on the host is touched.

Host keys are checked against a known_hosts file; ``--ssh-accept-new-host-keys`` accepts a host that has no entry
there and pins its key into the file (a host whose key differs from its entry is always refused). Which keys were
known and which pinned is recorded in test.json (``describe``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import time
from pathlib import Path
from typing import Any

from harness.backends.sshconf import SshConfig, SshHost
from harness.backends.sshremote import ALIVE_FN, HOST_PATH, SshRemote
from harness.install import Bundle, build_bundle, install
from harness.labstate import PrefixLock, check_prefix, default_prefix
from harness.protocols import PythonRuntime, Remote, RemoteError

log = logging.getLogger("harness.ssh")

CONNECT_TIMEOUT_S = 15.0
CLEAN_TIMEOUT_S = 60.0

# sh -c CLEAN_SH sh PREFIX RUN_DIR LAB_DIR MODE   (MODE: list | clean | purge; purge also removes the install cache)
CLEAN_SH = ALIVE_FN + r"""
P="$1"; D="$2"; L="$3"; mode="$4"; killed=""
for f in "$D"/pids/*; do
  [ -f "$f" ] || continue
  read -r pid start <"$f" || continue
  alive "$pid" "$start" || continue
  if [ "$mode" = list ]; then echo "process $pid"; continue; fi
  kill -s CONT "$pid" 2>/dev/null; kill -s KILL "$pid" 2>/dev/null && echo "killed process $pid" && killed="$killed $pid:$start"
done
for ps in $killed; do  # bounded wait: a killed process is gone in milliseconds unless in state D
  i=0; while alive "${ps%%:*}" "${ps#*:}" && [ $i -lt 500 ]; do i=$((i+1)); sleep 0.01; done
done
owned() { case "$1" in "$P"-*|"$P"_*) return 0;; esac; return 1; }
if command -v iptables >/dev/null 2>&1; then
  for t in filter nat mangle raw; do
    chains=$(iptables -w -t "$t" -S 2>/dev/null | awk '$1 == "-N" {print $2}')
    mine=""; for c in $chains; do owned "$c" && mine="$mine $c"; done
    [ -n "$mine" ] || continue
    if [ "$mode" = list ]; then for c in $mine; do echo "iptables chain $t/$c"; done; continue; fi
    iptables -w -t "$t" -S | while read -r rule; do
      set -- $rule
      [ "$1" = -A ] || continue
      owned "$2" && continue
      for c in $mine; do case " $rule " in *" -j $c "*) eval "iptables -w -t $t -D ${rule#-A }";; esac; done
    done
    for c in $mine; do iptables -w -t "$t" -F "$c"; done
    for c in $mine; do iptables -w -t "$t" -X "$c" && echo "deleted iptables chain $t/$c"; done
  done
fi
if command -v nft >/dev/null 2>&1; then
  nft list tables 2>/dev/null | while read -r _ family name; do
    owned "$name" || continue
    if [ "$mode" = list ]; then echo "nft table $family $name"; else nft delete table "$family" "$name" && echo "deleted nft table $family $name"; fi
  done
fi
if [ -e "$D" ]; then
  if [ "$mode" = list ]; then echo "run dir $D"; else rm -rf "$D" && echo "removed $D"; fi
fi
if [ "$mode" = purge ] && [ -e "$L/install" ]; then rm -rf "$L/install" && echo "removed $L/install"; fi
if [ "$mode" != list ]; then
  rmdir "${D%/*}" "$L/runs" "$L" 2>/dev/null || true
fi
exit 0
"""


class SshBackendError(RuntimeError):
    """A host could not be reached, trusted or prepared (the message names the host and what to do)."""


def _known_hosts(path: str) -> Any:
    import asyncssh

    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        text = ""
    except OSError as e:
        raise SshBackendError(f"cannot read known_hosts {path}: {e.strerror or e}") from None
    return asyncssh.import_known_hosts(text)


def _has_entry(known: Any, spec: SshHost) -> bool:
    import asyncssh

    trusted, trusted_ca, revoked, *_ = asyncssh.match_known_hosts(known, spec.address, spec.address, spec.port)
    return bool(trusted or trusted_ca or revoked)


def _pin(path: str, spec: SshHost, key: Any) -> None:
    host = spec.address if spec.port == 22 else f"[{spec.address}]:{spec.port}"
    line = f"{host} {key.export_public_key('openssh').decode().strip()}\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path, "a") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(line)


async def connect(spec: SshHost, config: SshConfig) -> tuple[Any, dict[str, Any]]:
    """One connection to the host, its key checked (or pinned, if allowed and new); returns it and the record of
    its key for test.json. SshBackendError naming the host when it cannot be reached or trusted."""
    import asyncssh

    known = _known_hosts(config.known_hosts)
    new = not _has_entry(known, spec)
    if new and not config.accept_new_host_keys:
        raise SshBackendError(f"{spec.name} ({spec.address}:{spec.port}): its host key is not in {config.known_hosts};"
                              " add it (ssh-keyscan) or pass --ssh-accept-new-host-keys to accept and pin it")
    options: dict[str, Any] = {"port": spec.port, "username": spec.user, "known_hosts": None if new else known,
                               "connect_timeout": CONNECT_TIMEOUT_S}
    if config.key:
        options |= {"client_keys": [config.key], "agent_path": None}
    try:
        conn = await asyncssh.connect(spec.address, **options)
    except asyncssh.HostKeyNotVerifiable as e:
        raise SshBackendError(f"{spec.name} ({spec.address}:{spec.port}): host key does not match "
                              f"{config.known_hosts}: {e} (refused; fix the entry if the host was reinstalled)") from None
    except (OSError, asyncssh.Error) as e:
        raise SshBackendError(f"{spec.name} ({spec.user}@{spec.address}:{spec.port}): cannot connect: {e}") from None
    key = conn.get_server_host_key()
    record = {"host": spec.name, "fingerprint": key.get_fingerprint() if key else None, "pinned": new}
    if new and key is not None:
        _pin(config.known_hosts, spec, key)
        log.warning("%s: accepted and pinned new host key %s into %s", spec.name, record["fingerprint"],
                    config.known_hosts)
    return conn, record


def run_dir(spec: SshHost, prefix: str) -> str:
    return f"{spec.dir}/runs/{prefix}/{spec.name}"


async def clean_host(conn: Any, spec: SshHost, prefix: str, mode: str) -> list[str]:
    """Run CLEAN_SH on a connected host (as root: through sudo for another login); its lines of output."""
    words = ["sh", "-c", CLEAN_SH, "sh", prefix, run_dir(spec, prefix), spec.dir, mode]
    if spec.sudo:
        words = ["sudo", "-n", "--", "env", f"PATH={HOST_PATH}", *words]
    async with asyncio.timeout(CLEAN_TIMEOUT_S):
        done = await conn.run(shlex.join(words), check=False)
    if done.exit_status != 0:
        raise RemoteError(f"{spec.name}: cleaning failed ({done.exit_status}): {str(done.stderr).strip()[:500]}")
    return [f"{spec.name}: {line}" for line in str(done.stdout).splitlines() if line.strip()]


async def check_sudo(conn: Any, spec: SshHost) -> None:
    if not spec.sudo:
        return
    done = await conn.run("sudo -n true", check=False)
    if done.exit_status != 0:
        raise SshBackendError(f"{spec.name}: {spec.user} cannot run sudo without a password "
                              f"({str(done.stderr).strip()[:200] or 'exit ' + str(done.exit_status)}); the lab "
                              "needs root on its hosts: log in as root or allow NOPASSWD sudo (apt-get install sudo)")


class SshBackend:
    """See the module docstring. ``setup(count)`` connects, prepares and installs every host; ``teardown`` is
    idempotent and safe after a partial setup."""

    name = "ssh"

    def __init__(self, config: SshConfig, *, prefix: str | None = None) -> None:
        self.config = config
        self.prefix = check_prefix(prefix or default_prefix())
        self.hosts: list[SshRemote] = []
        self._conns: dict[str, tuple[Any, SshHost]] = {}
        self._lock = PrefixLock(self.prefix)
        self.host_keys: list[dict[str, Any]] = []
        self.install_info: dict[str, Any] = {}

    def _spec(self, host: str) -> SshHost:
        for spec in self.config.hosts:
            if spec.name == host:
                return spec
        raise KeyError(host)

    def data_dir(self, host: str) -> str:
        return f"{run_dir(self._spec(host), self.prefix)}/data"

    def log_dir(self, host: str) -> str:
        return f"{run_dir(self._spec(host), self.prefix)}/log"

    def describe(self) -> dict[str, object]:
        return {"backend": self.name, "prefix": self.prefix, **self.config.describe(), "host_keys": self.host_keys,
                "install": self.install_info}

    async def setup(self, count: int) -> list[Remote]:
        specs = self.config.hosts
        if count != len(specs):
            raise ValueError(f"--nodes {count} but {len(specs)} hosts were given (--hosts/--hosts-file)")
        self._lock.acquire()
        t0 = time.monotonic()
        bundle_task = asyncio.create_task(asyncio.to_thread(build_bundle))
        try:
            async with asyncio.TaskGroup() as tg:
                for spec in specs:
                    tg.create_task(self._connect(spec))
            bundle = await bundle_task
        finally:
            if not bundle_task.done():
                bundle_task.cancel()
        self.install_info = {"key": bundle.key, "bundle_s": round(time.monotonic() - t0, 3), "installed": {}}
        self.hosts = [SshRemote(spec, self._conns[spec.name][0], run_dir=run_dir(spec, self.prefix))
                      for spec in specs]
        t1 = time.monotonic()
        async with asyncio.TaskGroup() as tg:
            for h in self.hosts:
                tg.create_task(self._prepare(h, bundle))
        self.install_info["install_s"] = round(time.monotonic() - t1, 3)
        return list(self.hosts)

    async def _connect(self, spec: SshHost) -> None:
        conn, record = await connect(spec, self.config)
        self._conns[spec.name] = (conn, spec)
        self.host_keys.append(record)
        await check_sudo(conn, spec)
        stale = await clean_host(conn, spec, self.prefix, "list")
        if stale:
            log.warning("removing leftovers of an earlier run with prefix %s: %s", self.prefix, ", ".join(stale))
            await clean_host(conn, spec, self.prefix, "clean")

    async def _prepare(self, host: SshRemote, bundle: Bundle) -> None:
        await host.exec(["mkdir", "-p", *(f"{host.run_dir}/{d}" for d in ("data", "log", "pids", "staging"))])
        if host.spec.sudo:
            await host.exec(["chown", "-R", host.spec.user, host.run_dir])
        runtime, fresh = await install(host, bundle, host.spec.dir)
        host.runtime = PythonRuntime(runtime.python, {"PATH": HOST_PATH}, None)
        self.install_info["installed"][host.name] = fresh

    async def teardown(self) -> None:
        """Kill the run's daemons, remove its firewall objects and its directory on every host reached, close the
        connections, release the prefix. Idempotent."""
        try:
            results = await asyncio.gather(*(clean_host(conn, spec, self.prefix, "clean")
                                             for conn, spec in self._conns.values()), return_exceptions=True)
            for (_, spec), res in zip(self._conns.values(), results, strict=True):
                if isinstance(res, BaseException):
                    log.warning("%s: teardown could not clean (harness clean --backend ssh removes it later): %s",
                                spec.name, res)
                else:
                    log.debug("teardown: %s", res)
            for conn, _ in self._conns.values():
                conn.close()
            await asyncio.gather(*(conn.wait_closed() for conn, _ in self._conns.values()), return_exceptions=True)
        finally:
            self._conns.clear()
            self.hosts = []
            self._lock.release(remove=True)


async def clean_hosts(config: SshConfig, prefix: str, *, purge_install: bool = False) -> tuple[list[str], list[str]]:
    """`harness clean --backend ssh`: remove the prefix's things from every host; (what was removed, what is left)."""
    check_prefix(prefix)

    async def one(spec: SshHost) -> tuple[list[str], list[str]]:
        conn, _ = await connect(spec, config)
        try:
            await check_sudo(conn, spec)
            done = await clean_host(conn, spec, prefix, "purge" if purge_install else "clean")
            return done, await clean_host(conn, spec, prefix, "list")
        finally:
            conn.close()
            await conn.wait_closed()

    results = await asyncio.gather(*(one(s) for s in config.hosts))
    return [d for r in results for d in r[0]], [left for r in results for left in r[1]]
