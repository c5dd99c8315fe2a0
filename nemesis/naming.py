"""The lab's name prefix: every namespace, link, chain and cgroup the lab creates starts with it, so cleanup can find
exactly what the lab made and nothing else. Set by the environment variable RAFTKV_LAB_PREFIX (default `rkl`)."""

from __future__ import annotations

import os
import re

PREFIX_ENV = "RAFTKV_LAB_PREFIX"
DEFAULT_PREFIX = "rkl"
_VALID = re.compile(r"^[a-z][a-z0-9]{0,7}$")


class PrefixError(ValueError):
    """RAFTKV_LAB_PREFIX is not a short lowercase name (it goes into interface and chain names, which are short)."""


def lab_prefix(environ: dict[str, str] | None = None) -> str:
    """The prefix from the environment, checked: 1 to 8 characters, a lowercase letter then letters or digits."""
    value = (os.environ if environ is None else environ).get(PREFIX_ENV, DEFAULT_PREFIX)
    if not _VALID.match(value):
        raise PrefixError(f"{PREFIX_ENV}={value!r}: expected 1-8 characters, a lowercase letter then [a-z0-9]")
    return value


def partition_chain(prefix: str) -> str:
    """The iptables chain (in each host's filter table) that holds the partition nemesis's rules."""
    return f"{prefix}-partition"
