"""The store's files and links, the registry's lookups and errors, child seeds, checker composition."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness import registry
from harness.checking import combine, run_checkers
from harness.protocols import Op
from harness.seeds import child_seed
from harness.store import HistoryWriter, JsonlWriter, RunDir, StoreError, read_jsonl


def test_history_writer_indexes_and_appends_whole_lines(tmp_path: Path) -> None:
    w = HistoryWriter(tmp_path / "h.jsonl")
    a = w.record(Op(process=0, type="invoke", f="put", key="k", value={"value": 1, "version": 0}, time=5))
    b = w.record(Op(process=0, type="ok", f="put", key="k", value={"version": 1}, time=9, node="n1"))
    w.close()
    assert (a.index, b.index) == (0, 1)
    lines = (tmp_path / "h.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"index": 0, "process": 0, "type": "invoke", "f": "put", "key": "k",
                                    "value": {"value": 1, "version": 0}, "time": 5}
    assert json.loads(lines[1])["node"] == "n1"
    with pytest.raises(ValueError, match="closed"):
        w.append({"x": 1})


async def test_a_gathering_writer_flushes_on_its_timer_without_further_appends(tmp_path: Path) -> None:
    """Lines wait in memory for at most flush_interval: the file has them then, with nothing else happening."""
    w = HistoryWriter(tmp_path / "h.jsonl", flush_interval=0.05)
    w.record(Op(process=0, type="invoke", f="get", key="k", time=1))
    w.record(Op(process=0, type="ok", f="get", key="k", time=2))
    assert (tmp_path / "h.jsonl").read_text() == ""  # gathered, not yet written
    loop = asyncio.get_running_loop()
    flushed = loop.create_future()
    loop.call_soon(_when_nonempty, tmp_path / "h.jsonl", flushed, loop.time() + 5)
    await flushed
    assert [e["index"] for e in read_jsonl(tmp_path / "h.jsonl")] == [0, 1]
    w.close()


def _when_nonempty(path: Path, fut: asyncio.Future[None], give_up: float) -> None:
    loop = asyncio.get_running_loop()
    if path.stat().st_size:
        fut.set_result(None)
    elif loop.time() > give_up:
        fut.set_exception(AssertionError(f"{path} still empty"))
    else:
        loop.call_later(0.005, _when_nonempty, path, fut, give_up)


def test_a_gathering_writer_without_a_loop_writes_through_and_flushes_on_close_and_size(tmp_path: Path) -> None:
    w = HistoryWriter(tmp_path / "a.jsonl", flush_interval=10)
    w.record(Op(process=0, type="invoke", f="get", key="k", time=1))  # no running loop: nothing would flush later
    assert len(read_jsonl(tmp_path / "a.jsonl")) == 1
    w.close()


async def test_a_gathering_writer_writes_on_size_and_on_close_in_order(tmp_path: Path) -> None:
    w = HistoryWriter(tmp_path / "b.jsonl", flush_interval=3600)
    big = "x" * 1000
    n = JsonlWriter.FLUSH_BYTES // 1000 + 2
    for i in range(n):
        w.record(Op(process=0, type="invoke", f="put", key="k", value=big, time=i))
    on_disk = read_jsonl(tmp_path / "b.jsonl")
    assert 0 < len(on_disk) < n  # the size bound wrote what had gathered; the rest waits
    w.close()
    assert [e["index"] for e in read_jsonl(tmp_path / "b.jsonl")] == list(range(n))


def test_unserialisable_values_are_written_not_crashed_on(tmp_path: Path) -> None:
    w = JsonlWriter(tmp_path / "c.jsonl")
    w.append({"v": {1, 2}, "b": b"x", "p": Path("/a"), "o": object()})
    w.close()
    row = read_jsonl(tmp_path / "c.jsonl")[0]
    assert row["v"] == [1, 2] and row["b"] == "x" and row["p"] == "/a" and row["o"].startswith("<object")


def test_a_torn_last_line_is_dropped_but_a_bad_middle_line_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "h.jsonl"
    p.write_text('{"index": 0}\n{"index": 1}\n{"ind')
    assert read_jsonl(p) == [{"index": 0}, {"index": 1}]
    p.write_text('{"index": 0}\nnope\n{"index": 2}\n')
    with pytest.raises(StoreError, match=":2:"):
        read_jsonl(p)


def test_run_dirs_are_unique_and_latest_links_point_at_the_newest(tmp_path: Path) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    a = RunDir.create(tmp_path, "reg-partition", when)
    b = RunDir.create(tmp_path, "reg-partition", when)
    assert a.path.name == "20260102T030405" and b.path.name == "20260102T030405-2"
    a.write_json("test.json", {"x": 1})
    a.link_latest()
    b.write_json("test.json", {"x": 2})
    b.link_latest()
    assert (tmp_path / "reg-partition" / "latest").resolve() == b.path.resolve()
    assert (tmp_path / "latest").resolve() == b.path.resolve()
    assert RunDir.open(tmp_path / "latest").read_json("test.json") == {"x": 2}
    with pytest.raises(StoreError, match="not a run directory"):
        RunDir.open(tmp_path)


def test_child_seeds_are_stable_and_independent() -> None:
    assert child_seed(1, "nemesis") == child_seed(1, "nemesis")
    assert child_seed(1, "nemesis") != child_seed(1, "workload")
    assert child_seed(1, "nemesis") != child_seed(2, "nemesis")
    assert 0 <= child_seed(7, "a") < 2**64


class _C:
    def __init__(self, result: object) -> None:
        self.result = result

    def check(self, test: object, history: object) -> object:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def test_checker_composition_ranks_false_over_unknown_over_true_and_crashes_are_unknown() -> None:
    assert combine([True, True]) is True
    assert combine([True, "unknown"]) == "unknown"
    assert combine(["unknown", False, True]) is False
    assert combine([]) == "unknown"
    assert combine([None]) == "unknown"
    res = run_checkers({"a": _C({"valid": True}), "b": _C(RuntimeError("boom"))}, {}, [])
    assert res["valid"] == "unknown"
    assert res["checkers"]["b"]["error"] == "RuntimeError: boom"
    res = run_checkers({"a": _C({"valid": True}), "b": _C({"valid": False})}, {}, [])
    assert res["valid"] is False
    # a single checker that already returns the combined shape is kept as it is
    whole = {"valid": True, "checkers": {"linearizable": {"valid": True}}}
    assert run_checkers(_C(whole), {}, []) == {**whole, "failures": {"safety": [], "liveness": []}}
    assert run_checkers(_C("junk"), {}, [])["valid"] == "unknown"


def _workload(name: str) -> registry.Workload:
    return registry.Workload(name=name, client=lambda o: None, generator=lambda o, r: None,  # type: ignore[arg-type,return-value]
                             checker=lambda o: _C({"valid": True}),
                             options=[registry.Option(flag="--keys", type=int, default=8, help="keys")])


def test_programmatic_registration_lookup_and_errors() -> None:
    spec = registry.register_workload(_workload("zz-test"))
    try:
        assert registry.workload("zz-test") is spec
        assert "zz-test" in registry.names(registry.Kind.WORKLOAD)
        assert spec.options[0].name == "keys"
    finally:
        registry.unregister(registry.Kind.WORKLOAD, "zz-test")
    with pytest.raises(registry.RegistryError, match="no workload named 'zz-test'"):
        registry.workload("zz-test")
    with pytest.raises(TypeError):
        registry.register_db(_workload("x"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="--name"):
        registry.Option(flag="keys", help="x")


def test_entry_points_load_and_a_broken_one_is_reported_not_fatal(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    mod = tmp_path / "zz_plugin.py"
    mod.write_text("from harness import registry\n"
                   "def make():\n"
                   "    return registry.NemesisSpec(name='zzfault', factory=lambda o, r: None)\n"
                   "SPEC = registry.NemesisSpec(name='zzother', factory=lambda o, r: None, faults=frozenset({'a','b'}))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = {"zzfault": "zz_plugin:make", "zzother": "zz_plugin:SPEC", "zzbroken": "zz_missing_module:X"}
    monkeypatch.setattr(registry, "_source_entry_points",
                        lambda group: eps if group == "raftkv_lab.nemeses" else {})
    registry.reload()
    try:
        assert registry.nemesis("zzfault").kinds == frozenset({"zzfault"})
        assert registry.nemesis("zzother").kinds == frozenset({"a", "b"})
        with pytest.raises(registry.RegistryError, match="zz_missing_module"):
            registry.nemesis("zzbroken")
        assert any("zzbroken" in e for e in registry.load_errors())
    finally:
        monkeypatch.undo()
        registry.reload()


def test_the_checkout_pyproject_is_read_for_entry_points() -> None:
    # The groups exist in the project's pyproject.toml; reading them must not fail even when they are empty.
    for kind in registry.Kind:
        assert isinstance(registry._source_entry_points(kind.group), dict)


def test_workload_generator_gets_a_reproducible_rng() -> None:
    from harness.seeds import child_rng

    assert child_rng(5, "workload").random() == child_rng(5, "workload").random()
    assert isinstance(child_rng(5, "workload"), random.Random)
