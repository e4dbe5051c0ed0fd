"""Shared async fixtures: a real signaling server and real phone clients on 127.0.0.1.

A :class:`Sandbox` is built *inside* the test (``async with sandbox() as sb:``), so the
server, the phones and their timers all start and stop in the test's own loop.

``@pytest.mark.looptime`` runs a test in a virtual-time loop (looptime's, started at 0), as
the scenario runner does: safe because every party runs in that one loop (see
shared/reference/tools.md §5). It is provided here through pytest-asyncio's loop-factory
hook rather than by looptime's own pytest plugin, which leaves an unclosed event loop
behind after every synchronous test.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import looptime
import pytest
import structlog

from peers.client import PhoneClient
from peers.link import Link
from peers.phone import Phone
from scenarios.observers import EventStream
from scenarios.profiles import load_profile
from signaling.server import DEFAULT_HOST, SignalingServer
from signaling.switchboard import Switchboard, SwitchboardLimits, SwitchboardSettings


Event = dict[str, Any]


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Virtual time for tests marked ``looptime``; a plain loop for the others."""
    if item.get_closest_marker("looptime") is not None:
        return {"virtual_time": lambda: looptime.new_event_loop(start=0.0)}
    return {"real_time": asyncio.new_event_loop}


def token_for(name: str) -> str:
    """The registration token of a test phone: fixed, and long enough for the schema."""
    return f"{name}-token-0123456789abcdef"


class Recorder(EventStream):
    """The run's event stream (stamped with the sandbox clock), plus lookups for tests.

    Args:
        clock: Sandbox seconds, stamped on each event as ``t``.
    """

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        event_dict["level"] = method_name
        super().__call__(logger, method_name, event_dict)
        raise structlog.DropEvent

    def mark(self) -> int:
        """A position in the stream, for :meth:`wait` and :meth:`select`."""
        return len(self.events)

    def select(self, *, since: int = 0, **fields: Any) -> list[Event]:
        """The events from ``since`` on whose fields equal ``fields``."""
        return [e for e in self.events[since:] if _matches(e, fields)]

    async def wait(
        self, *, since: int | None = None, within: float = 120.0, **fields: Any
    ) -> Event:
        """The first event matching ``fields``: from ``since`` on if given, else from now on.

        Raises:
            TimeoutError: Nothing matched within ``within`` (virtual) seconds.
        """
        if since is not None:
            found = self.select(since=since, **fields)
            if found:
                return found[0]
        future = self.wait_for(lambda e: _matches(e, fields))
        try:
            async with asyncio.timeout(within):
                return await future
        finally:
            future.cancel()


def _matches(event: Event, fields: dict[str, Any]) -> bool:
    return all(key in event and event[key] == value for key, value in fields.items())


