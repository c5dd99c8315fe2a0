"""etcd's clients for the lab's workloads (the etcd DBSpec's `clients` table, harness.registry.client_for), over
the v3 HTTP/JSON gateway (workloads.etcd_api).

Every worker is bound to one node (Jepsen's placement: the register's `node` mode; `--client-mode` smart and
mixed open the same node-bound client, there being no etcd client library here to retry elsewhere): each op is sent
to that node once, and what it answered is recorded with the node's name. etcd forwards a follower's writes to its
leader and serves linearizable reads on any member (ReadIndex), so every node serves every op while it is in a
quorum.

register (workloads.register's vocabulary, the versioned-kv model): a key's *version* is etcd's own per-key
`version` (1 on creation, +1 per put, 0 once deleted), which is exactly the model's version.
- `get`: a range of the key; linearizable by default, etcd's serializable (local, possibly stale) range under
  `--read-consistency serializable`; ok `{"value", "version"}` (`{"value": null, "version": 0}`: absent);
- `put {"value": V, "version": E}`: a txn `version(key) == E ? put(key, V)`; ok `{"version": E+1}`, or a definite
  `fail` with error `version-mismatch` when the compare failed (etcd applied nothing);
- `delete {"version": E}`: a txn `version(key) == E ? delete(key)`; ok `{"version": 0}`, else as put.
set: an `add` of element x to set s is a plain put of the key `s/x` (etcd's own way to keep a set: a key per
element); a `read` is a keys-only range over the prefix `s/`.
list-append: the list is one key holding a JSON array; an `append` is a read-modify-write: read the key and its
`mod_revision` (0: absent), then a txn `mod_revision(key) == m ? put(key, array + [x])`; a failed compare (someone
appended in between; nothing applied) starts again, at most MAX_ATTEMPTS times within the op's deadline.

Outcomes (Jepsen's rules; etcd_api's GatewayError says which errors are definite): an op is `ok` when etcd
answered that it applied; `fail` when etcd guarantees nothing applied (a failed compare, a refused connection, a
refusal before proposal); `info` otherwise (timeout, connection lost, an error of unknown outcome). A read that got
no answer changed nothing: `fail`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from harness.protocols import Client, Op, TestContext
from workloads.etcd_api import Gateway, GatewayError, as_int, b64, first_kv, prefix_end, unb64

DEFAULT_OP_TIMEOUT_S = 5.0
MAX_ATTEMPTS = 16  # read-modify-write rounds of one append that lost the compare
CONSISTENCIES = {"linearizable": False, "serializable": True}  # --read-consistency -> the range's "serializable"
Address = Callable[[TestContext, str], str]
Outcome = tuple[str, Any, str | None]  # (type, value, error) of a completion


def op_timeout(options: Mapping[str, Any]) -> float:
    """A little under the engine's --op-timeout, so an op ends with the gateway's own answer."""
    limit = float(options.get("op_timeout") or DEFAULT_OP_TIMEOUT_S)
    return max(0.05, limit - min(0.5, limit * 0.2))


def serializable(options: Mapping[str, Any]) -> bool:
    """Whether reads are etcd's serializable ranges; ValueError for a consistency etcd has no mode for."""
    name = str(options.get("read_consistency") or "linearizable")
    if name not in CONSISTENCIES:
        raise ValueError(f"etcd reads are linearizable or serializable, not {name!r}")
    return CONSISTENCIES[name]


def failed(exc: GatewayError, *, read: bool) -> Outcome:
    """The completion of an op whose call raised: a read is a `fail` (it changed nothing); a write is `fail` only
    when the error is definite, else `info`."""
    return ("fail" if read or exc.definite else "info"), None, exc.code


def versioned_txn(key: str, version: int, request: dict[str, Any]) -> dict[str, Any]:
    """A txn body: `request` (a RequestOp) when the key's version is `version` (0: absent), else a range of the
    key (atomic with the compare: whether the key existed when it failed, :func:`_txn_outcome`)."""
    return {"compare": [{"key": b64(key), "target": "VERSION", "result": "EQUAL", "version": str(version)}],
            "success": [request], "failure": [{"request_range": {"key": b64(key), "keys_only": True}}]}


