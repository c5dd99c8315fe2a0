"""Peer transport: one persistent outbound TCP connection per peer, frames.py framing, bounded buffers.

- Outbound: one long-running sender loop per peer (`_PeerSender.run`), started once and owned by the node's task
  group. It connects (capped exponential back-off, at most `max_backoff` = 1 s, so a healed partition is noticed
  within a second), sends a HELLO frame (our client URL, so followers can redirect clients to the leader), then
  writes every queued frame batch with one write. `send()` never blocks and never creates a task: it appends to
  the peer's buffer, which holds at most `max_queue` frames; beyond that, or while the peer is unreachable,
  messages are DROPPED (Raft repairs lost messages; hoarding them would only replay stale traffic).
- Dead peers: TCP_USER_TIMEOUT (outbound) and keepalive (inbound) end connections to a peer that vanished
  without a FIN (a silent partition) within ~2 s; see `_tune`.
- Inbound: an asyncio Protocol per accepted connection decodes frames incrementally. A frame from another cluster
  or an unknown sender, a malformed frame, or a payload that does not decode closes that connection with a log
  line; the node keeps serving.

Payload tags (first byte of a frame's payload): 0 = one Raft message (raftkv.core.codec), 1 = HELLO (UTF-8 client
URL of the sender).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import zlib
from collections.abc import Callable, Iterable

from raftkv.core import Message, codec

from . import frames

TAG_MSG = 0
TAG_HELLO = 1


def cluster_id_of(peers: dict[str, str]) -> int:
    """The default cluster id: a CRC32 of the sorted member ids (all members derive the same one)."""
    return zlib.crc32(",".join(sorted(peers)).encode())


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def _tune(sock: socket.socket | None, dead_ms: int, *, outbound: bool) -> None:
    """Notice a peer that vanished without a FIN or RST (a partition that silently drops packets): an outbound
    connection whose sent data stays unacknowledged for `dead_ms` is aborted by the kernel (TCP_USER_TIMEOUT), so
    the sender loop reconnects with its <= 1 s back-off and a healed partition is noticed within about a second
    instead of after TCP's retransmission back-off (which grows to tens of seconds). An inbound connection only
    receives, so keepalive probes reap it when its peer is gone."""
    if sock is None:
        return
    try:
        if outbound and hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, dead_ms)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, dead_ms // 1000))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    except OSError:  # not a TCP socket (tests may use others): nothing to tune
        pass


class _PeerSender:
    def __init__(self, transport: Transport, peer: str, addr: str) -> None:
        self.t = transport
        self.peer = peer
        self.addr = addr
        self.buf: list[bytes] = []
        self.backoff = 0.0  # the wait before the next connect attempt while the peer is unreachable
        self._waiter: asyncio.Future[None] | None = None
        self.connected = False
        self.dropped = 0

    def enqueue(self, frame: bytes) -> None:
        if not self.connected or len(self.buf) >= self.t.max_queue:
            self.dropped += 1
            self.t.on_drop(self.peer)
            return
        self.buf.append(frame)
        self._kick()

    def _kick(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.backoff = backoff = 0.05
        while True:
            host, port = _split(self.addr)
            try:
                async with asyncio.timeout(1.0):
                    reader, writer = await asyncio.open_connection(host, port)
            except (OSError, TimeoutError):
                await asyncio.sleep(backoff)
                self.backoff = backoff = min(backoff * 2, self.t.max_backoff)  # observable: tests await the cap
                continue
            self.backoff = backoff = 0.05
            _tune(writer.get_extra_info("socket"), self.t.dead_peer_ms, outbound=True)
            self.connected = True
            self.t.on_peer_state(self.peer, True)
            # The peer never writes on our outbound connection: EOF, a reset, or any byte ends it.
            closed = asyncio.ensure_future(reader.read(1))
            closed.add_done_callback(lambda _: self._kick())
            try:
                writer.write(frames.encode(self.t.cluster_id, self.t.node_id,
                                           bytes([TAG_HELLO]) + self.t.client_url.encode(), self.t.max_frame))
                while not closed.done():
                    if not self.buf:
                        self._waiter = loop.create_future()
                        try:
                            await self._waiter
                        finally:
                            self._waiter = None
                        continue
                    await asyncio.sleep(0)  # let this loop iteration's other messages join the write
                    batch, self.buf = self.buf, []
                    writer.write(b"".join(batch))
                    await writer.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                closed.cancel()
                self.connected = False
                self.buf.clear()
                writer.close()
                self.t.on_peer_state(self.peer, False)
            await asyncio.sleep(backoff)


class _Inbound(asyncio.Protocol):
    def __init__(self, transport: Transport) -> None:
        self.t = transport
        self.dec = frames.FrameDecoder(transport.max_frame)
        self.tr: asyncio.Transport | None = None
        self.peer_name = "?"

    def connection_made(self, tr: asyncio.BaseTransport) -> None:
        self.tr = tr  # type: ignore[assignment]
        _tune(tr.get_extra_info("socket"), self.t.dead_peer_ms, outbound=False)
        self.peer_name = str(tr.get_extra_info("peername"))

    def _reject(self, why: str) -> None:
        self.t.log.warning("peer connection from %s closed: %s", self.peer_name, why)
        self.t.on_reject(why)
        if self.tr is not None:
            self.tr.close()

    def data_received(self, data: bytes) -> None:
        try:
            got = self.dec.feed(data)
        except frames.FrameError as e:
            self._reject(f"malformed frame: {e}")
            return
        t = self.t
        for f in got:
            if f.cluster_id != t.cluster_id:
                self._reject(f"frame of another cluster (id {f.cluster_id}, ours {t.cluster_id}) from {f.sender!r}")
                return
            if f.sender not in t.peers or f.sender == t.node_id:
                self._reject(f"frame from unknown sender {f.sender!r}")
                return
            p = f.payload
            if not p:
                self._reject(f"empty payload from {f.sender}")
                return
            if p[0] == TAG_MSG:
                try:
                    msg = codec.decode_message(p[1:])
                except codec.DecodeError as e:
                    self._reject(f"undecodable message from {f.sender}: {e}")
                    return
                if msg.src != f.sender or msg.dst != t.node_id:
                    self._reject(f"message {msg.src}->{msg.dst} arrived on {f.sender}'s connection")
                    return
                t.on_message(msg)
            elif p[0] == TAG_HELLO:
                try:
                    t.on_hello(f.sender, p[1:].decode())
                except UnicodeDecodeError:
                    self._reject(f"bad hello from {f.sender}")
                    return
            else:
                self._reject(f"unknown payload tag {p[0]} from {f.sender}")
                return


class Transport:
    """See the module docstring. `peers` maps every member id (including ours) to its peer address."""

    def __init__(self, *, node_id: str, peers: dict[str, str], cluster_id: int, client_url: str,
                 on_message: Callable[[Message], None], on_hello: Callable[[str, str], None],
                 log: logging.Logger, max_frame: int = frames.DEFAULT_MAX_FRAME, max_queue: int = 4096,
                 max_backoff: float = 1.0, dead_peer_ms: int = 2000,
                 on_peer_state: Callable[[str, bool], None] = lambda p, up: None,
                 on_drop: Callable[[str], None] = lambda p: None,
                 on_reject: Callable[[str], None] = lambda why: None) -> None:
        self.node_id = node_id
        self.peers = peers
        self.cluster_id = cluster_id
        self.client_url = client_url
        self.on_message = on_message
        self.on_hello = on_hello
        self.log = log
        self.max_frame = max_frame
        self.max_queue = max_queue
        self.max_backoff = max_backoff
        self.dead_peer_ms = dead_peer_ms
        self._state_cb = on_peer_state
        self.on_drop = on_drop
        self.on_reject = on_reject
        self.senders = {p: _PeerSender(self, p, a) for p, a in peers.items() if p != node_id}
        self._server: asyncio.Server | None = None

    def on_peer_state(self, peer: str, up: bool) -> None:
        self.log.info("peer %s %s (%s)", peer, "connected" if up else "disconnected", self.peers[peer])
        self._state_cb(peer, up)

    async def start_server(self) -> None:
        host, port = _split(self.peers[self.node_id])
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Inbound(self), host, port, reuse_address=True)

    async def run_senders(self) -> None:
        """Run every peer's sender loop until cancelled."""
        async with asyncio.TaskGroup() as tg:
            for s in self.senders.values():
                tg.create_task(s.run(), name=f"sender-{s.peer}")

    def send(self, msgs: Iterable[Message]) -> None:
        cid, me, mf = self.cluster_id, self.node_id, self.max_frame
        for m in msgs:
            s = self.senders.get(m.dst)
            if s is None:
                self.log.warning("dropping message to unknown peer %r", m.dst)
                continue
            if not s.connected:
                s.dropped += 1
                self.on_drop(m.dst)
                continue
            try:
                s.enqueue(frames.encode(cid, me, b"\x00" + codec.encode_message(m), mf))
            except ValueError as e:
                self.log.error("cannot send %s to %s: %s", m.type.name, m.dst, e)

    def connected(self, peer: str) -> bool:
        return self.senders[peer].connected

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
