#!/usr/bin/env python3
"""Crash test: kill a real ``voip-sandbox serve`` process mid-traffic and check what survives.

The signaling server runs as its own OS process (``voip-sandbox serve --db FILE``); the
phones run here, in one asyncio event loop, in real time, each a real
:class:`~peers.client.PhoneClient` (a :class:`~peers.phone.Phone`, its
:class:`~peers.link.Link` and a websocket on 127.0.0.1), built as
:func:`scenarios.runner.new_phone_client` builds them but without provisioning: the server
is another process, and it registers each name on its first ``register``.

The run, for ``--calls N``:

1. **Phase A** (``N // 2`` pairs): every notice callee powers off; its caller calls it and
   hangs up, so a missed-call notice waits for it in the server's SQLite file. The script
   reads the file (read-only) until every notice is there.
2. **Phase B** (``N`` pairs): every caller calls a callee that is on and never answers;
   the script waits until every caller hears Ringing… and the file holds every call as
   ``ringing``. The server runs under a profile with a long ring timer (``--profile``,
   ``telegram`` by default: 90 s, and missed-call notices are kept), so nothing rings out.
3. **Crash**: ``SIGKILL`` to the server process, no clean shutdown; a new server process
   starts at once on the same file and port. The phones reconnect by themselves.
4. **Recovery**: once every phone that was on has registered again, the phase-A callees
   are powered on. The script waits until no phone has a call in progress, every phase-A
   callee has logged its missed call, and no notice is left unacknowledged in the file.

Checks (each failure is listed, and the exit code is 1):

- no notice lost: each phase-A callee logs exactly one missed call, for its caller's call;
- nothing duplicated: no call id twice in any phone's :meth:`~peers.phone.Phone.call_log`,
  and no phone logs a call it was not party to;
- every call ended on both ends, labeled by the ``whatsapp`` profile: phase A caller
  ``canceled``, callee ``missed``; phase B caller ``canceled`` (it heard Ringing…), callee
  ``missed``;
- the server's records (read from the file after the run) agree: every call ended, phase A
  ``canceled``, phase B ``dropped``, no notice left; no traceback in the server's output;
  no error frame sent to any phone; no exception in this process's event loop.

Figures: calls placed, notices expected / delivered / duplicated, time to kill (``SIGKILL``
until the process is dead), restart time (kill until the new process listens), time until
every phone that was on registered again, time until every call was over on every phone.

Run it from the project's virtual environment (``. .venv/bin/activate``)::

    python scripts/crash_recovery.py --calls 1000

Every socket is on 127.0.0.1 and every wait is bounded: the run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from peers.client import PhoneClient
from peers.link import Link
from peers.phone import Phone, PhoneError
from scenarios.profiles import Profile, load_profile, profile_names
from signaling.calls import RINGING
from signaling.messages import MissedCall, Registered, ServerMessage
from signaling.server import DEFAULT_HOST


__all__ = [
    "CrashResult",
    "CrashTestError",
    "main",
    "run_crash_test",
    "run_crash_test_async",
]

ROOT = Path(__file__).resolve().parent.parent
"""The project's root: the server process runs from here."""

LABEL_PROFILE = "whatsapp"
"""The profile whose labels judge every call log."""

DEFAULT_PROFILE = "telegram"
"""The server's profile: a 90 s ring timer, and missed-call notices kept for absent phones."""

LISTENING = (b'"event": "server_started"', b"voip-sandbox signaling server on ")
"""What ``voip-sandbox serve`` writes once it listens: its log event, then its banner."""

BATCH = 50
"""Phones started, or calls placed, at once."""

_POLL = 0.05
"""Seconds between checks while waiting for a condition."""

_T = TypeVar("_T")


class CrashTestError(Exception):
    """A phase could not go on (a bounded wait ran out, the server would not start)."""


