"""The Textual application of ``wsconsole console``: the control link and the screens.

The app owns the control link: one worker connects, says hello, subscribes,
reads the event stream and reconnects with backoff. What several screens show
lives here, where each of them can follow it: the link's state, the latest
stats sample and what is known of the nodes are reactives (``link_state``,
``stats``, ``nodes``), the server's other events a signal (``server_events``).
No screen looks for another one.

Takes a factory of control clients (so a test, the demo and the command line
each say where the control plane is and with which token). Imports from the
server only its wire format, errors and shared vocabulary.
"""

from __future__ import annotations

import asyncio
import os
import time
from functools import partial
from typing import Any, Callable, ClassVar, Iterable

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.reactive import reactive
from textual.screen import Screen
from textual.signal import Signal
from textual.worker import Worker

from wsconsole.server.errors import (
    ControlError,
    NotAControlPlane,
    Unauthorized,
    WsconsoleError,
)
from wsconsole.server.protocol import EventKind
from wsconsole.server.wire import Event

from .link import (
    RECONNECT_DELAYS,
    ClientFactory,
    ControlLink,
    LinkState,
    LinkStatus,
    reconnect_delay,
    with_escalation,
    with_state_change,
)
from .messages import (
    ControlLinked,
    ControlLinkLost,
    EventsReceived,
    NodesListed,
    StatsSampled,
)
from .screens.ended import ServerStoppedScreen
from .screens.main import MainScreen
from .formatting import ViewFilter
from .view_state import NODE_EVENT, PAGE_SIZE, KnownNodes
from .widgets import too_small
from .widgets.event_log import BACKLOG

__all__ = ["ConsoleApp", "screenshot_directory"]


