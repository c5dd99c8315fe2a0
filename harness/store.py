"""The store: one directory per run (docs/store.md), written as the run goes so a crash keeps what happened.

``store/<test>/<YYYYmmddTHHMMSS>/`` with test.json, history.jsonl, cluster.jsonl, harness.log, results.json,
metrics.jsonl and prometheus-targets.json (with --monitor),
``<node>/`` (logs, metrics.txt) and report.html; ``store/<test>/latest`` and ``store/latest`` point at the newest.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from harness.protocols import Op

log = logging.getLogger("harness.store")


class StoreError(RuntimeError):
    """A run directory that cannot be read as one (missing or corrupt test.json / history.jsonl)."""


def _default(o: Any) -> Any:
    if isinstance(o, set | frozenset | tuple):
        return sorted(o, key=repr) if isinstance(o, set | frozenset) else list(o)
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, bytes):
        return o.decode(errors="replace")
    return repr(o)


# The fallback encoder (orjson below does the work): used for what orjson refuses (integers beyond 64 bits, a
# circular value), with the same compact separators.
_ENCODER = json.JSONEncoder(default=_default, separators=(",", ":"))
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps_bytes(obj: Any) -> bytes:
    """``obj`` as one line of compact UTF-8 JSON, without the newline. Unknown types go through ``_default`` (sets as
    sorted lists, paths and bytes as strings, anything else as its repr); a NaN or infinite float is written as
    null (JSON has no such numbers); integers beyond 64 bits are written exactly by the standard encoder.
    orjson encodes a history event in about a fifth of the standard library's time: it runs twice per operation
    on the controller."""
    try:
        return orjson.dumps(obj, default=_default, option=_ORJSON_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        return _ENCODER.encode(obj).encode()


class JsonlWriter:
    """Appends one JSON object per line.

    ``flush_interval`` 0 (the default): one write(2) per line, so the line is in the kernel (page cache) as soon as
    append returns. ``flush_interval`` > 0: lines are gathered in memory and written with one write(2) at most that
    many seconds after the first of them (a timer on the running event loop; with no running loop, at once), when
    more than ``FLUSH_BYTES`` are waiting, on :meth:`flush` and on :meth:`close`. The history takes that path: a
    write(2) per event was the largest single cost of the controller's per-op work. What a crash of the controller
    can lose is then bounded: an exception or a signal it handles loses nothing (the run closes its writers on
    every path); a SIGKILL loses at most the last ``flush_interval`` seconds of lines. Either way every line that is
    in the file is whole, in order, and never rewritten."""

    FLUSH_BYTES = 1 << 20

    def __init__(self, path: Path, *, flush_interval: float = 0.0) -> None:
        if flush_interval < 0:
            raise ValueError(f"flush_interval must be >= 0, got {flush_interval}")
        self.path = path
        self.flush_interval = flush_interval
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._timer: asyncio.TimerHandle | None = None

    def append(self, obj: Mapping[str, Any]) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        line = dumps_bytes(obj) + b"\n"
        if not self.flush_interval:
            os.write(self._fd, line)
            return
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes > self.FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.flush_interval, self.flush)
            except RuntimeError:  # no running loop: nothing would ever flush later
                self.flush()

    def flush(self) -> None:
        """Write every gathered line now (one write(2)). A no-op when nothing waits or the writer is closed."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending or self._fd is None:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        view = memoryview(data)
        while view:  # a regular file takes it all at once; a short write is finished, not dropped
            view = view[os.write(self._fd, view):]

    def close(self) -> None:
        if self._fd is not None:
            self.flush()
            fd, self._fd = self._fd, None
            os.close(fd)


