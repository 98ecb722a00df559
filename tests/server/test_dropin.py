"""``wsconsole.server.serve`` is a drop-in for ``websockets.asyncio.server.serve``.

Most tests run the same scenario against websockets' own ``serve`` and against
ours (``serve_function``), and assert what websockets documents; for ours they
also check that the hub saw it. The last section pins every private name of
websockets that our counting relies on, so that an upgrade changing one fails
here, loudly, instead of miscounting quietly.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import socket
from typing import Any

import pytest
from websockets.asyncio.client import connect, unix_connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.router import route as websockets_route
from websockets.asyncio.server import Server, ServerConnection, basic_auth
from websockets.asyncio.server import serve as websockets_serve
from websockets.asyncio.server import unix_serve as websockets_unix_serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import OPEN
from websockets.client import ClientProtocol
from websockets.server import ServerProtocol
from websockets.uri import parse_uri
from werkzeug.routing import Map, Rule  # in the test extra: websockets' router needs it

from tests.helpers import TIMEOUT, wait_for
from wsconsole.server import (
    DEFAULT_SLOW_CONSUMER_LIMIT,
    Selector,
    WsconsoleServer,
    route,
    serve,
    unix_route,
    unix_serve,
)
from wsconsole.server.config import ControlConfig

both = pytest.mark.parametrize(
    "serve_function", [websockets_serve, serve], ids=["websockets", "wsconsole"])
"""Run a test against websockets' serve and against ours."""


async def echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


def port_of(server: Server) -> int:
    return server.sockets[0].getsockname()[1]


def uri(server: Server, path: str = "/") -> str:
    return f"ws://127.0.0.1:{port_of(server)}{path}"


def is_ours(server: Server) -> bool:
    return isinstance(server, WsconsoleServer)


async def recv(client: Any) -> Any:
    async with asyncio.timeout(TIMEOUT):
        return await client.recv()


async def refused_status(server: Server, path: str = "/", **kwargs: Any) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        async with asyncio.timeout(TIMEOUT):
            await connect(uri(server, path), **kwargs)
    return info.value


def raw_http(port: int, request: bytes) -> bytes:
    """Send one raw HTTP request; return everything the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        return data


# What serve returns


async def test_serve_returns_a_websockets_server_whose_server_is_the_asyncio_server():
    """What our serve returns is a websockets Server: `server.server` is the
    loop's server (asyncio.Server; uvloop's own on uvloop), its sockets are the
    server's, and hub and control are added."""
    loops_server = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    loops_server.close()
    async with serve(echo, "127.0.0.1", 0) as server:
        assert isinstance(server, Server)
        assert type(server.server) is type(loops_server)
        assert [s.getsockname() for s in server.sockets] == [
            s.getsockname() for s in server.server.sockets]
        assert server.get_loop() is asyncio.get_running_loop()
        assert server.is_serving() and server.server.is_serving()
        assert server.port == server.server.sockets[0].getsockname()[1]
        assert server.hub.listen == [f"127.0.0.1:{server.port}"]
        assert server.control is None
        async with connect(uri(server)) as client:
            await client.send("hi")
            assert await recv(client) == "hi"
            assert {c.request.path for c in server.connections} == {"/"}


@both
async def test_awaiting_serve_starts_the_server_and_returns_it(serve_function):
    """`server = await serve(...)` returns the very object serve returned, serving."""
    pending = serve_function(echo, "127.0.0.1", 0)
    server = await pending
    assert server is pending and server.is_serving()
    assert await server is server  # awaiting again changes nothing
    async with connect(uri(server)) as client:
        await client.send("hi")
        assert await recv(client) == "hi"
    server.close()
    async with asyncio.timeout(TIMEOUT):
        await server.wait_closed()
    assert not server.is_serving()
    if is_ours(server):
        assert server.hub.state == "stopped"


# create_connection: "a wrapper or a subclass"


class TaggedConnection(ServerConnection):
    """A user's connection class: an attribute of its own and its own hook."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tag = "subclass"
        self.frames_seen = 0

    def process_event(self, event: Any) -> None:
        if self.request is not None:
            self.frames_seen += 1
        super().process_event(event)


def tagging_factory(protocol: ServerProtocol, server: Server, **kwargs: Any) -> ServerConnection:
    """A user's connection factory: a plain function, as websockets allows."""
    connection = TaggedConnection(protocol, server, **kwargs)
    connection.tag = "factory"
    return connection


