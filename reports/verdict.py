"""The verdict of a run and the one or two sentences that say why, from results.json (docs/history.md).

Reads the checker result shape defensively: any field may be missing or of the wrong type (a checker that
crashed, an older checker, a hand-edited file); what cannot be read is left out of the sentence, never guessed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Verdict(enum.Enum):
    VALID = "valid"
    INVALID = "invalid"
    UNKNOWN = "unknown"
    UNCHECKED = "unchecked"  # no results.json: the history was never checked


@dataclass(frozen=True, slots=True)
class Stuck:
    op: int | None
    description: str
    state_before: str


@dataclass(frozen=True, slots=True)
class InvalidKey:
    """The evidence of one non-linearizable key (checker `failure`)."""

    checker: str
    part: str | None  # the key as a string; None when the history's ops carry no key (one register)
    explanation: str
    prefixes: tuple[tuple[int, ...], ...]
    stuck: tuple[Stuck, ...]
    ops: tuple[dict[str, Any], ...]
    prefix_states: tuple[tuple[str, ...], ...] = ()  # the model state after each op of each longest prefix
    initial_state: str = ""

    @property
    def label(self) -> str:
        """How a sentence names the part: `key k3`, or `the history` when ops carry no key."""
        return "the history" if self.part is None else f"key {self.part}"


@dataclass(frozen=True, slots=True)
class Liveness:
    """One liveness failure (a checker with ``failure_kind`` liveness, docs/history.md): what did not recover,
    since when (s since the run's start), which nodes."""

    checker: str
    what: str
    since_s: float | None
    nodes: tuple[str, ...]
    message: str


@dataclass(frozen=True, slots=True)
class Summary:
    verdict: Verdict
    headline: str
    sentences: tuple[str, ...]
    invalid: InvalidKey | None = None
    checkers: dict[str, dict[str, Any]] = field(default_factory=dict)
    liveness: tuple[Liveness, ...] = ()


def _valid_of(result: Any) -> Verdict:
    v = result.get("valid") if isinstance(result, dict) else None
    if v is True:
        return Verdict.VALID
    if v is False:
        return Verdict.INVALID
    return Verdict.UNKNOWN


def _str(x: Any, default: str = "") -> str:
    return x if isinstance(x, str) else (default if x is None else str(x))


def _ints(xs: Any) -> tuple[int, ...]:
    return tuple(x for x in xs if isinstance(x, int) and not isinstance(x, bool)) if isinstance(xs, list) else ()


def invalid_key(name: str, result: dict[str, Any]) -> InvalidKey | None:
    """The failure record of a checker result, if it has one."""
    failure = result.get("failure")
    if not isinstance(failure, dict):
        return None
    stuck = tuple(
        Stuck(op=s.get("op") if isinstance(s.get("op"), int) else None, description=_str(s.get("description")),
              state_before=_str(s.get("state_before")))
        for s in failure.get("stuck") or [] if isinstance(s, dict))
    prefixes = tuple(_ints(p) for p in failure.get("longest_prefixes") or [] if isinstance(p, list))
    ops = tuple(o for o in failure.get("ops") or [] if isinstance(o, dict))
    states = tuple(tuple(_str(x) for x in p) for p in failure.get("longest_prefix_states") or []
                   if isinstance(p, list))
    part = failure.get("part")
    return InvalidKey(checker=name, part=None if part is None else _str(part),
                      explanation=_str(failure.get("explanation")), prefixes=prefixes, stuck=stuck, ops=ops,
                      prefix_states=states, initial_state=_str(failure.get("initial_state")))


def liveness_failures(checkers: dict[str, dict[str, Any]]) -> tuple[Liveness, ...]:
    """The liveness failures of the invalid liveness checkers, in the order they list them."""
    out = []
    for name, r in checkers.items():
        if r.get("failure_kind") != "liveness" or _valid_of(r) is not Verdict.INVALID:
            continue
        for f in r.get("failures") or []:
            if not isinstance(f, dict):
                continue
            since = f.get("since_s")
            raw = f.get("nodes")
            nodes: list[Any] = raw if isinstance(raw, list) else []
            out.append(Liveness(checker=name, what=_str(f.get("what"), "liveness"),
                                since_s=float(since) if isinstance(since, int | float) else None,
                                nodes=tuple(_str(n) for n in nodes), message=_str(f.get("message"))))
    return tuple(out)


def _recovery_sentence(checkers: dict[str, dict[str, Any]]) -> str | None:
    """For a valid run: how the recovery checker saw the heals (the slowest first ok against the bound)."""
    rec = checkers.get("recovery")
    if not isinstance(rec, dict) or not isinstance(rec.get("windows"), list):
        return None
    times = [w[k]["first_ok_s"] for w in rec["windows"] if isinstance(w, dict) for k in ("write", "read")
             if isinstance(w.get(k), dict) and w[k].get("verdict") == "recovered"
             and isinstance(w[k].get("first_ok_s"), int | float)]
    bound = rec.get("bound_s")
    if not times or not isinstance(bound, int | float):
        return None
    unknown = len(rec.get("unknown") or [])
    return (f"The cluster served again within the {bound:g} s recovery bound after every heal it could be judged on "
            f"(slowest first success {max(times):.2f} s" + (f"; {unknown} unjudged" if unknown else "") + ").")


def summarize(results: dict[str, Any] | None, problems: tuple[str, ...] = ()) -> Summary:
    """The verdict with its reasons. `results` None means results.json was missing or unreadable."""
    if results is None:
        return Summary(Verdict.UNCHECKED, "Not checked",
                       ("There is no readable results.json, so this history was never checked; what the run "
                        "recorded is shown below. `harness analyze DIR` checks it.",))
    overall = _valid_of(results)
    checkers = {str(k): v for k, v in (results.get("checkers") or {}).items() if isinstance(v, dict)} \
        if isinstance(results.get("checkers"), dict) else {}
    sentences: list[str] = []
    inv: InvalidKey | None = None
    live = liveness_failures(checkers)
    if overall is Verdict.INVALID:
        bad = [(n, r) for n, r in checkers.items() if _valid_of(r) is Verdict.INVALID]
        for name, r in bad:
            if r.get("failure_kind") == "liveness" and any(x.checker == name for x in live):
                first = next(x for x in live if x.checker == name)
                count = sum(1 for x in live if x.checker == name)
                sentences.append(f"Liveness: the {name} checker found that the system did not recover"
                                 + (f" ({count} failures; the first below)" if count > 1 else "") + ".")
                sentences.append(first.message)
                continue
            k = invalid_key(name, r)
            if k is not None and inv is None:
                inv = k
            parts = r.get("parts") if isinstance(r.get("parts"), dict) else {}
            invalid_parts = [str(p) for p in parts.get("invalid") or []] if parts else []
            model = f" (model {_str(r.get('model'))})" if r.get("model") else ""
            if k is not None:
                s = f"The {name} checker{model} found {k.label} not linearizable."
                if len(invalid_parts) > 1:
                    s = (f"The {name} checker{model} found {len(invalid_parts)} keys not linearizable "
                         f"({', '.join(invalid_parts[:8])}{', ...' if len(invalid_parts) > 8 else ''}); "
                         f"the first is {k.label}.")
                sentences.append(s)
                if k.stuck:
                    st = k.stuck[0]
                    op = f"op {st.op}" if st.op is not None else "an operation"
                    desc = f" ({st.description})" if st.description else ""
                    before = f", from the model state {st.state_before}" if st.state_before else ""
                    more = f" ({len(k.stuck) - 1} other operations are stuck there too)" if len(k.stuck) > 1 else ""
                    sentences.append(f"The first operation that cannot be linearized is {op}{desc}{before}{more}.")
                elif k.explanation:
                    sentences.append(k.explanation)
            else:
                err = r.get("error") or r.get("explanation") or ""
                sentences.append(f"The {name} checker{model} reported the history invalid"
                                 f"{': ' + _str(err) if err else ''}.")
        if not bad:
            sentences.append("results.json says invalid but names no checker that failed.")
    elif overall is Verdict.UNKNOWN:
        for name, r in checkers.items():
            if _valid_of(r) is Verdict.UNKNOWN:
                why = r.get("unknown_reason") or r.get("error") or "no reason given"
                sentences.append(f"The {name} checker could not decide: {_str(why)}.")
        if not sentences:
            sentences.append(f"results.json's verdict is {_str(results.get('valid'))!r}, "
                             "which is treated as unknown.")
    else:
        names = ", ".join(checkers) or "the checkers"
        lin = checkers.get("linearizable")
        extra = ""
        if isinstance(lin, dict) and isinstance(lin.get("parts"), dict):
            total = lin["parts"].get("total")
            if isinstance(total, int):
                extra = f" Every one of the {total} keys has a linearization"
                if isinstance(lin.get("elapsed_s"), int | float):
                    extra += f" (found in {lin['elapsed_s']:.2f} s)"
                extra += "."
        sentences.append(f"All checkers passed ({names}).{extra}")
        recovered = _recovery_sentence(checkers)
        if recovered:
            sentences.append(recovered)
    heal = results.get("heal")
    if isinstance(heal, dict) and heal.get("ok") is False:
        sentences.append("The final heal did not succeed, so the cluster may not have recovered.")
    headline = {Verdict.VALID: "Valid", Verdict.INVALID: "Invalid", Verdict.UNKNOWN: "Unknown"}[overall]
    if overall is Verdict.INVALID and live:
        safety = any(_valid_of(r) is Verdict.INVALID and r.get("failure_kind") != "liveness"
                     for r in checkers.values())
        headline = "Invalid (safety and liveness)" if safety else "Invalid (liveness)"
    return Summary(overall, headline, tuple(sentences), inv, checkers, live)
