"""The packet nemesis: its rules and the delay daemon's protocol as plain data, then real delay and loss between
real namespaces (stand-in daemons on every host), heal, and a killed daemon that must not become a partition."""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lab_net import PORT

from harness.backends.netns import NetnsRemote as NsRemote
from harness.protocols import Op
from harness.protocols import TestContext as Ctx
from nemesis import nfqueue
from nemesis.packet import PacketNemesis, packet_chain, rules_for

# Median TCP connect time from a host's namespace to another's stand-in daemon, in ms (a failed connect: inf).
CONNECT_MS = r"""
import socket, sys, time
times = []
for _ in range(int(sys.argv[3])):
    t = time.monotonic()
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[4])).close()
        times.append((time.monotonic() - t) * 1000)
    except OSError:
        times.append(float("inf"))
times.sort()
print(times[len(times) // 2])
"""


# ------------------------------------------------------------------------------------------------ plain data

def test_rules_put_loss_before_the_queue_for_every_peer() -> None:
    assert rules_for(["10.0.0.2", "10.0.0.3"], "delay+loss", loss=0.25, queue=7) == [
        "-s 10.0.0.2/32 -m statistic --mode random --probability 0.250000 -j DROP",
        "-s 10.0.0.2/32 -j NFQUEUE --queue-num 7 --queue-bypass",
        "-s 10.0.0.3/32 -m statistic --mode random --probability 0.250000 -j DROP",
        "-s 10.0.0.3/32 -j NFQUEUE --queue-num 7 --queue-bypass"]
    assert rules_for(["10.0.0.2"], "loss", loss=1, queue=7) == [
        "-s 10.0.0.2/32 -m statistic --mode random --probability 1.000000 -j DROP"]
    assert rules_for(["10.0.0.2"], "delay", loss=1, queue=7) == ["-s 10.0.0.2/32 -j NFQUEUE --queue-num 7 --queue-bypass"]
    with pytest.raises(ValueError, match="behaviour 'jam'"):
        rules_for(["10.0.0.2"], "jam", loss=1, queue=7)
    chain = packet_chain("rkl")
    assert (chain.table, chain.hook, chain.chain) == ("mangle", "PREROUTING", "rkl-packet")
    assert chain.script(["-s 10.0.0.2/32 -j DROP"], add_jump=True) == (
        "*mangle\n:rkl-packet - [0:0]\n-I PREROUTING 1 -j rkl-packet\n-A rkl-packet -s 10.0.0.2/32 -j DROP\nCOMMIT\n")


@pytest.mark.parametrize("kwargs", [{"behaviours": ()}, {"behaviours": ("jam",)}, {"targets": ("most",)},
                                    {"loss": 0}, {"loss": 1.5}, {"delay_ms": -1}, {"jitter_ms": -1},
                                    {"queue": 70000}])
def test_bad_settings_are_refused_at_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PacketNemesis(random.Random(1), **kwargs)


def test_the_delay_queue_releases_in_time_order_within_the_jitter_and_bounds_what_it_holds() -> None:
    q = nfqueue.DelayQueue(0.05, 0.0, random.Random(1), max_held=3)
    assert [q.add(i, now=float(i) / 100) for i in range(4)] == [True, True, True, False]
    assert q.passed == 1 and len(q) == 3 and q.oldest_id() == 0
    assert q.due(0.0499) == [] and q.due(0.05) == [0] and q.due(1.0) == [1, 2] and q.next_release() is None
    jittery = nfqueue.DelayQueue(0.05, 0.02, random.Random(2), max_held=1000)
    for i in range(500):
        jittery.add(i, now=0.0)
    times = sorted(t for t, _ in jittery._heap)
    assert 0.03 <= times[0] < 0.035 and 0.065 < times[-1] <= 0.07  # uniform over delay +- jitter
    order = jittery.due(1.0)
    assert sorted(order) == list(range(500)) and order != list(range(500))  # jitter reorders
    with pytest.raises(ValueError):
        nfqueue.DelayQueue(-1, 0, random.Random(1), max_held=1)


