"""The phone's logic: what the person may do, what it sends, its screens and its call log.

The first part feeds one :class:`Phone` by hand (server frames in, phone frames out); the
second plays whole calls on an in-memory exchange and reads each phone's screens.
"""

from collections.abc import Callable

import pytest

from peers.phone import Phone, PhoneError, Screen, ScreenChange
from signaling.calls import CallState, Cause, Transition
from signaling.messages import (
    Answer,
    Block,
    Busy,
    CallEnded,
    Decline,
    Error,
    ErrorCode,
    Hangup,
    Incoming,
    MissedCall,
    MissedCallAck,
    Offer,
    PhoneMessage,
    Reconnecting,
    Register,
    Registered,
    Resumed,
    Ringing,
    Unblock,
)
from signaling.switchboard import SwitchboardSettings
from tests.transcripts import Exchange, outline, token_for


GRACE = 10.0


class RecordingPhone(Phone):
    """A phone that remembers every transition it has handed out, for :func:`steps`."""

    def __init__(self, name: str) -> None:
        ids = iter(f"{name}-{i}" for i in range(1, 100))
        super().__init__(
            name, token_for(name), reconnect_grace=GRACE, new_call_id=lambda: next(ids)
        )
        self.seen: list[Transition] = []

    def transitions_received(self) -> list[Transition]:
        out = super().transitions_received()
        self.seen.extend(out)
        return out


def new_phone(name: str = "bob") -> RecordingPhone:
    return RecordingPhone(name)


def registered(name: str = "bob", now: float = 0.0) -> RecordingPhone:
    phone = new_phone(name)
    phone.link_up(now)
    phone.receive(Registered(name=name, blocks=[], calls=[]), now)
    drain(phone)
    return phone


def drain(
    phone: Phone,
) -> tuple[list[PhoneMessage], list[Transition], list[ScreenChange]]:
    return phone.messages_to_send(), phone.transitions_received(), phone.screens_received()


def incoming(call_id: str = "c1", caller: str = "alice", at: float = 0.0) -> Incoming:
    return Incoming(call_id=call_id, from_=caller, kind="audio", sdp="v=0 offer", placed_at=at)


def steps(phone: RecordingPhone, call_id: str) -> list[tuple[str, str, float]]:
    """``(to_state, cause, at)`` of every transition of one call so far."""
    phone.transitions_received()
    return [(str(t.to_state), str(t.cause), t.at) for t in phone.seen if t.call.call_id == call_id]


# --- Registration ----------------------------------------------------------------------------


def test_a_new_phone_is_idle_and_unregistered():
    phone = new_phone()
    assert phone.screen is Screen.IDLE
    assert not phone.registered
    assert phone.call_log() == []
    assert phone.next_wakeup() is None
    assert phone.wants_connection
    assert drain(phone) == ([], [], [])


def test_link_up_registers_and_registered_makes_it_usable():
    phone = new_phone()
    phone.link_up(0)
    assert phone.messages_to_send() == [Register(name="bob", token=token_for("bob"), calls=[])]
    assert not phone.registered
    phone.receive(Registered(name="bob", blocks=["eve"], calls=[]), 0)
    assert phone.registered
    assert phone.blocks == {"eve"}
    assert drain(phone) == ([], [], [])


def test_errors_from_the_server_are_kept():
    phone = registered()
    error = Error(code=ErrorCode.UNKNOWN_CALL, message="call x does not exist", call_id="x")
    phone.receive(error, 1)
    assert phone.errors == [error]
    assert drain(phone) == ([], [], [])


# --- What the person may not do: PhoneError, and nothing changes --------------------------------


def _refused(phone: Phone, action: Callable[[], object], match: str) -> None:
    log_before = phone.call_log()
    screen_before = phone.screen
    with pytest.raises(PhoneError, match=match):
        action()
    assert drain(phone) == ([], [], [])
    assert phone.call_log() == log_before
    assert phone.screen is screen_before


def test_answer_or_decline_with_nothing_ringing():
    phone = registered()
    _refused(phone, lambda: phone.answer("v=0", 1), "bob cannot answer: nothing is ringing")
    _refused(phone, lambda: phone.decline(1), "bob cannot decline: nothing is ringing")
    _refused(phone, lambda: phone.hang_up(1), "bob cannot hang up: it is not in a call")


def test_the_caller_cannot_answer_its_own_call():
    phone = registered("alice")
    phone.place_call("bob", "audio", "v=0", 1)
    phone.receive(Ringing(call_id="alice-1"), 1)
    drain(phone)
    _refused(phone, lambda: phone.answer("v=0", 2), "nothing is ringing")


