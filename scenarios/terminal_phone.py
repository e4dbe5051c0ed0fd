"""``voip-sandbox phone NAME``: an interactive phone in a terminal, against a running server.

Several terminals against one server (``voip-sandbox serve`` or the demo's) make a class's
worth of phones. Each line typed is a command; what the phone shows comes back as lines::

    > call bob
    alice: Calling bob…
    alice: Ringing bob…
    > hangup
    alice: Call ended
    alice: log: Canceled call (canceled) → bob, reached

Commands: ``call NAME``, ``video NAME``, ``answer``, ``decline``, ``hangup``, ``block NAME``,
``unblock NAME``, ``power on|off``, ``airplane on|off``, ``signal on|off``, ``log``,
``status``, ``help``, ``quit``.

The phone is the simulated phones' own stack: :class:`~peers.phone.Phone` decides,
:class:`~peers.client.PhoneClient` drives it through a :class:`~peers.link.Link` (so ``signal
off`` is a real black hole, ``power off`` a real reset), and the log is labeled with a
profile by :func:`scenarios.observers.label_entries`, from this phone's own transitions.

The first registration of a name claims it on the server; the token that claimed it is kept
in a small file (``--tokens``) so that the same name can come back after the terminal closed.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import threading
from collections.abc import AsyncIterator, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from peers.client import PhoneClient
from peers.link import Link
from peers.phone import Phone, PhoneError, Screen
from scenarios.model import DEFAULT_PROFILE
from scenarios.observers import EventStream, LogEntry, event_logger, label_entries
from scenarios.profiles import Profile, load_profile


__all__ = ["COMMANDS", "TerminalPhone", "default_token_file", "token_for"]

COMMANDS = {
    "call NAME": "call NAME",
    "video NAME": "video-call NAME",
    "answer": "pick up the ringing call",
    "decline": "refuse the ringing call",
    "hangup": "end the call (before the answer: cancel it)",
    "block NAME / unblock NAME": "change your block list",
    "power on|off": "switch the phone on or off (off: the link is reset)",
    "airplane on|off": "airplane mode (on: the connection is closed cleanly)",
    "signal on|off": "the radio (off: a black hole that only heartbeats notice)",
    "log": "your call log, labeled",
    "status": "screen, registration, radio",
    "quit": "leave",
}


def default_token_file() -> Path:
    """Where tokens are kept: ``$XDG_STATE_HOME/voip-sandbox/tokens.json``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "voip-sandbox" / "tokens.json"


def token_for(server: str, name: str, path: Path) -> str:
    """The token of ``name`` on ``server``: the one kept in ``path``, or a new one kept there."""
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        kept = {}
    if not isinstance(kept, dict):
        kept = {}
    key = f"{name}@{server}"
    token = kept.get(key)
    if not isinstance(token, str):
        token = secrets.token_hex(16)
        kept[key] = token
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(kept, indent=1, sort_keys=True), encoding="utf-8")
    return token


_SCREENS = {
    Screen.OFF: "Switched off",
    Screen.IDLE: "Idle",
    Screen.CALLING: "Calling {peer}…",
    Screen.RINGING: "Ringing {peer}…",
    Screen.INCOMING: "{peer} is calling (answer / decline)",
    Screen.IN_CALL: "In call with {peer}",
    Screen.RECONNECTING: "Reconnecting…",
    Screen.ENDED: "Call ended",
}


class _Stream(EventStream):
    """The phone's event stream, also handing each event to the terminal."""

    def __init__(self, clock: Callable[[], float], listener: Callable[[dict[str, Any]], None]):
        super().__init__(clock)
        self._listener = listener

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        result = super().__call__(logger, method_name, event_dict)
        self._listener(self.events[-1])
        return result


