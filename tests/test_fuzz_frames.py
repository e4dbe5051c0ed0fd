"""Smoke tests of ``scripts/fuzz_frames.py``: a few thousand fuzzed frames, in seconds.

A real signaling server (in the test's loop, on 127.0.0.1, real time) gets frames that
hypothesis generates, over raw websocket connections, while two phones hold a call.
"""

from __future__ import annotations

import pytest

from scripts.fuzz_frames import KIND_NAMES, KINDS, STALL_LIMIT, generate_frames, run_fuzz_async


def test_frames_are_reproducible_and_weighted_by_kind() -> None:
    first = generate_frames(1000, seed_value=7, batch=3, connections=4, max_frame_size=1024)
    again = generate_frames(1000, seed_value=7, batch=3, connections=4, max_frame_size=1024)

    assert first == again
    counts = {kind: sum(1 for k, _ in first if k == kind) for kind in KIND_NAMES}
    assert counts == dict(KINDS)  # weights are out of 1000
    assert all(len(p) > 1024 for k, p in first if k == "oversized")


@pytest.mark.timeout(120)
async def test_fuzzed_frames_leave_the_server_answering_and_the_call_undisturbed() -> None:
    result = await run_fuzz_async(2000, seed=1, batch=500, workers=1)

    assert result.passed, "\n".join(result.failures)
    assert result.frames == 2000
    assert sum(result.frames_by_kind.values()) == 2000
    # Every frame was handled but those sent just before the server closed a connection
    # (the oversized ones: 1009, as documented).
    assert result.frames_confirmed + result.frames_unconfirmed == 2000
    assert set(result.closed_after) <= {c for c in result.closed_by_server}
    assert all(close.startswith("1009 ") for close in result.closed_by_server)
    assert result.unparsable_replies == 0
    assert result.slowest_watchdog < STALL_LIMIT
    assert {n: [e["label"] for e in log] for n, log in result.bystander_logs.items()} == {
        "bystander-alice": ["outgoing"],
        "bystander-bob": ["incoming"],
    }


@pytest.mark.timeout(120)
async def test_the_servers_own_limits_cut_off_a_burst_without_stalling_anyone() -> None:
    # The server's default limits: 50 frames/s in bursts of 100, 20 refusals in 10 s. A
    # window of 50 leaves frames unread behind the 20th refusal when the server closes the
    # connection: its close handshake then waits for the close timeout, and nobody else
    # may wait with it (the watchdog's answers stay fast).
    result = await run_fuzz_async(
        100,
        seed=2,
        connections=2,
        batch=100,
        window=50,
        rate=50.0,
        burst=100,
        max_errors=20,
        kinds=("unicode", "binary", "wrong_type"),
        workers=0,
    )

    assert result.passed, "\n".join(result.failures)
    assert result.closed_by_server.get("1008 too many refused frames", 0) >= 1
    assert result.slowest_watchdog < STALL_LIMIT