def test_calling_while_off():
    phone = registered("alice")
    phone.power_off(1)
    drain(phone)
    _refused(
        phone, lambda: phone.place_call("bob", "audio", "v=0", 2), "alice cannot call: it is off"
    )
    _refused(phone, lambda: phone.answer("v=0", 2), "it is off")
    _refused(phone, lambda: phone.hang_up(2), "it is off")
    _refused(phone, lambda: phone.block("eve", 2), "it is off")
    _refused(phone, lambda: phone.power_off(2), "off already")
    _refused(phone, lambda: phone.go_online(2), "it is off")


def test_calling_while_unregistered():
    phone = new_phone("alice")
    _refused(phone, lambda: phone.place_call("bob", "audio", "v=0", 0), "no connection")
    phone.link_up(0)
    drain(phone)
    _refused(phone, lambda: phone.place_call("bob", "audio", "v=0", 0), "no connection")


def test_calling_while_in_a_call_or_while_ringing():
    phone = registered("alice")
    phone.place_call("bob", "audio", "v=0", 1)
    drain(phone)
    _refused(phone, lambda: phone.place_call("carol", "audio", "v=0", 2), "in a call already")

    callee = registered("bob")
    callee.receive(incoming(), 1)
    drain(callee)
    _refused(callee, lambda: callee.place_call("carol", "audio", "v=0", 2), "in a call already")


def test_calling_oneself():
    phone = registered("alice")
    _refused(phone, lambda: phone.place_call("alice", "audio", "v=0", 1), "cannot call itself")


def test_power_on_while_on_and_online_while_online():
    phone = registered()
    _refused(phone, lambda: phone.power_on(1), "on already")
    _refused(phone, lambda: phone.go_online(1), "online already")


# --- Calls, frame by frame ---------------------------------------------------------------------


def test_placing_a_call():
    phone = registered("alice")
    call_id = phone.place_call("bob", "video", "v=0 offer", 1)
    assert call_id == "alice-1"
    out, transitions, screens = drain(phone)
    assert out == [Offer(call_id="alice-1", to="bob", kind="video", sdp="v=0 offer")]
    assert [(t.from_state, t.to_state, t.cause, t.at) for t in transitions] == [
        (CallState.NEW, CallState.DIALING, Cause.PLACED, 1)
    ]
    assert screens == [ScreenChange("alice", Screen.IDLE, Screen.CALLING, 1)]


def test_an_incoming_call_rings_and_is_acknowledged():
    phone = registered()
    phone.receive(incoming("c1", at=3), 4)
    out, transitions, screens = drain(phone)
    assert out == [Ringing(call_id="c1")]
    assert [(t.to_state, t.cause) for t in transitions] == [(CallState.RINGING, Cause.REACHED)]
    assert screens == [ScreenChange("bob", Screen.IDLE, Screen.INCOMING, 4)]
    assert phone.ringing_offer() == ("c1", "v=0 offer")
    (summary,) = phone.call_log()
    assert summary.info.placed_at == 3


def test_an_offer_delivered_again_rings_again_without_a_new_transition():
    phone = registered()
    phone.receive(incoming(), 1)
    drain(phone)
    phone.receive(incoming(), 5)
    assert drain(phone) == ([Ringing(call_id="c1")], [], [])


def test_answer_decline_and_hang_up_send_the_right_frames():
    phone = registered()
    phone.receive(incoming("c1"), 1)
    drain(phone)
    assert phone.answer("v=0 answer", 2) == "c1"
    assert phone.messages_to_send() == [Answer(call_id="c1", sdp="v=0 answer")]
    assert phone.answer_sdp("c1") == "v=0 answer"
    assert phone.hang_up(3) == "c1"
    assert phone.messages_to_send() == [Hangup(call_id="c1")]
    assert steps(phone, "c1") == [
        ("ringing", "reached", 1),
        ("answered", "answered", 2),
        ("ended", "hung_up", 3),
    ]

    phone.receive(incoming("c2"), 4)
    drain(phone)
    assert phone.decline(5) == "c2"
    assert phone.messages_to_send() == [Decline(call_id="c2")]
    assert steps(phone, "c2")[-1] == ("ended", "declined", 5)


def test_hanging_up_a_ringing_incoming_call_declines_it():
    phone = registered()
    phone.receive(incoming("c1"), 1)
    drain(phone)
    phone.hang_up(2)
    assert phone.messages_to_send() == [Decline(call_id="c1")]
    assert outline(phone.call_log()[0])["end_cause"] == "declined"