@both
@pytest.mark.parametrize(
    ("create_connection", "tag"),
    [(TaggedConnection, "subclass"), (tagging_factory, "factory"),
     (functools.partial(TaggedConnection), "subclass")],
    ids=["subclass", "function", "partial"],
)
async def test_create_connection_may_be_a_subclass_or_a_function(
    serve_function, create_connection, tag
):
    """The handler receives the user's connection class, built by the user's
    subclass or function, with its own hooks running; ours counts its traffic
    and forgets it when it closes."""
    seen: list[ServerConnection] = []

    async def handler(connection: ServerConnection) -> None:
        seen.append(connection)
        await echo(connection)

    async with serve_function(handler, "127.0.0.1", 0,
                              create_connection=create_connection) as server:
        async with connect(uri(server)) as client:
            for message in ("one", b"two", "three"):
                await client.send(message)
                assert await recv(client) == message
            (connection,) = seen
            assert isinstance(connection, TaggedConnection)
            assert connection.tag == tag and connection.frames_seen == 3
            if is_ours(server):
                (record,) = server.hub.registry
                assert (record.msgs_in, record.msgs_out) == (3, 3)
                assert record.handle is connection
        if is_ours(server):
            await wait_for(lambda: len(server.hub.registry) == 0)
            assert server.hub.totals.msgs_in == 3


async def test_connections_from_a_function_keep_working_after_many_connections():
    """Every connection a factory function makes is tracked, not only the first."""
    async with serve(echo, "127.0.0.1", 0, create_connection=tagging_factory) as server:
        clients = [await connect(uri(server, f"/{i}")) for i in range(3)]
        await wait_for(lambda: len(server.hub.registry) == 3)
        for client in clients:
            await client.send("x")
            assert await recv(client) == "x"
            await client.close()
        await wait_for(lambda: len(server.hub.registry) == 0)
        assert server.hub.totals.msgs_in == 3


# start_serving and serve_forever


@both
async def test_start_serving_false_then_serve_forever_starts_accepting(serve_function):
    """With start_serving=False nobody can connect until serve_forever(), which
    starts serving first; cancelling serve_forever closes the server gracefully."""
    server = await serve_function(echo, "127.0.0.1", 0, start_serving=False)
    assert not server.is_serving()
    with pytest.raises(OSError):
        await connect(uri(server), open_timeout=TIMEOUT)
    forever = asyncio.get_running_loop().create_task(server.serve_forever())
    await wait_for(server.is_serving)
    client = await connect(uri(server))
    await client.send("hi")
    assert await recv(client) == "hi"
    forever.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(TIMEOUT):
            await forever
    assert client.close_code == 1001
    assert not server.is_serving()
    if is_ours(server):
        assert server.hub.state == "stopped"


@both
async def test_start_serving_starts_accepting(serve_function):
    """`await server.start_serving()` after start_serving=False opens the doors."""
    async with serve_function(echo, "127.0.0.1", 0, start_serving=False) as server:
        await server.start_serving()
        assert server.is_serving()
        async with connect(uri(server)) as client:
            await client.send("hi")
            assert await recv(client) == "hi"


async def test_serve_forever_returns_when_an_operator_shuts_down_and_the_control_plane_closes():
    """serve_forever() returns once the server is closed from elsewhere (here
    the hub, as the control plane does), and the control listener is closed too."""
    config = ControlConfig(port=0, token="a-token-for-the-dropin-tests")
    server = await serve(echo, "127.0.0.1", 0, control=config)
    control_port = server.control.port
    forever = asyncio.get_running_loop().create_task(server.serve_forever())
    server.hub.shutdown("graceful")
    async with asyncio.timeout(TIMEOUT):
        await forever
    with pytest.raises(OSError):
        await connect(f"ws://127.0.0.1:{control_port}/", open_timeout=TIMEOUT)


# close and wait_closed


@both
async def test_close_closes_connections_with_the_code_given(serve_function):
    """close() closes open connections with 1001 by default, or the code and
    reason given; wait_closed() returns once every handler has returned."""
    for kwargs, expected in (({}, (1001, "")), ({"code": 1012, "reason": "restart"},
                                                (1012, "restart"))):
        server = await serve_function(echo, "127.0.0.1", 0)
        client = await connect(uri(server))
        await client.send("hi")
        await recv(client)
        server.close(**kwargs)
        async with asyncio.timeout(TIMEOUT):
            await server.wait_closed()
            await client.wait_closed()
        assert (client.close_code, client.close_reason) == expected
        if is_ours(server):
            assert server.hub.state == "stopped"
            assert server.hub.closed_by_code[expected[0]] == 1


