"""The console app against a real embedded server, real control plane and real clients.

Each test runs ``ConsoleApp.run_test()`` on loopback (port 0) and waits for the
state it needs (``wait_for``), never for time. The console runs with its
production intervals at the smallest terminal the test reads from: a busy
two-core machine runs these in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import sys
from typing import Any, AsyncIterator, Callable
from urllib.parse import quote

from rich.console import Console
from textual.errors import NoWidget
from websockets.asyncio.client import ClientConnection, connect

from wsconsole.console.app import ConsoleApp
from wsconsole.console.formatting import parse_filter
from wsconsole.console.client import ControlClient
from wsconsole.console.screens import (
    ComposeScreen,
    DetailScreen,
    DisconnectScreen,
    MainScreen,
    ShutdownScreen,
)
from wsconsole.console.tui_command import client_factory, run_demo
from wsconsole.console.widgets import EventLog, GroupsPanel
from wsconsole.server import serve
from wsconsole.server.config import ControlConfig
from wsconsole.server.demo_app import demo_handler

from tests.helpers import TIMEOUT, wait_for

TOKEN = "operator-token-for-console-tests"
READ_ONLY = "read-only-token-for-console-tests"
SIZE = (100, 30)
"""Big enough for every column a test reads and for the dialogs; no bigger."""


class Live:
    """A running demo server with its control plane, and its public clients."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.clients: list[ClientConnection] = []

    @property
    def control_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.control.port}"

    async def client(self, user: str, path: str = "/chat", room: str | None = None,
                     **kwargs: Any) -> ClientConnection:
        query = f"user={user}" + (f"&room={room}" if room else "")
        ws = await connect(f"ws://127.0.0.1:{self.server.port}{path}?{query}", **kwargs)
        self.clients.append(ws)
        return ws

    def app(self, token: str = TOKEN, **kwargs: Any) -> ConsoleApp:
        url = self.control_url
        # The production intervals (a second): no test waits for a poll. An
        # event that changes the table asks for it at once.
        kwargs.setdefault("refresh_delay", 0.01)
        # Pages after events at most every 50 ms, not every second: the
        # throttle itself is tested in test_refresh.py.
        kwargs.setdefault("min_refresh_interval", 0.05)
        return ConsoleApp(lambda: ControlClient(url, token), url=url, **kwargs)


@contextlib.asynccontextmanager
async def live_server(control_port: int = 0) -> AsyncIterator[Live]:
    server = serve(demo_handler, "127.0.0.1", 0, node="test-node",
                   control=ControlConfig(host="127.0.0.1", port=control_port, token=TOKEN,
                                         read_only_token=READ_ONLY))
    await server
    live = Live(server)
    try:
        yield live
    finally:
        for ws in live.clients:
            await ws.close()
        if server.hub.state == "serving":
            server.close()
        async with asyncio.timeout(TIMEOUT):
            await server.wait_closed()


def main(app: ConsoleApp) -> MainScreen:
    return app.main_screen


def rows(app: ConsoleApp) -> list[dict[str, Any]]:
    table = main(app).table
    return [table.summary(str(key.value)) for key in table.rows]


async def select_row(pilot: Any, app: ConsoleApp, predicate: Callable[[dict], bool]) -> dict:
    """Move the table cursor to the first row matching ``predicate``."""
    table = main(app).table
    for index, row in enumerate(rows(app)):
        if predicate(row):
            table.move_cursor(row=index)
            await wait_for(lambda: table.selected_id == row["id"])
            return row
    raise AssertionError("no such row")


async def click(pilot: Any, selector: str) -> None:
    """Click the widget ``selector`` once it is laid out on the current screen (a
    dialog just opened has no widgets yet), and check the click landed on it."""
    app = pilot.app

    def laid_out() -> bool:
        found = app.screen.query(selector)
        if not found or not found.first().region:
            return False
        widget = found.first()
        try:
            return app.screen.get_widget_at(*widget.region.offset)[0] is widget
        except NoWidget:
            return False

    await wait_for(laid_out)
    assert await pilot.click(selector), f"the click missed {selector}"


