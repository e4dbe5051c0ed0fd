"""The browser phone's Python half: the page relays frames and presses, the Phone decides."""

from __future__ import annotations

import json
from typing import Any

from peers.phone import Phone
from scenarios.demo.browser_phone import BrowserPhone
from scenarios.observers import EventStream, event_logger
from signaling.messages import Incoming, Registered, serialize_message


OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


class PageRecorder:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def sent(self) -> list[dict[str, Any]]:
        """The frames the page was told to send, decoded."""
        return [json.loads(m["text"]) for m in self.messages if m["op"] == "send"]


def new_phone() -> tuple[BrowserPhone, PageRecorder, EventStream, list[int]]:
    clock = [0.0]
    stream = EventStream(lambda: clock[0])
    changes: list[int] = []
    phone = BrowserPhone(
        Phone("erin", "erin-token-0123456789", new_call_id=lambda: "c1"),
        clock=lambda: clock[0],
        logger=event_logger(stream),
        on_change=lambda: changes.append(1),
    )
    page = PageRecorder()
    assert phone.attach(page) is None
    return phone, page, stream, changes


def frame(message: Any) -> dict[str, str]:
    return {"op": "frame", "text": serialize_message(message)}


async def registered(phone: BrowserPhone) -> None:
    await phone.handle({"op": "link_up"})
    await phone.handle(frame(Registered(name="erin", blocks=[], calls=[])))


async def test_the_page_sends_exactly_what_the_phone_decides() -> None:
    phone, page, stream, changes = new_phone()
    await registered(phone)
    assert page.sent() == [
        {
            "type": "register",
            "name": "erin",
            "token": "erin-token-0123456789",
            "calls": [],
            "device": None,
        }
    ]
    assert phone.phone.registered and len(changes) == 2
    await phone.handle({"op": "call", "to": "dave", "sdp": OFFER})
    assert page.sent()[-1] == {
        "type": "offer",
        "call_id": "c1",
        "to": "dave",
        "kind": "audio",
        "sdp": OFFER,
    }
    assert page.messages[-1] == {"op": "placed", "call_id": "c1"}
    assert phone.phone.screen == "calling"
    await phone.handle({"op": "hangup"})
    assert page.sent()[-1] == {"type": "hangup", "call_id": "c1", "reason": "canceled"}
    ends = [e for e in stream.events if e.get("event") == "transition" and e["to"] == "ended"]
    assert [(e["who"], e["cause"]) for e in ends] == [("erin", "canceled")]


async def test_an_incoming_call_rings_and_is_answered_with_the_browsers_sdp() -> None:
    phone, page, _, _ = new_phone()
    await registered(phone)
    incoming = Incoming(call_id="d1", from_="dave", kind="audio", sdp=OFFER, placed_at=0.0)
    await phone.handle(frame(incoming))
    assert page.sent()[-1] == {"type": "ringing", "call_id": "d1"}  # the Phone's decision
    assert phone.phone.screen == "incoming"
    await phone.handle({"op": "answer", "sdp": "v=0\r\nanswer"})
    assert page.sent()[-1] == {"type": "answer", "call_id": "d1", "sdp": "v=0\r\nanswer"}
    assert phone.phone.screen == "in_call"


async def test_a_press_the_phone_refuses_comes_back_as_an_error() -> None:
    phone, page, _, _ = new_phone()
    await registered(phone)
    await phone.handle({"op": "answer", "sdp": "v=0"})
    await phone.handle({"op": "teleport"})
    await phone.handle({"op": "frame", "text": "{not json"})
    errors = [m["message"] for m in page.messages if m["op"] == "error"]
    assert len(errors) == 3
    assert "nothing is ringing" in errors[0] and "unknown op 'teleport'" in errors[1]


async def test_a_second_page_replaces_the_first_and_a_closed_page_is_a_lost_link() -> None:
    phone, first, _, _ = new_phone()
    await registered(phone)
    second = PageRecorder()
    assert phone.attach(second) is first
    await phone.detach(first)  # the old page going away changes nothing
    assert phone.phone.registered and phone.attached
    await phone.detach(second)
    assert not phone.phone.registered and not phone.attached
