"""Simulated clients for ``wsconsole demo``: a small, lively population.

Several users on several paths, some in rooms, each sending a few messages a
second and reading what comes back; guests who come and go; a market ticker
that publishes snapshots to the ``markets`` room; and one slow reader in that
room who stops reading. Room messages are broadcast (no backpressure), so the
slow reader's server-side buffer grows until the server closes it as a slow
consumer with 1008; then it comes back and does it again.

Real websockets clients on loopback, in the caller's event loop. Imports
websockets only, never the server.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

__all__ = ["Simulator", "Resident", "RESIDENTS", "CHATTER"]


@dataclass(frozen=True)
class Resident:
    """A simulated client that stays connected."""

    user: str
    path: str
    room: str | None = None
    rate: float = 1.0
    """Messages per second it sends, on average."""


RESIDENTS: tuple[Resident, ...] = (
    Resident("ann", "/chat", "lobby", 1.5),
    Resident("bob", "/chat", "lobby", 0.8),
    Resident("chen", "/chat", "dev", 2.0),
    Resident("dara", "/chat", "dev", 1.0),
    Resident("eve", "/feed", None, 0.5),
    Resident("eve", "/feed", None, 0.3),
    Resident("frank", "/feed", "markets", 3.0),
    Resident("grace", "/api/stream", None, 2.5),
    Resident("heidi", "/chat", "lobby", 0.6),
    Resident("ivan", "/api/stream", "markets", 1.2),
    Resident("judy", "/notifications", None, 0.2),
    Resident("ken", "/chat", "random", 0.9),
)
"""Who is always there (eve has two tabs open)."""

CHATTER = (
    "hi all", "deploy is green", "anyone seen the 502s?", "lunch?", "LGTM",
    "rebasing now", "ship it", "brb", "the graph looks odd", "+1",
)
"""What residents say."""

_GUEST_PATHS = ("/chat", "/feed", "/api/stream")
_GUEST_ROOMS = (None, "lobby", "random")


class Simulator:
    """Runs the simulated clients until :meth:`stop`."""

    def __init__(
        self,
        url: str,
        *,
        seed: int = 7,
        residents: tuple[Resident, ...] = RESIDENTS,
        guests: int = 4,
        slow_reader: bool = True,
        ticker_bytes: int = 64 * 1024,
        ticker_interval: float = 0.1,
    ) -> None:
        self.url = url.rstrip("/")
        """The public WebSocket server, ``ws://host:port``."""
        self.random = random.Random(seed)
        self.residents = residents
        self.guests = guests
        self.slow_reader = slow_reader
        self.ticker_bytes = ticker_bytes
        """Size of one market snapshot broadcast to the markets room."""
        self.ticker_interval = ticker_interval
        """Seconds between snapshots."""
        self.sent = 0
        """Messages sent by all simulated clients."""
        self.received = 0
        """Messages received by all simulated clients."""
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self) -> None:
        """Start every simulated client as a task of the running loop."""
        loop = asyncio.get_running_loop()
        for index, resident in enumerate(self.residents):
            self._tasks.append(loop.create_task(
                self._resident(resident, index), name=f"sim-{resident.user}"))
        for index in range(self.guests):
            self._tasks.append(loop.create_task(self._guest(index), name=f"sim-guest-{index}"))
        if self.slow_reader:
            self._tasks.append(loop.create_task(self._ticker(), name="sim-ticker"))
            self._tasks.append(loop.create_task(self._slow(), name="sim-slow-reader"))

    async def stop(self) -> None:
        """Stop every client (each closes its connection on the way out)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _address(self, user: str, path: str, room: str | None) -> str:
        query: dict[str, str] = {"user": user}
        if room:
            query["room"] = room
        return f"{self.url}{path}?{urlencode(query)}"

    async def _resident(self, who: Resident, index: int) -> None:
        # Staggered starts look like a real morning, and spread the handshakes.
        await asyncio.sleep(0.05 * index)
        while not self._stopping:
            try:
                async with connect(self._address(who.user, who.path, who.room),
                                   user_agent_header=f"demo-{who.user}/1.0",
                                   # Credentials like a browser's, so that the detail
                                   # view shows them redacted.
                                   additional_headers=_credentials(who.user),
                                   subprotocols=None) as ws:
                    await self._talk(ws, who.rate, who.user)
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                pass
            # The server went away or closed us: come back after a while.
            await asyncio.sleep(1.0 + self.random.random() * 2)

    async def _guest(self, index: int) -> None:
        rng = random.Random(self.random.random())
        await asyncio.sleep(rng.uniform(0.5, 4.0))
        n = 0
        while not self._stopping:
            n += 1
            name = f"guest-{index + 1}{n % 10}"
            path = rng.choice(_GUEST_PATHS)
            room = rng.choice(_GUEST_ROOMS)
            try:
                async with connect(self._address(name, path, room),
                                   user_agent_header="demo-guest/1.0") as ws:
                    stay = rng.uniform(4.0, 20.0)
                    try:
                        async with asyncio.timeout(stay):
                            await self._talk(ws, rng.uniform(0.3, 2.0), name)
                    except TimeoutError:
                        pass
                    if rng.random() < 0.2:
                        # Some leave without saying goodbye (a closed laptop).
                        ws.transport.abort()
                    else:
                        await ws.close(1000 if rng.random() < 0.7 else 1001, "bye")
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                pass
            await asyncio.sleep(rng.uniform(2.0, 8.0))

    async def _talk(self, ws: ClientConnection, rate: float, user: str) -> None:
        reader = asyncio.get_running_loop().create_task(self._drain(ws))
        try:
            while not self._stopping:
                await asyncio.sleep(self.random.expovariate(rate))
                message: Any = {"type": "chat", "from": user,
                                "text": self.random.choice(CHATTER)}
                await ws.send(json.dumps(message))
                self.sent += 1
        finally:
            reader.cancel()

    async def _drain(self, ws: ClientConnection) -> None:
        try:
            async for _ in ws:
                self.received += 1
        except ConnectionClosed:
            pass

    async def _ticker(self) -> None:
        """A feed that publishes a market snapshot to the markets room ten times a second."""
        await asyncio.sleep(1.0)
        snapshot = json.dumps({"type": "snapshot", "book": "x" * self.ticker_bytes})
        while not self._stopping:
            try:
                async with connect(self._address("ticker", "/api/stream", "markets"),
                                   user_agent_header="demo-ticker/1.0") as ws:
                    reader = asyncio.get_running_loop().create_task(self._drain(ws))
                    try:
                        while not self._stopping:
                            await ws.send(snapshot)
                            self.sent += 1
                            await asyncio.sleep(self.ticker_interval)
                    finally:
                        reader.cancel()
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                pass
            await asyncio.sleep(1.0)

    async def _slow(self) -> None:
        """mallory joins the markets room and stops reading."""
        await asyncio.sleep(2.0)
        while not self._stopping:
            try:
                # A small receive buffer keeps the backlog on the server, where
                # the operator can see it, instead of in the kernel; without
                # compression the snapshots are not squeezed to a few bytes.
                sock = await _small_buffer_socket(_host_port(self.url))
                ws = await connect(self._address("mallory", "/feed", "markets"), sock=sock,
                                   max_queue=1, ping_interval=None, compression=None,
                                   user_agent_header="demo-slow-reader/0.1")
                try:
                    ws.transport.pause_reading()  # the client hangs: reads nothing
                    # With reading paused it cannot notice the server closing it,
                    # so it comes back after a while, as a restarted client would.
                    await asyncio.sleep(45.0)
                finally:
                    ws.transport.abort()
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                pass
            await asyncio.sleep(5.0)


async def _small_buffer_socket(address: tuple[str, int]) -> socket.socket:
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # Before connect, so that the TCP window is negotiated small.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    return host.strip("[]"), int(port)


def _credentials(user: str) -> dict[str, str]:
    """Made-up Authorization and Cookie headers: the server redacts both."""
    return {"Authorization": f"Bearer demo-secret-of-{user}",
            "Cookie": f"session=demo-session-of-{user}"}
