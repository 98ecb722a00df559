"""What the console's views show and what their keys can do, with plain values:
the main screen's view, its titles and targets, the keys, the link as the
screens say it, and the shutdown dialog's drain."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wsconsole.console.formatting import ViewFilter
from wsconsole.console.link import (
    LinkState,
    LinkStatus,
    reconnect_delay,
    with_state_change,
)
from wsconsole.console.view_state import (
    COLUMNS,
    MUTATING_ACTIONS,
    SORT_LETTERS,
    PageRequest,
    ViewState,
    drain,
    header_arrow,
    key_state,
    link_banner,
    link_health,
    link_note,
    next_sort,
    reversed_sort,
    server_summary,
    sort_by_letter,
    sort_for_header,
    sort_label,
    sort_letters_help,
    table_titles,
)

OPERATOR = LinkState().connected({"role": "operator", "node": "n1"})
READ_ONLY = LinkState().connected({"role": "read_only", "node": "n1"})
ANN = {"id": "3f2a", "user": "ann", "path": "/chat"}


def page(total: int, next_cursor: str | None = None) -> dict[str, object]:
    return {"connections": [], "total": total, "next_cursor": next_cursor, "groups": {}}


# Sorting


def test_each_column_says_which_way_it_is_sorted() -> None:
    """Age reads oldest/newest first, idle longest/shortest first, counts
    fewest/most first, names A-Z/Z-A."""
    assert sort_label("connected_at") == "age (oldest first)"
    assert sort_label("-connected_at") == "age (newest first)"
    assert sort_label("last_activity") == "idle (longest first)"
    assert sort_label("-last_activity") == "idle (shortest first)"
    assert sort_label("msgs_in") == "msgs in (fewest first)"
    assert sort_label("-msgs_in") == "msgs in (most first)"
    assert sort_label("-bytes_out") == "bytes out (most first)"
    assert sort_label("latency") == "latency (lowest first)"
    assert sort_label("user") == "user (A-Z)"
    assert sort_label("-remote") == "client (Z-A)"
    for key, _, _ in COLUMNS:  # every column has a label both ways
        assert sort_label(key) != sort_label(f"-{key}")


def test_s_walks_the_columns_and_r_reverses() -> None:
    """`s` goes to the next column (wrapping around), the way it reads best: age and
    idle longest first, counters largest first; `r` flips the order."""
    assert next_sort("connected_at") == "last_activity"
    assert next_sort("-connected_at") == "last_activity"
    assert next_sort("latency") == "id"
    # Numbers start largest first, as their letters and header clicks do.
    assert next_sort("last_activity") == "-msgs_in"
    assert next_sort("-bytes_out") == "-buffered"
    assert reversed_sort("msgs_in") == "-msgs_in"
    assert reversed_sort("-msgs_in") == "msgs_in"


def test_a_header_click_sorts_the_way_the_column_reads_best() -> None:
    """Names start A-Z, age and idle oldest first, counters largest first; the sorted
    column flips."""
    assert sort_for_header("connected_at", "user") == "user"
    assert sort_for_header("connected_at", "last_activity") == "last_activity"
    assert sort_for_header("connected_at", "msgs_in") == "-msgs_in"
    assert sort_for_header("-msgs_in", "msgs_in") == "msgs_in"
    assert sort_for_header("connected_at", "connected_at") == "-connected_at"


def test_the_arrow_shows_what_grows_downwards() -> None:
    """Oldest first grows in age down the table: ▼; counts fewest first: ▼ too."""
    assert header_arrow("connected_at", "connected_at") == "▼"
    assert header_arrow("-connected_at", "connected_at") == "▲"
    assert header_arrow("msgs_in", "msgs_in") == "▲"
    assert header_arrow("-msgs_in", "msgs_in") == "▼"
    assert header_arrow("msgs_in", "user") == ""


# The view


def test_a_new_filter_or_sort_starts_from_the_first_page_with_nothing_known() -> None:
    """Changing the filter or the sort forgets the pages walked and the last page."""
    view = ViewState().with_page(page(250, "c1"))
    view = view.next_page()
    assert view is not None and view.cursors == (None, "c1") and view.page is None
    for changed in (view.filtered(ViewFilter(user="ann")), view.sorted_by("-msgs_in"),
                    view.restarted()):
        assert changed.cursors == (None,) and changed.page is None
    assert view.filtered(ViewFilter(user="ann")).sort == "connected_at"
    assert view.sorted_by("-msgs_in").filter == ViewFilter()


def test_pages_go_forward_while_the_server_has_more_and_back_to_the_first() -> None:
    """The next page exists only with a next_cursor; the previous one only after it."""
    first = ViewState()
    assert first.next_page() is None and first.previous_page() is None
    assert first.with_page(page(10)).next_page() is None
    second = first.with_page(page(250, "c1")).next_page()
    assert second is not None
    assert second.previous_page() == first
    assert second.list_args()["cursor"] == "c1"


def test_a_page_answers_only_the_request_it_was_asked_for() -> None:
    """The request names filter, sort and cursor: after the operator moved on, an
    older page does not match it."""
    view = ViewState()
    asked = view.request
    assert asked == PageRequest(ViewFilter(), "connected_at", None)
    assert view.filtered(ViewFilter(user="ann")).request != asked
    assert view.sorted_by("user").request != asked
    assert view.list_args() == {"user": None, "path": None, "topic": None, "id_prefix": None,
                                "node": None, "sort": "connected_at", "limit": 100,
                                "cursor": None, "groups": True}


def test_the_subtitle_says_the_filter_the_rows_shown_and_the_page() -> None:
    """Rows are counted from the page's position; the page number appears only
    when there is more than one."""
    view = ViewState(page_size=2)
    assert view.subtitle(0) == "everyone"
    assert view.with_page(page(0)).subtitle(0) == "everyone · 0 connections"
    assert view.with_page(page(3, "c1")).subtitle(2) == (
        "everyone · 1-2 of 3 connections · page 1 ([ ])")
    second = view.with_page(page(3, "c1")).next_page()
    assert second is not None
    assert second.with_page(page(3)).subtitle(1) == (
        "everyone · 3-3 of 3 connections · page 2 ([ ])")
    ann = view.filtered(ViewFilter(user="ann")).with_page(page(1))
    assert ann.subtitle(1) == "user=ann · 1-1 of 1 connection"
    assert ViewState().title() == "Connections · sorted by age (oldest first)"


def test_the_empty_table_says_whether_anyone_is_there() -> None:
    """Everyone: "no connections yet"; a filter: "no connection matches <filter>"."""
    assert ViewState().empty_text() == "no connections yet"
    assert (ViewState().filtered(ViewFilter(user="bulk-*")).empty_text()
            == "no connection matches user=bulk-*")


def test_the_view_is_a_group_only_when_it_names_exactly_one() -> None:
    """One user, path or topic is that group; anything else is a filter."""
    def group(**names: str) -> tuple[str, str | None]:
        return ViewState().filtered(ViewFilter(**names)).active_group()

    assert ViewState().active_group() == ("everyone", None)
    assert group(user="ann") == ("user", "ann")
    assert group(path="/chat") == ("path", "/chat")
    assert group(topic="lobby") == ("topic", "lobby")
    assert group(user="ann", path="/chat") == ("filter", None)
    assert group(id_prefix="3f") == ("filter", None)
    assert group(user="ann", id_prefix="3f") == ("filter", None)
    # A pattern is no one group; an escaped name is that group.
    assert group(user="guest*") == ("filter", None)
    assert group(user="a\\*b") == ("user", "a*b")


def test_direct_sort_keys_read_each_column_its_best_way_and_reverse() -> None:
    """Shift and a letter: numbers largest first, age and idle longest first, names
    A-Z on the first press; the same key again reverses; every sortable column has
    a letter, and none of the keys the screens use or keep for later."""
    assert sort_by_letter("connected_at", "M") == "-msgs_in"
    assert sort_by_letter("-msgs_in", "M") == "msgs_in"
    assert sort_by_letter("msgs_in", "M") == "-msgs_in"
    assert sort_by_letter("-msgs_in", "F") == "-buffered"
    assert sort_by_letter("-msgs_in", "L") == "-latency"
    assert sort_by_letter("-msgs_in", "A") == "connected_at"  # oldest first
    assert sort_by_letter("connected_at", "A") == "-connected_at"
    assert sort_by_letter("-msgs_in", "Z") == "last_activity"  # idle longest first
    assert sort_by_letter("-msgs_in", "U") == "user"
    assert sort_by_letter("user", "U") == "-user"
    assert set(SORT_LETTERS.values()) == {key for key, _, _ in COLUMNS} - {"node"}
    taken = set("qbmdDTXsrgt?/[]") | set("eE!pG")
    assert not taken & set(SORT_LETTERS) and all(k.isupper() for k in SORT_LETTERS)
    assert sort_letters_help().startswith("I id, U user, P path, C client, A age, Z idle")


def test_the_titles_describe_the_rows_shown_not_the_view_on_its_way() -> None:
    """After a filter or sort, the table keeps the titles of the rows it shows,
    marked with …, until the new view's rows arrive with their own titles."""
    shown = ViewState().with_page(page(17))
    assert table_titles(shown, shown, 17) == (
        "Connections · sorted by age (oldest first)", "everyone · 1-17 of 17 connections")
    wanted = shown.filtered(ViewFilter(user="bulk-*")).sorted_by("-msgs_in")
    assert table_titles(shown, wanted, 17) == (
        "Connections · sorted by age (oldest first)",
        "everyone · 1-17 of 17 connections · …")
    arrived = wanted.with_page(page(0))
    assert table_titles(arrived, arrived, 0) == (
        "Connections · sorted by msgs in (most first)", "user=bulk-* · 0 connections")
    assert table_titles(None, ViewState(), 0)[1] == "everyone · …"


