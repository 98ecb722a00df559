"""The main screen: status bar, groups, connection table, event log, actions.

It owns the control link's workers: one keeps the link up (connect, hello,
subscribe, read events, reconnect with backoff), one fetches the page of
connections the operator looks at. Both post messages; handlers update widgets.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Static

from wsconsole.server.errors import ControlError, Unauthorized, WsconsoleError
from wsconsole.server.wire import EventKind

from ..formatting import ViewFilter, describe_connection, human_count, literal, parse_filter
from ..link import RECONNECT_DELAYS, ControlLink
from ..messages import (
    ActionCompleted,
    CommandFailed,
    ConnectionsListed,
    ControlLinked,
    ControlLinkLost,
    EventReceived,
    StatsSampled,
)
from ..widgets import (
    COLUMNS,
    MIN_SIZE,
    ConnectionTable,
    EventLog,
    GroupsPanel,
    KeysFooter,
    StatusBar,
    TooSmallNotice,
)

__all__ = ["MainScreen", "MUTATING_ACTIONS", "MIN_SIZE", "PAGE_SIZE"]

PAGE_SIZE = 100
"""Connections fetched per page: the table never holds more than this."""
MUTATING_ACTIONS = frozenset(
    {"broadcast", "send", "disconnect", "disconnect_group", "shutdown"}
)
"""Actions a read-only token may not run: disabled in the footer and palette."""
_NEEDS_ROW = frozenset({"send", "disconnect", "detail"})
_SORT_CYCLE = [key for key, _, _ in COLUMNS]
_PAGES = Binding.Group("Page", compact=True)


class MainScreen(Screen[None]):
    """Everything the operator watches, and the keys to act on it."""

    CSS_PATH = "main.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", id="filter",
                tooltip="Filter the table: user=NAME path=/P topic=T id=PREFIX, "
                        "or a bare name, /path or #topic"),
        Binding("escape", "clear_filter", "Show everyone", id="clear_filter",
                tooltip="Close the filter, or clear the filter and the chosen group"),
        Binding("enter", "detail", "Detail", id="detail",
                tooltip="Headers, subprotocol, extensions, topics and counters of the "
                        "selected connection"),
        Binding("b", "broadcast", "Broadcast", id="broadcast",
                tooltip="Compose a message to the current group or filter, or to everyone"),
        Binding("m", "send", "Message", id="send",
                tooltip="Compose a message to the selected connection"),
        Binding("d", "disconnect", "Disconnect", id="disconnect",
                tooltip="Close the selected connection (asks first)"),
        Binding("D", "disconnect_group", "Disconnect all shown", id="disconnect_group",
                tooltip="Close every connection of the current group or filter (asks first)"),
        Binding("X", "shutdown", "Shutdown", id="shutdown",
                tooltip="Stop the server: graceful, or keep-alive (drain)"),
        Binding("s", "cycle_sort", "Sort", id="sort",
                tooltip="Sort by the next column (click a header to sort by it)"),
        Binding("r", "reverse_sort", "Reverse", id="reverse_sort",
                tooltip="Reverse the sort order"),
        # Shown in the footer only when there is more than one page.
        Binding("left_square_bracket", "previous_page", "Previous page", id="previous_page",
                tooltip="The previous page of connections", group=_PAGES),
        Binding("right_square_bracket", "next_page", "Next page", id="next_page",
                tooltip="The next page of connections", group=_PAGES),
        Binding("g", "focus_groups", "Groups", id="focus_groups", show=False,
                tooltip="Move to the groups panel"),
        Binding("t", "focus_table", "Table", id="focus_table", show=False,
                tooltip="Move to the connection table"),
        # Shown in the footer only while the link is down.
        Binding("ctrl+r", "reconnect", "Reconnect now", id="reconnect",
                tooltip="Reconnect to the control plane without waiting for the backoff "
                        "(the token file is read again)"),
        Binding("question_mark", "help", "Help", id="help",
                tooltip="Every key, what it does, and the filter syntax"),
    ]

    def __init__(
        self,
        link: ControlLink,
        *,
        clock: Callable[[], float] = time.time,
        reconnect_delays: tuple[float, ...] = RECONNECT_DELAYS,
        poll_interval: float = 1.0,
        page_size: int = PAGE_SIZE,
        stats_interval: float = 1.0,
        refresh_delay: float = 0.2,
    ) -> None:
        super().__init__()
        self.link = link
        self.clock = clock
        self.reconnect_delays = reconnect_delays
        self.poll_interval = poll_interval
        self.page_size = page_size
        self.stats_interval = stats_interval
        self.refresh_delay = refresh_delay
        """Seconds from an event that changes the table to the request for it."""
        self.view = ViewFilter()
        """What the table shows (the server filters)."""
        self.sort = "connected_at"
        """The server's sort key, ``-`` prefix for descending."""
        self.cursors: list[str | None] = [None]
        """Cursors of the pages walked so far; the last is the current page."""
        self.page: dict[str, Any] = {}
        """The last page received."""
        self.stats: dict[str, Any] = {}
        """The last stats sample."""
        self._refresh_timer: Any = None

    # Layout

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield Static(id="banner")
        with Horizontal(id="body"):
            yield GroupsPanel(id="groups")
            with Vertical(id="table-column"):
                yield Input(placeholder="filter: user=ann path=/chat topic=lobby id=3f "
                            "(Enter applies, Esc cancels)", id="filter")
                yield ConnectionTable(clock=self.clock, id="connections")
        yield EventLog(clock=self.clock, id="events")
        yield TooSmallNotice(id="too-small")
        yield KeysFooter()

    def on_mount(self) -> None:
        self._show_view()
        self._show_banner()
        self.table.focus()
        self.run_link()
        self.set_interval(self.poll_interval, self.refresh_connections)

    @property
    def table(self) -> ConnectionTable:
        return self.query_one(ConnectionTable)

    @property
    def event_log(self) -> EventLog:
        return self.query_one(EventLog)

    # The control link

    @work(exclusive=True, group="link", exit_on_error=False)
    async def run_link(self) -> None:
        """Keep the control link up: connect, subscribe, read events, reconnect."""
        attempt = 0
        while True:
            client: Any = None
            try:
                # Inside the try: the factory reads the token, and may find none.
                client = self.link.factory()
                hello = await client.connect()
                await client.subscribe(stats_interval=self.stats_interval)
            except Unauthorized as exc:
                await _close_quietly(client)
                # A refused token stays refused: stop, and let the operator retry.
                self.post_message(ControlLinkLost(exc.message, None, refused=True))
                return
            except WsconsoleError as exc:
                await _close_quietly(client)
                delay = self.reconnect_delays[min(attempt, len(self.reconnect_delays) - 1)]
                attempt += 1
                self.post_message(ControlLinkLost(exc.message, delay))
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self.link.client = client
            self.post_message(ControlLinked(hello))
            reason = "the control plane closed the connection"
            try:
                async for event in client.events():
                    if event.kind == EventKind.STATS:
                        self.post_message(StatsSampled(event.data or {}))
                    else:
                        self.post_message(EventReceived(event))
            except ControlError as exc:
                reason = exc.message
            finally:
                self.link.client = None
                await _close_quietly(client)
            delay = self.reconnect_delays[0]
            attempt = 1
            self.post_message(ControlLinkLost(reason, delay))
            await asyncio.sleep(delay)

    @on(ControlLinked)
    def _linked(self, message: ControlLinked) -> None:
        link = self.link
        first = not link.hello
        link.hello = message.hello
        link.status, link.reason = "connected", ""
        role = message.hello.get("role")
        self.query_one(StatusBar).update_link(
            "connected", "connected" if role == "read_only" else f"connected as {role}", role)
        self.event_log.note(
            f"{'connected to' if first else 'reconnected to'} {link.url or 'the control plane'}"
            f" as {role}", style="green")
        self.table.remove_class("stale")
        # A cursor from before the break may be meaningless now: restart the page.
        self.cursors = [None]
        self._show_banner()
        self.refresh_bindings()
        self.refresh_connections()

    @on(ControlLinkLost)
    def _link_lost(self, message: ControlLinkLost) -> None:
        link = self.link
        was_up = link.status == "connected"
        link.status = "refused" if message.refused else "lost"
        link.reason = message.reason
        if message.refused:
            self.query_one(StatusBar).update_link(link.status, "token refused (ctrl+r retries)")
        else:
            self.query_one(StatusBar).update_link(link.status, "lost", retry_in=message.retry_in)
        self.table.add_class("stale")
        if was_up or message.refused or not self.event_log.entries or \
                "link lost" not in self.event_log.entries[-1]:
            self.event_log.note(f"control link lost: {message.reason}", style="bold red")
        if was_up or message.refused:
            self.notify(message.reason, title="Control link lost" if not message.refused
                        else "Token refused", severity="error", markup=False)
        self._show_banner()
        self.refresh_bindings()
        from .shutdown import ShutdownScreen

        for screen in self.app.screen_stack:
            if isinstance(screen, ShutdownScreen):
                screen.link_lost()

    def action_reconnect(self) -> None:
        """Retry the control link now (cancels the backoff wait)."""
        self.link.status = "connecting"
        self.query_one(StatusBar).update_link("connecting", "connecting...")
        self.refresh_bindings()
        self.run_link()

    # Events

    @on(StatsSampled)
    def _stats_sampled(self, message: StatsSampled) -> None:
        self.stats = message.stats
        self.query_one(StatusBar).update_stats(message.stats)
        self._forward_stats(message.stats)

    @on(EventReceived)
    def _event_received(self, message: EventReceived) -> None:
        event = message.event
        self.event_log.add_event(event)
        if event.kind in (EventKind.CONNECTION_OPENED, EventKind.CONNECTION_CLOSED,
                          EventKind.BURST, EventKind.SLOW_CONSUMER):
            self._refresh_soon()
        elif event.kind == EventKind.STATE_CHANGED and isinstance(event.data, dict):
            stats = dict(self.stats, **{k: v for k, v in event.data.items()
                                        if k in ("state", "connections")})
            if event.data.get("mode"):
                stats["shutdown_mode"] = event.data["mode"]
            self.stats = stats
            self.query_one(StatusBar).update_stats(stats)
            self._forward_stats(stats)
            self._refresh_soon()

    def _forward_stats(self, stats: dict[str, Any]) -> None:
        from .shutdown import ShutdownScreen

        for screen in self.app.screen_stack:
            if isinstance(screen, ShutdownScreen):
                screen.show_stats(stats)

    def _refresh_soon(self) -> None:
        # Many events in a row make one request, not one each.
        if self._refresh_timer is None:
            self._refresh_timer = self.set_timer(self.refresh_delay, self._refresh_now)

    def _refresh_now(self) -> None:
        self._refresh_timer = None
        self.refresh_connections()

    # The page of connections

    def _view_key(self) -> tuple[Any, ...]:
        return (self.view, self.sort, self.cursors[-1])

    def refresh_connections(self) -> None:
        """Ask for the current page, unless the link is down."""
        if self.link.client is not None:
            self._list_page(self._view_key())

    @work(exclusive=True, group="list", exit_on_error=False)
    async def _list_page(self, view_key: tuple[Any, ...]) -> None:
        view, sort, cursor = view_key
        try:
            client = self.link.require()
            page = await client.list_connections(
                **view.list_args(), sort=sort, limit=self.page_size, cursor=cursor, groups=True)
        except WsconsoleError as exc:
            if self.link.client is not None:
                self.post_message(CommandFailed("Listing connections", exc.message))
            return
        self.post_message(ConnectionsListed(page, view_key))

    @on(ConnectionsListed)
    def _connections_listed(self, message: ConnectionsListed) -> None:
        if message.view_key != self._view_key():
            return  # asked for a view the operator has left since
        page = message.page
        self.page = page
        self.table.apply_page(page.get("connections") or [])
        # Said only once a page has answered: before that, nothing is known.
        self.table.show_empty("no connections yet" if self.view.empty
                              else f"no connections match {self.view.describe()}")
        groups = page.get("groups")
        if groups is not None:
            everyone = page.get("total") if self.view.empty else self.stats.get("connections")
            self.query_one(GroupsPanel).update_groups(
                groups, everyone, bool(page.get("groups_truncated")))
        self._show_view()
        self.refresh_bindings()

    def _show_view(self) -> None:
        table = self.table
        total = self.page.get("total")
        shown = table.row_count
        page_number = len(self.cursors)
        subtitle = f"{self.view.describe()}"
        if total is not None:
            first = (page_number - 1) * self.page_size + (1 if shown else 0)
            last = (page_number - 1) * self.page_size + shown
            subtitle += f" · {first}-{last} of {human_count(total)}"
            if page_number > 1 or self.page.get("next_cursor"):
                subtitle += f" · page {page_number} ([ ])"
        table.show_titles(f"Connections · sorted by {_sort_label(self.sort)}", subtitle)

    def _set_view(self, view: ViewFilter) -> None:
        self.view = view
        self.cursors = [None]
        groups = self.query_one(GroupsPanel)
        if view.empty:
            groups.set_active("everyone", None)
        elif [view.user, view.path, view.topic].count(None) == 2 and not view.id_prefix:
            kind = "user" if view.user else "path" if view.path else "topic"
            groups.set_active(kind, getattr(view, kind))
        else:
            groups.set_active("filter", None)
        self._show_view()
        self.refresh_bindings()
        self.refresh_connections()

    @on(GroupsPanel.GroupChosen)
    def _group_chosen(self, message: GroupsPanel.GroupChosen) -> None:
        if message.kind == "everyone":
            self._set_view(ViewFilter())
        else:
            self._set_view(ViewFilter().with_group(message.kind, message.value))

    @on(ConnectionTable.SortRequested)
    def _sort_requested(self, message: ConnectionTable.SortRequested) -> None:
        self._set_sort(message.sort)

    def _set_sort(self, sort: str) -> None:
        self.sort = sort
        self.cursors = [None]
        self.table.set_sort(sort)
        self._show_view()
        self.refresh_connections()

    def action_cycle_sort(self) -> None:
        """Sort by the next column."""
        index = _SORT_CYCLE.index(self.sort.lstrip("-"))
        self._set_sort(_SORT_CYCLE[(index + 1) % len(_SORT_CYCLE)])

    def action_reverse_sort(self) -> None:
        """Flip the sort order."""
        self._set_sort(self.sort[1:] if self.sort.startswith("-") else f"-{self.sort}")

    def action_next_page(self) -> None:
        """Fetch the next page, if there is one."""
        cursor = self.page.get("next_cursor")
        if cursor:
            self.cursors.append(cursor)
            self.refresh_connections()
        else:
            self.notify("This is the last page.", timeout=2)

    def action_previous_page(self) -> None:
        """Go back one page."""
        if len(self.cursors) > 1:
            self.cursors.pop()
            self.refresh_connections()

    # Filtering

    def action_filter(self) -> None:
        """Show the filter input, holding the current filter."""
        box = self.query_one("#filter", Input)
        box.value = self.view.text()
        box.add_class("open")
        box.focus()
        self.refresh_bindings()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        try:
            view = parse_filter(event.value)
        except ValueError as exc:
            self.notify(str(exc), title="Filter", severity="error", markup=False)
            return
        self._close_filter()
        self._set_view(view)

    def _close_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("open")
        self.table.focus()
        self.refresh_bindings()

    @property
    def _filter_open(self) -> bool:
        try:
            return self.query_one("#filter", Input).has_class("open")
        except Exception:  # before compose
            return False

    def action_clear_filter(self) -> None:
        """Esc: close the filter input, or else show everyone."""
        box = self.query_one("#filter", Input)
        if box.has_class("open"):
            self._close_filter()
        elif not self.view.empty:
            self._set_view(ViewFilter())

    def action_focus_groups(self) -> None:
        self.query_one(GroupsPanel).focus()

    def action_focus_table(self) -> None:
        self.table.focus()

    # Actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # False hides a key from the footer (it does nothing now); None shows it dimmed.
        if action == "clear_filter":
            return self._filter_open or not self.view.empty
        if action in ("next_page", "previous_page"):
            return len(self.cursors) > 1 or bool(self.page.get("next_cursor"))
        if action == "reconnect":
            return self.link.status != "connected"
        if action in MUTATING_ACTIONS:
            if self.link.read_only or self.link.client is None:
                return None
        if action in _NEEDS_ROW and self.table.selected_id is None:
            return None
        if action == "disconnect_group" and not self.table.row_count:
            return None
        return True

    def _selected(self) -> dict[str, Any] | None:
        selected = self.table.selected_id
        return self.table.summary(selected) if selected else None

    @on(ConnectionTable.RowSelected)
    def _row_selected(self, event: ConnectionTable.RowSelected) -> None:
        event.stop()
        self.action_detail()

    def action_detail(self) -> None:
        """Open the selected connection's detail view."""
        from .detail import DetailScreen

        selected = self._selected()
        if selected is not None:
            self.app.push_screen(DetailScreen(self.link, selected, clock=self.clock))

    def _targets(self) -> list[tuple[str, dict[str, Any] | None]]:
        targets: list[tuple[str, dict[str, Any] | None]] = []
        selected = self._selected()
        if selected is not None:
            targets.append((f"the selected {describe_connection(selected)}",
                            {"ids": [selected["id"]]}))
        if not self.view.empty:
            selector = self.view.selector()
            label = f"the current view: {self.view.describe()}"
            if selector is None:
                label += " (an id filter cannot be a target)"
            targets.append((label, selector))
        targets.append(("everyone", {"everyone": True}))
        return targets

    def action_broadcast(self) -> None:
        """Compose a message to the current group/filter, or everyone."""
        from .compose import ComposeScreen

        targets = self._targets()
        default = 1 if self._selected() is not None and len(targets) > 1 else 0
        self.app.push_screen(ComposeScreen(self.link, targets, default=default))

    def action_send(self) -> None:
        """Compose a message to the selected connection."""
        from .compose import ComposeScreen

        if self._selected() is None:
            return
        self.app.push_screen(ComposeScreen(self.link, self._targets(), default=0))

    def action_disconnect(self) -> None:
        """Ask, then close the selected connection."""
        from .confirm import DisconnectScreen

        selected = self._selected()
        if selected is None:
            return
        self.app.push_screen(DisconnectScreen(
            describe_connection(selected), {"ids": [selected["id"]]}, 1),
            self._disconnect_confirmed)

    def action_disconnect_group(self) -> None:
        """Ask, then close every connection of the current view."""
        from .confirm import DisconnectScreen

        selector = self.view.selector()
        if selector is None:
            self.notify("An id filter cannot be disconnected as a group; select rows one by one.",
                        severity="warning", markup=False)
            return
        count = self.page.get("total", self.table.row_count)
        what = "EVERY connection" if self.view.empty else f"every connection of {self.view.describe()}"
        self.app.push_screen(DisconnectScreen(what, selector, count), self._disconnect_confirmed)

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
        self.post_message(ActionCompleted("Disconnect", notice))
        self._refresh_soon()

    def action_shutdown(self) -> None:
        """Open the shutdown dialog."""
        from .shutdown import ShutdownScreen

        self.app.push_screen(ShutdownScreen(self.link, self.stats))

    def action_help(self) -> None:
        """List every key."""
        from .help import HelpScreen

        self.app.push_screen(HelpScreen(self))

    @on(ActionCompleted)
    def _action_completed(self, message: ActionCompleted) -> None:
        # No log line of our own: the server's operator_action event writes the
        # one line, as it does for every operator's actions.
        self.notify(message.summary, title=message.title, markup=False)

    @on(CommandFailed)
    def _command_failed(self, message: CommandFailed) -> None:
        self.notify(message.message, title=message.title, severity="error", markup=False)
        self.event_log.note(f"{message.title} failed: {message.message}", style="bold red")

    def _show_banner(self) -> None:
        banner = self.query_one("#banner", Static)
        link = self.link
        if link.status == "refused":
            text = (f"Not connected, the token was refused: {link.reason}. Fix --token, "
                    "--token-file or $WSCONSOLE_TOKEN, then press ctrl+r (the token file "
                    "is read again).")
            kind = "error"
        elif link.status == "lost" and link.hello:
            text = (f"Control link lost ({link.reason}); reconnecting. "
                    "The table shows the last data received; no action is sent meanwhile.")
            kind = "error"
        elif link.status == "lost":
            text = f"Cannot reach the control plane: {link.reason}. Retrying."
            kind = "error"
        elif link.read_only and link.status == "connected":
            text = ("Read-only token: broadcast, message, disconnect and shutdown are "
                    "disabled.")
            kind = "warning"
        else:
            text, kind = "", ""
        # The reason is the server's or the network's words: not markup.
        banner.update(literal(text))
        banner.set_class(bool(text), "shown")
        banner.set_class(kind == "error", "error")
        banner.set_class(kind == "warning", "warning")


# How each column's order reads, (ascending, descending) on the server's key.
# Age and idle come from timestamps: the smallest timestamp is the oldest
# connection, or the one idle longest.
_SORT_DIRECTIONS: dict[str, tuple[str, str]] = {
    "connected_at": ("oldest first", "newest first"),
    "last_activity": ("longest first", "shortest first"),
    "msgs_in": ("fewest first", "most first"),
    "msgs_out": ("fewest first", "most first"),
    "bytes_in": ("least first", "most first"),
    "bytes_out": ("least first", "most first"),
    "buffered": ("least first", "most first"),
    "latency": ("lowest first", "highest first"),
}


def _sort_label(sort: str) -> str:
    names = {key: label for key, label, _ in COLUMNS}
    bare = sort.lstrip("-")
    ascending, descending = _SORT_DIRECTIONS.get(bare, ("A-Z", "Z-A"))
    return f"{names[bare]} ({descending if sort.startswith('-') else ascending})"


async def _close_quietly(client: Any) -> None:
    if client is None:
        return
    try:
        await client.close()
    except Exception:  # closing a broken link must never raise into the UI
        pass
