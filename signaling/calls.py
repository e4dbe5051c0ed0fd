"""The call state machine: one transition table, every change recorded.

Rule 1: every call-state transition lives in this file, in :data:`TRANSITIONS`.
Rule 2: this file does not know whether it runs in the server or in a phone. The same
:class:`Call` is the switchboard's view of a call (``who="server"``) and each phone's view
of it (``who="alice"``); they move through the same table, fed by different inputs.
Rule 3: no clock. Time comes in as ``now`` and is only recorded.

Theory of operation
-------------------
A call moves forward on *causes*. A cause is both what happened and what is recorded as
the reason for the change: ``reached`` (a callee device acknowledged the offer and is
alerting), ``answered``, ``link_lost`` / ``resumed`` (a party's link died and came back
within the reconnect grace), and the end causes (``canceled``, ``declined``, ``no_answer``,
``unreachable``, ``busy``, ``hung_up``, ``dropped``, and ``failed``: an answered
media call whose media never connected). Which causes are legal depends on the
state, and the table says so: ``no_answer`` can end a ringing call but not one that is still
dialing (that one ends ``unreachable``), and ``hung_up`` only ends an answered call (before
the answer, the caller's hang-up is ``canceled``).

Every change goes through :meth:`Call.fire`, which appends a :class:`Transition`
``(who, call_id, from, to, cause, at)``. Observers build call logs and the ladder from
those records, never from anyone's private state. An illegal cause raises
:class:`InvalidTransition` and leaves the call unchanged.

A phone can learn of a call only when it is already over (a missed-call notice for a call
whose offer never reached it). That call goes straight from ``NEW`` to ``ENDED``.

Ends and devices: a name may have several devices (``bob#1``, ``bob#2``). Each device keeps
its own view of a call, so the ``who`` of a phone's transition is its *end*: the name
alone for a single-device phone, ``name#device`` otherwise (:func:`end_name`). A call's
caller and callee are always names; :func:`party_name` maps an end back to its name.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal


__all__ = [
    "DEVICE_SEPARATOR",
    "END_CAUSES",
    "TRANSITIONS",
    "Call",
    "CallInfo",
    "CallState",
    "CallSummary",
    "Cause",
    "Direction",
    "InvalidTransition",
    "Transition",
    "end_name",
    "party_name",
    "summarize",
]

DEVICE_SEPARATOR: Final = "#"
"""Between a name and its device in an end's name (``bob#2``); never part of a name."""


def end_name(name: str, device: str | None) -> str:
    """The end a device of ``name`` speaks for: ``name`` alone, or ``name#device``."""
    return name if device is None else f"{name}{DEVICE_SEPARATOR}{device}"


def party_name(end: str) -> str:
    """The name an end belongs to: ``bob`` for ``bob#2``, ``alice`` for ``alice``."""
    return end.partition(DEVICE_SEPARATOR)[0]


class CallState(enum.StrEnum):
    """Where a call is, as one party (or the server) sees it."""

    NEW = "new"
    """Not yet known to this party: the state before its first transition."""
    DIALING = "dialing"
    """Placed, but no callee device has acknowledged it. The caller's screen: Calling…"""
    RINGING = "ringing"
    """A callee device is alerting. Caller: Ringing…; callee: the incoming-call screen."""
    ANSWERED = "answered"
    """Picked up: the parties are in the call."""
    RECONNECTING = "reconnecting"
    """Answered, but a party's link died; waiting for it for the reconnect grace."""
    ENDED = "ended"
    """Over. Terminal."""


NEW: Final = CallState.NEW
DIALING: Final = CallState.DIALING
RINGING: Final = CallState.RINGING
ANSWERED: Final = CallState.ANSWERED
RECONNECTING: Final = CallState.RECONNECTING
ENDED: Final = CallState.ENDED


