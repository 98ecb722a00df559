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
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._segment_tools import line_crop
from textual.binding import Binding, BindingType
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import Column, ColumnKey, RowKey

from ..formatting import human_bytes, human_count, human_duration, human_latency, literal
from ..layout import visible_columns
from ..output import printable
from ..view_state import COLUMNS, header_arrow, sort_for_header

if TYPE_CHECKING:
    from rich.text import JustifyMethod

__all__ = ["ConnectionTable"]

_PLAIN_JUSTIFY = frozenset({None, "default", "left", "right"})
_Cell = tuple[str, str, "JustifyMethod | None"]
"""A cell as the table compares it: its text, style and justification."""


_TEXTS: dict[_Cell, Text] = {}
_TEXTS_KEPT = 4096


def _text(cell: _Cell) -> Text:
    """The cell as DataTable shows it (never markup: ids, users and paths are
    the clients' choice).

    One Text for the same cell wherever it is (``0 B``, ``-``, ``3m12s``): a
    page of 100 rows is 1,300 cells, and making a Text costs more than
    drawing one that did not change. Neither DataTable nor Rich changes a
    cell's Text; the cache is emptied once it holds ``_TEXTS_KEPT``.
    """
    text = _TEXTS.get(cell)
    if text is None:
        if len(_TEXTS) >= _TEXTS_KEPT:
            _TEXTS.clear()
        text = _TEXTS[cell] = Text(cell[0], style=cell[1], justify=cell[2])
    return text


def _draws_same(before: Any, after: Any) -> bool:
    """Whether two cell values draw the same lines (rich's Text compares only
    the characters and spans, not the style, justification or overflow)."""
    if before is after:
        return True
    if type(before) is not Text or type(after) is not Text:
        return False
    return (before.plain == after.plain and before.style == after.style
            and before.justify == after.justify and before.overflow == after.overflow
            and before.no_wrap == after.no_wrap and before.end == after.end
            and before._spans == after._spans)


