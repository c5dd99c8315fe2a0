"""The disk fault layer on its own: the undo model of lose-unsynced on a plain directory (nemesis.unsynced), file
corruption and its undo (nemesis.corrupt), and the FUSE layer mounted for real (nemesis.diskfs: pass-through,
pause, eio, full, and a crash that drops what was not fsynced, seen through the mount)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nemesis.corrupt import corrupt_one
from nemesis.unsynced import Unsynced

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(tmp_path: Path) -> Unsynced:
    (tmp_path / "data").mkdir()
    (tmp_path / "stash").mkdir()
    return Unsynced(tmp_path / "data", tmp_path / "stash")


def append(u: Unsynced, path: Path, data: bytes) -> None:
    """What the layer does for a write at the end of a file."""
    size = path.stat().st_size if path.exists() else 0
    if not path.exists():
        u.before_dir_change(path.parent)
        path.touch()
        u.created(path)
    u.before_write(path, size, len(data))
    with open(path, "r+b") as f:
        f.seek(size)
        f.write(data)


def test_a_crash_keeps_synced_data_and_drops_the_rest(tree: Unsynced) -> None:
    wal = tree.root / "a.wal"
    wal.write_bytes(b"old")
    tree.start()
    append(tree, wal, b"+synced")
    tree.synced_file(wal.stat().st_ino)
    append(tree, wal, b"+lost")
    assert wal.read_bytes() == b"old+synced+lost"  # the node reads back what it wrote, as through a page cache
    assert tree.crash() == {"dirs": 0, "files": 1}
    assert wal.read_bytes() == b"old+synced"
    assert not tree.active


def test_an_overwrite_comes_back_with_its_durable_bytes(tree: Unsynced) -> None:
    f = tree.root / "f"
    f.write_bytes(b"abcdef")
    tree.start()
    tree.before_write(f, 2, 2)
    with open(f, "r+b") as h:
        h.seek(2)
        h.write(b"XY")
    tree.before_truncate(f, 1)
    os.truncate(f, 1)
    tree.crash()
    assert f.read_bytes() == b"abcdef"


def test_a_new_file_needs_its_directory_synced_to_survive(tree: Unsynced) -> None:
    tree.start()
    kept, lost = tree.root / "kept", tree.root / "lost"
    append(tree, kept, b"k")
    tree.synced_file(kept.stat().st_ino)
    tree.synced_dir(tree.root)
    append(tree, lost, b"l")
    tree.synced_file(lost.stat().st_ino)  # the file's own fsync does not make its name durable
    tree.crash()
    assert sorted(os.listdir(tree.root)) == ["kept"] and kept.read_bytes() == b"k"
    assert os.listdir(tree.stash) == []


def test_an_unsynced_rename_over_a_file_is_undone(tree: Unsynced) -> None:
    """The snapshot pattern: write tmp, fsync it, rename onto the old one; without the directory fsync the old
    file is what a crash leaves."""
    final = tree.root / "s.snap"
    final.write_bytes(b"old snapshot")
    tree.start()
    tmp = tree.root / "s.snap.tmp"
    append(tree, tmp, b"new snapshot")
    tree.synced_file(tmp.stat().st_ino)
    tree.before_dir_change(tree.root)
    tree.remove(final)
    os.rename(tmp, final)
    assert final.read_bytes() == b"new snapshot"
    tree.crash()
    assert os.listdir(tree.root) == ["s.snap"] and final.read_bytes() == b"old snapshot"


def test_unlinks_in_a_subdirectory_come_back_and_flush_keeps_everything(tree: Unsynced) -> None:
    sub = tree.root / "wal"
    sub.mkdir()
    (sub / "1.wal").write_bytes(b"one")
    tree.start()
    tree.remove(sub / "1.wal")
    assert os.listdir(sub) == []
    tree.crash()
    assert (sub / "1.wal").read_bytes() == b"one"
    tree.start()
    tree.remove(sub / "1.wal")
    append(tree, sub / "2.wal", b"two")
    tree.flush()  # no crash: the live tree is the durable one
    assert os.listdir(sub) == ["2.wal"] and os.listdir(tree.stash) == []


def test_a_synced_removal_leaves_the_stash_and_an_unsynced_one_still_comes_back(tree: Unsynced) -> None:
    sub = tree.root / "wal"
    sub.mkdir()
    for name in ("1.wal", "2.wal", "3.wal"):
        (sub / name).write_bytes(name.encode())
    tree.start()
    tree.remove(sub / "1.wal")
    tree.synced_dir(sub)  # the removal is durable: nothing can bring 1.wal back, so the stash lets it go
    assert os.listdir(tree.stash) == []
    tree.remove(sub / "2.wal")
    assert len(os.listdir(tree.stash)) == 1
    tree.crash()
    assert sorted(os.listdir(sub)) == ["2.wal", "3.wal"] and os.listdir(tree.stash) == []


def test_corruption_names_file_and_offset_and_undoes(tmp_path: Path) -> None:
    from nemesis.corrupt import NEWEST_WAL_MIN

    (tmp_path / "wal").mkdir()
    seg = tmp_path / "wal" / "00000000000000000001.wal"
    seg.write_bytes(bytes(range(200)))
    assert corrupt_one(tmp_path, random.Random(0)) is None, "a short newest segment: its last record may be hit"
    content = bytes(range(256)) * (NEWEST_WAL_MIN // 256)
    seg.write_bytes(content)
    for seed in range(20):
        damage = corrupt_one(tmp_path, random.Random(seed))
        assert damage is not None and damage.path == seg
        # the only segment is the newest: never truncated, flipped only in its first quarter
        assert damage.how == "flip" and damage.offset < len(content) // 4
        assert seg.read_bytes() != content
        assert damage.undo() == "restored"
        assert seg.read_bytes() == content


def test_a_damaged_file_the_node_changed_or_deleted_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "snap").mkdir()
    snap = tmp_path / "snap" / "00000000000000000200-00000000000000000002.snap"
    snap.write_bytes(b"s" * 400)
    damage = corrupt_one(tmp_path, random.Random(1))
    assert damage is not None
    with open(snap, "ab") as f:  # the node wrote to it since: the old bytes would now damage its data
        f.write(b"new")
    after = snap.read_bytes()
    assert damage.undo() == "changed" and snap.read_bytes() == after
    snap.unlink()
    assert damage.undo() == "gone"


def test_nothing_to_corrupt_is_said(tmp_path: Path) -> None:
    (tmp_path / "raftkv.json").write_text("{}")
    assert corrupt_one(tmp_path, random.Random(0)) is None


# -- the FUSE layer, mounted ------------------------------------------------------------------------------------

def _fuse_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "mounting FUSE needs root"
    if not Path("/dev/fuse").exists():
        return "no /dev/fuse"
    if shutil.which("fusermount3") is None:
        return "fuse3 is not installed (scripts/bootstrap installs it)"
    return None


class Mounted:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.mount = base / "m"
        self.control = base / "c.sock"
        argv = [sys.executable, "-m", "nemesis.diskfs", "--backing", str(base / "b"), "--mount", str(self.mount),
                "--control", str(self.control), "--name", f"rdt{os.getpid() % 100000}-disk-test"]
        self.log = open(base / "diskfs.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        for _ in range(200):  # bounded: mounting takes ~130 ms
            if os.path.ismount(self.mount) and self.control.exists():
                return
            if self.proc.poll() is not None:
                break
            threading.Event().wait(0.05)
        raise AssertionError(f"the layer did not mount: {(base / 'diskfs.log').read_text()[-2000:]}")

    def call(self, **req: Any) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(self.control))
            f = s.makefile("rwb")
            f.write(json.dumps(req).encode() + b"\n")
            f.flush()
            answer: dict[str, Any] = json.loads(f.readline())
            return answer

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.call(op="mode", mode="pass")
            self.call(op="unmount")
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            subprocess.run(["umount", "-l", str(self.mount)], check=False)
        self.log.close()


@pytest.fixture
def layer(tmp_path: Path) -> Iterator[Mounted]:
    reason = _fuse_unavailable()
    if reason:
        pytest.skip(reason)
    m = Mounted(tmp_path)
    try:
        yield m
    finally:
        m.close()
    assert not os.path.ismount(m.mount) and m.proc.returncode is not None


def test_the_layer_passes_io_through_to_its_backing_tree(layer: Mounted) -> None:
    (layer.mount / "d").mkdir()
    fd = os.open(layer.mount / "d" / "x.wal", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, b"one ")
    os.write(fd, b"two")
    os.fdatasync(fd)
    os.close(fd)
    assert (layer.base / "b" / "data" / "d" / "x.wal").read_bytes() == b"one two"
    os.replace(layer.mount / "d" / "x.wal", layer.mount / "d" / "y.wal")
    assert os.listdir(layer.mount / "d") == ["y.wal"]
    (layer.mount / "d" / "y.wal").write_bytes(b"z")  # open with O_TRUNC: the old, longer content must go
    assert (layer.mount / "d" / "y.wal").read_bytes() == b"z"


def test_a_truncating_open_is_undone_by_a_crash(layer: Mounted) -> None:
    path = layer.mount / "snap.tmp"
    path.write_bytes(b"durable content")
    layer.call(op="track")
    path.write_bytes(b"new")
    assert path.read_bytes() == b"new"
    layer.call(op="crash")
    assert path.read_bytes() == b"durable content"


def test_a_crash_through_the_mount_drops_unsynced_writes_and_names(layer: Mounted) -> None:
    path = layer.mount / "seg.wal"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, b"durable")
    os.fsync(fd)
    assert layer.call(op="track")["tracking"] is True
    os.write(fd, b"+acked-but-unsynced")
    os.close(fd)
    (layer.mount / "new-file").write_bytes(b"x")
    assert layer.call(op="crash")["undone"] == {"dirs": 1, "files": 1}
    assert os.listdir(layer.mount) == ["seg.wal"] and path.read_bytes() == b"durable"


def test_pause_holds_a_write_until_released(layer: Mounted) -> None:
    path = layer.mount / "f"
    path.write_bytes(b"")
    layer.call(op="mode", mode="pause")
    done = threading.Event()

    def write() -> None:
        path.write_bytes(b"late")
        done.set()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    for _ in range(200):  # bounded: the write reaches the layer within milliseconds
        if layer.call(op="status")["held"] >= 1:
            break
        threading.Event().wait(0.02)
    assert layer.call(op="status")["held"] >= 1 and not done.is_set()
    layer.call(op="mode", mode="pass")
    assert done.wait(10)
    assert (layer.base / "b" / "data" / "f").read_bytes() == b"late"


@pytest.mark.parametrize(("mode", "code"), [("eio", errno.EIO), ("full", errno.ENOSPC)])
def test_eio_and_full_fail_writes_and_fsyncs_but_not_reads(layer: Mounted, mode: str, code: int) -> None:
    path = layer.mount / "f"
    path.write_bytes(b"before")
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    layer.call(op="mode", mode=mode)
    with pytest.raises(OSError) as write_error:
        os.write(fd, b"x")
    with pytest.raises(OSError) as sync_error:
        os.fsync(fd)
    assert write_error.value.errno == code and sync_error.value.errno == code
    assert os.pread(fd, 100, 0) == b"before"
    layer.call(op="mode", mode="pass")
    os.write(fd, b" after")
    os.close(fd)
    assert path.read_bytes() == b"before after"


# -- coordination with the kill nemesis ------------------------------------------------------------------------

class Recorder:
    """A CrashListener and a DB's kill, writing down the order of events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    async def before_crash(self, test: Any, node: str) -> None:
        self.events.append(("before", node))

    async def after_crash(self, test: Any, node: str) -> None:
        self.events.append(("after", node))

    async def kill(self, test: Any, node: str) -> None:
        self.events.append(("kill", node))

    # The rest of the Process capability (harness.protocols.Process), which crash_node asks the DB for.
    async def start(self, test: Any, node: str) -> None:
        self.events.append(("start", node))

    async def pause(self, test: Any, node: str) -> None:
        self.events.append(("pause", node))

    async def resume(self, test: Any, node: str) -> None:
        self.events.append(("resume", node))

    async def is_running(self, test: Any, node: str) -> bool:
        return True