class EtcdClient:
    """Base of the workload clients: holds the options, opens a copy bound to a node with its own Gateway, maps
    each op through `_apply` (subclasses) to its completion."""

    def __init__(self, options: Mapping[str, Any], *, address: Address, node: str | None = None,
                 gateway: Gateway | None = None) -> None:
        self.options, self.address, self.node, self.gateway = options, address, node, gateway
        self.timeout = op_timeout(options)
        self.serializable = serializable(options)

    async def open(self, test: TestContext, node: str) -> EtcdClient:
        return type(self)(self.options, address=self.address, node=node,
                          gateway=Gateway(self.address(test, node), self.timeout))

    async def close(self, test: TestContext) -> None:
        if self.gateway is not None:
            await self.gateway.close()
            self.gateway = None

    async def invoke(self, test: TestContext, op: Op) -> Op:
        if self.gateway is None:
            raise RuntimeError(f"{type(self).__name__}.invoke before open")
        type_, value, error = await self._apply(self.gateway, op)
        return Op(process=op.process, type=type_, f=op.f, key=op.key, value=value,  # type: ignore[arg-type]
                  node=self.node, error=error)

    async def _apply(self, gw: Gateway, op: Op) -> Outcome:
        raise NotImplementedError

    async def _range(self, gw: Gateway, body: dict[str, Any], *, linearizable: bool = False) -> dict[str, Any]:
        """A range with the run's read consistency (always linearizable when asked: a read-modify-write's read)."""
        return await gw.call("/v3/kv/range", {**body, "serializable": self.serializable and not linearizable})


class EtcdRegisterClient(EtcdClient):
    """The register workload's get/put/delete (module docstring)."""

    async def _apply(self, gw: Gateway, op: Op) -> Outcome:
        key = str(op.key)
        try:
            if op.f == "get":
                kv = first_kv(await self._range(gw, {"key": b64(key)}))
                if kv is None:
                    return "ok", {"value": None, "version": 0}, None
                return "ok", {"value": unb64(str(kv.get("value", ""))), "version": as_int(kv.get("version"),
                                                                                           "version")}, None
            if op.f == "put":
                expected = int(op.value["version"])
                request = {"request_put": {"key": b64(key), "value": b64(str(op.value["value"]))}}
                return _txn_outcome(await gw.call("/v3/kv/txn", versioned_txn(key, expected, request)),
                                    {"version": expected + 1})
            if op.f == "delete":
                request = {"request_delete_range": {"key": b64(key)}}
                answer = await gw.call("/v3/kv/txn", versioned_txn(key, int(op.value["version"]), request))
                return _txn_outcome(answer, {"version": 0})
        except GatewayError as exc:
            return failed(exc, read=op.f == "get")
        raise ValueError(f"register workload on etcd: unknown f {op.f!r}")


def _txn_outcome(answer: Mapping[str, Any], ok_value: Any) -> Outcome:
    """ok with ok_value when the txn's compare held (it applied); else a definite fail, as the versioned-kv model
    reads refusals: `no-key` when the failure branch's range found the key absent, `version-mismatch` when it
    existed with another version."""
    if answer.get("succeeded") is True:
        return "ok", ok_value, None
    responses = answer.get("responses") or [{}]
    ranged = responses[0].get("response_range") if isinstance(responses[0], dict) else None
    if not isinstance(ranged, dict):
        return "info", None, "bad-answer: a failed txn without its range"
    return "fail", None, "version-mismatch" if first_kv(ranged) is not None else "no-key"


