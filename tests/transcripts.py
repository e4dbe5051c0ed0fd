"""An in-memory exchange for transcript tests: one switchboard, several phones, no I/O.

The sans-I/O core is driven here exactly as the real drivers drive it (``signaling.server``
and ``peers.client``), minus sockets, tasks and clocks: every input is fed with an explicit
``now``, and after each input the outputs are drained and delivered until nothing moves.
Tests read the result step by step, h11 style: the frames on the wire, each end's call log,
the recorded transitions and the screens.

Model:

- Every party has a *label*. A phone's label is usually its name; a second device claiming
  the same name (an impostor, say) gets its own label. A *raw* label is a connection with
  no :class:`Phone` behind it, for frames a well-behaved phone would never send.
- Each label has at most one current :class:`ConnectionId`. Opening a new one without
  closing the old leaves the old one *stale*: the switchboard may still write to it, but
  nothing reaches the phone (it has moved on).
- Zero latency: a frame sent at ``now`` is received at ``now``. Every frame goes through
  ``serialize_message`` and ``parse_*_message``, so everything on the wire is valid JSON of
  the right direction.
- A black-holed label (lost signal) keeps its connection, but every frame to or from it is
  lost, and nobody is told until :meth:`Exchange.disconnect` (the heartbeat noticed it).
- :meth:`Exchange.drop_next` loses one frame of a type, like the link's ``drop`` fault.

Every frame, delivered or lost, is kept in :attr:`Exchange.frames`; :attr:`Exchange.ladder`
is the delivered ones as ``(sender, receiver, type)``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

from peers.phone import Phone, Screen, ScreenChange
from signaling.calls import CallSummary, Transition
from signaling.messages import (
    Error,
    InvalidMessage,
    PhoneMessage,
    ServerMessage,
    message_type,
    parse_phone_message,
    parse_server_message,
    serialize_message,
)
from signaling.store import MemoryStore
from signaling.switchboard import (
    SERVER,
    ConnectionId,
    Switchboard,
    SwitchboardLimits,
    SwitchboardSettings,
)


__all__ = ["ANSWER_SDP", "OFFER_SDP", "Exchange", "Frame", "outline", "token_for"]

OFFER_SDP = "v=0 offer"
ANSWER_SDP = "v=0 answer"


def token_for(name: str) -> str:
    """The token a test phone registers with (long enough for the schema)."""
    return f"{name}-secret-token-0001"


def outline(summary: CallSummary) -> dict[str, object]:
    """The parts of a call-log entry a label is computed from, for one readable assert."""
    return {
        "direction": summary.direction,
        "peer": summary.peer,
        "reached": summary.reached,
        "answered": summary.answered,
        "end_cause": None if summary.end_cause is None else str(summary.end_cause),
        "duration": summary.duration,
    }


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame on the wire.

    Attributes:
        at: When it was sent (and, at zero latency, received).
        sender: A label, or ``"server"``.
        receiver: A label, or ``"server"``.
        message: The parsed message; the raw text for a frame that did not parse.
        delivered: False when it was lost (black hole, stale connection, drop rule).
    """

    at: float
    sender: str
    receiver: str
    message: PhoneMessage | ServerMessage | str | bytes
    delivered: bool = True

    @property
    def type(self) -> str:
        """The wire type, or ``"<invalid>"`` for a frame that did not parse."""
        if isinstance(self.message, str | bytes):
            return "<invalid>"
        return message_type(self.message)

    @property
    def step(self) -> tuple[str, str, str]:
        """``(sender, receiver, type)``: one rung of the ladder."""
        return (self.sender, self.receiver, self.type)


