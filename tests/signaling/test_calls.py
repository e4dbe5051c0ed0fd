"""The call state machine: the table, illegal causes, and summaries of each end's view."""

import itertools

import pytest

from signaling.calls import (
    END_CAUSES,
    TRANSITIONS,
    Call,
    CallInfo,
    CallState,
    Cause,
    InvalidTransition,
    Transition,
    end_name,
    party_name,
    summarize,
)


S = CallState
C = Cause

# The table, written out by hand from the module's docstring and DESIGN.md, so that a change
# to TRANSITIONS has to be made twice.
EXPECTED: dict[CallState, dict[Cause, CallState]] = {
    S.NEW: {
        C.PLACED: S.DIALING,
        C.REACHED: S.RINGING,
        C.CANCELED: S.ENDED,
        C.NO_ANSWER: S.ENDED,
        C.UNREACHABLE: S.ENDED,
        C.BUSY: S.ENDED,
        C.DROPPED: S.ENDED,
    },
    S.DIALING: {
        C.REACHED: S.RINGING,
        C.ANSWERED: S.ANSWERED,
        C.UNREACHABLE: S.ENDED,
        C.BLOCKED: S.ENDED,
        C.CANCELED: S.ENDED,
        C.DECLINED: S.ENDED,
        C.BUSY: S.ENDED,
        C.DROPPED: S.ENDED,
        C.ANSWERED_ELSEWHERE: S.ENDED,
        C.DECLINED_ELSEWHERE: S.ENDED,
        C.GLARE: S.ENDED,
    },
    S.RINGING: {
        C.ANSWERED: S.ANSWERED,
        C.NO_ANSWER: S.ENDED,
        C.UNREACHABLE: S.ENDED,
        C.CANCELED: S.ENDED,
        C.DECLINED: S.ENDED,
        C.BUSY: S.ENDED,
        C.DROPPED: S.ENDED,
        C.ANSWERED_ELSEWHERE: S.ENDED,
        C.DECLINED_ELSEWHERE: S.ENDED,
        C.GLARE: S.ENDED,
    },
    S.ANSWERED: {
        C.LINK_LOST: S.RECONNECTING,
        C.HUNG_UP: S.ENDED,
        C.DROPPED: S.ENDED,
        C.CANCELED: S.ENDED,  # a cancel that crossed the answer
        C.NO_ANSWER: S.ENDED,  # a ring timer that crossed the answer
        C.FAILED: S.ENDED,  # a media call whose media never connected
        C.ANSWERED_ELSEWHERE: S.ENDED,  # another device's answer came first
    },
    S.RECONNECTING: {
        C.RESUMED: S.ANSWERED,
        C.HUNG_UP: S.ENDED,
        C.DROPPED: S.ENDED,
        C.FAILED: S.ENDED,
        C.CANCELED: S.ENDED,  # answered while the caller was away for good
    },
    S.ENDED: {},
}

# How to bring a fresh call into each state.
PATHS: dict[CallState, list[Cause]] = {
    S.NEW: [],
    S.DIALING: [C.PLACED],
    S.RINGING: [C.PLACED, C.REACHED],
    S.ANSWERED: [C.PLACED, C.REACHED, C.ANSWERED],
    S.RECONNECTING: [C.PLACED, C.REACHED, C.ANSWERED, C.LINK_LOST],
    S.ENDED: [C.PLACED, C.CANCELED],
}

INFO = CallInfo(call_id="c1", caller="alice", callee="bob", kind="audio", placed_at=0.0)


def _call_in(state: CallState, who: str = "alice") -> Call:
    call = Call(who, INFO)
    for at, cause in enumerate(PATHS[state]):
        call.fire(cause, float(at))
    assert call.state is state
    return call


def _run(who: str, steps: list[tuple[Cause, float]], info: CallInfo = INFO) -> list[Transition]:
    call = Call(who, info)
    for cause, at in steps:
        call.fire(cause, at)
    return call.transitions


