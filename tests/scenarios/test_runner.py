"""The runner: a real server, phones and links in one virtual-time loop, playing steps."""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

import pytest

from scenarios.loader import load_scenario_text
from scenarios.model import Scenario
from scenarios.observers import LogEntry
from scenarios.profiles import ProfileError
from scenarios.runner import SETTLE_LIMIT, ScenarioResult, _Polls, run_scenario


# Fields that carry the port the OS gave the server: the only thing in the stream that is
# not the scenario's own doing (``server_started.url``, a failed reconnect's ``error``).
PORT_FIELDS = frozenset({"url", "error"})


def scenario(text: str) -> Scenario:
    return load_scenario_text(textwrap.dedent(text))


def run(text: str, **kwargs: Any) -> ScenarioResult:
    return run_scenario(scenario(text), **kwargs)


def comparable(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in PORT_FIELDS} for e in events]


def steps(result: ScenarioResult) -> dict[int, float]:
    """Each played step's index and the scenario time it ran at."""
    return {e["index"]: e["t"] for e in result.events if e["event"] == "step"}


def transitions(result: ScenarioResult, who: str | None = None) -> list[dict[str, Any]]:
    return [
        e for e in result.events if e["event"] == "transition" and (who is None or e["who"] == who)
    ]


def call_ids(result: ScenarioResult) -> set[str]:
    return {e["call_id"] for e in transitions(result)}


def labels(result: ScenarioResult) -> dict[str, list[tuple[Any, ...]]]:
    return {
        name: [(e.label, e.with_, e.direction, e.kind, e.reached, e.duration) for e in log]
        for name, log in result.logs.items()
    }


def only(log: list[LogEntry]) -> LogEntry:
    assert len(log) == 1, [e.describe() for e in log]
    return log[0]


def last_states(result: ScenarioResult, *, phones_only: bool = False) -> dict[tuple[str, str], str]:
    last: dict[tuple[str, str], str] = {}
    for e in transitions(result):
        if phones_only and e["who"] == "server":
            continue
        last[(e["who"], e["call_id"])] = e["to"]
    return last


CANCEL_WHILE_RINGING = """\
    name: cancel while ringing
    phones:
      alice: {}
      bob: {}
      carol: {power: off}
    steps:
      - at: 0s
        do: alice calls bob
      - when: alice hears ringing
        after: 3s
        do: alice hangs up
      - at: 10s
        do: alice calls carol
      - at: 15s
        do: alice hangs up
      - at: 20s
        do: carol powers on
    expect:
      alice: [canceled, canceled]
      bob: missed
      carol: missed
"""


# --- Determinism ---------------------------------------------------------------------------


def test_same_seed_gives_the_same_event_stream_and_call_ids() -> None:
    first = run(CANCEL_WHILE_RINGING, seed=7)
    second = run(CANCEL_WHILE_RINGING, seed=7)
    assert first.passed, first.failures
    assert comparable(first.events) == comparable(second.events)
    assert call_ids(first) == call_ids(second)
    assert len(call_ids(first)) == 2
    assert labels(first) == labels(second)


def test_a_different_seed_gives_different_call_ids_but_the_same_labels() -> None:
    first = run(CANCEL_WHILE_RINGING, seed=1)
    second = run(CANCEL_WHILE_RINGING, seed=2)
    assert first.passed and second.passed, first.failures + second.failures
    assert call_ids(first).isdisjoint(call_ids(second))
    assert labels(first) == labels(second)
    assert (first.seed, second.seed) == (1, 2)


# --- Step timing ----------------------------------------------------------------------------


def test_at_steps_run_at_their_time_and_when_steps_after_their_event() -> None:
    result = run(
        """\
        name: timing
        phones:
          alice: {}
          bob: {online: off}
        steps:
          - at: 0s
            do: alice calls bob
          - at: 10s
            do: bob goes online
          - when: bob rings
            after: 2s
            do: bob answers
          - when: alice is in call
            after: 7s
            do: alice hangs up
        """
    )
    assert result.passed, result.failures
    # bob rings when he comes online at 10 s; he answers 2 s later; alice is in call then.
    assert steps(result) == {0: 0.0, 1: 10.0, 2: 12.0, 3: 19.0}
    assert only(result.logs["alice"]).duration == pytest.approx(7.0)


