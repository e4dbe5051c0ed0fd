"""Transcripts of the switchboard with real phones: every row of DESIGN.md's behaviour table.

Each test plays a call step by step on an in-memory :class:`~tests.transcripts.Exchange`
and asserts what each end's call log says (direction, reached, answered, end cause,
duration), the frames that crossed the wire, and the server's recorded transitions.
Timers: dial 30 s, ring 45 s, reconnect grace 10 s.
"""

import pytest

from peers.phone import Screen
from signaling.calls import CallState, Cause
from signaling.messages import (
    Answer,
    Block,
    Busy,
    CallEnded,
    Candidate,
    Decline,
    Hangup,
    MissedCall,
    MissedCallAck,
    Offer,
    Register,
    Registered,
    Ringing,
)
from signaling.records import Account, AccountCreated, BlockChanged, CallChanged
from signaling.switchboard import (
    CLOSE_ABUSE,
    CLOSE_REGISTER_TIMEOUT,
    CLOSE_REPLACED,
    ConnectionId,
    Switchboard,
    SwitchboardLimits,
    SwitchboardSettings,
)
from tests.transcripts import OFFER_SDP, Exchange, outline, token_for


SETTINGS = SwitchboardSettings(dial_timeout=30.0, ring_timeout=45.0, reconnect_grace=10.0)


def entry(
    direction: str,
    peer: str,
    *,
    reached: bool,
    answered: bool = False,
    end_cause: str,
    duration: float | None = None,
) -> dict[str, object]:
    return {
        "direction": direction,
        "peer": peer,
        "reached": reached,
        "answered": answered,
        "end_cause": end_cause,
        "duration": duration,
    }


@pytest.fixture
def ex() -> Exchange:
    exchange = Exchange(SETTINGS)
    exchange.add_phone("alice")
    exchange.add_phone("bob")
    return exchange


# --- Caller hangs up before the callee picks up: canceled / missed ----------------------------


def test_caller_cancels_while_ringing(ex):
    cid = ex.call("alice", "bob", 0)
    assert ex.ladder[-4:] == [
        ("alice", "server", "offer"),
        ("server", "bob", "incoming"),
        ("bob", "server", "ringing"),
        ("server", "alice", "ringing"),
    ]
    assert ex.phones["alice"].screen is Screen.RINGING  # Ringing…, not Calling…
    assert ex.phones["bob"].screen is Screen.INCOMING

    ex.hang_up("alice", 3)
    assert ex.ladder[-2:] == [("alice", "server", "hangup"), ("server", "bob", "call_ended")]
    assert ex.received("bob")[-1].message.reason == "canceled"
    assert ex.received_types("alice", since=1) == []
    ex.advance(100)
    assert ex.received_types("bob", since=4) == []  # no notice: bob was reached and told
    assert ex.switchboard.pending_notices("bob") == []

    assert ex.server_steps(cid) == [
        ("dialing", "placed", 0),
        ("ringing", "reached", 0),
        ("ended", "canceled", 3),
    ]
    assert outline(ex.entry("alice")) == entry(
        "outgoing", "bob", reached=True, end_cause="canceled"
    )
    assert outline(ex.entry("bob")) == entry(
        "incoming", "alice", reached=True, end_cause="canceled"
    )


def test_caller_cancels_while_callee_offline(ex):
    ex.disconnect("bob", 0)  # airplane mode: both ends know
    cid = ex.call("alice", "bob", 1)
    assert ex.phones["alice"].screen is Screen.CALLING
    ex.hang_up("alice", 6)
    assert ex.received_types("alice", since=1) == []
    assert ex.server_steps(cid) == [("dialing", "placed", 1), ("ended", "canceled", 6)]
    assert [n.call_id for n in ex.switchboard.pending_notices("bob")] == [cid]
    assert ex.log("bob") == []

    ex.connect("bob", 20)
    assert ex.received_types("bob", since=20) == [(20, "registered"), (20, "missed_call")]
    assert ex.sent_types("bob", since=20) == [(20, "register"), (20, "missed_call_ack")]
    notice = ex.received("bob")[-1].message
    assert notice == MissedCall(
        call_id=cid, from_="alice", kind="audio", placed_at=1, reason="canceled"
    )
    assert ex.switchboard.pending_notices("bob") == []

    assert outline(ex.entry("alice")) == entry(
        "outgoing", "bob", reached=False, end_cause="canceled"
    )
    assert outline(ex.entry("bob")) == entry(
        "incoming", "alice", reached=False, end_cause="canceled"
    )
    assert ex.entry("bob").ended_at == 20  # logged when it was delivered


def test_caller_cancels_while_callee_black_holed(ex):
    ex.lose_signal("bob", 0)
    cid = ex.call("alice", "bob", 1)
    lost = [f.step for f in ex.frames if not f.delivered]
    assert lost == [("server", "bob", "incoming")]
    assert ex.phones["alice"].screen is Screen.CALLING
    ex.hang_up("alice", 6)
    assert ex.received_types("alice", since=1) == []
    ex.disconnect("bob", 15)  # the heartbeat finds the link dead
    assert ex.log("bob") == []
    ex.regain_signal("bob", 20)
    assert ex.received_types("bob", since=20) == [(20, "registered"), (20, "missed_call")]
    assert ex.server_steps(cid)[-1] == ("ended", "canceled", 6)
    assert outline(ex.entry("alice")) == entry(
        "outgoing", "bob", reached=False, end_cause="canceled"
    )
    assert outline(ex.entry("bob")) == entry(
        "incoming", "alice", reached=False, end_cause="canceled"
    )


# --- Callee has no signal; the dial timer fires: canceled / missed, delivered later ------------


def test_callee_without_signal_dial_timer_fires(ex):
    ex.lose_signal("bob", 0)
    cid = ex.call("alice", "bob", 1)
    ex.advance(30.9)
    assert ex.phones["alice"].screen is Screen.CALLING
    assert ex.switchboard.active_calls == 1
    ex.advance(31)
    assert ex.received_types("alice", since=1) == [(31, "call_ended")]
    assert ex.received("alice")[-1].message.reason == "unreachable"
    assert ex.server_steps(cid) == [("dialing", "placed", 1), ("ended", "unreachable", 31)]
    assert ex.phones["alice"].screen is Screen.ENDED

    ex.disconnect("bob", 40)
    assert ex.log("bob") == []
    ex.regain_signal("bob", 50)
    # Delivered exactly once, and acknowledged.
    assert ex.received_types("bob", since=50) == [(50, "registered"), (50, "missed_call")]
    assert ex.sent_types("bob", since=50) == [(50, "register"), (50, "missed_call_ack")]
    assert ex.switchboard.pending_notices("bob") == []
    assert outline(ex.entry("alice")) == entry(
        "outgoing", "bob", reached=False, end_cause="unreachable"
    )
    assert outline(ex.entry("bob")) == entry(
        "incoming", "alice", reached=False, end_cause="unreachable"
    )
    assert ex.entry("bob").ended_at == 50

    # Not sent again once acknowledged.
    ex.disconnect("bob", 60)
    ex.connect("bob", 70)
    assert ex.received_types("bob", since=60) == [(70, "registered")]
    assert len(ex.log("bob")) == 1


def test_notice_is_sent_again_on_every_registration_until_acknowledged(ex):
    ex.disconnect("bob", 0)
    cid = ex.call("alice", "bob", 1)
    ex.hang_up("alice", 2)
    ex.drop_next("bob", "missed_call_ack")
    ex.connect("bob", 10)
    assert [f.step for f in ex.frames if not f.delivered] == [("bob", "server", "missed_call_ack")]
    assert [n.call_id for n in ex.switchboard.pending_notices("bob")] == [cid]
    assert len(ex.log("bob")) == 1

    ex.disconnect("bob", 20)
    ex.connect("bob", 30)
    assert ex.received_types("bob", since=30) == [(30, "registered"), (30, "missed_call")]
    assert ex.sent_types("bob", since=30) == [(30, "register"), (30, "missed_call_ack")]
    assert ex.switchboard.pending_notices("bob") == []
    # Logged exactly once, when it first came.
    assert outline(ex.entry("bob")) == entry(
        "incoming", "alice", reached=False, end_cause="canceled"
    )
    assert ex.entry("bob").ended_at == 10
    assert ex.phone_steps("bob", cid) == [("ended", "canceled", 10)]

    ex.disconnect("bob", 40)
    ex.connect("bob", 50)
    assert ex.received_types("bob", since=50) == [(50, "registered")]


