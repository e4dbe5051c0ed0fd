"""A simulated phone with real audio: aiortc media both ways, for calls with a browser phone.

The demo's other simulated phones are :class:`~peers.client.PhoneClient` s, which exchange
real SDP but start no media. This one carries sound: its calls send a 440 Hz tone from an
aiortc peer connection made by :func:`peers.media.new_peer_connection` (no STUN, host
candidates on 127.0.0.1 only), add the trickled candidates of the other side, consume what
they receive and count the decoded frames (``frames_received``), the aiortc half of "audio
flows both ways" (shared/reference/browser-interop.md, recipe step 4).

Decisions stay in :class:`~peers.phone.Phone`: this driver feeds it every frame and sends
what it wants sent, exactly as :class:`~peers.client.PhoneClient` does. What it adds is the
media side of the frames the phone ignores (``answer`` SDP for the caller, ``candidate``).
It connects straight to the server, with no :class:`~peers.link.Link`: it has no radio to
fail, so the demo shows no signal, power or airplane controls for it.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fractions
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from peers.media import new_peer_connection
from peers.phone import Phone, PhoneError
from signaling.calls import ANSWERED, ENDED
from signaling.heartbeat import keep_alive
from signaling.messages import (
    Answer,
    Candidate,
    InvalidMessage,
    parse_server_message,
    serialize_message,
)


__all__ = ["AudioPhone", "ToneTrack"]

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960
"""20 ms at 48 kHz: Opus's usual frame."""

RECONNECT_DELAY = 0.5
"""Seconds between connection attempts while the server is away."""