async def apply_filter(pilot: Any, app: ConsoleApp, text: str) -> None:
    """Open the filter with `/`, fill it in with ``text`` and press Enter.

    Typing is tested once (test_filter_and_group_narrow_the_table); elsewhere a
    filter is filled in at once, as each typed key costs a frame of the screen.
    """
    await pilot.press("slash")
    box = main(app).query_one("#filter")
    await wait_for(lambda: box.has_focus)
    box.value = text
    await pilot.press("enter")


async def test_table_shows_connections_by_user_and_path() -> None:
    """The table lists every connection with its user and path, and the groups count them."""
    async with live_server() as live:
        await live.client("ann", "/chat")
        await live.client("ann", "/feed")
        await live.client("bob", "/feed")
        app = live.app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: len(rows(app)) == 3)
            assert sorted((r["user"], r["path"]) for r in rows(app)) == [
                ("ann", "/chat"), ("ann", "/feed"), ("bob", "/feed")]
            groups = app.screen.query_one(GroupsPanel)
            await wait_for(lambda: groups._counts.get(("user", "ann")) == 2)
            assert groups._counts[("path", "/feed")] == 2
            status = main(app).query_one("#status")
            await wait_for(lambda: status.stats.get("node") == "test-node")


async def test_filter_and_group_narrow_the_table() -> None:
    """`/user=ann` shows only ann's rows; choosing a path group shows only that path."""
    async with live_server() as live:
        await live.client("ann", "/chat")
        await live.client("ann", "/feed")
        await live.client("bob", "/feed")
        app = live.app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: len(rows(app)) == 3)
            table = main(app).table
            region = table.region
            await pilot.press("slash")
            # The box lies over the table's top border: the table does not move
            # (which laid the whole screen out and drew the table again).
            box = main(app).filter_box
            await wait_for(lambda: box.has_focus)
            assert box.region.y == region.y and table.region == region
            await pilot.press(*"user=ann", "enter")
            await wait_for(lambda: len(rows(app)) == 2)
            assert {r["user"] for r in rows(app)} == {"ann"}
            main(app).query_one(GroupsPanel).post_message(
                GroupsPanel.GroupChosen("path", "/feed"))
            await wait_for(lambda: {r["path"] for r in rows(app)} == {"/feed"}
                        and len(rows(app)) == 2)
            assert {r["user"] for r in rows(app)} == {"ann", "bob"}
            # A filter the console cannot read is refused with a message, not a traceback.
            await apply_filter(pilot, app, "colour=red")
            await wait_for(lambda: any("unknown filter" in n.message
                                           for n in app._notifications))
            assert main(app).view.filter.path == "/feed"


async def test_detail_shows_headers_redacted() -> None:
    """The detail view shows request headers, with the secret ones redacted."""
    async with live_server() as live:
        await live.client("ann", "/chat", additional_headers={
            "Authorization": "Bearer hunter2", "X-Client-Version": "4.2"})
        app = live.app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: len(rows(app)) == 1)
            main(app).table.focus()
            await pilot.press("enter")
            await wait_for(lambda: isinstance(app.screen, DetailScreen)
                        and app.screen.connection.get("request_headers"))
            headers = {name.lower(): value for name, value
                       in app.screen.connection["request_headers"]}
            assert headers["authorization"] == "[redacted]"
            assert headers["x-client-version"] == "4.2"
            table = app.screen.query_one("#request-headers")
            shown = [str(cell) for row in table.rows for cell in table.get_row(row)]
            assert "[redacted]" in shown and not any("hunter2" in c for c in shown)
            await pilot.press("escape")
            await wait_for(lambda: isinstance(app.screen, MainScreen))


