"""Observers: the event stream, and each end's call log built from its own transitions."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from scenarios.observers import (
    EventStream,
    LogEntry,
    Observation,
    both_ends_agree_on_the_answer,
    call_logs,
    label_entries,
    other_devices_hear_it_was_done_elsewhere,
)
from scenarios.profiles import load_profile
from signaling.calls import CallInfo, CallState, Cause, Transition
from signaling.records import CallRecord


WHATSAPP = load_profile("whatsapp")


def info(
    call_id: str = "c1", caller: str = "alice", callee: str = "bob", *, placed_at: float = 0.0
) -> CallInfo:
    return CallInfo(call_id, caller, callee, "audio", placed_at)


def t(who: str, call: CallInfo, frm: str, to: str, cause: str, at: float) -> Transition:
    return Transition(who, call, CallState(frm), CallState(to), Cause(cause), at)


def answered_call(call: CallInfo, *, answered_at: float, ended_at: float) -> list[Transition]:
    """Both ends' and the server's transitions of a call answered then hung up."""
    out = []
    for who in (call.caller, "server", call.callee):
        first = (
            ("new", "dialing", "placed") if who != call.callee else ("new", "ringing", "reached")
        )
        out.append(t(who, call, *first, call.placed_at))
        if who != call.callee:
            out.append(t(who, call, "dialing", "ringing", "reached", call.placed_at))
        out.append(t(who, call, "ringing", "answered", "answered", answered_at))
        out.append(t(who, call, "answered", "ended", "hung_up", ended_at))
    return out


# --- EventStream ------------------------------------------------------------------------------


def test_the_stream_stamps_each_event_with_the_scenario_clock() -> None:
    now = [1.23456789]
    stream = EventStream(lambda: now[0])
    returned = stream(None, "info", {"event": "frame", "type": "offer"})
    assert returned["t"] == 1.234568
    now[0] = 2.0
    stream(None, "info", {"event": "frame", "type": "answer"})
    assert [e["t"] for e in stream.events] == [1.234568, 2.0]


def test_the_stream_keeps_a_t_the_event_already_has() -> None:
    stream = EventStream(lambda: 9.0)
    stream(None, "info", {"event": "x", "t": 3.5})
    assert stream.events[0]["t"] == 3.5


def test_the_stream_records_every_event_in_order_and_passes_it_on() -> None:
    stream = EventStream(lambda: 0.0)
    for index in range(3):
        returned = stream(None, "info", {"event": "step", "index": index})
        assert returned["event"] == "step"
        assert returned["index"] == index
    assert [e["index"] for e in stream.events] == [0, 1, 2]


def test_recorded_events_are_copies() -> None:
    stream = EventStream(lambda: 0.0)
    event: dict[str, object] = {"event": "frame"}
    stream(None, "info", event)
    event["later"] = True  # a later processor touching the dict does not rewrite history
    assert "later" not in stream.events[0]


def run_async(coro: Coroutine[Any, Any, None]) -> None:
    """Runs ``coro`` in a loop of its own, leaving the policy's current loop alone.

    Not a pytest-asyncio test, nor asyncio.run: for a sync test, the looptime plugin makes
    the policy create a current loop that nobody closes; replacing it (as both do) orphans
    it, and "filterwarnings = error" turns its ResourceWarning into some later test's error.
    """
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        runner.run(coro)


def test_a_waiter_resolves_only_for_an_event_after_it_was_armed() -> None:
    run_async(_a_waiter_resolves_only_for_an_event_after_it_was_armed())


async def _a_waiter_resolves_only_for_an_event_after_it_was_armed() -> None:
    stream = EventStream(lambda: 0.0)
    stream(None, "info", {"event": "ring", "who": "bob"})
    future = stream.wait_for(lambda e: e["event"] == "ring")
    assert not future.done()
    stream(None, "info", {"event": "frame", "who": "bob"})
    assert not future.done()
    stream(None, "info", {"event": "ring", "who": "carol"})
    assert future.done()
    assert future.result()["who"] == "carol"
    stream(None, "info", {"event": "ring", "who": "dave"})
    assert future.result()["who"] == "carol"  # the first match, once


def test_one_event_resolves_every_waiter_it_matches() -> None:
    run_async(_one_event_resolves_every_waiter_it_matches())


async def _one_event_resolves_every_waiter_it_matches() -> None:
    stream = EventStream(lambda: 0.0)
    rings = stream.wait_for(lambda e: e["event"] == "ring")
    anything = stream.wait_for(lambda e: True)
    frames = stream.wait_for(lambda e: e["event"] == "frame")
    stream(None, "info", {"event": "ring"})
    assert rings.done() and anything.done()
    assert not frames.done()


def test_a_cancelled_waiter_is_dropped_quietly() -> None:
    run_async(_a_cancelled_waiter_is_dropped_quietly())


async def _a_cancelled_waiter_is_dropped_quietly() -> None:
    stream = EventStream(lambda: 0.0)
    cancelled = stream.wait_for(lambda e: True)
    cancelled.cancel()
    live = stream.wait_for(lambda e: True)
    stream(None, "info", {"event": "ring"})
    assert cancelled.cancelled()
    assert live.done()


def test_a_waiter_can_be_awaited() -> None:
    run_async(_a_waiter_can_be_awaited())


async def _a_waiter_can_be_awaited() -> None:
    stream = EventStream(lambda: 0.0)
    future = stream.wait_for(lambda e: e["event"] == "ring")
    asyncio.get_running_loop().call_soon(stream, None, "info", {"event": "ring"})
    event = await asyncio.wait_for(future, 1)
    assert event["event"] == "ring"


def test_transitions_are_rebuilt_from_transition_events_only() -> None:
    stream = EventStream(lambda: 0.0)
    call = info()
    recorded = [
        t("alice", call, "new", "dialing", "placed", 0.0),
        t("alice", call, "dialing", "ended", "canceled", 2.0),
    ]
    stream(None, "info", {"event": "frame", "type": "offer"})
    for transition in recorded:
        stream(None, "info", {"event": "transition", **transition.as_event()})
    stream(None, "info", {"event": "screen", "who": "alice"})
    assert stream.transitions() == recorded


# --- call_logs --------------------------------------------------------------------------------


def test_call_logs_groups_each_end_from_its_own_transitions() -> None:
    call = info()
    logs = call_logs(answered_call(call, answered_at=2.0, ended_at=12.0), ["alice", "bob"])
    assert set(logs) == {"alice", "bob"}  # the server's transitions are not a phone's log
    (alice,) = logs["alice"]
    (bob,) = logs["bob"]
    assert (alice.who, alice.direction, alice.peer) == ("alice", "outgoing", "bob")
    assert (bob.who, bob.direction, bob.peer) == ("bob", "incoming", "alice")
    assert alice.duration == bob.duration == 10.0


def test_call_logs_gives_an_end_without_calls_an_empty_log() -> None:
    logs = call_logs(answered_call(info(), answered_at=1.0, ended_at=2.0), ["alice", "carol"])
    assert logs["carol"] == []
    assert len(logs["alice"]) == 1


def test_call_logs_sorts_by_placed_at_not_by_first_transition() -> None:
    early = info("early", placed_at=1.0)
    late = info("late", placed_at=5.0)
    # bob learns of the early call last (a missed-call notice delivered later).
    transitions = [
        t("bob", late, "new", "ringing", "reached", 5.0),
        t("bob", late, "ringing", "ended", "canceled", 8.0),
        t("bob", early, "new", "ended", "unreachable", 30.0),
    ]
    (bob_log,) = call_logs(transitions, ["bob"]).values()
    assert [s.info.call_id for s in bob_log] == ["early", "late"]


def test_call_logs_keeps_the_order_seen_for_calls_placed_at_the_same_time() -> None:
    first = info("zzz", placed_at=3.0)
    second = info("aaa", placed_at=3.0)
    transitions = [
        t("alice", first, "new", "dialing", "placed", 3.0),
        t("alice", second, "new", "dialing", "placed", 3.0),
    ]
    assert [s.info.call_id for s in call_logs(transitions, ["alice"])["alice"]] == ["zzz", "aaa"]


# --- label_entries and LogEntry ----------------------------------------------------------------


def test_label_entries_labels_each_end_with_the_profile() -> None:
    call = info()
    transitions = [
        t("alice", call, "new", "dialing", "placed", 0.0),
        t("alice", call, "dialing", "ringing", "reached", 0.5),
        t("alice", call, "ringing", "ended", "canceled", 3.0),
        t("bob", call, "new", "ringing", "reached", 0.4),
        t("bob", call, "ringing", "ended", "canceled", 3.1),
    ]
    logs = call_logs(transitions, ["alice", "bob"])
    (alice,) = label_entries(logs["alice"], WHATSAPP)
    (bob,) = label_entries(logs["bob"], WHATSAPP)
    assert alice == LogEntry(
        label="canceled",
        with_="bob",
        direction="outgoing",
        kind="audio",
        reached=True,
        duration=None,
        call_id="c1",
        placed_at=0.0,
    )
    assert (bob.label, bob.with_, bob.direction, bob.reached) == (
        "missed",
        "alice",
        "incoming",
        True,
    )


def test_label_entries_leaves_a_call_in_progress_unlabeled() -> None:
    call = info()
    transitions = [t("alice", call, "new", "dialing", "placed", 0.0)]
    (entry,) = label_entries(call_logs(transitions, ["alice"])["alice"], WHATSAPP)
    assert entry.label is None
    assert entry.describe() == "in progress with bob (not reached)"


def test_label_entries_of_an_answered_call_carry_the_duration() -> None:
    call = info()
    logs = call_logs(answered_call(call, answered_at=2.0, ended_at=32.4), ["alice", "bob"])
    (alice,) = label_entries(logs["alice"], WHATSAPP)
    (bob,) = label_entries(logs["bob"], WHATSAPP)
    assert (alice.label, bob.label) == ("outgoing", "incoming")
    assert alice.duration == pytest.approx(30.4)


def entry(**overrides: object) -> LogEntry:
    fields: dict[str, object] = {
        "label": "outgoing",
        "with_": "bob",
        "direction": "outgoing",
        "kind": "audio",
        "reached": True,
        "duration": 30.12345,
        "call_id": "c1",
        "placed_at": 0.0,
    }
    fields.update(overrides)
    return LogEntry(**fields)  # type: ignore[arg-type]


def test_log_entry_as_json_has_exactly_the_design_keys() -> None:
    document = entry().as_json()
    assert list(document) == ["label", "with", "direction", "kind", "reached", "duration"]
    assert document == {
        "label": "outgoing",
        "with": "bob",
        "direction": "outgoing",
        "kind": "audio",
        "reached": True,
        "duration": 30.123,
    }


def test_log_entry_as_json_of_an_unanswered_call_has_a_null_duration() -> None:
    assert entry(label="canceled", duration=None, reached=False).as_json()["duration"] is None


@pytest.mark.parametrize(
    ("overrides", "text"),
    [
        ({}, "outgoing with bob (reached, 30s)"),
        ({"kind": "video"}, "outgoing with bob (video, reached, 30s)"),
        (
            {"label": "canceled", "reached": False, "duration": None},
            "canceled with bob (not reached)",
        ),
    ],
)
def test_log_entry_describe(overrides: dict[str, object], text: str) -> None:
    assert entry(**overrides).describe() == text


# --- Answer agreement: crossings (the Two Generals window) vs real disagreements ---------------


def _without(events: list[dict[str, Any]], kind: str, phone: str) -> list[dict[str, Any]]:
    """The run with one phone's ``link`` events (its radio faults) or ``connection`` events
    (its connection closing) taken out: the doctored twin of a crossing, which must then be
    judged a violation."""
    key = "phone" if kind == "link" else "who"
    return [e for e in events if not (e.get("event") == kind and e.get(key) == phone)]


def _assert_first_crossing(obs: Any, text: str) -> None:
    """No violation is left, and the first crossing says ``text``."""
    assert obs.violations == []
    assert obs.crossings
    assert text in obs.crossings[0]


def _run_events(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    from scenarios.loader import load_scenario_text
    from scenarios.runner import run_scenario

    scenario = load_scenario_text("name: observed\n" + text.lstrip("\n"))
    result = run_scenario(scenario, lenient=True)
    return list(result.events), list(scenario.phones)


ANSWER_CROSSES_POWER_OFF = """
profile: telegram
phones: {dave: {}, erin: {}}
steps:
  - {at: 1ms, do: dave calls erin}
  - {when: erin rings, after: 1ms, do: erin answers}
  - {at: 2ms, do: dave powers off}
