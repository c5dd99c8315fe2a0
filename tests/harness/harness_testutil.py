"""Helpers of the harness tests (a uniquely named module, so it never clashes with other test directories')."""

from __future__ import annotations

import os
import shutil

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))


def netns_available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("iptables") is not None


def subprocess_env() -> dict[str, str]:
    """The environment for a `harness` subprocess: this worktree and the fakes first on the path."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, HERE, os.environ.get("PYTHONPATH", "")])}