async def test_detail_of_a_connection_that_closed_says_closed() -> None:
    """When the client goes away, the detail view fetches it again at once (the
    server's connection_closed event), gets the server's UnknownConnection and shows
    the connection as closed, not an error."""
    async with live_server() as live:
        ann = await live.client("ann", "/chat")
        app = live.app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: len(rows(app)) == 1)
            main(app).table.focus()
            await pilot.press("enter")
            await wait_for(lambda: isinstance(app.screen, DetailScreen))
            detail = app.screen
            await ann.close()
            await wait_for(lambda: detail.closed)
            await wait_for(lambda: f"{detail.connection_id}  closed" in drawn(app),
                           interval=0.05)
            assert not [n for n in app._notifications if n.severity == "error"]


async def test_broadcast_from_compose_dialog_reaches_clients() -> None:
    """A broadcast to the lobby shows its dry-run count, then reaches lobby clients only."""
    async with live_server() as live:
        ann = await live.client("ann", room="lobby")
        bob = await live.client("bob", room="lobby")
        eve = await live.client("eve", room="kitchen")
        app = live.app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: len(rows(app)) == 3)
            await apply_filter(pilot, app, "topic=lobby")
            await wait_for(lambda: len(rows(app)) == 2)
            await pilot.press("b")
            await wait_for(lambda: isinstance(app.screen, ComposeScreen))
            compose = app.screen
            assert compose.selector == {"topic": "lobby"}
            await wait_for(lambda: compose.recipients == 2)
            # Invalid JSON is caught before anything is sent.
            compose.query_one("#compose-format").query("RadioButton").last().value = True
            await pilot.press(*"{oops")
            await wait_for(lambda: compose.as_json and "Invalid JSON" in str(
                compose.query_one("#compose-check").render()))
            assert compose.query_one("#compose-send").disabled
            compose.query_one("TextArea").text = '{"notice": "maintenance at 5"}'
            await wait_for(lambda: not compose.query_one("#compose-send").disabled)
            await pilot.press("ctrl+s")
            async with asyncio.timeout(TIMEOUT):
                assert await ann.recv() == '{"notice": "maintenance at 5"}'
                assert await bob.recv() == '{"notice": "maintenance at 5"}'
            # Eve's first frame is the echo of her own: nothing came before it.
            await eve.send("after the broadcast")
            async with asyncio.timeout(TIMEOUT):
                assert await eve.recv() == "after the broadcast"
            await wait_for(lambda: isinstance(app.screen, MainScreen))
            await wait_for(lambda: any("delivered 2, skipped 0" in line
                                           for line in app.screen.query_one(EventLog).entries))


async def test_disconnect_selected_connection() -> None:
    """Disconnecting the selected row asks first, then closes that client with 1000."""
    async with live_server() as live:
        await live.client("ann")
        bob = await live.client("bob", "/feed")
        app = live.app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: len(rows(app)) == 2)
            await select_row(pilot, app, lambda r: r["user"] == "bob")
            await pilot.press("d")
            await wait_for(lambda: isinstance(app.screen, DisconnectScreen))
            await click(pilot, "#confirm-yes")
            async with asyncio.timeout(TIMEOUT):
                await bob.wait_closed()
            assert bob.close_code == 1000
            await wait_for(lambda: [r["user"] for r in rows(app)] == ["ann"])


async def test_keep_alive_shutdown_shows_the_drain() -> None:
    """Keep-alive shutdown stops accepting, keeps clients served, and shows them draining."""
    async with live_server() as live:
        ann = await live.client("ann")
        bob = await live.client("bob")
        app = live.app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: len(rows(app)) == 2
                        and app.stats.get("connections") == 2)
            await pilot.press("X")
            await wait_for(lambda: isinstance(app.screen, ShutdownScreen))
            dialog = app.screen
            await click(pilot, "#shutdown-mode RadioButton:last-of-type")
            await wait_for(lambda: dialog.mode == "keep_alive")
            await click(pilot, "#shutdown-confirm")
            await wait_for(lambda: dialog.phase == "draining")
            assert live.server.hub.state == "draining"
            # Open connections are still served.
            await ann.send("still here")
            async with asyncio.timeout(TIMEOUT):
                assert await ann.recv() == "still here"
            text = dialog.query_one("#shutdown-progress-text")
            await wait_for(lambda: "2 of 2 still open" in str(text.render()))
            await bob.close()
            await wait_for(lambda: "1 of 2 still open" in str(text.render()))
            assert main(app).query_one("#status").stats["state"] == "draining"


