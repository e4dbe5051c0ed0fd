"""The phone's radio: a fault-injecting link between a phone and the server.

A :class:`Link` hands the phone's websocket client one end of a socket pair and pumps the
bytes between the other end and a real TCP connection to the server. Because every byte
passes through it, it can fail the way radios and networks fail (toxiproxy's model,
in-process):

- **lost signal** (:meth:`Link.lose_signal`): a black hole. The sockets stay open and
  nothing flows either way, not even heartbeats; only the keepalive on each side finds out.
  New connections fail at once, as ``connect()`` does on a phone with no bars. The phone's
  media goes silent too (:attr:`Link.media`).
- **regained signal** (:meth:`Link.regain_signal`): connections that were black-holed are
  dead (the phone's address changed, as it does on a mobile network) and are cut; new ones
  go through, and whoever waits for the signal is woken.
- **switched off** (:meth:`Link.cut`): every connection is reset, with no close frame
  and a TCP RST towards the server, as when a battery dies.

And the faults of a scenario's ``fault:`` steps, each per direction (``to_server``: what
the phone sends; ``to_phone``: what the server sends):

- **latency and jitter** (:meth:`Link.set_delay`): each WebSocket frame is held back by the
  delay plus a jitter drawn from the link's seeded generator; frames keep their order, as
  on a TCP stream. Heartbeat pings and pongs are frames too, so a long delay kills a link.
- **drop** (:meth:`Link.add_drop`): data frames whose message type matches are removed from
  the stream (all of them, the next ``count``, or each with a ``probability``). The frames
  around them pass unharmed, so neither websocket notices: the message is simply lost.
- **black hole** (:meth:`Link.set_black_hole`): nothing passes in that direction, on this
  connection and the next ones, until cleared. New connections still open.
- **reset** (:meth:`Link.reset`): every connection is reset now; the phone reconnects.
- **slow close** (:meth:`Link.set_slow_close`): a close (FIN or RST) from either side
  reaches the other only after a delay.
- **media loss and media black hole**: the phone's :class:`~peers.media.MediaShim`.
- :meth:`Link.clear` removes all of these (not a lost signal, which is the phone's state).

How the link stays a mover of bytes: to be message-aware it splits each direction's byte
stream at WebSocket frame boundaries (RFC 6455 §5.2: a 2 to 14 byte header gives the
length) and, only for a drop rule, reads a data frame's ``type`` with
:mod:`signaling.messages`. A frame is forwarded as the very bytes that came in, or not at
all. What to drop and when is the scenario's data, never a decision about a call.
"""

from __future__ import annotations

import asyncio
import collections
import random
import socket
import struct
from dataclasses import dataclass
from typing import Any, Final, Literal

import structlog
from websockets.utils import apply_mask

from signaling.messages import (
    InvalidMessage,
    PhoneMessage,
    ServerMessage,
    message_type,
    parse_phone_message,
    parse_server_message,
)

from .media import MediaShim


__all__ = [
    "DIRECTIONS",
    "TO_PHONE_TYPES",
    "TO_SERVER_TYPES",
    "Direction",
    "DropRule",
    "Link",
    "NoSignal",
]

Side = Literal["phone", "server"]

Direction = Literal["to_server", "to_phone"]
"""Which way bytes go: ``to_server`` from the phone, ``to_phone`` from the server."""

DIRECTIONS: Final[tuple[Direction, ...]] = ("to_server", "to_phone")

TO_SERVER_TYPES: Final = frozenset(str(cls.__struct_config__.tag) for cls in PhoneMessage.__args__)
"""The message types a phone sends (what a ``to_server`` drop can name)."""

TO_PHONE_TYPES: Final = frozenset(str(cls.__struct_config__.tag) for cls in ServerMessage.__args__)
"""The message types the server sends (what a ``to_phone`` drop can name)."""

_MAX_HELD_FRAME: Final = 16 * 1024 * 1024
"""A frame header announcing more than this is not split on: the rest passes as it comes."""


class NoSignal(ConnectionError):
    """A connection was attempted while the phone has no signal."""


@dataclass(slots=True)
class DropRule:
    """Drops data frames of some message types, in one direction.

    Attributes:
        types: The message types it drops; ``None``: any message.
        count: How many more frames it drops; ``None``: no limit.
        probability: The chance each matching frame is dropped; ``None``: always.
    """

    types: frozenset[str] | None
    count: int | None = None
    probability: float | None = None

    def take(self, kind: str | None, rng: random.Random) -> bool:
        """Whether a frame of message type ``kind`` is dropped (and counts it if so)."""
        if self.count is not None and self.count <= 0:
            return False
        if self.types is not None and kind not in self.types:
            return False
        # Drawn only for matching frames, so the same seed drops the same messages.
        if self.probability is not None and rng.random() >= self.probability:
            return False
        if self.count is not None:
            self.count -= 1
        return True


