"""What clients and nodes say to each other in the simulator (Raft's own messages are `raftkv.core.Message`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from raftkv.core import Message, MessageType
from raftkv.kv import Command, Result

__all__ = ["ClientReply", "ClientRequest", "ReplyStatus", "message_kind", "message_size"]


class ReplyStatus(enum.Enum):
    """How a node answered a client request.

    OK: the command was applied (or the read served); ``result`` is the state machine's answer (which may itself
    be a refusal such as VERSION_MISMATCH). NOT_LEADER / DROPPED: the node did not take the request; it certainly
    had no effect. LOST: the node proposed it, but another entry was committed at its index: it certainly had no
    effect (an entry lives at one index only)."""

    OK = "ok"
    NOT_LEADER = "not-leader"
    DROPPED = "dropped"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class ClientRequest:
    client: int
    rid: str
    command: Command


@dataclass(frozen=True, slots=True)
class ClientReply:
    rid: str
    status: ReplyStatus
    result: Result | None = None
    leader: int | None = None


_KIND = {t: t.name for t in MessageType}


def message_kind(msg: Message) -> str:
    """The counter label of a Raft message (its type's name)."""
    return _KIND[msg.type]


def message_size(msg: Message) -> int:
    """An estimate of the message's size on the wire: a fixed header plus entry and payload bytes (the codec's
    msgpack form is within a few bytes per field of this; computing it for every message would slow the sim)."""
    size = 32 + len(msg.data) + len(msg.context)
    for entry in msg.entries:
        size += 12 + len(entry.data)
    return size