class Cause(enum.StrEnum):
    """Why a call changed state. End causes double as the ``reason`` of ``call_ended``."""

    PLACED = "placed"
    """The caller placed the call."""
    REACHED = "reached"
    """A callee device acknowledged the offer and is alerting."""
    ANSWERED = "answered"
    """The callee picked up."""
    LINK_LOST = "link_lost"
    """A party's link died during the answered call."""
    RESUMED = "resumed"
    """The missing party came back within the reconnect grace."""
    CANCELED = "canceled"
    """The caller hung up before the answer."""
    DECLINED = "declined"
    """The callee refused the call."""
    BUSY = "busy"
    """The callee was in another call."""
    NO_ANSWER = "no_answer"
    """The ring timer fired: alerted, but nobody picked up."""
    UNREACHABLE = "unreachable"
    """The dial timer fired: no callee device was ever reached."""
    HUNG_UP = "hung_up"
    """A party ended the answered call."""
    DROPPED = "dropped"
    """A party's link stayed dead past the reconnect grace."""
    BLOCKED = "blocked"
    """The callee has blocked the caller, and the profile reveals it (Telegram does)."""
    FAILED = "failed"
    """Answered, but the media (ICE/DTLS) never connected within the media timeout."""
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    """Another device of the callee's name answered (a callee device's view only)."""
    DECLINED_ELSEWHERE = "declined_elsewhere"
    """Another device of the callee's name declined (a callee device's view only)."""
    GLARE = "glare"
    """Two calls between the same pair crossed; this one had the higher call id and lost."""


END_CAUSES: Final = frozenset(
    {
        Cause.CANCELED,
        Cause.DECLINED,
        Cause.BUSY,
        Cause.NO_ANSWER,
        Cause.UNREACHABLE,
        Cause.HUNG_UP,
        Cause.DROPPED,
        Cause.BLOCKED,
        Cause.FAILED,
        Cause.ANSWERED_ELSEWHERE,
        Cause.DECLINED_ELSEWHERE,
        Cause.GLARE,
    }
)
"""The causes that end a call."""

_BEFORE_ANSWER_ENDS: Final = {
    Cause.CANCELED: ENDED,
    Cause.DECLINED: ENDED,
    Cause.BUSY: ENDED,
    Cause.DROPPED: ENDED,
    Cause.ANSWERED_ELSEWHERE: ENDED,
    Cause.DECLINED_ELSEWHERE: ENDED,
    Cause.GLARE: ENDED,
}

TRANSITIONS: Final[Mapping[CallState, Mapping[Cause, CallState]]] = {
    NEW: {
        Cause.PLACED: DIALING,  # the caller's phone and the server
        Cause.REACHED: RINGING,  # the callee's device: an offer arrives and it alerts
        # A missed-call notice for a call this phone never saw: it is over before it began.
        Cause.CANCELED: ENDED,
        Cause.NO_ANSWER: ENDED,
        Cause.UNREACHABLE: ENDED,
        Cause.BUSY: ENDED,
        Cause.DROPPED: ENDED,
    },
    DIALING: {
        Cause.REACHED: RINGING,
        # A device may pick up before its "ringing" is seen (it is implied by the answer).
        Cause.ANSWERED: ANSWERED,
        Cause.UNREACHABLE: ENDED,
        Cause.BLOCKED: ENDED,  # only ever before the callee is reached: it never is
        **_BEFORE_ANSWER_ENDS,
    },
    RINGING: {
        Cause.ANSWERED: ANSWERED,
        Cause.NO_ANSWER: ENDED,
        # The dial timer can still end a call whose "ringing" reached the phone but not the
        # server (the caller's phone then knows it was reached; the server does not).
        Cause.UNREACHABLE: ENDED,
        **_BEFORE_ANSWER_ENDS,
    },
    ANSWERED: {
        Cause.LINK_LOST: RECONNECTING,
        Cause.HUNG_UP: ENDED,
        Cause.DROPPED: ENDED,
        # The caller's cancel, or the ring timer, crossed the callee's answer: the end
        # wins and the answer is void (see summarize), so both ends agree it was not.
        Cause.CANCELED: ENDED,
        Cause.NO_ANSWER: ENDED,
        # Media calls only: the media never connected after the answer (a phone's media
        # timer, relayed by the server as the same cause).
        Cause.FAILED: ENDED,
        # Two devices of the callee answered at once and this one's answer came second:
        # it never counted, and the device says so instead of claiming the call.
        Cause.ANSWERED_ELSEWHERE: ENDED,
    },
    RECONNECTING: {
        Cause.RESUMED: ANSWERED,
        Cause.HUNG_UP: ENDED,
        Cause.DROPPED: ENDED,
        Cause.FAILED: ENDED,  # the media timer may fire while a link is down
        # Answered while the caller was away, and the caller never came back for it: the
        # answer never reached it, so it counts for nobody (see summarize).
        Cause.CANCELED: ENDED,
    },
    ENDED: {},
}
"""``TRANSITIONS[state][cause]`` is the state a call moves to; a missing key is illegal."""


