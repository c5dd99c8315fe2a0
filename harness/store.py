"""The store: one directory per run (docs/store.md), written as the run goes so a crash keeps what happened.

``store/<test>/<YYYYmmddTHHMMSS>/`` with test.json, history.jsonl, cluster.jsonl, harness.log, results.json,
``<node>/`` (logs, metrics.txt) and report.html; ``store/<test>/latest`` and ``store/latest`` point at the newest.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

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


# One encoder for every line: json.dumps with any non-default argument builds a new JSONEncoder per call, which
# is a measurable share of the controller's per-event cost.
_ENCODER = json.JSONEncoder(default=_default, separators=(",", ":"))
# JSONEncoder.encode also builds a new C encoder on every call; this one is built once with the same settings but
# no circular-reference markers: a circular value ends in RecursionError, and dumps then hands the object to
# _ENCODER, which raises its usual ValueError.
_C_ENCODE = (json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)
    if json.encoder.c_make_encoder is not None else None)  # type: ignore[attr-defined]


def dumps(obj: Any) -> str:
    """``obj`` as compact JSON (non-ASCII escaped, NaN allowed, unknown types via ``_default``): same text as
    ``_ENCODER.encode``."""
    if _C_ENCODE is not None and type(obj) is dict:
        try:
            return "".join(_C_ENCODE(obj, 0))
        except (ValueError, TypeError, RecursionError):
            pass  # let the pure encoder raise its own error (or succeed) on the odd object
    return _ENCODER.encode(obj)


class JsonlWriter:
    """Appends one JSON object per line with one write(2) each: the line is in the kernel (page cache) as soon as
    append returns, so a crash of the controller loses nothing already appended, at a cost of a few µs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def append(self, obj: Mapping[str, Any]) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        os.write(self._fd, (dumps(obj) + "\n").encode())

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class HistoryWriter(JsonlWriter):
    """history.jsonl: assigns each event its index (0, 1, 2, ... in file order) and appends it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
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
    """Every object of a JSON-lines file. A torn last line (the controller died mid-write) is dropped with a
    warning; a bad line elsewhere is an error naming the line."""
    lines = path.read_text().splitlines()
    out: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
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
    def log_path(self) -> Path:
        return self.path / "harness.log"

    def node_dir(self, node: str) -> Path:
        d = self.path / node
        d.mkdir(exist_ok=True)
        return d

    def write_json(self, name: str, data: Mapping[str, Any]) -> None:
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