"""


def test_an_answer_crossing_the_callers_power_off_is_a_crossing_not_a_violation() -> None:
    from scenarios.observers import observe

    events, phones = _run_events(ANSWER_CROSSES_POWER_OFF)
    obs = observe(events, phones, load_profile("telegram"))
    assert obs.violations == []
    assert len(obs.crossings) == 1
    assert "the answer crossed dave's own ending on the wire" in obs.crossings[0]


def test_an_answer_the_caller_had_time_to_hear_is_still_a_violation() -> None:
    from scenarios.observers import observe

    events, phones = _run_events(ANSWER_CROSSES_POWER_OFF)
    # The same run, except that Dave's phone ends the call 5 s after the answer was sent
    # to it, with its radio up all along: it should have heard it, so no excuse holds.
    doctored = []
    for e in events:
        if e.get("event") == "transition" and e["who"] == "dave" and e["to"] == "ended":
            e = {**e, "t": e["t"] + 5.0, "at": e["at"] + 5.0}
        if e.get("event") == "link" and e.get("phone") == "dave":
            continue
        if e.get("event") == "connection" and e.get("who") == "dave":
            continue  # nor did the server see his connection die
        doctored.append(e)
    doctored.sort(key=lambda e: e["t"])
    obs = observe(doctored, phones, load_profile("telegram"))
    assert obs.crossings == []
    assert any("dave says not answered, erin says answered" in v for v in obs.violations)


def test_a_callee_answer_lost_in_a_server_crash_is_a_crossing() -> None:
    from scenarios.observers import observe

    events, phones = _run_events(
        """
