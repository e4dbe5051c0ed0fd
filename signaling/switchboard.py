"""The server's logic, without I/O: registrations, presence, routing, blocks, busy, timers.

The switchboard is to the signaling server what ``websockets.protocol.Protocol`` is to a
websocket connection: it is fed inputs and drained of outputs, and it never touches a
socket, a task or a clock. Drivers (``signaling.server`` over websockets, a pure in-memory
simulator in tests) do exactly this:

- a new connection: :meth:`Switchboard.connect`; a frame from it: :meth:`receive` (or
  :meth:`receive_invalid` when the frame did not parse); the connection gone:
  :meth:`disconnect`; the time of :meth:`next_wakeup` reached: :meth:`wake`;
- after each of those, immediately: send :meth:`messages_to_send`, close
  :meth:`connections_to_close`, hand :meth:`transitions_received` to the observers, and
  re-arm the timer for :meth:`next_wakeup`.

Policies it enforces (the behaviour table of DESIGN.md, server side):

- A call whose callee has blocked the caller is never delivered, and the caller gets
  exactly what it would get from a switched-off phone: nothing, until the dial timer ends
  the call as ``unreachable``. The callee gets nothing, ever.
- A callee with a call in progress makes a new call end at once as ``busy``.
- The dial timer runs until a callee device acknowledges the offer (``ringing``); then the
  ring timer runs until the answer. Both are owned by the server.
- A party whose link dies keeps its calls for the reconnect grace. An answered call goes
  ``reconnecting`` and the other party is told; an unanswered call keeps ringing for the
  callee while the caller is away. Past the grace the call ends as ``dropped``.
- A callee who could not be told that an unanswered call ended (its device was never
  reached, or was not connected) gets a missed-call notice, kept until acknowledged and
  sent again on every registration until then.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal, NewType

from .calls import (
    ANSWERED,
    DIALING,
    RECONNECTING,
    RINGING,
    Call,
    CallInfo,
    Cause,
    InvalidTransition,
    Transition,
    summarize,
)
from .messages import (
    Answer,
    Block,
    Busy,
    CallEnded,
    Candidate,
    Decline,
    Error,
    ErrorCode,
    Hangup,
    Incoming,
    InvalidMessage,
    MissedCall,
    MissedCallAck,
    Offer,
    PhoneMessage,
    Reconnecting,
    Register,
    Registered,
    Resumed,
    Ringing,
    ServerMessage,
    Unblock,
)


__all__ = [
    "CLOSE_REPLACED",
    "SERVER",
    "Account",
    "CallDetailRecord",
    "ConnectionId",
    "DurableState",
    "Switchboard",
    "SwitchboardSettings",
]

logger = logging.getLogger("voip_sandbox.signaling")

ConnectionId = NewType("ConnectionId", int)
"""A connection, numbered by the driver."""

SERVER: Final = "server"
"""The ``who`` of the switchboard's own transitions."""

CLOSE_REPLACED: Final = (4001, "replaced by a newer connection of the same name")
"""The websocket close code and reason for a connection replaced by a new registration."""


RingTimer = Literal["server", "caller", "callee"]
"""Who ends a ringing call that nobody answers."""


@dataclass(frozen=True, slots=True)
class SwitchboardSettings:
    """The server's timers (in seconds) and the label profile's policies."""

    dial_timeout: float = 30.0
    """How long a call may go without reaching any callee device."""
    ring_timeout: float = 45.0
    """How long a callee device may ring without an answer (when the server owns it)."""
    reconnect_grace: float = 10.0
    """How long a call waits for a party whose link died."""
    block_revealed: bool = False
    """Tell a blocked caller at once (``blocked``) instead of acting switched off."""
    decline_as_busy: bool = False
    """Tell the caller ``busy`` when the callee declines, so a decline is not revealed."""
    missed_after_reconnect: bool = True
    """Keep missed-call notices for an absent callee; if False, only a connected one hears."""
    ring_timer: RingTimer = "server"
    """Who ends an unanswered ringing call: the server's ring timer, or a phone's own."""