async def test_read_only_token_disables_mutating_actions() -> None:
    """With a read-only token the console says so and refuses to open mutating dialogs."""
    async with live_server() as live:
        await live.client("ann")
        app = live.app(token=READ_ONLY)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: len(rows(app)) == 1 and app.link_state.read_only)
            screen = main(app)
            assert "Read-only token" in str(screen.query_one("#banner").render())
            for action in ("broadcast", "send", "disconnect", "disconnect_group", "shutdown"):
                assert screen.check_action(action, ()) is None, action
            assert screen.check_action("detail", ()) is True
            await pilot.press("b", "d", "X", "slash")
            # Keys are handled in order: once the filter is open, b, d and X were.
            await wait_for(lambda: screen.filter_box.has_focus)
            assert app.screen is screen
            commands = [c.title for c in app.get_system_commands(screen)]
            assert "Detail" in commands and "Broadcast" not in commands


async def test_reconnects_after_the_control_plane_restarts() -> None:
    """When the server goes away the console says so, then reconnects to its successor."""
    async with live_server() as first:
        port = first.server.control.port
        await first.client("ann")
        app = first.app(reconnect_delays=(0.05, 0.1))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: [r["user"] for r in rows(app)] == ["ann"])
            first.server.close()
            await first.server.wait_closed()
            await wait_for(lambda: app.link_state.status == "lost")
            assert "Control link lost" in str(main(app).query_one("#banner").render())
            assert main(app).table.has_class("stale")
            assert main(app).check_action("broadcast", ()) is None
            async with live_server(control_port=port) as second:
                await second.client("zoe", "/feed")
                await wait_for(lambda: app.link_state.status == "connected", timeout=3 * TIMEOUT)
                await wait_for(lambda: [r["user"] for r in rows(app)] == ["zoe"])
                assert not main(app).table.has_class("stale")
                assert any("reconnected" in line for line in main(app).event_log.entries)


async def test_unreachable_control_plane_keeps_the_console_running() -> None:
    """With nothing listening, the console shows why and keeps retrying, without a traceback."""
    app = ConsoleApp(lambda: ControlClient("ws://127.0.0.1:9", TOKEN), url="ws://127.0.0.1:9",
                     reconnect_delays=(0.05,))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.link_state.status == "lost")
        assert "Cannot reach the control plane" in str(main(app).query_one("#banner").render())
        assert app.is_running


async def test_refused_token_is_reported() -> None:
    """A wrong token is reported once in the banner; the console does not spin retrying."""
    async with live_server() as live:
        app = live.app(token="not-the-token")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.link_state.status == "refused")
            assert "token was refused" in str(main(app).query_one("#banner").render())


async def test_too_small_terminal_says_so() -> None:
    """A terminal below the minimum size shows a message instead of a broken layout."""
    app = ConsoleApp(lambda: ControlClient("ws://127.0.0.1:9", TOKEN), reconnect_delays=(1.0,))
    async with app.run_test(size=(60, 15)) as pilot:
        await wait_for(lambda: app.has_class("too-small"))
        assert "too small: 60×15" in str(main(app).query_one("#too-small").render())
        await wait_for(lambda: "too small: 60×15" in drawn(app), interval=0.05)


