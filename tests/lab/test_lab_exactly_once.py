"""Issue 15 in the lab: the churn mix through the client library's retries, under leader kills, partitions and a
slow, lossy network, on two keys. With the old behaviour switched back on in raftkv (failpoint `no-dedup`: the
state machine ignores client sessions) a retried write applies twice and the run is invalid within a few seeds;
so it is, more rarely (a nightly test), with a client that sends no session (`--client-sessions off`: the
library before the fix). With sessions and no failpoint the same configuration runs valid. Each op's library attempts are in its completion value.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from test_lab_e2e import Run, e2e_prefix, harness_run  # noqa: F401 - e2e_prefix is a fixture

pytestmark = pytest.mark.netns

# The provoking configuration (also the regression cell of .ci/nightly and docs/lab.md "Retries in smart mode").
CHURN = ("--nodes", "3", "--concurrency", "10", "--rate", "200", "--keys", "2", "--client-mode", "smart",
         "--mix", "churn", "--op-timeout", "2", "--nemesis", "packet,kill,partition",
         "--packet-behaviours", "delay,delay+loss", "--packet-delay-ms", "150", "--packet-jitter-ms", "50",
         "--fault-rate", "30")
SEEDS = (101, 102, 103)  # tried in turn until one is caught; 101 was caught at 30 s when this was written
TIME_LIMIT = 60
BUDGET_S = 600  # no new seed after this: the test stays bounded on a loaded machine
# Without sessions the library treats a retry's version mismatch as unknown (correctly), so only the rarer ABA shows:
# a create retried after its key was deleted. Measured here: 8 of 19 runs of 60 s caught (docs/lab.md); CI once caught none
# of three. Too rare for CI; a nightly torture test with up to eight seeds (a miss about 1 in 100).
SESSIONLESS_SEEDS = tuple(range(101, 109))
SESSIONLESS_BUDGET_S = 900


def retried_writes(run: Run) -> list[dict[str, Any]]:
    """Write completions that record more than one library attempt, the first one of unknown outcome."""
    return [e for e in run.history if e["process"] not in ("nemesis", "harness") and e["type"] != "invoke"
            and e["f"] in ("put", "delete") and isinstance(e.get("value"), dict)
            and e["value"].get("attempts", [[None, ""]])[0][1] in ("connection-lost", "maybe", "timeout")]


def test_the_lab_catches_a_write_applied_twice_when_the_servers_ignore_sessions(
        e2e_prefix: str, tmp_path: Path) -> None:  # noqa: F811
    """With sessions on, the library trusts a retry's version mismatch (the servers' session table would have
    replayed an applied first attempt); no-dedup makes that a definite failure of an applied write: caught fast."""
    caught_within(e2e_prefix, tmp_path, ("--client-sessions", "on", "--raftkv-failpoints", "no-dedup"),
                  SEEDS, BUDGET_S)


@pytest.mark.slow
def test_the_lab_catches_a_write_applied_twice_by_a_sessionless_client(e2e_prefix: str,  # noqa: F811
                                                                        tmp_path: Path) -> None:
    caught_within(e2e_prefix, tmp_path, ("--client-sessions", "off"), SESSIONLESS_SEEDS, SESSIONLESS_BUDGET_S)


def caught_within(prefix: str, tmp_path: Path, old_behaviour: tuple[str, ...], seeds: tuple[int, ...],
                  budget_s: float) -> None:
    """Run CHURN with the old behaviour for each seed in turn (no new one after `budget_s`) until one is caught
    by the linearizability checker; fail naming every seed's exit code if none is."""
    started = time.monotonic()
    verdicts = []
    for seed in seeds:
        if time.monotonic() - started > budget_s:
            break
        run = harness_run(prefix, tmp_path / f"store-{seed}", *CHURN, *old_behaviour,
                          "--seed", str(seed), time_limit=TIME_LIMIT)
        verdicts.append((seed, run.code))
        assert run.code in (0, 1), f"seed {seed}: exit code {run.code}\n{run.output[-3000:]}"
        assert retried_writes(run), "the faults must make the library retry writes of unknown outcome"
        if run.code == 1:
            linear = run.results["checkers"]["linearizable"]
            assert linear["valid"] is False and linear["parts"]["invalid"], linear
            return
    pytest.fail(f"no run was caught within {len(verdicts)} seeds: {verdicts}")


def test_with_sessions_the_same_configuration_is_valid(e2e_prefix: str, tmp_path: Path) -> None:  # noqa: F811
    run = harness_run(e2e_prefix, tmp_path / "store", *CHURN, "--client-sessions", "on", "--seed", str(SEEDS[0]),
                      time_limit=TIME_LIMIT)
    assert run.code == 0, f"exit code {run.code}\n{run.output[-3000:]}"
    assert run.results["valid"] is True
    retried = retried_writes(run)
    assert retried, "the faults must make the library retry writes of unknown outcome"
    assert any(e["type"] == "ok" for e in retried), "some retried writes must succeed (answered once)"


def test_the_nightly_regression_cell_is_this_configuration_with_sessions() -> None:
    """.ci/nightly's churn campaign parses as a campaign and runs CHURN with client sessions and no failpoint."""
    import shlex

    from harness.cli import build_parser

    script = (Path(__file__).resolve().parents[2] / ".ci" / "nightly").read_text().replace("\\\n", " ")
    line = next(ln for ln in script.splitlines() if "harness campaign" in ln and "--mix churn" in ln)
    assert not line.startswith("exec ")  # the torture campaign still runs after it
    parser = build_parser()[0]
    nightly = parser.parse_args(shlex.split(line.split("/harness ", 1)[1]))
    here = parser.parse_args(["campaign", *CHURN, "--client-sessions", "on", "--runs-per-cell", "3",
                              "--budget-minutes", "10", "--time-limit", str(TIME_LIMIT)])
    assert vars(nightly) == vars(here)
    assert not nightly.failpoints
