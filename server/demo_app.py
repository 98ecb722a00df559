"""The built-in demo application that ``wsconsole serve`` runs without an APP.

It echoes every message back to its sender; a client that connects with
``?room=NAME`` joins topic NAME and also receives what others in that room send.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed

from .registry import Selector
from .serving import hub_of

__all__ = ["demo_handler"]


async def demo_handler(connection: ServerConnection) -> None:
    """Echo, plus rooms: ``?room=NAME`` relays messages to the room's other members."""
    hub = hub_of(connection)
    query = connection.request.path.partition("?")[2] if connection.request else ""
    rooms = [r for r in parse_qs(query).get("room", []) if r]
    for room in rooms:
        hub.subscribe(connection, room)
    me = hub.record_of(connection)
    try:
        async for message in connection:
            await connection.send(message)
            for room in rooms:
                others = [
                    record.handle
                    for record in hub.select(Selector(topic=room))
                    if record is not me
                ]
                broadcast(others, message)
    except ConnectionClosed:
        pass
