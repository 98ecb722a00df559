"""Hub.send writes one frame, serialized once, to every connection that negotiated
no extension, one compressed frame to every connection with permessage-deflate
without context takeover, and lets each other deflate connection compress its
own: every recipient gets exactly the message, counted, in a broadcast or a
group send."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.frames import Frame, Opcode

from tests.helpers import TIMEOUT, wait_for
from wsconsole.server import Selector, serve
from wsconsole.server.config import ControlConfig
from wsconsole.server.wire import EventKind

from .control_helpers import TOKEN, control

# One event loop for the module: the shared server of ``mixed`` lives in it.
pytestmark = pytest.mark.asyncio(loop_scope="module")


async def listen(connection: Any) -> None:
    """The handler: subscribes to the topic its query names, then waits."""
    topic = connection.request.path.partition("topic=")[2]
    if topic:
        connection.wsc_hub.subscribe(connection, topic)
    await connection.wait_closed()


def url(server: Any, user: str, topic: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/feed?user={user}" + (f"&topic={topic}" if topic else "")


async def recv(client: Any) -> Any:
    async with asyncio.timeout(TIMEOUT):
        return await client.recv()


def wire_size(message: str | bytes, extensions: list[Any] | None = None) -> int:
    """Bytes of the server's (unmasked) frame for a message."""
    payload = message.encode() if isinstance(message, str) else message
    opcode = Opcode.TEXT if isinstance(message, str) else Opcode.BINARY
    return len(Frame(opcode, payload).serialize(mask=False, extensions=extensions or []))


NAMES = ("plain0", "plain1", "plain2", "deflate0", "deflate1", "deflate2",
         "nocontext0", "nocontext1")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mixed() -> Any:
    """One server (websockets' default deflate), three plain clients, three with
    permessage-deflate and two that ask for server_no_context_takeover; the
    first of each kind in the topic ``odd``."""
    async with serve(listen, "127.0.0.1", 0) as server:
        clients = {}
        for name in NAMES:
            options: dict[str, Any] = {"compression": None}
            if name.startswith("deflate"):
                options = {"compression": "deflate"}
            elif name.startswith("nocontext"):
                options["extensions"] = [ClientPerMessageDeflateFactory(
                    server_no_context_takeover=True, compress_settings={"memLevel": 5})]
            topic = "odd" if name.endswith("0") else ""
            clients[name] = await connect(url(server, name, topic), max_size=None, **options)
        hub = server.hub
        await wait_for(lambda: hub.registry.topic_counts().get("odd") == 3
                       and len(hub.registry) == len(clients))
        try:
            yield server, clients
        finally:
            for client in clients.values():
                await client.close()


def records_by_user(server: Any) -> dict[str, Any]:
    return {record.user: record for record in server.hub.registry}


@pytest.mark.parametrize("message", [
    "héllo, everyone",
    b"\x00\xffbinary",
    "x" * 70_000,  # a 64-bit length in the header, and a frame larger than a socket write
], ids=["text", "binary", "large"])
async def test_a_broadcast_to_plain_and_deflate_connections_arrives_exactly_and_is_counted(
    mixed, message
):
    """Every connection, with or without permessage-deflate, with or without
    context takeover, receives exactly the message; each record counts one
    message out; a plain connection's bytes out grow by the frame's size on
    the wire, a no-context-takeover one's by the compressed frame's."""
    server, clients = mixed
    negotiated = {name: [(e.name, e.remote_no_context_takeover) if isinstance(
        e, PerMessageDeflate) else e.name for e in c.protocol.extensions]
        for name, c in clients.items()}
    assert negotiated == {name: [] if name.startswith("plain") else [
        ("permessage-deflate", name.startswith("nocontext"))] for name in clients}
    before = {user: (r.msgs_out, r.bytes_out) for user, r in records_by_user(server).items()}
    result = server.hub.send(Selector(everyone=True), message)
    assert (result.recipients, result.delivered, result.skipped) == (8, 8, 0)
    for name, client in clients.items():
        assert await recv(client) == message, name
    for user, record in records_by_user(server).items():
        msgs_out, bytes_out = before[user]
        assert record.msgs_out == msgs_out + 1, user
        if user.startswith("plain"):
            assert record.bytes_out == bytes_out + wire_size(message), user
        elif user.startswith("nocontext"):
            extension = record.handle.protocol.extensions[0]
            fresh = PerMessageDeflate(True, True, extension.remote_max_window_bits,
                                      extension.local_max_window_bits,
                                      extension.compress_settings)
            assert record.bytes_out == bytes_out + wire_size(message, [fresh]), user
        else:
            assert record.bytes_out > bytes_out, user