def drawn(app: ConsoleApp) -> str:
    """The whole terminal as drawn now (dialogs over the screens beneath), as plain text."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens))
    return console.export_text()


async def test_too_small_terminal_hides_an_open_dialog() -> None:
    """Shrinking the terminal under an open dialog shows the too-small message, not the
    dialog over it; enlarging it brings the dialog back as it was."""
    async with live_server() as live:
        await live.client("ann")
        app = live.app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: len(rows(app)) == 1)
            main(app).table.focus()
            await pilot.press("m")
            await wait_for(lambda: isinstance(app.screen, ComposeScreen)
                           and app.screen.is_mounted)
            compose = app.screen
            compose.query_one("TextArea").text = "half-written"
            await wait_for(lambda: "Send a message" in drawn(app), interval=0.05)
            await pilot.resize_terminal(60, 15)
            await wait_for(lambda: "too small: 60×15" in drawn(app), interval=0.05)
            assert app.has_class("too-small")
            shown_now = drawn(app)
            assert "Send a message" not in shown_now and "Compose" not in shown_now
            await pilot.resize_terminal(*SIZE)
            await wait_for(lambda: not app.has_class("too-small"))
            await wait_for(lambda: "Send a message" in drawn(app), interval=0.05)
            assert app.screen is compose and compose.text == "half-written"
            assert "too small" not in drawn(app)


def footer_keys(screen: Any) -> dict[str, str]:
    """Key -> description of what the screen's footer shows now (enabled or dimmed)."""
    return {key: active.binding.description
            for key, active in screen.active_bindings.items() if active.binding.show}


async def test_footer_shows_the_keys_that_work_now() -> None:
    """Enter (detail) is in the footer with the table focused; esc, the page keys and
    ctrl+r appear only when they would do something."""
    async with live_server() as live:
        for user in ("ann", "bob", "cy"):
            await live.client(user)
        app = live.app(page_size=2)
        async with app.run_test(size=SIZE) as pilot:
            screen = main(app)
            await wait_for(lambda: len(rows(app)) == 2 and screen.view.has_pages)
            screen.table.focus()
            await wait_for(lambda: footer_keys(screen).get("enter") == "Detail")
            keys = footer_keys(screen)
            assert keys["left_square_bracket"] == "Previous page"
            assert keys["right_square_bracket"] == "Next page"
            assert "escape" not in keys and "ctrl+r" not in keys
            # While the next page is on its way, the page keys stay as the rows
            # shown have them (each change of the keys rebuilds the footer).
            screen.action_next_page()
            assert screen.view.page is None and screen.check_action("previous_page", ())
            await wait_for(lambda: screen.view.page is not None)
            # A filter on its way can be cleared before its rows arrive.
            screen._set_view(screen.view.filtered(parse_filter("user=cy")))
            assert screen.view.page is None and screen.check_action("clear_filter", ())
            # In the open box a / is typed, not a key: only Esc is shown.
            await pilot.press("slash")
            await wait_for(lambda: screen.filter_box.has_focus)
            assert "slash" not in footer_keys(screen) and "escape" in footer_keys(screen)
            await pilot.press("escape")
            await apply_filter(pilot, app, "user=ann")
            await wait_for(lambda: [r["user"] for r in rows(app)] == ["ann"])
            keys = footer_keys(screen)
            assert keys["escape"] == "Show everyone"
            assert "right_square_bracket" not in keys  # one page now
            await pilot.press("escape")
            await wait_for(lambda: screen.view.filter.empty and len(rows(app)) == 2)
            assert "escape" not in footer_keys(screen)


async def test_refused_token_file_is_read_again_on_ctrl_r(tmp_path: Any) -> None:
    """After a refused token, fixing the token file and pressing ctrl+r connects."""
    token_file = tmp_path / "token"
    token_file.write_text("not-the-token\n")
    token_file.chmod(0o600)
    async with live_server() as live:
        await live.client("ann")
        app = ConsoleApp(client_factory(live.control_url, None, str(token_file)),
                         url=live.control_url, refresh_delay=0.01)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.link_state.status == "refused")
            assert "ctrl+r" in footer_keys(main(app))
            token_file.write_text(TOKEN + "\n")
            await pilot.press("ctrl+r")
            await wait_for(lambda: app.link_state.status == "connected")
            await wait_for(lambda: [r["user"] for r in rows(app)] == ["ann"])
            assert "ctrl+r" not in footer_keys(main(app))