def test_the_composite_wires_every_crash_listener_to_every_crash_source() -> None:
    from harness.composite import CompositeNemesis
    from harness.protocols import CrashListener, CrashSource
    from nemesis.disk import DiskNemesis
    from nemesis.process import KillNemesis, PauseNemesis

    kill, disk, pause = KillNemesis(random.Random(1)), DiskNemesis(random.Random(1)), PauseNemesis(random.Random(1))
    assert isinstance(kill, CrashSource) and isinstance(disk, CrashListener) and not isinstance(pause, CrashListener)
    CompositeNemesis([("kill", kill), ("disk", disk), ("pause", pause)])
    assert kill._listeners == [disk]


async def test_a_crash_is_announced_before_and_after_the_kill() -> None:
    from types import SimpleNamespace

    from nemesis.process import crash_node

    rec = Recorder()
    await crash_node(SimpleNamespace(db=rec), "n2", [rec])  # type: ignore[arg-type]
    assert rec.events == [("before", "n2"), ("kill", "n2"), ("after", "n2")]


def test_bad_disk_settings_are_refused() -> None:
    from nemesis.disk import DiskNemesis

    with pytest.raises(ValueError, match="disk targets"):
        DiskNemesis(random.Random(1), targets=("most",))
    with pytest.raises(ValueError, match="must be >= 0"):
        DiskNemesis(random.Random(1), delay_ms=-1)
    bad = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--workload", "register", "--nemesis", "disk",
                          "--disk-faults", "pause,melt"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert bad.returncode == 254 and "--disk-faults" in bad.stderr


def test_a_slow_operation_fails_when_the_power_is_cut_and_goes_on_when_the_fault_ends() -> None:
    """nemesis.disk sets eio on a slow layer before a kill: what the layer holds must fail, not land later."""
    from mfusepy import FuseOSError

    from nemesis.diskfs import Faults, Kind, Mode

    def held_sync(faults: Faults) -> tuple[threading.Thread, list[BaseException | None]]:
        outcome: list[BaseException | None] = []

        def run() -> None:
            try:
                faults.gate(Kind.SYNC)
                outcome.append(None)
            except FuseOSError as e:
                outcome.append(e)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread, outcome

    for switch, expect in ((Mode.EIO, errno.EIO), (Mode.PASS, None)):
        faults = Faults()
        faults.set(Mode.SLOW, delay_s=30.0)
        thread, outcome = held_sync(faults)
        thread.join(0.2)
        assert thread.is_alive() and not outcome, "the slow fsync is held"
        faults.set(switch)
        thread.join(5.0)
        assert not thread.is_alive() and len(outcome) == 1
        got = outcome[0]
        assert (got.errno if isinstance(got, FuseOSError) else None) == expect
