"""Fixtures of the harness tests: a lab prefix of its own per test, so runs never collide."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from harness_testutil import netns_available


@pytest.fixture
def prefix() -> Iterator[str]:
    """A fresh prefix (``rt`` + 5 hex digits); whatever a test leaves under it is cleaned afterwards."""
    p = "rt" + secrets.token_hex(3)[:5]
    yield p
    if netns_available():
        from harness.clean import clean, leftovers

        if leftovers(p):
            clean(p, force=True)