async def test_no_token_at_all_is_reported_not_raised(tmp_path: Any, monkeypatch: Any) -> None:
    """Without any token the console runs and says where a token can come from."""
    monkeypatch.delenv("WSCONSOLE_TOKEN", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    app = ConsoleApp(client_factory("ws://127.0.0.1:9", None, None), url="ws://127.0.0.1:9")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.link_state.status == "refused")
        assert "no token" in str(main(app).query_one("#banner").render())
        assert app.is_running


async def test_narrow_terminal_keeps_the_link_health_and_table_rows() -> None:
    """At 80x20 the link's health stays on screen (read-only said once) and the
    event log shrinks so that the table keeps most of the height."""
    async with live_server() as live:
        await live.client("ann")
        app = live.app(token=READ_ONLY)
        async with app.run_test(size=(80, 20)) as pilot:
            await wait_for(lambda: app.link_state.read_only and len(rows(app)) == 1)
            link = main(app).query_one("#link-line")
            assert link.region.right <= 80 and link.region.width > 0
            shown = str(link.render())
            assert shown == "link: connected, read-only"
            assert main(app).event_log.outer_size.height == 5
            assert main(app).table.size.height >= 8


async def test_status_bar_counts_down_to_the_next_attempt() -> None:
    """While the link is down the status bar counts down to the next attempt."""
    async with live_server() as live:
        app = live.app(reconnect_delays=(30.0,))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.link_state.status == "connected")
            live.server.close()
            await live.server.wait_closed()
            await wait_for(lambda: app.link_state.status == "lost")
            status = main(app).query_one("#status")
            assert status.link_display() in ("lost, retrying in 30s", "lost, retrying in 29s")
            # The footer rebuilds itself after the bindings changed: waited for.
            await wait_for(lambda: "ctrl+r" in footer_keys(main(app)))


# Strings a client chooses, written as Rich/Textual markup: each must be shown
# as typed, never restyle the screen, and never raise a MarkupError.
MARKUP_USER = "[bold red]x[/]"
MARKUP_PATH = "/[/oops]"
MARKUP_ROOM = "[link=https://example.invalid]y[/link]"
MARKUP_HEADER = "[link=file:///etc/passwd]click[/link]"


def shown(widget: Any) -> str:
    """The widget's lines as drawn now (border included), as plain text."""
    return "\n".join(widget.render_line(y).text for y in range(widget.outer_size.height))


async def test_client_chosen_markup_is_shown_literally() -> None:
    """User, path, room and header values that look like markup appear as typed in the
    table, the groups, the event log and the detail view, and nothing crashes (the
    dialogs, given the same names: test_widgets)."""
    async with live_server() as live:
        await live.client("ann", "/chat")
        app = live.app()
        # Wide enough for the detail view's whole path and query on one line.
        async with app.run_test(size=(140, SIZE[1])) as pilot:
            await wait_for(lambda: app.link_state.status == "connected")
            # Connected while the console watches, so that the event log names it too.
            # The space is the only character that needs escaping in the query.
            await live.client(quote(MARKUP_USER, safe="[]/"), MARKUP_PATH, room=MARKUP_ROOM,
                              additional_headers={"X-Note": MARKUP_HEADER})
            await wait_for(lambda: len(rows(app)) == 2)
            screen = main(app)
            # The table: the cells as drawn, not as parsed markup.
            await wait_for(lambda: MARKUP_USER in shown(screen.table))
            assert MARKUP_PATH in shown(screen.table)
            # The groups panel: every group named as the client wrote it.
            groups = screen.query_one(GroupsPanel)
            await wait_for(lambda: (("topic", MARKUP_ROOM) in groups._counts
                                        and ("user", MARKUP_USER) in groups._group_nodes))
            await wait_for(lambda: MARKUP_USER in shown(groups))
            labels = {node.label.plain for section in groups.root.children
                      for node in section.children}
            assert {MARKUP_USER, MARKUP_PATH, MARKUP_ROOM} <= {
                label.rsplit(" ", 1)[0].strip() for label in labels}
            groups_text = shown(groups)
            assert MARKUP_USER in groups_text and MARKUP_PATH in groups_text
            # The event log said who connected, as written.
            await wait_for(lambda: any(f"+ {MARKUP_USER} {MARKUP_PATH}" in line
                                           for line in screen.event_log.entries))

            # The detail view: user, path and query, topics and the header value.
            await select_row(pilot, app, lambda r: r["user"] == MARKUP_USER)
            screen.table.focus()
            await pilot.press("enter")
            await wait_for(lambda: isinstance(app.screen, DetailScreen)
                        and app.screen.connection.get("request_headers")
                        and app.screen.connection.get("topics"))
            detail = app.screen
            await wait_for(lambda: MARKUP_ROOM in shown(detail.query_one("#detail-summary")))
            summary = shown(detail.query_one("#detail-summary"))
            assert MARKUP_USER in summary
            query = f"user={quote(MARKUP_USER, safe='[]/')}&room={MARKUP_ROOM}"
            assert f"path  {MARKUP_PATH}?{query}" in summary
            assert f"topics  {MARKUP_ROOM}" in summary
            await wait_for(lambda: MARKUP_HEADER in shown(detail.query_one("#request-headers")))
            assert app.is_running
            assert not any(n.severity == "error" for n in app._notifications)


