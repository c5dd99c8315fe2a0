"""scripts/run-main-job runs `harness run` with arguments the CLI accepts and plugins that exist (the real run itself
is the e2e tests' job; this catches drift between the script and the command line)."""

from __future__ import annotations

import shlex
from pathlib import Path

from harness.cli import build_parser

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "run-main-job"


def main_job_argv() -> list[str]:
    text = SCRIPT.read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("exec ") and "harness run" in line)
    words = shlex.split(line)
    return words[words.index("run"):-1] if words[-1] == "$@" else words[words.index("run"):]


def test_the_main_job_is_a_partition_run_of_the_register_workload() -> None:
    argv = main_job_argv()
    parser, _ = build_parser()
    args = parser.parse_args(argv)
    assert args.workload == "register" and "partition" in str(args.nemesis)
    assert args.nodes == 5 and args.keys == 8
