"""The aiortc audio phone: a real call with sound both ways, labeled from its transitions."""

from __future__ import annotations

import asyncio

from peers.phone import Phone
from scenarios.demo.audio_phone import FRAME_SAMPLES, SAMPLE_RATE, AudioPhone, ToneTrack
from scenarios.observers import EventStream, call_logs, event_logger, label_entries
from scenarios.profiles import load_profile
from signaling.calls import Transition
from signaling.server import SignalingServer
from signaling.switchboard import Switchboard, SwitchboardSettings


async def test_the_tone_is_20ms_frames_of_48khz_mono_paced_in_real_time() -> None:
    track = ToneTrack()
    loop = asyncio.get_running_loop()
    started = loop.time()
    frames = [await track.recv() for _ in range(10)]
    assert loop.time() - started >= 0.17  # nine frame times after the first
    assert {f.samples for f in frames} == {FRAME_SAMPLES}
    assert {f.sample_rate for f in frames} == {SAMPLE_RATE}
    assert [f.pts for f in frames[:3]] == [0, FRAME_SAMPLES, 2 * FRAME_SAMPLES]
    assert any(b != 0 for b in bytes(frames[1].planes[0])[:200])  # not silence


async def test_two_audio_phones_talk_with_sound_both_ways_and_hang_up_cleanly() -> None:
    loop = asyncio.get_running_loop()
    stream = EventStream(loop.time)
    log = event_logger(stream)
    switchboard = Switchboard(SwitchboardSettings())
    server = SignalingServer(switchboard, port=0, logger=log)
    await server.start()
    phones = {}
    for name in ("dave", "erin"):
        token = f"{name}-token-0123456789"
        switchboard.provision(name, token)
        phones[name] = AudioPhone(Phone(name, token), server.url, logger=log)
        phones[name].start()
    dave, erin = phones["dave"], phones["erin"]
    try:
        async with asyncio.timeout(20):
            await dave.wait_registered()
            await erin.wait_registered()
            call_id = await dave.call("erin")
            while erin.phone.ringing_offer() is None:
                await stream.wait_for(lambda e: e.get("event") == "transition")
            await erin.answer()
            await dave.wait_for_frames(25, call_id)
            await erin.wait_for_frames(25, call_id)
            await erin.hang_up()
            while dave.phone.active_call is not None:
                await stream.wait_for(lambda e: e.get("event") == "transition")
    finally:
        await dave.stop()
        await erin.stop()
        await server.close()
    assert [e["state"] for e in stream.events if e.get("event") == "media"].count("connected") == 2
    transitions = [
        Transition.from_event(e) for e in stream.events if e.get("event") == "transition"
    ]
    logs = call_logs(transitions, ["dave", "erin"])
    profile = load_profile("whatsapp")
    assert [e.label for e in label_entries(logs["dave"], profile)] == ["outgoing"]
    assert [e.label for e in label_entries(logs["erin"], profile)] == ["incoming"]
    assert not dave._calls and not erin._calls  # every peer connection closed
