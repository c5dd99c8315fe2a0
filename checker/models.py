"""Models: the sequential specifications histories are checked against (Porcupine's Model, in Python).

A model is a small object (see `Model`). The search calls `step(state, input, output)` with the compact forms
`encode` made of each operation; `output` is `UNKNOWN` for an operation whose outcome is unknown (info), and then
`step` must accept any result and only say whether the operation *can* take effect in `state` and what the state
becomes. States are hashable values compared with `==` (tuples, frozensets, scalars): that is the model's equal and
hash, and what the search's cache is keyed by.

Optional hints (methods a model may leave out) make the search faster; each is a promise the differential test
holds the built-in models to:
- `read_only(input, output)`: the operation never changes the state (if step succeeds, the new state equals the old one).
- `info_guard(input)` / `state_guard(state)`: an operation with unknown outcome can change the state only in states
  whose `state_guard` equals its `info_guard`; `info_guard` None means "in any state".
- `regular_guard(input, output)`: an operation with known outcome can succeed only in states whose `state_guard`
  equals it (None: in any state).

- `prepare(ops, init)`: rewrite one part's encoded ops and initial state before the search, e.g. to replace values
  no operation ever observes by one placeholder (`UNOBSERVED`), which is sound when steps only compare values
  with observed ones, and lets the search see that two writes of never-read values are interchangeable.

Register your own with `register_model(name, factory)`; the factory takes the initial value (or None) and a flag
`jepsen` for Jepsen/Knossos semantics (a register read of nil is always legal there).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, Protocol, runtime_checkable

from .history import Operation


class _Sentinel:
    """A named singleton: one instance per subclass, and it pickles to the module constant named `_name`, so
    identity (`is UNKNOWN`) survives a trip to a worker process."""

    _name = ""
    _instance: _Sentinel | None = None

    def __new__(cls) -> _Sentinel:
        instance = cls.__dict__.get("_instance")  # per subclass: an inherited instance is another sentinel
        if instance is None:
            instance = cls._instance = super().__new__(cls)
        return instance

    def __reduce__(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return self._name


class _Unknown(_Sentinel):
    """The output of an operation with unknown outcome."""

    _name = "UNKNOWN"


UNKNOWN = _Unknown()


class _Unobserved(_Sentinel):
    """The placeholder for written values no operation of the part ever observes (see `prepare`)."""

    _name = "UNOBSERVED"


UNOBSERVED = _Unobserved()
DROP = None  # what `encode` returns for an operation that can be left out (it cannot affect or observe state)


class ModelError(ValueError):
    """An operation the model cannot interpret (bad `f`, malformed value): bad input, naming the operation."""


def freeze(value: Any) -> Hashable:
    """A hashable copy of a JSON value: lists become tuples, objects sorted tuples of pairs, sets frozensets."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted(((k, freeze(v)) for k, v in value.items()), key=lambda kv: repr(kv[0])))
    if isinstance(value, set | frozenset):
        return frozenset(freeze(v) for v in value)
    return value


@runtime_checkable
class Model(Protocol):
    name: str

    def init(self) -> Hashable: ...

    def partition_key(self, op: Operation) -> Hashable:
        """The part an operation belongs to (P-compositionality); None for all in one part."""
        ...

    def encode(self, op: Operation) -> tuple[Hashable, Hashable] | None:
        """(input, output) for the search, or None (DROP) when the op cannot matter. Raises ModelError."""
        ...

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]: ...

    def describe_operation(self, input: Any, output: Any) -> str: ...

    def describe_state(self, state: Any) -> str: ...

    def read_only(self, input: Any, output: Any) -> bool: ...

    def info_guard(self, input: Any) -> Hashable: ...

    def state_guard(self, state: Any) -> Hashable: ...


def _show(value: Any) -> str:
    if value is UNOBSERVED:
        return "(unread)"
    if value is None:
        return "nil"
    if isinstance(value, tuple):
        return "[" + " ".join(_show(v) for v in value) + "]"
    if isinstance(value, frozenset):
        return "#{" + " ".join(sorted(_show(v) for v in value)) + "}"
    return str(value)


class _Base:
    """Defaults shared by the built-in models."""

    name = "base"
    initial: Hashable  # set by each model's __init__ from the user's initial value

    def init(self) -> Hashable:
        return self.initial

    def partition_key(self, op: Operation) -> Hashable:
        return op.key

    def read_only(self, input: Any, output: Any) -> bool:
        return False

    def info_guard(self, input: Any) -> Hashable:
        return None

    def state_guard(self, state: Any) -> Hashable:
        return None

    def describe_state(self, state: Any) -> str:
        return _show(state)


