"""The heartbeat: ``keep_alive`` alone over a real websocket, and the server's use of it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.protocol import State

from signaling.heartbeat import keep_alive


pytestmark = pytest.mark.looptime

INTERVAL = 4.0
TIMEOUT = 3.0


class Events:
    """A structlog logger that keeps its events, stamped with the loop's time."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()

        def record(logger: Any, method: str, event: Any) -> Any:
            self.items.append({**event, "t": loop.time()})
            raise structlog.DropEvent

        self.log = structlog.wrap_logger(
            structlog.ReturnLogger(),
            processors=[record],
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
            cache_logger_on_first_use=False,
        )


@asynccontextmanager
async def websocket_pair() -> AsyncIterator[tuple[ClientConnection, ServerConnection]]:
    """A plain websockets server on 127.0.0.1 and a client connected to it, no keepalives."""
    accepted: asyncio.Future[ServerConnection] = asyncio.get_running_loop().create_future()

    async def handler(connection: ServerConnection) -> None:
        accepted.set_result(connection)
        await connection.wait_closed()

    async with (
        serve(handler, "127.0.0.1", 0, ping_interval=None) as server,
        connect(
            f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", proxy=None, ping_interval=None
        ) as client,
    ):
        async with asyncio.timeout(1):
            server_side = await accepted
        yield client, server_side


async def test_pongs_in_time_keep_the_connection_and_log_nothing():
    events = Events()
    async with websocket_pair() as (client, _server):
        heartbeat = asyncio.create_task(
            keep_alive(client, interval=INTERVAL, pong_timeout=TIMEOUT, logger=events.log, who="a")
        )
        await asyncio.sleep(10 * INTERVAL)
        assert not heartbeat.done()
        assert client.state is State.OPEN
        await client.close()
        # The loop notices the closed connection at its next ping, and ends quietly.
        async with asyncio.timeout(INTERVAL + 0.001):
            await heartbeat
    assert events.items == []


async def test_late_pong_aborts_the_transport_and_logs_a_timeout():
    events = Events()
    async with websocket_pair() as (client, server):
        loop = asyncio.get_running_loop()
        start = loop.time()
        heartbeat = asyncio.create_task(
            keep_alive(client, interval=INTERVAL, pong_timeout=TIMEOUT, logger=events.log, who="a")
        )
        await asyncio.sleep(INTERVAL * 1.5)  # one good cycle: the ping at INTERVAL got its pong
        server.transport.pause_reading()  # the next ping is never read: its pong never comes

        async with asyncio.timeout(INTERVAL + TIMEOUT):
            await heartbeat
        assert events.items == [
            {
                "event": "heartbeat",
                "who": "a",
                "state": "timed_out",
                "t": start + 2 * INTERVAL + TIMEOUT,
            }
        ]
        assert loop.time() == start + 2 * INTERVAL + TIMEOUT
        # Aborted on the spot: no closing handshake, either way.
        async with asyncio.timeout(0.001):
            await client.wait_closed()
        assert client.close_code == 1006
        assert client.close_exc.sent is None
        assert client.close_exc.rcvd is None
        server.transport.resume_reading()


async def test_keep_alive_on_a_closed_connection_returns_at_once():
    events = Events()
    async with websocket_pair() as (client, _server):
        await client.close()
        async with asyncio.timeout(INTERVAL + 0.001):
            await keep_alive(
                client, interval=INTERVAL, pong_timeout=TIMEOUT, logger=events.log, who="a"
            )
    assert events.items == []


@pytest.mark.parametrize(
    ("lost_at", "last_pong"),
    [
        pytest.param(1.0, 0.0, id="before-the-first-ping"),
        pytest.param(6.0, 4.0, id="after-one-ping"),
        pytest.param(13.5, 12.0, id="after-three-pings"),
    ],
)
async def test_server_closes_a_black_holed_link_interval_plus_timeout_after_the_last_pong(
    sandbox, lost_at, last_pong
):
    async with sandbox(heartbeat_interval=INTERVAL, heartbeat_timeout=TIMEOUT) as sb:
        alice, bob = await sb.phones("alice", "bob")
        opened = sb.events.select(event="connection", state="opened")
        assert {e["t"] for e in opened} == {0.0}  # every ping cycle starts at 0
        await asyncio.sleep(lost_at - sb.now())
        conn = sb.connection_of("bob")
        start = sb.events.mark()
        bob.lose_signal()

        lost = await sb.events.wait(since=start, event="connection", who="bob")
        assert lost["state"] == "lost"
        assert lost["code"] == 1006
        assert lost["t"] == last_pong + INTERVAL + TIMEOUT
        # Bob's phone found out by its own heartbeat at the same moment.
        timed_out = sb.events.select(since=start, event="heartbeat", state="timed_out")
        assert sorted((e["who"], e["t"]) for e in timed_out) == [
            ("bob", last_pong + INTERVAL + TIMEOUT),
            (f"server/conn-{conn}", last_pong + INTERVAL + TIMEOUT),
        ]
        assert not bob.phone.registered
        assert not sb.switchboard.is_online("bob")
        # Alice's link, with the same heartbeat, is fine.
        assert sb.switchboard.is_online("alice")
        assert alice.phone.registered
