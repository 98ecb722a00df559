"""The event log under churn: bursts of opens and closes are written once a
second, not four times a second."""

from __future__ import annotations

import time

from textual.app import App

from tests.helpers import wait_for
from wsconsole.console.widgets import EventLog
from wsconsole.console.widgets.event_log import BURST_FLUSH_INTERVAL, COALESCE_ABOVE
from wsconsole.server.wire import Event


def opened(n: int) -> Event:
    return Event("connection_opened", 0.0, {"user": f"guest-{n}", "path": "/chat",
                                             "id": f"c{n}"})


async def test_bursts_are_written_once_a_second_and_a_quiet_event_at_once() -> None:
    """After a flush that summed up a burst, the next burst waits about
    BURST_FLUSH_INTERVAL (each write lays the screen out again), and so does
    the event after it; it is written then, on a line of its own."""
    app = App[None]()
    async with app.run_test(size=(100, 12)):
        log = EventLog()
        await app.mount(log)
        for n in range(COALESCE_ABOVE + 1):
            log.add_event(opened(n))
        await wait_for(lambda: len(log.entries) == 1)
        first = time.monotonic()
        assert "connections opened" in log.entries[0]
        for n in range(COALESCE_ABOVE + 1):
            log.add_event(opened(100 + n))
        await wait_for(lambda: len(log.entries) == 2, timeout=BURST_FLUSH_INTERVAL + 5)
        assert time.monotonic() - first >= BURST_FLUSH_INTERVAL * 0.9
        log.add_event(opened(999))
        await wait_for(lambda: len(log.entries) == 3)
        assert "guest-999" in log.entries[2]
