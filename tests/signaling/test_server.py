"""SignalingServer over real websockets on 127.0.0.1, with real phones, in virtual time.

Raw frames come from a plain ``websockets`` client connection (``proxy=None``: nothing
leaves loopback), the kind of peer a well-behaved PhoneClient never is.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from peers.phone import Screen
from signaling.messages import ErrorCode
from signaling.switchboard import SwitchboardLimits
from tests.conftest import token_for


pytestmark = pytest.mark.looptime


def raw_connect(sb: Any) -> Any:
    """A raw websocket client to the sandbox's server (no keepalive of its own)."""
    return connect(sb.server.url, proxy=None, ping_interval=None, compression=None)


async def exchange(raw: ClientConnection, frame: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """Sends one frame and returns the server's reply, parsed."""
    await raw.send(json.dumps(frame) if isinstance(frame, dict) else frame)
    async with asyncio.timeout(1):
        reply = json.loads(await raw.recv())
    assert isinstance(reply, dict)
    return reply


async def assert_still_open(raw: ClientConnection) -> None:
    assert raw.state is State.OPEN
    pong = await raw.ping()
    async with asyncio.timeout(1):
        await pong


async def in_call(sb: Any, caller: Any, callee: Any) -> float:
    """Places a call and answers it; returns when it was answered."""
    start = sb.events.mark()
    await caller.call(callee.name)
    await sb.events.wait(since=start, event="transition", who=callee.name, to="ringing")
    await callee.answer()
    answered = await sb.events.wait(since=start, event="transition", who=caller.name, to="answered")
    return float(answered["t"])


OFFER = {"type": "offer", "call_id": "m1", "to": "bob", "kind": "audio", "sdp": "v=0"}

BEFORE_REGISTRATION = [
    pytest.param("hello", ErrorCode.BAD_FRAME, None, id="not-json"),
    pytest.param("[1, 2]", ErrorCode.BAD_FRAME, None, id="json-array"),
    pytest.param("", ErrorCode.BAD_FRAME, None, id="empty"),
    pytest.param({"type": "teleport", "call_id": "x1"}, ErrorCode.UNKNOWN_TYPE, "x1", id="unknown"),
    pytest.param({"name": "mallory"}, ErrorCode.UNKNOWN_TYPE, None, id="no-type"),
    pytest.param(
        {"type": "registered", "name": "mallory", "blocks": [], "calls": []},
        ErrorCode.UNKNOWN_TYPE,
        None,
        id="server-only-type",
    ),
    pytest.param(
        {"type": "register", "name": "Mallory!", "token": token_for("mallory")},
        ErrorCode.INVALID_FIELD,
        None,
        id="bad-name",
    ),
    pytest.param(
        {"type": "register", "name": "mallory", "token": "short"},
        ErrorCode.INVALID_FIELD,
        None,
        id="short-token",
    ),
    pytest.param({**OFFER, "from": "alice"}, ErrorCode.INVALID_FIELD, "m1", id="smuggled-from"),
    pytest.param(
        {"type": "block", "name": "bob"}, ErrorCode.NOT_REGISTERED, None, id="unregistered"
    ),
]

AFTER_REGISTRATION = [
    pytest.param({**OFFER, "from": "alice"}, ErrorCode.INVALID_FIELD, "m1", id="smuggled-from"),
    pytest.param({**OFFER, "to": "Bob"}, ErrorCode.INVALID_FIELD, "m1", id="bad-callee"),
    pytest.param({**OFFER, "kind": "fax"}, ErrorCode.INVALID_FIELD, "m1", id="bad-kind"),
    pytest.param({"type": "hangup"}, ErrorCode.INVALID_FIELD, None, id="missing-call-id"),
    pytest.param(
        {"type": "incoming", "call_id": "m1", "from": "alice", "kind": "audio", "sdp": "v=0"},
        ErrorCode.UNKNOWN_TYPE,
        "m1",
        id="server-only-incoming",
    ),
    pytest.param(
        {"type": "register", "name": "mallory", "token": token_for("mallory")},
        ErrorCode.ALREADY_REGISTERED,
        None,
        id="registers-twice",
    ),
    pytest.param({"type": "hangup", "call_id": "alice-1"}, ErrorCode.NOT_YOUR_CALL, "alice-1"),
    pytest.param(
        {"type": "answer", "call_id": "alice-1", "sdp": "v=0"}, ErrorCode.NOT_YOUR_CALL, "alice-1"
    ),
    pytest.param({"type": "hangup", "call_id": "nope"}, ErrorCode.UNKNOWN_CALL, "nope"),
    pytest.param({**OFFER, "to": "mallory"}, ErrorCode.SELF_CALL, "m1", id="self-call"),
    pytest.param({**OFFER, "to": "zed"}, ErrorCode.UNKNOWN_PHONE, "m1", id="unknown-phone"),
]


def params(cases: list[Any]) -> list[tuple[Any, ErrorCode, str | None]]:
    return [tuple(case.values) for case in cases]


async def test_malformed_frames_get_errors_and_disturb_no_call_in_progress(sandbox):
    # Many refusals on one connection: the abuse limit is raised so every reply is seen.
    async with sandbox(limits=SwitchboardLimits(max_errors=1000)) as sb:
        alice, bob = await sb.phones("alice", "bob")
        answered = await in_call(sb, alice, bob)
        start = sb.events.mark()

        async with raw_connect(sb) as raw:
            for frame, code, call_id in params(BEFORE_REGISTRATION):
                reply = await exchange(raw, frame)
                assert (reply["type"], reply["code"], reply["call_id"]) == ("error", code, call_id)
                assert reply["message"]
            reply = await exchange(
                raw, {"type": "register", "name": "mallory", "token": token_for("mallory")}
            )
            assert reply == {"type": "registered", "name": "mallory", "blocks": [], "calls": []}
            for frame, code, call_id in params(AFTER_REGISTRATION):
                reply = await exchange(raw, frame)
                assert (reply["type"], reply["code"], reply["call_id"]) == ("error", code, call_id)
            await assert_still_open(raw)

            # One error frame per refused frame, all to the raw client and none to anyone else.
            refused = len(BEFORE_REGISTRATION) + len(AFTER_REGISTRATION)
            errors = sb.events.select(since=start, event="frame", sender="server", type="error")
            assert len(errors) == refused
            assert {e["receiver"] for e in errors} == {"conn-3", "mallory"}
            assert sb.frames("alice", since=start) == []
            assert sb.frames("bob", since=start) == []
            assert alice.phone.screen is Screen.IN_CALL
            assert bob.phone.screen is Screen.IN_CALL
            assert sb.switchboard.active_calls == 1

        # The bystanders' call goes on, and ends as it should.
        await asyncio.sleep(answered + 20 - sb.now())
        await alice.hang_up()
        await sb.events.wait(since=start, event="transition", who="bob", to="ended")
        assert sb.call_log("alice") == [("outgoing", "bob", True, "hung_up", 20.0)]
        assert sb.call_log("bob") == [("incoming", "alice", True, "hung_up", 20.0)]
        assert (sb.labels("alice"), sb.labels("bob")) == (["outgoing"], ["incoming"])
        assert alice.phone.errors == []
        assert bob.phone.errors == []


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(b"\x00\xff\xfe binary junk", id="junk"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b"[]", id="json-array"),
    ],
)
async def test_binary_frame_that_is_not_a_json_object_gets_bad_frame(sandbox, frame):
    async with sandbox() as sb, raw_connect(sb) as raw:
        reply = await exchange(raw, frame)
        assert (reply["type"], reply["code"]) == ("error", ErrorCode.BAD_FRAME)
        await assert_still_open(raw)
        # Nothing else happened: the connection can still register.
        reply = await exchange(
            raw, {"type": "register", "name": "mallory", "token": token_for("mallory")}
        )
        assert reply["type"] == "registered"