def test_acks_are_idempotent(ex):
    ex.send("bob", MissedCallAck(call_id="never-was"), 1)
    ex.send("bob", MissedCallAck(call_id="never-was"), 2)
    assert ex.errors("bob") == []


# --- Callee switched off: canceled / missed, delivered when switched on -----------------------


def test_callee_switched_off_then_on(ex):
    ex.power_off("bob", 0)
    assert not ex.switchboard.is_online("bob")
    cid = ex.call("alice", "bob", 1)
    assert ex.phones["alice"].screen is Screen.CALLING
    ex.advance(31)
    assert ex.received_types("alice", since=1) == [(31, "call_ended")]
    assert ex.received("alice")[-1].message.reason == "unreachable"
    ex.power_on("bob", 60)
    assert ex.received_types("bob", since=60) == [(60, "registered"), (60, "missed_call")]
    assert ex.received("bob")[-1].message == MissedCall(
        call_id=cid, from_="alice", kind="audio", placed_at=1, reason="unreachable"
    )
    assert outline(ex.entry("alice")) == entry(
        "outgoing", "bob", reached=False, end_cause="unreachable"
    )
    assert outline(ex.entry("bob")) == entry(
        "incoming", "alice", reached=False, end_cause="unreachable"
    )


def test_callee_switched_on_while_still_dialing_rings(ex):
    ex.power_off("bob", 0)
    cid = ex.call("alice", "bob", 1)
    ex.power_on("bob", 10)
    assert ex.received_types("bob", since=10) == [(10, "registered"), (10, "incoming")]
    assert ex.received_types("alice", since=1) == [(10, "ringing")]
    assert ex.screen_history("alice") == [(Screen.CALLING, 1), (Screen.RINGING, 10)]
    ex.answer("bob", 12)
    ex.hang_up("alice", 20)
    assert ex.server_steps(cid) == [
        ("dialing", "placed", 1),
        ("ringing", "reached", 10),
        ("answered", "answered", 12),
        ("ended", "hung_up", 20),
    ]
    assert outline(ex.entry("alice")) == entry(
        "outgoing", "bob", reached=True, answered=True, end_cause="hung_up", duration=8
    )
    assert outline(ex.entry("bob")) == entry(
        "incoming", "alice", reached=True, answered=True, end_cause="hung_up", duration=8
    )
    assert ex.switchboard.pending_notices("bob") == []


# --- Callee has blocked the caller: indistinguishable from switched off; nothing, ever ---------


def _blocked_or_off(case: str, outcome: str) -> tuple[Exchange, str]:
    ex = Exchange(SETTINGS)
    ex.add_phone("alice")
    ex.add_phone("carol")
    if case == "blocked":
        ex.block("carol", "alice", 0)
    else:
        ex.power_off("carol", 0)
    cid = ex.call("alice", "carol", 1)
    if outcome == "caller_cancels":
        ex.hang_up("alice", 11)
    ex.advance(100)
    return ex, cid


@pytest.mark.parametrize("outcome", ["dial_timer", "caller_cancels"])
def test_blocked_caller_gets_exactly_what_a_switched_off_callee_gives(outcome):
    blocked, cid = _blocked_or_off("blocked", outcome)
    off, off_cid = _blocked_or_off("off", outcome)
    assert cid == off_cid

    def seen_by_alice(ex: Exchange) -> list[tuple[float, object]]:
        return [(f.at, f.message) for f in ex.received("alice", since=1)]

    assert seen_by_alice(blocked) == seen_by_alice(off)
    assert blocked.screen_history("alice") == off.screen_history("alice")
    assert outline(blocked.entry("alice")) == outline(off.entry("alice"))
    if outcome == "dial_timer":
        assert blocked.received_types("alice", since=1) == [(31, "call_ended")]
        assert blocked.received("alice")[-1].message == CallEnded(cid, "unreachable")
    else:
        assert blocked.received_types("alice", since=1) == []
    assert not blocked.entry("alice").reached
    # The blocking callee never hears of it; the switched-off one has a notice waiting.
    assert blocked.received("carol", since=1) == []
    assert blocked.log("carol") == []
    assert blocked.switchboard.pending_notices("carol") == []
    assert [n.call_id for n in off.switchboard.pending_notices("carol")] == [cid]


def test_blocked_callee_gets_nothing_even_after_coming_online():
    ex = Exchange(SETTINGS)
    ex.add_phone("alice")
    ex.add_phone("carol", connect=False)
    ex.switchboard.provision("carol", token_for("carol"), blocks=["alice"])
    cid = ex.call("alice", "carol", 1)
    ex.advance(31)
    assert ex.received_types("alice", since=1) == [(31, "call_ended")]
    ex.connect("carol", 40)
    assert ex.received_types("carol") == [(40, "registered")]
    assert ex.received("carol")[0].message == Registered(name="carol", blocks=["alice"], calls=[])
    assert ex.log("carol") == []
    assert ex.switchboard.pending_notices("carol") == []
    assert ex.server_steps(cid) == [("dialing", "placed", 1), ("ended", "unreachable", 31)]


def test_blocked_callee_coming_online_while_the_caller_waits_gets_nothing():
    ex = Exchange(SETTINGS)
    ex.add_phone("alice")
    ex.add_phone("carol", connect=False)
    ex.switchboard.provision("carol", token_for("carol"), blocks=["alice"])
    cid = ex.call("alice", "carol", 1)
    ex.connect("carol", 10)
    # The block holds whenever carol connects: the offer is never delivered.
    assert ex.received_types("carol") == [(10, "registered")]
    assert ex.phones["alice"].screen is Screen.CALLING
    ex.advance(31)
    assert ex.received_types("alice", since=1) == [(31, "call_ended")]
    assert ex.server_steps(cid) == [("dialing", "placed", 1), ("ended", "unreachable", 31)]
    assert outline(ex.entry("alice")) == entry(
        "outgoing", "carol", reached=False, end_cause="unreachable"
    )
    assert ex.log("carol") == []


def test_blocked_caller_does_not_learn_that_the_callee_is_busy(ex):
    ex.add_phone("carol")
    ex.call("bob", "carol", 0)
    ex.answer("carol", 1)
    ex.block("carol", "alice", 2)
    cid = ex.call("alice", "carol", 5)
    assert ex.received_types("alice", since=5) == []  # no busy
    ex.advance(35)
    assert ex.received_types("alice", since=5) == [(35, "call_ended")]
    assert ex.received("alice")[-1].message.reason == "unreachable"
    assert ex.server_steps(cid)[-1] == ("ended", "unreachable", 35)
    assert [c.info.call_id for c in ex.log("carol")] == ["bob-1"]  # nothing else
    assert ex.received_types("carol", since=3) == []


def test_a_blocked_call_does_not_make_the_callee_busy(ex):
    ex.add_phone("carol")
    ex.block("carol", "alice", 0)
    ex.call("alice", "carol", 1)  # never delivered: carol is idle
    bob_call = ex.call("bob", "carol", 2)
    assert ex.received_types("carol", since=1) == [(2, "incoming")]
    assert ex.received_types("bob", since=2) == [(2, "ringing")]
    assert ex.server_steps(bob_call) == [("dialing", "placed", 2), ("ringing", "reached", 2)]
    assert ex.switchboard.pending_notices("carol") == []


def test_unblocking_lets_calls_through(ex):
    ex.block("bob", "alice", 0)
    first = ex.call("alice", "bob", 1)
    ex.hang_up("alice", 2)
    ex.phones["bob"].unblock("alice", 3)
    ex.pump(3)
    second = ex.call("alice", "bob", 4)
    assert ex.received_types("bob", since=1) == [(4, "incoming")]
    assert ex.server_steps(first)[-1] == ("ended", "canceled", 2)
    assert ex.server_steps(second)[-1] == ("ringing", "reached", 4)


