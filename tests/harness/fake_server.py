"""A tiny KV server for the harness's own tests (not raftkv): newline-delimited JSON over TCP.

Requests: {"op": "add", "key": K, "value": N} -> {"ok": true}; {"op": "read"} -> {"ok": true, "value": total};
{"op": "status"} -> the DB.status shape (this node claims n1 leads); {"op": "metrics"} -> {"text": ...}.
With --lie N it acknowledges every N-th add without applying it (a deliberately broken server for invalid runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--lie", type=int, default=0)
    a = p.parse_args()
    state = {"total": 0, "adds": 0, "requests": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                req = json.loads(line)
                state["requests"] += 1
                op = req.get("op")
                if op == "add":
                    state["adds"] += 1
                    if not (a.lie and state["adds"] % a.lie == 0):
                        state["total"] += int(req["value"])
                    resp: dict = {"ok": True}
                elif op == "read":
                    resp = {"ok": True, "value": state["total"]}
                elif op == "status":
                    resp = {"role": "leader" if a.node == "n1" else "follower", "term": 1, "leader": "n1",
                            "commit": state["adds"], "applied": state["adds"]}
                elif op == "metrics":
                    resp = {"text": f"fake_requests_total {state['requests']}\nfake_total {state['total']}\n"}
                else:
                    resp = {"ok": False, "error": f"unknown op {op!r}"}
                writer.write((json.dumps(resp) + "\n").encode())
                await writer.drain()
        except (ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, a.bind, a.port)
    print(f"fake server {a.node} listening on {a.bind}:{a.port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
