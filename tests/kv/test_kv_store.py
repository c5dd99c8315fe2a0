"""The KV state machine against a plain dict model (Hypothesis), plus its edge cases and snapshot round trips."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from raftkv.kv import (
    MAX_KEY_BYTES,
    MAX_VALUE_BYTES,
    Command,
    CommandError,
    KVStore,
    KVUsageError,
    Op,
    Outcome,
    Result,
    SnapshotError,
    decode_command,
    encode_command,
)

KEYS = st.sampled_from(["a", "b", "c", "ключ", "k" * 10])
VALUES = st.text(max_size=20)
VERSIONS = st.integers(min_value=0, max_value=4)
# A shared, busy machine: generation speed is not what these tests are about.
RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def model_apply(model: dict[str, tuple[str, int]], cmd: Command) -> tuple[Outcome, str | None, int]:
    """The specification, as plainly as it can be written."""
    current = model.get(cmd.key)
    if cmd.op is Op.GET:
        return (Outcome.NO_KEY, None, 0) if current is None else (Outcome.OK, current[0], current[1])
    if current is None and cmd.expected_version > 0:
        return Outcome.NO_KEY, None, 0
    current_version = 0 if current is None else current[1]
    if current_version != cmd.expected_version:
        assert current is not None
        return Outcome.VERSION_MISMATCH, current[0], current[1]
    if cmd.op is Op.PUT:
        assert cmd.value is not None
        model[cmd.key] = (cmd.value, current_version + 1)
        return Outcome.OK, cmd.value, current_version + 1
    del model[cmd.key]
    return Outcome.OK, None, current_version


@st.composite
def commands(draw: st.DrawFn) -> Command:
    op = draw(st.sampled_from(list(Op)))
    key = draw(KEYS)
    rid = draw(st.text(max_size=8))
    if op is Op.GET:
        return Command(request_id=rid, op=op, key=key)
    if op is Op.PUT:
        return Command(request_id=rid, op=op, key=key, value=draw(VALUES), expected_version=draw(VERSIONS))
    return Command(request_id=rid, op=op, key=key, expected_version=draw(st.integers(1, 4)))


@RELAXED
@given(st.lists(commands(), max_size=60))
def test_store_matches_the_dict_model(cmds: list[Command]) -> None:
    store, model = KVStore(), dict[str, tuple[str, int]]()
    for index, cmd in enumerate(cmds, start=1):
        result = store.apply(index, encode_command(cmd))
        outcome, value, version = model_apply(model, cmd)
        assert (result.request_id, result.outcome, result.value, result.version) == (
            cmd.request_id, outcome, value, version)
        assert store.applied_index == index
    assert store.items() == sorted((k, v, ver) for k, (v, ver) in model.items())


@RELAXED
@given(st.lists(commands(), max_size=40), st.integers(min_value=0, max_value=40))
def test_snapshot_restore_round_trip_then_same_future(cmds: list[Command], cut: int) -> None:
    """A replica restored from a snapshot at any point behaves exactly like the original from then on."""
    original = KVStore()
    for index, cmd in enumerate(cmds[:cut], start=1):
        original.apply(index, encode_command(cmd))
    copy = KVStore()
    copy.restore(original.snapshot())
    assert copy.snapshot() == original.snapshot()
    assert copy.applied_index == original.applied_index
    for index, cmd in enumerate(cmds[cut:], start=original.applied_index + 1):
        assert copy.apply(index, encode_command(cmd)) == original.apply(index, encode_command(cmd))
    assert copy.snapshot() == original.snapshot()


def test_snapshot_is_deterministic_whatever_the_write_order() -> None:
    one, two = KVStore(), KVStore()
    for index, key in enumerate(["x", "y", "z"], start=1):
        one.apply(index, encode_command(Command(request_id="", op=Op.PUT, key=key, value=key)))
    for index, key in enumerate(["z", "x", "y"], start=1):
        two.apply(index, encode_command(Command(request_id="", op=Op.PUT, key=key, value=key)))
    # The state part is equal; only the chain (the applied log: raftkv.kv.chain) tells the two histories apart.
    a, b = msgpack.unpackb(one.snapshot()), msgpack.unpackb(two.snapshot())
    assert a[:4] == b[:4]
    assert a[4] != b[4]


@given(commands())
def test_command_encoding_round_trips(cmd: Command) -> None:
    assert decode_command(encode_command(cmd)) == cmd


@given(st.binary(max_size=64))
def test_decoding_garbage_raises_only_command_error(data: bytes) -> None:
    with contextlib.suppress(CommandError):
        decode_command(data)


@given(st.lists(st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=3), st.binary(max_size=3),
                          st.booleans()), max_size=6))
def test_decoding_wrong_shaped_arrays_raises_only_command_error(fields: list[object]) -> None:
    with contextlib.suppress(CommandError):
        decode_command(msgpack.packb(fields))


def test_garbage_entry_applies_as_invalid_and_advances() -> None:
    store = KVStore()
    result = store.apply(7, b"\xc1garbage")
    assert result.outcome is Outcome.INVALID and "msgpack" in result.detail
    assert store.applied_index == 7 and len(store) == 0


def test_put_create_then_versions_increment_and_delete_restarts_at_one() -> None:
    store = KVStore()

    def run(index: int, cmd: Command) -> Result:
        return store.apply(index, encode_command(cmd))

    assert run(1, Command(request_id="1", op=Op.PUT, key="k", value="a")).version == 1
    assert run(2, Command(request_id="2", op=Op.PUT, key="k", value="b")).outcome is Outcome.VERSION_MISMATCH
    assert run(3, Command(request_id="3", op=Op.PUT, key="k", value="b", expected_version=1)).version == 2
    miss = run(4, Command(request_id="4", op=Op.DELETE, key="k", expected_version=1))
    assert (miss.outcome, miss.value, miss.version) == (Outcome.VERSION_MISMATCH, "b", 2)
    assert run(5, Command(request_id="5", op=Op.DELETE, key="k", expected_version=2)).outcome is Outcome.OK
    assert store.get("k") is None
    assert run(6, Command(request_id="6", op=Op.PUT, key="k", value="c", expected_version=2)).outcome \
        is Outcome.NO_KEY
    assert run(7, Command(request_id="7", op=Op.PUT, key="k", value="c")).version == 1
    assert store.get("k") == ("c", 1)


def test_apply_refuses_an_index_that_does_not_increase() -> None:
    store = KVStore()
    store.note_applied(3)
    with pytest.raises(KVUsageError):
        store.apply(3, b"")
    with pytest.raises(KVUsageError):
        store.note_applied(2)


@pytest.mark.parametrize("kwargs", [
    {"op": Op.PUT, "key": "k"},                                   # no value
    {"op": Op.GET, "key": "k", "value": "v"},                     # value on a get
    {"op": Op.DELETE, "key": "k"},                                # delete needs expected >= 1
    {"op": Op.GET, "key": "k", "expected_version": 1},
    {"op": Op.PUT, "key": "", "value": "v"},                      # empty key
    {"op": Op.PUT, "key": "k" * (MAX_KEY_BYTES + 1), "value": "v"},
    {"op": Op.PUT, "key": "é" * (MAX_KEY_BYTES // 2 + 1), "value": "v"},  # the limit is in UTF-8 bytes
    {"op": Op.PUT, "key": "k", "value": "v" * (MAX_VALUE_BYTES + 1)},
    {"op": Op.PUT, "key": "k", "value": "v", "expected_version": -1},
    {"op": Op.PUT, "key": "\ud800", "value": "v"},                # not encodable
    {"op": 2, "key": "k", "value": "v"},                          # not an Op
])
def test_invalid_commands_are_refused_when_built(kwargs: dict[str, object]) -> None:
    with pytest.raises(CommandError):
        Command(request_id="r", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("data", [
    b"", b"\x90", msgpack.packb(["other", 0, []]), msgpack.packb(["raftkv.kv/1", -1, []]),
    msgpack.packb(["raftkv.kv/1", 1, [["k", "v", 0]]]), msgpack.packb(["raftkv.kv/1", 1, [["k", "v", 1]] * 2]),
    msgpack.packb(["raftkv.kv/1", 1, [["", "v", 1]]]), msgpack.packb(["raftkv.kv/1", 1, [["k", 3, 1]]]),
])
def test_restore_refuses_bad_snapshots_and_keeps_state(data: bytes) -> None:
    store = KVStore()
    store.apply(1, encode_command(Command(request_id="", op=Op.PUT, key="keep", value="me")))
    before = store.snapshot()
    with pytest.raises(SnapshotError):
        store.restore(data)
    assert store.snapshot() == before


class KVMachine(RuleBasedStateMachine):
    """Stateful: commands, snapshots and restores interleaved; the store always agrees with the model."""

    def __init__(self) -> None:
        super().__init__()
        self.store = KVStore()
        self.model: dict[str, tuple[str, int]] = {}
        self.index = 0
        self.saved: list[tuple[bytes, dict[str, tuple[str, int]], int]] = []

    @rule(cmd=commands(), gap=st.integers(1, 3))
    def apply(self, cmd: Command, gap: int) -> None:
        self.index += gap
        result = self.store.apply(self.index, encode_command(cmd))
        assert (result.outcome, result.value, result.version) == model_apply(self.model, cmd)

    @rule()
    def take_snapshot(self) -> None:
        self.saved.append((self.store.snapshot(), dict(self.model), self.index))

    @precondition(lambda self: bool(self.saved))
    @rule(pick=st.integers(min_value=0))
    def restore_a_saved_snapshot(self, pick: int) -> None:
        data, model, index = self.saved[pick % len(self.saved)]
        self.store = KVStore()
        self.store.restore(data)
        self.model, self.index = dict(model), index

    @invariant()
    def agrees_with_model(self) -> None:
        assert self.store.applied_index == self.index
        for key in ("a", "b", "c", "ключ", "k" * 10):
            assert self.store.get(key) == self.model.get(key)


TestKVMachine = KVMachine.TestCase
TestKVMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None,
                                  suppress_health_check=[HealthCheck.too_slow])