def test_block_list_is_kept_by_the_server(ex):
    ex.block("bob", "eve", 0)
    ex.block("bob", "alice", 0)
    ex.disconnect("bob", 1)
    ex.connect("bob", 2)
    registered = ex.received("bob")[-1].message
    assert registered == Registered(name="bob", blocks=["alice", "eve"], calls=[])
    assert ex.phones["bob"].blocks == {"alice", "eve"}


# --- Callee declines: declined / declined -----------------------------------------------------


def test_callee_declines(ex):
    cid = ex.call("alice", "bob", 0)
    ex.decline("bob", 4)
    assert ex.ladder[-2:] == [("bob", "server", "decline"), ("server", "alice", "call_ended")]
    assert ex.received("alice")[-1].message.reason == "declined"
    assert ex.received_types("bob", since=1) == []
    assert ex.server_steps(cid)[-1] == ("ended", "declined", 4)
    assert outline(ex.entry("alice")) == entry(
        "outgoing", "bob", reached=True, end_cause="declined"
    )
    assert outline(ex.entry("bob")) == entry(
        "incoming", "alice", reached=True, end_cause="declined"
    )
    assert ex.switchboard.pending_notices("bob") == []


def test_callee_hanging_up_a_ringing_call_declines_it(ex):
    cid = ex.call("alice", "bob", 0)
    ex.send("bob", Hangup(call_id=cid), 4)
    assert ex.server_steps(cid)[-1] == ("ended", "declined", 4)
    assert ex.received("alice")[-1].message.reason == "declined"


# --- Nobody answers before the ring timer: no_answer / missed ---------------------------------


def test_ring_timeout(ex):
    cid = ex.call("alice", "bob", 0)
    ex.advance(44.9)  # the dial timer (30 s) stopped when bob's device rang
    assert ex.received_types("alice", since=1) == []
    assert ex.phones["bob"].screen is Screen.INCOMING
    assert ex.switchboard.next_wakeup() == 45
    ex.advance(45)
    assert ex.received_types("alice", since=1) == [(45, "call_ended")]
    assert ex.received_types("bob", since=1) == [(45, "call_ended")]
    assert {f.message.reason for f in ex.received("alice", since=45)} == {"no_answer"}
    assert {f.message.reason for f in ex.received("bob", since=45)} == {"no_answer"}
    assert ex.server_steps(cid) == [
        ("dialing", "placed", 0),
        ("ringing", "reached", 0),
        ("ended", "no_answer", 45),
    ]
    assert ex.switchboard.pending_notices("bob") == []
    assert outline(ex.entry("alice")) == entry(
        "outgoing", "bob", reached=True, end_cause="no_answer"
    )
    assert outline(ex.entry("bob")) == entry(
        "incoming", "alice", reached=True, end_cause="no_answer"
    )


# --- Callee busy in another call: busy / missed -----------------------------------------------


def test_callee_busy_in_another_call(ex):
    ex.add_phone("carol")
    first = ex.call("alice", "bob", 0)
    ex.answer("bob", 5)
    second = ex.call("carol", "bob", 10)
    assert ex.ladder[-4:] == [
        ("carol", "server", "offer"),
        ("server", "carol", "call_ended"),
        ("server", "bob", "missed_call"),
        ("bob", "server", "missed_call_ack"),
    ]
    assert ex.received("carol")[-1].message.reason == "busy"
    assert ex.server_steps(second) == [("dialing", "placed", 10), ("ended", "busy", 10)]
    assert ex.switchboard.pending_notices("bob") == []
    assert ex.phones["bob"].screen is Screen.IN_CALL  # the call goes on
    assert ex.received_types("alice", since=6) == []

    assert outline(ex.entry("carol")) == entry("outgoing", "bob", reached=False, end_cause="busy")
    bob_log = {s.info.call_id: outline(s) for s in ex.log("bob")}
    assert bob_log[second] == entry("incoming", "carol", reached=False, end_cause="busy")

    ex.hang_up("alice", 20)
    bob_log = {s.info.call_id: outline(s) for s in ex.log("bob")}
    assert bob_log[first] == entry(
        "incoming", "alice", reached=True, answered=True, end_cause="hung_up", duration=15
    )


def test_callee_device_refusing_as_busy_ends_the_call_busy(ex):
    cid = ex.call("alice", "bob", 0)
    ex.send("bob", Busy(call_id=cid), 1)
    assert ex.server_steps(cid)[-1] == ("ended", "busy", 1)
    assert ex.received("alice")[-1].message.reason == "busy"
    assert ex.switchboard.pending_notices("bob") == []  # the device logged it itself


# --- Caller loses signal before the answer: canceled / missed ---------------------------------


def test_caller_loses_signal_before_the_answer(ex):
    cid = ex.call("alice", "bob", 0)
    ex.lose_signal("alice", 3)
    ex.disconnect("alice", 8)  # both ends notice
    assert ex.phones["alice"].screen is Screen.RECONNECTING
    ex.advance(17.9)
    # The server keeps the call for the grace: bob still rings.
    assert ex.switchboard.active_calls == 1
    assert ex.phones["bob"].screen is Screen.INCOMING
    assert ex.received_types("bob", since=1) == []
    ex.advance(18)
    assert ex.received_types("bob", since=1) == [(18, "call_ended")]
    assert ex.received("bob")[-1].message.reason == "dropped"
    assert ex.server_steps(cid) == [
        ("dialing", "placed", 0),
        ("ringing", "reached", 0),
        ("ended", "dropped", 18),
    ]
    assert ex.phone_steps("alice", cid)[-1] == ("ended", "dropped", 18)
    assert outline(ex.entry("alice")) == entry("outgoing", "bob", reached=True, end_cause="dropped")
    assert outline(ex.entry("bob")) == entry("incoming", "alice", reached=True, end_cause="dropped")

    ex.regain_signal("alice", 30)
    assert ex.sent_types("alice", since=30) == [(30, "register")]
    assert ex.frames[-2].message.calls == []


def test_caller_back_within_grace_keeps_the_call_ringing(ex):
    cid = ex.call("alice", "bob", 0)
    ex.lose_signal("alice", 3)
    ex.disconnect("alice", 8)
    ex.regain_signal("alice", 12)
    assert ex.frames[-3].message == Register(name="alice", token=token_for("alice"), calls=[cid])
    assert ex.received_types("alice", since=12) == [(12, "registered"), (12, "ringing")]
    assert ex.received("alice", since=12)[0].message.calls == [cid]
    assert ex.phones["alice"].screen is Screen.RINGING
    ex.advance(30)  # past the grace: nothing happens
    assert ex.switchboard.active_calls == 1
    ex.answer("bob", 31)
    ex.hang_up("bob", 41)
    assert outline(ex.entry("alice")) == entry(
        "outgoing", "bob", reached=True, answered=True, end_cause="hung_up", duration=10
    )


def test_answered_while_the_caller_is_away(ex):
    cid = ex.call("alice", "bob", 0)
    ex.lose_signal("alice", 3)
    ex.disconnect("alice", 8)
    ex.answer("bob", 10)
    assert ex.received_types("bob", since=10) == [(10, "reconnecting")]
    assert ex.phones["bob"].screen is Screen.RECONNECTING
    ex.regain_signal("alice", 12)
    assert ex.received_types("bob", since=11) == [(12, "resumed")]
    # The returning caller gets the answer it missed, then is told plainly the call goes on.
    assert ex.received_types("alice", since=12) == [
        (12, "registered"),
        (12, "answer"),
        (12, "resumed"),
    ]
    assert ex.phones["alice"].screen is Screen.IN_CALL
    assert ex.phones["bob"].screen is Screen.IN_CALL
    ex.hang_up("alice", 40)
    assert ex.server_steps(cid) == [
        ("dialing", "placed", 0),
        ("ringing", "reached", 0),
        ("answered", "answered", 10),
        ("reconnecting", "link_lost", 10),
        ("answered", "resumed", 12),
        ("ended", "hung_up", 40),
    ]
    assert outline(ex.entry("alice")) == entry(
        "outgoing", "bob", reached=True, answered=True, end_cause="hung_up", duration=28
    )
    assert outline(ex.entry("bob")) == entry(
        "incoming", "alice", reached=True, answered=True, end_cause="hung_up", duration=30
    )