def test_everyone_counts_the_page_unless_the_view_is_filtered() -> None:
    """Unfiltered, the page's total is everyone; filtered, the stats' count is."""
    assert ViewState().with_page(page(7)).everyone({"connections": 9}) == 7
    filtered = ViewState().filtered(ViewFilter(user="ann")).with_page(page(2))
    assert filtered.everyone({"connections": 9}) == 9


def test_a_message_can_go_to_the_row_the_view_or_everyone() -> None:
    """The targets are the selected row, the view (unless it is everyone) and
    everyone; an id filter is named but cannot be chosen; a broadcast starts on
    the view."""
    view = ViewState().filtered(ViewFilter(topic="lobby"))
    assert view.targets(ANN) == [
        ("the selected connection 3f2a (ann on /chat)", {"ids": ["3f2a"]}),
        ("the current view: topic=lobby", {"topic": "lobby"}),
        ("everyone", {"everyone": True}),
    ]
    assert view.broadcast_target(ANN) == 1
    assert view.broadcast_target(None) == 0
    assert ViewState().targets(None) == [("everyone", {"everyone": True})]
    by_id = ViewState().filtered(ViewFilter(id_prefix="3f")).targets(None)
    assert by_id[0] == ("the current view: id=3f (an id filter cannot be a target)", None)


