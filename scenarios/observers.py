"""Observers: the event stream of a run, and each end's call log built from it.

Every component logs through structlog; a run's logger ends in an :class:`EventStream`
processor that stamps each event with the scenario clock, keeps it, and wakes whoever
waits for it (the runner's ``when:`` steps). Call logs are then built from the recorded
``transition`` events alone, each end from its own transitions (DESIGN.md rules 2 and 3):
a phone's log never reads the server's private truth.

An *end* is a phone, or one device of a phone with several (``bob#2``): each device keeps
its own call log, and the invariants pair the caller's end with the callee's device that
answered. A call that lost glare is not a call-log entry on either end: the surviving call
replaced it, and the person sees only that one (as Element shows a call ``replaced``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Final

import structlog

from scenarios.profiles import Profile
from signaling.calls import CallState, CallSummary, Cause, Transition, party_name, summarize
from signaling.records import CallRecord


__all__ = [
    "OBSERVERS",
    "EventStream",
    "LogEntry",
    "MediaReport",
    "Observation",
    "Observer",
    "call_logs",
    "event_logger",
    "label_entries",
    "news_that_never_arrived",
    "observe",
]

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


class _JsonLines:
    """The end of a run's structlog chain: one JSON object per line, or nowhere."""

    def __init__(self, sink: IO[str] | None) -> None:
        self.sink = sink

    def msg(self, line: str) -> None:
        if self.sink is not None:
            self.sink.write(line + "\n")

    info = debug = warning = error = msg


def _no_line(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
    return ""


def event_logger(stream: EventStream, sink: IO[str] | None = None) -> Any:
    """A structlog logger whose every INFO-and-up event goes into ``stream``.

    Each event is also written to ``sink`` as a JSON line (the ``--log`` file), if given.
    The one logger every component of a run (server, phones, links) is handed.
    """
    # With no sink the line goes nowhere: rendering it anyway cost a run several percent.
    render = (
        structlog.processors.JSONRenderer(default=str, sort_keys=False)
        if sink is not None
        else _no_line
    )
    return structlog.wrap_logger(
        _JsonLines(sink),
        processors=[structlog.processors.add_log_level, stream, render],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
    )


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
    """Labels one end's call summaries with ``profile``; a call that lost glare is left out."""
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
        if s.end_cause is not Cause.GLARE
    ]


# --- The pipeline ----------------------------------------------------------------------------
# After a run, its events go through OBSERVERS in order, structlog-processor style: each
# stage is a small callable that reads the Observation and adds what it derives from it.


@dataclass
class MediaReport:
    """What one end's media did in one call (media calls only), from its ``media`` events.

    Attributes:
        connected_at: When its ICE and DTLS came up; ``None`` if they never did.
        failed_at: When aiortc said the media failed or closed by itself, if it did.
        frames_in: Frames received from the other end, by track kind.
        packets_in: RTP packets received from the other end.
    """

    connected_at: float | None = None
    failed_at: float | None = None
    frames_in: dict[str, int] = field(default_factory=dict)
    packets_in: int = 0


@dataclass
class Observation:
    """What the observers derive from one run's event stream.

    Attributes:
        profile: The profile the run was under (its labels and policies).
        phones: The scenario's phones.
        events: The event stream.
        summaries: Each phone's calls, from its own transitions only.
        logs: Each phone's labeled call log.
        records: The server's call detail records (its private truth, for checks only).
        violations: Invariants that did not hold, for a person.
        media: Each phone's media per call id (media calls only).
    """

    profile: Profile
    phones: Sequence[str]
    events: Sequence[Event]
    summaries: dict[str, list[CallSummary]] = field(default_factory=dict)
    logs: dict[str, list[LogEntry]] = field(default_factory=dict)
    records: list[CallRecord] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    media: dict[str, dict[str, MediaReport]] = field(default_factory=dict)
    violated: list[str] = field(default_factory=list)
    """The names of the invariants that did not hold (each once, in pipeline order)."""
    crossings: list[str] = field(default_factory=list)
    """Calls whose ends disagree on the answer because the news could not reach one of
    them (lost with its link, or crossing its own ending): the Two Generals problem, which
    every real call protocol has. Not violations; reported so nobody is surprised."""

    def entry_of(self, phone: str, call_id: str) -> CallSummary | None:
        """``phone``'s summary of ``call_id``, if it knows that call (``phone`` is an end)."""
        return next((s for s in self.summaries.get(phone, []) if s.info.call_id == call_id), None)

    def entries_of(self, name: str, call_id: str) -> list[CallSummary]:
        """The summaries of ``call_id`` of every end of the phone ``name`` that knows it."""
        found = (self.entry_of(end, call_id) for end in self.phones if party_name(end) == name)
        return [s for s in found if s is not None]


