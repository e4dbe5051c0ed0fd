"""A phone's logic, without I/O: its screen, its calls, its incoming-call behaviour.

Like :mod:`signaling.switchboard`, a :class:`Phone` is fed inputs and drained of outputs.
Inputs are what the person does (:meth:`Phone.place_call`, :meth:`~Phone.answer`,
:meth:`~Phone.hang_up`, :meth:`~Phone.power_off`…), what the network does
(:meth:`~Phone.link_up`, :meth:`~Phone.receive`, :meth:`~Phone.link_down`) and the clock
(:meth:`~Phone.wake`). Outputs are the frames to send (:meth:`~Phone.messages_to_send`), the
call transitions (:meth:`~Phone.transitions_received`) and screen changes
(:meth:`~Phone.screens_received`). The driver in :mod:`peers.client` creates SDP with aiortc
and hands it in as text, so nothing here imports aiortc, websockets or asyncio.

A phone knows only what reached it. It learns that a call rang on the other side from a
``ringing`` frame, that it ended from ``call_ended`` or a missed-call notice, and that its
own link died from its driver (a heartbeat that went unanswered, or a closed socket). That
is all its call log is built from (DESIGN.md rule 3).

Link loss: calls in progress wait for the reconnect grace. An answered call shows
Reconnecting…; on reconnecting the phone lists the calls it still holds, and the server
says which of them go on. Calls still waiting when the grace runs out end as ``dropped``.
Powering off loses every call at once (they end ``dropped``), because a switched-off
phone keeps no state but its call log.

Media calls (``media_timeout`` set): after the answer the driver reports what the media
does (:meth:`~Phone.media_connected`, :meth:`~Phone.media_flowing`,
:meth:`~Phone.media_failed`) and the phone decides what it means. Media not connected within
``media_timeout`` of the answer ends the call ``failed``; media that stops for
``media_stall`` seconds turns the call Reconnecting… (``link_lost``, as a lost link does),
and if it does not come back within the reconnect grace the call ends ``dropped``. Either
way the phone hangs up with that reason, so the other end logs the same cause.

Devices: a :class:`Phone` with a ``device`` is one of several devices of its name. It
registers with that device id, and its transitions and screens are recorded under its end
(``bob#2``). The server tells it when another device of the name answered or declined
(``call_ended`` ``answered_elsewhere`` / ``declined_elsewhere``).

Glare: an ``incoming`` from the very phone this one is calling, while that call is still
unanswered, is not a busy line: both wanted to talk. The phone applies the server's rule
(the lower call id survives) on its own, without a frame: if the incoming call has the
lower id, its own call ends ``glare`` and the incoming one rings; otherwise the incoming
call is ignored (the server ends it ``glare`` too, and it never enters the call log).
The same holds when the person calls back the phone that is ringing this one (the offer
was being made as the call came in, Matrix's "glare while preparing"): the call is
placed, and whichever of the two has the higher id ends ``glare`` here at once.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from signaling.calls import (
    ANSWERED,
    DIALING,
    END_CAUSES,
    ENDED,
    RECONNECTING,
    RINGING,
    Call,
    CallInfo,
    CallSummary,
    Cause,
    Transition,
    end_name,
    party_name,
    summarize,
)
from signaling.messages import (
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


__all__ = ["Phone", "PhoneError", "Screen", "ScreenChange"]


class Screen(enum.StrEnum):
    """What the phone's screen shows."""

    OFF = "off"
    IDLE = "idle"
    CALLING = "calling"
    """Calling…: the call is placed, the callee's device has not been reached."""
    RINGING = "ringing"
    """Ringing…: the callee's device acknowledged the call and is alerting."""
    INCOMING = "incoming"
    """This phone is ringing."""
    IN_CALL = "in_call"
    RECONNECTING = "reconnecting"
    """Reconnecting…: a call is in progress but a link (ours or theirs) is down."""
    ENDED = "ended"
    """Call ended: the last call is over."""