def test_answered_while_the_caller_is_away_past_the_grace(ex):
    cid = ex.call("alice", "bob", 0)
    ex.lose_signal("alice", 3)
    ex.disconnect("alice", 8)
    ex.answer("bob", 10)
    ex.advance(18)
    assert ex.received_types("bob", since=10) == [(10, "reconnecting"), (18, "call_ended")]
    # The answer never reached Alice, who never came back: it counts for nobody, so both
    # logs agree the call was not answered (found by exploration, seed 434).
    assert ex.server_steps(cid)[-1] == ("ended", "canceled", 18)
    bob = entry("incoming", "alice", reached=True, end_cause="canceled")
    assert outline(ex.entry("bob")) == bob
    assert outline(ex.entry("alice")) == entry("outgoing", "bob", reached=True, end_cause="dropped")
    assert ex.received_types("bob", since=18) == [(18, "call_ended")]  # and no notice


# --- Answered, then either side hangs up: outgoing / incoming, with duration --------------------


@pytest.mark.parametrize(("who", "other"), [("alice", "bob"), ("bob", "alice")])
def test_answered_then_hang_up(ex, who, other):
    cid = ex.call("alice", "bob", 0)
    ex.answer("bob", 5)
    assert ex.ladder[-2:] == [("bob", "server", "answer"), ("server", "alice", "answer")]
    ex.hang_up(who, 65)
    assert ex.ladder[-2:] == [(who, "server", "hangup"), ("server", other, "call_ended")]
    assert ex.received(other)[-1].message.reason == "hung_up"
    assert ex.received_types(who, since=6) == []
    assert ex.server_steps(cid) == [
        ("dialing", "placed", 0),
        ("ringing", "reached", 0),
        ("answered", "answered", 5),
        ("ended", "hung_up", 65),
    ]
    assert outline(ex.entry("alice")) == entry(
        "outgoing", "bob", reached=True, answered=True, end_cause="hung_up", duration=60
    )
    assert outline(ex.entry("bob")) == entry(
        "incoming", "alice", reached=True, answered=True, end_cause="hung_up", duration=60
    )
    assert ex.switchboard.active_calls == 0
    assert ex.switchboard.next_wakeup() is None


# --- Answered, then a side loses signal: past the grace dropped / dropped, within it resumed ---


@pytest.mark.parametrize(("lost", "other"), [("alice", "bob"), ("bob", "alice")])
def test_answered_then_link_lost_past_the_grace(ex, lost, other):
    cid = ex.call("alice", "bob", 0)
    ex.answer("bob", 5)
    ex.lose_signal(lost, 20)
    ex.disconnect(lost, 25)
    assert ex.received_types(other, since=20) == [(25, "reconnecting")]
    assert ex.phones[lost].screen is Screen.RECONNECTING
    assert ex.phones[other].screen is Screen.RECONNECTING
    assert ex.switchboard.next_wakeup() == 35
    ex.advance(34.9)
    assert ex.switchboard.active_calls == 1
    ex.advance(35)
    assert ex.received_types(other, since=26) == [(35, "call_ended")]
    assert ex.received(other)[-1].message.reason == "dropped"
    assert ex.server_steps(cid)[-3:] == [
        ("answered", "answered", 5),
        ("reconnecting", "link_lost", 25),
        ("ended", "dropped", 35),
    ]
    for label in ("alice", "bob"):
        assert ex.phone_steps(label, cid)[-2:] == [
            ("reconnecting", "link_lost", 25),
            ("ended", "dropped", 35),
        ]
        assert ex.phones[label].screen is Screen.ENDED
    # Duration up to the loss.
    assert outline(ex.entry("alice")) == entry(
        "outgoing", "bob", reached=True, answered=True, end_cause="dropped", duration=20
    )
    assert outline(ex.entry("bob")) == entry(
        "incoming", "alice", reached=True, answered=True, end_cause="dropped", duration=20
    )
    # Coming back later changes nothing.
    ex.regain_signal(lost, 50)
    assert ex.received_types(lost, since=50) == [(50, "registered")]
    assert ex.received(lost)[-1].message.calls == []
    assert len(ex.log(lost)) == 1


@pytest.mark.parametrize(("lost", "other"), [("alice", "bob"), ("bob", "alice")])
def test_answered_then_link_lost_within_the_grace_resumes(ex, lost, other):
    cid = ex.call("alice", "bob", 0)
    ex.answer("bob", 5)
    ex.lose_signal(lost, 20)
    ex.disconnect(lost, 25)
    ex.regain_signal(lost, 30)
    assert ex.received_types(other, since=20) == [(25, "reconnecting"), (30, "resumed")]
    assert ex.received(lost, since=30)[0].message.calls == [cid]
    assert ex.phones["alice"].screen is Screen.IN_CALL
    assert ex.phones["bob"].screen is Screen.IN_CALL
    ex.advance(50)  # the grace deadline passed: nothing happens
    assert ex.switchboard.active_calls == 1
    ex.hang_up(other, 65)
    assert ex.server_steps(cid) == [
        ("dialing", "placed", 0),
        ("ringing", "reached", 0),
        ("answered", "answered", 5),
        ("reconnecting", "link_lost", 25),
        ("answered", "resumed", 30),
        ("ended", "hung_up", 65),
    ]
    for label in ("alice", "bob"):
        assert ex.phone_steps(label, cid)[-3:] == [
            ("reconnecting", "link_lost", 25),
            ("answered", "resumed", 30),
            ("ended", "hung_up", 65),
        ]
    # Duration across the gap.
    assert outline(ex.entry("alice")) == entry(
        "outgoing", "bob", reached=True, answered=True, end_cause="hung_up", duration=60
    )
    assert outline(ex.entry("bob")) == entry(
        "incoming", "alice", reached=True, answered=True, end_cause="hung_up", duration=60
    )


def test_waiting_party_reconnecting_itself_stays_reconnecting(ex):
    """Bob's link dies; while alice waits for him, her own phone re-registers."""
    cid = ex.call("alice", "bob", 0)
    ex.answer("bob", 5)
    ex.lose_signal("bob", 20)
    ex.disconnect("bob", 25)
    ex.connect("alice", 28)  # right token, new connection: the old one is replaced
    assert ex.received_types("alice", since=28) == [
        (28, "registered"),
        (28, "answer"),
        (28, "reconnecting"),
    ]
    # Bob is still away: alice's call never went back to "answered", not even for a moment.
    assert ex.screen_history("alice")[-1] == (Screen.RECONNECTING, 25)
    ex.advance(35)
    assert ex.phone_steps("alice", cid) == [
        ("dialing", "placed", 0),
        ("ringing", "reached", 0),
        ("answered", "answered", 5),
        ("reconnecting", "link_lost", 25),
        ("ended", "dropped", 35),
    ]
    assert outline(ex.entry("alice")) == outline(ex.entry("bob")) | {
        "direction": "outgoing",
        "peer": "bob",
    }
    assert ex.entry("alice").duration == 20


# --- Calling… vs Ringing… ---------------------------------------------------------------------


def test_calling_then_ringing_is_recorded_as_reached(ex):
    ex.disconnect("bob", 0)
    cid = ex.call("alice", "bob", 1)
    assert ex.phones["alice"].screen is Screen.CALLING
    assert ex.phone_steps("alice", cid) == [("dialing", "placed", 1)]
    ex.connect("bob", 5)
    assert ex.phones["alice"].screen is Screen.RINGING
    assert ex.phone_steps("alice", cid) == [("dialing", "placed", 1), ("ringing", "reached", 5)]
    ex.hang_up("alice", 7)
    assert ex.entry("alice").reached
    assert ex.entry("bob").reached


# --- Registration ----------------------------------------------------------------------------


