"""The phone's radio: a Link between a phone's socket and a server on 127.0.0.1.

The byte-level tests put a plain asyncio TCP server behind the link; the others run the
real signaling server and phone clients of the sandbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import structlog

from peers.link import Link, NoSignal


pytestmark = pytest.mark.looptime

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class TcpServer:
    """A TCP server on 127.0.0.1 that hands each accepted connection to the test."""

    def __init__(self) -> None:
        self.accepted: asyncio.Queue[Streams] = asyncio.Queue()
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        await self.accepted.put((reader, writer))

    async def next_connection(self) -> Streams:
        async with asyncio.timeout(1):
            return await self.accepted.get()


def quiet_logger() -> Any:
    def drop(logger: Any, method: str, event: Any) -> Any:
        raise structlog.DropEvent

    return structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[drop],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )


@asynccontextmanager
async def tcp_server_and_link(*, signal: bool = True) -> AsyncIterator[tuple[TcpServer, Link]]:
    tcp = TcpServer()
    server = await asyncio.start_server(tcp._on_connect, "127.0.0.1", 0)
    tcp.port = server.sockets[0].getsockname()[1]
    link = Link("127.0.0.1", tcp.port, phone="alice", logger=quiet_logger(), signal=signal)
    try:
        yield tcp, link
    finally:
        link.cut()
        for writer in tcp.writers:
            writer.close()
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def phone_streams(link: Link) -> AsyncIterator[Streams]:
    """The phone's end of a new connection through ``link``, as streams."""
    reader, writer = await asyncio.open_connection(sock=await link.open())
    try:
        yield reader, writer
    finally:
        writer.close()


async def nothing_arrives(reader: asyncio.StreamReader, *, within: float = 60.0) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(within):
            await reader.read(1)


async def read(reader: asyncio.StreamReader, n: int) -> bytes:
    async with asyncio.timeout(1):
        return await reader.readexactly(n)


async def test_bytes_flow_both_ways_with_signal():
    async with tcp_server_and_link() as (tcp, link), phone_streams(link) as (reader, writer):
        far_reader, far_writer = await tcp.next_connection()
        writer.write(b"hello")
        assert await read(far_reader, 5) == b"hello"
        far_writer.write(b"world")
        assert await read(reader, 5) == b"world"


async def test_black_hole_stops_bytes_both_ways_but_keeps_the_sockets_open():
    async with tcp_server_and_link() as (tcp, link), phone_streams(link) as (reader, writer):
        far_reader, far_writer = await tcp.next_connection()
        link.lose_signal()
        assert not link.signal

        writer.write(b"up")
        far_writer.write(b"down")
        await nothing_arrives(far_reader)
        await nothing_arrives(reader)
        assert not writer.transport.is_closing()
        assert not far_writer.transport.is_closing()
        assert not reader.at_eof()
        assert not far_reader.at_eof()

        # Even a FIN is lost in the air: the server's end stays open.
        writer.close()
        await nothing_arrives(far_reader)
        assert not far_reader.at_eof()
        assert not far_writer.transport.is_closing()


async def test_regaining_signal_cuts_black_holed_connections_and_lets_new_ones_through():
    async with tcp_server_and_link() as (tcp, link), phone_streams(link) as (reader, writer):
        far_reader, far_writer = await tcp.next_connection()
        link.lose_signal()
        writer.write(b"up")
        far_writer.write(b"down")
        await nothing_arrives(far_reader)

        link.regain_signal()
        assert link.signal
        # The old connection is dead on both sides, and what was in the air never arrives.
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(1):
                await far_reader.read(100)  # an RST, not a polite FIN
        async with asyncio.timeout(1):
            assert await reader.read(100) == b""

        async with phone_streams(link) as (new_reader, new_writer):
            new_far_reader, new_far_writer = await tcp.next_connection()
            new_writer.write(b"again")
            assert await read(new_far_reader, 5) == b"again"
            new_far_writer.write(b"ok")
            assert await read(new_reader, 2) == b"ok"


async def test_wait_for_signal_returns_when_the_signal_is_back():
    async with tcp_server_and_link(signal=False) as (_tcp, link):
        waiter = asyncio.create_task(link.wait_for_signal())
        await asyncio.sleep(30)
        assert not waiter.done()
        link.regain_signal()
        async with asyncio.timeout(0.001):
            await waiter


async def test_open_without_signal_raises_no_signal():
    async with tcp_server_and_link(signal=False) as (tcp, link):
        assert not link.signal
        with pytest.raises(NoSignal):
            await link.open()
        link.regain_signal()
        async with phone_streams(link):
            await tcp.next_connection()
        link.lose_signal()
        with pytest.raises(NoSignal):
            await link.open()
    assert issubclass(NoSignal, ConnectionError)  # handled like a refused connection