@dataclass
class CrashResult:
    """What one crash test measured and found.

    Attributes:
        calls: Ringing calls cut by the crash (phase B), the ``--calls`` asked for.
        notice_pairs: Phase-A pairs (a missed-call notice each).
        profile: The server's profile.
        seed: The seed of tokens and call ids.
        phones: Phones in the run.
        calls_placed: Calls placed, both phases.
        notices_expected: Phase-A notices (one per pair).
        notices_on_disk_before_kill: Phase-A notices found in the file before the kill.
        ringing_on_disk_before_kill: Calls found ``ringing`` in the file before the kill.
        notices_delivered: Phase-A callees that logged their missed call once after the crash.
        notices_lost: Phase-A callees that did not.
        notices_duplicated: Call ids logged more than once by a phone (all phones).
        notice_frames: ``missed_call`` frames received by phase-A callees.
        cut_call_notice_frames: ``missed_call`` frames received by phase-B callees (for the
            calls the crash ended).
        ringing_seconds: From the first phase-B call until the kill (must stay under the
            profile's ring timeout).
        time_to_kill: Seconds from ``SIGKILL`` until the process was dead (exited).
        restart_time: Seconds from the kill until the new process listened.
        crash_noticed_time: Seconds from the kill until every phone noticed its link died.
        reregister_time: Seconds from the kill until every phone that was on registered again.
        notice_callees_time: Seconds from powering the phase-A callees on until each logged
            its notice.
        terminal_time: Seconds from the kill until no call was in progress on any phone,
            every notice was logged and none was left in the file.
        labels: How many entries carried each ``role:label`` (``whatsapp`` labels).
        failed_connects: Connection attempts of phones that failed (refused while the server
            was down, mostly).
        heartbeat_timeouts: Phone links closed by their own heartbeat.
        client_peak_rss_mb: Peak memory of this process (the phones).
        server_peak_rss_mb: Peak memory of the largest server process.
        client_cpu_seconds: CPU time of this process.
        server_cpu_seconds: CPU time of the server processes.
        wall_seconds: The whole run.
        db: The SQLite file.
        server_logs: The server processes' output files.
        failures: What went wrong, for a person; empty when every check passed.
    """

    calls: int
    notice_pairs: int
    profile: str
    seed: int
    phones: int = 0
    calls_placed: int = 0
    notices_expected: int = 0
    notices_on_disk_before_kill: int = 0
    ringing_on_disk_before_kill: int = 0
    notices_delivered: int = 0
    notices_lost: int = 0
    notices_duplicated: int = 0
    notice_frames: int = 0
    cut_call_notice_frames: int = 0
    ringing_seconds: float | None = None
    time_to_kill: float | None = None
    restart_time: float | None = None
    crash_noticed_time: float | None = None
    reregister_time: float | None = None
    notice_callees_time: float | None = None
    terminal_time: float | None = None
    labels: dict[str, int] = field(default_factory=dict)
    failed_connects: int = 0
    heartbeat_timeouts: int = 0
    client_peak_rss_mb: float = 0.0
    server_peak_rss_mb: float = 0.0
    client_cpu_seconds: float = 0.0
    server_cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    db: str = ""
    server_logs: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every check held."""
        return not self.failures

    def as_json(self) -> dict[str, Any]:
        """The result as a JSON-ready mapping (with ``passed``)."""
        return {"passed": self.passed, **asdict(self)}

    def table(self) -> str:
        """The figures as a Markdown table, ready for a README."""

        def seconds(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.2f} s"

        rows = [
            ("phones", f"{self.phones}"),
            (
                "calls placed",
                f"{self.calls_placed} ({self.notice_pairs} notice calls + "
                f"{self.calls} ringing at the kill)",
            ),
            ("server profile (timers)", f"{self.profile}; labels: {LABEL_PROFILE}"),
            ("notices on disk before the kill", f"{self.notices_on_disk_before_kill}"),
            ("calls ringing on disk before the kill", f"{self.ringing_on_disk_before_kill}"),
            ("notices expected", f"{self.notices_expected}"),
            ("notices delivered (logged once)", f"{self.notices_delivered}"),
            ("notices lost", f"{self.notices_lost}"),
            ("notices duplicated", f"{self.notices_duplicated}"),
            (
                "missed_call frames (notice callees / ringing callees)",
                f"{self.notice_frames} / {self.cut_call_notice_frames}",
            ),
            ("ringing time before the kill", seconds(self.ringing_seconds)),
            ("time to kill (SIGKILL → process dead)", seconds(self.time_to_kill)),
            ("restart time (kill → listening)", seconds(self.restart_time)),
            ("every phone noticed the crash", seconds(self.crash_noticed_time)),
            ("every phone re-registered (from the kill)", seconds(self.reregister_time)),
            ("notice callees powered on → notice logged", seconds(self.notice_callees_time)),
            ("every call terminal (from the kill)", seconds(self.terminal_time)),
            ("failed connection attempts (server down)", f"{self.failed_connects}"),
            ("heartbeat timeouts", f"{self.heartbeat_timeouts}"),
            (
                "peak memory (phones / server)",
                f"{self.client_peak_rss_mb:.0f} MB / {self.server_peak_rss_mb:.0f} MB",
            ),
            (
                "CPU time (phones / servers)",
                f"{self.client_cpu_seconds:.1f} s / {self.server_cpu_seconds:.1f} s",
            ),
            ("wall time", seconds(self.wall_seconds)),
            ("result", "PASSED" if self.passed else f"FAILED ({len(self.failures)} checks)"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"| {'figure':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
        lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
        return "\n".join(lines)


# --- The phones ----------------------------------------------------------------------------------


class WatchedPhone(Phone):
    """A :class:`~peers.phone.Phone` that also notes its registrations and notices.

    Args:
        name: The phone's name.
        token: Its registration token.
        profile: The server's profile: reconnect grace and ring timer.
        new_call_id: Makes a fresh call id.
    """

    def __init__(
        self, name: str, token: str, *, profile: Profile, new_call_id: Callable[[], str]
    ) -> None:
        super().__init__(
            name,
            token,
            reconnect_grace=profile.timers.reconnect_grace,
            new_call_id=new_call_id,
            ring_timer=profile.policies.ring_timer,
            ring_timeout=profile.timers.ring_timeout,
        )
        self.registered_at: float | None = None
        """``time.monotonic()`` of the last ``registered`` frame."""
        self.notice_frames: Counter[str] = Counter()
        """``missed_call`` frames received, by call id."""

    def receive(self, message: ServerMessage, now: float) -> None:
        """Notes the frame, then handles it as any phone does."""
        if isinstance(message, Registered):
            self.registered_at = time.monotonic()
        elif isinstance(message, MissedCall):
            self.notice_frames[message.call_id] += 1
        super().receive(message, now)


class _Tally:
    """The phones' and links' logger: counts what matters here and prints nothing."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.warnings: list[str] = []

    def info(self, event: str, **fields: Any) -> None:
        """Counts connection and heartbeat events; ignores the rest."""
        if event in ("connection", "heartbeat"):
            self.counts[f"{event}:{fields.get('state')}"] += 1

    def debug(self, event: str, **fields: Any) -> None:
        """Ignored."""

    def warning(self, event: str, **fields: Any) -> None:
        """Keeps the first few warnings (a frame a phone could not parse, a bad SDP)."""
        self.counts["warning"] += 1
        if len(self.warnings) < 20:
            self.warnings.append(f"{event}: {fields}")

    error = warning