def test_wrong_token_is_refused_and_the_holder_undisturbed(ex):
    old = ex.connection("bob")
    ex.connect("impostor", 1)
    ex.send("impostor", Register(name="bob", token="not-bobs-token-000"), 1)
    assert ex.errors("impostor") == [("bad_token", None)]
    assert "'bob' is registered with another token" in ex.received("impostor")[-1].message.message
    assert ex.closes == []
    assert ex.switchboard.is_online("bob")
    assert ex.switchboard.name_of(ex.connection("impostor")) is None
    cid = ex.call("alice", "bob", 2)
    assert ex.received_types("bob", since=2) == [(2, "incoming")]
    assert ex.received_types("impostor", since=2) == []
    assert ex.connection("bob") == old
    assert ex.server_steps(cid)[-1] == ("ringing", "reached", 2)


def test_right_token_replaces_a_stale_connection(ex):
    old = ex.connection("bob")
    ex.connect("bob", 10)  # the phone reconnects before the old link is noticed dead
    new = ex.connection("bob")
    assert new != old
    assert ex.closes == [("bob", old, *CLOSE_REPLACED)]
    assert CLOSE_REPLACED[0] == 4001
    assert ex.errors("bob") == []
    assert ex.received_types("bob", since=10) == [(10, "registered")]
    assert ex.switchboard.name_of(old) is None
    assert ex.switchboard.name_of(new) == "bob"
    ex.call("alice", "bob", 12)
    assert ex.received_types("bob", since=12) == [(12, "incoming")]


def test_phone_reconnecting_before_the_server_notices_keeps_its_call(ex):
    cid = ex.call("alice", "bob", 0)
    ex.answer("bob", 5)
    old = ex.connection("bob")
    ex.disconnect("bob", 20, server=False)  # only bob's phone noticed
    assert ex.phones["bob"].screen is Screen.RECONNECTING
    ex.connect("bob", 22)
    assert ex.closes == [("bob", old, *CLOSE_REPLACED)]
    assert ex.phones["bob"].screen is Screen.IN_CALL
    assert ex.received_types("alice", since=6) == []  # alice noticed nothing
    assert ex.switchboard.active_calls == 1
    ex.hang_up("bob", 65)
    assert [s for s in ex.server_steps(cid) if s[1] in ("link_lost", "resumed")] == []
    assert ex.phone_steps("bob", cid)[-3:] == [
        ("reconnecting", "link_lost", 20),
        ("answered", "resumed", 22),
        ("ended", "hung_up", 65),
    ]
    assert ex.entry("bob").duration == 60
    assert ex.entry("alice").duration == 60


def test_registering_twice_on_one_connection_is_refused(ex):
    ex.send("alice", Register(name="alice", token=token_for("alice")), 1)
    ex.send("alice", Register(name="carol", token=token_for("carol")), 1)
    assert ex.errors("alice") == [("already_registered", None)] * 2
    assert "carol" not in ex.switchboard.accounts


def test_frames_before_register_are_refused(ex):
    ex.connect("raw", 1)
    ex.send("raw", Offer(call_id="x1", to="bob", kind="audio", sdp=OFFER_SDP), 1)
    ex.send("raw", Hangup(call_id="x1"), 1)
    # The error names the call the refused frame was about.
    assert ex.errors("raw") == [("not_registered", "x1")] * 2
    assert ex.received_types("bob", since=1) == []
    assert ex.switchboard.active_calls == 0


def test_disconnect_of_an_unregistered_connection_is_harmless(ex):
    ex.connect("raw", 1)
    ex.disconnect("raw", 2)
    assert ex.switchboard.is_online("alice")
    assert ex.switchboard.is_online("bob")


# --- Refused frames: a clear error, nothing else disturbed ------------------------------------


def test_invalid_frames_get_an_error_naming_the_call(ex):
    cid = ex.call("alice", "bob", 0)
    ex.send("alice", f'{{"type":"hangup","call_id":"{cid}","from":"bob"}}', 1)
    ex.send("alice", "not json", 1)
    ex.send("alice", f'{{"type":"incoming","call_id":"{cid}"}}', 1)
    assert ex.errors("alice") == [
        ("invalid_field", cid),
        ("bad_frame", None),
        ("unknown_type", cid),
    ]
    assert ex.server_steps(cid)[-1] == ("ringing", "reached", 0)
    assert ex.received_types("bob", since=1) == []


def test_a_binary_frame_with_invalid_utf8_gets_bad_frame(ex):
    cid = ex.call("alice", "bob", 0)
    ex.send("alice", b'{"type":"hangup","call_id":"' + cid.encode() + b'\xff"}', 1)
    assert ex.errors("alice") == [("bad_frame", None)]
    assert ex.server_steps(cid)[-1] == ("ringing", "reached", 0)


def test_hangup_for_someone_elses_call_is_not_your_call(ex):
    ex.add_phone("carol")
    cid = ex.call("alice", "bob", 0)
    ex.send("carol", Hangup(call_id=cid), 1)
    ex.send("carol", Candidate(call_id=cid, candidate=""), 1)
    assert ex.errors("carol") == [("not_your_call", cid)] * 2
    assert "'carol' is not a party to" in ex.received("carol")[-1].message.message
    assert ex.server_steps(cid)[-1] == ("ringing", "reached", 0)
    assert ex.received_types("alice", since=1) == []
    assert ex.received_types("bob", since=1) == []


@pytest.mark.parametrize(
    ("label", "message", "role"),
    [
        ("alice", Answer(call_id="alice-1", sdp="v=0"), "caller"),
        ("alice", Decline(call_id="alice-1"), "caller"),
        ("alice", Ringing(call_id="alice-1"), "caller"),
        ("alice", Busy(call_id="alice-1"), "caller"),
    ],
)
def test_callee_only_messages_from_the_caller_are_illegal(ex, label, message, role):
    cid = ex.call("alice", "bob", 0)
    ex.send(label, message, 1)
    assert ex.errors(label) == [("illegal_transition", cid)]
    assert f"the {role} cannot send" in ex.received(label)[-1].message.message
    assert ex.server_steps(cid)[-1] == ("ringing", "reached", 0)
    assert ex.received_types("bob", since=1) == []


def test_a_repeated_answer_is_ignored_but_declining_an_answered_call_is_illegal(ex):
    cid = ex.call("alice", "bob", 0)
    ex.answer("bob", 1)
    # The answering device says it again after a reconnect (it cannot know the first
    # arrived): nothing happens, and nothing is refused.
    ex.send("bob", Answer(call_id=cid, sdp="v=0"), 2)
    assert ex.errors("bob") == []
    ex.send("bob", Decline(call_id=cid), 2)
    assert ex.errors("bob") == [("illegal_transition", cid)]
    assert "while call alice-1 is answered" in ex.received("bob")[-1].message.message
    assert ex.server_steps(cid)[-1] == ("answered", "answered", 1)


def test_an_answer_lost_in_a_dead_radio_is_said_again_on_return_and_the_call_goes_on(ex):
    # Exploration seed 16019403: bob answers with no signal; the answer never arrives. Back,
    # his phone registers listing the call (still ringing here) and says the answer again.
    cid = ex.call("alice", "bob", 0)
    ex.lose_signal("bob", 1)
    ex.answer("bob", 1)
    assert ex.server_steps(cid)[-1] == ("ringing", "reached", 0)
    ex.disconnect("bob", 2)
    ex.connect("bob", 2)
    assert ex.server_steps(cid)[-1] == ("answered", "answered", 2)
    assert ex.phone_steps("bob", cid)[-1] == ("answered", "resumed", 2)
    assert ex.phone_steps("alice", cid)[-1] == ("answered", "answered", 2)
    assert ex.errors("bob") == []


def test_unknown_and_ended_calls(ex):
    ex.send("alice", Hangup(call_id="nope"), 0)
    cid = ex.call("alice", "bob", 1)
    ex.hang_up("alice", 2)
    ex.send("alice", Hangup(call_id=cid), 3)
    ex.send("bob", Answer(call_id=cid, sdp="v=0"), 3)
    assert ex.errors("alice") == [("unknown_call", "nope"), ("unknown_call", cid)]
    assert ex.errors("bob") == [("unknown_call", cid)]
    messages = [f.message.message for f in ex.received("alice") if f.type == "error"]
    assert messages == ["call nope does not exist", f"call {cid} has ended"]


