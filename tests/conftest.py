"""Skip `@pytest.mark.slow` (torture) tests everywhere unless asked: --runslow, or RAFTKV_SLOW=1.

One hook for the whole suite: pytest calls `pytest_collection_modifyitems` with every collected item whatever
conftest defines it, so per-directory copies either leaked into other directories or had to filter by path."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="also run @pytest.mark.slow tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow") or os.environ.get("RAFTKV_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow or RAFTKV_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
