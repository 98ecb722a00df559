"""Problems first: the event log's keys, filters, coalescing and backlog, the
problems view, the close-code summary and the detail view, against a real
embedded server (``live_server``) and real clients.

Each test drives one app through several behaviours, to keep the suite cheap.
"""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator

from wsconsole.console.app import ConsoleApp
from wsconsole.console.client import ControlClient
from textual.widgets import DataTable

from wsconsole.console.problems import rank_problems
from wsconsole.console.screens import DetailScreen, DisconnectScreen
from wsconsole.console.widgets import EventLog, StatusBar

from tests.helpers import wait_for

from .live_server import OPERATOR_TOKEN, Live, live_server

SIZE = (120, 34)


def drawn(widget: Any) -> str:
    """The widget's lines as drawn now (border included), as plain text."""
    return "\n".join(widget.render_line(y).text for y in range(widget.outer_size.height))


@contextlib.asynccontextmanager
async def console(live: Live, **kwargs: Any) -> AsyncIterator[tuple[ConsoleApp, Any]]:
    """The console attached to ``live`` (headless), once its link is up."""
    url = live.url
    kwargs.setdefault("refresh_delay", 0.01)
    kwargs.setdefault("min_refresh_interval", 0.05)
    app = ConsoleApp(lambda: ControlClient(url, OPERATOR_TOKEN), url=url, **kwargs)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.link_state.up)
        yield app, pilot


async def test_event_log_close_summary_and_problems_view() -> None:
    """The log starts with what happened before the console attached (marked as the
    backlog); e focuses it, 1 shows only abnormal closes, 0 everything, E expands it
    over the screen and esc brings it back; the same send twelve times is one line;
    the status bar sums up the abnormal closes. p ranks the connections by what is
    wrong and says it is the problems view; p, esc or a sort key goes back to the
    view it came from; D is hidden meanwhile."""
    async with live_server() as live:
        for name in ("cy", "dee", "eve"):
            await live.client("/chat", user=name)
        ann = await live.client("/chat", user="ann")
        await ann.close(4001, "bye")
        bob = await live.client("/chat", user="bob")
        await bob.close()
        await wait_for(lambda: len(live.server.hub.registry) == 3)
        async with console(live) as (app, pilot):
            log = app.main_screen.query_one(EventLog)
            await wait_for(lambda: any("4001" in line for line in log.entries))
            await wait_for(lambda: any("── live ──" in line for line in log.entries)
                           or any("bob" in line and "1000" in line for line in log.entries))
            lines = log.entries
            start = next(i for i, line in enumerate(lines) if "server backlog" in line)
            closed_ann = next(i for i, line in enumerate(lines) if "ann" in line and "4001" in line)
            assert start < closed_ann
            assert any("connected to" in line for line in lines[:start])
            # The status bar sums up the abnormal closes of the last minutes.
            status = app.main_screen.query_one(StatusBar)
            await wait_for(lambda: status.closes == "4001×1 in 5 min")

            await pilot.press("e")
            assert app.focused is log
            await pilot.press("1")
            assert log.border_title == "Events: only abnormal closes"
            assert any("4001" in line for line in log.shown)
            assert not any("bob" in line for line in log.shown)
            await pilot.press("0")
            assert any("bob" in line for line in log.shown)

            for back in ("escape", "E"):
                await pilot.press("E")
                assert app.main_screen.maximized is log
                await pilot.press(back)
                assert app.main_screen.maximized is None

            client = app.link.require()
            for _ in range(12):
                await client.send({"user": "nobody"}, text="hello")
            await wait_for(lambda: any("×12" in line for line in log.entries))
            sends = [line for line in log.entries if "operator: send" in line]
            assert len(sends) == 1 and "user=nobody" in sends[0]

            screen = app.main_screen
            table = screen.table

            def row_ids() -> list[str]:
                return [str(key.value) for key in table.rows]

            await wait_for(lambda: table.row_count == 3)
            table.focus()
            for leave in ("p", "escape", None):
                if leave != "escape":
                    await pilot.press("p")
                else:
                    screen.action_problems()  # the key is pressed in the other rounds
                assert screen.problems
                await wait_for(lambda: table.border_title.startswith("PROBLEMS"))
                assert "p or esc leaves" in table.border_subtitle
                assert screen.check_action("disconnect_group", ()) is False
                rows = [table.summary(i) for i in row_ids()]
                assert row_ids() == [r["id"] for r in rank_problems(rows, app.clock(), 100)]
                if leave is None:
                    screen.action_cycle_sort()  # as s does: a sort key leaves too
                else:
                    await pilot.press(leave)
                assert not screen.problems
                await wait_for(lambda: table.border_title.startswith("Connections"))


