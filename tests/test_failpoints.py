"""raftkv/failpoints.py: the registry and the rules that keep planted bugs out of production nodes."""

from __future__ import annotations

import random

import pytest

from raftkv.core import ConfigError, RaftConfig
from raftkv.failpoints import (
    ALLOW_ENV,
    ENV,
    FAILPOINTS,
    FailpointError,
    check_layer,
    enabled_from,
    for_layer,
    parse_names,
)
from raftkv.kv import KVStore, KVUsageError

CONTRACT_NAMES = {"read-without-quorum", "follower-local-read", "forget-vote", "apply-uncommitted",
                  "commit-old-term", "accept-stale-append", "snapshot-off-by-one", "ack-before-persist", "skip-fsync",
                  "long-lease", "commit-beyond-match", "cas-ignores-version", "definite-on-ambiguous",
                  "election-timer-stuck"}


def test_the_registry_holds_every_contract_name_documented() -> None:
    assert set(FAILPOINTS) >= CONTRACT_NAMES
    for name, fp in FAILPOINTS.items():
        assert fp.name == name
        assert fp.layer in ("core", "storage", "server", "kv")
        assert fp.mimics and fp.exposed_by
        assert fp.shows.startswith(("safety", "liveness")), name


def test_no_environment_means_no_failpoints_with_or_without_the_allow() -> None:
    assert enabled_from({}, allow=False) == frozenset()
    assert enabled_from({}, allow=True) == frozenset()
    assert enabled_from({ENV: ""}, allow=False) == frozenset()


def test_failpoints_count_only_with_an_explicit_allow() -> None:
    env = {ENV: "forget-vote, skip-fsync"}
    assert enabled_from(env, allow=True) == {"forget-vote", "skip-fsync"}
    assert enabled_from({**env, ALLOW_ENV: "1"}, allow=False) == {"forget-vote", "skip-fsync"}


@pytest.mark.parametrize("allow_value", [None, "0", "yes", "true", ""])
def test_failpoints_without_the_allow_refuse_to_start(allow_value: str | None) -> None:
    env = {ENV: "forget-vote"}
    if allow_value is not None:
        env[ALLOW_ENV] = allow_value
    with pytest.raises(FailpointError, match="not allowed.*--allow-failpoints"):
        enabled_from(env, allow=False)


def test_an_unknown_name_refuses_to_start_naming_it() -> None:
    with pytest.raises(FailpointError, match="unknown failpoint 'forget-votes'"):
        enabled_from({ENV: "skip-fsync,forget-votes", ALLOW_ENV: "1"}, allow=True)
    with pytest.raises(FailpointError, match="empty failpoint name"):
        parse_names("skip-fsync,,forget-vote", where="x")


def test_layers_take_only_their_own_failpoints() -> None:
    assert for_layer({"skip-fsync", "forget-vote", "cas-ignores-version"}, "core") == {"forget-vote"}
    with pytest.raises(FailpointError, match="not a core failpoint"):
        check_layer({"skip-fsync"}, "core", where="here")
    with pytest.raises(ConfigError, match="not a core failpoint"):
        RaftConfig(id="a", peers=("a",), rng=random.Random(1), failpoints=frozenset({"cas-ignores-version"}))
    with pytest.raises(ConfigError, match="frozenset"):
        RaftConfig(id="a", peers=("a",), rng=random.Random(1), failpoints={"forget-vote"})  # type: ignore[arg-type]
    with pytest.raises(KVUsageError, match="not a kv failpoint"):
        KVStore(failpoints=frozenset({"forget-vote"}))


def test_cas_ignores_version_applies_a_put_whatever_its_expected_version() -> None:
    from raftkv.kv import Command, Op, Outcome, encode_command

    def put(kv: KVStore, index: int, value: str, expected: int) -> Outcome:
        cmd = Command(request_id=f"r{index}", op=Op.PUT, key="k", value=value, expected_version=expected)
        return kv.apply(index, encode_command(cmd)).outcome

    good, bad = KVStore(), KVStore(failpoints=frozenset({"cas-ignores-version"}))
    for kv in (good, bad):
        assert put(kv, 1, "a", 0) is Outcome.OK
    assert put(good, 2, "b", 0) is Outcome.VERSION_MISMATCH
    assert put(bad, 2, "b", 0) is Outcome.OK
    assert bad.get("k") == ("b", 2)
