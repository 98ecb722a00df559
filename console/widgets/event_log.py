"""The event log: connections opened and closed, operator actions, errors, and
the nodes of a cluster joining, turning suspect, going and coming back. An
event of another node than the one attached to starts with that node's name.

Events are buffered and written a few times a second; when many connections
open or close in one such interval they become one line with counts, so a
burst of ten thousand reconnects is a line, not a flood (toolong's habit).
The same operator action repeated within a minute is one line with a count
(``send user=ann ... ×12``), moved down to the latest. The events of before
the console attached (the server's backlog) come first, between two marks.

The log draws only the lines it shows (the line API): a filter on the kinds
of trouble (``1`` to ``4``, ``0`` for all, see :mod:`..event_view`) shows the
lines kept that match, at once, and hides the others without dropping them.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any, Callable, ClassVar, Iterable

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from wsconsole.server.protocol import EventKind, HubState, is_abnormal_close
from wsconsole.server.wire import Event

from ..event_view import (
    CATEGORY_KEYS,
    CloseCodeWindow,
    EventCategory,
    EventFilter,
    categorize,
    is_about,
)
from ..formatting import describe_close, human_bytes, human_duration
from ..output import printable
from ..view_state import NODE_EVENT, drain_escalation_text

__all__ = ["EventLog", "LogLine", "BURST_FLUSH_INTERVAL", "COALESCE_ABOVE", "FLUSH_INTERVAL",
           "MAX_LINES", "BACKLOG", "ACTION_COALESCE_SECONDS", "describe_event"]

COALESCE_ABOVE = 4
"""More opened (or closed) events than this in one flush become one summary line."""
FLUSH_INTERVAL = 0.25
"""Seconds between writes of buffered events."""
BURST_FLUSH_INTERVAL = 1.0
"""Seconds between writes while connections open or close in bursts (a flush
wrote a summary line): each write grows the log, which lays the whole screen
out again, and nobody reads eight summary lines a second."""
MAX_LINES = 2000
"""Lines the event log keeps; older ones are dropped. A line is its text and
its styles (a few hundred bytes); only the lines on screen are rendered."""
BACKLOG = 500
"""Events of the past the console asks for when it subscribes (the server
keeps up to ``wire.MAX_BACKLOG``)."""
ACTION_COALESCE_SECONDS = 60.0
"""The same operator action again within this many seconds of the last one
makes that line count it, instead of a new line."""

_LABELS = {EventCategory.ABNORMAL: "Abnormal", EventCategory.SLOW: "Slow",
           EventCategory.ACTIONS: "Actions", EventCategory.ERRORS: "Errors"}
# In the footer, one group: "1 2 3 4 0 filter events".
_FILTER_KEYS = Binding.Group("Filter events", compact=True)
_BACKLOG_START = "── earlier: what happened before the console attached (server backlog) ──"
_BACKLOG_END = "── live ──"


class LogLine:
    """One line of the log: what it says, when, and what kind of trouble it is."""

    __slots__ = ("time", "body", "categories", "backlog", "key", "count", "first", "_strip",
                 "_width")

    def __init__(self, at: float, body: Text, categories: frozenset[EventCategory] = frozenset(),
                 *, backlog: bool = False, key: str | None = None) -> None:
        self.time = at
        self.body = body
        self.categories = categories
        self.backlog = backlog
        """From the server's backlog: it happened before the console attached."""
        self.key = key
        """Lines with the same key are the same action repeated (coalesced)."""
        self.count = 1
        self.first = at
        self._strip: Strip | None = None
        self._width: int | None = None

    @property
    def width(self) -> int:
        """Cells the line takes."""
        if self._width is None:
            # The stamp is "HH:MM:SS " (9 cells); a count adds its own text.
            self._width = (9 + self.body.cell_len if self.count == 1
                           else self.text().cell_len)
        return self._width

    def text(self) -> Text:
        """The line as shown: time stamp, what happened, how many times."""
        # A line of the backlog is in italics: it happened before the console attached.
        text = Text(style="italic" if self.backlog else "", no_wrap=True)
        text.append(time.strftime("%H:%M:%S ", time.localtime(self.time)), style="dim")
        text.append_text(self.body)
        if self.count > 1:
            text.append(f" ×{self.count}", style="bold magenta")
            text.append(time.strftime(" (since %H:%M:%S)", time.localtime(self.first)),
                        style="dim")
        text.no_wrap = True
        return text

    @property
    def plain(self) -> str:
        return self.text().plain

    def strip(self, console: Any) -> Strip:
        """The whole line, rendered once (and again only after it changed)."""
        if self._strip is None:
            text = self.text()
            segments = list(text.render(console, end=""))
            self._strip = Strip(segments, text.cell_len)
        return self._strip


