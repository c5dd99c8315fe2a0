"""The disk fault layer: a FUSE pass-through file system over one node's data directory, with a control socket.

Run as ``python -m nemesis.diskfs --backing DIR --mount DIR --control SOCKET --name NAME`` (as root, in the mount
namespace the node's own namespace is a slave of: see nemesis.disk). ``NAME`` (the lab prefix's
``<prefix>-disk-<node>``) is the file system's source name in /proc/mounts, which is how `harness clean` finds the
mount. The backing directory holds ``data/`` (the tree the node sees) and ``stash/`` (what lose-unsynced keeps).

Mounted with direct_io and no attribute or entry caching: every read, write and lookup reaches this process, so a
pause holds reads too and a crash's undo is seen at once by a restarted node.

Control: one JSON object per line on the unix socket, one JSON answer per line (`{"ok": true, ...}` or
`{"ok": false, "error": ...}`); see `Control.handle` for the commands. Faults (`Faults`): pass, pause (every
operation waits until the mode changes), slow (each allocating write and each fsync sleeps delay +- jitter; a
switch to eio meanwhile fails it), eio
(mutating operations and fsyncs fail with EIO), full (allocating operations and fsyncs fail with ENOSPC).
Orthogonal to them, lose-unsynced tracking (nemesis.unsynced) and file corruption (nemesis.corrupt).
"""

from __future__ import annotations

import argparse
import enum
import errno
import json
import logging
import os
import random
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import mfusepy
from mfusepy import FuseOSError

from nemesis.corrupt import Corruption, corrupt_one
from nemesis.unsynced import Unsynced

log = logging.getLogger("diskfs")


class Mode(enum.Enum):
    PASS = "pass"
    PAUSE = "pause"
    SLOW = "slow"
    EIO = "eio"
    FULL = "full"


class Kind(enum.Enum):
    """What an operation does to the disk, which decides which faults hit it."""

    READ = 0  # lookups, reads, listings: only a pause holds them
    CHANGE = 1  # unlink, rmdir, truncate, chmod: frees or keeps space (EIO fails them, ENOSPC does not)
    ALLOC = 2  # write, create, mkdir, rename...: may need space
    SYNC = 3  # fsync, fsyncdir


class Faults:
    """The active fault, shared by the FUSE threads and the control thread."""

    def __init__(self, seed: int = 0) -> None:
        self._cond = threading.Condition()
        self.mode = Mode.PASS
        self.delay_s = 0.0
        self.jitter_s = 0.0
        self.held = 0  # operations waiting in a pause right now
        self.injected = 0  # errors returned so far
        self._rng = random.Random(seed)

    def set(self, mode: Mode, *, delay_s: float = 0.0, jitter_s: float = 0.0) -> None:
        with self._cond:
            self.mode, self.delay_s, self.jitter_s = mode, delay_s, jitter_s
            self._cond.notify_all()  # held operations go on (or fail) under the new mode

    def gate(self, kind: Kind) -> None:
        """Called first by every operation: wait out a pause, then sleep or fail as the mode says."""
        with self._cond:
            while self.mode is Mode.PAUSE:
                self.held += 1
                try:
                    self._cond.wait()
                finally:
                    self.held -= 1
            mode, delay, jitter = self.mode, self.delay_s, self.jitter_s
            fail = (mode is Mode.EIO and kind is not Kind.READ) or (mode is Mode.FULL and kind in (Kind.ALLOC,
                                                                                               Kind.SYNC))
            if fail:
                self.injected += 1
            pause_for = max(0.0, delay + self._rng.uniform(-jitter, jitter)) if mode is Mode.SLOW else 0.0
        if fail:
            raise FuseOSError(errno.EIO if mode is Mode.EIO else errno.ENOSPC)
        if pause_for and kind in (Kind.ALLOC, Kind.SYNC):
            self._slow_down(kind, pause_for)

    def _slow_down(self, kind: Kind, seconds: float) -> None:
        """Sleep `seconds` while the mode stays slow. A switch to eio (the nemesis cutting the power: nemesis.disk
        `before_crash`) fails the operation instead of letting it land: the disk had not finished it, and a crash
        must not wait for it to become durable. A switch to anything else lets it go on at once."""
        deadline = time.monotonic() + seconds
        with self._cond:
            while self.mode is Mode.SLOW and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            if self.mode is Mode.EIO:
                self.injected += 1
                raise FuseOSError(errno.EIO)
            if self.mode is Mode.FULL and kind in (Kind.ALLOC, Kind.SYNC):
                self.injected += 1
                raise FuseOSError(errno.ENOSPC)