def test_the_table_is_the_documented_one():
    assert {s: dict(t) for s, t in TRANSITIONS.items()} == EXPECTED
    assert set(TRANSITIONS) == set(CallState)


def test_end_causes():
    assert {
        C.CANCELED,
        C.DECLINED,
        C.BUSY,
        C.NO_ANSWER,
        C.UNREACHABLE,
        C.HUNG_UP,
        C.DROPPED,
        C.BLOCKED,
        C.FAILED,
        C.ANSWERED_ELSEWHERE,
        C.DECLINED_ELSEWHERE,
        C.GLARE,
    } == END_CAUSES
    # every end cause, and nothing else, leads to ENDED
    for causes in EXPECTED.values():
        for cause, to in causes.items():
            assert (to is S.ENDED) == (cause in END_CAUSES)


LEGAL = [(s, c, to) for s, causes in EXPECTED.items() for c, to in causes.items()]
ILLEGAL = [(s, c) for s, c in itertools.product(CallState, Cause) if c not in EXPECTED[s]]


@pytest.mark.parametrize(("state", "cause", "to"), LEGAL)
def test_every_legal_transition(state, cause, to):
    call = _call_in(state)
    before = list(call.transitions)
    assert call.can(cause)
    transition = call.fire(cause, 42.5)
    assert call.state is to
    assert transition == Transition("alice", INFO, state, to, cause, 42.5)
    assert call.transitions == [*before, transition]
    assert call.is_over is (to is S.ENDED)


@pytest.mark.parametrize(("state", "cause"), ILLEGAL)
def test_every_illegal_transition_raises_and_changes_nothing(state, cause):
    call = _call_in(state)
    before = list(call.transitions)
    assert not call.can(cause)
    with pytest.raises(InvalidTransition) as info:
        call.fire(cause, 99.0)
    assert call.state is state
    assert call.transitions == before
    error = info.value
    assert (error.call_id, error.state, error.cause) == ("c1", state, cause)


def test_illegal_cases_are_the_expected_ones():
    # Spot checks of the rules the docstring states in words.
    assert (S.DIALING, C.NO_ANSWER) in ILLEGAL  # dialing ends unreachable, not no_answer
    assert (S.RINGING, C.HUNG_UP) in ILLEGAL  # before the answer a hang-up is canceled
    assert (S.ANSWERED, C.DECLINED) in ILLEGAL  # a decline cannot follow the answer
    assert (S.NEW, C.ANSWERED) in ILLEGAL
    assert (S.NEW, C.DECLINED) in ILLEGAL
    assert all((S.ENDED, c) in ILLEGAL for c in Cause)


def test_invalid_transition_lists_the_allowed_causes():
    call = _call_in(S.ANSWERED)
    with pytest.raises(InvalidTransition) as info:
        call.fire(C.DECLINED, 5.0)
    assert str(info.value) == (
        "call c1 is answered: declined is not allowed "
        "(allowed: answered_elsewhere, canceled, dropped, failed, hung_up, link_lost, no_answer)"
    )


def test_an_end_that_crossed_the_answer_voids_it():
    call = _call_in(S.ANSWERED)
    call.fire(C.CANCELED, 5.0)
    summary = summarize(call.transitions)
    assert (summary.answered, summary.duration, summary.reached) == (False, None, True)


def test_invalid_transition_of_an_ended_call_says_it_has_ended():
    call = _call_in(S.ENDED)
    with pytest.raises(InvalidTransition) as info:
        call.fire(C.HUNG_UP, 5.0)
    assert str(info.value) == (
        "call c1 is ended: hung_up is not allowed (allowed: nothing (it has ended))"
    )


def test_transition_as_event():
    transition = _call_in(S.DIALING).transitions[0]
    assert transition.as_event() == {
        "who": "alice",
        "call_id": "c1",
        "caller": "alice",
        "callee": "bob",
        "kind": "audio",
        "placed_at": 0.0,
        "from": "new",
        "to": "dialing",
        "cause": "placed",
        "at": 0.0,
    }


