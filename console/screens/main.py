"""The main screen: status bar, groups, connection table, event log, actions.

It follows the app's control link (``link_state``, ``stats`` and the
``server_events`` signal) and keeps its own view, a pure ``ViewState``; one
worker fetches the page of connections the view asks for and posts it. What
the table's titles say, which keys work and whom an action reaches are
functions of the view (``view_state``); this screen applies them to widgets.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.events import Key, Resize
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker
from textual.widgets import Input, Static

from wsconsole.server.errors import UnknownNode, WsconsoleError
from wsconsole.server.protocol import EventKind
from wsconsole.server.wire import Event

from ..formatting import ViewFilter, describe_connection, literal, parse_filter
from ..layout import GROUPS_MIN_WIDTH, groups_visible
from ..link import LinkState, stale_note
from ..messages import ActionCompleted, CommandFailed
from ..problems import PROBLEM_SORTS, merge_problem_pages, problems_titles
from ..view_state import (
    COLUMNS,
    PAGE_SIZE,
    SORT_LETTERS,
    PageRequest,
    ViewState,
    KnownNodes,
    cluster_mode,
    key_state,
    link_note,
    refusal,
    main_banner,
    next_sort,
    reversed_sort,
    sort_by_letter,
    sort_letters_help,
    table_titles,
)
from ..widgets import (
    ConnectionTable,
    EventLog,
    GroupsPanel,
    KeysFooter,
    StatusBar,
    TooSmallNotice,
)
from .compose import ComposeScreen
from .confirm import DisconnectScreen, run_disconnect
from .detail import DetailScreen
from .help import HelpScreen
from .shutdown import ShutdownScreen
from .tap import TapScreen

if TYPE_CHECKING:  # pragma: no cover - the app module imports this one
    from ..app import ConsoleApp

__all__ = ["MainScreen"]

_PAGES = Binding.Group("Page", compact=True)
CLOSES_INTERVAL = 1.0
"""Seconds at most from a close to the status bar's summary of close codes (a
close after a quiet while is counted at once). Under churn the summary changes
with every close, and each showing is a frame of its own: at most one a
second, as the event log writes bursts (``event_log.BURST_FLUSH_INTERVAL``)."""
FILTER_DEBOUNCE = 0.25
"""Seconds the filter waits after the last key typed before it asks for the
rows (Enter asks at once)."""
# Shift and a letter sorts by that column (k9s' keys); hidden from the footer,
# which says "s/⇧" beside Sort, and listed in the help as one row.
_NEEDS_PARKED_NOTE = frozenset({"detail", "send", "disconnect"})
"""The keys of the selected row, which say why when the cursor is parked."""

_SORT_BINDINGS: list[BindingType] = [
    Binding(letter, f"sort_by('{letter}')", f"Sort by {header}", id=f"sort_{key}", show=False,
            tooltip=f"Sort by {header}; again reverses")
    for letter, key in SORT_LETTERS.items()
    for header in ({k: h for k, h, _ in COLUMNS}[key],)
]
# The main screen's keys that work while the event log is expanded (E).
_EXPANDED_KEYS = frozenset({"collapse_events", "help", "reconnect"})
_PAGE_ACTIONS = frozenset({"next_page", "previous_page"})
# Events after which the page shown may have changed.
_CHANGES_ROWS = frozenset({EventKind.CONNECTION_OPENED, EventKind.CONNECTION_CLOSED,
                           EventKind.BURST, EventKind.SLOW_CONSUMER, EventKind.STATE_CHANGED})


class MainScreen(Screen[None]):
    """Everything the operator watches, and the keys to act on it."""

    CSS_PATH = "main.tcss"
    # The event log expanded (E) keeps the status bar and the keys in view.
    ALLOW_IN_MAXIMIZED_VIEW = "StatusBar, #banner, KeysFooter"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", id="filter",
                tooltip="Filter the table as you type: user=NAME path=/P topic=T id=PREFIX "
                        "node=N (a name may be a pattern: guest*), or the start of a "
                        "name, /path or #topic"),
        Binding("escape", "clear_filter", "Show everyone", id="clear_filter",
                tooltip="Close the filter, back to the one it opened with; or clear the "
                        "filter and the chosen group"),
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
        Binding("T", "tap", "Tap", id="tap",
                tooltip="Watch the messages of the current group or filter live "
                        "(everyone without one; the server must allow taps)"),
        Binding("X", "shutdown", "Shutdown", id="shutdown",
                tooltip="Stop the server: graceful, or keep-alive (drain)"),
        Binding("s", "cycle_sort", "Sort", id="sort", key_display="s/⇧",
                tooltip="Sort by the next column (click a header, or shift and a letter, "
                        "to sort by one: " + sort_letters_help() + ")"),
        Binding("r", "reverse_sort", "Reverse", id="reverse_sort",
                tooltip="Reverse the sort order"),
        # Shown in the footer only when there is more than one page.
        Binding("left_square_bracket", "previous_page", "Previous page", id="previous_page",
                tooltip="The previous page of connections", group=_PAGES),
        Binding("right_square_bracket", "next_page", "Next page", id="next_page",
                tooltip="The next page of connections", group=_PAGES),
        Binding("g", "focus_groups", "Groups", id="focus_groups", show=False,
                tooltip="Move to the groups panel (shown again if it was hidden)"),
        Binding("G", "toggle_groups", "Show/hide groups", id="toggle_groups", show=False,
                tooltip="Show or hide the groups panel (hidden at first below "
                        f"{GROUPS_MIN_WIDTH} columns, so that the table keeps its columns)"),
        Binding("t", "focus_table", "Table", id="focus_table", show=False,
                tooltip="Move to the connection table"),
        Binding("e", "focus_events", "Events", id="focus_events",
                tooltip="Move to the event log (1-4 filter it, 0 shows all)"),
        Binding("E", "expand_events", "Expand events", id="expand_events",
                tooltip="The event log over the whole screen (E or esc returns)"),
        # E again, while the log is expanded: named for what it does then.
        Binding("E", "collapse_events", "Back to the table", id="collapse_events",
                tooltip="The event log back in its place under the table (esc too)"),
        Binding("p", "problems", "Problems", id="problems",
                tooltip="The connections sorted by what is wrong: buffered bytes, then "
                        "latency, then idle time (p or esc leaves)"),
        # Shown in the footer only while the link is down.
        Binding("ctrl+r", "reconnect", "Reconnect now", id="reconnect",
                tooltip="Reconnect to the control plane without waiting for the backoff "
                        "(the token file is read again)"),
        Binding("question_mark", "help", "Help", id="help",
                tooltip="Every key, what it does, and the filter syntax"),
        *_SORT_BINDINGS,
    ]

    @dataclass
    class ConnectionsListed(Message):
        """A page of connections arrived for the request that asked for it."""

        page: dict[str, Any]
        """The ``list`` result: connections, total, next_cursor, groups."""
        request: PageRequest
        """What the page was asked for; a page for a view left since is dropped."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 1.0,
        page_size: int = PAGE_SIZE,
        refresh_delay: float = 0.2,
        min_refresh_interval: float = 1.0,
        view_filter: ViewFilter | None = None,
    ) -> None:
        super().__init__()
        self.clock = clock
        self.poll_interval = poll_interval
        """Seconds between two requests for the page shown (counters and ages move)."""
        self.refresh_delay = refresh_delay
        """Seconds from an event that changes the table to the request for it."""
        self.min_refresh_interval = min_refresh_interval
        """Seconds at least between two requests that events or the poll ask for
        (a key asks at once): under churn the page is fetched, parsed and drawn
        this often, not after every burst of events."""
        self.view = ViewState(filter=view_filter or ViewFilter(), page_size=page_size)
        """What the table is to show, in which order, which page (the last view asked for)."""
        self.shown: ViewState | None = None
        self.problems = False
        """True in the problems view (``p``): the rows ranked by what is wrong,
        within the current filter (``wsconsole.console.problems``)."""
        """The view whose page the table shows (None before the first): what its
        titles describe, until the rows of :attr:`view` arrive."""
        self.filter_debounce = FILTER_DEBOUNCE
        """Seconds after the last key typed in the filter before its rows are asked for."""
        self._filter_timer: Timer | None = None
        self._filter_before: ViewFilter | None = None
        self.page_missing: dict[str, str] = {}
        """Nodes that did not answer the last page's request, and why."""
        self._refresh_timer: Timer | None = None
        self._closes_timer: Timer | None = None
        self._closes_shown_at = -math.inf
        self._banner_shown: tuple[str, str] | None = None
        self._list_worker: Worker[None] | None = None
        self._listing: PageRequest | None = None
        self._listed_at = -math.inf
        """``time.monotonic()`` when the last page was asked for."""
        self._groups_version: int | None = None
        """The server's ``groups_version`` of the groups shown: sent back, so that
        a reply leaves the groups out while they are unchanged."""
        self.groups_choice: bool | None = None
        """The operator's choice of showing the groups panel (``G``, ``g``); None:
        shown when the terminal is wide enough (``layout.groups_visible``)."""

    # Layout

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield Static(id="banner")
        with Horizontal(id="body"):
            yield GroupsPanel(id="groups")
            with Vertical(id="table-column"):
                # Kept: check_action reads them for each of the screen's keys
                # whenever the footer asks which work (a DOM query each cost
                # about as much as the rest of check_action).
                self._filter_box = Input(
                    placeholder="filter as you type: guest, user=guest* path=/api/* "
                                "topic=lobby id=3f (Enter closes, Esc cancels)", id="filter")
                yield self._filter_box
                self._table = ConnectionTable(clock=self.clock, id="connections")
                yield self._table
        self._event_log = EventLog(clock=self.clock, id="events")
        yield self._event_log
        yield TooSmallNotice(id="too-small")
        yield KeysFooter()

    def on_resize(self, event: Resize) -> None:
        self._show_groups()

    def _show_groups(self) -> None:
        panel = self.query_one(GroupsPanel)
        shown = groups_visible(self.app.size.width, self.groups_choice)
        if shown != panel.display:
            if not shown and panel.has_focus:
                self.table.focus()
            panel.display = shown
            panel.catch_up()

    def action_toggle_groups(self) -> None:
        """Show or hide the groups panel."""
        self.groups_choice = not self.query_one(GroupsPanel).display
        self._show_groups()

    def on_mount(self) -> None:
        console = self.console
        self._show_groups()
        self._show_view()
        self.table.focus()
        # What the link did before this screen was up counts as a change too.
        self._link_changed(LinkState(), console.link_state)
        if console.stats:
            self._stats_changed(console.stats)
        self.watch(console, "link_state", self._link_changed, init=False)
        self.watch(console, "stats", self._stats_changed, init=False)
        self.watch(console, "nodes", self._nodes_changed, init=False)
        console.server_events.subscribe(self, self._server_events)
        self.set_interval(self.poll_interval, self._poll)

    @property
    def console(self) -> ConsoleApp:
        """The app, which owns the control link."""
        return cast("ConsoleApp", self.app)

    @property
    def on_screen(self) -> ViewState:
        """The view whose rows the table shows (the one asked for, before any
        page): what an action on "the view" reaches, as the titles say."""
        return self.shown if self.shown is not None else self.view

    @property
    def table(self) -> ConnectionTable:
        return self._table

    @property
    def event_log(self) -> EventLog:
        return self._event_log

    @property
    def link_state(self) -> LinkState:
        """The app's control link state."""
        return self.console.link_state

    # Following the app's link

    def _link_changed(self, before: LinkState, after: LinkState) -> None:
        self.query_one(StatusBar).show_link(after)
        note = link_note(before, after, self.console.link.url)
        if note is not None:
            self.event_log.note(note, style="green" if after.up else "bold red",
                                error=not after.up)
        self.table.set_class(not after.up, "stale")
        self.query_one(GroupsPanel).show_stale(after.down_since if after.stale else None)
        self.event_log.local_node = after.hello.get("node")
        self._show_banner()
        self._show_nodes()
        if after.up and not before.up:
            # Another server process may count its versions from where this one was.
            self._groups_version = None
            # A cursor from before the break may mean nothing now: the first page.
            self.view = self.view.restarted()
            self.refresh_connections()
        # The titles (stale or not) and the keys that work now.
        self._show_view()

    def _stats_changed(self, stats: dict[str, Any]) -> None:
        self.query_one(StatusBar).update_stats(stats)

    @property
    def missing(self) -> dict[str, str]:
        """Nodes that did not answer the last page or the last nodes request, and why."""
        return {**self.console.nodes.missing, **self.page_missing}

    def _nodes_changed(self, nodes: KnownNodes) -> None:
        self._show_nodes()
        self._show_banner()

    def _show_nodes(self) -> None:
        known = self.console.nodes
        missing = self.missing
        self.query_one(GroupsPanel).update_nodes(known.nodes, missing)
        self.table.set_cluster(cluster_mode(self.link_state.hello, known.nodes))
        self.query_one(StatusBar).show_nodes(self.link_state.hello, known.nodes, missing)

    def _show_banner(self) -> None:
        text, kind = main_banner(self.link_state, self.missing)
        # Asked for with every change of the nodes; an update lays the screen out.
        if (text, kind) == self._banner_shown:
            return
        self._banner_shown = (text, kind)
        banner = self.query_one("#banner", Static)
        # The reason is the server's or the network's words: not markup.
        banner.update(literal(text))
        banner.set_class(bool(text), "shown")
        banner.set_class(kind == "error", "error")
        banner.set_class(kind == "warning", "warning")

    def _server_events(self, events: tuple[Event, ...]) -> None:
        closed = changes_rows = False
        for event in events:
            if self.event_log.add_event(event) and event.kind == EventKind.CONNECTION_CLOSED:
                closed = True
            if event.kind in _CHANGES_ROWS:
                changes_rows = True
        if closed and self._closes_timer is None:
            # Under churn closes come by the hundred a second: the summary is
            # counted and shown at once for a close after a quiet while, then
            # at most once per CLOSES_INTERVAL, not once per close.
            wait = self._closes_shown_at + CLOSES_INTERVAL - time.monotonic()
            if wait <= 0:
                self._show_closes()
            else:
                self._closes_timer = self.set_timer(wait, self._show_closes)
        if changes_rows:
            self._refresh_soon()

    def _show_closes(self) -> None:
        """The status bar's summary of the last minutes' abnormal close codes."""
        if self._closes_timer is not None:
            self._closes_timer.stop()
            self._closes_timer = None
        self._closes_shown_at = time.monotonic()
        self.query_one(StatusBar).show_closes(self.event_log.closes.summary(self.clock()))

    def action_reconnect(self) -> None:
        """Retry the control link now (cancels the backoff wait)."""
        self.console.action_reconnect()

    def _poll(self) -> None:
        # Counters and ages move without events; an event's refresh counts as a poll.
        self._refresh_soon(0.0)
        self._show_closes()  # closes leave the window as time goes

    def _refresh_soon(self, delay: float | None = None) -> None:
        # Many events in a row make one request, not one each, and requests
        # come at most every min_refresh_interval.
        if self._refresh_timer is None:
            wait = self.refresh_delay if delay is None else delay
            wait = max(wait, self._listed_at + self.min_refresh_interval - time.monotonic())
            # Textual's timers need a positive delay.
            self._refresh_timer = self.set_timer(max(wait, 0.001), self._refresh_now)

    def _refresh_now(self) -> None:
        self._refresh_timer = None
        self.refresh_connections()

    # The page of connections

    def refresh_connections(self) -> None:
        """Ask for the current page, unless the link is down or it is on its way.

        A node of a cluster that does not answer holds a request to its
        deadline (2 s), longer than the poll, and a server under load may be
        slower than the refreshes: asking again for the same page would cancel
        the request in flight (the worker is exclusive), and no page would
        ever arrive. Another page asked for does cancel it.
        """
        if not self.link_state.up:
            return
        request = self.view.request
        worker = self._list_worker
        if worker is not None and worker.is_running and self._listing == request:
            return
        self._listing = request
        self._listed_at = time.monotonic()
        args = self.view.list_args()
        if self._groups_version is not None:
            args["groups_since"] = self._groups_version
        if self.problems:
            self._list_worker = self._list_problems(request, args)
            return
        self._list_worker = self._list_page(request, args)

    @work(exclusive=True, group="list", exit_on_error=False)
    async def _list_page(self, request: PageRequest, args: dict[str, Any]) -> None:
        try:
            page = await self.console.link.require().list_connections(**args)
        except UnknownNode as exc:
            # Said once, and the view leaves the node: asked again, it would fail again.
            self.post_message(self.NodeUnknown(request, exc.message))
            return
        except WsconsoleError as exc:
            if self.link_state.up:
                self.post_message(CommandFailed("Listing connections", exc.message))
            return
        self.post_message(self.ConnectionsListed(page, request))

    @work(exclusive=True, group="list", exit_on_error=False)
    async def _list_problems(self, request: PageRequest, args: dict[str, Any]) -> None:
        """The problems view's page: one page of each of PROBLEM_SORTS, ranked here."""
        client = self.console.link.require()
        limit = args.get("limit") or self.view.page_size
        calls = []
        for index, sort in enumerate(PROBLEM_SORTS):
            call = dict(args, sort=sort, cursor=None, limit=limit)
            if index:
                call["groups"] = False  # the groups once
                call.pop("groups_since", None)
            calls.append(client.list_connections(**call))
        try:
            pages = await asyncio.gather(*calls)
        except UnknownNode as exc:
            self.post_message(self.NodeUnknown(request, exc.message))
            return
        except WsconsoleError as exc:
            if self.link_state.up:
                self.post_message(CommandFailed("Listing problems", exc.message))
            return
        page = merge_problem_pages([p if isinstance(p, dict) else {} for p in pages],
                                   self.clock(), limit)
        self.post_message(self.ConnectionsListed(page, request))

    def action_problems(self) -> None:
        """The problems view, or back to the view it was opened from."""
        self._set_problems(not self.problems)

    def _set_problems(self, on: bool, *, refresh: bool = True) -> None:
        self.problems = on
        self.table.set_class(on, "problems")
        self._listing = None  # a page on its way is the other view's
        self._show_view()
        if refresh:
            self.refresh_connections()

    @dataclass
    class NodeUnknown(Message):
        """The view's node is no node of the cluster (any more)."""

        request: PageRequest
        message: str

    @on(NodeUnknown)
    def _node_unknown(self, message: NodeUnknown) -> None:
        if message.request != self.view.request:
            return
        self.post_message(CommandFailed("Listing connections", message.message
                                        + "; showing every node"))
        self._set_view(self.view.filtered(replace(self.view.filter, node=None)))

    @on(ConnectionsListed)
    def _connections_listed(self, message: ConnectionsListed) -> None:
        if message.request != self.view.request or \
                bool(message.page.get("problems")) != self.problems:
            return  # asked for a view the operator has left since
        page = message.page
        self.view = self.view.with_page(page)
        self.shown = self.view
        missing = page.get("missing")
        missing = dict(missing) if isinstance(missing, dict) else {}
        if missing != self.page_missing:
            self.page_missing = missing
            self._show_banner()
            self._show_nodes()
        self.table.apply_page(page.get("connections") or [])
        # The header's arrow with the rows in that order.
        sort = "problems" if self.problems else self.view.sort  # problems: no arrow
        if self.table.sort_key != sort:
            self.table.set_sort(sort)
        # Said only once a page has answered: before that, nothing is known.
        self.table.show_empty(self.view.empty_text())
        groups = page.get("groups")
        if groups is not None:
            self.query_one(GroupsPanel).update_groups(
                groups, self.view.everyone(self.console.stats), bool(page.get("groups_truncated")))
            version = page.get("groups_version")
            self._groups_version = version if isinstance(version, int) else None
        # Without groups, the reply says the ones shown are still right.
        self._show_view()

    def _show_view(self) -> None:
        """Show the titles and the group of the rows shown (and that others are
        on their way), and the keys that work with the view."""
        table = self.table
        if self.problems:
            rows = [table.summary(str(key.value)) or {} for key in table.rows]
            title, subtitle = problems_titles(rows, self.clock(), self.view.filter.describe())
        else:
            title, subtitle = table_titles(self.shown, self.view, table.row_count)
        if self.link_state.stale:
            subtitle = f"{stale_note(self.link_state.down_since)} · {subtitle}"
        table.show_titles(title, subtitle)
        self.query_one(GroupsPanel).set_active((self.shown or self.view).active_group())
        self.refresh_bindings()

    def _set_view(self, view: ViewState) -> None:
        self.view = view
        self._show_view()
        self.refresh_connections()

    @on(GroupsPanel.GroupChosen)
    def _group_chosen(self, message: GroupsPanel.GroupChosen) -> None:
        if message.kind == "everyone":
            self._set_view(self.view.filtered(ViewFilter()))
        else:
            self._set_view(self.view.filtered(ViewFilter().with_group(message.kind,
                                                                      message.value)))

    @on(ConnectionTable.SortRequested)
    def _sort_requested(self, message: ConnectionTable.SortRequested) -> None:
        self._set_sort(message.sort)

    def _set_sort(self, sort: str) -> None:
        if self.problems:
            self._set_problems(False, refresh=False)  # a sort key leaves the problems view
        self._set_view(self.view.sorted_by(sort))

    def action_sort_by(self, letter: str) -> None:
        """Sort by the letter's column (``SORT_LETTERS``), or reverse it if it is the sort."""
        self._set_sort(sort_by_letter(self.view.sort, letter))

    def action_cycle_sort(self) -> None:
        """Sort by the next column."""
        self._set_sort(next_sort(self.view.sort))

    def action_reverse_sort(self) -> None:
        """Flip the sort order."""
        self._set_sort(reversed_sort(self.view.sort))

    def action_next_page(self) -> None:
        """Fetch the next page, if there is one."""
        view = self.view.next_page()
        if view is None:
            self.notify("This is the last page.", timeout=2)
        else:
            self._set_view(view)

    def action_previous_page(self) -> None:
        """Go back one page."""
        view = self.view.previous_page()
        if view is not None:
            self._set_view(view)

    # Filtering

    @property
    def filter_box(self) -> Input:
        return self._filter_box

    def action_filter(self) -> None:
        """Show the filter input, holding the current filter."""
        box = self.filter_box
        self._filter_before = self.view.filter
        box.value = self.view.filter.text()
        box.remove_class("unreadable")
        box.add_class("open")
        box.focus()
        self.refresh_bindings()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        # Filter as you type: the rows are asked for once typing pauses.
        if not self.filter_box.has_class("open"):
            return
        self._stop_filter_timer()
        self._filter_timer = self.set_timer(self.filter_debounce, self._filter_typed)

    def _filter_typed(self) -> None:
        self._filter_timer = None
        box = self.filter_box
        try:
            view_filter = parse_filter(box.value)
        except ValueError:
            # Half typed (user=, a quote not closed): marked, said on Enter.
            box.add_class("unreadable")
            return
        box.remove_class("unreadable")
        if view_filter != self.view.filter:
            self._set_view(self.view.filtered(view_filter))

    def _stop_filter_timer(self) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self._stop_filter_timer()
        try:
            view_filter = parse_filter(event.value)
        except ValueError as exc:
            self.notify(str(exc), title="Filter", severity="error", markup=False)
            return
        self._close_filter()
        if view_filter != self.view.filter:
            self._set_view(self.view.filtered(view_filter))

    def _close_filter(self) -> None:
        self._stop_filter_timer()
        self.filter_box.remove_class("open")
        self.table.focus()
        self.refresh_bindings()

    def action_clear_filter(self) -> None:
        """Esc: close the filter input and go back to the filter it opened with,
        or else show everyone."""
        if self.filter_box.has_class("open"):
            self._close_filter()
            before = self._filter_before
            if before is not None and before != self.view.filter:
                self._set_view(self.view.filtered(before))
        elif self.problems:
            self._set_problems(False)  # the view it was opened from, filter and all
        elif not self.view.filter.empty:
            self._set_view(self.view.filtered(ViewFilter()))

    def action_focus_groups(self) -> None:
        panel = self.query_one(GroupsPanel)
        if not panel.display:
            self.groups_choice = True
            self._show_groups()
        # After the layout that shows it: a hidden widget cannot take the focus.
        self.call_after_refresh(panel.focus)

    def action_focus_table(self) -> None:
        self.table.focus()

    def action_focus_events(self) -> None:
        self.event_log.focus()

    def watch_maximized(self) -> None:
        self.event_log.show_expanded(self.maximized is self.event_log)
        self.refresh_bindings()

    def action_collapse_events(self) -> None:
        """The expanded event log back in its place."""
        self.minimize()

    def action_expand_events(self) -> None:
        """Show the event log over the whole screen."""
        self.event_log.focus()
        self.maximize(self.event_log, container=False)

    # Actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.is_mounted:
            return True
        if self.maximized is not None and action not in _EXPANDED_KEYS:
            return False  # the table is hidden: its keys would act on rows out of sight
        if action == "collapse_events":
            return self.maximized is not None
        if action == "filter" and self.filter_box.has_focus:
            # In the box a / is typed (paths start with one). Textual does not
            # know "slash" for a character, so it left / Filter in the footer.
            return False
        if self.problems:
            if action == "clear_filter" and not self.filter_box.has_class("open"):
                return True  # esc leaves the problems view
            if action in ("next_page", "previous_page", "disconnect_group"):
                # One ranked page; D would close the filter's connections, not the rows shown.
                return False
        table = self.table
        state: dict[str, Any] = dict(link=self.link_state, selected=table.selected_id is not None,
                                     rows=table.row_count,
                                     filter_open=self.filter_box.has_class("open"))
        view, shown = self.view, self.shown
        works = key_state(action, view=view, **state)
        if not works and view.page is None and shown is not None and (
                action == "clear_filter" or action in _PAGE_ACTIONS
                and (view.filter, view.sort) == (shown.filter, shown.sort)):
            # While the page asked for is on its way, Esc also works as the rows
            # shown have it, and so do the page keys when only the page changes
            # (another page of the same rows): else they left the footer and
            # came back with every [ and Esc, and each change of the keys
            # rebuilds the footer (a layout of the screen).
            works = key_state(action, view=shown, **state)
        return works

    def on_key(self, event: Key) -> None:
        # A key whose action the link forbids is dimmed in the footer and does
        # nothing: say why, rather than nothing at all. (Typed into the filter,
        # the key is the Input's and never gets here.)
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            why = refusal(binding.action, self.link_state)
            if why is None and binding.action in _NEEDS_PARKED_NOTE and self.table.parked:
                # The cursor was parked when its connection went: say so,
                # or enter, m and d seem broken.
                why = ("the connection under the cursor has gone: none is selected "
                       "(↑/↓ chooses one)")
            if why is not None and self.check_action(binding.action, ()) is None:
                self.notify(why, title="Not sent", severity="warning", markup=False,
                            timeout=3)
                return

    def _selected(self) -> dict[str, Any] | None:
        selected = self.table.selected_id
        return self.table.summary(selected) if selected else None

    @on(ConnectionTable.RowSelected)
    def _row_selected(self, event: ConnectionTable.RowSelected) -> None:
        event.stop()
        self.action_detail()

    def action_detail(self) -> None:
        """Open the selected connection's detail view."""
        selected = self._selected()
        if selected is not None:
            self.app.push_screen(DetailScreen(selected, clock=self.clock,
                                              events=self.event_log.events_of(selected["id"])))

    def action_broadcast(self) -> None:
        """Compose a message to the current group/filter, or everyone."""
        selected = self._selected()
        view = self.on_screen
        self.app.push_screen(ComposeScreen(self.console.link, view.targets(selected),
                                           default=view.broadcast_target(selected)))

    def action_send(self) -> None:
        """Compose a message to the selected connection."""
        selected = self._selected()
        if selected is not None:
            self.app.push_screen(ComposeScreen(self.console.link, self.on_screen.targets(selected),
                                               default=0))

    def action_disconnect(self) -> None:
        """Ask, then close the selected connection."""
        selected = self._selected()
        if selected is not None:
            self.app.push_screen(DisconnectScreen(
                describe_connection(selected), {"ids": [selected["id"]]}, 1),
                self._disconnect_confirmed)

    def action_disconnect_group(self) -> None:
        """Ask, then close every connection of the current view."""
        try:
            what, selector, count = self.on_screen.group_disconnect(self.table.row_count)
        except ValueError as exc:
            self.notify(str(exc), severity="warning", markup=False)
            return
        self.app.push_screen(DisconnectScreen(what, selector, count), self._disconnect_confirmed)

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
        self.post_message(ActionCompleted("Disconnect", notice))

    def action_tap(self) -> None:
        """Open a tap of the current group or filter (everyone without one)."""
        view = self.on_screen
        selector = view.filter.selector()
        if selector is None:
            self.notify("An id filter cannot be tapped as a group; open a connection's "
                        "detail view and press T there.", severity="warning", markup=False)
            return
        self.app.push_screen(TapScreen(selector, view.filter.describe()))

    def action_shutdown(self) -> None:
        """Open the shutdown dialog."""
        self.app.push_screen(ShutdownScreen())

    def action_help(self) -> None:
        """List every key."""
        self.app.push_screen(HelpScreen(self))

    @on(ActionCompleted)
    def _action_completed(self, message: ActionCompleted) -> None:
        # No log line of our own: the server's operator_action event writes the
        # one line, as it does for every operator's actions.
        self.notify(message.summary, title=message.title, markup=False)
        self._refresh_soon()

    @on(CommandFailed)
    def _command_failed(self, message: CommandFailed) -> None:
        self.notify(message.message, title=message.title, severity="error", markup=False)
        self.event_log.note(f"{message.title} failed: {message.message}", style="bold red",
                            error=True)
