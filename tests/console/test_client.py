"""The control-plane client against a real server, real public clients, and
(for failures our server never produces on purpose) small real websockets servers."""

from __future__ import annotations

import asyncio
import socket

import pytest
from websockets.asyncio.server import serve as websockets_serve

from tests.helpers import TIMEOUT
from wsconsole.console.client import (
    DEFAULT_URL,
    EVENT_BUFFER,
    ControlClient,
    default_token_file,
    resolve_token,
    resolve_url,
)
from wsconsole.server import wire
from wsconsole.server.protocol import Role
from wsconsole.server.errors import (
    ControlError,
    ControlUnavailable,
    Forbidden,
    SelectorError,
    Unauthorized,
    UnknownConnection,
    UnknownOperation,
)

from .live_server import OPERATOR_TOKEN, READ_ONLY_TOKEN, Live, live_server


@pytest.fixture
async def live():
    async with live_server() as live:
        yield live


def closed_port() -> int:
    """A local TCP port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def next_event(client: ControlClient, kind: str) -> wire.Event:
    """The next event of one kind (stats and others arrive in between)."""
    async with asyncio.timeout(TIMEOUT):
        async for event in client.events():
            if event.kind == kind:
                return event
    raise AssertionError(f"event stream ended before a {kind} event")


# URL and token resolution


def test_resolve_url_prefers_argument_then_environment(monkeypatch):
    """resolve_url takes the argument, else $WSCONSOLE_URL, else the default."""
    monkeypatch.delenv("WSCONSOLE_URL", raising=False)
    assert resolve_url(None) == DEFAULT_URL == "ws://127.0.0.1:8766"
    monkeypatch.setenv("WSCONSOLE_URL", "ws://env:1")
    assert resolve_url(None) == "ws://env:1"
    assert resolve_url("ws://arg:2") == "ws://arg:2"


def test_resolve_token_order(monkeypatch, tmp_path):
    """resolve_token takes the argument, else the file, else $WSCONSOLE_TOKEN, else serve's file."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("WSCONSOLE_TOKEN", raising=False)
    default = tmp_path / "state" / "wsconsole" / "token"
    assert default_token_file() == str(default)
    default.parent.mkdir(parents=True)
    default.write_text("from-default\n")
    assert resolve_token(None, None) == "from-default"
    monkeypatch.setenv("WSCONSOLE_TOKEN", "from-env")
    assert resolve_token(None, None) == "from-env"
    named = tmp_path / "named"
    named.write_text("  from-file\n")
    assert resolve_token(None, str(named)) == "from-file"
    assert resolve_token("from-arg", str(named)) == "from-arg"


