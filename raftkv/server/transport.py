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

- Authentication (frames.py): the accepting side opens every connection with a challenge, MAGIC + a fresh
  16-byte nonce. The connecting side answers with an AUTH frame carrying its own nonce, tagged with the session key
  both sides derive from the shared cluster secret, the two nonces and the two ids; every later frame is tagged with
  that key and its position on the connection. A wrong tag (a stranger, a forgery, a replay, a reordering) closes
  the connection and counts in `on_auth_failure`. Until a connection is authenticated its frames may be at most
  `PREAUTH_MAX_FRAME` bytes, its header is checked before any body is buffered, it must authenticate within
  `handshake_timeout` seconds, and at most `max_pending_handshakes` such connections exist at once (more are closed
  on arrival). One authenticated inbound connection per peer: a newer one replaces the older. So the bytes a node
  buffers for peers are bounded by (peers x max_frame) + (max_pending_handshakes x PREAUTH_MAX_FRAME). Without a
  secret the node still runs this protocol with an empty key: it then checks integrity, not identity (the node
  warns loudly at start).

Payload tags (first byte of a frame's payload): 0 = one Raft message (raftkv.core.codec), 1 = HELLO (UTF-8 client
URL of the sender), 2 = AUTH (the connecting side's 16-byte nonce; only as the first frame).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import zlib
from collections.abc import Callable, Iterable

from raftkv.core import Message, codec

from . import frames

TAG_MSG = 0
TAG_HELLO = 1
TAG_AUTH = 2
MAGIC = b"RKV2"
CHALLENGE_BYTES = len(MAGIC) + frames.NONCE_BYTES
PREAUTH_MAX_FRAME = 256  # an AUTH frame is 4 + 6 + 64 + 16 + 1 + 16 bytes at most


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


def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write, or raise ConnectionError if the connection has closed meanwhile. uvloop raises RuntimeError for a
    write to a closed transport (asyncio only logs a warning); uncaught, that ended the whole node when a peer's
    connection closed between the sender's last check and its write."""
    if writer.is_closing():
        raise ConnectionError("the connection closed")
    try:
        writer.write(data)
    except RuntimeError as e:  # uvloop: "unable to perform operation on <TCPTransport closed=True ...>"
        raise ConnectionError(str(e)) from None


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

    def enqueue(self, payload: bytes) -> None:
        if not self.connected or len(self.buf) >= self.t.max_queue:
            self.dropped += 1
            self.t.on_drop(self.peer)
            return
        self.buf.append(payload)
        self._kick()

    def _kick(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def run(self) -> None:
        self.backoff = backoff = 0.05
        while True:
            host, port = _split(self.addr)
            try:
                async with asyncio.timeout(self.t.handshake_timeout):
                    reader, writer = await asyncio.open_connection(host, port)
            except (OSError, TimeoutError):
                await asyncio.sleep(backoff)
                self.backoff = backoff = min(backoff * 2, self.t.max_backoff)  # observable: tests await the cap
                continue
            self.backoff = backoff = 0.05
            try:
                async with asyncio.timeout(self.t.handshake_timeout):
                    challenge = await reader.readexactly(CHALLENGE_BYTES)
                await self._serve(reader, writer, challenge)
            except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError, frames.FrameError) as e:
                self.t.log.debug("connection to %s ended: %s", self.peer, e)
            finally:
                self.connected = False
                self.buf.clear()
                writer.close()
            await asyncio.sleep(backoff)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, challenge: bytes) -> None:
        """Authenticate (AUTH, then HELLO), then write queued payloads as frames until the connection ends."""
        if challenge[:len(MAGIC)] != MAGIC:
            raise frames.FrameError(f"{self.peer} at {self.addr} does not speak this peer protocol")
        nonce = os.urandom(frames.NONCE_BYTES)
        t = self.t
        key = frames.session_key(t.secret, challenge[len(MAGIC):], nonce, t.cluster_id, t.node_id, self.peer)
        enc = frames.FrameEncoder(t.cluster_id, t.node_id, key, t.max_frame)
        _tune(writer.get_extra_info("socket"), t.dead_peer_ms, outbound=True)
        _write(writer, enc.encode(bytes([TAG_AUTH]) + nonce) + enc.encode(bytes([TAG_HELLO]) + t.client_url.encode()))
        self.connected = True
        t.on_peer_state(self.peer, True)
        # The peer never writes after its challenge: EOF, a reset, or any byte ends the connection.
        closed = asyncio.ensure_future(reader.read(1))
        closed.add_done_callback(lambda _: self._kick())
        loop = asyncio.get_running_loop()
        try:
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
                _write(writer, b"".join(enc.encode(payload) for payload in batch))
                await writer.drain()
        finally:
            closed.cancel()
            t.on_peer_state(self.peer, False)


