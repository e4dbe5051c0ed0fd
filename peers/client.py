"""The asyncio driver of a phone: a websocket to the server through its radio link, and aiortc.

:class:`PhoneClient` moves bytes and decides nothing (DESIGN.md rule 4): every frame goes
into :class:`~peers.phone.Phone`, and whatever the phone wants sent is sent. Its own jobs
are the ones that need I/O:

- keep a connection while the phone is on and out of airplane mode: open it through the
  :class:`~peers.link.Link`, register, and reconnect with backoff when it drops (at once
  when the signal comes back or the phone is switched on);
- get each call's SDP from aiortc (:class:`~peers.media.CallMedia`: the process's shared
  offer and answer for a signaling-only call, a peer connection of its own for a media
  call) and close its peer connection, if it has one, when the call ends;
- for a media phone (``media=True``), bring up each answered call's real media and report
  to the phone what it does: connected, packets flowing (polled every
  :data:`MEDIA_POLL` seconds), failed. The phone decides what that means for the call.
  Media runs in real time: a media phone belongs in a real-time event loop;
- run the phone's reconnect-grace timer on the event loop's clock.

Heartbeats are websockets' ping/pong on this side too, so a phone whose signal is lost
finds out by itself, after about ``heartbeat_interval + heartbeat_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Literal

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from signaling.calls import ANSWERED, ENDED, Cause
from signaling.heartbeat import keep_alive
from signaling.messages import (
    InvalidMessage,
    PhoneMessage,
    message_type,
    parse_server_message,
    serialize_message,
)

from .link import Link
from .media import CallMedia, MediaState
from .phone import Phone, PhoneError


__all__ = ["PhoneClient"]

RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds between failed connection attempts; the last one repeats."""

MEDIA_POLL = 0.2
"""Seconds between looks at a media call's received frames (media phones)."""


