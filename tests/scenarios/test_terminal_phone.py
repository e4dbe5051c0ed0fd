"""The terminal phone, driven line by line against a real signaling server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scenarios.terminal_phone import TerminalPhone, token_for
from signaling.server import SignalingServer
from signaling.switchboard import Switchboard, SwitchboardSettings


class Terminal:
    """A terminal phone, its typed lines and its printed ones."""

    def __init__(self, name: str, url: str, token: str | None = None) -> None:
        self.lines: list[str] = []
        self._printed = asyncio.Event()
        self._typed: asyncio.Queue[str] = asyncio.Queue()
        self.phone = TerminalPhone(
            name, url, token=token or f"{name}-token-0123456789", write=self._write
        )
        self.task = asyncio.create_task(self.phone.run(self._lines()))

    def _write(self, line: str) -> None:
        self.lines.append(line)
        self._printed.set()

    async def _lines(self) -> AsyncIterator[str]:
        while True:
            yield await self._typed.get()

    def type(self, line: str) -> None:
        self._typed.put_nowait(line)

    async def expect(self, text: str, within: float = 10.0) -> str:
        """Waits for a printed line containing ``text`` (from the start); returns it."""
        try:
            async with asyncio.timeout(within):
                while True:
                    found = next((line for line in self.lines if text in line), None)
                    if found is not None:
                        return found
                    self._printed.clear()
                    await self._printed.wait()
        except TimeoutError:
            raise AssertionError(f"never printed {text!r}; printed: {self.lines}") from None


async def registered(*terminals: Terminal) -> None:
    async with asyncio.timeout(10):
        for terminal in terminals:
            await terminal.phone.client.wait_registered()


@pytest.fixture
async def server() -> AsyncIterator[SignalingServer]:
    settings = SwitchboardSettings(reconnect_grace=1.0)
    signaling = SignalingServer(
        Switchboard(settings), port=0, heartbeat_interval=0.3, heartbeat_timeout=0.3
    )
    await signaling.start()
    yield signaling
    await signaling.close()


async def test_two_terminals_cancel_a_call_and_read_their_logs(server) -> None:
    alice, bob = Terminal("alice", server.url), Terminal("bob", server.url)
    await alice.expect("alice: connecting to 127.0.0.1:")
    await registered(alice, bob)
    alice.type("status")
    await alice.expect("alice: Idle; registered; signal")
    alice.type("call bob")
    await bob.expect("bob: alice is calling (answer / decline)")
    await alice.expect("alice: Ringing bob…")
    alice.type("hangup")
    await alice.expect("alice: log: Canceled call (canceled) → bob, reached")
    await bob.expect("bob: log: Missed call (missed) ← alice, reached")
    bob.type("log")
    bob.type("quit")
    await asyncio.wait_for(bob.task, 5)
    alice.type("quit")
    await asyncio.wait_for(alice.task, 5)


async def test_answer_block_signal_and_mistakes(server) -> None:
    alice, bob = Terminal("alice", server.url), Terminal("bob", server.url)
    await registered(alice, bob)
    bob.type("answer")
    await bob.expect("bob: ! bob cannot answer: nothing is ringing")
    bob.type("dance")
    await bob.expect("type help for the commands")
    alice.type("call bob")
    await bob.expect("is calling")
    bob.type("answer")
    await alice.expect("alice: In call with bob")
    bob.type("signal off")
    await bob.expect("bob: signal lost")
    await alice.expect("alice: Reconnecting…")
    await alice.expect("alice: log: Call dropped", within=10)
    bob.type("signal on")
    await bob.expect("bob: signal back")
    await bob.expect("bob: log: Call dropped (dropped) ← alice, reached")
    alice.type("block bob")
    await alice.expect("alice: blocked bob")
    bob.type("call alice")
    await bob.expect("bob: Calling alice…")
    bob.type("hangup")
    await bob.expect("bob: log: Canceled call (canceled) → alice, not reached")
    alice.type("log")
    alice.type("status")  # lines are done in order: once this prints, the log has
    await alice.expect("alice: Call ended; registered; signal; blocks bob")
    logged = [line for line in alice.lines if "log:" in line]
    assert len(logged) == 2 and all("Call dropped" in line for line in logged)
    for terminal in (alice, bob):
        terminal.type("quit")
        await asyncio.wait_for(terminal.task, 5)


async def test_a_taken_name_is_explained(server) -> None:
    first = Terminal("carol", server.url)
    await registered(first)
    thief = Terminal("carol", server.url, token="another-token-0123456789")
    line = await thief.expect("server refused: bad_token")
    assert line.endswith("(this name is taken on that server; pick another)")
    for terminal in (thief, first):
        terminal.type("quit")
        await asyncio.wait_for(terminal.task, 5)


def test_a_token_is_kept_per_server_and_name(tmp_path: Path) -> None:
    path = tmp_path / "state" / "tokens.json"
    first = token_for("ws://127.0.0.1:8765", "alice", path)
    assert token_for("ws://127.0.0.1:8765", "alice", path) == first
    assert token_for("ws://127.0.0.1:9999", "alice", path) != first
    assert len(json.loads(path.read_text())) == 2


def test_a_bad_server_address_is_refused() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match=r"ws://127\.0\.0\.1:8765"):
            TerminalPhone("alice", "http://example", token="t" * 20, write=print)

    asyncio.run(main())


async def test_the_phone_command_reads_stdin(server, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("voip-sandbox")),
        "phone",
        "zoe",
        "--server",
        server.url,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert process.stdin is not None and process.stdout is not None
    async with asyncio.timeout(20):
        while b"zoe: registered with the server" not in (line := await process.stdout.readline()):
            assert line, "the phone ended early"
        process.stdin.write(b"quit\n")
        await process.stdin.drain()
        assert await process.wait() == 0
    assert (tmp_path / "voip-sandbox" / "tokens.json").is_file()
