"""DBSpec.refuses: a DB declares the nemeses and option values it cannot be tested with; harness.run.resolve
refuses such a run before anything exists (the CLI's exit 254), and `--nemesis all` leaves those nemeses out."""

from __future__ import annotations

import pytest

from harness.run import ConfigError, RunConfig, resolve
from workloads.etcd_db import ETCD_SPEC


def test_a_refused_nemesis_or_option_value_is_named_with_its_reason() -> None:
    assert ETCD_SPEC.refusal(["partition", "kill"], {"read_consistency": "serializable"}) is None
    assert ETCD_SPEC.refusal(["kill", "clock"], {}) == f"db etcd refuses nemesis clock: {ETCD_SPEC.refuses['nemesis']['clock']}"
    reason = ETCD_SPEC.refusal([], {"read_consistency": "lease"})
    assert reason is not None and reason.startswith("db etcd refuses --read-consistency lease: ")


def test_resolve_refuses_before_any_host_and_all_leaves_refused_nemeses_out() -> None:
    with pytest.raises(ConfigError, match="db etcd refuses nemesis clock: .*vDSO"):
        resolve(RunConfig(workload="register", db="etcd", nemeses=("partition", "clock")))
    with pytest.raises(ConfigError, match="db raftkv refuses --read-consistency serializable"):
        resolve(RunConfig(workload="register", db="raftkv", extra={"read_consistency": "serializable"}))
    _, _, nemeses = resolve(RunConfig(workload="register", db="etcd", nemeses=("all",)))
    names = {spec.name for spec in nemeses}
    assert names == {"partition", "kill", "pause", "packet"}