def test_client_chosen_names_reach_the_targets_as_written() -> None:
    """Markup-looking user, path and topic names are carried into the labels
    untouched (the dialogs show them literally)."""
    user, path, room = "[bold red]x[/]", "/[/oops]", "[link=https://example.invalid]y[/link]"
    view = ViewState().filtered(ViewFilter(topic=room))
    labels = [label for label, _ in view.targets({"id": "c1", "user": user, "path": path})]
    assert f"({user} on {path})" in labels[0]
    # The filter is written back in its own syntax (quoted only for spaces and quotes).
    assert labels[1] == f"the current view: topic={room}"
    what, selector, _ = view.group_disconnect(1)
    assert room in what and selector == {"topic": room}


def test_disconnecting_the_view_names_it_and_counts_the_page_total() -> None:
    """`D` closes everyone or the view's connections, counted by the server's total
    (the rows shown until a page says); an id filter cannot be closed as a group."""
    assert ViewState().with_page(page(12)).group_disconnect(5) == (
        "EVERY connection", {"everyone": True}, 12)
    assert ViewState().filtered(ViewFilter(user="ann")).group_disconnect(2) == (
        "every connection of user=ann", {"user": "ann"}, 2)
    with pytest.raises(ValueError, match="id filter"):
        ViewState().filtered(ViewFilter(id_prefix="3f")).group_disconnect(1)


# The keys


