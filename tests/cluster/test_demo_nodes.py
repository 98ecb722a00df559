"""`wsconsole demo --nodes 2`: a private redis-server, two real node processes,
simulated clients on both, and the console attached to one of them."""

from __future__ import annotations

import subprocess
from typing import Any

from wsconsole.console.app import ConsoleApp
from wsconsole.console.cli import build_parser
from wsconsole.console.tui_command import run_demo

from tests.helpers import TIMEOUT, wait_for


def test_demo_with_two_nodes_shows_connections_of_both():
    """The console of `demo --nodes 2` lists simulated clients of demo-1 and demo-2;
    once it quits, no node or redis-server of the demo is left running."""
    args = build_parser().parse_args(["demo", "--nodes", "2", "--guests", "2",
                                      "--no-slow-reader"])
    seen: set[str] = set()

    async def drive(app: ConsoleApp) -> None:
        async with app.run_test(size=(120, 40)):
            def both_nodes() -> bool:
                table = app.main_screen.table
                seen.update(str(table.summary(str(key.value)).get("node"))
                            for key in table.rows)
                return {"demo-1", "demo-2"} <= seen

            await wait_for(both_nodes, timeout=TIMEOUT * 4)

    assert run_demo(args, run=drive) == 0
    assert {"demo-1", "demo-2"} <= seen
    left = subprocess.run(["pgrep", "-af", "wsconsole-demo-"], capture_output=True, text=True)
    assert left.stdout == "", left.stdout
