"""Failpoints: named switches that plant a real bug class into raftkv, to measure whether a test lab finds it.

Like etcd's gofail, but decided once at start-up. Contract:

- A node enables failpoints only with BOTH `RAFTKV_FAILPOINTS=a,b` in its environment AND an explicit allow:
  env `RAFTKV_ALLOW_FAILPOINTS=1` or `raftkv serve --allow-failpoints`. `enabled_from` refuses (`FailpointError`,
  the node does not start) on `RAFTKV_FAILPOINTS` without the allow, on an unknown name, and on a malformed list,
  so no production node can carry one by accident or by a typo.
- Each layer receives its own failpoints as plain configuration and binds the behaviour when it is built (a chosen
  method or a constant): the Raft core through `RaftConfig.failpoints`, the KV state machine through
  `KVStore(failpoints=...)`, storage and server through the node. A disabled failpoint costs nothing per call.
- The registry `FAILPOINTS` is the one source of truth: the layers validate against it, the lab's
  `--raftkv-failpoints` option, the simulator's `--failpoint` and docs/failpoints.md are derived from it.

This module is pure (no environment access of its own: the caller hands `environ` in).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["ALLOW_ENV", "ENV", "FAILPOINTS", "Failpoint", "FailpointError", "Layer", "enabled_from", "for_layer",
           "parse_names"]

ENV = "RAFTKV_FAILPOINTS"
ALLOW_ENV = "RAFTKV_ALLOW_FAILPOINTS"

Layer = Literal["core", "storage", "server", "kv"]
LAYERS: tuple[Layer, ...] = ("core", "storage", "server", "kv")


class FailpointError(ValueError):
    """Failpoints asked for in a way that must not start a node (unknown name, no allow, malformed list)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Failpoint:
    """One planted bug. `mimics`: the real-world bug class; `shows`: "safety" or "liveness" and what a lab sees;
    `exposed_by`: the faults that expose it."""

    name: str
    layer: Layer
    mimics: str
    shows: str
    exposed_by: str

    @property
    def in_simulator(self) -> bool:
        """The simulator runs the real core, KV state machine and a simulated storage: all layers but the server."""
        return self.layer != "server"


def _fp(name: str, layer: Layer, mimics: str, shows: str, exposed_by: str) -> tuple[str, Failpoint]:
    return name, Failpoint(name=name, layer=layer, mimics=mimics, shows=shows, exposed_by=exposed_by)


