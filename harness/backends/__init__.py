"""Backends: how the hosts of a run come to exist. ``netns`` (default) is the embedded one (harness.backends.netns);
``ssh`` reaches machines that share nothing with the controller (harness.backends.ssh); ``docker`` runs each host as
a container (harness.backends.dockerhost)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.protocols import Backend

BACKENDS = ("netns", "local", "ssh", "docker")

# What each backend's hosts offer to nemeses (registry.NemesisSpec.needs): "network" = a network of their own that
# a nemesis may cut, slow or filter (the local backend's hosts share the controller's, and refuse network tools).
# "controller-fs" = the hosts share the controller's file system and mount namespace (the disk nemesis's FUSE layer).
FEATURES: dict[str, frozenset[str]] = {"netns": frozenset({"network", "controller-fs"}),
                                       "local": frozenset({"controller-fs"}), "ssh": frozenset({"network"}),
                                       "docker": frozenset({"network"})}


def make_backend(name: str, *, work_dir: Path, prefix: str | None = None,
                 options: Mapping[str, Any] | None = None) -> Backend:
    """A fresh, not yet set up backend. ``options``: the backend's own (``ssh``: an SshConfig; docker:
    docker_host, docker_base_image, None for their defaults). Raises ValueError for an unknown name or missing
    options."""
    if name == "netns":
        from harness.backends.netns import NetnsBackend

        return NetnsBackend(work_dir, prefix=prefix)
    if name == "local":
        from harness.backends.local import LocalBackend

        return LocalBackend(work_dir, prefix=prefix)
    if name == "ssh":
        from harness.backends.ssh import SshBackend

        config = (options or {}).get("ssh")
        if config is None:
            raise ValueError("--backend ssh needs its hosts (--hosts or --hosts-file)")
        return SshBackend(config, prefix=prefix)
    if name == "docker":
        from harness.backends.dockerhost import DockerBackend

        opts = options or {}
        return DockerBackend(work_dir, prefix=prefix, docker_host=opts.get("docker_host"),
                             base_image=opts.get("docker_base_image"))
    raise ValueError(f"unknown backend {name!r} (available: {', '.join(BACKENDS)})")