class ToneTrack(MediaStreamTrack):
    """A sine tone, 48 kHz mono s16, in 20 ms frames paced in real time.

    Args:
        frequency: The tone's pitch in hertz.
    """

    kind = "audio"

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self.frequency = frequency
        self._samples = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        """The next frame, once its time has come (a real microphone's pace)."""
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._samples / SAMPLE_RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        step = 2 * math.pi * self.frequency / SAMPLE_RATE
        wave = array.array(
            "h", (int(9830 * math.sin(step * (self._samples + i))) for i in range(FRAME_SAMPLES))
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(wave.tobytes())
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._samples += FRAME_SAMPLES
        return frame


@dataclass
class _CallAudio:
    """The media of one call: its peer connection and what it received."""

    pc: Any
    remote_set: bool = False
    pending: list[Candidate] = field(default_factory=list)
    frames_received: int = 0
    connected: bool = False


class AudioPhone:
    """Drives one :class:`~peers.phone.Phone` over a websocket, with aiortc audio.

    Args:
        phone: The phone's logic.
        url: The signaling server, ``ws://127.0.0.1:PORT``.
        heartbeat_interval: Seconds between pings.
        heartbeat_timeout: Seconds a pong may take before the link counts as dead.
        clock: The scenario clock; defaults to the event loop's clock.
        logger: Where events go (``transition``, ``screen``, ``media``).
    """

    kind = "audio"
    """What the demo page calls this kind of phone."""

    def __init__(
        self,
        phone: Phone,
        url: str,
        *,
        heartbeat_interval: float = 5.0,
        heartbeat_timeout: float = 5.0,
        clock: Callable[[], float] | None = None,
        logger: Any,
    ) -> None:
        self.phone = phone
        self.url = url
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self._clock = clock
        self.log = logger
        self._ws: ClientConnection | None = None
        self._calls: dict[str, _CallAudio] = {}
        self._early: dict[str, list[Candidate]] = {}
        self._registered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._send_lock = asyncio.Lock()
        self.frames_by_call: dict[str, int] = {}
        """Audio frames received and decoded, per call (kept after the call ends)."""
        self._frame_arrived = asyncio.Event()

    @property
    def name(self) -> str:
        """The phone's name."""
        return self.phone.name

    def now(self) -> float:
        """The time on the scenario clock."""
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def frames_received(self, call_id: str | None = None) -> int:
        """Audio frames received in ``call_id`` (default: the latest call with media)."""
        if call_id is None:
            return next(reversed(self.frames_by_call.values()), 0)
        return self.frames_by_call.get(call_id, 0)

    async def wait_for_frames(self, count: int, call_id: str) -> None:
        """Returns once ``count`` audio frames of ``call_id`` have been received."""
        while self.frames_received(call_id) < count:
            self._frame_arrived.clear()
            await self._frame_arrived.wait()

    # --- Life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Starts keeping a connection to the server."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"audio-phone-{self.name}"
            )

    async def stop(self) -> None:
        """Closes the connection and every peer connection."""
        if self._timer is not None:
            self._timer.cancel()
        if self._ws is not None:
            await self._ws.close(1001, "phone stopped")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for call_id in list(self._calls):
            await self._close_media(call_id)
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_registered(self) -> None:
        """Returns once the phone is registered."""
        await self._registered.wait()

    # --- What the person does ------------------------------------------------------------------

    async def call(self, callee: str) -> str:
        """Calls ``callee`` with a tone; returns the call id.

        Raises:
            PhoneError: The phone cannot call now.
        """
        self.phone.check_call(callee)
        audio = self._new_audio()
        try:
            audio.pc.addTrack(ToneTrack())
            await audio.pc.setLocalDescription(await audio.pc.createOffer())
            call_id = self.phone.place_call(
                callee, "audio", audio.pc.localDescription.sdp, self.now()
            )
        except BaseException:
            await audio.pc.close()
            raise
        self._calls[call_id] = audio
        await self._flush()
        return call_id

    async def answer(self) -> str:
        """Picks up the ringing call, sending a tone back; returns its id.

        Raises:
            PhoneError: Nothing is ringing.
        """
        ringing = self.phone.ringing_offer()
        if ringing is None:
            raise PhoneError(f"{self.name} cannot answer: nothing is ringing")
        call_id, offer_sdp = ringing
        audio = self._new_audio()
        try:
            await audio.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            audio.remote_set = True
            audio.pc.addTrack(ToneTrack())
            await audio.pc.setLocalDescription(await audio.pc.createAnswer())
            self.phone.answer(audio.pc.localDescription.sdp, self.now())
        except BaseException:
            await audio.pc.close()
            raise
        self._calls[call_id] = audio
        audio.pending.extend(self._early.pop(call_id, []))
        await self._add_pending(audio)
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

    # --- Media ---------------------------------------------------------------------------------

    def _new_audio(self) -> _CallAudio:
        audio = _CallAudio(new_peer_connection())
        pc = audio.pc

        @pc.on("track")  # type: ignore[untyped-decorator]
        def on_track(track: Any) -> None:
            # Always consume what arrives: aiortc queues every decoded frame otherwise
            # (browser-interop.md, pitfall 8).
            self._spawn(self._consume(audio, track))

        @pc.on("connectionstatechange")  # type: ignore[untyped-decorator]
        def on_state() -> None:
            if pc.connectionState == "connected" and not audio.connected:
                audio.connected = True
                self.log.info("media", who=self.name, state="connected")

        return audio

    async def _consume(self, audio: _CallAudio, track: Any) -> None:
        call_id = next((c for c, a in self._calls.items() if a is audio), None)
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                audio.frames_received += 1
                if call_id is None:
                    call_id = next((c for c, a in self._calls.items() if a is audio), None)
                if call_id is not None:
                    self.frames_by_call[call_id] = audio.frames_received
                self._frame_arrived.set()

    async def _on_media_frame(self, message: object) -> None:
        """The media side of a frame: the caller's answer SDP, trickled candidates."""
        if isinstance(message, Answer):
            audio = self._calls.get(message.call_id)
            if audio is not None and not audio.remote_set:
                await audio.pc.setRemoteDescription(RTCSessionDescription(message.sdp, "answer"))
                audio.remote_set = True
                await self._add_pending(audio)
        elif isinstance(message, Candidate):
            audio = self._calls.get(message.call_id)
            if audio is None:
                self._early.setdefault(message.call_id, []).append(message)
            else:
                audio.pending.append(message)
                if audio.remote_set:
                    await self._add_pending(audio)

    async def _add_pending(self, audio: _CallAudio) -> None:
        pending, audio.pending = audio.pending, []
        for item in pending:
            text = item.candidate
            if not text:
                with contextlib.suppress(Exception):  # end-of-candidates, if aiortc takes it
                    await audio.pc.addIceCandidate(None)
                continue
            candidate = candidate_from_sdp(text.removeprefix("candidate:"))
            candidate.sdpMid = item.sdp_mid
            candidate.sdpMLineIndex = item.sdp_mline_index
            await audio.pc.addIceCandidate(candidate)

    async def _close_media(self, call_id: str) -> None:
        audio = self._calls.pop(call_id, None)
        self._early.pop(call_id, None)
        if audio is not None:
            await audio.pc.close()

    # --- The connection ------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._connect_once()
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self.log.info("connection", who=self.name, state="failed", error=str(exc))
            await asyncio.sleep(RECONNECT_DELAY)

    async def _connect_once(self) -> None:
        async with connect(
            self.url,
            proxy=None,  # loopback only: never ask the environment for a proxy
            compression=None,
            open_timeout=self.heartbeat_interval + self.heartbeat_timeout,
            ping_interval=None,  # the heartbeat is signaling.heartbeat's, as on every phone
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
                    await self._on_media_frame(message)
            except ConnectionClosed:
                pass
            finally:
                heartbeat.cancel()
                self._ws = None
                self._registered.clear()
                self.phone.link_down(self.now())
                await self._flush()

    async def _flush(self) -> None:
        phone = self.phone
        if phone.registered:
            self._registered.set()
        for transition in phone.transitions_received():
            self.log.info("transition", **transition.as_event())
            if transition.to_state is ENDED:
                self._spawn(self._close_media(transition.call.call_id))
            elif transition.to_state is ANSWERED:
                self.log.info("media", who=self.name, state="starting")
        for change in phone.screens_received():
            self.log.info(
                "screen",
                who=change.who,
                screen=str(change.to_screen),
                previous=str(change.from_screen),
            )
        async with self._send_lock:
            for message in phone.messages_to_send():
                ws = self._ws
                if ws is not None:
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send(serialize_message(message))
        self._arm_timer()

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
        self.phone.wake(max(self.now(), wakeup))
        self._spawn(self._flush())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
