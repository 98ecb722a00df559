"""The application of ``bench_cluster.py``'s nodes: echo, and synthetic records on demand.

A connection that sends ``fill:COUNT:SEED`` makes its node add COUNT
synthetic connection records (no sockets) to its registry, the fleet of
``bench_registry.py`` (users, paths, topics, counters), with ids naming
the node as cluster ids do; the reply is ``filled TOTAL``.
``list_rows:objects`` (or ``list_rows:columns``) sets how this node asks
the others for their ``list`` pages (``ClusterFleet.list_rows``), so that a
run can time both shapes side by side. ``cluster_mode:anew`` makes the
node keep no pages between requests (every page made, shipped and merged
anew, each node asked for about the rows it gave the last page: what a
page costs when every node's page changed since the last one),
``cluster_mode:before`` also asks every node for ``limit`` rows (what every
page cost before the page cache and the takes, with orjson and the groups
kept), ``cluster_mode:now`` undoes both; ``page_cache:on|off``,
``codec:json|orjson`` and ``groups_cache:on|off`` set one of the three
(``json`` and ``groups_cache:off`` together: the shape of every page
before orjson and the groups cache). ``page_counts`` answers ``page_counts
MADE STILL SECOND``: the list pages this node made anew and found still kept
(``ClusterFleet.pages_made``, ``pages_still``) and its requests that asked a
node again for the rest of its page (``second_rounds``). Every other message is echoed. A
synthetic record has no live connection behind it
(``handle`` None): it can be listed, counted and sampled, never sent to,
so the benchmarks that send use real sockets.

Loaded by ``wsconsole serve tests.benchmarks.cluster_bench_app:handler``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from wsconsole.server import hub_of
from wsconsole.server.cluster import envelope

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_registry import FleetBuilder  # noqa: E402  (beside this module)

__all__ = ["handler", "fill"]


def fill(hub, count: int, seed: int) -> int:
    """Add ``count`` synthetic records to ``hub``'s registry; return its size."""
    builder = FleetBuilder(count, seed)
    registry = hub.registry
    prefix = getattr(hub, "id_prefix", "") or ""
    late = []
    for _ in range(count):
        record, topic = builder.record()
        record.id = prefix + record.id
        record.node = hub.node
        record.handle = None  # nothing to send to: listed, counted, sampled only
        registry.add(record)
        if topic == "late":
            late.append(record.id)
        elif topic is not None:
            registry.subscribe(record.id, topic)
    builder.rng.shuffle(late)
    for id in late:
        registry.subscribe(id, "late")
    return len(registry)


async def handler(connection: ServerConnection) -> None:
    hub = hub_of(connection)
    try:
        async for message in connection:
            if isinstance(message, str) and message.startswith("fill:"):
                _, count, seed = message.split(":")
                await connection.send(f"filled {fill(hub, int(count), int(seed))}")
            elif isinstance(message, str) and message.startswith("list_rows:"):
                # How this node asks the others for list pages (the shape
                # before, "objects", or today's "columns"): measured side by side.
                shape = message.partition(":")[2]
                hub.cluster.list_rows = None if shape == "objects" else shape
                await connection.send(f"list_rows {shape}")
            elif message == "page_counts":
                # How many list pages this node made anew and found still kept.
                cluster = hub.cluster
                await connection.send(f"page_counts {cluster.pages_made} {cluster.pages_still} "
                                      f"{cluster.second_rounds}")
            elif isinstance(message, str) and message.startswith(
                    ("cluster_mode:", "codec:", "groups_cache:", "page_cache:")):
                what, _, value = message.partition(":")
                cluster = hub.cluster
                if what == "cluster_mode":
                    envelope.use_codec("orjson")
                    cluster.groups_cache = True
                    cluster.page_cache = value == "now"
                    cluster.learn_takes = value != "before"
                elif what == "codec":
                    envelope.use_codec(value)
                elif what == "groups_cache":
                    cluster.groups_cache = value == "on"
                else:
                    cluster.page_cache = value == "on"
                await connection.send(f"{what} {value}")
            else:
                await connection.send(message)
    except ConnectionClosed:
        pass