@dataclass(frozen=True, slots=True)
class ScreenChange:
    """The screen of the end ``who`` (``bob``, or ``bob#2`` for a device) changed at ``at``."""

    who: str
    from_screen: Screen
    to_screen: Screen
    at: float


class PhoneError(Exception):
    """The person asked for something this phone cannot do now (nothing changed)."""


_LIVE: Final = (DIALING, RINGING, ANSWERED, RECONNECTING)


@dataclass(slots=True)
class _MediaWatch:
    """The media timer of one answered media call: a single deadline, three meanings."""

    deadline: float
    """Not connected: the media timeout. Connected: when silence counts as a stall.
    Stalled: when the reconnect grace for the media runs out."""
    connected: bool = False
    stalled: bool = False


@dataclass(slots=True)
class _PhoneCall:
    call: Call
    offer_sdp: str | None = None
    answer_sdp: str | None = None
    glare_told: bool = False
    """Whether the server was told that this call, which lost glare here, is over."""

    @property
    def is_outgoing(self) -> bool:
        return party_name(self.call.who) == self.call.info.caller

    @property
    def peer(self) -> str:
        info = self.call.info
        return info.callee if self.is_outgoing else info.caller


def _random_call_id() -> str:
    return secrets.token_hex(8)


class Phone:
    """One simulated phone's logic; see the module docstring.

    Args:
        name: The phone's name.
        token: Its registration token.
        reconnect_grace: How long calls wait for a dead link before ending ``dropped``.
        new_call_id: Makes a fresh call id (seed it for reproducible runs).
        blocks: The starting block list.
        powered: Whether it starts switched on.
        online: Whether it starts out of airplane mode.
        ring_timer: Who ends an unanswered ringing call (the profile's policy): when it
            is this phone's role (``caller`` or ``callee``), the phone itself hangs up
            after ``ring_timeout`` with reason ``no_answer``.
        ring_timeout: Seconds of ringing before that.
        media_timeout: For media calls, seconds after the answer within which the media
            must connect, or the call ends ``failed``; ``None``: signaling only, no
            media timer.
        media_stall: For media calls, seconds without a received packet after which
            the media counts as lost (Reconnecting…).
        device: Which of its name's devices this phone is; ``None`` for a name's only one.
    """

    def __init__(
        self,
        name: str,
        token: str,
        *,
        reconnect_grace: float = 10.0,
        new_call_id: Callable[[], str] = _random_call_id,
        blocks: tuple[str, ...] = (),
        ring_timer: Literal["server", "caller", "callee"] = "server",
        ring_timeout: float = 45.0,
        powered: bool = True,
        online: bool = True,
        media_timeout: float | None = None,
        media_stall: float = 1.0,
        device: str | None = None,
    ) -> None:
        self.name = name
        self.device = device
        self.end = end_name(name, device)
        """Whose view this phone's transitions and screens are: ``bob``, or ``bob#2``."""
        self.media_timeout = media_timeout
        self.media_stall = media_stall
        self._media: dict[str, _MediaWatch] = {}
        self.ring_timer = ring_timer
        self.ring_timeout = ring_timeout
        self._ring_deadlines: dict[str, float] = {}
        self.token = token
        self.reconnect_grace = reconnect_grace
        self._new_call_id = new_call_id
        self.powered = powered
        """Whether the phone is switched on."""
        self.online = online
        """False in airplane mode."""
        self.registered = False
        """Whether the server has accepted this phone's current connection."""
        self.blocks: set[str] = set(blocks)
        """The block list as the person set it."""
        self.errors: list[Error] = []
        """Every error the server sent this phone, oldest first."""
        self._calls: dict[str, _PhoneCall] = {}
        self._unsynced_blocks: dict[str, bool] = {}
        self._grace_deadline: float | None = None
        self._outbox: list[PhoneMessage] = []
        self._transitions: list[Transition] = []
        self._screens: list[ScreenChange] = []
        self._screen = self._compute_screen()

    # --- What the person does --------------------------------------------------------------

    def place_call(self, callee: str, kind: Literal["audio", "video"], sdp: str, now: float) -> str:
        """Calls ``callee`` with the SDP offer ``sdp``.

        Returns:
            The new call's id.

        Raises:
            PhoneError: The phone is off, has no connection, or is in a call already.
        """
        self.check_call(callee)
        rival = self.active_call  # not None only for glare: the callee is ringing this phone
        call_id = self._new_call_id()
        info = CallInfo(call_id, self.name, callee, kind, now)
        pc = _PhoneCall(Call(self.end, info), offer_sdp=sdp)
        self._calls[call_id] = pc
        self._fire(pc, Cause.PLACED, now)
        # Sent even when it is about to lose: the server decides, the phone only foresees.
        self._send(Offer(call_id=call_id, to=callee, kind=kind, sdp=sdp))
        if rival is not None:
            loser = pc if rival.call.call_id < call_id else rival
            self._fire(loser, Cause.GLARE, now)
        self._done(now)
        return call_id

    def check_call(self, callee: str) -> None:
        """Raises :class:`PhoneError` if calling ``callee`` is impossible right now.

        Drivers call this before the (costly) SDP offer is made.
        """
        self._require_usable("call")
        if not self.registered:
            raise PhoneError(f"{self.name} cannot call: it has no connection to the server")
        if callee == self.name:
            raise PhoneError(f"{self.name} cannot call itself")
        pc = self.active_call
        if pc is not None and not _calls_back(pc, callee):
            raise PhoneError(f"{self.name} cannot call: it is in a call already")

    def answer(self, sdp: str, now: float) -> str:
        """Picks up the ringing call with the SDP answer ``sdp``; returns its id.

        Raises:
            PhoneError: Nothing is ringing, or the phone knows it has no connection (its
                screen shows Reconnecting…, not the call): an answer nobody can hear would
                leave this end in a call the other end never saw.
        """
        pc = self._ringing_or_fail("answer")
        if not self.registered:
            raise PhoneError(f"{self.name} cannot answer: not connected (Reconnecting…)")
        self._fire(pc, Cause.ANSWERED, now)
        pc.answer_sdp = sdp
        self._send(Answer(call_id=pc.call.call_id, sdp=sdp))
        self._done(now)
        return pc.call.call_id

    def decline(self, now: float) -> str:
        """Refuses the ringing call; returns its id.

        Raises:
            PhoneError: Nothing is ringing.
        """
        pc = self._ringing_or_fail("decline")
        self._fire(pc, Cause.DECLINED, now)
        self._send(Decline(call_id=pc.call.call_id))
        self._done(now)
        return pc.call.call_id

    def hang_up(self, now: float) -> str:
        """Ends the call in progress (a ringing incoming call is declined); returns its id.

        Raises:
            PhoneError: There is no call in progress.
        """
        self._require_usable("hang up")
        pc = self.active_call
        if pc is None:
            raise PhoneError(f"{self.name} cannot hang up: it is not in a call")
        call = pc.call
        if not pc.is_outgoing and call.state is RINGING:
            return self.decline(now)
        if call.state in (DIALING, RINGING):
            self._fire(pc, Cause.CANCELED, now)
            self._send(Hangup(call_id=call.call_id, reason="canceled"))
        else:
            self._fire(pc, Cause.HUNG_UP, now)
            self._send(Hangup(call_id=call.call_id))
        self._done(now)
        return call.call_id

    def block(self, name: str, now: float) -> None:
        """Adds ``name`` to the block list (synced to the server now or on reconnect)."""
        self._require_usable("block")
        self.blocks.add(name)
        self._sync_block(name, blocked=True)
        self._done(now)

    def unblock(self, name: str, now: float) -> None:
        """Removes ``name`` from the block list."""
        self._require_usable("unblock")
        self.blocks.discard(name)
        self._sync_block(name, blocked=False)
        self._done(now)

    def power_off(self, now: float) -> None:
        """Switches the phone off: calls in progress are lost (they end ``dropped``).

        The driver must cut the link abruptly (no close frame), as a dead battery would.
        """
        if not self.powered:
            raise PhoneError(f"{self.name} is off already")
        self._end_all(Cause.DROPPED, now)
        self.powered = False
        self.registered = False
        self._grace_deadline = None
        self._outbox.clear()
        self._done(now)

    def power_on(self, now: float) -> None:
        """Switches the phone on; the driver then connects when the radio allows."""
        if self.powered:
            raise PhoneError(f"{self.name} is on already")
        self.powered = True
        self._done(now)

    def go_offline(self, now: float) -> None:
        """Airplane mode on: the driver closes the connection cleanly."""
        self._require_usable("go offline")
        self.online = False
        self._done(now)

    def go_online(self, now: float) -> None:
        """Airplane mode off: the driver reconnects."""
        if not self.powered:
            raise PhoneError(f"{self.name} cannot go online: it is off")
        if self.online:
            raise PhoneError(f"{self.name} is online already")
        self.online = True
        self._done(now)

    # --- What the network does -------------------------------------------------------------

    def link_up(self, now: float) -> None:
        """A connection to the server is open: registers, listing the calls it still holds."""
        held = [pc.call.call_id for pc in self._live_calls()]
        register = Register(name=self.name, token=self.token, calls=held, device=self.device)
        self._send(register, force=True)
        self._done(now)

    def link_down(self, now: float) -> None:
        """The connection is gone (closed, reset, or found dead by the heartbeat)."""
        if not self.registered:
            return
        self.registered = False
        live = self._live_calls()
        for pc in live:
            if pc.call.state is ANSWERED:
                self._fire(pc, Cause.LINK_LOST, now)
        if live and self._grace_deadline is None:
            self._grace_deadline = now + self.reconnect_grace
        self._done(now)

    def receive(self, message: ServerMessage, now: float) -> None:
        """Handles one frame from the server.

        A switched-off phone hears nothing: a frame its driver had read before the power
        went is lost with it (else a call could start ringing on a dead phone).
        """
        if not self.powered:
            return
        match message:
            case Registered():
                self._on_registered(message, now)
            case Incoming():
                self._on_incoming(message, now)
            case Ringing(call_id=call_id):
                pc = self._calls.get(call_id)
                if pc is not None and pc.is_outgoing and pc.call.state is DIALING:
                    self._fire(pc, Cause.REACHED, now)
                elif pc is not None:
                    self._carried_on(pc)
            case Answer(call_id=call_id, sdp=sdp):
                pc = self._calls.get(call_id)
                if pc is not None and pc.is_outgoing and pc.call.state in (DIALING, RINGING):
                    pc.answer_sdp = sdp
                    self._fire(pc, Cause.ANSWERED, now)
                elif pc is not None:
                    self._carried_on(pc)
            case CallEnded(call_id=call_id, reason=reason):
                pc = self._calls.get(call_id)
                if pc is not None:
                    self._end(pc, _end_cause(reason), now)
            case Reconnecting(call_id=call_id):
                pc = self._calls.get(call_id)
                if pc is not None and pc.call.state is ANSWERED:
                    self._fire(pc, Cause.LINK_LOST, now)
            case Resumed(call_id=call_id):
                pc = self._calls.get(call_id)
                if pc is not None and pc.call.state is RECONNECTING and self.registered:
                    self._fire(pc, Cause.RESUMED, now)
            case MissedCall():
                self._on_missed_call(message, now)
            case Candidate():
                pass  # media negotiation is the driver's; the phone's state does not change
            case Error(code=code, call_id=call_id):
                self.errors.append(message)
                pc = self._calls.get(call_id) if call_id is not None else None
                if pc is not None and pc.is_outgoing and code in _OFFER_REFUSALS:
                    # The server never placed the call: nobody will ever end it but us.
                    self._end(pc, Cause.UNREACHABLE, now)
        self._done(now)

    def wake(self, now: float) -> None:
        """Fires the reconnect-grace timer and this phone's ring timers that are due."""
        if self._grace_deadline is not None and self._grace_deadline <= now:
            self._grace_deadline = None
            if not self.registered:
                self._end_all(Cause.DROPPED, now)
        for call_id, deadline in list(self._ring_deadlines.items()):
            pc = self._calls[call_id]
            if deadline <= now and pc.call.state is RINGING:
                self._fire(pc, Cause.NO_ANSWER, now)
                self._send(Hangup(call_id=call_id, reason="no_answer"))
        for call_id, watch in list(self._media.items()):
            if watch.deadline <= now:
                self._media_due(self._calls[call_id], watch, now)
        self._done(now)

    # --- What the media does (media calls only) ----------------------------------------------

    def media_connected(self, call_id: str, now: float) -> None:
        """The driver's media for ``call_id`` connected (ICE and DTLS are up)."""
        watch = self._media.get(call_id)
        if watch is not None and not watch.connected:
            watch.connected = True
            watch.deadline = now + self.media_stall
        self._done(now)

    def media_flowing(self, call_id: str, now: float) -> None:
        """Packets for ``call_id`` arrived since the driver last said so."""
        watch = self._media.get(call_id)
        if watch is not None and watch.connected:
            watch.deadline = now + self.media_stall
            if watch.stalled:
                watch.stalled = False
                pc = self._calls[call_id]
                # Back within the grace. While our own link is down, the server's
                # ``resumed`` decides instead (the other party may be away too).
                if pc.call.state is RECONNECTING and self.registered:
                    self._fire(pc, Cause.RESUMED, now)
        self._done(now)

    def media_failed(self, call_id: str, now: float) -> None:
        """The driver's media for ``call_id`` failed or closed by itself."""
        watch = self._media.get(call_id)
        if watch is not None:
            if not watch.connected:
                watch.deadline = now  # it will not connect now: the media timer's verdict
            elif not watch.stalled:
                watch.deadline = now  # a stall from this moment
            self._media_due(self._calls[call_id], watch, now)
        self._done(now)

    def _media_due(self, pc: _PhoneCall, watch: _MediaWatch, now: float) -> None:
        if pc.call.is_over:
            return
        call_id = pc.call.call_id
        if not watch.connected:
            self._end(pc, Cause.FAILED, now)
            self._send(Hangup(call_id=call_id, reason="failed"))
        elif not watch.stalled:
            watch.stalled = True
            watch.deadline = now + self.reconnect_grace
            if pc.call.state is ANSWERED:
                self._fire(pc, Cause.LINK_LOST, now)
        else:
            self._end(pc, Cause.DROPPED, now)
            self._send(Hangup(call_id=call_id, reason="dropped"))

    # --- Outputs and state -----------------------------------------------------------------

    def messages_to_send(self) -> list[PhoneMessage]:
        """Returns the frames to send, in order, and forgets them."""
        out, self._outbox = self._outbox, []
        return out

    def transitions_received(self) -> list[Transition]:
        """Returns the call transitions recorded since the last call."""
        out, self._transitions = self._transitions, []
        return out

    def screens_received(self) -> list[ScreenChange]:
        """Returns the screen changes recorded since the last call."""
        out, self._screens = self._screens, []
        return out

    def next_wakeup(self) -> float | None:
        """When :meth:`wake` must next be called, or ``None``."""
        deadlines = list(self._ring_deadlines.values())
        deadlines.extend(watch.deadline for watch in self._media.values())
        if self._grace_deadline is not None:
            deadlines.append(self._grace_deadline)
        return min(deadlines, default=None)

    @property
    def wants_connection(self) -> bool:
        """Whether the driver should keep a connection open (on, and not in airplane mode)."""
        return self.powered and self.online

    @property
    def screen(self) -> Screen:
        """What the screen shows now."""
        return self._screen

    @property
    def active_call(self) -> _PhoneCall | None:
        """The call in progress, if any."""
        live = self._live_calls()
        return live[-1] if live else None

    def ringing_offer(self) -> tuple[str, str] | None:
        """``(call_id, offer SDP)`` of the call ringing on this phone, for the driver."""
        pc = self.active_call
        if pc is None or pc.is_outgoing or pc.call.state is not RINGING:
            return None
        assert pc.offer_sdp is not None  # an incoming call always carries its offer
        return pc.call.call_id, pc.offer_sdp

    def answer_sdp(self, call_id: str) -> str | None:
        """The SDP answer of a call, once it has one."""
        pc = self._calls.get(call_id)
        return pc.answer_sdp if pc is not None else None

    def call_log(self) -> list[CallSummary]:
        """What this phone knows of every call it has seen, in the order they were placed."""
        summaries = [summarize(pc.call.transitions) for pc in self._calls.values()]
        return sorted(summaries, key=lambda s: s.info.placed_at)

    # --- Internals -------------------------------------------------------------------------

    def _on_registered(self, message: Registered, now: float) -> None:
        self.registered = True
        self._grace_deadline = None
        held = set(message.calls)
        for pc in self._live_calls():
            if pc.call.call_id not in held:
                self._end(pc, Cause.DROPPED, now)  # the server let it go while we were away
            elif not pc.is_outgoing and pc.call.state is RECONNECTING and pc.answer_sdp:
                # The answer may have gone into a dead radio, the call still ringing at the
                # server (exploration seed 16019403): say it again, as SIP repeats its 200 OK.
                # A server that had it ignores the repeat.
                self._send(Answer(call_id=pc.call.call_id, sdp=pc.answer_sdp))
        # A held call that waits in Reconnecting… goes on only when the server says
        # ``resumed``: the other party may still be away.
        # The server's list is the phone's own, as last synced; changes made while
        # unregistered are replayed on top of it.
        self.blocks = set(message.blocks)
        for name, blocked in self._unsynced_blocks.items():
            (self.blocks.add if blocked else self.blocks.discard)(name)
            self._send(Block(name=name) if blocked else Unblock(name=name))
        self._unsynced_blocks.clear()

    def _on_incoming(self, message: Incoming, now: float) -> None:
        known = self._calls.get(message.call_id)
        if known is not None:
            # Delivered again after a reconnect: ring on if it still rings here.
            if known.call.state is RINGING:
                self._send(Ringing(call_id=message.call_id))
            return
        own = self.active_call
        if (
            own is not None
            and own.is_outgoing
            and own.peer == message.from_
            and own.call.state in (DIALING, RINGING)
        ):
            # Glare, decided by the server's rule (code-point order of the ids): the server
            # ends the loser the same way, so no frame is needed for it.
            if own.call.call_id < message.call_id:
                return  # the incoming call lost: it never rings and is never logged
            self._fire(own, Cause.GLARE, now)
        info = CallInfo(message.call_id, message.from_, self.name, message.kind, message.placed_at)
        pc = _PhoneCall(Call(self.end, info), offer_sdp=message.sdp)
        self._calls[message.call_id] = pc
        if self.active_call is not None:
            # In another call: the device refuses, and logs the call it could not take.
            self._fire(pc, Cause.BUSY, now)
            self._send(Busy(call_id=message.call_id))
            return
        self._fire(pc, Cause.REACHED, now)
        self._send(Ringing(call_id=message.call_id))

    def _on_missed_call(self, notice: MissedCall, now: float) -> None:
        pc = self._calls.get(notice.call_id)
        if pc is None:
            info = CallInfo(notice.call_id, notice.from_, self.name, notice.kind, notice.placed_at)
            pc = _PhoneCall(Call(self.end, info))
            self._calls[notice.call_id] = pc
        # Logged once however often the notice comes: a known, ended call stays as it is.
        if not pc.call.is_over:
            self._end(pc, _end_cause(notice.reason), now)
        self._send(MissedCallAck(call_id=notice.call_id))

    def _carried_on(self, pc: _PhoneCall) -> None:
        """The server carries on with a call this phone ended as the loser of glare.

        The phone foresaw the verdict, but the rival had already ended at the server (its
        caller hung up first), so there was no glare there: without a word the callee would
        ring for a call whose caller gave it up (exploration seed 3025845). Tell it once.
        """
        last = pc.call.transitions[-1]
        if pc.is_outgoing and last.cause is Cause.GLARE and not pc.glare_told:
            pc.glare_told = True
            self._send(Hangup(call_id=pc.call.call_id, reason="glare"))

    def _end(self, pc: _PhoneCall, cause: Cause, now: float) -> None:
        """Ends a call by ``cause``, or as ``dropped`` if its state cannot take ``cause``."""
        if pc.call.is_over:
            return
        self._fire(pc, cause if pc.call.can(cause) else Cause.DROPPED, now)

    def _end_all(self, cause: Cause, now: float) -> None:
        for pc in self._live_calls():
            self._end(pc, cause, now)

    def _live_calls(self) -> list[_PhoneCall]:
        return [pc for pc in self._calls.values() if pc.call.state in _LIVE]

    def _ringing_or_fail(self, action: str) -> _PhoneCall:
        self._require_usable(action)
        pc = self.active_call
        if pc is None or pc.is_outgoing or pc.call.state is not RINGING:
            raise PhoneError(f"{self.name} cannot {action}: nothing is ringing")
        return pc

    def _require_usable(self, action: str) -> None:
        if not self.powered:
            raise PhoneError(f"{self.name} cannot {action}: it is off")

    def _sync_block(self, name: str, *, blocked: bool) -> None:
        if self.registered:
            self._send(Block(name=name) if blocked else Unblock(name=name))
        else:
            self._unsynced_blocks[name] = blocked

    def _fire(self, pc: _PhoneCall, cause: Cause, now: float) -> None:
        transition = pc.call.fire(cause, now)
        self._transitions.append(transition)
        call_id = pc.call.call_id
        if transition.to_state is RINGING:
            role = "caller" if pc.is_outgoing else "callee"
            if self.ring_timer == role:
                self._ring_deadlines[call_id] = now + self.ring_timeout
        else:
            self._ring_deadlines.pop(call_id, None)
        if transition.to_state is ENDED:
            self._media.pop(call_id, None)
        elif (
            transition.cause is Cause.ANSWERED
            and self.media_timeout is not None
            and call_id not in self._media
        ):
            self._media[call_id] = _MediaWatch(deadline=now + self.media_timeout)

    def _send(self, message: PhoneMessage, *, force: bool = False) -> None:
        # Frames are only meaningful on a registered connection; what the person does
        # while it is down changes the phone's state and nothing is queued for later.
        if self.registered or force:
            self._outbox.append(message)

    def _done(self, now: float) -> None:
        """Records a screen change, if any; called at the end of every input."""
        screen = self._compute_screen()
        if screen is not self._screen:
            self._screens.append(ScreenChange(self.end, self._screen, screen, now))
            self._screen = screen

    def _compute_screen(self) -> Screen:
        if not self.powered:
            return Screen.OFF
        pc = self.active_call
        if pc is None:
            return Screen.ENDED if self._calls else Screen.IDLE
        state = pc.call.state
        if not self.registered or state is RECONNECTING:
            return Screen.RECONNECTING
        if state is ANSWERED:
            return Screen.IN_CALL
        if not pc.is_outgoing:
            return Screen.INCOMING
        return Screen.RINGING if state is RINGING else Screen.CALLING


_OFFER_REFUSALS: Final = frozenset(
    {
        ErrorCode.UNKNOWN_PHONE,
        ErrorCode.SELF_CALL,
        ErrorCode.DUPLICATE_CALL,
        ErrorCode.TOO_MANY_CALLS,
    }
)
"""Error codes only an ``offer`` can get: the call was refused, never placed."""


def _calls_back(pc: _PhoneCall, callee: str) -> bool:
    """Whether calling ``callee`` while ``pc`` is live is glare: ``callee`` is ringing us."""
    return not pc.is_outgoing and pc.peer == callee and pc.call.state is RINGING


def _end_cause(reason: str) -> Cause:
    """The end cause a server's ``reason`` names; an unknown one counts as ``dropped``."""
    try:
        cause = Cause(reason)
    except ValueError:
        return Cause.DROPPED
    return cause if cause in END_CAUSES else Cause.DROPPED