@pytest.mark.parametrize("ringing", [False, True])
def test_hanging_up_before_the_answer_cancels(ringing):
    phone = registered("alice")
    call_id = phone.place_call("bob", "audio", "v=0", 1)
    if ringing:
        phone.receive(Ringing(call_id=call_id), 2)
    drain(phone)
    phone.hang_up(3)
    # It says it canceled, so a cancel that crosses the answer is recognised as one.
    assert phone.messages_to_send() == [Hangup(call_id=call_id, reason="canceled")]
    assert outline(phone.call_log()[0]) == {
        "direction": "outgoing",
        "peer": "bob",
        "reached": ringing,
        "answered": False,
        "end_cause": "canceled",
        "duration": None,
    }


def test_caller_sees_ringing_then_answer():
    phone = registered("alice")
    call_id = phone.place_call("bob", "audio", "v=0", 1)
    phone.receive(Ringing(call_id=call_id), 2)
    phone.receive(Ringing(call_id=call_id), 2)  # a repeat changes nothing
    phone.receive(Answer(call_id=call_id, sdp="v=0 answer"), 3)
    phone.receive(Answer(call_id=call_id, sdp="v=0 other"), 4)  # nor does this one
    assert phone.answer_sdp(call_id) == "v=0 answer"
    assert steps(phone, call_id) == [
        ("dialing", "placed", 1),
        ("ringing", "reached", 2),
        ("answered", "answered", 3),
    ]


def test_an_answer_before_any_ringing_counts_as_reached():
    phone = registered("alice")
    call_id = phone.place_call("bob", "audio", "v=0", 1)
    phone.receive(Answer(call_id=call_id, sdp="v=0 answer"), 3)
    assert steps(phone, call_id)[-1] == ("answered", "answered", 3)
    assert phone.call_log()[0].reached


def test_a_phone_in_a_call_refuses_another_as_busy_and_logs_it():
    phone = registered()
    phone.receive(incoming("c1"), 1)
    phone.answer("v=0", 2)
    drain(phone)
    phone.receive(incoming("c2", caller="carol", at=5), 5)
    out, _, screens = drain(phone)
    assert out == [Busy(call_id="c2")]
    assert screens == []  # still in the first call
    assert phone.screen is Screen.IN_CALL
    log = {s.info.call_id: outline(s) for s in phone.call_log()}
    assert log["c2"] == {
        "direction": "incoming",
        "peer": "carol",
        "reached": False,
        "answered": False,
        "end_cause": "busy",
        "duration": None,
    }
    assert phone.active_call is not None
    assert phone.active_call.call.call_id == "c1"


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        ("canceled", "canceled"),
        ("no_answer", "no_answer"),
        ("declined", "declined"),
        ("made_up", "dropped"),  # an unknown reason
        ("answered", "dropped"),  # a cause that is not an end cause
    ],
)
def test_call_ended_reasons_on_a_ringing_call(reason, cause):
    phone = registered()
    phone.receive(incoming("c1"), 1)
    phone.receive(CallEnded(call_id="c1", reason=reason), 2)
    assert steps(phone, "c1")[-1] == ("ended", cause, 2)


def test_a_reason_the_state_does_not_allow_ends_as_dropped():
    phone = registered("alice")
    call_id = phone.place_call("bob", "audio", "v=0", 1)
    phone.receive(CallEnded(call_id=call_id, reason="no_answer"), 2)  # dialing: not allowed
    assert steps(phone, call_id)[-1] == ("ended", "dropped", 2)


def test_call_ended_for_an_unknown_call_is_ignored():
    phone = registered()
    phone.receive(CallEnded(call_id="zz", reason="canceled"), 1)
    assert phone.call_log() == []
    assert drain(phone) == ([], [], [])


# --- Missed-call notices -----------------------------------------------------------------------


def test_a_notice_is_logged_once_and_always_acked():
    phone = registered()
    notice = MissedCall(call_id="c9", from_="alice", kind="video", placed_at=3, reason="busy")
    phone.receive(notice, 20)
    out, transitions, screens = drain(phone)
    assert out == [MissedCallAck(call_id="c9")]
    assert [(t.from_state, t.to_state, t.cause, t.at) for t in transitions] == [
        (CallState.NEW, CallState.ENDED, Cause.BUSY, 20)
    ]
    assert screens == [ScreenChange("bob", Screen.IDLE, Screen.ENDED, 20)]
    (summary,) = phone.call_log()
    assert summary.info.kind == "video"
    assert summary.info.placed_at == 3
    assert outline(summary) == {
        "direction": "incoming",
        "peer": "alice",
        "reached": False,
        "answered": False,
        "end_cause": "busy",
        "duration": None,
    }

    phone.receive(notice, 30)
    assert drain(phone) == ([MissedCallAck(call_id="c9")], [], [])
    assert len(phone.call_log()) == 1