@dataclass(slots=True)
class _Toxics:
    """The faults of one direction."""

    delay: float = 0.0
    jitter: float = 0.0
    black_hole: bool = False
    drops: list[DropRule] | None = None


class _Splitter:
    """Cuts one direction's byte stream into units: the HTTP handshake, then frames.

    Bytes before the end of the HTTP headers pass at once, whatever they are (a test may
    pipe raw bytes); after it, a unit is one whole WebSocket frame, kept as it came.
    """

    def __init__(self, *, masked: bool) -> None:
        self.masked = masked
        self._handshake = True
        self._raw = False
        self._tail = b""
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes | None]]:
        """Splits ``data``; returns ``(raw bytes, payload of a whole data frame or None)``."""
        units: list[tuple[bytes, bytes | None]] = []
        if self._raw:
            return [(data, None)]
        if self._handshake:
            window = self._tail + data
            end = window.find(b"\r\n\r\n")
            if end < 0:
                self._tail = window[-3:]
                return [(data, None)]
            cut = end + 4 - len(self._tail)
            head, data = data[:cut], data[cut:]
            units.append((head, None))
            self._handshake = False
            if not self.masked and b" 101 " not in (self._tail + head).split(b"\r\n", 1)[0]:
                self._raw = True  # refused upgrade: what follows is not WebSocket
                return [*units, (data, None)] if data else units
        self._buffer.extend(data)
        while True:
            unit = self._next_frame()
            if unit is None:
                break
            units.append(unit)
        return units

    def _next_frame(self) -> tuple[bytes, bytes | None] | None:
        buf = self._buffer
        if len(buf) < 2:
            return None
        opcode, fin = buf[0] & 0x0F, buf[0] & 0x80
        masked, length, pos = buf[1] & 0x80, buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, pos = struct.unpack_from("!H", buf, 2)[0], 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, pos = struct.unpack_from("!Q", buf, 2)[0], 10
        if length > _MAX_HELD_FRAME:
            self._raw = True
            raw = bytes(buf)
            buf.clear()
            return raw, None
        mask = b""
        if masked:
            mask, pos = bytes(buf[pos : pos + 4]), pos + 4
        end = pos + length
        if len(buf) < end:
            return None
        raw = bytes(buf[:end])
        del buf[:end]
        payload: bytes | None = None
        if fin and opcode in (0x1, 0x2):  # a whole text or binary message
            payload = raw[pos:]
            if masked:
                payload = apply_mask(payload, mask)
        return raw, payload


_CLOSE: Final = object()
"""A queued close, delivered in order after the bytes queued before it."""


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

    def __init__(self, link: Link) -> None:
        self.link = link
        self.ends: dict[Side, _End] = {"phone": _End(self, "phone"), "server": _End(self, "server")}
        self.black_hole = False
        """Lost signal: nothing flows, not even a close."""
        self.closed = False
        # Phones mask what they send (RFC 6455 §5.3); the server does not.
        self._splitters: dict[Direction, _Splitter] = {
            "to_server": _Splitter(masked=True),
            "to_phone": _Splitter(masked=False),
        }
        self._queues: dict[Direction, collections.deque[tuple[float, object]]] = {
            "to_server": collections.deque(),
            "to_phone": collections.deque(),
        }
        self._timers: dict[Direction, asyncio.TimerHandle | None] = {
            "to_server": None,
            "to_phone": None,
        }

    def other(self, side: Side) -> asyncio.Transport | None:
        return self.ends["server" if side == "phone" else "phone"].transport

    def forward(self, side: Side, data: bytes) -> None:
        direction: Direction = "to_server" if side == "phone" else "to_phone"
        if self.black_hole:
            return  # lost in the air
        toxics = self.link.toxics[direction]
        for raw, payload in self._splitters[direction].feed(data):
            if toxics.black_hole:
                continue
            if payload is not None and toxics.drops and self._dropped(direction, payload):
                continue
            self._enqueue(direction, raw, toxics.delay, toxics.jitter)

    def _dropped(self, direction: Direction, payload: bytes) -> bool:
        kind = _message_kind(direction, payload)
        for rule in self.link.toxics[direction].drops or ():
            if rule.take(kind, self.link.rng):
                self.link.log.info(
                    "wire", who=self.link.phone, action="dropped", type=kind, direction=direction
                )
                return True
        return False

    def _enqueue(self, direction: Direction, item: object, delay: float, jitter: float) -> None:
        queue = self._queues[direction]
        if jitter > 0:
            delay = max(0.0, delay + self.link.rng.uniform(-jitter, jitter))
        if delay <= 0 and not queue:
            self._deliver_item(direction, item)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        if queue:
            due = max(due, queue[-1][0])  # a stream keeps its order whatever the jitter
        queue.append((due, item))
        if self._timers[direction] is None:
            self._timers[direction] = loop.call_at(queue[0][0], self._drain, direction)

    def _drain(self, direction: Direction) -> None:
        self._timers[direction] = None
        queue = self._queues[direction]
        loop = asyncio.get_running_loop()
        # The loop's clock is rounded under virtual time: a hair early is on time.
        while queue and queue[0][0] <= loop.time() + 1e-6:
            self._deliver_item(direction, queue.popleft()[1])
        if queue:
            self._timers[direction] = loop.call_at(queue[0][0], self._drain, direction)

    def _deliver_item(self, direction: Direction, item: object) -> None:
        if self.black_hole:
            return
        target = self.ends["server" if direction == "to_server" else "phone"].transport
        if isinstance(item, bytes):
            if target is not None and not target.is_closing():
                target.write(item)
            return
        abrupt = item is not _CLOSE
        if target is None or target.is_closing():
            return
        if abrupt:
            _reset(target)
        else:
            target.close()

    def finish(self, side: Side, *, abrupt: bool) -> None:
        """One side ended: the other ends the same way, unless nothing flows."""
        if self.black_hole or self.closed:
            return
        self.closed = True
        direction: Direction = "to_server" if side == "phone" else "to_phone"
        marker = object() if abrupt else _CLOSE
        # After the bytes still queued, and after the slow close's delay if one is set.
        self._enqueue(direction, marker, self.link.slow_close, 0.0)

    def reset(self) -> None:
        """Cuts both sides at once: no close frame, an RST towards the server."""
        self.closed = True
        for direction, timer in self._timers.items():
            if timer is not None:
                timer.cancel()
            self._timers[direction] = None
            self._queues[direction].clear()
        for end in self.ends.values():
            if end.transport is not None and not end.transport.is_closing():
                _reset(end.transport)


