"""The control listener's operations, errors and roles, against a real server."""

from __future__ import annotations

import asyncio
import base64
import importlib.metadata
import json
import logging

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from tests.helpers import TIMEOUT, wait_for
from wsconsole.server import wire
from wsconsole.server.errors import (
    Forbidden,
    InternalError,
    MalformedFrame,
    ProtocolViolation,
    RateLimited,
    SelectorError,
    ServerStateError,
    UnknownConnection,
    UnknownOperation,
)

from .control_helpers import READ_ONLY_TOKEN, TOKEN, control, public, running


# hello, stats


async def test_hello_names_node_role_protocol_and_operations():
    """hello tells the operator the node, its role, the protocol version and the operations."""
    async with running() as server, control(server) as ctl:
        result = await ctl.ok("hello")
    assert result["node"] == server.hub.node
    assert result["role"] == "operator"
    assert result["protocol"] == wire.PROTOCOL_VERSION
    assert set(result["operations"]) == set(wire.OPERATIONS)
    assert set(result["mutating"]) == set(wire.MUTATING_OPERATIONS)
    assert result["state"] == "serving"


async def test_hello_with_the_read_only_token_says_read_only():
    """The read-only token authenticates with the read_only role."""
    async with running() as server, control(server, READ_ONLY_TOKEN) as ctl:
        assert (await ctl.ok("hello"))["role"] == "read_only"


async def test_stats_counts_connections_and_traffic():
    """stats reports the node, state, open connections and traffic totals."""
    async with running() as server, public(server) as client, control(server) as ctl:
        await client.send("ping")
        assert await client.recv() == "ping"
        stats = await ctl.ok("stats")
    assert stats["node"] == server.hub.node
    assert stats["state"] == "serving"
    assert stats["connections"] == 1
    assert stats["totals"]["msgs_in"] == 1
    assert stats["totals"]["msgs_out"] == 1
    assert set(stats["rates"]) == {"msgs_in", "bytes_in", "msgs_out", "bytes_out"}


async def test_nodes_lists_this_node_with_its_control_url():
    """On one process, nodes answers one node: this one, its state, connections,
    version and the URL its control plane listens on; a read-only token may ask."""
    async with running() as server, public(server), control(server, READ_ONLY_TOKEN) as ctl:
        await wait_for(lambda: len(server.hub.registry) == 1)
        result = await ctl.ok("nodes")
    assert "missing" not in result
    [node] = result["nodes"]
    assert node["node"] == server.hub.node and node["state"] == "serving"
    assert node["connections"] == 1
    assert node["control_url"] == server.control.url
    assert node["listen"] == server.hub.listen
    assert node["version"] == importlib.metadata.version("wsconsole")
    assert set(node["rates"]) == {"msgs_in", "bytes_in", "msgs_out", "bytes_out"}


# list, get


async def test_list_pages_filters_and_groups():
    """list returns a page with total and next_cursor, filters by user/topic, and group counts."""
    async with running() as server, control(server) as ctl:
        clients = []
        for user in ["ann", "ann", "bob", "cy"]:
            clients.append(await public(server, f"/room?user={user}"))
        await clients[0].send("join:lobby")
        assert await clients[0].recv() == "joined"
        try:
            first = await ctl.ok("list", limit=3)
            assert first["total"] == 4
            assert len(first["connections"]) == 3
            assert first["next_cursor"] is not None
            second = await ctl.ok("list", limit=3, cursor=first["next_cursor"])
            assert len(second["connections"]) == 1 and second["next_cursor"] is None
            ids = [c["id"] for c in first["connections"] + second["connections"]]
            assert len(set(ids)) == 4
            for key in ("id", "node", "user", "path", "remote", "topics", "connected_at"):
                assert key in first["connections"][0]
            assert first["groups"] == {"users": {"ann": 2, "bob": 1, "cy": 1},
                                       "paths": {"/room": 4}, "topics": {"lobby": 1},
                                       "nodes": {server.hub.node: 4}}
            assert first["groups_truncated"] is False

            anns = await ctl.ok("list", user="ann")
            assert anns["total"] == 2 and {c["user"] for c in anns["connections"]} == {"ann"}
            lobby = await ctl.ok("list", topic="lobby")
            assert [c["topics"] for c in lobby["connections"]] == [["lobby"]]
            prefix = await ctl.ok("list", id_prefix=ids[2])
            assert [c["id"] for c in prefix["connections"]] == [ids[2]]
            by_user = await ctl.ok("list", sort="-user", groups=False)
            assert [c["user"] for c in by_user["connections"]] == ["cy", "bob", "ann", "ann"]
            assert "groups" not in by_user
        finally:
            for client in clients:
                await client.close()


