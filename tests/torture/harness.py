"""Torture cases as data: a name, what the attacker sends, and what the server must answer.

A :class:`TortureCase` is run by :func:`run_case` inside an :class:`~tests.torture.conftest.Arena`
(bystanders in a call, a liveness probe afterwards). Most cases are frames on a raw websocket
(:func:`exchange_frames`); the others name an ``attack`` coroutine of their own (floods,
half-open links, handshakes that never complete, hand-made websocket frames).

What the server must answer is either the exact list of its replies to the frames
(:data:`Replies`: each reply in one word, see :func:`~tests.torture.conftest.summary`; an
item ``"a|b"`` accepts either), after which the connection must still be open; or a
:class:`Close`: the connection closed by the server with that code (and reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close as CloseFrame, Frame as WsFrame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from tests.conftest import token_for
from tests.torture.conftest import (
    REPLY_TIMEOUT,
    Arena,
    assert_still_open,
    raw_connect,
    receive_json,
    summary,
)


@dataclass(frozen=True)
class Text:
    """Raw bytes sent as a *text* frame, unchecked (websockets does not validate what it sends)."""

    data: bytes


@dataclass(frozen=True)
class Fragments:
    """One text message sent as several frames (a first frame and continuations)."""

    parts: tuple[str, ...]


Frame: TypeAlias = str | bytes | dict[str, Any] | Text | Fragments
"""A ``dict`` is sent as JSON text, ``str`` as text, ``bytes`` as a binary frame."""

Replies: TypeAlias = tuple[str, ...]


@dataclass(frozen=True)
class Close:
    """The server closes the connection with ``code`` (and ``reason``, if given), after
    sending ``replies`` (exactly those)."""

    code: int
    reason: str | None = None
    replies: Replies = ()


Attack: TypeAlias = Callable[[Arena, "TortureCase"], Awaitable[None]]


@dataclass(frozen=True)
class TortureCase:
    """One hostile input and the answer it must get.

    Attributes:
        name: The test id.
        frames: What the attacker sends, in order.
        expect: The replies it must get (then the connection stays open), or a :class:`Close`.
        register: Register as ``mallory`` first (that reply is checked, not listed).
        attack: A coroutine that runs the case instead of :func:`exchange_frames`.
        about: Why the expected answer is the right one, when it is not obvious.
    """

    name: str
    frames: tuple[Frame, ...] = ()
    expect: Replies | Close = ()
    register: bool = False
    attack: Attack | None = None
    about: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.name


def check_names(cases: list[TortureCase]) -> list[TortureCase]:
    """The cases, after checking that no two share a name."""
    names = [case.name for case in cases]
    assert len(names) == len(set(names)), "duplicate torture case names"
    return cases


async def run_case(world: Arena, case: TortureCase) -> None:
    """Runs one case's attack, which asserts the server's answer."""
    attack = case.attack or exchange_frames
    await attack(world, case)


# --- Frames on a raw websocket -------------------------------------------------------------

MALLORY: dict[str, Any] = {"type": "register", "name": "mallory", "token": token_for("mallory")}

SENTINEL: dict[str, Any] = {"type": "hangup", "call_id": "sentinel"}
"""Sent after a case's frames: its reply (``unknown_call`` or ``not_registered``, naming
``sentinel``) marks the end of the replies to them, so "no reply at all" is checked too."""


async def send_frame(raw: ClientConnection, frame: Frame) -> None:
    match frame:
        case dict():
            await raw.send(json.dumps(frame, ensure_ascii=False))
        case Text(data=data):
            await raw.send(data, text=True)
        case Fragments(parts=parts):
            await raw.send(iter(parts))
        case _:
            await raw.send(frame)


def assert_replies(expected: Replies, replies: list[dict[str, Any]]) -> None:
    got = [summary(reply) for reply in replies]
    assert len(got) == len(expected), f"expected replies {list(expected)}, got {got}"
    for want, have in zip(expected, got, strict=True):
        assert have in want.split("|"), f"expected replies {list(expected)}, got {got}"


async def register_mallory(raw: ClientConnection) -> None:
    await raw.send(json.dumps(MALLORY))
    assert await receive_json(raw) == {
        "type": "registered",
        "name": "mallory",
        "blocks": [],
        "calls": [],
    }


async def replies_until_sentinel(raw: ClientConnection) -> list[dict[str, Any]]:
    """Sends :data:`SENTINEL` and returns every reply before the sentinel's own."""
    replies: list[dict[str, Any]] = []
    try:
        await raw.send(json.dumps(SENTINEL))
        while True:
            reply = await receive_json(raw)
            if reply.get("type") == "error" and reply.get("call_id") == "sentinel":
                assert reply["code"] in ("unknown_call", "not_registered"), reply
                return replies
            replies.append(reply)
    except ConnectionClosed as exc:
        raise AssertionError(
            f"the server closed the connection ({exc}) instead of replying; "
            f"replies before: {[summary(r) for r in replies]}"
        ) from None


async def replies_until_closed(
    raw: ClientConnection, within: float = REPLY_TIMEOUT
) -> list[dict[str, Any]]:
    """Every reply until the server's close frame; fails if none comes ``within`` seconds."""
    replies: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(within):
            while True:
                replies.append(json.loads(await raw.recv()))
    except ConnectionClosed:
        return replies
    except TimeoutError:
        raise AssertionError(
            f"the server did not close the connection within {within} s; "
            f"replies: {[summary(r) for r in replies]}"
        ) from None