# --- summarize -------------------------------------------------------------------------------


def test_summary_of_an_answered_call_on_both_ends():
    caller = summarize(
        _run("alice", [(C.PLACED, 0), (C.REACHED, 1), (C.ANSWERED, 5), (C.HUNG_UP, 65)])
    )
    callee = summarize(_run("bob", [(C.REACHED, 1), (C.ANSWERED, 5), (C.HUNG_UP, 65)]))
    assert (caller.direction, caller.peer, caller.reached) == ("outgoing", "bob", True)
    assert (callee.direction, callee.peer, callee.reached) == ("incoming", "alice", True)
    for end in (caller, callee):
        assert end.answered
        assert (end.answered_at, end.lost_at, end.ended_at) == (5, None, 65)
        assert end.end_cause is C.HUNG_UP
        assert end.duration == 60
        assert end.info == INFO


def test_summary_of_a_dropped_call_counts_only_up_to_the_loss():
    summary = summarize(
        _run(
            "alice",
            [(C.PLACED, 0), (C.REACHED, 1), (C.ANSWERED, 5), (C.LINK_LOST, 25), (C.DROPPED, 35)],
        )
    )
    assert summary.end_cause is C.DROPPED
    assert (summary.lost_at, summary.ended_at) == (25, 35)
    assert summary.duration == 20


def test_summary_of_a_call_dropped_after_two_losses_counts_up_to_the_last():
    summary = summarize(
        _run(
            "bob",
            [
                (C.REACHED, 0),
                (C.ANSWERED, 5),
                (C.LINK_LOST, 10),
                (C.RESUMED, 12),
                (C.LINK_LOST, 30),
                (C.DROPPED, 40),
            ],
        )
    )
    assert summary.lost_at == 30
    assert summary.duration == 25


def test_summary_of_a_call_dropped_without_a_loss_counts_up_to_the_end():
    # Powered off in the middle of a call: dropped at once, no Reconnecting… first.
    summary = summarize(_run("bob", [(C.REACHED, 0), (C.ANSWERED, 5), (C.DROPPED, 17)]))
    assert summary.lost_at is None
    assert summary.duration == 12


def test_summary_of_a_call_hung_up_while_reconnecting_counts_only_up_to_the_loss():
    # Exploration seed 1000613: the callee went offline mid-call and hung up 1.5 s later;
    # its caller, dropped at the grace, measured to the loss. Both must.
    summary = summarize(
        _run("bob", [(C.REACHED, 0), (C.ANSWERED, 2), (C.LINK_LOST, 3), (C.HUNG_UP, 4.5)])
    )
    assert (summary.end_cause, summary.ended_reconnecting) == (C.HUNG_UP, True)
    assert summary.duration == 1


def test_summary_of_a_call_dropped_from_answered_after_a_resumed_gap_counts_to_the_end():
    # The gap at 10 s resumed; the server crash at 40 s dropped the call straight from
    # answered: the old gap must not cut the call short.
    summary = summarize(
        _run(
            "bob",
            [(C.REACHED, 0), (C.ANSWERED, 5), (C.LINK_LOST, 10), (C.RESUMED, 12), (C.DROPPED, 40)],
        )
    )
    assert (summary.lost_at, summary.ended_reconnecting) == (10, False)
    assert summary.duration == 35


def test_summary_of_a_resumed_call_counts_the_gap():
    summary = summarize(
        _run(
            "alice",
            [
                (C.PLACED, 0),
                (C.REACHED, 1),
                (C.ANSWERED, 5),
                (C.LINK_LOST, 25),
                (C.RESUMED, 30),
                (C.HUNG_UP, 65),
            ],
        )
    )
    assert summary.lost_at == 25
    assert summary.end_cause is C.HUNG_UP
    assert summary.duration == 60