async def test_detail_wraps_shows_its_events_and_once_closed_its_code_and_no_actions() -> None:
    """The detail view wraps a long header value, lists the connection's events, and
    after a disconnect from it shows the close code and reason and offers no
    message or disconnect; back in the table the cursor selects nobody (the next d
    cannot reach a neighbour) until the operator moves it."""
    long_value = "tenant=acme; " * 30
    async with live_server() as live:
        await live.client("/chat", user="ann")
        bob = await live.client("/chat", user="bob", headers={"X-Context": long_value})
        async with console(live) as (app, pilot):
            screen = app.main_screen
            table = screen.table
            await wait_for(lambda: table.row_count == 2)
            index = next(i for i, key in enumerate(table.rows)
                         if table.summary(str(key.value))["user"] == "bob")
            table.move_cursor(row=index)
            table.focus()
            await pilot.press("enter")
            await wait_for(lambda: isinstance(app.screen, DetailScreen)
                           and app.screen.connection.get("request_headers"))
            detail = app.screen
            headers = detail.query_one("#request-headers", DataTable)
            await wait_for(lambda: headers.row_count > 0)
            [context] = [key for key in headers.rows
                         if str(headers.get_row(key)[0]) == "X-Context"]
            assert headers.rows[context].height > 1  # wrapped, not cut
            assert headers.virtual_size.width <= headers.scrollable_content_region.width
            events = detail.query_one("#detail-events-text")
            await wait_for(lambda: "+ bob /chat" in drawn(events))
            # At 80x20 the events keep a place under the response headers, and
            # the header names leave the values most of their table.
            await pilot.resize_terminal(80, 20)
            pane = detail.query_one("#detail-events")
            await wait_for(lambda: headers.columns["value"].width
                           > headers.columns["name"].width
                           and pane.region.height >= 5 and pane.region.bottom <= 19)
            await pilot.resize_terminal(*SIZE)

            await pilot.press("d")
            await wait_for(lambda: isinstance(app.screen, DisconnectScreen)
                           and app.screen.is_mounted)  # pushed is not yet composed
            await pilot.click("#confirm-yes")
            await wait_for(lambda: app.screen is detail and detail.closed
                           and detail.closed_with is not None)
            assert bob.close_code == 1000
            await wait_for(lambda: "closed  1000 normal" in drawn(
                detail.query_one("#detail-summary")))
            # Hidden (False), not dimmed: there is nobody to act on any more.
            assert detail.check_action("send", ()) is False
            assert detail.check_action("disconnect", ()) is False

            await pilot.press("escape")
            await wait_for(lambda: app.screen is screen and table.row_count == 1)
            assert table.parked and table.selected_id is None
            assert screen.check_action("disconnect", ()) is None
            await pilot.press("d")  # nothing, and says why
            await wait_for(lambda: any("under the cursor has gone" in n.message
                                       for n in app._notifications))
            assert app.screen is screen
            await pilot.press("down")
            assert not table.parked and table.selected_id is not None


async def test_events_backlog_prints_what_happened_before(capsys: Any,
                                                          monkeypatch: Any) -> None:
    """wsconsole events --backlog N first prints the events of before, marked backlog."""
    import asyncio
    import json

    from wsconsole.console.cli import main

    monkeypatch.delenv("WSCONSOLE_URL", raising=False)
    monkeypatch.delenv("WSCONSOLE_TOKEN", raising=False)
    async with live_server() as live:
        ann = await live.client("/chat", user="ann")
        await ann.close(4002, "gone")
        await wait_for(lambda: len(live.server.hub.registry) == 0)
        argv = live.cli("events", "--backlog", "10", "--count", "2", "--json",
                        "--kind", "connection_opened", "--kind", "connection_closed")
        assert await asyncio.to_thread(main, argv) == 0
    [opened, closed] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert opened["backlog"] is True and opened["data"]["user"] == "ann"
    assert closed["backlog"] is True and closed["data"]["code"] == 4002
