"""The heartbeat both ends run: a ping every interval, and a late pong means a dead link.

websockets has a keepalive of its own, but on a timeout it starts a closing handshake and
waits ``close_timeout`` for an answer that a dead link never gives, and a client and a
server wait differently. The sandbox needs both ends of a dead link to notice it at the
same moment, ``heartbeat_timeout`` after the unanswered ping, because each end's call
log measures a dropped call up to that moment. So both drivers run this instead: on a
late pong the socket is aborted on the spot, which ends the connection with no close
frame, exactly as a dead link would.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed


__all__ = ["keep_alive"]


async def keep_alive(
    connection: Connection, *, interval: float, pong_timeout: float, logger: Any, who: str
) -> None:
    """Pings ``connection`` every ``interval`` seconds until it closes.

    Args:
        connection: The websocket connection.
        interval: Seconds between pings.
        pong_timeout: Seconds a pong may take; later, the connection is aborted.
        logger: Where the ``heartbeat`` event goes when a pong is late.
        who: Whose end this is, for the log.
    """
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.sleep(interval)
            try:
                # The ping itself is inside the deadline: on a socket the peer no longer
                # reads, sending it blocks, and that is as dead as a missing pong.
                async with asyncio.timeout(pong_timeout):
                    pong = await connection.ping()
                    await pong
            except TimeoutError:
                logger.info("heartbeat", who=who, state="timed_out")
                connection.transport.abort()
                return
