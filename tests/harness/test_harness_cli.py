"""The command line's contract: help, exit code 254 on bad arguments, guarded report/serve, plugin options."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import harness_fake
import pytest
from harness_testutil import subprocess_env

from harness.cli import build_parser, main


@pytest.fixture
def fakes() -> Iterator[None]:
    harness_fake.register()
    yield
    harness_fake.unregister()


def test_help_documents_every_command_and_the_exit_codes() -> None:
    res = subprocess.run([sys.executable, "-m", "harness.cli", "--help"], capture_output=True, text=True,
                         env=subprocess_env())
    assert res.returncode == 0
    for word in ("run", "clean", "analyze", "check", "report", "serve", "254", "RAFTKV_LAB_PREFIX"):
        assert word in res.stdout
    res = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--help"], capture_output=True, text=True,
                         env=subprocess_env())
    assert res.returncode == 0
    for flag in ("--nemesis", "--workload", "--nodes", "--time-limit", "--concurrency", "--rate", "--seed",
                 "--backend", "--nemesis-interval", "--store"):
        assert flag in res.stdout


@pytest.mark.parametrize("argv", [[], ["bogus"], ["run", "--nodes", "0"], ["run", "--rate", "x"],
                                  ["run", "--time-limit", "-1"], ["run", "--backend", "vagrant"],
                                  ["analyze"], ["run", "--no-such-flag"]])
def test_bad_arguments_exit_254(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 254


def test_unknown_workload_or_nemesis_is_a_bad_argument(fakes: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--workload", "nope", "--prefix", "rtzz"]) == 254
    assert "no workload named 'nope'" in capsys.readouterr().err
    assert main(["run", "--workload", "fakeadd", "--nemesis", "isolate,nope", "--prefix", "rtzz"]) == 254
    assert "no nemesis named 'nope'" in capsys.readouterr().err


def test_plugin_options_appear_on_run(fakes: None) -> None:
    parser, dests = build_parser()
    assert "fake_lie" in dests
    args = parser.parse_args(["run", "--workload", "fakeadd", "--fake-lie", "3", "--nemesis", "isolate,none"])
    assert args.fake_lie == 3 and args.nemesis == ("isolate", "none")


def test_analyze_of_a_non_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(tmp_path)]) == 254
    assert "not a run directory" in capsys.readouterr().err


def test_report_and_serve_say_clearly_when_reports_is_missing(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    try:
        import reports.render  # noqa: F401
    except ImportError:
        assert main(["report", str(tmp_path)]) == 3
        assert "reports package is not available" in capsys.readouterr().err
    try:
        import reports.serve  # noqa: F401
    except ImportError:
        assert main(["serve", "--port", "0"]) == 3
        assert "reports package is not available" in capsys.readouterr().err


def test_clean_with_a_bad_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clean", "--prefix", "Bad-Prefix"]) == 254
    assert "must be 1-8 lowercase" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["run", "campaign"])
def test_a_bad_prefix_stops_a_run_or_campaign_before_anything_exists(cmd: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A campaign once ran 50 runs that each failed on an upper-case --prefix; now it is refused up front, from the
    option and from $RAFTKV_LAB_PREFIX alike."""
    store = tmp_path / "store"
    assert main([cmd, "--prefix", "rcA", "--store", str(store)]) == 254
    assert "must be 1-8 lowercase" in capsys.readouterr().err
    monkeypatch.setenv("RAFTKV_LAB_PREFIX", "BAD")
    assert main([cmd, "--store", str(store)]) == 254
    assert "must be 1-8 lowercase" in capsys.readouterr().err
    assert not store.exists()


def test_a_missing_prerequisite_stops_the_run_before_anything_exists(fakes: None, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import harness.backends.netns as netns

    monkeypatch.setattr(netns.shutil, "which", lambda tool: None if tool == "iptables" else "/usr/sbin/" + tool)
    assert main(["run", "--workload", "fakeadd", "--store", str(tmp_path / "store"), "--prefix", "rtzz"]) == 3
    assert "apt-get install -y iptables" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("argv", [["--fault-rate", "0"], ["--fault-rate", "1000"], ["--fault-rate", "x"],
                                  ["--moves", "dance"], ["--moves", ""], ["--schedule", "sometimes"]])
def test_bad_schedule_knobs_exit_254(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", *argv]) == 254


@pytest.mark.parametrize(("argv", "says"), [
    (["--nemesis-interval", "3"], "--nemesis-interval applies to --schedule cycle, not hunt"),
    (["--schedule", "cycle", "--fault-rate", "20"], "--fault-rate applies to --schedule hunt, not cycle"),
    (["--schedule", "cycle", "--moves", "leader-churn"], "--moves applies to --schedule hunt, not cycle")])
def test_a_knob_of_the_other_schedule_is_refused_and_named(fakes: None, argv: list[str], says: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--workload", "fakeadd", "--prefix", "rtzz", *argv]) == 254
    assert says in capsys.readouterr().err


def test_schedule_knobs_reach_the_run_configuration(fakes: None) -> None:
    from harness.cli import _config

    parser, dests = build_parser()
    hunt = _config(parser.parse_args(["run", "--workload", "fakeadd", "--fault-rate", "30", "--moves",
                                      "leader-churn,isolate-leader"]), dests, ("isolate",), 1)
    assert (hunt.schedule, hunt.fault_rate, hunt.moves) == ("hunt", 30.0, ("leader-churn", "isolate-leader"))
    assert hunt.options()["moves"] == ["leader-churn", "isolate-leader"]
    cycle = _config(parser.parse_args(["run", "--workload", "fakeadd", "--schedule", "cycle", "--nemesis-interval",
                                       "4"]), dests, ("isolate",), 1)
    assert (cycle.schedule, cycle.nemesis_interval) == ("cycle", 4.0)
    none = _config(parser.parse_args(["run", "--workload", "fakeadd", "--moves", "none"]), dests, (), 1)
    assert none.moves == ()
