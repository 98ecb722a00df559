"""The operator's side of a cluster: `wsconsole ls`, `nodes`, `send` and the
console, attached to one node of a real redis-server and three real nodes.

The fleet of tests/cluster/conftest.py, shared with test_cluster.py; the test
that stops a node with SIGSTOP resumes it and waits until it answers again
before it ends.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack

import pytest

from wsconsole.console.app import ConsoleApp
from wsconsole.console.cli import main
from wsconsole.console.client import ControlClient
from wsconsole.console.widgets import GroupsPanel, StatusBar

from tests.cluster.cluster_helpers import TOKEN, user
from tests.helpers import TIMEOUT, wait_for

NAMES = ("a", "b", "c")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No operator's own URL, token or token file leaks into a test."""
    monkeypatch.delenv("WSCONSOLE_URL", raising=False)
    monkeypatch.delenv("WSCONSOLE_TOKEN", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


async def wsconsole(capsys, node, *argv: str) -> tuple[int, str, str]:
    """``wsconsole ARGV --url NODE'S CONTROL URL``: exit status, stdout, stderr."""
    async with asyncio.timeout(TIMEOUT * 4):
        status = await asyncio.to_thread(main, [*argv, "--url", node.control_url,
                                                "--token", TOKEN])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


async def every_node_answers(capsys, node) -> None:
    """Wait until `nodes` through ``node`` says every node is live and answers."""
    async def check() -> bool:
        status, out, _ = await wsconsole(capsys, node, "nodes", "--json")
        return status == 0 and {n["node"] for n in json.loads(out)
                                if n["health"] == "live"} >= set(NAMES)

    await wait_for(check, TIMEOUT * 2, interval=0.1)


async def test_ls_nodes_and_send_across_the_cluster(fleet, capsys):
    """Attached to b: `ls` lists the connections of every node with their node,
    `ls --groups` counts by node, `--node` narrows to one, `nodes` lists the
    three live, and `send --all` reaches every node with counts per node."""
    a, b, c = (fleet[name] for name in NAMES)
    async with AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(user(fleet[name], f"u-{name}"))
                   for name in NAMES}
        await every_node_answers(capsys, b)

        status, out, err = await wsconsole(capsys, b, "ls", "--json")
        assert (status, err) == (0, "")
        assert sorted((r["node"], r["user"]) for r in json.loads(out)) == [
            ("a", "u-a"), ("b", "u-b"), ("c", "u-c")]
        status, out, _ = await wsconsole(capsys, b, "ls")
        rows = [line.split() for line in out.splitlines()[1:-1]]
        assert status == 0 and sorted(row[1:3] for row in rows) == [
            ["a", "u-a"], ["b", "u-b"], ["c", "u-c"]]
        status, out, _ = await wsconsole(capsys, b, "ls", "--groups")
        assert {tuple(line.split()) for line in out.splitlines()} >= {
            ("node", "a", "1"), ("node", "b", "1"), ("node", "c", "1")}
        status, out, _ = await wsconsole(capsys, b, "ls", "--json", "--node", "c")
        assert status == 0 and [r["user"] for r in json.loads(out)] == ["u-c"]

        status, out, _ = await wsconsole(capsys, b, "nodes")
        table = [line.split() for line in out.splitlines()]
        assert status == 0 and [row[:3] for row in table[1:]] == [
            ["a", "serving", "live"], ["b", "serving", "live"], ["c", "serving", "live"]]
        assert [row[-1] for row in table[1:]] == [fleet[n].control_url for n in NAMES]

        status, out, _ = await wsconsole(capsys, b, "send", "--all", "--json", "hello all")
        sent = json.loads(out)
        assert status == 0 and sent["missing"] == {}
        assert (sent["recipients"], sent["delivered"]) == (3, 3)
        assert sent["per_node"] == {n: {"recipients": 1, "delivered": 1, "skipped": 0}
                                    for n in NAMES}
        for ws in clients.values():
            async with asyncio.timeout(TIMEOUT):
                assert await ws.recv() == "hello all"

        # events --node c, attached to b: a's connection is not shown, c's is.
        events = asyncio.create_task(wsconsole(
            capsys, b, "events", "--count", "1", "--kind", "connection_opened", "--node", "c"))
        async with asyncio.timeout(TIMEOUT * 2):
            while not events.done():
                async with user(a, "not-shown"), user(c, "shown"):
                    await asyncio.wait([events], timeout=0.1)
        status, out, _ = events.result()
        assert status == 0 and out.split()[1:3] == ["connection_opened", "node=c"]
        assert "user=shown" in out and "not-shown" not in out