def test_duplicate_call_id(ex):
    ex.add_phone("carol")
    cid = ex.call("alice", "bob", 0)
    ex.send("carol", Offer(call_id=cid, to="alice", kind="audio", sdp=OFFER_SDP), 1)
    assert ex.errors("carol") == [("duplicate_call", cid)]
    ex.hang_up("alice", 2)
    ex.send("carol", Offer(call_id=cid, to="bob", kind="audio", sdp=OFFER_SDP), 3)
    assert ex.errors("carol") == [("duplicate_call", cid)] * 2
    assert ex.received_types("bob", since=1) == [(2, "call_ended")]
    assert ex.switchboard.active_calls == 0


def test_self_call_and_unknown_callee(ex):
    ex.send("alice", Offer(call_id="s1", to="alice", kind="audio", sdp=OFFER_SDP), 0)
    ex.send("alice", Offer(call_id="s2", to="zed", kind="audio", sdp=OFFER_SDP), 0)
    assert ex.errors("alice") == [("self_call", "s1"), ("unknown_phone", "s2")]
    assert ex.server_transitions == []
    assert ex.switchboard.active_calls == 0


def test_candidates_are_relayed_to_the_other_party(ex):
    cid = ex.call("alice", "bob", 0)
    ex.answer("bob", 1)
    candidate = Candidate(call_id=cid, candidate="candidate:1", sdp_mid="0", sdp_mline_index=0)
    ex.send("alice", candidate, 2)
    ex.send("bob", Candidate(call_id=cid, candidate=""), 2)
    assert ex.ladder[-4:] == [
        ("alice", "server", "candidate"),
        ("server", "bob", "candidate"),
        ("bob", "server", "candidate"),
        ("server", "alice", "candidate"),
    ]
    assert ex.received("bob")[-1].message == candidate
    assert ex.server_steps(cid)[-1] == ("answered", "answered", 1)


def test_a_blocked_callers_candidates_go_nowhere(ex):
    ex.block("bob", "alice", 0)
    cid = ex.call("alice", "bob", 1)
    ex.send("alice", Candidate(call_id=cid, candidate="candidate:1"), 2)
    assert ex.errors("alice") == []
    assert ex.received_types("bob", since=1) == []


def test_next_wakeup_follows_the_timers(ex):
    assert ex.switchboard.next_wakeup() is None
    ex.disconnect("bob", 0)
    ex.call("alice", "bob", 1)
    assert ex.switchboard.next_wakeup() == 31  # dial timer
    ex.connect("bob", 5)
    assert ex.switchboard.next_wakeup() == 50  # ring timer replaces it
    ex.answer("bob", 6)
    assert ex.switchboard.next_wakeup() is None
    ex.disconnect("alice", 7)
    assert ex.switchboard.next_wakeup() == 17  # reconnect grace


def every_deadline(sb: Switchboard) -> float | None:
    """The earliest timer of every call and connection, found by looking at each one."""
    due = [at for sc in sb._calls.values() for at in sc.deadlines()]
    due += [c.register_by for c in sb._connections.values() if c.register_by is not None]
    return min(due, default=None)


def test_next_wakeup_is_the_earliest_timer_as_calls_come_and_go():
    ex = Exchange(SETTINGS)  # dial 30 s, ring 45 s, reconnect grace 10 s
    for name in ("a", "b", "c", "d", "e", "f"):
        ex.add_phone(name)
    steps = [
        (lambda: (ex.disconnect("b", 0), ex.call("a", "b", 1)), 31),  # a-b's dial timer
        (lambda: ex.call("c", "d", 2), 31),  # c-d rings until 47
        (lambda: ex.connect("b", 3), 47),  # b rings: a-b's ring timer (48) replaces 31
        (lambda: ex.answer("d", 4), 48),  # c-d answered: no timer
        (lambda: ex.disconnect("c", 5), 15),  # c away: c-d's reconnect grace
        (lambda: ex.connect("c", 6), 48),  # c back: the grace is over
        (lambda: ex.call("e", "f", 7), 48),  # e-f rings until 52
        (lambda: ex.hang_up("a", 8), 52),  # a-b ended
        (lambda: ex.answer("f", 9), None),
    ]
    for number, (step, earliest) in enumerate(steps):
        step()
        assert ex.switchboard.next_wakeup() == earliest, number
        assert every_deadline(ex.switchboard) == earliest, number


def test_timers_of_ended_calls_do_not_pile_up_behind_one_that_runs(ex):
    ex.add_phone("carol")
    ex.add_phone("dave")
    ex.call("alice", "bob", 0)  # rings: its 45 s ring timer stays first throughout
    for n in range(300):  # 20 calls a second: within the frame-rate limit
        ex.call("carol", "dave", 1 + n * 0.05)
        ex.hang_up("carol", 1.01 + n * 0.05)
    sb = ex.switchboard
    assert sb.next_wakeup() == 45
    assert [entry.end_cause for entry in ex.log("dave")] == ["canceled"] * 300
    # 600 timers were set (a dial and a ring timer per call); those of ended calls are
    # dropped as they pile up, not kept until the ringing call's timer is due.
    assert len(sb._call_deadlines) <= 6 * len(sb._calls) + 64


# --- What the server keeps: the change stream (write-ahead) ------------------------------------


def test_every_decision_is_handed_over_as_a_change_to_keep():
    sb = Switchboard(SETTINGS)
    sb.connect(ConnectionId(1), 0)
    sb.receive(ConnectionId(1), Register(name="alice", token=token_for("alice")), 0)
    assert sb.changes_to_keep() == [AccountCreated("alice", Account.hash_token(token_for("alice")))]
    sb.receive(ConnectionId(1), Block(name="bob"), 1)
    sb.receive(ConnectionId(1), Block(name="bob"), 1)  # no change the second time
    assert sb.changes_to_keep() == [BlockChanged("alice", "bob", True)]
    sb.provision("bob", token_for("bob"))
    sb.changes_to_keep()
    sb.receive(ConnectionId(1), Offer(call_id="c1", to="bob", kind="audio", sdp=OFFER_SDP), 2)
    (change,) = sb.changes_to_keep()
    assert isinstance(change, CallChanged)
    assert (change.record.state, change.record.blocked) == (CallState.DIALING, False)
    # The frames that depend on it are queued only after: the driver commits first.
    assert sb.messages_to_send()


def test_the_store_follows_the_switchboard_through_a_missed_call(ex):
    ex.disconnect("bob", 0)
    cid = ex.call("alice", "bob", 1)
    ex.hang_up("alice", 2)
    (record,) = ex.store.call_records()
    assert (record.call_id, record.state, record.cause) == (cid, CallState.ENDED, Cause.CANCELED)
    assert list(ex.store.load().notices["bob"]) == [cid]
    ex.connect("bob", 3)
    assert "bob" not in ex.store.load().notices  # acknowledged, so forgotten


# --- A crash: only what the store kept survives --------------------------------------------------


def test_a_ringing_call_lost_in_a_crash_ends_on_both_ends_and_is_logged_once(ex):
    cid = ex.call("alice", "bob", 0)
    ex.crash(5)
    # The recovered switchboard ended it at once, with a notice for the absent callee.
    assert ex.store.call_records()[0].cause is Cause.DROPPED
    ex.connect("alice", 6)
    ex.connect("bob", 6)
    assert ("server", "bob", "missed_call") in ex.ladder
    assert outline(ex.entry("alice")) == entry("outgoing", "bob", reached=True, end_cause="dropped")
    assert outline(ex.entry("bob")) == entry("incoming", "alice", reached=True, end_cause="dropped")
    assert [s.info.call_id for s in ex.log("bob")] == [cid]  # logged once despite the notice
    assert ex.store.load().notices == {}


def test_an_answered_call_lost_in_a_crash_keeps_its_duration_up_to_the_crash(ex):
    cid = ex.call("alice", "bob", 0)
    ex.answer("bob", 2)
    ex.crash(12)
    (record,) = ex.store.call_records()
    assert (record.call_id, record.answered_at, record.cause) == (cid, 2, Cause.DROPPED)
    ex.connect("alice", 14)
    ex.connect("bob", 14)
    for label, peer, direction in (("alice", "bob", "outgoing"), ("bob", "alice", "incoming")):
        assert outline(ex.entry(label)) == entry(
            direction, peer, reached=True, answered=True, end_cause="dropped", duration=10
        )