Observer = Callable[[Observation], None]
"""One stage of the pipeline."""


def build_call_logs(obs: Observation) -> None:
    """Each phone's summaries and labeled log, from its own transitions alone."""
    transitions = [Transition.from_event(e) for e in obs.events if e.get("event") == "transition"]
    obs.summaries = call_logs(transitions, obs.phones)
    obs.logs = {name: label_entries(obs.summaries[name], obs.profile) for name in obs.phones}


def build_media_reports(obs: Observation) -> None:
    """Each phone's media per call: when it connected and what it received each way."""
    for e in obs.events:
        if e.get("event") != "media":
            continue
        report = obs.media.setdefault(str(e["who"]), {}).setdefault(
            str(e["call_id"]), MediaReport()
        )
        state = e.get("state")
        if state == "connected":
            report.connected_at = float(e["t"])
        elif state == "failed":
            report.failed_at = float(e["t"])
        elif state == "closed":
            report.frames_in = dict(e.get("frames_in") or {})
            report.packets_in = int(e.get("packets_in") or 0)


def build_records(obs: Observation) -> None:
    """The server's CDR, from its ``cdr`` events."""
    obs.records = [
        CallRecord(
            call_id=e["call_id"],
            caller=e["caller"],
            callee=e["callee"],
            kind=e["kind"],
            placed_at=e["placed_at"],
            state=CallState(e["state"]),
            blocked=e["blocked"],
            reached=e["reached"],
            answered_at=e["answered_at"],
            ended_at=e["ended_at"],
            cause=None if e["cause"] is None else Cause(e["cause"]),
        )
        for e in obs.events
        if e.get("event") == "cdr"
    ]


def every_call_ends_on_every_end(obs: Observation) -> None:
    """Invariant: no phone is left with a call in progress (liveness)."""
    for phone, summaries in obs.summaries.items():
        for s in summaries:
            if s.end_cause is None:
                obs.violations.append(f"{phone}: call {s.info.call_id} never ended on this phone")


def both_ends_agree_on_the_answer(obs: Observation) -> None:
    """Invariant: where both ends know a call, they agree whether it was answered, and
    their durations agree within a second.

    With several callee devices, the caller is paired with the device that answered (at
    most one may), or, when none did, with every device that knows the call.

    One disagreement is not a fault but the Two Generals problem, which no protocol can
    close: the news that would have changed one end's mind was lost with its link, or
    crossed that end's own ending on the wire (see :func:`news_that_never_arrived`). Such a
    call is kept in :attr:`Observation.crossings` instead, with the frame that missed.
    """
    for record in obs.records:
        callers = obs.entries_of(record.caller, record.call_id)
        callees = obs.entries_of(record.callee, record.call_id)
        answering = [s for s in callees if s.answered]
        if len(answering) > 1:
            obs.violations.append(
                f"call {record.call_id}: answered on several devices "
                f"({', '.join(s.who for s in answering)})"
            )
            continue
        for caller in callers:
            for callee in answering or callees:
                _compare_the_answer(obs, record, caller, callee)


def _compare_the_answer(
    obs: Observation, record: CallRecord, caller: CallSummary, callee: CallSummary
) -> None:
    call_id = record.call_id
    if caller.answered != callee.answered:
        missed = news_that_never_arrived(obs.events, record, caller, callee)
        if missed is not None:
            obs.crossings.append(f"call {call_id}: {missed}")
            return
        obs.violations.append(
            f"call {call_id}: {caller.who} says "
            f"{'answered' if caller.answered else 'not answered'}, {callee.who} says "
            f"{'answered' if callee.answered else 'not answered'}"
        )
    elif (
        caller.duration is not None
        and callee.duration is not None
        and abs(caller.duration - callee.duration) > 1.0
    ):
        longer, shorter = (
            (caller, callee) if caller.duration > callee.duration else (callee, caller)
        )
        missed = answer_that_waited(obs.events, caller, callee) or end_that_never_arrived(
            obs.events, longer, shorter
        )
        if missed is not None:
            obs.crossings.append(f"call {call_id}: {missed}")
            return
        obs.violations.append(
            f"call {call_id}: durations differ by more than a second "
            f"({caller.who} {caller.duration:.1f}s, {callee.who} {callee.duration:.1f}s)"
        )


