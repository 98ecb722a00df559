"""The console's tap screen against a real embedded server and real clients.

``ConsoleApp.run_test()`` on loopback; each test waits for what is drawn or
held, never for time.
"""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator

from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import TIMEOUT, wait_for
from wsconsole.console.app import ConsoleApp
from wsconsole.console.client import ControlClient
from wsconsole.console.screens import DetailScreen, MainScreen, TapScreen
from wsconsole.server import serve
from wsconsole.server.config import ControlConfig
from wsconsole.server.demo_app import demo_handler

TOKEN = "operator-token-for-tap-screen-tests"
SIZE = (100, 30)


@contextlib.asynccontextmanager
async def live(allow_tap: bool = True) -> AsyncIterator[Any]:
    async with serve(demo_handler, "127.0.0.1", 0, node="test-node", allow_tap=allow_tap,
                     control=ControlConfig(host="127.0.0.1", port=0, token=TOKEN)) as server:
        yield server


def console(server: Any) -> ConsoleApp:
    url = f"ws://127.0.0.1:{server.control.port}"
    return ConsoleApp(lambda: ControlClient(url, TOKEN), url=url, refresh_delay=0.01,
                      min_refresh_interval=0.05)


async def client(server: Any, user: str) -> ClientConnection:
    return await connect(f"ws://127.0.0.1:{server.port}/chat?user={user}")


def log_text(screen: TapScreen) -> str:
    return "\n".join(strip.text for strip in screen.log_widget.lines)


def header_text(screen: TapScreen) -> str:
    return str(screen.query_one("#tap-header").render())


async def test_the_detail_views_tap_scrolls_live_pauses_and_stops():
    """T in the detail view taps that connection: its messages scroll in both
    directions, escaped; space holds what arrives and shows it on resume; esc
    stops the tap (the server's audit says stopped) and goes back."""
    async with live() as server, await client(server, "ann") as ann:
        app = console(server)
        async with app.run_test(size=SIZE) as pilot:
            table = app.main_screen.table
            await wait_for(lambda: table.row_count == 1)
            table.focus()
            await pilot.press("enter")
            await wait_for(lambda: isinstance(app.screen, DetailScreen))
            await pilot.press("T")
            await wait_for(lambda: isinstance(app.screen, TapScreen) and app.screen.tap)
            screen = app.screen
            assert "connection" in header_text(screen) and "ann" in header_text(screen)
            await ann.send("hello\x1b[2J")
            assert await ann.recv() == "hello\x1b[2J"
            await wait_for(lambda: log_text(screen).count('"hello\\x1b[2J"') == 2)
            assert " in  text" in log_text(screen) and " out text" in log_text(screen)
            assert "\x1b" not in log_text(screen)
            await pilot.press("space")
            await wait_for(lambda: screen.paused)
            await ann.send("while paused")
            await ann.recv()
            await wait_for(lambda: len(screen.held) == 2)
            assert "while paused" not in log_text(screen) and "2 held" in header_text(screen)
            await pilot.press("space")
            await wait_for(lambda: log_text(screen).count("while paused") == 2)
            assert "4 shown" in header_text(screen)
            tap_id = screen.tap["tap"]
            await pilot.press("escape")
            await wait_for(lambda: isinstance(app.screen, DetailScreen))
            await wait_for(lambda: not server.hub.taps.taps)
            assert tap_id not in server.hub.taps.taps
            # Every console's event log says who tapped whom, and what it showed.
            log = app.main_screen.event_log
            await wait_for(lambda: any("tap_end" in line and "stopped, 4 shown, 0 dropped"
                                       in line for line in log.entries))
            assert any("operator: tap_start ids=" in line for line in log.entries)


async def test_a_tap_on_the_current_group_shows_drops_and_every_console_sees_it():
    """T on the main screen taps the filtered group; a flood past the tap's rate
    shows as drops in the header; the status bar says TAP while it runs."""
    async with live() as server, await client(server, "ann") as ann, \
            await client(server, "bob") as bob:
        app = console(server)
        async with app.run_test(size=SIZE) as pilot:
            main: MainScreen = app.main_screen
            await wait_for(lambda: main.table.row_count == 2)
            await pilot.press("slash")
            await wait_for(lambda: main.filter_box.has_focus)
            main.filter_box.value = "user=bob"
            await pilot.press("enter")
            await wait_for(lambda: main.table.row_count == 1)
            await pilot.press("T")
            await wait_for(lambda: isinstance(app.screen, TapScreen) and app.screen.tap)
            screen = app.screen
            assert screen.tap["selector"] == {"user": "bob"}
            await ann.send("not shown")
            for index in range(200):
                await bob.send(f"tick {index}")
            for _ in range(200):
                await bob.recv()
            await wait_for(lambda: screen.dropped > 0 and screen.shown > 0)
            await wait_for(lambda: f"{screen.dropped} dropped" in header_text(screen))
            assert "not shown" not in log_text(screen)
            status = main.query_one("#status")
            await wait_for(lambda: bool(status.stats.get("taps")), timeout=TIMEOUT * 2)
            await pilot.press("escape")
            await wait_for(lambda: isinstance(app.screen, MainScreen))


async def test_a_server_that_does_not_allow_taps_says_so():
    """Off on the server: the screen says the tap ended and why, in the server's words."""
    async with live(allow_tap=False) as server:
        app = console(server)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("T")
            await wait_for(lambda: isinstance(app.screen, TapScreen)
                           and app.screen.ended is not None)
            assert "--allow-tap" in app.screen.ended
            assert "ended:" in header_text(app.screen)
