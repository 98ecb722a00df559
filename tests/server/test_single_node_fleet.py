"""The cluster arguments and shapes of the wire, on one process (CLUSTER.md):
``node`` and ``timeout`` on every targeted operation, ``hello.cluster``, the
``nodes`` group and ``per_node`` results, ``node`` in every event; and the
control plane's fairness charging what a request ran, not what it waited for.
"""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from wsconsole.server import wire
from wsconsole.server.control.fairness import (
    TimedSteps,
    unwatch_collections,
    watch_collections,
)
from wsconsole.server.protocol import EventKind

from tests.helpers import wait_for
from tests.server.control_helpers import control, public, running

EVERYONE = {"everyone": True}


async def test_this_nodes_name_is_a_valid_node_and_any_other_is_unknown_node():
    """`node` equal to this node's name works on every targeted operation; any
    other name is refused with unknown_node, and the message names the nodes."""
    async with running() as server, control(server) as ctl:
        node = server.hub.node
        async with public(server, "/?user=ann"):
            await wait_for(lambda: len(server.hub.registry) == 1)
            page = await ctl.ok("list", node=node)
            assert page["total"] == 1 and page["connections"][0]["node"] == node
            (record,) = page["connections"]
            assert (await ctl.ok("get", id=record["id"], node=node))["id"] == record["id"]
            assert (await ctl.ok("stats", node=node))["connections"] == 1
            assert [n["node"] for n in (await ctl.ok("nodes", node=node))["nodes"]] == [node]
            sent = await ctl.ok("send", selector=EVERYONE, text="x", dry_run=True, node=node)
            assert sent["recipients"] == 1
            for op, args in [("list", {}), ("get", {"id": record["id"]}), ("stats", {}),
                             ("nodes", {}), ("send", {"selector": EVERYONE, "text": "x"}),
                             ("disconnect", {"selector": EVERYONE}),
                             ("shutdown", {"mode": "graceful"})]:
                reply = await ctl.reply(op, node="web-9", **args)
                assert reply.error_code == "unknown_node", op
                assert node in reply.error_message
            assert len(server.hub.registry) == 1 and server.hub.state == "serving"


@pytest.mark.parametrize("timeout", ["0", "-1", "60.5", "1e999", '"2"', "true"])
def test_a_timeout_out_of_range_is_a_bad_request(timeout):
    """`timeout` must be a finite number, more than 0 and at most 60 seconds."""
    with pytest.raises(wire.ProtocolViolation):
        wire.parse_request(f'{{"id": 1, "op": "list", "args": {{"timeout": {timeout}}}}}')


def test_timeouts_default_to_two_seconds_for_reads_and_five_for_actions():
    """Reads wait 2 s for other nodes by default, actions 5 s; hello and
    subscribe take neither argument."""
    assert wire.parse_request('{"id": 1, "op": "stats"}').args["timeout"] == 2
    assert wire.parse_request(
        '{"id": 1, "op": "disconnect", "args": {"selector": {"everyone": true}}}'
    ).args["timeout"] == 5
    assert wire.parse_request('{"id": 1, "op": "list", "args": {"timeout": 0.5}}'
                              ).args["timeout"] == 0.5
    for op in ("hello", "subscribe"):
        with pytest.raises(wire.ProtocolViolation):
            wire.parse_request(f'{{"id": 1, "op": "{op}", "args": {{"node": "a"}}}}')


async def test_one_node_answers_in_the_cluster_shapes():
    """hello says no cluster; list's groups count by node; send, disconnect,
    stats and shutdown give the one node's part in per_node."""
    async with running() as server, control(server) as ctl:
        node = server.hub.node
        hello = await ctl.ok("hello")
        assert hello["cluster"] is None and hello["node"] == node
        async with public(server, "/?user=ann") as ann:
            await wait_for(lambda: len(server.hub.registry) == 1)
            assert (await ctl.ok("list"))["groups"]["nodes"] == {node: 1}
            sent = await ctl.ok("send", selector=EVERYONE, text="hi")
            assert await ann.recv() == "hi"
            assert sent["per_node"] == {node: {"recipients": 1, "delivered": 1, "skipped": 0}}
            assert "missing" not in sent
            stats = await ctl.ok("stats")
            assert stats["per_node"][node]["connections"] == stats["connections"] == 1
            kicked = await ctl.ok("disconnect", selector={"user": "nobody"})
            assert kicked["per_node"] == {node: {"count": 0}}
            stopped = await ctl.ok("shutdown", mode="keep_alive")
            assert stopped["per_node"][node]["mode"] == "keep_alive"


async def test_every_event_names_the_node_it_happened_on():
    """Connection, state and operator events all carry `node`."""
    async with running() as server, control(server) as ctl:
        await ctl.ok("subscribe", stats_interval=60)
        async with public(server, "/?user=bob"):
            opened = await ctl.event(lambda e: e.kind == EventKind.CONNECTION_OPENED)
        closed = await ctl.event(lambda e: e.kind == EventKind.CONNECTION_CLOSED)
        async with public(server, "/?user=ann"):
            await wait_for(lambda: len(server.hub.registry) == 1)
            await ctl.ok("shutdown", mode="keep_alive")
            seen = {}
            while len(seen) < 2:
                event = await ctl.next_event()
                if event.kind in (EventKind.STATE_CHANGED, EventKind.OPERATOR_ACTION):
                    seen[event.kind] = event
        for event in (opened, closed, *seen.values()):
            assert event.data["node"] == server.hub.node, event.kind


async def test_a_request_is_charged_the_time_it_ran_not_the_time_it_waited():
    """TimedSteps adds up the steps of a coroutine: half a second asleep costs
    nothing, a busy step costs its time, and the result comes through."""

    async def waits_then_works() -> str:
        await asyncio.sleep(0.3)
        started = time.thread_time()
        while time.thread_time() - started < 0.05:
            pass  # holds the loop, as a costly operation does
        return "done"

    timed = TimedSteps(waits_then_works())
    assert await timed == "done"
    assert 0.05 <= timed.seconds < 0.2


async def test_a_garbage_collection_in_a_request_is_not_charged_to_it():
    """A full collection that runs inside a request's step walks everyone's
    objects (0.2-1 s at 10,000 connections): the request is charged its own
    work, else its operator's next requests would wait five times as long."""
    started = time.thread_time()  # the test process's heap: some milliseconds
    gc.collect()
    collection = time.thread_time() - started

    async def allocates_and_collects() -> None:
        await asyncio.sleep(0)
        gc.collect()  # as an allocation past the threshold would set it off

    watch_collections()
    try:
        timed = TimedSteps(allocates_and_collects())
        await timed
    finally:
        unwatch_collections()
    assert collection > 0.002
    assert timed.seconds < collection / 5


async def test_a_timed_request_can_be_cancelled_and_raise():
    """Cancellation reaches the coroutine inside; its errors come out."""
    reached = asyncio.Event()

    async def waits() -> None:
        reached.set()
        await asyncio.sleep(60)

    task = asyncio.ensure_future(_await(TimedSteps(waits())))
    await reached.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def fails() -> None:
        await asyncio.sleep(0)
        raise KeyError("x")

    with pytest.raises(KeyError):
        await TimedSteps(fails())


async def _await(awaitable):
    return await awaitable
