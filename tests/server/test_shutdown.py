"""Both shutdown modes, and the hub's state while the server drains."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect

from tests.helpers import TIMEOUT, wait_for
from wsconsole.server import Selector, ServerStateError, serve
from wsconsole.server.demo_app import demo_handler
from wsconsole.server.hub import ShutdownDecision


def url(server, **query) -> str:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return f"ws://127.0.0.1:{server.port}/" + (f"?{qs}" if qs else "")


async def recv(client):
    async with asyncio.timeout(TIMEOUT):
        return await client.recv()


async def test_graceful_shutdown_closes_everyone_with_the_given_code():
    """Graceful shutdown stops accepting, closes every client with 1012 and a reason,
    waits for handlers, and ends in the stopped state."""
    server = await serve(demo_handler, "127.0.0.1", 0)
    hub = server.hub
    clients = [await connect(url(server, user=f"u{i}")) for i in range(3)]
    await wait_for(lambda: len(hub.registry) == 3)
    hub.shutdown("graceful", code=1012, reason="restarting")
    assert hub.state == "draining"
    async with asyncio.timeout(TIMEOUT):
        await server.wait_closed()
    assert hub.state == "stopped" and len(hub.registry) == 0
    for client in clients:
        await client.wait_closed()
        assert (client.close_code, client.close_reason) == (1012, "restarting")
    assert hub.closed_by_code[1012] == 3


async def test_keep_alive_keeps_open_connections_and_refuses_new_ones():
    """In keep-alive mode an open client still echoes and receives broadcasts, a new
    client is refused, and the server stops when the last client leaves."""
    server = await serve(demo_handler, "127.0.0.1", 0)
    hub = server.hub
    ann = await connect(url(server, user="ann"))
    bob = await connect(url(server, user="bob"))
    await wait_for(lambda: len(hub.registry) == 2)
    server.close(close_connections=False)
    assert hub.state == "draining" and hub.shutdown_mode == "keep_alive"
    await ann.send("still echoing")
    assert await recv(ann) == "still echoing"
    result = hub.send(Selector(everyone=True), "drain notice")
    assert result.delivered == 2
    assert await recv(ann) == "drain notice" and await recv(bob) == "drain notice"
    with pytest.raises(OSError):
        await connect(url(server, user="late"), open_timeout=TIMEOUT)
    assert hub.stats()["connections"] == 2
    await ann.close()
    await wait_for(lambda: len(hub.registry) == 1)
    assert hub.state == "draining"
    await bob.close()
    async with asyncio.timeout(TIMEOUT):
        await server.wait_closed()
    assert hub.state == "stopped"


async def test_keep_alive_deadline_closes_the_rest_gracefully():
    """After the keep-alive deadline, the remaining clients are closed with the code."""
    server = await serve(demo_handler, "127.0.0.1", 0)
    hub = server.hub
    client = await connect(url(server, user="ann"))
    await wait_for(lambda: len(hub.registry) == 1)
    hub.shutdown("keep_alive", code=1001, reason="deadline", deadline=0.2)
    await client.send("before deadline")
    assert await recv(client) == "before deadline"
    async with asyncio.timeout(TIMEOUT):
        await server.wait_closed()
    assert (client.close_code, client.close_reason) == (1001, "deadline")
    assert hub.state == "stopped"


async def test_graceful_after_keep_alive_escalates_and_a_second_shutdown_is_refused():
    """A graceful shutdown cuts a keep-alive drain short; repeating it is an error.
    hub.may_shutdown, which the control plane and the signal handlers ask, gives
    the same answers, with the reason of each refusal."""
    server = await serve(demo_handler, "127.0.0.1", 0)
    hub = server.hub
    client = await connect(url(server, user="ann"))
    await wait_for(lambda: len(hub.registry) == 1)
    assert hub.may_shutdown("keep_alive") == ShutdownDecision(True)
    hub.shutdown("keep_alive")
    assert hub.may_shutdown("keep_alive") == ShutdownDecision(
        False, "the server is already draining")
    with pytest.raises(ServerStateError, match="already draining"):
        hub.shutdown("keep_alive")
    assert hub.may_shutdown("graceful") == ShutdownDecision(True, escalation=True)
    hub.shutdown("graceful", code=1001)
    assert not hub.may_shutdown("graceful").allowed  # escalated once: graceful now
    async with asyncio.timeout(TIMEOUT):
        await server.wait_closed()
    assert client.close_code == 1001
    assert hub.may_shutdown("graceful") == ShutdownDecision(False, "the server is already stopped")
    with pytest.raises(ServerStateError, match="already stopped"):
        hub.shutdown("graceful")


async def test_context_manager_exit_is_graceful():
    """Leaving `async with serve(...)` closes clients with 1001, like websockets."""
    async with serve(demo_handler, "127.0.0.1", 0) as server:
        client = await connect(url(server))
        await wait_for(lambda: len(server.hub.registry) == 1)
    assert client.close_code == 1001 and server.hub.state == "stopped"


async def test_close_during_a_keep_alive_drain_changes_nothing_as_with_websockets():
    """As websockets' close() is idempotent, a second server.close() leaves a
    keep-alive drain running (the open client is still served);
    hub.shutdown("graceful") is what closes the rest, with the given code."""
    server = await serve(demo_handler, "127.0.0.1", 0)
    client = await connect(url(server))
    await wait_for(lambda: len(server.hub.registry) == 1)
    server.close(close_connections=False)
    assert server.hub.state == "draining"
    server.close(code=1012, reason="restart")
    await client.send("still here")
    assert await recv(client) == "still here"
    assert client.close_code is None and server.hub.shutdown_mode == "keep_alive"
    server.hub.shutdown("graceful", code=1012, reason="restart")
    async with asyncio.timeout(TIMEOUT):
        await server.wait_closed()
        await client.wait_closed()
    assert client.close_code == 1012
    assert server.hub.state == "stopped"


async def test_sampled_totals_are_final_once_stopped():
    """After the server stops, the sampled totals (what /metrics shows) include
    every message, even with no sample due since the last one."""
    server = await serve(demo_handler, "127.0.0.1", 0, sample_interval=3600)
    client = await connect(url(server, user="ann"))
    await client.send("one")
    assert await recv(client) == "one"
    server.close()
    async with asyncio.timeout(TIMEOUT):
        await server.wait_closed()
    assert server.hub.sampler.totals.msgs_in == 1
    assert server.hub.sampler.totals.as_dict() == server.hub.totals.as_dict()


async def test_a_drain_cut_short_says_why_and_counts_both_kinds_of_close():
    """A keep-alive drain's start names its deadline; when the deadline fires
    (or a graceful shutdown cuts it short) one drain_escalated event says why,
    how many closed on their own and how many the server closes; stats keep it."""
    for cause in ("deadline", "shutdown"):
        server = await serve(demo_handler, "127.0.0.1", 0)
        hub = server.hub
        events: list[tuple[str, dict]] = []
        hub.add_listener(lambda kind, data: events.append((kind, data)))
        ann = await connect(url(server, user="ann"))
        bob = await connect(url(server, user="bob"))
        await wait_for(lambda: len(hub.registry) == 2)
        hub.shutdown("keep_alive", code=1001, reason="deploy",
                     deadline=0.2 if cause == "deadline" else 60)
        [start] = [data for kind, data in events if kind == "state_changed"]
        assert start["deadline"] == pytest.approx(hub.shutdown_deadline)
        await ann.close()
        await wait_for(lambda: len(hub.registry) == 1)
        if cause == "shutdown":
            hub.shutdown("graceful", code=1001, reason="deploy")
        async with asyncio.timeout(TIMEOUT):
            await server.wait_closed()
        [escalated] = [data for kind, data in events if kind == "drain_escalated"]
        assert {k: escalated[k] for k in ("cause", "started_with", "served", "closing",
                                          "code")} == {
            "cause": cause, "started_with": 2, "served": 1, "closing": 1, "code": 1001}
        assert hub.stats()["shutdown_escalation"]["cause"] == cause
        assert bob.close_code == 1001