_DONE_ELSEWHERE: dict[Cause, Cause] = {
    Cause.ANSWERED: Cause.ANSWERED_ELSEWHERE,
    Cause.DECLINED: Cause.DECLINED_ELSEWHERE,
}
"""What one device did to a call, and the cause every other device must end it with."""


def other_devices_hear_it_was_done_elsewhere(obs: Observation) -> None:
    """Invariant: when one device of the callee answered or declined, every other device
    that knows the call says so (``answered_elsewhere`` / ``declined_elsewhere``), and
    none logs it as missed: the most common real-world call-log bug (labels.md §4)."""
    for record in obs.records:
        callees = obs.entries_of(record.callee, record.call_id)
        if len(callees) < 2:
            continue
        done = [(s, Cause.ANSWERED) for s in callees if s.answered]
        done += [(s, Cause.DECLINED) for s in callees if s.end_cause is Cause.DECLINED]
        if len(done) != 1:
            continue  # nobody did (the call ended the same way for all), or another check fails
        by, what = done[0]
        expected = _DONE_ELSEWHERE[what]
        for other in callees:
            if other is not by and other.end_cause is not expected:
                obs.violations.append(
                    f"call {record.call_id}: {by.who} {what} it, but {other.who} says "
                    f"{other.end_cause} instead of {expected}"
                )


def news_that_never_arrived(
    events: Sequence[Event], record: CallRecord, caller: CallSummary, callee: CallSummary
) -> str | None:
    """Why two ends that disagree on the answer could not have known better, if they could not.

    Three ways, each seen in the event stream, and nothing else:

    - the server sent the caller the ``answer`` when the caller's call was already over on
      its side (at the same instant: they crossed), or into its dead radio, or as its
      connection closed (airplane mode at that instant: exploration seed 1019222), and the
      caller did not come back before its call ended;
    - the caller was away (its connection closed, not registered again) when the callee
      answered, so the server held the answer for it, and the call ended before the caller
      came back for it: the callee hung up on Reconnecting… (exploration seed 1004668);
    - the server sent the callee the ``call_ended`` that voided its answer (a cancel that
      crossed it) when the callee had already ended the call itself (for another cause
      than the server's);
    - the server crashed in the instant it sent the caller the ``answer``;
    - the callee's ``answer`` never reached the server: it went into a dead radio, or the
      server crashed before reading it.

    Returns:
        A sentence naming the frame that missed, or ``None`` when the ends should agree.
    """
    call_id = caller.info.call_id
    if caller.ended_at is None or callee.ended_at is None or callee.answered_at is None:
        # Still in progress (every_call_ends_on_every_end says so), or the caller had the
        # answer that the callee says never counted: no crossing explains that.
        return None
    frames = [e for e in events if e.get("event") == "frame" and e.get("call_id") == call_id]
    # Here the callee says answered and the caller does not.
    for f in frames:
        if f["receiver"] != caller.who or f["type"] != "answer":
            continue
        if f["t"] >= caller.ended_at:
            return f"the answer crossed {caller.who}'s own ending on the wire"
        if _radio_down(events, caller.who, f["t"], caller.ended_at):
            return f"the answer went into {caller.who}'s dead radio"
        if _crashed_between(events, f["t"], f["t"]):
            # A crash queues what was decided, then aborts every connection: the answer
            # of that instant is lost with it (seed 16029381).
            return f"the answer to {caller.who} was lost with the server's crash"
        if _away(events, caller.who, f["t"], caller.ended_at):
            return f"the answer crossed {caller.who}'s connection closing, and it never came back"
    # The caller's call may have ended before the answer was given (its cancel lost in a
    # dead radio, seed 3007640): then it was away from the answer on, for good.
    if not any(f["receiver"] == caller.who and f["type"] == "answer" for f in frames) and _away(
        events, caller.who, callee.answered_at, max(caller.ended_at, callee.answered_at)
    ):
        return f"the answer was held for {caller.who}, who was away until its call ended"
    # Ended by the callee's own hand (not by what the server told it), at or before the
    # instant the server's call_ended left for it.
    if callee.end_cause is not record.cause:
        for f in frames:
            if f["receiver"] != callee.who or f["type"] != "call_ended":
                continue
            if f["t"] >= callee.ended_at:
                return f"the call_ended that voided {callee.who}'s answer crossed its own ending"
            answer_arrived = any(
                a["sender"] == callee.who and a["type"] == "answer" for a in frames
            )
            if answer_arrived and _radio_down(events, callee.who, f["t"], callee.ended_at):
                # Seed 14080535: the cancel crossed the answer, and its news went into the
                # callee's radio, dead from that instant.
                return f"the call_ended that voided {callee.who}'s answer went into its dead radio"
    if any(f["sender"] == callee.who and f["type"] == "answer" for f in frames):
        return None
    if _radio_down(events, callee.who, callee.answered_at, callee.ended_at) or (
        _radio_went_before_it_sent(events, callee)
    ):
        return f"{callee.who} answered into its dead radio: the answer never reached the server"
    if _crashed_between(events, callee.answered_at, callee.ended_at):
        return f"the server crashed before it read {callee.who}'s answer"
    return None


