"""Backends: how the hosts of a run come to exist. ``netns`` (default) is the embedded one (harness.backends.netns)."""

from __future__ import annotations

from pathlib import Path

from harness.protocols import Backend

BACKENDS = ("netns", "local")

# What each backend's hosts offer to nemeses (registry.NemesisSpec.needs): "network" = a network of their own that
# a nemesis may cut, slow or filter (the local backend's hosts share the controller's, and refuse network tools).
FEATURES: dict[str, frozenset[str]] = {"netns": frozenset({"network"}), "local": frozenset()}


def make_backend(name: str, *, work_dir: Path, prefix: str | None = None) -> Backend:
    """A fresh, not yet set up backend. Raises ValueError for an unknown name."""
    if name == "netns":
        from harness.backends.netns import NetnsBackend

        return NetnsBackend(work_dir, prefix=prefix)
    if name == "local":
        from harness.backends.local import LocalBackend

        return LocalBackend(work_dir, prefix=prefix)
    raise ValueError(f"unknown backend {name!r} (available: {', '.join(BACKENDS)})")