class ConsoleApp(App[None]):
    """The wsconsole console: watch and operate one live WebSocket server."""

    TITLE = "wsconsole"
    ENABLE_COMMAND_PALETTE = True

    # Too small (a class the app sets on itself): a screen shows only its
    # TooSmallNotice, and a dialog hides and turns transparent so that the
    # notice of the screen beneath it shows, instead of drawing over it.
    CSS = """
    ConsoleApp.too-small Screen > * {
        display: none;
    }
    ConsoleApp.too-small Screen > TooSmallNotice {
        display: block;
    }
    ConsoleApp.too-small ModalScreen {
        background: $background 0%;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="quit", tooltip="Quit the console (the server keeps running, "
                "except in the demo)"),
        Binding("ctrl+c", "quit", "Quit", id="quit_ctrl_c", show=False, priority=True,
                tooltip="Quit the console"),
    ]

    # State, not pictures: the screens that follow it draw what changed. (A
    # reactive of the App repaints the whole screen by default: a stats sample
    # each second and the nodes every two cost a full frame each, about 13 ms
    # at 120x40 with 10,000 connections.)
    link_state: reactive[LinkState] = reactive(LinkState(), init=False, repaint=False)
    """The control link's state; the main screen, the detail view and the
    shutdown dialog follow it."""
    stats: reactive[dict[str, Any]] = reactive(dict, init=False, repaint=False)
    """The latest stats sample, with the state changes since applied."""
    nodes: reactive[KnownNodes] = reactive(KnownNodes, init=False, repaint=False)
    """The last answer of ``nodes``: each node's state, health, connections and
    rates, and the nodes that did not answer."""

    def __init__(
        self,
        client_factory: ClientFactory,
        *,
        url: str = "",
        clock: Callable[[], float] = time.time,
        reconnect_delays: tuple[float, ...] = RECONNECT_DELAYS,
        poll_interval: float = 1.0,
        stats_interval: float = 1.0,
        nodes_interval: float = 2.0,
        refresh_delay: float = 0.2,
        min_refresh_interval: float = 1.0,
        page_size: int = PAGE_SIZE,
        node: str | None = None,
    ) -> None:
        super().__init__()
        self.link = ControlLink(client_factory, url)
        """The control client the screens' workers use, while the link is up."""
        self.clock = clock
        """Wall-clock time for ages and log lines (frozen in the screenshots)."""
        self.reconnect_delays = reconnect_delays
        self.stats_interval = stats_interval
        """Seconds between the stats samples the server streams."""
        self.nodes_interval = nodes_interval
        """Seconds between two requests for the nodes (a node event asks at once)."""
        self._nodes_worker: Worker[None] | None = None
        self.server_events: Signal[tuple[Event, ...]] = Signal(self, "server_events")
        """Every event of the server's stream but ``stats``, as they arrive: in
        batches of those that came together (hundreds a second under churn;
        a batch costs the screens one call, not one per event)."""
        self.main_screen = MainScreen(clock=clock, poll_interval=poll_interval,
                                      refresh_delay=refresh_delay, page_size=page_size,
                                      min_refresh_interval=min_refresh_interval,
                                      view_filter=ViewFilter(node=node))
        """The screen under every dialog."""
        self.sub_title = url

    def on_mount(self) -> None:
        # Pushed rather than returned by get_default_screen, so that Textual
        # loads the screen's .tcss (it does so only for pushed screens).
        self.push_screen(self.main_screen)
        self.run_link()
        self.set_interval(self.nodes_interval, self.refresh_nodes)

    def on_resize(self, event: Resize) -> None:
        # Here, not per screen: a dialog over a screen must know it too.
        self.set_class(too_small(event.size), "too-small")

    # The control link

    @work(exclusive=True, group="link", exit_on_error=False)
    async def run_link(self) -> None:
        """Keep the control link up: connect, subscribe, read events, reconnect."""
        failures = 0
        while True:
            client: Any = None
            try:
                # Inside the try: the factory reads the token, and may find none.
                client = self.link.factory()
                hello = await client.connect()
                # The events of before: the log shows them first, marked.
                await client.subscribe(stats_interval=self.stats_interval, backlog=BACKLOG)
            except Unauthorized as exc:
                await _close_quietly(client)
                # A refused token stays refused: stop, and let the operator retry.
                self.post_message(ControlLinkLost(exc.message, None,
                                                  stopped=LinkStatus.REFUSED))
                return
            except NotAControlPlane as exc:
                await _close_quietly(client)
                # Each attempt would be a new connection to an application,
                # carrying the operator's token: none until the operator asks.
                self.post_message(ControlLinkLost(exc.message, None,
                                                  stopped=LinkStatus.NOT_CONTROL_PLANE))
                return
            except WsconsoleError as exc:
                await _close_quietly(client)
                failures += 1
                delay = reconnect_delay(self.reconnect_delays, failures)
                self.post_message(ControlLinkLost(exc.message, delay))
                await asyncio.sleep(delay)
                continue
            failures = 0
            self.link.client = client
            self.post_message(ControlLinked(hello))
            reason = "the control plane closed the connection"
            try:
                async for batch in client.event_batches():
                    others = []
                    for event in batch:
                        if event.kind == EventKind.STATS:
                            if others:  # in the order they came
                                self.post_message(EventsReceived(tuple(others)))
                                others = []
                            self.post_message(StatsSampled(event.data or {}))
                        else:
                            others.append(event)
                    if others:
                        self.post_message(EventsReceived(tuple(others)))
                # How it ended, in the client's words: "closed by the server
                # (code 1001: ...)", "was lost without a close frame (...)".
                closed = getattr(client, "closed_reason", None)
                if isinstance(closed, str) and closed:
                    reason = f"the control connection {closed}"
            except ControlError as exc:
                reason = exc.message
            finally:
                self.link.client = None
                await _close_quietly(client)
            failures = 1
            delay = reconnect_delay(self.reconnect_delays, failures)
            self.post_message(ControlLinkLost(reason, delay))
            await asyncio.sleep(delay)

    def watch_link_state(self, state: LinkState) -> None:
        self.link.state = state

    @on(ControlLinked)
    def _linked(self, message: ControlLinked) -> None:
        self.link_state = self.link_state.connected(message.hello)
        self.refresh_nodes()

    def refresh_nodes(self) -> None:
        """Ask for the nodes, unless the link is down or a request is on its way
        (held to its deadline by a node that does not answer)."""
        if self.link_state.up and not (self._nodes_worker is not None
                                       and self._nodes_worker.is_running):
            self._nodes_worker = self._list_nodes()

    @work(exclusive=True, group="nodes", exit_on_error=False)
    async def _list_nodes(self) -> None:
        try:
            result = await self.link.require().nodes()
        except WsconsoleError:
            return  # the link's own failure is said by the link; the next poll retries
        if isinstance(result, dict):
            nodes = [n for n in result.get("nodes") or () if isinstance(n, dict)]
            missing = result.get("missing")
            self.post_message(NodesListed(nodes, dict(missing) if isinstance(missing, dict)
                                          else {}))

    @on(NodesListed)
    def _nodes_listed(self, message: NodesListed) -> None:
        self.nodes = KnownNodes(tuple(message.nodes), message.missing)

    @on(ControlLinkLost)
    def _link_lost(self, message: ControlLinkLost) -> None:
        before = self.link_state
        if before.status == LinkStatus.ENDED:
            return  # the server has stopped: the link worker's last words change nothing
        now = self.clock()
        if message.stopped == LinkStatus.REFUSED:
            self.link_state = before.refused(message.reason, now)
        elif message.stopped == LinkStatus.NOT_CONTROL_PLANE:
            self.link_state = before.not_control_plane(message.reason, now)
        elif message.stopped == LinkStatus.ENDED:
            self.link_state = before.ended(message.reason, now)
        else:
            self.link_state = before.lost(message.reason, message.retry_in, now)
        # Said where the operator is, dialog or not; a failed retry is not news.
        if before.up or message.stopped:
            title = {LinkStatus.REFUSED: "Token refused",
                     LinkStatus.NOT_CONTROL_PLANE: "Not a control plane",
                     LinkStatus.ENDED: "Server stopped"}.get(message.stopped,
                                                             "Control link lost")
            self.notify(message.reason, title=title, severity="error", markup=False)

    @on(StatsSampled)
    def _stats_sampled(self, message: StatsSampled) -> None:
        self.stats = message.stats

    @on(EventsReceived)
    def _events_received(self, message: EventsReceived) -> None:
        for event in message.events:
            if event.kind == EventKind.STATE_CHANGED and isinstance(event.data, dict):
                if event.data.get("node") in (None, self.link_state.hello.get("node")):
                    self.stats = with_state_change(self.stats, event.data)
                else:
                    # Another node of the cluster: its state is in the nodes
                    # group, not in this node's status.
                    self.refresh_nodes()
            if event.kind == EventKind.DRAIN_ESCALATED and isinstance(event.data, dict):
                self.stats = with_escalation(self.stats, event.data,
                                             self.link_state.hello.get("node"))
            if event.kind == NODE_EVENT:
                # A node joined, went or changed: the whole picture, at once.
                self.refresh_nodes()
        self.server_events.publish(message.events)

    def action_reconnect(self) -> None:
        """Retry the control link now (cancels the backoff wait)."""
        self.link_state = self.link_state.connecting()
        self.run_link()

    def server_stopped(self, reason: str) -> None:
        """The server this console runs beside (the demo's) has stopped for good:
        stop the link, say so, and offer to quit (Quit focused; Stay keeps the
        last data on screen, marked stale)."""
        self.workers.cancel_group(self, "link")
        self.link.client = None
        # At once, not by a message: one the link worker posted before it was
        # cancelled (lost, retrying) must not come after this.
        self.link_state = self.link_state.ended(reason, self.clock())

        def chosen(quit_now: bool | None) -> None:
            if quit_now:
                self.exit()

        self.push_screen(ServerStoppedScreen(reason), chosen)

    # The command palette

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """The main screen's actions that are possible now, then the few of
        Textual's own that are true here (theme, screenshot, quit).

        Textual's others are left out: "Copy selected text" names ctrl+c, which
        quits here; "Focus next", "Keys" and "Maximize" duplicate our own keys
        and help (?) or do nothing useful on these screens.
        """
        main = self.main_screen
        if main.is_mounted:
            ours = {binding.id for binding in main.BINDINGS if isinstance(binding, Binding)}
            for _, binding in main._bindings:
                if not binding.description or binding.system or binding.id not in ours:
                    continue
                if main.check_action(binding.action, ()) is not True:
                    continue
                key = self.get_key_display(binding)
                yield SystemCommand(
                    binding.description,
                    f"{binding.tooltip} ({key})" if binding.tooltip else key,
                    partial(self._run_main_action, binding.action),
                )
        yield SystemCommand("Theme", "Change the console's colours", self.action_change_theme)
        yield SystemCommand(
            "Screenshot",
            f"Save an SVG of the screen in {screenshot_directory()}",
            lambda: self.set_timer(0.1, self.save_screen),
        )
        yield SystemCommand("Quit", "Quit the console (q, ctrl+c)", self.action_quit)

    def save_screen(self) -> str | None:
        """Save an SVG of the screen where :func:`screenshot_directory` says, and
        say where (or why not); the path, or None when it could not be written."""
        folder = screenshot_directory()
        try:
            path = self.save_screenshot(path=folder)
        except OSError as exc:
            self.notify(f"Could not write it in {folder}: {exc.strerror or exc}",
                        title="Screenshot not saved", severity="error", markup=False)
            return None
        self.notify(path, title="Screenshot saved", markup=False)
        return path

    def _run_main_action(self, action: str) -> None:
        # The palette acts on the main screen; a dialog over it would hide the result.
        main = self.main_screen
        while self.screen is not main and len(self.screen_stack) > 2:
            self.pop_screen()
        self.call_later(main.run_action, action)


def screenshot_directory() -> str:
    """Where a screenshot goes: ``~/Downloads`` if it exists, else the current
    directory (Textual's own choice is Downloads alone, and it fails without it)."""
    downloads = os.path.join(os.path.expanduser("~"), "Downloads")
    return downloads if os.path.isdir(downloads) else os.getcwd()


async def _close_quietly(client: Any) -> None:
    if client is None:
        return
    try:
        await client.close()
    except Exception:  # closing a broken link must never raise into the UI
        pass