async def test_list_trims_groups_to_the_largest():
    """With more groups than group_limit, list keeps the largest and says it truncated."""
    async with running() as server, control(server) as ctl:
        clients = [await public(server, f"/?user={user}")
                   for user in ["ann", "ann", "ann", "bob", "bob", "cy"]]
        try:
            result = await ctl.ok("list", group_limit=2)
        finally:
            for client in clients:
                await client.close()
    assert result["groups"]["users"] == {"ann": 3, "bob": 2}
    assert result["groups_truncated"] is True


async def test_get_returns_headers_with_secrets_redacted():
    """get returns one connection with its headers, Authorization and Cookie redacted."""
    async with running() as server, control(server) as ctl:
        headers = {"Authorization": "Bearer app-secret", "Cookie": "session=s3cret",
                   "X-Trace": "abc"}
        async with public(server, "/chat?user=ann", additional_headers=headers):
            [summary] = (await ctl.ok("list"))["connections"]
            detail = await ctl.ok("get", id=summary["id"])
    request_headers = dict((k.lower(), v) for k, v in detail["request_headers"])
    assert request_headers["authorization"] == "[redacted]"
    assert request_headers["cookie"] == "[redacted]"
    assert request_headers["x-trace"] == "abc"
    assert detail["user"] == "ann" and detail["path"] == "/chat"
    assert "response_headers" in detail
    assert "app-secret" not in json.dumps(detail) and "s3cret" not in json.dumps(detail)


async def test_get_of_an_unknown_id_is_unknown_connection():
    """get of an id that is not open answers unknown_connection."""
    async with running() as server, control(server) as ctl:
        assert await ctl.error("get", id="0000000000") == UnknownConnection.code
        assert (await ctl.ok("hello"))["role"] == "operator"


# send, disconnect


async def test_send_text_and_binary_reach_the_selected_clients():
    """send delivers text and binary messages to the selected connections only."""
    async with running() as server, control(server) as ctl:
        async with public(server, "/?user=ann") as ann, public(server, "/?user=bob") as bob:
            result = await ctl.ok("send", selector={"user": "ann"}, text="hello ann")
            assert result["recipients"] == 1 and result["delivered"] == 1
            assert result["skipped"] == 0 and result["dry_run"] is False
            assert await ann.recv() == "hello ann"
            data = base64.b64encode(b"\x00\xffbytes").decode()
            result = await ctl.ok("send", selector={"everyone": True}, binary=data)
            assert result["recipients"] == 2 and result["delivered"] == 2
            assert await ann.recv() == b"\x00\xffbytes"
            assert await bob.recv() == b"\x00\xffbytes"


async def test_send_dry_run_counts_without_sending():
    """A dry-run send returns the recipient count and a sample and sends nothing."""
    async with running() as server, control(server) as ctl:
        async with public(server, "/?user=ann") as ann:
            result = await ctl.ok("send", selector={"everyone": True}, text="x", dry_run=True)
            assert result["recipients"] == 1 and result["delivered"] == 0
            assert result["dry_run"] is True and len(result["sample"]) == 1
            # Nothing arrived: the echo of our own message comes first.
            await ann.send("probe")
            assert await ann.recv() == "probe"
        assert server.hub.totals.msgs_out == 1


async def test_send_to_nobody_is_a_zero_count():
    """A selector that matches nothing gives a zero count, not an error."""
    async with running() as server, control(server) as ctl:
        result = await ctl.ok("send", selector={"user": "nobody"}, text="x")
    assert (result["recipients"], result["delivered"], result["skipped"]) == (0, 0, 0)


async def test_disconnect_closes_with_the_code_and_reason():
    """disconnect closes the selected connections with the given code and reason."""
    async with running() as server, control(server) as ctl:
        async with public(server, "/?user=ann") as ann, public(server, "/?user=bob") as bob:
            result = await ctl.ok("disconnect", selector={"user": "ann"},
                                  code=4001, reason="bye ann")
            assert result == {"count": 1, "per_node": {server.hub.node: {"count": 1}}}
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(TIMEOUT):
                    await ann.recv()
            assert ann.close_code == 4001 and ann.close_reason == "bye ann"
            await bob.send("still here")
            assert await bob.recv() == "still here"


# Errors: every code, and the connection stays usable


