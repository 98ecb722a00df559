"""The embedded server with real websockets clients on loopback: registry,
selectors, sends, disconnects, slow consumers, the health check and bad input."""

from __future__ import annotations

import asyncio
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import basic_auth
from websockets.exceptions import ConnectionClosed, InvalidStatus

import wsconsole.server.hub as hub_module
from tests.helpers import TIMEOUT, wait_for
from wsconsole.server import (
    SLOW_CONSUMER_CODE,
    Selector,
    SelectorError,
    hub_of,
    serve,
)
from wsconsole.server.demo_app import demo_handler


async def echo(connection):
    async for message in connection:
        await connection.send(message)


def url(server, path="/", **query) -> str:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return f"ws://127.0.0.1:{server.port}{path}" + (f"?{qs}" if qs else "")


async def recv(client):
    async with asyncio.timeout(TIMEOUT):
        return await client.recv()


async def test_connections_are_recorded_by_user_path_and_topic():
    """Each client shows up with its user (?user=), path, query and room topic."""
    async with serve(demo_handler, "127.0.0.1", 0) as server:
        hub = server.hub
        async with connect(url(server, "/chat", user="ann", room="lobby")) as ann, \
                connect(url(server, "/chat", user="bob", room="lobby")) as bob, \
                connect(url(server, "/feed")) as anon:
            await ann.send("ping")  # the handler has subscribed once it echoes
            await bob.send("ping")
            await anon.send("ping")
            assert await recv(ann) == "ping"
            await recv(bob)
            await recv(anon)
            assert hub.registry.user_counts() == {"ann": 1, "bob": 1, "anonymous": 1}
            assert hub.registry.path_counts() == {"/chat": 2, "/feed": 1}
            assert hub.registry.topic_counts() == {"lobby": 2}
            record = hub.registry.select(Selector(user="ann"))[0]
            assert record.query == "user=ann&room=lobby"
            assert record.remote.startswith("127.0.0.1:")
            assert ["Upgrade", "websocket"] in record.detail()["request_headers"]
            assert record.extensions == ("permessage-deflate",)
            assert record.msgs_in >= 1 and record.bytes_in >= 4


def frame_size(payload: int, *, masked: bool) -> int:
    """Bytes of one unfragmented frame on the wire (RFC 6455 5.2)."""
    header = 2 + (2 if 126 <= payload < 65536 else 8 if payload >= 65536 else 0)
    return header + (4 if masked else 0) + payload


async def test_traffic_is_counted_both_ways():
    """Messages, and bytes on the wire (framing included), in and out are
    counted per connection and in total."""
    async with serve(echo, "127.0.0.1", 0, compression=None) as server:
        async with connect(url(server, user="ann"), compression=None) as client:
            for _ in range(5):
                await client.send("hello")
                assert await recv(client) == "hello"
            await client.send(b"\x00" * 100)
            await recv(client)
            record = server.hub.registry.select(Selector(user="ann"))[0]
            # Client frames are masked; the server's are not.
            bytes_in = 5 * frame_size(5, masked=True) + frame_size(100, masked=True)
            bytes_out = 5 * frame_size(5, masked=False) + frame_size(100, masked=False)
            assert (record.msgs_in, record.bytes_in) == (6, bytes_in)
            assert (record.msgs_out, record.bytes_out) == (6, bytes_out)
            assert server.hub.totals.as_dict() == {
                "msgs_in": 6, "bytes_in": bytes_in, "msgs_out": 6, "bytes_out": bytes_out}
        await wait_for(lambda: len(server.hub.registry) == 0)
        # Closed connections still count in the totals (plus the close frames).
        totals = server.hub.totals
        assert (totals.msgs_in, totals.msgs_out) == (6, 6)
        assert totals.bytes_in > bytes_in and totals.bytes_out > bytes_out


