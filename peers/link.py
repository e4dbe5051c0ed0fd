"""The phone's radio: a fault-injecting link between a phone and the server.

A :class:`Link` hands the phone's websocket client one end of a socket pair and pumps the
bytes between the other end and a real TCP connection to the server. Because every byte
passes through it, it can fail the way radios fail (toxiproxy's model, in-process):

- **lost signal** (:meth:`Link.lose_signal`): a black hole. The sockets stay open and
  nothing flows either way, not even heartbeats; only the keepalive on each side finds out.
  New connections fail at once, as ``connect()`` does on a phone with no bars.
- **regained signal** (:meth:`Link.regain_signal`): connections that were black-holed are
  dead (the phone's address changed, as it does on a mobile network) and are cut; new ones
  go through, and whoever waits for the signal is woken.
- **switched off** (:meth:`Link.cut`): every connection is reset, with no close frame
  and a TCP RST towards the server, as when a battery dies.

Airplane mode is not the link's business: the phone closes its websocket cleanly, and the
link carries the close frame like any other bytes.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any, Literal

import structlog


__all__ = ["Link", "NoSignal"]

Side = Literal["phone", "server"]


class NoSignal(ConnectionError):
    """A connection was attempted while the phone has no signal."""


class _End(asyncio.Protocol):
    """One side of a pipe: forwards what it reads to the other side."""

    def __init__(self, pipe: _Pipe, side: Side) -> None:
        self.pipe = pipe
        self.side = side
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.pipe.forward(self.side, data)

    def eof_received(self) -> bool:
        if self.pipe.black_hole:
            return True  # a FIN in the air never arrives: keep this side half-open
        self.pipe.finish(self.side, abrupt=False)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipe.finish(self.side, abrupt=exc is not None)


class _Pipe:
    """The bytes of one connection, phone side and server side."""

    def __init__(self) -> None:
        self.ends: dict[Side, _End] = {"phone": _End(self, "phone"), "server": _End(self, "server")}
        self.black_hole = False
        self.closed = False

    def other(self, side: Side) -> asyncio.Transport | None:
        return self.ends["server" if side == "phone" else "phone"].transport

    def forward(self, side: Side, data: bytes) -> None:
        other = self.other(side)
        if self.black_hole or other is None or other.is_closing():
            return  # lost in the air
        other.write(data)

    def finish(self, side: Side, *, abrupt: bool) -> None:
        """One side ended: the other ends the same way, unless nothing flows."""
        if self.black_hole or self.closed:
            return
        self.closed = True
        other = self.other(side)
        if other is None or other.is_closing():
            return
        if abrupt:
            _reset(other)
        else:
            other.close()

    def reset(self) -> None:
        """Cuts both sides at once: no close frame, an RST towards the server."""
        self.closed = True
        for end in self.ends.values():
            if end.transport is not None and not end.transport.is_closing():
                _reset(end.transport)


def _reset(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        # Linger 0 makes close() send an RST instead of a FIN: an abrupt end, not a polite one.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class Link:
    """The radio between one phone and the server.

    Args:
        host: The server's address.
        port: The server's port.
        phone: The phone's name, for the event log.
        logger: Where events go.
        signal: Whether the phone starts with signal.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        phone: str,
        logger: Any = None,
        signal: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.phone = phone
        self.log = logger if logger is not None else structlog.get_logger("voip_sandbox.link")
        self._signal = asyncio.Event()
        if signal:
            self._signal.set()
        self._pipes: list[_Pipe] = []
        self._cuts = 0
        """How many times the phone was switched off: a connection being opened across
        one must not survive it."""

    @property
    def signal(self) -> bool:
        """Whether the phone has signal."""
        return self._signal.is_set()

    async def wait_for_signal(self) -> None:
        """Returns once the phone has signal."""
        await self._signal.wait()

    async def open(self) -> socket.socket:
        """Opens a connection to the server through the radio.

        Returns:
            The phone's end, a connected stream socket for the websocket client.

        Raises:
            NoSignal: The phone has no signal.
            OSError: The server refused the connection.
        """
        if not self.signal:
            raise NoSignal(f"{self.phone} has no signal")
        loop = asyncio.get_running_loop()
        cuts = self._cuts
        pipe = _Pipe()
        await loop.create_connection(lambda: pipe.ends["server"], self.host, self.port)
        phone_sock, link_sock = socket.socketpair()
        await loop.create_connection(lambda: pipe.ends["phone"], sock=link_sock)
        if self._cuts != cuts:
            # Switched off while connecting: the half-open connection dies with the radio.
            pipe.reset()
            phone_sock.close()
            raise ConnectionResetError(f"{self.phone} was switched off while connecting")
        self._pipes = [p for p in self._pipes if not p.closed]
        self._pipes.append(pipe)
        if not self.signal:  # lost while connecting: this one is in the air already
            pipe.black_hole = True
        return phone_sock

    def lose_signal(self) -> None:
        """Black-holes every open connection; new ones fail until the signal is back."""
        self._signal.clear()
        for pipe in self._pipes:
            pipe.black_hole = True
        self.log.info("link", phone=self.phone, state="no_signal")

    def regain_signal(self) -> None:
        """Cuts the black-holed connections and lets new ones through."""
        for pipe in self._pipes:
            if pipe.black_hole:
                pipe.reset()
        self._pipes = [p for p in self._pipes if not p.closed]
        self._signal.set()
        self.log.info("link", phone=self.phone, state="signal")

    def close(self) -> None:
        """Releases every socket, black-holed or not (the phone is done with the radio)."""
        for pipe in self._pipes:
            pipe.reset()
        self._pipes.clear()

    def cut(self) -> None:
        """Resets every connection abruptly (the phone was switched off)."""
        self._cuts += 1
        for pipe in self._pipes:
            pipe.reset()
        self._pipes.clear()
        self.log.info("link", phone=self.phone, state="cut")