def _message_kind(direction: Direction, payload: bytes) -> str | None:
    """The ``type`` of a frame's message, or ``None`` if it is not a valid message."""
    try:
        if direction == "to_server":
            return message_type(parse_phone_message(payload))
        return message_type(parse_server_message(payload))
    except InvalidMessage:
        return None


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
        rng: Draws jitter and probabilistic drops (signaling and media); seed it from
            the run's seed so that faults are reproducible.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        phone: str,
        logger: Any = None,
        signal: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.phone = phone
        self.log = logger if logger is not None else structlog.get_logger("voip_sandbox.link")
        self.rng = rng if rng is not None else random.Random(f"link:{phone}")
        self.toxics: dict[Direction, _Toxics] = {d: _Toxics() for d in DIRECTIONS}
        self.slow_close = 0.0
        """Seconds a close takes to reach the other side (a ``slow_close`` fault)."""
        self.media = MediaShim(random.Random(self.rng.getrandbits(64)))
        """The phone's media fault shim; silent while the phone has no signal."""
        self._signal = asyncio.Event()
        if signal:
            self._signal.set()
        else:
            self.media.no_signal = True
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
        pipe = _Pipe(self)
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
        """Black-holes every open connection and the media; new connections fail."""
        self._signal.clear()
        for pipe in self._pipes:
            pipe.black_hole = True
        self.media.no_signal = True
        self.log.info("link", phone=self.phone, state="no_signal")

    def regain_signal(self) -> None:
        """Cuts the black-holed connections and lets new ones (and the media) through."""
        for pipe in self._pipes:
            if pipe.black_hole:
                pipe.reset()
        self._pipes = [p for p in self._pipes if not p.closed]
        self.media.no_signal = False
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

    # --- Faults ----------------------------------------------------------------------------

    def set_delay(self, direction: Direction, delay: float, jitter: float = 0.0) -> None:
        """Holds back each frame going ``direction`` by ``delay`` ± ``jitter`` seconds."""
        self.toxics[direction].delay = delay
        self.toxics[direction].jitter = jitter

    def add_drop(self, direction: Direction, rule: DropRule) -> None:
        """Drops the data frames going ``direction`` that ``rule`` matches."""
        toxics = self.toxics[direction]
        toxics.drops = [*(toxics.drops or ()), rule]

    def set_black_hole(self, direction: Direction, on: bool = True) -> None:
        """Lets nothing through going ``direction`` (on every connection) until cleared."""
        self.toxics[direction].black_hole = on

    def set_slow_close(self, seconds: float) -> None:
        """Delays every close passing through by ``seconds``."""
        self.slow_close = seconds

    def reset(self) -> None:
        """Resets every connection now, as a network that drops them does; the phone is on."""
        for pipe in self._pipes:
            pipe.reset()
        self._pipes.clear()

    def clear(self) -> None:
        """Removes every fault, signaling and media (a lost signal stays lost)."""
        self.toxics = {d: _Toxics() for d in DIRECTIONS}
        self.slow_close = 0.0
        self.media.clear()