async def test_wrong_token_gets_bad_token_and_the_holder_keeps_working(sandbox):
    async with sandbox() as sb:
        alice, _bob = await sb.phones("alice", "bob")
        start = sb.events.mark()
        async with raw_connect(sb) as raw:
            impostor = {"type": "register", "name": "alice", "token": "not-alices-token-0000"}
            reply = await exchange(raw, impostor)
            assert (reply["type"], reply["code"]) == ("error", ErrorCode.BAD_TOKEN)
            await assert_still_open(raw)
            # The refused connection may try again, as someone else.
            reply = await exchange(
                raw, {"type": "register", "name": "mallory", "token": token_for("mallory")}
            )
            assert reply["type"] == "registered"

            # The holder was not disturbed: no connection of alice's closed, nothing was sent
            # to it (the one frame under alice's name is the impostor's claim), and it works.
            assert sb.events.select(since=start, event="connection", who="alice") == []
            assert sb.frames("alice", since=start) == [(0.0, "> register")]
            assert sb.switchboard.is_online("alice")
            await alice.call("bob")
            await sb.events.wait(since=start, event="transition", who="alice", to="ringing")
            await alice.hang_up()
            await sb.events.wait(since=start, event="transition", who="bob", to="ended")
        assert sb.call_log("alice") == [("outgoing", "bob", True, "canceled", None)]
        assert sb.call_log("bob") == [("incoming", "alice", True, "canceled", None)]
        assert alice.phone.errors == []


