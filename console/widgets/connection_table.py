"""The connection table: one page of connections, updated in place by key.

Rows are keyed by connection id. A new page updates the cells that changed,
adds the rows that are new, removes the rows that are gone and reorders the
rest to the server's order; it never clears and refills, so the cursor, the
scroll position and the operator's eye stay where they were.

A page arrives several times a second and most of its cells change (ages,
idle times, counters), so the table keeps the width of every cell it shows
and asks Textual to measure a column only when a cell outgrows it (one
measure) or when the column's widest cell is gone or got narrower (the whole
column, once). ``update_cell(..., update_width=True)`` for every changed cell
measured the whole column for each cell that got narrower than its column:
hundreds of thousands of measures a minute at 10,000 connections.
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
from textual.widgets.data_table import Column, ColumnKey

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
        # Each row's cell widths in terminal cells, in COLUMNS order.
        self._widths: dict[str, tuple[int, ...]] = {}
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
        """Show this page: update, add, remove and reorder rows by key.

        Only the cells that changed are updated, and a column is measured
        only when its width may have changed (see the module's docstring).
        """
        now = self.clock()
        selected = self.selected_id
        new_order = [c["id"] for c in connections]
        wanted = set(new_order)
        for gone in [key for key in self._cells if key not in wanted]:
            self.remove_row(gone)
            del self._cells[gone]
            del self._widths[gone]
            self._summaries.pop(gone, None)
        columns = [self.columns[ColumnKey(key)] for key, _, _ in COLUMNS]
        for connection in connections:
            key = connection["id"]
            cells = self._format(connection, now)
            widths = tuple(cell.cell_len for cell in cells)
            self._summaries[key] = connection
            previous = self._cells.get(key)
            if previous is None:
                self.add_row(*cells, key=key)  # Textual measures a new row's cells
            elif previous != cells:
                old_widths = self._widths[key]
                for index, (column_key, _, _) in enumerate(COLUMNS):
                    new = cells[index]
                    if previous[index] == new:
                        continue
                    # Measured only when it outgrows its column (one measure);
                    # a column that may shrink is measured once, below.
                    grows = (widths[index] != old_widths[index]
                             and widths[index] > columns[index].content_width)
                    self.update_cell(key, column_key, new, update_width=grows)
            self._cells[key] = cells
            self._widths[key] = widths
        self._shrink_columns(columns)
        current_order = sorted(self._cells, key=lambda k: self.get_row_index(k))
        if current_order != new_order:
            rank = {key: index for index, key in enumerate(new_order)}
            self.sort("id", key=lambda value: rank.get(str(value), len(rank)))
        if selected is not None and selected in self._cells:
            index = self.get_row_index(selected)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False, scroll=False)

    def _shrink_columns(self, columns: list[Column]) -> None:
        """Narrow each column whose widest cell is gone or got narrower.

        Textual widens a column as cells grow but never narrows it when rows
        go; a column narrower than its content would cut values, one wider
        wastes the screen. Re-measuring one of its cells with
        ``update_width=True`` makes Textual measure that column again, once.
        """
        if not self._widths:
            return
        for index, column in enumerate(columns):
            widest_row, widest = max(((key, widths[index]) for key, widths in
                                      self._widths.items()), key=lambda item: item[1])
            wanted = max(widest, column.label.cell_len)
            if wanted < column.content_width:
                self.update_cell(widest_row, column.key, self._cells[widest_row][index],
                                 update_width=True)

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
