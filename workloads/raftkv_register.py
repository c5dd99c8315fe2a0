"""raftkv's client for the `register` workload (workloads.register's vocabulary; the raftkv DBSpec's `clients`
entry, harness.registry.client_for): node-bound, smart and mixed placement and the outcome rules that
workloads.register's docstring describes."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from harness.protocols import Op, TestContext
from raftkv.client import (
    Attempt,
    BadRequest,
    Indeterminate,
    KVClient,
    NodeClient,
    NoKey,
    PutResult,
    RaftKVError,
    Reply,
    SessionExpired,
    Unavailable,
    VersionMismatch,
)
from workloads.raftkv_db import client_address
from workloads.register import client_mode

DEFAULT_OP_TIMEOUT_S = 5.0  # the engine's --op-timeout default
CONSISTENCIES = ("linearizable", "lease", "stale")  # raftkv's read modes


def client_timeout(options: Mapping[str, Any]) -> float:
    """The raftkv client's deadline for one operation: a little under the engine's --op-timeout, so the client
    library gives its own answer (Maybe, Timeout, Unavailable: each one precise) before the engine gives up on the
    operation and records a bare info."""
    op_timeout = float(options.get("op_timeout") or DEFAULT_OP_TIMEOUT_S)
    return max(0.05, op_timeout - min(0.5, op_timeout * 0.2))


def completion(f: str, reply: Reply) -> tuple[str, Any, str | None]:
    """(type, value, error) of the completion of a register op `f` that got `reply` from its node (node mode).

    ok when the node says it took effect (or, for a get, answered: its no-key means absent); otherwise `fail`
    when the reply is definite (raftkv.api.ERRORS, or never sent), else `info`; a get that got no answer is a
    `fail` all the same (a read changes nothing). An ok answer without the fields the API promises is not an
    answer the API documents: `info` (`fail` for a get) with error `bad-answer`."""
    body = reply.body
    if f == "get":
        if reply.ok:
            value, version = body.get("value"), body.get("version")
            if isinstance(value, str) and type(version) is int:
                return "ok", {"value": value, "version": version}, None
            return "fail", None, "bad-answer"
        if reply.code == "no-key" and reply.definite:
            return "ok", {"value": None, "version": 0}, None
        return "fail", None, reply.code
    if reply.ok:
        version = body.get("version")
        if type(version) is int:
            return "ok", {"version": version}, None
        return "info", None, "bad-answer"
    return ("fail" if reply.definite else "info"), None, reply.code


class RegisterClient:
    """One worker's connection. `open` returns a fresh opened client bound to a node (a NodeBoundClient in node
    mode); the instance it is called on only carries the options."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.timeout = client_timeout(options)
        self.consistency = options.get("read_consistency") or "linearizable"
        if self.consistency not in CONSISTENCIES:
            raise ValueError(f"--read-consistency must be one of {CONSISTENCIES}, got {self.consistency!r}")
        self.mode = client_mode(options)
        self.sessions = (options.get("client_sessions") or "on") == "on"
        self.options = options
        self._kv: KVClient | None = None
        self._rng = random.Random(0)
        self._names: dict[str, str] = {}  # client address -> node name
        self._addresses: list[str] = []

    async def open_worker(self, test: TestContext, node: str, worker: int) -> RegisterClient | NodeBoundClient:
        """Mixed mode's placement (module docstring): node-bound for the first worker of each node, the library
        for the others. The other modes open the same kind of client for every worker."""
        if self.mode == "mixed":
            smart = worker >= len(test.nodes)
            return await (self._open_smart(test, node) if smart else self._open_bound(test, node))
        return await self.open(test, node)

    async def open(self, test: TestContext, node: str) -> RegisterClient | NodeBoundClient:
        if self.mode == "smart":
            return await self._open_smart(test, node)
        return await self._open_bound(test, node)

    async def _open_bound(self, test: TestContext, node: str) -> NodeBoundClient:
        return NodeBoundClient(NodeClient(client_address(test, node), timeout=self.timeout), node,
                               self.consistency, self.timeout)

    async def _open_smart(self, test: TestContext, node: str) -> RegisterClient:
        client = RegisterClient(self.options)
        nodes = test.nodes
        start = nodes.index(node)
        client._addresses = [client_address(test, n) for n in nodes[start:] + nodes[:start]]  # its node first
        client._names = {client_address(test, n): n for n in nodes}
        client._kv = client._library()
        client._rng = test.rng(f"workload.register.client.{node}")
        return client

    async def close(self, test: TestContext) -> None:
        if self._kv is not None:
            await self._kv.close()
            self._kv = None

    def _done(self, op: Op, type_: str, value: Any = None, *, node: str | None = None, error: str | None = None,
              attempts: list[Attempt] | None = None) -> Op:
        if attempts is not None and len(attempts) > 1:  # the library retried: say so (docs/lab.md)
            value = {**(value or {}), "attempts": [[self._names.get(a.node, a.node), a.answer] for a in attempts]}
        return Op(process=op.process, type=type_, f=op.f, key=op.key, value=value,  # type: ignore[arg-type]
                  node=self._names.get(node or "", node), error=error)

    async def invoke(self, test: TestContext, op: Op) -> Op:
        if self._kv is None:
            raise RuntimeError("RegisterClient.invoke before open")
        attempts: list[Attempt] = []
        try:
            return await self._invoke(op, attempts)
        except (VersionMismatch, NoKey, Unavailable, BadRequest, SessionExpired) as exc:  # certainly not applied
            return self._done(op, "fail", node=exc.node, error=exc.code, attempts=attempts)
        except Indeterminate as exc:
            if op.f == "get":  # a read without an answer changed nothing
                await self._look_elsewhere()
                return self._done(op, "fail", node=exc.node, error=exc.code, attempts=attempts)
            return self._done(op, "info", node=exc.node, error=exc.code, attempts=attempts)
        except RaftKVError as exc:  # an error class this workload does not know: not certain, so info
            return self._done(op, "fail" if op.f == "get" else "info", node=exc.node, error=exc.code,
                              attempts=attempts)

    async def _invoke(self, op: Op, attempts: list[Attempt]) -> Op:
        """The library call of one op; its refusals and errors propagate to `invoke`."""
        assert self._kv is not None
        key = str(op.key)
        if op.f == "get":
            if self.consistency == "stale":
                got = await self._kv.get(key, consistency="stale", node=self._rng.choice(self._addresses),
                                         timeout=self.timeout, attempts=attempts)
            else:
                got = await self._kv.get(key, consistency=self.consistency, timeout=self.timeout,
                                         attempts=attempts)
            return self._done(op, "ok", {"value": got.value, "version": got.version}, node=got.node,
                              attempts=attempts)
        if op.f == "put":
            put = await self._kv.put(key, op.value["value"], op.value["version"], timeout=self.timeout,
                                     attempts=attempts)
            return self._done(op, "ok", _written(put), node=put.node, attempts=attempts)
        if op.f == "delete":
            deleted = await self._kv.delete(key, op.value["version"], timeout=self.timeout, attempts=attempts)
            return self._done(op, "ok", _written(deleted), node=deleted.node, attempts=attempts)
        raise ValueError(f"register workload: unknown f {op.f!r}")

    async def _look_elsewhere(self) -> None:
        """After a read got no answer: start again from the next node, forgetting the leader the library
        remembers (a paused leader accepts connections and never answers, so a worker that kept asking it would
        stall until it resumes). A write that got no answer ends in info, and the engine opens a new client."""
        assert self._kv is not None
        await self._kv.close()
        self._addresses = self._addresses[1:] + self._addresses[:1]
        self._kv = self._library()

    def _library(self) -> KVClient:
        """The library client of smart mode. Each attempt may wait at most a quarter of the op's deadline
        (`attempt_timeout`): a node that cannot confirm a commit answers `maybe` then, and the library retries
        elsewhere within the same call, as it does for a user after a leader failure (with the whole deadline
        for one attempt, a `maybe` came too late for any retry)."""
        return KVClient(self._addresses, timeout=self.timeout, attempt_timeout=self.timeout / 4,
                        sessions=self.sessions)