def test_a_notice_for_a_call_already_ended_changes_nothing():
    phone = registered()
    phone.receive(incoming("c1"), 1)
    phone.receive(CallEnded(call_id="c1", reason="canceled"), 2)
    drain(phone)
    notice = MissedCall(call_id="c1", from_="alice", kind="audio", placed_at=0, reason="dropped")
    phone.receive(notice, 9)
    assert drain(phone) == ([MissedCallAck(call_id="c1")], [], [])
    assert steps(phone, "c1")[-1] == ("ended", "canceled", 2)


def test_the_call_log_is_ordered_by_placement():
    phone = registered()
    for call_id, placed in (("late", 50), ("early", 10), ("mid", 30)):
        notice = MissedCall(
            call_id=call_id, from_="alice", kind="audio", placed_at=placed, reason="canceled"
        )
        phone.receive(notice, 60)
    assert [s.info.call_id for s in phone.call_log()] == ["early", "mid", "late"]


# --- Link loss and the reconnect grace ------------------------------------------------------


def test_link_loss_in_an_answered_call_waits_for_the_grace():
    phone = registered()
    phone.receive(incoming("c1"), 1)
    phone.answer("v=0", 2)
    drain(phone)
    phone.link_down(10)
    assert not phone.registered
    assert phone.screen is Screen.RECONNECTING
    assert steps(phone, "c1")[-1] == ("reconnecting", "link_lost", 10)
    assert phone.next_wakeup() == 20
    phone.wake(19.9)
    assert steps(phone, "c1")[-1] == ("reconnecting", "link_lost", 10)
    phone.wake(20)
    assert steps(phone, "c1")[-1] == ("ended", "dropped", 20)
    assert phone.next_wakeup() is None
    assert phone.screen is Screen.ENDED
    assert phone.call_log()[0].duration == 8


def test_reconnecting_in_time_lists_the_calls_and_resumes():
    phone = registered()
    phone.receive(incoming("c1"), 1)
    phone.answer("v=0", 2)
    drain(phone)
    phone.link_down(10)
    drain(phone)
    phone.link_up(12)
    assert phone.messages_to_send() == [Register(name="bob", token=token_for("bob"), calls=["c1"])]
    phone.receive(Registered(name="bob", blocks=[], calls=["c1"]), 12)
    assert phone.next_wakeup() is None
    # Held, but it goes on only when the server says so: the other party may be away.
    assert phone.screen is Screen.RECONNECTING
    phone.receive(Resumed(call_id="c1"), 12)
    _, _, screens = drain(phone)
    assert screens == [ScreenChange("bob", Screen.RECONNECTING, Screen.IN_CALL, 12)]
    assert steps(phone, "c1")[-2:] == [
        ("reconnecting", "link_lost", 10),
        ("answered", "resumed", 12),
    ]


def test_a_call_the_server_no_longer_holds_ends_dropped_on_registration():
    phone = registered()
    phone.receive(incoming("c1"), 1)
    phone.answer("v=0", 2)
    phone.link_down(10)
    phone.link_up(15)
    phone.receive(Registered(name="bob", blocks=[], calls=[]), 15)
    assert steps(phone, "c1")[-1] == ("ended", "dropped", 15)
    assert phone.call_log()[0].duration == 8  # up to the loss


def test_link_loss_with_no_call_sets_no_timer():
    phone = registered()
    phone.link_down(5)
    assert phone.next_wakeup() is None
    assert phone.screen is Screen.IDLE
    phone.link_down(6)  # a second report changes nothing
    assert drain(phone) == ([], [], [])


def test_the_other_partys_loss_and_return():
    phone = registered("alice")
    call_id = phone.place_call("bob", "audio", "v=0", 1)
    phone.receive(Answer(call_id=call_id, sdp="v=0"), 2)
    drain(phone)
    phone.receive(Reconnecting(call_id=call_id), 10)
    assert phone.screen is Screen.RECONNECTING
    assert phone.next_wakeup() is None  # the server's grace, not this phone's
    phone.receive(Resumed(call_id=call_id), 14)
    assert phone.screen is Screen.IN_CALL
    assert steps(phone, call_id)[-2:] == [
        ("reconnecting", "link_lost", 10),
        ("answered", "resumed", 14),
    ]


