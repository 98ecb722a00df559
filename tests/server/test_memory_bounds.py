"""Connections that came and went leave nothing behind in the server.

A long-running server sees users, paths and topics it will never see again;
whatever it keeps per connection must go with the connection, however it
ended: closed by the client, dropped without a close frame, or kicked by an
operator. ``tests/benchmarks/soak.py`` is the long version of this.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import weakref
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.server import ServerProtocol

from wsconsole.server import serve
from wsconsole.server.registry import ConnectionRecord

from tests.conftest import TEST_LOOP
from tests.helpers import TIMEOUT, wait_for
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


class _Watched(ServerConnection):
    """websockets' connection, watched by weak references (it, its transport and
    its protocol, whose parser held it in a cycle)."""

    refs: list[weakref.ref[Any]] = []

    def connection_made(self, transport: Any) -> None:
        self.refs.append(weakref.ref(self))
        self.refs.append(weakref.ref(transport))
        self.refs.append(weakref.ref(self.protocol))
        super().connection_made(transport)


async def _echo(connection: ServerConnection) -> None:
    try:
        async for message in connection:
            await connection.send(message)
    except ConnectionClosed:
        pass


async def _end_one(port: int, kind: str) -> None:
    if kind in ("clean", "dropped"):
        ws = await connect(f"ws://127.0.0.1:{port}/?user=u", ping_interval=None)
        await ws.send("x")
        assert await ws.recv() == "x"
        if kind == "clean":
            await ws.close()
        else:
            ws.transport.abort()  # no close frame
        return
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if kind == "bad request":
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    elif kind == "not http":
        writer.write(b"\x16\x03\x01 hello\r\n\r\n")
    # "timed out": nothing sent before open_timeout
    async with asyncio.timeout(TIMEOUT):
        await reader.read()
    writer.close()


async def test_a_closed_connection_is_freed_without_the_garbage_collector() -> None:
    """With the collector off (as ``wsconsole serve`` freezes it), a connection closed
    cleanly, dropped without a close frame, refused as a bad request or as no HTTP,
    or timed out in its handshake is freed at once, it, its transport and its
    protocol (with its compression contexts): memory does not grow while frozen."""
    _Watched.refs = []
    async with serve(_echo, "127.0.0.1", 0, create_connection=_Watched,
                     open_timeout=0.2, ping_interval=None) as server:
        await _end_one(server.port, "clean")  # what a first connection allocates once
        gc.collect()
        _Watched.refs = []
        gc.disable()
        try:
            kinds = ["clean", "dropped", "bad request", "not http", "timed out"]
            await asyncio.gather(*(_end_one(server.port, kind) for kind in kinds))
            await wait_for(lambda: len(_Watched.refs) == 3 * len(kinds)
                           and not server.hub.registry and not server.connections)
            try:
                await wait_for(lambda: all(ref() is None for ref in _Watched.refs))
            except TimeoutError:
                left = [type(ref()).__name__ for ref in _Watched.refs if ref() is not None]
                pytest.fail(f"kept in reference cycles after close: {left}")
        finally:
            gc.enable()


def test_the_private_names_broken_cycles_rely_on_are_there() -> None:
    """server/cycles.py breaks cycles through names that websockets and asyncio do
    not document: if one is renamed, this says which, before memory grows."""
    from websockets.http11 import Request

    request = Request("/", Headers())
    assert hasattr(request, "_exception"), "websockets' Request._exception is gone"
    protocol = ServerProtocol()
    assert protocol.parser_exc is None and protocol.handshake_exc is None
    assert inspect.isgenerator(protocol.parser), "websockets' Protocol.parser is gone"
    assert protocol.reader.eof is False, "websockets' Protocol.reader.eof is gone"
    assert "connection_exc" in Connection.__init__.__code__.co_names, (
        "websockets' ServerConnection.connection_exc is gone")
    if TEST_LOOP == "asyncio":
        from asyncio import selector_events

        names = selector_events._SelectorSocketTransport.__init__.__code__.co_names
        assert "_read_ready_cb" in names, (
            "asyncio's _SelectorSocketTransport._read_ready_cb is gone")


def _server_protocols() -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) is ServerProtocol)


async def test_the_control_listeners_closed_connections_are_freed_without_the_garbage_collector() -> None:
    """With the collector off, an operator's connection, a /healthz and a /metrics
    request on the control listener leave no protocol behind once they end (frozen,
    each would wait for a thaw)."""
    from tests.server.control_helpers import control, http_request, running

    async with running() as server:
        async with control(server) as ctl:  # what a first connection allocates once
            await ctl.ok("stats")
        await http_request(server.control.port, "/metrics")
        await wait_for(lambda: not server.control._server.connections)
        gc.collect()
        gc.disable()
        try:
            before = _server_protocols()
            async with control(server) as ctl:
                await ctl.ok("stats")
            await http_request(server.control.port, "/healthz")
            await http_request(server.control.port, "/metrics")
            await wait_for(lambda: not server.control._server.connections)
            try:
                await wait_for(lambda: _server_protocols() <= before)
            except TimeoutError:
                pytest.fail(f"{_server_protocols() - before} protocols kept in cycles")
        finally:
            gc.enable()


async def test_messages_that_arrived_before_the_end_are_read_after_it() -> None:
    """A handler that reads only once its connection has ended (closed by the client,
    dropped, closed by the server) still reads every message that arrived before:
    breaking the cycles at the end (the parser closed) leaves what was received."""
    messages = ["hi", b"\x00" * 70_000, "bye" * 1000]  # compressed, one over 64 KiB
    read: dict[str, list[Any]] = {}

    async def late(connection: ServerConnection) -> None:
        await connection.wait_closed()
        assert connection.protocol.parser.gi_frame is None  # released already
        got: list[Any] = []
        try:
            async for message in connection:
                got.append(message)
        except ConnectionClosed:
            pass  # dropped: the error comes after the messages
        read[connection.request.path] = got

    def received() -> bool:
        return [record.msgs_in for record in server.hub.registry.query().records] == [3]

    async with serve(late, "127.0.0.1", 0, ping_interval=None) as server:
        for kind in ("/clean", "/dropped", "/server"):
            ws = await connect(f"ws://127.0.0.1:{server.port}{kind}", ping_interval=None)
            for message in messages:
                await ws.send(message)
            await wait_for(received)
            if kind == "/clean":
                await ws.close()
            elif kind == "/dropped":
                ws.transport.abort()  # no close frame
            else:
                (connection,) = server.connections
                await connection.close()
                del connection
            await wait_for(lambda: kind in read)
            await ws.close()
            assert read[kind] == messages, kind