async def test_each_selector_reaches_exactly_its_group():
    """Sends by user, path, topic, ids and everyone reach only the matching clients."""
    async with serve(demo_handler, "127.0.0.1", 0) as server:
        hub = server.hub
        clients = {
            "ann-chat": await connect(url(server, "/chat", user="ann", room="lobby")),
            "ann-feed": await connect(url(server, "/feed", user="ann")),
            "bob-chat": await connect(url(server, "/chat", user="bob")),
        }
        try:
            await wait_for(lambda: len(hub.registry) == 3 and hub.registry.topic_counts())

            async def receivers(selector) -> set[str]:
                result = hub.send(selector, "x")
                # Then a frame to everyone: frames keep their order on a
                # connection, so a client whose next frame is "end" got
                # nothing from the send under test (no timeout to wait out).
                hub.send(Selector(everyone=True), "end")
                got = set()
                for name, client in clients.items():
                    async with asyncio.timeout(TIMEOUT):
                        first = await client.recv()
                        if first == "x":
                            got.add(name)
                            first = await client.recv()
                        assert first == "end"
                assert result.recipients == result.delivered == len(got)
                return got

            assert await receivers(Selector(user="ann")) == {"ann-chat", "ann-feed"}
            assert await receivers(Selector(path="/chat")) == {"ann-chat", "bob-chat"}
            assert await receivers(Selector(topic="lobby")) == {"ann-chat"}
            assert await receivers(Selector(user="ann", path="/feed")) == {"ann-feed"}
            assert await receivers(Selector(everyone=True)) == set(clients)
            bob = hub.registry.select(Selector(user="bob"))[0]
            assert await receivers(Selector(ids=(bob.id,))) == {"bob-chat"}
            assert await receivers(Selector(user="nobody")) == set()
        finally:
            for client in clients.values():
                await client.close()


async def test_binary_and_dry_run_sends():
    """Bytes go out as binary frames; a dry run counts recipients and sends nothing."""
    async with serve(echo, "127.0.0.1", 0) as server:
        async with connect(url(server, user="ann")) as client:
            await wait_for(lambda: len(server.hub.registry) == 1)
            dry = server.hub.send(Selector(everyone=True), "nope", dry_run=True)
            assert (dry.recipients, dry.delivered, dry.dry_run) == (1, 0, True)
            assert dry.sample == [server.hub.registry.select(Selector(user="ann"))[0].id]
            result = server.hub.send(Selector(everyone=True), b"\x01\x02")
            assert (result.recipients, result.delivered, result.skipped) == (1, 1, 0)
            assert await recv(client) == b"\x01\x02"


async def test_send_to_a_closing_connection_is_skipped():
    """A connection that is closing counts as skipped, not delivered."""
    async with serve(echo, "127.0.0.1", 0) as server:
        async with connect(url(server, user="ann")) as client:
            await wait_for(lambda: len(server.hub.registry) == 1)
            record = server.hub.registry.select(Selector(user="ann"))[0]
            closing = asyncio.create_task(record.handle.close(4000, "bye"))
            await asyncio.sleep(0)  # let close() send its close frame
            result = server.hub.send(Selector(everyone=True), "late")
            assert (result.recipients, result.delivered, result.skipped) == (1, 0, 1)
            await closing
            assert client.close_code == 4000


async def test_disconnect_closes_with_the_given_code_and_reason():
    """Disconnected clients see the operator's close code and reason; others stay."""
    async with serve(echo, "127.0.0.1", 0) as server:
        hub = server.hub
        async with connect(url(server, user="ann")) as ann, connect(url(server, user="bob")) as bob:
            await wait_for(lambda: len(hub.registry) == 2)
            assert hub.disconnect(Selector(user="ann"), 4001, "kicked") == 1
            async with asyncio.timeout(TIMEOUT):
                await ann.wait_closed()
            assert (ann.close_code, ann.close_reason) == (4001, "kicked")
            await wait_for(lambda: len(hub.registry) == 1)
            await bob.send("still here")
            assert await recv(bob) == "still here"
            assert hub.closed_by_code[4001] == 1
            assert hub.disconnect(Selector(user="ann"), 4001, "again") == 0


async def test_topics_follow_subscribe_and_unsubscribe_from_handler_code():
    """Handler code joins and leaves topics; a closed connection leaves its topics."""
    joined = asyncio.Event()

    async def handler(connection):
        hub = hub_of(connection)
        assert hub.subscribe(connection, "a") and hub.subscribe(connection, "b")
        assert not hub.subscribe(connection, "a")
        assert hub.unsubscribe(connection, "b")
        joined.set()
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        async with connect(url(server)):
            async with asyncio.timeout(TIMEOUT):
                await joined.wait()
            assert server.hub.registry.topic_counts() == {"a": 1}
        await wait_for(lambda: len(server.hub.registry) == 0)
        assert server.hub.registry.topic_counts() == {}


