"""The demo controller: a live world, its cards and ladder, and the page's commands."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from scenarios.demo.controller import DemoController, DemoError, LiveLadder

from .helpers import Page


FAST = {"heartbeat_interval": 0.3, "heartbeat_timeout": 0.3, "reconnect_grace": 0.6}


@pytest.fixture
async def controller() -> AsyncIterator[DemoController]:
    demo = DemoController(port=0, timers=FAST, audio_phone=None)
    await demo.start()
    try:
        yield demo
    finally:
        await demo.close()


def labels(page: Page, name: str) -> list[str | None]:
    return [e["key"] for e in page.card(name)["log"]]


async def test_a_page_sees_the_phones_and_a_cancel_labeled_on_both_cards(controller) -> None:
    page = Page(controller)
    hello = page.messages[0]
    assert hello["kind"] == "hello"
    assert [c["name"] for c in hello["phones"]] == ["alice", "bob", "carol"]
    assert hello["signaling_url"].startswith("ws://127.0.0.1:")
    assert len(hello["scenarios"]) >= 20

    await controller.command({"op": "call", "phone": "alice", "to": "bob"})
    await page.until(lambda: page.card("bob")["screen"] == "incoming")
    await page.until(lambda: page.card("alice")["screen"] == "ringing")
    assert page.card("alice")["peer"] == "bob"
    await controller.command({"op": "hangup", "phone": "alice"})
    await page.until(lambda: labels(page, "bob") == ["missed"])
    assert labels(page, "alice") == ["canceled"]
    alice_entry = page.card("alice")["log"][0]
    assert alice_entry["text"] == "Canceled call" and alice_entry["reached"] is True
    arrows = [(r["from"], r["to"], r["type"]) for r in page.rows() if r["kind"] == "arrow"]
    assert ("alice", "server", "offer") in arrows
    assert ("server", "bob", "incoming") in arrows
    assert ("server", "bob", "call_ended") in arrows


async def test_cutting_the_callees_signal_ends_with_canceled_and_missed(controller) -> None:
    page = Page(controller)
    await controller.command({"op": "call", "phone": "alice", "to": "bob"})
    await page.until(lambda: page.card("bob")["screen"] == "incoming")
    await controller.command({"op": "signal", "phone": "bob", "on": False})
    await page.until(lambda: page.card("bob")["signal"] is False)
    await controller.command({"op": "hangup", "phone": "alice"})
    await page.until(lambda: labels(page, "bob") == ["missed"], within=10)
    assert labels(page, "alice") == ["canceled"]
    notes = [r["text"] for r in page.rows() if r["kind"] == "note"]
    assert "signal lost" in notes


async def test_the_labels_can_be_shown_as_another_app_would(controller) -> None:
    page = Page(controller)
    await controller.command({"op": "call", "phone": "alice", "to": "bob"})
    await page.until(lambda: page.card("bob")["screen"] == "incoming")
    await controller.command({"op": "hangup", "phone": "alice"})
    await page.until(lambda: labels(page, "bob") == ["missed"])
    await controller.command({"op": "labels", "profile": "asterisk"})
    await page.until(lambda: page.last_state()["label_profile"] == "asterisk")
    assert labels(page, "alice") == ["cancel"] and labels(page, "bob") == ["no_answer"]
    assert page.last_state()["profile"] == "whatsapp"  # behaviour stays the world's


async def test_an_answered_call_has_a_running_timer_then_a_duration(controller) -> None:
    page = Page(controller)
    await controller.command({"op": "call", "phone": "carol", "to": "alice"})
    await page.until(lambda: page.card("alice")["screen"] == "incoming")
    await controller.command({"op": "answer", "phone": "alice"})
    await page.until(lambda: page.card("carol")["in_call_since"] is not None)
    assert page.card("alice")["screen"] == "in_call"
    await controller.command({"op": "hangup", "phone": "carol"})
    await page.until(lambda: labels(page, "alice") == ["incoming"])
    assert labels(page, "carol") == ["outgoing"]
    assert page.card("carol")["log"][0]["duration"] is not None


async def test_a_library_scenario_is_stepped_on_the_live_world(controller) -> None:
    page = Page(controller)
    await controller.command({"op": "load", "file": "01-cancel-while-ringing.yaml"})
    player = page.last_state()["player"]
    assert player["state"] == "ready" and len(player["steps"]) == 2
    assert player["expect"] == {
        "alice": ["canceled with bob (reached)"],
        "bob": ["missed with alice (reached)"],
    }
    await controller.command({"op": "step"})
    await page.until(lambda: page.card("bob")["screen"] == "incoming")
    await page.until(lambda: page.last_state()["player"]["state"] == "paused")
    await controller.command({"op": "step"})
    await page.until(lambda: page.last_state()["player"]["state"] == "done")
    await page.until(lambda: labels(page, "bob") == ["missed"])
    assert labels(page, "alice") == ["canceled"]
    notes = [r["text"] for r in page.rows() if r["kind"] == "note"]
    assert notes[:2] == ["step: alice calls bob", "step: alice hangs up"]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ({"op": "answer", "phone": "alice"}, "nothing is ringing"),
        ({"op": "call", "phone": "zed", "to": "bob"}, "no phone named 'zed'"),
        ({"op": "fly", "phone": "alice"}, "unknown command 'fly'"),
        ({"op": "play"}, "load a scenario first"),
        ({"op": "load", "file": "../../pyproject.toml"}, "no scenario"),
        ({"op": "labels", "profile": "skype"}, "no profile 'skype'"),
        ({"op": "signal", "phone": "alice", "on": True}, "has signal already"),
    ],
)
async def test_a_refused_command_says_why(controller, command, message) -> None:
    with pytest.raises(DemoError, match=message):
        await controller.command(command)


def test_the_live_ladder_names_timers_but_not_answers() -> None:
    ladder = LiveLadder()
    rows = ladder.rows(
        [
            {
                "event": "frame",
                "t": 1.0,
                "sender": "alice",
                "receiver": "server",
                "type": "hangup",
                "call_id": "c1",
            },
            {
                "event": "transition",
                "t": 1.0,
                "who": "server",
                "to": "ended",
                "cause": "canceled",
                "call_id": "c1",
            },
            {
                "event": "transition",
                "t": 31.0,
                "who": "server",
                "to": "ended",
                "cause": "unreachable",
                "call_id": "c2",
            },
            {"event": "heartbeat", "t": 32.0, "who": "server/conn-3", "state": "timed_out"},
            {"event": "screen", "t": 33.0, "who": "bob"},
        ]
    )
    assert [r.get("text", r.get("type")) for r in rows] == [
        "hangup",
        "dial timer fired → unreachable",
        "heartbeat timed out",
    ]
    assert rows[2]["over"] == ["server"]