def test_resolve_token_without_any_token_explains(monkeypatch, tmp_path):
    """With no token anywhere, Unauthorized says where a token can come from."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.delenv("WSCONSOLE_TOKEN", raising=False)
    with pytest.raises(Unauthorized) as info:
        resolve_token(None, None)
    assert "no token" in info.value.message
    assert "--token-file" in info.value.message and "WSCONSOLE_TOKEN" in info.value.message


def test_resolve_token_refuses_bad_files_without_echoing_the_token(tmp_path):
    """A missing, empty, or control-character token file is refused; the token is never quoted."""
    with pytest.raises(Unauthorized, match="cannot read token file"):
        resolve_token(None, str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(Unauthorized, match="is empty"):
        resolve_token(None, str(empty))
    injected = tmp_path / "injected"
    injected.write_text("secret-part\r\nX-Evil: 1")
    with pytest.raises(Unauthorized) as info:
        resolve_token(None, str(injected))
    assert "secret-part" not in str(info.value)


# Connecting


async def test_connect_says_hello(live: Live):
    """connect() returns the hello result and records node and role."""
    client = ControlClient(live.url, OPERATOR_TOKEN)
    assert not client.connected
    info = await client.connect()
    try:
        assert client.connected
        assert info["node"] == live.server.hub.node == client.node
        assert info["role"] == client.role == "operator"
    finally:
        await client.close()
    assert not client.connected


@pytest.mark.parametrize("token", ["café-token", "x" * 1025, "two words"])
def test_a_token_the_server_would_refuse_is_refused_before_connecting(token):
    """The client applies the server's token rule (printable ASCII, no spaces,
    at most 1024 characters): the error names the source, never the token."""
    with pytest.raises(Unauthorized) as info:
        resolve_token(token, None)
    assert info.value.message.startswith("the token from --token ")
    assert token not in info.value.message


async def test_read_only_token_gets_read_only_role(live: Live):
    """The read-only token connects as read_only and may list but not send."""
    async with ControlClient(live.url, READ_ONLY_TOKEN) as client:
        assert client.role is Role.READ_ONLY
        page = await client.list_connections()
        assert page["connections"] == []
        with pytest.raises(Forbidden) as info:
            await client.send({"everyone": True}, text="hi")
        assert info.value.code == "forbidden"
        # The refusal leaves the connection usable.
        assert (await client.stats())["connections"] == 0


async def test_wrong_token_is_unauthorized(live: Live):
    """A token the server refuses raises Unauthorized, which never quotes the token."""
    with pytest.raises(Unauthorized) as info:
        await ControlClient(live.url, "not-the-token").connect()
    assert "token refused" in info.value.message
    assert "not-the-token" not in info.value.message


async def test_missing_token_is_unauthorized(live: Live):
    """Connecting without a token raises Unauthorized with a hint."""
    with pytest.raises(Unauthorized, match="needs a token"):
        await ControlClient(live.url, None).connect()


async def test_unreachable_is_control_unavailable():
    """A closed port raises ControlUnavailable naming the URL and the reason."""
    url = f"ws://127.0.0.1:{closed_port()}"
    with pytest.raises(ControlUnavailable) as info:
        await ControlClient(url, "t").connect()
    assert info.value.message.startswith(f"cannot reach {url}: ")
    assert "refused" in info.value.message.lower()


async def test_non_websocket_url_is_control_unavailable():
    """A URL that is not ws:// raises ControlUnavailable, not a websockets exception."""
    with pytest.raises(ControlUnavailable, match="cannot reach http://"):
        await ControlClient("http://127.0.0.1:1", "t").connect()


async def test_token_never_in_repr(live: Live):
    """The client's repr shows where it is connected, never the token."""
    async with ControlClient(live.url, OPERATOR_TOKEN) as client:
        assert OPERATOR_TOKEN not in repr(client)
        assert live.url in repr(client)


async def test_token_never_in_debug_logs(live: Live, caplog):
    """With DEBUG logging on, websockets' handshake lines show the client's
    Authorization header redacted, never the token."""
    import logging

    # The logger's own level too: a test in the same process may have raised
    # websockets' (as `wsconsole web` does for its own process).
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="websockets"):
        async with ControlClient(live.url, OPERATOR_TOKEN) as client:
            await client.stats()
    client_side = [record.getMessage() for record in caplog.records
                   if record.name.startswith("websockets.client")]
    assert any("Authorization" in line for line in client_side)
    assert not any(OPERATOR_TOKEN in line for line in client_side)


# Operations


async def test_list_get_and_paging(live: Live):
    """list_connections pages with a cursor and get returns headers redacted."""
    ann = await live.client("/chat", user="ann", topics=("lobby",),
                            headers={"Authorization": "Basic YW5uOnB3", "Cookie": "a=b"})
    await live.client("/chat", user="bob")
    await live.client("/feed", user="ann")
    async with ControlClient(live.url, OPERATOR_TOKEN) as client:
        first = await client.list_connections(limit=2)
        assert first["total"] == 3 and len(first["connections"]) == 2
        assert first["next_cursor"]
        rest = await client.list_connections(limit=2, cursor=first["next_cursor"])
        assert rest["next_cursor"] is None and len(rest["connections"]) == 1
        ids = {c["id"] for c in first["connections"] + rest["connections"]}
        assert ids == {record.id for record in live.server.hub.registry}

        mine = await client.list_connections(user="ann", topic="lobby")
        assert [c["id"] for c in mine["connections"]] == [live.id_of(ann)]

        detail = await client.get(live.id_of(ann))
        headers = {name.lower(): value for name, value in detail["request_headers"]}
        assert headers["authorization"] == "[redacted]"
        assert headers["cookie"] == "[redacted]"