def test_resumed_is_ignored_while_this_phones_own_link_is_down():
    phone = registered("alice")
    call_id = phone.place_call("bob", "audio", "v=0", 1)
    phone.receive(Answer(call_id=call_id, sdp="v=0"), 2)
    phone.link_down(10)
    phone.receive(Resumed(call_id=call_id), 11)
    assert steps(phone, call_id)[-1] == ("reconnecting", "link_lost", 10)


def test_actions_while_the_link_is_down_send_nothing():
    phone = registered("alice")
    call_id = phone.place_call("bob", "audio", "v=0", 1)
    drain(phone)
    phone.link_down(5)
    phone.hang_up(6)
    assert phone.messages_to_send() == []
    assert steps(phone, call_id)[-1] == ("ended", "canceled", 6)


def test_block_changes_made_while_unregistered_are_sent_after_registration():
    phone = registered()
    phone.block("alice", 1)
    assert phone.messages_to_send() == [Block(name="alice")]
    phone.link_down(2)
    phone.block("eve", 3)
    phone.unblock("alice", 3)
    assert phone.messages_to_send() == []
    phone.link_up(4)
    drain(phone)
    phone.receive(Registered(name="bob", blocks=["alice"], calls=[]), 4)
    assert phone.messages_to_send() == [Block(name="eve"), Unblock(name="alice")]
    assert phone.blocks == {"eve"}


# --- Power -------------------------------------------------------------------------------------


def test_power_off_ends_every_call_as_dropped_and_clears_the_outbox():
    phone = registered()
    phone.receive(incoming("c1"), 1)
    phone.answer("v=0", 2)
    phone.block("eve", 3)  # queued: Ringing, Answer, Block
    phone.power_off(7)
    assert phone.messages_to_send() == []
    assert not phone.registered
    assert not phone.wants_connection
    assert phone.screen is Screen.OFF
    assert phone.next_wakeup() is None
    assert outline(phone.call_log()[0]) == {
        "direction": "incoming",
        "peer": "alice",
        "reached": True,
        "answered": True,
        "end_cause": "dropped",
        "duration": 5,
    }
    phone.power_on(9)
    assert phone.screen is not Screen.OFF
    assert phone.wants_connection
    phone.link_up(9)
    assert phone.messages_to_send() == [Register(name="bob", token=token_for("bob"), calls=[])]


def test_power_off_ends_a_ringing_call_and_an_outgoing_one():
    phone = registered()
    phone.receive(incoming("c1"), 1)
    phone.power_off(2)
    assert steps(phone, "c1")[-1] == ("ended", "dropped", 2)

    caller = registered("alice")
    call_id = caller.place_call("bob", "audio", "v=0", 1)
    caller.power_off(2)
    assert steps(caller, call_id)[-1] == ("ended", "dropped", 2)
    assert caller.messages_to_send() == []


def test_airplane_mode():
    phone = registered()
    phone.go_offline(1)
    assert not phone.wants_connection
    assert phone.powered
    phone.go_online(2)
    assert phone.wants_connection


# --- Screens over whole calls ------------------------------------------------------------------


SETTINGS = SwitchboardSettings(dial_timeout=30.0, ring_timeout=45.0, reconnect_grace=GRACE)


@pytest.fixture
def ex() -> Exchange:
    exchange = Exchange(SETTINGS)
    exchange.add_phone("alice")
    exchange.add_phone("bob")
    return exchange


def test_screens_of_an_answered_call(ex):
    ex.call("alice", "bob", 0)
    ex.answer("bob", 5)
    ex.hang_up("bob", 65)
    assert ex.screens["alice"] == [
        ScreenChange("alice", Screen.IDLE, Screen.CALLING, 0),
        ScreenChange("alice", Screen.CALLING, Screen.RINGING, 0),
        ScreenChange("alice", Screen.RINGING, Screen.IN_CALL, 5),
        ScreenChange("alice", Screen.IN_CALL, Screen.ENDED, 65),
    ]
    assert ex.screens["bob"] == [
        ScreenChange("bob", Screen.IDLE, Screen.INCOMING, 0),
        ScreenChange("bob", Screen.INCOMING, Screen.IN_CALL, 5),
        ScreenChange("bob", Screen.IN_CALL, Screen.ENDED, 65),
    ]


