"""A real wsconsole server with its control listener, and real public clients,
for the console's client and command-line tests.

The application subscribes each connection to the topics named in its query
(``?topic=lobby``) and then says ``ready``: a client that has read ``ready``
is registered and in its topics, so no test has to wait and hope.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, AsyncIterator
from urllib.parse import parse_qs, urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection

from wsconsole.server import hub_of, serve
from wsconsole.server.config import ControlConfig

__all__ = ["OPERATOR_TOKEN", "READ_ONLY_TOKEN", "Live", "live_server", "app"]

OPERATOR_TOKEN = "operator-token-for-tests"
"""The operator role's token."""
READ_ONLY_TOKEN = "read-only-token-for-tests"
"""The read-only role's token."""


async def app(connection: ServerConnection) -> None:
    """Join the topics in ``?topic=``, say ``ready``, then stay until closed."""
    query = connection.request.path.partition("?")[2] if connection.request else ""
    for topic in parse_qs(query).get("topic", []):
        hub_of(connection).subscribe(connection, topic)
    await connection.send("ready")
    await connection.wait_closed()


@dataclass
class Live:
    """A running server, where to reach it, and the public clients opened on it."""

    server: Any
    clients: list[ClientConnection] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The control listener's URL."""
        return f"ws://127.0.0.1:{self.server.control.port}"

    @property
    def public_url(self) -> str:
        """The public server's URL, without a path."""
        return f"ws://127.0.0.1:{self.server.port}"

    def cli(self, *argv: str, token: str = OPERATOR_TOKEN) -> list[str]:
        """``wsconsole`` arguments for a command against this server."""
        return [*argv, "--url", self.url, "--token", token]

    async def client(
        self,
        path: str = "/",
        *,
        user: str = "anonymous",
        topics: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
    ) -> ClientConnection:
        """A public client, registered (and in its topics) when this returns."""
        query = urlencode([("user", user)] + [("topic", t) for t in topics])
        ws = await connect(f"{self.public_url}{path}?{query}", additional_headers=headers)
        self.clients.append(ws)
        assert await ws.recv() == "ready"
        return ws

    def id_of(self, ws: ClientConnection) -> str:
        """The connection id the server gave a public client (matched by port)."""
        local = ws.local_address[1]
        for record in self.server.hub.registry:
            if record.remote.endswith(f":{local}"):
                return record.id
        raise LookupError("no such connection on the server")


@contextlib.asynccontextmanager
async def live_server(**control: Any) -> AsyncIterator[Live]:
    """Serve ``app`` on port 0 with a control listener on port 0; close both after."""
    config = ControlConfig(port=0, token=OPERATOR_TOKEN, read_only_token=READ_ONLY_TOKEN)
    for name, value in control.items():
        setattr(config, name, value)
    async with serve(app, "127.0.0.1", 0, control=config) as server:
        live = Live(server)
        try:
            yield live
        finally:
            for ws in live.clients:
                await ws.close()
