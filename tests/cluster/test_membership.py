"""The node table with plain values: live, suspect, gone, forgotten, rejoined,
and a second process under a live node's name."""

from __future__ import annotations

from wsconsole.server.cluster.membership import NodeTable


def table() -> NodeTable:
    return NodeTable(suspect=1.0, gone=2.0, forget=10.0)


def whats(changes) -> list[tuple[str, str]]:
    return [(change.member.name, change.what) for change in changes]


def test_a_silent_node_turns_suspect_then_gone_then_drops_out():
    """Measured from when its last heartbeat arrived, on this node's clock."""
    nodes = table()
    assert whats(nodes.heard("b", "i1", {"state": "serving"}, now=0, wall=100)) == [("b", "joined")]
    assert nodes.tick(0.9) == [] and nodes.expected() == ["b"]
    assert whats(nodes.tick(1.0)) == [("b", "suspect")] and nodes.expected() == ["b"]
    assert whats(nodes.tick(2.0)) == [("b", "gone")] and nodes.expected() == []
    assert nodes.get("b").public()["health"] == "gone"
    assert whats(nodes.tick(11.9)) == [] and "b" in nodes
    assert whats(nodes.tick(12.0)) == [("b", "forgotten")] and "b" not in nodes


def test_a_node_that_comes_back_rejoins_and_state_changes_are_told():
    nodes = table()
    nodes.heard("b", "i1", {"state": "serving"}, now=0, wall=100)
    nodes.tick(1.5)
    assert whats(nodes.heard("b", "i1", {"state": "serving"}, now=1.6, wall=101.6)) == [
        ("b", "rejoined")]
    assert whats(nodes.heard("b", "i1", {"state": "draining"}, now=1.7, wall=101.7)) == [
        ("b", "state")]
    assert nodes.heard("b", "i1", {"state": "draining"}, now=1.8, wall=101.8) == []
    assert whats(nodes.left("b", "i1", now=2)) == [("b", "gone")]
    assert nodes.get("b").public()["state"] == "stopped"


def test_a_second_process_under_a_live_name_is_a_duplicate_until_the_first_has_gone():
    """Names are unique among live nodes; a restart takes the name of a gone one."""
    nodes = table()
    nodes.heard("b", "first", {"state": "serving"}, now=0, wall=100)
    assert whats(nodes.heard("b", "second", {}, now=0.5, wall=100.5)) == [("b", "duplicate")]
    assert nodes.get("b").instance == "first"
    assert nodes.left("b", "second", now=0.6) == []  # not its name to give back
    nodes.tick(5)
    assert whats(nodes.heard("b", "second", {"state": "serving"}, now=5.1, wall=105.1)) == [
        ("b", "rejoined")]
    assert nodes.get("b").instance == "second"


def test_a_node_that_beats_slowly_is_judged_by_its_own_pace():
    """A node that announces a 10 s heartbeat is not suspect after this node's
    1 s: it is after 2.5 of its own intervals, gone after 5."""
    nodes = table()
    nodes.heard("slow", "i1", {"state": "serving"}, now=0, wall=100, interval=10.0)
    assert nodes.tick(20) == []
    assert whats(nodes.tick(25)) == [("slow", "suspect")]
    assert whats(nodes.tick(50)) == [("slow", "gone")]
