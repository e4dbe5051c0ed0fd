"""PhoneClient end to end: real server, real phones, real links and aiortc SDP, virtual time.

Each seed case asserts both phones' call logs (from ``Phone.call_log()``) and the frames on
the wire, as the server logged them, with their times relative to the moment the call was
placed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import pytest
from aiortc.sdp import SessionDescription

from peers.media import signaling_sdp
from peers.phone import Screen


pytestmark = pytest.mark.looptime

DIAL_TIMEOUT = 30.0


async def sleep_until(sb: Any, t: float) -> None:
    """Lets virtual time run on to sandbox time ``t``."""
    await asyncio.sleep(t - sb.now())


async def test_caller_cancels_while_ringing(sandbox):
    async with sandbox() as sb:
        alice, _bob = await sb.phones("alice", "bob")
        start = sb.events.mark()
        placed = sb.now()

        await alice.call("bob")
        await sb.events.wait(since=start, event="transition", who="alice", to="ringing")
        assert alice.phone.screen is Screen.RINGING
        assert sb.clients["bob"].phone.screen is Screen.INCOMING

        await sleep_until(sb, placed + 3)
        await alice.hang_up()
        await sb.events.wait(since=start, event="transition", who="bob", to="ended")

        assert sb.call_log("alice") == [("outgoing", "bob", True, "canceled", None)]
        assert sb.call_log("bob") == [("incoming", "alice", True, "canceled", None)]
        assert (sb.labels("alice"), sb.labels("bob")) == (["canceled"], ["missed"])
        assert sb.frames("alice", since=start, origin=placed) == [
            (0.0, "> offer"),
            (0.0, "< ringing"),
            (3.0, "> hangup"),
        ]
        assert sb.frames("bob", since=start, origin=placed) == [
            (0.0, "< incoming"),
            (0.0, "> ringing"),
            (3.0, "< call_ended"),
        ]
        # Bob's device rang and was told the call ended: no missed-call notice is kept.
        assert sb.switchboard.pending_notices("bob") == []


async def test_callee_without_signal_gets_the_missed_call_once_signal_returns(sandbox):
    async with sandbox(dial_timeout=DIAL_TIMEOUT) as sb:
        alice, bob = await sb.phones("alice", "bob")
        start = sb.events.mark()
        placed = sb.now()
        bob.lose_signal()

        await alice.call("bob")
        assert alice.phone.screen is Screen.CALLING
        ended = await sb.events.wait(since=start, event="transition", who="alice", to="ended")
        assert ended["t"] == placed + DIAL_TIMEOUT
        assert ended["cause"] == "unreachable"
        # The server found bob's link dead by its heartbeat (ping at 5 s, no pong by 10 s).
        lost = await sb.events.wait(since=start, event="connection", who="bob")
        assert (lost["state"], lost["t"]) == ("lost", placed + 10)
        assert bob.phone.call_log() == []

        await sleep_until(sb, placed + 60)
        back = sb.events.mark()
        bob.regain_signal()
        await sb.events.wait(since=back, event="frame", sender="bob", type="missed_call_ack")

        assert sb.call_log("alice") == [("outgoing", "bob", False, "unreachable", None)]
        assert sb.call_log("bob") == [("incoming", "alice", False, "unreachable", None)]
        assert (sb.labels("alice"), sb.labels("bob")) == (["canceled"], ["missed"])
        assert sb.frames("alice", since=start, origin=placed) == [
            (0.0, "> offer"),
            (30.0, "< call_ended"),
        ]
        assert sb.frames("bob", since=start, origin=placed) == [
            (0.0, "< incoming"),  # written into the black hole: it never reached bob
            (60.0, "> register"),
            (60.0, "< registered"),
            (60.0, "< missed_call"),
            (60.0, "> missed_call_ack"),
        ]
        assert sb.switchboard.pending_notices("bob") == []

        # Delivered once: the next registration brings no notice, and the log is unchanged.
        again = sb.events.mark()
        await bob.go_offline()
        await bob.go_online()
        await sb.registered("bob", since=again)
        await asyncio.sleep(1)  # anything more would have followed the registration at once
        assert [f for _, f in sb.frames("bob", since=again)] == ["> register", "< registered"]
        assert sb.call_log("bob") == [("incoming", "alice", False, "unreachable", None)]
        assert (sb.labels("alice"), sb.labels("bob")) == (["canceled"], ["missed"])


async def test_switched_off_callee_gets_the_missed_call_when_switched_on(sandbox):
    async with sandbox(dial_timeout=DIAL_TIMEOUT) as sb:
        alice, bob = await sb.phones("alice", "bob")
        start = sb.events.mark()
        placed = sb.now()

        await bob.power_off()
        lost = await sb.events.wait(since=start, event="connection", who="bob")
        # Reset with no close frame, as when a battery dies.
        assert (lost["state"], lost["code"], lost["t"]) == ("lost", 1006, placed)
        assert bob.phone.screen is Screen.OFF

        await alice.call("bob")
        ended = await sb.events.wait(since=start, event="transition", who="alice", to="ended")
        assert (ended["t"], ended["cause"]) == (placed + DIAL_TIMEOUT, "unreachable")

        await sleep_until(sb, placed + 45)
        await bob.power_on()
        await sb.events.wait(since=start, event="frame", sender="bob", type="missed_call_ack")

        assert sb.call_log("alice") == [("outgoing", "bob", False, "unreachable", None)]
        assert sb.call_log("bob") == [("incoming", "alice", False, "unreachable", None)]
        assert (sb.labels("alice"), sb.labels("bob")) == (["canceled"], ["missed"])
        assert sb.frames("alice", since=start, origin=placed) == [
            (0.0, "> offer"),
            (30.0, "< call_ended"),
        ]
        assert sb.frames("bob", since=start, origin=placed) == [
            (45.0, "> register"),
            (45.0, "< registered"),
            (45.0, "< missed_call"),
            (45.0, "> missed_call_ack"),
        ]

        # Delivered once: switched off and on again, bob gets no second notice.
        again = sb.events.mark()
        await bob.power_off()
        await bob.power_on()
        await sb.registered("bob", since=again)
        await asyncio.sleep(1)  # anything more would have followed the registration at once
        assert [f for _, f in sb.frames("bob", since=again)] == ["> register", "< registered"]
        assert len(bob.phone.call_log()) == 1


async def test_callee_who_blocked_the_caller_gets_nothing(sandbox):
    async with sandbox(dial_timeout=DIAL_TIMEOUT) as sb:
        alice, bob = await sb.phones("alice", "bob")
        blocked = sb.events.mark()
        await bob.block("alice")
        await sb.events.wait(since=blocked, event="frame", sender="bob", type="block")
        start = sb.events.mark()
        placed = sb.now()

        await alice.call("bob")
        ended = await sb.events.wait(since=start, event="transition", who="alice", to="ended")
        assert (ended["t"], ended["cause"]) == (placed + DIAL_TIMEOUT, "unreachable")

        # Not even a notice after a restart of bob's phone.
        await sleep_until(sb, placed + 40)
        await bob.power_off()
        await bob.power_on()
        await sb.registered("bob", since=start)
        await asyncio.sleep(1)  # anything more would have followed the registration at once

        assert sb.call_log("alice") == [("outgoing", "bob", False, "unreachable", None)]
        assert sb.call_log("bob") == []
        assert (sb.labels("alice"), sb.labels("bob")) == (["canceled"], [])
        assert sb.frames("alice", since=start, origin=placed) == [
            (0.0, "> offer"),
            (30.0, "< call_ended"),
        ]
        assert sb.frames("bob", since=start, origin=placed) == [
            (40.0, "> register"),
            (40.0, "< registered"),
        ]
        assert sb.switchboard.pending_notices("bob") == []
        assert sb.events.select(since=start, event="transition", who="bob") == []


async def test_a_block_looks_exactly_like_a_switched_off_phone_to_the_caller(sandbox):
    async with sandbox(dial_timeout=DIAL_TIMEOUT) as sb:
        alice, carol = await sb.phones("alice", "carol")
        await carol.block("alice")
        sb.phone("dave", power=False)

        seen: dict[str, tuple[list[tuple[float, str]], list[tuple[float, str]]]] = {}
        for callee in ("carol", "dave"):
            start = sb.events.mark()
            placed = sb.now()
            await alice.call(callee)
            await sb.events.wait(since=start, event="transition", who="alice", to="ended")
            screens = [
                (round(e["t"] - placed, 6), e["screen"])
                for e in sb.events.select(since=start, event="screen", who="alice")
            ]
            seen[callee] = (sb.frames("alice", since=start, origin=placed), screens)
            await sleep_until(sb, placed + 40)

        frames, screens = seen["carol"]
        assert seen["dave"] == seen["carol"]
        assert frames == [(0.0, "> offer"), (30.0, "< call_ended")]
        assert screens == [(0.0, "calling"), (30.0, "ended")]
        assert sb.call_log("alice") == [
            ("outgoing", "carol", False, "unreachable", None),
            ("outgoing", "dave", False, "unreachable", None),
        ]
        assert sb.call_log("carol") == []
        assert sb.frames("carol") == [(0.0, "> register"), (0.0, "< registered"), (0.0, "> block")]


async def test_blocked_caller_stays_unseen_when_the_callee_connects_during_the_dial_timer(
    sandbox,
):
    """Bob, who blocked alice, switches his phone on while her call is still dialing.

    "Nothing, ever" (DESIGN.md): his phone must not ring, and alice must not hear Ringing…
    (which a switched-off phone would never give her).
    """
    async with sandbox(dial_timeout=DIAL_TIMEOUT) as sb:
        (alice,) = await sb.phones("alice")
        bob = sb.phone("bob", power=False, blocks=("alice",))
        start = sb.events.mark()
        placed = sb.now()

        await alice.call("bob")
        await sleep_until(sb, placed + 10)
        await bob.power_on()
        await sb.registered("bob", since=start)
        await sb.events.wait(since=start, event="transition", who="alice", to="ended")

        assert sb.frames("bob", since=start, origin=placed) == [
            (10.0, "> register"),
            (10.0, "< registered"),
        ]
        assert sb.call_log("bob") == []
        assert (sb.labels("alice"), sb.labels("bob")) == (["canceled"], [])
        assert sb.frames("alice", since=start, origin=placed) == [
            (0.0, "> offer"),
            (30.0, "< call_ended"),
        ]
        assert sb.call_log("alice") == [("outgoing", "bob", False, "unreachable", None)]


async def test_answered_call_hung_up_by_the_callee_has_the_same_duration_on_both_ends(sandbox):
    async with sandbox() as sb:
        alice, bob = await sb.phones("alice", "bob")
        start = sb.events.mark()
        placed = sb.now()

        await alice.call("bob", "video")
        await sb.events.wait(since=start, event="transition", who="bob", to="ringing")
        await sleep_until(sb, placed + 2)
        await bob.answer()
        await sb.events.wait(since=start, event="transition", who="alice", to="answered")
        assert alice.phone.screen is Screen.IN_CALL
        assert bob.phone.screen is Screen.IN_CALL
        await sleep_until(sb, placed + 32)
        await bob.hang_up()
        await sb.events.wait(since=start, event="transition", who="alice", to="ended")

        assert sb.call_log("alice") == [("outgoing", "bob", True, "hung_up", 30.0)]
        assert sb.call_log("bob") == [("incoming", "alice", True, "hung_up", 30.0)]
        assert (sb.labels("alice"), sb.labels("bob")) == (["outgoing"], ["incoming"])
        assert [s.info.kind for s in alice.phone.call_log()] == ["video"]
        assert sb.frames("alice", since=start, origin=placed) == [
            (0.0, "> offer"),
            (0.0, "< ringing"),
            (2.0, "< answer"),
            (32.0, "< call_ended"),
        ]
        assert sb.frames("bob", since=start, origin=placed) == [
            (0.0, "< incoming"),
            (0.0, "> ringing"),
            (2.0, "> answer"),
            (32.0, "> hangup"),
        ]
        # The answer SDP aiortc made was checked by the caller without complaint.
        assert sb.events.select(since=start, event="error") == []


async def test_two_signaling_only_calls_carry_the_real_aiortc_sdp_made_once(sandbox):
    async with sandbox() as sb:
        alice, bob = await sb.phones("alice", "bob")
        offers, answers = [], []
        for _ in range(2):
            start = sb.events.mark()
            call_id = await alice.call("bob")
            await sb.events.wait(since=start, event="transition", who="bob", to="ringing")
            ringing = bob.phone.ringing_offer()
            assert ringing is not None
            offers.append(ringing[1])
            await bob.answer()
            await sb.events.wait(since=start, event="transition", who="alice", to="answered")
            answers.append(alice.phone.answer_sdp(call_id))
            # Neither phone made a peer connection for the call.
            assert alice._media[call_id].pc is None
            assert bob._media[call_id].pc is None
            await alice.hang_up()
            await sb.events.wait(since=start, event="transition", who="bob", to="ended")
        shared = signaling_sdp("audio")
        assert offers == [shared.offer] * 2
        assert answers == [shared.answer] * 2
        parsed = SessionDescription.parse(offers[0])
        candidates = [c for m in parsed.media for c in m.ice_candidates]
        assert candidates and {(c.ip, c.type) for c in candidates} == {("127.0.0.1", "host")}
        assert all(m.dtls is not None and m.dtls.fingerprints for m in parsed.media)
        assert sb.events.select(event="error") == []


def tcp_sockets_to(port: int) -> list[str]:
    """This process's open TCP sockets whose peer is 127.0.0.1:``port``, by state (Linux)."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            ours.add(os.readlink(f"/proc/self/fd/{fd}"))
    states = []
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if remote_port == port and f"socket:[{fields[9]}]" in ours:
                states.append(fields[3])
    return states


async def test_stopping_phones_leaves_no_socket_to_the_server_open(sandbox):
    """PhoneClient.stop() must release the radio's sockets, even with no signal."""
    async with sandbox() as sb:
        alice, bob = await sb.phones("alice", "bob")
        port = sb.server.port
        assert len(tcp_sockets_to(port)) == 2
        start = sb.events.mark()
        bob.lose_signal()
        await sb.events.wait(since=start, event="connection", who="bob", state="lost")

        await alice.stop()
        await bob.stop()
        await asyncio.sleep(1)  # let every close run its course
        assert tcp_sockets_to(port) == []
