"""Shared fixtures of the report tests: a store of synthetic runs (reports.synthetic), built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.synthetic import make_run

RUNS = {
    "invalid": {"n_ops": 3000, "invalid": True, "seed": 3},
    "valid": {"n_ops": 2000, "seed": 4},
    "evil": {"n_ops": 600, "invalid": True, "evil": True, "seed": 5},
    "partial": {"n_ops": 800, "partial": True, "seed": 6},
}


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """store/<test>/<run> for each kind of RUNS, not yet rendered. Tests that render copy what they change."""
    store = tmp_path_factory.mktemp("store")
    for i, (name, kw) in enumerate(RUNS.items()):
        make_run(store / f"raftkv-{name}" / f"20261127T03000{i}", test_name=f"raftkv-{name}", **kw)
    return store


@pytest.fixture(scope="session")
def runs(synthetic_store: Path) -> dict[str, Path]:
    """name -> run directory of the synthetic store."""
    return {name: next((synthetic_store / f"raftkv-{name}").iterdir()) for name in RUNS}
