"""The torture arena: a real server with small limits, bystanders in a call, and an attacker.

Everything runs on 127.0.0.1, in the test's own loop (virtual time, except in
``test_realtime.py``), as in ``tests/conftest.py``, whose :class:`~tests.conftest.Sandbox`
this builds on. The shared
``sandbox`` builder takes only the call timers, so the arena's :class:`TortureBox` adds
what the torture suite needs: :class:`~signaling.switchboard.SwitchboardLimits` and the
server's transport limits (``max_frame_size``, ``open_timeout``).

The cast of every torture test:

- ``alice`` calls ``bob`` (real :class:`~peers.client.PhoneClient` phones) and he answers
  before the attack: they are the bystanders, hung up after it;
- ``carol`` is a real phone left idle: the callee of the liveness probe;
- ``dave``, ``erin`` and ``frank`` are provisioned accounts whose phones are off: callees
  for the attacker's own calls, which then ring nobody;
- ``mallory`` is the attacker, a raw websocket client (or a raw TCP socket);
- ``probe`` is a fresh raw connection opened after the attack: it must register and place
  a call to carol, which must ring.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import looptime
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.protocol import State

from peers.client import PhoneClient
from peers.phone import Screen
from signaling.server import DEFAULT_HOST, DEFAULT_MAX_FRAME_SIZE, SignalingServer
from signaling.switchboard import Switchboard, SwitchboardLimits
from tests.conftest import Sandbox, token_for


LIMITS = SwitchboardLimits(
    messages_per_second=50.0,
    burst=100,
    max_calls_per_phone=2,
    max_pending_notices=100,
    register_timeout=5.0,
    max_errors=20,
    error_window=10.0,
)
"""Small where it makes a case short and clear: two calls per phone, five seconds to register."""

MAX_FRAME_SIZE = DEFAULT_MAX_FRAME_SIZE
"""256 KiB: kept at the default, so 100,000 nested arrays (200 kB) reach the parser."""

OPEN_TIMEOUT = 2.0
"""Seconds for the websocket opening handshake."""

HEARTBEAT_INTERVAL = 5.0
HEARTBEAT_TIMEOUT = 5.0

OFFLINE = ("dave", "erin", "frank")
"""Accounts whose phones are off: the attacker's calls to them ring nobody."""

REPLY_TIMEOUT = 2.0
"""Seconds to wait for a reply the server owes (it owes it at once)."""


class TortureBox(Sandbox):
    """A :class:`~tests.conftest.Sandbox` with the torture suite's limits, transport ones
    (which the base class does not take) included."""

    def __init__(
        self,
        *,
        limits: SwitchboardLimits = LIMITS,
        max_frame_size: int = MAX_FRAME_SIZE,
        open_timeout: float = OPEN_TIMEOUT,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
    ) -> None:
        self.limits = limits
        self.max_frame_size = max_frame_size
        self.open_timeout = open_timeout
        super().__init__(
            heartbeat_interval=heartbeat_interval,
            heartbeat_timeout=heartbeat_timeout,
            limits=limits,
        )

    def new_server(self, switchboard: Switchboard, *, port: int) -> SignalingServer:
        """The base class's server, plus the transport limits."""
        return SignalingServer(
            switchboard,
            host=DEFAULT_HOST,
            port=port,
            heartbeat_interval=self.heartbeat_interval,
            heartbeat_timeout=self.heartbeat_timeout,
            clock=self.now,
            logger=self.log,
            max_frame_size=self.max_frame_size,
            open_timeout=self.open_timeout,
        )


def raw_connect(box: Sandbox, **kwargs: Any) -> Any:
    """A raw websocket client (no keepalive, no compression, no proxy: loopback only)."""
    options: dict[str, Any] = {"proxy": None, "ping_interval": None, "compression": None}
    options.update(kwargs)
    return connect(box.server.url, **options)


def summary(reply: dict[str, Any]) -> str:
    """A reply in one word: an error's code (with the call_id it names), else its type
    (with the calls it resumes, for a ``registered`` that resumes any)."""
    if reply.get("type") == "registered" and reply.get("calls"):
        return f"registered{reply['calls']}"  # calls resumed: never for an attacker
    if reply.get("type") != "error":
        return str(reply.get("type"))
    if reply.get("call_id") is None:
        return str(reply["code"])
    return f"{reply['code']}({reply['call_id']})"


async def receive_json(raw: ClientConnection, within: float = REPLY_TIMEOUT) -> dict[str, Any]:
    """The next frame from the server, parsed (it must be a JSON object)."""
    async with asyncio.timeout(within):
        frame = await raw.recv()
    reply = json.loads(frame)
    assert isinstance(reply, dict), reply
    if reply.get("type") == "error":
        assert isinstance(reply.get("message"), str) and reply["message"], reply
    return reply


async def assert_still_open(raw: ClientConnection) -> None:
    """The connection is open and the server still answers a ping."""
    assert raw.state is State.OPEN, raw.close_exc
    pong = await raw.ping()
    async with asyncio.timeout(REPLY_TIMEOUT):
        await pong


