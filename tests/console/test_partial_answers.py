"""How the command line says a cluster's answer: per-node counts, the nodes
table, and a partial answer (named on stderr in one line, exit status 3).

Pure: reply dicts as the control plane sends them, through ``output`` and the
commands' own reporting; the same against real nodes is in tests/cluster/.
"""

from __future__ import annotations

from wsconsole.console import output
from wsconsole.console.commands import EXIT_PARTIAL, _partial

NOW = 1_767_229_200.0

MISSING = {"node-c": "no reply before the deadline", "node-b": "broker unavailable"}


def test_a_full_answer_says_nothing_on_stderr(capsys) -> None:
    """A result without ``missing`` (or with an empty one) is a full answer: exit 0, no line."""
    assert _partial({"count": 2}, {"count": 1, "missing": {}}) == 0
    assert capsys.readouterr().err == ""


def test_a_partial_answer_names_every_missing_node_in_one_line(capsys) -> None:
    """The missing nodes of every page are named once, by name, with why, on one
    stderr line; the exit status is 3."""
    page_1 = {"connections": [], "missing": {"node-c": MISSING["node-c"]}}
    page_2 = {"connections": [], "missing": MISSING}
    assert _partial(page_1, page_2) == EXIT_PARTIAL == 3
    err = capsys.readouterr().err
    assert err == ("wsconsole: partial answer: 2 nodes did not answer: node-b (broker "
                   "unavailable), node-c (no reply before the deadline)\n")


def test_a_missing_reason_cannot_write_to_the_terminal() -> None:
    """A reason is another node's text: control characters are escaped, the line stays one."""
    line = output.missing_line({"node-x": "gone\n\x1b[2Jaway"})
    assert "\n" not in line and "\x1b" not in line
    assert "node-x (gone\\x0a\\x1b[2Jaway)" in line


def test_per_node_counts_show_only_for_several_nodes() -> None:
    """send/kick/shutdown print a per-node table under the total only when more
    than one node acted: one node's total says it all."""
    assert output.per_node_table("send", {"a": {"recipients": 1}}) == ""
    table = output.per_node_table("send", {
        "node-b": {"recipients": 2, "delivered": 1, "skipped": 1},
        "node-a": {"recipients": 3, "delivered": 3, "skipped": 0},
    }).splitlines()
    assert [line.split() for line in table] == [
        ["NODE", "RECIPIENTS", "DELIVERED", "SKIPPED"],
        ["node-a", "3", "3", "0"],
        ["node-b", "2", "1", "1"],
    ]
    assert all(line.startswith("  ") for line in table)
    kick = output.per_node_table("disconnect", {"a": {"count": 2}, "b": {"count": 0}})
    assert [line.split() for line in kick.splitlines()] == [
        ["NODE", "CONNECTIONS"], ["a", "2"], ["b", "0"]]


def test_nodes_table_shows_state_health_rates_and_heartbeat() -> None:
    """One row per node, in the server's order: state, health, connections, message
    rates, the age of the last heartbeat, version and control URL."""
    nodes = [
        {"node": "node-a", "state": "serving", "health": "live", "connections": 120,
         "rates": {"msgs_in": 10.04, "msgs_out": 2.5}, "last_seen": NOW - 1,
         "version": "0.9.0", "control_url": "ws://10.0.0.1:8766"},
        {"node": "node-b", "state": "draining", "health": "suspect", "connections": 7,
         "rates": {}, "last_seen": NOW - 75, "version": "0.9.0", "control_url": None},
    ]
    rows = [line.split() for line in output.nodes_table(nodes, NOW).splitlines()]
    assert rows[1] == ["node-a", "serving", "live", "120", "10.0", "2.5", "1s", "ago",
                       "0.9.0", "ws://10.0.0.1:8766"]
    assert rows[2] == ["node-b", "draining", "suspect", "7", "-", "-", "1m15s", "ago",
                       "0.9.0", "-"]


def test_stats_of_a_cluster_show_totals_then_each_node() -> None:
    """stats prints the cluster's totals, then a line per node; one node: no table."""
    one = {"node": "a", "state": "serving", "connections": 3, "per_node": {"a": {}}}
    assert "NODE" not in output.stats_lines(one)
    cluster = {
        "node": "a", "state": "serving", "connections": 5, "uptime": 60,
        "rates": {"msgs_in": 3.0, "msgs_out": 1.0},
        "per_node": {
            "b": {"state": "draining", "connections": 2, "uptime": 30,
                  "rates": {"msgs_in": 1.0, "msgs_out": 0.0}},
            "a": {"state": "serving", "connections": 3, "uptime": 60,
                  "rates": {"msgs_in": 2.0, "msgs_out": 1.0}},
        },
    }
    text = output.stats_lines(cluster)
    head, _, nodes = text.partition("\n\n")
    assert "connections   5" in head
    assert [line.split() for line in nodes.splitlines()] == [
        ["NODE", "STATE", "CONNECTIONS", "IN/S", "OUT/S", "UPTIME"],
        ["a", "serving", "3", "2.0", "1.0", "1m00s"],
        ["b", "draining", "2", "1.0", "0.0", "30s"],
    ]


def test_groups_table_counts_by_node_first() -> None:
    """ls --groups lists the node groups before users, paths and topics."""
    rows = [line.split() for line in output.groups_table(
        {"nodes": {"b": 1, "a": 2}, "users": {"ann": 3}}).splitlines()]
    assert rows == [["KIND", "NAME", "CONNECTIONS"], ["node", "a", "2"], ["node", "b", "1"],
                    ["user", "ann", "3"]]


def test_event_lines_name_their_node() -> None:
    """Every event line says the node it happened on; a node event says its state and health."""
    line = output.event_line("connection_opened", NOW, {"node": "b", "id": "x", "user": "ann"})
    assert line.split()[1:4] == ["connection_opened", "node=b", "id=x"]
    node_event = output.event_line("node", NOW, {"node": "c", "state": "serving",
                                                 "health": "suspect", "connections": 4})
    assert node_event.split()[1:] == ["node", "node=c", "state=serving", "health=suspect",
                                      "connections=4"]