def test_a_when_without_after_runs_at_the_event() -> None:
    result = run(
        """\
        name: answer at once
        phones: {alice: {}, bob: {}}
        steps:
          - at: 4s
            do: alice calls bob
          - when: bob rings
            do: bob answers
          - at: 9s
            do: bob hangs up
        """
    )
    assert result.passed, result.failures
    assert steps(result) == {0: 4.0, 1: 4.0, 2: 9.0}


def test_an_at_step_already_passed_by_a_when_step_runs_at_once() -> None:
    result = run(
        """\
        name: late at
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - when: bob rings
            after: 10s
            do: bob answers
          - at: 5s
            do: alice hangs up
        """
    )
    assert result.passed, result.failures
    assert steps(result) == {0: 0.0, 1: 10.0, 2: 10.0}


def test_a_when_step_waits_for_an_event_after_the_previous_step() -> None:
    # bob rang at 0 s, before step 2; "when: bob rings" needs a new ring, which never comes.
    result = run(
        """\
        name: stale event
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - at: 5s
            do: alice hangs up
          - when: bob rings
            do: bob answers
        """
    )
    assert not result.passed
    assert 2 not in steps(result)
    assert any("bob rings" in failure for failure in result.failures), result.failures


# --- Failures ---------------------------------------------------------------------------------


def test_a_when_event_that_never_happens_fails_naming_the_step_and_the_event() -> None:
    result = run(
        """\
        name: carol is never called
        phones: {alice: {}, bob: {}, carol: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - when: carol rings
            do: carol answers
        """
    )
    assert not result.passed
    assert len(result.failures) == 1, result.failures
    failure = result.failures[0]
    assert "step 2" in failure
    assert "line 6" in failure
    assert "carol answers" in failure
    assert "'carol rings'" in failure
    assert "never happened" in failure
    assert 1 not in steps(result)


def test_a_step_the_phone_cannot_do_fails_naming_the_step_line() -> None:
    result = run(
        """\
        name: nothing to answer
        phones: {alice: {}, bob: {}}
        steps:
          - at: 1s
            do: bob answers
        """
    )
    assert not result.passed
    assert len(result.failures) == 1, result.failures
    failure = result.failures[0]
    assert "step 1" in failure
    assert "line 4" in failure
    assert "'bob answers'" in failure
    assert "nothing is ringing" in failure


def test_an_expectation_mismatch_fails_with_a_readable_diff() -> None:
    result = run(
        """\
        name: wrong expectation
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - when: bob rings
            after: 1s
            do: alice hangs up
        expect:
          alice: missed
          bob: missed
        """
    )
    assert not result.passed
    assert len(result.failures) == 1, result.failures
    lines = result.failures[0].splitlines()
    assert lines[0] == "alice: expected [missed], got [canceled]"
    assert "!!" in lines[1]
    assert "expected missed" in lines[1]
    assert "got canceled with bob (reached)" in lines[1]


def test_a_scenario_without_expect_passes_when_it_runs_to_the_end() -> None:
    result = run(
        """\
        name: no expectations
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - when: bob rings
            do: bob declines
        """
    )
    assert result.scenario.expect is None
    assert result.passed, result.failures
    assert only(result.logs["alice"]).label == "declined"


def test_a_scenario_without_expect_still_fails_on_a_bad_step() -> None:
    result = run(
        """\
        name: no expectations, bad step
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice hangs up
        """
    )
    assert not result.passed


# --- Profiles and settings --------------------------------------------------------------------


