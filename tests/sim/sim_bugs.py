"""Deliberate bugs planted into the simulator's nodes, for the tests that show the checks catch them (imported as
``sim_bugs``)."""

from __future__ import annotations

import pytest

from raftkv.kv import Op, Outcome, Result
from raftkv.sim.messages import ClientReply, ClientRequest, ReplyStatus
from raftkv.sim.node import SimNode


def serve_reads_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every SimNode answer Gets from its local state machine, skipping ReadIndex (other requests as usual),
    so a follower or a deposed leader serves stale reads. Undone by `monkeypatch` at the end of the test."""
    original = SimNode._client_request

    def local_reads(self: SimNode, client: int, req: ClientRequest) -> None:
        if req.command.op is not Op.GET or self.kv is None:
            return original(self, client, req)
        found = self.kv.get(req.command.key)
        result = (Result(request_id=req.rid, outcome=Outcome.NO_KEY) if found is None else
                  Result(request_id=req.rid, outcome=Outcome.OK, value=found[0], version=found[1]))
        self._reply(client, ClientReply(req.rid, ReplyStatus.OK, result))

    monkeypatch.setattr(SimNode, "_client_request", local_reads)