class EventLog(ScrollView, can_focus=True):
    """A scrolling log of what happened, newest at the bottom."""

    DEFAULT_CSS = """
    EventLog {
        /* Ten lines, fewer on a short terminal so the table keeps its rows. */
        height: 25%;
        min-height: 5;
        max-height: 10;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        border-subtitle-color: $text-muted;
        background: $surface;
        scrollbar-size-vertical: 1;
        scrollbar-size-horizontal: 1;
    }
    EventLog:focus {
        border: round $accent;
    }
    EventLog.-maximized {
        height: 1fr;
        max-height: 100%;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(key, f"toggle_category('{category.name}')", _LABELS[category],
                  id=f"events_{category.name.lower()}", group=_FILTER_KEYS,
                  tooltip=f"Event log: show {category} (again: stop); with several chosen, "
                          "lines of any of them")
          for key, category in CATEGORY_KEYS),
        Binding("0", "show_everything", "All events", id="events_all", group=_FILTER_KEYS,
                tooltip="Event log: show every line again"),
    ]

    def __init__(self, *, clock: Callable[[], float] = time.time, id: str | None = None) -> None:
        super().__init__(id=id)
        self.clock = clock
        self._pending: list[Event] = []
        self._last_state: dict[Any, tuple[Any, Any]] = {}
        self.max_lines = MAX_LINES
        self._lines: deque[LogLine] = deque()
        """Every line kept, oldest first."""
        self._shown: deque[LogLine] = deque()
        """The lines the filter shows, oldest first."""
        self._widest = 0
        self.filter = EventFilter()
        """The kinds of trouble shown (none chosen: every line)."""
        self.local_node: str | None = None
        """The node the console is attached to: its events need no name."""
        self._hold_until = 0.0
        self._expanded = False
        self._follow = True
        """Keep the newest line in view: until the operator scrolls up, and again
        once they scroll back to the end."""
        self._seen_until = 0.0
        self._in_backlog = False
        self._last_action: LogLine | None = None
        self.recent: deque[Event] = deque(maxlen=MAX_LINES)
        """The last events received (live and backlog), for a connection's detail view."""
        self.closes = CloseCodeWindow()
        """Abnormal close codes of the last minutes, from the events received."""

    def on_mount(self) -> None:
        self._show_title()
        self.set_interval(FLUSH_INTERVAL, self._flush_due)

    # What it holds

    @property
    def entries(self) -> list[str]:
        """Plain text of every line kept (filtered or not), newest last."""
        return [line.plain for line in self._lines]

    @property
    def line_count(self) -> int:
        """Lines kept (at most ``max_lines``)."""
        return len(self._lines)

    @property
    def shown(self) -> list[str]:
        """Plain text of the lines the filter shows, newest last."""
        return [line.plain for line in self._shown]

    def events_of(self, connection_id: str) -> list[Event]:
        """The events received about one connection, oldest first."""
        return [e for e in self.recent if is_about(e, connection_id)]

    # Filtering

    def action_toggle_category(self, name: str) -> None:
        """Show (or stop showing) one kind of trouble."""
        self.set_filter(self.filter.toggled(EventCategory[name]))

    def action_show_everything(self) -> None:
        self.set_filter(EventFilter())

    def set_filter(self, event_filter: EventFilter) -> None:
        """Show the lines kept that match ``event_filter``, at once."""
        if event_filter == self.filter:
            return
        self.filter = event_filter
        self._shown = deque(line for line in self._lines if event_filter.matches(line.categories))
        self._widest = max((line.width for line in self._shown), default=0)
        self._show_title()
        self._resized(follow=True)

    def show_expanded(self, expanded: bool) -> None:
        """Say in the border how to leave the expanded log (the screen expands it)."""
        self._expanded = expanded
        self._show_title()

    def _show_title(self) -> None:
        back = " · E or esc returns" if self._expanded else ""
        if self.filter.everything:
            self.border_title = "Events"
            self.border_subtitle = f"1-4 filter{back}" if back else ""
        else:
            self.border_title = f"Events: only {self.filter.describe()}"
            self.border_subtitle = (f"{len(self._shown)} of {len(self._lines)} lines · "
                                    f"0 shows all{back}")

    # Receiving

    def _flush_due(self) -> None:
        if time.monotonic() >= self._hold_until:
            self.flush()

    def add_event(self, event: Event) -> bool:
        """Queue one event of the server's stream; False for an event of the
        backlog already shown (a reconnect asks for the backlog again)."""
        if event.backlog and event.time <= self._seen_until:
            return False
        self._seen_until = max(self._seen_until, event.time)
        self._pending.append(event)
        self.recent.append(event)
        if event.kind == EventKind.CONNECTION_CLOSED and isinstance(event.data, dict):
            self.closes.add(event.data.get("code"), event.time)
        return True

    def note(self, message: str, *, style: str = "", at: float | None = None,
             error: bool = False) -> None:
        """Write one line of the console's own (link up/down, errors, results)."""
        self.flush()
        self._append(LogLine(at if at is not None else self.clock(), Text(message, style=style),
                             frozenset({EventCategory.ERRORS}) if error else frozenset()))

    def flush(self) -> None:
        """Write the queued events: the backlog's first, then the live ones."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        past = [e for e in pending if e.backlog]
        live = [e for e in pending if not e.backlog] if past else pending
        if past:
            if not self._in_backlog:
                self._append(LogLine(past[0].time, Text(_BACKLOG_START, style="dim"),
                                     backlog=True))
                self._in_backlog = True
            self._write_batch(past, backlog=True)
        if live:
            if self._in_backlog:
                self._append(LogLine(live[0].time, Text(_BACKLOG_END, style="dim")))
                self._in_backlog = False
            self._write_batch(live, backlog=False)

    def _write_batch(self, pending: list[Event], *, backlog: bool) -> None:
        """Write one batch of events, coalescing opens and closes."""
        opened = [e for e in pending if e.kind == EventKind.CONNECTION_OPENED]
        closed = [e for e in pending if e.kind == EventKind.CONNECTION_CLOSED]
        abnormal = [e for e in closed if is_abnormal_close((e.data or {}).get("code")
                                                           if isinstance(e.data, dict) else None)]
        normal = [e for e in closed if e not in abnormal] if abnormal else closed
        coalesce_opened = len(opened) > COALESCE_ABOVE
        coalesce_normal = len(normal) > COALESCE_ABOVE
        coalesce_abnormal = len(abnormal) > COALESCE_ABOVE
        coalesced: set[int] = set()
        if coalesce_opened:
            coalesced.update(map(id, opened))
        if coalesce_normal:
            coalesced.update(map(id, normal))
        if coalesce_abnormal:
            coalesced.update(map(id, abnormal))
        for event in pending:
            if event.kind == EventKind.STATE_CHANGED and isinstance(event.data, dict):
                # While draining, each close repeats the state with a new count:
                # the status bar and the shutdown dialog show that, the log does not.
                # Each node of a cluster has its own state: compared with its own last.
                node = event.data.get("node")
                last = self._last_state.get(node, (HubState.SERVING, None))
                state = (event.data.get("state"), event.data.get("mode"))
                if state[0] == last[0] and state[1] in (None, last[1]):
                    continue
                self._last_state[node] = (state[0], state[1] or last[1])
            if coalesced and id(event) in coalesced:
                continue
            line = describe_event(event)
            if line is None:
                continue
            node = (event.data or {}).get("node") if isinstance(event.data, dict) else None
            if (node and node != self.local_node and self.local_node is not None
                    and event.kind != NODE_EVENT):
                line = Text.assemble((f"[{printable(node)}] ", "cyan"), line)
            key = line.plain if event.kind == EventKind.OPERATOR_ACTION else None
            self._append(LogLine(event.time, line, categorize(event), backlog=backlog, key=key))
        if coalesce_opened or coalesce_normal or coalesce_abnormal:
            self._hold_until = time.monotonic() + BURST_FLUSH_INTERVAL
        if coalesce_opened:
            users = Counter(str((e.data or {}).get("user", "?")) for e in opened)
            self._append(LogLine(opened[-1].time, Text.assemble(
                ("+ ", "green"), (f"{len(opened)} connections opened", "green"),
                (" (" + _top(users) + ")", "dim")), backlog=backlog))
        for group, abnormally in ((normal, False), (abnormal, True)):
            if len(group) <= COALESCE_ABOVE:
                continue
            codes = Counter(describe_close((e.data or {}).get("code")) for e in group)
            self._append(LogLine(group[-1].time, Text.assemble(
                ("- ", "red"),
                (f"{len(group)} connections closed" + (" abnormally" if abnormally else ""),
                 "bold red" if abnormally else "red"),
                (" (" + _top(codes) + ")", "dim")),
                frozenset({EventCategory.ABNORMAL}) if abnormally else frozenset(),
                backlog=backlog))

    # The lines

    def _append(self, line: LogLine) -> None:
        last = self._last_action
        if (line.key is not None and last is not None and last.key == line.key
                and 0 <= line.time - last.time <= ACTION_COALESCE_SECONDS
                and last.backlog == line.backlog):
            # The same action again: one line counts them, moved to the latest.
            line.count, line.first = last.count + 1, last.first
            self._remove(last)
        if line.key is not None:
            self._last_action = line
        self._lines.append(line)
        if len(self._lines) > self.max_lines:
            self._remove(self._lines[0])
        if self.filter.matches(line.categories):
            self._shown.append(line)
            self._widest = max(self._widest, line.width)
        if not self.filter.everything:
            self._show_title()
        self._resized(follow=self._follow)

    def _remove(self, line: LogLine) -> None:
        if self._lines and self._lines[0] is line:
            self._lines.popleft()
        else:
            self._lines.remove(line)
        if self._shown and self._shown[0] is line:
            self._shown.popleft()
        elif self.filter.matches(line.categories):
            try:
                self._shown.remove(line)
            except ValueError:
                pass
        if line is self._last_action:
            self._last_action = None

    def _resized(self, *, follow: bool) -> None:
        self.virtual_size = Size(self._widest, len(self._shown))
        if follow:
            self._keep_end()
            # Again once laid out: a horizontal scroll bar that appears takes a row.
            self.call_after_refresh(self._keep_end)
        self.refresh()

    def _keep_end(self) -> None:
        # Forced: until its first layout shows the scroll bar, the log refuses to scroll.
        if self._follow:
            self.scroll_to(y=max(0, len(self._shown) - self.scrollable_content_region.height),
                           animate=False, immediate=True, force=True)

    def on_resize(self) -> None:
        # Smaller again (the expanded log back in its place): the end stays in view.
        self.call_after_refresh(self._keep_end)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        # Decided by where the operator scrolled, not by where the view is while
        # lines arrive faster than the scroll to the end is applied.
        self._follow = new_value >= self.max_scroll_y

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        index = scroll_y + y
        style = self.rich_style
        if index >= len(self._shown):
            if not self._shown and y == 0 and not self.filter.everything:
                text = Text(f"nothing of {self.filter.describe()} among the last "
                            f"{len(self._lines)} lines", style="dim italic", no_wrap=True)
                text.truncate(width)
                return Strip([Segment(text.plain, style + Style(dim=True, italic=True))],
                             text.cell_len).extend_cell_length(width, style)
            return Strip.blank(width, style)
        strip = self._shown[index].strip(self.app.console)
        return strip.crop_extend(scroll_x, scroll_x + width, style).apply_style(style)


def describe_event(event: Event) -> Text | None:
    """One line of text for an event of the server's stream (None: not worth a line)."""
    data: dict[str, Any] = event.data if isinstance(event.data, dict) else {}
    # User, path, id, remote and reason are the clients' choice: escape
    # control characters before they reach the terminal.
    data = {k: printable(v) if isinstance(v, str) else v for k, v in data.items()}
    kind = event.kind
    if kind == EventKind.CONNECTION_OPENED:
        return Text.assemble(
            ("+ ", "green"), (data.get("user", "?"), "bold"), f" {data.get('path', '')}",
            (f"  {data.get('id', '')} from {data.get('remote', '')}", "dim"))
    if kind == EventKind.CONNECTION_CLOSED:
        code = data.get("code")
        style = "red" if is_abnormal_close(code) else ""
        return Text.assemble(
            ("- ", "red"), (data.get("user", "?"), "bold"), f" {data.get('path', '')}",
            (f"  {data.get('id', '')} ", "dim"),
            (describe_close(code, data.get("reason") or ""), style),
            (f" after {human_duration(data.get('duration'))}, "
             f"{data.get('msgs_in', 0)} in / {data.get('msgs_out', 0)} out", "dim"))
    if kind == EventKind.BURST:
        return Text.assemble(("± ", "yellow"), (
            f"burst: {data.get('opened', 0)} opened, {data.get('closed', 0)} closed",
            "yellow"))
    if kind == EventKind.OPERATOR_ACTION:
        args = data.get("args") if isinstance(data.get("args"), dict) else {}
        if args.get("dry_run") and not data.get("error"):
            return None  # a count for a dialog, not an action on anyone
        return Text.assemble(("⚑ ", "bold magenta"), (_describe_action(data), "magenta"))
    if kind == EventKind.STATE_CHANGED:
        state = data.get("state", "?")
        mode = data.get("mode")
        n = data.get("connections", 0)
        deadline = data.get("deadline")
        return Text.assemble(
            ("● ", "bold yellow"), (f"server {state}", "bold yellow"),
            (f" ({str(mode).replace('_', '-')})" if mode else "", "yellow"),
            (f", {n} connection{'s' if n != 1 else ''} open", "dim"),
            (f", deadline {time.strftime('%H:%M:%S', time.localtime(deadline))}"
             if isinstance(deadline, (int, float)) else "", "yellow"))
    if kind == EventKind.DRAIN_ESCALATED:
        return Text.assemble(("● ", "bold red"), (drain_escalation_text(data), "bold red"))
    if kind == NODE_EVENT:
        return _describe_node(data)
    if kind == EventKind.SLOW_CONSUMER:
        # The limit is on the write buffer plus the kernel's send queue: a
        # client that stopped reading has most of it in the kernel, and "0 B
        # buffered" alone would say it was closed for nothing.
        queued = data.get("kernel_queued")
        kernel = (f" + {human_bytes(queued)} in the kernel's send queue"
                  if isinstance(queued, int) and queued else "")
        return Text.assemble(
            ("! ", "bold red"),
            (f"slow consumer {data.get('user', '?')} {data.get('path', '')} "
             f"{data.get('id', '')}: {human_bytes(data.get('buffered'))} buffered{kernel}, "
             "closing with 1008", "red"))
    return None


