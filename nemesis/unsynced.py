"""What a power loss would take back: the un-fsynced state of a directory tree, kept as undo records.

The fault layer (nemesis.diskfs) applies every operation to its backing tree at once, so the node reads back what
it wrote, exactly as through a page cache. While tracking is on, `Unsynced` records before each change what the
durable state was, and `crash()` puts it back: the tree is then what a machine would find after losing power.

The durability model (strict POSIX, what a careful program may rely on and nothing more):
- a file's data and size are durable up to its last fsync/fdatasync; later writes and truncations are lost;
- a directory's entries (creations, renames, unlinks, rmdirs in it) are durable up to the directory's last fsync;
  an entry created since then vanishes, a renamed or removed one comes back with the content it had when its own
  file was last synced. (ext4 in data=ordered mode often keeps more; a program must not count on it.)
- everything present when tracking starts counts as durable (the layer cannot know what the page cache held).

Records are keyed by inode number (stable across renames). Removed entries are not deleted but moved to the stash
directory (on the same file system as the tree, so a rename), from where a crash can bring them back; `flush()`
(tracking ends without a crash: the machine wrote everything back) empties it.

Not thread-safe: the caller (the FUSE layer) holds one lock around each call and the operation it guards.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(slots=True)
class FileUndo:
    """How to bring one inode's content back: its durable size, and the original bytes of every durable region
    overwritten since (applied newest first, so the oldest save of an overlapping region wins)."""

    durable_size: int
    saves: list[tuple[int, bytes]] = field(default_factory=list)


class Unsynced:
    def __init__(self, root: Path, stash: Path) -> None:
        self.root = root
        self.stash = stash
        self.active = False
        self.files: dict[int, FileUndo] = {}
        self.dirs: dict[int, dict[str, int]] = {}  # dir inode -> its durable entries (name -> inode)

    # -- recording (called before the operation they guard) ----------------------------------------------------

    def start(self) -> None:
        """Everything now in the tree counts as durable from here on."""
        self.flush()
        self.active = True

    def before_write(self, path: Path, offset: int, length: int) -> None:
        if not self.active:
            return
        rec = self._file(path)
        end = min(offset + length, rec.durable_size)
        if offset < end:
            with open(path, "rb") as f:
                f.seek(offset)
                rec.saves.append((offset, f.read(end - offset)))

    def before_truncate(self, path: Path, length: int) -> None:
        if self.active:
            durable = self._file(path).durable_size
            if length < durable:
                self.before_write(path, length, durable - length)

    def created(self, path: Path) -> None:
        """After a file was created: its durable content is empty (its entry is the parent's business)."""
        if self.active:
            self.files[os.lstat(path).st_ino] = FileUndo(0)

    def before_dir_change(self, directory: Path) -> None:
        """Before an entry of `directory` is added, renamed or removed: remember its durable entries once."""
        if not self.active:
            return
        ino = os.lstat(directory).st_ino
        if ino not in self.dirs:
            self.dirs[ino] = {e.name: e.inode() for e in os.scandir(directory)}

    def remove(self, path: Path) -> None:
        """Unlink or rmdir `path` (the caller checked an rmdir's directory is empty), keeping it for a crash."""
        if not self.active:
            (os.rmdir if path.is_dir() and not path.is_symlink() else os.unlink)(path)
            return
        self.before_dir_change(path.parent)
        os.rename(path, self.stash / str(os.lstat(path).st_ino))

    def synced_file(self, ino: int) -> None:
        """After an fsync of the file with inode `ino` (by handle: its name may be gone)."""
        if self.active:
            self.files.pop(ino, None)

    def synced_dir(self, directory: Path) -> None:
        if self.active:
            self.dirs.pop(os.lstat(directory).st_ino, None)
            self._collect()

    def _collect(self) -> None:
        """Empty the stash of what no crash can bring back (in no changed directory's durable entries): with
        tracking on for a whole run, every removed WAL segment and snapshot would otherwise stay there."""
        reachable = {ino for entries in self.dirs.values() for ino in entries.values()}
        for entry in os.scandir(self.stash):
            ino = int(entry.name)
            if ino in reachable:
                continue
            self.files.pop(ino, None)  # its inode number may now be reused by a new file or directory
            self.dirs.pop(ino, None)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)

    def _file(self, path: Path) -> FileUndo:
        st = os.lstat(path)
        rec = self.files.get(st.st_ino)
        if rec is None:
            rec = self.files[st.st_ino] = FileUndo(st.st_size)
        return rec

    # -- ending ------------------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Tracking ends without a crash: the live tree is the durable one."""
        self.files.clear()
        self.dirs.clear()
        self._empty_stash()
        self.active = False

    def crash(self) -> dict[str, int]:
        """Put the tree back to its durable state (see the module docstring) and end tracking. Call only while
        nothing uses the tree. Returns counts of what was undone."""
        undone = {"dirs": len(self.dirs), "files": 0}
        self._restore_dirs()
        where = self._inodes(stash=False)  # what is left in the stash is gone with the crash
        for ino, rec in self.files.items():
            path = where.get(ino)
            if path is None:
                continue  # not in any durable directory entry: gone with the crash
            with open(path, "r+b") as f:
                for offset, data in reversed(rec.saves):
                    f.seek(offset)
                    f.write(data)
                f.truncate(rec.durable_size)
            undone["files"] += 1
        self.files.clear()
        self._empty_stash()
        self.active = False
        return undone

    def _restore_dirs(self) -> None:
        """Every changed directory back to its durable entries: first every live entry of those directories goes
        to the stash (deepest directories first, so no directory moves before its own entries did), then each
        durable entry comes back from the stash under its durable name."""
        where = self._inodes()
        changed = sorted(((where[d], entries) for d, entries in self.dirs.items() if d in where),
                         key=lambda item: len(item[0].parts), reverse=True)
        for directory, _ in changed:
            for entry in os.scandir(directory):
                os.rename(entry.path, self.stash / str(entry.inode()))
        for dino, entries in self.dirs.items():
            home = self._inodes().get(dino)  # may have moved (it was an entry of a changed directory)
            if home is None:
                continue
            for name, ino in entries.items():
                kept = self.stash / str(ino)
                if os.path.lexists(kept):
                    os.rename(kept, home / name)
        self.dirs.clear()

    def _inodes(self, *, stash: bool = True) -> dict[int, Path]:
        """inode -> path of everything in the tree and (unless told not to) the stash, the root included."""
        found = {os.lstat(self.root).st_ino: self.root}
        for top in (self.root, self.stash) if stash else (self.root,):
            for dirpath, dirnames, filenames in os.walk(top):
                for name in dirnames + filenames:
                    p = Path(dirpath, name)
                    found[os.lstat(p).st_ino] = p
        return found

    def _empty_stash(self) -> None:
        for entry in os.scandir(self.stash):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
