"""The event log's categories and filter, and the close-code summary, as plain values."""

from __future__ import annotations

from wsconsole.console.event_view import (
    CloseCodeWindow,
    EventCategory,
    EventFilter,
    categorize,
    connection_ids,
    is_about,
)
from wsconsole.server.wire import Event, EventKind


def closed(code: int, at: float = 0.0) -> Event:
    return Event(EventKind.CONNECTION_CLOSED, at, {"id": "c1", "code": code})


def test_codes_other_than_1000_and_1001_are_abnormal_closes() -> None:
    """1006 and 4001 are abnormal closes; 1000 and 1001 are routine."""
    assert categorize(closed(1006)) == {EventCategory.ABNORMAL}
    assert categorize(closed(4001)) == {EventCategory.ABNORMAL}
    assert categorize(closed(1000)) == categorize(closed(1001)) == frozenset()
    assert categorize(Event(EventKind.SLOW_CONSUMER, 0, {})) == {EventCategory.SLOW}
    failed = Event(EventKind.OPERATOR_ACTION, 0, {"op": "send", "error": {"code": "x"}})
    assert categorize(failed) == {EventCategory.ACTIONS, EventCategory.ERRORS}


def test_the_filter_toggles_categories_and_shows_lines_of_any_of_them() -> None:
    """No category chosen shows everything; chosen ones show lines of any of them."""
    everything = EventFilter()
    assert everything.matches(frozenset())
    slow = everything.toggled(EventCategory.SLOW)
    both = slow.toggled(EventCategory.ABNORMAL)
    assert not slow.matches(frozenset()) and slow.matches({EventCategory.SLOW})
    assert both.matches({EventCategory.ABNORMAL}) and both.matches({EventCategory.SLOW})
    assert both.describe() == "abnormal closes, slow consumers"
    assert both.toggled(EventCategory.SLOW).toggled(EventCategory.ABNORMAL) == everything


def test_an_action_is_about_the_connections_its_selector_names() -> None:
    """A send by ids is about those ids; a close about its own id."""
    action = Event(EventKind.OPERATOR_ACTION, 0, {"op": "disconnect", "id": "audit-7",
                                                  "args": {"selector": {"ids": ["a", "b"]}}})
    assert connection_ids(action) == {"a", "b"}
    assert connection_ids(closed(1000)) == {"c1"}
    # The detail view's events: a selector may name it by the prefix typed.
    kick = Event(EventKind.OPERATOR_ACTION, 0, {"op": "disconnect",
                                                "args": {"selector": {"ids": ["79c1"]}}})
    assert is_about(kick, "79c1344f01") and not is_about(kick, "7a00000000")
    assert is_about(closed(1000), "c1") and not is_about(closed(1000), "c10")
    assert not is_about(Event(EventKind.OPERATOR_ACTION, 0, {"args": {"selector": {"ids": [""]}}}),
                        "c1")


def test_a_slow_consumer_line_counts_the_kernel_send_queue() -> None:
    """A slow consumer's line says what passed the limit: its buffer and, when
    known, the kernel's send queue (a client that stopped reading has it there)."""
    from wsconsole.console.widgets.event_log import describe_event

    data = {"id": "c1", "user": "mallory", "path": "/feed", "buffered": 0,
            "kernel_queued": 2_500_000}
    line = describe_event(Event(EventKind.SLOW_CONSUMER, 0.0, data))
    assert line is not None
    assert "0 B buffered + 2.4 MiB in the kernel's send queue, closing with 1008" in line.plain
    line = describe_event(Event(EventKind.SLOW_CONSUMER, 0.0, {**data, "buffered": 2048,
                                                              "kernel_queued": None}))
    assert line is not None and "2.0 KiB buffered, closing with 1008" in line.plain


def test_close_summary_counts_abnormal_codes_of_the_last_five_minutes() -> None:
    """1006×3 1008×1 in 5 min, most frequent first; older closes and normal ones not counted."""
    window = CloseCodeWindow()
    window.add(1006, 0.0)  # more than five minutes before the others
    for at in (400.0, 410.0, 420.0):
        window.add(1006, at)
    window.add(1008, 430.0)
    window.add(1000, 430.0)
    window.add(1001, 431.0)
    assert window.summary(now=440.0) == "1006×3 1008×1 in 5 min"
    assert window.summary(now=1000.0) == ""


def test_close_summary_memory_is_bounded_whatever_the_rate() -> None:
    """A storm of closes over an hour keeps at most the window's buckets."""
    window = CloseCodeWindow(window=300.0, bucket=10.0)
    for i in range(36_000):
        window.add(1006 + i % 3, i / 10)
    assert len(window._buckets) <= 31
    assert sum(window.counts(3600.0).values()) <= 3100


async def test_the_log_drops_backlog_it_showed_and_splits_abnormal_closes_from_a_burst() -> None:
    """After a reconnect the backlog repeats: only its events newer than those shown
    are written; a burst of closes is two lines, the abnormal ones apart; the same
    action more than a minute later is a line of its own."""
    from dataclasses import replace

    from textual.app import App

    from wsconsole.console.widgets import EventLog
    from wsconsole.console.widgets.event_log import ACTION_COALESCE_SECONDS, COALESCE_ABOVE

    app = App[None]()
    async with app.run_test(size=(100, 12)):
        log = EventLog()
        await app.mount(log)
        first = [closed(1006, at=10.0), closed(1000, at=11.0)]
        for event in first:
            log.add_event(replace(event, backlog=True))
        log.add_event(closed(4000, at=12.0))
        log.flush()
        assert len(log.entries) == 5  # the backlog's two marks, its two lines, one live
        # The link came back: the server sends its backlog again, with one event more.
        for event in [*first, closed(4000, at=12.0), closed(1011, at=13.0)]:
            assert log.add_event(replace(event, backlog=True)) == (event.time == 13.0)
        log.flush()
        assert "1011" in log.entries[-1] and sum("1006" in e for e in log.entries) == 1

        many = [closed(1000 + (i % 2) * 6, at=20.0 + i) for i in range(4 * COALESCE_ABOVE)]
        for event in many:
            log.add_event(event)
        log.flush()
        assert any(f"{2 * COALESCE_ABOVE} connections closed abnormally" in e
                   for e in log.entries)
        assert any(f"{2 * COALESCE_ABOVE} connections closed (" in e for e in log.entries)

        action = {"op": "kick", "role": "operator", "args": {"selector": {"user": "x"}}}
        for at in (100.0, 110.0, 110.0 + ACTION_COALESCE_SECONDS + 1):
            log.add_event(Event(EventKind.OPERATOR_ACTION, at, action))
            log.flush()
        kicks = [e for e in log.entries if "operator: kick" in e]
        assert len(kicks) == 2 and "×2" in kicks[0] and "×" not in kicks[1]