NAMES_ANOTHER_PROFILE = """\
    name: under another profile
    profile: nosuchapp
    phones: {alice: {}, bob: {}}
    steps:
      - at: 0s
        do: alice calls bob
      - when: bob rings
        do: bob declines
    expect:
      alice: declined
      bob: declined
"""


def test_the_scenario_profile_is_used_by_default() -> None:
    with pytest.raises(ProfileError, match="nosuchapp"):
        run(NAMES_ANOTHER_PROFILE)


def test_the_profile_override_replaces_the_scenario_profile() -> None:
    result = run(NAMES_ANOTHER_PROFILE, profile="whatsapp")
    assert result.passed, result.failures
    assert result.profile == "whatsapp"
    assert result.as_json()["profile"] == "whatsapp"


def test_an_unknown_override_is_an_error_listing_the_known_profiles() -> None:
    with pytest.raises(ProfileError, match=r"unknown profile 'nope'.*whatsapp"):
        run(CANCEL_WHILE_RINGING, profile="nope")


def test_scenario_settings_override_the_profile_timers() -> None:
    result = run(
        """\
        name: short ring
        settings: {ring_timeout: 10s}
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
        expect:
          alice: no_answer
          bob: missed
        """
    )
    assert result.passed, result.failures
    ends = [e["t"] for e in transitions(result, "alice") if e["to"] == "ended"]
    assert ends == [10.0]


# --- Time -------------------------------------------------------------------------------------


def test_virtual_seconds_is_scenario_time_and_wall_seconds_is_small() -> None:
    result = run(
        """\
        name: nobody answers
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
        expect:
          alice: no_answer
          bob: missed
        """
    )
    assert result.passed, result.failures
    assert result.virtual_seconds >= 45.0  # whatsapp's ring timeout
    assert result.wall_seconds < 5.0
    assert result.wall_seconds < result.virtual_seconds / 10


# --- The server going away --------------------------------------------------------------------


def test_a_server_restart_mid_call_resumes_the_call() -> None:
    result = run(
        """\
        name: restart mid-call
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
          - when: bob rings
            do: bob answers
          - at: 10s
            do: server restarts
          - at: 30s
            do: alice hangs up
        expect:
          alice: [{label: outgoing, with: bob, duration: 30s}]
          bob: [{label: incoming, with: alice, duration: 30s}]
        """
    )
    assert result.passed, result.failures
    assert any(e["event"] == "server" and e["state"] == "restarting" for e in result.events)
    for phone in ("alice", "bob"):
        causes = [e["cause"] for e in transitions(result, phone)]
        assert "resumed" in causes, (phone, causes)
        assert causes[-1] == "hung_up", (phone, causes)
    assert set(last_states(result).values()) == {"ended"}


def test_a_server_crash_ends_calls_in_progress_and_keeps_pending_notices() -> None:
    result = run(
        """\
        name: crash mid-call
        phones:
          alice: {}
          bob: {}
          carol: {power: off}
          dave: {}
        steps:
          - at: 0s
            do: alice calls bob
          - when: bob rings
            do: bob answers
          - at: 1s
            do: dave calls carol
          - at: 3s
            do: dave hangs up
          - at: 10s
            do: server crashes
          - at: 30s
            do: carol powers on
        """
    )
    assert result.passed, result.failures
    assert any(e["event"] == "server" and e["state"] == "crashed" for e in result.events)
    # The answered call ends on both ends, at the crash, with the time spent in it.
    for phone, peer in (("alice", "bob"), ("bob", "alice")):
        entry = only(result.logs[phone])
        assert (entry.label, entry.with_, entry.reached) == ("dropped", peer, True)
        assert entry.duration is not None and round(entry.duration) == 10
    # The missed-call notice kept for carol before the crash reaches her after it.
    missed = only(result.logs["carol"])
    assert (missed.label, missed.with_, missed.reached) == ("missed", "dave", False)
    carol_end = [e for e in transitions(result, "carol") if e["to"] == "ended"]
    assert [e["t"] for e in carol_end] == [30.0]
    assert only(result.logs["dave"]).label == "canceled"
    # Every phone's view of every call is over.
    assert set(last_states(result, phones_only=True).values()) == {"ended"}