class Sandbox:
    """A signaling server and phone clients, all in the running loop, all on 127.0.0.1.

    Args:
        dial_timeout, ring_timeout, reconnect_grace: The switchboard's timers.
        heartbeat_interval, heartbeat_timeout: Both ends' heartbeat.
        limits: The server's limits (the defaults if not given).
    """

    def __init__(
        self,
        *,
        dial_timeout: float = 30.0,
        ring_timeout: float = 45.0,
        reconnect_grace: float = 10.0,
        heartbeat_interval: float = 5.0,
        heartbeat_timeout: float = 5.0,
        limits: SwitchboardLimits | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.origin = self.loop.time()
        self.reconnect_grace = reconnect_grace
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.events = Recorder(self.now)
        self.log = structlog.wrap_logger(
            structlog.ReturnLogger(),
            processors=[self.events],
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
            cache_logger_on_first_use=False,
        )
        self.switchboard = Switchboard(
            SwitchboardSettings(
                dial_timeout=dial_timeout,
                ring_timeout=ring_timeout,
                reconnect_grace=reconnect_grace,
            ),
            limits=limits,
        )
        self.server = self.new_server(self.switchboard, port=0)
        self.clients: dict[str, PhoneClient] = {}
        self.closed = False

    def now(self) -> float:
        """Sandbox seconds: virtual time since the sandbox was built."""
        return round(self.loop.time() - self.origin, 6)

    def new_server(self, switchboard: Switchboard, *, port: int) -> SignalingServer:
        """A server on 127.0.0.1 with the sandbox's heartbeat, clock and logger."""
        return SignalingServer(
            switchboard,
            host=DEFAULT_HOST,
            port=port,
            heartbeat_interval=self.heartbeat_interval,
            heartbeat_timeout=self.heartbeat_timeout,
            clock=self.now,
            logger=self.log,
        )

    async def __aenter__(self) -> Sandbox:
        await self.server.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stops every phone (and cuts its radio), then the server."""
        for client in self.clients.values():
            await client.stop()
            client.link.cut()  # black-holed pipes are not closed by the phone's goodbye
        await self.server.close()
        self.closed = True

    def phone(
        self,
        name: str,
        *,
        signal: bool = True,
        power: bool = True,
        blocks: tuple[str, ...] = (),
    ) -> PhoneClient:
        """Provisions ``name`` on the server and starts its phone client."""
        token = token_for(name)
        self.server.provision(name, token, blocks)
        ids = itertools.count(1)
        phone = Phone(
            name,
            token,
            reconnect_grace=self.reconnect_grace,
            new_call_id=lambda: f"{name}-{next(ids)}",
            blocks=blocks,
        )
        phone.powered = power
        link = Link(DEFAULT_HOST, self.server.port, phone=name, logger=self.log, signal=signal)
        client = PhoneClient(
            phone,
            link,
            heartbeat_interval=self.heartbeat_interval,
            heartbeat_timeout=self.heartbeat_timeout,
            clock=self.now,
            logger=self.log,
        )
        self.clients[name] = client
        client.start()
        return client

    async def phones(self, *names: str) -> list[PhoneClient]:
        """Starts phones that can connect, and returns once every one is registered."""
        clients = [self.phone(name) for name in names]
        async with asyncio.timeout(10):
            await asyncio.gather(*(c.wait_registered() for c in clients))
        return clients

    async def registered(self, name: str, *, since: int, within: float = 10.0) -> Event:
        """Waits until the server sent ``name`` a ``registered`` (after ``since``) and the phone
        took it; returns the frame event."""
        frame = await self.events.wait(
            since=since, event="frame", receiver=name, type="registered", within=within
        )
        async with asyncio.timeout(within):
            await self.clients[name].wait_registered()
        return frame

    async def crash_and_restart(self) -> None:
        """The server process dies and a new one starts on the same port, as the runner does."""
        self.server = await self.server.restart(crash=True)
        self.switchboard = self.server.switchboard

    def connection_of(self, name: str) -> int:
        """The server's id of the connection ``name`` is registered on now."""
        opened = self.events.select(event="connection", state="opened")
        (conn,) = [e["conn"] for e in opened if self.switchboard.name_of(e["conn"]) == name]
        return int(conn)

    def call_log(self, name: str) -> list[tuple[str, str, bool, str | None, float | None]]:
        """``name``'s call log as ``(direction, peer, reached, end_cause, duration)``."""
        return [
            (
                s.direction,
                s.peer,
                s.reached,
                None if s.end_cause is None else str(s.end_cause),
                s.duration,
            )
            for s in self.clients[name].phone.call_log()
        ]

    def labels(self, name: str, profile: str = "whatsapp") -> list[str | None]:
        """``name``'s call log as the labels a profile gives it, oldest first."""
        chosen = load_profile(profile)
        return [chosen.label(s) for s in self.clients[name].phone.call_log()]

    def frames(self, name: str, *, since: int = 0, origin: float = 0.0) -> list[tuple[float, str]]:
        """What ``name`` sent and received, as the server saw it: ``(t - origin, arrow type)``.

        ``"> offer"`` is a frame ``name`` sent; ``"< ringing"`` one it was sent.
        """
        out = []
        for e in self.events.select(since=since, event="frame"):
            if e["sender"] == name:
                out.append((round(e["t"] - origin, 6), f"> {e['type']}"))
            elif e["receiver"] == name:
                out.append((round(e["t"] - origin, 6), f"< {e['type']}"))
        return out


@pytest.fixture
def sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Builds sandboxes, to be entered in the test: ``async with sandbox() as sb:``.

    Every sandbox built must have been closed by the end of the test.
    """
    built: list[Sandbox] = []

    def build(**timers: float) -> Sandbox:
        box = Sandbox(**timers)
        built.append(box)
        return box

    yield build
    assert all(box.closed for box in built), "a sandbox was built but never closed"
