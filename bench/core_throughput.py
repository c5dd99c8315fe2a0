"""Throughput benchmarks of the Raft core (pure CPU, no I/O). Prints committed entries per second.

1. `core_alone`: the core alone on a leader. Three real `Raft` cores in one process, messages delivered
   instantly by direct `step()` calls, "persistence" a no-op and "apply" just counting. The leader gets batches
   of proposals (`propose_many`), and each round runs Ready/advance on all three until quiet. The figure is the
   number of entries committed *and handed to the leader's application* per second, so it includes the
   followers' work too (three cores share one CPU here: a leader alone would be faster). Every node compacts its
   log every `compact_every` rounds, as a server would, so the log stays bounded. Two figures: per second of
   wall-clock time, and per second of this process's CPU time (the fair one on a shared, loaded machine).
   Python's cyclic GC is left on (it costs ~30%: a server may tune it with gc.freeze()/gc.set_threshold).
   Messages are handed over as objects (followers share the leader's Entry objects); a second run encodes and
   decodes every message with raftkv.core.codec to show the cost of the wire format.
2. `simulated_cluster`: a 5-node cluster in the deterministic simulator (raftkv.sim): real cores and KV state
   machines behind the simulated network and disks, no faults (see its docstring).

Usage: python bench/core_throughput.py [--batch N] [--entries N] [--payload BYTES] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raftkv.core import Raft, RaftConfig, Role  # noqa: E402
from raftkv.core.codec import decode_message, encode_message  # noqa: E402


def _drain(nodes: dict[str, Raft], codec: bool = False) -> int:
    """Run Ready -> deliver -> advance on every node until no node has work. Returns entries the leader applied.
    With `codec`, every message is encoded and decoded on the way (as on the wire)."""
    applied = 0
    busy = True
    while busy:
        busy = False
        for raft in nodes.values():
            if not raft.has_ready():
                continue
            busy = True
            rd = raft.ready()
            for msg in rd.messages + rd.messages_after_persist:
                if codec:
                    msg = decode_message(encode_message(msg))
                nodes[msg.dst].step(msg)
            if raft.role is Role.LEADER:
                applied += len(rd.committed_entries)
            raft.advance(rd)
    return applied


def core_alone(total: int = 200_000, batch: int = 1000, payload: int = 64,
               compact_every: int = 20, codec: bool = False) -> tuple[float, float]:
    """Committed entries per second (wall clock, CPU time) through a 3-node set of cores with instant delivery
    (see the module docstring)."""
    peers = ("n1", "n2", "n3")
    nodes = {p: Raft(RaftConfig(id=p, peers=peers, rng=random.Random(i), max_entries_per_msg=4096,
                                max_inflight_msgs=256, max_uncommitted_entries=1 << 20))
             for i, p in enumerate(peers)}
    leader = nodes["n1"]
    leader.campaign()
    _drain(nodes)
    for raft in nodes.values():  # heartbeats so everybody knows the commit index
        raft.tick()
    _drain(nodes)
    assert leader.role is Role.LEADER
    data = [bytes(payload)] * batch
    committed = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    rounds = total // batch
    for round_no in range(1, rounds + 1):
        leader.propose_many(data)
        committed += _drain(nodes, codec)
        if round_no % compact_every == 0:
            for raft in nodes.values():
                raft.compact(raft.applied_index, b"state machine snapshot")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    assert committed == rounds * batch, (committed, rounds * batch)
    for raft in nodes.values():  # followers learn the last commit index from the next heartbeat
        raft.tick()
    _drain(nodes)
    assert all(r.commit_index == leader.last_index for r in nodes.values())
    return committed / elapsed, committed / cpu


def core_alone_single_proposals(total: int = 100_000, batch: int = 1000, payload: int = 64) -> tuple[float, float]:
    """As `core_alone`, but each entry proposed by its own `propose()` call (a server's per-request path)."""
    peers = ("n1", "n2", "n3")
    nodes = {p: Raft(RaftConfig(id=p, peers=peers, rng=random.Random(i), max_entries_per_msg=4096,
                                max_uncommitted_entries=1 << 20))
             for i, p in enumerate(peers)}
    leader = nodes["n1"]
    leader.campaign()
    _drain(nodes)
    value = bytes(payload)
    committed = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    propose = leader.propose
    for round_no in range(1, total // batch + 1):
        for _ in range(batch):
            propose(value)
        committed += _drain(nodes)
        if round_no % 20 == 0:
            for raft in nodes.values():
                raft.compact(raft.applied_index, b"state machine snapshot")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return committed / elapsed, committed / cpu


def simulated_cluster(total: int = 100_000, batch: int = 200, payload: int = 64,
                      backlog: int = 2_000) -> tuple[float, float, float]:
    """Committed entries per second through a 5-node cluster in the deterministic simulator (raftkv.sim): real
    cores and KV state machines, every message through the simulated network (0.5-2 ms virtual delay), every
    Ready through the simulated disk (0.1-1 ms virtual fsync), entries applied to the KV store on all five nodes,
    snapshots every 1,000 entries; no faults. Each virtual millisecond the leader's backlog of uncommitted
    entries is topped up to ``backlog`` with `propose_many` batches of ``batch`` KV Puts.

    Returns (per wall-clock second, per CPU second, per virtual second). The first two measure the simulator's
    own speed (all five nodes share this one CPU); the third is what the modelled cluster would sustain."""
    from raftkv.kv import Command, Op, encode_command
    from raftkv.sim import Cluster, ClusterConfig

    config = ClusterConfig(nodes=5, snapshot_entries=1_000,
                           raft=(("max_entries_per_msg", 4096), ("max_uncommitted_entries", 1 << 20)))
    cluster = Cluster(config, seed=1)
    leader = cluster.node(cluster.check_one_leader())
    datas = [encode_command(Command(request_id="", op=Op.PUT, key=f"k{i % 64}", value="v" * payload,
                                    expected_version=0)) for i in range(batch)]
    base = leader.commit
    start, cpu_start, virtual_start = time.perf_counter(), time.process_time(), cluster.now
    proposed = 0
    while min(n.applied for n in cluster.nodes) < base + total:
        if proposed < total:
            while proposed - (leader.commit - base) < backlog and proposed < total:
                got = leader.propose_many(datas)
                assert got is not None, "the leader refused a proposal in a fault-free cluster"
                proposed += batch
        cluster.run_for(1_000)
        assert cluster.now - virtual_start < 600_000_000, "the simulated cluster stopped making progress"
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    virtual = (cluster.now - virtual_start) / 1e6
    committed = min(n.applied for n in cluster.nodes) - base
    return committed / elapsed, committed / cpu, committed / virtual


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--payload", type=int, default=64)
    parser.add_argument("--profile", action="store_true", help="profile the core-alone run with cProfile")
    args = parser.parse_args(argv)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        core_alone(args.entries, args.batch, args.payload)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return 0
    wall, cpu = core_alone(args.entries, args.batch, args.payload)
    print(f"core alone (3 cores, instant delivery, propose_many batches of {args.batch}, {args.payload}-byte "
          f"entries): {wall:,.0f} committed entries/s wall-clock, {cpu:,.0f} per CPU-second")
    wall, cpu = core_alone(min(args.entries, 100_000), args.batch, args.payload, codec=True)
    print(f"core alone with every message encoded and decoded (raftkv.core.codec, as on the wire): "
          f"{wall:,.0f} committed entries/s wall-clock, {cpu:,.0f} per CPU-second")
    wall, cpu = core_alone_single_proposals(min(args.entries, 100_000), args.batch, args.payload)
    print(f"core alone, one propose() call per entry (rounds of {args.batch}): {wall:,.0f} committed entries/s "
          f"wall-clock, {cpu:,.0f} per CPU-second")
    wall, cpu, virtual = simulated_cluster(min(args.entries, 100_000), payload=args.payload)
    print(f"5-node simulated cluster (raftkv.sim, no faults, applied on all 5 nodes): {wall:,.0f} committed "
          f"entries/s wall-clock, {cpu:,.0f} per CPU-second (the simulator's speed, five nodes on one CPU); "
          f"{virtual:,.0f} per virtual second (the modelled cluster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
