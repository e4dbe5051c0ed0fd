"""Torture where real I/O timing matters: on the real clock, with a short heartbeat.

A peer that stops reading while frames keep flowing to it fills its TCP window; from then
on, every write to it waits. That is a matter of socket buffers, not of timers, and a
server stuck on such a write leaves no timer for looptime to jump to: under virtual time
the test would hang on the real clock anyway. So these cases run on the real clock, with a
heartbeat of 0.5 s + 0.5 s, and the same three assertions as the others (the answer to the
attack; the server alive; the bystanders' call untouched).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import token_for
from tests.torture.conftest import Arena, raw_connect, receive_json
from tests.torture.harness import (
    MALLORY,
    Attack,
    RawSocket,
    TortureCase,
    check_names,
    run_case,
)


HEARTBEAT = 0.5
"""Seconds, for both the heartbeat interval and its pong timeout."""

CANDIDATE = "candidate:" + "c" * (250 * 1024)
"""A valid candidate of 250 KiB, under the 256 KiB frame limit: relayed as it is."""

FLOOD = 90
"""Frames of it, 22 MiB in all: far more than loopback buffers hold for a peer that does
not read, and within the rate limiter's burst (100), so none of them is refused."""


def slow_reader(flood: int) -> Attack:
    """mallory registers, then reads nothing more; trudy calls her and sends ``flood``
    (valid) candidates of 250 KiB, which the server relays to mallory.

    Right: the server keeps serving everybody else at once (writes to mallory wait for
    mallory alone), and mallory's heartbeat fails (no pong can come from a peer that reads
    nothing), so her link is dropped within about ``interval + timeout``.
    """

    async def attack(world: Arena, case: TortureCase) -> None:
        await _slow_reader(world, flood)

    return attack


async def _slow_reader(world: Arena, flood_size: int) -> None:
    mark = world.events.mark()
    sock = await RawSocket.open(world)
    flood: asyncio.Task[None] | None = None
    try:
        await sock.handshake()
        await sock.send_text(json.dumps(MALLORY))
        assert (await sock.receive_json())["type"] == "registered"
        # From here on, mallory's socket is never read again.
        async with raw_connect(world.box) as trudy:
            register = {"type": "register", "name": "trudy", "token": token_for("trudy")}
            await trudy.send(json.dumps(register))
            assert (await receive_json(trudy))["type"] == "registered"
            offer = {"type": "offer", "call_id": "t1", "to": "mallory", "kind": "audio"}
            await trudy.send(json.dumps({**offer, "sdp": "v=0"}))
            started = world.box.now()
            frame = json.dumps({"type": "candidate", "call_id": "t1", "candidate": CANDIDATE})

            async def trickle() -> None:
                with contextlib.suppress(ConnectionClosed):
                    for _ in range(flood_size):
                        await trudy.send(frame)

            flood = asyncio.get_running_loop().create_task(trickle())
            await asyncio.sleep(0.2)  # by now mallory's window is full

            # Everybody else is served at once while mallory's link is still up.
            await world.assert_server_alive()

            deadline = 2 * HEARTBEAT + 0.5
            try:
                lost = await world.events.wait(
                    since=mark, event="connection", who="mallory", within=deadline
                )
            except TimeoutError:
                pytest.fail(f"mallory reads nothing, yet her link was not dropped in {deadline} s")
            assert lost["t"] - started <= deadline
            assert not world.box.switchboard.is_online("mallory")
    finally:
        if flood is not None:
            flood.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flood
        sock.close()


CASES = check_names(
    [
        TortureCase(
            "slow-reader-flooded-with-relayed-candidates",
            attack=slow_reader(FLOOD),
            about="a half-open link with traffic flowing to it",
        ),
        TortureCase(
            "slow-reader-with-a-call-but-no-traffic",
            attack=slow_reader(0),
            about="the same, with nothing flowing to it but pings: the heartbeat drops it",
        ),
    ]
)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_hostile_peer_on_the_real_clock(arena: Any, case: TortureCase) -> None:
    async with arena(
        linger=1.0, heartbeat_interval=HEARTBEAT, heartbeat_timeout=HEARTBEAT
    ) as world:
        await run_case(world, case)