def _crashed_between(events: Sequence[Event], since: float, until: float) -> bool:
    """Whether the server crashed from ``since`` to ``until``."""
    return any(
        e.get("event") == "server" and e.get("state") == "crashed" and since <= e["t"] <= until
        for e in events
    )


def answer_that_waited(
    events: Sequence[Event], caller: CallSummary, callee: CallSummary
) -> str | None:
    """Why the callee counted an answered call longer than the caller, if the answer
    waited for a caller that was off the air.

    Each end counts from when it learned of the answer. The callee's radio was dead when
    it answered, so the answer left only on its return; or, when the server took the
    answer, the caller's radio was down or its connection closed: the server sent the
    ``answer`` into it, or held it, and the caller learned of it only when it registered again
    (exploration seed 2006045: its signal came back 1.8 s later; seed 4067114: a clean
    restart had closed it, 7.5 s; seed 11017078: the server held it 1.8 s). That wait, and
    within the usual second no more, is explained.

    Returns:
        A sentence saying how long the answer waited, or ``None``.
    """
    if (
        caller.duration is None
        or callee.duration is None
        or caller.answered_at is None
        or callee.answered_at is None
        or callee.duration <= caller.duration
    ):
        return None
    taken = next(
        (
            e["t"]
            for e in events
            if e.get("event") == "transition"
            and e.get("who") == "server"
            and e.get("call_id") == caller.info.call_id
            and e.get("to") == "answered"
        ),
        None,
    )
    if taken is None:
        return None
    # The caller off the air when the server took the answer; or the callee's own radio
    # dead when it answered, so the answer left only when it came back and said it again
    # (seed 16019403 after that repeat: 1.4 s).
    caller_away = _radio_down(events, caller.who, taken, taken) or _away(
        events, caller.who, taken, taken
    )
    if not caller_away and not _radio_down(
        events, callee.who, callee.answered_at, callee.answered_at
    ):
        return None
    waited = caller.answered_at - callee.answered_at
    if callee.duration - caller.duration > waited + 1.0:
        return None
    where = f"for {caller.who}, off the air" if caller_away else f"in {callee.who}'s dead radio"
    return (
        f"the answer waited {waited:.1f}s {where} "
        f"({callee.who} {callee.duration:.1f}s, {caller.who} {caller.duration:.1f}s)"
    )


