"""A server process: started, its URL read back, sampled, stopped."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from scenarios.load_process import ProcessSampler, ServerProcess, ServerProcessError, serve_command


LISTENER = """
import signal, sys, time
print("noise first, then: listening on ws://127.0.0.1:4321", flush=True)
signal.signal(signal.SIGINT, lambda *a: sys.exit(3))
time.sleep(60)
"""


async def test_the_url_is_read_from_its_output_and_sigint_stops_it(tmp_path: Path) -> None:
    process = ServerProcess([sys.executable, "-c", LISTENER], log_path=tmp_path / "out.log")
    assert await process.start(within=10) == "ws://127.0.0.1:4321"
    sample = ProcessSampler(process.pid).sample()
    assert sample.rss_bytes > 1_000_000
    assert await process.stop() == 3  # its own SIGINT handler ran: a clean stop


async def test_a_process_that_exits_before_listening_is_an_error(tmp_path: Path) -> None:
    process = ServerProcess(
        [sys.executable, "-c", "raise SystemExit(7)"], log_path=tmp_path / "out.log"
    )
    with pytest.raises(ServerProcessError, match="exited with code 7"):
        await process.start(within=10)


async def test_voip_sandbox_serve_starts_on_a_free_port(tmp_path: Path) -> None:
    process = ServerProcess(serve_command("--port", "0", "--memory"), log_path=tmp_path / "s.log")
    url = await process.start(within=30)
    assert url.startswith("ws://127.0.0.1:") and not url.endswith(":0")
    await process.stop()


def test_the_sampler_reads_this_process_and_keeps_the_peak() -> None:
    sampler = ProcessSampler(os.getpid())
    first = sampler.sample()
    assert first.cpu_seconds > 0
    assert sampler.peak_rss_bytes == first.rss_bytes > 0


def test_a_gone_process_cannot_be_sampled() -> None:
    with pytest.raises(ProcessLookupError):
        ProcessSampler(2**22 + 1).sample()  # above Linux's largest pid


async def test_sigint_stops_it_even_if_this_process_ignores_sigint(tmp_path: Path) -> None:
    # As in a background job of a non-interactive shell: the child must not inherit it.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process = ServerProcess(
            [
                sys.executable,
                "-c",
                "print('ws://127.0.0.1:1', flush=True); import time; time.sleep(60)",
            ],
            log_path=tmp_path / "out.log",
        )
        await process.start(within=10)
    finally:
        signal.signal(signal.SIGINT, previous)
    started = time.monotonic()
    code = await process.stop(within=10)
    assert code == -signal.SIGINT  # it stopped on the signal itself, not SIGKILL after 10 s
    assert time.monotonic() - started < 5
