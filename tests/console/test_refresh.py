"""How often the console asks for its page, and what it asks for: coalesced under
churn, and the group counts only when they changed (a real server and clients)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.helpers import wait_for
from wsconsole.console.app import ConsoleApp
from wsconsole.console.client import ControlClient
from wsconsole.console.widgets import GroupsPanel

from .test_app import SIZE, TOKEN, live_server, main, rows


class RecordingClient(ControlClient):
    """A control client that notes each ``list`` it sends and what came back."""

    def __init__(self, url: str, log: list[tuple[float, dict[str, Any], dict[str, Any]]]) -> None:
        super().__init__(url, TOKEN)
        self.log = log

    async def list_connections(self, **kwargs: Any) -> dict[str, Any]:
        sent = time.monotonic()
        page = await super().list_connections(**kwargs)
        self.log.append((sent, kwargs, page))
        return page


def recording_app(url: str, log: list[Any], **kwargs: Any) -> ConsoleApp:
    return ConsoleApp(lambda: RecordingClient(url, log), url=url, **kwargs)


async def test_a_burst_of_connections_is_fetched_at_most_every_min_refresh_interval():
    """Connections opening one after another make the console ask for its page at
    most every ``min_refresh_interval``, not after each event, and it ends up
    showing all of them."""
    log: list[Any] = []
    async with live_server() as live:
        await live.client("ann")
        app = recording_app(live.control_url, log, refresh_delay=0.01,
                            min_refresh_interval=0.5)
        async with app.run_test(size=SIZE):
            await wait_for(lambda: len(rows(app)) == 1)
            for n in range(12):
                await live.client(f"guest-{n}")
            await wait_for(lambda: len(rows(app)) == 13)
    sent = [at for at, _, _ in log]
    gaps = [later - earlier for earlier, later in zip(sent, sent[1:])]
    # Half the interval: a request is timed when its worker starts, which a
    # busy machine may delay for one and not the next. Unthrottled, each
    # event asked after 10 ms.
    assert gaps and min(gaps) >= 0.25, gaps


async def test_unchanged_groups_are_not_sent_again_and_stay_shown():
    """While nobody comes, goes or joins, each request carries the groups version it
    holds and the reply has no groups; the panel keeps its counts, and a new
    connection's group appears with the next page."""
    log: list[Any] = []
    async with live_server() as live:
        await live.client("ann")
        app = recording_app(live.control_url, log, refresh_delay=0.01, poll_interval=0.05,
                            min_refresh_interval=0.05)
        async with app.run_test(size=SIZE):
            groups = main(app).query_one(GroupsPanel)
            await wait_for(lambda: sum(1 for _, sent, page in log
                                       if "groups_since" in sent and "groups" not in page) >= 3)
            assert groups._counts.get(("user", "ann")) == 1
            await live.client("bob")
            await wait_for(lambda: groups._counts.get(("user", "bob")) == 1)
            assert groups._counts.get(("user", "ann")) == 1


class SlowClient(RecordingClient):
    """A control plane that takes longer to answer than the console's refreshes."""

    async def list_connections(self, **kwargs: Any) -> dict[str, Any]:
        await asyncio.sleep(0.25)
        return await super().list_connections(**kwargs)


async def test_pages_get_through_from_a_server_slower_than_the_refreshes():
    """When each page takes longer than the interval between refreshes, the console
    waits for the page on its way instead of cancelling it for the next one, so
    the table fills and keeps being updated."""
    log: list[Any] = []
    async with live_server() as live:
        await live.client("ann")
        url = live.control_url
        app = ConsoleApp(lambda: SlowClient(url, log), url=url, refresh_delay=0.01,
                         poll_interval=0.05, min_refresh_interval=0.05)
        async with app.run_test(size=SIZE):
            await wait_for(lambda: len(rows(app)) == 1)
            await live.client("bob")
            await wait_for(lambda: len(rows(app)) == 2)
            await wait_for(lambda: len(log) >= 4)


async def test_stats_samples_repaint_what_shows_them_not_the_whole_screen(monkeypatch: Any):
    """Stats samples keep coming (here ten a second) and the status bar shows each,
    without the whole screen being drawn again for each sample: that cost a full
    frame a second at 10,000 connections. Pins Textual's
    ``Compositor.render_full_update``, counted here."""
    from textual._compositor import Compositor

    from wsconsole.console.widgets import StatusBar

    full_frames = [0]
    render_full_update = Compositor.render_full_update

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        full_frames[0] += 1
        return render_full_update(self, *args, **kwargs)

    monkeypatch.setattr(Compositor, "render_full_update", counting)
    async with live_server() as live:
        await live.client("ann")
        app = recording_app(live.control_url, [], stats_interval=0.1)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: len(rows(app)) == 1 and app.stats)
            await pilot.pause()
            await pilot.pause()
            # The first frames (the screen shown, the focus set) redraw it all:
            # one drawn after them, the screen has nothing left to draw.
            await app.main_screen.wait_for_refresh()
            samples: list[Any] = []
            app.watch(app, "stats", lambda sample: samples.append(sample), init=False)
            full_frames[0] = 0
            await wait_for(lambda: len(samples) >= 5)
            await pilot.pause()
            assert "1 connection" in app.main_screen.query_one(StatusBar).query_one(
                "#status-line").shown
            # One for the start settling (the focus given), at most: not one a sample.
            assert full_frames[0] <= 1