@dataclass
class Arena:
    """A torture test's world; see the module docstring."""

    box: TortureBox
    alice: PhoneClient
    bob: PhoneClient
    carol: PhoneClient
    call_id: str = ""
    answered_at: float = 0.0
    attack_mark: int = 0
    probes: int = 0
    linger: float = 5.0
    """Seconds the bystanders' call goes on after the attack (and the liveness probe)."""
    virtual: bool = True
    """Whether the loop's clock is virtual (looptime's)."""

    @property
    def events(self) -> Any:
        return self.box.events

    async def bystanders_in_call(self) -> None:
        """alice calls bob and he answers; the attack starts right after."""
        start = self.events.mark()
        self.call_id = await self.alice.call("bob")
        assert self.call_id == "alice-1"  # the cases name it
        await self.events.wait(since=start, event="transition", who="bob", to="ringing")
        await self.bob.answer()
        answered = await self.events.wait(
            since=start, event="transition", who="alice", to="answered"
        )
        self.answered_at = float(answered["t"])
        self.attack_mark = self.events.mark()

    async def assert_server_alive(self) -> None:
        """A fresh connection registers and places a call, which rings carol's phone.

        Every reply is owed at once: a server that makes the probe wait (say, because it
        is busy with an attacker) fails here, with the time it was waited for.
        """
        self.probes += 1
        call_id = f"probe-{self.probes}"
        start = self.events.mark()
        async with raw_connect(self.box) as probe:
            register = {"type": "register", "name": "probe", "token": token_for("probe")}
            reply = await self.reply_to(probe, register)
            assert reply == {"type": "registered", "name": "probe", "blocks": [], "calls": []}
            offer = {"type": "offer", "call_id": call_id, "to": "carol", "kind": "audio"}
            reply = await self.reply_to(probe, {**offer, "sdp": "v=0"})
            assert reply == {"type": "ringing", "call_id": call_id}
            await probe.send(json.dumps({"type": "hangup", "call_id": call_id}))
            await self.events.wait(
                since=start, event="transition", who="carol", to="ended", within=REPLY_TIMEOUT
            )
        assert self.box.call_log("carol")[-1] == ("incoming", "probe", True, "canceled", None)

    async def reply_to(self, probe: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
        sent_at = self.box.now()
        await probe.send(json.dumps(frame))
        try:
            return await receive_json(probe, within=REPLY_TIMEOUT)
        except TimeoutError:
            pytest.fail(
                f"the server did not answer the probe's {frame['type']} (sent at "
                f"t={sent_at}) within {REPLY_TIMEOUT} s: it is stalled"
            )

    async def assert_bystanders_unaffected(self) -> None:
        """The bystanders' call went on untouched, and ends with the right duration on both."""
        since = self.attack_mark
        alice, bob = self.alice, self.bob
        for name in ("alice", "bob"):
            # Not a frame to either phone, not a transition, not a connection closed.
            sent = self.events.select(since=since, event="frame", receiver=name)
            assert sent == [], f"{name} was sent {sent}"
            assert self.events.select(since=since, event="transition", who=name) == []
            assert self.events.select(since=since, event="connection", who=name) == []
            assert self.box.switchboard.is_online(name)
        assert alice.phone.screen is Screen.IN_CALL
        assert bob.phone.screen is Screen.IN_CALL

        # Hang up a whole number of seconds after the answer, a little after now.
        duration = float(math.ceil(self.box.now() - self.answered_at) + self.linger)
        await asyncio.sleep(self.answered_at + duration - self.box.now())
        start = self.events.mark()
        await alice.hang_up()
        await self.events.wait(since=start, event="transition", who="bob", to="ended")
        # Exact in virtual time; on the real clock, within a few scheduling delays.
        tolerance = 0.0 if self.virtual else 0.25
        for name, direction, peer in (("alice", "outgoing", "bob"), ("bob", "incoming", "alice")):
            ((*entry, logged),) = self.box.call_log(name)
            assert entry == [direction, peer, True, "hung_up"], self.box.call_log(name)
            assert logged is not None and abs(logged - duration) <= tolerance, (name, logged)
        assert (self.box.labels("alice"), self.box.labels("bob")) == (["outgoing"], ["incoming"])
        assert alice.phone.errors == []
        assert bob.phone.errors == []
        for name in ("alice", "bob"):
            states = {e["to"] for e in self.events.select(event="transition", who=name)}
            assert "reconnecting" not in states, f"{name} went reconnecting"
            closed = self.events.select(event="connection", who=name)
            assert closed == [], f"{name}'s connection ended: {closed}"


@pytest.fixture
def arena() -> Iterator[Callable[..., contextlib.AbstractAsyncContextManager[Arena]]]:
    """Builds the arena inside the test: ``async with arena() as world:``.

    ``linger`` is how long the bystanders' call goes on after the attack; other keyword
    arguments go to :class:`TortureBox`.

    On entry the bystanders are in their call; on a clean exit the server is checked alive
    and the bystanders unaffected, then everything is stopped.
    """
    built: list[TortureBox] = []

    @contextlib.asynccontextmanager
    async def build(*, linger: float = 5.0, **options: Any) -> AsyncIterator[Arena]:
        box = TortureBox(**options)
        built.append(box)
        async with box:
            for name in OFFLINE:
                box.switchboard.provision(name, token_for(name))
            alice, bob, carol = await box.phones("alice", "bob", "carol")
            virtual = isinstance(asyncio.get_running_loop(), looptime.LoopTimeEventLoop)
            world = Arena(box, alice, bob, carol, linger=linger, virtual=virtual)
            await world.bystanders_in_call()
            yield world
            await world.assert_server_alive()
            await world.assert_bystanders_unaffected()

    yield build
    assert all(box.closed for box in built), "an arena was built but never closed"
