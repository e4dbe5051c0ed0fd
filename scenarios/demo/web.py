"""The demo's front server: the page, the browser phone, and their websockets, on 127.0.0.1.

One websockets server, with no web framework: its ``process_request`` hook answers plain
HTTP requests for the static files (``/`` the demo page, ``/phone?name=...`` the browser
phone, ``/static/...``), and lets two paths upgrade to websockets:

- ``/ws``: a demo page. It receives the controller's ``hello``, ``state`` and ``ladder``
  messages and sends commands (:meth:`DemoController.command`); a refused command comes
  back as ``{"kind": "error", "message": ...}``.
- ``/phone-ws?name=NAME``: a browser phone page's bridge to its
  :class:`~scenarios.demo.browser_phone.BrowserPhone`. It first gets
  ``{"op": "hello", "name", "signaling_url"}``. A second page for the same name replaces
  the first, which is closed (4001).

Everything is on loopback: the page and the phone load nothing from anywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from signaling.server import DEFAULT_HOST

from .controller import DemoController, DemoError


__all__ = ["STATIC", "DemoServer"]

STATIC = Path(__file__).resolve().parent / "static"
"""The page's HTML, JavaScript and CSS."""

_PAGES = {"/": "index.html", "/index.html": "index.html", "/phone": "phone.html"}
_SOCKETS = ("/ws", "/phone-ws")


class DemoServer:
    """Serves the demo page and its websockets for a :class:`DemoController`.

    Args:
        controller: The world behind the page.
        host: Where to listen: loopback.
        port: The port (0: a free one).
    """

    def __init__(self, controller: DemoController, *, host: str = DEFAULT_HOST, port: int = 0):
        self.controller = controller
        self.host = host
        self._port = port
        self._server: Server | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None:
            return self._port
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        """The demo page's address."""
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        """Binds and serves."""
        self._server = await serve(
            self._handle,
            self.host,
            self._port,
            process_request=self._http,
            compression=None,
            max_size=1024 * 1024,
        )

    async def close(self) -> None:
        """Stops serving and closes every page's websocket."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> DemoServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- Plain HTTP ----------------------------------------------------------------------------

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path in _SOCKETS:
            return None  # a websocket: go on with the handshake
        if path in _PAGES:
            return _file(STATIC / _PAGES[path])
        if path.startswith("/static/"):
            wanted = (STATIC / path.removeprefix("/static/")).resolve()
            if wanted.parent == STATIC and wanted.is_file():
                return _file(wanted)
        return _response(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    # --- Websockets ----------------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        url = urlsplit(connection.request.path)
        if url.path == "/ws":
            await self._demo_page(connection)
        else:
            name = parse_qs(url.query).get("name", [""])[0]
            await self._phone_page(connection, name)

    async def _demo_page(self, connection: ServerConnection) -> None:
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        unsubscribe = self.controller.subscribe(outbox.put_nowait)
        writer = asyncio.get_running_loop().create_task(_write(connection, outbox))
        try:
            async for text in connection:
                try:
                    command = json.loads(text)
                    if not isinstance(command, dict):
                        raise DemoError("a command is a JSON object")
                    await self.controller.command(command)
                except (DemoError, json.JSONDecodeError) as exc:
                    outbox.put_nowait({"kind": "error", "message": str(exc)})
        except ConnectionClosed:
            pass
        finally:
            unsubscribe()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _phone_page(self, connection: ServerConnection, name: str) -> None:
        world = self.controller.world
        assert world is not None
        try:
            phone = world.browser_phone(name)
        except DemoError as exc:
            await connection.close(4000, str(exc)[:120])
            return
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def send(message: dict[str, Any]) -> None:
            outbox.put_nowait(message)

        previous = phone.attach(send)
        if previous is not None:
            await previous({"op": "replaced"})
        outbox.put_nowait({"op": "hello", "name": name, "signaling_url": world.url})
        writer = asyncio.get_running_loop().create_task(_write(connection, outbox))
        self.controller.refresh()
        try:
            async for text in connection:
                try:
                    message = json.loads(text)
                except json.JSONDecodeError:
                    continue
                if isinstance(message, dict):
                    await phone.handle(message)
        except ConnectionClosed:
            pass
        finally:
            await phone.detach(send)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer


async def _write(connection: ServerConnection, outbox: asyncio.Queue[dict[str, Any]]) -> None:
    """Sends one page its messages in order; a ``replaced`` closes it."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            message = await outbox.get()
            if message.get("op") == "replaced":
                await connection.close(4001, "replaced by a newer page of the same phone")
                return
            await connection.send(json.dumps(message))


def _file(path: Path) -> Response:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind == "application/javascript":
        kind += "; charset=utf-8"
    return _response(HTTPStatus.OK, path.read_bytes(), kind)


def _response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)
