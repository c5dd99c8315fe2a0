"""checker: the history format and a Porcupine-style linearizability checker (pure: no I/O beyond reading a history).

Start with `check_linearizability(events, make_model("versioned-kv"), timeout=60)`, or `standard_checker()` for
the composed result of a run, or the command line `harness check HISTORY --model MODEL`. docs/history.md is the
contract (format, semantics, result shape).
"""

from __future__ import annotations

from .checkers import Compose, SetChecker, Stats, merge_valid
from .convergence import ConvergenceChecker
from .election import ElectionSafetyChecker
from .generate import Generated, generate_kv
from .history import HistoryError, Operation, pair, parse_jsonl, read_history, validate
from .jepsen import dumps_history, from_jepsen, loads_history, read_edn_history, to_jepsen
from .linearizability import LinearizabilityChecker, check_linearizability
from .logmatch import LogMatchingChecker
from .models import MODELS, UNKNOWN, Model, ModelError, make_model, register_model
from .recovery import RecoveryChecker
from .suite import standard_checker

__all__ = [
    "MODELS", "UNKNOWN", "Compose", "ConvergenceChecker", "ElectionSafetyChecker", "Generated", "HistoryError", "LinearizabilityChecker",
    "LogMatchingChecker", "Model", "ModelError", "Operation", "RecoveryChecker", "SetChecker", "Stats", "check_linearizability",
    "dumps_history", "from_jepsen", "generate_kv",
    "loads_history", "make_model", "merge_valid", "pair", "parse_jsonl", "read_edn_history", "read_history",
    "register_model", "standard_checker", "to_jepsen", "validate",
]