@pytest.mark.parametrize(
    "frame, code",
    [
        ("not json", MalformedFrame.code),
        ("[1, 2]", MalformedFrame.code),
        (b'{"id": 1, "op": "hello"}', MalformedFrame.code),
        ('{"op": "hello"}', ProtocolViolation.code),
        ('{"id": 1, "op": "hello", "extra": 1}', ProtocolViolation.code),
        ('{"id": 1, "op": "get"}', ProtocolViolation.code),
        ('{"id": 1, "op": "get", "args": {"id": 5}}', ProtocolViolation.code),
        ('{"id": 1, "op": "list", "args": {"colour": "red"}}', ProtocolViolation.code),
        ('{"id": 1, "op": "send", "args": {"selector": {"everyone": true}}}',
         ProtocolViolation.code),
        ('{"id": 1, "op": "launch"}', UnknownOperation.code),
        ('{"id": 1, "op": "send", "args": {"selector": {}, "text": "x"}}',
         SelectorError.code),
        ('{"id": 1, "op": "send", "args": {"selector": {"colour": "red"}, "text": "x"}}',
         SelectorError.code),
        ('{"id": 1, "op": "list", "args": {"sort": "shoe_size"}}', SelectorError.code),
        ('{"id": 1, "op": "list", "args": {"cursor": "nonsense"}}', SelectorError.code),
    ],
)
async def test_bad_requests_get_structured_errors(frame, code):
    """Each malformed request gets its error code, and the connection keeps working."""
    async with running() as server, control(server) as ctl:
        reply = await ctl.raw(frame)
        assert (reply.ok, reply.error_code) == (False, code)
        assert reply.error_message
        assert (await ctl.ok("hello"))["role"] == "operator"
    outcomes = {outcome for (_, outcome) in server.hub.control_requests}
    assert code in outcomes


async def test_errors_carry_the_request_id():
    """An error reply carries the id of the request when it could be read."""
    async with running() as server, control(server) as ctl:
        reply = await ctl.raw('{"id": "abc", "op": "launch"}')
        assert reply.id == "abc"
        reply = await ctl.raw("{")
        assert reply.id is None


async def test_read_only_may_read_but_not_act():
    """The read-only role can list, get, stats and subscribe, but send/disconnect/shutdown are forbidden."""
    async with running() as server, control(server, READ_ONLY_TOKEN) as ctl:
        async with public(server, "/?user=ann") as ann:
            listing = await ctl.ok("list")
            await ctl.ok("get", id=listing["connections"][0]["id"])
            await ctl.ok("stats")
            await ctl.ok("subscribe")
            await ctl.ok("unsubscribe")
            assert await ctl.error("send", selector={"everyone": True},
                                   text="x") == Forbidden.code
            assert await ctl.error("disconnect",
                                   selector={"everyone": True}) == Forbidden.code
            assert await ctl.error("shutdown", mode="graceful") == Forbidden.code
            # Nothing happened: ann is open and received nothing.
            await ann.send("probe")
            assert await ann.recv() == "probe"
        assert server.hub.state == "serving"
        assert server.hub.control_requests[("send", "forbidden")] == 1


async def test_a_failing_operation_answers_internal_error_and_logs_it(caplog, monkeypatch):
    """A bug in an operation answers internal_error, is logged, and the connection stays usable."""
    async with running() as server, control(server) as ctl:
        def broken_stats(**options):
            raise RuntimeError("boom")

        monkeypatch.setattr(server.hub, "stats", broken_stats)
        with caplog.at_level(logging.ERROR, logger="wsconsole.control"):
            assert await ctl.error("stats") == InternalError.code
        assert "boom" in caplog.text
        monkeypatch.undo()
        assert (await ctl.ok("stats"))["state"] == "serving"
        assert server.hub.control_requests[("stats", InternalError.code)] == 1


async def test_a_request_flood_is_rate_limited():
    """Past the burst, requests get rate_limited without running, and later ones succeed."""
    async with running(connection_rate=5.0, connection_burst=10.0) as server:
        async with control(server) as ctl:
            for i in range(40):
                await ctl.ws.send(wire.encode_request(i, "send", {
                    "selector": {"everyone": True}, "text": "x", "dry_run": True}))
            replies = [await ctl.reply_to(i) for i in range(40)]
            limited = [r for r in replies if not r.ok]
            assert {r.error_code for r in limited} == {RateLimited.code}
            assert len(limited) >= 25
            assert server.hub.control_requests[("send", "rate_limited")] == len(limited)

            async def recovers() -> bool:
                return (await ctl.reply("hello")).ok

            await wait_for(recovers, interval=0.05)


async def test_an_oversized_request_closes_with_1009():
    """A request over max_request_bytes closes that control connection with 1009."""
    async with running(max_request_bytes=1024) as server:
        async with control(server) as ctl:
            await ctl.ws.send(wire.encode_request(1, "get", {"id": "x" * 2000}))
            with pytest.raises(ConnectionClosedError):
                async with asyncio.timeout(TIMEOUT):
                    await ctl.ws.recv()
            assert ctl.ws.close_code == 1009
        # The listener itself is fine.
        async with control(server) as ctl:
            assert (await ctl.ok("hello"))["role"] == "operator"