@both
async def test_close_without_closing_connections_serves_them_until_they_leave(serve_function):
    """close(close_connections=False) refuses new clients, keeps serving the
    open ones (a second close() changes nothing), and wait_closed() returns
    when the last one leaves."""
    server = await serve_function(echo, "127.0.0.1", 0)
    port = port_of(server)
    client = await connect(uri(server))
    server.close(close_connections=False)
    waiting = asyncio.get_running_loop().create_task(server.wait_closed())
    await wait_for(lambda: not server.is_serving())
    with pytest.raises(OSError):
        await connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT)
    server.close()
    await client.send("still here")
    assert await recv(client) == "still here"
    assert not waiting.done() and client.close_code is None
    if is_ours(server):
        assert server.hub.state == "draining"
    await client.close()
    async with asyncio.timeout(TIMEOUT):
        await waiting
    assert client.close_code == 1000
    if is_ours(server):
        assert server.hub.state == "stopped"


@both
async def test_leaving_async_with_after_a_keep_open_close_waits_for_clients(serve_function):
    """`async with serve(...)` whose body called close(close_connections=False)
    exits only when the clients leave: the exit's own close() changes nothing."""
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[Server] = loop.create_future()
    connected: asyncio.Future[None] = loop.create_future()

    async def scope() -> None:
        async with serve_function(echo, "127.0.0.1", 0) as server:
            opened.set_result(server)
            await connected
            server.close(close_connections=False)

    task = loop.create_task(scope())
    client = await connect(uri(await opened))
    connected.set_result(None)
    # A round trip takes several loop iterations: the scope is in __aexit__ now.
    await client.send("served while the scope exits")
    assert await recv(client) == "served while the scope exits"
    assert not task.done() and client.close_code is None
    await client.close()
    async with asyncio.timeout(TIMEOUT):
        await task
    assert client.close_code == 1000


# process_request and process_response


def reject_sync(connection: ServerConnection, request: Any) -> Response | None:
    if request.path == "/private":
        return connection.respond(403, "Forbidden\n")
    return None


async def reject_async(connection: ServerConnection, request: Any) -> Response | None:
    await asyncio.sleep(0)
    return reject_sync(connection, request)


def reject_raising(connection: ServerConnection, request: Any) -> Response | None:
    if request.path == "/private":
        raise RuntimeError("the application's process_request failed")
    return None


@both
@pytest.mark.parametrize(("process_request", "status"),
                         [(reject_sync, 403), (reject_async, 403), (reject_raising, 500)],
                         ids=["sync", "async", "raising"])
async def test_process_request_sync_async_or_raising(serve_function, process_request,
                                                     status, caplog):
    """process_request may be a function or a coroutine; a response it returns
    is sent instead of the handshake, and if it raises the client gets 500 and
    the server logs "process_request failed"."""
    async with serve_function(echo, "127.0.0.1", 0, process_request=process_request) as server:
        refusal = await refused_status(server, "/private")
        assert refusal.response.status_code == status
        async with connect(uri(server, "/public")) as client:
            await client.send("hi")
            assert await recv(client) == "hi"
        if is_ours(server):
            await wait_for(lambda: server.hub.rejected_by_status[status] == 1)
    assert ("process_request failed" in caplog.text) == (status == 500)


def add_header_sync(connection: ServerConnection, request: Any, response: Response) -> None:
    response.headers["X-App"] = "sync"


async def replace_async(connection: ServerConnection, request: Any,
                        response: Response) -> Response | None:
    if request.path == "/private":
        return connection.respond(403, "Forbidden\n")
    response.headers["X-App"] = "async"
    return None


def raise_on_private(connection: ServerConnection, request: Any, response: Response) -> None:
    if request.path == "/private":
        raise RuntimeError("the application's process_response failed")
    response.headers["X-App"] = "raising"


@both
@pytest.mark.parametrize(("process_response", "header", "status"),
                         [(add_header_sync, "sync", None), (replace_async, "async", 403),
                          (raise_on_private, "raising", 500)],
                         ids=["sync", "async", "raising"])
async def test_process_response_sync_async_or_raising(serve_function, process_response,
                                                      header, status, caplog):
    """process_response may change the response, replace it (then the handshake
    is refused) or raise (then the client gets 500 and it is logged)."""
    async with serve_function(echo, "127.0.0.1", 0,
                              process_response=process_response) as server:
        async with connect(uri(server, "/public")) as client:
            assert client.response.headers["X-App"] == header
            if is_ours(server):
                await wait_for(lambda: len(server.hub.registry) == 1)
                (record,) = server.hub.registry
                assert ["X-App", header] in record.detail()["response_headers"]
        if status is not None:
            assert (await refused_status(server, "/private")).response.status_code == status
    assert ("process_response failed" in caplog.text) == (status == 500)