class Register(_Base):
    """A read/write register (`register`), optionally with compare-and-set (`cas-register`).

    Inputs: ("r",), ("w", v), ("cas", old, new). A read's output is the value read. With `jepsen=True` a read of
    nil is legal in any state (Knossos's convention: nil is how Jepsen records a read whose value is unknown).
    A `fail` op is dropped: it certainly did not take effect and observed nothing.
    """

    def __init__(self, initial: Any = None, *, cas: bool = False, jepsen: bool = False) -> None:
        self.initial = freeze(initial)
        self.cas = cas
        self.jepsen = jepsen
        self.name = "cas-register" if cas else "register"

    def encode(self, op: Operation) -> tuple[Hashable, Hashable] | None:
        if op.complete_type == "fail":
            return DROP
        f = op.f
        if f == "read":
            if op.is_info:
                return DROP  # an unknown read observes nothing and changes nothing
            out = freeze(op.output)
            if self.jepsen and out is None:
                return DROP
            return ("r",), out
        if f == "write":
            return ("w", freeze(op.input)), (UNKNOWN if op.is_info else None)
        if f == "cas" and self.cas:
            value = op.input
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise ModelError(f"cas needs value [old, new], got {value!r}")
            return ("cas", freeze(value[0]), freeze(value[1])), (UNKNOWN if op.is_info else None)
        raise ModelError(f"model {self.name} has no operation {f!r}")

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        kind = input[0]
        if kind == "r":
            return state == output, state
        if kind == "w":
            return True, input[1]
        if state == input[1]:
            return True, input[2]
        return False, state

    def read_only(self, input: Any, output: Any) -> bool:
        return input[0] == "r"

    def prepare(self, ops: list[Any], init: Any) -> tuple[list[Any], Any]:
        """Values never read nor compared by a cas become UNOBSERVED (steps only test equality with those)."""
        observed = {op.output for op in ops if op.input[0] == "r"}
        observed.update(op.input[1] for op in ops if op.input[0] == "cas")

        def canon(value: Any) -> Any:
            return value if value in observed else UNOBSERVED

        out = []
        for op in ops:
            x = op.input
            if x[0] == "w":
                op = op._replace(input=("w", canon(x[1])))
            elif x[0] == "cas":
                op = op._replace(input=("cas", x[1], canon(x[2])))
            out.append(op)
        return out, canon(init)

    def info_guard(self, input: Any) -> Hashable:
        return ("v", input[1]) if input[0] == "cas" else None

    def regular_guard(self, input: Any, output: Any) -> Hashable:
        kind = input[0]
        return ("v", output) if kind == "r" else (("v", input[1]) if kind == "cas" else None)

    def state_guard(self, state: Any) -> Hashable:
        return ("v", state)

    def describe_operation(self, input: Any, output: Any) -> str:
        kind = input[0]
        if kind == "r":
            return f"read -> {_show(output)}"
        suffix = " -> ?" if output is UNKNOWN else ""
        if kind == "w":
            return f"write {_show(input[1])}{suffix}"
        return f"cas {_show(input[1])} -> {_show(input[2])}{suffix}"