def test_screens_calling_until_the_callee_is_reached(ex):
    ex.disconnect("bob", 0)
    ex.call("alice", "bob", 1)
    ex.connect("bob", 8)
    ex.decline("bob", 9)
    assert ex.screen_history("alice") == [
        (Screen.CALLING, 1),
        (Screen.RINGING, 8),
        (Screen.ENDED, 9),
    ]
    assert ex.screen_history("bob") == [(Screen.INCOMING, 8), (Screen.ENDED, 9)]


def test_screens_reconnecting_on_link_loss(ex):
    ex.call("alice", "bob", 0)
    ex.answer("bob", 5)
    ex.lose_signal("bob", 20)
    ex.disconnect("bob", 25)
    ex.regain_signal("bob", 30)
    ex.lose_signal("alice", 40)
    ex.disconnect("alice", 45)
    ex.advance(60)
    assert ex.screen_history("alice") == [
        (Screen.CALLING, 0),
        (Screen.RINGING, 0),
        (Screen.IN_CALL, 5),
        (Screen.RECONNECTING, 25),
        (Screen.IN_CALL, 30),
        (Screen.RECONNECTING, 45),
        (Screen.ENDED, 55),
    ]
    assert ex.screen_history("bob") == [
        (Screen.INCOMING, 0),
        (Screen.IN_CALL, 5),
        (Screen.RECONNECTING, 25),
        (Screen.IN_CALL, 30),
        (Screen.RECONNECTING, 45),
        (Screen.ENDED, 55),
    ]
    # Both dropped, the duration up to the last loss, the first gap counted.
    for label in ("alice", "bob"):
        summary = ex.entry(label)
        assert summary.end_cause is Cause.DROPPED
        assert summary.duration == 40


def test_screens_of_a_caller_whose_link_dies_while_calling(ex):
    ex.call("alice", "bob", 0)
    ex.disconnect("alice", 3)
    assert ex.phones["alice"].screen is Screen.RECONNECTING
    ex.advance(13)
    assert ex.screen_history("alice")[-2:] == [(Screen.RECONNECTING, 3), (Screen.ENDED, 13)]


def test_screens_power_off_and_on(ex):
    ex.call("alice", "bob", 0)
    ex.power_off("bob", 2)
    ex.power_on("bob", 4)
    assert ex.screen_history("bob") == [
        (Screen.INCOMING, 0),
        (Screen.OFF, 2),
        (Screen.ENDED, 4),
    ]


# --- Found by exploration -------------------------------------------------------------------


def test_a_switched_off_phone_hears_nothing():
    # A frame its driver had read before the power went must not ring a dead phone (seed 4003).
    phone = registered()
    phone.power_off(1)
    drain(phone)
    phone.receive(incoming("c1", at=1), 1)
    assert drain(phone) == ([], [], [])
    assert phone.call_log() == []
    assert phone.screen is Screen.OFF


@pytest.mark.parametrize(
    "code",
    [
        ErrorCode.UNKNOWN_PHONE,
        ErrorCode.SELF_CALL,
        ErrorCode.DUPLICATE_CALL,
        ErrorCode.TOO_MANY_CALLS,
    ],
)
def test_a_refused_offer_ends_the_call_it_placed(code):
    # Nobody else will ever end a call the server never placed (seed 178).
    phone = registered("alice")
    call_id = phone.place_call("bob", "audio", "v=0 offer", 1)
    drain(phone)
    phone.receive(Error(code=code, message="refused", call_id=call_id), 1)
    _, transitions, screens = drain(phone)
    assert [(t.to_state, t.cause) for t in transitions] == [(CallState.ENDED, Cause.UNREACHABLE)]
    assert screens == [ScreenChange("alice", Screen.CALLING, Screen.ENDED, 1)]


def test_an_error_about_another_frame_of_the_call_does_not_end_it():
    phone = registered("alice")
    call_id = phone.place_call("bob", "audio", "v=0 offer", 1)
    drain(phone)
    phone.receive(Error(code=ErrorCode.RATE_LIMITED, message="slow down", call_id=call_id), 2)
    assert drain(phone)[1] == []
    assert phone.screen is Screen.CALLING


def test_a_phone_that_knows_it_has_no_connection_cannot_answer():
    # Its screen shows Reconnecting…; an answer nobody hears would leave it alone in a call
    # the caller never saw (seed 473).
    phone = registered()
    phone.receive(incoming("c1"), 1)
    phone.go_offline(2)
    phone.link_down(2)
    drain(phone)
    _refused(phone, lambda: phone.answer("v=0 answer", 3), "not connected")
    assert phone.messages_to_send() == []


