"""One host reached over SSH (asyncssh): harness's Remote protocol on a machine that shares nothing with the
controller.

- One connection per host; every command is a channel of it. A login other than root runs every command through
  ``sudo -n`` (iptables, signals and the DB's daemons need root; the hosts file says who logs in).
- ``exec`` with a timeout is bounded on both sides: coreutils ``timeout`` kills the command on the host, and the
  controller gives up on the channel a little later.
- Daemons are started detached (``setsid``, stdin from /dev/null, output appended to their log) and each one's
  ``pid start-time`` is written to ``<run dir>/pids/<pid>``: `harness clean` kills exactly those processes (a pid
  whose start time differs is someone else's, recycled) and nothing else.
- Files move by SFTP. With sudo, an upload lands in the user's own staging directory first and is moved into
  place as root; a download falls back to a root copy into staging when the user cannot read the file.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import shlex
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncssh

from harness.backends.sshconf import SshHost
from harness.protocols import ExecResult, PythonRuntime, RemoteError

log = logging.getLogger("harness.ssh")

KILL_GRACE_S = 2  # coreutils timeout: SIGKILL this long after the SIGTERM at the deadline
CHANNEL_SLACK_S = 5.0  # the controller waits this much longer than the host-side timeout
GONE_POLLS = 500  # after SIGKILL: up to 500 x 10 ms for the process to be gone (one command, not 500)
# The standard PATH of a Debian root shell: the controller's own PATH (a venv, pyenv) means nothing on a host.
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# `alive PID START`: true when the process exists, is not a zombie and started when the recorded one did.
# Fields of /proc/PID/stat after "pid (comm) ": 1 = state, 20 = start time (comm may hold spaces: cut at ") ").
ALIVE_FN = ('alive() { s=$(sed "s/.*) //" /proc/"$1"/stat 2>/dev/null) || return 1; want=$2; set -- $s; '
            '[ "$1" != Z ] && [ "$1" != X ] && [ "${20}" = "$want" ]; }; ')


def wrap(argv: Sequence[str], *, sudo: bool, timeout: float | None) -> str:
    """The command line a host runs for argv: ``[sudo -n -- env PATH=...] [timeout -k G T] argv``, each word
    quoted."""
    words = list(argv)
    if timeout is not None:
        words = ["timeout", "-k", str(KILL_GRACE_S), str(max(1, math.ceil(timeout))), *words]
    if sudo:  # sudo's PATH is the login's unless the host's sudoers sets secure_path: name the sbin dirs here
        words = ["sudo", "-n", "--", "env", f"PATH={HOST_PATH}", *words]
    return shlex.join(words)


def spawn_script(argv: Sequence[str], *, log_path: str, pid_dir: str, env: Mapping[str, str] | None,
                 cwd: str | None) -> str:
    """The shell script that starts argv detached and prints its pid. In a non-interactive shell a background job
    is not a process-group leader, so ``setsid`` calls setsid(2) without forking and ``$!`` is the daemon's own
    pid (it execs ``env`` which execs argv)."""
    env_words = [f"{k}={v}" for k, v in (env or {}).items()]
    command = shlex.join(["setsid", "env", *env_words, *argv])
    log_dir = str(Path(log_path).parent)
    return (f"mkdir -p {shlex.quote(pid_dir)} {shlex.quote(log_dir)} && cd {shlex.quote(cwd or '/')} && "
            f"{{ {command} >>{shlex.quote(log_path)} 2>&1 </dev/null & }} && pid=$! && "
            f"start=$(sed 's/.*) //' /proc/$pid/stat | cut -d' ' -f20) && "
            f"echo \"$pid $start\" >{shlex.quote(pid_dir)}/$pid && echo \"$pid $start\"")


class SshRemote:
    """See the module docstring. Built by SshBackend once it is connected; ``runtime`` is set by the install step."""

    def __init__(self, spec: SshHost, conn: Any, *, run_dir: str) -> None:
        self.spec = spec
        self.name = spec.name
        self.address = spec.address
        self.conn = conn  # asyncssh.SSHClientConnection
        self.run_dir = run_dir  # <dir>/runs/<prefix>, owned by the login user
        self.pid_dir = f"{run_dir}/pids"
        self.runtime: PythonRuntime | None = None
        self._started: dict[int, str] = {}  # pid -> start time, for the daemons this remote spawned
        self._sftp: Any = None
        self._sftp_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SshRemote({self.name} {self.spec.user}@{self.address}:{self.spec.port})"

    def python_runtime(self) -> PythonRuntime:
        """harness.protocols.HostPython: the project's venv on this host (harness.install)."""
        if self.runtime is None:
            raise RemoteError(f"{self.name}: the project is not installed on this host yet (install step)")
        return self.runtime

    async def exec(self, argv: Sequence[str], *, check: bool = True, timeout: float | None = 30.0,
                   stdin: bytes | None = None) -> ExecResult:
        if not argv:
            raise ValueError("exec: empty argv")
        command = wrap(argv, sudo=self.spec.sudo, timeout=timeout)
        try:
            async with asyncio.timeout(None if timeout is None else timeout + KILL_GRACE_S + CHANNEL_SLACK_S):
                done = await self.conn.run(command, input=stdin, encoding=None, check=False)
        except TimeoutError:
            raise RemoteError(f"{self.name}: {' '.join(argv)} timed out after {timeout} s "
                              "(the channel did not close)") from None
        except OSError as e:  # asyncssh's connection errors (ConnectionLost, DisconnectError) are OSErrors
            raise RemoteError(f"{self.name}: {' '.join(argv)}: the SSH connection failed: {e}") from None
        code = done.exit_status if done.exit_status is not None else 128 + 9
        out = (done.stdout or b"").decode(errors="replace")
        err = (done.stderr or b"").decode(errors="replace")
        if timeout is not None and code in (124, 137):
            raise RemoteError(f"{self.name}: {' '.join(argv)} timed out after {timeout} s")
        res = ExecResult(tuple(argv), code, out, err)
        if check and code != 0:
            raise RemoteError(f"{self.name}: {' '.join(argv)} exited {code}: {err.strip()[:500]}")
        return res

    async def _sh(self, script: str, *args: str, check: bool = True, timeout: float | None = 30.0) -> ExecResult:
        return await self.exec(["sh", "-c", script, "sh", *args], check=check, timeout=timeout)

    async def _sftp_client(self) -> Any:
        async with self._sftp_lock:
            if self._sftp is None:
                self._sftp = await self.conn.start_sftp_client()
            return self._sftp

    def _staging(self, name: str) -> str:
        return f"{self.run_dir}/staging/{secrets.token_hex(6)}-{Path(name).name}"

    async def upload(self, local: Path, remote: str) -> None:
        """Copy one file (SFTP) to ``remote`` on the host, creating its directory; the mode bits travel too."""
        sftp = await self._sftp_client()
        target = self._staging(remote) if self.spec.sudo else remote
        await self.exec(["mkdir", "-p", str(Path(remote).parent)])
        if self.spec.sudo:  # the staging directory is the user's own (its run dir); the target may be root's
            await self._sh('mkdir -p "$1" && chown "$2" "$1"', str(Path(target).parent), self.spec.user)
        try:
            await sftp.put(str(local), target, preserve=True)
        except (OSError, asyncssh.Error) as e:
            raise RemoteError(f"{self.name}: uploading {local} to {remote} failed: {e}") from None
        if self.spec.sudo:
            await self.exec(["mv", "-f", target, remote])

    async def download(self, remote: str, local: Path) -> None:
        sftp = await self._sftp_client()
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        try:
            await sftp.get(remote, str(local))
            return
        except (OSError, asyncssh.Error) as e:
            if not self.spec.sudo or "ermission" not in str(e):
                raise RemoteError(f"{self.name}: downloading {remote} failed: {e}") from None
        copy = self._staging(remote)
        await self._sh('mkdir -p "${2%/*}" && cp "$1" "$2" && chown "$3" "$2"', remote, copy, self.spec.user)
        try:
            await sftp.get(copy, str(local))
        finally:
            await self.exec(["rm", "-f", copy], check=False)

    async def spawn(self, argv: Sequence[str], *, log_path: str, env: Mapping[str, str] | None = None,
                    cwd: str | None = None) -> int:
        script = spawn_script(argv, log_path=log_path, pid_dir=self.pid_dir, env=env, cwd=cwd)
        res = await self._sh(script)
        try:
            pid_s, start = res.stdout.split()
            pid = int(pid_s)
        except ValueError:
            raise RemoteError(f"{self.name}: spawning {argv[0]} printed {res.stdout!r}, not 'PID START'") from None
        self._started[pid] = start
        return pid

    def _start_of(self, pid: int) -> str:
        start = self._started.get(pid)
        if start is None:
            raise RemoteError(f"{self.name}: pid {pid} was not started by this backend; refusing to signal it")
        return start

    async def signal(self, pid: int, sig: signal.Signals) -> bool:
        """Signal a daemon this remote started (only if it is still that very process). After SIGKILL it returns
        once the process is gone, so alive() is false at once and a restart may reuse its ports."""
        start = self._start_of(pid)
        name = sig.name.removeprefix("SIG")
        script = f'{ALIVE_FN}alive "$1" "$2" || exit 3; kill -s {name} "$1" || exit 3'
        if sig == signal.SIGKILL:
            script += (f'; i=0; while alive "$1" "$2"; do i=$((i+1)); [ $i -gt {GONE_POLLS} ] && exit 4; '
                       'sleep 0.01; done')
        res = await self._sh(script, str(pid), start, check=False)
        if res.returncode == 4:
            log.warning("%s: pid %d still not gone %g s after SIGKILL (state D?)", self.name, pid, GONE_POLLS / 100)
        elif res.returncode not in (0, 3):
            raise RemoteError(f"{self.name}: kill -{name} {pid} exited {res.returncode}: {res.stderr.strip()}")
        return res.returncode != 3

    async def alive(self, pid: int) -> bool:
        start = self._start_of(pid)
        res = await self._sh(f'{ALIVE_FN}alive "$1" "$2"', str(pid), start, check=False)
        return res.returncode == 0

    async def close(self) -> None:
        if self._sftp is not None:
            self._sftp.exit()
            self._sftp = None
        self.conn.close()
        await self.conn.wait_closed()
