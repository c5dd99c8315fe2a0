"""Simulated clients: each issues Get and versioned Put requests one at a time, with timeouts and retries.

A client sends a request to the node it believes is the leader, follows NOT_LEADER hints, and after a timeout
tries another node. Requests and replies travel like HTTP over TCP: lost or delayed, never duplicated. Every logical operation becomes one `OpRecord` in the history, with the honest outcome:

- Get: ``ok`` with (value, version), or ``fail`` when every attempt was refused or timed out (a read has no effect).
- Put(key, value, expected_version), values unique per operation:
  - ``ok`` when an attempt was applied successfully (new version = expected + 1);
  - ``fail`` (``version-mismatch`` / ``no-key``) when an attempt was refused by the state machine and no earlier
    attempt had an unknown outcome: nothing of this operation was applied;
  - ``info`` with error ``maybe`` when the state machine refused a retry AFTER an earlier attempt timed out: that
    earlier attempt may have been applied (that is why the retry saw another version), or not. The one exception
    is certain: if the key's current value is ours at version expected + 1, our earlier attempt did apply: ``ok``.
  - ``info`` with error ``timeout`` when it ran out of attempts after an unknown one; ``fail`` if every attempt
    was certainly refused (NOT_LEADER, DROPPED, LOST).
- Delete(key, expected_version) (only with ``delete_ratio`` > 0, issue 15), with the last version the client saw
  (> 0): outcomes as for Put. A deleted key is re-created by the next Put expecting version 0, and versions repeat.
A client picks its expected version from the last version it saw of the key, so it meets real conflicts.

Client sessions (``sessions``, default on): every Put/Delete carries ClientSession(client_id ``c<id>``, seq = the
operation's number), the same for all its attempts, so the state machine applies it at most once. Without them
(the behaviour before issue 15) a retried Put can apply twice across a delete, and `check_history` names it
(``duplicate-apply``). With sessions every state-machine answer is the operation's own, so a refusal after an
unknown attempt is a certain ``fail``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from raftkv.kv import ClientSession, Command, Op, Outcome

from .loop import EventLoop
from .messages import ClientReply, ClientRequest, ReplyStatus
from .network import Network
from .trace import Tracer

__all__ = ["ClientOptions", "OpRecord", "SimClient"]


@dataclass(frozen=True, kw_only=True)
class ClientOptions:
    """Timeout of one attempt, attempts per operation, think time between operations (virtual us), share of Puts,
    share of Deletes among the other operations when the key is known to exist (0: no deletes, and no draw for
    them, so every seed replays as before deletes existed), client sessions on Puts and Deletes."""

    timeout_us: int = 300_000
    max_attempts: int = 8
    think_min_us: int = 1_000
    think_max_us: int = 30_000
    put_ratio: float = 0.5
    delete_ratio: float = 0.0
    sessions: bool = True

    def __post_init__(self) -> None:
        if self.timeout_us < 1 or self.max_attempts < 1:
            raise ValueError("timeout_us and max_attempts must be >= 1")
        if not 0 <= self.think_min_us <= self.think_max_us:
            raise ValueError(f"need 0 <= think_min_us <= think_max_us, got {self.think_min_us}..{self.think_max_us}")
        if not 0.0 <= self.put_ratio <= 1.0:
            raise ValueError(f"put_ratio must be in [0, 1], got {self.put_ratio}")
        if not 0.0 <= self.delete_ratio <= 1.0:
            raise ValueError(f"delete_ratio must be in [0, 1], got {self.delete_ratio}")


@dataclass(kw_only=True)
class OpRecord:
    """One logical client operation (all its attempts). ``type`` is None while it runs, then ok | fail | info."""

    client: int
    f: str
    key: str
    value: str | None
    expected: int
    invoke: int
    complete: int | None = None
    type: str | None = None
    result_value: str | None = None
    result_version: int = 0
    error: str = ""
    attempts: int = 0
    invoke_seq: int = 0  # the event loop's event count at invoke / completion: orders events at one instant
    complete_seq: int = 0
    node: int = 0  # the node the last attempt went to

    def describe(self) -> str:
        what = f"{self.f}({self.key}" + (f", {self.value!r}, v{self.expected})" if self.f == "put" else
                                         f", v{self.expected})" if self.f == "delete" else ")")
        if self.type == "ok":
            return f"c{self.client} {what} -> ok {self.result_value!r}@v{self.result_version}"
        return f"c{self.client} {what} -> {self.type} {self.error}"


class SimClient:
    """One client process. ``id`` is its network endpoint; ``nodes`` the node endpoints it may talk to."""

    def __init__(self, *, client_id: int, rng: random.Random, loop: EventLoop, net: Network, nodes: list[int],
                 keys: list[str], tracer: Tracer, history: list[OpRecord], options: ClientOptions) -> None:
        self.id = client_id
        self._rng = rng
        self._loop = loop
        self._net = net
        self._nodes = nodes
        self._keys = keys
        self._trace = tracer
        self._history = history
        self._opt = options
        self._known: dict[str, int] = {}
        self._seq = 0
        self._op: OpRecord | None = None
        self._rid = ""
        self._unknown = False  # an attempt of the current op ended without an answer
        self._session_known = False  # the state machine answered a write of this client's session
        self._target = nodes[rng.randrange(len(nodes))]
        self.running = False
        self.completed = 0

    @property
    def idle(self) -> bool:
        return self._op is None

    def start(self) -> None:
        """Start issuing operations (one at a time, with think time between them)."""
        if not self.running:
            self.running = True
            if self._op is None:
                self._loop.after(self._think(), self._next, None)

    def stop(self) -> None:
        """Issue no new operation; the current one runs to its end."""
        self.running = False

    def _think(self) -> int:
        return self._rng.randint(self._opt.think_min_us, self._opt.think_max_us)

    def _next(self, _: object) -> None:
        if not self.running or self._op is not None:
            return
        rng = self._rng
        key = self._keys[rng.randrange(len(self._keys))]
        self._seq += 1
        known = self._known.get(key, 0)
        if rng.random() < self._opt.put_ratio:
            op = OpRecord(client=self.id, f="put", key=key, value=f"c{self.id}.{self._seq}",
                          expected=known, invoke=self._loop.now,
                          invoke_seq=self._loop.events_run)
        elif self._opt.delete_ratio and known > 0 and rng.random() < self._opt.delete_ratio:
            op = OpRecord(client=self.id, f="delete", key=key, value=None, expected=known, invoke=self._loop.now,
                          invoke_seq=self._loop.events_run)
        else:
            op = OpRecord(client=self.id, f="get", key=key, value=None, expected=0, invoke=self._loop.now,
                          invoke_seq=self._loop.events_run)
        self._op = op
        self._unknown = False
        self._history.append(op)
        self._attempt()

    def _attempt(self) -> None:
        op = self._op
        assert op is not None
        op.attempts += 1
        op.node = self._target
        self._rid = f"c{self.id}.{self._seq}.{op.attempts}"
        # One op at a time: every earlier answer is in hand, so min_seq = seq once the state machine knows the
        # session (it answered one of its writes); before that 1, or a new session would pass for an evicted one.
        session = (ClientSession(client_id=f"c{self.id}", seq=self._seq,
                                 min_seq=self._seq if self._session_known else 1)
                   if self._opt.sessions else None)
        if op.f == "put":
            cmd = Command(request_id=self._rid, op=Op.PUT, key=op.key, value=op.value, expected_version=op.expected,
                          session=session)
        elif op.f == "delete":
            cmd = Command(request_id=self._rid, op=Op.DELETE, key=op.key, expected_version=op.expected,
                          session=session)
        else:
            cmd = Command(request_id=self._rid, op=Op.GET, key=op.key)
        if self._trace.on:
            self._trace(f"c{self.id} -> n{self._target} {self._rid} {op.f} {op.key}"
                        + (f" {op.value!r} v{op.expected}" if op.f == "put" else
                           f" v{op.expected}" if op.f == "delete" else ""))
        # Like an HTTP request on its own connection: it may be lost or late, never delivered twice. (A duplicate
        # would be proposed twice under one request id, and an answer about one copy, e.g. LOST, would be taken
        # for the fate of the other: the driver correlates answers by request id, as a server does.)
        self._net.send(self.id, self._target, ClientRequest(self.id, self._rid, cmd), "client-request", 64,
                       stream=True)
        self._loop.after(self._opt.timeout_us, self._timeout, self._rid)

    def _other_node(self) -> int:
        nodes = self._nodes
        if len(nodes) == 1:
            return nodes[0]
        choice = nodes[self._rng.randrange(len(nodes) - 1)]
        return choice if choice != self._target else nodes[-1]

    def _timeout(self, rid: str) -> None:
        if rid != self._rid or self._op is None:
            return
        if self._trace.on:
            self._trace(f"c{self.id} timeout {rid}")
        self._unknown = True
        self._target = self._other_node()
        self._retry_or_give_up()

    def _retry_or_give_up(self, delay: int = 0) -> None:
        op = self._op
        assert op is not None
        self._rid = ""  # answers to the previous attempt are stale from now on
        if op.attempts >= self._opt.max_attempts:
            if op.f != "get" and self._unknown:
                self._finish("info", error="timeout")
            else:
                self._finish("fail", error="unavailable")
            return
        if delay:
            self._loop.after(delay, self._resume, op)
        else:
            self._attempt()

    def _resume(self, op: OpRecord) -> None:
        if self._op is op and not self._rid:
            self._attempt()

    def on_reply(self, reply: ClientReply) -> None:
        """An answer arrived (possibly a stale or duplicated one: those are ignored)."""
        if reply.rid != self._rid or self._op is None:
            return
        op = self._op
        if self._trace.on:
            self._trace(f"c{self.id} <- {reply.rid} {reply.status.value}"
                        + (f" {reply.result.outcome.value} {reply.result.value!r}@v{reply.result.version}"
                           if reply.result else ""))
        status = reply.status
        if status is not ReplyStatus.OK:
            # Certainly not applied; go where the hint says, or try another node after a short pause.
            if reply.leader is not None and reply.leader != self._target:
                self._target = reply.leader
                self._retry_or_give_up()
            else:
                self._target = self._other_node()
                self._retry_or_give_up(delay=self._rng.randint(5_000, 20_000))
            return
        result = reply.result
        assert result is not None
        outcome = result.outcome
        if op.f == "get":
            if outcome is Outcome.OK:
                self._known[op.key] = result.version
                self._finish("ok", value=result.value, version=result.version)
            else:
                self._known[op.key] = 0
                self._finish("ok", value=None, version=0)
            return
        if outcome in (Outcome.OK, Outcome.VERSION_MISMATCH, Outcome.NO_KEY):
            self._session_known = self._opt.sessions
        if outcome is Outcome.OK:
            version = result.version if op.f == "put" else 0
            self._known[op.key] = version
            self._finish("ok", value=op.value, version=version)
        elif outcome is Outcome.VERSION_MISMATCH or outcome is Outcome.NO_KEY:
            self._known[op.key] = result.version
            if (op.f == "put" and outcome is Outcome.VERSION_MISMATCH and result.version == op.expected + 1
                    and result.value == op.value):
                self._finish("ok", value=op.value, version=result.version)  # our earlier attempt did it
            elif self._unknown and not self._opt.sessions:
                self._finish("info", error="maybe")
            else:
                self._finish("fail", error=outcome.value)
        else:
            self._finish("fail", error=f"{outcome.value}: {result.detail}")

    def _finish(self, kind: str, *, value: str | None = None, version: int = 0, error: str = "") -> None:
        op = self._op
        assert op is not None
        op.complete = self._loop.now
        op.complete_seq = self._loop.events_run
        op.type = kind
        op.result_value = value
        op.result_version = version
        op.error = error
        self._op = None
        self._rid = ""
        self.completed += 1
        if self._trace.on:
            self._trace(f"c{self.id} done {op.describe()}")
        if self.running:
            self._loop.after(self._think(), self._next, None)