def end_that_never_arrived(
    events: Sequence[Event], longer: CallSummary, shorter: CallSummary
) -> str | None:
    """Why one end of an answered call counted it longer than the other, if it could not
    have known better.

    ``shorter`` stopped counting (it hung up, or heard its link, the other end's or the
    server die) at an instant one of the two radios the news had to cross was down:

    - ``longer``'s: no news could reach it, neither a ``call_ended`` nor the server's
      crash (exploration seeds 1001805 and 1006829: the caller hung up, or the server
      crashed, just after the callee lost signal);
    - ``shorter``'s own: its hang-up never left the phone, and the server learned that
      the call was over for it only when its heartbeat found the link dead, then told
      ``longer`` (seed 1010807: the caller lost signal and hung up).

    Either way the news waited for a heartbeat (or a connection found closed), and
    ``longer`` kept counting until then. Only that much is explained, within the usual
    second.

    Returns:
        A sentence saying what missed, or ``None`` when the durations should agree.
    """
    stopped, counted_until = shorter.counted_until, longer.counted_until
    if longer.duration is None or shorter.duration is None or stopped is None:
        return None
    assert counted_until is not None  # a duration implies an end
    # The news travels out of shorter's radio to the server, then into longer's: each dead
    # radio on the way holds it until its link is found dead (seed 15054411: both, in turn).
    arrives, dead = stopped, []
    if _radio_down(events, shorter.who, stopped, stopped):
        arrives = _link_found_dead(events, shorter.who, stopped)
        dead.append(shorter.who)
    if _radio_down(events, longer.who, arrives, counted_until):
        arrives = _link_found_dead(events, longer.who, arrives)
        dead.append(longer.who)
    if dead and counted_until <= arrives + 1.0:
        radios = " and then ".join(f"{who}'s" for who in dead)
        return (
            f"{shorter.who} stopped counting while {radios} radio was dead; "
            f"{longer.who} counted on until that link was found dead "
            f"({longer.duration:.1f}s against {shorter.duration:.1f}s)"
        )
    return None


def _link_found_dead(events: Sequence[Event], phone: str, since: float) -> float:
    """When ``phone`` first learned, after ``since``, that its connection was dead: its
    heartbeat timed out or the connection closed (``inf`` if it never did)."""
    for e in events:
        if e["t"] < since or e.get("who") != phone:
            continue
        kind = e.get("event")
        if (kind == "heartbeat" and e.get("state") == "timed_out") or kind == "connection":
            return float(e["t"])
    return float("inf")


def _radio_went_before_it_sent(events: Sequence[Event], callee: CallSummary) -> bool:
    """Whether ``callee``'s radio went down in the very instant it answered, after the
    answer but before its frame could leave, and the call ended for it before it
    registered again.

    Within one instant only the log's order tells what came first: a phone switched off
    and on again in the instant it answered (seed 3017373) is back on the air by the
    instant's end, but its answer died with the first connection.
    """
    call_id = callee.info.call_id
    answered = down = False
    for e in events:
        kind = e.get("event")
        if not answered:
            answered = (
                kind == "transition"
                and e.get("who") == callee.who
                and e.get("call_id") == call_id
                and e.get("to") == "answered"
            )
            continue
        if not down:
            if e["t"] > callee.answered_at:
                return False  # the instant went by with the radio up: the frame left
            down = kind == "link" and e.get("phone") == callee.who and e.get("state") in _RADIO_DOWN
            continue
        if kind == "frame" and e.get("type") == "registered" and e.get("receiver") == callee.who:
            return False  # back on the air with the call still going
        if (
            kind == "transition"
            and e.get("who") == callee.who
            and e.get("call_id") == call_id
            and e.get("to") == "ended"
        ):
            return True
    return False


def _away(events: Sequence[Event], phone: str, since: float, until: float) -> bool:
    """Whether ``phone``'s connection had closed by ``since`` (at that instant counts: what
    the server sent it then crossed the close) and it did not register again before
    ``until``."""
    return _off_the_air(events, phone, since, until, connection=True)


def _radio_down(events: Sequence[Event], phone: str, since: float, until: float) -> bool:
    """Whether ``phone``'s radio was down at ``since`` (no signal, or switched off) and it
    did not register again before ``until``: nothing the server sent it meanwhile reached
    it."""
    return _off_the_air(events, phone, since, until, connection=False)


