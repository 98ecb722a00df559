"""The console's pure helpers: the filter syntax and the number formats."""

from __future__ import annotations

import pytest

from wsconsole.console import output
from wsconsole.console.formatting import (
    ViewFilter,
    describe_close,
    human_bytes,
    human_count,
    human_duration,
    human_latency,
    natural_key,
    parse_filter,
)
from wsconsole.console.screens.compose import check_message


def test_filter_reads_keys_and_bare_words() -> None:
    """`user=`, `path=`, `topic=`, `id=` and bare words, /paths and #topics all parse;
    a key's value is a name or a pattern, a bare word the start of a name (`/guest`
    finds guest-1 and guest-2), unless it has wildcards of its own."""
    assert parse_filter("user=ann path=/chat") == ViewFilter(user="ann", path="/chat")
    assert parse_filter("bob /feed #lobby") == ViewFilter(user="bob*", path="/feed*",
                                                          topic="lobby*")
    assert parse_filter("guest") == ViewFilter(user="guest*")
    assert parse_filter("guest-? /api/*") == ViewFilter(user="guest-?", path="/api/*")
    assert parse_filter("user=guest* path=/api/*") == ViewFilter(user="guest*", path="/api/*")
    assert parse_filter("id=3f") == parse_filter("id=3f*") == ViewFilter(id_prefix="3f")
    # A backslash is the pattern's, not the shell's.
    assert parse_filter("user=a\\*b") == ViewFilter(user="a\\*b")
    assert parse_filter("") == ViewFilter()


def test_filter_refuses_what_it_cannot_read() -> None:
    """Unknown keys, empty values and two users are refused with a message."""
    for text in ("colour=red", "user=", "ann bob", "'unclosed", "user=DOMAIN\\ann", "id=*"):
        with pytest.raises(ValueError):
            parse_filter(text)


def test_filter_round_trips_and_becomes_a_selector() -> None:
    """A filter prints back in its own syntax, and turns into a control-plane selector."""
    view = ViewFilter(user="ann smith", topic="lobby")
    assert parse_filter(view.text()) == view
    assert view.selector() == {"user": "ann smith", "topic": "lobby"}
    assert ViewFilter(user="guest*").text() == "user=guest*"  # no quotes needed
    # A group chosen in the panel is that name, escaped: never a pattern.
    chosen = ViewFilter().with_group("user", "a*b")
    assert chosen.user == "a\\*b" and parse_filter(chosen.text()) == chosen
    assert ViewFilter().selector() == {"everyone": True}
    # An id prefix cannot be a selector: no action may target more than is shown.
    assert ViewFilter(id_prefix="3f").selector() is None


def test_the_command_line_and_the_tui_write_bytes_alike() -> None:
    """`wsconsole show` and the detail screen print the same size the same way."""
    for n in (0, 512, 1536, 3 * 1024 * 1024, 12.5 * 1024 * 1024, 5 * 1024**4):
        assert output.size(n) == human_bytes(n)


def test_numbers_are_short() -> None:
    """Bytes, counts, durations and close codes read at a glance."""
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * 1024 * 1024) == "3.0 MiB"
    assert human_bytes(12.5 * 1024 * 1024) == "12 MiB"
    assert human_bytes(None) == "-"
    assert human_count(999) == "999"
    assert human_count(12_345) == "12.3k"
    assert human_duration(4) == "4s"
    assert human_duration(185) == "3m05s"
    assert human_duration(7800) == "2h10m"
    assert describe_close(1001) == "1001 going away"
    # Loopback round trips are a fraction of a millisecond, not "0 ms".
    assert human_latency(None) == human_latency(0.0) == "-"
    assert human_latency(0.00042) == "0.4 ms"
    assert human_latency(0.035) == "35 ms"
    assert human_latency(1.25) == "1.2 s"
    assert describe_close(4000, "bye") == "4000 'bye'"


def test_json_is_checked_before_sending() -> None:
    """Invalid JSON and empty messages are refused; text is sent as typed."""
    assert check_message('{"a": 1}', as_json=True) is None
    assert "Invalid JSON" in (check_message("{oops", as_json=True) or "")
    assert check_message("{oops", as_json=False) is None
    assert check_message("", as_json=False) is not None


def test_literal_escapes_terminal_control_and_bidi_characters():
    """A client-chosen value cannot send escape sequences to the operator's
    terminal through the console (Rich keeps ESC), nor reverse text with bidi
    overrides; newlines and tabs of multi-line messages stay."""
    from wsconsole.console.formatting import literal

    shown = literal("eve\x1b]0;pwned\x07\x1b[2J\u202egnp.exe\nnext\tline").plain
    assert "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown
    assert shown == "eve\\x1b]0;pwned\\x07\\x1b[2J\\u202egnp.exe\nnext\tline"


def test_natural_key_orders_numbers_by_value() -> None:
    """Numbers in names sort by value, case is ignored, and equal-looking names keep
    a fixed order."""
    names = ["u10", "u100", "u2", "u0", "U1", "/room/9", "/room/10", "u01", "ann", "Bob", "u"]
    assert sorted(names, key=natural_key) == [
        "/room/9", "/room/10", "ann", "Bob", "u", "u0", "U1", "u01", "u2", "u10", "u100"]
    assert natural_key("42") < natural_key("a")


async def test_a_value_that_outgrows_its_column_widens_it():
    """When a connection's idle time grows from 59s to 1m03s, the idle column
    widens instead of cutting the value to "1m03"."""
    from textual.app import App, ComposeResult

    from wsconsole.console.widgets.connection_table import ConnectionTable

    now = [1000.0]

    class Harness(App):
        def compose(self) -> ComposeResult:
            yield ConnectionTable(clock=lambda: now[0])

    summary = {"id": "abc", "user": "ann", "path": "/", "remote": "127.0.0.1:1",
               "connected_at": 999.0, "last_activity": 999.0, "msgs_in": 0,
               "bytes_in": 0, "msgs_out": 0, "bytes_out": 0, "buffered": 0,
               "latency": 0.0, "topics": []}
    app = Harness()
    async with app.run_test(size=(200, 20)) as pilot:
        table = app.query_one(ConnectionTable)
        table.apply_page([dict(summary, connected_at=990.0, last_activity=999.0)])
        await pilot.pause()
        now[0] = 1000.0 + 62
        table.apply_page([dict(summary, connected_at=990.0, last_activity=999.0)])
        await pilot.pause()
        idle = next(column for column in table.ordered_columns
                    if column.key.value == "last_activity")
        assert idle.content_width >= len("1m03s")