@both
async def test_basic_auth_sets_the_username_and_refuses_bad_credentials(serve_function):
    """basic_auth lets the right credentials in with `username` set (ours
    records it as the user) and answers 401 with a challenge otherwise."""
    seen: list[str] = []

    async def handler(connection: ServerConnection) -> None:
        seen.append(connection.username)
        await echo(connection)

    async with serve_function(handler, "127.0.0.1", 0, process_request=basic_auth(
            realm="tests", credentials=("ann", "pw"))) as server:
        port = port_of(server)
        async with connect(f"ws://ann:pw@127.0.0.1:{port}/") as client:
            await client.send("hi")
            assert await recv(client) == "hi"
            if is_ours(server):
                assert server.hub.registry.user_counts() == {"ann": 1}
        with pytest.raises(InvalidStatus) as info:
            await connect(f"ws://ann:wrong@127.0.0.1:{port}/")
        assert info.value.response.status_code == 401
        assert info.value.response.headers["WWW-Authenticate"].startswith("Basic")
        assert seen == ["ann"]


# Negotiation: subprotocols, origins, compression


@both
async def test_subprotocols_are_negotiated_and_select_subprotocol_gets_the_connection(
    serve_function,
):
    """subprotocols picks the server's preference; select_subprotocol receives
    the ServerConnection and what the client offered."""
    async with serve_function(echo, "127.0.0.1", 0,
                              subprotocols=["v2.chat", "v1.chat"]) as server:
        async with connect(uri(server), subprotocols=["v1.chat", "v2.chat"]) as client:
            assert client.subprotocol == "v2.chat"
            if is_ours(server):
                await wait_for(lambda: len(server.hub.registry) == 1)
                assert next(iter(server.hub.registry)).subprotocol == "v2.chat"

    offers: list[tuple[bool, list[str]]] = []

    def select(connection: ServerConnection, offered: Any) -> str | None:
        offers.append((isinstance(connection, ServerConnection), list(offered)))
        return "v1.chat" if "v1.chat" in offered else None

    async with serve_function(echo, "127.0.0.1", 0, select_subprotocol=select) as server:
        async with connect(uri(server), subprotocols=["v1.chat"]) as client:
            assert client.subprotocol == "v1.chat"
    assert offers == [(True, ["v1.chat"])]


@both
async def test_origins_refuse_an_unlisted_origin(serve_function):
    """origins lets a listed Origin in and refuses another with 403."""
    async with serve_function(echo, "127.0.0.1", 0,
                              origins=["https://app.example"]) as server:
        async with connect(uri(server), origin="https://app.example") as client:
            await client.send("hi")
            assert await recv(client) == "hi"
        refusal = await refused_status(server, origin="https://evil.example")
        assert refusal.response.status_code == 403
        if is_ours(server):
            await wait_for(lambda: server.hub.rejected_by_status[403] == 1)


@both
@pytest.mark.parametrize(("compression", "extensions"),
                         [("deflate", ["permessage-deflate"]), (None, [])],
                         ids=["deflate", "none"])
async def test_compression_is_negotiated_unless_disabled(serve_function, compression,
                                                          extensions):
    """permessage-deflate is on by default and off with compression=None; a
    compressed message is still counted as one message by ours."""
    async with serve_function(echo, "127.0.0.1", 0, compression=compression) as server:
        async with connect(uri(server)) as client:
            assert [ext.name for ext in client.protocol.extensions] == extensions
            await client.send("a" * 1000)
            assert await recv(client) == "a" * 1000
            if is_ours(server):
                (record,) = server.hub.registry
                assert list(record.extensions) == extensions
                assert (record.msgs_in, record.msgs_out) == (1, 1)
                # Compressed, 1000 repeated bytes take far fewer on the wire.
                assert (record.bytes_in < 100) == bool(extensions)


# Timeouts and keepalive


@both
async def test_open_timeout_drops_a_client_that_never_sends_its_handshake(serve_function):
    """A TCP client that sends nothing is dropped after open_timeout."""
    async with serve_function(echo, "127.0.0.1", 0, open_timeout=0.1) as server:
        port = port_of(server)

        def silent_client() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
                try:
                    return sock.recv(1)
                except ConnectionResetError:
                    return b""

        assert await asyncio.to_thread(silent_client) == b""
        if is_ours(server):
            assert len(server.hub.registry) == 0 and server.hub.opened_total == 0


@both
async def test_keepalive_pings_measure_latency(serve_function):
    """With ping_interval set, the server pings and the pong sets the
    connection's latency (ours also reports it to the hub's observers)."""
    seen: list[ServerConnection] = []
    measured: list[float] = []

    async def handler(connection: ServerConnection) -> None:
        seen.append(connection)
        await connection.wait_closed()

    async with serve_function(handler, "127.0.0.1", 0, ping_interval=0.05) as server:
        if is_ours(server):
            server.hub.add_observer(type("Latency", (), {
                "on_latency": staticmethod(measured.append)})())
        async with connect(uri(server), ping_interval=None):
            await wait_for(lambda: bool(seen) and seen[0].latency > 0)
            if is_ours(server):
                await wait_for(lambda: bool(measured))
                assert measured[0] > 0