class VersionedKV(_Base):
    """raftkv's versioned key-value store, one key per part; state (value, version), absent = (None, 0).

    Inputs: ("get",), ("put", V, E), ("del", E), and for refusals ("put", V, E) / ("del", E) with output
    ("refused", "version-mismatch" | "no-key"). A refusal is an observation: version-mismatch means the key existed
    with a version other than E; no-key means the key did not exist (and E > 0).
    """

    name = "versioned-kv"

    def __init__(self, initial: Any = None, *, jepsen: bool = False) -> None:
        self.initial = (freeze(initial), 0 if initial is None else 1)

    def partition_key(self, op: Operation) -> Hashable:
        if op.key is None:
            raise ModelError(f"versioned-kv op {op.f} has no key")
        return op.key

    @staticmethod
    def _version(value: Any, what: str) -> int:
        if not isinstance(value, dict):
            raise ModelError(f"{what} must be an object with a version, got {value!r}")
        version = value.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise ModelError(f"{what} needs a non-negative integer version, got {value!r}")
        return version

    def encode(self, op: Operation) -> tuple[Hashable, Hashable] | None:
        f, kind = op.f, op.complete_type
        if f == "get":
            if kind != "ok":
                return DROP
            version = self._version(op.output, "get's ok value")
            return ("get",), (freeze(op.output.get("value")), version)
        if f == "put":
            if not isinstance(op.input, dict) or "value" not in op.input:
                raise ModelError(f"put's invoke value must be {{\"value\": V, \"version\": E}}, got {op.input!r}")
            inp: tuple[Any, ...] = ("put", freeze(op.input["value"]), self._version(op.input, "put's invoke value"))
        elif f == "delete":
            expected = self._version(op.input, "delete's invoke value")
            inp = ("del", expected)
        else:
            raise ModelError(f"model versioned-kv has no operation {f!r} (get, put, delete)")
        if kind == "info":
            return inp, UNKNOWN
        if kind == "fail":
            if op.error in ("version-mismatch", "no-key"):
                return inp, ("refused", op.error)
            return DROP  # refused before proposing: certainly no effect, nothing observed
        return inp, self._version(op.output, f"{f}'s ok value")

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        kind = input[0]
        if kind == "get":
            return state == output, state
        version = state[1]
        expected = input[-1]
        if output.__class__ is tuple:  # a refusal observed
            if output[1] == "no-key":
                return version == 0 and expected > 0, state
            return version > 0 and version != expected, state
        if version != expected or (kind == "del" and expected == 0):
            return False, state
        if kind == "put":
            new = (input[1], expected + 1)
        else:
            new = (None, 0)
        if output is UNKNOWN or output == new[1]:
            return True, new
        return False, state

    def read_only(self, input: Any, output: Any) -> bool:
        return input[0] == "get" or output.__class__ is tuple  # gets and observed refusals

    def prepare(self, ops: list[Any], init: Any) -> tuple[list[Any], Any]:
        """Put values no get returns become UNOBSERVED: puts, deletes and refusals look only at the version, and
        a get compares the state with a value it read, so renaming never-read values changes no step's outcome."""
        observed = {op.output[0] for op in ops if op.input[0] == "get"}
        out = [op._replace(input=("put", UNOBSERVED, op.input[2]))
               if op.input[0] == "put" and op.input[1] not in observed else op for op in ops]
        value, version = init
        return out, (value if value in observed or version == 0 else UNOBSERVED, version)

    def info_guard(self, input: Any) -> Hashable:
        return input[-1]

    def regular_guard(self, input: Any, output: Any) -> Hashable:
        if input[0] == "get":
            return output[1]
        return None if output.__class__ is tuple else input[-1]  # a refusal fits many versions

    def state_guard(self, state: Any) -> Hashable:
        return state[1]

    def describe_state(self, state: Any) -> str:
        return "absent" if state[1] == 0 else f"{_show(state[0])}@{state[1]}"

    def describe_operation(self, input: Any, output: Any) -> str:
        kind = input[0]
        if kind == "get":
            return f"get -> {'absent' if output[1] == 0 else f'{_show(output[0])}@{output[1]}'}"
        head = f"put {_show(input[1])} if@{input[2]}" if kind == "put" else f"delete if@{input[1]}"
        if output is UNKNOWN:
            return head + " -> ?"
        if output.__class__ is tuple:
            return f"{head} -> {output[1]}"
        return f"{head} -> @{output}"


class SetModel(_Base):
    """A grow-only set: `add` (invoke value = element), `read` (ok value = all elements). One part."""

    name = "set"

    def __init__(self, initial: Any = None, *, jepsen: bool = False) -> None:
        self.initial = frozenset(freeze(v) for v in (initial or ()))

    def partition_key(self, op: Operation) -> Hashable:
        return None

    def encode(self, op: Operation) -> tuple[Hashable, Hashable] | None:
        if op.complete_type == "fail":
            return DROP
        if op.f == "add":
            return ("add", freeze(op.input)), (UNKNOWN if op.is_info else None)
        if op.f == "read":
            if op.is_info:
                return DROP
            if not isinstance(op.output, list | tuple | set | frozenset):
                raise ModelError(f"set read's ok value must be a list, got {op.output!r}")
            return ("read",), frozenset(freeze(v) for v in op.output)
        raise ModelError(f"model set has no operation {op.f!r} (add, read)")

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        if input[0] == "read":
            return state == output, state
        return True, state | {input[1]}

    def read_only(self, input: Any, output: Any) -> bool:
        return input[0] == "read"

    def describe_operation(self, input: Any, output: Any) -> str:
        if input[0] == "read":
            return f"read -> {_show(output)}"
        return f"add {_show(input[1])}" + (" -> ?" if output is UNKNOWN else "")


