"""The peer transport on its own: bounded per-peer buffers that drop rather than hoard, and a reconnect back-off
capped at 1 s (a peer that comes back is reached within about a second, however long it was away)."""

from __future__ import annotations

import asyncio
import logging
import time

from server_cluster import free_port

from raftkv.core import Message, MessageType
from raftkv.server import frames
from raftkv.server.transport import Transport

LOG = logging.getLogger("test-transport")


def _transport(peers: dict[str, str], **kw: object) -> Transport:
    return Transport(node_id="n1", peers=peers, cluster_id=7, client_url="http://x", on_message=lambda m: None,
                     on_hello=lambda p, u: None, log=LOG, **kw)  # type: ignore[arg-type]


def _msg(dst: str) -> Message:
    return Message(type=MessageType.HEARTBEAT, src="n1", dst=dst, term=1)


async def test_messages_to_an_unreachable_peer_are_dropped_and_a_full_buffer_drops() -> None:
    drops: list[str] = []
    t = _transport({"n1": "127.0.0.1:1", "n2": "127.0.0.1:2"}, max_queue=2, on_drop=drops.append)
    t.send([_msg("n2")] * 5)  # not connected: nothing is kept
    assert t.senders["n2"].buf == [] and len(drops) == 5
    t.senders["n2"].connected = True  # as if connected, with no writer draining the buffer
    t.send([_msg("n2")] * 5)
    assert len(t.senders["n2"].buf) == 2 and len(drops) == 8


async def test_reconnect_backoff_is_capped_at_one_second() -> None:
    host = "127.0.0.95"
    port = free_port(host)
    t = _transport({"n1": f"{host}:{free_port(host)}", "n2": f"{host}:{port}"})
    got: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    received = bytearray()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not got.done():
            got.set_result(time.monotonic())
        received.extend(await reader.read(1000))
        writer.close()

    async with asyncio.TaskGroup() as tg:
        senders = tg.create_task(t.run_senders())
        sender = t.senders["n2"]
        async with asyncio.timeout(10):  # several failed attempts: the back-off has reached its cap
            while sender.backoff < t.max_backoff:
                await asyncio.sleep(0.05)
        server = await asyncio.start_server(accept, host, port)
        opened = time.monotonic()
        async with server:
            took = await asyncio.wait_for(got, 5) - opened
        senders.cancel()
    assert took <= 1.2, f"reconnected {took:.2f}s after the peer came back"
    hello = frames.FrameDecoder().feed(bytes(received))
    assert hello and hello[0].sender == "n1" and hello[0].cluster_id == 7 and hello[0].payload == b"\x01http://x"