def _written(result: PutResult) -> dict[str, Any]:
    """The ok value of a put/delete: its version, and `"replayed": true` when the servers answered from their
    session table (an earlier attempt of this op had applied; this one applied nothing)."""
    return {"version": result.version, "replayed": True} if result.replayed else {"version": result.version}


class NodeBoundClient:
    """A worker's client in node mode: every operation goes to its one node, once (NodeClient), and the
    completion is that node's answer (:func:`completion`)."""

    def __init__(self, client: NodeClient, node: str, consistency: str, timeout: float) -> None:
        self._client = client
        self.node = node
        self.consistency = consistency
        self.timeout = timeout

    async def open(self, test: TestContext, node: str) -> NodeBoundClient:
        raise RuntimeError("NodeBoundClient is opened by RegisterClient.open")

    async def close(self, test: TestContext) -> None:
        await self._client.close()

    async def invoke(self, test: TestContext, op: Op) -> Op:
        key = str(op.key)
        if op.f == "get":
            reply = await self._client.get(key, self.consistency, timeout=self.timeout)
        elif op.f == "put":
            reply = await self._client.put(key, op.value["value"], op.value["version"], timeout=self.timeout)
        elif op.f == "delete":
            reply = await self._client.delete(key, op.value["version"], timeout=self.timeout)
        else:
            raise ValueError(f"register workload: unknown f {op.f!r}")
        type_, value, error = completion(op.f, reply)
        return Op(process=op.process, type=type_, f=op.f, key=op.key, value=value,  # type: ignore[arg-type]
                  node=self.node, error=error)