# --- Settling ---------------------------------------------------------------------------------


def test_the_run_settles_until_every_call_is_over() -> None:
    result = run(
        """\
        name: left ringing
        phones: {alice: {}, bob: {}}
        steps:
          - at: 0s
            do: alice calls bob
        """
    )
    assert result.passed, result.failures
    states = last_states(result)
    assert {who for who, _ in states} == {"alice", "bob", "server"}
    assert set(states.values()) == {"ended"}
    assert result.virtual_seconds >= 45.0
    assert [e.label for e in result.logs["alice"]] == ["no_answer"]
    assert [e.label for e in result.logs["bob"]] == ["missed"]


def test_the_run_settles_until_a_reachable_phone_has_its_missed_calls() -> None:
    result = run(
        """\
        name: offline callee comes back
        phones: {alice: {}, bob: {online: off}}
        steps:
          - at: 0s
            do: alice calls bob
          - at: 5s
            do: alice hangs up
          - at: 6s
            do: bob goes online
        """
    )
    assert result.passed, result.failures
    assert [e.label for e in result.logs["bob"]] == ["missed"]
    assert set(last_states(result).values()) == {"ended"}


def test_result_as_json_has_the_design_keys() -> None:
    result = run(CANCEL_WHILE_RINGING)
    document = result.as_json()
    assert {
        "file",
        "name",
        "passed",
        "failures",
        "phones",
        "virtual_seconds",
        "wall_seconds",
    } <= set(document)
    assert document["file"] == "<string>"
    assert document["name"] == "cancel while ringing"
    assert document["passed"] is True
    assert document["failures"] == []
    phones = document["phones"]
    assert isinstance(phones, dict)
    assert set(phones) == {"alice", "bob", "carol"}


# --- Faults on the wire (virtual time) and real media (real time) ---------------------------------

LIBRARY_DIR = __import__("pathlib").Path(__file__).resolve().parents[2] / "scenarios" / "library"


def library_run(name: str, **kwargs: Any) -> ScenarioResult:
    from scenarios.loader import load_scenario

    return run_scenario(load_scenario(LIBRARY_DIR / name), profile="whatsapp", **kwargs)


def frames(result: ScenarioResult, type_: str) -> list[dict[str, Any]]:
    return [e for e in result.events if e["event"] == "frame" and e["type"] == type_]


def screens(result: ScenarioResult, who: str) -> list[str]:
    return [e["screen"] for e in result.events if e["event"] == "screen" and e["who"] == who]


def test_a_dropped_answer_never_reaches_the_server_and_the_ring_timer_ends_the_call() -> None:
    result = library_run("42-fault-answer-lost-ring-timer.yaml")
    assert result.passed, result.failures
    assert frames(result, "answer") == []  # neither into the server nor out of it
    (dropped,) = [e for e in result.events if e["event"] == "wire"]
    assert (dropped["who"], dropped["type"], dropped["direction"]) == ("bob", "answer", "to_server")
    ended = [e for e in transitions(result, "server") if e["to"] == "ended"]
    assert [(e["cause"], e["at"]) for e in ended] == [
        ("no_answer", 45.0)
    ]  # rang at 0 s, the answer at 2 s lost


def test_a_dropped_offer_leaves_the_caller_at_calling_until_the_dial_timer() -> None:
    result = library_run("43-fault-offer-lost-dial-timer.yaml")
    assert result.passed, result.failures
    assert [e["receiver"] for e in frames(result, "incoming")] == ["bob"]  # sent, never arrived
    assert not [e for e in transitions(result, "bob") if e["to"] == "ringing"]
    ended = [e for e in transitions(result, "server") if e["to"] == "ended"]
    assert [(e["cause"], e["at"]) for e in ended] == [("unreachable", 31.0)]
    assert "ringing" not in screens(result, "alice")