class Exchange:
    """A switchboard and its phones, wired together in memory.

    Every action takes the time it happens at; it first fires the timers due until then
    (:meth:`advance`), then acts, then delivers everything that follows (:meth:`pump`).

    Args:
        settings: The switchboard's timers (defaults: dial 30 s, ring 45 s, grace 10 s).
        limits: The switchboard's limits (defaults if not given).
    """

    def __init__(
        self,
        settings: SwitchboardSettings | None = None,
        *,
        limits: SwitchboardLimits | None = None,
    ) -> None:
        self.switchboard = Switchboard(settings, limits=limits)
        self.store = MemoryStore()
        """What the server keeps, as the driver would commit it (after every input)."""
        self.settings = self.switchboard.settings
        self.phones: dict[str, Phone] = {}
        self.now = 0.0
        self.frames: list[Frame] = []
        self.closes: list[tuple[str, ConnectionId, int, str]] = []
        """Connections the switchboard asked to close: (label, connection, code, reason)."""
        self.server_transitions: list[Transition] = []
        self.transitions: dict[str, list[Transition]] = {}
        self.screens: dict[str, list[ScreenChange]] = {}
        self.black_holed: set[str] = set()
        self._ids = itertools.count(1)
        self._owner: dict[ConnectionId, str] = {}
        self._current: dict[str, ConnectionId] = {}
        self._drops: list[tuple[str, str]] = []

    # --- Setting up ------------------------------------------------------------------------

    def add_phone(
        self,
        label: str,
        *,
        name: str | None = None,
        token: str | None = None,
        blocks: tuple[str, ...] = (),
        connect: bool = True,
        device: str | None = None,
    ) -> Phone:
        """Creates a phone (call ids ``<label>-1``, ``<label>-2``…), connected at ``now``.

        With ``device``, it is that device of ``name`` (several labels may share a name).
        """
        name = name or label
        counter = itertools.count(1)
        phone = Phone(
            name,
            token or token_for(name),
            reconnect_grace=self.settings.reconnect_grace,
            new_call_id=lambda: f"{label}-{next(counter)}",
            blocks=blocks,
            device=device,
        )
        self.phones[label] = phone
        self.transitions[label] = []
        self.screens[label] = []
        if connect:
            self.connect(label, self.now)
        return phone

    # --- The network -----------------------------------------------------------------------

    def connect(self, label: str, now: float) -> ConnectionId:
        """Opens a new connection for ``label``; a phone registers on it at once.

        A connection ``label`` had already is left stale, not closed.
        """
        self.advance(now)
        conn = ConnectionId(next(self._ids))
        self._owner[conn] = label
        self._current[label] = conn
        self.switchboard.connect(conn, now)
        if label in self.phones:
            self.phones[label].link_up(now)
        self.pump(now)
        return conn

    def disconnect(
        self, label: str, now: float, *, server: bool = True, phone: bool = True
    ) -> None:
        """The link of ``label`` is gone, and both ends notice (or only the ones named)."""
        self.advance(now)
        conn = self._current.pop(label)
        self.black_holed.discard(label)
        if server:
            self.switchboard.disconnect(conn, now)
        if phone and label in self.phones:
            self.phones[label].link_down(now)
        self.pump(now)

    def lose_signal(self, label: str, now: float) -> None:
        """Black hole: the connection stays open, nothing flows, nobody is told."""
        self.advance(now)
        self.black_holed.add(label)

    def regain_signal(self, label: str, now: float) -> None:
        """Frames flow again; a phone whose link was found dead connects anew."""
        self.advance(now)
        self.black_holed.discard(label)
        if label not in self._current:
            self.connect(label, now)

    def drop_next(self, sender: str, type_: str) -> None:
        """Loses the next frame of ``type_`` sent by ``sender`` (a label or "server")."""
        self._drops.append((sender, type_))

    def send(self, label: str, frame: PhoneMessage | str | bytes, now: float) -> None:
        """Sends a frame on ``label``'s connection as if its phone had: a message, or raw text."""
        self.advance(now)
        self._to_server(label, frame, now)
        self.pump(now)

    def crash(self, now: float) -> None:
        """The server process dies: every link breaks (each phone notices), and a new
        switchboard starts from what the store kept and recovers the calls in progress.
        Phones reconnect with :meth:`connect` when the test says so."""
        self.advance(now)
        for label in list(self._current):
            del self._current[label]
            self.black_holed.discard(label)
            if label in self.phones:
                self.phones[label].link_down(now)
        old = self.switchboard
        self.switchboard = Switchboard(old.settings, limits=old.limits, durable=self.store.load())
        self.switchboard.recover(now)
        self.pump(now)

    # --- What people do --------------------------------------------------------------------

    def call(
        self, label: str, callee: str, now: float, kind: Literal["audio", "video"] = "audio"
    ) -> str:
        """``label`` calls ``callee``; returns the call id."""
        self.advance(now)
        call_id = self.phones[label].place_call(callee, kind, OFFER_SDP, now)
        self.pump(now)
        return call_id

    def answer(self, label: str, now: float) -> str:
        self.advance(now)
        call_id = self.phones[label].answer(ANSWER_SDP, now)
        self.pump(now)
        return call_id

    def decline(self, label: str, now: float) -> str:
        self.advance(now)
        call_id = self.phones[label].decline(now)
        self.pump(now)
        return call_id

    def hang_up(self, label: str, now: float) -> str:
        self.advance(now)
        call_id = self.phones[label].hang_up(now)
        self.pump(now)
        return call_id

    def block(self, label: str, other: str, now: float) -> None:
        self.advance(now)
        self.phones[label].block(other, now)
        self.pump(now)

    def power_off(self, label: str, now: float) -> None:
        """Switched off: the link is reset, which the server notices at once."""
        self.advance(now)
        self.phones[label].power_off(now)
        self.black_holed.discard(label)
        conn = self._current.pop(label, None)
        if conn is not None:
            self.switchboard.disconnect(conn, now)
        self.pump(now)

    def power_on(self, label: str, now: float) -> None:
        """Switched on: the phone connects and registers."""
        self.advance(now)
        self.phones[label].power_on(now)
        self.connect(label, now)

    # --- Time ------------------------------------------------------------------------------

    def next_wakeup(self) -> float | None:
        """The earliest timer of the switchboard and the phones."""
        wakeups = [self.switchboard.next_wakeup()]
        wakeups.extend(phone.next_wakeup() for phone in self.phones.values())
        return min((w for w in wakeups if w is not None), default=None)

    def advance(self, to: float) -> None:
        """Fires every timer due up to ``to``, in time order, delivering after each."""
        if to < self.now:
            raise ValueError(f"time runs forward: {to} < {self.now}")
        for _ in range(1000):
            due = self.next_wakeup()
            if due is None or due > to:
                self.now = to
                return
            due = max(due, self.now)
            self.now = due
            wakeup = self.switchboard.next_wakeup()
            if wakeup is not None and wakeup <= due:
                self.switchboard.wake(due)
            for phone in self.phones.values():
                wakeup = phone.next_wakeup()
                if wakeup is not None and wakeup <= due:
                    phone.wake(due)
            self.pump(due)
        raise AssertionError("a timer fires again and again")

    # --- Delivery --------------------------------------------------------------------------

    def pump(self, now: float) -> None:
        """Delivers phone outboxes to the switchboard and back, until nothing moves."""
        for _ in range(1000):
            moved = False
            for label, phone in self.phones.items():
                for message in phone.messages_to_send():
                    moved = True
                    self._to_server(label, message, now)
                self._collect(label, phone)
            for conn, server_message in self.switchboard.messages_to_send():
                moved = True
                self._to_phone(conn, server_message, now)
            self._collect_server(now)
            if not moved:
                return
        raise AssertionError("the exchange never went quiet")

    def _dropped(self, sender: str, type_: str) -> bool:
        if (sender, type_) in self._drops:
            self._drops.remove((sender, type_))
            return True
        return False

    def _to_server(self, label: str, frame: PhoneMessage | str | bytes, now: float) -> None:
        parsed: PhoneMessage | InvalidMessage
        if isinstance(frame, str | bytes):
            try:
                parsed = parse_phone_message(frame)
            except InvalidMessage as exc:
                parsed = exc
        else:
            parsed = parse_phone_message(serialize_message(frame))  # the wire, both ways
        shown = frame if isinstance(parsed, InvalidMessage) else parsed
        conn = self._current.get(label)
        lost = (
            conn is None
            or label in self.black_holed
            or self._dropped(label, Frame(now, label, SERVER, shown).type)
        )
        self.frames.append(Frame(now, label, SERVER, shown, delivered=not lost))
        if lost or conn is None:
            return
        if isinstance(parsed, InvalidMessage):
            self.switchboard.receive_invalid(conn, parsed, now)
        else:
            self.switchboard.receive(conn, parsed, now)

    def _to_phone(self, conn: ConnectionId, message: ServerMessage, now: float) -> None:
        label = self._owner[conn]
        message = parse_server_message(serialize_message(message))
        type_ = message_type(message)
        lost = (
            self._current.get(label) != conn
            or label in self.black_holed
            or self._dropped(SERVER, type_)
        )
        self.frames.append(Frame(now, SERVER, label, message, delivered=not lost))
        if not lost and label in self.phones:
            self.phones[label].receive(message, now)

    def _collect(self, label: str, phone: Phone) -> None:
        self.transitions[label].extend(phone.transitions_received())
        self.screens[label].extend(phone.screens_received())

    def _collect_server(self, now: float) -> None:
        self.store.apply(self.switchboard.changes_to_keep())
        self.server_transitions.extend(self.switchboard.transitions_received())
        for conn, code, reason in self.switchboard.connections_to_close():
            self.closes.append((self._owner[conn], conn, code, reason))
            # As the server driver does: the socket closes, then its handler reports it.
            self.switchboard.disconnect(conn, now)

    # --- Reading the transcript ------------------------------------------------------------

    @property
    def ladder(self) -> list[tuple[str, str, str]]:
        """The delivered frames, as ``(sender, receiver, type)``, in order."""
        return [f.step for f in self.frames if f.delivered]

    def received(self, label: str, *, since: float = 0.0) -> list[Frame]:
        """The frames delivered to ``label`` from ``since`` on."""
        return [f for f in self.frames if f.delivered and f.receiver == label and f.at >= since]

    def received_types(self, label: str, *, since: float = 0.0) -> list[tuple[float, str]]:
        """``(at, type)`` of every frame delivered to ``label`` from ``since`` on."""
        return [(f.at, f.type) for f in self.received(label, since=since)]

    def sent_types(self, label: str, *, since: float = 0.0) -> list[tuple[float, str]]:
        """``(at, type)`` of every frame ``label`` sent that reached the server."""
        return [
            (f.at, f.type)
            for f in self.frames
            if f.delivered and f.sender == label and f.at >= since
        ]

    def errors(self, label: str) -> list[tuple[str, str | None]]:
        """``(code, call_id)`` of every error delivered to ``label``."""
        return [
            (str(f.message.code), f.message.call_id)
            for f in self.received(label)
            if isinstance(f.message, Error)
        ]

    def connection(self, label: str) -> ConnectionId | None:
        """The current connection of ``label``."""
        return self._current.get(label)

    def log(self, label: str) -> list[CallSummary]:
        """The phone's call log."""
        return self.phones[label].call_log()

    def entry(self, label: str) -> CallSummary:
        """The phone's only call-log entry (fails if there is not exactly one)."""
        log = self.log(label)
        assert len(log) == 1, f"{label} has {len(log)} call-log entries: {log}"
        return log[0]

    def server_steps(self, call_id: str) -> list[tuple[str, str, float]]:
        """``(to_state, cause, at)`` of the server's transitions of one call."""
        return [
            (str(t.to_state), str(t.cause), t.at)
            for t in self.server_transitions
            if t.call.call_id == call_id
        ]

    def phone_steps(self, label: str, call_id: str) -> list[tuple[str, str, float]]:
        """``(to_state, cause, at)`` of a phone's transitions of one call."""
        return [
            (str(t.to_state), str(t.cause), t.at)
            for t in self.transitions[label]
            if t.call.call_id == call_id
        ]

    def screen_history(self, label: str) -> list[tuple[Screen, float]]:
        """Each screen ``label`` turned to, with when."""
        return [(s.to_screen, s.at) for s in self.screens[label]]