def test_netlink_messages_are_laid_out_as_the_kernel_expects_and_parsed_back() -> None:
    v = nfqueue.verdict(7, 0x01020304, batch=True)
    length, kind, flags, _seq, _pid = struct.unpack_from("=IHHII", v)
    assert length == len(v) == 16 + 4 + 4 + 8
    assert kind == (nfqueue.NFNL_SUBSYS_QUEUE << 8) | nfqueue.NFQNL_MSG_VERDICT_BATCH and flags == nfqueue.NLM_F_REQUEST
    assert v[16:20] == bytes([socket.AF_UNSPEC, 0, 0, 7])  # nfgenmsg: family, version 0, queue big-endian
    assert struct.unpack_from("=HH", v, 20) == (12, nfqueue.NFQA_VERDICT_HDR)
    assert struct.unpack_from(">II", v, 24) == (nfqueue.NF_ACCEPT, 0x01020304)
    # A packet message as the kernel sends it: nfgenmsg, a padded attribute before, then the packet header.
    payload = (struct.pack("=BBH", socket.AF_INET, 0, socket.htons(7)) + nfqueue.attr(9, b"\x01\x02\x03")
               + nfqueue.attr(nfqueue.NFQA_PACKET_HDR, struct.pack(">IHB", 4242, 0x0800, 1)))
    msg = struct.pack("=IHHII", 16 + len(payload), (3 << 8) | 0, 0, 0, 0) + payload
    two = msg + msg[:10]  # a truncated second message is ignored, not a crash
    parsed = nfqueue.parse(two)
    assert [(t, len(p)) for t, _, p in parsed] == [((3 << 8) | 0, len(payload))]
    assert nfqueue.packet_id(parsed[0][2]) == 4242
    assert nfqueue.packet_id(struct.pack("=BBH", 2, 0, 7)) is None
    assert nfqueue.parse(b"\xff" * 7) == [] and nfqueue.parse(struct.pack("=IHHII", 3, 0, 0, 0, 0)) == []


# ---------------------------------------------------------------------------------------------- real hosts


class NoLeaderDB:
    async def leader(self, test: Ctx) -> str | None:
        return None


class Backend:
    def __init__(self, prefix: str, root: Path) -> None:
        self.prefix, self.root = prefix, root

    def log_dir(self, host: str) -> str:
        return str(self.root / host / "log")


def make_test(hosts: list[NsRemote], tmp_path: Path, prefix: str) -> Ctx:
    return Ctx(name="packet", options={}, hosts=list(hosts), backend=Backend(prefix, tmp_path),  # type: ignore[arg-type]
               db=NoLeaderDB(), seed=1, store_dir=tmp_path)  # type: ignore[arg-type]


async def connect_ms(src: NsRemote, dst_address: str, *, count: int = 5, timeout: float = 2.0) -> float:
    out = await src.exec([sys.executable, "-c", CONNECT_MS, dst_address, str(PORT), str(count), str(timeout)])
    return float(out.stdout.strip())


def controller_connect_ms(address: str) -> float:
    t = time.monotonic()
    socket.create_connection((address, PORT), timeout=2).close()
    return (time.monotonic() - t) * 1000


async def op(nem: PacketNemesis, test: Ctx, f: str, **value: Any) -> dict[str, Any]:
    done = await nem.invoke(test, Op(process="nemesis", type="invoke", f=f, value={"fault": "packet", **value}))
    assert isinstance(done.value, dict)
    return done.value