def test_latency_holds_each_frame_back_in_order() -> None:
    result = library_run("44-fault-latency-and-jitter.yaml")
    assert result.passed, result.failures
    (offer,) = frames(result, "offer")
    (answer_in,) = [e for e in transitions(result, "alice") if e["to"] == "answered"]
    (answer_out,) = [e for e in frames(result, "answer") if e["sender"] == "server"]
    # The offer left alice at 1 s and reached the server 250-350 ms later; the answer
    # reached alice as late after the server relayed it.
    assert 1.25 <= offer["t"] <= 1.35
    assert 0.25 <= answer_in["at"] - answer_out["t"] <= 0.35


def test_the_same_seed_draws_the_same_jitter() -> None:
    one = library_run("44-fault-latency-and-jitter.yaml", seed=7)
    two = library_run("44-fault-latency-and-jitter.yaml", seed=7)
    other = library_run("44-fault-latency-and-jitter.yaml", seed=8)
    assert comparable(one.events) == comparable(two.events)
    assert [e["t"] for e in frames(one, "offer")] != [e["t"] for e in frames(other, "offer")]


def test_a_one_way_black_hole_drops_the_call_on_both_ends() -> None:
    result = library_run("45-fault-one-way-black-hole-dropped.yaml")
    assert result.passed, result.failures
    assert "reconnecting" in screens(result, "alice")
    assert "reconnecting" in screens(result, "bob")


def test_a_reset_is_noticed_at_once_and_the_call_resumes() -> None:
    result = library_run("46-fault-reset-mid-call-resumes.yaml")
    assert result.passed, result.failures
    lost = [e for e in transitions(result, "server") if e["cause"] == "link_lost"]
    resumed = [e for e in transitions(result, "server") if e["cause"] == "resumed"]
    assert [e["at"] for e in lost] == [10.0]
    assert len(resumed) == 1 and resumed[0]["at"] - 10.0 < 1.0


def test_within_grace_the_same_call_resumes_and_both_screens_showed_reconnecting() -> None:
    result = library_run("40-signal-lost-resumed-within-grace.yaml")
    assert result.passed, result.failures
    assert len(call_ids(result)) == 1
    for who in ("alice", "bob"):
        shown = screens(result, who)
        assert shown.index("reconnecting") < len(shown) - 1 - shown[::-1].index("in_call")


def test_a_callee_whose_signal_returns_while_the_caller_waits_starts_ringing() -> None:
    result = library_run("41-no-signal-callee-returns-and-rings.yaml")
    assert result.passed, result.failures
    (rang,) = [e for e in transitions(result, "bob") if e["to"] == "ringing"]
    assert rang["at"] == pytest.approx(10.0, abs=0.1)
    assert screens(result, "alice")[:2] == ["calling", "ringing"]


# Real media: these run in real time (a few seconds each), on 127.0.0.1 only.


@pytest.mark.timeout(30)
def test_real_media_flows_both_ways_and_every_peer_connection_closes() -> None:
    result = library_run("50-media-call-both-ways.yaml")
    assert result.passed, result.failures
    assert result.real_time and result.as_json()["real_time"] is True
    media = [e for e in result.events if e["event"] == "media"]
    connected = {e["who"] for e in media if e["state"] == "connected"}
    closed = {e["who"]: e for e in media if e["state"] == "closed"}
    assert connected == {"alice", "bob"}
    for who in ("alice", "bob"):
        assert closed[who]["packets_in"] > 20, closed[who]
        assert closed[who]["frames_in"]["audio"] > 20, closed[who]
        assert closed[who]["frames_in"]["video"] > 10, closed[who]


@pytest.mark.timeout(30)
def test_media_that_never_connects_ends_the_call_failed_on_both_ends() -> None:
    result = library_run("51-media-never-connects-failed.yaml")
    assert result.passed, result.failures
    assert not [e for e in result.events if e["event"] == "media" and e["state"] == "connected"]
    ended = [e for e in transitions(result, "server") if e["to"] == "ended"]
    assert [e["cause"] for e in ended] == ["failed"]