async def test_not_registered_error_names_the_call_the_frame_named(sandbox):
    """docs/protocol.md: an error's call_id is the one the refused frame named, if readable."""
    async with sandbox() as sb, raw_connect(sb) as raw:
        reply = await exchange(raw, OFFER)
        assert (reply["type"], reply["code"]) == ("error", ErrorCode.NOT_REGISTERED)
        assert reply["call_id"] == "m1"


async def test_right_token_from_a_second_connection_replaces_the_first(sandbox):
    async with sandbox() as sb:
        alice, bob = await sb.phones("alice", "bob")
        first = sb.connection_of("alice")
        start = sb.events.mark()
        async with raw_connect(sb) as raw:
            reply = await exchange(
                raw, {"type": "register", "name": "alice", "token": token_for("alice")}
            )
            assert reply == {"type": "registered", "name": "alice", "blocks": [], "calls": []}
            closed = await sb.events.wait(since=start, event="connection", conn=first)
            assert (closed["code"], closed["t"]) == (4001, 0.0)

            # The phone holds the token too: it reconnects at once and wins the name back,
            # and the raw connection is the one replaced now.
            with pytest.raises(ConnectionClosed) as excinfo:
                async with asyncio.timeout(5):
                    await raw.recv()
            assert excinfo.value.rcvd is not None
            assert excinfo.value.rcvd.code == 4001
            assert excinfo.value.rcvd.reason == "replaced by a newer connection of the same name"

        await sb.events.wait(since=start, event="frame", receiver="alice", type="registered")
        assert alice.phone.registered
        await alice.call("bob")
        await sb.events.wait(since=start, event="transition", who="bob", to="ringing")
        await bob.decline()
        await sb.events.wait(since=start, event="transition", who="alice", to="ended")
        assert sb.call_log("alice") == [("outgoing", "bob", True, "declined", None)]
        assert sb.call_log("bob") == [("incoming", "alice", True, "declined", None)]
        assert (sb.labels("alice"), sb.labels("bob")) == (["declined"], ["declined"])


async def test_replaced_connection_is_logged_as_closed_cleanly(sandbox):
    """A 4001 close completes the closing handshake: it is a clean close, not a lost link."""
    async with sandbox() as sb:
        await sb.phones("alice")
        first = sb.connection_of("alice")
        start = sb.events.mark()
        async with raw_connect(sb) as raw:
            await exchange(raw, {"type": "register", "name": "alice", "token": token_for("alice")})
            closed = await sb.events.wait(since=start, event="connection", conn=first)
        assert closed["code"] == 4001
        assert closed["state"] == "closed"


