"""The local backend (loopback processes, no namespaces): a whole run with the fake DB, and its refusal to touch
the controller's own network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import harness_fake
import pytest

from harness.backends.local import LocalBackend
from harness.clean import leftovers
from harness.protocols import RemoteError
from harness.run import ExitCode, RunConfig, run_test


@pytest.fixture(autouse=True)
def fakes() -> Iterator[None]:
    harness_fake.register()
    yield
    harness_fake.unregister()


async def test_a_local_run_is_valid_and_leaves_nothing(prefix: str, tmp_path: Path) -> None:
    res = await run_test(RunConfig(workload="fakeadd", backend="local", nodes=3, time_limit=1.5, concurrency=3,
                                   rate=200, seed=2, op_timeout=1.0, final_time_limit=3, status_interval=0.2,
                                   store=tmp_path / "store", prefix=prefix, render=False))
    assert res.error is None, res.error
    assert res.exit_code == ExitCode.VALID
    test = json.loads((res.run_dir / "test.json").read_text())  # type: ignore[operator]
    assert test["backend"]["backend"] == "local"
    assert all(h["address"].startswith("127.77.") for h in test["hosts"])
    assert res.tally.ok > 100
    assert leftovers(prefix) == []


async def test_local_hosts_refuse_network_tools(prefix: str, tmp_path: Path) -> None:
    b = LocalBackend(tmp_path / "w", prefix=prefix)
    hosts = await b.setup(1)
    try:
        with pytest.raises(RemoteError, match="network faults need --backend netns"):
            await hosts[0].exec(["iptables", "-S"])
        assert (await hosts[0].exec(["echo", "hi"])).stdout == "hi\n"
    finally:
        await b.teardown()
    assert leftovers(prefix) == []


async def test_a_clean_setup_reports_no_leftovers_but_a_stale_state_file_is_one(
        prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The lock a backend takes creates the prefix's state dir: that is its own, not something to clean (every
    run used to warn about it); a state file a killed run left is a leftover, and the next setup removes it."""
    from harness.labstate import state_dir

    b = LocalBackend(tmp_path / "w", prefix=prefix)
    with caplog.at_level("WARNING", logger="harness"):
        await b.setup(1)
    try:
        assert "leftovers" not in caplog.text
    finally:
        await b.teardown()
    assert leftovers(prefix) == []
    state_dir(prefix).mkdir(parents=True)
    (state_dir(prefix) / "state.json").write_text('{"pids": []}')
    assert leftovers(prefix, holding_lock=True) == [f"state dir {state_dir(prefix)}"]
    b = LocalBackend(tmp_path / "w2", prefix=prefix)
    with caplog.at_level("WARNING", logger="harness"):
        await b.setup(1)
    await b.teardown()
    assert "removing leftovers" in caplog.text
    assert leftovers(prefix) == []
