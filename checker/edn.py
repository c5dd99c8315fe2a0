"""A small EDN reader and writer (the subset Jepsen histories use).

Reads: nil, true, false, integers (with an optional N suffix), floats (optional M), ratios are not supported,
strings with escapes, characters (\\a, \\newline, ...), keywords (`Keyword`, a str subclass), symbols (`Symbol`),
vectors and lists (Python lists), maps (dicts; unhashable keys become tuples), sets (frozensets), tagged elements
(`#inst "..."` reads as the tagged value), `#_` discards, comments and commas as whitespace.
Bad input raises `EDNError` naming the line and column.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any


class EDNError(ValueError):
    """Malformed EDN; the message names the line and column."""


class Keyword(str):
    """An EDN keyword (`:read` reads as Keyword("read")); compares equal to the plain string."""

    __slots__ = ()

    def __repr__(self) -> str:
        return ":" + str.__str__(self)


class Symbol(str):
    """An EDN symbol (`x`, `free`)."""

    __slots__ = ()


_TOKEN = re.compile(r"""
    (?P<ws>(?:[\s,]+|;[^\n]*)+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<open>\#\{|[\[({])
  | (?P<close>[\])}])
  | (?P<discard>\#_)
  | (?P<tag>\#[A-Za-z][^\s,\[\](){}"]*)
  | (?P<char>\\(?:newline|space|tab|return|formfeed|backspace|u[0-9A-Fa-f]{4}|.))
  | (?P<atom>[^\s,\[\](){}"\\;]+)
""", re.VERBOSE | re.DOTALL)

_INT = re.compile(r"[+-]?\d+N?$")
_FLOAT = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?M?$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "b": "\b", "f": "\f", "/": "/"}
_CHARS = {"newline": "\n", "space": " ", "tab": "\t", "return": "\r", "formfeed": "\f", "backspace": "\b"}
_CLOSERS = {"[": "]", "(": ")", "{": "}", "#{": "}"}
_END = object()
_CLOSE = object()


def _position(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def _string(raw: str) -> str:
    body = raw[1:-1]
    if "\\" not in body:
        return body
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1]
            if nxt == "u":
                out.append(chr(int(body[i + 2:i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _atom(raw: str) -> Any:
    if raw == "nil":
        return None
    if raw == "true":
        return True
    if raw == "false":
        return False
    if raw[0] == ":":
        if len(raw) == 1:
            raise ValueError("empty keyword")
        return Keyword(raw[1:])
    if _INT.match(raw):
        return int(raw.rstrip("N"))
    if _FLOAT.match(raw):
        return float(raw.rstrip("M"))
    return Symbol(raw)


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _hashable(v)) for k, v in value.items())
    return value


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _TOKEN.finditer(text)
        self.offset = 0

    def _next(self) -> tuple[str, str, int] | None:
        for match in self.tokens:
            if match.start() != self.offset:  # finditer skipped something no token matches
                raise EDNError(f"unexpected character at {_position(self.text, self.offset)}")
            self.offset = match.end()
            kind = match.lastgroup
            if kind == "ws":
                continue
            return kind, match.group(), match.start()  # type: ignore[return-value]
        return None

    def read(self, closer: str | None = None) -> Any:
        """The next form; `_END` at the end of input; `_CLOSE` when it meets `closer`."""
        token = self._next()
        while True:
            if token is None:
                if closer is not None:
                    raise EDNError(f"unexpected end of input, expected {closer!r}")
                return _END
            kind, raw, start = token
            if kind == "discard":
                self.read()
                token = self._next()
                continue
            break
        if kind == "string":
            return _string(raw)
        if kind == "atom":
            try:
                return _atom(raw)
            except ValueError as exc:
                raise EDNError(f"{exc} at {_position(self.text, start)}") from None
        if kind == "char":
            body = raw[1:]
            if body.startswith("u") and len(body) == 5:
                return chr(int(body[1:], 16))
            return _CHARS.get(body, body)
        if kind == "close":
            if raw != closer:
                raise EDNError(f"unexpected {raw!r} at {_position(self.text, start)}")
            return _CLOSE
        if kind == "tag":
            value = self.read()
            if value is _END:
                raise EDNError(f"tag {raw} without a value at {_position(self.text, start)}")
            return value
        # an opening bracket
        end = _CLOSERS[raw]
        items = []
        while True:
            item = self.read(end)
            if item is _CLOSE:
                break
            items.append(item)
        if raw in ("[", "("):
            return items
        if raw == "#{":
            return frozenset(_hashable(v) for v in items)
        if len(items) % 2:
            raise EDNError(f"map with an odd number of forms at {_position(self.text, start)}")
        return {_hashable(items[i]): items[i + 1] for i in range(0, len(items), 2)}


def loads_all(text: str) -> list[Any]:
    """Every top-level form of `text`."""
    reader = _Reader(text)
    forms: list[Any] = []
    while True:
        form = reader.read()
        if form is _END:
            return forms
        forms.append(form)


def loads(text: str) -> Any:
    """Exactly one form."""
    forms = loads_all(text)
    if len(forms) != 1:
        raise EDNError(f"expected one EDN form, found {len(forms)}")
    return forms[0]


def _iter_edn(value: Any) -> Iterator[str]:
    if value is None:
        yield "nil"
    elif value is True:
        yield "true"
    elif value is False:
        yield "false"
    elif isinstance(value, Keyword):
        yield ":" + str.__str__(value)
    elif isinstance(value, Symbol):
        yield str.__str__(value)
    elif isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") \
            .replace("\r", "\\r")
        yield f'"{escaped}"'
    elif isinstance(value, bool | int):
        yield str(value)
    elif isinstance(value, float):
        yield repr(value)
    elif isinstance(value, dict):
        yield "{"
        first = True
        for k, v in value.items():
            if not first:
                yield ", "
            first = False
            yield from _iter_edn(k)
            yield " "
            yield from _iter_edn(v)
        yield "}"
    elif isinstance(value, list | tuple):
        yield "["
        for i, v in enumerate(value):
            if i:
                yield " "
            yield from _iter_edn(v)
        yield "]"
    elif isinstance(value, set | frozenset):
        yield "#{"
        for i, v in enumerate(sorted(value, key=repr)):
            if i:
                yield " "
            yield from _iter_edn(v)
        yield "}"
    else:
        raise TypeError(f"cannot write {type(value).__name__} as EDN: {value!r}")


def dumps(value: Any) -> str:
    """EDN text for a value (dict keys that are Keywords are written as keywords, plain strings as strings)."""
    return "".join(_iter_edn(value))
