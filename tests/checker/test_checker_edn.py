"""The EDN reader and writer, and the Jepsen conversions."""

from __future__ import annotations

import pytest

from checker import edn
from checker.history import HistoryError
from checker.jepsen import dumps_history, loads_history


def test_reads_the_jepsen_subset() -> None:
    text = '''; a comment
    [{:type :ok, :f :cas, :value [1 2], :process 3, :time 12N}
     {:s "a \\"q\\" \\n b", :n nil, :t true, :x -4.5e1, :set #{1 2}, :sym free, :list (1 2) #_ :dropped}
     #inst "2024-01-01" \\a]'''
    first, second, inst, char = edn.loads(text)
    assert first == {"type": "ok", "f": "cas", "value": [1, 2], "process": 3, "time": 12}
    assert isinstance(first[edn.Keyword("type")], edn.Keyword) and repr(first["type"]) == ":ok"
    assert second == {"s": 'a "q" \n b', "n": None, "t": True, "x": -45.0, "set": frozenset({1, 2}),
                      "sym": "free", "list": [1, 2]}
    assert isinstance(second["sym"], edn.Symbol)
    assert inst == "2024-01-01" and char == "a"


def test_unhashable_map_keys_become_tuples() -> None:
    assert edn.loads("{[1 2] :a}") == {(1, 2): "a"}


@pytest.mark.parametrize(("text", "where"), [("[1 2", "end of input"), ("[1 2}", "line 1, column 5"),
                                             ("{:a}", "odd number"), ("\n  :", "line 2, column 3"),
                                             ("#tag", "without a value")])
def test_malformed_edn_names_the_place(text: str, where: str) -> None:
    with pytest.raises(edn.EDNError, match=where):
        edn.loads(text)


def test_writes_what_it_reads() -> None:
    value = {edn.Keyword("a"): [1, None, True, "s\"\n", edn.Keyword("k")], "str-key": frozenset({3}), 2.5: (1,)}
    assert edn.loads(edn.dumps(value)) == {"a": [1, None, True, "s\"\n", "k"], "str-key": frozenset({3}), 2.5: [1]}
    with pytest.raises(TypeError):
        edn.dumps(object())


def test_jepsen_ops_one_per_line_and_nemesis() -> None:
    text = """{:process 0, :type :invoke, :f :write, :value 1, :time 10}
{:process :nemesis, :type :info, :f :start, :value nil, :time 11}
{:process 0, :type :ok, :f :write, :value 1, :time 12}
{:process 0, :type :invoke, :f :read, :value nil, :time 13}
{:process 0, :type :fail, :f :read, :value nil, :time 14, :error :timeout}"""
    events = loads_history(text)
    assert [e["time"] for e in events] == [10, 11, 12, 13, 14]
    assert events[1]["process"] == "nemesis" and events[4]["error"] == "timeout"
    assert loads_history(dumps_history(events)) == events


def test_times_that_go_backwards_fall_back_to_history_order() -> None:
    text = "[{:process 0 :type :invoke :f :read :time 50} {:process 0 :type :ok :f :read :value 1 :time 40}]"
    assert [e["time"] for e in loads_history(text)] == [0, 1]


def test_export_keeps_strings_that_cannot_be_keywords() -> None:
    events = [{"index": 0, "process": 0, "type": "invoke", "f": "put", "key": "k", "value": {"value": "a b",
               "version": 0}, "time": 0},
              {"index": 1, "process": 0, "type": "fail", "f": "put", "key": "k", "value": None, "time": 1,
               "error": "connection refused"}]
    text = dumps_history(events)
    assert ':error "connection refused"' in text and ":version 0" in text
    assert loads_history(text) == events


def test_a_jepsen_op_without_a_field_names_it() -> None:
    with pytest.raises(HistoryError, match="line 2: malformed op, missing :type"):
        loads_history("[{:process 0 :type :invoke :f :read} {:process 0 :f :read}]")