def keys(view: ViewState = ViewState(), link: LinkState = OPERATOR, *, selected: bool = True,
         rows: int = 1, filter_open: bool = False) -> dict[str, bool | None]:
    actions = ["clear_filter", "next_page", "previous_page", "reconnect", "detail",
               "disconnect_group", "cycle_sort", *sorted(MUTATING_ACTIONS)]
    return {action: key_state(action, view=view, link=link, selected=selected, rows=rows,
                              filter_open=filter_open) for action in actions}


def test_keys_that_would_do_nothing_here_are_hidden() -> None:
    """Esc is shown only with a filter (or the filter box open), the page keys only
    with pages, ctrl+r only while the link is down."""
    shown = keys()
    assert shown["clear_filter"] is False and shown["next_page"] is False
    assert shown["reconnect"] is False
    assert keys(filter_open=True)["clear_filter"] is True
    assert keys(ViewState().filtered(ViewFilter(user="ann")))["clear_filter"] is True
    paged = keys(ViewState().with_page(page(250, "c1")))
    assert paged["next_page"] is True and paged["previous_page"] is True
    assert keys(link=OPERATOR.lost("gone", 1.0))["reconnect"] is True


def test_keys_that_cannot_act_now_are_dimmed() -> None:
    """Mutating keys are dimmed for a read-only token and while the link is down;
    keys on a row without one; disconnect-all with no rows."""
    assert all(keys()[action] is True for action in MUTATING_ACTIONS)
    for link in (READ_ONLY, OPERATOR.lost("gone", 1.0), LinkState()):
        assert all(keys(link=link)[action] is None for action in MUTATING_ACTIONS)
        assert keys(link=link)["detail"] is True  # reading needs no link
    no_row = keys(selected=False, rows=0)
    assert no_row["detail"] is None and no_row["send"] is None
    assert no_row["disconnect"] is None and no_row["disconnect_group"] is None
    assert no_row["broadcast"] is True and no_row["cycle_sort"] is True


# The link


def test_the_link_moves_between_its_states_as_new_values() -> None:
    """Each change is a new value: two failures with the same reason differ, so a
    reactive holding them fires for both; a connection counts and clears the failures."""
    state = LinkState()
    assert state.status == LinkStatus.CONNECTING and not state.up
    lost = state.lost("refused", 0.5)
    assert lost.lost("refused", 0.5) != lost
    up = lost.connected({"role": "operator"})
    assert up.up and up.failures == 0 and up.connections == 1 and up.role == "operator"
    again = up.lost("closed", 0.5).connected({"role": "read_only"})
    assert again.connections == 2 and again.read_only
    assert up.lost("closed", 0.5).hello == {"role": "operator"}  # kept while down
    refused = state.refused("bad token")
    assert refused.status == LinkStatus.REFUSED and refused.retry_in is None
    assert refused.connecting().status == LinkStatus.CONNECTING


def test_retries_back_off_then_repeat_the_last_delay() -> None:
    """The first failure waits the first delay; after the last, it repeats."""
    delays = (0.5, 1.0, 2.0)
    assert [reconnect_delay(delays, n) for n in (1, 2, 3, 4, 9)] == [0.5, 1.0, 2.0, 2.0, 2.0]


def test_the_banner_says_what_the_operator_must_know_about_the_link() -> None:
    """Refused: how to fix the token; lost after a hello: the table is stale;
    never reached: retrying; read-only: what is disabled; connected: nothing."""
    text, kind = link_banner(LinkState().refused("no token"))
    assert kind == "error" and "token was refused: no token" in text and "ctrl+r" in text
    text, kind = link_banner(OPERATOR.lost("closed", 1.0))
    assert kind == "error" and text.startswith("Control link lost (closed)")
    text, kind = link_banner(LinkState().lost("connection refused", 1.0))
    assert kind == "error" and text.startswith("Cannot reach the control plane")
    text, kind = link_banner(READ_ONLY)
    assert kind == "warning" and text.startswith("Read-only token")
    assert link_banner(OPERATOR) == ("", "")
    assert link_banner(LinkState()) == ("", "")