def test_summary_of_a_call_known_only_from_a_notice():
    summary = summarize(_run("bob", [(C.CANCELED, 50)]))
    assert summary.direction == "incoming"
    assert summary.peer == "alice"
    assert not summary.reached
    assert not summary.answered
    assert (summary.ended_at, summary.end_cause) == (50, C.CANCELED)
    assert summary.duration is None


@pytest.mark.parametrize(
    ("steps", "reached", "end_cause"),
    [
        ([(C.PLACED, 0), (C.UNREACHABLE, 30)], False, C.UNREACHABLE),  # Calling… to the end
        ([(C.PLACED, 0), (C.CANCELED, 3)], False, C.CANCELED),
        ([(C.PLACED, 0), (C.REACHED, 1), (C.CANCELED, 3)], True, C.CANCELED),  # Ringing…
        ([(C.PLACED, 0), (C.REACHED, 1), (C.NO_ANSWER, 46)], True, C.NO_ANSWER),
        ([(C.PLACED, 0), (C.BUSY, 0)], False, C.BUSY),
        ([(C.PLACED, 0), (C.REACHED, 0), (C.DECLINED, 4)], True, C.DECLINED),
    ],
)
def test_summary_of_unanswered_outgoing_calls(steps, reached, end_cause):
    summary = summarize(_run("alice", steps))
    assert summary.direction == "outgoing"
    assert summary.reached is reached
    assert not summary.answered
    assert summary.end_cause is end_cause
    assert summary.duration is None


def test_an_answer_without_ringing_counts_as_reached():
    summary = summarize(_run("alice", [(C.PLACED, 0), (C.ANSWERED, 2), (C.HUNG_UP, 3)]))
    assert summary.reached
    assert summary.duration == 1


def test_summary_of_a_call_in_progress():
    summary = summarize(_run("alice", [(C.PLACED, 0), (C.REACHED, 1), (C.ANSWERED, 5)]))
    assert summary.answered
    assert summary.ended_at is None
    assert summary.end_cause is None
    assert summary.duration is None


def test_summarize_refuses_nothing_and_mixtures():
    with pytest.raises(ValueError, match="no transitions"):
        summarize([])
    alice = _run("alice", [(C.PLACED, 0)])
    bob = _run("bob", [(C.REACHED, 0)])
    with pytest.raises(ValueError, match="several"):
        summarize([*alice, *bob])
    other = CallInfo("c2", "alice", "bob", "audio", 0.0)
    with pytest.raises(ValueError, match="several"):
        summarize([*alice, *_run("alice", [(C.PLACED, 0)], other)])


# --- Ends and devices ---------------------------------------------------------------------------


def test_an_end_is_the_name_alone_or_the_name_and_its_device():
    assert end_name("bob", None) == "bob"
    assert end_name("bob", "2") == "bob#2"
    assert party_name("bob#2") == "bob"
    assert party_name("bob") == "bob"
    assert party_name("server") == "server"


def test_a_device_of_the_callee_sees_an_incoming_call():
    summary = summarize(_run("bob#2", [(C.REACHED, 1.0), (C.ANSWERED_ELSEWHERE, 4.0)]))
    assert summary.direction == "incoming"
    assert summary.peer == "alice"
    assert summary.reached and not summary.answered
    assert summary.end_cause is C.ANSWERED_ELSEWHERE


def test_a_device_of_the_caller_sees_an_outgoing_call():
    info = CallInfo(call_id="c2", caller="bob", callee="alice", kind="audio", placed_at=0.0)
    summary = summarize(_run("bob#1", [(C.PLACED, 0.0), (C.GLARE, 0.0)], info))
    assert summary.direction == "outgoing"
    assert summary.peer == "alice"


def test_an_answer_that_lost_to_another_devices_answer_never_counted():
    steps = [(C.REACHED, 1.0), (C.ANSWERED, 2.0), (C.ANSWERED_ELSEWHERE, 2.0)]
    summary = summarize(_run("bob#1", steps))
    assert not summary.answered
    assert summary.duration is None
