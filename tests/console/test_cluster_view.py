"""What the console shows of a cluster, from reply dicts as the nodes send them:
the nodes group and its markers, the status bar's nodes, the banner naming the
nodes that did not answer, the shutdown dialog's choices, node events.

Pure view functions with plain values, and the widgets in a bare Textual app;
the same against real nodes is in tests/cluster/.
"""

from __future__ import annotations

from textual.app import App

from wsconsole.console.formatting import ViewFilter, missing_note, parse_filter, routed
from wsconsole.console.link import LinkState
from wsconsole.console.view_state import (
    ViewState,
    cluster_mode,
    main_banner,
    missing_banner,
    next_sort,
    node_stats,
    server_summary,
    node_marker,
    nodes_summary,
    shutdown_targets,
    sort_for_header,
)
from wsconsole.console.widgets import EventLog, GroupsPanel, StatusBar
from wsconsole.server.wire import Event

NODES = (
    {"node": "node-a", "state": "serving", "health": "live", "connections": 4},
    {"node": "node-b", "state": "draining", "health": "live", "connections": 2},
    {"node": "node-c", "state": "serving", "health": "suspect", "connections": 1},
    {"node": "node-d", "state": "serving", "health": "gone", "connections": 0},
)
MISSING = {"node-c": "no reply before the deadline"}
HELLO = {"node": "node-a", "cluster": "prod", "role": "operator"}


def test_a_node_is_marked_by_answer_then_health_then_state() -> None:
    """Missing in the last answer wins over the heartbeat; then suspect or gone;
    then a state other than serving; a live serving node has no mark."""
    a, b, c, d = NODES
    assert node_marker(a, MISSING) == ("", "")
    assert node_marker(b, MISSING)[0] == "draining"
    assert node_marker(c, MISSING)[0] == "✗ missing"
    assert node_marker(c, {})[0] == "? suspect"
    assert node_marker(d, {})[0] == "✗ gone"
    assert node_marker(None, {"node-x": "broker unavailable"})[0] == "✗ missing"


def test_status_bar_counts_nodes_live_suspect_missing() -> None:
    """Gone or named missing counts as missing; a missing node that the nodes
    answer does not list still counts."""
    assert nodes_summary(NODES, MISSING) == [(2, "live"), (2, "missing")]
    assert nodes_summary(NODES, {}) == [(2, "live"), (1, "suspect"), (1, "missing")]
    assert nodes_summary(NODES[:1], {"node-z": "broker unavailable"}) == [
        (1, "live"), (1, "missing")]
    assert nodes_summary(NODES[:1], {}) == [(1, "live")]


def test_cluster_mode_is_said_by_hello_or_by_several_nodes() -> None:
    assert not cluster_mode({"node": "a", "cluster": None}, NODES[:1])
    assert cluster_mode({"node": "a", "cluster": "prod"}, NODES[:1])
    assert cluster_mode({"node": "a"}, NODES)


def test_banner_names_missing_nodes_unless_the_link_is_down() -> None:
    """With the link up, the nodes that did not answer are the banner (over the
    read-only note); a lost link says so instead."""
    up = LinkState().connected({"role": "read_only", "node": "node-a"})
    text, kind = main_banner(up, MISSING)
    assert kind == "warning"
    assert text == missing_banner(MISSING)
    assert text.startswith("No answer from node-c (no reply before the deadline):")
    assert main_banner(up, {})[0].startswith("Read-only token")
    lost = up.lost("connection refused", 1.0)
    assert main_banner(lost, MISSING)[1] == "error"
    assert "node-c" not in main_banner(lost, MISSING)[0]


def test_shutdown_targets_every_node_or_one() -> None:
    """One server: one choice. A cluster: every node (this one last), then each alone."""
    assert shutdown_targets({"node": "solo"}, [{"node": "solo"}]) == [("this server (solo)", None)]
    targets = shutdown_targets(HELLO, NODES[:2])
    assert targets == [("every node of the cluster (node-a last)", None),
                       ("node-a only (this node)", "node-a"), ("node-b only", "node-b")]


def test_a_node_filter_goes_to_that_node_and_its_actions_too() -> None:
    """`node=b` narrows the list to that node (the request's node argument), and an
    action on the view carries the node beside the selector, never inside it."""
    view_filter = parse_filter("node=node-b user=ann")
    assert view_filter == ViewFilter(user="ann", node="node-b")
    assert view_filter.text() == "node=node-b user=ann"
    assert ViewState(filter=view_filter).list_args()["node"] == "node-b"
    assert ViewState(filter=ViewFilter(node="node-b")).active_group() == ("node", "node-b")
    selector = view_filter.selector()
    assert routed(selector) == ({"user": "ann"}, "node-b")
    assert routed(ViewFilter(node="node-b").selector()) == ({"everyone": True}, "node-b")
    assert routed({"everyone": True}) == ({"everyone": True}, None)


def test_the_node_column_is_not_a_sort() -> None:
    """The server cannot sort by node: its header does nothing, `s` skips it."""
    assert sort_for_header("connected_at", "node") is None
    assert next_sort("id") == "user"


def test_an_action_on_a_partial_cluster_says_who_did_not_answer() -> None:
    assert missing_note({"count": 2}) == ""
    assert missing_note({"count": 2, "missing": {"b": "x", "a": "y"}}) == "; no answer from a, b"


