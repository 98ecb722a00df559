"""The detail view of one connection: headers as redacted by the server, and more.

A worker fetches the connection every second, and at once when the server
says it closed; the view follows the app's link state for the keys that need
the link up. Beside the summary, the connection's own events (those the
console received, its backlog included, then live ones); header values wrap
instead of being cut. Once it has closed, the view says with which code and
reason (from its ``connection_closed`` event), and message, disconnect and
tap are no longer offered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, cast

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Key
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from wsconsole.server.errors import UnknownConnection, WsconsoleError
from wsconsole.server.protocol import EventKind
from wsconsole.server.wire import Event

from ..event_view import is_about
from ..formatting import (
    describe_close,
    describe_connection,
    human_bytes,
    human_duration,
    human_latency,
    literal,
)
from ..link import LinkState, stale_note
from ..messages import CommandFailed
from ..output import printable
from ..view_state import refusal
from ..widgets import KeysFooter, TooSmallNotice
from ..widgets.event_log import describe_event
from .compose import ComposeScreen
from .confirm import DisconnectScreen, run_disconnect
from .tap import TapScreen

if TYPE_CHECKING:  # pragma: no cover - the app module imports the screens
    from ..app import ConsoleApp

__all__ = ["DetailScreen", "MAX_EVENTS"]

MAX_EVENTS = 50
"""The connection's events the view keeps (its newest)."""
_NAME_WIDTH = 28
"""A header name wider than this wraps too."""