profile: asterisk
phones: {carol: {}, frank: {}}
steps:
  - {at: 1ms, do: frank calls carol}
  - {when: carol rings, after: 1ms, do: carol answers}
  - {at: 2ms, do: server crashes}
"""
    )
    obs = observe(events, phones, load_profile("asterisk"))
    assert obs.violations == []
    assert any("the server crashed before it read carol's answer" in c for c in obs.crossings)


def test_a_caller_that_never_comes_back_for_the_answer_leaves_it_unanswered_on_both_ends() -> None:
    from scenarios.observers import observe

    events, phones = _run_events(
        """
phones: {alice: {}, dave: {}}
steps:
  - {at: 1ms, do: dave calls alice}
  - {at: 2ms, do: dave goes offline}
  - {at: 3ms, do: alice answers}
"""
    )
    obs = observe(events, phones, load_profile("whatsapp"))
    assert obs.violations == [] and obs.crossings == []  # agreement, not an excuse
    assert [e.label for e in obs.logs["alice"]] == ["missed"]
    assert [e.label for e in obs.logs["dave"]] == ["canceled"]


HANGUP_INTO_A_DEAD_RADIO = """
phones: {alice: {}, carol: {}}
steps:
  - {at: 1ms, do: alice calls carol}
  - {at: 2ms, do: carol answers}
  - {at: 3ms, do: carol loses signal}
  - {at: 4ms, do: alice hangs up}