def test_a_notice_kept_before_a_crash_is_delivered_once_after_it(ex):
    ex.disconnect("bob", 0)
    cid = ex.call("alice", "bob", 1)
    ex.hang_up("alice", 2)
    ex.crash(3)
    ex.connect("alice", 4)
    ex.connect("bob", 5)
    assert [f.step for f in ex.frames if f.delivered and f.type == "missed_call"] == [
        ("server", "bob", "missed_call")
    ]
    ex.disconnect("bob", 6)
    ex.connect("bob", 7)  # acknowledged before: never sent again
    assert [f for f in ex.frames if f.type == "missed_call"][-1].at == 5
    assert [s.info.call_id for s in ex.log("bob")] == [cid]


def test_a_call_to_an_absent_callee_lost_in_a_crash_still_gives_it_a_missed_call(ex):
    ex.disconnect("bob", 0)
    cid = ex.call("alice", "bob", 1)
    ex.crash(2)
    ex.connect("bob", 3)
    assert outline(ex.entry("bob")) == entry(
        "incoming", "alice", reached=False, end_cause="dropped"
    )
    assert ex.entry("bob").info.call_id == cid


def test_a_blocked_call_lost_in_a_crash_stays_invisible_to_the_callee():
    ex = Exchange(SETTINGS)
    ex.add_phone("alice")
    ex.add_phone("bob", blocks=("alice",), connect=False)
    ex.switchboard.provision("bob", token_for("bob"), ["alice"])
    ex.call("alice", "bob", 0)
    ex.crash(5)
    ex.connect("bob", 6)
    assert ex.log("bob") == []
    assert ex.store.load().notices == {}


# --- Limits: refused with an error, then cut off; nobody else notices ----------------------------


def limited(**limits: float) -> Exchange:
    exchange = Exchange(SETTINGS, limits=SwitchboardLimits(**limits))  # type: ignore[arg-type]
    exchange.add_phone("alice")
    exchange.add_phone("bob")
    return exchange


def test_a_burst_beyond_the_rate_is_refused_and_then_the_connection_is_cut():
    ex = limited(messages_per_second=1.0, burst=3, max_errors=2)
    conn = ex.connection("alice")
    for _ in range(5):  # acks are silent: only the rate limit answers
        ex.send("alice", MissedCallAck(call_id="x1"), 10)
    assert ex.errors("alice") == [("rate_limited", None)] * 2
    assert ex.closes == [("alice", conn, *CLOSE_ABUSE)]
    ex.send("bob", MissedCallAck(call_id="x1"), 10)  # others have their own budget
    assert ex.errors("bob") == []


def test_a_phone_cannot_be_party_to_more_calls_than_the_limit():
    ex = limited(max_calls_per_phone=1)
    ex.add_phone("carol")
    ex.call("alice", "bob", 0)
    ex.send("carol", Offer(call_id="c9", to="alice", kind="audio", sdp=OFFER_SDP), 1)
    assert ex.received_types("carol", since=1) == [(1, "call_ended")]  # alice is busy
    ex.send("alice", Offer(call_id="a9", to="carol", kind="audio", sdp=OFFER_SDP), 2)
    assert ex.errors("alice") == [("too_many_calls", "a9")]


def test_only_the_newest_notices_are_kept_beyond_the_limit():
    ex = limited(max_pending_notices=2)
    ex.disconnect("bob", 0)
    ids = []
    for at in (1, 3, 5):
        ids.append(ex.call("alice", "bob", at))
        ex.hang_up("alice", at + 1)
    assert list(ex.store.load().notices["bob"]) == ids[1:]
    ex.connect("bob", 10)
    assert [s.info.call_id for s in ex.log("bob")] == ids[1:]


def test_a_connection_that_never_registers_is_closed():
    ex = limited(register_timeout=10.0)
    conn = ex.connect("mallory", 0)
    ex.advance(9.9)
    assert ex.closes == []
    ex.advance(10.0)
    assert ex.closes == [("mallory", conn, *CLOSE_REGISTER_TIMEOUT)]


def test_refusals_spread_out_in_time_do_not_cut_a_connection():
    ex = limited(max_errors=3, error_window=10.0)
    for at in (0, 6, 12, 18):
        ex.send("alice", Ringing(call_id="nope"), at)
    assert len(ex.errors("alice")) == 4
    assert ex.closes == []


# --- Several devices per name ------------------------------------------------------------------


@pytest.fixture
def devices() -> Exchange:
    """alice, and bob with two devices (labels bob1 and bob2)."""
    exchange = Exchange(SETTINGS)
    exchange.add_phone("alice")
    exchange.add_phone("bob1", name="bob", device="1")
    exchange.add_phone("bob2", name="bob", device="2")
    return exchange


def test_devices_of_one_name_stay_connected_side_by_side(devices):
    assert devices.closes == []
    assert devices.switchboard.name_of(devices.connection("bob1")) == "bob#1"
    assert devices.switchboard.name_of(devices.connection("bob2")) == "bob#2"
    assert devices.switchboard.name_of(devices.connection("alice")) == "alice"
    old = devices.connection("bob2")
    devices.connect("bob2", 1)  # the same device again: only its old connection goes
    assert devices.closes == [("bob2", old, *CLOSE_REPLACED)]


def test_every_device_rings_and_the_first_answer_wins(devices):
    cid = devices.call("alice", "bob", 0)
    assert devices.ladder[-6:] == [
        ("alice", "server", "offer"),
        ("server", "bob1", "incoming"),
        ("server", "bob2", "incoming"),
        ("bob1", "server", "ringing"),
        ("bob2", "server", "ringing"),  # a second device ringing changes nothing
        ("server", "alice", "ringing"),
    ]
    devices.answer("bob2", 3)
    assert devices.ladder[-3:] == [
        ("bob2", "server", "answer"),
        ("server", "bob1", "call_ended"),
        ("server", "alice", "answer"),
    ]
    assert devices.received("bob1")[-1].message == CallEnded(cid, "answered_elsewhere")
    assert devices.phones["bob1"].screen is Screen.ENDED
    devices.hang_up("alice", 20)
    assert devices.received_types("bob1", since=4) == []  # no longer in the call
    assert devices.received_types("bob2", since=4) == [(20, "call_ended")]
    devices.advance(100)
    assert devices.switchboard.pending_notices("bob") == []
    assert outline(devices.entry("bob1")) == entry(
        "incoming", "alice", reached=True, end_cause="answered_elsewhere"
    )
    assert outline(devices.entry("bob2")) == entry(
        "incoming", "alice", reached=True, answered=True, end_cause="hung_up", duration=17.0
    )
    assert devices.entry("bob2").who == "bob#2"
    assert outline(devices.entry("alice")) == entry(
        "outgoing", "bob", reached=True, answered=True, end_cause="hung_up", duration=17.0
    )


def test_an_answer_crossing_another_devices_answer_is_told_answered_elsewhere(devices):
    cid = devices.call("alice", "bob", 0)
    devices.answer("bob2", 3)
    devices.send("bob1", Answer(cid, "v=0"), 3)  # sent before bob1 heard of bob2's answer
    assert devices.received("bob1")[-1].message == CallEnded(cid, "answered_elsewhere")
    assert devices.errors("bob1") == []
    assert devices.server_steps(cid)[-1] == ("answered", "answered", 3)
    devices.send("bob1", Candidate(cid, ""), 4)  # its media goes nowhere either
    assert devices.received_types("alice", since=4) == []


def test_a_decline_on_one_device_ends_the_call_for_all(devices):
    cid = devices.call("alice", "bob", 0)
    devices.decline("bob1", 4)
    assert devices.received("alice")[-1].message == CallEnded(cid, "declined")
    assert devices.received("bob2")[-1].message == CallEnded(cid, "declined_elsewhere")
    assert devices.received_types("bob1", since=4) == []
    devices.advance(100)
    assert devices.switchboard.pending_notices("bob") == []
    assert devices.entry("bob2").end_cause is Cause.DECLINED_ELSEWHERE
    assert devices.entry("bob1").end_cause is Cause.DECLINED