class DetailScreen(Screen[None]):
    """Everything the server knows about one connection, refreshed every second."""

    CSS_PATH = "detail.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Back", id="detail_back",
                tooltip="Back to the connection table"),
        Binding("m", "send", "Message", id="detail_send",
                tooltip="Compose a message to this connection"),
        Binding("d", "disconnect", "Disconnect", id="detail_disconnect",
                tooltip="Close this connection (asks first)"),
        Binding("T", "tap", "Tap", id="detail_tap",
                tooltip="Watch this connection's messages live (the server must allow taps)"),
    ]

    @dataclass
    class ConnectionFetched(Message):
        """The full record of the connection arrived (``get``); empty once it is gone."""

        connection: dict[str, Any]

    def __init__(self, summary: dict[str, Any], *, clock: Callable[[], float] = time.time,
                 interval: float = 1.0, events: list[Event] | None = None) -> None:
        super().__init__()
        self.history: list[Event] = list(events or ())[-MAX_EVENTS:]
        """This connection's events, oldest first: those received before the
        view opened (the main screen's event log), then live ones."""
        self.connection_id: str = summary["id"]
        self.connection: dict[str, Any] = dict(summary)
        """The last record received (the summary from the table until ``get`` answers)."""
        self.closed = False
        """True once the server no longer knows the connection."""
        self.clock = clock
        self.interval = interval

    def compose(self) -> ComposeResult:
        # The summary across the top; under it the request headers, and the
        # response headers over the connection's events, which take the rest
        # of the height.
        with Vertical(id="detail-body"):
            yield Static(id="detail-summary")
            with Horizontal(id="detail-columns"):
                yield DataTable(id="request-headers", cursor_type="row", zebra_stripes=True)
                with Vertical(id="detail-right"):
                    yield DataTable(id="response-headers", cursor_type="row",
                                    zebra_stripes=True)
                    with VerticalScroll(id="detail-events"):
                        yield Static(id="detail-events-text")
        yield TooSmallNotice()
        yield KeysFooter()

    def on_mount(self) -> None:
        request = self.query_one("#request-headers", DataTable)
        response = self.query_one("#response-headers", DataTable)
        request.border_title = "Request headers"
        response.border_title = "Response headers"
        self.query_one("#detail-events").border_title = "Events of this connection"
        self._show()
        self.fetch()
        self.set_interval(self.interval, self.fetch)
        self.watch(self.console, "link_state", self._link_changed, init=False)
        self.console.server_events.subscribe(self, self._server_events)

    @property
    def console(self) -> ConsoleApp:
        """The app, which owns the control link."""
        return cast("ConsoleApp", self.app)

    def _link_changed(self, state: LinkState) -> None:
        self.refresh_bindings()
        self._show()  # stale, or no longer

    def _server_events(self, events: tuple[Event, ...]) -> None:
        mine = [event for event in events if is_about(event, self.connection_id)]
        if not mine:
            return
        self.history = [*self.history, *mine][-MAX_EVENTS:]
        if any(event.kind == EventKind.CONNECTION_CLOSED for event in mine):
            # Its code and reason, even if a fetch found it gone first; and
            # fetch now, so the view says closed without waiting for the next second.
            self._show()
            self.fetch()
        else:
            self._show_events()

    @property
    def closed_with(self) -> dict[str, Any] | None:
        """The ``connection_closed`` event's data, once it has arrived."""
        for event in reversed(self.history):
            if event.kind == EventKind.CONNECTION_CLOSED and isinstance(event.data, dict):
                return event.data
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("send", "disconnect", "tap"):
            if self.closed:
                return False  # nobody to act on any more: not offered
            link = self.console.link_state
            if link.read_only or not link.up:
                return None
        return True

    def on_key(self, event: Key) -> None:
        # As on the main screen: a key the link forbids (a read-only token, the
        # link down) is dimmed and does nothing; say why, rather than nothing.
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            why = refusal(binding.action, self.console.link_state)
            if why is not None and self.check_action(binding.action, ()) is None:
                self.notify(why, title="Not sent", severity="warning", markup=False,
                            timeout=3)
                return

    def on_resize(self) -> None:
        # The header tables' columns are as wide as the screen allows: again.
        for selector in ("#request-headers", "#response-headers"):
            self.query_one(selector, DataTable)._shown = None  # type: ignore[attr-defined]
        self._show_headers()

    @work(exclusive=True, group="detail", exit_on_error=False)
    async def fetch(self) -> None:
        """Get the connection in full; stop refreshing once it is gone."""
        link = self.console.link
        if self.closed or link.client is None:
            return
        try:
            result = await link.require().get(self.connection_id)
        except UnknownConnection:
            # The client raises the server's own class: the connection closed.
            self.post_message(self.ConnectionFetched({}))
            return
        except WsconsoleError as exc:
            self.post_message(CommandFailed("Connection detail", exc.message))
            return
        self.post_message(self.ConnectionFetched(result))

    @on(ConnectionFetched)
    def _fetched(self, message: ConnectionFetched) -> None:
        message.stop()
        if not message.connection:
            self.closed = True
            self.refresh_bindings()
        else:
            self.connection = message.connection
        self._show()

    @on(CommandFailed)
    def _failed(self, message: CommandFailed) -> None:
        message.stop()
        self.notify(message.message, title=message.title, severity="error", markup=False)

    def _show(self) -> None:
        c = self.connection
        now = self.clock()
        grid = Table.grid(padding=(0, 2))
        # Values wrap (a long path, query or address), never cut.
        grid.add_column(style="dim", justify="right", no_wrap=True)
        grid.add_column(overflow="fold")
        grid.add_column(style="dim", justify="right", no_wrap=True)
        grid.add_column(overflow="fold")
        title = Text.assemble(("connection ", "dim"), (str(c["id"]), "bold"))
        if self.closed:
            title.append("  closed", style="bold red")
        link = self.console.link_state
        if not link.up:
            # Nothing is fetched while the link is down: what is shown is as of then.
            title.append(f"  {stale_note(link.down_since) if link.stale else 'not connected'}"
                         ": the link is down", style="bold yellow")
        close = self.closed_with
        # Every value below comes from a client or the server: a str cell of a
        # Rich table is markup, so they are Text.
        query = f"?{c['query']}" if c.get("query") else ""
        grid.add_row("user", literal(c.get("user"), "bold"), "node", literal(c.get("node")))
        grid.add_row("path", literal(f"{c.get('path', '')}{query}"),
                     "client", literal(c.get("remote")))
        grid.add_row("age", human_duration(now - c.get("connected_at", now)),
                     "idle", human_duration(now - c.get("last_activity", now)))
        grid.add_row("in", literal(f"{c.get('msgs_in', 0)} msgs, "
                                   f"{human_bytes(c.get('bytes_in', 0))}"),
                     "out", literal(f"{c.get('msgs_out', 0)} msgs, "
                                    f"{human_bytes(c.get('bytes_out', 0))}"))
        latency = c.get("latency") or 0.0
        grid.add_row("buffered", human_bytes(c.get("buffered", 0)),
                     "latency", human_latency(latency))
        grid.add_row("kernel queued", human_bytes(c.get("kernel_queued")), "", "")
        extensions = c.get("extensions")
        grid.add_row("subprotocol", literal(c.get("subprotocol") or "none"),
                     "extensions", literal(", ".join(map(str, extensions)) if extensions else
                                           ("none" if extensions is not None else "…")))
        topics = c.get("topics") or []
        grid.add_row("topics", literal(", ".join(map(str, topics)) if topics else "none"), "", "")
        if self.closed:
            # With the code and reason of its close, or says that they are not known.
            if close is not None:
                ended = Text(describe_close(close.get("code"), printable(close.get("reason") or "")),
                             style="bold red")
                ended.append(f" after {human_duration(close.get('duration'))}", style="dim")
            else:
                ended = Text("its close event did not reach the console "
                             "(summarized in a burst?)", style="bold red")
            grid.add_row("closed", ended, "", "")
        summary = self.query_one("#detail-summary", Static)
        summary.update(grid)
        summary.border_title = title
        self._show_headers()
        self._show_events()

    def _show_events(self) -> None:
        """This connection's events, newest last, as the event log says them."""
        lines = Text(no_wrap=False)
        for event in self.history:
            line = describe_event(event)
            if line is None:
                continue
            if lines:
                lines.append("\n")
            lines.append(time.strftime("%H:%M:%S ", time.localtime(event.time)),
                         style="dim italic" if event.backlog else "dim")
            lines.append_text(line)
        if not lines:
            lines = Text("none received since the console attached", style="dim italic")
        self.query_one("#detail-events-text", Static).update(lines)
        self.query_one("#detail-events", VerticalScroll).scroll_end(animate=False)

    def _show_headers(self) -> None:
        c = self.connection
        self._fill("#request-headers", c.get("request_headers"))
        self._fill("#response-headers", c.get("response_headers"))

    def _fill(self, selector: str, headers: list[list[str]] | None) -> None:
        table = self.query_one(selector, DataTable)
        # Header names and values are the client's: no escape sequences through.
        rows = [(printable(name), printable(value)) for name, value in headers or []]
        # Room kept for the vertical scroll bar: wrapped rows may make it appear.
        width = table.content_region.width - table.styles.scrollbar_size_vertical
        if width <= 0:
            return  # filled once laid out (on_resize)
        if getattr(table, "_shown", None) == (rows, width):
            return  # headers do not change during a connection: keep the cursor
        table._shown = (rows, width)  # type: ignore[attr-defined]
        table.clear(columns=True)
        # Both columns fixed: a long value wraps within its column (its row
        # grows), instead of running off behind a horizontal scroll bar.
        padding = 2 * table.cell_padding
        # At most two fifths of a narrow table: the values need the room more.
        names = min(max((len(name) for name, _ in rows), default=4), _NAME_WIDTH,
                    max(8, width * 2 // 5))
        table.add_column("name", key="name", width=names)
        table.add_column("value", key="value", width=max(10, width - names - 2 * padding))
        for name, value in rows:
            style = "bold yellow" if value == "[redacted]" else ""
            table.add_row(Text(name, style="bold", overflow="fold"),
                          Text(value, style=style, overflow="fold"), height=None)

    def action_send(self) -> None:
        c = self.connection
        self.app.push_screen(ComposeScreen(self.console.link, [(
            describe_connection(c), {"ids": [c["id"]]})]))

    def action_tap(self) -> None:
        c = self.connection
        selector: dict[str, Any] = {"ids": [c["id"]]}
        if c.get("node"):
            selector["node"] = c["node"]
        self.app.push_screen(TapScreen(selector, describe_connection(c)))

    def action_disconnect(self) -> None:
        c = self.connection
        self.app.push_screen(DisconnectScreen(
            describe_connection(c), {"ids": [c["id"]]}, 1), self._disconnect_confirmed)

    def _disconnect_confirmed(self, choice: dict[str, Any] | None) -> None:
        if choice is not None:
            self._disconnect(choice)

    @work(group="action", exit_on_error=False)
    async def _disconnect(self, choice: dict[str, Any]) -> None:
        try:
            notice = await run_disconnect(self.console.link, choice)
        except WsconsoleError as exc:
            self.post_message(CommandFailed("Disconnect", exc.message))
            return
        self.notify(notice, title="Disconnect", markup=False)