def _new_client(
    name: str, *, port: int, profile: Profile, seed: int, rng: random.Random, log: _Tally
) -> PhoneClient:
    ids = random.Random(f"{seed}:{name}")
    phone = WatchedPhone(
        name,
        f"{rng.getrandbits(128):032x}",
        profile=profile,
        new_call_id=lambda: f"{ids.getrandbits(64):016x}",
    )
    link = Link(DEFAULT_HOST, port, phone=name, logger=log)
    return PhoneClient(
        phone,
        link,
        heartbeat_interval=profile.timers.heartbeat_interval,
        heartbeat_timeout=profile.timers.heartbeat_timeout,
        logger=log,
    )


def _watched(client: PhoneClient) -> WatchedPhone:
    phone = client.phone
    assert isinstance(phone, WatchedPhone)
    return phone


# --- The server process --------------------------------------------------------------------------


class ServerProcess:
    """``voip-sandbox serve`` as a child process, on 127.0.0.1, one at a time.

    Args:
        port: The port, the same for every start.
        db: The SQLite file.
        profile: The server's profile.
        sync: SQLite's ``synchronous`` (``NORMAL`` or ``FULL``).
        log_dir: Where each start's output goes (``server-1.log``, ``server-2.log``…).
    """

    def __init__(self, *, port: int, db: Path, profile: str, sync: str, log_dir: Path) -> None:
        self.port = port
        self.db = db
        self.profile = profile
        self.sync = sync
        self.log_dir = log_dir
        self.logs: list[Path] = []
        self.proc: asyncio.subprocess.Process | None = None

    def command(self) -> list[str]:
        """The command line: this interpreter running the ``voip-sandbox`` entry point."""
        entry = "from scenarios.cli import main; main(prog_name='voip-sandbox')"
        return [
            sys.executable,
            "-c",
            entry,
            "serve",
            "--host",
            DEFAULT_HOST,
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            "--profile",
            self.profile,
            "--sync",
            self.sync,
        ]

    async def start(self, *, within: float) -> float:
        """Starts a server process and waits until it listens.

        Args:
            within: Seconds it may take.

        Returns:
            ``time.monotonic()`` when it said it listens (:data:`LISTENING`).

        Raises:
            CrashTestError: It exited, or did not listen in time.
        """
        log_path = self.log_dir / f"server-{len(self.logs) + 1}.log"
        self.logs.append(log_path)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with log_path.open("wb") as log:
            self.proc = proc = await asyncio.create_subprocess_exec(
                *self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=env,
            )
        deadline = time.monotonic() + within
        seen = b""
        with log_path.open("rb") as output:
            while True:
                seen = (seen + output.read())[-65536:]
                if any(sign in seen for sign in LISTENING):
                    return time.monotonic()
                if proc.returncode is not None:
                    raise CrashTestError(
                        f"the server exited with code {proc.returncode} before listening; "
                        f"see {log_path}"
                    )
                if time.monotonic() > deadline:
                    raise CrashTestError(
                        f"the server did not listen within {within:.0f}s; see {log_path}"
                    )
                await asyncio.sleep(0.002)

    async def kill(self) -> tuple[float, float]:
        """``SIGKILL``: no clean shutdown, no flush, the sockets die with the process.

        Returns:
            ``time.monotonic()`` of the kill, and the seconds until the process was dead
            (its sockets closed by the kernel).
        """
        proc = self._running()
        killed_at = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        dead_after = _wait_dead(proc.pid, within=10.0) - killed_at
        await proc.wait()
        return killed_at, dead_after

    async def stop(self) -> None:
        """Stops the server cleanly (``SIGINT``, as Ctrl-C); kills it after 10 s."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 10.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def _running(self) -> asyncio.subprocess.Process:
        if self.proc is None or self.proc.returncode is not None:
            raise CrashTestError("the server is not running")
        return self.proc


def _wait_dead(pid: int, *, within: float) -> float:
    """Blocks until child ``pid`` has exited; returns ``time.monotonic()`` then.

    Blocking on purpose, for a few milliseconds: awaiting the event loop's child watcher
    would add the loop's latency (thousands of phones are noticing the crash at that
    moment) to the figure. ``WNOWAIT`` leaves the child for the watcher to reap.
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
        except ChildProcessError:
            break  # reaped already
        time.sleep(0.0002)
    return time.monotonic()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((DEFAULT_HOST, 0))
        return int(sock.getsockname()[1])