async def test_a_stopped_node_is_a_partial_answer_exit_3(fleet, capsys):
    """With c under SIGSTOP, `ls` from a prints a's and b's connections within
    its deadline, names c on stderr in one line, and exits 3; `ls --json` is
    still a list; `send` says c is missing. Once c runs again: exit 0."""
    a, b, c = (fleet[name] for name in NAMES)
    async with user(a, "ann"), user(b, "bob"), user(c, "cy"):
        await every_node_answers(capsys, a)
        c.pause()
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            status, out, err = await wsconsole(capsys, a, "ls", "--json", "--timeout", "0.5")
            assert loop.time() - started < 0.5 + TIMEOUT
            assert status == 3
            assert sorted(r["user"] for r in json.loads(out)) == ["ann", "bob"]
            assert err == ("wsconsole: partial answer: 1 node did not answer: "
                           "c (no reply before the deadline)\n")
            status, out, err = await wsconsole(capsys, a, "send", "--all", "--json",
                                               "--timeout", "0.5", "to whoever answers")
            sent = json.loads(out)
            assert status == 3 and sent["missing"] == {"c": "no reply before the deadline"}
            assert set(sent["per_node"]) == {"a", "b"} and sent["delivered"] == 2
        finally:
            c.resume()
        await every_node_answers(capsys, a)
        status, _, err = await wsconsole(capsys, a, "ls")
        assert (status, err) == (0, "")


async def test_the_console_shows_the_nodes_and_names_a_missing_one(fleet, capsys):
    """The console attached to a: a row per connection with its node, a group per
    node, the status bar's three live nodes; with b stopped, the banner names b
    and its group is marked missing; with b back, both go."""
    a, b = fleet["a"], fleet["b"]
    async with user(a, "ann"), user(b, "bob"):
        await every_node_answers(capsys, a)
        url = a.control_url
        app = ConsoleApp(lambda: ControlClient(url, TOKEN), url=url, refresh_delay=0.01,
                         nodes_interval=0.5, min_refresh_interval=0.05)
        async with app.run_test(size=(120, 36)):
            screen = app.main_screen
            table = screen.table
            await wait_for(lambda: table.row_count == 2, TIMEOUT * 2)
            assert sorted(str(table.get_row(key)[1]) for key in table.rows) == ["a", "b"]
            groups = screen.query_one(GroupsPanel)
            screen.action_toggle_groups()  # G: hidden at this width, its tree waits
            status = screen.query_one(StatusBar)
            await wait_for(lambda: status.nodes == [(3, "live")], TIMEOUT * 2)
            await wait_for(lambda: {("node", n) for n in NAMES} <= set(groups._group_nodes))
            banner = screen.query_one("#banner")

            b.pause()
            try:
                await wait_for(lambda: "No answer from b" in str(banner.render()), TIMEOUT * 2)
                await wait_for(lambda: "✗ missing" in str(
                    groups._group_nodes[("node", "b")].label), TIMEOUT)
                assert [str(table.get_row(key)[1]) for key in table.rows] == ["a"]
            finally:
                b.resume()
            await wait_for(lambda: "No answer" not in str(banner.render())
                           and table.row_count == 2, TIMEOUT * 2)