class _Inbound(asyncio.Protocol):
    """One accepted connection: challenge, authenticate, then decode and dispatch (see the module docstring)."""

    def __init__(self, transport: Transport) -> None:
        self.t = transport
        self.dec = frames.FrameDecoder(PREAUTH_MAX_FRAME, self._check_header)
        self.tr: asyncio.Transport | None = None
        self.peer_name = "?"
        self.nonce = os.urandom(frames.NONCE_BYTES)
        self.key: bytes | None = None  # the session key once authenticated
        self.sender: str | None = None
        self.seq = 0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, tr: asyncio.BaseTransport) -> None:
        self.tr = tr  # type: ignore[assignment]
        self.peer_name = str(tr.get_extra_info("peername"))
        t = self.t
        if len(t.handshaking) >= t.max_pending_handshakes:
            self._reject(f"more than {t.max_pending_handshakes} unauthenticated connections at once")
            return
        t.handshaking.add(self)
        _tune(tr.get_extra_info("socket"), t.dead_peer_ms, outbound=False)
        self._timer = asyncio.get_running_loop().call_later(
            t.handshake_timeout, self._reject, f"no authentication within {t.handshake_timeout:g} s")
        tr.write(MAGIC + self.nonce)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self._settle()
        if self.sender is not None and self.t.inbound.get(self.sender) is self:
            del self.t.inbound[self.sender]

    def _settle(self) -> None:
        """This connection no longer counts as a pending handshake."""
        self.t.handshaking.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_header(self, cluster_id: int, sender: str) -> None:
        t = self.t
        if cluster_id != t.cluster_id:
            raise frames.FrameError(f"frame of another cluster (id {cluster_id}, ours {t.cluster_id}) from {sender!r}")
        if sender not in t.peers or sender == t.node_id:
            raise frames.FrameError(f"frame from unknown sender {sender!r}")
        if self.sender is not None and sender != self.sender:
            raise frames.FrameError(f"frame from {sender!r} on {self.sender}'s connection")

    def _reject(self, why: str, *, auth: bool = False) -> None:
        self.t.log.warning("peer connection from %s closed: %s", self.peer_name, why)
        (self.t.on_auth_failure if auth else self.t.on_reject)(why)
        self._settle()
        if self.tr is not None:
            self.tr.close()

    def data_received(self, data: bytes) -> None:
        try:
            got = self.dec.feed(data)
        except frames.FrameError as e:
            self._reject(f"malformed frame: {e}")
            return
        for f in got:
            if not self._authentic(f) or not self._dispatch(f):
                return

    def _authentic(self, f: frames.Frame) -> bool:
        """Check the frame's tag (the first frame must be AUTH and sets the session key); reject if wrong."""
        t = self.t
        if self.key is None:
            p = f.payload
            if len(p) != 1 + frames.NONCE_BYTES or p[0] != TAG_AUTH:
                self._reject(f"{f.sender!r} did not authenticate first", auth=True)
                return False
            key = frames.session_key(t.secret, self.nonce, p[1:], t.cluster_id, f.sender, t.node_id)
            if not f.verify(key, 0):
                self._reject(f"authentication failed for {f.sender!r} (wrong secret?)", auth=True)
                return False
            self.key, self.sender, self.seq = key, f.sender, 1
            self._settle()
            self.dec.max_frame = t.max_frame
            older = t.inbound.get(f.sender)
            t.inbound[f.sender] = self
            if older is not None and older.tr is not None:
                older.tr.close()  # one inbound connection per peer: the newer one wins
            return True
        if not f.verify(self.key, self.seq):
            self._reject(f"frame {self.seq} from {f.sender} fails its tag (forged, replayed or reordered)",
                         auth=True)
            return False
        self.seq += 1
        return True

    def _dispatch(self, f: frames.Frame) -> bool:
        """Hand an authenticated frame to the node; False (and the connection closed) for a bad payload."""
        t = self.t
        p = f.payload
        if p[0] == TAG_AUTH:
            return self.seq == 1 or self._fail(f"a second AUTH from {f.sender}")
        if p[0] == TAG_MSG:
            try:
                msg = codec.decode_message(p[1:])
            except codec.DecodeError as e:
                return self._fail(f"undecodable message from {f.sender}: {e}")
            if msg.src != f.sender or msg.dst != t.node_id:
                return self._fail(f"message {msg.src}->{msg.dst} arrived on {f.sender}'s connection")
            t.on_message(msg)
            return True
        if p[0] == TAG_HELLO:
            try:
                t.on_hello(f.sender, p[1:].decode())
            except UnicodeDecodeError:
                return self._fail(f"bad hello from {f.sender}")
            return True
        return self._fail(f"unknown payload tag {p[0]} from {f.sender}")

    def _fail(self, why: str) -> bool:
        self._reject(why)
        return False


