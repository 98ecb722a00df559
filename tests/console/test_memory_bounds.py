"""The console's memory stays bounded however long it runs.

``wsconsole demo`` once grew by about 20 MB a minute: every rebuild of the
footer kept the previous keys alive. Each test drives the real ``ConsoleApp``
(``run_test``) against a real embedded server on loopback, and checks a bound
an operator relies on: the footer keeps nothing per change of its keys, the event log
the last ``MAX_LINES`` lines. ``tests/benchmarks/soak.py`` is the long version.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any, AsyncIterator, Callable

from textual.widget import Widget
from websockets.asyncio.client import connect

from wsconsole.console.app import ConsoleApp
from wsconsole.console.client import ControlClient
from wsconsole.console.widgets import KeysFooter, event_log
from wsconsole.server import serve
from wsconsole.server.config import ControlConfig
from wsconsole.server.demo_app import demo_handler

from tests.helpers import TIMEOUT

TOKEN = "operator-token-for-memory-tests"
SIZE = (120, 40)


@contextlib.asynccontextmanager
async def console_on_live_server() -> AsyncIterator[tuple[Any, ConsoleApp, Any]]:
    """A demo server with its control plane, and the console attached (headless)."""
    server = serve(demo_handler, "127.0.0.1", 0, node="memory",
                   control=ControlConfig(host="127.0.0.1", port=0, token=TOKEN))
    await server
    url = server.control.url
    app = ConsoleApp(lambda: ControlClient(url, TOKEN), url=url,
                     poll_interval=0.2, stats_interval=0.2, refresh_delay=0.01,
                     min_refresh_interval=0.05)  # throttle: test_refresh.py
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.link_state.status == "connected")
            yield server, app, pilot
    finally:
        server.close()
        async with asyncio.timeout(TIMEOUT):
            await server.wait_closed()


async def until(pilot: Any, condition: Callable[[], Any], timeout: float = TIMEOUT) -> None:
    """Let the app run until ``condition()`` is true; fail after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not condition():
            await pilot.pause(0.02)


def live_widgets() -> int:
    """Textual widgets still alive anywhere (mounted or not), after a collection."""
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, Widget))


async def test_footer_keeps_nothing_per_change_of_its_keys() -> None:
    """As connections come and go, the footer's keys change each time (D works
    only while there are rows); afterwards no more widgets are alive than
    before: the footer draws its keys in place, one widget, nothing kept per change."""
    async with console_on_live_server() as (server, app, pilot):
        screen = app.main_screen
        footer = screen.query_one(KeysFooter)

        def shows_row_keys() -> bool:
            # "Disconnect all shown" works while there are rows, dimmed without.
            return "disconnect_group" in {key.action for key in footer.drawn if key.enabled}

        await until(pilot, lambda: footer.is_current() and not shows_row_keys())
        widgets = live_widgets()
        changes = footer.changes

        async def keys_changed_after(change: Any, rows: int) -> Any:
            result = await change()
            await until(pilot, lambda: screen.table.row_count == rows and footer.is_current()
                        and shows_row_keys() == bool(rows))
            return result

        for n in range(3):
            ws = await keys_changed_after(
                lambda: connect(f"ws://127.0.0.1:{server.port}/chat?user=u{n}"), 1)
            await keys_changed_after(ws.close, 0)
        assert footer.changes >= changes + 6
        assert not footer.children
        # Textual's Footer mounted a widget per key at each change and, until
        # KeysFooter dropped them, kept every earlier set alive (Textual issue 6666).
        assert live_widgets() <= widgets


async def test_event_log_keeps_the_last_max_lines_lines(monkeypatch: Any) -> None:
    """Past MAX_LINES events, the log holds exactly the newest MAX_LINES lines."""
    # A smaller bound than the real one, read where the real one is: a rendered
    # line costs milliseconds, and 2,000 of them would make this test slow.
    monkeypatch.setattr(event_log, "MAX_LINES", 200)
    async with console_on_live_server() as (server, app, pilot):
        log = app.main_screen.event_log
        await until(pilot, lambda: log.entries)  # "connected to ..."
        assert log.max_lines == event_log.MAX_LINES
        total = event_log.MAX_LINES + 150
        for n in range(1, total + 1):
            # A real event through the real control plane: one log line each.
            server.hub.emit("slow_consumer", {"id": f"c{n}", "user": f"user-{n}",
                                              "path": "/feed", "buffered": 2**20})
        await until(pilot, lambda: f"user-{total} " in log.entries[-1])
        assert len(log.entries) == event_log.MAX_LINES
        assert len(log.shown) == event_log.MAX_LINES
        assert f"user-{total - event_log.MAX_LINES + 1} " in log.entries[0]
