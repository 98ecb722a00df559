"""Helpers for the control listener's tests: a real server, a control client, raw HTTP.

The client here speaks the wire format directly (not the console's client), so
that these tests pin the server's side of the protocol.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from wsconsole.server import hub_of, serve
from wsconsole.server.config import ControlConfig
from wsconsole.server.serving import WsconsoleServer
from wsconsole.server import wire

from tests.helpers import TIMEOUT

__all__ = [
    "TOKEN",
    "READ_ONLY_TOKEN",
    "app",
    "running",
    "Control",
    "control",
    "http_request",
    "public",
]

TOKEN = "operator-token-0123456789abcdef"
"""The operator token of the test servers."""
READ_ONLY_TOKEN = "read-only-token-0123456789abcdef"
"""The read-only token of the test servers."""


async def app(connection: ServerConnection) -> None:
    """Echo, and ``join:TOPIC`` subscribes the connection to TOPIC (answers ``joined``)."""
    try:
        async for message in connection:
            if isinstance(message, str) and message.startswith("join:"):
                hub_of(connection).subscribe(connection, message[5:])
                await connection.send("joined")
            else:
                await connection.send(message)
    except ConnectionClosed:
        pass  # operators close clients with codes of their choosing


@asynccontextmanager
async def running(**control: Any) -> AsyncIterator[WsconsoleServer]:
    """A public server on 127.0.0.1:0 with a control listener on port 0."""
    options: dict[str, Any] = {"port": 0, "token": TOKEN, "read_only_token": READ_ONLY_TOKEN}
    options.update(control)
    async with serve(app, "127.0.0.1", 0, control=ControlConfig(**options)) as server:
        yield server


class Control:
    """A control connection: numbered requests, replies matched by id, events kept."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[wire.Event] = []
        self._next_id = 0

    async def reply(self, op: str, **args: Any) -> wire.Reply:
        """Run one operation and return its reply (ok or not)."""
        self._next_id += 1
        request_id = self._next_id
        await self.ws.send(wire.encode_request(request_id, op, args))
        return await self.reply_to(request_id)

    async def reply_to(self, request_id: Any) -> wire.Reply:
        """Read frames until the reply with this id; keep events met on the way."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                message = wire.parse_message(await self.ws.recv())
                if isinstance(message, wire.Event):
                    self.events.append(message)
                elif message.id == request_id:
                    return message

    async def ok(self, op: str, **args: Any) -> Any:
        """Run one operation that must succeed; return its result."""
        reply = await self.reply(op, **args)
        assert reply.ok, (reply.error_code, reply.error_message)
        return reply.result

    async def error(self, op: str, **args: Any) -> str:
        """Run one operation that must fail; return its error code."""
        reply = await self.reply(op, **args)
        assert not reply.ok, reply.result
        return reply.error_code  # type: ignore[return-value]

    async def raw(self, frame: str | bytes) -> wire.Reply:
        """Send a frame as is; return the next reply."""
        await self.ws.send(frame)
        async with asyncio.timeout(TIMEOUT):
            while True:
                message = wire.parse_message(await self.ws.recv())
                if isinstance(message, wire.Reply):
                    return message
                self.events.append(message)

    async def next_event(self, timeout: float = TIMEOUT) -> wire.Event:
        """The next event (kept ones first)."""
        if self.events:
            return self.events.pop(0)
        async with asyncio.timeout(timeout):
            while True:
                message = wire.parse_message(await self.ws.recv())
                if isinstance(message, wire.Event):
                    return message

    async def event(self, match: Callable[[wire.Event], bool],
                    timeout: float = TIMEOUT) -> wire.Event:
        """Read events until one matches; the others are dropped."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.next_event(timeout)
                if match(event):
                    return event


@asynccontextmanager
async def control(server: WsconsoleServer, token: str = TOKEN,
                  **kwargs: Any) -> AsyncIterator[Control]:
    """A control connection to ``server`` with ``token``."""
    async with connect(server.control.url,
                       additional_headers={"Authorization": f"Bearer {token}"},
                       **kwargs) as ws:
        yield Control(ws)


def public(server: WsconsoleServer, path: str = "/", **kwargs: Any) -> Any:
    """A client of the public server (``async with public(server, "/?user=ann")``)."""
    return connect(f"ws://127.0.0.1:{server.port}{path}", **kwargs)


async def http_request(port: int, path: str, method: str = "GET",
                       headers: dict[str, str] | None = None,
                       host: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP/1.1 request: (status, headers with lower-case names, body)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        async with asyncio.timeout(TIMEOUT):
            data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), parsed, body


def loads(body: bytes) -> Any:
    """JSON body."""
    return json.loads(body)
