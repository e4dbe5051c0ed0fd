"""Plays a scenario's steps in real time, with play, pause, step and speed.

The runner plays a scenario in virtual time, all at once; a class wants to watch it, stop
at the moment the call is canceled, and look at both phones. :class:`Player` plays the same
steps, with the same meaning (DESIGN.md "Step order": ``at`` is scenario time from the
start, ``when`` waits for an event and then ``after`` seconds), against a live world.

What speed and pause govern is the *steps'* clock: the waits before each step run ``speed``
times faster (or not at all while paused), and **step** does the next step at once. The
server's and phones' own timers (dial, ring, reconnect grace, heartbeats) keep real time:
pausing stops the teacher's script, not the network, which is what a real phone would do
too. A ``when`` step still waits for its event, even when stepped.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Awaitable, Callable
from typing import Any

from scenarios.model import EventKind, Scenario, Step
from scenarios.observers import EventStream


__all__ = ["Player", "PlayerState", "event_matcher"]

Event = dict[str, Any]


class PlayerState(enum.StrEnum):
    """Where a playback is."""

    READY = "ready"
    """Loaded; nothing played yet."""
    PLAYING = "playing"
    PAUSED = "paused"
    DONE = "done"
    """Every step was done (or one failed: see :attr:`Player.failure`)."""


def event_matcher(step: Step) -> Callable[[Event], bool]:
    """The predicate over the event stream for a ``when:`` step, as the runner reads it."""
    assert step.when is not None
    phone = step.when.phone

    def of(e: Event) -> bool:
        return e.get("event") == "transition" and e.get("who") == phone

    match step.when.kind:
        case EventKind.RINGS:
            return lambda e: of(e) and e.get("callee") == phone and e.get("to") == "ringing"
        case EventKind.HEARS_RINGING:
            return lambda e: of(e) and e.get("caller") == phone and e.get("to") == "ringing"
        case EventKind.IS_IN_CALL:
            return lambda e: of(e) and e.get("to") == "answered"
        case EventKind.CALL_ENDS:
            return lambda e: of(e) and e.get("to") == "ended" and e.get("from") != "new"
    raise AssertionError(f"unhandled event kind {step.when.kind}")


class Player:
    """Plays ``scenario``'s steps against a live world.

    Args:
        scenario: The scenario.
        stream: The world's event stream (``when`` steps wait on it).
        act: Does one step's action (raises ``PhoneError`` for an impossible press).
        clock: Wall seconds (the loop's clock).
        on_change: Called whenever the state, the next step or the speed changes.
        logger: Where ``step`` events go (they become notes on the ladder).
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        stream: EventStream,
        act: Callable[[Step], Awaitable[None]],
        clock: Callable[[], float],
        on_change: Callable[[], None],
        logger: Any,
    ) -> None:
        self.scenario = scenario
        self.stream = stream
        self._act = act
        self._clock = clock
        self._on_change = on_change
        self.log = logger
        self.state = PlayerState.READY
        self.speed = 1.0
        """How many times faster than real time the waits between steps run."""
        self.next_index = 0
        """The step to be done next (``len(steps)`` once done)."""
        self.failure: str | None = None
        """Why playback stopped early, if it did."""
        self.waiting_for: str | None = None
        """What the next step waits for right now, for the page."""
        self._played = 0.0  # play-clock seconds, as of the last anchor
        self._anchor: float | None = None  # wall time of the anchor while playing
        self._changed = asyncio.Event()
        self._step_once = False
        self._task: asyncio.Task[None] | None = None

    # --- The controls --------------------------------------------------------------------------

    @property
    def play_time(self) -> float:
        """Seconds on the steps' clock: scenario time as the script sees it."""
        if self._anchor is None:
            return self._played
        return self._played + (self._clock() - self._anchor) * self.speed

    def play(self) -> None:
        """Plays on from where it is."""
        if self.state in (PlayerState.READY, PlayerState.PAUSED):
            self._set_running(True)
            self.state = PlayerState.PLAYING
            self._ensure_task()
            self._poke()

    def pause(self) -> None:
        """Stops before the next step; what is in flight on the network goes on."""
        if self.state is PlayerState.PLAYING:
            self._set_running(False)
            self.state = PlayerState.PAUSED
            self._poke()

    def step(self) -> None:
        """Does the next step now (after its event, for a ``when`` step), then pauses."""
        if self.state is PlayerState.DONE:
            return
        if self.state is PlayerState.PLAYING:
            self._set_running(False)
        self.state = PlayerState.PAUSED
        self._step_once = True
        self._ensure_task()
        self._poke()

    def set_speed(self, speed: float) -> None:
        """Sets the speed of the waits between steps (0.1 to 100 times real time).

        Raises:
            ValueError: Out of range.
        """
        if not 0.1 <= speed <= 100:
            raise ValueError(f"speed must be between 0.1 and 100, got {speed:g}")
        running = self._anchor is not None
        self._set_running(False)
        self.speed = speed
        self._set_running(running)
        self._poke()

    async def close(self) -> None:
        """Stops playing for good."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def as_json(self, label_profile: str) -> dict[str, object]:
        """The player for the page; expectations as ``label_profile`` labels them."""
        expected = self.scenario.expectations_for(label_profile) or {}
        return {
            "scenario": self.scenario.name,
            "about": self.scenario.about,
            "file": self.scenario.path,
            "state": str(self.state),
            "speed": self.speed,
            "next": self.next_index,
            "steps": [_describe(step) for step in self.scenario.steps],
            "play_time": round(self.play_time, 3),
            "waiting_for": self.waiting_for,
            "failure": self.failure,
            "expect": {name: [e.describe() for e in entries] for name, entries in expected.items()},
        }

    # --- Playing -------------------------------------------------------------------------------

    def _set_running(self, running: bool) -> None:
        if running and self._anchor is None:
            self._anchor = self._clock()
        elif not running and self._anchor is not None:
            self._played = self.play_time
            self._anchor = None

    def _poke(self) -> None:
        self._changed.set()
        self._on_change()

    def _ensure_task(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._play(), name="demo-player")

    async def _play(self) -> None:
        steps = self.scenario.steps
        pending: asyncio.Future[Event] | None = None
        if steps and steps[0].when is not None:
            pending = self.stream.wait_for(event_matcher(steps[0]))
        for index, step in enumerate(steps):
            self.next_index = index
            self._on_change()
            if step.when is not None:
                assert pending is not None
                self.waiting_for = step.when.text
                self._on_change()
                await self._wait_for_go()
                await pending
                self.waiting_for = None
                await self._wait_play(self.play_time + step.after)
            else:
                assert step.at is not None
                await self._wait_play(step.at)
            # Listen for the following step's event before this one acts: what this step
            # causes is exactly what the next may wait for (as the runner does).
            following = steps[index + 1] if index + 1 < len(steps) else None
            pending = (
                self.stream.wait_for(event_matcher(following))
                if following is not None and following.when is not None
                else None
            )
            self.log.info("step", index=step.index, line=step.line, do=step.action.text)
            try:
                await self._act(step)
            except Exception as exc:  # a press the phone refuses ends the playback
                self.failure = f"step {index + 1} ('{step.action.text}'): {exc}"
                self.log.info("step", index=step.index, do=step.action.text, skipped=str(exc))
                break
            if self._step_once:
                self._step_once = False
                self.state = PlayerState.PAUSED
                self._set_running(False)
        if pending is not None:
            pending.cancel()
        self.next_index = len(steps) if self.failure is None else self.next_index
        self.state = PlayerState.DONE
        self._set_running(False)
        self.waiting_for = None
        self._on_change()

    async def _wait_for_go(self) -> None:
        """Returns once playing, or once a single step was asked for."""
        while self.state is not PlayerState.PLAYING and not self._step_once:
            self._changed.clear()
            await self._changed.wait()

    async def _wait_play(self, target: float) -> None:
        """Waits until the steps' clock reads ``target``; at once when stepping."""
        while True:
            await self._wait_for_go()
            if self._step_once:
                # Stepping jumps the steps' clock to the step's time.
                self._played = max(self._played, target)
                return
            remaining = target - self.play_time
            if remaining <= 0:
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining / self.speed)


def _describe(step: Step) -> str:
    if step.when is not None:
        after = f" + {step.after:g}s" if step.after else ""
        return f"when {step.when.text}{after}: {step.action.text}"
    return f"at {step.at:g}s: {step.action.text}"