class HistoryWriter(JsonlWriter):
    """history.jsonl: assigns each event its index (0, 1, 2, ... in file order) and appends it, flushed at most
    ``flush_interval`` seconds later (see :class:`JsonlWriter`; 0 writes each event through)."""

    FLUSH_INTERVAL_S = 0.005

    def __init__(self, path: Path, *, flush_interval: float = FLUSH_INTERVAL_S) -> None:
        super().__init__(path, flush_interval=flush_interval)
        self.count = 0

    def record(self, op: Op) -> Op:
        op = Op(process=op.process, type=op.type, f=op.f, key=op.key, value=op.value, time=op.time,  # replace(),
                node=op.node, error=op.error, index=self.count)  # spelled out: it runs for every event
        self.append(op.to_json())
        self.count += 1
        return op

    def event(self, process: int | str, type: Any, f: str, key: Any, value: Any, time: int, node: str | None,
              error: str | None) -> Op:
        """``record(Op(...))`` for a new event, with one Op built instead of two (it runs twice per client op)."""
        op = Op(process=process, type=type, f=f, key=key, value=value, time=time, node=node, error=error,
                index=self.count)
        self.append(op.to_json())
        self.count += 1
        return op


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every object of a JSON-lines file (UTF-8). A torn last line (the controller died mid-write) is dropped with a
    warning; a bad line elsewhere is an error naming the line."""
    lines = path.read_bytes().splitlines()
    out: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            try:  # what orjson refuses but JSON's Python dialect allows (NaN, integers beyond 64 bits)
                out.append(json.loads(line))
            except ValueError as e:
                if i == len(lines) - 1:
                    log.warning("%s: dropping a torn last line %d", path, i + 1)
                    break
                raise StoreError(f"{path}:{i + 1}: not JSON: {e}") from None
    return out


class RunDir:
    """One run's directory. Create with :meth:`create`; open a stored one with :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, store: Path, test_name: str, when: datetime) -> RunDir:
        base = Path(store) / test_name
        base.mkdir(parents=True, exist_ok=True)
        stamp = when.strftime("%Y%m%dT%H%M%S")
        path = base / stamp
        n = 1
        while True:
            try:
                path.mkdir()
                break
            except FileExistsError:
                n += 1
                path = base / f"{stamp}-{n}"
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> RunDir:
        path = Path(path)
        if not (path / "test.json").is_file():
            raise StoreError(f"{path} is not a run directory (no test.json)")
        return cls(path)

    @property
    def history_path(self) -> Path:
        return self.path / "history.jsonl"

    @property
    def cluster_path(self) -> Path:
        return self.path / "cluster.jsonl"

    @property
    def metrics_path(self) -> Path:
        """metrics.jsonl: the live scrapes of a --monitor run (harness.scrape documents the format)."""
        return self.path / "metrics.jsonl"

    @property
    def log_path(self) -> Path:
        return self.path / "harness.log"

    def node_dir(self, node: str) -> Path:
        d = self.path / node
        d.mkdir(exist_ok=True)
        return d

    def write_json(self, name: str, data: Mapping[str, Any] | list[Any]) -> None:
        tmp = self.path / f".{name}.tmp"
        tmp.write_text(json.dumps(data, default=_default, indent=2) + "\n")
        os.replace(tmp, self.path / name)

    def read_json(self, name: str) -> dict[str, Any]:
        try:
            return json.loads((self.path / name).read_text())
        except FileNotFoundError:
            raise StoreError(f"{self.path} has no {name}") from None
        except ValueError as e:
            raise StoreError(f"{self.path / name}: not JSON: {e}") from None

    def history(self) -> list[dict[str, Any]]:
        if not self.history_path.exists():
            raise StoreError(f"{self.path} has no history.jsonl")
        return read_jsonl(self.history_path)

    def link_latest(self) -> None:
        """store/<test>/latest -> this run; store/latest -> <test>/<this run> (relative, replaced atomically)."""
        test_dir = self.path.parent
        _symlink(test_dir / "latest", self.path.name)
        _symlink(test_dir.parent / "latest", f"{test_dir.name}/{self.path.name}")


def _symlink(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)