def _describe_node(data: dict[str, Any]) -> Text:
    """A node event: the node's name, its health and state, its connections."""
    health = data.get("health") or "live"
    state = data.get("state") or "?"
    style = {"live": "green", "suspect": "yellow"}.get(str(health), "bold red")
    n = data.get("connections")
    return Text.assemble(
        ("◆ ", style), ("node ", style), (str(data.get("node", "?")), "bold"),
        (f" {health}, {state}", style),
        ("" if n is None else f", {n} connection{'s' if n != 1 else ''}", "dim"))


def _top(counter: Counter[str], n: int = 3) -> str:
    items = counter.most_common()
    text = ", ".join(f"{name} ×{count}" for name, count in items[:n])
    if len(items) > n:
        text += f", +{len(items) - n} more"
    return text


def _describe_action(data: dict[str, Any]) -> str:
    """One line from an audit entry (see the control listener's audit log)."""
    op = data.get("op", "?")
    args = data.get("args") if isinstance(data.get("args"), dict) else {}
    selector = args.get("selector")
    parts = [f"{data.get('role') or 'operator'}: {op}"]
    if args.get("dry_run"):
        parts[0] += " (dry run)"
    if isinstance(selector, dict):
        parts.append(" ".join(
            "everyone" if k == "everyone" else f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in selector.items() if k != "ids_total"))
    if args.get("mode"):
        parts.append(str(args["mode"]).replace("_", "-"))
    if op in ("disconnect", "shutdown") and args.get("code") is not None:
        parts.append(describe_close(args["code"], args.get("reason") or ""))
    result = data.get("result")
    if op == "tap_end" and isinstance(result, dict):
        # A tap's end, however it came: why, and what it showed and dropped.
        parts.append(f"→ {str(result.get('reason', '?')).replace('_', ' ')}, "
                     f"{result.get('shown', 0)} shown, {result.get('dropped', 0)} dropped")
    elif isinstance(result, dict):
        shown = {k: v for k, v in result.items()
                 if k in ("recipients", "delivered", "skipped", "count", "connections")}
        if shown:
            parts.append("→ " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    error = data.get("error")
    if error:
        parts.append("failed: " + str(error.get("message", error) if isinstance(error, dict) else error))
    return " ".join(parts)