"""


def test_a_hangup_sent_into_a_dead_radio_explains_only_the_time_until_the_heartbeat() -> None:
    # Exploration seed 1001805: Carol cannot hear Alice hang up; her phone counts on until
    # its heartbeat notices the dead link, 10 s later.
    from scenarios.observers import observe

    events, phones = _run_events(HANGUP_INTO_A_DEAD_RADIO)
    obs = observe(events, phones, load_profile("whatsapp"))
    assert obs.violations == []
    assert len(obs.crossings) == 1
    assert "alice stopped counting while carol's radio was dead" in obs.crossings[0]
    durations = {name: log[0].duration for name, log in obs.logs.items()}
    assert durations["alice"] < 1.0 < 9.0 < durations["carol"] < 11.0


def test_a_server_crash_unheard_in_a_dead_radio_is_a_crossing() -> None:
    # Exploration seed 1006829: the caller hears the crash at once, the callee (no signal)
    # only at its heartbeat.
    from scenarios.observers import observe

    events, phones = _run_events(
        """
profile: twilio
phones: {alice: {}, carol: {}}
steps:
  - {at: 1ms, do: carol calls alice}
  - {at: 2ms, do: alice answers}
  - {at: 3ms, do: alice loses signal}
  - {at: 4ms, do: server crashes}
"""
    )
    obs = observe(events, phones, load_profile("twilio"))
    _assert_first_crossing(obs, "carol stopped counting while alice's radio was dead")


def test_a_hangup_that_never_left_a_dead_radio_is_a_crossing() -> None:
    # Exploration seed 1010807: Bob loses signal and hangs up; the server learns the call
    # is over for him only when its heartbeat finds his link dead, and tells Alice then.
    from scenarios.observers import observe

    events, phones = _run_events(
        """
phones: {alice: {}, bob: {}}
steps:
  - {at: 1ms, do: bob calls alice}
  - {when: alice rings, after: 1ms, do: alice answers}
  - {at: 3ms, do: bob loses signal}
  - {at: 4ms, do: bob hangs up}
"""
    )
    obs = observe(events, phones, load_profile("whatsapp"))
    _assert_first_crossing(obs, "bob stopped counting while bob's radio was dead")


ANSWER_WAITS_IN_A_DEAD_RADIO = """
phones: {bob: {}, carol: {}}
steps:
  - {at: 1ms, do: carol calls bob}
  - {at: 2ms, do: carol loses signal}
  - {at: 3ms, do: bob answers}
  - {at: 1.766s, do: carol regains signal}
  - {at: 1.767s, do: bob goes offline}