class Mutex(_Base):
    """A lock: `acquire` and `release` (Knossos's mutex). State True = held. One part; fail ops dropped."""

    name = "mutex"

    def __init__(self, initial: Any = None, *, jepsen: bool = False) -> None:
        if initial not in (None, "free", "held", False, True):
            raise ModelError(f"mutex initial value must be free or held, got {initial!r}")
        self.initial = initial in ("held", True)

    def partition_key(self, op: Operation) -> Hashable:
        return None

    def encode(self, op: Operation) -> tuple[Hashable, Hashable] | None:
        if op.complete_type == "fail":
            return DROP
        if op.f not in ("acquire", "release"):
            raise ModelError(f"model mutex has no operation {op.f!r} (acquire, release)")
        return (op.f,), (UNKNOWN if op.is_info else None)

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        if input[0] == "acquire":
            return (not state), True
        return state, False

    def info_guard(self, input: Any) -> Hashable:
        return input[0] == "release"  # can change the state only when held (release) / free (acquire)

    def regular_guard(self, input: Any, output: Any) -> Hashable:
        return input[0] == "release"

    def state_guard(self, state: Any) -> Hashable:
        return bool(state)

    def describe_state(self, state: Any) -> str:
        return "held" if state else "free"

    def describe_operation(self, input: Any, output: Any) -> str:
        return input[0] + (" -> ?" if output is UNKNOWN else "")


class MultiRegister(_Base):
    """Knossos's multi-register: `txn` ops whose value is a list of [f k v] micro-ops (read/write) over named
    registers; a read of nil is legal in any state. State: sorted tuple of (key, value). One part."""

    name = "multi-register"

    def __init__(self, initial: Any = None, *, jepsen: bool = False) -> None:
        if initial is None:
            initial = {}
        if not isinstance(initial, Mapping):
            raise ModelError(f"multi-register initial value must be a map, got {initial!r}")
        self.initial = tuple(sorted((str(k), freeze(v)) for k, v in initial.items()))

    def partition_key(self, op: Operation) -> Hashable:
        return None

    @staticmethod
    def _micro(value: Any) -> tuple[tuple[str, str, Any], ...]:
        if not isinstance(value, list | tuple):
            raise ModelError(f"txn value must be a list of [f k v], got {value!r}")
        out = []
        for micro in value:
            if not isinstance(micro, list | tuple) or len(micro) != 3 or micro[0] not in ("read", "write"):
                raise ModelError(f"txn micro-op must be [read|write k v], got {micro!r}")
            out.append((str(micro[0]), str(micro[1]), freeze(micro[2])))
        return tuple(out)

    def encode(self, op: Operation) -> tuple[Hashable, Hashable] | None:
        if op.complete_type == "fail":
            return DROP
        if op.f != "txn":
            raise ModelError(f"model multi-register has no operation {op.f!r} (txn)")
        if op.is_info:
            micro = tuple(m for m in self._micro(op.input) if m[0] == "write")
            return (micro, UNKNOWN) if micro else DROP
        return self._micro(op.output), None

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        values = dict(state)
        for f, k, v in input:
            if f == "read":
                if v is not None and values.get(k) != v:
                    return False, state
            else:
                values[k] = v
        return True, tuple(sorted(values.items()))

    def read_only(self, input: Any, output: Any) -> bool:
        return all(m[0] == "read" for m in input)

    def describe_state(self, state: Any) -> str:
        return "{" + ", ".join(f"{k} {_show(v)}" for k, v in state) + "}"

    def describe_operation(self, input: Any, output: Any) -> str:
        body = " ".join(f"[{f} {k} {_show(v)}]" for f, k, v in input)
        return f"txn {body}" + (" -> ?" if output is UNKNOWN else "")


ModelFactory = Callable[..., Any]

MODELS: dict[str, ModelFactory] = {
    "register": lambda initial=None, jepsen=False: Register(initial, jepsen=jepsen),
    "cas-register": lambda initial=None, jepsen=False: Register(initial, cas=True, jepsen=jepsen),
    "versioned-kv": lambda initial=None, jepsen=False: VersionedKV(initial, jepsen=jepsen),
    "set": lambda initial=None, jepsen=False: SetModel(initial, jepsen=jepsen),
    "mutex": lambda initial=None, jepsen=False: Mutex(initial, jepsen=jepsen),
    "multi-register": lambda initial=None, jepsen=False: MultiRegister(initial, jepsen=jepsen),
}


def register_model(name: str, factory: ModelFactory) -> None:
    """Make a model available by name (command line `--model NAME`). The factory: (initial, jepsen) -> Model."""
    MODELS[name] = factory


def make_model(name: str, initial: Any = None, *, jepsen: bool = False) -> Model:
    """The model called `name` with the given initial value. Raises KeyError with the known names."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None
    return factory(initial=initial, jepsen=jepsen)
