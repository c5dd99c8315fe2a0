"""The peer frame codec: length-prefixed binary frames carrying the cluster id, the sender id and an authentication
tag, and the key derivation of the handshake that precedes them (see transport.py for the protocol).

    offset  size  field
    0       4     body length n (unsigned big-endian), 6 + s + 16 + 1 <= n <= max_frame
    4       1     version (2)
    5       4     cluster id (unsigned big-endian)
    9       1     sender id length s (1..64)
    10      s     sender id, UTF-8
    10+s    16    tag: HMAC-SHA256(session key, seq || bytes 4..10+s || payload), first 16 bytes
    26+s    ...   payload (tag byte + body; opaque here)

`seq` is the frame's position on its connection (0, 1, 2, ...; 8 bytes big-endian, never sent): a frame replayed,
dropped or reordered on a connection fails its tag. The session key is fresh per connection (:func:`session_key`
mixes both sides' nonces), so a frame recorded on one connection is worthless on another.

`FrameDecoder.feed(data)` is incremental (bytes arrive in arbitrary chunks) and returns whole frames. It checks a
frame's header (length, version, and, through `check_header`, the cluster id and the sender) as soon as the header
has arrived, BEFORE it buffers the body: an unauthenticated stranger cannot make the node hold a large body. It
raises `FrameError` (the peer broke the protocol) on any violation, after which it refuses further use: the
connection must be closed. Tags are checked by the caller (`verify`), which knows the connection's key.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass

VERSION = 2
DEFAULT_MAX_FRAME = 64 * 1024 * 1024
TAG_BYTES = 16
NONCE_BYTES = 16
MAX_SENDER = 64
_LEN = struct.Struct(">I")
_HEAD = struct.Struct(">BIB")
_SEQ = struct.Struct(">Q")
_KDF_LABEL = b"raftkv peer session v2"


class FrameError(ValueError):
    """The peer sent bytes that are not a valid frame (protocol violation)."""


@dataclass(frozen=True, slots=True)
class Frame:
    cluster_id: int
    sender: str
    payload: bytes
    tag: bytes
    header: bytes  # bytes 4..10+s of the frame: what the tag covers besides seq and payload

    def verify(self, key: bytes, seq: int) -> bool:
        """Whether the tag is right for this connection's key and this frame's position on it."""
        return hmac.compare_digest(self.tag, _tag(key, seq, self.header, self.payload))


def _tag(key: bytes, seq: int, header: bytes, payload: bytes) -> bytes:
    return hmac.digest(key, _SEQ.pack(seq) + header + payload, hashlib.sha256)[:TAG_BYTES]


def session_key(secret: bytes, server_nonce: bytes, client_nonce: bytes, cluster_id: int, sender: str,
                receiver: str) -> bytes:
    """The key of one connection from `sender` to `receiver`: both nonces, both ids and the cluster bound to the
    shared secret, so it proves the sender knows the secret and cannot be replayed on another connection."""
    if len(server_nonce) != NONCE_BYTES or len(client_nonce) != NONCE_BYTES:
        raise ValueError(f"nonces must be {NONCE_BYTES} bytes")
    info = b"\x00".join((_KDF_LABEL, server_nonce, client_nonce, struct.pack(">I", cluster_id & 0xFFFFFFFF),
                         sender.encode(), receiver.encode()))
    return hmac.digest(secret, info, hashlib.sha256)


class FrameEncoder:
    """Frames for one outbound connection: numbers them (seq) and tags each with the connection's key."""

    def __init__(self, cluster_id: int, sender: str, key: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        s = sender.encode()
        if not 1 <= len(s) <= MAX_SENDER:
            raise ValueError(f"sender id must be 1..{MAX_SENDER} bytes, got {len(s)}")
        self._header = _HEAD.pack(VERSION, cluster_id & 0xFFFFFFFF, len(s)) + s
        self._key = key
        self._fixed = len(self._header) + TAG_BYTES
        self.max_frame = max_frame
        self.seq = 0

    def encode(self, payload: bytes) -> bytes:
        """Frame one payload. Raises ValueError (caller misuse) if the frame would exceed max_frame; the sequence
        number is only used up by a frame that is returned."""
        n = self._fixed + len(payload)
        if n > self.max_frame:
            raise ValueError(f"frame of {n} bytes exceeds the maximum of {self.max_frame}")
        tag = _tag(self._key, self.seq, self._header, payload)
        self.seq += 1
        return _LEN.pack(n) + self._header + tag + payload


class FrameDecoder:
    """See the module docstring. `check_header(cluster_id, sender)` raises FrameError for a frame the caller will
    not take; `max_frame` may be changed between feeds (e.g. raised once a connection is authenticated)."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME,
                 check_header: Callable[[int, str], None] = lambda cluster_id, sender: None) -> None:
        self.max_frame = max_frame
        self.check_header = check_header
        self._buf = bytearray()
        self._broken: FrameError | None = None
        self._checked_at = -1  # position of the frame whose header was already checked (the body is awaited)

    def feed(self, data: bytes) -> list[Frame]:
        if self._broken is not None:
            raise FrameError(f"decoder already failed: {self._broken}")
        buf = self._buf
        buf += data
        out: list[Frame] = []
        pos = 0
        try:
            while len(buf) - pos >= 4:
                frame = self._one(buf, pos)
                if frame is None:
                    break
                out.append(frame)
                pos += 4 + _LEN.unpack_from(buf, pos)[0]
        except FrameError as e:
            self._broken = e
            raise
        if pos:
            del buf[:pos]
            self._checked_at = -1
        return out

    def _one(self, buf: bytearray, pos: int) -> Frame | None:
        """The frame at `pos`, or None while it is incomplete (its header checked as soon as it is in)."""
        (n,) = _LEN.unpack_from(buf, pos)
        if n > self.max_frame:
            raise FrameError(f"frame length {n} exceeds the maximum of {self.max_frame}")
        if n < 6 + 1 + TAG_BYTES + 1:
            raise FrameError(f"frame length {n} is too short for a header, a tag and a payload")
        have = len(buf) - pos - 4
        if have < 6:
            return None
        version, cluster_id, slen = _HEAD.unpack_from(buf, pos + 4)
        if version != VERSION:
            raise FrameError(f"unknown frame version {version} (this node speaks {VERSION})")
        if not 1 <= slen <= MAX_SENDER or 6 + slen + TAG_BYTES >= n:
            raise FrameError(f"bad sender id length {slen} in a frame of {n} bytes")
        if have < 6 + slen:
            return None
        body = pos + 10
        try:
            sender = bytes(buf[body:body + slen]).decode()
        except UnicodeDecodeError as e:
            raise FrameError(f"sender id is not UTF-8: {e}") from None
        if self._checked_at != pos:
            self.check_header(cluster_id, sender)
            self._checked_at = pos
        if have < n:
            return None
        tag_at = body + slen
        return Frame(cluster_id, sender, bytes(buf[tag_at + TAG_BYTES:pos + 4 + n]),
                     bytes(buf[tag_at:tag_at + TAG_BYTES]), bytes(buf[pos + 4:tag_at]))

    @property
    def buffered(self) -> int:
        return len(self._buf)
