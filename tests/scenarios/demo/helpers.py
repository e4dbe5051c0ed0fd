"""Waiting on a demo controller's published messages, with a timeout (no sleep loops)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from scenarios.demo.controller import DemoController


Message = dict[str, Any]


class Page:
    """What a demo page would receive: every message the controller publishes."""

    def __init__(self, controller: DemoController) -> None:
        self.messages: list[Message] = []
        self._changed = asyncio.Event()
        self.unsubscribe = controller.subscribe(self._receive)

    def _receive(self, message: Message) -> None:
        self.messages.append(message)
        self._changed.set()

    def last_state(self) -> Message:
        return next(m for m in reversed(self.messages) if m["kind"] in ("state", "hello"))

    def card(self, name: str) -> Message:
        return next(c for c in self.last_state()["phones"] if c["name"] == name)

    def rows(self) -> list[Message]:
        rows: list[Message] = []
        for m in self.messages:
            if m["kind"] == "hello":
                rows = list(m["ladder"])
            elif m["kind"] == "ladder":
                rows.extend(m["rows"])
        return rows

    async def until(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()