def _read_db(db: Path) -> tuple[set[tuple[str, str]], dict[str, tuple[str, str | None]]]:
    """What the server's file holds now, read without writing to it.

    Returns:
        The kept notices as ``(callee, call_id)``, and every call's ``(state, cause)``.
    """
    uri = f"{db.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        notices = {(str(a), str(b)) for a, b in conn.execute("SELECT callee, call_id FROM notices")}
        calls = {
            str(call_id): (str(state), None if cause is None else str(cause))
            for call_id, state, cause in conn.execute("SELECT call_id, state, cause FROM calls")
        }
    return notices, calls


# --- The run -------------------------------------------------------------------------------------


class _Progress:
    def __init__(self, out: Callable[[str], None] | None) -> None:
        self.out = out
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        if self.out is not None:
            self.out(f"[{time.monotonic() - self.started:7.2f}s] {message}")


async def _wait_until(
    predicate: Callable[[], bool], *, within: float, what: str, poll: float = _POLL
) -> float:
    """Waits until ``predicate()`` holds; returns ``time.monotonic()`` then.

    Raises:
        CrashTestError: It did not hold within ``within`` seconds.
    """
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise CrashTestError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(poll)
    return time.monotonic()


async def _in_batches(
    items: Sequence[_T], act: Callable[[_T], Awaitable[None]], *, within: float, what: str
) -> None:
    """Runs ``act`` on every item, :data:`BATCH` at a time, each batch within ``within`` s."""
    for start in range(0, len(items), BATCH):
        try:
            async with asyncio.timeout(within):
                await asyncio.gather(*(act(item) for item in items[start : start + BATCH]))
        except TimeoutError:
            raise CrashTestError(f"{what}: a batch took more than {within:.0f}s") from None
        except PhoneError as exc:
            raise CrashTestError(f"{what}: {exc}") from exc


@dataclass
class _Pair:
    caller: PhoneClient
    callee: PhoneClient
    call_id: str = ""


