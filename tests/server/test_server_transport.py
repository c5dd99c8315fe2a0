"""The peer transport on its own: bounded per-peer buffers that drop rather than hoard, a reconnect back-off capped
at 1 s (a peer that comes back is reached within about a second, however long it was away), and the authenticated
handshake: a stranger, a wrong secret, a replay or a flood of unauthenticated connections gets nowhere."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from server_cluster import free_port

from raftkv.core import Message, MessageType
from raftkv.server import frames
from raftkv.server.transport import MAGIC, TAG_AUTH, Transport

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

    nonce = b"N" * frames.NONCE_BYTES

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not got.done():
            got.set_result(time.monotonic())
        writer.write(MAGIC + nonce)  # the challenge
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
    auth, hello = frames.FrameDecoder().feed(bytes(received))[:2]
    assert auth.sender == "n1" and auth.cluster_id == 7 and auth.payload[0] == TAG_AUTH
    key = frames.session_key(b"", nonce, auth.payload[1:], 7, "n1", "n2")
    assert auth.verify(key, 0) and hello.verify(key, 1) and hello.payload == b"\x01http://x"


class _Peer:
    """A real Transport listening as n2 on loopback; records what it delivers, rejects and refuses."""

    def __init__(self, secret: bytes, **kw: object) -> None:
        host = "127.0.0.96"
        self.peers = {"n1": f"{host}:{free_port(host)}", "n2": f"{host}:{free_port(host)}"}
        self.got: list[Message] = []
        self.hellos: list[tuple[str, str]] = []
        self.auth_failures: list[str] = []
        self.rejects: list[str] = []
        self.t = Transport(node_id="n2", peers=self.peers, cluster_id=7, client_url="http://n2", secret=secret,
                           on_message=self.got.append, on_hello=lambda p, u: self.hellos.append((p, u)), log=LOG,
                           on_auth_failure=self.auth_failures.append, on_reject=self.rejects.append,
                           **kw)  # type: ignore[arg-type]

    async def raw(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
        """A connection of our own to n2, and its challenge nonce."""
        host, _, port = self.peers["n2"].rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        challenge = await asyncio.wait_for(reader.readexactly(len(MAGIC) + frames.NONCE_BYTES), 5)
        assert challenge[:len(MAGIC)] == MAGIC
        return reader, writer, challenge[len(MAGIC):]


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 5) == b""
    except ConnectionResetError:
        return True


async def _await(pred: object, what: str) -> None:
    async with asyncio.timeout(10):
        while not pred():  # type: ignore[operator]
            await asyncio.sleep(0.01)  # the transport reports through callbacks: poll what they recorded


async def test_peers_with_the_same_secret_talk_and_a_wrong_secret_is_refused_and_counted() -> None:
    n2 = _Peer(b"the cluster secret")
    await n2.t.start_server()
    try:
        for secret, delivered in ((b"the cluster secret", True), (b"a guess at the secret", False)):
            n1 = Transport(node_id="n1", peers=n2.peers, cluster_id=7, client_url="http://n1", secret=secret,
                           on_message=lambda m: None, on_hello=lambda p, u: None, log=LOG)
            async with asyncio.TaskGroup() as tg:
                task = tg.create_task(n1.run_senders())
                if delivered:
                    await _await(lambda t=n1: t.connected("n2"), "connected")
                    n1.send([Message(type=MessageType.HEARTBEAT, src="n1", dst="n2", term=3)])
                    await _await(lambda: n2.got, "delivered")
                else:
                    await _await(lambda: n2.auth_failures, "refused")
                task.cancel()
        assert [(m.src, m.term) for m in n2.got] == [("n1", 3)] and n2.hellos == [("n1", "http://n1")]
        assert len(n2.auth_failures) >= 1 and "authentication failed for 'n1'" in n2.auth_failures[0]
    finally:
        await n2.t.close()


async def test_a_forged_or_replayed_frame_closes_the_connection() -> None:
    n2 = _Peer(b"the cluster secret")
    await n2.t.start_server()
    try:
        # Without the secret: an AUTH frame keyed with a guess (a forged HELLO would follow) is refused.
        reader, writer, nonce = await n2.raw()
        enc = frames.FrameEncoder(7, "n1", frames.session_key(b"guess", nonce, b"c" * 16, 7, "n1", "n2"))
        writer.write(enc.encode(bytes([TAG_AUTH]) + b"c" * 16) + enc.encode(b"\x01http://evil"))
        assert await _closed(reader) and n2.hellos == []
        # With the secret, one frame replayed on the same connection fails its position's tag.
        reader, writer, nonce = await n2.raw()
        enc = frames.FrameEncoder(7, "n1", frames.session_key(b"the cluster secret", nonce, b"c" * 16, 7, "n1", "n2"))
        auth, hello = enc.encode(bytes([TAG_AUTH]) + b"c" * 16), enc.encode(b"\x01http://n1")
        writer.write(auth + hello + hello)
        assert await _closed(reader) and n2.hellos == [("n1", "http://n1")]
        assert any("fails its tag" in why for why in n2.auth_failures)
        # Replayed on a new connection (a new challenge), the recorded AUTH and HELLO are worthless.
        reader, writer, _ = await n2.raw()
        writer.write(auth + hello)
        assert await _closed(reader) and len(n2.hellos) == 1
    finally:
        await n2.t.close()


async def test_unauthenticated_connections_are_bounded_in_number_size_and_time() -> None:
    n2 = _Peer(b"the cluster secret", max_pending_handshakes=3, handshake_timeout=0.5)
    await n2.t.start_server()
    try:
        held = [await n2.raw() for _ in range(3)]
        host, _, port = n2.peers["n2"].rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        assert await _closed(reader)  # the fourth: closed on arrival, before any challenge
        assert any("more than 3 unauthenticated" in why for why in n2.rejects)
        # A member's name announcing a huge frame before authenticating: refused from the header alone.
        r0, w0, _ = held[0]
        w0.write((64 << 20).to_bytes(4, "big") + b"\x02\x00\x00\x00\x07\x02n1")
        assert await _closed(r0) and any("exceeds the maximum of 256" in why for why in n2.rejects)
        # The others said nothing: closed once the handshake timeout passed.
        for r, _, _ in held[1:]:
            assert await _closed(r)
        assert sum("no authentication within 0.5 s" in why for why in n2.rejects) == 2
        assert not n2.t.handshaking
    finally:
        await n2.t.close()


class _ClosedWriter:
    """A StreamWriter whose transport closed, as uvloop's behaves: write raises RuntimeError."""

    def __init__(self, closing: bool) -> None:
        self.closing = closing

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>; the handler is closed")


def test_a_write_to_a_connection_that_closed_ends_the_connection_not_the_node() -> None:
    """Regression: a hunting run's node died when uvloop raised RuntimeError for a write to a peer connection
    that had closed between the sender's check and its write; the sender loop only caught OSError."""
    from raftkv.server.transport import _write

    for closing in (True, False):  # seen closing before the write, or closed under it
        with pytest.raises(ConnectionError):
            _write(_ClosedWriter(closing), b"frame")  # type: ignore[arg-type]