@both
async def test_keepalive_timeout_closes_a_client_that_stops_answering(serve_function):
    """A client that stops reading misses the pings' pongs: after ping_timeout
    the server closes it with 1011 (ours then forgets its record)."""
    sent: list[int] = []

    async def handler(connection: ServerConnection) -> None:
        await connection.wait_closed()
        sent.append(connection.protocol.close_sent.code)

    async with serve_function(handler, "127.0.0.1", 0, ping_interval=0.05,
                              ping_timeout=0.05, close_timeout=0.1) as server:
        client = await connect(uri(server), ping_interval=None)
        try:
            client.transport.pause_reading()
            await wait_for(lambda: sent == [1011])
            if is_ours(server):
                await wait_for(lambda: server.hub.closed_by_code[1011] == 1)
                assert len(server.hub.registry) == 0
        finally:
            client.transport.abort()


# unix_serve and route


@pytest.mark.parametrize("unix_serve_function", [websockets_unix_serve, unix_serve],
                         ids=["websockets", "wsconsole"])
async def test_unix_serve_listens_on_a_unix_socket(unix_serve_function, tmp_path):
    """unix_serve serves on the socket path; ours lists the path and has no port."""
    path = str(tmp_path / "ws.sock")
    async with unix_serve_function(echo, path) as server:
        async with unix_connect(path) as client:
            await client.send("over a unix socket")
            assert await recv(client) == "over a unix socket"
            if is_ours(server):
                assert isinstance(server, Server)
                assert server.hub.listen == [path] and server.port is None
                assert len(server.hub.registry) == 1


@pytest.mark.parametrize("route_function", [websockets_route, route],
                         ids=["websockets", "wsconsole"])