class PhoneClient:
    """Drives one :class:`~peers.phone.Phone` over a websocket and aiortc.

    Args:
        phone: The phone's logic.
        link: Its radio.
        heartbeat_interval: Seconds between pings.
        heartbeat_timeout: Seconds a pong may take before the link counts as dead.
        clock: The scenario clock; defaults to the event loop's clock.
        logger: Where events go.
        media: Whether calls carry real media (the phone needs ``media_timeout`` set).
    """

    def __init__(
        self,
        phone: Phone,
        link: Link,
        *,
        heartbeat_interval: float = 5.0,
        heartbeat_timeout: float = 5.0,
        clock: Callable[[], float] | None = None,
        logger: Any = None,
        media: bool = False,
    ) -> None:
        self.phone = phone
        self.media = media
        self.link = link
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self._clock = clock
        self.log = logger if logger is not None else structlog.get_logger("voip_sandbox.phone")
        self._ws: ClientConnection | None = None
        self._media: dict[str, CallMedia] = {}
        self._kick = asyncio.Event()
        self._registered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._send_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        """The phone's end: its name, or ``name#device`` for one of several devices."""
        return self.phone.end

    def now(self) -> float:
        """The time on the scenario clock."""
        if self._clock is not None:
            return self._clock()
        return asyncio.get_running_loop().time()

    # --- Life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Starts keeping a connection (when the phone wants one)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"phone-{self.name}"
            )

    async def stop(self) -> None:
        """Stops the driver, closes the connection and every peer connection."""
        if self._timer is not None:
            self._timer.cancel()
        ws = self._ws
        if ws is not None:
            await ws.close(1001, "phone stopped")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # A connection black-holed by lost signal is still open on the link's side.
        self.link.close()
        for media in list(self._media.values()):
            await media.close()
        self._media.clear()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_registered(self) -> None:
        """Returns once the phone is registered with the server."""
        await self._registered.wait()

    # --- What the person does ------------------------------------------------------------------

    async def call(self, callee: str, kind: Literal["audio", "video"] = "audio") -> str:
        """Calls ``callee``; returns the call id.

        Raises:
            PhoneError: The phone cannot call now.
        """
        self.phone.check_call(callee)
        media = self._new_media()
        try:
            sdp = await media.create_offer(kind)
            call_id = self.phone.place_call(callee, kind, sdp, self.now())
        except BaseException:
            await media.close()
            raise
        self._media[call_id] = media
        media.call_id = call_id
        await self._flush()
        return call_id

    async def answer(self) -> str:
        """Picks up the ringing call; returns its id.

        Raises:
            PhoneError: Nothing is ringing.
        """
        ringing = self.phone.ringing_offer()
        if ringing is None:
            raise PhoneError(f"{self.name} cannot answer: nothing is ringing")
        call_id, offer_sdp = ringing
        media = self._new_media()
        media.call_id = call_id
        try:
            sdp = await media.create_answer(offer_sdp)
            self.phone.answer(sdp, self.now())
        except BaseException:
            await media.close()
            raise
        self._media[call_id] = media
        await self._flush()
        return call_id

    async def decline(self) -> None:
        """Refuses the ringing call."""
        self.phone.decline(self.now())
        await self._flush()

    async def hang_up(self) -> None:
        """Ends the call in progress."""
        self.phone.hang_up(self.now())
        await self._flush()

    async def block(self, name: str) -> None:
        """Blocks ``name``."""
        self.phone.block(name, self.now())
        await self._flush()

    async def unblock(self, name: str) -> None:
        """Unblocks ``name``."""
        self.phone.unblock(name, self.now())
        await self._flush()

    async def power_off(self) -> None:
        """Switches the phone off: the link is reset, with no close frame."""
        self.phone.power_off(self.now())
        self.link.cut()
        await self._flush()

    async def power_on(self) -> None:
        """Switches the phone on; it connects as soon as the radio allows."""
        self.phone.power_on(self.now())
        self._kick.set()
        await self._flush()

    async def go_offline(self) -> None:
        """Airplane mode on: the connection is closed cleanly."""
        self.phone.go_offline(self.now())
        ws = self._ws
        if ws is not None:
            await ws.close(1001, "going offline")
        await self._flush()

    async def go_online(self) -> None:
        """Airplane mode off: the phone reconnects."""
        self.phone.go_online(self.now())
        self._kick.set()
        await self._flush()

    def lose_signal(self) -> None:
        """The radio loses signal; the phone itself finds out only by its heartbeat."""
        self.link.lose_signal()

    def regain_signal(self) -> None:
        """The radio has signal again; the phone reconnects at once."""
        self.link.regain_signal()
        self._kick.set()

    # --- The connection ------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while True:
            self._kick.clear()
            if not self.phone.wants_connection:
                await self._kick.wait()
                continue
            if not self.link.signal:
                await self.link.wait_for_signal()
                continue
            try:
                await self._connect_once()
                attempt = 0
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self.log.info("connection", who=self.name, state="failed", error=str(exc))
                delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), delay)

    async def _connect_once(self) -> None:
        sock = await self.link.open()
        async with connect(
            f"ws://{self.link.host}:{self.link.port}",
            sock=sock,
            proxy=None,  # never ask the environment for a proxy: traffic stays on loopback
            compression=None,
            open_timeout=self.heartbeat_interval + self.heartbeat_timeout,
            ping_interval=None,  # the heartbeat is ours: see signaling.heartbeat
            close_timeout=self.heartbeat_timeout,
        ) as ws:
            self._ws = ws
            heartbeat = asyncio.get_running_loop().create_task(
                keep_alive(
                    ws,
                    interval=self.heartbeat_interval,
                    pong_timeout=self.heartbeat_timeout,
                    logger=self.log,
                    who=self.name,
                )
            )
            try:
                self.phone.link_up(self.now())
                await self._flush()
                async for frame in ws:
                    try:
                        message = parse_server_message(frame)
                    except InvalidMessage as exc:
                        self.log.warning("error", who=self.name, message=str(exc))
                        continue
                    self.phone.receive(message, self.now())
                    await self._flush()
            except ConnectionClosed:
                pass
            finally:
                heartbeat.cancel()
                self._ws = None
                self._registered.clear()
                self.phone.link_down(self.now())
                await self._flush()

    # --- Driving the phone ---------------------------------------------------------------------

    async def _flush(self) -> None:
        """Carries out everything the phone decided, in order."""
        self._record()
        messages = self.phone.messages_to_send()
        async with self._send_lock:
            for message in messages:
                await self._send(message)
        self._arm_timer()

    def _record(self) -> None:
        """Logs the phone's transitions and screens at once, without waiting.

        Synchronous on purpose: whoever reads the event stream right after an input (the
        runner deciding the run has settled) must see what that input changed.
        """
        phone = self.phone
        if phone.registered:
            self._registered.set()
        for transition in phone.transitions_received():
            self.log.info("transition", **transition.as_event())
            if transition.to_state is ENDED:
                media = self._media.pop(transition.call.call_id, None)
                if media is not None:
                    self._spawn(self._close_media(media))
            if (
                transition.to_state is ANSWERED
                and transition.cause is Cause.ANSWERED
                and transition.who == transition.call.caller
            ):
                call_id = transition.call.call_id
                answer_sdp = phone.answer_sdp(call_id)
                if answer_sdp is not None:
                    self._check_answer(call_id, answer_sdp)
                    media = self._media.get(call_id)
                    if media is not None and self.media:
                        self._spawn(media.apply_answer(answer_sdp))
        for change in phone.screens_received():
            self.log.info(
                "screen",
                who=change.who,
                screen=str(change.to_screen),
                previous=str(change.from_screen),
            )

    # --- Media (media phones) -------------------------------------------------------------------

    def _new_media(self) -> CallMedia:
        holder: list[CallMedia] = []
        media = CallMedia(
            media=self.media,
            shim=self.link.media,
            on_state=lambda state: self._on_media(holder[0], state),
        )
        holder.append(media)
        return media

    def _on_media(self, media: CallMedia, state: MediaState) -> None:
        """aiortc says the media connected or failed: tell the phone, which decides."""
        call_id = media.call_id
        if call_id is None or self._media.get(call_id) is not media:
            return
        now = self.now()
        self.log.info("media", who=self.name, call_id=call_id, state=state)
        if state == "connected":
            self.phone.media_connected(call_id, now)
            self._spawn(self._watch_media(call_id, media))
        else:
            self.phone.media_failed(call_id, now)
        self._record()
        self._spawn(self._flush())

    async def _watch_media(self, call_id: str, media: CallMedia) -> None:
        """Tells the phone, every :data:`MEDIA_POLL` seconds, whether frames arrived."""
        seen = media.frames_total
        while self._media.get(call_id) is media:
            await asyncio.sleep(MEDIA_POLL)
            if self._media.get(call_id) is not media:
                return
            if media.frames_total > seen:
                seen = media.frames_total
                self.phone.media_flowing(call_id, self.now())
                self._record()
                await self._flush()

    async def _close_media(self, media: CallMedia) -> None:
        """Records what the media carried, then closes the peer connection."""
        if self.media and media.call_id is not None:
            packets = await media.packets_received()
            self.log.info(
                "media",
                who=self.name,
                call_id=media.call_id,
                state="closed",
                frames_in=dict(media.frames_received),
                packets_in=packets,
            )
        await media.close()

    def _check_answer(self, call_id: str, answer_sdp: str) -> None:
        try:
            CallMedia.check_answer(answer_sdp)
        except ValueError as exc:
            self.log.warning("error", who=self.name, call_id=call_id, message=str(exc))

    async def _send(self, message: PhoneMessage) -> None:
        ws = self._ws
        if ws is None:
            return
        self.log.debug(
            "frame_out",
            who=self.name,
            type=message_type(message),
            call_id=getattr(message, "call_id", None),
        )
        with contextlib.suppress(ConnectionClosed):
            await ws.send(serialize_message(message))

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        wakeup = self.phone.next_wakeup()
        if wakeup is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(loop.time() + (wakeup - self.now()), self._on_timer, wakeup)

    def _on_timer(self, wakeup: float) -> None:
        self._timer = None
        # The loop's clock is rounded (to the microsecond under virtual time), so it can
        # fire a hair before the deadline it was set for; the deadline has come all the
        # same, or the phone would find nothing due and be woken again forever.
        self.phone.wake(max(self.now(), wakeup))
        self._record()  # now, not a loop step later: see _record
        self._spawn(self._flush())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)  # the loop keeps only a weak reference to tasks
        task.add_done_callback(self._background.discard)
