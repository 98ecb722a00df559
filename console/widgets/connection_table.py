"""The connection table: one page of connections, updated in place by key.

Rows are keyed by connection id. A new page updates the cells that changed,
adds the rows that are new, removes the rows that are gone and reorders the
rest to the server's order; it never clears and refills, so the cursor, the
scroll position and the operator's eye stay where they were.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.strip import Strip
from textual.widgets import DataTable

from ..formatting import human_bytes, human_count, human_duration, human_latency, literal
from ..output import printable
from ..view_state import COLUMNS, header_arrow, sort_for_header

__all__ = ["ConnectionTable"]

class ConnectionTable(DataTable[Any]):
    """Connections of the current view, one row per connection id."""

    DEFAULT_CSS = """
    ConnectionTable {
        height: 1fr;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        border-subtitle-color: $text-muted;
        scrollbar-size-horizontal: 1;
    }
    ConnectionTable:focus {
        border: round $accent;
    }
    ConnectionTable.stale {
        opacity: 60%;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        # DataTable's own Enter is hidden, and as the focused widget's binding it
        # would hide the screen's "Detail" from the footer: name it here.
        Binding("enter", "select_cursor", "Detail", id="detail",
                tooltip="Headers, subprotocol, extensions, topics and counters of the "
                        "selected connection"),
    ]

    @dataclass
    class SortRequested(Message):
        """The operator clicked a header: sort by this key (``-`` for descending)."""

        sort: str

    def __init__(self, *, clock: Callable[[], float] = time.time, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, cell_padding=1)
        self.clock = clock
        self.sort_key = "connected_at"
        """The server's sort key of the rows shown, ``-`` prefix for descending."""
        self._cells: dict[str, tuple[Any, ...]] = {}
        self._summaries: dict[str, dict[str, Any]] = {}
        self.empty_text = ""
        """What the table says under its header while it has no rows."""
        self._titles: tuple[str, str] | None = None

    def on_mount(self) -> None:
        for key, label, right in COLUMNS:
            self.add_column(self._header(key, label, right), key=key)

    def _header(self, key: str, label: str, right: bool) -> Text:
        arrow = header_arrow(self.sort_key, key)
        return Text(f"{label} {arrow}" if arrow else label,
                    justify="right" if right else "left", style="bold" if arrow else "")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select_cursor" and not self.row_count:
            return None
        return True

    def set_sort(self, sort: str) -> None:
        """Show which column the server sorts by."""
        self.sort_key = sort
        for key, label, right in COLUMNS:
            column = self.columns.get(key)  # type: ignore[call-overload]
            if column is not None:
                column.label = self._header(key, label, right)
        self._require_update_dimensions = True
        self.refresh()

    def show_titles(self, title: str, subtitle: str) -> None:
        """Set the border's title and subtitle (``subtitle`` is shown literally)."""
        # Setting either repaints every row, and a page arrives every second:
        # only when they have changed.
        if (title, subtitle) != self._titles:
            self._titles = (title, subtitle)
            self.border_title = title
            # The subtitle names the filter, which may hold a user or path a
            # client chose: not markup.
            self.border_subtitle = literal(subtitle)

    def show_empty(self, text: str) -> None:
        """Say ``text`` (e.g. "no connections yet") while the table has no rows."""
        if text != self.empty_text:
            self.empty_text = text
            self.refresh()

    def render_line(self, y: int) -> Strip:
        # An empty table says so, one line under its header, inside its borders.
        if y == self.header_height + 1 and not self.row_count and self.empty_text:
            width = self.size.width
            # The filter may name a user or path a client chose: escaped.
            line = Text(printable(self.empty_text), no_wrap=True)
            line.truncate(width, overflow="ellipsis")
            line.align("center", width)
            style = self.rich_style + Style(dim=True, italic=True)
            return Strip([Segment(line.plain, style)], width)
        return super().render_line(y)

    @property
    def selected_id(self) -> str | None:
        """The connection id under the cursor, if any."""
        if not self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except Exception:
            return None
        return str(row_key.value) if row_key.value is not None else None

    def summary(self, connection_id: str) -> dict[str, Any] | None:
        """The last summary shown for a connection id."""
        return self._summaries.get(connection_id)

    def apply_page(self, connections: list[dict[str, Any]]) -> None:
        """Show this page: update, add, remove and reorder rows by key."""
        now = self.clock()
        selected = self.selected_id
        new_order = [c["id"] for c in connections]
        wanted = set(new_order)
        for gone in [key for key in self._cells if key not in wanted]:
            self.remove_row(gone)
            del self._cells[gone]
            self._summaries.pop(gone, None)
        for connection in connections:
            key = connection["id"]
            cells = self._format(connection, now)
            self._summaries[key] = connection
            previous = self._cells.get(key)
            if previous is None:
                self.add_row(*cells, key=key)
            elif previous != cells:
                for (column, _, _), old, new in zip(COLUMNS, previous, cells):
                    if old != new:
                        # A value can outgrow its column (idle 59s -> 1m03s).
                        self.update_cell(key, column, new, update_width=True)
            self._cells[key] = cells
        current_order = sorted(self._cells, key=lambda k: self.get_row_index(k))
        if current_order != new_order:
            rank = {key: index for index, key in enumerate(new_order)}
            self.sort("id", key=lambda value: rank.get(str(value), len(rank)))
        if selected is not None and selected in self._cells:
            index = self.get_row_index(selected)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False, scroll=False)

    @staticmethod
    def _format(c: dict[str, Any], now: float) -> tuple[Any, ...]:
        def right(value: str, style: str = "") -> Text:
            return Text(value, justify="right", style=style)

        buffered = c.get("buffered") or 0
        latency = c.get("latency") or 0.0
        idle = now - (c.get("last_activity") or now)
        return (
            # Ids, users, paths and addresses come from clients: never markup.
            literal(c["id"]),
            literal(c.get("node"), "dim"),
            literal(c.get("user"), "bold"),
            literal(c.get("path")),
            literal(c.get("remote"), "dim"),
            right(human_duration(now - (c.get("connected_at") or now))),
            right(human_duration(idle), "dim" if idle < 60 else "yellow"),
            right(human_count(c.get("msgs_in"))),
            right(human_bytes(c.get("bytes_in"))),
            right(human_count(c.get("msgs_out"))),
            right(human_bytes(c.get("bytes_out"))),
            right(human_bytes(buffered), "bold red" if buffered >= 256 * 1024
                  else "yellow" if buffered else "dim"),
            right(human_latency(latency), "yellow" if latency > 0.25 else ""),
        )

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        sort = sort_for_header(self.sort_key, str(event.column_key.value))
        if sort is not None:
            self.post_message(self.SortRequested(sort))
