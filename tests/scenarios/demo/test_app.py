"""``voip-sandbox demo``'s body: both servers start on loopback and stop when cancelled."""

from __future__ import annotations

import asyncio
import contextlib

from websockets.asyncio.client import connect

from scenarios.demo.app import serve_demo
from scenarios.demo.web import DemoServer


async def test_the_demo_serves_until_cancelled() -> None:
    started: asyncio.Future[DemoServer] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_demo(
            port=0,
            signaling_port=0,
            audio_phone=None,
            timers={"ring_timeout": 5.0},
            ready=started.set_result,
        )
    )
    server = await asyncio.wait_for(started, 15)
    assert server.url.startswith("http://127.0.0.1:")
    world = server.controller.world
    assert world is not None and world.timers.ring_timeout == 5.0
    async with connect(server.controller.signaling_url, proxy=None):
        pass  # the signaling server listens
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert server.controller.world is None  # the world was closed with it
