"""Observers: the event stream of a run, and each end's call log built from it.

Every component logs through structlog; a run's logger ends in an :class:`EventStream`
processor that stamps each event with the scenario clock, keeps it, and wakes whoever
waits for it (the runner's ``when:`` steps). Call logs are then built from the recorded
``transition`` events alone, each end from its own transitions (DESIGN.md rules 2 and 3):
a phone's log never reads the server's private truth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from scenarios.profiles import Profile
from signaling.calls import CallSummary, Transition, summarize


__all__ = ["EventStream", "LogEntry", "call_logs", "label_entries"]

Event = dict[str, Any]
"""One event of the stream: ``event`` (its name), ``t`` (scenario seconds) and fields."""


class EventStream:
    """A structlog processor that records every event and serves waiters.

    Args:
        clock: The scenario clock, stamped on each event as ``t``.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.events: list[Event] = []
        """Every event so far, in order."""
        self._waiters: list[tuple[Callable[[Event], bool], asyncio.Future[Event]]] = []

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        """The processor: stamps, records, and wakes matching waiters."""
        event_dict.setdefault("t", round(self.clock(), 6))
        event = dict(event_dict)
        self.events.append(event)
        if self._waiters:
            still_waiting = []
            for predicate, future in self._waiters:
                if future.done():
                    continue
                if predicate(event):
                    future.set_result(event)
                else:
                    still_waiting.append((predicate, future))
            self._waiters = still_waiting
        return event_dict

    def wait_for(self, predicate: Callable[[Event], bool]) -> asyncio.Future[Event]:
        """A future resolved by the first event from now on that satisfies ``predicate``."""
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        return future

    def transitions(self) -> list[Transition]:
        """Every recorded call transition, in order."""
        return [Transition.from_event(e) for e in self.events if e.get("event") == "transition"]


def call_logs(
    transitions: Iterable[Transition], ends: Iterable[str]
) -> dict[str, list[CallSummary]]:
    """Each end's calls, folded from its own transitions, oldest placed first.

    Args:
        transitions: Recorded transitions (of any ends; others are ignored).
        ends: The ends to build logs for (phone names). Each gets a list, maybe empty.
    """
    grouped: dict[str, dict[str, list[Transition]]] = {end: {} for end in ends}
    for t in transitions:
        if t.who in grouped:
            grouped[t.who].setdefault(t.call.call_id, []).append(t)
    logs: dict[str, list[CallSummary]] = {}
    for end, calls in grouped.items():
        summaries = [summarize(items) for items in calls.values()]
        # Stable: calls placed at the same instant keep the order this end saw them in.
        logs[end] = sorted(summaries, key=lambda s: s.info.placed_at)
    return logs


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One line of a phone's call log, as the person reads it."""

    label: str | None
    """The profile's label key; ``None`` while the call is still in progress."""
    with_: str
    direction: str
    kind: str
    reached: bool
    duration: float | None
    call_id: str
    placed_at: float

    def as_json(self) -> dict[str, object]:
        """The entry in the JSON report's shape (DESIGN.md)."""
        return {
            "label": self.label,
            "with": self.with_,
            "direction": self.direction,
            "kind": self.kind,
            "reached": self.reached,
            "duration": None if self.duration is None else round(self.duration, 3),
        }

    def describe(self) -> str:
        """A compact human form, e.g. ``canceled with bob (reached)``."""
        details = ["reached" if self.reached else "not reached"]
        if self.kind != "audio":
            details.insert(0, self.kind)
        if self.duration is not None:
            details.append(f"{self.duration:.0f}s")
        label = self.label or "in progress"
        return f"{label} with {self.with_} ({', '.join(details)})"


def label_entries(summaries: Iterable[CallSummary], profile: Profile) -> list[LogEntry]:
    """Labels one end's call summaries with ``profile``."""
    return [
        LogEntry(
            label=profile.label(s),
            with_=s.peer,
            direction=s.direction,
            kind=s.info.kind,
            reached=s.reached,
            duration=s.duration,
            call_id=s.info.call_id,
            placed_at=s.info.placed_at,
        )
        for s in summaries
    ]