FAILPOINTS: Mapping[str, Failpoint] = dict([
    _fp("read-without-quorum", "core",
        "Jepsen's etcd 0.4.1 and Consul analyses (2014): a leader serves ReadIndex reads without a heartbeat round confirming it is "
        "still leader, so a deposed leader that has not noticed answers stale reads.",
        "safety: stale read (a read misses a write that completed before it began)",
        "a partition isolating the leader while both sides take requests"),
    _fp("follower-local-read", "core",
        "the follower-read shortcut: a 'linearizable' read on a follower answered from the follower's own commit "
        "index, without asking the leader for a read index (ReadIndex not forwarded).",
        "safety: stale read on a follower",
        "client reads on followers; partitions or slow links that let a follower lag"),
    _fp("forget-vote", "core",
        "Raft Figure 2's 'votedFor must be persistent', broken: the vote is not restored "
        "across a restart, so a restarted node votes twice in one term.",
        "safety: two leaders of one term, then divergent logs and lost acknowledged writes",
        "crash-restart of a node during an election (several elections in a row)"),
    _fp("apply-uncommitted", "core",
        "entries handed to the state machine once locally durable, before a majority has them (the 'apply on "
        "append' bug of many home-grown Raft ports).",
        "safety: acknowledged writes lost, replicas diverge",
        "isolating a leader that keeps taking writes, then electing another"),
    _fp("commit-old-term", "core",
        "Raft paper Figure 8: a leader commits an entry of an earlier term by counting replicas, without an entry "
        "of its own term.",
        "safety: a committed entry is overwritten (divergent replicas, lost writes)",
        "leader churn with uncommitted tails: back-to-back leader kills and partitions"),
    _fp("accept-stale-append", "core",
        "term check skipped on AppendEntries (etcd-raft and many ports guard it): a follower accepts entries from "
        "a leader of an older term and acknowledges them under that term.",
        "safety: a deposed leader commits with a stale majority; replicas diverge",
        "a partition that deposes a leader, then a heal while it still holds uncommitted entries"),
    _fp("snapshot-off-by-one", "core",
        "an off-by-one in InstallSnapshot handling: the follower restarts its log one index past the snapshot's last "
        "entry, so it skips one committed entry.",
        "safety: replicas diverge after a snapshot is installed",
        "a follower that falls behind the snapshot (crash or partition, then catch-up by snapshot)"),
    _fp("ack-before-persist", "core",
        "a follower acknowledges appended entries before they are durable (the write path sends the reply before "
        "the fsync; etcd's Ready contract forbids it).",
        "safety: acknowledged writes lost after a crash",
        "a crash of followers right after they acknowledged (with lost un-fsynced writes)"),
    _fp("skip-fsync", "storage",
        "the WAL never fsyncs (a misconfigured 'no sync' mode, e.g. etcd --unsafe-no-fsync, or fsync errors "
        "ignored as in PostgreSQL's fsyncgate).",
        "safety: votes and acknowledged writes lost after a power cut",
        "a crash that loses un-fsynced writes (lose-unsynced disk fault); kill -9 alone keeps the page cache"),
    _fp("snapshot-rename-unsynced", "storage",
        "a snapshot file renamed into place before its data is fsynced (the ext4 zero-length-file-after-rename "
        "class of bug), after which the WAL it replaces is deleted.",
        "safety or availability: after a power cut the node restarts without its snapshot and with a gap in its "
        "log (it refuses to start, or forgets committed state)",
        "a crash that loses un-fsynced writes shortly after a snapshot (lose-unsynced disk fault)"),
    _fp("long-lease", "core",
        "leader leases far longer than the election timeout (a mis-set lease, or clock drift not accounted for: "
        "Jepsen's findings on lease reads in several databases).",
        "safety: stale reads from a deposed leader whose lease has not run out",
        "pausing or isolating a leader longer than an election timeout"),
    _fp("commit-beyond-match", "core",
        "a follower sets commit = min(leaderCommit, its last index) from any APPEND, before (and whether or not) the "
        "APPEND matched its log, instead of min(leaderCommit, index of last NEW entry) (Raft Figure 2): it "
        "commits stale entries of an older term.",
        "safety: a follower commits and applies entries the leader never committed; replicas diverge",
        "leader changes that leave followers with stale uncommitted tails"),
    _fp("cas-ignores-version", "kv",
        "a compare-and-set that applies the write whatever the expected version (a lost-update bug).",
        "safety: non-linearizable compare-and-set (caught quickly)",
        "none needed: concurrent writers on one key"),
    _fp("no-dedup", "kv",
        "client sessions ignored (issue 15, and every store whose retries rely on an expected version alone): a "
        "retried write whose first attempt applied matches again once its key was deleted and re-created "
        "(versions repeat), so it applies twice.",
        "safety: a write acknowledged once applied twice (a value read again after the key moved on)",
        "retried writes of unknown outcome (leader kills, a slow lossy network, partitions) on few keys with "
        "deletes and creates: the register workload's --mix churn in smart mode"),
    _fp("definite-on-ambiguous", "server",
        "an indeterminate write reported as a definite failure (the classic 'timeout means failed' client/server "
        "bug Jepsen reports again and again).",
        "safety: a write the client was told failed is visible later",
        "leader loss or a timeout while a write is in flight (partition, kill, pause of the leader)"),
    _fp("election-timer-stuck", "core",
        "a liveness bug: the election timer is not re-armed after a failed (pre-)campaign, so a node never "
        "campaigns again until restarted (a timer or campaign task that exits on failure).",
        "liveness: after enough faults the cluster stays leaderless after the heal",
        "many elections: partitions and leader kills in a row"),
])


def parse_names(text: str, *, where: str) -> frozenset[str]:
    """A comma-separated list of failpoint names (blanks around names ignored; empty -> empty set).
    `FailpointError` naming `where` on an unknown or empty name."""
    names = [part.strip() for part in text.split(",")]
    if names == [""]:
        return frozenset()
    for name in names:
        if not name:
            raise FailpointError(f"{where}: empty failpoint name in {text!r}")
        if name not in FAILPOINTS:
            raise FailpointError(f"{where}: unknown failpoint {name!r} (known: {', '.join(sorted(FAILPOINTS))})")
    return frozenset(names)


def enabled_from(environ: Mapping[str, str], allow: bool) -> frozenset[str]:
    """The failpoints a node starts with: `RAFTKV_FAILPOINTS` from `environ`, counted only together with an
    explicit allow (`allow`, i.e. --allow-failpoints, or `RAFTKV_ALLOW_FAILPOINTS=1` in `environ`).
    `FailpointError` (refuse to start) when failpoints are asked for without the allow, or a name is unknown.
    No `RAFTKV_FAILPOINTS` (or an empty one) -> the empty set, with or without the allow."""
    names = parse_names(environ.get(ENV, ""), where=ENV)
    allowed = allow or environ.get(ALLOW_ENV, "") == "1"
    if names and not allowed:
        raise FailpointError(f"{ENV}={environ.get(ENV)!r} is set but failpoints are not allowed: they plant bugs "
                             f"on purpose and run only with --allow-failpoints or {ALLOW_ENV}=1 (test labs only)")
    return names


def for_layer(names: Iterable[str], layer: Layer) -> frozenset[str]:
    """The subset of `names` (known failpoints) that belongs to `layer`."""
    return frozenset(n for n in names if FAILPOINTS[n].layer == layer)


def check_layer(names: Iterable[str], layer: Layer, *, where: str) -> frozenset[str]:
    """Validate that `names` are known failpoints of `layer` (a layer's config calls it): `FailpointError` else."""
    got = frozenset(names)
    for name in sorted(got):
        fp = FAILPOINTS.get(name)
        if fp is None or fp.layer != layer:
            raise FailpointError(f"{where}: {name!r} is not a {layer} failpoint (those are: "
                                 f"{', '.join(sorted(for_layer(FAILPOINTS, layer)))})")
    return got