async def test_crash_resets_connections_and_phones_reconnect_to_a_new_server(sandbox):
    async with sandbox() as sb:
        alice, bob = await sb.phones("alice", "bob")
        answered = await in_call(sb, alice, bob)
        port = sb.server.port
        async with raw_connect(sb) as raw:
            await exchange(raw, {"type": "register", "name": "carol", "token": token_for("carol")})
            await asyncio.sleep(answered + 15 - sb.now())
            old = sb.switchboard
            crashed = sb.now()
            start = sb.events.mark()

            await sb.crash_and_restart()

            # Reset with no close frame.
            async with asyncio.timeout(1):
                await raw.wait_closed()
            assert raw.close_code == 1006
            assert isinstance(raw.close_exc, ConnectionClosed)
            assert raw.close_exc.rcvd is None
        assert sb.server.port == port

        for name in ("alice", "bob"):
            await sb.events.wait(since=start, event="frame", receiver=name, type="registered")
        reconnected = sb.now()
        assert reconnected - crashed <= 1.0  # at once, or after the first 0.5 s backoff
        # The dead process noticed nothing: no disconnect was logged, none reached its logic.
        assert {e["state"] for e in sb.events.select(since=start, event="connection")} <= {
            "opened",
            "failed",
        }
        assert old.is_online("alice") and old.active_calls == 1

        # Both phones listed the call; the new server does not hold it: dropped on both ends,
        # each with the time up to the loss (the crash).
        for name in ("alice", "bob"):
            await sb.events.wait(since=start, event="transition", who=name, to="ended")
        assert sb.call_log("alice") == [("outgoing", "bob", True, "dropped", 15.0)]
        assert sb.call_log("bob") == [("incoming", "alice", True, "dropped", 15.0)]
        assert (sb.labels("alice"), sb.labels("bob")) == (["dropped"], ["dropped"])
        assert sb.switchboard.active_calls == 0

        # The new server works: accounts survived the crash.
        again = sb.events.mark()
        await bob.call("alice")
        await sb.events.wait(since=again, event="transition", who="alice", to="ringing")
        await alice.decline()
        await sb.events.wait(since=again, event="transition", who="bob", to="ended")
        assert sb.call_log("bob")[-1] == ("outgoing", "alice", True, "declined", None)
        assert sb.call_log("alice")[-1] == ("incoming", "bob", True, "declined", None)


async def test_a_provisioned_phone_survives_a_crash_before_any_frame(sandbox):
    # Found by exploration (seed 178): accounts made before any frame were only in memory,
    # so the restarted server refused calls to them as unknown_phone.
    async with sandbox() as sb:
        sb.phone("alice", power=False)
        await sb.crash_and_restart()
        assert "alice" in sb.switchboard.accounts
        (bob,) = await sb.phones("bob")
        start = sb.events.mark()
        await bob.call("alice")
        placed = await sb.events.wait(since=start, event="transition", who="server")
        assert (placed["to"], placed["callee"]) == ("dialing", "alice")
        assert sb.events.select(since=start, event="error") == []


async def test_a_frame_behind_unsent_bytes_waits_its_turn(sandbox, monkeypatch):
    """A reply is written at once only when nothing is ahead of it; otherwise it queues."""
    async with sandbox() as sb, raw_connect(sb) as raw:
        await exchange(raw, {"type": "register", "name": "mallory", "token": token_for("mallory")})
        (websocket,) = sb.server._connections.values()
        # The server's socket reports unsent bytes once: the next reply goes to the
        # connection's writer task; those after it must not overtake it.
        backlog = iter([1])
        monkeypatch.setattr(websocket.transport, "get_write_buffer_size", lambda: next(backlog, 0))
        for call_id in ("q1", "q2", "q3"):
            await raw.send(json.dumps({"type": "hangup", "call_id": call_id}))
        async with asyncio.timeout(1):
            replies = [json.loads(await raw.recv()) for _ in range(3)]
        assert [(r["code"], r["call_id"]) for r in replies] == [
            (ErrorCode.UNKNOWN_CALL, "q1"),
            (ErrorCode.UNKNOWN_CALL, "q2"),
            (ErrorCode.UNKNOWN_CALL, "q3"),
        ]
        assert next(backlog, None) is None  # the backlog was seen
        await assert_still_open(raw)