async def test_error_replies_raise_the_class_the_server_raised(live: Live):
    """An error reply raises the server's own exception class, found by its code
    (an unknown id is UnknownConnection, a bad selector SelectorError); the
    connection stays usable."""
    async with ControlClient(live.url, OPERATOR_TOKEN) as client:
        with pytest.raises(UnknownConnection) as unknown:
            await client.get("0000000000")
        assert "0000000000" in unknown.value.message
        with pytest.raises(SelectorError):
            await client.send({"nobody": True}, text="x")
        with pytest.raises(UnknownOperation):
            await client.request("no_such_op")
        assert client.connected


async def test_send_text_and_binary_reach_clients(live: Live):
    """send delivers text and binary messages to the selected clients."""
    ann = await live.client(user="ann")
    async with ControlClient(live.url, OPERATOR_TOKEN) as client:
        result = await client.send({"user": "ann"}, text="hello")
        assert (result["recipients"], result["delivered"], result["skipped"]) == (1, 1, 0)
        await client.send({"ids": [live.id_of(ann)]}, binary=b"\x00\xffbytes")
    assert await ann.recv() == "hello"
    assert await ann.recv() == b"\x00\xffbytes"


async def test_send_needs_exactly_one_payload(live: Live):
    """send without text or binary (or with both) fails before reaching the server."""
    async with ControlClient(live.url, OPERATOR_TOKEN) as client:
        with pytest.raises(ControlError):
            await client.send({"everyone": True})
        with pytest.raises(ControlError):
            await client.send({"everyone": True}, text="a", binary=b"b")


async def test_disconnect_closes_with_code_and_reason(live: Live):
    """disconnect closes the selected clients with the given code and reason."""
    bob = await live.client(user="bob")
    ann = await live.client(user="ann")
    async with ControlClient(live.url, OPERATOR_TOKEN) as client:
        await client.disconnect({"user": "bob"}, code=4000, reason="go away")
    async with asyncio.timeout(TIMEOUT):
        await bob.wait_closed()
    assert (bob.close_code, bob.close_reason) == (4000, "go away")
    assert ann.close_code is None


async def test_oversized_request_fails_locally(live: Live):
    """A request over the wire limit raises before it is sent, keeping the connection."""
    async with ControlClient(live.url, OPERATOR_TOKEN) as client:
        with pytest.raises(ControlError, match="at most"):
            await client.send({"everyone": True}, text="x" * (wire.MAX_REQUEST_BYTES + 1))
        assert (await client.stats())["connections"] == 0


# Events


async def test_events_report_connections_opening_and_closing(live: Live):
    """After subscribe, events() yields connection_opened and connection_closed with the code."""
    async with ControlClient(live.url, OPERATOR_TOKEN) as client:
        await client.subscribe(stats_interval=60)
        ws = await live.client("/chat", user="cat")
        opened = await next_event(client, wire.EventKind.CONNECTION_OPENED)
        assert opened.data["user"] == "cat" and opened.data["path"] == "/chat"
        await ws.close(4321, "done")
        closed = await next_event(client, wire.EventKind.CONNECTION_CLOSED)
        assert closed.data["id"] == opened.data["id"]
        assert closed.data["code"] == 4321


async def test_events_end_when_the_server_stops(live: Live):
    """events() ends (and requests fail with ControlUnavailable) once the server has stopped."""
    client = ControlClient(live.url, OPERATOR_TOKEN)
    await client.connect()
    await client.subscribe(stats_interval=60)
    await client.shutdown("graceful")
    kinds = []
    async with asyncio.timeout(TIMEOUT):
        async for event in client.events():
            kinds.append(event.kind)
    assert not client.connected
    with pytest.raises(ControlUnavailable):
        await client.stats()
    await client.close()