async def test_a_group_send_reaches_only_its_members_of_both_kinds(mixed):
    """A topic send takes the same path: its members of every kind receive
    it; the others receive nothing (their next message is the next
    broadcast)."""
    server, clients = mixed
    result = server.hub.send(Selector(topic="odd"), "odd ones")
    assert (result.recipients, result.delivered) == (3, 3)
    server.hub.send(Selector(everyone=True), "all")
    for name, client in clients.items():
        if name.endswith("0"):
            assert await recv(client) == "odd ones", name
        assert await recv(client) == "all", name


async def test_many_broadcasts_keep_their_order_on_every_connection(mixed):
    """Back-to-back broadcasts arrive in the order sent, on both kinds of connection."""
    server, clients = mixed
    for index in range(50):
        server.hub.send(Selector(everyone=True), f"m{index}")
    for name, client in clients.items():
        assert [await recv(client) for _ in range(50)] == [f"m{i}" for i in range(50)], name


async def test_a_send_reaches_the_group_as_it_is_after_joins_leaves_opens_and_closes(mixed):
    """Who a send reaches is worked out once per change of the groups and
    kept: a connection that joined a topic since the last send to it gets
    the next one, one that left does not, a new connection gets the next
    broadcast, and one that closed is no longer among the recipients."""
    server, clients = mixed
    hub = server.hub
    odd, everyone = Selector(topic="odd"), Selector(everyone=True)
    assert hub.send(everyone, "first").delivered == len(clients)
    assert hub.send(odd, "before").delivered == 3
    plain1 = records_by_user(server)["plain1"].handle
    assert hub.subscribe(plain1, "odd")
    assert hub.send(odd, "joined").delivered == 4
    assert hub.unsubscribe(plain1, "odd")
    assert hub.send(odd, "left").delivered == 3
    async with connect(url(server, "late"), compression=None) as late:
        await wait_for(lambda: len(hub.registry) == len(clients) + 1)
        assert hub.send(everyone, "all").delivered == len(clients) + 1
        assert await recv(late) == "all"
    await wait_for(lambda: len(hub.registry) == len(clients))
    result = hub.send(everyone, "after")
    assert (result.recipients, result.delivered) == (len(clients), len(clients))
    for name, client in clients.items():
        expected = ["first"] + (["before", "joined", "left"] if name.endswith("0")
                    else ["joined"] if name == "plain1" else []) + ["all", "after"]
        assert [await recv(client) for _ in expected] == expected, name


async def test_under_churn_broadcasts_and_topic_sends_reach_exactly_who_is_there():
    """Connections that close, open, join and leave between sends (the plans
    for everyone and for the topic follow each change without being made
    again) never miss a send they belong to and never get one they do not."""
    async with serve(listen, "127.0.0.1", 0, compression=None) as server:
        hub = server.hub
        everyone, room = Selector(everyone=True), Selector(topic="room")
        clients = {}
        for index in range(5):
            clients[f"c{index}"] = await connect(url(server, f"c{index}", "room"),
                                                 compression=None)
        await wait_for(lambda: hub.registry.topic_counts().get("room") == 5)
        received: dict[str, list[str]] = {name: [] for name in clients}
        try:
            assert hub.send(everyone, "a").delivered == 5
            assert hub.send(room, "b").delivered == 5
            for name in clients:
                received[name] += ["a", "b"]
            await clients.pop("c0").close()  # the first: the last one takes its place
            await wait_for(lambda: len(hub.registry) == 4)
            clients["c5"] = await connect(url(server, "c5"), compression=None)
            await wait_for(lambda: len(hub.registry) == 5)
            records = records_by_user(server)
            assert hub.subscribe(records["c5"].handle, "room")
            assert hub.unsubscribe(records["c1"].handle, "room")
            await clients.pop("c4").close()  # the last
            await wait_for(lambda: len(hub.registry) == 4)
            result, in_room = hub.send(everyone, "c"), hub.send(room, "d")
            assert (result.recipients, result.delivered) == (4, 4)
            assert (in_room.recipients, in_room.delivered) == (3, 3)
            received["c5"] = []
            for name in ("c1", "c2", "c3", "c5"):
                received[name] += ["c"] if name == "c1" else ["c", "d"]
            for name, client in clients.items():
                assert [await recv(client) for _ in received[name]] == received[name], name
        finally:
            for client in clients.values():
                await client.close()