async def test_client_chosen_control_characters_never_reach_the_terminal() -> None:
    """A user name carrying an escape sequence and a bidi override (percent-encoded
    in the query) shows escaped in the table, the groups and the event log."""
    evil = "eve\x1b[2J\u202e"
    async with live_server() as live:
        app = live.app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.link_state.status == "connected")
            await pilot.press("G")  # the groups panel, hidden at first at this width
            await live.client(quote(evil), "/chat")
            await wait_for(lambda: len(rows(app)) == 1)
            screen = main(app)
            for widget in (screen.table, screen.query_one(GroupsPanel)):
                await wait_for(lambda: "eve\\x1b[2J\\u202e" in shown(widget))
                text = shown(widget)
                assert "eve\\x1b[2J\\u202e" in text and "\x1b" not in text
            await wait_for(lambda: any("eve\\x1b[2J\\u202e" in line
                                           for line in screen.event_log.entries))
            assert not any("\x1b" in line for line in screen.event_log.entries)


async def test_an_action_writes_one_event_log_line() -> None:
    """A send and a disconnect from this console each write one line, the server's
    operator_action, which for the send says delivered and skipped once."""
    async with live_server() as live:
        ann = await live.client("ann")
        bob = await live.client("bob", "/feed")
        app = live.app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: len(rows(app)) == 2)
            log = main(app).event_log
            await select_row(pilot, app, lambda r: r["user"] == "bob")
            main(app).table.focus()
            await pilot.press("m")
            await wait_for(lambda: isinstance(app.screen, ComposeScreen))
            compose = app.screen
            await wait_for(lambda: compose.recipients == 1)
            compose.query_one("TextArea").text = "hello bob"
            await wait_for(lambda: not compose.query_one("#compose-send").disabled)
            await pilot.press("ctrl+s")
            async with asyncio.timeout(TIMEOUT):
                assert await bob.recv() == "hello bob"
            # Both the console's result and the server's event have arrived.
            await wait_for(lambda: isinstance(app.screen, MainScreen)
                        and any(n.title == "Message sent" for n in app._notifications)
                        and any("delivered" in line for line in log.entries))
            log.flush()  # whatever else is queued is written now, and counted
            sent = [line for line in log.entries if "delivered" in line or "sent to" in line]
            assert len(sent) == 1, sent
            assert "operator: send ids=" in sent[0]
            assert "delivered 1, skipped 0" in sent[0]

            await select_row(pilot, app, lambda r: r["user"] == "ann")
            await pilot.press("d")
            await wait_for(lambda: isinstance(app.screen, DisconnectScreen))
            await click(pilot, "#confirm-yes")
            async with asyncio.timeout(TIMEOUT):
                await ann.wait_closed()
            await wait_for(lambda: any(n.title == "Disconnect" for n in app._notifications)
                        and any("operator: disconnect" in line for line in log.entries))
            log.flush()
            actions = [line for line in log.entries if "disconnect" in line.lower()]
            assert len(actions) == 1, actions
            assert "1000" in actions[0] and "count 1" in actions[0]
            said = [n.message for n in app._notifications if n.title == "Disconnect"]
            assert said[-1].startswith("connection ") and said[-1].endswith(
                "(ann on /chat): closing 1 with code 1000"), said


