"""CallMedia: real aiortc SDP, gathered on 127.0.0.1 only, with no STUN server."""

from __future__ import annotations

from typing import Literal

import pytest
from aiortc.sdp import SessionDescription

from peers.media import CallMedia


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
        # Signaling only: the answer is not applied, so ICE never starts on either side.
        assert caller.pc.iceConnectionState == "new"
        assert callee.pc.iceConnectionState == "new"
        assert callee.pc.localDescription is None
    finally:
        await caller.close()
        await callee.close()


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
    media = CallMedia()
    await media.create_offer("audio")
    await media.close()
    assert media.pc.connectionState == "closed"
    await media.close()
    assert media.pc.connectionState == "closed"


async def test_close_without_an_offer_is_fine_too():
    media = CallMedia()
    await media.close()
    await media.close()
    assert media.pc.signalingState == "closed"
