"""aiortc for the phones: every call's SDP, and, for media calls, real ICE/DTLS/SRTP media.

Two facts about aiortc shape this module (measured, see shared/reference/tools.md §0, §3):

- Its default configuration contacts a public STUN server, so every peer connection here
  is made with ``RTCConfiguration(iceServers=[])``, in :func:`new_peer_connection` and
  nowhere else.
- aioice leaves 127.0.0.1 out of its host candidates, so on a loopback-only machine ICE
  would never gather anything. :func:`gather_on_loopback` is the one place that changes
  that, by making aioice gather on 127.0.0.1 only.

Two modes, chosen per phone (``CallMedia(media=...)``):

- **signaling only** (the default): the caller sends a complete offer, the callee answers
  from it without applying its answer, and the caller checks the answer parses; neither
  side starts ICE and no packet is sent. The offer and its answer are real aiortc SDP,
  made once per process and media kind (:func:`signaling_sdp`) and reused by every
  signaling-only call: a fresh peer connection cost each call about 5 ms of aiortc for
  the same few lines of text. A callee handed any other offer answers it with a peer
  connection of its own, as before.
- **media**: each side sends synthetic tracks (:class:`ToneTrack`, a 440 Hz tone, and for
  video calls :class:`TestPatternTrack`, moving bars), the callee applies its answer and
  the caller applies the answer it receives, so ICE, DTLS and SRTP come up on loopback.
  Every received track is consumed (and its frames counted) until the call ends.
  This runs in real time: the tracks pace themselves on the wall clock.

The media path has its own fault shim, :class:`MediaShim`: it sits on the aioice UDP
protocols of a phone's peer connections and drops datagrams both ways (a loss
probability, or all of them: a black hole). The radio link owns one per phone, so a phone
that loses signal loses its media too.

Nothing here decides anything about a call: :class:`CallMedia` reports what the media does
(``connected``, ``failed``) to whoever drives it, and :mod:`peers.phone` decides.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fractions
import math
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import aioice.ice
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from aiortc.sdp import SessionDescription
from av import AudioFrame, VideoFrame


__all__ = [
    "CallMedia",
    "MediaShim",
    "MediaState",
    "SignalingSdp",
    "TestPatternTrack",
    "ToneTrack",
    "gather_on_loopback",
    "new_peer_connection",
    "signaling_sdp",
]


def _loopback_addresses(use_ipv4: bool = True, use_ipv6: bool = False) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


def gather_on_loopback() -> None:
    """Makes aioice gather host candidates on 127.0.0.1, and only there.

    Process-wide and idempotent. Without it an aiortc offer on this machine carries no
    candidate at all; with it, nothing is ever gathered on another interface, which also
    keeps every media packet on loopback.
    """
    aioice.ice.get_host_addresses = _loopback_addresses


def new_peer_connection() -> RTCPeerConnection:
    """A peer connection that never contacts a STUN or TURN server."""
    gather_on_loopback()
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


# --- Synthetic tracks ------------------------------------------------------------------------

_TONE_RATE = 8000
_TONE_HZ = 440
_TONE_FRAME = 160  # 20 ms at 8 kHz, aiortc's audio packetization
# One second holds a whole number of 440 Hz cycles, so slicing it never clicks.
_TONE_SECOND = b"".join(
    struct.pack("<h", int(8000 * math.sin(2 * math.pi * _TONE_HZ * n / _TONE_RATE)))
    for n in range(_TONE_RATE)
)


class ToneTrack(AudioStreamTrack):
    """A 440 Hz tone, 8 kHz mono, paced in real time by aiortc's silent track it extends."""

    async def recv(self) -> AudioFrame:
        """The next 20 ms of the tone."""
        frame = await super().recv()
        assert isinstance(frame, AudioFrame)
        start = (frame.pts or 0) % _TONE_RATE * 2
        frame.planes[0].update(_TONE_SECOND[start : start + _TONE_FRAME * 2])
        return frame