Direction = Literal["outgoing", "incoming"]
"""A call as seen from one end: placed by it (outgoing) or to it (incoming)."""


class InvalidTransition(Exception):
    """A cause that the call's state does not allow. The call is unchanged.

    Attributes:
        call_id: The call.
        state: Its state when the cause came.
        cause: The refused cause.
    """

    def __init__(self, call_id: str, state: CallState, cause: Cause) -> None:
        super().__init__(call_id, state, cause)
        self.call_id = call_id
        self.state = state
        self.cause = cause

    def __str__(self) -> str:
        allowed = ", ".join(sorted(TRANSITIONS[self.state])) or "nothing (it has ended)"
        return (
            f"call {self.call_id} is {self.state}: {self.cause!s} is not allowed "
            f"(allowed: {allowed})"
        )


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What identifies a call, the same for every party."""

    call_id: str
    caller: str
    callee: str
    kind: Literal["audio", "video"]
    placed_at: float
    """When the caller placed it, on the server's clock (the scenario clock)."""


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded change of one party's view of a call.

    Attributes:
        who: Whose view changed: ``"server"`` or a phone's end (its name, or ``name#device``).
        call: The call.
        from_state: The state before.
        to_state: The state after.
        cause: Why.
        at: When, on the scenario clock.
    """

    who: str
    call: CallInfo
    from_state: CallState
    to_state: CallState
    cause: Cause
    at: float

    @classmethod
    def from_event(cls, event: Mapping[str, object]) -> Transition:
        """Rebuilds a transition from :meth:`as_event` output (for example a JSON log line).

        Raises:
            ValueError: A field is missing or invalid.
        """
        try:
            kind = str(event["kind"])
            if kind not in ("audio", "video"):
                raise ValueError(f"unknown call kind {kind!r}")
            info = CallInfo(
                call_id=str(event["call_id"]),
                caller=str(event["caller"]),
                callee=str(event["callee"]),
                kind="video" if kind == "video" else "audio",
                placed_at=float(event["placed_at"]),  # type: ignore[arg-type]
            )
            return cls(
                who=str(event["who"]),
                call=info,
                from_state=CallState(str(event["from"])),
                to_state=CallState(str(event["to"])),
                cause=Cause(str(event["cause"])),
                at=float(event["at"]),  # type: ignore[arg-type]
            )
        except KeyError as exc:
            raise ValueError(f"transition event has no {exc.args[0]!r}") from None

    def as_event(self) -> dict[str, object]:
        """The transition as a flat mapping, for the JSON event stream."""
        return {
            "who": self.who,
            "call_id": self.call.call_id,
            "caller": self.call.caller,
            "callee": self.call.callee,
            "kind": self.call.kind,
            "placed_at": self.call.placed_at,
            "from": str(self.from_state),
            "to": str(self.to_state),
            "cause": str(self.cause),
            "at": self.at,
        }


@dataclass(slots=True)
class Call:
    """One party's view of one call, moved only by :meth:`fire`.

    Attributes:
        who: Whose view this is (``"server"`` or a phone's end).
        info: The call's identity.
        state: The current state.
        transitions: Every change so far, oldest first.
    """

    who: str
    info: CallInfo
    state: CallState = NEW
    transitions: list[Transition] = field(default_factory=list)

    @property
    def call_id(self) -> str:
        """The call's id."""
        return self.info.call_id

    @property
    def is_over(self) -> bool:
        """Whether the call has ended."""
        return self.state is ENDED

    def can(self, cause: Cause) -> bool:
        """Whether ``cause`` is legal in the current state."""
        return cause in TRANSITIONS[self.state]

    def fire(self, cause: Cause, now: float) -> Transition:
        """Moves the call by ``cause`` and records the change.

        Args:
            cause: What happened.
            now: The time, on the scenario clock.

        Returns:
            The recorded transition.

        Raises:
            InvalidTransition: ``cause`` is illegal in the current state; nothing changed.
        """
        try:
            new_state = TRANSITIONS[self.state][cause]
        except KeyError:
            raise InvalidTransition(self.info.call_id, self.state, cause) from None
        transition = Transition(self.who, self.info, self.state, new_state, cause, now)
        self.state = new_state
        self.transitions.append(transition)
        return transition


@dataclass(frozen=True, slots=True)
class CallSummary:
    """What one end knows about one call once its transitions are folded together.

    This is the raw material of a call-log entry; a label profile turns it into a label.

    Attributes:
        who: The end (a phone's name or ``name#device``, or ``"server"``).
        info: The call.
        direction: Outgoing for the caller's end, incoming for the callee's.
        reached: Caller: whether it ever heard Ringing…; callee: whether its device
            alerted (False when it learned of the call from a missed-call notice).
        answered_at: When the call was answered, if it was.
        lost_at: When an answered call last went Reconnecting…, if it did.
        ended_at: When it ended, if it has.
        end_cause: Why it ended, if it has.
        ended_reconnecting: Whether it ended while Reconnecting…, the gap never resumed
            (dropped past the grace, or hung up, or failed, before the link came back).
    """

    who: str
    info: CallInfo
    direction: Direction
    reached: bool
    answered_at: float | None
    lost_at: float | None
    ended_at: float | None
    end_cause: Cause | None
    ended_reconnecting: bool = False

    @property
    def peer(self) -> str:
        """The other party, as this end knows it."""
        return self.info.callee if self.direction == "outgoing" else self.info.caller

    @property
    def answered(self) -> bool:
        """Whether the call was answered."""
        return self.answered_at is not None

    @property
    def duration(self) -> float | None:
        """Seconds in the call: from the answer to the end, or to the loss if it never resumed.

        A resumed gap counts as call time. A call that ends while Reconnecting… counts only
        up to the loss, whatever ended it: the other end may hang up, or the grace may run
        out, at very different times on the two ends, but both saw the talking stop at the
        loss, so both measure to it (exploration seed 1000613: a callee that went offline
        and then hung up counted 1.5 s more than its caller). ``None`` for an unanswered
        call or one that has not ended.
        """
        counted_until = self.counted_until
        if self.answered_at is None or counted_until is None:
            return None
        return max(0.0, counted_until - self.answered_at)

    @property
    def counted_until(self) -> float | None:
        """When this end stopped counting the call: the end, or the loss if it never
        resumed (see :attr:`duration`). ``None`` while the call goes on."""
        if self.ended_reconnecting and self.lost_at is not None:
            return self.lost_at
        return self.ended_at


_VOIDING_CAUSES: Final = frozenset({Cause.CANCELED, Cause.NO_ANSWER, Cause.ANSWERED_ELSEWHERE})
"""End causes that can follow an answer only when they crossed it, voiding it."""


def summarize(transitions: Iterable[Transition]) -> CallSummary:
    """Folds one end's transitions of one call into a :class:`CallSummary`.

    Args:
        transitions: The transitions of a single ``(who, call)``, oldest first.

    Raises:
        ValueError: ``transitions`` is empty or mixes ends or calls.
    """
    items = list(transitions)
    if not items:
        raise ValueError("cannot summarize a call with no transitions")
    first = items[0]
    if any(t.who != first.who or t.call.call_id != first.call.call_id for t in items):
        raise ValueError("transitions of several ends or calls cannot be summarized as one")
    reached = answered_at = lost_at = ended_at = end_cause = None
    ended_reconnecting = False
    for t in items:
        if t.to_state in (RINGING, ANSWERED):
            reached = True
        if t.to_state is ANSWERED and answered_at is None:
            answered_at = t.at
        if t.to_state is RECONNECTING:
            lost_at = t.at
        if t.to_state is ENDED:
            ended_at, end_cause = t.at, t.cause
            ended_reconnecting = t.from_state is RECONNECTING
    if end_cause in _VOIDING_CAUSES:
        answered_at = lost_at = None  # an answer that lost the race never counted
    caller_end = party_name(first.who) == first.call.caller
    direction: Direction = "outgoing" if caller_end else "incoming"
    return CallSummary(
        who=first.who,
        info=first.call,
        direction=direction,
        reached=bool(reached),
        answered_at=answered_at,
        lost_at=lost_at,
        ended_at=ended_at,
        end_cause=end_cause,
        ended_reconnecting=ended_reconnecting,
    )