class EtcdSetClient(EtcdClient):
    """The set workload's add/read: a key per element under the set's prefix (module docstring)."""

    async def _apply(self, gw: Gateway, op: Op) -> Outcome:
        prefix = f"{op.key}/"
        if op.f == "add":
            if type(op.value) is not int:
                raise ValueError(f"add of {op.value!r}: the element must be an integer")
            try:
                await gw.call("/v3/kv/put", {"key": b64(f"{prefix}{op.value}"), "value": b64("1")})
            except GatewayError as exc:
                return failed(exc, read=False)[0], op.value, exc.code
            return "ok", op.value, None
        if op.f == "read":
            try:
                answer = await self._range(gw, {"key": b64(prefix), "range_end": prefix_end(prefix),
                                                 "keys_only": True})
                kvs = answer.get("kvs") or []
                return "ok", sorted(int(unb64(str(kv["key"]))[len(prefix):]) for kv in kvs), None
            except GatewayError as exc:
                return failed(exc, read=True)
            except (KeyError, TypeError, ValueError) as exc:
                return "fail", None, f"bad-answer: {exc}"
        raise ValueError(f"set workload on etcd: unknown f {op.f!r}")


class EtcdListClient(EtcdClient):
    """The list-append workload's append/read: one key holding a JSON array, appended to by a txn on its
    mod_revision (module docstring)."""

    async def _get(self, gw: Gateway, key: str, *, linearizable: bool = False) -> tuple[list[int], int]:
        """(array, mod_revision) of the key ([], 0 when absent); GatewayError when the value is no JSON int array."""
        kv = first_kv(await self._range(gw, {"key": b64(key)}, linearizable=linearizable))
        if kv is None:
            return [], 0
        try:
            array = json.loads(unb64(str(kv.get("value", ""))))
        except ValueError:
            array = None
        if not isinstance(array, list) or not all(type(x) is int for x in array):
            raise GatewayError("bad-value: not a JSON array of integers", definite=True)
        return array, as_int(kv.get("mod_revision"), "mod_revision")

    async def _apply(self, gw: Gateway, op: Op) -> Outcome:
        key = str(op.key)
        if op.f == "read":
            try:
                return "ok", (await self._get(gw, key))[0], None
            except GatewayError as exc:
                return failed(exc, read=True)
        if op.f == "append":
            if type(op.value) is not int:
                raise ValueError(f"append of {op.value!r}: the element must be an integer")
            return await self._append(gw, key, op.value)
        raise ValueError(f"list-append workload on etcd: unknown f {op.f!r}")

    async def _append(self, gw: Gateway, key: str, element: int) -> Outcome:
        """The read-modify-write loop: ok once a txn applied, fail when every round was refused definitely, info
        as soon as a txn's outcome is unknown (never retried then)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        code = "no-attempt"
        for _ in range(MAX_ATTEMPTS):
            left = deadline - loop.time()
            if left <= 0.01:
                break
            try:
                array, revision = await self._get(gw, key, linearizable=True)
            except GatewayError as exc:
                return "fail", element, exc.code  # a read applied nothing, and no txn of this op was sent yet
            body = {"compare": [{"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}],
                    "success": [{"request_put": {"key": b64(key), "value": b64(json.dumps(array + [element]))}}]}
            try:
                answer = await gw.call("/v3/kv/txn", body, timeout=max(0.01, deadline - loop.time()))
            except GatewayError as exc:
                return failed(exc, read=False)[0], element, exc.code
            if answer.get("succeeded") is True:
                return "ok", element, None
            code = "compare-failed"
        return "fail", element, f"gave up: {code}"  # every txn of this op was refused: none applied


def etcd_clients(address: Address) -> dict[str, Callable[[Mapping[str, Any]], Client]]:
    """The etcd DBSpec's `clients` table: workload name -> factory `(options) -> unopened client`. `address`
    gives a node's gateway HOST:PORT (injected by the DB adapter, which owns the ports)."""
    return {"register": partial(EtcdRegisterClient, address=address),
            "set": partial(EtcdSetClient, address=address),
            "list-append": partial(EtcdListClient, address=address)}
