"""raftkv's clients for the DB-neutral collection workloads `set` and `list-append` (harness.registry.client_for).

Representation: each collection (a set or a list) is one raftkv key whose value is a JSON array of integers,
in the order the elements were added. raftkv has versioned puts and no append or scan command, so an `add` or
`append` is an optimistic read-modify-write through the versioned put's compare-and-set:
1. read the key (linearizable; an absent key is the empty collection, version 0);
2. put the array with the element appended, expecting the version read;
3. a `version-mismatch` (definite: someone else wrote in between, nothing of ours applied) starts again at 1,
   at most MAX_ATTEMPTS times and within the op's deadline.
Because step 2 is a compare-and-set on the version read in step 1, every applied write extends exactly the array
that was current: an add applies atomically or not at all, and a write that applies late (a `maybe`) applies only
if nothing was written since. So the checkers see what raftkv's versioned put guarantees, no more (a put that
ignores its version, failpoint `cas-ignores-version`, loses earlier elements: a `lost` anomaly).

Outcomes (Jepsen's rules, as the register's node mode, workloads.register.completion):
- each worker is bound to one node (NodeClient): no redirect followed, no retry elsewhere; a follower answers
  reads itself and redirects writes (`not-leader`: `fail`);
- add/append: `ok` once the put is acknowledged; `fail` when the read or the put failed definitely (raftkv.api's
  table) on every attempt made (nothing of this op was applied); `info` as soon as a put's outcome is uncertain
  (`maybe`, timeout, lost connection, an undocumented answer): the op stops there, never retried;
- read: `ok` with the array (`[]` for an absent key); `fail` otherwise (a read changes nothing). The read honours
  `--read-consistency` (`stale` reads must then be caught by the checkers); the read of a read-modify-write is
  always linearizable (a stale one would only cost a retry: the put's compare-and-set refuses it).
A value that is not a JSON array of integers was not written by this client: the op fails with `bad-value`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from harness.protocols import Client, Op, TestContext
from raftkv.client import NodeClient, Reply

MAX_ATTEMPTS = 16  # read-modify-write rounds of one op that lost the compare-and-set
DEFAULT_OP_TIMEOUT_S = 5.0
CONSISTENCIES = ("linearizable", "lease", "stale")
Address = Callable[[TestContext, str], str]


class BadValue(ValueError):
    """The key holds something other than a JSON array of integers."""


def decode(reply: Reply) -> tuple[list[int], int]:
    """(array, version) of an ok or no-key get; BadValue when the value is not a JSON array of integers."""
    if reply.code == "no-key" and reply.definite:
        return [], 0
    value, version = reply.body.get("value"), reply.body.get("version")
    if not isinstance(value, str) or type(version) is not int:
        raise BadValue(f"get answered {reply.body!r}")
    try:
        array = json.loads(value)
    except ValueError as exc:
        raise BadValue(f"not JSON: {exc}") from None
    if not isinstance(array, list) or not all(type(x) is int for x in array):
        raise BadValue(f"not a JSON array of integers: {value[:80]!r}")
    return array, version


class RaftkvArrayClient:
    """Speaks the `set` (add, read) and `list-append` (append, read) vocabularies on raftkv (module docstring).
    `open` returns a fresh client bound to the worker's node; the instance it is called on carries the options."""

    def __init__(self, options: Mapping[str, Any], *, write: str, address: Address,
                 node: str | None = None, client: NodeClient | None = None) -> None:
        op_timeout = float(options.get("op_timeout") or DEFAULT_OP_TIMEOUT_S)
        # A little under the engine's deadline, so the op ends with raftkv's own answer (as register.client_timeout).
        self.timeout = max(0.05, op_timeout - min(0.5, op_timeout * 0.2))
        self.consistency = str(options.get("read_consistency") or "linearizable")
        if self.consistency not in CONSISTENCIES:
            raise ValueError(f"--read-consistency must be one of {CONSISTENCIES}, got {self.consistency!r}")
        self.options, self.write, self.address, self.node, self._client = options, write, address, node, client

    async def open(self, test: TestContext, node: str) -> RaftkvArrayClient:
        client = NodeClient(self.address(test, node), timeout=self.timeout)
        return RaftkvArrayClient(self.options, write=self.write, address=self.address, node=node, client=client)

    async def close(self, test: TestContext) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def invoke(self, test: TestContext, op: Op) -> Op:
        if self._client is None:
            raise RuntimeError("RaftkvArrayClient.invoke before open")
        if op.f == "read":
            type_, value, error = await self._read(str(op.key))
        elif op.f == self.write:
            if type(op.value) is not int:
                raise ValueError(f"{op.f} of {op.value!r}: the element must be an integer")
            type_, value, error = await self._append(str(op.key), op.value)
        else:
            raise ValueError(f"{self.write} workload on raftkv: unknown f {op.f!r}")
        return Op(process=op.process, type=type_, f=op.f, key=op.key, value=value,  # type: ignore[arg-type]
                  node=self.node, error=error)

    async def _read(self, key: str) -> tuple[str, Any, str | None]:
        assert self._client is not None
        reply = await self._client.get(key, self.consistency, timeout=self.timeout)
        if not (reply.ok or reply.code == "no-key"):
            return "fail", None, reply.code
        try:
            return "ok", decode(reply)[0], None
        except BadValue as exc:
            return "fail", None, f"bad-value: {exc}"

    async def _append(self, key: str, element: int) -> tuple[str, Any, str | None]:
        """The read-modify-write loop (module docstring); (type, value, error) of the op's completion."""
        assert self._client is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        code = "no-attempt"
        for _ in range(MAX_ATTEMPTS):
            left = deadline - loop.time()
            if left <= 0.01:
                break
            got = await self._client.get(key, "linearizable", timeout=left)
            if not (got.ok or got.code == "no-key"):
                return "fail", element, got.code  # a read changed nothing; no put of this op was applied
            try:
                array, version = decode(got)
            except BadValue as exc:
                return "fail", element, f"bad-value: {exc}"
            left = deadline - loop.time()
            if left <= 0.01:
                break
            put = await self._client.put(key, json.dumps(array + [element], separators=(",", ":")), version,
                                         timeout=left)
            if put.ok:
                return "ok", element, None
            if not put.definite:
                return "info", element, put.code
            if put.code != "version-mismatch":
                return "fail", element, put.code
            code = put.code
        return "fail", element, f"gave up: {code}"  # every put of this op was refused: none applied


def array_clients(address: Address) -> dict[str, Callable[[Mapping[str, Any]], Client]]:
    """The raftkv DBSpec's `clients` table (harness.registry.client_for): one factory per collection workload. `address`
    gives a node's client HOST:PORT (injected by the adapter, which owns the ports)."""
    return {"set": partial(RaftkvArrayClient, write="add", address=address),
            "list-append": partial(RaftkvArrayClient, write="append", address=address)}