def test_a_device_that_was_away_gets_the_names_notice_until_one_acknowledges(devices):
    devices.power_off("bob1", 0)
    devices.power_off("bob2", 0)
    cid = devices.call("alice", "bob", 1)
    devices.hang_up("alice", 5)
    assert [n.call_id for n in devices.switchboard.pending_notices("bob")] == [cid]
    devices.power_on("bob2", 10)
    assert devices.received_types("bob2", since=10) == [(10, "registered"), (10, "missed_call")]
    assert devices.switchboard.pending_notices("bob") == []  # acknowledged by bob2
    devices.power_on("bob1", 20)
    assert devices.received_types("bob1", since=20) == [(20, "registered")]
    assert devices.entry("bob2").end_cause is Cause.CANCELED
    assert devices.log("bob1") == []


def test_a_device_gone_before_the_answer_leaves_the_others_ringing(devices):
    cid = devices.call("alice", "bob", 0)
    devices.power_off("bob1", 2)
    assert devices.server_steps(cid)[-1] == ("ringing", "reached", 0)
    devices.answer("bob2", 3)
    assert devices.server_steps(cid)[-1] == ("answered", "answered", 3)


def test_another_device_of_the_caller_cannot_touch_its_call(devices):
    cid = devices.call("bob1", "alice", 0)
    devices.send("bob2", Hangup(cid), 1)
    assert devices.errors("bob2") == [("not_your_call", cid)]
    assert devices.server_steps(cid)[-1] == ("ringing", "reached", 0)
    devices.answer("alice", 2)
    assert devices.received_types("bob2", since=2) == []  # the answer goes to bob1 only
    assert devices.received_types("bob1", since=2) == [(2, "answer")]


# --- Glare: two calls between the same pair cross ---------------------------------------------


def test_glare_the_lower_id_survives_when_it_comes_second(ex):
    ex.send("alice", Offer("z9", "bob", "audio", OFFER_SDP), 0)  # bob's phone rings z9
    ex.send("bob", Offer("a1", "alice", "audio", OFFER_SDP), 0)  # crossing it
    assert ex.server_steps("z9") == [
        ("dialing", "placed", 0),
        ("ringing", "reached", 0),
        ("ended", "glare", 0),
    ]
    assert CallEnded("z9", "glare") in [f.message for f in ex.received("alice")]
    assert CallEnded("z9", "glare") in [f.message for f in ex.received("bob")]
    assert ex.ladder[-3:] == [
        ("server", "alice", "incoming"),
        ("alice", "server", "ringing"),
        ("server", "bob", "ringing"),
    ]
    assert ex.server_steps("a1") == [("dialing", "placed", 0), ("ringing", "reached", 0)]
    ex.advance(100)
    assert ex.switchboard.pending_notices("alice") == []  # a glare loser is never missed
    assert ex.switchboard.pending_notices("bob") == []


def test_glare_the_lower_id_survives_when_it_came_first(ex):
    ex.send("alice", Offer("a1", "bob", "audio", OFFER_SDP), 0)
    ex.send("bob", Offer("z9", "alice", "audio", OFFER_SDP), 0)
    assert ex.server_steps("z9") == [("dialing", "placed", 0), ("ended", "glare", 0)]
    assert ex.received("bob")[-1].message == CallEnded("z9", "glare")
    assert "incoming" not in [t for _, t in ex.received_types("alice")]
    assert ex.server_steps("a1") == [("dialing", "placed", 0), ("ringing", "reached", 0)]


def test_a_call_its_caller_gave_up_to_glare_ends_as_glare_if_the_rival_had_ended_here(ex):
    # Exploration seed 3025845: bob's phone foresaw z9 losing to a1 and ended it, but
    # alice's cancel of a1 reached the server first, so z9 was placed and rang alice.
    ex.send("alice", Offer("a1", "bob", "audio", OFFER_SDP), 0)
    ex.send("alice", Hangup("a1", reason="canceled"), 1)
    ex.send("bob", Offer("z9", "alice", "audio", OFFER_SDP), 1)
    assert ex.server_steps("z9")[-1] == ("ringing", "reached", 1)
    ex.send("bob", Hangup("z9", reason="glare"), 1)
    assert ex.server_steps("z9")[-1] == ("ended", "glare", 1)
    assert CallEnded("z9", "glare") in [f.message for f in ex.received("alice")]
    ex.advance(100)
    assert ex.switchboard.pending_notices("alice") == []  # a glare loser is never missed


def test_a_call_given_up_to_glare_after_the_callee_answered_is_a_crossed_cancel(ex):
    ex.send("alice", Offer("a1", "bob", "audio", OFFER_SDP), 0)
    ex.send("alice", Hangup("a1", reason="canceled"), 1)
    ex.send("bob", Offer("z9", "alice", "audio", OFFER_SDP), 1)
    ex.send("alice", Answer(call_id="z9", sdp="v=0"), 2)
    ex.send("bob", Hangup("z9", reason="glare"), 2)
    # The answer never counted for bob: it is void for alice too, as a crossed cancel.
    assert ex.server_steps("z9")[-1] == ("ended", "canceled", 2)
    assert CallEnded("z9", "canceled") in [f.message for f in ex.received("alice")]


def test_a_blocked_call_back_loses_glare_as_its_phone_foresaw(ex):
    # Exploration seed 9080733: bob has blocked alice and calls her; her calls back lost
    # glare on her phone but kept dialing at the server until they hit too_many_calls.
    ex.send("bob", Block("alice"), 0)
    ex.send("bob", Offer("a1", "alice", "audio", OFFER_SDP), 0)  # alice's phone rings a1
    ex.send("alice", Offer("z9", "bob", "audio", OFFER_SDP), 1)
    assert ex.server_steps("z9") == [("dialing", "placed", 1), ("ended", "glare", 1)]
    assert ex.server_steps("a1")[-1] == ("ringing", "reached", 0)  # bob's call goes on


def test_a_blocked_call_back_that_would_win_glare_ends_nothing_of_the_blockers(ex):
    ex.send("bob", Block("alice"), 0)
    ex.send("bob", Offer("z9", "alice", "audio", OFFER_SDP), 0)
    ex.send("alice", Offer("a1", "bob", "audio", OFFER_SDP), 1)
    # Ending bob's z9 would tell him alice called: the blocked a1 dials on, unseen.
    assert ex.server_steps("z9")[-1] == ("ringing", "reached", 0)
    assert ex.server_steps("a1") == [("dialing", "placed", 1)]
    assert "call_ended" not in [t for _, t in ex.received_types("bob")]


def test_calling_back_the_phone_that_rings_you_is_glare_not_busy(ex):
    first = ex.call("alice", "bob", 0)  # alice-1
    second = ex.call("bob", "alice", 1)  # bob-1: bob's phone is ringing with alice-1
    assert first < second
    assert ex.phone_steps("bob", second) == [("dialing", "placed", 1), ("ended", "glare", 1)]
    assert ex.server_steps(second) == [("dialing", "placed", 1), ("ended", "glare", 1)]
    assert ex.phones["bob"].screen is Screen.INCOMING  # alice's call still rings
    assert "busy" not in [t for _, t in ex.received_types("alice")]
    ex.answer("bob", 2)
    ex.hang_up("alice", 12)
    assert ex.entry("alice").end_cause is Cause.HUNG_UP
    assert [s.end_cause for s in ex.log("bob")] == [Cause.HUNG_UP, Cause.GLARE]


def test_a_blocked_call_is_never_glare(ex):
    ex.block("bob", "alice", 0)
    ex.send("bob", Offer("z9", "alice", "audio", OFFER_SDP), 1)  # alice rings
    ex.send("alice", Offer("a1", "bob", "audio", OFFER_SDP), 2)  # blocked: acts switched off
    assert ex.server_steps("z9")[-1] == ("ringing", "reached", 1)
    assert ex.server_steps("a1") == [("dialing", "placed", 2)]
