#!/usr/bin/env python3
"""Real media calls per process: how many aiortc audio calls one Python process carries.

For each count N in ``--calls``, N calls are set up in this one process, each a pair of
aiortc peer connections (:func:`peers.media.new_peer_connection`: no STUN, host candidates on
127.0.0.1) sending audio both ways (aiortc's paced 20 ms frames, Opus-encoded) and counting
the frames each side receives. The offer and answer go straight from one peer connection to
the other: this measures media, not signaling. After ``--hold`` seconds of connected audio,
each track's received frames per second are compared with the 50 it is sent. A count
"holds" when the slowest track still gets 95% of its frames; the figure is the largest count
that holds::

    python benchmarks/media_calls.py [--calls 1,2,4,8,10,15,20,30] [--hold 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from aiortc import AudioStreamTrack, MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from peers.media import new_peer_connection


__all__ = ["MediaResult", "Step", "main", "run_media_calls"]

FRAMES_PER_SECOND: Final = 50
"""20 ms audio frames: what each track is sent."""

HOLDS: Final = 0.95
"""The share of frames the slowest track must get for a count to hold."""


@dataclass
class Step:
    """One count of calls."""

    calls: int
    connect_ms_median: float
    fps_median: float
    fps_min: float
    cpu_percent: float
    holds: bool


@dataclass
class MediaResult:
    """Every count tried, and the largest that held."""

    hold: float
    steps: list[Step] = field(default_factory=list)

    @property
    def calls_per_process(self) -> int:
        """The largest count whose slowest track got 95% of its frames (0 if none)."""
        return max((s.calls for s in self.steps if s.holds), default=0)

    def as_json(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        return {
            "benchmark": "media_calls",
            "hold": self.hold,
            "calls_per_process": self.calls_per_process,
            "steps": [asdict(s) for s in self.steps],
        }

    def table(self) -> str:
        """The figures as a Markdown table."""
        lines = [
            "| calls | connect ms (median) | rx frames/s per track median / min | CPU | holds |",
            "|---|---|---|---|---|",
        ]
        for s in self.steps:
            lines.append(
                f"| {s.calls} | {s.connect_ms_median:.0f} | {s.fps_median:.1f} / {s.fps_min:.1f} "
                f"| {s.cpu_percent:.0f}% | {'yes' if s.holds else 'no'} |"
            )
        lines.append(f"\nreal media calls per process: {self.calls_per_process}")
        return "\n".join(lines)


class _Call:
    """Two peer connections, audio both ways, each counting what it receives."""

    def __init__(self) -> None:
        self.caller = new_peer_connection()
        self.callee = new_peer_connection()
        self.received = [0, 0]
        self.consumers: list[asyncio.Task[None]] = []
        self.connected = asyncio.Event()
        for side, pc in enumerate((self.caller, self.callee)):
            pc.addTrack(AudioStreamTrack())
            pc.on("track", lambda track, side=side: self._consume(side, track))
            pc.on("connectionstatechange", self._state_changed)

    def _consume(self, side: int, track: MediaStreamTrack) -> None:
        async def count() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    await track.recv()
                    self.received[side] += 1

        self.consumers.append(asyncio.get_running_loop().create_task(count()))

    def _state_changed(self) -> None:
        pcs: tuple[RTCPeerConnection, RTCPeerConnection] = (self.caller, self.callee)
        if all(pc.connectionState == "connected" for pc in pcs):
            self.connected.set()

    async def connect(self) -> float:
        """Offer, answer, and ICE/DTLS until both ends are connected; returns seconds."""
        started = time.monotonic()
        await self.caller.setLocalDescription(await self.caller.createOffer())
        await self.callee.setRemoteDescription(self.caller.localDescription)
        await self.callee.setLocalDescription(await self.callee.createAnswer())
        await self.caller.setRemoteDescription(self.callee.localDescription)
        async with asyncio.timeout(30):
            await self.connected.wait()
        return time.monotonic() - started

    async def close(self) -> None:
        for task in self.consumers:
            task.cancel()
        await self.caller.close()
        await self.callee.close()


async def _step(calls: int, hold: float) -> Step:
    group = [_Call() for _ in range(calls)]
    try:
        connect = await asyncio.gather(*(c.connect() for c in group))
        await asyncio.sleep(1.0)  # past the first frames' jitter-buffer start
        before = [list(c.received) for c in group]
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(hold)
        elapsed = time.monotonic() - wall
        cpu_percent = 100 * (time.process_time() - cpu) / elapsed
        fps = [
            (c.received[side] - b[side]) / elapsed
            for c, b in zip(group, before, strict=True)
            for side in (0, 1)
        ]
    finally:
        await asyncio.gather(*(c.close() for c in group))
    return Step(
        calls=calls,
        connect_ms_median=statistics.median(connect) * 1000,
        fps_median=statistics.median(fps),
        fps_min=min(fps),
        cpu_percent=cpu_percent,
        holds=min(fps) >= HOLDS * FRAMES_PER_SECOND,
    )


async def run_media_calls(
    counts: Sequence[int] = (1, 2, 4, 8, 10, 15, 20, 30), hold: float = 5.0
) -> MediaResult:
    """Tries each count of calls in turn; stops after the second count that does not hold."""
    result = MediaResult(hold=hold)
    misses = 0
    for calls in counts:
        step = await _step(calls, hold)
        result.steps.append(step)
        misses += not step.holds
        if misses >= 2:
            break
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", default="1,2,4,8,10,15,20,30", help="comma-separated counts")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds of audio per count")
    parser.add_argument("--json", type=Path, default=Path("media_calls.json"))
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.calls.split(",")]
    if any(not 1 <= c <= 50 for c in counts):
        parser.error("each count must be from 1 to 50")
    result = asyncio.run(run_media_calls(counts, args.hold))
    print(result.table())
    args.json.write_text(json.dumps(result.as_json(), indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
