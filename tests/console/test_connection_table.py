"""The connection table updates in place and cheaply: what changed is drawn, what
went is gone, columns fit their content, and unchanged widths are never measured."""

from __future__ import annotations

from typing import Any

import pytest
import textual.widgets._data_table as textual_data_table
from textual.app import App, ComposeResult

from tests.helpers import wait_for
from wsconsole.console.widgets.connection_table import ConnectionTable

NOW = 1000.0


def summary(id: str, **fields: Any) -> dict[str, Any]:
    row = {"id": id, "node": "n1", "user": f"user-{id}", "path": "/chat",
           "remote": "127.0.0.1:1", "connected_at": NOW - 5, "last_activity": NOW - 1,
           "msgs_in": 0, "bytes_in": 0, "msgs_out": 0, "bytes_out": 0, "buffered": 0,
           "latency": 0.0, "topics": []}
    row.update(fields)
    return row


class Harness(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.now = [NOW]

    def compose(self) -> ComposeResult:
        yield ConnectionTable(clock=lambda: self.now[0])


def drawn(table: ConnectionTable) -> str:
    """The table as drawn now, as plain text."""
    return "\n".join(table.render_line(y).text for y in range(table.outer_size.height))


def count_drawn_cells(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The (row, column) of every body cell the table draws anew from now on."""
    drawn_cells: list[tuple[int, int]] = []
    draw_cell = ConnectionTable._draw_cell

    def counting(self: Any, row_index: int, column_index: int, *args: Any) -> Any:
        drawn_cells.append((row_index, column_index))
        return draw_cell(self, row_index, column_index, *args)

    monkeypatch.setattr(ConnectionTable, "_draw_cell", counting)
    return drawn_cells


def width_of(table: ConnectionTable, key: str) -> int:
    return next(c.content_width for c in table.ordered_columns if c.key.value == key)


async def test_a_changed_cell_is_drawn_and_a_row_that_went_away_is_not():
    """A counter that moved shows its new value; a connection missing from the next
    page leaves the table."""
    app = Harness()
    async with app.run_test(size=(160, 12)) as pilot:
        table = app.query_one(ConnectionTable)
        table.apply_page([summary("a1", msgs_in=3), summary("b2", user="bob")])
        await wait_for(lambda: "bob" in drawn(table), interval=0.02)
        table.apply_page([summary("a1", msgs_in=4567)])
        await wait_for(lambda: "4,567" in drawn(table) or "4.6k" in drawn(table),
                       interval=0.02)
        await pilot.pause()
        assert "bob" not in drawn(table)
        assert [str(key.value) for key in table.rows] == ["a1"]


async def test_a_short_page_and_a_full_one_keep_the_table_still(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A page of fewer rows than the table shows (a filter) and the next full
    page (Esc) keep the rows' width: the scroll bar stays, and the screen is
    not laid out again for it."""
    import textual.screen as textual_screen

    layouts = [0]
    refresh_layout = textual_screen.Screen._refresh_layout

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        layouts[0] += 1
        return refresh_layout(self, *args, **kwargs)

    monkeypatch.setattr(textual_screen.Screen, "_refresh_layout", counted)
    app = Harness()
    async with app.run_test(size=(160, 12)) as pilot:
        table = app.query_one(ConnectionTable)
        full = [summary(f"a{n}") for n in range(20)]
        table.apply_page(full)
        await wait_for(lambda: "user-a5" in drawn(table), interval=0.02)
        await pilot.pause()
        width = table.scrollable_content_region.width
        before = layouts[0]
        for page, shown in ((full[:2], "user-a1"), (full, "user-a5")):
            table.apply_page(page)
            await wait_for(lambda shown=shown: shown in drawn(table), interval=0.02)
            await pilot.pause()
            assert table.show_vertical_scrollbar
            assert table.scrollable_content_region.width == width
        # The virtual height changes twice: one layout each, none for a scroll bar.
        assert layouts[0] - before <= 2


async def test_columns_follow_their_content_both_ways():
    """A path longer than its column widens it; when the row holding it goes, the
    column narrows back to the widest path left (or its header)."""
    app = Harness()
    async with app.run_test(size=(160, 12)) as pilot:
        table = app.query_one(ConnectionTable)
        table.apply_page([summary("a1"), summary("b2")])
        await pilot.pause()
        narrow = width_of(table, "path")
        long_path = "/a/rather/long/path/for/a/websocket"
        table.apply_page([summary("a1"), summary("b2", path=long_path)])
        await wait_for(lambda: width_of(table, "path") == len(long_path), interval=0.02)
        await wait_for(lambda: long_path in drawn(table), interval=0.02)
        table.apply_page([summary("a1")])
        await wait_for(lambda: width_of(table, "path") == narrow, interval=0.02)


async def test_pages_whose_cells_keep_their_widths_measure_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ages, idle times and counters change on every page; while no value changes
    its width, no column is measured again (each changed cell measured its whole
    column before: hundreds of thousands of measures a minute at 10,000
    connections). Pins Textual's ``_data_table.measure``, the function it measures with."""
    calls = [0]
    measure = textual_data_table.measure

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return measure(*args, **kwargs)

    monkeypatch.setattr(textual_data_table, "measure", counting)
    app = Harness()
    async with app.run_test(size=(160, 30)) as pilot:
        table = app.query_one(ConnectionTable)
        ids = [f"c{n:02d}" for n in range(20)]
        table.apply_page([summary(i, msgs_in=10) for i in ids])
        await pilot.pause()
        assert calls[0] > 0  # the new rows were measured, as they should be
        calls[0] = 0
        for second in range(1, 6):
            # Ages 6s..10s would change width at 10s: stay at one digit.
            app.now[0] = NOW + second * 0.5
            table.apply_page([summary(i, msgs_in=10 + second, last_activity=app.now[0])
                              for i in ids])
            await pilot.pause()
        assert calls[0] == 0
        assert "15" in drawn(table)


async def test_a_new_page_replaces_the_rows_and_keeps_the_cursor_line():
    """The next page (no row in common) shows its rows in the server's order, the
    cursor stays on the same line, and columns fit the new rows, not the old."""
    app = Harness()
    async with app.run_test(size=(160, 30)) as pilot:
        table = app.query_one(ConnectionTable)
        long_path = "/a/rather/long/path/for/a/websocket"
        table.apply_page([summary(f"a{n}", path=long_path) for n in range(10)])
        await pilot.pause()
        table.move_cursor(row=3)
        await wait_for(lambda: table.cursor_row == 3)
        second = [summary(f"b{n}") for n in range(10)]
        table.apply_page(second)
        await wait_for(lambda: "user-b0" in drawn(table), interval=0.02)
        assert [str(key.value) for key in table.rows] == [s["id"] for s in second]
        assert table.cursor_row == 3 and table.selected_id == "b3"
        await wait_for(lambda: width_of(table, "path") == len("/chat"), interval=0.02)
        assert long_path not in drawn(table)


async def test_only_the_cells_that_changed_are_drawn_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A page where one counter moved draws that column's cells again and reuses
    the others (DataTable drew every visible cell after any update), and a page
    where nothing moved draws no line at all, not even the header (DataTable drew
    it after every change of a cell). Pins Textual's ``DataTable._render_line``,
    which ConnectionTable overrides."""
    drawn_cells = count_drawn_cells(monkeypatch)
    drawn_lines: list[int] = []
    draw_line = ConnectionTable._draw_line

    def counting_lines(self: Any, row_index: int, *args: Any) -> Any:
        drawn_lines.append(row_index)
        return draw_line(self, row_index, *args)

    monkeypatch.setattr(ConnectionTable, "_draw_line", counting_lines)
    from textual.widgets import DataTable

    datatable_lines = [0]
    render_line_in_row = DataTable._render_line_in_row

    def counting_datatable_lines(self: Any, *args: Any, **kwargs: Any) -> Any:
        datatable_lines[0] += 1  # the header, drawn by DataTable
        return render_line_in_row(self, *args, **kwargs)

    monkeypatch.setattr(DataTable, "_render_line_in_row", counting_datatable_lines)
    app = Harness()
    async with app.run_test(size=(160, 12)) as pilot:
        table = app.query_one(ConnectionTable)
        page = [summary(f"c{n}", msgs_in=10) for n in range(5)]
        table.apply_page(page)
        await wait_for(lambda: "user-c4" in drawn(table), interval=0.02)
        await pilot.pause()
        drawn_cells.clear()
        table.apply_page([dict(row, msgs_in=11) for row in page])
        await wait_for(lambda: "11" in drawn(table), interval=0.02)
        msgs_in = [index for index, column in enumerate(table.ordered_columns)
                   if column.key.value == "msgs_in"]
        body = {cell for cell in drawn_cells if cell[0] >= 0}
        assert body and {column for _, column in body} == set(msgs_in)
        assert drawn_lines  # through ConnectionTable's lines, not DataTable's

        drawn_cells.clear()
        drawn_lines.clear()
        table.apply_page([dict(row, msgs_in=11) for row in page])
        table.refresh()  # every line asked for again: none drawn
        await pilot.pause()
        assert "11" in drawn(table)
        assert not drawn_lines and not drawn_cells

        datatable_lines[0] = 0
        table.apply_page([dict(row, msgs_in=12) for row in page])
        table.refresh()  # the rows drawn again, the header kept
        await pilot.pause()
        assert "12" in drawn(table) and drawn_lines
        assert not datatable_lines[0]


async def test_a_new_page_and_the_focus_draw_only_what_looks_different(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The next page (other connections) draws only the cells that look different
    from the cell in their place (here the ids and users: same path, client, age
    and counters), and the focus going to another widget and back draws only
    the cursor's row; Textual does not measure the page's rows again (the
    table knows their widths). Pins ``DataTable._render_cell`` and ``_new_rows``."""
    from textual.widgets import Input

    class WithInput(Harness):
        def compose(self) -> ComposeResult:
            yield Input()
            yield ConnectionTable(clock=lambda: self.now[0])

    drawn_cells = count_drawn_cells(monkeypatch)
    app = WithInput()
    async with app.run_test(size=(160, 14)) as pilot:
        table = app.query_one(ConnectionTable)
        table.focus()
        table.apply_page([summary(f"a{n}") for n in range(5)])
        await wait_for(lambda: "user-a4" in drawn(table), interval=0.02)
        await pilot.pause()
        columns = {str(column.key.value): index
                   for index, column in enumerate(table.ordered_columns)}
        drawn_cells.clear()
        table.apply_page([summary(f"b{n}") for n in range(5)])
        assert not table._new_rows  # nothing left for Textual to measure
        await wait_for(lambda: "user-b4" in drawn(table), interval=0.02)
        body = {cell for cell in drawn_cells if cell[0] >= 0}
        assert {column for _, column in body} == {columns["id"], columns["user"]}

        for focused in (app.query_one(Input), table):
            drawn_cells.clear()
            focused.focus()
            await pilot.pause()
            await pilot.pause()
            assert "user-b4" in drawn(table)
            assert {row for row, _ in drawn_cells if row >= 0} <= {table.cursor_row}


def styled_cells(strip: Any) -> list[tuple[str, Any]]:
    """A drawn line as (character, style) pairs, whatever its segments."""
    return [(character, segment.style) for segment in strip for character in segment.text]


async def test_lines_are_drawn_as_datatable_draws_them() -> None:
    """The table's own drawing of its lines and cells (kept lines, plain text laid
    out without Rich) shows what DataTable's would, character by character and
    style by style: wide characters, a trailing space, a tab (DataTable's
    path), warnings in colour, the cursor's row, focused or not. Pins the
    private names ConnectionTable draws with: DataTable's ``_render_line``,
    ``_render_cell``, ``_get_offsets``, ``_get_row_style``,
    ``_get_styles_to_render_cell``, ``_data``, ``_update_count`` and
    ``_refresh_region``."""
    from textual.widgets import DataTable

    for name in ("_render_line", "_render_cell", "_get_offsets", "_get_row_style",
                 "_get_styles_to_render_cell", "_refresh_region"):
        assert callable(getattr(DataTable, name))
    app = Harness()
    async with app.run_test(size=(150, 9)) as pilot:
        table = app.query_one(ConnectionTable)
        assert isinstance(table._data, dict) and isinstance(table._update_count, int)
        table.focus()
        table.apply_page([
            summary("a1", user="ünï 名前", msgs_in=3), summary("b2", user="bob ", buffered=300_000,
                                                            latency=0.5),
            summary("c3", path="/x\ty", last_activity=NOW - 100), summary("d4", node=None),
        ])
        await pilot.pause()
        table.move_cursor(row=2)
        await pilot.pause()
        whole = table.outer_size.region

        def lines() -> list[Any]:
            table._clear_caches()
            # One line at a time, and the whole widget as a frame draws it.
            return ([styled_cells(table.render_line(y)) for y in range(table.size.height)]
                    + [styled_cells(strip) for strip in table.render_lines(whole)])

        for _ in ("focused", "not focused"):
            ours = lines()
            with pytest.MonkeyPatch.context() as patch:
                for name in ("_render_line", "_render_cell", "render_line", "render_lines",
                             "rich_style"):
                    patch.setattr(ConnectionTable, name, getattr(DataTable, name))
                theirs = lines()
            assert ours == theirs
            table.blur()
            await pilot.pause()


async def test_new_titles_draw_only_the_border_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key sets the table's titles at once, before its page comes: only the
    border lines that carry them are drawn again, not every row (Textual's
    border title repaints the whole widget)."""
    app = Harness()
    async with app.run_test(size=(150, 12)) as pilot:
        table = app.query_one(ConnectionTable)
        table.apply_page([summary(f"a{n}") for n in range(5)])
        table.show_titles("Connections", "everyone")
        await pilot.pause()
        lines: list[int] = []
        render_line = ConnectionTable.render_line

        def counting(self: Any, y: int) -> Any:
            lines.append(y)
            return render_line(self, y)

        monkeypatch.setattr(ConnectionTable, "render_line", counting)
        table.show_titles("Connections, page 2", "user=ann")
        await pilot.pause()
        assert lines == []
        strips = table.render_lines(table.outer_size.region)
        assert "Connections, page 2" in strips[0].text and "user=ann" in strips[-1].text
        assert "user-a4" in "".join(strip.text for strip in strips)