"""


def test_an_answer_that_waited_in_a_dead_radio_explains_only_its_wait() -> None:
    # Exploration seed 2006045: Carol reads Bob's answer only when her signal returns,
    # 1.8 s later; each end counts from when it learned of the answer.
    from scenarios.observers import observe

    events, phones = _run_events(ANSWER_WAITS_IN_A_DEAD_RADIO)
    obs = observe(events, phones, load_profile("whatsapp"))
    _assert_first_crossing(obs, "the answer waited 1.8s for carol, off the air")
    # Had Carol read it at once (radio up), Bob's 1.8 s more would be a fault.
    doctored = _without(events, "link", "carol")
    obs = observe(doctored, phones, load_profile("whatsapp"))
    assert obs.crossings == []
    assert any("durations differ by more than a second" in v for v in obs.violations)


def test_registering_again_the_instant_the_count_stops_is_not_back_in_time() -> None:
    # Exploration seed 2094324: a clean restart waits out Dave's dead connection; his
    # heartbeat notices at 10 s and, signal back, he registers in that same instant.
    from scenarios.observers import observe

    events, phones = _run_events(
        """
phones: {carol: {}, dave: {}}
steps:
  - {at: 1ms, do: dave calls carol}
  - {at: 2ms, do: carol answers}
  - {at: 3ms, do: dave loses signal}
  - {at: 4ms, do: server restarts}
  - {at: 32ms, do: dave regains signal}
"""
    )
    obs = observe(events, phones, load_profile("whatsapp"))
    _assert_first_crossing(obs, "carol stopped counting while dave's radio was dead")


def test_an_answer_into_a_dead_radio_is_a_crossing_even_if_the_call_ends_as_it_returns() -> None:
    # Exploration seed 3001258: Erin answers with no signal; the ring timer ends the call;
    # her signal returns, she registers and her call drops, all in one instant.
    from scenarios.observers import observe

    events, phones = _run_events(
        """
phones: {carol: {}, erin: {}}
steps:
  - {at: 1ms, do: carol calls erin}
  - {at: 43.872s, do: erin loses signal}
  - {at: 43.873s, do: erin answers}
  - {at: 45.586s, do: erin regains signal}
