"""What a run of the lab has created on this machine, on disk, so a later `harness clean` can remove exactly that.

Per prefix, a directory ``/run/raftkv-lab/<prefix>/`` holds:

- ``lock``: held (flock) by the controller for the whole life of its hosts; the kernel drops it when the controller
  dies, however it dies, so "locked" means "a live run owns this prefix".
- ``state.json``: the controller's (pid, start time), the work directory and every process the backend spawned, as
  (pid, start time) pairs, so clean kills only those very processes, never a recycled PID.

The prefix names everything: namespaces ``<prefix>-n<i>``, links ``<prefix>-br`` / ``<prefix>-v<i>``, and by
convention the nemeses' iptables chains, nft tables and cgroups ``<prefix>-*`` or ``<prefix>_*``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.procs import ProcId, identify

PREFIX_ENV = "RAFTKV_LAB_PREFIX"
DEFAULT_PREFIX = "rkl"
# /run/raftkv-lab as root; a per-user directory otherwise (the local backend needs no root).
STATE_ROOT = Path(os.environ.get("RAFTKV_LAB_STATE_ROOT") or (
    "/run/raftkv-lab" if os.geteuid() == 0 else os.path.join(tempfile.gettempdir(), f"raftkv-lab-state-{os.getuid()}")))
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")


class PrefixError(ValueError):
    """A prefix that cannot name interfaces safely (caller misuse)."""


class PrefixBusy(RuntimeError):
    """Another live controller holds this prefix."""


def check_prefix(prefix: str) -> str:
    """Validate: 1 to 8 lowercase letters or digits, starting with a letter (so ``<prefix>-v12`` fits in the 15
    characters of an interface name, and no prefix is a prefix of another's names once the dash is added)."""
    if not _PREFIX_RE.match(prefix):
        raise PrefixError(f"lab prefix {prefix!r} must be 1-8 lowercase letters/digits starting with a letter "
                          f"(set {PREFIX_ENV})")
    return prefix


def default_prefix() -> str:
    return check_prefix(os.environ.get(PREFIX_ENV, DEFAULT_PREFIX))


def owns(prefix: str, name: str) -> bool:
    """Whether a name (namespace, link, chain, table, cgroup) belongs to this prefix."""
    return name.startswith(prefix + "-") or name.startswith(prefix + "_")


def work_root(prefix: str) -> Path:
    """Where the hosts' data and log directories of the prefix's runs live (one sub-directory per run)."""
    return Path(tempfile.gettempdir()) / f"raftkv-lab-{check_prefix(prefix)}"


def known_prefixes() -> list[str]:
    """Every prefix a run has used on this machine (those with a state directory), sorted."""
    try:
        return sorted(d.name for d in STATE_ROOT.iterdir() if d.is_dir() and _PREFIX_RE.match(d.name))
    except OSError:
        return []


def state_dir(prefix: str) -> Path:
    return STATE_ROOT / check_prefix(prefix)


@dataclass(slots=True)
class LabState:
    prefix: str
    controller: ProcId | None = None
    work_dir: str | None = None
    pids: list[ProcId] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return state_dir(self.prefix) / "state.json"

    def save(self) -> None:
        """Atomically (write a temporary file, then rename) so a crash never leaves half a state file."""
        d = state_dir(self.prefix)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f"state.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({
            "prefix": self.prefix,
            "controller": self.controller.to_json() if self.controller else None,
            "work_dir": self.work_dir,
            "pids": [p.to_json() for p in self.pids],
        }))
        os.replace(tmp, self.path)

    def add_pid(self, pid: int) -> None:
        p = identify(pid)
        if p is not None:
            self.pids.append(p)
            self.save()

    @classmethod
    def load(cls, prefix: str) -> LabState | None:
        """The saved state, or None when there is none. A corrupt file yields an empty state (clean then relies on
        names alone) rather than an error, since clean must always be able to run."""
        path = state_dir(prefix) / "state.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return cls(prefix)
        st = cls(prefix)
        try:
            st.controller = ProcId.from_json(data["controller"]) if data.get("controller") else None
            st.work_dir = data.get("work_dir")
            st.pids = [ProcId.from_json(p) for p in data.get("pids", [])]
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls(prefix)
        return st

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class PrefixLock:
    """The flock that says a live controller owns a prefix. Not re-entrant; release() is idempotent."""

    def __init__(self, prefix: str) -> None:
        self.prefix = check_prefix(prefix)
        self._fd: int | None = None

    def acquire(self) -> None:
        d = state_dir(self.prefix)
        path = d / "lock"
        for _ in range(20):  # bounded: only a racing release(remove=True) makes us go round
            d.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise PrefixBusy(f"a run with lab prefix {self.prefix!r} is active (controller pid {holder}); wait "
                                 f"for it, or use another prefix: {PREFIX_ENV}=... harness run ...") from None
            # The owner may have unlinked the file between our open and our flock (release(remove=True)): a lock
            # on an unlinked inode guards nothing, so only a lock on the file the path names now counts.
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
                self._fd = fd
                return
            os.close(fd)
        raise PrefixBusy(f"could not take the lock of lab prefix {self.prefix!r}: it kept being removed")

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self, *, remove: bool = False) -> None:
        """Drop the lock. With remove=True (after a complete clean) also unlink the lock file and remove the
        prefix's state directory if nothing else is left in it, so that finished runs leave nothing in /run.
        Safe against a racing acquire(): it only trusts a lock on the file the path still names."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if remove:
                d = state_dir(self.prefix)
                (d / "lock").unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    d.rmdir()  # fails, harmlessly, while a state file with pids to clean is still there
            os.close(fd)
