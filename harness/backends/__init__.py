"""Backends: how the hosts of a run come to exist. ``netns`` (default) is the embedded one (harness.backends.netns)."""

from __future__ import annotations

from pathlib import Path

from harness.protocols import Backend

BACKENDS = ("netns", "local")


def make_backend(name: str, *, work_dir: Path, prefix: str | None = None) -> Backend:
    """A fresh, not yet set up backend. Raises ValueError for an unknown name."""
    if name == "netns":
        from harness.backends.netns import NetnsBackend

        return NetnsBackend(work_dir, prefix=prefix)
    if name == "local":
        from harness.backends.local import LocalBackend

        return LocalBackend(work_dir, prefix=prefix)
    raise ValueError(f"unknown backend {name!r} (available: {', '.join(BACKENDS)})")
