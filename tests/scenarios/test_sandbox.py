"""The public async sandbox: a real server and phones in the test's loop, judged by log.

Every test here is marked ``voip_sandbox``, so it also checks that the plugin's loop factory
wins over this repository's own ``pytest_asyncio_loop_factories`` in tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import time

import looptime
import pytest

from peers.phone import PhoneError
from scenarios.model import ExpectedEntry
from scenarios.profiles import ProfileError, load_profile
from scenarios.pytest_plugin import PhoneFactory
from scenarios.sandbox import Sandbox, Screen, expected_entries


pytestmark = pytest.mark.voip_sandbox


async def test_the_marker_gives_a_virtual_time_loop_from_zero() -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, looptime.LoopTimeEventLoop)
    assert loop.looptime_on
    assert loop.time() < 1
    started = time.perf_counter()
    await asyncio.sleep(3600)
    assert time.perf_counter() - started < 5


async def test_cancel_before_pickup_is_canceled_and_missed() -> None:
    async with Sandbox() as sb:
        alice = await sb.phone("alice")
        bob = await sb.phone("bob")
        assert alice.registered and bob.registered
        await alice.call(bob)
        await bob.wait_for_screen(Screen.INCOMING)
        await alice.wait_for_screen(Screen.RINGING)
        await asyncio.sleep(3)
        await alice.hang_up()
        await sb.settle()
        alice.assert_log([{"label": "canceled", "with": "bob", "reached": True}])
        bob.assert_log([{"label": "missed", "with": "alice", "reached": True}])
        assert alice.labels == ["canceled"]
        assert [entry.direction for entry in bob.log] == ["incoming"]
        assert alice.screen is Screen.ENDED
        assert 3 <= sb.now() < 4
        assert sb.errors == []


async def test_calling_is_not_ringing_and_the_missed_call_arrives_on_power_on() -> None:
    async with Sandbox() as sb:
        alice = await sb.phone("alice")
        bob = await sb.phone("bob", power=False)
        assert not bob.registered
        await alice.call("bob")
        assert alice.screen is Screen.CALLING
        await asyncio.sleep(5)
        await alice.hang_up()
        await sb.settle()
        alice.assert_log([{"label": "canceled", "reached": False}])
        bob.assert_log([])
        await bob.power_on()
        await sb.settle()
        bob.assert_log([{"label": "missed", "with": "alice", "reached": False}])


async def test_the_timers_override_the_profile_s() -> None:
    defaults = load_profile("whatsapp").timers
    async with Sandbox(ring_timeout="10s", reconnect_grace=3) as sb:
        assert sb.profile.name == "whatsapp"
        assert sb.timers.ring_timeout == 10
        assert sb.timers.reconnect_grace == 3
        assert sb.timers.dial_timeout == defaults.dial_timeout
        alice = await sb.phone("alice")
        bob = await sb.phone("bob")
        await alice.call(bob)
        await sb.settle()
        assert 10 <= sb.now() < 11
        sb.assert_logs({"alice": "no_answer", "bob": ["missed"]})


async def test_the_profile_s_policies_and_labels_apply() -> None:
    async with Sandbox(profile="telegram") as sb:
        assert sb.timers == load_profile("telegram").timers
        alice = await sb.phone("alice")
        await sb.phone("carol", blocks=["alice"])
        await alice.call("carol")
        await sb.settle()
        # Telegram tells a blocked caller at once, and says so in the log.
        sb.assert_logs({"alice": ["blocked"], "carol": []})
        sb.assert_invariants()
        assert sb.observe().records


async def test_invariants_are_checked_on_demand() -> None:
    async with Sandbox() as sb:
        alice = await sb.phone("alice")
        await sb.phone("bob")
        await alice.call("bob")
        with pytest.raises(AssertionError, match="alice"):
            sb.assert_invariants()  # the call is still in progress on every end
        await alice.hang_up()
        await sb.settle()
        sb.assert_invariants()


async def test_an_answered_call_has_its_duration() -> None:
    async with Sandbox() as sb:
        alice = await sb.phone("alice")
        bob = await sb.phone("bob")
        call_id = await alice.call(bob, kind="video")
        await bob.wait_for_screen(Screen.INCOMING)
        assert await bob.answer() == call_id
        await alice.wait_for_screen("in_call")
        await asyncio.sleep(10)
        await bob.hang_up()
        await sb.settle()
        alice.assert_log([{"label": "outgoing", "with": "bob", "kind": "video", "duration": "10s"}])
        bob.assert_log([{"label": "incoming", "direction": "incoming", "duration": 10}])


async def test_decline_block_and_airplane_mode() -> None:
    async with Sandbox() as sb:
        alice = await sb.phone("alice")
        bob = await sb.phone("bob")
        carol = await sb.phone("carol", blocks=["alice"])
        await alice.call(bob)
        await bob.wait_for_screen(Screen.INCOMING)
        await bob.decline()
        await sb.settle()
        await alice.call(carol)
        await sb.settle()
        await bob.go_offline()
        await bob.go_online()
        await bob.block(alice)
        await bob.unblock("alice")
        await sb.settle()
        sb.assert_logs(
            {
                "alice": [
                    {"label": "declined", "with": "bob"},
                    {"label": "canceled", "with": "carol"},
                ],
                "bob": ["declined"],
                "carol": [],
            }
        )


async def test_a_failed_assertion_shows_the_expected_against_actual_table() -> None:
    async with Sandbox() as sb:
        alice = await sb.phone("alice")
        bob = await sb.phone("bob")
        await alice.call(bob)
        await bob.wait_for_screen(Screen.INCOMING)
        await alice.hang_up()
        await sb.settle()
        with pytest.raises(AssertionError) as caught:
            bob.assert_log(["declined", "missed"])
    message = str(caught.value)
    assert message.splitlines()[0] == "bob: expected [declined, missed], got [missed]"
    assert "!! 1. expected declined" in message
    assert "got missed with alice (reached)" in message
    assert "!! 2. expected missed" in message
    assert "got (nothing)" in message


async def test_expectations_are_checked_like_a_scenario_s() -> None:
    async with Sandbox() as sb:
        await sb.phone("alice")
        with pytest.raises(ValueError, match="unknown label 'cancelled' for profile 'whatsapp'"):
            sb.phones["alice"].assert_log(["cancelled"])
        with pytest.raises(ValueError, match="unknown key 'whom'"):
            sb.phones["alice"].assert_log([{"label": "canceled", "whom": "bob"}])
        with pytest.raises(ValueError, match="'reached' must be True or False"):
            sb.phones["alice"].assert_log([{"reached": "yes"}])
        with pytest.raises(ValueError, match="'kind' must be audio or video"):
            sb.phones["alice"].assert_log([{"kind": "fax"}])
        with pytest.raises(ValueError, match="no phone named 'bob'"):
            sb.assert_logs({"bob": []})


def test_expected_entries_reads_every_form() -> None:
    profile = load_profile("whatsapp")
    entry = ExpectedEntry(label="missed", with_="alice")
    assert expected_entries("canceled", profile) == (ExpectedEntry(label="canceled"),)
    assert expected_entries([], profile) == ()
    assert expected_entries(
        ["busy", entry, {"with": "bob", "duration": "1m", "reached": True}], profile
    ) == (
        ExpectedEntry(label="busy"),
        entry,
        ExpectedEntry(with_="bob", duration=60.0, reached=True),
    )
    with pytest.raises(ValueError, match="expected a label"):
        expected_entries({"label": "busy"}, profile)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'duration'"):
        expected_entries([{"duration": "soon"}], profile)


def test_bad_settings_fail_when_the_sandbox_is_built() -> None:
    with pytest.raises(ProfileError, match="unknown profile"):
        Sandbox(profile="nokia")
    with pytest.raises(ValueError, match="ring_timeout: must be longer than 0s"):
        Sandbox(ring_timeout=0)
    with pytest.raises(ValueError, match="dial_timeout"):
        Sandbox(dial_timeout="a while")


async def test_phone_names_are_checked_and_unique() -> None:
    async with Sandbox() as sb:
        await sb.phone("alice")
        with pytest.raises(ValueError, match="already"):
            await sb.phone("alice")
        for bad in ("Alice", "server", "", "a" * 33):
            with pytest.raises(ValueError, match="bad phone name"):
                await sb.phone(bad)
        assert list(sb.phones) == ["alice"]
        assert sb.phones["alice"].screen is Screen.IDLE


async def test_what_a_phone_cannot_do_raises_phone_error() -> None:
    async with Sandbox() as sb:
        alice = await sb.phone("alice")
        with pytest.raises(PhoneError, match="nothing is ringing"):
            await alice.answer()
        await alice.lose_signal()
        with pytest.raises(PhoneError, match="no signal already"):
            await alice.lose_signal()
        await alice.regain_signal()
        with pytest.raises(PhoneError, match="has signal already"):
            await alice.regain_signal()
        await alice.wait_registered()
        await alice.power_off()
        with pytest.raises(PhoneError, match="it is off"):
            await alice.call("bob")


async def test_waits_time_out_saying_what_never_happened() -> None:
    async with Sandbox() as sb:
        alice = await sb.phone("alice")
        with pytest.raises(TimeoutError, match=r"alice's screen did not show in_call within 5s"):
            await alice.wait_for_screen(Screen.IN_CALL, timeout=5)
        with pytest.raises(TimeoutError, match="no event matching event='transition'"):
            await sb.wait_for_event(event="transition", timeout=5)
        with pytest.raises(ValueError):
            await alice.wait_for_screen("dancing")
        assert 10 <= sb.now() < 11


async def test_events_can_be_selected_and_awaited() -> None:
    async with Sandbox() as sb:
        alice = await sb.phone("alice")
        bob = await sb.phone("bob")
        mark = sb.mark()
        await alice.call(bob)
        ringing = await sb.wait_for_event(
            lambda e: e["to"] == "ringing", event="transition", who="bob", since=mark
        )
        assert ringing["callee"] == "bob"
        # Already recorded: found from the mark, not waited for.
        again = await sb.wait_for_event(event="transition", who="bob", to="ringing", since=mark)
        assert again is ringing
        assert sb.select(event="transition", who="bob", since=mark)[-1] is ringing
        assert all("t" in event for event in sb.events)
        await alice.hang_up()
        await sb.settle()


async def test_the_same_seed_gives_the_same_call_ids() -> None:
    ids = []
    for _ in range(2):
        async with Sandbox(seed=7) as sb:
            alice = await sb.phone("alice")
            await sb.phone("bob")
            ids.append(await alice.call("bob"))
            await alice.hang_up()
            await sb.settle()
    assert ids[0] == ids[1]


async def test_the_server_can_restart_and_crash() -> None:
    async with Sandbox() as sb:
        alice = await sb.phone("alice")
        port = sb.port
        await sb.restart_server()
        await sb.settle()
        await sb.restart_server(crash=True)
        await sb.settle()
        assert sb.port == port
        assert alice.registered
        assert sb.select(event="server", state="crashed")


async def test_log_file_gets_the_events_as_json_lines() -> None:
    sink = io.StringIO()
    async with Sandbox(log_file=sink) as sb:
        await sb.phone("alice")
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert lines[0]["event"] == "server_started"
    assert any(line["event"] == "connection" for line in lines)


async def test_an_error_inside_the_loop_fails_the_exit() -> None:
    loop = asyncio.get_running_loop()
    seen: list[object] = []

    def quiet(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        seen.append(context.get("exception"))

    def boom() -> None:
        raise RuntimeError("boom")

    loop.set_exception_handler(quiet)
    try:
        with pytest.raises(AssertionError, match=r"errors inside the sandbox:\nat .*RuntimeError"):
            async with Sandbox() as sb:
                await sb.phone("alice")
                loop.call_soon(boom)
                await asyncio.sleep(0.1)
        # Passed on to the handler in place before, which is back in place.
        assert [str(exc) for exc in seen] == ["boom"]
        assert loop.get_exception_handler() is quiet
    finally:
        loop.set_exception_handler(None)


async def test_close_stops_everything_and_may_be_repeated() -> None:
    sb = Sandbox()
    await sb.close()  # never started: nothing to do
    sb = Sandbox()
    with pytest.raises(RuntimeError, match="not running"):
        await sb.phone("alice")
    await sb.start()
    with pytest.raises(RuntimeError, match="started already"):
        await sb.start()
    alice = await sb.phone("alice")
    port = sb.port
    await sb.close()
    await sb.close()
    assert sb.closed and not alice.registered
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


@pytest.mark.voip_sandbox(virtual_time=False)
async def test_closing_with_a_black_holed_link_does_not_wait_in_real_time() -> None:
    loop = asyncio.get_running_loop()
    assert not getattr(loop, "looptime_on", False)
    started = time.perf_counter()
    async with Sandbox() as sb:
        alice = await sb.phone("alice")
        await alice.lose_signal()
    assert time.perf_counter() - started < 3  # the close timeout is 5 s


@pytest.mark.voip_sandbox(ring_timeout="5s", seed=3)
async def test_the_phone_fixture_uses_one_default_sandbox(phone: PhoneFactory) -> None:
    assert not phone.sandbox.started
    alice = await phone("alice")
    bob = await phone("bob")
    assert alice.sandbox is bob.sandbox is phone.sandbox
    assert phone.sandbox.timers.ring_timeout == 5
    assert phone.sandbox.seed == 3
    await alice.call(bob)
    await phone.sandbox.settle()
    alice.assert_log(["no_answer"])
    bob.assert_log(["missed"])