async def test_groups_panel_lists_every_node_with_its_mark() -> None:
    """The Nodes section lists each node (one with no connections too), its count
    and its mark; a node that did not answer, or is gone, is marked so, without
    a count (it is not known)."""
    app = App[None]()
    async with app.run_test(size=(40, 20)):
        panel = GroupsPanel()
        await app.mount(panel)
        panel.update_groups({"nodes": {"node-a": 4, "node-b": 2}, "users": {"ann": 6}}, 6)
        panel.update_nodes(NODES, MISSING)
        nodes = panel._sections["node"]
        labels = [str(node.label).strip() for node in nodes.children]
        assert labels == ["node-a 4", "node-b 2 draining", "node-c ✗ missing",
                          "node-d ✗ gone"]
        assert str(nodes.label) == "4 nodes"
        # It answers again: the mark goes, in place.
        node_c = panel._group_nodes[("node", "node-c")]
        panel.update_nodes(NODES, {})
        assert str(node_c.label).strip() == "node-c 0 ? suspect"


async def test_a_hidden_groups_panel_leaves_its_tree_and_catches_up_when_shown() -> None:
    """While the panel is hidden (a narrow terminal), counts and the active group
    change nothing in its tree (each change would lay the screen out); shown
    again, it shows the latest ones."""
    app = App[None]()
    async with app.run_test(size=(40, 20)) as pilot:
        panel = GroupsPanel()
        await app.mount(panel)
        panel.update_groups({"users": {"ann": 2, "bob": 1}}, 3)
        panel.display = False
        tree = [(str(node.label), [str(leaf.label) for leaf in node.children])
                for node in panel.root.children]
        panel.update_groups({"users": {"bob": 4, "cat": 1}}, 5, truncated=True)
        panel.set_active(("user", "cat"))
        assert [(str(node.label), [str(leaf.label) for leaf in node.children])
                for node in panel.root.children] == tree
        panel.display = True
        await pilot.pause()
        users = panel._sections["user"]
        assert [str(leaf.label).strip() for leaf in users.children] == ["bob 4", "▶ cat 1"]
        assert str(users.label) == "2+ users" and panel.border_subtitle == "largest groups only"
        assert str(panel._everyone.label).strip() == "All 5 connections"


async def test_status_bar_shows_the_nodes_of_a_cluster_only() -> None:
    app = App[None]()
    async with app.run_test(size=(160, 4)):
        bar = StatusBar()
        await app.mount(bar)
        bar.update_stats({"node": "node-a", "state": "serving", "connections": 7,
                          "rates": {"msgs_in": 1.0, "msgs_out": 2.0}})
        bar.show_nodes({"node": "node-a", "cluster": None}, NODES[:1], {})
        line = str(bar.query_one("#status-line").render())
        assert "nodes" not in line and "cluster" not in str(bar.query_one("#rates-in").render())
        bar.show_nodes(HELLO, NODES, MISSING)
        line = str(bar.query_one("#status-line").render())
        assert "prod: 2 live, 2 missing nodes" in line
        assert str(bar.query_one("#rates-in").render()).startswith("cluster in ")


async def test_event_log_shows_node_events_and_names_other_nodes() -> None:
    """A node event is a line of its own; an event of another node than the one
    attached to starts with that node's name."""
    app = App[None]()
    async with app.run_test(size=(100, 12)):
        log = EventLog()
        await app.mount(log)
        log.local_node = "node-a"
        log.add_event(Event("node", 0.0, {"node": "node-c", "state": "serving",
                                           "health": "suspect", "connections": 1}))
        log.add_event(Event("connection_opened", 0.0, {"node": "node-b", "user": "ann",
                                                        "path": "/chat", "id": "b.1"}))
        log.add_event(Event("connection_opened", 0.0, {"node": "node-a", "user": "bob",
                                                        "path": "/chat", "id": "a.1"}))
        log.flush()
        lines = [line.split(" ", 1)[1] for line in log.entries]
        assert lines[0] == "◆ node node-c suspect, serving, 1 connection"
        assert lines[1].startswith("[node-b] + ann /chat")
        assert lines[2].startswith("+ bob /chat")


def test_the_shutdown_dialog_says_a_cluster_s_totals() -> None:
    assert server_summary({"state": "serving", "connections": 1}) == (
        "The server is serving with 1 open connection.")
    assert server_summary({"node": "a", "state": "serving", "connections": 9,
                           "per_node": {"a": {}, "b": {}}}) == (
        "The cluster has 9 open connections on 2 nodes; this node (a) is serving.")


def test_one_node_drains_in_its_own_figures() -> None:
    """The shutdown dialog follows one node of a cluster in its entry of per_node;
    once the samples no longer list it, it has stopped."""
    sample = {"state": "serving", "connections": 9,
              "per_node": {"node-a": {"state": "serving", "connections": 6},
                           "node-b": {"state": "draining", "connections": 3}}}
    assert node_stats(sample, None) is sample
    assert node_stats(sample, "node-b") == {"state": "draining", "connections": 3}
    assert node_stats(sample, "node-c") == {"state": "stopped", "connections": 0}
    assert node_stats({"state": "draining", "connections": 2}, "node-b") == {
        "state": "draining", "connections": 2}


async def test_each_node_s_state_changes_are_logged_once_each() -> None:
    """Two nodes that start draining each get their line; a node's repeated
    state (a drain's count going down) gets none."""
    app = App[None]()
    async with app.run_test(size=(100, 12)):
        log = EventLog()
        await app.mount(log)
        log.local_node = "node-a"
        for node, connections in (("node-b", 3), ("node-c", 2), ("node-b", 2)):
            log.add_event(Event("state_changed", 0.0, {"node": node, "state": "draining",
                                                        "mode": "keep_alive",
                                                        "connections": connections}))
        log.flush()
        lines = [line.split(" ", 1)[1] for line in log.entries]
        assert lines == ["[node-b] ● server draining (keep-alive), 3 connections open",
                         "[node-c] ● server draining (keep-alive), 2 connections open"]
