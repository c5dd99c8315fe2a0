"""The Docker backend (`--backend docker`): one container per host, on a network of the run's own.

Layout for prefix P (everything labelled ``org.raftkv-lab.prefix=P``, so teardown and `harness clean --backend
docker` find exactly it):

- network ``P-net``: a user-defined bridge (Linux bridge ``P-dbr``) on 10.78.X.0/24, ``internal``, with the
  controller at 10.78.X.1 (the bridge's address: the controller reaches every node directly, as on netns);
  dockerd runs with ``--bridge=none --iptables=false --ip-forward=false`` (scripts/docker-setup), so nothing is
  forwarded off the bridge, and each container's default route is deleted: a host reaches only the others and the
  controller;
- container ``P-n<i>`` (hostname ``n<i>``, 10.78.X.(10+i)) from the node image (harness.backends.dockerimage) with
  CAP_NET_ADMIN (iptables inside, for partitions and packet faults); PID 1 is a reaper (deploy/docker/lab-init.py),
  daemons are started by exec; the DB's data and logs live in the container under /var/lib/raftkv-lab/ and the run
  collects the logs through ``download`` (get_archive) before teardown;
- the node image stays cached (it is keyed by the checkout's content); nothing else outlives the run.

Remote is implemented with exec inside the container (the docker SDK over dockerd's socket), so every nemesis works
unchanged: iptables in the container's own network namespace; kill and pause signal the daemon's pid in the
container, not the container; the packet nemesis's NFQUEUE reader runs inside (the kernel is the host's); the clock
shim is uploaded and preloaded like elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import shlex
import signal
import socket
import tarfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.backends.dockerimage import DEFAULT_BASE, ensure_image
from harness.labstate import PrefixLock, check_prefix, default_prefix
from harness.protocols import ExecResult, PythonRuntime, Remote, RemoteError

log = logging.getLogger("harness.docker")

PREFIX_LABEL = "org.raftkv-lab.prefix"
DEFAULT_SOCKET = "/run/raftkv-lab-docker/docker.sock"  # scripts/docker-setup's
HOST_ROOT = "/var/lib/raftkv-lab"
PYTHON = "/opt/venv/bin/python"
INIT = [PYTHON, "/usr/local/bin/raftkv-lab-init"]
SYSCTLS = {"net.ipv4.tcp_rto_max_ms": "1000", "net.ipv4.tcp_syn_retries": "3"}  # as on netns hosts (netns.py)
API_TIMEOUT_S = 60
# exec's own timeout is enforced inside the container (coreutils timeout), so a hung command is really ended.
TIMEOUT_EXIT = 124


class DockerBackendError(RuntimeError):
    """Docker is missing or refused something; the message says what and how to fix it."""


def default_docker_host() -> str:
    """$DOCKER_HOST if set, else the lab's own dockerd (scripts/docker-setup) if its socket exists, else Docker's
    default socket."""
    env = os.environ.get("DOCKER_HOST")
    if env:
        return env
    if Path(DEFAULT_SOCKET).is_socket():
        return f"unix://{DEFAULT_SOCKET}"
    return "unix:///var/run/docker.sock"


def subnet_for(prefix: str) -> str:
    """The first three octets of the prefix's /24 (10.78.X: apart from the netns backend's 10.77.X)."""
    return f"10.78.{1 + zlib.crc32(prefix.encode()) % 254}"


def connect(docker_host: str) -> Any:
    """A docker.DockerClient for docker_host; DockerBackendError saying how to start the lab's dockerd."""
    try:
        import docker
        import docker.errors
    except ImportError:
        raise DockerBackendError("the docker backend needs the docker SDK: pip install docker") from None
    try:
        client = docker.DockerClient(base_url=docker_host, timeout=API_TIMEOUT_S)
        client.ping()
    except (docker.errors.DockerException, OSError) as e:
        raise DockerBackendError(f"no Docker daemon answers at {docker_host} ({e}); start the lab's own with "
                                 "scripts/docker-setup (as root), or pass --docker-host") from None
    return client


