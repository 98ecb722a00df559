"""The console's node column, nodes group and node filter against one real
server (a cluster of one: no Redis), its real control plane and real clients."""

from __future__ import annotations

import asyncio

from wsconsole.console.screens import ComposeScreen, MainScreen, ShutdownScreen
from wsconsole.console.widgets import GroupsPanel, StatusBar

from tests.helpers import TIMEOUT, wait_for

from .test_app import SIZE, live_server, main, rows


async def test_one_node_is_a_column_a_group_and_a_filter() -> None:
    """Each row knows its node; the nodes group lists the one node with its count
    and no mark; choosing it narrows the view to that node (the request's node
    argument), and a broadcast to that view reaches its clients; the status bar
    and the shutdown dialog say nothing of a cluster."""
    async with live_server() as live:
        ann = await live.client("ann")
        bob = await live.client("bob", "/feed")
        app = live.app()
        async with app.run_test(size=SIZE) as pilot:
            screen = main(app)
            await wait_for(lambda: len(rows(app)) == 2)
            table = screen.table
            # On one node its name is the least needed column: shown when all fit.
            assert {row["node"] for row in rows(app)} == {"test-node"}
            assert "node" not in table.shown

            groups = screen.query_one(GroupsPanel)
            screen.action_toggle_groups()  # G: hidden at this width, its tree waits
            await wait_for(lambda: [n["node"] for n in app.nodes.nodes] == ["test-node"])
            await wait_for(lambda: str(groups._group_nodes[("node", "test-node")].label)
                           .strip() == "test-node 2")
            status = screen.query_one(StatusBar)
            assert status.cluster is None and "nodes" not in str(
                status.query_one("#status-line").render())

            groups.post_message(GroupsPanel.GroupChosen("node", "test-node"))
            await wait_for(lambda: screen.view.filter.node == "test-node"
                           and screen.view.page is not None)
            assert len(rows(app)) == 2 and groups.active == ("node", "test-node")
            assert "node=test-node" in str(table.border_subtitle)

            await pilot.press("b")
            await wait_for(lambda: isinstance(app.screen, ComposeScreen))
            compose = app.screen
            assert compose.selector == {"everyone": True, "node": "test-node"}
            await wait_for(lambda: compose.recipients == 2)
            compose.query_one("TextArea").text = "to the node"
            await wait_for(lambda: not compose.query_one("#compose-send").disabled)
            await pilot.press("ctrl+s")
            async with asyncio.timeout(TIMEOUT):
                assert await ann.recv() == "to the node"
                assert await bob.recv() == "to the node"
            await wait_for(lambda: isinstance(app.screen, MainScreen))

            await pilot.press("X")
            await wait_for(lambda: isinstance(app.screen, ShutdownScreen)
                           and app.screen.is_mounted)
            dialog = app.screen
            assert dialog.targets == [("this server (test-node)", None)]
            assert not dialog.query_one("#shutdown-target-row").display


async def test_console_node_option_starts_on_that_node_or_says_it_is_unknown() -> None:
    """`wsconsole console --node NAME` starts narrowed to that node; a name the
    server does not know is said once, and the view shows every node instead."""
    async with live_server() as live:
        await live.client("ann")
        app = live.app(node="test-node")
        async with app.run_test(size=SIZE):
            screen = main(app)
            await wait_for(lambda: len(rows(app)) == 1)
            assert screen.view.filter.node == "test-node"
        app = live.app(node="elsewhere")
        async with app.run_test(size=SIZE):
            screen = main(app)
            await wait_for(lambda: len(rows(app)) == 1 and screen.view.filter.node is None)
            failures = [line for line in screen.event_log.entries if "elsewhere" in line]
            assert len(failures) == 1 and "no node named 'elsewhere'" in failures[0]
            assert "showing every node" in failures[0]