async def test_slow_consumer_is_closed_without_delaying_others(monkeypatch):
    """A client that stops reading is closed with 1008 once its buffer passes the
    limit, while a reading client gets every message."""
    # It never reads up to its close frame: aborted after this, not 2 s.
    monkeypatch.setattr(hub_module, "SLOW_CONSUMER_CLOSE_TIMEOUT", 0.2)
    limit = 256 * 1024
    async with serve(echo, "127.0.0.1", 0, slow_consumer_limit=limit, compression=None) as server:
        hub = server.hub
        slow = await connect(url(server, user="slow"), compression=None, max_queue=1,
                             max_size=None)
        fast = await connect(url(server, user="fast"), compression=None, max_size=None)
        try:
            await wait_for(lambda: len(hub.registry) == 2)
            slow.transport.pause_reading()  # stop reading from the socket at all
            chunk = b"x" * 64 * 1024
            received = 0
            for _ in range(400):
                result = hub.send(Selector(everyone=True), chunk)
                assert result.delivered >= 1
                assert await recv(fast) == chunk
                received += 1
                if hub.slow_consumer_disconnects:
                    break
            assert hub.slow_consumer_disconnects == 1
            await wait_for(lambda: hub.registry.count(user="slow") == 0, TIMEOUT * 2)
            assert hub.closed_by_code[SLOW_CONSUMER_CODE] == 1
            assert hub.registry.count(user="fast") == 1
            await fast.send("ok")
            assert await recv(fast) == "ok"
        finally:
            slow.transport.abort()
            await fast.close()


async def test_live_fields_show_buffered_bytes():
    """The record shows how many bytes wait in a connection's write buffer."""
    async with serve(echo, "127.0.0.1", 0, slow_consumer_limit=None, compression=None) as server:
        client = await connect(url(server, user="slow"), compression=None, max_size=None)
        try:
            await wait_for(lambda: len(server.hub.registry) == 1)
            client.transport.pause_reading()
            for _ in range(100):
                server.hub.send(Selector(everyone=True), b"y" * 65536)
            record = server.hub.registry.select(Selector(user="slow"))[0]
            server.hub.refresh(record)
            assert record.buffered > 0
        finally:
            client.transport.abort()


def http_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        return data