class TerminalPhone:
    """One phone, its commands and what it prints.

    Args:
        name: The phone's name.
        server: The signaling server, ``ws://127.0.0.1:8765``.
        token: Its registration token.
        write: Prints one line.
        profile: The label profile its log is labeled with (and its timers).
    """

    def __init__(
        self,
        name: str,
        server: str,
        *,
        token: str,
        write: Callable[[str], None],
        profile: str = DEFAULT_PROFILE,
    ) -> None:
        url = urlsplit(server)
        if url.scheme != "ws" or url.hostname is None or url.port is None:
            raise ValueError(f"expected a server like ws://127.0.0.1:8765, got {server!r}")
        self.name = name
        self.write = write
        self.profile: Profile = load_profile(profile)
        timers = self.profile.timers
        loop = asyncio.get_running_loop()
        origin = loop.time()
        self.stream = _Stream(lambda: loop.time() - origin, self._on_event)
        log = event_logger(self.stream)
        phone = Phone(
            name,
            token,
            reconnect_grace=timers.reconnect_grace,
            ring_timer=self.profile.policies.ring_timer,
            ring_timeout=timers.ring_timeout,
        )
        link = Link(url.hostname, url.port, phone=name, logger=log)
        self.client = PhoneClient(
            phone,
            link,
            heartbeat_interval=timers.heartbeat_interval,
            heartbeat_timeout=timers.heartbeat_timeout,
            clock=self.stream.clock,
            logger=log,
        )
        self._errors_seen = 0
        self._last_connection: str | None = None

    # --- Output ----------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self.write(f"{self.name}: {text}")

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "screen" and event.get("who") == self.name:
            self._say(self._screen_text(Screen(str(event["screen"]))))
        elif kind == "transition" and event.get("who") == self.name and event.get("to") == "ended":
            call_id = event.get("call_id")
            entry = next((e for e in self.log() if e.call_id == call_id), None)
            if entry is not None:
                self._say(f"log: {self._describe(entry)}")
        elif kind == "connection" and event.get("who") == self.name:
            state = str(event.get("state"))
            if state != self._last_connection:  # a server that is down fails every retry
                self._last_connection = state
                self._say(
                    f"connection {state}" + (f": {event['error']}" if "error" in event else "")
                )
        self._report_errors()

    def _report_errors(self) -> None:
        errors = self.client.phone.errors
        for error in errors[self._errors_seen :]:
            hint = (
                " (this name is taken on that server; pick another)"
                if error.code == "bad_token"
                else ""
            )
            self._say(f"server refused: {error.code}: {error.message}{hint}")
        self._errors_seen = len(errors)

    def _screen_text(self, screen: Screen) -> str:
        active = self.client.phone.active_call
        return _SCREENS[screen].format(peer=active.peer if active is not None else "")

    def log(self) -> list[LogEntry]:
        """This phone's call log, labeled, oldest placed first."""
        return label_entries(self.client.phone.call_log(), self.profile)

    def _describe(self, entry: LogEntry) -> str:
        if entry.label is None:
            return f"in progress {'→' if entry.direction == 'outgoing' else '←'} {entry.with_}"
        text = self.profile.labels[entry.label].text
        arrow = "→" if entry.direction == "outgoing" else "←"
        details = ["reached" if entry.reached else "not reached"]
        if entry.duration is not None:
            details.append(f"{entry.duration:.0f}s")
        return f"{text} ({entry.label}) {arrow} {entry.with_}, {', '.join(details)}"

    # --- Running ---------------------------------------------------------------------------

    async def run(self, lines: AsyncIterator[str]) -> None:
        """Connects, then carries out each line until ``quit`` or the end of input."""
        self.client.start()
        self._say(f"connecting to {self.client.link.host}:{self.client.link.port} (type help)")
        watcher = asyncio.get_running_loop().create_task(self._watch())
        try:
            async for line in lines:
                if not await self.command(line):
                    break
        finally:
            watcher.cancel()
            await self.client.stop()

    async def _watch(self) -> None:
        # Two things the phone logs no event for: an error frame from the server, and
        # (un)registration. Checked four times a second, which a person can't tell from live.
        registered = False
        while True:
            self._report_errors()
            if self.client.phone.registered != registered:
                registered = self.client.phone.registered
                self._say("registered with the server" if registered else "not registered")
            await asyncio.sleep(0.25)

    async def command(self, line: str) -> bool:
        """Carries out one command line; returns False for ``quit``."""
        words = line.split()
        if not words:
            return True
        verb, args = words[0].lower(), words[1:]
        client = self.client
        try:
            match verb, args:
                case (("quit" | "exit"), []):
                    return False
                case "help", []:
                    for usage, what in COMMANDS.items():
                        self.write(f"  {usage:<26} {what}")
                case "call", [callee]:
                    await client.call(callee)
                case "video", [callee]:
                    await client.call(callee, "video")
                case "answer", []:
                    await client.answer()
                case "decline", []:
                    await client.decline()
                case (("hangup" | "hang"), ([] | ["up"])):
                    await client.hang_up()
                case "block", [other]:
                    await client.block(other)
                    self._say(f"blocked {other}")
                case "unblock", [other]:
                    await client.unblock(other)
                    self._say(f"unblocked {other}")
                case "power", ["on" | "off" as switch]:
                    await (client.power_on() if switch == "on" else client.power_off())
                case "airplane", ["on" | "off" as switch]:
                    await (client.go_offline() if switch == "on" else client.go_online())
                case "signal", ["on" | "off" as switch]:
                    await self._signal(switch == "on")
                case "log", []:
                    entries = self.log()
                    if not entries:
                        self._say("log: empty")
                    for entry in entries:
                        self._say(f"log: {self._describe(entry)}")
                case "status", []:
                    phone = client.phone
                    radio = "signal" if client.link.signal else "NO SIGNAL"
                    self._say(
                        f"{self._screen_text(phone.screen)}; "
                        f"{'registered' if phone.registered else 'not registered'}; {radio}"
                        + ("; airplane mode" if not phone.online else "")
                        + (f"; blocks {', '.join(sorted(phone.blocks))}" if phone.blocks else "")
                    )
                case _:
                    self._say(f"? {line.strip()!r}: type help for the commands")
        except PhoneError as exc:
            self._say(f"! {exc}")
        self._report_errors()
        return True

    async def _signal(self, on: bool) -> None:
        link = self.client.link
        if on == link.signal:
            raise PhoneError(f"{self.name} {'has signal' if on else 'has no signal'} already")
        if on:
            self.client.regain_signal()
        else:
            self.client.lose_signal()
        self._say("signal back" if on else "signal lost")


async def stdin_lines() -> AsyncIterator[str]:
    """Lines typed on standard input, read by a daemon thread so the phone keeps running.

    A daemon thread, not the loop's executor: a thread still blocked in ``readline`` when
    the person types ``quit`` must not keep the process alive.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, "")

    threading.Thread(target=read, name="stdin", daemon=True).start()
    while line := await queue.get():
        yield line


def run_terminal_phone(name: str, server: str, *, token: str | None, profile: str) -> None:
    """The ``phone`` command's body."""

    def write(text: str) -> None:
        print(text, flush=True)

    async def main() -> None:
        chosen = token or token_for(server, name, default_token_file())
        phone = TerminalPhone(name, server, token=chosen, write=write, profile=profile)
        await phone.run(stdin_lines())

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
