"""Connections that came and went leave nothing behind in the server.

A long-running server sees users, paths and topics it will never see again;
whatever it keeps per connection must go with the connection, however it
ended: closed by the client, dropped without a close frame, or kicked by an
operator. ``tests/benchmarks/soak.py`` is the long version of this.
"""

from __future__ import annotations

import gc

from websockets.asyncio.client import connect

from wsconsole.server.registry import ConnectionRecord

from tests.helpers import wait_for
from tests.server.control_helpers import control, running

CHURN = 60
"""Connections per test: three ways of leaving, twenty each."""


def alive(kind: type | str) -> int:
    """Instances of a class (or of classes of that name) still alive, after a collection."""
    gc.collect()
    if isinstance(kind, str):
        return sum(1 for obj in gc.get_objects() if type(obj).__name__ == kind)
    return sum(1 for obj in gc.get_objects() if type(obj) is kind)


async def test_closed_connections_leave_no_record_index_task_or_object() -> None:
    """After 60 connections, each its own user, path and topic, left three ways, the
    server holds nothing of them while an operator watches the event stream."""
    async with running() as server, control(server) as ctl:
        await ctl.ok("subscribe", stats_interval=0.1)
        hub = server.hub
        clients = []
        for n in range(CHURN):
            ws = await connect(f"ws://127.0.0.1:{server.port}/churn/{n}?user=churn-{n}")
            await ws.send(f"join:topic-{n}")
            assert await ws.recv() == "joined"
            clients.append(ws)
        assert len(hub.registry) == CHURN
        assert len(hub.registry.topic_counts()) == CHURN

        for n, ws in enumerate(clients):
            if n % 3 == 0:
                await ws.close()
            elif n % 3 == 1:
                ws.transport.abort()  # gone without a close frame
        await wait_for(lambda: len(hub.registry) == CHURN // 3)
        # The last third is kicked by the operator.
        result = await ctl.ok("disconnect", selector={"everyone": True}, code=4000)
        assert result["count"] == CHURN // 3
        for ws in clients:
            await ws.wait_closed()
        await wait_for(lambda: not hub.registry and not hub._tasks
                       and not server.connections)
        await ctl.ok("stats")  # the control plane still answers

        registry = hub.registry
        assert (registry.user_counts(), registry.path_counts(), registry.topic_counts()) == (
            {}, {}, {})
        assert hub.opened_total == CHURN
        assert sum(hub.closed_by_code.values()) == CHURN
        del clients, ws
        # Nothing else holds a record or a connection: no list of the closed kept anywhere.
        assert alive(ConnectionRecord) == 0
        assert alive("TrackedServerConnection") == 0
