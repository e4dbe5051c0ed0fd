"""The Python half of a browser phone: its :class:`~peers.phone.Phone`, fed by the page.

The page at ``/phone?name=...`` speaks the wire protocol (docs/protocol.md) to the signaling
server over its own websocket, and does WebRTC (getUserMedia, ``RTCPeerConnection`` with
``iceServers: []``, trickled candidates). What it must not do is decide: every frame it
receives and every press of a button is relayed here, to a :class:`~peers.phone.Phone` (the
same sans-I/O core as every simulated phone), and the page sends exactly the frames the
phone wants sent. So the browser phone rings, answers, logs missed calls and is labeled by
the same rules, from its own transitions, as every other phone (DESIGN.md rules 2 to 4).

The page relays over the demo's ``/phone-ws`` websocket (``op`` messages, all JSON):

====================  =========================================================================
page → here           meaning
====================  =========================================================================
``link_up``           its signaling websocket opened (the phone registers)
``link_down``         it closed
``frame``             ``text``: a frame the server sent it
``call``              ``to``, ``sdp``: the person calls, with the browser's SDP offer
``answer``            ``sdp``: the person answers, with the browser's SDP answer
``decline``,          the person's other buttons (``block`` and ``unblock`` carry ``name``)
``hangup``, ...
====================  =========================================================================

and hears back ``send`` (``text``: a frame to send to the server, in order), ``placed``
(``call_id`` of the call it just placed, after its offer's ``send``), ``error``
(``message``) and ``state`` (its card, pushed by :mod:`scenarios.demo.controller`).
Candidates are media, not call state: the page sends and applies them itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from peers.phone import Phone, PhoneError
from signaling.messages import InvalidMessage, parse_server_message, serialize_message


__all__ = ["BrowserPhone", "PageSender"]

PageSender = Callable[[dict[str, Any]], Awaitable[None]]
"""Sends one JSON message to the phone's page."""


class BrowserPhone:
    """A phone whose driver is a browser page.

    Args:
        phone: The phone's logic.
        clock: The scenario clock.
        logger: Where ``transition`` and ``screen`` events go.
        on_change: Called after every input (a registration changes the card and logs
            nothing, for one).
    """

    kind = "browser"
    """What the demo page calls this kind of phone."""

    def __init__(
        self,
        phone: Phone,
        *,
        clock: Callable[[], float],
        logger: Any,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.phone = phone
        self._on_change = on_change
        self._clock = clock
        self.log = logger
        self._page: PageSender | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._wakes: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    @property
    def name(self) -> str:
        """The phone's name."""
        return self.phone.name

    @property
    def attached(self) -> bool:
        """Whether a page drives this phone now."""
        return self._page is not None

    def now(self) -> float:
        """The time on the scenario clock."""
        return self._clock()

    # --- The page ------------------------------------------------------------------------------

    def attach(self, page: PageSender) -> PageSender | None:
        """Makes ``page`` this phone's driver; returns the page it replaces, if any."""
        previous, self._page = self._page, page
        return previous

    async def detach(self, page: PageSender) -> None:
        """The page is gone: its signaling websocket went with it."""
        if self._page is page:
            self._page = None
            await self.handle({"op": "link_down"})

    async def push(self, message: dict[str, Any]) -> None:
        """Sends ``message`` to the page, if one is attached."""
        if self._page is not None:
            await self._page(message)

    async def handle(self, message: dict[str, Any]) -> None:
        """Feeds one message of the page to the phone, then carries out what it decided.

        A press the phone refuses (answering with nothing ringing) is answered with an
        ``error`` for the person; a malformed message too.
        """
        async with self._lock:  # one input at a time, frames sent in the phone's order
            placed: str | None = None
            try:
                placed = self._feed(message)
            except (PhoneError, InvalidMessage, KeyError, TypeError, ValueError) as exc:
                await self.push({"op": "error", "message": str(exc)})
            await self._flush()
            if placed is not None:
                await self.push({"op": "placed", "call_id": placed})
        self._on_change()

    def _feed(self, message: dict[str, Any]) -> str | None:
        phone, now = self.phone, self.now()
        op = message.get("op")
        match op:
            case "link_up":
                phone.link_up(now)
            case "link_down":
                phone.link_down(now)
            case "frame":
                phone.receive(parse_server_message(str(message["text"])), now)
            case "call":
                video = message.get("kind") == "video"
                to, sdp = str(message["to"]), str(message["sdp"])
                return phone.place_call(to, "video" if video else "audio", sdp, now)
            case "answer":
                phone.answer(str(message["sdp"]), now)
            case "decline":
                phone.decline(now)
            case "hangup":
                phone.hang_up(now)
            case "block":
                phone.block(str(message["name"]), now)
            case "unblock":
                phone.unblock(str(message["name"]), now)
            case _:
                raise ValueError(f"unknown op {op!r}")
        return None

    async def _flush(self) -> None:
        phone = self.phone
        for transition in phone.transitions_received():
            self.log.info("transition", **transition.as_event())
        for change in phone.screens_received():
            self.log.info(
                "screen",
                who=change.who,
                screen=str(change.to_screen),
                previous=str(change.from_screen),
            )
        for out in phone.messages_to_send():
            await self.push({"op": "send", "text": serialize_message(out)})
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        wakeup = self.phone.next_wakeup()
        if wakeup is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(loop.time() + (wakeup - self.now()), self._on_timer, wakeup)

    def _on_timer(self, wakeup: float) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self._wake(wakeup))
        self._wakes.add(task)
        task.add_done_callback(self._wakes.discard)

    async def _wake(self, wakeup: float) -> None:
        async with self._lock:
            self.phone.wake(max(self.now(), wakeup))
            await self._flush()

    def close(self) -> None:
        """Stops the phone's timer (the world it lives in is going away)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._wakes:
            task.cancel()