class Transport:
    """See the module docstring. `peers` maps every member id (including ours) to its peer address."""

    def __init__(self, *, node_id: str, peers: dict[str, str], cluster_id: int, client_url: str,
                 on_message: Callable[[Message], None], on_hello: Callable[[str, str], None],
                 log: logging.Logger, secret: bytes = b"", max_frame: int = frames.DEFAULT_MAX_FRAME,
                 max_queue: int = 4096, max_backoff: float = 1.0, dead_peer_ms: int = 2000,
                 handshake_timeout: float = 5.0, max_pending_handshakes: int = 32,
                 on_peer_state: Callable[[str, bool], None] = lambda p, up: None,
                 on_drop: Callable[[str], None] = lambda p: None,
                 on_reject: Callable[[str], None] = lambda why: None,
                 on_auth_failure: Callable[[str], None] = lambda why: None) -> None:
        self.node_id = node_id
        self.secret = secret
        self.handshake_timeout = handshake_timeout
        self.max_pending_handshakes = max_pending_handshakes
        self.on_auth_failure = on_auth_failure
        self.handshaking: set[_Inbound] = set()  # accepted connections not yet authenticated
        self.inbound: dict[str, _Inbound] = {}  # the authenticated inbound connection of each peer
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

    async def start_server(self, listen: str | None = None) -> None:
        """Accept peers on `listen` (default: our own address in `peers`)."""
        host, port = _split(listen or self.peers[self.node_id])
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Inbound(self), host, port, reuse_address=True)

    async def run_senders(self) -> None:
        """Run every peer's sender loop until cancelled."""
        async with asyncio.TaskGroup() as tg:
            for s in self.senders.values():
                tg.create_task(s.run(), name=f"sender-{s.peer}")

    def send(self, msgs: Iterable[Message]) -> None:
        """Queue messages as payloads; each connection frames (numbers and tags) them when it writes."""
        room = self.max_frame - (6 + len(self.node_id.encode()) + frames.TAG_BYTES)
        for m in msgs:
            s = self.senders.get(m.dst)
            if s is None:
                self.log.warning("dropping message to unknown peer %r", m.dst)
                continue
            if not s.connected:
                s.dropped += 1
                self.on_drop(m.dst)
                continue
            payload = b"\x00" + codec.encode_message(m)
            if len(payload) > room:
                self.log.error("cannot send %s to %s: %d bytes exceed the frame limit of %d", m.type.name, m.dst,
                               len(payload), self.max_frame)
                continue
            s.enqueue(payload)

    def connected(self, peer: str) -> bool:
        return self.senders[peer].connected

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