def check_docker(options: Mapping[str, Any]) -> None:
    """DockerBackendError unless a daemon answers at the run's address and holds the base image (so a run that
    cannot start says why before it makes anything)."""
    client = connect(options.get("docker_host") or default_docker_host())
    try:
        base = options.get("docker_base_image") or DEFAULT_BASE
        if not client.images.list(name=base):
            raise DockerBackendError(f"the base image {base} is not on the Docker host: make it with "
                                     "scripts/docker-setup, or pass --docker-base-image")
    finally:
        client.close()


class DockerRemote:
    """One host: a container. Every method is an exec or an archive call through dockerd's API, run in a thread
    (the SDK is synchronous)."""

    def __init__(self, backend: DockerBackend, index: int) -> None:
        self.backend = backend
        self.index = index
        self.name = f"n{index}"
        self.address = f"{backend.subnet}.{10 + index}"
        self.container = f"{backend.prefix}-n{index}"

    def python_runtime(self) -> PythonRuntime:
        """harness.protocols.HostPython: the image carries the project, installed in /opt/venv."""
        return PythonRuntime(PYTHON, {}, None)

    def __repr__(self) -> str:
        return f"DockerRemote({self.name} {self.address} container={self.container})"

    async def exec(self, argv: Sequence[str], *, check: bool = True, timeout: float | None = 30.0,
                   stdin: bytes | None = None) -> ExecResult:
        if not argv:
            raise ValueError("exec: empty argv")
        full = list(argv) if timeout is None else ["timeout", "-s", "KILL", f"{timeout:g}", *argv]
        code, out, err = await asyncio.to_thread(self._exec, full, stdin)
        if timeout is not None and code in (TIMEOUT_EXIT, 128 + signal.SIGKILL) and "timeout" not in argv[0]:
            raise RemoteError(f"{self.name}: {' '.join(argv)} timed out after {timeout} s")
        res = ExecResult(tuple(argv), code, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and res.returncode != 0:
            raise RemoteError(f"{self.name}: {' '.join(argv)} exited {res.returncode}: {res.stderr.strip()[:500]}")
        return res

    def _exec(self, argv: list[str], stdin: bytes | None, env: Mapping[str, str] | None = None,
              workdir: str | None = None) -> tuple[int, bytes, bytes]:
        from docker.utils.socket import frames_iter

        api = self.backend.client.api
        try:
            exec_id = api.exec_create(self.container, argv, stdin=stdin is not None, environment=dict(env or {}),
                                      workdir=workdir)["Id"]
            sock = api.exec_start(exec_id, socket=True)
        except Exception as e:  # docker.errors.APIError, or the daemon went away
            raise RemoteError(f"{self.name}: exec {' '.join(argv)} failed: {e}") from None
        out, err = bytearray(), bytearray()
        try:
            raw = getattr(sock, "_sock", sock)
            if stdin is not None:
                raw.sendall(stdin)
            raw.shutdown(socket.SHUT_WR)  # EOF on the command's stdin
            for stream, data in frames_iter(sock, tty=False):
                (out if stream == 1 else err).extend(data)
        finally:
            sock.close()
        code = api.exec_inspect(exec_id)["ExitCode"]
        return (code if code is not None else -1), bytes(out), bytes(err)

    async def upload(self, local: Path, remote: str) -> None:
        """Copy a local file or directory to the path ``remote`` in the container (parents created)."""
        data = await asyncio.to_thread(_tar_of, Path(local), remote.lstrip("/"))
        ok = await asyncio.to_thread(self.backend.client.api.put_archive, self.container, "/", data)
        if not ok:
            raise RemoteError(f"{self.name}: upload of {local} to {remote} refused")

    async def download(self, remote: str, local: Path) -> None:
        """Copy the file or directory ``remote`` from the container to the path ``local``."""
        import docker.errors

        try:
            await asyncio.to_thread(self._download, remote, Path(local))
        except docker.errors.NotFound:
            raise RemoteError(f"{self.name}: no such file {remote}") from None

    def _download(self, remote: str, local: Path) -> None:
        stream, _ = self.backend.client.api.get_archive(self.container, remote)
        buf = io.BytesIO(b"".join(stream))
        with tarfile.open(fileobj=buf) as tar:
            top = Path(remote.rstrip("/")).name
            for member in tar.getmembers():
                rel = Path(member.name).relative_to(top) if member.name != top else Path()
                target = local / rel
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(member)
                    if src is not None:
                        target.write_bytes(src.read())

    async def spawn(self, argv: Sequence[str], *, log_path: str, env: Mapping[str, str] | None = None,
                    cwd: str | None = None) -> int:
        """Start a daemon in the container, in a session of its own, stdout and stderr appended to log_path; its pid
        is the one in the container's pid namespace (what signal and alive take)."""
        script = ('mkdir -p "$(dirname "$1")" && cd "$2" && shift 2 && '
                  'setsid "$@" </dev/null >>"$LOG" 2>&1 & echo $!')
        env = dict(env or {})
        env["LOG"] = log_path
        code, out, err = await asyncio.to_thread(
            self._exec, ["sh", "-c", script.replace('"$LOG"', shlex.quote(log_path)), "sh", log_path, cwd or "/",
                         *argv], None, env)
        if code != 0 or not out.strip().isdigit():
            raise RemoteError(f"{self.name}: spawn {' '.join(argv)} failed ({code}): {err.decode(errors='replace')}")
        return int(out)

    async def signal(self, pid: int, sig: signal.Signals) -> bool:
        """Signal a process in the container. After SIGKILL it returns once the process is reaped (the
        container's PID 1 reaps), so alive() is false at once and a restart may reuse its port."""
        res = await self.exec(["kill", f"-{int(sig)}", str(pid)], check=False, timeout=10)
        if res.returncode != 0:
            return False
        if sig == signal.SIGKILL:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 2.0
            while await self.alive(pid) and loop.time() < deadline:
                await asyncio.sleep(0.01)
        return True

    async def alive(self, pid: int) -> bool:
        """True while pid exists in the container and is not a zombie."""
        res = await self.exec(["cat", f"/proc/{pid}/stat"], check=False, timeout=10)
        if res.returncode != 0:
            return False
        state = res.stdout.rsplit(")", 1)[-1].split()
        return bool(state) and state[0] != "Z"


def _tar_of(local: Path, arcname: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(local), arcname=arcname)
    return buf.getvalue()


class DockerBackend:
    """See the module docstring. ``setup`` then ``teardown``; teardown is idempotent and safe after a partial
    setup (it removes by label, not by what setup remembers)."""

    name = "docker"

    def __init__(self, work_dir: Path, *, prefix: str | None = None, docker_host: str | None = None,
                 base_image: str | None = None) -> None:
        self.prefix = check_prefix(prefix or default_prefix())
        self.subnet = subnet_for(self.prefix)
        self.controller_address = f"{self.subnet}.1"
        self.network = f"{self.prefix}-net"
        self.bridge = f"{self.prefix}-dbr"
        self.work_dir = Path(work_dir)
        self.docker_host = docker_host or default_docker_host()
        self.base_image = base_image or DEFAULT_BASE
        self.image: str | None = None
        self.hosts: list[DockerRemote] = []
        self._client: Any = None
        self._lock = PrefixLock(self.prefix)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.docker_host)
        return self._client

    def data_dir(self, host: str) -> str:
        return f"{HOST_ROOT}/data"

    def log_dir(self, host: str) -> str:
        return f"{HOST_ROOT}/log"

    def describe(self) -> dict[str, object]:
        return {"backend": self.name, "prefix": self.prefix, "docker_host": self.docker_host,
                "image": self.image, "base_image": self.base_image, "network": self.network,
                "subnet": f"{self.subnet}.0/24", "controller": self.controller_address,
                "containers": [h.container for h in self.hosts]}

    async def setup(self, count: int) -> list[Remote]:
        if not 1 <= count <= 200:
            raise ValueError(f"node count must be 1..200, got {count}")
        self._lock.acquire()
        await asyncio.to_thread(lambda: self.client)  # fail early, with the set-up hint, when dockerd is absent
        removed = await asyncio.to_thread(remove_labelled, self.client, self.prefix)
        if removed:
            log.warning("removed leftovers of an earlier run with prefix %s: %s", self.prefix, ", ".join(removed))
        self.image = await asyncio.to_thread(ensure_image, self.client, self.base_image)
        await asyncio.to_thread(self._make_network)
        self.hosts = [DockerRemote(self, i) for i in range(1, count + 1)]
        await asyncio.gather(*(asyncio.to_thread(self._make_container, h) for h in self.hosts))
        await asyncio.gather(*(self._configure(h) for h in self.hosts))
        return list(self.hosts)

    def _make_network(self) -> None:
        import docker.types

        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(
            subnet=f"{self.subnet}.0/24", gateway=self.controller_address)])
        self.client.networks.create(self.network, driver="bridge", internal=True, ipam=ipam,
                                    labels={PREFIX_LABEL: self.prefix},
                                    options={"com.docker.network.bridge.name": self.bridge})

    def _make_container(self, h: DockerRemote) -> None:
        net = self.client.api.create_networking_config(
            {self.network: self.client.api.create_endpoint_config(ipv4_address=h.address)})
        host_config = self.client.api.create_host_config(
            cap_add=["NET_ADMIN"], network_mode=self.network, sysctls=self._sysctls(), init=False)
        created = self.client.api.create_container(
            self.image, command=[], entrypoint=INIT, name=h.container, hostname=h.name,
            labels={PREFIX_LABEL: self.prefix}, host_config=host_config, networking_config=net)
        self.client.api.start(created["Id"])

    def _sysctls(self) -> dict[str, str]:
        return {k: v for k, v in SYSCTLS.items() if Path("/proc/sys", *k.split(".")).exists()}

    async def _configure(self, h: DockerRemote) -> None:
        """No route out, and the DB's directories."""
        await h.exec(["sh", "-c", f"ip route del default 2>/dev/null; mkdir -p {HOST_ROOT}/data {HOST_ROOT}/log"])

    async def teardown(self) -> None:
        """Remove the prefix's containers and network, then release the prefix. Idempotent."""
        try:
            if self._lock.held and self._client is not None:
                removed = await asyncio.to_thread(remove_labelled, self._client, self.prefix)
                log.debug("teardown removed: %s", removed)
        finally:
            self._lock.release(remove=True)
            self.hosts = []
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
                self._client = None