_STAT_KEYS = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks", "st_blksize")


class Layer(mfusepy.Operations):
    """Pass-through operations on `root`, each gated by `faults`, changes recorded in `unsynced`."""

    use_ns = True

    def __init__(self, root: Path, stash: Path, faults: Faults) -> None:
        self.root = root
        self.faults = faults
        self.unsynced = Unsynced(root, stash)
        self.mutex = threading.Lock()  # around every tracked change and the tracker's own calls

    def _p(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    # -- reading --------------------------------------------------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        self.faults.gate(Kind.READ)
        st = os.fstat(fh) if fh is not None else os.lstat(self._p(path))
        attrs: dict[str, Any] = {k: getattr(st, k) for k in _STAT_KEYS}
        attrs.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
        return attrs

    def readdir(self, path: str, fh: int) -> list[str]:
        self.faults.gate(Kind.READ)
        return [".", "..", *os.listdir(self._p(path))]

    def readlink(self, path: str) -> str:
        self.faults.gate(Kind.READ)
        return os.readlink(self._p(path))

    def open(self, path: str, flags: int) -> int:
        self.faults.gate(Kind.CHANGE if flags & os.O_TRUNC else Kind.READ)
        # O_APPEND is the kernel's business (it hands us the offset at the end of the file): a backing fd opened
        # with it would ignore the offset of pwrite. O_TRUNC reaches us (libfuse asks for atomic_o_trunc) and is
        # a truncation like any other, recorded for lose-unsynced.
        fd = os.open(self._p(path), flags & ~(os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_TRUNC))
        if flags & os.O_TRUNC:
            with self.mutex:
                self.unsynced.before_truncate(self._p(path), 0)
                os.ftruncate(fd, 0)
        return fd

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        self.faults.gate(Kind.READ)
        return os.pread(fh, size, offset)

    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        self.faults.gate(Kind.READ)
        st = os.statvfs(self._p(path))
        return {k: getattr(st, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
                                            "f_files", "f_flag", "f_frsize", "f_namemax")}

    # -- writing --------------------------------------------------------------------------------------------

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        self.faults.gate(Kind.ALLOC)
        with self.mutex:
            if self.unsynced.active:
                self.unsynced.before_write(self._p(path), offset, len(data))
            return os.pwrite(fh, data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        self.faults.gate(Kind.CHANGE)
        with self.mutex:
            self.unsynced.before_truncate(self._p(path), length)
            if fh is None:
                os.truncate(self._p(path), length)
            else:
                os.ftruncate(fh, length)
        return 0

    def create(self, path: str, mode: int, flags: int = os.O_RDWR) -> int:
        self.faults.gate(Kind.ALLOC)
        full = self._p(path)
        with self.mutex:
            self.unsynced.before_dir_change(full.parent)
            fd = os.open(full, (flags & ~os.O_APPEND) | os.O_CREAT, mode)
            self.unsynced.created(full)
        return fd

    def mkdir(self, path: str, mode: int) -> int:
        self.faults.gate(Kind.ALLOC)
        full = self._p(path)
        with self.mutex:
            self.unsynced.before_dir_change(full.parent)
            os.mkdir(full, mode)
        return 0

    def unlink(self, path: str) -> int:
        self.faults.gate(Kind.CHANGE)
        with self.mutex:
            self.unsynced.remove(self._p(path))
        return 0

    def rmdir(self, path: str) -> int:
        self.faults.gate(Kind.CHANGE)
        full = self._p(path)
        with self.mutex:
            if os.listdir(full):
                raise FuseOSError(errno.ENOTEMPTY)
            self.unsynced.remove(full)
        return 0

    def rename(self, old: str, new: str) -> int:
        self.faults.gate(Kind.ALLOC)
        src, dst = self._p(old), self._p(new)
        with self.mutex:
            self.unsynced.before_dir_change(src.parent)
            self.unsynced.before_dir_change(dst.parent)
            if self.unsynced.active and os.path.lexists(dst):
                if dst.is_dir() and os.listdir(dst):
                    raise FuseOSError(errno.ENOTEMPTY)
                self.unsynced.remove(dst)  # the replaced file must be able to come back
            os.rename(src, dst)
        return 0

    def chmod(self, path: str, mode: int) -> int:
        self.faults.gate(Kind.CHANGE)
        os.chmod(self._p(path), mode)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        self.faults.gate(Kind.CHANGE)
        if times is None:
            os.utime(self._p(path))
        else:
            os.utime(self._p(path), ns=times)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        self.faults.gate(Kind.SYNC)
        (os.fdatasync if datasync else os.fsync)(fh)
        with self.mutex:
            self.unsynced.synced_file(os.fstat(fh).st_ino)
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        self.faults.gate(Kind.SYNC)
        full = self._p(path)
        fd = os.open(full, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        with self.mutex:
            self.unsynced.synced_dir(full)
        return 0


class Control:
    """The control socket's commands, each answered with a dict (run on the control thread)."""

    def __init__(self, layer: Layer, mount: Path) -> None:
        self.layer = layer
        self.mount = mount
        self.corruptions: list[Corruption] = []  # not yet undone, oldest first

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        """status | mode (mode, delay_ms, jitter_ms) | track | flush | crash | corrupt (seed) | repair | unmount."""
        op = req.get("op")
        faults, unsynced = self.layer.faults, self.layer.unsynced
        if op == "mode":
            faults.set(Mode(req["mode"]), delay_s=float(req.get("delay_ms", 0)) / 1000,
                       jitter_s=float(req.get("jitter_ms", 0)) / 1000)
        elif op in ("track", "flush", "crash"):
            with self.layer.mutex:
                if op == "track":
                    unsynced.start()
                elif op == "flush":
                    unsynced.flush()
                else:
                    return {"ok": True, "undone": unsynced.crash()}
        elif op == "corrupt":
            with self.layer.mutex:
                done = corrupt_one(self.layer.root, random.Random(int(req.get("seed", 0))))
            if done is None:
                return {"ok": True, "skipped": "no WAL segment or snapshot to damage yet"}
            self.corruptions.append(done)
            return {"ok": True, **done.describe(), "file": str(done.path.relative_to(self.layer.root))}
        elif op == "repair":  # newest first: an older damage of the same bytes is undone last
            undone, self.corruptions = self.corruptions[::-1], []
            with self.layer.mutex:
                outcomes = [{**c.describe(), "file": str(c.path.relative_to(self.layer.root)), "outcome": c.undo()}
                            for c in undone]
            return {"ok": True, "repaired": outcomes or None}
        elif op == "unmount":
            faults.set(Mode.PASS)  # the unmount itself follows the answer (_session): this process then ends
        elif op != "status":
            return {"ok": False, "error": f"unknown op {op!r}"}
        return {"ok": True, "mode": faults.mode.value, "tracking": unsynced.active, "held": faults.held,
                "injected": faults.injected}

    def serve(self, path: Path) -> None:
        """Accept connections forever (a daemon thread): each line in, one line out."""
        path.unlink(missing_ok=True)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(str(path))
        srv.listen(8)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as f:
            for line in f:
                try:
                    answer = self.handle(json.loads(line))
                except Exception as e:  # noqa: BLE001 - a bad command is answered, never fatal to the layer
                    answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                f.write(json.dumps(answer).encode() + b"\n")
                f.flush()
                if answer.get("ok") and req_op(line) == "unmount":
                    self.unmount()

    def unmount(self) -> None:
        """Lazily: a node still running keeps its open files until it ends; new opens see the directory below.
        Once the kernel lets go, the FUSE loop returns and main() ends."""
        res = subprocess.run(["umount", "-l", str(self.mount)], capture_output=True, text=True, timeout=10)
        if res.returncode != 0:
            log.error("umount -l %s: %s", self.mount, res.stderr.strip())


def req_op(line: bytes) -> Any:
    try:
        return json.loads(line).get("op")
    except (ValueError, AttributeError):
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nemesis.diskfs", description=__doc__.split("\n")[0])
    ap.add_argument("--backing", required=True, type=Path)
    ap.add_argument("--mount", required=True, type=Path)
    ap.add_argument("--control", required=True, type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s diskfs %(levelname)s %(message)s")
    root, stash = args.backing / "data", args.backing / "stash"
    for d in (root, stash, args.mount):
        d.mkdir(parents=True, exist_ok=True)
    layer = Layer(root, stash, Faults(args.seed))
    threading.Thread(target=Control(layer, args.mount).serve, args=(args.control,), daemon=True).start()
    log.info("mounting %s on %s (control %s)", root, args.mount, args.control)
    mfusepy.FUSE(layer, str(args.mount), foreground=True, fsname=args.name, subtype="raftkvdisk",
                 direct_io=True, attr_timeout=0, entry_timeout=0, negative_timeout=0, allow_other=True,
                 hard_remove=True)
    log.info("unmounted %s", args.mount)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