async def test_open_with_no_server_raises_os_error():
    async with tcp_server_and_link() as (_tcp, link):
        pass  # the server is gone now
    with pytest.raises(OSError):
        await link.open()


async def test_cut_resets_every_connection():
    async with (
        tcp_server_and_link() as (tcp, link),
        phone_streams(link) as (reader1, _),
        phone_streams(link) as (reader2, _),
    ):
        far1, _ = await tcp.next_connection()
        far2, _ = await tcp.next_connection()
        link.cut()
        for far_reader in (far1, far2):
            with pytest.raises(ConnectionResetError):
                async with asyncio.timeout(1):
                    await far_reader.read(100)
        for reader in (reader1, reader2):
            async with asyncio.timeout(1):
                assert await reader.read(100) == b""
        assert link.signal  # a cut is not a loss of signal: new connections go through
        async with phone_streams(link):
            await tcp.next_connection()


async def test_a_connection_being_opened_when_the_phone_is_switched_off_dies_with_it():
    # Found by exploration (seed 1740): it used to go on and register a switched-off phone.
    async with tcp_server_and_link() as (tcp, link):
        opening = asyncio.ensure_future(link.open())
        far, _ = await tcp.next_connection()  # the server accepted; open() is not done yet
        link.cut()
        with pytest.raises(ConnectionResetError, match="switched off while connecting"):
            await opening
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(1):
                await far.read(100)


# --- With the signaling server and phone clients -------------------------------------------


async def test_cut_is_seen_by_the_server_as_lost_with_no_close_frame(sandbox):
    async with sandbox() as sb:
        (alice,) = await sb.phones("alice")
        first = sb.connection_of("alice")
        start = sb.events.mark()
        alice.link.cut()
        lost = await sb.events.wait(since=start, event="connection", conn=first)
        assert (lost["who"], lost["state"], lost["code"], lost["t"]) == ("alice", "lost", 1006, 0)
        # The phone is still on and wants its connection: it is back at once.
        await sb.registered("alice", since=start)
        assert alice.phone.registered


async def test_airplane_mode_closes_cleanly_with_1001(sandbox):
    async with sandbox() as sb:
        (alice,) = await sb.phones("alice")
        start = sb.events.mark()
        await alice.go_offline()
        closed = await sb.events.wait(since=start, event="connection", who="alice")
        assert (closed["state"], closed["code"], closed["t"]) == ("closed", 1001, 0)
        assert not alice.phone.registered
        assert not sb.switchboard.is_online("alice")

        # It stays offline, however long: no reconnect attempt at all.
        await asyncio.sleep(120)
        assert sb.events.select(since=start, event="connection", state="opened") == []

        await alice.go_online()
        registered = await sb.registered("alice", since=start)
        assert registered["t"] == 120
        assert sb.switchboard.is_online("alice")


async def test_lost_signal_blocks_reconnection_until_it_returns(sandbox):
    async with sandbox() as sb:
        (alice,) = await sb.phones("alice")
        start = sb.events.mark()
        alice.lose_signal()
        lost = await sb.events.wait(since=start, event="connection", who="alice")
        assert (lost["state"], lost["t"]) == ("lost", 10.0)  # ping at 5 s, no pong by 10 s
        # While there is no signal the phone does not even try: no failed attempts.
        await asyncio.sleep(70 - sb.now())
        assert sb.events.select(since=start, event="connection", state="failed") == []
        assert sb.events.select(since=start, event="connection", state="opened") == []
        assert not alice.phone.registered

        back = sb.events.mark()
        alice.regain_signal()
        registered = await sb.registered("alice", since=back)
        assert registered["t"] == 70.0
        assert alice.phone.registered


# --- Faults ---------------------------------------------------------------------------------------

from peers.link import DropRule  # noqa: E402
from signaling.messages import Answer, Ringing, serialize_message  # noqa: E402


HANDSHAKE = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
RESPONSE = b"HTTP/1.1 101 Switching Protocols\r\n\r\n"


def phone_frame(text: str) -> bytes:
    """A masked text frame, as a phone sends it (RFC 6455 §5.2), mask all zeros for clarity."""
    data = text.encode()
    assert len(data) < 126
    return bytes([0x81, 0x80 | len(data)]) + b"\0\0\0\0" + data


