"""Skip `@pytest.mark.slow` tests of this directory unless asked (--runslow where the root conftest defines it,
or RAFTKV_SLOW=1)."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        run_slow = bool(config.getoption("--runslow"))
    except ValueError:
        run_slow = False
    if run_slow or os.environ.get("RAFTKV_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow or RAFTKV_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
