"""Client-visible safety: the history of client operations against what the state machine really applied.

`AppliedLog` records, for each log index, the command and the state machine's result the first time any node
applies it, and requires every other node's result at that index to be identical (a deterministic state machine
fed the same commands). `check_history` then holds the clients' view against it:

- an ``ok`` Put(key, value) was applied with exactly the version the client was told (no acknowledged write is
  lost or rewritten), and a Put's unique value is applied at most once (retries never apply twice);
- an ``ok`` Put(key, value, expected) made version expected + 1: a compare-and-set that succeeded can only have
  replaced the version it expected (``cas-violation`` otherwise);
- a ``fail`` Put was never applied (``fail`` promises no effect);
- an ``ok`` Get returned a (value, version) pair that the state machine really held at some point;
- real-time order: an operation invoked after another one completed observes a version at least as new (a read
  never goes back in time behind a completed write or read: what ReadIndex promises). Checked on the keys that
  were never deleted: only there do a key's versions grow with time (a delete starts it again at 0; runs with
  deletes, `ClientOptions.delete_ratio`, rely on the other checks for their deleted keys).

``info`` operations (maybe, timeout) may or may not have happened and constrain nothing.
"""

from __future__ import annotations

from raftkv.kv import Command, CommandError, Op, Outcome, Result, decode_command

from .client import OpRecord
from .invariants import InvariantViolation

__all__ = ["AppliedLog", "check_history"]


class AppliedLog:
    """Index -> (command, result) of everything applied, as first applied; checks the others agree."""

    def __init__(self) -> None:
        self.entries: dict[int, tuple[Command | None, Result | None]] = {}

    def record(self, node: int, index: int, data: bytes, result: Result | None) -> None:
        known = self.entries.get(index)
        if known is None:
            command: Command | None = None
            if result is not None:
                try:
                    command = decode_command(data)
                except CommandError:
                    command = None
            self.entries[index] = (command, result)
        elif known[1] != result:
            raise InvariantViolation("state-machine-safety", f"n{node} applying index {index} got {result}, "
                                     f"another node got {known[1]}")


def check_history(history: list[OpRecord], applied: AppliedLog) -> None:
    """Raise `InvariantViolation` at the first client-visible inconsistency (see the module docstring)."""
    versions: dict[tuple[str, int], set[str | None]] = {}  # several values once deletes let versions repeat
    applied_values: dict[str, int] = {}
    deleted: set[str] = set()
    for index in sorted(applied.entries):
        command, result = applied.entries[index]
        if command is None or result is None or result.outcome is not Outcome.OK or result.replayed:
            continue
        if command.op is Op.DELETE:
            deleted.add(command.key)
        if command.op is not Op.PUT:
            continue
        if command.value in applied_values:
            raise InvariantViolation("duplicate-apply", f"the put of {command.value!r} was applied twice "
                                     f"(indexes {applied_values[command.value]} and {index})")
        applied_values[command.value or ""] = index
        versions.setdefault((command.key, result.version), set()).add(command.value)
    for op in history:
        if op.type == "ok":
            if op.f == "put" and op.result_version != op.expected + 1:
                raise InvariantViolation("cas-violation", f"{op.describe()} but it expected v{op.expected}: a "
                                         f"compare-and-set that succeeded must make v{op.expected + 1}")
            if op.f == "put":
                got = versions.get((op.key, op.result_version), {_MISSING})
                if op.value not in got:
                    raise InvariantViolation("acknowledged-write-lost", f"{op.describe()} but the state machine "
                                             f"holds {sorted(map(str, got))} at v{op.result_version}")
            elif op.f == "get" and op.result_version:
                got = versions.get((op.key, op.result_version), {_MISSING})
                if op.result_value not in got:
                    raise InvariantViolation("read-consistency", f"{op.describe()} but the state machine held "
                                             f"{sorted(map(str, got))} at v{op.result_version}")
        elif op.type == "fail" and op.f == "put" and op.value in applied_values:
            raise InvariantViolation("failed-write-applied", f"{op.describe()} but it was applied at index "
                                     f"{applied_values[op.value or '']}")
    _check_real_time([op for op in history if op.key not in deleted])


_MISSING = "<never written>"


def _check_real_time(history: list[OpRecord]) -> None:
    by_key: dict[str, list[OpRecord]] = {}
    for op in history:
        if op.type == "ok" and op.complete is not None:
            by_key.setdefault(op.key, []).append(op)
    for key in sorted(by_key):
        ops = by_key[key]
        completed = sorted(ops, key=lambda o: (o.complete, o.client))
        invoked = sorted(ops, key=lambda o: (o.invoke, o.client))
        best: OpRecord | None = None
        j = 0
        for op in invoked:
            while j < len(completed) and completed[j].complete < op.invoke:  # type: ignore[operator]
                if best is None or completed[j].result_version > best.result_version:
                    best = completed[j]
                j += 1
            if best is not None and op.result_version < best.result_version:
                raise InvariantViolation("read-consistency", f"{op.describe()} (invoked at {op.invoke}us) saw an "
                                         f"older version than {best.describe()} (completed at {best.complete}us)")