def labelled(client: Any, prefix: str) -> list[str]:
    """What the lab made under prefix on this Docker host: 'container NAME' and 'network NAME' entries."""
    flt = {"label": f"{PREFIX_LABEL}={prefix}"}
    return ([f"container {c.name}" for c in client.containers.list(all=True, filters=flt)]
            + [f"network {n.name}" for n in client.networks.list(filters=flt)])


def remove_labelled(client: Any, prefix: str) -> list[str]:
    """Remove the prefix's containers (killed, with their anonymous volumes), then its networks; return what went."""
    import docker.errors

    flt = {"label": f"{PREFIX_LABEL}={prefix}"}
    removed = []
    for c in client.containers.list(all=True, filters=flt):
        with contextlib.suppress(docker.errors.NotFound):
            c.remove(force=True, v=True)
            removed.append(f"container {c.name}")
    for n in client.networks.list(filters=flt):
        with contextlib.suppress(docker.errors.NotFound):
            n.remove()
            removed.append(f"network {n.name}")
    return removed


def clean_docker(prefix: str, docker_host: str | None = None, *, force: bool = False) -> tuple[list[str], list[str]]:
    """`harness clean --backend docker`: remove the prefix's containers and networks on that Docker host; return
    (what was removed, what is still there). Raises PrefixBusy while a live run holds the prefix, unless force."""
    lock = PrefixLock(check_prefix(prefix))
    try:
        lock.acquire()
    except Exception:
        if not force:
            raise
    client = connect(docker_host or default_docker_host())
    try:
        removed = remove_labelled(client, prefix)
        return removed, labelled(client, prefix)
    finally:
        client.close()
        if lock.held:
            lock.release(remove=True)