def test_the_link_health_counts_down_to_the_next_attempt() -> None:
    """While an attempt is due, the seconds left, rounded up; then "retrying now"."""
    lost = OPERATOR.lost("closed", 30.0)
    assert link_health(lost, 30.0) == "lost, retrying in 30s"
    assert link_health(lost, 29.2) == "lost, retrying in 30s"
    assert link_health(lost, 28.9) == "lost, retrying in 29s"
    assert link_health(lost, 0.0) == "lost, retrying now"
    assert link_health(lost) == "lost"
    assert link_health(OPERATOR) == "connected as operator"
    assert link_health(READ_ONLY) == "connected"  # the status bar adds "read-only"
    assert link_health(LinkState()) == "connecting..."
    assert link_health(LinkState().refused("x")) == "token refused (ctrl+r retries)"


def test_the_event_log_says_each_change_of_the_link_once() -> None:
    """Connected, reconnected, lost: one line each; a retry that fails the same way
    adds none."""
    start = LinkState()
    up = start.connected({"role": "operator"})
    assert link_note(start, up, "ws://h:1") == "connected to ws://h:1 as operator"
    down = up.lost("closed", 0.5)
    assert link_note(up, down, "") == "control link lost: closed"
    assert link_note(down, down.lost("closed", 1.0), "") is None
    assert link_note(down, down.lost("refused", 1.0), "") == "control link lost: refused"
    back = down.connected({"role": "operator"})
    assert link_note(down, back, "") == "reconnected to the control plane as operator"
    assert link_note(up, up, "") is None


def test_a_state_change_updates_the_latest_stats() -> None:
    """The state, the connections still open and a shutdown's mode replace the
    sample's; the rest stays."""
    stats = {"state": "serving", "connections": 3, "uptime": 9.0, "shutdown_mode": None}
    assert with_state_change(stats, {"state": "draining", "connections": 2,
                                     "mode": "keep_alive"}) == {
        "state": "draining", "connections": 2, "uptime": 9.0, "shutdown_mode": "keep_alive"}
    assert with_state_change(stats, {"state": "stopped"})["connections"] == 3
    assert stats["state"] == "serving"  # a new dict


# The shutdown dialog


def test_the_shutdown_dialog_says_how_the_server_is_first() -> None:
    """Before the operator chooses: the state and the open connections."""
    assert server_summary({"state": "serving", "connections": 1}) == (
        "The server is serving with 1 open connection.")
    assert server_summary({}) == "The server is ? with 0 open connections."


def test_a_keep_alive_drain_counts_the_connections_still_served() -> None:
    """N of M still open while the drain goes on, with the escalation offered;
    none left: the server has stopped."""
    shown = drain({"state": "draining", "connections": 2, "shutdown_mode": "keep_alive"},
                  started_with=2, mode="keep_alive", stopped=False)
    assert "2 of 2 still open" in shown.text and shown.can_escalate and not shown.stopped
    assert (shown.total, shown.closed) == (2, 0)
    one = drain({"state": "draining", "connections": 1}, started_with=2, mode="keep_alive",
                stopped=False)
    assert "1 of 2 still open" in one.text and (one.total, one.closed) == (2, 1)
    done = drain({"state": "stopped", "connections": 0}, started_with=2, mode="keep_alive",
                 stopped=False)
    assert done.stopped and not done.can_escalate
    assert done.text == ("Keep-alive drain: every connection closed by its client; the server "
                         "has stopped.")


def test_a_graceful_shutdown_counts_down_and_cannot_be_escalated() -> None:
    """Graceful: closing, N of M left, nothing to escalate."""
    shown = drain({"state": "draining", "connections": 3}, started_with=4, mode="graceful",
                  stopped=False)
    assert shown.text == "Graceful shutdown: closing; 3 of 4 connections left."
    assert drain({"state": "draining", "connections": 1}, started_with=1, mode="graceful",
                 stopped=False).text == "Graceful shutdown: closing; 1 of 1 connection left."
    assert not shown.can_escalate and (shown.total, shown.closed) == (4, 1)
    # More open than at the start (counts arrive late): the bar grows, never overflows.
    assert drain({"state": "draining", "connections": 5}, started_with=4, mode="graceful",
                 stopped=False).total == 5


def test_the_view_logic_is_pure() -> None:
    """Importing the view state and the link loads neither textual nor asyncio."""
    code = ("import sys, wsconsole.console.view_state, wsconsole.console.link; "
            "print(sorted(m for m in ('textual', 'asyncio', 'websockets') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"
