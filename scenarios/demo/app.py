"""``voip-sandbox demo``: the signaling server, the demo page, until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

from scenarios.model import DEFAULT_PROFILE

from .controller import DEFAULT_AUDIO_PHONE, DemoController
from .web import DemoServer


__all__ = ["run_demo", "serve_demo"]


async def serve_demo(
    *,
    port: int = 8000,
    signaling_port: int = 8765,
    profile: str = DEFAULT_PROFILE,
    audio_phone: str | None = DEFAULT_AUDIO_PHONE,
    timers: Mapping[str, float] | None = None,
    ready: Callable[[DemoServer], None] | None = None,
) -> None:
    """Runs the demo until cancelled.

    Args:
        port: The page's port on 127.0.0.1 (0: a free one).
        signaling_port: The signaling server's port on 127.0.0.1 (0: a free one).
        profile: The profile free play runs under.
        audio_phone: Free play's phone with real audio (``None``: none).
        timers: Free play's timers that differ from the profile's, in seconds.
        ready: Called once both servers listen.
    """
    controller = DemoController(
        port=signaling_port, profile=profile, audio_phone=audio_phone, timers=timers
    )
    await controller.start()
    try:
        async with DemoServer(controller, port=port) as server:
            if ready is not None:
                ready(server)
            await asyncio.Future()
    finally:
        await controller.close()


def run_demo(
    *,
    port: int,
    signaling_port: int,
    profile: str,
    audio_phone: str | None,
    timers: Mapping[str, float] | None = None,
) -> None:
    """The command's body: prints the addresses, serves until Ctrl-C."""

    def ready(server: DemoServer) -> None:
        assert server.controller.world is not None
        print(f"voip-sandbox demo: open {server.url}", flush=True)
        url = server.controller.signaling_url
        print(f"  signaling server {url}", flush=True)
        print(f"  terminal phones: voip-sandbox phone NAME --server {url}", flush=True)
        print(f"  browser phone: {server.url}phone?name=erin   (Ctrl-C to stop)", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve_demo(
                port=port,
                signaling_port=signaling_port,
                profile=profile,
                audio_phone=audio_phone,
                timers=timers,
                ready=ready,
            )
        )