"""
    )
    obs = observe(events, phones, load_profile("whatsapp"))
    _assert_first_crossing(obs, "erin answered into its dead radio")


SWITCHED_OFF_AND_ON_AS_IT_ANSWERS = """
phones: {alice: {}, bob: {}}
steps:
  - {at: 1ms, do: bob video-calls alice}
  - {when: bob's call ends, after: 1ms, do: bob calls alice}
  - {when: alice rings, after: 1ms, do: alice answers}
  - {at: 2ms, do: alice powers off}
  - {at: 4.614s, do: alice powers on}
  - {at: 9.353s, do: bob hangs up}
"""


def test_an_answer_that_died_with_the_radio_in_its_own_instant_is_a_crossing() -> None:
    # Exploration seed 3017373: Alice answers and is switched off and on again in that
    # instant (the steps, due long before, run late, all at once); the answer never left.
    from scenarios.observers import observe

    events, phones = _run_events(SWITCHED_OFF_AND_ON_AS_IT_ANSWERS)
    obs = observe(events, phones, load_profile("whatsapp"))
    _assert_first_crossing(obs, "alice answered into its dead radio")


def test_an_answer_that_waited_out_a_clean_restart_explains_only_its_wait() -> None:
    # Exploration seed 4067114: Dave answers in the instant the server restarts; the answer
    # leaves as Carol's connection closes and reaches her when she registers again.
    from scenarios.observers import observe

    events, phones = _run_events(
        """
phones: {alice: {}, carol: {}, dave: {}, erin: {}}
steps:
  - {at: 1ms, do: carol calls alice}
  - {when: carol's call ends, after: 1ms, do: carol calls dave}
  - {at: 2ms, do: erin loses signal}
  - {when: dave rings, after: 2.897s, do: dave answers}
  - {at: 3ms, do: server restarts}
  - {at: 1m9.649s, do: carol hangs up}
"""
    )
    obs = observe(events, phones, load_profile("whatsapp"))
    _assert_first_crossing(obs, "the answer waited 7.5s for carol, off the air")


def test_an_answer_the_server_held_for_an_away_caller_explains_only_the_wait() -> None:
    # Exploration seed 11017078: Bob answers while Alice has no signal; the server holds
    # the answer until she is back 1.8 s later, and the call resumes.
    from scenarios.observers import observe

    events, phones = _run_events(
        """
phones: {alice: {}, bob: {}}
steps:
  - {at: 4.453s, do: alice calls bob}
  - {at: 30.555s, do: alice loses signal}
  - {at: 46.592s, do: bob answers}
  - {at: 48.36s, do: alice regains signal}
  - {at: 48.361s, do: alice hangs up}
"""
    )
    obs = observe(events, phones, load_profile("whatsapp"))
    _assert_first_crossing(obs, "the answer waited 1.8s for alice, off the air")
    # Had Alice kept her signal, the server would have sent the answer at once.
    doctored = _without(events, "link", "alice")
    doctored = _without(doctored, "connection", "alice")
    obs = observe(doctored, phones, load_profile("whatsapp"))
    assert obs.crossings == []
    assert any("durations differ by more than a second" in v for v in obs.violations)


def test_an_end_held_in_two_dead_radios_in_turn_is_a_crossing() -> None:
    # Exploration seed 15054411: Alice's hang-up never leaves her dead radio; the server
    # learns at her heartbeat (20 s) and tells Bob, whose radio died meanwhile (25 s).
    from scenarios.observers import observe

    events, phones = _run_events(
        """
phones: {alice: {}, bob: {}}
steps:
  - {at: 0s, do: alice calls bob}
  - {at: 1ms, do: bob answers}
  - {at: 13.597s, do: alice loses signal}
  - {at: 15.107s, do: alice hangs up}
  - {at: 15.108s, do: bob loses signal}
"""
    )
    obs = observe(events, phones, load_profile("whatsapp"))
    _assert_first_crossing(
        obs, "alice stopped counting while alice's and then bob's radio was dead"
    )
    # Had Bob's radio stayed up, he would have heard at 20 s: his 25 s is then a fault.
    doctored = _without(events, "link", "bob")
    obs = observe(doctored, phones, load_profile("whatsapp"))
    assert obs.crossings == []
    assert any("durations differ by more than a second" in v for v in obs.violations)


def test_a_voiding_call_ended_sent_into_a_dead_radio_is_a_crossing() -> None:
    # Exploration seed 14080535: Alice's cancel crosses Carol's answer; the call_ended that
    # voids it goes into Carol's radio, dead from that instant.
    from scenarios.observers import observe

    events, phones = _run_events(
        """
phones: {alice: {}, bob: {}, carol: {}}
steps:
  - {at: 1ms, do: alice video-calls carol}
  - {when: alice hears ringing, after: 9ms, do: alice hangs up}
  - {at: 2ms, do: carol answers}
  - {at: 3ms, do: alice video-calls bob}
  - {at: 5ms, do: carol loses signal}
"""
    )
    obs = observe(events, phones, load_profile("whatsapp"))
    _assert_first_crossing(
        obs, "the call_ended that voided carol's answer went into its dead radio"
    )


def test_an_answer_that_waited_in_the_callees_own_dead_radio_explains_only_its_wait() -> None:
    # Exploration seed 30443: Bob answers with no signal and says the answer again when it
    # returns 1.4 s later; Alice counts from then, Bob from his answer.
    from scenarios.observers import observe

    events, phones = _run_events(
        """
phones: {alice: {}, bob: {}}
steps:
  - {at: 1ms, do: alice calls bob}
  - {at: 2ms, do: bob loses signal}
  - {at: 3ms, do: bob answers}
  - {at: 1.355s, do: bob regains signal}
  - {at: 1.356s, do: alice hangs up}
"""
    )
    obs = observe(events, phones, load_profile("whatsapp"))
    assert obs.violations == []
    assert obs.crossings and "the answer waited 1.4s in bob's dead radio" in obs.crossings[0]
    doctored = _without(events, "link", "bob")
    obs = observe(doctored, phones, load_profile("whatsapp"))
    assert obs.crossings == []
    assert any("durations differ by more than a second" in v for v in obs.violations)


def test_an_answer_lost_with_a_crash_in_its_instant_is_a_crossing() -> None:
    # Exploration seed 16029381: a pile-up of late steps; Dave answers and the server
    # crashes in the same instant, its answer to Carol queued and lost with the abort.
    from scenarios.observers import observe

    events, phones = _run_events(
        """
phones: {alice: {}, bob: {}, carol: {}, dave: {}, erin: {}, frank: {}}
steps:
  - {at: 0s, do: frank calls bob}
  - {when: alice rings, after: 1ms, do: alice answers}
  - {at: 1ms, do: carol calls dave}
  - {when: dave rings, after: 1.105s, do: dave answers}
  - {at: 2ms, do: bob hangs up}
  - {at: 18.223s, do: alice calls frank}
  - {at: 18.362s, do: dave calls erin}
  - {at: 18.389s, do: server crashes}
  - {at: 39.604s, do: server restarts}
"""
    )
    obs = observe(events, phones, load_profile("whatsapp"))
    assert obs.violations == []
    assert any("the answer to carol was lost with the server's crash" in c for c in obs.crossings)
    # Had the crash come a second later, the answer would have reached Carol first.
    doctored = sorted(
        (
            {**e, "t": e["t"] + 1.0}
            if e.get("event") == "server" and e.get("state") == "crashed"
            else e
            for e in events
        ),
        key=lambda e: e["t"],
    )
    obs = observe(doctored, phones, load_profile("whatsapp"))
    assert any("carol says not answered, dave says answered" in v for v in obs.violations)


def test_counting_on_past_the_heartbeat_is_still_a_violation() -> None:
    from scenarios.observers import observe

    events, phones = _run_events(HANGUP_INTO_A_DEAD_RADIO)
    # Carol's phone goes Reconnecting… 5 s later than its heartbeat noticed: the dead radio
    # explains the time until the heartbeat, not those 5 s.
    doctored = []
    for e in events:
        if e.get("event") == "transition" and e["who"] == "carol" and e["to"] == "reconnecting":
            e = {**e, "t": e["t"] + 5.0, "at": e["at"] + 5.0}
        doctored.append(e)
    doctored.sort(key=lambda e: e["t"])
    obs = observe(doctored, phones, load_profile("whatsapp"))
    assert obs.crossings == []
    assert any("durations differ by more than a second" in v for v in obs.violations)


def test_a_hangup_that_reached_a_live_radio_must_stop_the_count() -> None:
    from scenarios.observers import observe

    events, phones = _run_events(HANGUP_INTO_A_DEAD_RADIO)
    # The same run with Carol's radio up all along: she heard the call_ended, so counting
    # on for 10 s is a fault, not a crossing.
    doctored = _without(events, "link", "carol")
    obs = observe(doctored, phones, load_profile("whatsapp"))
    assert obs.crossings == []
    assert any("durations differ by more than a second" in v for v in obs.violations)


ANSWER_HELD_FOR_AN_AWAY_CALLER = """
profile: sip
phones: {alice: {}, bob: {}}
steps:
  - {at: 1ms, do: bob video-calls alice}
  - {at: 2ms, do: bob goes offline}
  - {at: 3ms, do: alice answers}
  - {at: 26ms, do: alice hangs up}
"""


def test_an_answer_held_for_an_away_caller_is_a_crossing() -> None:
    # Exploration seed 1004668: Alice answers while Bob is in airplane mode and hangs up on
    # Reconnecting… before he returns; the answer never left the server.
    from scenarios.observers import observe

    events, phones = _run_events(ANSWER_HELD_FOR_AN_AWAY_CALLER)
    obs = observe(events, phones, load_profile("sip"))
    assert obs.violations == []
    assert obs.crossings and "the answer was held for bob, who was away" in obs.crossings[0]
    assert (obs.logs["alice"][0].duration, obs.logs["bob"][0].duration) == (0.0, None)


def test_an_answer_crossing_the_callers_airplane_mode_is_a_crossing() -> None:
    # Exploration seed 1019222: the answer leaves the server at the instant Erin's phone
    # closes its connection for airplane mode; Erin never comes back for it.
    from scenarios.observers import observe

    events, phones = _run_events(
        """
phones: {carol: {}, erin: {}}
steps:
  - {at: 1ms, do: erin calls carol}
  - {when: carol rings, after: 1ms, do: carol answers}
  - {at: 2ms, do: erin goes offline}
"""
    )
    obs = observe(events, phones, load_profile("whatsapp"))
    _assert_first_crossing(obs, "the answer crossed erin's connection closing")
    # Had Erin closed it a second later, the answer would have reached her first.
    doctored = sorted(
        (
            {**e, "t": e["t"] + 1.0}
            if e.get("event") == "connection" and e.get("who") == "erin"
            else e
            for e in events
        ),
        key=lambda e: e["t"],
    )
    obs = observe(doctored, phones, load_profile("whatsapp"))
    assert obs.crossings == []
    assert any("erin says not answered, carol says answered" in v for v in obs.violations)


def test_an_answer_held_for_a_caller_whose_cancel_was_lost_is_a_crossing() -> None:
    # Exploration seed 3007640: Alice cancels as her signal goes, so the server never hears
    # it; Carol answers ten seconds later, when Alice's call is long over on her phone.
    from scenarios.observers import observe

    events, phones = _run_events(
        """
phones: {alice: {}, carol: {}}
steps:
  - {at: 1ms, do: alice video-calls carol}
  - {when: alice hears ringing, after: 5.868s, do: alice hangs up}
  - {at: 5.077s, do: alice loses signal}
  - {at: 16.259s, do: carol answers}
  - {at: 16.261s, do: carol hangs up}
"""
    )
    obs = observe(events, phones, load_profile("whatsapp"))
    assert obs.violations == []
    assert obs.crossings and "the answer was held for alice, who was away" in obs.crossings[0]


def test_a_caller_that_was_connected_must_get_the_answer() -> None:
    from scenarios.observers import observe

    events, phones = _run_events(ANSWER_HELD_FOR_AN_AWAY_CALLER)
    # Bob's connection never closed: the server should have sent him the answer.
    doctored = _without(events, "connection", "bob")
    obs = observe(doctored, phones, load_profile("sip"))
    assert obs.crossings == []
    assert any("bob says not answered, alice says answered" in v for v in obs.violations)


# --- Several devices per name, and glare ------------------------------------------------------


def _observe_devices(transitions: list[Transition], ends: list[str]) -> Observation:
    """Runs the log and invariant stages over hand-made transitions of call c1."""
    record = CallRecord("c1", "alice", "bob", "audio", 0.0, CallState.ENDED, blocked=False)
    obs = Observation(profile=WHATSAPP, phones=ends, events=[])
    obs.summaries = call_logs(transitions, ends)
    obs.records = [record]
    both_ends_agree_on_the_answer(obs)
    other_devices_hear_it_was_done_elsewhere(obs)
    return obs


def _rang(who: str, call: CallInfo) -> Transition:
    return t(who, call, "new", "ringing", "reached", 0.0)


def test_the_caller_is_paired_with_the_device_that_answered() -> None:
    call = info()
    both = answered_call(call, answered_at=2.0, ended_at=10.0)
    devices = [
        *(
            Transition("bob#2", x.call, x.from_state, x.to_state, x.cause, x.at)
            for x in both
            if x.who == "bob"
        ),
        _rang("bob#1", call),
        t("bob#1", call, "ringing", "ended", "answered_elsewhere", 2.0),
    ]
    alice = [x for x in both if x.who == "alice"]
    obs = _observe_devices([*alice, *devices], ["alice", "bob#1", "bob#2"])
    assert obs.violations == []


def test_a_device_logging_missed_for_a_call_answered_elsewhere_is_a_violation() -> None:
    # labels.md §4: the most common real-world call-log bug.
    call = info()
    both = answered_call(call, answered_at=2.0, ended_at=10.0)
    answering = [
        Transition("bob#2", x.call, x.from_state, x.to_state, x.cause, x.at)
        for x in both
        if x.who == "bob"
    ]
    missed = [_rang("bob#1", call), t("bob#1", call, "ringing", "ended", "canceled", 10.0)]
    alice = [x for x in both if x.who == "alice"]
    obs = _observe_devices([*alice, *answering, *missed], ["alice", "bob#1", "bob#2"])
    assert obs.violations == [
        "call c1: bob#2 answered it, but bob#1 says canceled instead of answered_elsewhere"
    ]


def test_two_devices_both_answering_is_a_violation() -> None:
    call = info()
    both = answered_call(call, answered_at=2.0, ended_at=10.0)
    twice = [
        Transition(end, x.call, x.from_state, x.to_state, x.cause, x.at)
        for x in both
        if x.who == "bob"
        for end in ("bob#1", "bob#2")
    ]
    alice = [x for x in both if x.who == "alice"]
    obs = _observe_devices([*alice, *twice], ["alice", "bob#1", "bob#2"])
    assert obs.violations == ["call c1: answered on several devices (bob#1, bob#2)"]


def test_a_decline_on_one_device_must_be_declined_elsewhere_on_the_others() -> None:
    call = info()
    ends = ["alice", "bob#1", "bob#2"]
    alice = [
        t("alice", call, "new", "dialing", "placed", 0.0),
        t("alice", call, "dialing", "ended", "declined", 3.0),
    ]
    declined = [_rang("bob#1", call), t("bob#1", call, "ringing", "ended", "declined", 3.0)]
    told = [_rang("bob#2", call), t("bob#2", call, "ringing", "ended", "declined_elsewhere", 3.0)]
    assert _observe_devices([*alice, *declined, *told], ends).violations == []
    wrong = [_rang("bob#2", call), t("bob#2", call, "ringing", "ended", "dropped", 3.0)]
    assert _observe_devices([*alice, *declined, *wrong], ends).violations == [
        "call c1: bob#1 declined it, but bob#2 says dropped instead of declined_elsewhere"
    ]


def test_a_call_that_lost_glare_is_not_a_call_log_entry() -> None:
    lost = info("z9", caller="bob", callee="alice")
    kept = info("a1")
    transitions = [
        t("bob", lost, "new", "dialing", "placed", 0.0),
        t("bob", lost, "dialing", "ended", "glare", 0.0),
        _rang("bob", kept),
        t("bob", kept, "ringing", "ended", "canceled", 5.0),
    ]
    summaries = call_logs(transitions, ["bob"])["bob"]
    assert len(summaries) == 2  # the phone knows both calls ...
    entries = label_entries(summaries, WHATSAPP)
    assert [(e.call_id, e.label) for e in entries] == [("a1", "missed")]  # ... logs one