def server_frame(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 126
    return bytes([0x81, len(data)]) + data


RINGING = serialize_message(Ringing(call_id="c1"))
ANSWER = serialize_message(Answer(call_id="c1", sdp="v=0"))


async def handshaken(tcp: TcpServer, link: Link) -> Any:
    reader, writer = await asyncio.open_connection(sock=await link.open())
    far_reader, far_writer = await tcp.next_connection()
    writer.write(HANDSHAKE)
    assert await read(far_reader, len(HANDSHAKE)) == HANDSHAKE
    far_writer.write(RESPONSE)
    assert await read(reader, len(RESPONSE)) == RESPONSE
    return reader, writer, far_reader, far_writer


async def test_a_drop_removes_exactly_the_matching_frames_and_keeps_the_stream_whole():
    async with tcp_server_and_link() as (tcp, link):
        reader, writer, far_reader, far_writer = await handshaken(tcp, link)
        link.add_drop("to_server", DropRule(frozenset({"answer"}), count=1))
        writer.write(phone_frame(ANSWER) + phone_frame(RINGING) + phone_frame(ANSWER))
        expected = phone_frame(RINGING) + phone_frame(ANSWER)  # the first answer is gone
        assert await read(far_reader, len(expected)) == expected
        # The other direction is untouched.
        far_writer.write(server_frame(ANSWER))
        assert await read(reader, len(server_frame(ANSWER))) == server_frame(ANSWER)
        writer.close()


async def test_a_drop_with_a_probability_is_reproducible_from_the_seed():
    async def survivors(seed: int) -> bytes:
        async with tcp_server_and_link() as (tcp, link):
            link.rng.seed(seed)
            _reader, writer, far_reader, _far_writer = await handshaken(tcp, link)
            link.add_drop("to_server", DropRule(frozenset({"ringing"}), probability=0.5))
            writer.write(phone_frame(RINGING) * 20 + phone_frame(ANSWER))
            got = b""
            while not got.endswith(phone_frame(ANSWER)):
                got += await far_reader.read(4096)
            writer.close()
            return got

    first, again = await survivors(1), await survivors(1)
    assert first == again
    assert 0 < first.count(RINGING.encode()) < 20


async def test_a_delay_holds_each_frame_back_and_keeps_their_order():
    async with tcp_server_and_link() as (tcp, link):
        reader, writer, _far_reader, far_writer = await handshaken(tcp, link)
        link.set_delay("to_phone", 0.3, jitter=0.1)
        loop = asyncio.get_running_loop()
        sent = loop.time()
        far_writer.write(server_frame(RINGING))
        far_writer.write(server_frame(ANSWER))
        both = server_frame(RINGING) + server_frame(ANSWER)
        assert await read(reader, len(both)) == both
        assert 0.2 <= loop.time() - sent <= 0.4
        writer.close()


async def test_a_one_way_black_hole_stops_one_direction_only_until_cleared():
    async with tcp_server_and_link() as (tcp, link):
        reader, writer, far_reader, far_writer = await handshaken(tcp, link)
        link.set_black_hole("to_server")
        writer.write(phone_frame(RINGING))
        await nothing_arrives(far_reader, within=5)
        far_writer.write(server_frame(RINGING))
        assert await read(reader, len(server_frame(RINGING))) == server_frame(RINGING)
        link.clear()
        writer.write(phone_frame(ANSWER))
        assert await read(far_reader, len(phone_frame(ANSWER))) == phone_frame(ANSWER)
        writer.close()


async def test_a_slow_close_reaches_the_other_side_late():
    async with tcp_server_and_link() as (tcp, link):
        _reader, writer, far_reader, _far_writer = await handshaken(tcp, link)
        link.set_slow_close(3.0)
        loop = asyncio.get_running_loop()
        closed = loop.time()
        writer.close()
        async with asyncio.timeout(10):
            assert await far_reader.read(100) == b""
        assert loop.time() - closed == pytest.approx(3.0, abs=0.01)


async def test_a_reset_cuts_the_connection_and_the_next_one_goes_through():
    async with tcp_server_and_link() as (tcp, link):
        _reader, writer, far_reader, _far_writer = await handshaken(tcp, link)
        link.reset()
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(1):
                await far_reader.read(100)
        async with phone_streams(link):
            await tcp.next_connection()
        writer.close()


def test_lost_signal_silences_the_media_shim_too():
    link = Link("127.0.0.1", 1, phone="alice", logger=quiet_logger())
    assert not link.media.drops()
    link.media.loss = 1.0
    assert link.media.drops()
    link.clear()
    assert not link.media.drops()
    link._signal = asyncio.Event()  # lose_signal needs no loop for the media part
    link.media.no_signal = True
    assert link.media.drops()