async def test_route_dispatches_by_url_and_answers_404_elsewhere(route_function):
    """route() sends each connection to the handler its URL matches, with the
    captured parameters; other paths get 404 (ours records the path)."""
    async def room(connection: ServerConnection, name: str) -> None:
        await connection.send(f"room {name}")
        await connection.wait_closed()

    url_map = Map([Rule("/room/<name>", endpoint=room)])
    async with route_function(url_map, "127.0.0.1", 0) as server:
        async with connect(uri(server, "/room/lobby")) as client:
            assert await recv(client) == "room lobby"
            if is_ours(server):
                assert server.hub.registry.path_counts() == {"/room/lobby": 1}
        assert (await refused_status(server, "/elsewhere")).response.status_code == 404
        if is_ours(server):
            ok = await asyncio.to_thread(
                raw_http, port_of(server), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert ok.startswith(b"HTTP/1.1 200")


async def test_unix_route_dispatches_on_a_unix_socket(tmp_path):
    """unix_route is route() on a Unix socket."""
    async def room(connection: ServerConnection, name: str) -> None:
        await connection.send(f"room {name}")

    path = str(tmp_path / "ws.sock")
    async with unix_route(Map([Rule("/room/<name>", endpoint=room)]), path) as server:
        async with unix_connect(path, uri="ws://localhost/room/a") as client:
            assert await recv(client) == "room a"
        assert server.hub.opened_total == 1


# Our additions, and the arguments that turn them off


async def test_without_a_health_path_healthz_is_answered_as_by_websockets():
    """health_path=None leaves /healthz to websockets (a plain GET there is
    refused as an incomplete handshake, exactly as websockets refuses it)."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    answers = []
    for serve_function, kwargs in ((websockets_serve, {}), (serve, {"health_path": None})):
        async with serve_function(echo, "127.0.0.1", 0, **kwargs) as server:
            answers.append(await asyncio.to_thread(raw_http, port_of(server), request))
    bare, ours = answers
    assert bare.split(b"\r\n")[0] == ours.split(b"\r\n")[0] == b"HTTP/1.1 426 Upgrade Required"
    assert bare.partition(b"\r\n\r\n")[2] == ours.partition(b"\r\n\r\n")[2]


async def test_without_a_slow_consumer_limit_a_client_that_does_not_read_stays():
    """slow_consumer_limit=None never closes a client for not reading, however
    much is buffered for it (here more than the default limit)."""
    async with serve(echo, "127.0.0.1", 0, slow_consumer_limit=None, sample_interval=0,
                     compression=None) as server:
        client = await connect(uri(server), compression=None)
        try:
            await wait_for(lambda: len(server.hub.registry) == 1)
            client.transport.pause_reading()
            (record,) = server.hub.registry
            transport = record.handle.transport
            for _ in range(100):  # the kernel's socket buffers fill first
                if transport.get_write_buffer_size() > DEFAULT_SLOW_CONSUMER_LIMIT:
                    break
                server.hub.send(Selector(everyone=True), b"y" * 1024 * 1024)
            assert transport.get_write_buffer_size() > DEFAULT_SLOW_CONSUMER_LIMIT
            assert server.hub.sampler.sample() == 0  # the pass that closes slow consumers
            assert record.handle.protocol.state is OPEN
            assert server.hub.slow_consumer_disconnects == 0
        finally:
            client.transport.abort()


@pytest.mark.parametrize(("serve_function", "kwargs", "logged"), [
    (websockets_serve, {}, "< Cookie: session=s3cr3t"),
    (serve, {"redact_logs": False}, "< Cookie: session=s3cr3t"),
    (serve, {}, "< Cookie: [redacted]"),
], ids=["websockets", "wsconsole-redact_logs-off", "wsconsole"])
async def test_handshake_secrets_in_debug_logs_are_redacted_unless_turned_off(
    serve_function, kwargs, logged, caplog
):
    """At DEBUG, websockets logs each handshake header; ours blanks the values
    of secret ones unless redact_logs=False."""
    caplog.set_level(logging.DEBUG, logger="websockets.server")
    async with serve_function(echo, "127.0.0.1", 0, **kwargs) as server:
        async with connect(uri(server), additional_headers={"Cookie": "session=s3cr3t"}):
            pass
    assert logged in caplog.messages


# Pins: the websockets internals that our counting relies on


def parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


@pytest.mark.parametrize(("owner", "name", "expected", "why"), [
    (Connection, "data_received", ["self", "data"], "counts bytes in"),
    (ServerConnection, "process_event", ["self", "event"], "counts messages in"),
    (Connection, "send_data", ["self"], "counts messages and bytes out"),
    (Connection, "acknowledge_pings", ["self", "data"], "reports keepalive latency"),
    (Connection, "connection_lost", ["self", "exc"], "forgets the record"),
    (ServerConnection, "handshake",
     ["self", "process_request", "process_response", "server_header"], "registers"),
    (ServerProtocol, "data_to_send", ["self"], "drains protocol.writes"),
    (ServerProtocol, "send_text", ["self", "data", "fin"], "Hub.send"),
    (ServerProtocol, "send_binary", ["self", "data", "fin"], "Hub.send"),
    (Frame, "serialize", ["self", "mask", "extensions"], "Hub.send serializes a frame once"),
    (Server, "close", ["self", "close_connections", "code", "reason"], "shutdown modes"),
    (Server, "wait_closed", ["self"], "stops the hub and control listener"),
    (Server, "__await__", ["self"], "attaches the hub"),
])
def test_websockets_methods_the_hooks_override_or_call_are_unchanged(owner, name,
                                                                     expected, why):
    """Each websockets method our hooks override or call keeps its name and
    parameters (serving.py and hub.py rely on it: see the last column)."""
    function = getattr(owner, name, None)
    assert function is not None, f"websockets removed {owner.__name__}.{name} ({why})"
    assert parameters(function) == expected, (
        f"websockets changed {owner.__name__}.{name}{inspect.signature(function)}: "
        f"wsconsole's hook that {why} must follow")


def test_protocol_writes_holds_one_serialized_frame_per_item_until_drained():
    """send_data counts frames by peeking at protocol.writes before websockets
    drains it: one serialized frame per item, emptied by data_to_send()."""
    protocol = ServerProtocol()
    protocol.state = OPEN
    protocol.send_text(b"one")
    protocol.send_binary(b"tw", fin=False)
    protocol.send_continuation(b"o", fin=True)
    assert isinstance(protocol.writes, list), "websockets renamed protocol.writes"
    assert [chunk[0] for chunk in protocol.writes] == [0x81, 0x02, 0x80]
    assert protocol.writes[0] == Frame(Opcode.TEXT, b"one").serialize(
        mask=False, extensions=[])
    assert protocol.data_to_send() == [
        Frame(Opcode.TEXT, b"one").serialize(mask=False, extensions=[]),
        Frame(Opcode.BINARY, b"tw", fin=False).serialize(mask=False, extensions=[]),
        Frame(Opcode.CONT, b"o").serialize(mask=False, extensions=[]),
    ]
    assert protocol.writes == []


@pytest.mark.parametrize(("method", "opcode"), [("send_text", Opcode.TEXT),
                                                 ("send_binary", Opcode.BINARY)])
def test_a_plain_protocol_only_queues_the_frame_that_hub_send_writes_itself(method, opcode):
    """To a connection without extensions Hub.send writes one frame it
    serialized once, ``Frame(opcode, payload).serialize(mask=False,
    extensions=[])``, instead of calling send_text / send_binary: those must
    queue exactly these bytes and change nothing else in such a protocol, and
    the attributes Hub.send checks to choose (extensions, writes,
    expect_continuation_frame, debug) must be there."""
    protocol = ServerProtocol()
    protocol.state = OPEN
    assert protocol.extensions == [], "websockets renamed protocol.extensions"
    assert protocol.writes == [], "websockets renamed protocol.writes"
    assert protocol.expect_continuation_frame is False, (
        "websockets renamed protocol.expect_continuation_frame")
    assert protocol.debug is False, "websockets renamed protocol.debug"
    assert protocol._state is protocol.state is OPEN, (
        "websockets renamed protocol._state (Hub.send reads it, not the property)")
    before = dict(vars(protocol))
    getattr(protocol, method)(b"payload")
    assert protocol.writes == [Frame(opcode, b"payload").serialize(mask=False, extensions=[])]
    changed = {name for name, value in vars(protocol).items()
               if name != "writes" and (name not in before
                                        or (before[name] is not value and before[name] != value))}
    assert changed == set(), (
        f"websockets' {method} now also changes {sorted(changed)}: Hub.send's shared "
        "frame must do the same (server/hub.py)")


def test_deflate_without_context_takeover_compresses_each_message_alone():
    """To every connection whose one extension is permessage-deflate without
    context takeover on the server's side, Hub.send writes one frame it
    compressed once: websockets' extension must compress each message with a
    fresh compressor (the same bytes every time, whatever came before) and
    keep nothing of it, so that the connection is left as websockets leaves it."""
    from websockets.extensions.permessage_deflate import PerMessageDeflate

    settings = {"memLevel": 5}
    connection_side = PerMessageDeflate(False, True, 15, 12, settings)
    ours = PerMessageDeflate(True, True, 15, 12, settings)
    message = Frame(Opcode.TEXT, b"the same message, compressed alone " * 4)
    before = dict(vars(connection_side))
    first = message.serialize(mask=False, extensions=[connection_side])
    assert message.serialize(mask=False, extensions=[connection_side]) == first
    assert message.serialize(mask=False, extensions=[ours]) == first
    assert first[0] & 0x40, "the frame is marked compressed (RSV1)"
    assert vars(connection_side) == before, (
        "websockets' PerMessageDeflate now keeps state between messages without "
        "context takeover: Hub.send must stop sharing its compressed frame (server/hub.py)")
    for name in ("local_no_context_takeover", "local_max_window_bits",
                 "remote_max_window_bits", "compress_settings"):
        assert hasattr(connection_side, name), f"websockets renamed PerMessageDeflate.{name}"


def _client_frame(opcode: Opcode, data: bytes = b"", **kwargs: Any) -> bytes:
    return Frame(opcode, data, **kwargs).serialize(mask=True, extensions=[])


LEAVING_OPEN = {
    "send_close": lambda p: p.send_close(4000, "bye"),
    "close frame received": lambda p: p.receive_data(
        _client_frame(Opcode.CLOSE, Close(1000, "").serialize())),
    "close frame with a bad code": lambda p: p.receive_data(
        _client_frame(Opcode.CLOSE, b"\x03\xe7")),
    "fail with a code": lambda p: p.fail(1011, "internal"),
    "fail, abnormal closure": lambda p: p.fail(1006),
    "end of stream received": lambda p: p.receive_eof(),
    "unmasked frame received": lambda p: p.receive_data(
        Frame(Opcode.TEXT, b"x").serialize(mask=False, extensions=[])),
    "reserved bit set": lambda p: p.receive_data(b"\xa1\x81\x00\x00\x00\x00x"),
    "message too big": lambda p: p.receive_data(_client_frame(Opcode.BINARY, b"x" * 65)),
}


@pytest.mark.parametrize("step", list(LEAVING_OPEN))
def test_a_server_protocol_leaves_open_only_as_it_queues_a_close_frame_or_the_end(step):
    """Hub.send reads no connection's state: a connection is taken out of the
    send plans when our send_data hook sees it write a close frame or its end
    of stream (Hub.closing_started). So every way out of OPEN must queue one
    of them in the same step, for send_data to drain right after."""
    client = ClientProtocol(parse_uri("ws://127.0.0.1/"))
    client.send_request(client.connect())
    protocol = ServerProtocol(max_size=64)
    protocol.receive_data(b"".join(client.data_to_send()))
    (request,) = protocol.events_received()
    protocol.send_response(protocol.accept(request))
    protocol.data_to_send()
    assert protocol.state is OPEN
    LEAVING_OPEN[step](protocol)
    # Failing without a close frame (1006) stays OPEN until the end of the
    # stream is received; it queued its own end, so Hub.send skips it too.
    assert protocol.state is not OPEN or step == "fail, abnormal closure"
    writes = protocol.data_to_send()
    assert any(chunk == b"" or chunk[0] == 0x88 for chunk in writes), (
        f"websockets now leaves OPEN on {step} without queueing a close frame or the end "
        f"of the stream ({writes!r}): Hub.send must read each recipient's state again "
        "(server/hub.py)")


async def test_live_connections_have_the_attributes_the_hub_reads():
    """The connection attributes that the hooks and Hub.send read on every
    connection exist on a live websockets connection."""
    seen: list[ServerConnection] = []

    async def handler(connection: ServerConnection) -> None:
        seen.append(connection)
        await connection.wait_closed()

    async with websockets_serve(handler, "127.0.0.1", 0) as server:
        async with connect(uri(server)):
            await wait_for(lambda: bool(seen))
            (connection,) = seen
            assert isinstance(connection.connection_lost_waiter, asyncio.Future)
            assert not connection.connection_lost_waiter.done()
            assert connection.send_in_progress is None
            assert connection.latency == 0
            assert connection.transport.get_write_buffer_size() == 0
            assert connection in server.connections


async def test_send_in_progress_is_set_with_the_first_fragment_in_hand():
    """Hub.send reads no connection's send_in_progress: a connection is taken
    for halfway through a fragmented message from its first fragment on
    (send_data sees it, Hub.fragment_sent). websockets must set
    send_in_progress only once it holds the first fragment, and send it in
    the same step: while an async iterable is still producing its first
    fragment, send_in_progress is None; once a fragment went out, it is set
    and the hub knows."""
    first, second = asyncio.Event(), asyncio.Event()
    started, sent = asyncio.Event(), asyncio.Event()
    seen: list[Any] = []

    async def fragments() -> Any:
        started.set()
        await first.wait()
        yield "one, "
        sent.set()
        await second.wait()
        yield "two"

    async def handler(connection: ServerConnection) -> None:
        seen.append(connection)
        await connection.send(fragments())
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        async with connect(uri(server), compression=None) as client:
            async with asyncio.timeout(TIMEOUT):
                await started.wait()
            (connection,) = seen
            (record,) = server.hub.registry
            assert connection.send_in_progress is None, (
                "websockets now sets send_in_progress before it has the first fragment: "
                "Hub.send must read it per recipient again (server/hub.py)")
            first.set()
            async with asyncio.timeout(TIMEOUT):
                await sent.wait()
            assert connection.send_in_progress is not None
            assert record.id in server.hub._fragmenting
            second.set()
            async with asyncio.timeout(TIMEOUT):
                assert await client.recv() == "one, two"
        await wait_for(lambda: not server.hub.registry)
        assert not server.hub._fragmenting, "a closed connection is forgotten"


async def test_each_frame_reaches_process_event_and_each_write_send_data():
    """websockets still feeds every parsed frame to process_event and every
    write through send_data: ours counts a text, a binary and a fragmented
    message once each, and neither pings nor pongs."""
    async with serve(echo, "127.0.0.1", 0, compression=None) as server:
        async with connect(uri(server), compression=None, ping_interval=None) as client:
            await client.send("text")
            assert await recv(client) == "text"
            await client.send(b"binary")
            assert await recv(client) == b"binary"
            await client.send(["frag", "mented"])
            assert await recv(client) == "fragmented"
            async with asyncio.timeout(TIMEOUT):
                await (await client.ping())
            (record,) = server.hub.registry
            assert (record.msgs_in, record.msgs_out) == (3, 3), (
                "websockets no longer calls process_event per frame or send_data "
                "per write: see the hooks in server/serving.py")
            # The fragments end with an empty one; the ping came in, its pong went out.
            assert record.bytes_in == sum(len(f.serialize(mask=True, extensions=[])) for f in (
                Frame(Opcode.TEXT, b"text"), Frame(Opcode.BINARY, b"binary"),
                Frame(Opcode.TEXT, b"frag", fin=False),
                Frame(Opcode.CONT, b"mented", fin=False), Frame(Opcode.CONT, b""),
                Frame(Opcode.PING, b"1234")))
            assert record.bytes_out == sum(len(f.serialize(mask=False, extensions=[])) for f in (
                Frame(Opcode.TEXT, b"text"), Frame(Opcode.BINARY, b"binary"),
                Frame(Opcode.TEXT, b"fragmented"), Frame(Opcode.PONG, b"1234")))


def test_websockets_serve_builds_a_plain_server_which_ours_reclasses():
    """Our serve gives the Server that websockets' serve built our class (its
    closures hold that very object); that needs websockets to build exactly a
    Server."""
    async def build() -> tuple[type, type]:
        bare = websockets_serve(echo, "127.0.0.1", 0)
        ours = serve(echo, "127.0.0.1", 0)
        return type(bare), type(ours)

    assert asyncio.run(build()) == (Server, WsconsoleServer), (
        "websockets' serve no longer returns a plain Server: wsconsole.server.serve "
        "must follow how it is built now")

