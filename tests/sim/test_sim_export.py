"""The simulator's history export follows docs/history.md (versioned-kv model)."""

from __future__ import annotations

import io
import json

from raftkv.sim import run_simulation
from raftkv.sim.__main__ import main
from raftkv.sim.export import write_history


def test_history_export_follows_the_contract() -> None:
    result = run_simulation(4, 5, 5000)
    out = io.StringIO()
    count = write_history(result.history, out)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert count == len(events) > 50
    assert [e["index"] for e in events] == list(range(len(events)))
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    open_ops: dict[int, dict[str, object]] = {}
    retired: set[int] = set()
    for e in events:
        assert e["type"] in ("invoke", "ok", "fail", "info") and e["f"] in ("get", "put") and e["key"]
        process = e["process"]
        if e["type"] == "invoke":
            assert process not in open_ops, "a process issued an operation before the previous one completed"
            assert process not in retired, "a process with an indeterminate operation issued another"
            open_ops[process] = e
            if e["f"] == "put":
                assert set(e["value"]) == {"value", "version"}
            continue
        invoke = open_ops.pop(process)
        assert (invoke["f"], invoke["key"]) == (e["f"], e["key"])
        if e["type"] == "info":
            retired.add(process)
            assert e["error"] in ("maybe", "timeout")
        elif e["type"] == "ok" and e["f"] == "put":
            assert e["value"] == {"version": invoke["value"]["version"] + 1}  # type: ignore[index]
        elif e["type"] == "ok":
            assert set(e["value"]) == {"value", "version"}
        else:
            assert e["error"]
    retired.update(open_ops)  # still running at the end: indeterminate


def test_cli_writes_the_history(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "history.jsonl"
    assert main(["--seed", "4", "--steps", "2000", "--history", str(path)]) == 0
    lines = path.read_text().splitlines()
    assert lines and all(json.loads(line)["time"] >= 0 for line in lines)
    assert f"history: {len(lines)} events written to {path}" in capsys.readouterr().out