# --- Media calls: the media timer ------------------------------------------------------------


def media_callee(media_timeout: float = 5.0) -> RecordingPhone:
    """A registered media phone ringing with call c1 and answered at t = 1."""
    phone = registered()
    phone.media_timeout = media_timeout
    phone.receive(incoming(), 0.0)
    phone.answer("v=0 answer", 1.0)
    drain(phone)
    return phone


def test_a_signaling_only_phone_runs_no_media_timer():
    phone = registered()
    phone.receive(incoming(), 0.0)
    phone.answer("v=0 answer", 1.0)
    assert phone.next_wakeup() is None


def test_media_not_connected_in_time_ends_the_call_failed_and_says_so():
    phone = media_callee()
    assert phone.next_wakeup() == 6.0
    phone.wake(6.0)
    assert steps(phone, "c1")[-1] == ("ended", "failed", 6.0)
    assert phone.messages_to_send() == [Hangup(call_id="c1", reason="failed")]
    assert phone.next_wakeup() is None


def test_connected_media_stops_the_media_timer():
    phone = media_callee()
    phone.media_connected("c1", 1.1)
    phone.media_flowing("c1", 5.5)
    phone.wake(6.0)
    assert steps(phone, "c1")[-1][:2] == ("answered", "answered")
    assert phone.next_wakeup() == 5.5 + phone.media_stall


def test_media_that_fails_before_connecting_fails_the_call_at_once():
    phone = media_callee()
    phone.media_failed("c1", 2.0)
    assert steps(phone, "c1")[-1] == ("ended", "failed", 2.0)


def test_stalled_media_shows_reconnecting_and_resumes_when_packets_return():
    phone = media_callee()
    phone.media_connected("c1", 1.1)
    phone.wake(1.1 + phone.media_stall)
    assert phone.screen is Screen.RECONNECTING
    assert steps(phone, "c1")[-1][:2] == ("reconnecting", "link_lost")
    phone.media_flowing("c1", 4.0)
    assert phone.screen is Screen.IN_CALL
    assert steps(phone, "c1")[-1] == ("answered", "resumed", 4.0)
    assert phone.messages_to_send() == []  # the server's view never changed


def test_stalled_media_past_the_grace_ends_the_call_dropped_and_says_so():
    phone = media_callee()
    phone.media_connected("c1", 1.1)
    stalled = 1.1 + phone.media_stall
    phone.wake(stalled)
    drain(phone)
    assert phone.next_wakeup() == stalled + GRACE
    phone.wake(stalled + GRACE)
    assert steps(phone, "c1")[-1] == ("ended", "dropped", stalled + GRACE)
    assert phone.messages_to_send() == [Hangup(call_id="c1", reason="dropped")]
    (summary,) = phone.call_log()
    assert summary.duration == pytest.approx(stalled - 1.0)  # up to the loss


# --- Several devices per name ------------------------------------------------------------------


def test_a_device_registers_with_its_id_and_records_under_its_end():
    phone = Phone("bob", token_for("bob"), device="2")
    assert phone.end == "bob#2"
    phone.link_up(0)
    assert phone.messages_to_send() == [
        Register(name="bob", token=token_for("bob"), calls=[], device="2")
    ]
    phone.receive(Registered(name="bob", blocks=[], calls=[]), 0)
    phone.receive(incoming(), 1)
    _, transitions, screens = drain(phone)
    assert [t.who for t in transitions] == ["bob#2"]
    assert [s.who for s in screens] == ["bob#2"]
    assert phone.call_log()[0].direction == "incoming"


@pytest.mark.parametrize("reason", ["answered_elsewhere", "declined_elsewhere"])
def test_a_device_told_it_was_done_elsewhere_ends_the_call_so(reason):
    phone = registered()
    phone.receive(incoming(), 1)
    phone.receive(CallEnded(call_id="c1", reason=reason), 3)
    assert steps(phone, "c1")[-1] == ("ended", reason, 3)
    assert phone.screen is Screen.ENDED


def test_a_device_whose_answer_lost_the_race_does_not_claim_the_call():
    phone = registered()
    phone.receive(incoming(), 1)
    phone.answer("v=0 answer", 2)
    phone.receive(CallEnded(call_id="c1", reason="answered_elsewhere"), 2)
    summary = phone.call_log()[0]
    assert summary.end_cause is Cause.ANSWERED_ELSEWHERE
    assert not summary.answered


# --- Glare --------------------------------------------------------------------------------------


