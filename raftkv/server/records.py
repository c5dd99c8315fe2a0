"""The WAL record codec: typed, opaque byte payloads framed with lengths and checksums.

One record on disk:

    offset  size  field
    0       4     payload length, unsigned little-endian
    4       1     record type (1..255; 0 is never written, so a zero-filled tail is recognised as such)
    5       3     reserved, zero
    8       4     CRC32 (zlib) of the payload
    12      4     CRC32 (zlib) of bytes 0..12 (the header check: a flipped length byte is caught here)
    16      n     payload

`decode_all(buffer)` walks a buffer and stops at the first record it cannot accept, saying why (`Stop`), so the
WAL can tell a torn tail (the process or machine died mid-write: the last record is incomplete, or the rest of the
file is zeros) from corruption (a complete record whose checksums fail, with more data after it). That policy lives
in wal.py; this module only reports facts and never raises on garbage except through `RecordError`.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

HEADER = struct.Struct("<IB3xII")
HEADER_SIZE = HEADER.size  # 16
MAX_PAYLOAD = 256 * 1024 * 1024  # a larger length field is treated as a damaged header


class RecordError(ValueError):
    """A record could not be encoded (caller misuse)."""


class StopReason(enum.Enum):
    END = "end"  # the buffer ended exactly at a record boundary
    SHORT_HEADER = "short-header"  # fewer than HEADER_SIZE bytes remain
    SHORT_PAYLOAD = "short-payload"  # the header is sound but the payload runs past the end
    ZEROS = "zeros"  # the rest of the buffer is zero bytes (a file extended but never written)
    BAD_HEADER = "bad-header"  # header checksum mismatch (or type 0, or absurd length)
    BAD_PAYLOAD = "bad-payload"  # payload checksum mismatch


@dataclass(frozen=True, slots=True)
class Stop:
    reason: StopReason
    offset: int  # where the unaccepted record starts (== len(buffer) for END)
    record_end: int  # for BAD_PAYLOAD: where the damaged record ends; else == offset


def encode(rtype: int, payload: bytes) -> bytes:
    """Frame one record. Raises RecordError for a type outside 1..255 or a payload over MAX_PAYLOAD."""
    if not 1 <= rtype <= 255:
        raise RecordError(f"record type must be in 1..255, got {rtype}")
    if len(payload) > MAX_PAYLOAD:
        raise RecordError(f"record payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    head = struct.pack("<IB3xI", len(payload), rtype, zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def decode_all(buffer: bytes | memoryview, start: int = 0) -> tuple[list[tuple[int, bytes, int]], Stop]:
    """Decode records from `start`. Returns ([(type, payload, offset), ...], Stop). Never raises on garbage."""
    view = memoryview(buffer)
    size = len(view)
    out: list[tuple[int, bytes, int]] = []
    pos = start
    unpack = HEADER.unpack_from
    crc32 = zlib.crc32
    while True:
        if pos == size:
            return out, Stop(StopReason.END, pos, pos)
        if size - pos < HEADER_SIZE:
            if not any(view[pos:]):
                return out, Stop(StopReason.ZEROS, pos, pos)
            return out, Stop(StopReason.SHORT_HEADER, pos, pos)
        length, rtype, pcrc, hcrc = unpack(view, pos)
        if crc32(view[pos:pos + 12]) != hcrc or rtype == 0 or length > MAX_PAYLOAD:
            if not any(view[pos:]):
                return out, Stop(StopReason.ZEROS, pos, pos)
            return out, Stop(StopReason.BAD_HEADER, pos, pos)
        end = pos + HEADER_SIZE + length
        if end > size:
            return out, Stop(StopReason.SHORT_PAYLOAD, pos, pos)
        payload = bytes(view[pos + HEADER_SIZE:end])
        if crc32(payload) != pcrc:
            return out, Stop(StopReason.BAD_PAYLOAD, pos, end)
        out.append((rtype, payload, pos))
        pos = end
