"""Server and storage failpoints bound by the node: each changes exactly its code path, and only when enabled."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from raftkv.core import Role, SoftState
from raftkv.server.config import ServerConfig
from raftkv.server.node import MaybeError, Node, UnavailableError
from raftkv.server.snapfiles import SnapshotStore
from raftkv.server.wal import WAL


def _node(failpoints: frozenset[str]) -> Node:
    cfg = ServerConfig(id="n1", listen="127.0.0.1:1", client="127.0.0.1:2", peers={"n1": "127.0.0.1:1",
                       "n2": "127.0.0.1:3", "n3": "127.0.0.1:4"}, memory=True, failpoints=failpoints)
    node = Node(cfg, logging.getLogger("test.failpoints"))
    node.recover()
    return node


@pytest.mark.parametrize(("failpoints", "error"), [(frozenset(), MaybeError),
                                                   (frozenset({"definite-on-ambiguous"}), UnavailableError)])
async def test_a_write_in_flight_when_leadership_is_lost(failpoints: frozenset[str], error: type) -> None:
    """A proposed write whose leader steps down may still commit: `maybe`; the failpoint says `unavailable`."""
    node = _node(failpoints)
    try:
        node._role = Role.LEADER
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        node._pending["n1.x.1"] = fut
        node._on_soft_state(SoftState(role=Role.FOLLOWER, leader=None))
        with pytest.raises(error):
            await fut
    finally:
        node.close()


@pytest.mark.parametrize(("failpoints", "error"), [(frozenset(), MaybeError),
                                                   (frozenset({"definite-on-ambiguous"}), UnavailableError)])
async def test_a_write_past_its_deadline(failpoints: frozenset[str], error: type) -> None:
    node = _node(failpoints)
    try:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        node._pending["n1.x.2"] = fut
        node._add_deadline(0.0, fut, "n1.x.2")
        node._expire_deadlines()
        with pytest.raises(error):
            await fut
    finally:
        node.close()


def test_the_node_lists_its_failpoints_and_exports_them() -> None:
    node = _node(frozenset({"definite-on-ambiguous", "forget-vote"}))
    try:
        metrics = node.metrics.render().decode()
        assert 'raftkv_failpoint_enabled{name="forget-vote"} 1.0' in metrics
        assert 'raftkv_failpoint_enabled{name="definite-on-ambiguous"} 1.0' in metrics
    finally:
        node.close()


@pytest.mark.parametrize(("skip", "syncs"), [(False, 1), (True, 0)])
def test_skip_fsync_writes_but_never_fdatasyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, skip: bool,
                                               syncs: int) -> None:
    calls: list[int] = []
    real = os.fdatasync

    def counted(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counted)
    wal, _ = WAL.open(tmp_path / "wal", skip_fsync=skip)
    try:
        wal.append_sync(b"x" * 16)
        assert len(calls) == syncs
        assert wal.size == 16
    finally:
        wal.close()


@pytest.mark.parametrize(("rename_unsynced", "syncs"), [(False, 1), (True, 0)])
def test_snapshot_rename_unsynced_renames_without_the_file_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                rename_unsynced: bool, syncs: int) -> None:
    calls: list[int] = []
    real = os.fsync

    def counted(fd: int) -> None:
        calls.append(fd)
        real(fd)

    (tmp_path / "snap").mkdir()  # made beforehand: its own durable creation is another fsync, not counted here
    monkeypatch.setattr(os, "fsync", counted)
    store = SnapshotStore(tmp_path / "snap", rename_unsynced=rename_unsynced)
    saved = store.save(5, 2, b"state")
    assert saved.path.exists() and store.load_latest() is not None
    assert len(calls) == syncs + 1  # + the directory's fsync after the rename, kept either way
