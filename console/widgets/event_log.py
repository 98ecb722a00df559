"""The event log: connections opened and closed, operator actions, errors, and
the nodes of a cluster joining, turning suspect, going and coming back. An
event of another node than the one attached to starts with that node's name.

Events are buffered and written a few times a second; when many connections
open or close in one such interval they become one line with counts, so a
burst of ten thousand reconnects is a line, not a flood (toolong's habit).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any, Callable

from rich.text import Text
from textual.widgets import RichLog

from wsconsole.server.protocol import EventKind, HubState
from wsconsole.server.wire import Event

from ..formatting import describe_close, human_bytes, human_duration
from ..output import printable
from ..view_state import NODE_EVENT

__all__ = ["EventLog", "BURST_FLUSH_INTERVAL", "COALESCE_ABOVE", "FLUSH_INTERVAL", "MAX_LINES"]

COALESCE_ABOVE = 4
"""More opened (or closed) events than this in one flush become one summary line."""
FLUSH_INTERVAL = 0.25
"""Seconds between writes of buffered events."""
BURST_FLUSH_INTERVAL = 1.0
"""Seconds between writes while connections open or close in bursts (a flush
wrote a summary line): each write grows the log, which lays the whole screen
out again, and nobody reads eight summary lines a second."""
MAX_LINES = 2000
"""Lines the event log keeps; older ones are dropped. A rendered line costs
about 4 KiB, so a full log holds about 10 MB whatever the uptime."""


class EventLog(RichLog):
    """A scrolling log of what happened, newest at the bottom."""

    DEFAULT_CSS = """
    EventLog {
        /* Ten lines, fewer on a short terminal so the table keeps its rows. */
        height: 25%;
        min-height: 5;
        max-height: 10;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        background: $surface;
        scrollbar-size-vertical: 1;
    }
    EventLog:focus {
        border: round $accent;
    }
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=MAX_LINES, wrap=False, markup=False, min_width=40)
        self.clock = clock
        self._pending: list[Event] = []
        self._last_state: dict[Any, tuple[Any, Any]] = {}
        self.entries: deque[str] = deque(maxlen=MAX_LINES)
        """Plain text of the lines written, newest last (for tests and copy)."""
        self.local_node: str | None = None
        """The node the console is attached to: its events need no name."""
        self._hold_until = 0.0

    def on_mount(self) -> None:
        self.border_title = "Events"
        self.set_interval(FLUSH_INTERVAL, self._flush_due)

    def _flush_due(self) -> None:
        if time.monotonic() >= self._hold_until:
            self.flush()

    def add_event(self, event: Event) -> None:
        """Queue one event of the server's stream."""
        self._pending.append(event)

    def note(self, message: str, *, style: str = "", at: float | None = None) -> None:
        """Write one line of the console's own (link up/down, errors, results)."""
        self.flush()
        self._write(at if at is not None else self.clock(), Text(message, style=style))

    def flush(self) -> None:
        """Write the queued events, coalescing opens and closes."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        opened = [e for e in pending if e.kind == EventKind.CONNECTION_OPENED]
        closed = [e for e in pending if e.kind == EventKind.CONNECTION_CLOSED]
        coalesce_opened = len(opened) > COALESCE_ABOVE
        coalesce_closed = len(closed) > COALESCE_ABOVE
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
            if event.kind == EventKind.CONNECTION_OPENED and coalesce_opened:
                continue
            if event.kind == EventKind.CONNECTION_CLOSED and coalesce_closed:
                continue
            line = self._describe(event)
            if line is not None:
                node = (event.data or {}).get("node") if isinstance(event.data, dict) else None
                if (node and node != self.local_node and self.local_node is not None
                        and event.kind != NODE_EVENT):
                    line = Text.assemble((f"[{printable(node)}] ", "cyan"), line)
                self._write(event.time, line)
        if coalesce_opened or coalesce_closed:
            self._hold_until = time.monotonic() + BURST_FLUSH_INTERVAL
        if coalesce_opened:
            users = Counter(str((e.data or {}).get("user", "?")) for e in opened)
            self._write(opened[-1].time, Text.assemble(
                ("+ ", "green"), (f"{len(opened)} connections opened", "green"),
                (" (" + _top(users) + ")", "dim")))
        if coalesce_closed:
            codes = Counter(describe_close((e.data or {}).get("code")) for e in closed)
            self._write(closed[-1].time, Text.assemble(
                ("- ", "red"), (f"{len(closed)} connections closed", "red"),
                (" (" + _top(codes) + ")", "dim")))

    def _write(self, at: float, line: Text) -> None:
        stamp = Text(time.strftime("%H:%M:%S ", time.localtime(at)), style="dim")
        text = stamp + line
        text.no_wrap = True
        self.entries.append(text.plain)
        self.write(text)

    @staticmethod
    def _describe(event: Event) -> Text | None:
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
            style = "red" if code not in (1000, 1001) else ""
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
            return Text.assemble(
                ("● ", "bold yellow"), (f"server {state}", "bold yellow"),
                (f" ({str(mode).replace('_', '-')})" if mode else "", "yellow"),
                (f", {n} connection{'s' if n != 1 else ''} open", "dim"))
        if kind == NODE_EVENT:
            return _describe_node(data)
        if kind == EventKind.SLOW_CONSUMER:
            return Text.assemble(
                ("! ", "bold red"),
                (f"slow consumer {data.get('user', '?')} {data.get('path', '')} "
                 f"{data.get('id', '')}: {human_bytes(data.get('buffered'))} buffered, closing "
                 "with 1008", "red"))
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
