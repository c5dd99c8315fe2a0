"""The register workload's stream beside the engine's default fault rhythm, as the engine builds them (rate limit,
time limits, clients and nemesis side by side), run by harness.generator.simulate: no threads, no sleeps.

Faults must start and stop every --nemesis-interval while the clients keep their rate (the first real run of the
lab found the nemesis starved behind rate-limited client ops; the harness fixed its interpreter, and this keeps the
pair honest from the workload's side)."""

from __future__ import annotations

import random

from harness import generator as gen
from workloads.register import generator as register_generator

S = gen.NS_PER_S


def test_faults_follow_the_interval_beside_rate_limited_clients() -> None:
    clients = gen.time_limit(10, gen.rate(100, register_generator({"keys": 4}, random.Random(1))))
    nemesis = gen.time_limit(10, gen.nemesis_cycle(["partition", "kill"], 2.0, seed=3))
    history = gen.simulate(gen.clients_and_nemesis(clients, nemesis), gen.Context.initial(5),
                           complete=lambda op: ("info" if op.process == gen.NEMESIS else "ok", 5_000_000))
    faults = [(round(op.time / S), op.f) for op in history if op.process == gen.NEMESIS and op.type == "invoke"]
    assert faults == [(2, "start"), (4, "stop"), (6, "start"), (8, "stop")], faults
    client_ops = [op for op in history if op.process != gen.NEMESIS and op.type == "invoke"]
    assert 950 <= len(client_ops) <= 1001, "the clients keep their rate of 100/s for 10 s"
    assert sum(2 < op.time / S < 4 for op in client_ops) > 180, "and keep it during the first fault"