@dataclass(frozen=True, slots=True)
class CallDetailRecord:
    """The server's own account of one call once it is over (its CDR).

    Unlike each phone's view, this is the server's private truth (it knows of blocks):
    observers use it to check invariants, never to label a phone's call log.
    """

    call_id: str
    caller: str
    callee: str
    kind: str
    placed_at: float
    reached: bool
    answered_at: float | None
    ended_at: float
    cause: Cause
    blocked: bool

    def as_event(self) -> dict[str, object]:
        """The record as a flat mapping, for the event stream."""
        return {
            "call_id": self.call_id,
            "caller": self.caller,
            "callee": self.callee,
            "kind": self.kind,
            "placed_at": self.placed_at,
            "reached": self.reached,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "cause": str(self.cause),
            "blocked": self.blocked,
        }


@dataclass(slots=True)
class Account:
    """A registered name: its token's hash and its block list."""

    name: str
    token_hash: bytes
    blocks: set[str] = field(default_factory=set)

    @staticmethod
    def hash_token(token: str) -> bytes:
        """The stored form of a token: never the token itself."""
        return hashlib.sha256(token.encode()).digest()

    def token_matches(self, token: str) -> bool:
        """Compares in constant time, so timing does not leak how much of it matched."""
        return hmac.compare_digest(self.token_hash, self.hash_token(token))


@dataclass(slots=True)
class DurableState:
    """What survives a crash of the server: accounts and undelivered missed-call notices.

    Calls in progress live only in memory: a crash loses them, and the phones, finding
    that the restarted server no longer holds their calls, end them as ``dropped``.
    """

    accounts: dict[str, Account] = field(default_factory=dict)
    notices: dict[str, dict[str, MissedCall]] = field(default_factory=dict)


@dataclass(slots=True)
class _ServerCall:
    """The switchboard's bookkeeping around one call in progress."""

    call: Call
    offer_sdp: str
    blocked: bool
    answer_sdp: str | None = None
    delivered_to: ConnectionId | None = None
    """The callee connection the offer was last written to."""
    timer: tuple[float, Cause] | None = None
    """The dial or ring timer: when, and the cause it ends the call with."""
    away: dict[str, float] = field(default_factory=dict)
    """Parties whose link died, with the end of their reconnect grace."""

    @property
    def info(self) -> CallInfo:
        return self.call.info

    def other(self, name: str) -> str:
        return self.info.callee if name == self.info.caller else self.info.caller


