"""The application of the test nodes: echo; ``?room=NAME`` joins topic NAME;
``tell:USER:TEXT`` sends TEXT to USER on every node of the cluster
(``hub.send_everywhere``) and answers the summed counts as JSON;
``list_rows:objects`` or ``list_rows:columns`` sets how the node asks the
others for their ``list`` pages (``ClusterFleet.list_rows``)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from wsconsole.server import Selector, hub_of

__all__ = ["handler"]


async def handler(connection: ServerConnection) -> None:
    hub = hub_of(connection)
    query = connection.request.path.partition("?")[2] if connection.request else ""
    for room in parse_qs(query).get("room", []):
        hub.subscribe(connection, room)
    try:
        async for message in connection:
            if isinstance(message, str) and message.startswith("tell:"):
                _, name, text = message.split(":", 2)
                result = await hub.send_everywhere(Selector(user=name), text)
                await connection.send(json.dumps({
                    "recipients": result.recipients, "delivered": result.delivered,
                    "per_node": result.per_node, "missing": result.missing}))
            elif isinstance(message, str) and message.startswith("list_rows:"):
                # How this node asks the others for their list pages: as
                # columns (today) or as objects (nodes before them).
                shape = message.partition(":")[2]
                hub.cluster.list_rows = None if shape == "objects" else shape
                await connection.send(shape)
            else:
                await connection.send(message)
    except ConnectionClosed:
        pass
