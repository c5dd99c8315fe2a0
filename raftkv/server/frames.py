"""The peer frame codec: length-prefixed binary frames that carry the cluster id and the sender id.

    offset  size  field
    0       4     body length n (unsigned big-endian), 6 + len(sender) <= n <= max_frame
    4       1     version (1)
    5       4     cluster id (unsigned big-endian)
    9       1     sender id length s (1..64)
    10      s     sender id, UTF-8
    10+s    ...   payload (one Raft message, encoded by raftkv.core.codec; opaque here)

`FrameDecoder.feed(data)` is incremental (bytes arrive in arbitrary chunks) and returns whole frames; it raises
`FrameError` (the peer broke the protocol) on an oversized length, an unknown version, or a bad sender id, after
which the decoder refuses further use: the connection must be closed. The cluster id and the sender are checked
by the caller (it knows the cluster and its peers).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

VERSION = 1
DEFAULT_MAX_FRAME = 64 * 1024 * 1024
_LEN = struct.Struct(">I")
_HEAD = struct.Struct(">BIB")


class FrameError(ValueError):
    """The peer sent bytes that are not a valid frame (protocol violation)."""


@dataclass(frozen=True, slots=True)
class Frame:
    cluster_id: int
    sender: str
    payload: bytes


def encode(cluster_id: int, sender: str, payload: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """Frame one payload. Raises ValueError (caller misuse) if the frame would exceed max_frame."""
    s = sender.encode()
    if not 1 <= len(s) <= 64:
        raise ValueError(f"sender id must be 1..64 bytes, got {len(s)}")
    n = 6 + len(s) + len(payload)
    if n > max_frame:
        raise ValueError(f"frame of {n} bytes exceeds the maximum of {max_frame}")
    return _LEN.pack(n) + _HEAD.pack(VERSION, cluster_id & 0xFFFFFFFF, len(s)) + s + payload


class FrameDecoder:
    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._broken: FrameError | None = None

    def feed(self, data: bytes) -> list[Frame]:
        if self._broken is not None:
            raise FrameError(f"decoder already failed: {self._broken}")
        buf = self._buf
        buf += data
        out: list[Frame] = []
        pos = 0
        size = len(buf)
        try:
            while size - pos >= 4:
                (n,) = _LEN.unpack_from(buf, pos)
                if n > self.max_frame:
                    raise FrameError(f"frame length {n} exceeds the maximum of {self.max_frame}")
                if n < 7:
                    raise FrameError(f"frame length {n} is too short for a header")
                if size - pos - 4 < n:
                    break
                version, cluster_id, slen = _HEAD.unpack_from(buf, pos + 4)
                if version != VERSION:
                    raise FrameError(f"unknown frame version {version}")
                if not 1 <= slen <= 64 or 6 + slen > n:
                    raise FrameError(f"bad sender id length {slen} in a frame of {n} bytes")
                body = pos + 10
                try:
                    sender = bytes(buf[body:body + slen]).decode()
                except UnicodeDecodeError as e:
                    raise FrameError(f"sender id is not UTF-8: {e}") from None
                out.append(Frame(cluster_id, sender, bytes(buf[body + slen:pos + 4 + n])))
                pos += 4 + n
        except FrameError as e:
            self._broken = e
            raise
        if pos:
            del buf[:pos]
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)