class _CrashRun:
    """One crash test: the phones, the server process, and what was measured."""

    def __init__(
        self,
        result: CrashResult,
        *,
        db: Path,
        workdir: Path,
        sync: str,
        progress: _Progress,
        phase_timeout: float,
    ) -> None:
        self.result = result
        self.db = db
        self.progress = progress
        self.phase_timeout = phase_timeout
        self.profile = load_profile(result.profile)
        self.labels = load_profile(LABEL_PROFILE)
        self.log = _Tally()
        self.rng = random.Random(result.seed)
        self.port = _free_port()
        self.server = ServerProcess(
            port=self.port, db=db, profile=result.profile, sync=sync, log_dir=workdir
        )
        self.notice_pairs: list[_Pair] = []
        self.ring_pairs: list[_Pair] = []
        self.clients: list[PhoneClient] = []
        self.loop_errors: list[str] = []

    def on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Keeps every exception the event loop reports: each one fails the run."""
        exc = context.get("exception")
        detail = f"{type(exc).__name__}: {exc}" if exc is not None else context.get("message")
        self.loop_errors.append(str(detail))

    # --- Phases ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Plays every phase; a phase that cannot go on is a failure, and the run stops."""
        asyncio.get_running_loop().set_exception_handler(self.on_loop_error)
        try:
            await self.start()
            await self.phase_a()
            await self.phase_b()
            await self.crash()
            await self.recover()
        except CrashTestError as exc:
            self.result.failures.append(str(exc))
        finally:
            self.check()
            await self.shut_down()

    async def start(self) -> None:
        """Starts the server and every phone, and waits until they are all registered."""
        r = self.result
        await self.server.start(within=self.phase_timeout)
        self.progress(f"server listening on 127.0.0.1:{self.port}, store {self.db}")

        def client(name: str) -> PhoneClient:
            made = _new_client(
                name,
                port=self.port,
                profile=self.profile,
                seed=r.seed,
                rng=self.rng,
                log=self.log,
            )
            self.clients.append(made)
            return made

        self.notice_pairs = [
            _Pair(client(f"notice-caller-{i}"), client(f"notice-callee-{i}"))
            for i in range(r.notice_pairs)
        ]
        self.ring_pairs = [
            _Pair(client(f"ring-caller-{i}"), client(f"ring-callee-{i}")) for i in range(r.calls)
        ]
        r.phones = len(self.clients)

        async def start_one(c: PhoneClient) -> None:
            c.start()
            await c.wait_registered()

        await _in_batches(
            self.clients, start_one, within=self.phase_timeout, what="registering the phones"
        )
        self.progress(f"{r.phones} phones registered")

    async def phase_a(self) -> None:
        """Notice callees power off; their callers call and hang up: notices kept on disk."""
        r = self.result
        for pair in self.notice_pairs:
            await pair.callee.power_off()

        async def call_and_hang_up(pair: _Pair) -> None:
            pair.call_id = await pair.caller.call(pair.callee.name)
            await pair.caller.hang_up()

        await _in_batches(
            self.notice_pairs, call_and_hang_up, within=self.phase_timeout, what="phase A calls"
        )
        r.calls_placed += len(self.notice_pairs)
        expected = {(p.callee.name, p.call_id) for p in self.notice_pairs}
        r.notices_expected = len(expected)
        self.progress(f"phase A: {len(self.notice_pairs)} calls placed and canceled")
        found: set[tuple[str, str]] = set()

        def all_kept() -> bool:
            nonlocal found
            found = self._read_db()[0] & expected
            return found == expected

        await _wait_until(all_kept, within=self.phase_timeout, what="the notices on disk", poll=0.2)
        r.notices_on_disk_before_kill = len(found)
        self.progress(f"phase A: {len(found)}/{len(expected)} notices on disk")

    async def phase_b(self) -> None:
        """Callers call callees that never answer; waits until every caller hears Ringing…"""
        r = self.result
        self.first_ring_call = time.monotonic()

        async def call(pair: _Pair) -> None:
            pair.call_id = await pair.caller.call(pair.callee.name)

        await _in_batches(self.ring_pairs, call, within=self.phase_timeout, what="phase B calls")
        r.calls_placed += len(self.ring_pairs)
        self.progress(f"phase B: {len(self.ring_pairs)} calls placed")

        def all_ringing() -> bool:
            for pair in self.ring_pairs:
                active = pair.caller.phone.active_call
                if active is None or active.call.state is not RINGING:
                    return False
            return True

        await _wait_until(all_ringing, within=self.phase_timeout, what="every caller to ring")
        ids = {p.call_id for p in self.ring_pairs}
        ringing = 0

        def all_ringing_on_disk() -> bool:
            nonlocal ringing
            calls = self._read_db()[1]
            ringing = sum(1 for i in ids if calls.get(i, ("", None))[0] == "ringing")
            return ringing == len(ids)

        await _wait_until(
            all_ringing_on_disk, within=self.phase_timeout, what="ringing calls on disk", poll=0.2
        )
        r.ringing_on_disk_before_kill = ringing
        self.progress(f"phase B: {len(self.ring_pairs)} callers hear Ringing…, {ringing} on disk")

    async def crash(self) -> None:
        """``SIGKILL`` the server, restart it on the same file and port."""
        r = self.result
        self.killed_at, r.time_to_kill = await self.server.kill()
        r.ringing_seconds = self.killed_at - self.first_ring_call
        self.progress(f"server killed (SIGKILL), dead after {r.time_to_kill * 1000:.1f} ms")
        noticing = asyncio.create_task(self._notice_crash())
        if r.ringing_seconds >= self.profile.timers.ring_timeout:
            r.failures.append(
                f"phase B rang {r.ringing_seconds:.1f}s before the kill, as long as the "
                f"{r.profile} ring timeout ({self.profile.timers.ring_timeout:g}s): choose a "
                "profile with a longer one"
            )
        listening = await self.server.start(within=self.phase_timeout)
        r.restart_time = listening - self.killed_at
        self.progress(f"server restarted on the same file and port in {r.restart_time:.2f}s")
        await noticing

    async def _notice_crash(self) -> None:
        """Measures how long the phones that were on take to find their links dead."""
        killed = self.killed_at
        on = [c for c in self.clients if c.phone.powered]

        def noticed() -> bool:
            # A phone that already registered again noticed too.
            return all(
                not c.phone.registered or _after(_watched(c).registered_at, killed) for c in on
            )

        with contextlib.suppress(CrashTestError):
            done = await _wait_until(
                noticed, within=self.phase_timeout, what="the crash", poll=0.005
            )
            self.result.crash_noticed_time = done - killed

    async def recover(self) -> None:
        """Waits for the phones to come back, powers the notice callees on, waits for the end."""
        r = self.result
        killed = self.killed_at
        on = [c for c in self.clients if c.phone.powered]

        def reregistered() -> bool:
            return all(c.phone.registered and _after(_watched(c).registered_at, killed) for c in on)

        done = await _wait_until(
            reregistered, within=self.phase_timeout, what="every phone to register again"
        )
        r.reregister_time = done - killed
        self.progress(f"{len(on)} phones registered again, {r.reregister_time:.2f}s after the kill")

        powered_on = time.monotonic()
        for pair in self.notice_pairs:
            await pair.callee.power_on()

        def notices_logged() -> bool:
            return all(_has_ended(p.callee.phone, p.call_id) for p in self.notice_pairs)

        done = await _wait_until(
            notices_logged, within=self.phase_timeout, what="every notice to be logged"
        )
        r.notice_callees_time = done - powered_on
        self.progress(
            f"{len(self.notice_pairs)} notice callees powered on; notices logged in "
            f"{r.notice_callees_time:.2f}s"
        )

        def terminal() -> bool:
            return all(c.phone.active_call is None for c in self.clients) and notices_logged()

        await _wait_until(terminal, within=self.phase_timeout, what="every call to end")
        await _wait_until(
            lambda: not self._read_db()[0],
            within=self.phase_timeout,
            what="every notice to be acknowledged on disk",
            poll=0.2,
        )
        r.terminal_time = time.monotonic() - killed
        self.progress(f"every call terminal, {r.terminal_time:.2f}s after the kill")

    # --- Judging -----------------------------------------------------------------------------

    def check(self) -> None:
        """Checks every phone's call log and the server's records; fills in the figures."""
        r = self.result
        counts = self.log.counts
        r.failed_connects = counts["connection:failed"]
        r.heartbeat_timeouts = counts["heartbeat:timed_out"]
        labels: Counter[str] = Counter()
        delivered = 0
        for pair in self.notice_pairs:
            callee = _watched(pair.callee)
            r.notice_frames += sum(callee.notice_frames.values())
            if self._check_log(pair.callee.phone, pair.call_id, "callee", "missed", labels):
                delivered += 1
            self._check_log(pair.caller.phone, pair.call_id, "caller", "canceled", labels)
        for pair in self.ring_pairs:
            r.cut_call_notice_frames += sum(_watched(pair.callee).notice_frames.values())
            self._check_log(
                pair.caller.phone, pair.call_id, "ringing caller", "canceled", labels, reached=True
            )
            self._check_log(pair.callee.phone, pair.call_id, "ringing callee", "missed", labels)
        r.labels = dict(sorted(labels.items()))
        r.notices_delivered = delivered
        r.notices_lost = r.notices_expected - delivered
        for client in self.clients:
            ids = [s.info.call_id for s in client.phone.call_log()]
            r.notices_duplicated += sum(n - 1 for n in Counter(ids).values() if n > 1)
            for error in client.phone.errors:
                r.failures.append(f"{client.name} was sent an error: {error.code}: {error.message}")
        if r.notices_duplicated:
            r.failures.append(f"{r.notices_duplicated} call ids logged more than once")
        for warning in self.log.warnings:
            r.failures.append(f"a phone warned: {warning}")
        r.failures.extend(f"event loop: {e}" for e in self.loop_errors)

    def _check_log(
        self,
        phone: Phone,
        call_id: str,
        role: str,
        label: str,
        labels: Counter[str],
        *,
        reached: bool | None = None,
    ) -> bool:
        """Checks that ``phone`` logged ``call_id`` alone, ended, labeled ``label``."""
        if not call_id:
            return False  # never placed: the phase that failed says why
        log = phone.call_log()
        mine = [s for s in log if s.info.call_id == call_id]
        problems = []
        if len(log) != 1 or len(mine) != 1:
            problems.append(f"{len(log)} entries, {len(mine)} for this call")
        for summary in mine:
            got = self.labels.label(summary)
            labels[f"{role}: {got}"] += 1
            if summary.end_cause is None:
                problems.append("still in progress")
            elif got != label:
                problems.append(f"labeled {got!r} (cause {summary.end_cause}), not {label!r}")
            if reached is not None and summary.reached != reached:
                problems.append(f"reached={summary.reached}")
        if problems and len(self.result.failures) < 200:
            self.result.failures.append(
                f"{role} {phone.name}, call {call_id}: " + "; ".join(problems)
            )
        return not problems

    def check_records(self) -> None:
        """The server's own records, read from the file once it stopped."""
        r = self.result
        try:
            notices, calls = self._read_db()
        except sqlite3.Error as exc:
            r.failures.append(f"cannot read {self.db}: {exc}")
            return
        if notices:
            r.failures.append(f"{len(notices)} notices left unacknowledged in the file")
        for pairs, cause in ((self.notice_pairs, "canceled"), (self.ring_pairs, "dropped")):
            for pair in pairs:
                if not pair.call_id:
                    continue
                state = calls.get(pair.call_id)
                if state != ("ended", cause):
                    r.failures.append(
                        f"server record of {pair.call_id} ({pair.caller.name} → "
                        f"{pair.callee.name}): {state}, expected ('ended', {cause!r})"
                    )
        for path in self.server.logs:
            text = path.read_text(encoding="utf-8", errors="replace")
            if "Traceback" in text:
                r.failures.append(f"the server printed a traceback: see {path}")

    async def shut_down(self) -> None:
        """Stops every phone, then the server; reads its file; notes memory and CPU."""

        async def stop(c: PhoneClient) -> None:
            await c.stop()

        with contextlib.suppress(CrashTestError):
            await _in_batches(self.clients, stop, within=30.0, what="stopping the phones")
        await self.server.stop()
        if self.db.exists():
            self.check_records()
        r = self.result
        r.server_logs = [str(p) for p in self.server.logs]
        mine = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        r.client_peak_rss_mb = mine.ru_maxrss / 1024
        r.server_peak_rss_mb = children.ru_maxrss / 1024
        r.client_cpu_seconds = mine.ru_utime + mine.ru_stime
        r.server_cpu_seconds = children.ru_utime + children.ru_stime

    def _read_db(self) -> tuple[set[tuple[str, str]], dict[str, tuple[str, str | None]]]:
        return _read_db(self.db)