def test_glare_an_incoming_call_with_a_lower_id_replaces_our_own():
    phone = registered()
    own = phone.place_call("alice", "audio", "v=0 offer", 1)  # bob-1
    drain(phone)
    phone.receive(incoming("a0", caller="alice"), 1)
    assert steps(phone, own)[-1] == ("ended", "glare", 1)
    assert steps(phone, "a0") == [("ringing", "reached", 1)]
    assert phone.messages_to_send() == [Ringing(call_id="a0")]  # no frame for the loser
    assert phone.screen is Screen.INCOMING


def test_glare_an_incoming_call_with_a_higher_id_is_ignored():
    phone = registered()
    own = phone.place_call("alice", "audio", "v=0 offer", 1)  # bob-1
    drain(phone)
    phone.receive(incoming("z9", caller="alice"), 1)
    assert steps(phone, "z9") == []
    assert phone.messages_to_send() == []  # not busy: the server ends z9 as glare
    assert steps(phone, own) == [("dialing", "placed", 1)]
    phone.receive(CallEnded(call_id="z9", reason="glare"), 1)  # a call it never logged
    assert [s.info.call_id for s in phone.call_log()] == [own]


def test_an_incoming_call_from_someone_else_while_calling_is_still_busy():
    phone = registered()
    phone.place_call("alice", "audio", "v=0 offer", 1)
    drain(phone)
    phone.receive(incoming("a0", caller="carol"), 1)
    assert phone.messages_to_send() == [Busy(call_id="a0")]


def test_a_call_lost_to_glare_that_the_server_carries_on_with_is_hung_up_once():
    # Exploration seed 3025845: the rival had ended at the server before our offer came,
    # so the server placed our call; the phone, which ended it as glare, says so once.
    phone = registered()
    phone.receive(incoming("a0", caller="alice"), 1)  # a0 < bob-1: the rival wins
    drain(phone)
    own = phone.place_call("alice", "audio", "v=0 offer", 2)
    assert steps(phone, own)[-1] == ("ended", "glare", 2)
    drain(phone)
    phone.receive(Ringing(call_id=own), 2)
    assert phone.messages_to_send() == [Hangup(call_id=own, reason="glare")]
    phone.receive(Answer(call_id=own, sdp="v=0"), 3)
    assert phone.messages_to_send() == []  # told once
    assert steps(phone, own)[-1] == ("ended", "glare", 2)


def test_frames_for_a_call_that_ended_otherwise_send_nothing():
    phone = registered()
    own = phone.place_call("alice", "audio", "v=0 offer", 1)
    phone.hang_up(2)
    drain(phone)
    phone.receive(Ringing(call_id=own), 3)
    assert phone.messages_to_send() == []


def test_on_its_return_a_phone_says_again_the_answer_its_dead_radio_may_have_lost():
    phone = registered()
    phone.receive(incoming("c1"), 1)
    phone.answer("v=0 answer", 2)
    phone.link_down(3)  # Reconnecting…
    phone.link_up(4)
    drain(phone)
    phone.receive(Registered(name="bob", blocks=[], calls=["c1"]), 4)
    assert phone.messages_to_send() == [Answer(call_id="c1", sdp="v=0 answer")]
    assert steps(phone, "c1")[-1] == ("reconnecting", "link_lost", 3)  # until resumed
    phone.receive(Resumed(call_id="c1"), 4)
    assert steps(phone, "c1")[-1] == ("answered", "resumed", 4)


def test_a_caller_coming_back_says_nothing_again():
    phone = registered()
    own = phone.place_call("alice", "audio", "v=0 offer", 1)
    phone.receive(Answer(call_id=own, sdp="v=0"), 2)
    phone.link_down(3)
    phone.link_up(4)
    drain(phone)
    phone.receive(Registered(name="bob", blocks=[], calls=[own]), 4)
    assert phone.messages_to_send() == []


def test_calling_back_the_caller_that_rings_us_is_allowed_and_foresees_glare():
    phone = registered()
    phone.receive(incoming("c9", caller="alice"), 1)
    drain(phone)
    with pytest.raises(PhoneError, match="in a call already"):
        phone.check_call("carol")
    phone.check_call("alice")
    own = phone.place_call("alice", "audio", "v=0 offer", 2)  # bob-1 < c9: ours wins
    assert [type(m) for m in phone.messages_to_send()] == [Offer]
    assert steps(phone, "c9")[-1] == ("ended", "glare", 2)
    assert steps(phone, own) == [("dialing", "placed", 2)]
    assert phone.screen is Screen.CALLING
