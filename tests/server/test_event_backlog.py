"""The backlog of recent events a subscriber may ask for on subscribing."""

from __future__ import annotations

from tests.helpers import wait_for
from wsconsole.server import wire
from wsconsole.server.control.events import BACKLOG_NOTABLE, BACKLOG_ROUTINE, EventBacklog
from wsconsole.server.wire import EventKind

from .control_helpers import control, public, running


async def test_a_subscriber_that_asks_receives_what_happened_before_it_came():
    """subscribe with backlog first sends the events of before, marked backlog, then live ones."""
    async with running() as server:
        async with public(server, "/chat?user=ann") as client:
            await client.close(4005, "done")
        await wait_for(lambda: len(server.hub.registry) == 0)
        async with control(server) as ctl:
            await ctl.ok("send", selector={"user": "nobody"}, text="hello")
        async with control(server) as ctl:
            result = await ctl.ok("subscribe", stats_interval=60, backlog=100)
            assert result["backlog"] == 3
            past = [await ctl.event(lambda e: e.kind != EventKind.STATS) for _ in range(3)]
            assert [e.kind for e in past] == [EventKind.CONNECTION_OPENED,
                                              EventKind.CONNECTION_CLOSED,
                                              EventKind.OPERATOR_ACTION]
            assert all(e.backlog for e in past)
            assert (past[1].data["code"], past[1].data["reason"]) == (4005, "done")
            async with public(server, "/chat?user=bob"):
                live = await ctl.event(lambda e: e.kind == EventKind.CONNECTION_OPENED)
            assert live.data["user"] == "bob" and not live.backlog
        # A subscriber that does not ask gets the reply and the stream it always had.
        async with control(server) as ctl:
            assert await ctl.ok("subscribe", stats_interval=60) == {
                "subscribed": True, "stats_interval": 60.0}
            await ctl.ok("hello")
            assert not any(e.backlog for e in ctl.events)
            assert await ctl.error("subscribe", backlog=wire.MAX_BACKLOG + 1) == "bad_request"


def test_the_backlog_is_bounded_and_a_storm_does_not_push_out_the_notable_events():
    """Past its rings' sizes the oldest go; normal opens and closes never displace an abnormal close."""
    backlog = EventBacklog()
    backlog.record(EventKind.CONNECTION_CLOSED, {"id": "a", "code": 1006}, now=1.0)
    backlog.record(EventKind.OPERATOR_ACTION, {"op": "send"}, now=2.0)
    for i in range(10_000):
        backlog.record(EventKind.CONNECTION_OPENED, {"id": str(i)}, now=3.0 + i)
        backlog.record(EventKind.CONNECTION_CLOSED, {"id": str(i), "code": 1000}, now=3.5 + i)
    backlog.record(EventKind.STATS, {}, now=20_000.0)
    assert len(backlog) == 2 + BACKLOG_ROUTINE
    recent = backlog.recent(wire.MAX_BACKLOG)
    assert [e.data.get("code") for e in recent[:2]] == [1006, None]
    assert [e.time for e in recent] == sorted(e.time for e in recent)
    assert recent[-1].data == {"id": "9999", "code": 1000}
    # Asked for fewer, the notable ones come first, then the latest routine ones.
    assert [e.data.get("id") for e in backlog.recent(3)] == ["a", None, "9999"]
    for i in range(BACKLOG_NOTABLE + 10):
        backlog.record(EventKind.SLOW_CONSUMER, {"id": str(i)}, now=30_000.0 + i)
    assert len(backlog.notable) == BACKLOG_NOTABLE
    assert backlog.notable[0].data == {"id": "10"}


def test_a_drain_repeating_its_state_is_one_backlog_event():
    """Each close of a drain repeats state_changed: the backlog keeps the latest of the run."""
    backlog = EventBacklog()
    for n in range(100, 0, -1):
        backlog.record(EventKind.STATE_CHANGED, {"node": "a", "state": "draining",
                                                 "mode": "keep_alive", "connections": n})
    [event] = backlog.recent(10)
    assert event.data["connections"] == 1