def _after(moment: float | None, reference: float) -> bool:
    return moment is not None and moment > reference


def _has_ended(phone: Phone, call_id: str) -> bool:
    return any(s.info.call_id == call_id and s.end_cause is not None for s in phone.call_log())


async def run_crash_test_async(
    calls: int,
    *,
    workdir: Path,
    db: Path | None = None,
    seed: int = 0,
    profile: str = DEFAULT_PROFILE,
    sync: Literal["NORMAL", "FULL"] = "NORMAL",
    phase_timeout: float = 120.0,
    progress: Callable[[str], None] | None = None,
) -> CrashResult:
    """Runs the crash test in the running event loop (a real-time one).

    Args:
        calls: Ringing calls cut by the crash; ``calls // 2`` notice pairs come with them.
        workdir: Where the server's output (and, by default, its file) goes.
        db: The server's SQLite file; must not exist yet. Default: ``workdir/crash.db``.
        seed: Seeds tokens and call ids.
        profile: The server's profile; it must keep missed-call notices.
        sync: SQLite's ``synchronous`` for the server.
        phase_timeout: Seconds any one wait may take before the run gives up.
        progress: Where progress lines go, if anywhere.

    Returns:
        The figures and the failures.

    Raises:
        ValueError: A bad argument (too few calls, an existing file, an unsuitable profile).
    """
    if calls < 2:
        raise ValueError("--calls must be at least 2")
    loaded = load_profile(profile)
    if not loaded.policies.missed_after_reconnect:
        raise ValueError(f"profile {profile!r} keeps no missed-call notices: nothing to test")
    db = db if db is not None else workdir / "crash.db"
    if db.exists():
        raise ValueError(f"{db} exists: the crash test needs a fresh file")
    result = CrashResult(calls=calls, notice_pairs=calls // 2, profile=profile, seed=seed)
    result.db = str(db)
    run = _CrashRun(
        result,
        db=db,
        workdir=workdir,
        sync=sync,
        progress=_Progress(progress),
        phase_timeout=phase_timeout,
    )
    started = time.monotonic()
    await run.run()
    result.wall_seconds = time.monotonic() - started
    return result


def run_crash_test(calls: int, **options: Any) -> CrashResult:
    """Runs :func:`run_crash_test_async` in a new event loop; same arguments."""
    return asyncio.run(run_crash_test_async(calls, **options))


def _raise_fd_limit(needed: int) -> None:
    """Raises the soft limit of open files towards ``needed`` (each phone holds three)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crash_recovery.py",
        description=(
            "Kill a real voip-sandbox server process (SIGKILL) while N calls ring and N/2 "
            "missed-call notices wait on disk; restart it on the same SQLite file; check "
            "that no notice is lost or duplicated and that every call ends on both ends."
        ),
        epilog="Exit code: 0 when every check passed, 1 when one failed, 2 on bad arguments.",
    )
    parser.add_argument(
        "--calls",
        type=int,
        default=1000,
        help="ringing calls cut by the crash; N/2 missed-call notices come with them "
        "(default: %(default)s, so 3000 phones)",
    )
    parser.add_argument(
        "--db",
        type=Path,
        help="the server's SQLite file; must not exist yet (default: crash.db in a new "
        "temporary folder)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds tokens and call ids (default: %(default)s)"
    )
    suitable = [n for n in profile_names() if load_profile(n).policies.missed_after_reconnect]
    parser.add_argument(
        "--profile",
        choices=suitable,
        default=DEFAULT_PROFILE,
        help="the server's timers and policies; its ring timeout must outlast phase B "
        "(default: %(default)s, 90 s). Labels are always judged with whatsapp's.",
    )
    parser.add_argument(
        "--sync",
        choices=["NORMAL", "FULL"],
        default="NORMAL",
        help="SQLite synchronous mode of the server (default: %(default)s)",
    )
    parser.add_argument(
        "--phase-timeout",
        type=float,
        default=180.0,
        help="seconds any one wait may take before the run gives up (default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="the JSON result file (default: result.json beside the server logs)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.calls < 2:
        parser.error("--calls must be at least 2")
    if args.db is not None and args.db.exists():
        parser.error(f"--db {args.db} exists: the crash test needs a fresh file")
    workdir = Path(tempfile.mkdtemp(prefix="voip-crash-"))
    output: Path = args.output or workdir / "result.json"
    _raise_fd_limit(4 * 3 * args.calls + 1024)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = run_crash_test(
        args.calls,
        workdir=workdir,
        db=args.db,
        seed=args.seed,
        profile=args.profile,
        sync=args.sync,
        phase_timeout=args.phase_timeout,
        progress=None if args.quiet else say,
    )
    output.write_text(json.dumps(result.as_json(), indent=2) + "\n", encoding="utf-8")
    print(result.table())
    for label, count in result.labels.items():
        print(f"  {label}: {count}")
    if result.failures:
        print(f"\n{len(result.failures)} failures:")
        for failure in result.failures[:50]:
            print(f"  - {failure}")
    print(f"\nresult: {output}\nserver output: {', '.join(result.server_logs)}")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
