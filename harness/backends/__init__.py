"""Backends: how the hosts of a run come to exist. ``netns`` (default) is the embedded one (harness.backends.netns);
``docker`` runs each host as a container (harness.backends.dockerhost)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.protocols import Backend

BACKENDS = ("netns", "local", "docker")

# What each backend's hosts offer to nemeses (registry.NemesisSpec.needs): "network" = a network of their own that
# a nemesis may cut, slow or filter (the local backend's hosts share the controller's, and refuse network tools);
# "controller-fs" = the hosts see the controller's file system and mounts (the disk nemesis's FUSE layers are mounted
# there by the controller).
FEATURES: dict[str, frozenset[str]] = {"netns": frozenset({"network", "controller-fs"}),
                                       "local": frozenset({"controller-fs"}), "docker": frozenset({"network"})}


def make_backend(name: str, *, work_dir: Path, prefix: str | None = None,
                 options: Mapping[str, Any] | None = None) -> Backend:
    """A fresh, not yet set up backend. ``options``: the backend's own (docker: docker_host, docker_base_image; None
    for their defaults). Raises ValueError for an unknown name."""
    if name == "netns":
        from harness.backends.netns import NetnsBackend

        return NetnsBackend(work_dir, prefix=prefix)
    if name == "local":
        from harness.backends.local import LocalBackend

        return LocalBackend(work_dir, prefix=prefix)
    if name == "docker":
        from harness.backends.dockerhost import DockerBackend

        opts = options or {}
        return DockerBackend(work_dir, prefix=prefix, docker_host=opts.get("docker_host"),
                             base_image=opts.get("docker_base_image"))
    raise ValueError(f"unknown backend {name!r} (available: {', '.join(BACKENDS)})")