@pytest.mark.parametrize("who", ["server", "client"])
@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_a_connection_that_is_closing_is_skipped_and_the_others_still_receive(
        compression, who):
    """A connection whose closing handshake started, by the server or by the
    client, is skipped (not delivered, not counted) while the rest of the
    broadcast goes out, in the next broadcast too, also by a send plan made
    while it was open (the close frame it wrote took it out)."""
    async with serve(listen, "127.0.0.1", 0, compression=compression) as server:
        async with connect(url(server, "ann"), compression=compression) as ann, \
                connect(url(server, "bob"), compression=compression) as bob:
            await wait_for(lambda: len(server.hub.registry) == 2)
            records = records_by_user(server)
            everyone = Selector(everyone=True)
            assert server.hub.send(everyone, "before").delivered == 2  # the plan is made
            assert await recv(ann) == await recv(bob) == "before"
            ann.transport.pause_reading()  # ann answers / sees the closing handshake only later
            protocol = records["ann"].handle.protocol
            if who == "server":
                closing = asyncio.create_task(records["ann"].handle.close(4000, "bye"))
            else:
                closing = asyncio.create_task(ann.close(4000, "bye"))
            await wait_for(lambda: protocol.close_sent is not None)
            sent_before = records["ann"].msgs_out
            for message in ("late", "later"):
                result = server.hub.send(everyone, message)
                assert (result.recipients, result.delivered, result.skipped) == (2, 1, 1)
                assert records["ann"].msgs_out == sent_before
                assert await recv(bob) == message
            ann.transport.resume_reading()
            await closing
            assert ann.close_code == 4000


async def test_a_connection_sending_a_fragmented_message_is_skipped_until_it_ends():
    """A handler halfway through a fragmented message cannot take a frame in
    between: that connection is skipped, the others receive, and its own
    message still arrives whole."""
    release = asyncio.Event()
    fragmenting = asyncio.Event()

    async def fragments():
        yield "first half, "
        fragmenting.set()
        await release.wait()
        yield "second half"

    async def handler(connection: Any) -> None:
        if "user=ann" in connection.request.path:
            await connection.send(fragments())
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        async with connect(url(server, "ann"), compression=None) as ann, \
                connect(url(server, "bob"), compression=None) as bob:
            await wait_for(lambda: len(server.hub.registry) == 2)
            async with asyncio.timeout(TIMEOUT):
                await fragmenting.wait()
            result = server.hub.send(Selector(everyone=True), "between")
            assert (result.delivered, result.skipped) == (1, 1)
            assert await recv(bob) == "between"
            release.set()
            assert await recv(ann) == "first half, second half"
            server.hub.send(Selector(everyone=True), "after")
            assert await recv(ann) == "after"


async def test_a_tap_on_a_plain_connection_sees_what_a_broadcast_sent_it():
    """A tapped connection without extensions still gets the message through
    its own protocol, so the operator's tap shows it; the untapped one next
    to it takes the shared frame; both receive it."""
    config = ControlConfig(port=0, token=TOKEN)
    async with serve(listen, "127.0.0.1", 0, control=config, allow_tap=True,
                     compression=None) as server, control(server) as ctl:
        async with connect(url(server, "ann"), compression=None) as ann, \
                connect(url(server, "bob"), compression=None) as bob:
            await wait_for(lambda: len(server.hub.registry) == 2)
            started = await ctl.ok("tap_start", selector={"user": "ann"})
            result = server.hub.send(Selector(everyone=True), "tapped")
            assert result.delivered == 2
            assert await recv(ann) == "tapped"
            assert await recv(bob) == "tapped"
            event = await ctl.event(lambda e: e.kind == EventKind.TAP
                                    and e.data["tap"] == started["tap"])
            assert [(r["kind"], r["data"]) for r in event.data["records"]] == [("out", "tapped")]