async def test_health_check_answers_on_the_public_port():
    """GET /healthz answers 200 (HEAD: the same headers, no body); other methods
    get 405; the server keeps serving."""
    async with serve(echo, "127.0.0.1", 0) as server:
        ok = await asyncio.to_thread(
            http_request, server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200 OK") and ok.endswith(b"OK serving\n")
        head = await asyncio.to_thread(
            http_request, server.port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and head.endswith(b"\r\n\r\n")
        assert b"Content-Length: 11" in head
        post = await asyncio.to_thread(
            http_request, server.port, b"POST /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert post.startswith(b"HTTP/1.1 405")
        garbage = await asyncio.to_thread(http_request, server.port, b"\x16\x03\x01junk\r\n\r\n")
        assert b"500" not in garbage
        async with connect(url(server)) as client:
            await client.send("alive")
            assert await recv(client) == "alive"
        await wait_for(lambda: len(server.hub.registry) == 0)


async def test_user_process_request_and_basic_auth_still_run():
    """The user's process_request runs (basic_auth sets the user), and its
    rejections are counted by status."""
    async with serve(echo, "127.0.0.1", 0,
                     process_request=basic_auth(credentials=("ann", "pw"))) as server:
        port = server.port
        async with connect(f"ws://ann:pw@127.0.0.1:{port}/x") as client:
            await client.send("hi")
            await recv(client)
            assert server.hub.registry.user_counts() == {"ann": 1}
        with pytest.raises(InvalidStatus) as info:
            await connect(f"ws://ann:wrong@127.0.0.1:{port}/x")
        assert info.value.response.status_code == 401
        await wait_for(lambda: server.hub.rejected_by_status[401] == 1)


async def test_user_process_request_sees_every_method_as_with_websockets():
    """As with websockets' own serve, the user's process_request also sees
    non-GET requests (e.g. a POST route it answers); other non-GET requests
    still get 405."""
    from websockets.http11 import Response
    from websockets.datastructures import Headers

    def hook(connection, request):
        if request.method == "POST" and request.path == "/hook":
            return Response(202, "Accepted", Headers([("Content-Length", "0")]))

    async with serve(echo, "127.0.0.1", 0, process_request=hook) as server:
        hooked = await asyncio.to_thread(
            http_request, server.port, b"POST /hook HTTP/1.1\r\nHost: x\r\n\r\n")
        assert hooked.startswith(b"HTTP/1.1 202")
        other = await asyncio.to_thread(
            http_request, server.port, b"PUT /other HTTP/1.1\r\nHost: x\r\n\r\n")
        assert other.startswith(b"HTTP/1.1 405") and b"Allow: GET" in other
        async with connect(url(server)) as client:
            await client.send("alive")
            assert await recv(client) == "alive"


async def test_process_response_still_runs():
    """A user's process_response can add headers that the record then shows."""
    def add_header(connection, request, response):
        response.headers["X-App"] = "demo"

    async with serve(echo, "127.0.0.1", 0, process_response=add_header) as server:
        async with connect(url(server)) as client:
            assert client.response.headers["X-App"] == "demo"
            await wait_for(lambda: len(server.hub.registry) == 1)
            record = next(iter(server.hub.registry))
            assert ["X-App", "demo"] in record.detail()["response_headers"]


async def test_custom_identify():
    """identify maps a connection to a user id, e.g. from a header."""
    def identify(connection):
        return connection.request.headers.get("X-User", "nobody")

    async with serve(echo, "127.0.0.1", 0, identify=identify) as server:
        async with connect(url(server), additional_headers={"X-User": "zoe"}):
            await wait_for(lambda: len(server.hub.registry) == 1)
            assert server.hub.registry.user_counts() == {"zoe": 1}


@pytest.mark.parametrize("identify", [lambda c: 42, lambda c: 1 / 0])
async def test_bad_identify_refuses_the_handshake_and_leaks_nothing(identify, caplog):
    """An identify that raises or returns a non-string gives a 500 and a clear log line;
    no record is leaked and the server keeps serving."""
    async with serve(echo, "127.0.0.1", 0, identify=identify) as server:
        with pytest.raises(InvalidStatus) as info:
            await connect(url(server))
        assert info.value.response.status_code == 500
        assert "identify() " in caplog.text
        await wait_for(lambda: server.hub.rejected_by_status[500] == 1)
        assert len(server.hub.registry) == 0


async def test_client_secrets_never_reach_the_debug_logs(caplog):
    """With DEBUG logging on, the public server logs handshake headers with the
    values of Authorization, Cookie and the like redacted, under websockets'
    usual logger name."""
    import logging

    with caplog.at_level(logging.DEBUG):
        async with serve(echo, "127.0.0.1", 0) as server:
            async with connect(url(server), additional_headers={
                "Authorization": "Basic c2VjcmV0LWF1dGg=",
                "Cookie": "session=secret-cookie",
                "Proxy-Authorization": "Bearer secret-proxy",
            }) as client:
                await client.send("x")
                await recv(client)
    server_side = [record.getMessage() for record in caplog.records
                   if record.name == "websockets.server"]
    assert any(line.startswith("< Cookie:") for line in server_side)
    for secret in ("c2VjcmV0LWF1dGg=", "secret-cookie", "secret-proxy"):
        assert not any(secret in line for line in server_side)


async def test_forwarded_for_is_believed_only_from_trusted_proxies():
    """X-Forwarded-For sets the client address only when the peer is a trusted proxy."""
    headers = {"X-Forwarded-For": "203.0.113.9, 10.0.0.2"}
    async with serve(echo, "127.0.0.1", 0, trusted_proxies=["127.0.0.0/8", "10.0.0.0/8"]) as server:
        async with connect(url(server), additional_headers=headers):
            await wait_for(lambda: len(server.hub.registry) == 1)
            assert next(iter(server.hub.registry)).remote == "203.0.113.9"
    async with serve(echo, "127.0.0.1", 0) as server:
        async with connect(url(server), additional_headers=headers):
            await wait_for(lambda: len(server.hub.registry) == 1)
            assert next(iter(server.hub.registry)).remote.startswith("127.0.0.1:")


async def test_unknown_selector_fields_and_gone_ids():
    """An unknown selector field is a SelectorError; a gone id is a zero count."""
    async with serve(echo, "127.0.0.1", 0) as server:
        with pytest.raises(SelectorError):
            server.hub.send(Selector.from_dict({"room": "x"}), "hi")
        result = server.hub.send(Selector(ids=("0123456789",)), "hi")
        assert (result.recipients, result.delivered, result.skipped) == (0, 0, 0)
        assert server.hub.disconnect(Selector(ids=("0123456789",))) == 0


async def test_every_way_a_connection_ends_removes_its_record():
    """Normal close, handler exception, TCP reset and shutdown each remove the record."""
    async def handler(connection):
        async for message in connection:
            if message == "raise":
                raise RuntimeError("boom")
            await connection.send(message)

    async with serve(handler, "127.0.0.1", 0) as server:
        hub = server.hub
        # Normal close.
        client = await connect(url(server, user="normal"))
        await wait_for(lambda: hub.registry.count(user="normal") == 1)
        await client.close()
        await wait_for(lambda: hub.registry.count(user="normal") == 0)
        # Handler exception: websockets closes with 1011.
        client = await connect(url(server, user="raiser"))
        await client.send("raise")
        with pytest.raises(ConnectionClosed):
            await recv(client)
        assert client.close_code == 1011
        await wait_for(lambda: hub.registry.count(user="raiser") == 0)
        # Abrupt TCP reset mid-message: half a frame, then RST.
        client = await connect(url(server, user="reset"))
        await wait_for(lambda: hub.registry.count(user="reset") == 1)
        client.transport.write(b"\x81\xfe\x10\x00\x00\x00\x00\x00abc")
        sock = client.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.transport.abort()
        await wait_for(lambda: hub.registry.count(user="reset") == 0)
        assert hub.closed_by_code[1006] == 1
        # Server still works.
        client = await connect(url(server, user="last"))
        await client.send("x")
        assert await recv(client) == "x"
    # Shutdown.
    assert len(hub.registry) == 0
    assert hub.closed_by_code[1001] == 1 and hub.closed_by_code[1000] == 1


async def test_query_tokens_never_reach_records_or_debug_logs(caplog):
    """A client authenticating with ?access_token= shows it redacted in its record,
    and the DEBUG log of the request line does not carry it either."""
    import logging

    caplog.set_level(logging.DEBUG, logger="websockets.server")
    async with serve(echo, "127.0.0.1", 0) as server:
        async with connect(url(server, "/live", user="ann", access_token="s3cr3t-value")):
            await wait_for(lambda: len(server.hub.registry) == 1)
            record = next(iter(server.hub.registry))
            assert record.query == "user=ann&access_token=[redacted]"
            assert "s3cr3t-value" not in repr(record.detail())
    assert "GET /live?user=ann&access_token=[redacted]" in caplog.text
    assert "s3cr3t-value" not in caplog.text


async def test_connections_keep_the_compact_dict_of_websockets_own_with_basic_auth():
    """Our bookkeeping adds no names to a connection's __dict__, so a server using
    basic_auth (which adds `username`) keeps websockets' compact, key-sharing
    dicts instead of a full dict per connection (~1.3 KiB each)."""
    import sys

    from websockets.asyncio.server import ServerConnection
    from websockets.asyncio.server import serve as websockets_serve

    async def sizes(serve_function) -> set[int]:
        # A class of its own on both sides, as ours makes one per serve():
        # CPython freezes a class's shared key table once its attribute
        # lookups are specialized, so ServerConnection itself would carry the
        # history of every earlier test in this process.
        fresh = type("FreshServerConnection", (ServerConnection,), {})
        seen = []

        async def handler(connection):
            seen.append(connection)
            await connection.wait_closed()

        server = await serve_function(handler, "127.0.0.1", 0, create_connection=fresh,
                                      process_request=basic_auth(credentials=("ann", "pw")))
        port = server.sockets[0].getsockname()[1]
        clients = [await connect(f"ws://ann:pw@127.0.0.1:{port}/") for _ in range(3)]
        await wait_for(lambda: len(seen) == 3)
        result = {sys.getsizeof(connection.__dict__) for connection in seen}
        for client in clients:
            await client.close()
        server.close()
        await server.wait_closed()
        return result

    assert await sizes(serve) == await sizes(websockets_serve)


async def test_periodic_stats_read_the_last_sample_and_requests_read_fresh():
    """stats(sampled=True), which every subscriber's stats events use, shows the
    totals of the last sample instead of walking every connection; a plain stats
    request counts everything up to now."""
    async with serve(echo, "127.0.0.1", 0, sample_interval=3600) as server:
        hub = server.hub
        async with connect(url(server, user="ann")) as client:
            await client.send("one")
            assert await recv(client) == "one"
            assert hub.stats()["totals"]["msgs_in"] == 1
            assert hub.stats(sampled=True)["totals"]["msgs_in"] == 0
            hub.sampler.sample()
            assert hub.stats(sampled=True)["totals"] == hub.stats()["totals"]