@pytest.mark.timeout(30)
def test_media_lost_mid_call_ends_it_dropped_on_both_ends() -> None:
    result = library_run("52-media-lost-mid-call-dropped.yaml")
    assert result.passed, result.failures
    for who in ("alice", "bob"):
        (entry,) = result.logs[who]
        assert entry.label == "dropped"
        assert "reconnecting" in screens(result, who)


# --- Several devices per name ------------------------------------------------------------------


DEVICES = """
    name: two devices
    phones: {alice: {}, bob: {devices: 2}}
    steps:
      - {at: 0s, do: alice calls bob}
      - {when: 'bob#2 rings', after: 3s, do: 'bob#2 answers'}
      - {when: 'bob#2 is in call', after: 5s, do: 'bob#2 hangs up'}
    expect:
      alice: [{label: outgoing, with: bob, duration: 5s}]
      'bob#1': [{label: answered_elsewhere, with: alice}]
      'bob#2': [{label: incoming, with: alice, duration: 5s}]
"""


def test_each_device_is_an_end_with_its_own_log_and_steps() -> None:
    result = run(DEVICES)
    assert result.passed, result.failures
    assert list(result.logs) == ["alice", "bob#1", "bob#2"]  # the JSON report's phones too
    assert {e["who"] for e in transitions(result)} == {"server", "alice", "bob#1", "bob#2"}
    registers = [e for e in result.events if e.get("type") == "register"]
    assert len(registers) == 3


def test_devices_of_one_name_make_different_call_ids() -> None:
    result = run(
        """
        name: each device calls
        phones: {alice: {}, bob: {devices: 2}}
        steps:
          - {at: 0s, do: 'bob#1 calls alice'}
          - {at: 1s, do: 'bob#1 hangs up'}
          - {at: 2s, do: 'bob#2 calls alice'}
          - {at: 3s, do: 'bob#2 hangs up'}
        expect:
          alice: [missed, missed]
          'bob#1': canceled
          'bob#2': canceled
        """
    )
    assert result.passed, result.failures
    ids = {e["who"]: e["call_id"] for e in transitions(result) if e["who"] in ("bob#1", "bob#2")}
    assert ids["bob#1"] != ids["bob#2"]


# --- The waits' checks ---------------------------------------------------------------------


@pytest.mark.looptime
async def test_a_wait_checks_on_its_grid_but_only_where_a_check_can_see_something_new() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    quiet = {"now": False}
    loop.call_at(start + 2.345, quiet.update, {"now": True})
    checks = []
    with _Polls(
        loop, lambda: quiet["now"], past=lambda time: time - start >= SETTLE_LIMIT
    ) as polls:
        while not quiet["now"]:
            await polls.next()
            checks.append(round(loop.time() - start, 6))
    # The first check after the run went quiet, on the 0.1 s grid from the wait's start;
    # none of the 23 before it, which could only have found what the start found.
    assert checks == [2.4]


@pytest.mark.looptime
async def test_a_wait_that_never_sees_quiet_gives_up_at_the_limit() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    checks = []
    with _Polls(loop, lambda: False, past=lambda time: time - start >= SETTLE_LIMIT) as polls:
        while loop.time() - start < SETTLE_LIMIT:
            await polls.next()
            checks.append(round(loop.time() - start, 6))
    assert checks == [SETTLE_LIMIT]


@pytest.mark.looptime
async def test_a_wait_returns_on_its_event_between_checks() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    pending: asyncio.Future[str] = loop.create_future()
    loop.call_at(start + 7.0123, pending.set_result, "rang")
    with _Polls(loop, lambda: False, past=lambda time: time - start >= SETTLE_LIMIT) as polls:
        await polls.next(pending)
    assert pending.done()
    assert round(loop.time() - start, 6) == 7.0123
