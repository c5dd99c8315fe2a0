"""Counts and examples of anomalies, for the checkers that report many kinds of them (sets, list-append). Pure."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

MAX_EXAMPLES = 5


class Findings:
    """Per kind (declared up front, in report order): how many distinct anomalies, and the first MAX_EXAMPLES.
    `add(kind, about, **example)` counts `about` (e.g. the element) once per kind however often it is found (an
    element lost by five reads is one lost element), and keeps the example of its first finding."""

    def __init__(self, kinds: Sequence[str]) -> None:
        self.kinds = tuple(kinds)
        self._seen: dict[str, set[Hashable]] = {kind: set() for kind in kinds}
        self._examples: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}

    def add(self, kind: str, about: Hashable, **example: Any) -> None:
        seen = self._seen[kind]
        if about in seen:
            return
        seen.add(about)
        if len(self._examples[kind]) < MAX_EXAMPLES:
            self._examples[kind].append(example)

    def counts(self) -> dict[str, int]:
        """Kind -> count, for the kinds found (none: {})."""
        return {kind: len(self._seen[kind]) for kind in self.kinds if self._seen[kind]}

    def examples(self) -> dict[str, list[dict[str, Any]]]:
        return {kind: ex for kind, ex in self._examples.items() if ex}

    def explain(self, what: str, describe: Any) -> str:
        """One sentence: `<what> anomalies: <n> <kind> (e.g. <describe(first example)>); ...`."""
        examples = self._examples
        return f"{what} anomalies: " + "; ".join(f"{n} {kind} (e.g. {describe(examples[kind][0])})"
                                                  for kind, n in self.counts().items())
