"""Torture below and around the frames: floods, silent links, broken handshakes, forged frames.

The same three assertions as ``test_frames.py`` (the server's answer; the server alive
afterwards; the bystanders' call untouched), for attacks a frame table cannot express:

- floods: 10,000 frames at once (rate limit, then the refusal limit closes the connection,
  in bounded virtual time, without holding anyone else up), pings, unsolicited pongs;
- silent links: a half-open connection (the heartbeat ends it), one that never registers
  (the register timeout ends it), with and without answering pings;
- handshakes: partial, trickled byte by byte, TLS to a plain port, plain HTTP, bad
  headers; the websocket never opens and the switchboard never hears of the socket;
- forged frames (RFC 6455 §5): unmasked, reserved opcodes and bits, oversized or
  fragmented control frames, stray continuations, bad close codes, absurd lengths:
  websockets fails the connection with 1002 (or 1007 / 1009) at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from tests.torture.conftest import (
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TIMEOUT,
    LIMITS,
    OPEN_TIMEOUT,
    Arena,
    assert_still_open,
    raw_connect,
)
from tests.torture.harness import (
    MALLORY,
    Close,
    RawSocket,
    TortureCase,
    assert_close_frame,
    assert_replies,
    check_names,
    crafted,
    register_mallory,
    replies_until_closed,
    replies_until_sentinel,
    run_case,
    send_frame,
)


pytestmark = pytest.mark.looptime

BURST = 10_000
CLOSE_TIMEOUT = 10.0
"""websockets' default: how long a server waits for the other end of a closing handshake."""


def opened_since(world: Arena, mark: int) -> list[int]:
    """The server's ids of the connections opened since ``mark``."""
    return [e["conn"] for e in world.events.select(since=mark, event="connection", state="opened")]


# --- Floods ---------------------------------------------------------------------------------


async def burst(world: Arena, case: TortureCase) -> None:
    """10,000 copies of the case's frame, sent as fast as the socket takes them.

    The server must refuse the excess (``rate_limited``, or the frame's own error), close
    the connection with 1008 once ``max_errors`` refusals are reached, and do it all in
    bounded virtual time, while answering everybody else at once: a probe registers and
    places a call right after the close frame, before the flooder's socket is gone.
    """
    assert isinstance(case.expect, Close)
    (frame,) = case.frames
    started, wall = world.box.now(), time.perf_counter()
    async with raw_connect(world.box) as raw:
        if case.register:
            await register_mallory(raw)
        replies: list[dict[str, Any]] = []

        async def read() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    replies.append(json.loads(await raw.recv()))

        reader = asyncio.get_running_loop().create_task(read())
        try:
            with contextlib.suppress(ConnectionClosed):
                for _ in range(BURST):
                    await send_frame(raw, frame)
            try:
                async with asyncio.timeout(1.0):
                    # websockets has no event for "close frame received" (only for the end
                    # of the TCP connection, which the server may delay): poll, virtually.
                    while raw.protocol.close_rcvd is None:  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
            except TimeoutError:
                pytest.fail(f"not closed within 1 s of the burst; replies: {len(replies)}")
            closed_at = world.box.now()
            assert_close_frame(raw.protocol.close_rcvd, case.expect)
            assert closed_at - started < 1.0, f"the burst took {closed_at - started} virtual s"
            assert time.perf_counter() - wall < 10.0

            # Everybody else is served at once, while the flooder is being cut off.
            await world.assert_server_alive()

            async with asyncio.timeout(CLOSE_TIMEOUT + 1):
                await reader
            assert_replies(case.expect.replies, replies)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def ping_flood(world: Arena, case: TortureCase) -> None:
    """1,000 pings with the largest payload a control frame may carry: all answered, nothing
    refused (pings are the transport's, not frames the switchboard counts), still open."""
    async with raw_connect(world.box) as raw:
        await register_mallory(raw)
        pongs = [await raw.ping(f"{i:05d}".encode().ljust(125, b"p")) for i in range(1000)]
        async with asyncio.timeout(2.0):
            await asyncio.gather(*pongs)
        assert_replies((), await replies_until_sentinel(raw))
        await assert_still_open(raw)


async def pong_flood(world: Arena, case: TortureCase) -> None:
    """1,000 pongs nobody asked for (RFC 6455 §5.5.3: allowed, and ignored)."""
    async with raw_connect(world.box) as raw:
        await register_mallory(raw)
        for i in range(1000):
            await raw.pong(f"{i}".encode())
        assert_replies((), await replies_until_sentinel(raw))
        await assert_still_open(raw)


