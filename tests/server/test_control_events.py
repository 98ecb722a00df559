"""The control listener's event stream (and its coalescing), and its fleet.

The audit log's tests are in test_audit.py."""

from __future__ import annotations

import asyncio

from tests.helpers import TIMEOUT, wait_for
from wsconsole.server import wire
from wsconsole.server.control.events import Subscription
from wsconsole.server.wire import EventKind

from .control_helpers import READ_ONLY_TOKEN, control, public, running


# The stream


async def test_opened_and_closed_events_carry_the_connection_and_close_code():
    """A subscriber sees connection_opened with the summary and connection_closed with the code."""
    async with running() as server, control(server) as ctl:
        await ctl.ok("subscribe", stats_interval=60)
        async with public(server, "/chat?user=ann") as client:
            opened = await ctl.event(lambda e: e.kind == EventKind.CONNECTION_OPENED)
            assert opened.data["user"] == "ann" and opened.data["path"] == "/chat"
            await client.close(4005, "done")
        closed = await ctl.event(lambda e: e.kind == EventKind.CONNECTION_CLOSED)
        assert closed.data["id"] == opened.data["id"]
        assert (closed.data["code"], closed.data["reason"]) == (4005, "done")


async def test_operator_actions_are_published_to_subscribers():
    """A send by one operator appears as an operator_action event on another's stream."""
    async with running() as server, control(server, READ_ONLY_TOKEN) as watcher:
        await watcher.ok("subscribe", stats_interval=60)
        async with control(server) as ctl:
            await ctl.ok("send", selector={"user": "nobody"}, text="hello")
        action = await watcher.event(lambda e: e.kind == EventKind.OPERATOR_ACTION)
    assert action.data["op"] == "send" and action.data["role"] == "operator"
    assert action.data["args"]["selector"] == {"user": "nobody"}
    assert action.data["result"]["recipients"] == 0


async def test_stats_events_arrive_every_interval():
    """subscribe with stats_interval sends a stats event at once and then periodically."""
    async with running() as server, control(server) as ctl:
        await ctl.ok("subscribe", stats_interval=0.1)
        times = []
        for _ in range(3):
            event = await ctl.event(lambda e: e.kind == EventKind.STATS)
            assert event.data["node"] == server.hub.node
            times.append(event.time)
    assert times == sorted(times) and times[-1] > times[0]


async def test_unsubscribe_stops_the_stream():
    """After unsubscribe, no event reaches the control connection."""
    async with running() as server, control(server) as ctl:
        await ctl.ok("subscribe", stats_interval=60)
        await ctl.event(lambda e: e.kind == EventKind.STATS)
        result = await ctl.ok("unsubscribe")
        assert result == {"subscribed": False, "was_subscribed": True}
        ctl.events.clear()
        async with public(server):
            await wait_for(lambda: len(server.hub.registry) == 1)
            await ctl.ok("hello")
        await wait_for(lambda: len(server.hub.registry) == 0)
        await ctl.ok("hello")
        assert ctl.events == []


async def read_connection_totals(ctl, until_closed: int) -> tuple[int, int, int, int]:
    """Read events until ``until_closed`` closes are accounted for: (opened, closed, frames, bursts)."""
    opened = closed = frames = bursts = 0
    async with asyncio.timeout(TIMEOUT * 2):
        while closed < until_closed:
            event = await ctl.next_event()
            if event.kind == EventKind.CONNECTION_OPENED:
                opened += 1
            elif event.kind == EventKind.CONNECTION_CLOSED:
                assert event.data["code"] == 1000
                closed += 1
            elif event.kind == EventKind.BURST:
                opened += event.data["opened"]
                closed += event.data["closed"]
                bursts += 1
            else:
                continue
            frames += 1
    return opened, closed, frames, bursts


CLIENTS = 150
"""Connections a burst test opens and closes: 300 connection events, three
times the server's burst threshold (100 in a window)."""


async def open_clients(server, count: int) -> list:
    """``count`` public clients opened concurrently, at most half the listen
    backlog (100) at a time: past the backlog the kernel drops handshakes,
    and the client retries each a second later."""
    in_flight = asyncio.Semaphore(50)

    async def one(i: int):
        async with in_flight:
            return await public(server, f"/?user=u{i}")

    return await asyncio.gather(*(one(i) for i in range(count)))


async def test_a_burst_of_connections_is_coalesced():
    """150 connects and closes in one flush window arrive as 10 events and one burst, totals conserved."""
    async with running() as server:
        # One long window, so the test does not depend on how fast 150
        # handshakes run: the subscription flushes at once when it starts,
        # then only when the server stops (stop() flushes what is pending).
        server.control.events.flush_interval = 3600
        async with control(server) as ctl:
            await ctl.ok("subscribe", stats_interval=3600)
            await ctl.event(lambda e: e.kind == EventKind.STATS)
            clients = await open_clients(server, CLIENTS)
            await asyncio.gather(*(client.close() for client in clients))
            await wait_for(lambda: server.hub.stats()["closed_total"] == CLIENTS)
            server.close()
            opened, closed, frames, bursts = await read_connection_totals(ctl, CLIENTS)
    assert (opened, closed) == (CLIENTS, CLIENTS)
    assert (frames, bursts) == (server.control.events.burst_head + 1, 1)


async def test_a_stream_under_load_conserves_every_connection():
    """With the default flush window, 150 quick connects and closes are all accounted for."""
    async with running() as server, control(server) as ctl:
        await ctl.ok("subscribe", stats_interval=60)
        clients = await open_clients(server, CLIENTS)
        await asyncio.gather(*(client.close() for client in clients))
        opened, closed, frames, _ = await read_connection_totals(ctl, CLIENTS)
    assert (opened, closed) == (CLIENTS, CLIENTS)
    assert frames <= 2 * CLIENTS


def test_subscription_memory_is_bounded_under_a_flood():
    """10,000 events in one window keep at most the threshold in memory and flush as head + one burst."""
    subscription = Subscription(stats_interval=1.0, threshold=100, head=10, max_other=50)
    for i in range(10_000):
        kind = EventKind.CONNECTION_OPENED if i % 2 == 0 else EventKind.CONNECTION_CLOSED
        subscription.push(kind, {"id": str(i)}, 0.0)
    for i in range(200):
        subscription.push(EventKind.SLOW_CONSUMER, {"id": str(i)}, 0.0)
    assert len(subscription.pending) <= 100 + 50
    events = [wire.parse_message(frame) for frame in subscription.take(1.0)]
    connection_events = [e for e in events if e.kind in (EventKind.CONNECTION_OPENED,
                                                          EventKind.CONNECTION_CLOSED)]
    [burst] = [e for e in events if e.kind == EventKind.BURST]
    assert len(connection_events) == 10
    assert len(connection_events) + burst.data["opened"] + burst.data["closed"] == 10_000
    assert burst.data["opened"] + sum(e.kind == EventKind.CONNECTION_OPENED
                                      for e in connection_events) == 5_000
    assert sum(e.kind == EventKind.SLOW_CONSUMER for e in events) == 50
    assert burst.data["dropped"] == 150
    # The window restarts empty.
    assert subscription.take(2.0) == []


def test_a_quiet_window_sends_every_event():
    """Below the threshold, every connection event is sent as itself, with no burst."""
    subscription = Subscription(stats_interval=1.0, threshold=100, head=10, max_other=50)
    for i in range(100):
        subscription.push(EventKind.CONNECTION_OPENED, {"id": str(i)}, 0.0)
    events = [wire.parse_message(frame) for frame in subscription.take(1.0)]
    assert [e.data["id"] for e in events] == [str(i) for i in range(100)]