def assert_close_frame(rcvd: CloseFrame | None, expect: Close) -> None:
    assert rcvd is not None, "the connection ended with no close frame from the server"
    assert rcvd.code == expect.code, f"closed with {rcvd}, expected code {expect.code}"
    if expect.reason is not None:
        assert rcvd.reason == expect.reason, f"closed with {rcvd}"


async def exchange_frames(world: Arena, case: TortureCase) -> None:
    """Sends the case's frames on a raw websocket and checks every reply, or the close."""
    async with raw_connect(world.box) as raw:
        if case.register:
            await register_mallory(raw)
        expect = case.expect
        if isinstance(expect, Close):
            with contextlib.suppress(ConnectionClosed):  # it may close while we still send
                for frame in case.frames:
                    await send_frame(raw, frame)
            replies = await replies_until_closed(raw)
            assert_replies(expect.replies, replies)
            assert raw.close_exc is not None
            assert_close_frame(raw.close_exc.rcvd, expect)
            return
        for frame in case.frames:
            await send_frame(raw, frame)
        assert_replies(expect, await replies_until_sentinel(raw))
        # A refused frame changes nothing: the connection stays open.
        await assert_still_open(raw)


# --- Below websockets: a TCP socket driven by hand ------------------------------------------


class RawSocket:
    """A TCP connection to the server, written byte by byte.

    websockets' sans-I/O :class:`~websockets.client.ClientProtocol` does the opening
    handshake and reads what the server sends; what is written after the handshake is
    whatever the test writes, hand-made frames included.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, url: str):
        self.reader = reader
        self.writer = writer
        self.protocol = ClientProtocol(parse_uri(url))
        self.received = bytearray()
        self.events: list[Any] = []

    @classmethod
    async def open(cls, world: Arena) -> RawSocket:
        box = world.box
        reader, writer = await asyncio.open_connection(box.server.host, box.server.port)
        return cls(reader, writer, box.server.url)

    async def handshake(self) -> None:
        """Completes the opening handshake."""
        self.protocol.send_request(self.protocol.connect())
        self.writer.write(b"".join(self.protocol.data_to_send()))
        async with asyncio.timeout(REPLY_TIMEOUT):
            while self.protocol.state is State.CONNECTING:
                data = await self.reader.read(65536)
                assert data, "the server closed the connection during the handshake"
                self.feed(data)
        assert self.protocol.state is State.OPEN, self.protocol.handshake_exc

    async def send_text(self, text: str) -> None:
        """A well-formed, masked text frame."""
        self.protocol.send_text(text.encode())
        self.writer.write(b"".join(self.protocol.data_to_send()))
        await self.writer.drain()

    async def receive_json(self) -> dict[str, Any]:
        """The next text frame from the server, parsed."""
        async with asyncio.timeout(REPLY_TIMEOUT):
            while True:
                for i, event in enumerate(self.events):
                    if isinstance(event, WsFrame) and event.opcode is Opcode.TEXT:
                        del self.events[i]
                        reply = json.loads(bytes(event.data))
                        assert isinstance(reply, dict)
                        return reply
                data = await self.reader.read(65536)
                assert data, "the server closed the connection"
                self.feed(data)

    def feed(self, data: bytes) -> None:
        self.received += data
        self.protocol.receive_data(data)
        self.events.extend(self.protocol.events_received())
        self.protocol.data_to_send()  # a pong or a close reply: this socket answers nothing

    def watch(self, clock: Callable[[], float]) -> None:
        """Reads (never answering) until the server ends the TCP connection.

        Reading is not answering: a ping read here gets no pong, a close frame no reply,
        so to the server this socket is as silent as one that reads nothing.
        """
        self.frames_at: list[tuple[float, Any]] = []

        async def read() -> None:
            while True:
                try:
                    data = await self.reader.read(65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                before = len(self.events)
                self.feed(data)
                self.frames_at.extend((clock(), e) for e in self.events[before:])
            self.ended_at = clock()

        self._watcher = asyncio.get_running_loop().create_task(read())

    async def ended(self, within: float) -> float:
        """Waits until the server has ended the TCP connection; returns when it did."""
        try:
            async with asyncio.timeout(within):
                await asyncio.shield(self._watcher)
        except TimeoutError:
            raise AssertionError(f"the server kept the connection open for {within} s") from None
        return self.ended_at

    @property
    def close_rcvd(self) -> CloseFrame | None:
        return self.protocol.close_rcvd

    def close(self) -> None:
        self.writer.transport.abort()
        watcher = getattr(self, "_watcher", None)
        if watcher is not None:
            watcher.cancel()


def crafted(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    length: int | None = None,
) -> bytes:
    """A websocket frame made by hand, lying if asked to (RFC 6455 §5.2).

    Args:
        opcode: The opcode, reserved ones included.
        payload: The payload, before masking.
        fin: The FIN bit.
        rsv: The three RSV bits, as a number.
        mask: Whether to mask (a client must).
        length: The payload length to announce, if not the real one.
    """
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 1 << 16:
        head += bytes([mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + n.to_bytes(8, "big")
    if mask:
        key = b"\x5a\xa5\x0f\xf0"
        head += key
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload
