"""``voip-sandbox load``: many phones calling through a server in another process, judged.

The load generator runs in its own process, in real time, against a running server (or one
it starts itself). Its phones are the project's sans-I/O :class:`~peers.phone.Phone`, so
every call is placed, answered and ended by the same rules as everywhere else and each end's
call log is labeled by the same profile. The driver around each phone
(:class:`LoadPhone`) is deliberately thinner than :class:`~peers.client.PhoneClient`: no
radio link, no heartbeat of its own (the server's pings are answered by websockets), and no
aiortc per call: the SDP offer and answer are made once, for real, with
:mod:`peers.media`, and reused (signaling only: real media costs a core per ~5 calls).

Phones come in groups: a caller, its callee, and (when the mix has a ``blocked`` share) a
third phone that has blocked the caller. Each group places one call at a time, back to back
(``rate`` 0), or when a global ticket scheduler at ``rate`` calls per second hands it one.
Each call's outcome is drawn from the mix, and the people act accordingly:

===========  ==========================================================================
outcome      what happens
===========  ==========================================================================
cancel       the caller hangs up once it hears Ringing…
answer       the callee answers, the call is held ``hold`` seconds, the caller hangs up
decline      the callee declines
no_answer    nobody acts; the caller's own ring timer (``ring_timeout``) gives up
offline      the callee goes into airplane mode first; the caller gives up after
             ``ring_timeout``; the callee comes back and gets its missed-call notice
blocked      the caller calls the group's third phone, which blocked it; it gives up
             after ``ring_timeout`` (under a profile that reveals blocks it is told at once)
===========  ==========================================================================

Callers own the ring timer (as Signal's app does) so that an unanswered call takes
``ring_timeout`` seconds, not the profile's 45: the server accepts ``hangup`` with reason
``no_answer`` from the phone that gives up, under every profile.

Every call is then judged on both ends: each end's transitions are folded into a
:class:`~signaling.calls.CallSummary` and labeled by the profile, and the label, the end
cause and whether it was reached must equal what the outcome intended (:func:`intended`).
Setup latency is measured on the caller's clock: offer to Ringing… and offer to answer.
Every run is bounded in phones (:data:`MAX_PHONES`), calls (``max_calls``) and seconds
(``duration``, :data:`MAX_DURATION`, and a timeout on every step of every call).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import json
import random
import resource
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Never

import click
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from peers.phone import Phone
from scenarios.load_process import ProcessSampler, ServerProcess, serve_command
from scenarios.profiles import DEFAULT_PROFILE, Profile, load_profile, profile_names
from signaling.calls import (
    ANSWERED,
    ENDED,
    RINGING,
    CallInfo,
    CallSummary,
    Cause,
    Transition,
    summarize,
)
from signaling.messages import InvalidMessage, parse_server_message, serialize_message


__all__ = [
    "DEFAULT_MIX",
    "MAX_DURATION",
    "MAX_PHONES",
    "Expected",
    "LoadPhone",
    "LoadReport",
    "LoadSettings",
    "Outcome",
    "PhoneFleet",
    "intended",
    "load_command",
    "parse_mix",
    "percentiles",
    "prebuilt_sdp",
    "run_load",
]

MAX_PHONES: Final = 20_000
"""The most phones one load process drives (file descriptors and memory stay bounded)."""

MAX_DURATION: Final = 3_600.0
"""The longest calling window, in seconds."""

RECYCLE_AFTER: Final = 200
"""Calls a phone logs before its logic is replaced by a fresh one (:meth:`LoadPhone.recycle`)."""

DEFAULT_MIX: Final = "cancel=30,answer=50,decline=10,no_answer=10"
"""The issue's mix: shares of calls by intended outcome."""

SERVER_RATE: Final = 100_000
"""Frames per second (and burst) per connection for a server the load command starts.

A load phone places calls back to back, far above the 50 frames/s a person's phone is
allowed by default; the limit is raised so that the load measures the server, not its
rate limiter."""


class Outcome(enum.StrEnum):
    """What a call of the mix is meant to end as; see the module docstring."""

    CANCEL = "cancel"
    ANSWER = "answer"
    DECLINE = "decline"
    NO_ANSWER = "no_answer"
    OFFLINE = "offline"
    BLOCKED = "blocked"


def parse_mix(text: str) -> dict[Outcome, float]:
    """Parses ``cancel=30,answer=50,...`` into shares that sum to 1.

    Raises:
        ValueError: An unknown outcome, a share that is not a non-negative number, an
            outcome given twice, or no positive share at all.
    """
    weights: dict[Outcome, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise ValueError(f"mix entry {part.strip()!r} is not NAME=SHARE")
        try:
            outcome = Outcome(name.strip())
        except ValueError:
            known = ", ".join(o.value for o in Outcome)
            raise ValueError(
                f"unknown outcome {name.strip()!r} in the mix; known: {known}"
            ) from None
        try:
            share = float(value)
        except ValueError:
            raise ValueError(f"share of {outcome} is not a number: {value!r}") from None
        if share < 0 or share != share:  # NaN is not a share either
            raise ValueError(f"share of {outcome} must be at least 0, not {value}")
        if outcome in weights:
            raise ValueError(f"{outcome} appears twice in the mix")
        weights[outcome] = share
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("the mix has no positive share")
    return {outcome: share / total for outcome, share in weights.items() if share > 0}


# --- What each outcome should look like on each end ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Expected:
    """What one end's call log should say about one call.

    Attributes:
        label: The profile's label key.
        cause: The end cause this end records.
        reached: Caller: heard Ringing…; callee: its device alerted.
    """

    label: str
    cause: Cause
    reached: bool

    def describe(self) -> str:
        """E.g. ``canceled (canceled, reached)``."""
        return f"{self.label} ({self.cause}, {'reached' if self.reached else 'not reached'})"


def intended(
    outcome: Outcome, profile: Profile, *, caller: str = "caller", callee: str = "callee"
) -> tuple[Expected, Expected | None]:
    """The caller's and the callee's expected log entry for an outcome under ``profile``.

    The labels come from the profile's own rules applied to the facts the outcome should
    produce, so they are judged exactly as a scenario's call logs are. ``None`` for the
    callee means it must have no entry at all.
    """
    policies = profile.policies
    answered = outcome is Outcome.ANSWER
    if outcome is Outcome.ANSWER:
        ends: tuple[tuple[Cause, bool], tuple[Cause, bool] | None] = (
            (Cause.HUNG_UP, True),
            (Cause.HUNG_UP, True),
        )
    elif outcome is Outcome.CANCEL:
        ends = (Cause.CANCELED, True), (Cause.CANCELED, True)
    elif outcome is Outcome.DECLINE:
        # Some apps tell the caller "busy" so that a decline is not revealed.
        caller_cause = Cause.BUSY if policies.decline_as_busy else Cause.DECLINED
        ends = (caller_cause, True), (Cause.DECLINED, True)
    elif outcome is Outcome.NO_ANSWER:
        ends = (Cause.NO_ANSWER, True), (Cause.NO_ANSWER, True)
    elif outcome is Outcome.OFFLINE:
        # The callee learns of the call from a notice when it is back (reached: no), or
        # never, under a profile that keeps no notices for absent phones.
        notice = (Cause.CANCELED, False) if policies.missed_after_reconnect else None
        ends = (Cause.CANCELED, False), notice
    else:
        caller_end = (Cause.BLOCKED, False) if policies.block_revealed else (Cause.CANCELED, False)
        ends = caller_end, None
    info = CallInfo("intended", caller, callee, "audio", 0.0)
    caller_end, callee_end = ends

    def expected(who: str, end: tuple[Cause, bool]) -> Expected:
        cause, reached = end
        summary = CallSummary(
            who=who,
            info=info,
            direction="outgoing" if who == caller else "incoming",
            reached=reached,
            answered_at=0.0 if answered else None,
            lost_at=None,
            ended_at=0.0,
            end_cause=cause,
        )
        label = profile.label(summary)
        assert label is not None  # an ended summary always gets a label
        return Expected(label, cause, reached)

    return (
        expected(caller, caller_end),
        None if callee_end is None else expected(callee, callee_end),
    )


def _actual(transitions: Sequence[Transition], profile: Profile) -> Expected | None:
    """What one end's log actually says of a call, in the same terms as :class:`Expected`."""
    if not transitions:
        return None
    summary = summarize(transitions)
    if summary.end_cause is None:
        return Expected("in progress", Cause.DROPPED, summary.reached)
    label = profile.label(summary)
    assert label is not None
    return Expected(label, summary.end_cause, summary.reached)


# --- Settings and the report --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadSettings:
    """One load run.

    Attributes:
        phones: Phones to drive; groups of two (three with a ``blocked`` share).
        rate: Calls per second over all groups; 0 places calls back to back.
        duration: Seconds during which calls are placed.
        mix: Shares of calls by outcome (:func:`parse_mix`).
        profile: The profile whose labels judge each call (and the server's, if started).
        seed: Seeds names' order, outcome draws and tokens' order.
        ring_timeout: Seconds a caller waits for an answer (or for an offline or blocking
            callee) before giving up.
        think: Seconds a person takes to react to Ringing… or an incoming call.
        hold: Seconds an answered call lasts.
        max_calls: Calls placed at most.
        step_timeout: Seconds any one step of a call may take before the call is counted as
            timed out.
    """

    phones: int = 20
    rate: float = 0.0
    duration: float = 10.0
    mix: Mapping[Outcome, float] = field(default_factory=lambda: parse_mix(DEFAULT_MIX))
    profile: str = DEFAULT_PROFILE
    seed: int = 0
    ring_timeout: float = 1.0
    think: float = 0.0
    hold: float = 0.0
    max_calls: int = 1_000_000
    step_timeout: float = 10.0

    @property
    def group_size(self) -> int:
        """Phones per group: caller and callee, plus a blocker when calls get blocked."""
        return 3 if self.mix.get(Outcome.BLOCKED, 0.0) > 0 else 2

    @property
    def pairs(self) -> int:
        """Concurrent call pairs (groups)."""
        return self.phones // self.group_size

    def check(self) -> None:
        """Raises ``ValueError`` naming the first setting out of bounds."""
        if not self.group_size <= self.phones <= MAX_PHONES:
            raise ValueError(f"phones must be from {self.group_size} to {MAX_PHONES}")
        if not 0 < self.duration <= MAX_DURATION:
            raise ValueError(f"duration must be more than 0 and at most {MAX_DURATION:.0f} s")
        if self.rate < 0:
            raise ValueError("rate must be at least 0 (0: back to back)")
        for name in ("ring_timeout", "step_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be more than 0")
        for name in ("think", "hold"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be at least 0")
        if self.ring_timeout + self.think + self.hold >= self.step_timeout:
            raise ValueError("step_timeout must exceed ring_timeout + think + hold")
        if self.max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        if not self.mix:
            raise ValueError("the mix is empty")
        load_profile(self.profile)


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """``count``, ``p50``, ``p95``, ``p99`` and ``max`` of ``values`` in milliseconds.

    Nearest-rank percentiles (the smallest value with at least that share at or below it).
    """
    ordered = sorted(values)
    count = len(ordered)
    result: dict[str, float | int | None] = {"count": count}
    for name, share in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)):
        if not ordered:
            result[name] = None
            continue
        rank = max(1, -(-int(share * 1000) * count // 1000))  # ceil(share * count)
        result[name] = round(ordered[min(rank, count) - 1] * 1000, 3)
    return result


@dataclass
class LoadReport:
    """What a load run did and measured; :meth:`as_json` is the ``--json`` document.

    Attributes:
        server: The URL the phones called through.
        settings: The run's settings.
        phones: Phones connected.
        pairs: Call groups.
        calls_placed: Calls placed.
        calls_completed: Calls that ended on every end that should know of them.
        seconds: From the first call until the last one ended.
        outcomes: Calls placed, by intended outcome.
        judged: ``{outcome: {"ok": n, "wrong": n, "timed_out": n}}``.
        labels: ``{outcome: {"caller LABEL / callee LABEL": n}}``, as the logs say.
        mismatches: The first few calls whose logs differ from the intent, for a person.
        skipped: Tickets dropped because every group was busy (``rate`` > 0 only).
        error_frames: ``error`` frames the server sent the phones.
        offer_to_ringing: Latency percentiles, caller's offer to its Ringing…, in ms.
        offer_to_answer: Latency percentiles, caller's offer to the answer, in ms.
        server_cpu_seconds: CPU time of the server process over the calling window.
        server_rss_mb: Its resident memory at the end (MB), and its peak.
        generator_cpu_seconds: CPU time of this process over the calling window.
        generator_peak_rss_mb: This process's peak memory.
        notes: What could not be measured, and why.
    """

    server: str
    settings: LoadSettings
    phones: int = 0
    pairs: int = 0
    calls_placed: int = 0
    calls_completed: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    judged: dict[str, Counter[str]] = field(default_factory=dict)
    labels: dict[str, Counter[str]] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    skipped: int = 0
    error_frames: int = 0
    offer_to_ringing: dict[str, float | int | None] = field(default_factory=dict)
    offer_to_answer: dict[str, float | int | None] = field(default_factory=dict)
    server_cpu_seconds: float | None = None
    server_rss_mb: float | None = None
    server_peak_rss_mb: float | None = None
    generator_cpu_seconds: float = 0.0
    generator_peak_rss_mb: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def calls_per_second(self) -> float:
        """Completed calls per second of the run."""
        return self.calls_completed / self.seconds if self.seconds > 0 else 0.0

    @property
    def wrong(self) -> int:
        """Calls whose logs differ from the intent, or that timed out."""
        return sum(c["wrong"] + c["timed_out"] for c in self.judged.values())

    @property
    def passed(self) -> bool:
        """Every call placed was judged right on both ends, and no error frame came."""
        return self.wrong == 0 and self.error_frames == 0 and self.calls_placed > 0

    def server_cpu_percent(self) -> float | None:
        """The server's CPU over the run, in percent of one core."""
        if self.server_cpu_seconds is None or self.seconds <= 0:
            return None
        return 100 * self.server_cpu_seconds / self.seconds

    def generator_cpu_percent(self) -> float | None:
        """This process's CPU over the run, in percent of one core."""
        return 100 * self.generator_cpu_seconds / self.seconds if self.seconds > 0 else None

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON-ready mapping."""
        s = self.settings
        return {
            "passed": self.passed,
            "server": self.server,
            "settings": {
                "phones": s.phones,
                "rate": s.rate,
                "duration": s.duration,
                "mix": {str(k): round(v, 4) for k, v in s.mix.items()},
                "profile": s.profile,
                "seed": s.seed,
                "ring_timeout": s.ring_timeout,
                "think": s.think,
                "hold": s.hold,
                "max_calls": s.max_calls,
            },
            "phones": self.phones,
            "pairs": self.pairs,
            "calls_placed": self.calls_placed,
            "calls_completed": self.calls_completed,
            "seconds": round(self.seconds, 3),
            "calls_per_second": round(self.calls_per_second, 1),
            "outcomes": dict(self.outcomes),
            "judged": {k: dict(v) for k, v in self.judged.items()},
            "labels": {k: dict(v) for k, v in self.labels.items()},
            "mismatches": self.mismatches,
            "skipped": self.skipped,
            "error_frames": self.error_frames,
            "latency_ms": {
                "offer_to_ringing": self.offer_to_ringing,
                "offer_to_answer": self.offer_to_answer,
            },
            "server_process": {
                "cpu_seconds": _rounded(self.server_cpu_seconds),
                "cpu_percent": _rounded(self.server_cpu_percent()),
                "rss_mb": _rounded(self.server_rss_mb),
                "peak_rss_mb": _rounded(self.server_peak_rss_mb),
            },
            "generator_process": {
                "cpu_seconds": _rounded(self.generator_cpu_seconds),
                "cpu_percent": _rounded(self.generator_cpu_percent()),
                "peak_rss_mb": _rounded(self.generator_peak_rss_mb),
            },
            "notes": self.notes,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --- One phone's driver -------------------------------------------------------------------------


_MILESTONES: Final = {
    ("caller", RINGING): "caller_ringing",
    ("caller", ANSWERED): "caller_answered",
    ("caller", ENDED): "caller_ended",
    ("callee", RINGING): "callee_ringing",
    ("callee", ANSWERED): "callee_answered",
    ("callee", ENDED): "callee_ended",
}


class _LoadCall:
    """One call of the run: its intent, each end's transitions, and who waits for what."""

    __slots__ = ("callee", "caller", "ends", "outcome", "reached", "waiters")

    def __init__(self, outcome: Outcome, caller: str, callee: str) -> None:
        self.outcome = outcome
        self.caller = caller
        self.callee = callee
        self.ends: dict[str, list[Transition]] = {caller: [], callee: []}
        self.reached: dict[str, float] = {}
        """Milestones reached (``caller_ringing``…), with the time of each."""
        self.waiters: dict[str, asyncio.Future[None]] = {}

    def record(self, transition: Transition) -> None:
        who = transition.who
        transitions = self.ends.get(who)
        if transitions is None:
            return  # a third party's view of this call: not one this run judges
        transitions.append(transition)
        role = "caller" if who == self.caller else "callee"
        milestone = _MILESTONES.get((role, transition.to_state))
        if milestone is not None and milestone not in self.reached:
            self.reached[milestone] = transition.at
            waiter = self.waiters.pop(milestone, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def reach(self, milestone: str) -> None:
        """Returns once ``milestone`` has been reached (at once if it has)."""
        if milestone in self.reached:
            return
        waiter = self.waiters.get(milestone)
        if waiter is None:
            waiter = self.waiters[milestone] = asyncio.get_running_loop().create_future()
        await waiter


class _CallBook:
    """Every call in progress, by id: where each phone's transitions are routed."""

    def __init__(self) -> None:
        self.calls: dict[str, _LoadCall] = {}
        self.strays = 0
        """Transitions of calls this run did not place (none are expected)."""

    def record(self, transition: Transition) -> None:
        call = self.calls.get(transition.call.call_id)
        if call is None:
            self.strays += 1
        else:
            call.record(transition)


class LoadPhone:
    """A :class:`~peers.phone.Phone` on one websocket, driven as thinly as possible.

    Frames go into the phone, whatever it wants sent is sent, its transitions go to the
    run, and its one timer (a caller's ring timer) is armed on the loop. The person's
    actions (:meth:`act`) are the load script's; the phone decides what they mean.

    Args:
        name: The phone's name.
        token: Its registration token.
        url: The server's websocket URL.
        profile: Reconnect grace, from the profile.
        ring_timeout: When set, this phone owns the ring timer of the calls it places.
        on_transition: Where each of its transitions goes.
        blocks: Its starting block list.
    """

    def __init__(
        self,
        name: str,
        token: str,
        *,
        url: str,
        profile: Profile,
        ring_timeout: float | None = None,
        on_transition: Callable[[Transition], None] = lambda t: None,
        blocks: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.token = token
        self.url = url
        self.profile = profile
        self.ring_timeout = ring_timeout
        self.on_transition = on_transition
        self._calls = itertools.count(1)
        self._next_id = ""
        self.phone = self._new_phone(tuple(blocks))
        self.logged = 0
        """Calls its current :class:`Phone` has seen (see :meth:`recycle`)."""
        self.errors = 0
        """``error`` frames it was sent, over every :class:`Phone` it had."""
        self.bad_frames = 0
        """Frames from the server that did not parse."""
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._registered = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    def _new_phone(self, blocks: tuple[str, ...]) -> Phone:
        return Phone(
            self.name,
            self.token,
            reconnect_grace=self.profile.timers.reconnect_grace,
            new_call_id=self._take_call_id,
            blocks=blocks,
            ring_timer="caller" if self.ring_timeout is not None else "server",
            ring_timeout=self.ring_timeout or self.profile.timers.ring_timeout,
        )

    def next_call_id(self) -> str:
        """The id the next call this phone places will have (unique per name)."""
        if not self._next_id:
            self._next_id = f"{self.name}-{next(self._calls)}"
        return self._next_id

    def _take_call_id(self) -> str:
        call_id = self.next_call_id()
        self._next_id = ""
        return call_id

    @staticmethod
    def now() -> float:
        """The phone's clock: the event loop's (monotonic, real time)."""
        return asyncio.get_running_loop().time()

    @property
    def connected(self) -> bool:
        """Whether it has a connection (registered or not)."""
        return self._ws is not None

    # --- The connection ------------------------------------------------------------------------

    async def connect(self, *, within: float = 10.0) -> None:
        """Opens a connection and returns once the phone is registered.

        Raises:
            OSError, InvalidHandshake, TimeoutError: It could not connect or register.
        """
        self._registered.clear()
        ws = await connect(
            self.url,
            proxy=None,  # loopback only: never ask the environment for a proxy
            compression=None,  # signaling frames are small; latency matters more than bytes
            ping_interval=None,  # the server pings; websockets answers its pings by itself
            open_timeout=within,
            max_queue=None,  # this reader never falls behind on purpose; don't add a limit
        )
        self._ws = ws
        self._reader = asyncio.get_running_loop().create_task(
            self._read(ws), name=f"load-{self.name}"
        )
        self.phone.link_up(self.now())
        await self._flush()
        async with asyncio.timeout(within):
            await self._registered.wait()

    async def disconnect(self) -> None:
        """Airplane mode: closes the connection cleanly and waits until it is gone."""
        self.phone.go_offline(self.now())
        self._drain()
        await self._close()

    async def reconnect(self, *, within: float = 10.0) -> None:
        """Out of airplane mode: connects and registers again."""
        self.phone.go_online(self.now())
        self._drain()
        await self.connect(within=within)

    async def recycle(self, *, within: float = 10.0) -> None:
        """Replaces the phone's logic with a fresh one, over a new connection.

        :class:`~peers.phone.Phone` keeps every call it has seen and scans them on each
        input, so a phone that has logged thousands of calls gets slower with each; a load
        run would end up measuring that. Between calls, once a phone has logged
        :data:`RECYCLE_AFTER` calls (already judged), it goes offline, and a new phone of
        the same name, token and block list registers in its place.
        """
        blocks = tuple(sorted(self.phone.blocks))
        if self.connected:
            await self.disconnect()
        self.phone = self._new_phone(blocks)
        self.logged = 0
        await self.connect(within=within)

    async def close(self) -> None:
        """Closes the connection (``phone stopped``) and forgets the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self._close()

    async def _close(self) -> None:
        ws, reader = self._ws, self._reader
        if ws is not None:
            await ws.close(1001, "phone stopped" if self.phone.online else "going offline")
        if reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        self._reader = None

    async def _read(self, ws: ClientConnection) -> None:
        phone = self.phone
        try:
            async for frame in ws:
                try:
                    message = parse_server_message(frame)
                except InvalidMessage:
                    self.bad_frames += 1
                    continue
                phone.receive(message, self.now())
                self._drain()
                await self._flush()
        except ConnectionClosed:
            pass  # a reset: the same as a close for the phone
        finally:
            self._ws = None
            self._registered.clear()
            phone.link_down(self.now())
            self._drain()

    # --- Driving the phone ---------------------------------------------------------------------

    async def act(self, action: Callable[[Phone, float], object]) -> None:
        """Does what the person does (``action(phone, now)``) and sends what follows."""
        action(self.phone, self.now())
        self._drain()
        await self._flush()

    def _drain(self) -> None:
        """Hands the phone's transitions to the run, and re-arms its timer; no waiting."""
        phone = self.phone
        for transition in phone.transitions_received():
            if transition.from_state.value == "new":
                self.logged += 1
            self.on_transition(transition)
        phone.screens_received()  # nobody watches screens here; don't let them pile up
        self.errors += len(phone.errors)
        phone.errors.clear()
        if phone.registered:
            self._registered.set()
        wakeup = phone.next_wakeup()
        if wakeup != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._timer_at = wakeup
            if wakeup is not None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_at(wakeup, self._on_timer, wakeup)

    def _on_timer(self, wakeup: float) -> None:
        self._timer = None
        self._timer_at = None
        # The loop may fire a hair early; the deadline has come all the same.
        self.phone.wake(max(self.now(), wakeup))
        self._drain()
        task = asyncio.get_running_loop().create_task(self._flush())
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    async def _flush(self) -> None:
        messages = self.phone.messages_to_send()
        ws = self._ws
        if ws is None or not messages:
            return
        with contextlib.suppress(ConnectionClosed):
            for message in messages:
                await ws.send(serialize_message(message))


_BACKGROUND: set[asyncio.Task[None]] = set()
"""Flushes started from timer callbacks (the loop keeps only weak references to tasks)."""


# --- Many phones --------------------------------------------------------------------------------


class PhoneFleet:
    """Many :class:`LoadPhone` connected to one server, in batches.

    Args:
        url: The server.
        profile: Reconnect grace and labels.
        prefix: The start of every name: names must be new to a server that keeps them.
    """

    BATCH: Final = 200
    """Phones connecting at once: the server's accept queue and handshakes stay short."""

    def __init__(self, url: str, profile: Profile, *, prefix: str | None = None) -> None:
        self.url = url
        self.profile = profile
        self.prefix = prefix or f"l{secrets.token_hex(3)}"
        self.phones: list[LoadPhone] = []
        self.book = _CallBook()

    def add(self, *, ring_timeout: float | None = None) -> LoadPhone:
        """A new phone (not connected yet), named ``PREFIX-N``."""
        phone = LoadPhone(
            f"{self.prefix}-{len(self.phones)}",
            secrets.token_hex(16),
            url=self.url,
            profile=self.profile,
            ring_timeout=ring_timeout,
            on_transition=self.book.record,
        )
        self.phones.append(phone)
        return phone

    async def connect_all(
        self,
        phones: Sequence[LoadPhone] | None = None,
        *,
        within: float = 30.0,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Connects and registers phones (all by default), :attr:`BATCH` at a time.

        Raises:
            OSError, InvalidHandshake, TimeoutError: A phone could not connect in time.
        """
        _allow_files(len(self.phones) + 256)
        todo = list(self.phones if phones is None else phones)
        done = 0
        for start in range(0, len(todo), self.BATCH):
            batch = todo[start : start + self.BATCH]
            await asyncio.gather(*(p.connect(within=within) for p in batch))
            done += len(batch)
            if progress is not None:
                progress(done)

    async def close_all(self) -> None:
        """Closes every connection, a batch at a time."""
        for start in range(0, len(self.phones), self.BATCH):
            batch = self.phones[start : start + self.BATCH]
            await asyncio.gather(*(p.close() for p in batch), return_exceptions=True)

    @property
    def error_frames(self) -> int:
        """``error`` frames sent to any phone so far."""
        return sum(p.errors for p in self.phones)


def _allow_files(needed: int) -> None:
    """Raises this process's open-file limit to ``needed`` (its children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def prebuilt_sdp() -> tuple[str, str]:
    """A real aiortc offer and its answer, made once and reused by every call of a run."""
    from peers.media import signaling_sdp  # aiortc loads only when a run starts

    sdp = signaling_sdp("audio")
    return sdp.offer, sdp.answer


# --- The run ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Group:
    caller: LoadPhone
    callee: LoadPhone
    blocker: LoadPhone | None
    rng: random.Random


class _Run:
    """One load run against one server; :func:`run_load` is its public face."""

    def __init__(
        self, settings: LoadSettings, url: str, sampler: ProcessSampler | None, sdp: tuple[str, str]
    ) -> None:
        self.s = settings
        self.profile = load_profile(settings.profile)
        self.fleet = PhoneFleet(url, self.profile)
        self.sampler = sampler
        self.offer_sdp, self.answer_sdp = sdp
        self.report = LoadReport(server=url, settings=settings)
        self.groups: list[_Group] = []
        self.outcomes = list(settings.mix)
        self.weights = [settings.mix[o] for o in self.outcomes]
        self.ringing: list[float] = []
        self.answering: list[float] = []
        self.started = 0.0
        self.deadline = 0.0
        self.in_flight = 0
        self.tickets: asyncio.Queue[bool] | None = None
        self.expectations = {o: intended(o, self.profile) for o in Outcome}

    # --- Setting up ---

    def build(self) -> None:
        s = self.s
        for index in range(s.pairs):
            caller = self.fleet.add(ring_timeout=s.ring_timeout)
            callee = self.fleet.add()
            blocker = self.fleet.add() if s.group_size == 3 else None
            rng = random.Random(f"{s.seed}:{index}")
            self.groups.append(_Group(caller, callee, blocker, rng))

    async def connect(self, progress: Callable[[str, float, float], None] | None) -> None:
        total = len(self.fleet.phones)

        def connected(done: int) -> None:
            if progress is not None:
                progress("connecting", done, total)

        await self.fleet.connect_all(progress=connected)
        blockers = [g for g in self.groups if g.blocker is not None]
        for group in blockers:
            assert group.blocker is not None
            caller = group.caller.name
            await group.blocker.act(_blocking(caller))
        # A block has no reply; the block list in a fresh ``registered`` proves it is kept.
        for start in range(0, len(blockers), PhoneFleet.BATCH):
            batch = [g.blocker for g in blockers[start : start + PhoneFleet.BATCH]]
            await asyncio.gather(*(b.recycle() for b in batch if b is not None))
        # A server that keeps no block lists (a bare relay) is not refused here: its calls
        # are judged like any other, and the blocked callees' entries show up as wrong.
        lost = sum(1 for g in blockers if g.blocker and g.caller.name not in g.blocker.phone.blocks)
        if lost:
            self.report.notes.append(
                f"the server kept {len(blockers) - lost} of {len(blockers)} blocks"
            )
        self.report.phones = total
        self.report.pairs = len(self.groups)

    # --- Calling ---

    def placing(self) -> bool:
        return time.monotonic() < self.deadline and self.report.calls_placed < self.s.max_calls

    async def run(self, progress: Callable[[str, float, float], None] | None) -> None:
        s = self.s
        self.started = time.monotonic()
        self.deadline = self.started + s.duration
        cpu_before = time.process_time()
        server_before = self.sampler.sample() if self.sampler is not None else None
        watcher = (
            asyncio.get_running_loop().create_task(self.sampler.watch())
            if self.sampler is not None
            else None
        )
        ticketing = None
        if s.rate > 0:
            self.tickets = asyncio.Queue()
            ticketing = asyncio.get_running_loop().create_task(self.issue_tickets())
        ticker = None
        if progress is not None:
            ticker = asyncio.get_running_loop().create_task(self.tick(progress))
        try:
            await asyncio.gather(*(self.group_loop(g) for g in self.groups))
        finally:
            for task in (ticketing, ticker, watcher):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        r = self.report
        r.seconds = time.monotonic() - self.started
        r.generator_cpu_seconds = time.process_time() - cpu_before
        if self.sampler is not None and server_before is not None:
            with contextlib.suppress(ProcessLookupError):
                after = self.sampler.sample()
                r.server_cpu_seconds = after.cpu_seconds - server_before.cpu_seconds
                r.server_rss_mb = after.rss_bytes / 1e6
                r.server_peak_rss_mb = self.sampler.peak_rss_bytes / 1e6

    async def tick(self, progress: Callable[[str, float, float], None]) -> None:
        while True:
            elapsed = min(time.monotonic() - self.started, self.s.duration)
            progress(f"{self.report.calls_placed} calls placed", elapsed, self.s.duration)
            await asyncio.sleep(0.25)

    async def issue_tickets(self) -> None:
        """Hands out one ticket per ``1 / rate`` seconds; drops it if every group is busy."""
        assert self.tickets is not None
        interval = 1.0 / self.s.rate
        due = self.started
        while True:
            due += interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.tickets.qsize() >= len(self.groups):
                self.report.skipped += 1
            else:
                self.tickets.put_nowait(True)

    async def group_loop(self, group: _Group) -> None:
        while self.placing():
            if self.tickets is not None:
                remaining = self.deadline - time.monotonic()
                try:
                    async with asyncio.timeout(max(remaining, 0.0)):
                        await self.tickets.get()
                except TimeoutError:
                    return
                if not self.placing():
                    return
            outcome = group.rng.choices(self.outcomes, self.weights)[0]
            await self.call(group, outcome)
            for phone in (group.caller, group.callee):
                if phone.logged >= RECYCLE_AFTER:
                    await phone.recycle()

    async def call(self, group: _Group, outcome: Outcome) -> None:
        s = self.s
        caller = group.caller
        callee = group.blocker if outcome is Outcome.BLOCKED else group.callee
        assert callee is not None
        if outcome is Outcome.OFFLINE:
            await callee.disconnect()
        call_id = caller.next_call_id()
        call = _LoadCall(outcome, caller.name, callee.name)
        book = self.fleet.book
        book.calls[call_id] = call
        r = self.report
        r.calls_placed += 1
        r.outcomes[outcome] += 1
        expect_callee = self.expectations[outcome][1]
        step = "placing the call"
        try:
            async with asyncio.timeout(s.step_timeout):
                offer = self.offer_sdp
                await caller.act(lambda p, now: p.place_call(callee.name, "audio", offer, now))
                step = await self.play(call, caller, callee, outcome)
                step = "the caller's end of the call"
                await call.reach("caller_ended")
                if outcome is Outcome.OFFLINE:
                    step = "the callee coming back online"
                    if callee.logged >= RECYCLE_AFTER:
                        await callee.recycle()
                    else:
                        await callee.reconnect()
                if expect_callee is not None:
                    step = "the callee's end of the call"
                    await call.reach("callee_ended")
        except TimeoutError:
            self.judge(call_id, call, timed_out=step)
            await self.clean_up(caller, callee)
            return
        self.judge(call_id, call, timed_out=None)

    async def play(
        self, call: _LoadCall, caller: LoadPhone, callee: LoadPhone, outcome: Outcome
    ) -> str:
        """The people's part of one call; returns the step it waits for next."""
        s = self.s
        if outcome is Outcome.CANCEL:
            await call.reach("caller_ringing")
            await _pause(s.think)
            await caller.act(_hang_up)
        elif outcome in (Outcome.ANSWER, Outcome.DECLINE):
            await call.reach("callee_ringing")
            await _pause(s.think)
            if outcome is Outcome.DECLINE:
                await callee.act(lambda p, now: p.decline(now))
                return "the decline"
            answer = self.answer_sdp
            await callee.act(lambda p, now: p.answer(answer, now))
            await call.reach("caller_answered")
            await _pause(s.hold)
            await caller.act(_hang_up)
        elif outcome in (Outcome.OFFLINE, Outcome.BLOCKED):
            # Nobody will ever ring: the caller gives up, unless told at once (a profile
            # that reveals blocks).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(s.ring_timeout):
                    await call.reach("caller_ended")
            if "caller_ended" not in call.reached:
                await caller.act(_hang_up)
        return "the caller's end of the call"

    async def clean_up(self, caller: LoadPhone, callee: LoadPhone) -> None:
        """After a timed-out call: whatever is still live is hung up, the callee is back."""
        with contextlib.suppress(Exception):
            for phone in (caller, callee):
                if phone.phone.active_call is not None and phone.connected:
                    await phone.act(_hang_up)
            if not callee.connected:
                if not callee.phone.online:
                    await callee.reconnect()
                else:
                    await callee.connect()

    def judge(self, call_id: str, call: _LoadCall, *, timed_out: str | None) -> None:
        r = self.report
        del self.fleet.book.calls[call_id]
        outcome = call.outcome
        tally = r.judged.setdefault(outcome, Counter())
        expect_caller, expect_callee = self.expectations[outcome]
        got_caller = _actual(call.ends[call.caller], self.profile)
        got_callee = _actual(call.ends[call.callee], self.profile)
        labels = r.labels.setdefault(outcome, Counter())
        labels[f"caller {_label(got_caller)} / callee {_label(got_callee)}"] += 1
        if timed_out is not None:
            tally["timed_out"] += 1
            self.note_mismatch(f"{call_id} ({outcome}): timed out waiting for {timed_out}")
            return
        r.calls_completed += 1
        if got_caller == expect_caller and got_callee == expect_callee:
            tally["ok"] += 1
        else:
            tally["wrong"] += 1
            self.note_mismatch(
                f"{call_id} ({outcome}): caller {_describe(got_caller)}, expected "
                f"{_describe(expect_caller)}; callee {_describe(got_callee)}, expected "
                f"{_describe(expect_callee)}"
            )
        caller_transitions = call.ends[call.caller]
        if caller_transitions:
            offered = caller_transitions[0].at
            if "caller_ringing" in call.reached:
                self.ringing.append(call.reached["caller_ringing"] - offered)
            if "caller_answered" in call.reached:
                self.answering.append(call.reached["caller_answered"] - offered)

    def note_mismatch(self, text: str) -> None:
        if len(self.report.mismatches) < 20:
            self.report.mismatches.append(text)

    def finish(self) -> LoadReport:
        r = self.report
        r.offer_to_ringing = percentiles(self.ringing)
        r.offer_to_answer = percentiles(self.answering)
        r.error_frames = self.fleet.error_frames
        bad = sum(p.bad_frames for p in self.fleet.phones)
        if bad:
            r.notes.append(f"{bad} frames from the server did not parse")
        if self.fleet.book.strays:
            r.notes.append(f"{self.fleet.book.strays} transitions of calls this run did not place")
        for group in self.groups:
            if group.blocker is not None and group.blocker.phone.call_log():
                r.mismatches.append(f"{group.blocker.name} logged a call from a phone it blocked")
                r.judged.setdefault(Outcome.BLOCKED, Counter())["wrong"] += 1
        r.generator_peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return r


def _blocking(name: str) -> Callable[[Phone, float], None]:
    def block(phone: Phone, now: float) -> None:
        phone.block(name, now)

    return block


def _hang_up(phone: Phone, now: float) -> None:
    phone.hang_up(now)


async def _pause(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


def _label(entry: Expected | None) -> str:
    return "(none)" if entry is None else entry.label


def _describe(entry: Expected | None) -> str:
    return "no entry" if entry is None else entry.describe()


async def run_load(
    settings: LoadSettings,
    *,
    server: str | None = None,
    server_pid: int | None = None,
    memory: bool = False,
    workdir: Path | None = None,
    progress: Callable[[str, float, float], None] | None = None,
) -> LoadReport:
    """Runs one bounded load run and judges every call.

    Args:
        settings: The run.
        server: A running server's URL; without it, ``voip-sandbox serve`` is started (on a
            free port, under ``settings.profile``, rate limits raised) and stopped after.
        server_pid: The running server's process, for its CPU and RSS.
        memory: For a server started here: keep nothing on disk (``serve --memory``).
        workdir: Where a started server's database and log go (a temporary folder if not).
        progress: Called now and then with ``(what, done, total)``.

    Raises:
        ValueError: A setting is out of bounds.
        ServerProcessError: The server could not be started.
        OSError, InvalidHandshake, TimeoutError: The phones could not connect.
    """
    settings.check()
    sdp = await prebuilt_sdp()
    async with contextlib.AsyncExitStack() as stack:
        process: ServerProcess | None = None
        if server is None:
            folder = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
            store = ["--memory"] if memory else ["--db", str(folder / "load.db")]
            command = serve_command(
                "--port", "0", "--profile", settings.profile, *store,
                "--rate", str(SERVER_RATE), "--burst", str(SERVER_RATE),
            )  # fmt: skip
            process = ServerProcess(command, log_path=folder / "server.log")
            server = await process.start()
            stack.push_async_callback(process.stop)
            server_pid = process.pid
        run = _Run(
            settings, server, ProcessSampler(server_pid) if server_pid is not None else None, sdp
        )
        if server_pid is None:
            run.report.notes.append(
                "server CPU and RSS not measured: give --server-pid with --server"
            )
        run.build()
        try:
            await run.connect(progress)
            await run.run(progress)
        finally:
            await run.fleet.close_all()
        return run.finish()


# --- The command --------------------------------------------------------------------------------


def render_summary(report: LoadReport, echo: Callable[[str], None]) -> None:
    """Prints the summary table of a run with ``echo``."""
    from rich.console import Console
    from rich.table import Table

    s = report.settings
    table = Table(title=f"load: {report.server}", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", overflow="fold")

    def ms(stats: Mapping[str, float | int | None]) -> str:
        if not stats.get("count"):
            return "n/a"
        return (
            f"p50 {stats['p50']:.1f} / p95 {stats['p95']:.1f} / p99 {stats['p99']:.1f} ms "
            f"({stats['count']} calls)"
        )

    mode = f"{s.rate:g} calls/s" if s.rate > 0 else "back to back"
    table.add_row("phones / pairs", f"{report.phones} / {report.pairs}")
    table.add_row("pacing", f"{mode}, {s.duration:g} s, profile {s.profile}")
    table.add_row("calls placed / completed", f"{report.calls_placed} / {report.calls_completed}")
    table.add_row("calls/s", f"{report.calls_per_second:,.1f} over {report.seconds:.2f} s")
    for outcome, tally in sorted(report.judged.items()):
        placed = report.outcomes.get(outcome, 0)
        verdict = ", ".join(f"{k} {v}" for k, v in sorted(tally.items()))
        labels = "; ".join(
            f"{k}: {v}" for k, v in report.labels.get(outcome, Counter()).most_common(3)
        )
        table.add_row(f"{outcome} ({placed})", f"{verdict} — {labels}")
    table.add_row("offer → ringing", ms(report.offer_to_ringing))
    table.add_row("offer → answer", ms(report.offer_to_answer))
    if report.skipped:
        table.add_row("tickets skipped (all busy)", str(report.skipped))
    table.add_row("error frames", str(report.error_frames))
    server_cpu = report.server_cpu_percent()
    if server_cpu is not None:
        table.add_row(
            "server CPU / RSS",
            f"{server_cpu:.0f}% of a core / {report.server_rss_mb:.0f} MB "
            f"(peak {report.server_peak_rss_mb:.0f} MB)",
        )
    generator_cpu = report.generator_cpu_percent() or 0.0
    table.add_row(
        "load generator CPU / peak RSS",
        f"{generator_cpu:.0f}% of a core / {report.generator_peak_rss_mb:.0f} MB",
    )
    for note in report.notes:
        table.add_row("note", note)
    table.add_row("result", "PASSED" if report.passed else f"FAILED ({report.wrong} calls wrong)")
    console = Console(file=sys.stdout, width=120, force_terminal=False, no_color=True)
    with console.capture() as capture:
        console.print(table)
    echo(capture.get().rstrip("\n"))
    for mismatch in report.mismatches:
        echo(f"  !! {mismatch}")


def _bad_input(message: str) -> Never:
    click.echo(click.style(f"error: {message}", fg="red"), err=True)
    sys.exit(2)


@click.command("load")
@click.option("--server", metavar="URL", help="A running server (default: start one).")
@click.option("--server-pid", type=int, help="The running server's process id, for CPU and RSS.")
@click.option("--phones", default=20, show_default=True, help=f"Phones (at most {MAX_PHONES}).")
@click.option("--rate", default=0.0, show_default=True, help="Calls per second; 0: back to back.")
@click.option("--duration", default=10.0, show_default=True, help="Seconds of calling.")
@click.option(
    "--mix",
    default=DEFAULT_MIX,
    show_default=True,
    help="Shares by outcome: cancel, answer, decline, no_answer, offline, blocked.",
)
@click.option(
    "--profile",
    type=click.Choice(profile_names()),
    default=DEFAULT_PROFILE,
    show_default=True,
    help="Labels to judge by (and the started server's profile).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the outcome draws.")
@click.option(
    "--ring-timeout",
    default=1.0,
    show_default=True,
    help="Seconds a caller waits for an answer before giving up.",
)
@click.option("--think", default=0.0, show_default=True, help="Seconds before a person reacts.")
@click.option("--hold", default=0.0, show_default=True, help="Seconds an answered call lasts.")
@click.option("--max-calls", default=1_000_000, show_default=True, help="Calls placed at most.")
@click.option("--memory", is_flag=True, help="The started server keeps nothing on disk.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report as JSON here.",
)
def load_command(
    server: str | None,
    server_pid: int | None,
    phones: int,
    rate: float,
    duration: float,
    mix: str,
    profile: str,
    seed: int,
    ring_timeout: float,
    think: float,
    hold: float,
    max_calls: int,
    memory: bool,
    json_path: Path | None,
) -> None:
    """Drive many phones through a signaling server and judge every call on both ends.

    Bounded and self-stopping. Exit 0 when every call was labeled as its outcome intends
    on both ends, 1 when one was not, 2 on bad input.
    """
    try:
        settings = LoadSettings(
            phones=phones,
            rate=rate,
            duration=duration,
            mix=parse_mix(mix),
            profile=profile,
            seed=seed,
            ring_timeout=ring_timeout,
            think=think,
            hold=hold,
            max_calls=max_calls,
            step_timeout=max(10.0, 2 * (ring_timeout + think + hold)),
        )
        settings.check()
    except ValueError as exc:
        _bad_input(str(exc))
    if server is not None and not server.startswith(("ws://127.0.0.1:", "ws://localhost:")):
        _bad_input("--server must be a loopback URL, ws://127.0.0.1:PORT")
    if server is None and server_pid is not None:
        _bad_input("--server-pid goes with --server")
    if json_path is not None:
        try:
            json_path.open("w", encoding="utf-8").close()
        except OSError as exc:
            _bad_input(f"cannot write {json_path}: {exc.strerror or exc}")
    report = asyncio.run(_run_with_progress(settings, server, server_pid, memory))
    render_summary(report, click.echo)
    if json_path is not None:
        json_path.write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")
    sys.exit(0 if report.passed else 1)


async def _run_with_progress(
    settings: LoadSettings, server: str | None, server_pid: int | None, memory: bool
) -> LoadReport:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if not sys.stderr.isatty():
        return await run_load(settings, server=server, server_pid=server_pid, memory=memory)
    bar = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    )
    task = bar.add_task("starting", total=1.0)

    def progress(what: str, done: float, total: float) -> None:
        bar.update(task, description=what, completed=done, total=total)

    with bar:
        return await run_load(
            settings, server=server, server_pid=server_pid, memory=memory, progress=progress
        )