# --- Silent links ---------------------------------------------------------------------------


async def half_open_after_register(world: Arena, case: TortureCase) -> None:
    """TCP up, handshake done, registered; then the client never answers anything again.

    The server's heartbeat must notice: a ping at ``heartbeat_interval`` gets no pong within
    ``heartbeat_timeout``, and the socket is aborted (no close frame) right then.
    """
    mark = world.events.mark()
    sock = await RawSocket.open(world)
    try:
        await sock.handshake()
        (conn,) = opened_since(world, mark)
        opened_at = world.events.select(since=mark, event="connection", conn=conn)[0]["t"]
        await sock.send_text(json.dumps(MALLORY))
        assert (await sock.receive_json())["type"] == "registered"
        sock.watch(world.box.now)  # reads, never answers: no pong, ever

        deadline = HEARTBEAT_INTERVAL + HEARTBEAT_TIMEOUT
        ended_at = await sock.ended(within=deadline + 2)
        lost = await world.events.wait(since=mark, event="connection", who="mallory", within=1)
        assert (lost["state"], lost["conn"]) == ("lost", conn)
        assert world.events.select(
            since=mark, event="heartbeat", who=f"server/conn-{conn}", state="timed_out"
        )
        assert lost["t"] - opened_at == pytest.approx(deadline, abs=0.01)
        assert ended_at - opened_at == pytest.approx(deadline, abs=0.01)
        assert sock.close_rcvd is None, "a dead link is aborted, with no close frame"
        assert not world.box.switchboard.is_online("mallory")
    finally:
        sock.close()


async def half_open_before_register(world: Arena, case: TortureCase) -> None:
    """TCP up, handshake done, then nothing at all: no register, no pong, no close reply.

    The register timeout must send 1008 ``no registration in time`` at ``register_timeout``
    after the connection opened; the heartbeat aborts the socket when its pong is late; and
    nobody else waits meanwhile (the probe runs while the close is pending).
    """
    mark = world.events.mark()
    sock = await RawSocket.open(world)
    try:
        await sock.handshake()
        (conn,) = opened_since(world, mark)
        opened_at = world.events.select(since=mark, event="connection", conn=conn)[0]["t"]
        sock.watch(world.box.now)

        await asyncio.sleep(opened_at + LIMITS.register_timeout + 0.5 - world.box.now())
        closes = [
            (t, f) for t, f in sock.frames_at if isinstance(f, Frame) and f.opcode is Opcode.CLOSE
        ]
        assert closes, f"no close frame {LIMITS.register_timeout} s after the connection opened"
        assert closes[0][0] - opened_at == pytest.approx(LIMITS.register_timeout, abs=0.01)
        assert_close_frame(sock.close_rcvd, Close(1008, "no registration in time"))
        # The close handshake is pending (this socket never replies): others are served.
        await world.assert_server_alive()

        ended_at = await sock.ended(within=CLOSE_TIMEOUT + 2)
        assert ended_at - opened_at <= HEARTBEAT_INTERVAL + HEARTBEAT_TIMEOUT + 0.01
        # Its end is "lost", not "closed": the close handshake never completed.
        ends = [
            e["state"]
            for e in world.events.select(since=mark, event="connection", conn=conn)
            if e["state"] != "opened"
        ]
        assert ends == ["lost"]
    finally:
        sock.close()


async def never_registers(world: Arena, case: TortureCase) -> None:
    """A well-behaved websocket (it answers pings) that never registers: closed with 1008
    ``no registration in time``, ``register_timeout`` after it opened."""
    async with raw_connect(world.box) as raw:
        opened_at = world.box.now()
        replies = await replies_until_closed(raw, within=LIMITS.register_timeout + 2)
        closed_at = world.box.now()
        assert replies == []
        assert raw.close_exc is not None
        assert_close_frame(raw.close_exc.rcvd, Close(1008, "no registration in time"))
        assert closed_at - opened_at == pytest.approx(LIMITS.register_timeout, abs=0.05)


async def registers_after_refusals_then_idles(world: Arena, case: TortureCase) -> None:
    """A connection that registers in time is never closed for it, however long it idles."""
    async with raw_connect(world.box) as raw:
        await raw.send("hello")
        await register_mallory_after_error(raw)
        await asyncio.sleep(LIMITS.register_timeout * 3)
        await assert_still_open(raw)
        assert_replies((), await replies_until_sentinel(raw))