async def test_empty_table_says_so() -> None:
    """With no connections the table says "no connections yet"; with a filter that
    matches none, "no connection matches <filter>"; with rows, nothing."""

    def says(text: str) -> Callable[[], bool]:
        # The message's line as drawn, inside the table's borders, under its header.
        def check() -> bool:
            table = main(app).table
            lines = drawn(app).splitlines()
            y = table.region.y + 1 + table.header_height + 1
            line = lines[y] if y < len(lines) else ""
            return (text in line and line[table.region.x] == "│"
                    and line[table.region.right - 1] == "│")
        return check

    async with live_server() as live:
        app = live.app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(says("no connections yet"), interval=0.05)
            await live.client("ann")
            await wait_for(lambda: len(rows(app)) == 1)
            await wait_for(lambda: "no connections" not in drawn(app), interval=0.05)
            await apply_filter(pilot, app, "user=zed")
            await wait_for(says("no connection matches user=zed"), interval=0.05)


async def test_sort_keys_reorder_the_rows_and_say_how() -> None:
    """`s` sorts by the next column (idle: bob has been idle longest) and `r` reverses
    it; the rows come in the server's order and the title says which way (every
    column's wording: test_view_state)."""
    async with live_server() as live:
        ann = await live.client("ann")
        await live.client("bob")
        await ann.send("hi")
        async with asyncio.timeout(TIMEOUT):
            assert await ann.recv() == "hi"
        app = live.app()
        async with app.run_test(size=SIZE) as pilot:
            screen = main(app)
            await wait_for(lambda: len(rows(app)) == 2
                        and {r["user"]: r["msgs_in"] for r in rows(app)} == {"ann": 1, "bob": 0})

            def shows(label: str, users: list[str]) -> Callable[[], bool]:
                table = screen.table
                return lambda: (table.border_title == f"Connections · sorted by {label}"
                                and [table.summary(str(row.key.value))["user"]
                                     for row in table.ordered_rows] == users)

            await wait_for(shows("age (oldest first)", ["ann", "bob"]))
            await pilot.press("s")  # idle: ann spoke last, so bob has been idle longest
            await wait_for(shows("idle (longest first)", ["bob", "ann"]))
            await pilot.press("r")
            await wait_for(shows("idle (shortest first)", ["ann", "bob"]))


def test_demo_writes_no_log_lines_over_the_tui(capfd: Any) -> None:
    """While `wsconsole demo` runs its TUI, server, websockets and other warnings (the
    slow-consumer one among them) are not written to stderr, even with a handler there."""
    args = argparse.Namespace(host="127.0.0.1", port=0, control_port=0, seed=7, guests=1,
                              no_slow_reader=False)
    handler = logging.StreamHandler(sys.stderr)  # as logging.basicConfig would add
    logging.getLogger().addHandler(handler)
    seen: list[str] = []

    async def drive(app: ConsoleApp) -> None:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: len(rows(app)) >= 3, timeout=3 * TIMEOUT)
            for name in ("wsconsole.server", "websockets.server", "asyncio", "some.library", ""):
                logging.getLogger(name).warning(
                    "closing slow consumer c1 (user slow): 2000000 bytes buffered")
            seen.extend(main(app).event_log.entries)

    try:
        assert run_demo(args, run=drive) == 0
        assert seen  # the demo ran, with the console attached
        captured = capfd.readouterr()
        assert "slow consumer" not in captured.err and "slow consumer" not in captured.out
        assert captured.err == ""
        # Logging works again once the TUI has gone.
        logging.getLogger("some.library").warning("after the TUI")
        assert "after the TUI" in capfd.readouterr().err
    finally:
        logging.getLogger().removeHandler(handler)