def _off_the_air(
    events: Sequence[Event], phone: str, since: float, until: float, *, connection: bool
) -> bool:
    """Whether ``phone`` could hear nothing from the server from ``since`` to ``until``.

    Off the air at ``since`` means its radio was down then or, with ``connection``, its
    connection had closed; only what happened at or before ``since`` counts (a phone
    still on the air at ``since`` heard what the server sent it then). Back on the air
    means registered again before ``until``.
    """
    off = False
    for e in events:
        t = e["t"]
        if t > until:
            break
        kind = e.get("event")
        if kind == "frame" and e.get("type") == "registered" and e.get("receiver") == phone:
            if t <= since:
                off = False
            elif off and t < until:
                # Back in time to hear the news again. At ``until`` itself it is not: the
                # call was over for it that instant (seeds 2094324 and 3001258).
                return False
        elif t > since:
            continue
        elif connection:
            if kind == "connection" and e.get("who") == phone and e.get("state") in _CLOSED:
                off = True
        elif kind == "link" and e.get("phone") == phone:
            off = e.get("state") in _RADIO_DOWN
    return off


_CLOSED: Final = frozenset({"closed", "lost"})
"""A phone's ``connection`` states, as the server logs them, that end it."""
_RADIO_DOWN: Final = frozenset({"no_signal", "cut"})
"""A phone's ``link`` states in which nothing reaches it."""


def blocks_stay_private(obs: Observation) -> None:
    """Invariant: a blocked callee never learns of the call, and the blocked caller's view
    reveals nothing more than "never reached", unless the profile reveals blocks."""
    for record in obs.records:
        if not record.blocked:
            continue
        if obs.entries_of(record.callee, record.call_id):
            obs.violations.append(
                f"call {record.call_id}: {record.callee} blocked {record.caller} "
                "but has an entry for the call"
            )
        callers = obs.entries_of(record.caller, record.call_id)
        if not callers or obs.profile.policies.block_revealed:
            continue
        caller = callers[0]
        if caller.reached or caller.end_cause is Cause.BLOCKED:
            obs.violations.append(
                f"call {record.call_id}: {record.caller}'s phone can tell it was blocked "
                f"(reached={caller.reached}, ended {caller.end_cause}); under "
                f"{obs.profile.name} it must look like a switched-off phone"
            )


def notices_stop_once_acknowledged(obs: Observation) -> None:
    """Invariant: a missed-call notice is logged once, and never sent again once acked."""
    acked: set[tuple[str, str]] = set()
    for e in obs.events:
        if e.get("event") != "frame":
            continue
        if e.get("type") == "missed_call_ack":
            acked.add((e["sender"], e["call_id"]))
        elif e.get("type") == "missed_call" and (e["receiver"], e["call_id"]) in acked:
            obs.violations.append(
                f"{e['receiver']} was sent the missed-call notice for {e['call_id']} "
                "again after acknowledging it"
            )
    for phone, summaries in obs.summaries.items():
        ids = [s.info.call_id for s in summaries]
        for call_id in sorted({i for i in ids if ids.count(i) > 1}):
            obs.violations.append(f"{phone}: call {call_id} is logged more than once")


_BUSY_SCREENS = frozenset({"calling", "ringing", "incoming", "in_call", "reconnecting"})


def screens_come_to_rest(obs: Observation) -> None:
    """Invariant (liveness): once every call is over, no screen still shows one."""
    last: dict[str, str] = {}
    for e in obs.events:
        if e.get("event") == "screen":
            last[e["who"]] = e["screen"]
    for phone in obs.phones:
        live = any(s.end_cause is None for s in obs.summaries.get(phone, []))
        if not live and last.get(phone) in _BUSY_SCREENS:
            obs.violations.append(f"{phone}: screen stuck at {last[phone]} with no call")


OBSERVERS: tuple[Observer, ...] = (
    build_call_logs,
    build_media_reports,
    build_records,
    every_call_ends_on_every_end,
    both_ends_agree_on_the_answer,
    other_devices_hear_it_was_done_elsewhere,
    blocks_stay_private,
    notices_stop_once_acknowledged,
    screens_come_to_rest,
)
"""The pipeline every run goes through, in order."""


def observe(
    events: Sequence[Event],
    phones: Sequence[str],
    profile: Profile,
    observers: Sequence[Observer] = OBSERVERS,
) -> Observation:
    """Runs the observer pipeline over one run's events."""
    obs = Observation(profile=profile, phones=phones, events=events)
    for observer in observers:
        before = len(obs.violations)
        observer(obs)
        if len(obs.violations) > before:
            obs.violated.append(observer.__name__)
    return obs