async def test_second_shutdown_is_bad_state():
    """A keep-alive shutdown while already draining answers bad_state."""
    async with running() as server, control(server) as ctl:
        async with public(server):
            await ctl.ok("shutdown", mode="keep_alive")
            assert await ctl.error("shutdown", mode="keep_alive") == ServerStateError.code
            assert (await ctl.ok("stats"))["state"] == "draining"


async def test_request_counter_counts_by_operation_and_outcome():
    """Each request increments hub.control_requests[(op, outcome)]; unparsable ones count as invalid."""
    async with running() as server, control(server) as ctl:
        await ctl.ok("hello")
        await ctl.ok("stats")
        await ctl.error("get", id="nope")
        await ctl.raw("garbage")
        await ctl.raw('{"id": 1, "op": "no_such_op"}')
    counts = server.hub.control_requests
    assert counts[("hello", "ok")] == 1
    assert counts[("stats", "ok")] == 1
    assert counts[("get", "unknown_connection")] == 1
    assert counts[("invalid", "bad_json")] == 1
    # Unknown names must never become metric labels.
    assert counts[("invalid", "unknown_op")] == 1


# Shutdown through the control plane


async def test_keep_alive_shutdown_drains_while_control_keeps_working():
    """A keep-alive shutdown replies first, refuses new clients, and control still sends and lists until the last client leaves."""
    async with running() as server:
        async with control(server) as ctl, control(server, READ_ONLY_TOKEN) as watcher:
            await watcher.ok("subscribe", stats_interval=10)
            client = await public(server, "/?user=ann")
            result = await ctl.ok("shutdown", mode="keep_alive", reason="maintenance")
            assert result["mode"] == "keep_alive" and result["connections"] == 1
            await watcher.event(lambda e: e.kind == "state_changed"
                                and e.data["state"] == "draining")

            with pytest.raises(OSError):
                async with public(server, "/?user=late", open_timeout=TIMEOUT):
                    pass

            stats = await ctl.ok("stats")
            assert (stats["state"], stats["connections"]) == ("draining", 1)
            assert (await ctl.ok("list"))["total"] == 1
            sent = await ctl.ok("send", selector={"everyone": True}, text="still served")
            assert sent["delivered"] == 1
            assert await client.recv() == "still served"

            await client.close()
            await watcher.event(lambda e: e.kind == "state_changed"
                                and e.data["state"] == "stopped")
            # Once the server has stopped, the control listener closes too.
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(TIMEOUT):
                    while True:
                        await ctl.ws.recv()
            assert ctl.ws.close_code == 1001
        await asyncio.wait_for(server.wait_closed(), TIMEOUT)
        assert server.hub.state == "stopped"


async def test_graceful_shutdown_replies_then_closes_everyone():
    """A graceful shutdown replies first, closes clients with its code, then closes the control listener."""
    async with running() as server:
        async with control(server) as ctl:
            async with public(server, "/?user=ann") as client:
                reply = await ctl.reply("shutdown", mode="graceful", code=1012, reason="restart")
                assert reply.ok and reply.result["mode"] == "graceful"
                with pytest.raises(ConnectionClosed):
                    async with asyncio.timeout(TIMEOUT):
                        await client.recv()
                assert client.close_code == 1012 and client.close_reason == "restart"
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(TIMEOUT):
                    while True:
                        await ctl.ws.recv()
        await asyncio.wait_for(server.wait_closed(), TIMEOUT)
        assert server.hub.state == "stopped"
        with pytest.raises(OSError):
            async with connect(server.control.url, open_timeout=TIMEOUT,
                               additional_headers={"Authorization": f"Bearer {TOKEN}"}):
                pass


async def test_keep_alive_can_be_escalated_to_graceful():
    """A graceful shutdown during a keep-alive drain closes the remaining clients."""
    async with running() as server, control(server) as ctl:
        client = await public(server)
        await ctl.ok("shutdown", mode="keep_alive")
        await ctl.ok("shutdown", mode="graceful", code=1001)
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(TIMEOUT):
                await client.recv()
        await asyncio.wait_for(server.wait_closed(), TIMEOUT)


async def test_keep_alive_deadline_closes_the_rest():
    """A keep-alive shutdown with a deadline closes the remaining clients when it passes."""
    async with running() as server, control(server) as ctl:
        client = await public(server)
        result = await ctl.ok("shutdown", mode="keep_alive", deadline=0.2, code=4002)
        assert result["deadline"] == 0.2
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(TIMEOUT):
                await client.recv()
        assert client.close_code == 4002
        await wait_for(lambda: server.hub.state == "stopped")