_PATTERN_SIZE = (160, 120)
_PATTERN_FRAMES = 30


def _pattern_planes(index: int) -> tuple[bytes, bytes, bytes]:
    """YUV 4:2:0 planes of frame ``index``: a white bar moving across grey."""
    width, height = _PATTERN_SIZE
    bar = index * width // _PATTERN_FRAMES
    row = bytes(235 if bar <= x < bar + 16 else 80 for x in range(width))
    chroma = bytes([128]) * (width // 2 * height // 2)
    return row * height, chroma, chroma


_PATTERN = [_pattern_planes(i) for i in range(_PATTERN_FRAMES)]


class TestPatternTrack(VideoStreamTrack):
    """A 160x120 test pattern at 30 fps: a bar moving across the picture."""

    __test__ = False  # not a pytest test class, whatever its name says

    async def recv(self) -> VideoFrame:
        """The next frame of the pattern."""
        pts, time_base = await self.next_timestamp()
        width, height = _PATTERN_SIZE
        frame = VideoFrame(width=width, height=height, format="yuv420p")
        planes = _PATTERN[(pts // 3000) % _PATTERN_FRAMES]
        for index, (plane, data) in enumerate(zip(frame.planes, planes, strict=True)):
            if plane.buffer_size == len(data):
                plane.update(data)
            else:  # rows padded for alignment: copy row by row
                row = width if index == 0 else width // 2
                padded = b"".join(
                    data[start : start + row].ljust(plane.line_size, b"\0")
                    for start in range(0, len(data), row)
                )
                plane.update(padded[: plane.buffer_size])
        frame.pts = pts
        frame.time_base = fractions.Fraction(time_base.numerator, time_base.denominator)
        return frame


# --- The media path's fault shim ---------------------------------------------------------------


class MediaShim:
    """Drops a phone's media datagrams, both ways: loss with a probability, or a black hole.

    Args:
        rng: Draws the losses; seed it for a reproducible sequence of drops.
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng if rng is not None else random.Random(0)
        self.loss = 0.0
        """Probability of dropping each datagram (0 to 1), set by a ``media_loss`` fault."""
        self.black_hole = False
        """Every datagram dropped: a ``media_black_hole`` fault."""
        self.no_signal = False
        """Every datagram dropped: the phone has no signal (the radio sets it)."""
        self.dropped = 0
        """Datagrams dropped so far."""

    def drops(self) -> bool:
        """Whether the next datagram is lost (and counts it if so)."""
        blocked = self.black_hole or self.no_signal
        lost = blocked or (self.loss > 0 and self.rng.random() < self.loss)
        if lost:
            self.dropped += 1
        return lost

    def clear(self) -> None:
        """Removes the faults (not the loss of signal, which is the radio's)."""
        self.loss = 0.0
        self.black_hole = False

    def attach(self, pc: RTCPeerConnection) -> None:
        """Puts the shim on every UDP socket of ``pc`` (call after ``setLocalDescription``).

        aiortc has no hook for this, so the shim wraps each aioice protocol's receive
        callback and its transport's ``sendto``: the one place media packets pass.
        """
        for protocol in _stun_protocols(pc):
            if getattr(protocol, "_sandbox_shim", None) is self:
                continue
            protocol._sandbox_shim = self  # type: ignore[attr-defined]
            receive = protocol.datagram_received
            transport = protocol.transport
            send = transport.sendto

            def shimmed_receive(data: Any, addr: Any, _r: Any = receive) -> None:
                if not self.drops():
                    _r(data, addr)

            def shimmed_send(data: Any, addr: Any = None, _s: Any = send) -> None:
                if not self.drops():
                    _s(data, addr)

            protocol.datagram_received = shimmed_receive  # type: ignore[method-assign]
            transport.sendto = shimmed_send  # type: ignore[method-assign]


def _stun_protocols(pc: RTCPeerConnection) -> list[aioice.ice.StunProtocol]:
    found: list[aioice.ice.StunProtocol] = []
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        if dtls is None:
            continue
        connection = dtls.transport._connection  # aiortc's RTCIceTransport -> aioice
        for protocol in connection._protocols:
            if protocol not in found:
                found.append(protocol)
    return found


# --- One call's media ------------------------------------------------------------------------

MediaState = Literal["connected", "failed"]
"""What :class:`CallMedia` reports: the media came up, or it failed (or closed) by itself."""


class CallMedia:
    """The aiortc side of one call on one phone: its peer connection and its SDP.

    Args:
        media: Whether the call carries real media (see the module docstring).
        shim: The phone's media fault shim (media calls only).
        on_state: Called with ``"connected"`` or ``"failed"`` when the media does so.
    """

    def __init__(
        self,
        *,
        media: bool = False,
        shim: MediaShim | None = None,
        on_state: Callable[[MediaState], None] | None = None,
    ) -> None:
        self.pc: RTCPeerConnection | None = new_peer_connection() if media else None
        """The call's own peer connection: a media call's always; a signaling-only call
        has one only if it answered an offer other than the shared one."""
        self.call_id: str | None = None
        """The call this media belongs to, once its driver knows it."""
        self.media = media
        self.shim = shim
        self._on_state = on_state
        self._closing = False
        self._reported: set[MediaState] = set()
        self._consumers: list[asyncio.Task[None]] = []
        self.frames_received: dict[str, int] = {}
        """Frames decoded from the other end, by track kind (media calls)."""
        if self.pc is not None:
            self.pc.on("track", self._on_track)
            self.pc.on("connectionstatechange", self._on_connection_state)

    # --- SDP ---------------------------------------------------------------------------------

    async def create_offer(self, kind: Literal["audio", "video"]) -> str:
        """Returns the caller's offer SDP.

        Signaling only: the process's shared offer for ``kind``, with no loop pass. Media:
        this call's own, from its peer connection (gathering loopback candidates).
        """
        if self.pc is None:
            return signaling_sdp(kind).offer
        self.pc.addTrack(ToneTrack())
        if kind == "video":
            self.pc.addTrack(TestPatternTrack())
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self._attach_shim()
        return str(self.pc.localDescription.sdp)

    async def create_answer(self, offer_sdp: str) -> str:
        """Answers the caller's offer; returns the callee's answer SDP.

        Signaling only: the answer is not applied locally, so ICE does not start; the
        shared offer gets the answer made with it, with no loop pass. Media: the answer
        is applied, and ICE, DTLS and SRTP start towards the caller.
        """
        if not self.media:
            shared = _shared_answer(offer_sdp)
            if shared is not None:
                return shared
            self.pc = new_peer_connection()
            return await _answer_unapplied(self.pc, offer_sdp)
        assert self.pc is not None
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        for transceiver in self.pc.getTransceivers():
            track: MediaStreamTrack = (
                TestPatternTrack() if transceiver.kind == "video" else ToneTrack()
            )
            self.pc.addTrack(track)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._attach_shim()
        return str(self.pc.localDescription.sdp)

    async def apply_answer(self, answer_sdp: str) -> None:
        """The caller applies the callee's answer: ICE starts (media calls only)."""
        if self.media and self.pc is not None and not self._closing:
            await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))

    @staticmethod
    def check_answer(answer_sdp: str) -> None:
        """Parses an answer as aiortc would; raises ``ValueError`` if it is not valid SDP."""
        # aiortc's parser skips lines it does not know, so garbage parses as an empty
        # description: a session needs its version line and at least one media section.
        if not answer_sdp.startswith("v=0"):
            raise ValueError("invalid SDP answer: it does not start with 'v=0'")
        try:
            description = SessionDescription.parse(answer_sdp)
        except Exception as exc:  # aiortc raises assorted errors for broken SDP
            raise ValueError(f"invalid SDP answer: {exc}") from exc
        if not description.media:
            raise ValueError("invalid SDP answer: it has no media section")

    # --- Media -------------------------------------------------------------------------------

    @property
    def frames_total(self) -> int:
        """Frames received so far, all tracks together."""
        return sum(self.frames_received.values())

    async def packets_received(self) -> int:
        """RTP packets received from the other end so far (aiortc's inbound-rtp stats)."""
        if self.pc is None or self.pc.connectionState == "closed":
            return 0
        report = await self.pc.getStats()
        return sum(
            int(getattr(stats, "packetsReceived", 0))
            for stats in report.values()
            if getattr(stats, "type", None) == "inbound-rtp"
        )

    async def close(self) -> None:
        """Closes the peer connection and stops consuming; safe to call more than once."""
        self._closing = True
        if self.pc is not None:
            await self.pc.close()
        for task in self._consumers:
            task.cancel()
        for task in self._consumers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._consumers.clear()

    def _attach_shim(self) -> None:
        if self.media and self.pc is not None and self.shim is not None:
            self.shim.attach(self.pc)

    def _on_track(self, track: MediaStreamTrack) -> None:
        # A received track must be read, or aiortc's decoder queue grows for the whole call.
        task = asyncio.get_running_loop().create_task(self._consume(track))
        self._consumers.append(task)

    async def _consume(self, track: MediaStreamTrack) -> None:
        kind = track.kind
        self.frames_received.setdefault(kind, 0)
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames_received[kind] += 1

    def _on_connection_state(self) -> None:
        assert self.pc is not None
        state = self.pc.connectionState
        if state == "connected":
            self._report("connected")
        elif state in ("failed", "closed") and not self._closing:
            self._report("failed")

    def _report(self, state: MediaState) -> None:
        if state in self._reported or self._on_state is None:
            return
        self._reported.add(state)
        self._on_state(state)


# --- Signaling-only SDP, made once per process ---------------------------------------------


@dataclass(frozen=True, slots=True)
class SignalingSdp:
    """A real aiortc offer and the answer aiortc made from it (not applied on either side).

    Attributes:
        offer: The offer SDP, with its loopback host candidates.
        answer: The answer SDP.
    """

    offer: str
    answer: str


_SIGNALING_SDP: dict[str, SignalingSdp] = {}


def signaling_sdp(kind: Literal["audio", "video"]) -> SignalingSdp:
    """The process's offer and answer for a signaling-only call of ``kind``.

    Made on first use, with two fresh peer connections, in an event loop of their own on
    a worker thread: the caller's loop (a run's virtual-time loop, say) sees no pass and
    no time go by, so a process's first call costs the run what every later one does.
    """
    pair = _SIGNALING_SDP.get(kind)
    if pair is None:
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sdp") as worker:
            pair = worker.submit(asyncio.run, _new_signaling_sdp(kind)).result()
        pair = _SIGNALING_SDP.setdefault(kind, pair)
    return pair


def _shared_answer(offer_sdp: str) -> str | None:
    """The answer made with ``offer_sdp`` if it is one of the process's shared offers."""
    for pair in _SIGNALING_SDP.values():
        if pair.offer == offer_sdp:
            return pair.answer
    return None


async def _new_signaling_sdp(kind: Literal["audio", "video"]) -> SignalingSdp:
    caller, callee = new_peer_connection(), new_peer_connection()
    try:
        caller.addTransceiver("audio")
        if kind == "video":
            caller.addTransceiver("video")
        await caller.setLocalDescription(await caller.createOffer())
        offer = str(caller.localDescription.sdp)
        answer = await _answer_unapplied(callee, offer)
    finally:
        await caller.close()
        await callee.close()
    CallMedia.check_answer(answer)
    return SignalingSdp(offer, answer)


async def _answer_unapplied(pc: RTCPeerConnection, offer_sdp: str) -> str:
    """Applies ``offer_sdp`` to ``pc`` and returns its answer, not applied: ICE stays off."""
    await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
    answer = await pc.createAnswer()
    return str(answer.sdp)