@pytest.mark.netns
async def test_delay_slows_the_targets_inbound_peer_traffic_only_and_stop_restores(
        daemons: list[NsRemote], tmp_path: Path, lab_prefix_for_tests: str) -> None:
    n1, n2, n3 = daemons
    test = make_test(daemons, tmp_path, lab_prefix_for_tests)
    nem = PacketNemesis(random.Random(1), delay_ms=80, jitter_ms=0, prefix=lab_prefix_for_tests)
    await nem.setup(test)
    assert await connect_ms(n1, n2.address) < 40
    started = await op(nem, test, "start", behaviour="delay", targets=["n2"])
    try:
        assert started == {"fault": "packet", "behaviour": "delay", "target": "explicit", "targets": ["n2"],
                           "delay_ms": 80, "jitter_ms": 0}
        assert await connect_ms(n1, n2.address) >= 78  # the SYN waits at n2
        assert await connect_ms(n1, n3.address) < 40  # neither end is a target
        assert controller_connect_ms(n2.address) < 40  # the controller is never slowed
        rules = await packet_chain(lab_prefix_for_tests).listing(n2)
        assert any("NFQUEUE" in r for r in rules) and await packet_chain(lab_prefix_for_tests).listing(n1) == []
    finally:
        stopped = await op(nem, test, "stop")
    assert stopped == {"fault": "packet", "targets": ["n2"], "verified": True}
    assert await packet_chain(lab_prefix_for_tests).listing(n2) == []
    assert await connect_ms(n1, n2.address) < 40
    log = (tmp_path / "n2" / "log" / "nfqueue.log").read_text()
    assert "ready queue" in log and "stopped: held" in log and " 0 netlink overruns" in log
    assert nem.log_files(test, "n2") == [str(tmp_path / "n2" / "log" / "nfqueue.log")]
    assert nem.log_files(test, "n1") == []


@pytest.mark.netns
async def test_total_loss_cuts_peers_but_not_the_controller_and_heal_restores(
        daemons: list[NsRemote], tmp_path: Path, lab_prefix_for_tests: str) -> None:
    n1, n2, _ = daemons
    test = make_test(daemons, tmp_path, lab_prefix_for_tests)
    nem = PacketNemesis(random.Random(2), loss=1.0, prefix=lab_prefix_for_tests)
    await nem.setup(test)
    started = await op(nem, test, "start", behaviour="loss", targets=["n2"])
    try:
        assert started["loss"] == 1.0 and "delay_ms" not in started
        assert await connect_ms(n1, n2.address, count=1, timeout=0.5) == float("inf")
        assert controller_connect_ms(n2.address) < 40
    finally:
        healed = await nem.heal(test)
    assert healed["ok"], healed
    assert await connect_ms(n1, n2.address) < 40


@pytest.mark.netns
async def test_a_killed_delay_daemon_lets_traffic_through_and_a_new_start_replaces_the_old_fault(
        daemons: list[NsRemote], tmp_path: Path, lab_prefix_for_tests: str) -> None:
    """--queue-bypass: with no reader bound, queued traffic passes (a dead daemon must not become a partition).
    A start while a fault is active ends it first: only the new targets are degraded."""
    n1, n2, n3 = daemons
    test = make_test(daemons, tmp_path, lab_prefix_for_tests)
    nem = PacketNemesis(random.Random(3), delay_ms=80, jitter_ms=0, prefix=lab_prefix_for_tests)
    await nem.setup(test)
    try:
        await op(nem, test, "start", behaviour="delay", targets=["n2"])
        assert await n2.signal(nem._daemons["n2"], signal.SIGKILL)
        async with asyncio.timeout(5):
            while await n2.alive(nem._daemons["n2"]):
                await asyncio.sleep(0.01)  # polling the process table: there is no event to await
        assert await connect_ms(n1, n2.address) < 40
        await op(nem, test, "start", behaviour="delay", targets=["n3"])
        assert set(nem._daemons) == {"n3"}
        assert await packet_chain(lab_prefix_for_tests).listing(n2) == []
        assert await connect_ms(n1, n3.address) >= 78 and await connect_ms(n1, n2.address) < 40
    finally:
        healed = await nem.heal(test)
    assert healed["ok"], healed
    assert not nem._daemons