async def register_mallory_after_error(raw: Any) -> None:
    reply = json.loads(await raw.recv())
    assert reply["code"] == "bad_frame"
    await register_mallory(raw)


# --- Handshakes -----------------------------------------------------------------------------


async def handshake(world: Arena, case: TortureCase) -> None:
    """Writes the case's bytes (one ``bytes`` at once; several, one every 0.25 s) as an
    opening handshake, and checks what comes back and when the server hangs up.

    ``case.expect`` is ``(status,)``: the HTTP status line's start the server must answer
    with at once (``""``: nothing at all), or ``("open_timeout",)``: nothing until the
    server drops the socket ``open_timeout`` after it connected. Either way the websocket
    never opens, so the switchboard never hears of it.
    """
    mark = world.events.mark()
    started = world.box.now()
    reader, writer = await asyncio.open_connection(world.box.server.host, world.box.server.port)

    async def trickle() -> None:
        for chunk in case.frames:
            assert isinstance(chunk, bytes)
            writer.write(chunk)
            await asyncio.sleep(0.25)

    writing = asyncio.get_running_loop().create_task(trickle())
    received = b""
    try:
        async with asyncio.timeout(OPEN_TIMEOUT + 2):
            while True:
                try:
                    data = await reader.read(65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                received += data
    finally:
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await writing
        writer.transport.abort()
    ended = world.box.now() - started
    assert isinstance(case.expect, tuple)
    (want,) = case.expect
    if want == "open_timeout":
        assert received == b""
        assert ended == pytest.approx(OPEN_TIMEOUT, abs=0.01)
    else:
        assert received.startswith(want.encode()), received[:80]
        assert ended < 0.1
    assert b" 101 " not in received.split(b"\r\n", 1)[0]
    assert opened_since(world, mark) == [], "the switchboard heard of a failed handshake"


GOOD_HEADERS = (
    b"Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)
GOOD_REQUEST = b"GET / HTTP/1.1\r\n" + GOOD_HEADERS + b"\r\n"


# --- Forged frames ----------------------------------------------------------------------------


async def forged_frames(world: Arena, case: TortureCase) -> None:
    """After a proper handshake (and a register), writes hand-made frame bytes: the server
    must fail the connection at once with the expected close code."""
    assert isinstance(case.expect, Close)
    sock = await RawSocket.open(world)
    try:
        await sock.handshake()
        if case.register:
            await sock.send_text(json.dumps(MALLORY))
            assert (await sock.receive_json())["type"] == "registered"
        sock.watch(world.box.now)
        started, mark = world.box.now(), world.events.mark()
        for chunk in case.frames:
            assert isinstance(chunk, bytes)
            sock.writer.write(chunk)
        ended_at = await sock.ended(within=2.0)
        assert_close_frame(sock.close_rcvd, case.expect)
        assert ended_at - started < 0.1
        sock.close()  # the server half-closed; its handler ends once this end closes too
        if case.register:
            lost = await world.events.wait(since=mark, event="connection", who="mallory", within=1)
            # This end never answered the close frame: the server logs the link as lost.
            assert lost["state"] == "lost"
            assert not world.box.switchboard.is_online("mallory")
    finally:
        sock.close()


def forged(
    name: str, *chunks: bytes, code: int, register: bool = True, about: str = ""
) -> TortureCase:
    return TortureCase(
        name, chunks, Close(code), register=register, attack=forged_frames, about=about
    )


TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
PAYLOAD = json.dumps({"type": "missed_call_ack", "call_id": "x1"}).encode()


CASES = check_names(
    [
        # Floods.
        TortureCase(
            "burst-10000-frames-rate-limited-then-closed",
            ({"type": "missed_call_ack", "call_id": "x1"},),
            Close(1008, "too many refused frames", ("rate_limited",) * LIMITS.max_errors),
            register=True,
            attack=burst,
            about="burst 100: 99 frames pass (after the register), then 20 are refused",
        ),
        TortureCase(
            "burst-10000-junk-frames-closed-after-max-errors",
            ("hello",),
            Close(1008, "too many refused frames", ("bad_frame",) * LIMITS.max_errors),
            attack=burst,
        ),
        TortureCase("ping-flood-1000-max-payload", attack=ping_flood),
        TortureCase("pong-flood-1000-unsolicited", attack=pong_flood),
        # Silent links.
        TortureCase("half-open-after-register", attack=half_open_after_register),
        TortureCase("half-open-before-register", attack=half_open_before_register),
        TortureCase("never-registers", attack=never_registers),
        TortureCase(
            "registered-connection-idles-past-the-register-timeout",
            attack=registers_after_refusals_then_idles,
        ),
        # Handshakes.
        TortureCase(
            "handshake-partial-request-never-completes",
            (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n",),
            ("open_timeout",),
            attack=handshake,
        ),
        TortureCase(
            "handshake-slowloris-one-byte-every-quarter-second",
            tuple(bytes([b]) for b in GOOD_REQUEST),
            ("open_timeout",),
            attack=handshake,
        ),
        TortureCase(
            "handshake-tls-client-hello-on-a-plain-port",
            (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64,),
            ("open_timeout",),
            attack=handshake,
        ),
        TortureCase(
            "handshake-plain-http-without-upgrade",
            (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",),
            ("HTTP/1.1 426 ",),
            attack=handshake,
        ),
        TortureCase(
            "handshake-bad-websocket-key",
            (GOOD_REQUEST.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"short"),),
            ("HTTP/1.1 400 ",),
            attack=handshake,
        ),
        TortureCase(
            "handshake-websocket-version-8",
            (GOOD_REQUEST.replace(b"Version: 13", b"Version: 8"),),
            ("HTTP/1.1 400 ",),
            attack=handshake,
        ),
        TortureCase(
            "handshake-http-1.0",
            (b"GET / HTTP/1.0\r\n" + GOOD_HEADERS + b"\r\n",),
            ("HTTP/1.1 505 ",),
            attack=handshake,
        ),
        TortureCase(
            "handshake-10k-host-header",
            (b"GET / HTTP/1.1\r\nHost: " + b"a" * 10_000 + b"\r\n\r\n",),
            ("HTTP/1.1 431 ",),
            attack=handshake,
        ),
        TortureCase(
            "handshake-500-headers",
            (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(500)) + b"\r\n",),
            ("HTTP/1.1 431 ",),
            attack=handshake,
        ),
        TortureCase(
            "handshake-post-with-a-body",
            (GOOD_REQUEST.replace(b"GET", b"POST", 1)[:-2] + b"Content-Length: 5\r\n\r\nhello",),
            ("",),
            attack=handshake,
            about="websockets refuses any method but GET by hanging up",
        ),
        # Forged frames (RFC 6455 §5).
        forged("frame-unmasked-from-a-client", crafted(TEXT, PAYLOAD, mask=False), code=1002),
        forged("frame-reserved-data-opcode-3", crafted(0x3, PAYLOAD), code=1002),
        forged("frame-reserved-control-opcode-b", crafted(0xB, b"x"), code=1002),
        forged("frame-rsv1-without-compression", crafted(TEXT, PAYLOAD, rsv=4), code=1002),
        forged("frame-ping-payload-126-bytes", crafted(PING, b"p" * 126), code=1002),
        forged("frame-fragmented-ping", crafted(PING, b"p", fin=False), code=1002),
        forged("frame-continuation-without-a-start", crafted(CONTINUATION, PAYLOAD), code=1002),
        forged(
            "frame-new-message-inside-a-fragmented-one",
            crafted(TEXT, b'{"type":', fin=False),
            crafted(TEXT, PAYLOAD),
            code=1002,
        ),
        forged("frame-close-code-1005-on-the-wire", crafted(CLOSE, b"\x03\xed"), code=1002),
        forged("frame-close-code-999", crafted(CLOSE, (999).to_bytes(2, "big")), code=1002),
        forged("frame-close-payload-one-byte", crafted(CLOSE, b"\x03"), code=1002),
        forged(
            "frame-close-reason-not-utf8",
            crafted(CLOSE, (1000).to_bytes(2, "big") + b"\xff"),
            code=1007,
        ),
        forged("frame-announcing-2-63-bytes", crafted(BINARY, b"", length=2**63 - 1), code=1009),
        forged(
            "frame-length-with-the-most-significant-bit-set",
            crafted(BINARY, b"", length=2**64 - 1),
            code=1009,
        ),
        forged(
            "frame-announcing-300-kib-then-stalling",
            crafted(TEXT, b"", length=300 * 1024),
            code=1009,
            about="refused from the header alone, before any payload arrives",
        ),
        forged(
            "frame-invalid-utf8-split-across-fragments",
            crafted(TEXT, b'{"type":"\xe2', fin=False),
            crafted(CONTINUATION, b'A"}'),
            code=1007,
        ),
    ]
)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_hostile_transport(arena: Any, case: TortureCase) -> None:
    async with arena() as world:
        await run_case(world, case)
