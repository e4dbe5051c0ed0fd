"""CallMedia: real aiortc SDP, gathered on 127.0.0.1 only, with no STUN server."""

from __future__ import annotations

from typing import Literal

import pytest
from aiortc.sdp import SessionDescription

from peers.media import CallMedia, new_peer_connection, signaling_sdp


pytestmark = pytest.mark.looptime


def media_kinds(sdp: str) -> list[str]:
    return [m.kind for m in SessionDescription.parse(sdp).media]


@pytest.mark.parametrize(("kind", "kinds"), [("audio", ["audio"]), ("video", ["audio", "video"])])
async def test_offer_has_the_media_lines_and_only_loopback_host_candidates(
    kind: Literal["audio", "video"], kinds: list[str]
) -> None:
    media = CallMedia()
    try:
        sdp = await media.create_offer(kind)
    finally:
        await media.close()
    assert media_kinds(sdp) == kinds
    parsed = SessionDescription.parse(sdp)
    candidates = [c for m in parsed.media for c in m.ice_candidates]
    assert candidates, "no ICE candidate gathered: loopback gathering is not in effect"
    assert {(c.ip, c.type) for c in candidates} == {("127.0.0.1", "host")}
    assert all(m.ice_candidates_complete for m in parsed.media)
    assert "a=candidate:" in sdp and " 127.0.0.1 " in sdp and "typ host" in sdp
    assert "typ srflx" not in sdp and "typ relay" not in sdp  # no STUN/TURN server used


@pytest.mark.parametrize("kind", ["audio", "video"])
async def test_answer_from_an_offer_is_valid_sdp_for_the_same_media(
    kind: Literal["audio", "video"],
) -> None:
    caller, callee = CallMedia(), CallMedia()
    try:
        offer = await caller.create_offer(kind)
        answer = await callee.create_answer(offer)
        CallMedia.check_answer(answer)
        assert answer.startswith("v=0")
        assert media_kinds(answer) == media_kinds(offer)
        parsed = SessionDescription.parse(answer)
        assert all(m.dtls is not None and m.dtls.fingerprints for m in parsed.media)
        # Signaling only: the process's shared SDP, so neither side has a peer connection
        # of its own, and no ICE ever starts.
        assert (offer, answer) == (signaling_sdp(kind).offer, signaling_sdp(kind).answer)
        assert caller.pc is None and callee.pc is None
    finally:
        await caller.close()
        await callee.close()


async def test_signaling_only_calls_share_one_real_offer_and_answer_per_kind() -> None:
    first, second = CallMedia(), CallMedia()
    audio = await first.create_offer("audio")
    assert await second.create_offer("audio") == audio
    video = await second.create_offer("video")
    assert video != audio
    assert (media_kinds(audio), media_kinds(video)) == (["audio"], ["audio", "video"])
    assert signaling_sdp("audio") is signaling_sdp("audio")  # made once per process


async def test_an_offer_not_shared_is_answered_by_a_peer_connection_of_its_own() -> None:
    other = new_peer_connection()
    try:
        other.addTransceiver("audio")
        await other.setLocalDescription(await other.createOffer())
        foreign = str(other.localDescription.sdp)
    finally:
        await other.close()
    assert foreign != signaling_sdp("audio").offer
    callee = CallMedia()
    try:
        answer = await callee.create_answer(foreign)
        CallMedia.check_answer(answer)
        assert answer != signaling_sdp("audio").answer
        assert callee.pc is not None
        assert callee.pc.localDescription is None  # not applied: ICE stays off
        assert callee.pc.iceConnectionState == "new"
    finally:
        await callee.close()


async def test_a_media_call_still_makes_its_own_peer_connection_and_offer() -> None:
    first, second = CallMedia(media=True), CallMedia(media=True)
    try:
        assert first.pc is not None and second.pc is not None and first.pc is not second.pc
        offers = [await first.create_offer("audio"), await second.create_offer("audio")]
        assert offers[0] != offers[1]  # each gathers its own candidates and ICE credentials
        assert signaling_sdp("audio").offer not in offers
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param("garbage", id="a-word"),
        pytest.param("not an sdp\r\nat all\r\n", id="two-lines"),
        pytest.param("x=1\r\nm=foo", id="broken-m-line"),
        pytest.param("v=0\r\nm=audio nine UDP/TLS/RTP/SAVPF 0\r\n", id="bad-port"),
    ],
)
def test_check_answer_rejects_garbage(garbage: str) -> None:
    with pytest.raises(ValueError, match="invalid SDP answer"):
        CallMedia.check_answer(garbage)


async def test_close_is_idempotent():
    media = CallMedia(media=True)
    await media.create_offer("audio")
    await media.close()
    assert media.pc is not None
    assert media.pc.connectionState == "closed"
    await media.close()
    assert media.pc.connectionState == "closed"


async def test_close_without_an_offer_is_fine_too():
    for media in (CallMedia(), CallMedia(media=True)):
        await media.close()
        await media.close()
    assert media.pc is not None
    assert media.pc.signalingState == "closed"
