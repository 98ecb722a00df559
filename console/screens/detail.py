"""The detail view of one connection: headers as redacted by the server, and more."""

from __future__ import annotations

import time
from typing import Any, Callable, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static

from wsconsole.server.errors import UnknownConnection, WsconsoleError

from ..formatting import (
    describe_connection,
    human_bytes,
    human_duration,
    human_latency,
    literal,
)
from ..output import printable
from ..link import ControlLink
from ..messages import CommandFailed, ConnectionFetched
from ..widgets import KeysFooter, TooSmallNotice

__all__ = ["DetailScreen"]


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
    ]

    def __init__(self, link: ControlLink, summary: dict[str, Any], *,
                 clock: Callable[[], float] = time.time, interval: float = 1.0) -> None:
        super().__init__()
        self.link = link
        self.connection_id: str = summary["id"]
        self.connection: dict[str, Any] = dict(summary)
        """The last record received (the summary from the table until ``get`` answers)."""
        self.closed = False
        """True once the server no longer knows the connection."""
        self.clock = clock
        self.interval = interval

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-body"):
            yield Static(id="detail-summary")
            with Horizontal(id="detail-headers"):
                yield DataTable(id="request-headers", cursor_type="row", zebra_stripes=True)
                yield DataTable(id="response-headers", cursor_type="row", zebra_stripes=True)
        yield TooSmallNotice()
        yield KeysFooter()

    def on_mount(self) -> None:
        request = self.query_one("#request-headers", DataTable)
        response = self.query_one("#response-headers", DataTable)
        request.border_title = "Request headers"
        response.border_title = "Response headers"
        for table in (request, response):
            table.add_column("name", key="name")
            table.add_column("value", key="value")
        self._show()
        self.fetch()
        self.set_interval(self.interval, self.fetch)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("send", "disconnect"):
            if self.closed or self.link.read_only or self.link.client is None:
                return None
        return True

    @work(exclusive=True, group="detail", exit_on_error=False)
    async def fetch(self) -> None:
        """Get the connection in full; stop refreshing once it is gone."""
        if self.closed or self.link.client is None:
            return
        try:
            result = await self.link.require().get(self.connection_id)
        except UnknownConnection:
            # The client raises the server's own class: the connection closed.
            self.post_message(ConnectionFetched({}))
            return
        except WsconsoleError as exc:
            self.post_message(CommandFailed("Connection detail", exc.message))
            return
        # Accept the record itself, or wrapped as {"connection": {...}}.
        if isinstance(result, dict) and isinstance(result.get("connection"), dict):
            result = result["connection"]
        self.post_message(ConnectionFetched(result))

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
        grid.add_column(style="dim", justify="right")
        grid.add_column()
        grid.add_column(style="dim", justify="right")
        grid.add_column()
        title = Text.assemble(("connection ", "dim"), (str(c["id"]), "bold"))
        if self.closed:
            title.append("  closed", style="bold red")
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
        summary = self.query_one("#detail-summary", Static)
        summary.update(grid)
        summary.border_title = title
        self._fill("#request-headers", c.get("request_headers"))
        self._fill("#response-headers", c.get("response_headers"))

    def _fill(self, selector: str, headers: list[list[str]] | None) -> None:
        table = self.query_one(selector, DataTable)
        # Header names and values are the client's: no escape sequences through.
        rows = [(printable(name), printable(value)) for name, value in headers or []]
        if getattr(table, "_shown", None) == rows:
            return  # headers do not change during a connection: keep the cursor
        table._shown = rows  # type: ignore[attr-defined]
        table.clear()
        for name, value in rows:
            style = "bold yellow" if value == "[redacted]" else ""
            table.add_row(Text(name, style="bold"), Text(value, style=style))

    def action_send(self) -> None:
        from .compose import ComposeScreen

        c = self.connection
        self.app.push_screen(ComposeScreen(self.link, [(
            describe_connection(c), {"ids": [c["id"]]})]))

    def action_disconnect(self) -> None:
        from .confirm import DisconnectScreen

        c = self.connection
        self.app.push_screen(DisconnectScreen(
            describe_connection(c), {"ids": [c["id"]]}, 1), self._disconnect_confirmed)

    def _disconnect_confirmed(self, choice: dict[str, Any] | None) -> None:
        if choice is not None:
            self._disconnect(choice)

    @work(group="action", exit_on_error=False)
    async def _disconnect(self, choice: dict[str, Any]) -> None:
        from .confirm import run_disconnect

        try:
            notice = await run_disconnect(self.link, choice)
        except WsconsoleError as exc:
            self.post_message(CommandFailed("Disconnect", exc.message))
            return
        self.notify(notice, title="Disconnect", markup=False)
