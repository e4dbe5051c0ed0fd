"""The front server: static files over HTTP, the page's and the browser phone's websockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from scenarios.demo.controller import DemoController
from scenarios.demo.web import STATIC, DemoServer


@pytest.fixture
async def server() -> AsyncIterator[DemoServer]:
    controller = DemoController(port=0, audio_phone=None)
    await controller.start()
    try:
        async with DemoServer(controller, port=0) as front:
            yield front
    finally:
        await controller.close()


async def get(server: DemoServer, path: str) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    ("path", "file", "kind"),
    [
        ("/", "index.html", "text/html"),
        ("/phone?name=erin", "phone.html", "text/html"),
        ("/static/demo.js", "demo.js", "javascript"),
        ("/static/demo.css", "demo.css", "text/css"),
    ],
)
async def test_the_page_and_its_files_are_served(server, path, file, kind) -> None:
    status, headers, body = await get(server, path)
    assert status == 200
    assert kind in headers["Content-Type"]
    assert body == (STATIC / file).read_bytes()


@pytest.mark.parametrize("path", ["/nope", "/static/../web.py", "/static/%2e%2e/web.py"])
async def test_anything_else_is_not_found(server, path) -> None:
    status, _, _ = await get(server, path)
    assert status == 404


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for page in STATIC.iterdir():
        text = page.read_text(encoding="utf-8")
        assert "http://" not in text.replace("http://${location.host}", "")
        assert "https://" not in text, page.name


async def test_a_page_gets_hello_and_a_refused_command_gets_an_error(server) -> None:
    async with connect(f"ws://127.0.0.1:{server.port}/ws", proxy=None) as ws:
        hello = json.loads(await ws.recv())
        assert hello["kind"] == "hello" and hello["phones"]
        await ws.send(json.dumps({"op": "answer", "phone": "alice"}))
        await ws.send("[1, 2]")
        errors = []
        async with asyncio.timeout(5):
            while len(errors) < 2:
                message = json.loads(await ws.recv())
                if message["kind"] == "error":
                    errors.append(message["message"])
        assert "nothing is ringing" in errors[0]
        assert "a command is a JSON object" in errors[1]


async def test_a_phone_page_is_bridged_and_a_simulated_name_is_refused(server) -> None:
    url = f"ws://127.0.0.1:{server.port}/phone-ws"
    async with connect(f"{url}?name=erin", proxy=None) as ws:
        hello = json.loads(await ws.recv())
        assert hello == {
            "op": "hello",
            "name": "erin",
            "signaling_url": server.controller.signaling_url,
        }
        await ws.send(json.dumps({"op": "link_up"}))
        async with asyncio.timeout(5):
            while (sent := json.loads(await ws.recv()))["op"] != "send":
                assert sent["op"] == "state"  # the card, pushed as the world changes
        assert json.loads(sent["text"])["type"] == "register"
        async with connect(f"{url}?name=erin", proxy=None) as newer:
            assert json.loads(await newer.recv())["op"] == "hello"
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(5):
                    while True:
                        await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    async with connect(f"{url}?name=alice", proxy=None) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
        assert "simulated phone" in closed.value.rcvd.reason
