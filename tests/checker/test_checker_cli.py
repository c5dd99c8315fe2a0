"""`harness check`: verdicts, explanations, --json, EDN input, and exit codes (0, 1, 2, 254)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from checker.cli import main
from checker.generate import generate_kv
from checker.jepsen import dumps_history

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


@pytest.fixture
def valid_file(tmp_path: Path) -> Path:
    return write(tmp_path / "valid.jsonl", generate_kv(ops=300, keys=3, seed=1).events)


@pytest.fixture
def invalid_file(tmp_path: Path) -> Path:
    return write(tmp_path / "invalid.jsonl", generate_kv(ops=300, keys=3, seed=1, invalid=True).events)


def test_valid_history_exits_0(valid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(valid_file), "--model", "versioned-kv"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("VALID") and "3 part(s)" in out


def test_invalid_history_exits_1_and_explains(invalid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    anomaly = generate_kv(ops=300, keys=3, seed=1, invalid=True).anomaly
    assert main([str(invalid_file)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("INVALID")
    assert f"key {anomaly['key']}" in out and f"op {anomaly['op']}" in out and "stuck:" in out


def test_json_output_follows_the_contract(invalid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(invalid_file), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] is False
    lin = result["checkers"]["linearizable"]
    assert lin["valid"] is False and lin["model"] == "versioned-kv"
    assert set(lin["failure"]) >= {"part", "explanation", "longest_prefixes", "stuck", "ops"}
    assert result["checkers"]["stats"]["valid"] is True


def test_timeout_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hard = write(tmp_path / "hard.jsonl",
                 generate_kv(ops=10_000, keys=1, processes=10, info_rate=0.1, seed=0, invalid=True).events)
    assert main([str(hard), "--timeout", "0.2", "--sequential"]) == 2
    assert "unchecked parts: k0" in capsys.readouterr().out


def test_edn_input_with_initial_value(tmp_path: Path) -> None:
    events = [
        {"index": 0, "process": 0, "type": "invoke", "f": "read", "value": None, "time": 0},
        {"index": 1, "process": 0, "type": "ok", "f": "read", "value": 5, "time": 1},
    ]
    path = tmp_path / "h.edn"
    path.write_text(dumps_history(events))
    assert main([str(path), "--model", "register", "--initial", "5"]) == 0
    assert main([str(path), "--model", "register", "--initial", "4"]) == 1
    assert main([str(path), "--model", "cas-register"]) == 1  # initial nil


@pytest.mark.parametrize("argv", [
    [],
    ["--model", "versioned-kv"],
    ["x.jsonl", "--model", "no-such-model"],
    ["x.jsonl", "--timeout", "soon"],
    ["x.jsonl", "--timeout", "-1"],
    ["x.jsonl", "--frobnicate"],
])
def test_bad_arguments_exit_254(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 254
    assert "error" in capsys.readouterr().err


def test_missing_file_exits_254(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "absent.jsonl")]) == 254
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "message"), [
    ('{"index": 0, "process": 0, "type": "invoke", "f": "get", "key": "k", "time": 0}\nnope\n', "line 2: malformed"),
    ('{"index": 0, "process": 0, "type": "ok", "f": "get", "key": "k", "time": 0}\n', "line 1: unmatched completion"),
    ('{"index": 0, "process": 0, "type": "invoke", "f": "put", "key": "k", "value": 3, "time": 0}\n',
     "line 1: versioned-kv: put's invoke value"),
    ("", "the history holds no client operations"),
    ('{"index": 0, "process": "nemesis", "type": "info", "f": "start", "time": 0}\n', "no client operations"),
    ('{"index": 0, "process": 0, "type": "invoke", "f": "get", "key": "k", "time": 0}\n'
     '{"index": 1, "process": 0, "type": "ok", "f": "get", "key": "k", "value": "\xff", "time": 1}\n', "line 2: "
     "malformed line, not UTF-8 (byte 76 of the line)"),
    ('{"index": 0, "process": 0, "type": "invoke", "f": "get", "key": "k", "time": 0}\n{"ind\n',
     "line 2: malformed"),  # a broken line that ends in a newline is not torn: the writer finished it
])
def test_bad_history_exits_254_naming_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                               message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(text.encode("latin-1") if "\xff" in text else text.encode())
    assert main([str(path)]) == 254
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_torn_last_line_is_dropped_as_readers_do(valid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = valid_file.read_text()
    assert main([str(valid_file)]) == 0
    valid_file.write_text(whole + '{"index": 999, "process": 3, "ty')  # the writer died mid-line
    assert main([str(valid_file)]) == 0
    err = capsys.readouterr().err
    assert f"dropped the torn last line {whole.count(chr(10)) + 1}" in err


def test_malformed_edn_exits_254(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.edn"
    path.write_text("[{:process 0 :type :invoke :f :read}\n {:process 0 :type :ok")
    assert main([str(path), "--model", "register"]) == 254
    assert "malformed EDN" in capsys.readouterr().err


def test_harness_check_through_a_subprocess(valid_file: Path, invalid_file: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = [sys.executable, "-m", "harness.cli", "check"]
    ok = subprocess.run([*run, str(valid_file)], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([*run, str(invalid_file), "--json"], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=120)
    assert bad.returncode == 1 and json.loads(bad.stdout)["valid"] is False
    usage = subprocess.run([*run, "--timeout"], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert usage.returncode == 254 and "error" in usage.stderr


@pytest.mark.parametrize(("name", "text"), [("deep.edn", "[" * 100_000), ("deep.jsonl", "[" * 100_000 + "\n")])
def test_absurdly_nested_input_is_bad_input_not_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert main([str(path), "--model", "register"]) == 254
    err = capsys.readouterr().err
    assert "malformed" in err and "Traceback" not in err


def test_initial_values_parse_as_json_then_edn_then_text() -> None:
    from checker.cli import parse_initial

    assert parse_initial(None) is None
    assert parse_initial("0") == 0
    assert parse_initial('{"x": 0}') == {"x": 0}
    assert parse_initial("{x 0 y 0}") == {"x": 0, "y": 0}
    assert parse_initial("nil") is None
    assert parse_initial("free") == "free"
    assert parse_initial("[1 2") == "[1 2"


def test_to_edn_exports_what_the_edn_reader_reads_back(valid_file: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from checker.history import read_history

    assert main([str(valid_file), "--to-edn"]) == 0
    exported = tmp_path / "h.edn"
    exported.write_text(capsys.readouterr().out)
    assert read_history(str(exported)) == read_history(str(valid_file))
    assert main([str(exported)]) == 0


def test_a_crashing_checker_is_unknown_not_a_traceback(valid_file: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import checker.cli

    def broken(*args: object, **kwargs: object) -> dict:
        raise RuntimeError("search exploded")

    monkeypatch.setattr(checker.cli, "check_linearizability", broken)
    assert main([str(valid_file)]) == 2
    assert "the checker failed: RuntimeError: search exploded" in capsys.readouterr().out
