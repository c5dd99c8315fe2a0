"""Campaigns: the plan (cells x seeds, seeds derived from one), the exit code's ranking, and whole campaigns of
real runs on the local backend with the fake DB (one that lies, to be found)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import harness_fake
import pytest

from harness.campaign import exit_code_of, plan, plan_failpoints, run_campaign, write_detection
from harness.clean import leftovers
from harness.cli import main as cli_main
from harness.run import ExitCode, RunConfig


@pytest.fixture(autouse=True)
def fakes() -> Iterator[None]:
    harness_fake.register()
    yield
    harness_fake.unregister()


def base(prefix: str, store: Path, **extra: object) -> RunConfig:
    return RunConfig(workload="fakeadd", backend="local", nodes=2, time_limit=0.8, concurrency=2, rate=100,
                     op_timeout=1.0, final_time_limit=3, status_interval=0.2, store=store, prefix=prefix,
                     render=False, extra=extra)


def test_the_plan_runs_every_cell_with_seeds_derived_from_the_campaign_seed(tmp_path: Path) -> None:
    cells = [("partition",), ("kill", "pause")]
    a = plan(base("rkx", tmp_path), cells, 3, seed=7)
    assert [c.nemeses for c in a] == [("partition",)] * 3 + [("kill", "pause")] * 3
    assert len({c.seed for c in a}) == 6 and all(0 <= c.seed < 2**31 for c in a)
    assert [c.seed for c in plan(base("rkx", tmp_path), cells, 3, seed=7)] == [c.seed for c in a]
    assert [c.seed for c in plan(base("rkx", tmp_path), cells, 3, seed=8)] != [c.seed for c in a]
    assert all(c.workload == "fakeadd" and c.nodes == 2 for c in a)
    with pytest.raises(ValueError):
        plan(base("rkx", tmp_path), [], 1, seed=1)
    with pytest.raises(ValueError):
        plan(base("rkx", tmp_path), cells, 0, seed=1)
    main = plan(base("rkx", tmp_path), cells, 3, seed=7, main_runs=5)
    assert [c.nemeses for c in main] == [("partition",)] * 5 + [("kill", "pause")] * 3
    assert [c.seed for c in main][:3] == [c.seed for c in a][:3]  # the same seeds, more of them


def test_the_exit_code_puts_a_finding_first_then_a_broken_harness_then_doubt() -> None:
    valid, invalid, unknown, failed = ExitCode.VALID, ExitCode.INVALID, ExitCode.UNKNOWN, ExitCode.HARNESS_FAILED
    assert exit_code_of([valid, valid]) == valid and exit_code_of([]) == valid
    assert exit_code_of([valid, unknown]) == unknown
    assert exit_code_of([unknown, failed, valid]) == failed and exit_code_of([valid], interrupted=True) == failed
    assert exit_code_of([failed, invalid, unknown]) == invalid


async def test_a_campaign_of_valid_runs_records_each_and_leaves_nothing(prefix: str, tmp_path: Path) -> None:
    store = tmp_path / "store"
    seen: list[int] = []
    campaign = await run_campaign(plan(base(prefix, store), [(), ()], 1, seed=3), store=store, seed=3,
                                  on_run=lambda i, run: seen.append(i))
    assert seen == [0, 1] and campaign.exit_code == ExitCode.VALID and campaign.stopped is None
    record = json.loads(campaign.path.read_text())
    assert record["planned"] == 2 and [r["valid"] for r in record["runs"]] == [True, True]
    assert all(Path(r["run_dir"], "results.json").is_file() for r in record["runs"])
    assert all(r["ok"] > 0 for r in record["runs"])
    assert (store / "index.html").is_file()
    assert leftovers(prefix) == []


async def test_a_lying_db_is_found_and_stop_on_invalid_ends_the_campaign(prefix: str, tmp_path: Path) -> None:
    store = tmp_path / "store"
    configs = plan(base(prefix, store, fake_lie=3), [(), ()], 2, seed=4)
    campaign = await run_campaign(configs, store=store, seed=4, stop_on_invalid=True)
    assert campaign.exit_code == ExitCode.INVALID
    assert len(campaign.runs) == 1 and campaign.runs[0].valid is False
    assert campaign.stopped is not None and "first invalid run (1 of 4)" in campaign.stopped
    assert json.loads(campaign.path.read_text())["exit_code"] == ExitCode.INVALID
    assert leftovers(prefix) == []


async def test_a_spent_budget_starts_no_new_run(prefix: str, tmp_path: Path) -> None:
    store = tmp_path / "store"
    campaign = await run_campaign(plan(base(prefix, store), [()], 3, seed=5), store=store, seed=5,
                                  budget_s=0.001)
    assert len(campaign.runs) == 1 and "time budget" in (campaign.stopped or "")
    assert campaign.exit_code == ExitCode.VALID


def test_the_command_line_runs_a_campaign_and_refuses_unknown_cells(prefix: str, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--workload", "fakeadd", "--backend", "local", "--nodes", "2", "--time-limit", "0.8",
              "--concurrency", "2", "--rate", "100", "--op-timeout", "1", "--final-time-limit", "3",
              "--status-interval", "0.2", "--store", str(tmp_path / "store"), "--prefix", prefix, "--no-report",
              "--seed", "11"]
    assert cli_main(["campaign", "--nemesis", "nosuch", *common]) == ExitCode.BAD_ARGUMENTS
    assert "nosuch" in capsys.readouterr().err
    assert cli_main(["campaign", "--nemesis", "none", "--runs-per-cell", "2", *common]) == ExitCode.VALID
    out = capsys.readouterr().out
    assert "campaign: 2 of 2 runs: 2 valid, 0 invalid, 0 unknown, 0 failed" in out and "exit code: 0" in out
    assert leftovers(prefix) == []


async def test_cancelling_a_campaign_ends_its_current_run_cleanly_and_starts_no_other(prefix: str,
                                                                                   tmp_path: Path) -> None:
    """What Ctrl-C or SIGTERM does (the command line cancels the campaign's task): the run in progress heals
    and tears down, is recorded as interrupted, and the campaign stops with exit code 3."""
    import asyncio

    store = tmp_path / "store"
    configs = [replace(c, time_limit=30.0) for c in plan(base(prefix, store), [()], 3, seed=6)]
    task = asyncio.create_task(run_campaign(configs, store=store, seed=6))
    async with asyncio.timeout(30):
        while not list(store.glob("fakeadd-none/2*/history.jsonl")) or not list(
                store.glob("fakeadd-none/2*/history.jsonl"))[0].stat().st_size:
            await asyncio.sleep(0.02)  # polling the store for the first run's first events
    task.cancel()
    campaign = await task
    assert campaign.interrupted and campaign.exit_code == ExitCode.HARNESS_FAILED
    assert len(campaign.runs) == 1 and "interrupted during run 1 of 3" in (campaign.stopped or "")
    assert json.loads(campaign.path.read_text())["interrupted"] is True
    assert leftovers(prefix) == []


def test_a_failpoint_plan_gives_every_bug_its_own_seeds_and_adds_clean_controls(tmp_path: Path) -> None:
    bugs = list(harness_fake.FakeFailpoints.BUGS)
    a = plan_failpoints(base("rkx", tmp_path), bugs, [("kill",), ()], 2, seed=7, control_runs=1)
    assert [(c.failpoints, c.nemeses) for c in a] == [
        (("lie",), ("kill",)), (("lie",), ("kill",)), (("lie",), ()), (("lie",), ()),
        (("harmless",), ("kill",)), (("harmless",), ("kill",)), (("harmless",), ()), (("harmless",), ()),
        ((), ("kill",)), ((), ())]
    assert len({c.seed for c in a}) == len(a)
    only_lie = plan_failpoints(base("rkx", tmp_path), bugs[:1], [("kill",), ()], 2, seed=7, control_runs=1)
    assert [c.seed for c in only_lie[:4]] == [c.seed for c in a[:4]]  # adding a bug moves no other bug's seeds


async def test_a_failpoint_campaign_stops_a_bug_at_its_first_catch_and_writes_the_table(prefix: str,
                                                                                       tmp_path: Path) -> None:
    store = tmp_path / "store"
    bugs = list(harness_fake.FakeFailpoints.BUGS)
    configs = plan_failpoints(base(prefix, store), bugs, [()], 2, seed=9, control_runs=1)
    campaign = await run_campaign(configs, store=store, seed=9, stop_cell_on_invalid=True)
    assert [(r.failpoint, r.valid) for r in campaign.runs] == [("lie", False), ("harmless", True),
                                                              ("harmless", True), (None, True)]
    test_json = json.loads(Path(campaign.runs[0].run_dir or "", "test.json").read_text())
    assert test_json["failpoints"] == ["lie"] and test_json["options"]["fake_lie"] == 3
    paths = write_detection(campaign, bugs, "harness campaign --failpoints all")
    table = json.loads(paths["json"].read_text())
    assert table["caught"] == 1 and table["false_alarms"] == 0 and table["control_runs"] == 1
    assert [r["caught"] for r in table["rows"]] == [True, False]
    assert table["rows"][0]["runs"][0]["caught_by"] == ["adder"]
    assert "detection.html" in (store / "index.html").read_text()  # the store's index links the new table
    assert leftovers(prefix) == []


def test_the_command_line_refuses_unknown_failpoints(prefix: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--workload", "fakeadd", "--backend", "local", "--store", str(tmp_path / "store"), "--prefix", prefix]
    assert cli_main(["campaign", "--failpoints", "lie,nope", *common]) == ExitCode.BAD_ARGUMENTS
    assert "unknown failpoint(s) nope for DB fakedb (known: lie, harmless)" in capsys.readouterr().err
    assert cli_main(["run", "--failpoints", "nope", *common]) == ExitCode.BAD_ARGUMENTS
    assert "nope" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_the_nightly_campaign_line_parses_as_a_campaign() -> None:
    """.ci/nightly runs nowhere in CI: its `harness campaign` arguments are held to the command line here, so that a
    renamed option fails this test instead of a night."""
    import shlex

    from harness.cli import build_parser

    script = (Path(__file__).resolve().parents[2] / ".ci" / "nightly").read_text().replace("\\\n", " ")
    line = next(ln for ln in script.splitlines() if ln.startswith("exec ") and "harness campaign" in ln)
    argv = shlex.split(line.split("/harness ", 1)[1].replace('"$@"', ""))
    parser, dests = build_parser()
    args = parser.parse_args(argv)
    assert args.cmd == "campaign" and args.nodes == 5 and args.runs_per_cell == 2 and args.budget_minutes == 170
    # Its main cell is every nemesis under the hunting schedule, and every cell makes a valid run configuration.
    from harness.cli import _config, campaign_cells

    cells = campaign_cells(args)
    assert cells[0] == ("all",) and {("partition",), ("kill",), ("pause",)} <= set(cells[1:])
    configs = plan(_config(args, dests, (), 1), cells, args.runs_per_cell, 1, main_runs=args.main_runs)
    assert [c.nemeses for c in configs].count(("all",)) == 100 and configs[0].nemeses == ("all",)
    assert all(_config(args, dests, cell, 1).schedule == "hunt" for cell in cells)


def test_the_nightly_runs_the_failpoint_detection_campaign_in_the_hunting_configuration() -> None:
    import shlex

    from harness.cli import build_parser

    script = (Path(__file__).resolve().parents[2] / ".ci" / "nightly").read_text().replace("\\\n", " ")
    line = next(ln for ln in script.splitlines() if "harness campaign --failpoints" in ln)
    assert not line.startswith("exec ")  # the torture campaign still runs after it
    args = build_parser()[0].parse_args(shlex.split(line.split("/harness ", 1)[1]))
    assert args.failpoints == ("all",) and args.nemesis == [("all",)] and args.runs_per_cell == 3
    assert args.time_limit == 60 and args.control_runs >= 1 and args.nodes in (None, 5)  # None: the default, 5


def test_the_nightly_runs_the_collection_workloads_against_raftkv_and_etcd() -> None:
    """The nightly's set/list-append loop (issue 14): both workloads, both DBs, and every cell resolves for each
    DB (etcd's `all` without the nemeses it refuses)."""
    import argparse
    import shlex

    from harness.cli import _config, build_parser, campaign_cells
    from harness.run import resolve

    script = (Path(__file__).resolve().parents[2] / ".ci" / "nightly").read_text().replace("\\\n", " ")
    loop = next(ln for ln in script.splitlines() if ln.startswith("for workload in "))
    workloads = loop.removeprefix("for workload in ").split(";")[0].split()
    assert workloads == ["set", "list-append"]
    body = script.splitlines()[script.splitlines().index(loop) + 1]
    parser, dests = build_parser()
    for workload in workloads:
        args = parser.parse_args(shlex.split(body.split("/harness ", 1)[1].replace('"$workload"', workload)))
        assert args.cmd == "campaign" and args.workload == workload and args.db == "raftkv,etcd"
        cells = campaign_cells(args)
        assert cells == [("partition", "kill"), ("all",)]
        for db in ("raftkv", "etcd"):
            per_db = argparse.Namespace(**{**vars(args), "db": db})
            for cell in cells:
                config = _config(per_db, dests, cell, 1)
                assert config.db == db and config.workload == workload
        etcd_all = _config(argparse.Namespace(**{**vars(args), "db": "etcd"}), dests, ("all",), 1)
        names = {spec.name for spec in resolve(etcd_all)[2]}
        assert {"partition", "kill"} <= names and not names & {"disk", "clock"}
