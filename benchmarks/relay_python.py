#!/usr/bin/env python3
"""The signaling relay one would write in an afternoon with Python and websockets.

The baseline of ``benchmarks/throughput.py``: just enough of ``docs/protocol.md`` for the
same load generator to drive it (register, offer -> incoming, ringing, answer, decline,
busy, hangup -> call_ended, candidate), with the standard library's ``json``. It keeps no
state but who is connected and which calls are in progress: no tokens, no blocks, no
timers, no missed-call notices, no durability, no limits, no logs.

    python benchmarks/relay_python.py [PORT]     # prints ws://127.0.0.1:PORT, Ctrl-C stops
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


phones: dict[str, ServerConnection] = {}
calls: dict[str, dict[str, Any]] = {}


async def send(name: str, message: dict[str, Any]) -> None:
    ws = phones.get(name)
    if ws is not None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(message))


async def handle(ws: ServerConnection) -> None:
    me = None
    try:
        async for frame in ws:
            m = json.loads(frame)
            kind, call_id = m["type"], m.get("call_id")
            call = calls.get(call_id) if call_id else None
            if kind == "register":
                me = m["name"]
                phones[me] = ws
                await ws.send(
                    json.dumps({"type": "registered", "name": me, "blocks": [], "calls": []})
                )
            elif kind == "offer":
                calls[call_id] = {"caller": me, "callee": m["to"], "answered": False}
                placed_at = asyncio.get_running_loop().time()
                await send(
                    m["to"],
                    {
                        "type": "incoming",
                        "call_id": call_id,
                        "from": me,
                        "kind": m["kind"],
                        "sdp": m["sdp"],
                        "placed_at": placed_at,
                    },
                )
            elif call is None:
                continue
            elif kind in ("ringing", "answer"):
                call["answered"] = call["answered"] or kind == "answer"
                await send(call["caller"], m)
            elif kind == "candidate":
                await send(call["callee"] if me == call["caller"] else call["caller"], m)
            elif kind in ("decline", "busy", "hangup"):
                del calls[call_id]
                if me == call["callee"]:
                    other = call["caller"]
                    reason = (
                        "busy" if kind == "busy" else "hung_up" if call["answered"] else "declined"
                    )
                else:
                    other = call["callee"]
                    reason = "hung_up" if call["answered"] else m.get("reason") or "canceled"
                await send(other, {"type": "call_ended", "call_id": call_id, "reason": reason})
    except ConnectionClosed:
        pass
    finally:
        if me is not None and phones.get(me) is ws:
            del phones[me]


async def main(port: int) -> None:
    async with serve(handle, "127.0.0.1", port) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(f"bare Python websockets relay listening on ws://127.0.0.1:{bound}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
