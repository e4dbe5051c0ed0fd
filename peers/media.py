"""Real SDP from aiortc: every call's offer and answer come from an RTCPeerConnection.

Two facts about aiortc shape this module (measured, see shared/reference/tools.md §0, §3):

- Its default configuration contacts a public STUN server, so every peer connection here
  is made with ``RTCConfiguration(iceServers=[])``, in :func:`new_peer_connection` and
  nowhere else.
- aioice leaves 127.0.0.1 out of its host candidates, so on a loopback-only machine ICE
  would never gather anything. :func:`gather_on_loopback` is the one place that changes
  that, by making aioice gather on 127.0.0.1 only.

In signaling-only mode (the default) the caller gathers and sends a complete offer, the
callee answers from it, and the caller checks the answer parses; neither side starts ICE,
so a call costs a few milliseconds and no packets. Media calls are a later extension.
"""

from __future__ import annotations

from typing import Literal

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import SessionDescription


__all__ = ["CallMedia", "gather_on_loopback", "new_peer_connection"]


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


class CallMedia:
    """The aiortc side of one call on one phone: its peer connection and its SDP."""

    def __init__(self) -> None:
        self.pc = new_peer_connection()

    async def create_offer(self, kind: Literal["audio", "video"]) -> str:
        """Creates the caller's offer (gathering loopback candidates) and returns its SDP."""
        self.pc.addTransceiver("audio")
        if kind == "video":
            self.pc.addTransceiver("video")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def create_answer(self, offer_sdp: str) -> str:
        """Applies the caller's offer and returns the callee's answer SDP.

        The answer is not applied locally, so ICE does not start: signaling-only calls
        exchange real SDP and no packets.
        """
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        answer = await self.pc.createAnswer()
        return str(answer.sdp)

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

    async def close(self) -> None:
        """Closes the peer connection; safe to call more than once."""
        await self.pc.close()