class ConnectionTable(DataTable[Any]):
    """Connections of the current view, one row per connection id."""

    DEFAULT_CSS = """
    ConnectionTable {
        height: 1fr;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        border-subtitle-color: $text-muted;
        scrollbar-size-horizontal: 1;
        /* The vertical scroll bar always there: a page of fewer rows than
           the table's height (a filter) and the next full one (Esc) would
           show and hide it, and each time the screen is laid out again and
           every line drawn anew at the new width. */
        overflow-y: scroll;
    }
    ConnectionTable:focus {
        border: round $accent;
        /* DataTable tints itself when focused: every cell would be drawn anew
           each time the filter box takes the focus and gives it back. The
           border and the cursor say where the focus is. */
        background-tint: $foreground 0%;
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
        # (row index, column index) -> (cell value, how drawn, its lines); at
        # most a page's rows by the columns. Before DataTable's __init__, whose
        # watchers clear it.
        self._drawn_cells: dict[tuple[int, int], tuple[Any, tuple[Any, ...], Any]] = {}
        # Line of the table (y) -> (how drawn, its cells' values, its strip).
        self._drawn_lines: dict[int, tuple[tuple[Any, ...], tuple[Any, ...], Strip]] = {}
        # Styles that cost a walk of the stylesheet to compute, kept until the
        # styles change: a zebra row's style, a cell's mouse metadata.
        self._row_styles: dict[tuple[bool, Style], Style] = {}
        self._drawn_header: tuple[tuple[Any, ...], tuple[Any, ...], Strip] | None = None
        self._meta_styles: dict[tuple[int, int], Style] = {}
        # The widget's style while a frame draws its lines (see rich_style).
        self._frame_style: Style | None = None
        # While the border's titles change: a refresh repaints only the borders.
        self._border_lines_only = False
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, cell_padding=1)
        self.clock = clock
        self.sort_key = "connected_at"
        """The server's sort key of the rows shown, ``-`` prefix for descending."""
        # Each row's cells as (text, style, justify), in COLUMNS order: compared
        # as plain values, made into Text only for the cells that changed.
        self._cells: dict[str, tuple[_Cell, ...]] = {}
        # Each row's cell widths in terminal cells, in COLUMNS order.
        self._widths: dict[str, tuple[int, ...]] = {}
        self._summaries: dict[str, dict[str, Any]] = {}
        self.parked = False
        """True once the connection under the cursor went: no row is selected
        (d, m and Enter do nothing) until the operator moves the cursor."""
        self.empty_text = ""
        """What the table says under its header while it has no rows."""
        self._titles: tuple[str, str] | None = None
        self.shown: tuple[str, ...] = tuple(key for key, _, _ in COLUMNS)
        """The columns shown, in COLUMNS order: those that fit, by priority
        (``layout.visible_columns``)."""
        self.cluster = False
        """True in a cluster: the node column comes right after the user."""

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for key, label, right in COLUMNS:
            if key in self.shown:
                self.add_column(self._header(key, label, right), key=key)

    @property
    def _shown_indexes(self) -> list[int]:
        return [index for index, (key, _, _) in enumerate(COLUMNS) if key in self.shown]

    # Columns by priority: what fits the width

    def on_resize(self) -> None:
        self.fit_width()

    def set_cluster(self, cluster: bool) -> None:
        """Say whether the rows come from a cluster (the node column then matters)."""
        if cluster != self.cluster:
            self.cluster = cluster
            self.fit_width()

    def fit_width(self) -> None:
        """Show the columns that fit the table's width now, by priority; the rows
        are laid out again only when that set changes."""
        # The vertical scroll bar's place is kept whether it shows or not: its
        # coming and going must not make a column come and go.
        available = self.size.width - self.styles.scrollbar_size_vertical
        if available <= 0:
            return
        widths = {}
        for index, (key, label, right) in enumerate(COLUMNS):
            widest = max((row[index] for row in self._widths.values()), default=0)
            widths[key] = max(widest, self._header(key, label, right).cell_len)
        shown = visible_columns(available, widths, [key for key, _, _ in COLUMNS],
                                cluster=self.cluster)
        if shown != self.shown:
            self._show_columns(shown)

    def _show_columns(self, shown: tuple[str, ...]) -> None:
        """Lay the table out again with these columns, rows and cursor kept."""
        selected = self.selected_id
        order = [str(row.key.value) for row in self.ordered_rows]
        cursor_row, scroll_y = self.cursor_row, self.scroll_y
        self.shown = shown
        self.clear(columns=True)
        self._drawn_cells.clear()
        self._add_columns()
        indexes = self._shown_indexes
        for key in order:
            cells = self._cells[key]
            self.add_row(*(_text(cells[index]) for index in indexes), key=key)
        # Each column as wide as its widest cell now, from the widths kept: left
        # to Textual's measure once idle, the rows drawn before it stayed cut
        # short at the headers' widths until something laid the screen out.
        self._fit_columns([(index, self.columns[ColumnKey(COLUMNS[index][0])])
                           for index in indexes])
        self._skip_measuring_new_rows()
        if not order:
            return
        if selected is not None and selected in self._cells:
            cursor_row = self.get_row_index(selected)
        self.move_cursor(row=min(cursor_row, len(order) - 1), animate=False, scroll=False)
        self.scroll_to(y=scroll_y, animate=False, immediate=True)

    def _header(self, key: str, label: str, right: bool) -> Text:
        arrow = header_arrow(self.sort_key, key)
        return Text(f"{label} {arrow}" if arrow else label,
                    justify="right" if right else "left", style="bold" if arrow else "")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select_cursor" and (not self.row_count or self.parked):
            return None
        return True

    # The cursor of a connection that went: parked on no row, until the
    # operator moves it. Landing on the neighbour instead would make the next
    # d or m act on someone the operator never chose.

    def _park(self) -> None:
        self.parked = True
        self.show_cursor = False
        self.refresh_bindings()

    def _unpark(self) -> None:
        if self.parked:
            self.parked = False
            self.show_cursor = True
            self.refresh_bindings()

    def action_cursor_up(self) -> None:
        self._unpark()
        super().action_cursor_up()

    def action_cursor_down(self) -> None:
        self._unpark()
        super().action_cursor_down()

    def action_page_up(self) -> None:
        self._unpark()
        super().action_page_up()

    def action_page_down(self) -> None:
        self._unpark()
        super().action_page_down()

    def action_scroll_top(self) -> None:
        self._unpark()
        super().action_scroll_top()

    def action_scroll_bottom(self) -> None:
        self._unpark()
        super().action_scroll_bottom()

    def on_click(self) -> None:
        self._unpark()

    def set_sort(self, sort: str) -> None:
        """Show which column the server sorts by."""
        self.sort_key = sort
        for key, label, right in COLUMNS:
            column = self.columns.get(key)  # type: ignore[call-overload]
            if column is not None:
                column.label = self._header(key, label, right)
        self._require_update_dimensions = True
        self.refresh()
        self.fit_width()  # the arrow widens the sorted column's header

    def show_titles(self, title: str, subtitle: str) -> None:
        """Set the border's title and subtitle (``subtitle`` is shown literally)."""
        # Only when they have changed; and setting either repaints the whole
        # table (Textual's border title refreshes the widget), where only the
        # border lines change: a key (], a filter) sets them at once, before
        # its page comes, and the whole table was drawn for that frame too.
        if (title, subtitle) != self._titles:
            self._titles = (title, subtitle)
            self._border_lines_only = True
            try:
                self.border_title = title
                # The subtitle names the filter, which may hold a user or path a
                # client chose: not markup.
                self.border_subtitle = literal(subtitle)
            finally:
                self._border_lines_only = False

    def refresh(self, *regions: Region, repaint: bool = True, layout: bool = False,
                recompose: bool = False) -> ConnectionTable:
        if self._border_lines_only and not (regions or layout or recompose):
            # The top and bottom lines (the borders and their titles), in the
            # content's coordinates as Widget.refresh takes regions.
            width, height = self.outer_size
            left, top = self.content_offset
            if width and height > 1:
                regions = (Region(-left, -top, width, 1),
                           Region(-left, height - 1 - top, width, 1))
        super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)
        return self

    def show_empty(self, text: str) -> None:
        """Say ``text`` (e.g. "no connections yet") while the table has no rows."""
        if text != self.empty_text:
            self.empty_text = text
            self.refresh()

    # Drawing: a line or a cell that did not change is not drawn again

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        # DataTable keys its line, row and cell renders on a counter that every
        # change moves, and works out the row's styles again for each line:
        # each page drew every visible line anew, about 90% of the console's
        # time per page. A body line here is kept while its cells' values
        # draw the same and its place, widths, cursor and styles are the same
        # (a page where ages did not move draws no line), and a line that
        # changed draws only its changed cells (``_render_cell``). Overrides a
        # private method of Textual's DataTable: pinned by
        # tests/console/test_connection_table.py.
        if self.fixed_columns or self.cursor_type != "row" or (
                self._labelled_row_exists and self.show_row_labels):
            return super()._render_line(y, x1, x2, base_style)
        try:
            row_key, line_in_row = self._get_offsets(y)
        except LookupError:
            return super()._render_line(y, x1, x2, base_style)
        if line_in_row:
            return super()._render_line(y, x1, x2, base_style)
        columns = self.ordered_columns
        widths = tuple(column.get_render_width(self) for column in columns)
        width = self.size.width
        if row_key is self._header_row_key:
            return self._header_line(y, x1, x2, width, widths, base_style, columns)
        row_index = self._row_locations.get(row_key)
        cursor = self.cursor_coordinate.row == row_index
        hover = self.hover_coordinate.row == row_index
        row_style = self._row_style(row_index, base_style)
        signature = (x1, x2, width, row_index, widths, base_style, row_style, cursor, hover,
                     self.show_cursor, self._show_hover_cursor,
                     # Only the cursor's and the hover's styles follow the focus.
                     self._pseudo_class_state if cursor or hover else None, self.cell_padding)
        data = self._data[row_key]
        cells = tuple(data.get(column.key) for column in columns)
        drawn = self._drawn_lines.get(y)
        if (drawn is not None and drawn[0] == signature
                and all(map(_draws_same, drawn[1], cells))):
            return drawn[2]
        strip = self._draw_line(row_index, x1, x2, width, widths, base_style, row_style,
                                cursor, hover)
        self._drawn_lines[y] = (signature, cells, strip)
        return strip

    def _header_line(self, y: int, x1: int, x2: int, width: int, widths: tuple[int, ...],
                     base_style: Style, columns: list[Column]) -> Strip:
        """The header, drawn by DataTable and kept while its labels, widths and
        styles are the same: DataTable draws it anew after every change of a
        cell, and every page changes cells."""
        signature = (x1, x2, width, widths, base_style, self.cursor_coordinate.row < 0,
                     self.hover_coordinate.row < 0, self.show_cursor, self._show_hover_cursor,
                     self._pseudo_class_state, self.cell_padding)
        labels = tuple(column.label for column in columns)
        drawn = self._drawn_header
        if (drawn is not None and drawn[0] == signature
                and all(map(_draws_same, drawn[1], labels))):
            return drawn[2]
        strip = super()._render_line(y, x1, x2, base_style)
        self._drawn_header = (signature, labels, strip)
        return strip

    def _row_style(self, row_index: int, base_style: Style) -> Style:
        """A body row's style (zebra stripes), computed once until the styles change."""
        key = (bool(row_index % 2), base_style)
        row_style = self._row_styles.get(key)
        if row_style is None:
            row_style = self._row_styles[key] = self._get_row_style(row_index, base_style)
        return row_style

    def _draw_line(self, row_index: int, x1: int, x2: int, width: int, widths: tuple[int, ...],
                   base_style: Style, row_style: Style, cursor: bool, hover: bool) -> Strip:
        """One body line, as DataTable's ``_render_line`` draws it for a row cursor."""
        segments: list[Segment] = []
        for column_index, cell_width in enumerate(widths):
            segments.extend(self._render_cell(row_index, column_index, row_style, cell_width,
                                              cursor, hover)[0])
        # The rest of the line, as wide as the table, styled as the row (and cursor).
        extend_style, _ = self._get_styles_to_render_cell(
            False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
            False, False)
        extend_style = row_style + extend_style + self._meta_style(row_index, 0, True)
        rest = width - sum(widths)
        segments.append(Segment(" " * max(0, rest), extend_style))
        if x1 == 0 and x2 >= width and rest >= 0:
            return Strip(segments, width).simplify()  # as wide as the table: nothing to crop
        return Strip(line_crop(segments, x1, x2, width)).adjust_cell_length(
            width, base_style).simplify()

    def _meta_style(self, row_index: int, column_index: int, outside: bool = False) -> Style:
        """The mouse's metadata of a cell (which row and column it is)."""
        key = (row_index, -1 - column_index if outside else column_index)
        style = self._meta_styles.get(key)
        if style is None:
            meta: dict[str, Any] = {"row": row_index, "column": column_index}
            if outside:
                meta["out_of_bounds"] = True
            style = self._meta_styles[key] = Style.from_meta(meta)
        return style

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> Any:
        # What a body cell draws depends only on its value, its place (the
        # lines carry the row and column index for the mouse), its width and
        # its styles, not on which connection it shows: so its lines are kept
        # by place, and reused while the value there draws the same. A new
        # page (], a filter, Esc) draws only the cells whose text differs from
        # the cell that was in their place; the focus moving to the filter box
        # and back draws only the cursor's row (the table has no tint of its
        # own when focused). Overrides a private method of Textual's
        # DataTable: pinned by tests/console/test_connection_table.py.
        if row_index < 0 or column_index < 0:
            return super()._render_cell(row_index, column_index, base_style, width,
                                        cursor, hover)
        value = self.get_cell_at((row_index, column_index))  # type: ignore[arg-type]
        signature = (width, base_style, cursor, hover, self._show_hover_cursor,
                     # Only the cursor's and the hover's styles follow the focus.
                     self._pseudo_class_state if cursor or hover else None,
                     self.cell_padding)
        place = (row_index, column_index)
        cached = self._drawn_cells.get(place)
        if cached is not None and cached[1] == signature and _draws_same(cached[0], value):
            return cached[2]
        lines = self._draw_cell(row_index, column_index, value, base_style, width, cursor,
                                hover)
        self._drawn_cells[place] = (value, signature, lines)
        return lines

    def _draw_cell(self, row_index: int, column_index: int, value: Any, base_style: Style,
                   width: int, cursor: bool, hover: bool) -> list[list[Segment]]:
        """A body cell's lines: a one-line text of one style is laid out here
        (Rich's layout of a padded, styled renderable cost 0.3-0.6 ms a cell, and a
        page under churn changes about two cells a row); anything else by DataTable."""
        pad = self.cell_padding
        inner = width - 2 * pad
        if (type(value) is not Text or value._spans or value.justify not in _PLAIN_JUSTIFY
                or value.cell_len > inner or "\n" in value.plain or "\t" in value.plain
                or (value.justify == "right" and value.plain.endswith(" "))):
            return super()._render_cell(row_index, column_index, base_style, width,
                                        cursor, hover)
        component_style, post_style = self._get_styles_to_render_cell(
            False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
        # As DataTable's Styled(Padding(cell), pre_style, post_style) draws it:
        # the padding in the cell's style, the text and its justification in
        # the text's style on top.
        outer = base_style + self._meta_style(row_index, column_index) + component_style
        text_style = self.app.console.get_style(value.style)
        inner_style = outer + text_style + post_style
        outer_style = outer + post_style
        plain = value.plain
        fill = " " * (inner - value.cell_len)
        padding = Segment(" " * pad, outer_style) if pad else None
        if value.justify == "right":
            body = [Segment(fill + plain, inner_style)]
        elif value.justify == "left":
            body = [Segment(plain + fill, inner_style)]
        else:
            body = [Segment(plain, inner_style), Segment(fill, outer_style)]
        return [[padding, *body, padding] if padding is not None else body]

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._drawn_cells.clear()
        self._drawn_lines.clear()
        self._row_styles.clear()
        self._drawn_header = None

    def clear(self, columns: bool = False) -> ConnectionTable:
        # The lines kept by place stay right whatever rows come next (see
        # _render_cell): a new page reuses those its cells draw the same.
        kept, lines = self._drawn_cells.copy(), self._drawn_lines.copy()
        super().clear(columns)
        self._drawn_cells, self._drawn_lines = kept, lines
        return self

    def notify_style_update(self) -> None:
        super().notify_style_update()
        # Styles change when the focus comes or goes (the border), and with the
        # theme. A body cell off the cursor and the hover is drawn with its
        # row's style alone, which its signature holds: only the cursor's and
        # the hover's cells are drawn anew.
        self._drawn_cells = {place: drawn for place, drawn in self._drawn_cells.items()
                             if not (drawn[1][2] or drawn[1][3])}
        self._row_styles.clear()
        self._drawn_header = None

    @property
    def rich_style(self) -> Style:
        # DataTable's render_line asks for the widget's style once a line, and
        # each time it is worked out again from every ancestor's styles: about
        # a tenth of the CPU of a page drawn (a ], a filter). It cannot change
        # while a frame draws the lines, so it is worked out once a frame.
        style = self._frame_style
        return style if style is not None else super().rich_style

    def render_lines(self, crop: Region) -> list[Strip]:
        self._frame_style = None
        self._frame_style = self.rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._frame_style = None

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
        """The connection id under the cursor, if any (none while the cursor is
        parked: the connection it was on went)."""
        if not self.row_count or self.parked:
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
        gone_rows = [key for key in self._cells if key not in wanted]
        if len(gone_rows) > len(self._cells) // 2 and len(gone_rows) > 1:
            self._replace_page(connections, now, selected)
            return
        if selected is not None and selected in gone_rows:
            self._park()
        for gone in gone_rows:
            self.remove_row(gone)
            del self._cells[gone]
            del self._widths[gone]
            self._summaries.pop(gone, None)
        indexes = self._shown_indexes
        columns = [(index, self.columns[ColumnKey(COLUMNS[index][0])]) for index in indexes]
        # Rows whose cells changed in place: only their lines are drawn again.
        changed: list[str] = []
        for connection in connections:
            key = connection["id"]
            cells = self._format(connection, now)
            self._summaries[key] = connection
            previous = self._cells.get(key)
            if previous is None:
                # Textual measures a new row's cells
                self.add_row(*(_text(cells[index]) for index in indexes), key=key)
                self._widths[key] = tuple(cell_len(cell[0]) for cell in cells)
            elif previous != cells:
                widths = self._widths[key] = tuple(
                    old if cell == before else cell_len(cell[0])
                    for old, cell, before in zip(self._widths[key], cells, previous))
                row = self._data[RowKey(key)]
                for index, column in columns:
                    new = cells[index]
                    if previous[index] == new:
                        continue
                    # Measured only when it outgrows its column (one measure);
                    # a column that may shrink is measured once, below.
                    if widths[index] > column.content_width:
                        self.update_cell(key, column.key, _text(new), update_width=True)
                    else:
                        # update_cell repaints the whole table: the row alone, below.
                        row[column.key] = _text(new)
                        changed.append(key)
            self._cells[key] = cells
        if changed:
            self._update_count += 1  # DataTable's own caches of rows and cells
        self._fit_columns(columns)
        self._skip_measuring_new_rows()
        self.fit_width()
        current_order = sorted(self._cells, key=lambda k: self.get_row_index(k))
        if current_order != new_order:
            rank = {key: index for index, key in enumerate(new_order)}
            self.sort("id", key=lambda value: rank.get(str(value), len(rank)))
        self._repaint_rows(changed)
        if selected is not None and selected in self._cells:
            index = self.get_row_index(selected)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False, scroll=False)

    def _replace_page(self, connections: list[dict[str, Any]], now: float,
                      selected: str | None) -> None:
        """Show a page that shares fewer than half its rows with the one shown (the
        next page, another filter or sort): every row anew, in one go.

        Removing rows one by one costs each removal a pass over the rows left
        and a layout; a page of 100 took about three times as long. The
        cursor stays on the selected connection if it is still here, else on
        the same line, and the table keeps its scroll position.
        """
        cursor_row, scroll_y = self.cursor_row, self.scroll_y
        self.clear()
        self._cells.clear()
        self._widths.clear()
        self._summaries.clear()
        indexes = self._shown_indexes
        for connection in connections:
            key = connection["id"]
            cells = self._format(connection, now)
            self.add_row(*(_text(cells[index]) for index in indexes), key=key)
            self._cells[key] = cells
            self._widths[key] = tuple(cell_len(cell[0]) for cell in cells)
            self._summaries[key] = connection
        # clear() keeps the widths of the rows that went: each column as wide
        # as its header and the new rows.
        for column in self.columns.values():
            column.content_width = column.label.cell_len
        self._fit_columns([(index, self.columns[ColumnKey(COLUMNS[index][0])])
                           for index in indexes])
        self._skip_measuring_new_rows()
        self.fit_width()
        if not connections:
            return
        if selected is not None and selected in self._cells:
            cursor_row = self.get_row_index(selected)
        self.move_cursor(row=min(cursor_row, len(connections) - 1), animate=False,
                         scroll=False)
        self.scroll_to(y=scroll_y, animate=False, immediate=True)

    def _repaint_rows(self, keys: list[str]) -> None:
        """Repaint the lines of these rows (those on screen), not the whole table.

        ``update_cell`` repaints every line of the table, and the screen then
        composes the table's whole region again; under churn most rows change
        every second, but a quiet page changes a few. Uses DataTable's
        ``_refresh_region`` (scrolled, and skipped when out of sight): pinned by
        tests/console/test_connection_table.py.
        """
        if not keys:
            return
        width = max(self.virtual_size.width, self.size.width)
        top = self.header_height if self.show_header else 0
        # Every row is one line: runs of neighbouring rows are one region each.
        start = end = -2
        for index in sorted({self.get_row_index(key) for key in keys}):
            if index != end + 1:
                if start >= 0:
                    self._refresh_region(Region(0, top + start, width, end - start + 1))
                start = index
            end = index
        self._refresh_region(Region(0, top + start, width, end - start + 1))

    def _skip_measuring_new_rows(self) -> None:
        """Leave out Textual's measure of the rows just added.

        Once the table is idle, DataTable measures every cell of every row
        added since (a page of 100 rows: 1,300 measures, about 15 ms on this
        machine for each ], filter or Esc). The table already knows each cell's
        width and has fitted the columns to them (``_fit_columns``). Textual
        still computes the table's size then. Pinned by
        tests/console/test_connection_table.py (``_new_rows``).
        """
        self._new_rows.clear()

    def _fit_columns(self, columns: list[tuple[int, Column]]) -> None:
        """Make each column as wide as its widest cell (or its header).

        A column grows here at once, from the widths the table keeps: Textual
        measures new and outgrown cells only once the table is idle, and a
        frame drawn before that would cut them short until the next update.
        A column whose widest cell is gone or got narrower is narrowed by
        re-measuring one of its cells with ``update_width=True``: Textual
        widens columns as cells grow but never narrows them when rows go.
        """
        if not self._widths:
            return
        for index, column in columns:
            widest_row, widest = max(((key, widths[index]) for key, widths in
                                      self._widths.items()), key=lambda item: item[1])
            wanted = max(widest, column.label.cell_len)
            if wanted > column.content_width:
                column.content_width = wanted
            elif wanted < column.content_width:
                self.update_cell(widest_row, column.key, _text(self._cells[widest_row][index]),
                                 update_width=True)

    @staticmethod
    def _format(c: dict[str, Any], now: float) -> tuple[_Cell, ...]:
        """A connection's cells, in COLUMNS order, as (text, style, justify)."""
        def as_is(value: Any, style: str = "") -> _Cell:
            # As formatting.literal: shown as it is, control characters escaped.
            return ("" if value is None else printable(value, keep_lines=True), style, None)

        def right(value: str, style: str = "") -> _Cell:
            return (value, style, "right")

        buffered = c.get("buffered") or 0
        latency = c.get("latency") or 0.0
        idle = now - (c.get("last_activity") or now)
        return (
            # Ids, users, paths and addresses come from clients: never markup.
            as_is(c["id"]),
            as_is(c.get("node"), "dim"),
            as_is(c.get("user"), "bold"),
            as_is(c.get("path")),
            as_is(c.get("remote"), "dim"),
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
