"""The signaling server: websockets I/O around a :class:`~signaling.switchboard.Switchboard`.

This module moves bytes and decides nothing (DESIGN.md rule 4). For each connection it
reads frames, parses them at the edge, feeds the switchboard, then writes what the
switchboard wants written, closes what it wants closed, reports the transitions it
recorded, and re-arms the one timer the switchboard asks for. Heartbeats are
:func:`signaling.heartbeat.keep_alive` (``heartbeat_interval``, ``heartbeat_timeout``): a
link whose pong is late is aborted on the spot, which the switchboard hears about as a
disconnect.

Events go to a structlog logger: ``frame`` (every frame in and out), ``transition``,
``connection`` (opened, closed cleanly or not) and ``error`` (refused frames).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Iterable
from typing import Any, Final, Self

import structlog
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from .calls import end_name
from .heartbeat import keep_alive
from .messages import (
    InvalidMessage,
    Register,
    ServerMessage,
    message_type,
    parse_phone_message,
    serialize_message,
)
from .store import MemoryStore, Store
from .switchboard import ConnectionId, Switchboard


__all__ = ["DEFAULT_HOST", "DEFAULT_MAX_FRAME_SIZE", "DEFAULT_OPEN_TIMEOUT", "SignalingServer"]

DEFAULT_HOST: Final = "127.0.0.1"
"""Loopback only: nothing this sandbox serves is reachable from another machine."""

DEFAULT_MAX_FRAME_SIZE: Final = 256 * 1024
"""Bytes: a browser's SDP is a few kilobytes; anything near this is not signaling."""

DEFAULT_OPEN_TIMEOUT: Final = 10.0
"""Seconds a client may take over the websocket opening handshake."""

MAX_QUEUED_FRAMES: Final = 1024
"""Frames waiting for one slow connection before it is cut off as not reading."""