async def test_event_batches_yield_every_event_waiting_in_order(live: Live):
    """event_batches() yields the events that arrived since the last batch in one
    list, in the order they came, and ends once the server has stopped."""
    client = ControlClient(live.url, OPERATOR_TOKEN)
    await client.connect()
    await client.subscribe(stats_interval=60)
    users = [f"u{index}" for index in range(5)]
    for user in users:
        await live.client(user=user)
    async with asyncio.timeout(TIMEOUT):
        # Every event read from the socket and waiting (the client's own queue).
        while client._events.qsize() < len(users):
            await asyncio.sleep(0.01)
        batches = client.event_batches()
        first = await anext(batches)
    opened = [e.data["user"] for e in first if e.kind == wire.EventKind.CONNECTION_OPENED]
    assert opened == users
    await client.shutdown("graceful")
    async with asyncio.timeout(TIMEOUT):
        rest = [batch async for batch in batches]
    assert all(rest) and not client.connected
    await client.close()


# Failures our server does not produce on purpose: a tiny websockets server
# plays a broken or slow control plane.


async def fake_control(handler):
    """A websockets server that answers hello, then runs ``handler(ws, request)``."""

    async def serve_one(ws):
        async for frame in ws:
            request = wire.parse_request(frame)
            if request.op == "hello":
                await ws.send(wire.encode_reply(request.id, {"server": "wsconsole", "node": "fake",
                                                              "role": "operator"}))
            else:
                await handler(ws, request)

    return websockets_serve(serve_one, "127.0.0.1", 0)


async def test_connection_dropping_mid_request_is_control_unavailable():
    """A control connection that drops while a request waits raises ControlUnavailable."""

    async def drop(ws, request):
        await ws.close(1011, "crashed")

    async with await fake_control(drop) as server:
        port = server.sockets[0].getsockname()[1]
        async with ControlClient(f"ws://127.0.0.1:{port}", "t") as client:
            with pytest.raises(ControlUnavailable, match="1011"):
                await client.stats()
            assert not client.connected


async def test_request_timeout_is_control_unavailable():
    """A request without a reply raises ControlUnavailable after request_timeout."""
    never = asyncio.Event()

    async def ignore(ws, request):
        await never.wait()

    async with await fake_control(ignore) as server:
        port = server.sockets[0].getsockname()[1]
        client = ControlClient(f"ws://127.0.0.1:{port}", "t", request_timeout=0.2)
        async with client:
            with pytest.raises(ControlUnavailable, match="no reply"):
                await client.stats()
        never.set()


async def test_slow_event_consumer_drops_the_oldest(monkeypatch):
    """Events beyond the buffer drop the oldest; the queue never grows past it."""
    burst = EVENT_BUFFER + 500

    async def flood(ws, request):
        for i in range(burst):
            await ws.send(wire.encode_event("stats", {"n": i}, 0.0))
        # The reply comes after the burst, so every event was read before
        # subscribe() returns, and nothing has consumed them yet.
        await ws.send(wire.encode_reply(request.id, {}))
        await ws.close()

    async with await fake_control(flood) as server:
        port = server.sockets[0].getsockname()[1]
        async with ControlClient(f"ws://127.0.0.1:{port}", "t") as client:
            await client.subscribe()
            received = [event.data["n"] async for event in client.events()]
    assert client.dropped_events == burst - EVENT_BUFFER
    assert received == list(range(burst - EVENT_BUFFER, burst))


@pytest.mark.parametrize("module", ["client", "commands", "output"])
def test_console_modules_import_only_the_shared_protocol(module):
    """The client, the commands and their output reach the server only through
    the shared protocol: wire, errors, the enums and rules, redaction, and the
    tap's limits and their rule."""
    import ast
    import importlib
    import inspect

    source = inspect.getsource(importlib.import_module(f"wsconsole.console.{module}"))
    from_server = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("wsconsole.server"):
            from_server |= {f"{node.module}.{alias.name}" for alias in node.names}
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [
                alias.name for alias in node.names]
            assert not any(name.startswith("textual") for name in names)
        if isinstance(node, ast.Import):
            assert not any(alias.name.startswith("wsconsole.server") for alias in node.names)
    allowed = tuple(f"wsconsole.server.{name}." for name in
                    ("wire", "errors", "protocol", "redaction", "tap"))
    allowed += ("wsconsole.server.wire",)  # `from wsconsole.server import wire`
    assert all(name.startswith(allowed) for name in from_server), from_server
