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
- A name may have several devices, each its own connection (``register.device``). An
  offer rings every device of the callee; the first ``answer`` wins and the others are
  told ``answered_elsewhere``; a ``decline`` from one device ends the call for all (the
  caller hears ``declined``, the other devices ``declined_elsewhere``). The caller is the
  one device that sent the offer. Busy, blocks and notices are the name's, not a device's.
- Glare: an offer to a phone whose own unanswered call to the sender is in progress. The
  call with the lower call id survives; the other ends ``glare``, never with a notice.
"""

from __future__ import annotations

import heapq
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
    end_name,
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
from .records import (
    Account,
    AccountCreated,
    BlockChanged,
    CallChanged,
    CallRecord,
    Change,
    DurableState,
    NoticeDropped,
    NoticeKept,
)


__all__ = [
    "CLOSE_ABUSE",
    "CLOSE_REGISTER_TIMEOUT",
    "CLOSE_REPLACED",
    "SERVER",
    "ConnectionId",
    "Switchboard",
    "SwitchboardLimits",
    "SwitchboardSettings",
]

logger = logging.getLogger("voip_sandbox.signaling")

ConnectionId = NewType("ConnectionId", int)
"""A connection, numbered by the driver."""

_End = tuple[str, str | None]
"""A device: its name and device id (``None`` for a name's only device)."""

SERVER: Final = "server"
"""The ``who`` of the switchboard's own transitions."""

CLOSE_REPLACED: Final = (4001, "replaced by a newer connection of the same name")
"""Also for a device: a newer connection of the same name and device replaces it."""
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
class SwitchboardLimits:
    """What one connection may do before it is refused, then cut off.

    Every limit answers with an ``error`` frame naming it; a connection that collects
    ``max_errors`` error replies within ``error_window`` seconds is closed (code 1008).
    Nobody else is affected. The defaults are far above what a phone does.
    """

    messages_per_second: float = 50.0
    """Sustained frames per second per connection (token bucket)."""
    burst: int = 100
    """Frames a connection may send at once before the rate applies."""
    max_calls_per_phone: int = 4
    """Calls in progress a phone may be party to; an offer beyond it gets too_many_calls."""
    max_pending_notices: int = 100
    """Missed-call notices kept per callee; beyond it the oldest is dropped."""
    register_timeout: float = 10.0
    """Seconds a new connection has to register before it is closed."""
    max_errors: int = 20
    """Error replies within ``error_window`` that get a connection closed."""
    error_window: float = 10.0
    """Seconds over which error replies are counted."""


CLOSE_ABUSE: Final = (1008, "too many refused frames")
"""Close code and reason for a connection that kept breaking the rules."""

CLOSE_REGISTER_TIMEOUT: Final = (1008, "no registration in time")
"""Close code and reason for a connection that never registered."""


@dataclass(slots=True)
class _Connection:
    """Per-connection bookkeeping: its rate budget, its refusals, its registration deadline."""

    opened_at: float
    tokens: float
    refilled_at: float
    register_by: float | None
    errors: list[float] = field(default_factory=list)
    closing: bool = False
    """The switchboard asked for it to be closed: its frames are no longer read."""


@dataclass(slots=True)
class _ServerCall:
    """The switchboard's bookkeeping around one call in progress."""

    call: Call
    offer_sdp: str
    blocked: bool
    answer_sdp: str | None = None
    answer_undelivered: bool = False
    """The callee answered while the caller was away, and the caller has not had the answer
    since: if the caller never comes back, the answer never counted for anyone."""
    devices: dict[str, str | None] = field(default_factory=dict)
    """Each party's device in the call: the caller's from its offer, the callee's from its
    answer. A callee with no entry yet is every device it has."""
    delivered_to: set[ConnectionId] = field(default_factory=set)
    """The callee connections the offer was written to (each of its devices, each time)."""
    held_while_ringing: set[ConnectionId] = field(default_factory=set)
    """Callee connections that registered listing this call while it still rang here: the
    device may have answered into a dead radio, and says it again on its return."""
    timer: tuple[float, Cause] | None = None
    """The dial or ring timer: when, and the cause it ends the call with."""
    away: dict[str, float] = field(default_factory=dict)
    """Parties whose link died, with the end of their reconnect grace."""
    restored: CallRecord | None = None
    """For a call recovered after a crash: what the store knew of it."""

    @property
    def info(self) -> CallInfo:
        return self.call.info

    def deadlines(self) -> list[float]:
        """Every time at which a timer of this call is due."""
        due = list(self.away.values())
        if self.timer is not None:
            due.append(self.timer[0])
        return due

    def other(self, name: str) -> str:
        return self.info.callee if name == self.info.caller else self.info.caller


class Switchboard:
    """The signaling server's decisions, fed by a driver; see the module docstring.

    Args:
        settings: The timers.
        durable: State recovered after a crash, if any.
    """

    def __init__(
        self,
        settings: SwitchboardSettings | None = None,
        *,
        limits: SwitchboardLimits | None = None,
        durable: DurableState | None = None,
    ) -> None:
        self.settings = settings or SwitchboardSettings()
        self.limits = limits or SwitchboardLimits()
        durable = durable or DurableState()
        self._recovering = list(durable.calls)
        self.accounts: dict[str, Account] = durable.accounts
        """Every name ever registered or provisioned."""
        self._sessions: dict[str, dict[str | None, ConnectionId]] = {}
        """Each name's registered connections, by device."""
        self._names: dict[ConnectionId, _End] = {}
        self._connections: dict[ConnectionId, _Connection] = {}
        self._calls: dict[str, _ServerCall] = {}
        self._calls_of: dict[str, dict[str, _ServerCall]] = {}
        self._ended_ids: set[str] = set()
        self._notices: dict[str, dict[str, MissedCall]] = durable.notices
        self._outbox: list[tuple[ConnectionId, ServerMessage]] = []
        self._to_close: list[tuple[ConnectionId, int, str]] = []
        self._transitions: list[Transition] = []
        self._records: list[CallRecord] = []
        self._changes: list[Change] = []
        self._now = 0.0
        # Every deadline set, in two heaps (earliest first), so that next_wakeup need not
        # scan every call and connection after each input: with 10,000 idle phones
        # connected, that scan took 0.26 ms. A deadline cleared or replaced since stays in
        # its heap until it comes first, and is dropped then.
        self._register_deadlines: list[tuple[float, ConnectionId]] = []
        self._call_deadlines: list[tuple[float, str]] = []

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
        self._changes.append(AccountCreated(name, account.token_hash))
        self._changes.extend(BlockChanged(name, other, True) for other in sorted(account.blocks))
        return account

    def recover(self, now: float) -> None:
        """Ends the calls that were in progress when the server stopped (as ``dropped``).

        Their phones learn it when they register again (their calls are not held any
        more); a callee that was never reached, or was not there, gets its missed-call
        notice as usual. Call once, right after construction.
        """
        recovering, self._recovering = self._recovering, []
        for record in recovering:
            info = CallInfo(
                record.call_id,
                record.caller,
                record.callee,
                "video" if record.kind == "video" else "audio",
                record.placed_at,
            )
            sc = _ServerCall(
                Call(SERVER, info, state=record.state),
                offer_sdp="",
                blocked=record.blocked,
                answer_sdp="" if record.answered_at is not None else None,
                restored=record,
            )
            self._calls[record.call_id] = sc
            self._calls_of.setdefault(record.caller, {})[record.call_id] = sc
            if not record.blocked:
                self._calls_of.setdefault(record.callee, {})[record.call_id] = sc
        for sc in list(self._calls.values()):
            self._end(sc, Cause.DROPPED, now, by=None)

    def connect(self, conn: ConnectionId, now: float) -> None:
        """A connection was opened. It must register within the register timeout."""
        limits = self.limits
        register_by = now + limits.register_timeout
        self._connections[conn] = _Connection(
            opened_at=now, tokens=float(limits.burst), refilled_at=now, register_by=register_by
        )
        heapq.heappush(self._register_deadlines, (register_by, conn))
        if len(self._register_deadlines) > 2 * len(self._connections) + 64:
            # Mostly connections that registered or left since: keep the live ones only.
            self._register_deadlines = [
                (c.register_by, key)
                for key, c in self._connections.items()
                if c.register_by is not None
            ]
            heapq.heapify(self._register_deadlines)

    def receive(self, conn: ConnectionId, message: PhoneMessage, now: float) -> None:
        """Handles one valid frame from a connection.

        Call :meth:`messages_to_send` (and the other drains) immediately after.
        """
        self._now = now  # every error reply to this frame counts as a refusal at this time
        if self.is_closing(conn) or not self._within_rate(conn, now):
            return
        if isinstance(message, Register):
            self._on_register(conn, message, now)
            return
        end = self._names.get(conn)
        if end is None:
            self._error(
                conn,
                ErrorCode.NOT_REGISTERED,
                "register before anything else",
                getattr(message, "call_id", None),
            )
            return
        name = end[0]
        match message:
            case Offer():
                self._on_offer(conn, end, message, now)
            case Ringing() | Answer() | Decline() | Busy() | Hangup() | Candidate():
                self._on_call_message(conn, end, message, now)
            case Block(name=other):
                blocks = self.accounts[name].blocks
                if other not in blocks:
                    blocks.add(other)
                    self._changes.append(BlockChanged(name, other, True))
            case Unblock(name=other):
                blocks = self.accounts[name].blocks
                if other in blocks:
                    blocks.discard(other)
                    self._changes.append(BlockChanged(name, other, False))
            case MissedCallAck(call_id=call_id):
                # Idempotent: a repeated or unknown ack is not an error.
                if self._notices.get(name, {}).pop(call_id, None) is not None:
                    self._changes.append(NoticeDropped(name, call_id))

    def receive_invalid(self, conn: ConnectionId, error: InvalidMessage, now: float) -> None:
        """Handles a frame that did not parse: the sender is told why; nothing else changes."""
        if not self.is_closing(conn) and self._within_rate(conn, now):
            self._error(conn, error.code, error.message, error.call_id, now=now)

    def disconnect(self, conn: ConnectionId, now: float) -> None:
        """The connection is gone, cleanly or not (the difference is the driver's to log).

        Its calls wait for the reconnect grace; see the module docstring.
        """
        self._connections.pop(conn, None)
        end = self._names.pop(conn, None)
        if end is None:
            return  # never registered, or already replaced by a newer connection
        name, device = end
        devices = self._sessions[name]
        del devices[device]
        if not devices:
            del self._sessions[name]
        for sc in list(self._calls_of.get(name, {}).values()):
            if sc.devices.get(name, device) != device:
                continue  # another device of this name holds this call
            if name not in sc.devices:
                continue  # a callee device before the answer: the others may ring on
            state = sc.call.state
            if state in (ANSWERED, RECONNECTING):
                sc.away[name] = now + self.settings.reconnect_grace
                self._keep_deadline(sc, sc.away[name])
                if state is ANSWERED:
                    self._fire(sc, Cause.LINK_LOST, now)
                    self._send_to(sc, sc.other(name), Reconnecting(sc.info.call_id))
            elif name == sc.info.caller:
                # The callee keeps ringing while the caller may still come back.
                sc.away[name] = now + self.settings.reconnect_grace
                self._keep_deadline(sc, sc.away[name])
            # An absent callee needs nothing: the dial or ring timer runs on, and the
            # offer is delivered again if it comes back in time.

    def wake(self, now: float) -> None:
        """Fires every timer that is due at ``now``."""
        for conn, state in self._connections.items():
            if state.register_by is not None and state.register_by <= now:
                state.register_by = None
                self._close(conn, CLOSE_REGISTER_TIMEOUT)
        for sc in list(self._calls.values()):
            if sc.timer is not None and sc.timer[0] <= now:
                self._end(sc, sc.timer[1], now, by=None)
                continue
            if any(deadline <= now for deadline in sc.away.values()):
                self._end(sc, self._gone_for_good(sc), now, by=None)

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

    def records_received(self) -> list[CallRecord]:
        """Returns the final records (CDRs) of the calls that ended since the last call."""
        out, self._records = self._records, []
        return out

    def changes_to_keep(self) -> list[Change]:
        """Returns the changes to commit to the store, in order, and forgets them.

        Commit them before sending :meth:`messages_to_send`: what a phone is told must
        already be on disk (write-ahead of acknowledgement).
        """
        out, self._changes = self._changes, []
        return out

    def next_wakeup(self) -> float | None:
        """When :meth:`wake` must next be called, or ``None`` when no timer runs."""
        registers = self._register_deadlines
        while registers:
            at, conn = registers[0]
            state = self._connections.get(conn)
            if state is not None and state.register_by == at:
                break
            heapq.heappop(registers)  # registered, or gone, since
        calls = self._call_deadlines
        while calls:
            at, call_id = calls[0]
            sc = self._calls.get(call_id)
            if sc is not None and at in sc.deadlines():
                break
            heapq.heappop(calls)  # that timer was stopped or replaced, or the call ended
        return min((heap[0][0] for heap in (registers, calls) if heap), default=None)

    # --- Introspection ---------------------------------------------------------------------

    def is_closing(self, conn: ConnectionId) -> bool:
        """Whether the switchboard asked for ``conn`` to be closed (its frames are ignored)."""
        state = self._connections.get(conn)
        return state is not None and state.closing

    def name_of(self, conn: ConnectionId) -> str | None:
        """The end a connection registered as (``bob``, or ``bob#2`` for a device), if any."""
        end = self._names.get(conn)
        return None if end is None else end_name(*end)

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
            account = Account(name, Account.hash_token(message.token))
            self.accounts[name] = account
            self._changes.append(AccountCreated(name, account.token_hash))
        elif not account.token_matches(message.token):
            # The holder of the name is not disturbed: nothing else happens.
            self._error(conn, ErrorCode.BAD_TOKEN, f"{name!r} is registered with another token")
            return
        device = message.device
        devices = self._sessions.setdefault(name, {})
        stale = devices.get(device)
        if stale is not None:
            # A phone that reconnects before its old connection is noticed dead would
            # otherwise be told "name taken": the token proves it, so the new one wins.
            # Only the same device is replaced; the name's other devices stay connected.
            del self._names[stale]
            self._to_close.append((stale, *CLOSE_REPLACED))
        devices[device] = conn
        self._names[conn] = (name, device)
        self._connections[conn].register_by = None

        held = set(message.calls)
        resumed: list[str] = []
        follow_ups: list[ServerMessage] = []
        for sc in list(self._calls_of.get(name, {}).values()):
            call_id = sc.info.call_id
            if sc.devices.get(name, device) != device:
                continue  # held by another device of this name: none of this one's business
            is_callee = name == sc.info.callee
            ringing = is_callee and sc.call.state in (DIALING, RINGING)
            if call_id in held:
                resumed.append(call_id)
                sc.away.pop(name, None)
                if ringing:
                    sc.delivered_to.add(conn)
                    sc.held_while_ringing.add(conn)
                follow_ups.extend(self._catch_up(sc, name, now))
            elif ringing:
                # Back while the caller still waits: the device rings (again).
                sc.away.pop(name, None)
                sc.delivered_to.add(conn)
                follow_ups.append(self._incoming(sc))
            else:
                # The phone no longer holds a call the server kept for it (it was switched
                # off, or gave up waiting): the call cannot go on.
                self._end(sc, self._gone_for_good(sc), now, by=(name, device))
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
            self._send_to(sc, sc.other(name), Resumed(call_id))
        if name == sc.info.caller:
            if sc.call.state is RINGING:
                out.append(Ringing(call_id))
            elif sc.answer_sdp is not None:
                out.append(Answer(call_id, sc.answer_sdp))
                sc.answer_undelivered = False
        # Say plainly whether the call goes on, so the returning phone never guesses:
        # it may have gone Reconnecting… without the server noticing anything.
        if sc.call.state is RECONNECTING:
            out.append(Reconnecting(call_id))  # the other party is still away
        elif sc.call.state is ANSWERED:
            out.append(Resumed(call_id))
        return out

    def _on_offer(self, conn: ConnectionId, end: _End, offer: Offer, now: float) -> None:
        name = end[0]
        call_id = offer.call_id
        if offer.to == name:
            self._error(conn, ErrorCode.SELF_CALL, "a phone cannot call itself", call_id)
            return
        callee = self.accounts.get(offer.to)
        if callee is None:
            self._error(conn, ErrorCode.UNKNOWN_PHONE, f"no phone named {offer.to!r}", call_id)
            return
        if len(self._calls_of.get(name, {})) >= self.limits.max_calls_per_phone:
            limit = self.limits.max_calls_per_phone
            self._error(conn, ErrorCode.TOO_MANY_CALLS, f"at most {limit} calls at once", call_id)
            return
        if call_id in self._calls or call_id in self._ended_ids:
            self._error(conn, ErrorCode.DUPLICATE_CALL, f"call {call_id} exists", call_id)
            return
        info = CallInfo(call_id, name, offer.to, offer.kind, now)
        sc = _ServerCall(Call(SERVER, info), offer.sdp, blocked=name in callee.blocks)
        sc.devices[name] = end[1]
        # Glare is looked for before this call is filed, so it cannot find itself. A blocked
        # call can lose glare too: its caller knows the rival (it rings there), and its
        # phone has already ended its own call, foreseeing this (exploration seed 9080733:
        # kept dialing, such calls piled up to too_many_calls).
        rival = self._glare_rival(name, offer.to)
        self._calls[call_id] = sc
        self._calls_of.setdefault(name, {})[call_id] = sc
        self._fire(sc, Cause.PLACED, now)
        if sc.blocked and self.settings.block_revealed:
            self._end(sc, Cause.BLOCKED, now, by=None)
            return
        if rival is not None:
            # The lower call id wins, as in Matrix; code-point order, so every party that
            # compares the two ids (the server, and each phone) reaches the same verdict.
            if rival.info.call_id < call_id:
                self._end(sc, Cause.GLARE, now, by=None)
                return
            if not sc.blocked:
                # A blocked call that wins ends nothing: the rival's caller blocked this
                # caller, and its call ending glare would tell it of the call.
                self._end(rival, Cause.GLARE, now, by=None)
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
        self._keep_deadline(sc, sc.timer[0])
        if not sc.blocked:
            # Every device of the callee rings.
            for callee_conn in self._sessions.get(offer.to, {}).values():
                sc.delivered_to.add(callee_conn)
                self._outbox.append((callee_conn, self._incoming(sc)))

    def _glare_rival(self, caller: str, callee: str) -> _ServerCall | None:
        """The callee's own unanswered, unblocked call to the caller, if one is in progress."""
        for other in self._calls_of.get(callee, {}).values():
            info = other.info
            if (
                info.caller == callee
                and info.callee == caller
                and not other.blocked
                and other.call.state in (DIALING, RINGING)
            ):
                return other
        return None

    def _on_call_message(
        self,
        conn: ConnectionId,
        end: _End,
        message: Ringing | Answer | Decline | Busy | Hangup | Candidate,
        now: float,
    ) -> None:
        name, device = end
        call_id = message.call_id
        sc = self._calls.get(call_id)
        if sc is None:
            detail = "has ended" if call_id in self._ended_ids else "does not exist"
            self._error(conn, ErrorCode.UNKNOWN_CALL, f"call {call_id} {detail}", call_id)
            return
        is_caller = name == sc.info.caller and sc.devices.get(name, device) == device
        if not is_caller and name != sc.info.callee:
            who = end_name(name, device)
            self._error(
                conn, ErrorCode.NOT_YOUR_CALL, f"{who!r} is not a party to {call_id}", call_id
            )
            return
        is_callee = not is_caller
        if is_callee and sc.devices.get(name, device) != device:
            # Another device of the callee answered first; this one's frame crossed that.
            # Say so again (the device ends the call, or has already), and nothing else.
            if not isinstance(message, Candidate):
                self._outbox.append((conn, CallEnded(call_id, str(Cause.ANSWERED_ELSEWHERE))))
            return
        state = sc.call.state
        match message:
            case Candidate():
                if not sc.blocked:  # a blocked caller's candidates go nowhere, like its offer
                    self._send_to(sc, sc.other(name), message)
            case Ringing() if is_callee and state is DIALING:
                self._fire(sc, Cause.REACHED, now)
                # The dial timer stops here; the ring timer is the server's only if the
                # profile says so (else a phone hangs up with reason "no_answer").
                sc.timer = None
                if self.settings.ring_timer == "server":
                    sc.timer = (now + self.settings.ring_timeout, Cause.NO_ANSWER)
                    self._keep_deadline(sc, sc.timer[0])
                self._send_to(sc, sc.info.caller, message)
            case Ringing() if is_callee and state is RINGING:
                pass  # a device that rings again after coming back: nothing new
            case Answer() if is_callee and state in (DIALING, RINGING):
                self._fire(sc, Cause.ANSWERED, now)
                sc.timer = None
                sc.answer_sdp = message.sdp
                # The first answer wins: from now on this device is the callee.
                sc.devices[name] = device
                elsewhere = CallEnded(call_id, str(Cause.ANSWERED_ELSEWHERE))
                for other_conn in self._sessions.get(name, {}).values():
                    if other_conn != conn and other_conn in sc.delivered_to:
                        self._outbox.append((other_conn, elsewhere))
                self._send_to(sc, sc.info.caller, message)
                if sc.away:  # answered while the caller was away: it must wait for it
                    sc.answer_undelivered = True
                    self._fire(sc, Cause.LINK_LOST, now)
                    self._send_to(sc, name, Reconnecting(call_id))
                elif conn in sc.held_while_ringing:
                    # The device answered into a dead radio and says it again now that it
                    # is back (exploration seed 16019403); it waits at Reconnecting… for
                    # this call to go on.
                    self._outbox.append((conn, Resumed(call_id)))
            case Answer() if (
                is_callee and state in (ANSWERED, RECONNECTING) and sc.devices.get(name) == device
            ):
                pass  # the answering device says it again once back; the first had arrived
            case Hangup(reason="no_answer") if state is RINGING:
                # The phone that owns the ring timer gave up.
                self._end(sc, Cause.NO_ANSWER, now, by=end)
            case Hangup(reason="glare") if not is_callee and state in (DIALING, RINGING):
                # The caller's phone foresaw this call losing glare to one that had already
                # ended here: it ended the call itself, so it ends here as it did there.
                self._end(sc, Cause.GLARE, now, by=end)
            case Decline() | Hangup() if is_callee and state in (DIALING, RINGING):
                # A callee hanging up a ringing call is declining it.
                self._end(sc, Cause.DECLINED, now, by=end)
            case Busy() if is_callee and state in (DIALING, RINGING):
                self._end(sc, Cause.BUSY, now, by=end)
            case Hangup() if state in (DIALING, RINGING):
                self._end(sc, Cause.CANCELED, now, by=end)
            case Hangup(reason="failed" | "dropped") if state in (ANSWERED, RECONNECTING):
                # A media call's phone gave up on its media (peers/phone.py decides):
                # the other party ends the call with the same cause.
                cause = Cause.FAILED if message.reason == "failed" else Cause.DROPPED
                self._end(sc, cause, now, by=end)
            case Hangup(reason="canceled" | "glare") if state is ANSWERED:
                # The caller canceled (or gave the call up to glare) before the answer
                # reached it: the cancel wins, and the callee, already in the call, is told
                # the call was canceled.
                self._end(sc, Cause.CANCELED, now, by=end)
            case Hangup() if state in (ANSWERED, RECONNECTING):
                self._end(sc, Cause.HUNG_UP, now, by=end)
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

    def _keep_deadline(self, sc: _ServerCall, at: float) -> None:
        """Files a timer of ``sc`` that was just set, for :meth:`next_wakeup`."""
        heapq.heappush(self._call_deadlines, (at, sc.info.call_id))
        # A call has at most three deadlines (its timer, each party away); past that, most
        # are of calls that ended since: keep the live ones only, so that memory stays
        # bounded under load however long one old deadline stays first.
        if len(self._call_deadlines) > 6 * len(self._calls) + 64:
            self._call_deadlines = [
                (due, call_id) for call_id, c in self._calls.items() for due in c.deadlines()
            ]
            heapq.heapify(self._call_deadlines)

    def _fire(self, sc: _ServerCall, cause: Cause, now: float) -> None:
        try:
            self._transitions.append(sc.call.fire(cause, now))
        except InvalidTransition:
            # The handlers check the state before firing; reaching this is a bug here.
            logger.exception("! switchboard fired an illegal transition")
            raise
        self._changes.append(CallChanged(self._record(sc)))

    def _end(self, sc: _ServerCall, cause: Cause, now: float, by: _End | None) -> None:
        """Ends a call and tells whoever needs telling.

        Args:
            sc: The call.
            cause: The end cause.
            now: The time.
            by: The device whose own message ended it (it needs no telling), if any.
        """
        # A cancel that crossed the answer voids it: the callee is told like any callee.
        answered = sc.answer_sdp is not None and cause not in (Cause.CANCELED, Cause.NO_ANSWER)
        reached = sc.call.state in (RINGING, ANSWERED, RECONNECTING)
        self._fire(sc, cause, now)
        info = sc.info
        self._records.append(self._record(sc))  # the call's CDR
        sc.timer = None
        sc.away.clear()
        del self._calls[info.call_id]
        self._ended_ids.add(info.call_id)
        for party in (info.caller, info.callee):
            self._calls_of.get(party, {}).pop(info.call_id, None)
        by_caller = by is not None and by[0] == info.caller
        by_callee = by is not None and by[0] == info.callee
        if not by_caller:
            decline_hidden = cause is Cause.DECLINED and self.settings.decline_as_busy
            reason = Cause.BUSY if decline_hidden else cause
            self._send_to(sc, info.caller, CallEnded(info.call_id, str(reason)))
        if sc.blocked:
            return
        callee_conns = self._sessions.get(info.callee, {})
        if answered:
            # Only the answering device is still in the call; the others were told.
            conn = callee_conns.get(sc.devices.get(info.callee))
            if conn is not None and not by_callee:
                self._outbox.append((conn, CallEnded(info.call_id, str(cause))))
            return
        # What one device did, the others hear as done elsewhere.
        told_cause = Cause.DECLINED_ELSEWHERE if by_callee and cause is Cause.DECLINED else cause
        told = False
        for device, conn in callee_conns.items():
            if conn in sc.delivered_to:
                told = True
                if by != (info.callee, device):
                    self._outbox.append((conn, CallEnded(info.call_id, str(told_cause))))
        if by_callee or cause is Cause.GLARE or (told and reached):
            # A device of the callee ended it itself, so the person knows; a glare loser
            # was replaced by the surviving call, which is the one the person hears of.
            return
        # No device of the callee acknowledged this call, or none can be told it ended:
        # the person learns from a notice, now if a device is connected, or when one is.
        notice = MissedCall(info.call_id, info.caller, info.kind, info.placed_at, str(cause))
        if self.settings.missed_after_reconnect:
            kept = self._notices.setdefault(info.callee, {})
            kept[info.call_id] = notice
            self._changes.append(NoticeKept(info.callee, notice))
            while len(kept) > self.limits.max_pending_notices:
                oldest = next(iter(kept))
                del kept[oldest]
                self._changes.append(NoticeDropped(info.callee, oldest))
                logger.warning("! notice %s for %s dropped: too many pending", oldest, info.callee)
        self._outbox.extend((conn, notice) for conn in callee_conns.values())

    @staticmethod
    def _gone_for_good(sc: _ServerCall) -> Cause:
        """How a call ends when a party that went away will not come back for it.

        ``dropped``, unless the caller left before the answer reached it: then, as far as
        the caller ever knew, it gave up on a ringing call, and the callee is told
        ``canceled`` so that both logs agree the call was never answered.
        """
        return Cause.CANCELED if sc.answer_undelivered else Cause.DROPPED

    @staticmethod
    def _record(sc: _ServerCall) -> CallRecord:
        summary = summarize(sc.call.transitions)
        info = sc.info
        restored = sc.restored
        reached = summary.reached or (restored is not None and restored.reached)
        answered_at = summary.answered_at
        if answered_at is None and restored is not None and summary.end_cause is Cause.DROPPED:
            answered_at = restored.answered_at  # answered before the crash
        return CallRecord(
            call_id=info.call_id,
            caller=info.caller,
            callee=info.callee,
            kind=info.kind,
            placed_at=info.placed_at,
            state=sc.call.state,
            blocked=sc.blocked,
            reached=reached,
            answered_at=answered_at,
            ended_at=summary.ended_at,
            cause=summary.end_cause,
        )

    def _incoming(self, sc: _ServerCall) -> Incoming:
        info = sc.info
        return Incoming(info.call_id, info.caller, info.kind, sc.offer_sdp, info.placed_at)

    def _send_to(self, sc: _ServerCall, name: str, message: ServerMessage) -> None:
        """Sends to a party of ``sc``: its device in the call, or (a callee before the
        answer) each of its devices the offer was delivered to."""
        devices = self._sessions.get(name, {})
        if name in sc.devices:
            conn = devices.get(sc.devices[name])
            if conn is not None:
                self._outbox.append((conn, message))
            return
        self._outbox.extend((conn, message) for conn in devices.values() if conn in sc.delivered_to)

    def _error(
        self,
        conn: ConnectionId,
        code: ErrorCode,
        message: str,
        call_id: str | None = None,
        *,
        now: float | None = None,
    ) -> None:
        self._outbox.append((conn, Error(code, message, call_id)))
        state = self._connections.get(conn)
        if state is None:
            return
        now = self._now if now is None else now
        # Refusals are counted over a sliding window; a connection that keeps earning
        # them is cut off, and nobody else notices.
        state.errors = [t for t in state.errors if t > now - self.limits.error_window]
        state.errors.append(now)
        if len(state.errors) >= self.limits.max_errors:
            self._close(conn, CLOSE_ABUSE)

    def _close(self, conn: ConnectionId, close: tuple[int, str]) -> None:
        state = self._connections.get(conn)
        if state is not None and not state.closing:
            state.closing = True
            self._to_close.append((conn, *close))

    def _within_rate(self, conn: ConnectionId, now: float) -> bool:
        """Spends a token of the connection's budget; refuses the frame if there is none."""
        state = self._connections.get(conn)
        if state is None:
            return True
        limits = self.limits
        elapsed = max(0.0, now - state.refilled_at)
        state.tokens = min(float(limits.burst), state.tokens + elapsed * limits.messages_per_second)
        state.refilled_at = now
        if state.tokens >= 1.0:
            state.tokens -= 1.0
            return True
        self._error(
            conn,
            ErrorCode.RATE_LIMITED,
            f"more than {limits.messages_per_second:g} frames per second",
            now=now,
        )
        return False
