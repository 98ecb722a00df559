"""The event log under churn: bursts of opens and closes are written once a
second, not four times a second."""

from __future__ import annotations

import time

import pytest
from textual.app import App

from tests.helpers import wait_for
from wsconsole.console.widgets import EventLog, event_log
from wsconsole.console.widgets.event_log import COALESCE_ABOVE
from wsconsole.server.wire import Event

# The log's intervals, shorter: the hold is measured against the interval,
# whatever its length (the production values: a quarter second, a second).
FLUSH_INTERVAL = 0.05
BURST_FLUSH_INTERVAL = 0.5


def opened(n: int) -> Event:
    return Event("connection_opened", 0.0, {"user": f"guest-{n}", "path": "/chat",
                                             "id": f"c{n}"})


async def test_bursts_are_written_once_a_second_and_a_quiet_event_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After a flush that summed up a burst, the next burst waits about
    BURST_FLUSH_INTERVAL (each write lays the screen out again), and so does
    the event after it; it is written then, on a line of its own."""
    monkeypatch.setattr(event_log, "FLUSH_INTERVAL", FLUSH_INTERVAL)
    monkeypatch.setattr(event_log, "BURST_FLUSH_INTERVAL", BURST_FLUSH_INTERVAL)
    app = App[None]()
    async with app.run_test(size=(100, 12)):
        log = EventLog()
        await app.mount(log)
        # Before the first flush: the hold starts at it, so the second write
        # comes at least the hold later, however slow the first write was.
        before_first = time.monotonic()
        for n in range(COALESCE_ABOVE + 1):
            log.add_event(opened(n))
        await wait_for(lambda: len(log.entries) == 1)
        assert "connections opened" in log.entries[0]
        for n in range(COALESCE_ABOVE + 1):
            log.add_event(opened(100 + n))
        await wait_for(lambda: len(log.entries) == 2)
        # Without the hold, the next tick (FLUSH_INTERVAL) would have written it.
        assert time.monotonic() - before_first >= BURST_FLUSH_INTERVAL
        assert "connections opened" in log.entries[1]
        log.add_event(opened(999))
        await wait_for(lambda: len(log.entries) == 3)
        assert "guest-999" in log.entries[2]
        # The second write held it too: two holds since before the first.
        assert time.monotonic() - before_first >= 2 * BURST_FLUSH_INTERVAL
