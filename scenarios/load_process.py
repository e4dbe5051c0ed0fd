"""A server under load as an OS process: starting it, stopping it, and reading its CPU and RSS.

The load generator (:mod:`scenarios.load`) runs in its own process and points its phones at
a server in another one, so that each side's cost can be measured on its own. This module
starts such a process (``voip-sandbox serve``, or a benchmark's bare relay), waits until it
says where it listens, and samples what it costs from ``/proc`` (Linux): CPU seconds from
``/proc/PID/stat`` and resident memory from ``/proc/PID/statm``. No extra dependency is
needed for two numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final


__all__ = [
    "LISTENING_URL",
    "ProcessSample",
    "ProcessSampler",
    "ServerProcess",
    "ServerProcessError",
    "serve_command",
]

LISTENING_URL: Final = re.compile(rb"(ws://127\.0\.0\.1:\d+)")
"""How a server process says where it listens: the first loopback websocket URL it prints."""

_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE")


class ServerProcessError(RuntimeError):
    """The server process exited, or did not say where it listens in time."""


def serve_command(*options: str) -> list[str]:
    """The command line of ``voip-sandbox serve`` with ``options``, run by this interpreter.

    The entry point is called through ``-c`` rather than the console script so that the
    server runs from the same environment as the caller, installed or not.
    """
    entry = "from scenarios.cli import main; main(prog_name='voip-sandbox')"
    return [sys.executable, "-c", entry, "serve", *options]


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """What a process has cost so far.

    Attributes:
        cpu_seconds: User plus system CPU time since it started.
        rss_bytes: Resident memory now.
    """

    cpu_seconds: float
    rss_bytes: int


class ProcessSampler:
    """Reads one process's CPU time and resident memory, and keeps the peak.

    Args:
        pid: The process to watch (this one, or a child).
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss_bytes = 0
        """The largest resident memory seen by :meth:`sample`."""

    def sample(self) -> ProcessSample:
        """Reads the process's figures now.

        Raises:
            ProcessLookupError: The process is gone.
        """
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text(encoding="ascii")
            statm = Path(f"/proc/{self.pid}/statm").read_text(encoding="ascii")
        except FileNotFoundError:
            raise ProcessLookupError(self.pid) from None
        # The command name (field 2) may hold spaces and parentheses: split after it.
        fields = stat.rpartition(")")[2].split()
        utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
        rss = int(statm.split()[1]) * _PAGE_SIZE
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
        return ProcessSample(cpu_seconds=(utime + stime) / _CLOCK_TICKS, rss_bytes=rss)

    async def watch(self, interval: float = 0.25) -> None:
        """Samples every ``interval`` seconds until cancelled or the process is gone."""
        with contextlib.suppress(ProcessLookupError):
            while True:
                self.sample()
                await asyncio.sleep(interval)


def _interruptible() -> None:
    """In the child, before it runs: SIGINT does what Ctrl-C does.

    A shell without job control starts background jobs with SIGINT ignored, and children
    inherit that; Python then installs no KeyboardInterrupt handler, and :meth:`stop`
    would have to kill a server that could have stopped cleanly.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ServerProcess:
    """A server in a child process, on 127.0.0.1, whose output goes to a log file.

    The output goes to a file, never to a pipe: a server that logs every frame would fill
    a pipe nobody reads and stall. The URL is read back from that file.

    Args:
        command: The command line; the process must print its ``ws://127.0.0.1:PORT`` URL.
        log_path: Where its standard output and error go.
        cwd: Its working directory (the current one by default).
    """

    def __init__(self, command: Sequence[str], *, log_path: Path, cwd: Path | None = None) -> None:
        self.command = list(command)
        self.log_path = log_path
        self.cwd = cwd
        self.url: str | None = None
        """The URL it listens on, once :meth:`start` returned."""
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        """The process id.

        Raises:
            ServerProcessError: It was not started.
        """
        if self._proc is None:
            raise ServerProcessError("the server process was not started")
        return self._proc.pid

    async def start(self, *, within: float = 30.0) -> str:
        """Starts the process and waits until it prints its URL.

        Args:
            within: Seconds it may take.

        Returns:
            The URL.

        Raises:
            ServerProcessError: It exited, or printed no URL in time.
        """
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("wb") as log:
            self._proc = proc = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=env,
                preexec_fn=_interruptible,
            )
        deadline = time.monotonic() + within
        while True:
            found = LISTENING_URL.search(self.log_path.read_bytes()[:65536])
            if found is not None:
                self.url = found.group(1).decode()
                return self.url
            if proc.returncode is not None:
                raise ServerProcessError(
                    f"{self.command[0]} exited with code {proc.returncode} before "
                    f"listening; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                await self.stop()
                raise ServerProcessError(
                    f"the server printed no URL within {within:.0f}s; see {self.log_path}"
                )
            # The process writes to a file, which cannot wake us: poll it, briefly.
            await asyncio.sleep(0.01)

    async def stop(self, *, within: float = 10.0) -> int | None:
        """Stops the process (``SIGINT``, as Ctrl-C; ``SIGKILL`` after ``within`` seconds).

        Returns:
            Its exit code, or ``None`` if it was never started.
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), within)
            except TimeoutError:
                proc.kill()
        return await proc.wait()

    async def __aenter__(self) -> ServerProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