class SignalingServer:
    """Serves a switchboard over websockets.

    Args:
        switchboard: The logic to drive.
        host: The address to bind; loopback by default.
        port: The port; 0 picks a free one (read it back from :attr:`port`).
        heartbeat_interval: Seconds between pings on each connection.
        heartbeat_timeout: Seconds a pong may take before the link counts as dead.
        clock: Seconds on the scenario clock; defaults to the event loop's clock.
        logger: Where events go.
        store: Where the switchboard's changes are kept (in memory by default); they are
            committed before any frame that depends on them is sent.
        max_frame_size: The largest frame accepted, in bytes; a larger one closes the
            connection with code 1009.
        open_timeout: Seconds a websocket opening handshake may take.
    """

    def __init__(
        self,
        switchboard: Switchboard,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        heartbeat_interval: float = 5.0,
        heartbeat_timeout: float = 5.0,
        clock: Callable[[], float] | None = None,
        logger: Any = None,
        store: Store | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        open_timeout: float = DEFAULT_OPEN_TIMEOUT,
    ) -> None:
        self.switchboard = switchboard
        self.store: Store = store if store is not None else MemoryStore()
        self.max_frame_size = max_frame_size
        self.open_timeout = open_timeout
        self.host = host
        self._port = port
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self._clock = clock
        self.log = logger if logger is not None else structlog.get_logger("voip_sandbox.server")
        self._server: Server | None = None
        self._connections: dict[ConnectionId, ServerConnection] = {}
        self._ids = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._outboxes: dict[ConnectionId, asyncio.Queue[str | tuple[int, str]]] = {}
        self._crashed = False
        self._closing = False
        self._flush_due = False
        """A flush is scheduled for the next loop iteration (see :meth:`_flush`)."""

    # --- Life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Binds and starts serving."""
        self._server = await serve(
            self._handle,
            self.host,
            self._port,
            ping_interval=None,  # the heartbeat is ours: see signaling.heartbeat
            # Signaling frames are small and latency matters more than bytes.
            compression=None,
            max_size=self.max_frame_size,
            open_timeout=self.open_timeout,
        )
        self.log.info("server_started", url=self.url)
        # Keeps what recovery or provisioning changed, and arms the first timer.
        self._flush()

    async def close(self) -> None:
        """Stops serving and closes every connection cleanly."""
        # From here on this server decides nothing: its closing handlers still report
        # their disconnects, but it must not arm a timer that would wake the switchboard
        # (which a restarted server goes on using) and send into outboxes that are gone.
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        # The last handlers' disconnects are kept now, not after this returns.
        self._flush_now()

    def provision(self, name: str, token: str, blocks: Iterable[str] = ()) -> None:
        """Creates an account before its phone ever connects, kept in the store at once.

        A server that crashes before the phone's first frame still knows the name when it
        restarts (calls to it are then placed, not refused as ``unknown_phone``).
        """
        self.switchboard.provision(name, token, blocks)
        self._flush()

    def crash(self) -> None:
        """Dies on the spot, as a killed process would.

        Every socket is reset with no close frame, and the switchboard hears nothing more:
        its state is gone with the process. Build a new server to restart.
        """
        # What was decided before the crash was committed at once before group commit
        # existed; keep it so: commit and queue it (the abort below loses the frames, so
        # none may be written directly meanwhile).
        self._flush_now(write_directly=False)
        self._crashed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for websocket in self._connections.values():
            websocket.transport.abort()
        if self._server is not None:
            self._server.close(close_connections=False)
            self._server = None

    async def restart(self, *, crash: bool) -> SignalingServer:
        """Stops this server and starts another on the same port, store and settings.

        A clean restart closes every connection with a close frame (phones reconnect by
        themselves) and the new server carries on with the same switchboard, so calls
        resume within their reconnect grace. A crash (:meth:`crash`) loses everything but
        what the store kept: the new switchboard is rebuilt from it and ends the calls
        that were in progress (``Switchboard.recover``).

        Returns:
            The new server, started.
        """
        port = self.port
        switchboard = self.switchboard
        if crash:
            self.crash()
            switchboard = Switchboard(
                switchboard.settings, limits=switchboard.limits, durable=self.store.load()
            )
            switchboard.recover(self.now())
        else:
            await self.close()
        self.log.info("server", state="crashed" if crash else "restarting")
        successor = SignalingServer(
            switchboard,
            host=self.host,
            port=port,
            heartbeat_interval=self.heartbeat_interval,
            heartbeat_timeout=self.heartbeat_timeout,
            clock=self._clock,
            logger=self.log,
            store=self.store,
            max_frame_size=self.max_frame_size,
            open_timeout=self.open_timeout,
        )
        await successor.start()
        return successor

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None:
            return self._port
        sockname = next(iter(self._server.sockets)).getsockname()
        return int(sockname[1])

    @property
    def url(self) -> str:
        """The websocket URL phones connect to."""
        return f"ws://{self.host}:{self.port}"

    def now(self) -> float:
        """The time on the scenario clock."""
        if self._clock is not None:
            return self._clock()
        return asyncio.get_running_loop().time()

    # --- One connection ----------------------------------------------------------------------

    async def _handle(self, websocket: ServerConnection) -> None:
        conn = ConnectionId(next(self._ids))
        self._connections[conn] = websocket
        outbox: asyncio.Queue[str | tuple[int, str]] = asyncio.Queue()
        self._outboxes[conn] = outbox
        loop = asyncio.get_running_loop()
        writer = loop.create_task(self._write(websocket, outbox), name=f"writer-{conn}")
        self.log.info("connection", conn=conn, state="opened")
        self.switchboard.connect(conn, self.now())
        self._flush()  # arms the registration timer
        who = f"conn-{conn}"  # until it registers; kept after it is replaced, for the log
        heartbeat = loop.create_task(
            keep_alive(
                websocket,
                interval=self.heartbeat_interval,
                pong_timeout=self.heartbeat_timeout,
                logger=self.log,
                who=f"server/conn-{conn}",
            )
        )
        try:
            async for frame in websocket:
                if self._crashed:
                    break
                try:
                    message = parse_phone_message(frame)
                except InvalidMessage as exc:
                    self.log.info("error", conn=conn, code=str(exc.code), message=exc.message)
                    self.switchboard.receive_invalid(conn, exc, self.now())
                else:
                    # Before it registers, a connection is known by the end it claims.
                    sender = (
                        end_name(message.name, message.device)
                        if isinstance(message, Register)
                        else self._name(conn)
                    )
                    self.log.info(
                        "frame",
                        sender=sender,
                        receiver="server",
                        type=message_type(message),
                        call_id=getattr(message, "call_id", None),
                    )
                    self.switchboard.receive(conn, message, self.now())
                self._flush()
                who = self.switchboard.name_of(conn) or who
                if self.switchboard.is_closing(conn):
                    # Read no more from it; let its writer deliver what it is owed, the
                    # close frame last, for as long as a close handshake may take.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(writer), self.heartbeat_timeout)
                    break
        except ConnectionClosed:
            pass  # an abrupt close or a heartbeat timeout: the same for the switchboard
        finally:
            heartbeat.cancel()
            writer.cancel()
            del self._connections[conn]
            del self._outboxes[conn]
            # A crashed process does not notice its sockets closing.
            if not self._crashed:
                self._lost(conn, websocket, who)

    def _lost(self, conn: ConnectionId, websocket: ServerConnection, who: str) -> None:
        self.switchboard.disconnect(conn, self.now())
        # Clean means a closing handshake took place (whatever the code, 4001 included);
        # lost means the socket just ended: reset, aborted by the heartbeat, or crashed.
        protocol = websocket.protocol
        clean = protocol.close_rcvd is not None and protocol.close_sent is not None
        self.log.info(
            "connection",
            conn=conn,
            who=who,
            state="closed" if clean else "lost",
            code=websocket.close_code,
        )
        self._flush()

    # --- Driving the switchboard ---------------------------------------------------------------

    def _flush(self) -> None:
        """Carries out everything the switchboard decided, at the end of this loop iteration.

        Group commit: every input handled in one iteration of the event loop (under load,
        frames from many connections) is kept by one store transaction instead of one
        each, and only then are their frames queued. The write-ahead promise is the same:
        nothing is sent before what it depends on is committed.
        """
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush_now)

    def _flush_now(self, *, write_directly: bool = True) -> None:
        """Carries out everything the switchboard decided, in order, without waiting.

        A frame is written at once when its connection keeps up; otherwise it goes into
        the connection's own outbox, written by its own task: a peer that reads slowly
        (or not at all) delays nobody but itself, and one whose outbox overflows is cut
        off. ``write_directly=False`` queues every frame.
        """
        self._flush_due = False
        if self._crashed:
            return  # a dead process keeps nothing more and sends nothing
        sb = self.switchboard
        # Write-ahead: what a phone is about to be told is on disk before it is sent.
        self.store.apply(sb.changes_to_keep())
        for transition in sb.transitions_received():
            self.log.info("transition", **transition.as_event())
        for record in sb.records_received():
            self.log.info("cdr", **record.as_event())
        for conn, message in sb.messages_to_send():
            self._queue(conn, message, write_directly=write_directly)
        for conn, code, reason in sb.connections_to_close():
            outbox = self._outboxes.get(conn)
            if outbox is not None:
                outbox.put_nowait((code, reason))  # after the frames already queued
        self._arm_timer()

    def _queue(self, conn: ConnectionId, message: ServerMessage, *, write_directly: bool) -> None:
        outbox = self._outboxes.get(conn)
        if outbox is None:
            return  # gone meanwhile; the switchboard hears of it from that handler
        self.log.info(
            "frame",
            sender="server",
            receiver=self._name(conn),
            type=message_type(message),
            call_id=getattr(message, "call_id", None),
        )
        websocket = self._connections[conn]
        if write_directly and outbox.empty() and not websocket.transport.get_write_buffer_size():
            # Nothing is queued ahead of this frame and the socket keeps up: write it now
            # (websockets' broadcast is its synchronous send) instead of waking the
            # connection's writer task for it. Under load, the task switch per frame was
            # most of what the writers cost. A connection that is closing is skipped, as
            # the writer's send would have failed on it.
            broadcast((websocket,), serialize_message(message))
            return
        if outbox.qsize() >= MAX_QUEUED_FRAMES:
            # It has stopped reading: what it is owed will never arrive in time anyway.
            self.log.info("connection", conn=conn, state="too_slow", queued=outbox.qsize())
            websocket.transport.abort()
            return
        outbox.put_nowait(serialize_message(message))

    @staticmethod
    async def _write(
        websocket: ServerConnection, outbox: asyncio.Queue[str | tuple[int, str]]
    ) -> None:
        """Writes one connection's frames in order; a queued close ends it."""
        # If it closed meanwhile, its handler reports the disconnect to the switchboard.
        with contextlib.suppress(ConnectionClosed):
            while True:
                item = await outbox.get()
                if isinstance(item, str):
                    await websocket.send(item)
                else:
                    await websocket.close(*item)
                    return

    def _arm_timer(self) -> None:
        if self._closing or self._crashed:
            return
        wakeup = self.switchboard.next_wakeup()
        if self._timer is not None:
            if wakeup is not None and self._timer.when() == self._loop_time(wakeup):
                return
            self._timer.cancel()
            self._timer = None
        if wakeup is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(self._loop_time(wakeup), self._on_timer, wakeup)

    def _on_timer(self, wakeup: float) -> None:
        self._timer = None
        if self._closing or self._crashed:
            return
        # The loop's clock is rounded (to the microsecond under virtual time), so it can
        # fire a hair before the deadline it was set for; the deadline has come all the
        # same, or the switchboard would find nothing due and be woken again forever.
        self.switchboard.wake(max(self.now(), wakeup))
        self._flush()

    def _loop_time(self, at: float) -> float:
        """Converts a scenario-clock time to the loop's clock."""
        loop = asyncio.get_running_loop()
        return loop.time() + (at - self.now())

    def _name(self, conn: ConnectionId) -> str:
        return self.switchboard.name_of(conn) or f"conn-{conn}"
