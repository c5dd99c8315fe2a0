"""A packet-delay daemon: holds every packet iptables hands to an NFQUEUE for a delay, then lets it through.

There is no netem on these machines (docs/lab.md, FAULTS.md); the iptables ``NFQUEUE`` target works, and this
reader speaks the kernel's nfnetlink_queue protocol itself over a raw ``AF_NETLINK``/``NETLINK_NETFILTER`` socket
(no library: ``NetfilterQueue`` does not build here). It binds one queue in the network namespace it runs in,
receives each queued packet's metadata (never its payload), and gives the ACCEPT verdict ``delay`` (plus a uniform
``jitter``) after the packet arrived.

    python -m nemesis.nfqueue --queue 7777 --delay-ms 50 [--jitter-ms 10] [--seed 1]

Contract:
- It prints ``ready queue N seed S ...`` on stdout (flushed) once the queue is bound, and nothing is queued to it before the
  rule that feeds it exists; the rule must use ``--queue-bypass``, so that a packet passes undelayed while no
  reader is bound (a dead reader must not turn a delay into a partition).
- The queue is fail-open (a full queue lets packets through rather than dropping them) and GSO packets are taken
  whole; the socket's receive buffer is forced large, since a netlink overrun (ENOBUFS) would strand packets.
- Without jitter packets leave in arrival order and one batch verdict releases every packet that is due; with
  jitter each packet gets its own verdict (packets may overtake each other: reordering, as netem's jitter does).
- SIGTERM or SIGINT: every held packet is accepted at once, the queue unbound, exit 0. A reader killed by SIGKILL
  loses the packets it held (TCP retransmits them) and the kernel unbinds the queue.
- Bounded: at most ``--max-held`` packets are held (beyond that, a packet is accepted at once), and it exits by
  itself after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
SO_RCVBUFFORCE = 33
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NFQA_CFG_F_GSO = 4
NF_ACCEPT = 1

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, seq, port id (host byte order)
_NFGENMSG = struct.Struct("=BBH")  # family, version, res_id (res_id is big-endian: packed by hand)
_NLATTR = struct.Struct("=HH")


class NfqueueError(RuntimeError):
    """The kernel refused a configuration request (the message names it and the errno)."""


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    raw = _NLATTR.pack(_NLATTR.size + len(payload), kind) + payload
    return raw + b"\0" * (_align(len(raw)) - len(raw))


def message(msg_type: int, flags: int, seq: int, queue: int, attrs: bytes, family: int = socket.AF_UNSPEC) -> bytes:
    """A whole nfnetlink_queue message: netlink header, nfgenmsg (version 0, res_id = queue), attributes."""
    body = _NFGENMSG.pack(family, 0, socket.htons(queue)) + attrs
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, seq, 0) + body


def verdict(queue: int, packet_id: int, *, batch: bool) -> bytes:
    """ACCEPT for one packet, or (batch) for every packet of the queue with an id up to packet_id."""
    kind = NFQNL_MSG_VERDICT_BATCH if batch else NFQNL_MSG_VERDICT
    return message(kind, NLM_F_REQUEST, 0, queue, attr(NFQA_VERDICT_HDR, struct.pack(">II", NF_ACCEPT, packet_id)))


def config_messages(queue: int, maxlen: int) -> list[tuple[str, bytes]]:
    """The requests that bind the queue and set it up, each with what it does (for error messages)."""
    flags = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO
    return [
        ("bind", message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, 1, queue,
                         attr(NFQA_CFG_CMD, struct.pack(">BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)))),
        ("set copy mode and queue length",
         message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, 2, queue,
                 attr(NFQA_CFG_PARAMS, struct.pack(">IB", 0, NFQNL_COPY_META))
                 + attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", maxlen)))),
        ("set fail-open and GSO", message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, 3, queue,
                                          attr(NFQA_CFG_MASK, struct.pack(">I", flags))
                                          + attr(NFQA_CFG_FLAGS, struct.pack(">I", flags)))),
    ]


def unbind_message(queue: int) -> bytes:
    return message(NFQNL_MSG_CONFIG, NLM_F_REQUEST, 9, queue,
                   attr(NFQA_CFG_CMD, struct.pack(">BxH", NFQNL_CFG_CMD_UNBIND, socket.AF_INET)))


def parse(buf: bytes) -> list[tuple[int, int, bytes]]:
    """The netlink messages in one datagram: (type, seq, payload after the netlink header). A truncated tail is
    ignored (the kernel never sends one; a malformed buffer must not crash the reader)."""
    out = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(buf):
        length, msg_type, _flags, seq, _pid = _NLMSGHDR.unpack_from(buf, offset)
        if length < _NLMSGHDR.size or offset + length > len(buf):
            break
        out.append((msg_type, seq, buf[offset + _NLMSGHDR.size:offset + length]))
        offset += _align(length)
    return out


def packet_id(payload: bytes) -> int | None:
    """The packet id of an NFQNL_MSG_PACKET payload (nfgenmsg + attributes), or None if it has none."""
    offset = _NFGENMSG.size
    while offset + _NLATTR.size <= len(payload):
        length, kind = _NLATTR.unpack_from(payload, offset)
        if length < _NLATTR.size:
            return None
        if kind & 0x3FFF == NFQA_PACKET_HDR and length >= _NLATTR.size + 4:
            return int(struct.unpack_from(">I", payload, offset + _NLATTR.size)[0])
        offset += _align(length)
    return None


class DelayQueue:
    """Holds packet ids until their release time. Pure: the caller gives the clock."""

    def __init__(self, delay_s: float, jitter_s: float, rng: random.Random, max_held: int) -> None:
        if delay_s < 0 or jitter_s < 0 or max_held < 1:
            raise ValueError(f"delay {delay_s} s, jitter {jitter_s} s, max held {max_held}: need >= 0, >= 0, >= 1")
        self.delay_s = delay_s
        self.jitter_s = jitter_s
        self.rng = rng
        self.max_held = max_held
        self._heap: list[tuple[float, int]] = []
        self.passed = 0  # accepted at once because max_held packets were already held

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, pid: int, now: float) -> bool:
        """Hold a packet; False when it must be accepted at once (the queue is full)."""
        if len(self._heap) >= self.max_held:
            self.passed += 1
            return False
        jitter = self.rng.uniform(-self.jitter_s, self.jitter_s) if self.jitter_s else 0.0
        heapq.heappush(self._heap, (now + max(0.0, self.delay_s + jitter), pid))
        return True

    def due(self, now: float) -> list[int]:
        """The ids whose time has come, in release order."""
        out = []
        while self._heap and self._heap[0][0] <= now:
            out.append(heapq.heappop(self._heap)[1])
        return out

    def drain(self) -> list[int]:
        out = [pid for _, pid in sorted(self._heap)]
        self._heap.clear()
        return out

    def next_release(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def oldest_id(self) -> int | None:
        """The smallest id held (ids grow with arrival), or None."""
        return min(pid for _, pid in self._heap) if self._heap else None


class Reader:
    """The netlink side: bind, receive, send verdicts."""

    def __init__(self, queue: int, maxlen: int = 65536, rcvbuf: int = 16 << 20) -> None:
        self.queue = queue
        self.overruns = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except OSError:  # not root: the ordinary limit is all we get
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind((0, 0))
        for what, msg in config_messages(queue, maxlen):
            self._request(what, msg)

    def _request(self, what: str, msg: bytes) -> None:
        self.sock.send(msg)
        seq = _NLMSGHDR.unpack_from(msg)[3]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for msg_type, got_seq, payload in parse(self.sock.recv(65536)):
                if msg_type == NLMSG_ERROR and got_seq == seq:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NfqueueError(f"queue {self.queue}: {what} refused: {os.strerror(code)} (errno {code})")
                    return
        raise NfqueueError(f"queue {self.queue}: no answer to {what}")

    def receive(self) -> list[int]:
        """Packet ids of every message now waiting (non-blocking). A netlink overrun (ENOBUFS: the kernel dropped
        messages, so some queued packets were never announced) is counted in ``overruns``: the caller releases
        such packets with a batch verdict (see :func:`run`)."""
        ids: list[int] = []
        try:
            data = self.sock.recv(1 << 20, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return ids
        except OSError as e:
            if e.errno != errno.ENOBUFS:
                raise
            self.overruns += 1
            return ids
        for msg_type, _seq, payload in parse(data):
            if msg_type == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                pid = packet_id(payload)
                if pid is not None:
                    ids.append(pid)
        return ids

    def accept(self, ids: list[int], *, in_order: bool) -> None:
        """ACCEPT these packets: one batch verdict up to the last id when they are a prefix in id order (no
        jitter), else one verdict each, sent together."""
        if not ids:
            return
        if in_order:
            self.sock.send(verdict(self.queue, ids[-1], batch=True))
            return
        self.sock.send(b"".join(verdict(self.queue, pid, batch=False) for pid in ids))

    def close(self) -> None:
        with contextlib.suppress(OSError):  # the socket's own close unbinds too
            self.sock.send(unbind_message(self.queue))
        self.sock.close()


def run(args: argparse.Namespace) -> int:
    queue = DelayQueue(args.delay_ms / 1000, args.jitter_ms / 1000, random.Random(args.seed), args.max_held)
    reader = Reader(args.queue)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    in_order = args.jitter_ms == 0
    print(f"ready queue {args.queue} seed {args.seed} delay {args.delay_ms} ms jitter {args.jitter_ms} ms",
          flush=True)
    end = time.monotonic() + args.max_seconds
    held_total = 0
    highest = -1  # the highest packet id announced so far
    overruns_seen = 0
    try:
        while not stop and time.monotonic() < end:
            now = time.monotonic()
            nxt = queue.next_release()
            timeout = 0.5 if nxt is None else max(0.0, nxt - now)
            try:
                readable, _, _ = select.select([reader.sock], [], [], min(timeout, 0.5))
            except InterruptedError:
                continue
            now = time.monotonic()
            if readable:
                for pid in reader.receive():
                    highest = max(highest, pid)
                    if queue.add(pid, now):
                        held_total += 1
                    else:
                        reader.accept([pid], in_order=False)
            reader.accept(queue.due(time.monotonic()), in_order=in_order)
            if reader.overruns > overruns_seen and not in_order:
                # Packets never announced are stranded in the kernel: release every id below the oldest one held
                # (ids grow), or every id so far when none is held. In order, the next batch verdict does it.
                oldest = queue.oldest_id()
                upto = highest if oldest is None else oldest - 1
                if upto >= 0:
                    reader.accept([upto], in_order=True)
                if oldest is None:
                    overruns_seen = reader.overruns
    finally:
        queue.drain()
        if highest >= 0:  # one batch verdict releases everything held, and anything stranded
            reader.accept([highest], in_order=True)
        reader.close()
        print(f"stopped: held {held_total} packets, passed {queue.passed} at once (queue full), "
              f"{reader.overruns} netlink overruns", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nemesis.nfqueue", description=__doc__.split("\n\n")[0])
    p.add_argument("--queue", type=int, required=True, help="the NFQUEUE number to bind (0..65535)")
    p.add_argument("--delay-ms", type=float, required=True, help="how long each packet is held")
    p.add_argument("--jitter-ms", type=float, default=0.0, help="uniform +/- jitter on the delay (reorders)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-held", type=int, default=100_000, help="packets held at most; beyond, accepted at once")
    p.add_argument("--max-seconds", type=float, default=3600.0, help="exit by itself after this long")
    args = p.parse_args(argv)
    if not 0 <= args.queue <= 65535:
        p.error(f"--queue must be 0..65535, got {args.queue}")
    if args.delay_ms < 0 or args.jitter_ms < 0:
        p.error("--delay-ms and --jitter-ms must be >= 0")
    try:
        return run(args)
    except (NfqueueError, OSError) as e:
        print(f"nfqueue: {e}", file=sys.stderr, flush=True)
        return 3


if __name__ == "__main__":
    sys.exit(main())
