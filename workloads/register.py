"""The `register` workload (DB-neutral): independent versioned keys, each one a register.

The run's DB supplies the client (its DBSpec.clients, found by harness.registry.client_for): raftkv's is
workloads/raftkv_register.py (what the client modes below describe), etcd's workloads/etcd_clients.py (node-bound,
over etcd's JSON gateway).

Operations, as docs/history.md's versioned-kv model names them (every op carries its key, `k0` .. `k<K-1>`):
- `get`: a read. ok value `{"value": V, "version": N}` (`{"value": null, "version": 0}`: no key).
- `put`, two flavours recorded alike (invoke value `{"value": V, "version": E}`; ok value `{"version": E+1}`):
  a *write* puts a fresh value with the version last observed for the key (blind-ish: another client may have
  written since), a *cas* expects either that version or the one after it (betting that a concurrent write
  landed), so both outcomes of a compare-and-set are exercised. E = 0 creates the key.
- `delete`: invoke value `{"version": E}` with E the last observed version (> 0); ok value `{"version": 0}`.
Values are unique strings (a counter), so every read names the one write it saw.

Client placement (`--client-mode`, docs/lab.md), as Jepsen places clients:
- `node`: each worker is bound to one node (round-robin, harness.generator.node_index) and sends each
  operation to that node once, through raftkv.client.NodeClient: no leader hint followed, no retry elsewhere. What
  that node answered is what the history records, with the node's name in `node`. Followers serve linearizable
  reads (ReadIndex through the leader) and redirect writes and lease reads (307): such a redirect is a `fail`.
- `mixed` (the default): both at once. The first worker of each node (threads 0 .. nodes-1) is bound to it as in `node` mode;
  every further worker runs the library as in `smart` mode, with its retries. Node-bound reads keep finding a
  node that answers on its own; the retrying workers find what only a retry shows (a write applied twice, an
  answer replayed wrongly). Final reads go through the node-bound workers only.
- `smart`: the raftkv client library (KVClient) as a user runs it: it follows leader hints and retries other nodes
  until its deadline. It hides which node answered what, so every attempt it made is recorded in the completion's
  value under `attempts` (`[[node, answer], ...]`, when it made more than one): the retries a user's write went
  through, as they happened (docs/lab.md "Retries in smart mode"). `--client-sessions off` runs the library
  without a client session (before issue 15's fix, every client: a retry carries only the expected version).

Mixes (`--mix`): `default` (mostly reads and writes, few deletes) or `churn` (issue 15's: creates and deletes
weigh as much as reads, so on few keys a key is deleted and re-created while a retried write is in flight).

Outcomes follow Jepsen (docs/history.md): ok when it took effect; `fail` only when it certainly did not; `info` for
everything that might have happened. In node mode, certainty comes from raftkv.api.ERRORS (the one table): a
redirect (not-leader), unavailable, version-mismatch, no-key (of a write), bad-request and the like are `fail`; a
`maybe`, a timeout, a connection lost after sending, or any answer outside the table is `info`; a connection that
could not be made (nothing sent) is `fail`. Reads are the exception Jepsen makes too: a read that got no answer
changed nothing, so it is a `fail` with the reason as its error, and the worker keeps its process. A get's no-key
is its answer (the key is absent).

Final reads (`final_generator`): in node mode every key is read through EVERY node separately (each node's
workers read a key until one read succeeds), so a node whose state diverged answers in the history; in smart mode
every key once, through whichever node the library reaches.

`--read-consistency lease` reads at the leader under its lease (nodes started with `--raftkv-lease`): safe only
while no node is paused or slowed beyond the lease's margin, which the pause nemesis tests.

`--read-consistency stale` sends every get to a random node with `?consistency=stale`: the node answers from its own
applied state, which a partitioned or lagging node serves stale. The checker must then find a violation: it is the
lab's proof that it can see one.

The generator is pure: it learns the latest version of each key from the completions it is shown (`update`), draws
every choice from the seed carried in its state, and never sleeps.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from checker import (
    ConvergenceChecker,
    ElectionSafetyChecker,
    LinearizabilityChecker,
    LogMatchingChecker,
    RecoveryChecker,
    Stats,
    make_model,
)
from harness import generator as gen
from harness.protocols import Op
from harness.registry import Option, Workload
from workloads.common import DEFAULT_KEYS, KEYS_OPTION, final_reads, key_names, read_until_ok

# Every read mode some DB offers; each DB's client takes its own (and its DBSpec.refuses the others at argument
# time): raftkv linearizable, lease, stale; etcd linearizable, serializable (its local read, as raftkv's stale).
CONSISTENCIES = ("linearizable", "lease", "stale", "serializable")
CLIENT_MODES = ("node", "smart", "mixed")
SESSIONS = ("on", "off")
# Relative weights of the operation kinds, per --mix. `churn` (issue 15): deletes as often as reads, so a key goes
# absent often and the next write of it is a create (expected version 0); reads stay frequent enough to witness
# a write applied twice (a value read again after the key moved on).
MIXES: dict[str, tuple[tuple[str, float], ...]] = {
    "default": (("get", 0.5), ("write", 0.3), ("cas", 0.15), ("delete", 0.05)),
    "churn": (("get", 0.35), ("write", 0.25), ("cas", 0.05), ("delete", 0.35)),
}
MIX = MIXES["default"]


@dataclass(frozen=True, slots=True)
class RegisterGen(gen.Generator):
    """The client op stream (infinite). `versions[i]` is the latest version observed for `keys[i]`; `state` is
    the SplitMix64 state every choice is drawn from (gen.draw), `counter` the next unique value."""

    keys: tuple[str, ...]
    versions: tuple[int, ...]
    state: int
    counter: int = 0
    bounds: tuple[float, ...] = ()  # cumulative weights of _KINDS (see _bounds); () = the default mix

    def op(self, ctx: gen.Context) -> gen.OpResult:
        if ctx.some_free_thread() is None:
            return gen.PENDING, self
        u, state = gen.draw(self.state)
        i = int(u * len(self.keys))
        key, known = self.keys[i], self.versions[i]
        u, state = gen.draw(state)
        kind = _KINDS[-1]
        for k, bound in zip(_KINDS, self.bounds or _BOUNDS, strict=True):
            if u < bound:
                kind = k
                break
        template: dict[str, Any]
        counter = self.counter
        if kind == "get":
            template = {"f": "get", "key": key}
        elif kind == "delete" and known > 0:
            template = {"f": "delete", "key": key, "value": {"version": known}}
        else:
            expected = known
            if kind == "cas":
                u, state = gen.draw(state)
                expected += u < 0.5
            template = {"f": "put", "key": key, "value": {"value": str(counter), "version": expected}}
            counter += 1
        # The constructor, not dataclasses.replace: this runs once per operation.
        return gen.fill_in(template, ctx), RegisterGen(self.keys, self.versions, state, counter, self.bounds)

    def update(self, ctx: gen.Context, event: Op) -> gen.Generator:
        if event.type != "ok" or not isinstance(event.value, dict):
            return self
        version = event.value.get("version")
        if not isinstance(version, int):
            return self
        try:
            i = self.keys.index(event.key)
        except ValueError:  # a key this stream does not write
            return self
        if self.versions[i] == version:
            return self
        return RegisterGen(self.keys, self.versions[:i] + (version,) + self.versions[i + 1:], self.state,
                           self.counter, self.bounds)


def _bounds(mix: tuple[tuple[str, float], ...]) -> tuple[float, ...]:
    """The cumulative weights as fractions of their sum: a draw u in [0, 1) picks the first kind whose bound
    exceeds it."""
    return tuple(sum(w for _, w in mix[:i + 1]) / sum(w for _, w in mix) for i in range(len(mix)))


_KINDS = tuple(k for k, _ in MIX)
_BOUNDS = _bounds(MIX)
assert all(tuple(k for k, _ in m) == _KINDS for m in MIXES.values()), "every mix weighs the same kinds"


def mix_name(options: Mapping[str, Any]) -> str:
    mix = options.get("mix") or "default"
    if mix not in MIXES:
        raise ValueError(f"--mix must be one of {tuple(MIXES)}, got {mix!r}")
    return str(mix)


def generator(options: Mapping[str, Any], rng: random.Random) -> gen.Generator:
    keys = key_names(int(options.get("keys") or DEFAULT_KEYS))
    mix = mix_name(options)
    return RegisterGen(keys, (0,) * len(keys), rng.getrandbits(64), 0, () if mix == "default" else _bounds(MIXES[mix]))


DEFAULT_CLIENT_MODE = "mixed"


def client_mode(options: Mapping[str, Any]) -> str:
    mode = options.get("client_mode") or DEFAULT_CLIENT_MODE
    if mode not in CLIENT_MODES:
        raise ValueError(f"--client-mode must be one of {CLIENT_MODES}, got {mode!r}")
    return str(mode)


def final_generator(options: Mapping[str, Any], rng: random.Random) -> gen.Generator:
    """Node mode: every key through every node separately (gen.on_node: the workers bound to that node), all side
    by side, each until one read succeeds (the engine bounds the phase by --final-time-limit). Smart mode: every
    key until one read succeeds, through whichever node the library reaches. Mixed mode: as node mode, through the
    node-bound workers only (threads 0..nodes-1). A node without a worker (fewer
    workers than nodes) is read by nobody: the convergence oracle still compares its state."""
    keys = key_names(int(options.get("keys") or DEFAULT_KEYS))
    mode = client_mode(options)
    if mode == "smart":
        return gen.any_of(*(read_until_ok(k, "get") for k in keys))
    nodes = int(options.get("nodes") or 1)
    per_node = final_reads(keys, nodes, "get")
    return gen.on_threads(range(nodes), per_node) if mode == "mixed" else per_node


def checker(options: Mapping[str, Any]) -> Mapping[str, Any]:
    """The versioned-kv linearizability checker (per key), the op statistics (checker.standard_checker's pair),
    the convergence oracle's judge and the recovery checker (liveness: writes are put and delete, reads get; the
    run's bound from the options), as a mapping so the engine composes and stores them by name (and `harness
    analyze` re-runs them all)."""
    timeout = options.get("checker_timeout")
    bound = options.get("recovery_bound_s")
    return {"linearizable": LinearizabilityChecker(make_model("versioned-kv"),
                                                   timeout=None if timeout is None else float(timeout)),
            "stats": Stats(), "convergence": ConvergenceChecker(), "election": ElectionSafetyChecker(),
            "log-matching": LogMatchingChecker(),
            "recovery": RecoveryChecker(writes={"put", "delete"}, reads={"get"},
                                        bound_s=None if bound is None else float(bound))}


REGISTER = Workload(
    name="register", db="raftkv",
    generator=generator, final_generator=final_generator, checker=checker,
    description="independent versioned keys: reads, writes and compare-and-set through raftkv's versioned put",
    options=(
        KEYS_OPTION,
        Option(flag="--client-mode", choices=CLIENT_MODES, default=DEFAULT_CLIENT_MODE,
               help="node (each worker bound to one node, round-robin, and what that node answered is recorded: "
                    "Jepsen's placement), smart (the raftkv library: follows leader hints, retries elsewhere) or "
                    "mixed (the default: one node-bound worker per node, the library on the others)"),
        Option(flag="--mix", choices=tuple(MIXES), default="default",
               help="operation weights: default (mostly reads and writes) or churn (deletes and creates as often "
                    "as reads, issue 15's retried-write-across-a-delete)"),
        Option(flag="--client-sessions", choices=SESSIONS, default="on",
               help="smart and mixed modes: on (the library's exactly-once client sessions) or off (a retry carries only its "
                    "expected version: a write can apply twice across a delete; the lab must catch it)"),
        Option(flag="--read-consistency", choices=CONSISTENCIES, default="linearizable",
               help="linearizable (ReadIndex at the leader), lease (raftkv: the leader's lease, needs --raftkv-lease; "
                    "safe only while clocks and pauses stay bounded), stale (raftkv: any node's local state: must "
                    "be caught) or serializable (etcd's local read: must be caught)"),
    ),
)
