"""Fluid navigation on the main screen, against a real embedded server: the filter
as you type with patterns and bare words, an empty answer in words, direct sort
keys, and labels that count what they say and describe the rows under them.

One server and one console for the whole walk: each step is what an operator
would do next, and each waits for what the screen shows (``wait_for``).
"""

from __future__ import annotations

from wsconsole.console.app import ConsoleApp
from wsconsole.console.client import ControlClient
from wsconsole.console.widgets import GroupsPanel
from wsconsole.console.widgets.status_bar import FittedLine

from tests.helpers import wait_for

from .live_server import OPERATOR_TOKEN, live_server

SIZE = (100, 30)


def users(app: ConsoleApp) -> list[str]:
    table = app.main_screen.table
    return [table.summary(str(row.key.value))["user"] for row in table.ordered_rows]


async def test_filter_as_you_type_sort_keys_and_honest_labels() -> None:
    """`/guest` finds guest-1 and guest-2 while typing (no Enter); Enter applies
    `user=bulk-*` at once, and the table says no connection matches it; a half-typed
    filter is marked and changes nothing; Esc goes back;
    M sorts by messages in, most first, and again fewest first; every subtitle
    drawn described the rows under it; the labels count connections and users."""
    async with live_server() as live:
        guests = [await live.client("/chat", user=f"guest-{n}") for n in (1, 2)]
        ann = await live.client("/feed", user="ann")
        for ws, count in ((guests[1], 3), (ann, 1)):
            for _ in range(count):
                await ws.send("hi")
        await wait_for(lambda: sorted(r.msgs_in for r in live.server.hub.registry) == [0, 1, 3])
        app = ConsoleApp(lambda: ControlClient(live.url, OPERATOR_TOKEN), url=live.url,
                         refresh_delay=0.01, min_refresh_interval=0.05)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.main_screen
            table = screen.table
            # Every (subtitle, rows) the table showed: a label never over rows it
            # does not describe.
            drawn: list[tuple[str, list[str]]] = []
            show_titles = table.show_titles

            def record(title: str, subtitle: str) -> None:
                show_titles(title, subtitle)
                drawn.append((subtitle, users(app)))

            table.show_titles = record  # type: ignore[method-assign]
            await wait_for(lambda: len(users(app)) == 3)

            # The counts say what they count.
            groups = screen.query_one(GroupsPanel)
            screen.action_toggle_groups()  # G: hidden at this width, its tree waits
            await wait_for(lambda: groups._sections["user"].label.plain == "3 users")
            assert groups._everyone is not None
            assert groups._everyone.label.plain.endswith("All 3 connections")
            status = screen.query_one("#status-line", FittedLine)
            await wait_for(lambda: "3 connections" in status.shown)

            # A bare word is the start of a user's name, filtered as typed. The
            # box is opened, filled in and closed by its actions, not keys: each
            # key costs a frame, and the keys themselves are test_app's.
            screen.filter_debounce = 0.02
            box = screen.filter_box
            screen.action_filter()
            box.value = "guest"
            await wait_for(lambda: sorted(users(app)) == ["guest-1", "guest-2"])
            assert box.has_class("open")  # no Enter was needed
            assert screen.view.filter.user == "guest*"

            # Enter applies at once and closes the box; an empty answer says so in
            # words, in the table and its subtitle.
            screen.filter_debounce = 60.0  # typing alone would not apply it now
            box.value = "user=bulk-*"
            await box.action_submit()
            await wait_for(lambda: screen.view.filter.user == "bulk-*")
            assert not box.has_class("open")
            await wait_for(lambda: table.empty_text == "no connection matches user=bulk-*"
                           and not users(app))
            assert str(table.border_subtitle) == "user=bulk-* · 0 connections"

            # Esc in an open box goes back to the filter it opened with; Esc
            # again shows everyone.
            screen.filter_debounce = 0.02
            screen.action_filter()
            box.value = "user="  # half typed: marked, the view stays
            await wait_for(lambda: box.has_class("unreadable"))
            assert screen.view.filter.user == "bulk-*"
            box.value = "user=zed"
            await wait_for(lambda: screen.view.filter.user == "zed")
            screen.action_clear_filter()
            assert screen.view.filter.user == "bulk-*" and not box.has_class("open")
            screen.action_clear_filter()
            await wait_for(lambda: len(users(app)) == 3)

            # Direct sort keys: M, most messages first; again, fewest first.
            await pilot.press("M")
            await wait_for(lambda: users(app) == ["guest-2", "ann", "guest-1"]
                           and "msgs in (most first)" in str(table.border_title))
            await pilot.press("M")
            await wait_for(lambda: users(app) == ["guest-1", "ann", "guest-2"]
                           and "msgs in (fewest first)" in str(table.border_title))

        for subtitle, rows in drawn:
            if subtitle.endswith(" · …"):
                continue  # the rows of the view before, said to be on their way out
            if subtitle.startswith("user=guest*"):
                assert sorted(rows) == ["guest-1", "guest-2"], drawn
            elif subtitle.startswith("user=bulk-*"):
                assert rows == [], drawn
            elif subtitle.startswith("everyone ·"):
                assert len(rows) == 3, drawn