class Switchboard:
    """The signaling server's decisions, fed by a driver; see the module docstring.

    Args:
        settings: The timers.
        durable: State recovered after a crash, if any.
    """

    def __init__(
        self, settings: SwitchboardSettings | None = None, *, durable: DurableState | None = None
    ) -> None:
        self.settings = settings or SwitchboardSettings()
        durable = durable or DurableState()
        self.accounts: dict[str, Account] = durable.accounts
        """Every name ever registered or provisioned."""
        self._sessions: dict[str, ConnectionId] = {}
        self._names: dict[ConnectionId, str] = {}
        self._connections: set[ConnectionId] = set()
        self._calls: dict[str, _ServerCall] = {}
        self._calls_of: dict[str, dict[str, _ServerCall]] = {}
        self._ended_ids: set[str] = set()
        self._notices: dict[str, dict[str, MissedCall]] = durable.notices
        self._outbox: list[tuple[ConnectionId, ServerMessage]] = []
        self._to_close: list[tuple[ConnectionId, int, str]] = []
        self._transitions: list[Transition] = []
        self._records: list[CallDetailRecord] = []

    # --- Inputs ----------------------------------------------------------------------------

    def provision(self, name: str, token: str, blocks: Iterable[str] = ()) -> Account:
        """Creates an account before its phone ever connects (a phone set up earlier).

        Args:
            name: The phone's name.
            token: The token it will register with.
            blocks: Its block list.

        Returns:
            The account.
        """
        account = Account(name, Account.hash_token(token), set(blocks))
        self.accounts[name] = account
        return account

    def connect(self, conn: ConnectionId, now: float) -> None:
        """A connection was opened. It must register before anything else."""
        self._connections.add(conn)

    def receive(self, conn: ConnectionId, message: PhoneMessage, now: float) -> None:
        """Handles one valid frame from a connection.

        Call :meth:`messages_to_send` (and the other drains) immediately after.
        """
        if isinstance(message, Register):
            self._on_register(conn, message, now)
            return
        name = self._names.get(conn)
        if name is None:
            self._error(
                conn,
                ErrorCode.NOT_REGISTERED,
                "register before anything else",
                getattr(message, "call_id", None),
            )
            return
        match message:
            case Offer():
                self._on_offer(conn, name, message, now)
            case Ringing() | Answer() | Decline() | Busy() | Hangup() | Candidate():
                self._on_call_message(conn, name, message, now)
            case Block(name=other):
                self.accounts[name].blocks.add(other)
            case Unblock(name=other):
                self.accounts[name].blocks.discard(other)
            case MissedCallAck(call_id=call_id):
                # Idempotent: a repeated or unknown ack is not an error.
                self._notices.get(name, {}).pop(call_id, None)

    def receive_invalid(self, conn: ConnectionId, error: InvalidMessage, now: float) -> None:
        """Handles a frame that did not parse: the sender is told why; nothing else changes."""
        self._error(conn, error.code, error.message, error.call_id)

    def disconnect(self, conn: ConnectionId, now: float) -> None:
        """The connection is gone, cleanly or not (the difference is the driver's to log).

        Its calls wait for the reconnect grace; see the module docstring.
        """
        self._connections.discard(conn)
        name = self._names.pop(conn, None)
        if name is None or self._sessions.get(name) != conn:
            return  # never registered, or already replaced by a newer connection
        del self._sessions[name]
        for sc in list(self._calls_of.get(name, {}).values()):
            state = sc.call.state
            if state in (ANSWERED, RECONNECTING):
                sc.away[name] = now + self.settings.reconnect_grace
                if state is ANSWERED:
                    self._fire(sc, Cause.LINK_LOST, now)
                    self._send_to(sc.other(name), Reconnecting(sc.info.call_id))
            elif name == sc.info.caller:
                # The callee keeps ringing while the caller may still come back.
                sc.away[name] = now + self.settings.reconnect_grace
            # An absent callee needs nothing: the dial or ring timer runs on, and the
            # offer is delivered again if it comes back in time.

    def wake(self, now: float) -> None:
        """Fires every timer that is due at ``now``."""
        for sc in list(self._calls.values()):
            if sc.timer is not None and sc.timer[0] <= now:
                self._end(sc, sc.timer[1], now, by=None)
                continue
            if any(deadline <= now for deadline in sc.away.values()):
                self._end(sc, Cause.DROPPED, now, by=None)

    # --- Outputs ---------------------------------------------------------------------------

    def messages_to_send(self) -> list[tuple[ConnectionId, ServerMessage]]:
        """Returns the messages to write, in order, and forgets them."""
        out, self._outbox = self._outbox, []
        return out

    def connections_to_close(self) -> list[tuple[ConnectionId, int, str]]:
        """Returns ``(connection, close code, reason)`` for connections to close."""
        out, self._to_close = self._to_close, []
        return out

    def transitions_received(self) -> list[Transition]:
        """Returns the call transitions recorded since the last call."""
        out, self._transitions = self._transitions, []
        return out

    def records_received(self) -> list[CallDetailRecord]:
        """Returns the records of the calls that ended since the last call."""
        out, self._records = self._records, []
        return out

    def next_wakeup(self) -> float | None:
        """When :meth:`wake` must next be called, or ``None`` when no timer runs."""
        deadlines = [sc.timer[0] for sc in self._calls.values() if sc.timer is not None]
        deadlines.extend(d for sc in self._calls.values() for d in sc.away.values())
        return min(deadlines, default=None)

    # --- Introspection ---------------------------------------------------------------------

    def durable_state(self) -> DurableState:
        """A copy of what would survive a crash (see :class:`DurableState`)."""
        accounts = {
            name: Account(a.name, a.token_hash, set(a.blocks)) for name, a in self.accounts.items()
        }
        notices = {name: dict(kept) for name, kept in self._notices.items()}
        return DurableState(accounts, notices)

    def name_of(self, conn: ConnectionId) -> str | None:
        """The name a connection registered, if it did."""
        return self._names.get(conn)

    def is_online(self, name: str) -> bool:
        """Presence: whether ``name`` has a registered connection."""
        return name in self._sessions

    @property
    def active_calls(self) -> int:
        """How many calls are in progress."""
        return len(self._calls)

    def pending_notices(self, name: str) -> list[MissedCall]:
        """The missed-call notices kept for ``name``, oldest first."""
        return list(self._notices.get(name, {}).values())

    # --- Handlers --------------------------------------------------------------------------

    def _on_register(self, conn: ConnectionId, message: Register, now: float) -> None:
        if conn in self._names:
            self._error(conn, ErrorCode.ALREADY_REGISTERED, "this connection is registered")
            return
        name = message.name
        account = self.accounts.get(name)
        if account is None:
            account = self.provision(name, message.token)
        elif not account.token_matches(message.token):
            # The holder of the name is not disturbed: nothing else happens.
            self._error(conn, ErrorCode.BAD_TOKEN, f"{name!r} is registered with another token")
            return
        stale = self._sessions.get(name)
        if stale is not None:
            # A phone that reconnects before its old connection is noticed dead would
            # otherwise be told "name taken": the token proves it, so the new one wins.
            del self._names[stale]
            self._to_close.append((stale, *CLOSE_REPLACED))
        self._sessions[name] = conn
        self._names[conn] = name

        held = set(message.calls)
        resumed: list[str] = []
        follow_ups: list[ServerMessage] = []
        for sc in list(self._calls_of.get(name, {}).values()):
            call_id = sc.info.call_id
            is_callee = name == sc.info.callee
            if call_id in held:
                resumed.append(call_id)
                sc.away.pop(name, None)
                if is_callee and sc.call.state in (DIALING, RINGING):
                    sc.delivered_to = conn
                follow_ups.extend(self._catch_up(sc, name, now))
            elif is_callee and sc.call.state in (DIALING, RINGING):
                # Back while the caller still waits: the device rings (again).
                sc.away.pop(name, None)
                sc.delivered_to = conn
                follow_ups.append(self._incoming(sc))
            else:
                # The phone no longer holds a call the server kept for it (it was switched
                # off, or gave up waiting): the call cannot go on.
                self._end(sc, Cause.DROPPED, now, by=name)
        self._outbox.append(
            (conn, Registered(name=name, blocks=sorted(account.blocks), calls=resumed))
        )
        self._outbox.extend((conn, m) for m in follow_ups)
        self._outbox.extend((conn, n) for n in self._notices.get(name, {}).values())

    def _catch_up(self, sc: _ServerCall, name: str, now: float) -> list[ServerMessage]:
        """What a resuming party may have missed while away; phones ignore repeats."""
        call_id = sc.info.call_id
        out: list[ServerMessage] = []
        if sc.call.state is RECONNECTING and not sc.away:
            self._fire(sc, Cause.RESUMED, now)
            self._send_to(sc.other(name), Resumed(call_id))
        if name == sc.info.caller:
            if sc.call.state is RINGING:
                out.append(Ringing(call_id))
            elif sc.answer_sdp is not None:
                out.append(Answer(call_id, sc.answer_sdp))
        # Say plainly whether the call goes on, so the returning phone never guesses:
        # it may have gone Reconnecting… without the server noticing anything.
        if sc.call.state is RECONNECTING:
            out.append(Reconnecting(call_id))  # the other party is still away
        elif sc.call.state is ANSWERED:
            out.append(Resumed(call_id))
        return out

    def _on_offer(self, conn: ConnectionId, name: str, offer: Offer, now: float) -> None:
        call_id = offer.call_id
        if offer.to == name:
            self._error(conn, ErrorCode.SELF_CALL, "a phone cannot call itself", call_id)
            return
        callee = self.accounts.get(offer.to)
        if callee is None:
            self._error(conn, ErrorCode.UNKNOWN_PHONE, f"no phone named {offer.to!r}", call_id)
            return
        if call_id in self._calls or call_id in self._ended_ids:
            self._error(conn, ErrorCode.DUPLICATE_CALL, f"call {call_id} exists", call_id)
            return
        info = CallInfo(call_id, name, offer.to, offer.kind, now)
        sc = _ServerCall(Call(SERVER, info), offer.sdp, blocked=name in callee.blocks)
        self._calls[call_id] = sc
        self._calls_of.setdefault(name, {})[call_id] = sc
        self._fire(sc, Cause.PLACED, now)
        if sc.blocked and self.settings.block_revealed:
            self._end(sc, Cause.BLOCKED, now, by=None)
            return
        if not sc.blocked:
            # A blocked call is never filed under the callee: nothing done on the callee's
            # side (registering, being busy, being away) can touch it or reveal it.
            # And the busy check comes after the block check, so a blocked caller never
            # learns that the callee is in a call.
            if self._calls_of.get(offer.to):
                self._calls_of[offer.to][call_id] = sc
                self._end(sc, Cause.BUSY, now, by=None)
                return
            self._calls_of.setdefault(offer.to, {})[call_id] = sc
        sc.timer = (now + self.settings.dial_timeout, Cause.UNREACHABLE)
        callee_conn = self._sessions.get(offer.to)
        if not sc.blocked and callee_conn is not None:
            sc.delivered_to = callee_conn
            self._outbox.append((callee_conn, self._incoming(sc)))

    def _on_call_message(
        self,
        conn: ConnectionId,
        name: str,
        message: Ringing | Answer | Decline | Busy | Hangup | Candidate,
        now: float,
    ) -> None:
        call_id = message.call_id
        sc = self._calls.get(call_id)
        if sc is None:
            detail = "has ended" if call_id in self._ended_ids else "does not exist"
            self._error(conn, ErrorCode.UNKNOWN_CALL, f"call {call_id} {detail}", call_id)
            return
        if name not in (sc.info.caller, sc.info.callee):
            self._error(
                conn, ErrorCode.NOT_YOUR_CALL, f"{name!r} is not a party to {call_id}", call_id
            )
            return
        is_callee = name == sc.info.callee
        state = sc.call.state
        match message:
            case Candidate():
                if not sc.blocked:  # a blocked caller's candidates go nowhere, like its offer
                    self._send_to(sc.other(name), message)
            case Ringing() if is_callee and state is DIALING:
                self._fire(sc, Cause.REACHED, now)
                # The dial timer stops here; the ring timer is the server's only if the
                # profile says so (else a phone hangs up with reason "no_answer").
                sc.timer = None
                if self.settings.ring_timer == "server":
                    sc.timer = (now + self.settings.ring_timeout, Cause.NO_ANSWER)
                self._send_to(sc.info.caller, message)
            case Ringing() if is_callee and state is RINGING:
                pass  # a device that rings again after coming back: nothing new
            case Answer() if is_callee and state in (DIALING, RINGING):
                self._fire(sc, Cause.ANSWERED, now)
                sc.timer = None
                sc.answer_sdp = message.sdp
                self._send_to(sc.info.caller, message)
                if sc.away:  # answered while the caller was away: it must wait for it
                    self._fire(sc, Cause.LINK_LOST, now)
                    self._send_to(name, Reconnecting(call_id))
            case Hangup(reason="no_answer") if state is RINGING:
                # The phone that owns the ring timer gave up.
                self._end(sc, Cause.NO_ANSWER, now, by=name)
            case Decline() | Hangup() if is_callee and state in (DIALING, RINGING):
                # A callee hanging up a ringing call is declining it.
                self._end(sc, Cause.DECLINED, now, by=name)
            case Busy() if is_callee and state in (DIALING, RINGING):
                self._end(sc, Cause.BUSY, now, by=name)
            case Hangup() if state in (DIALING, RINGING):
                self._end(sc, Cause.CANCELED, now, by=name)
            case Hangup(reason="canceled") if state is ANSWERED:
                # The caller canceled before the answer reached it: the cancel wins, and
                # the callee, already in the call, is told the call was canceled.
                self._end(sc, Cause.CANCELED, now, by=name)
            case Hangup() if state in (ANSWERED, RECONNECTING):
                self._end(sc, Cause.HUNG_UP, now, by=name)
            case _:
                role = "callee" if is_callee else "caller"
                self._error(
                    conn,
                    ErrorCode.ILLEGAL_TRANSITION,
                    f"the {role} cannot send {message.__struct_config__.tag} "
                    f"while call {call_id} is {state}",
                    call_id,
                )

    # --- Helpers ---------------------------------------------------------------------------

    def _fire(self, sc: _ServerCall, cause: Cause, now: float) -> None:
        try:
            self._transitions.append(sc.call.fire(cause, now))
        except InvalidTransition:
            # The handlers check the state before firing; reaching this is a bug here.
            logger.exception("! switchboard fired an illegal transition")
            raise

    def _end(self, sc: _ServerCall, cause: Cause, now: float, by: str | None) -> None:
        """Ends a call and tells whoever needs telling.

        Args:
            sc: The call.
            cause: The end cause.
            now: The time.
            by: The party whose own message ended it (it needs no telling), if any.
        """
        # A cancel that crossed the answer voids it: the callee is told like any callee.
        answered = sc.answer_sdp is not None and cause not in (Cause.CANCELED, Cause.NO_ANSWER)
        reached = sc.call.state in (RINGING, ANSWERED)
        self._fire(sc, cause, now)
        info = sc.info
        self._records.append(self._record(sc))
        sc.timer = None
        sc.away.clear()
        del self._calls[info.call_id]
        self._ended_ids.add(info.call_id)
        for party in (info.caller, info.callee):
            self._calls_of.get(party, {}).pop(info.call_id, None)
        ended = CallEnded(info.call_id, str(cause))
        if by != info.caller:
            decline_hidden = cause is Cause.DECLINED and self.settings.decline_as_busy
            reason = Cause.BUSY if decline_hidden else cause
            self._send_to(info.caller, CallEnded(info.call_id, str(reason)))
        if by == info.callee or sc.blocked:
            return
        callee_conn = self._sessions.get(info.callee)
        told = callee_conn is not None and callee_conn == sc.delivered_to
        if callee_conn is not None and (told or answered):
            self._outbox.append((callee_conn, ended))
        if answered or (told and reached):
            return
        # The callee's device never acknowledged this call, or cannot be told it ended:
        # it learns from a notice, now if it is connected, or when it comes back.
        notice = MissedCall(info.call_id, info.caller, info.kind, info.placed_at, str(cause))
        if self.settings.missed_after_reconnect:
            self._notices.setdefault(info.callee, {})[info.call_id] = notice
        if callee_conn is not None:
            self._outbox.append((callee_conn, notice))

    @staticmethod
    def _record(sc: _ServerCall) -> CallDetailRecord:
        summary = summarize(sc.call.transitions)
        info = sc.info
        assert summary.ended_at is not None and summary.end_cause is not None
        return CallDetailRecord(
            call_id=info.call_id,
            caller=info.caller,
            callee=info.callee,
            kind=info.kind,
            placed_at=info.placed_at,
            reached=summary.reached,
            answered_at=summary.answered_at,
            ended_at=summary.ended_at,
            cause=summary.end_cause,
            blocked=sc.blocked,
        )

    def _incoming(self, sc: _ServerCall) -> Incoming:
        info = sc.info
        return Incoming(info.call_id, info.caller, info.kind, sc.offer_sdp, info.placed_at)

    def _send_to(self, name: str, message: ServerMessage) -> None:
        conn = self._sessions.get(name)
        if conn is not None:
            self._outbox.append((conn, message))

    def _error(
        self, conn: ConnectionId, code: ErrorCode, message: str, call_id: str | None = None
    ) -> None:
        self._outbox.append((conn, Error(code, message, call_id)))
