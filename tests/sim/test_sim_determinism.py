"""The same seed and arguments give a byte-identical trace: in one process, across processes, and whatever
PYTHONHASHSEED is (no iteration over sets or dicts of strings, no wall clock, no global random)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from raftkv.sim import run_simulation

ROOT = Path(__file__).resolve().parents[2]


def _trace(seed: int, steps: int) -> list[str]:
    lines: list[str] = []
    result = run_simulation(seed, 5, steps, trace=True, trace_sink=lines.append)
    lines.append(result.summary())
    return lines


def test_two_runs_of_a_seed_trace_identically() -> None:
    first = _trace(11, 4000)
    assert len(first) > 1000, "the trace is suspiciously short"
    assert first == _trace(11, 4000)


def test_different_seeds_differ() -> None:
    assert _trace(11, 1500) != _trace(12, 1500)


def test_trace_is_byte_identical_across_processes_and_hash_seeds() -> None:
    outputs = []
    for hash_seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run([sys.executable, "-m", "raftkv.sim", "--seed", "5", "--steps", "3000", "--trace"],
                              cwd=ROOT, env=env, capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stdout.decode()[-2000:] + proc.stderr.decode()[-2000:]
        outputs.append(proc.stdout)
    assert len(outputs[0].splitlines()) > 1000
    assert outputs[0] == outputs[1] == outputs[2]
